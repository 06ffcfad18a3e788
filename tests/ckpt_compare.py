#!/usr/bin/env python3
"""Compare the tensors of two safetensors checkpoints: same names, shapes and dtypes, values within
atol + rtol * |b|. Prints the largest difference per tensor; exit 0 when they match, 1 otherwise.
usage: ckpt_compare.py A.safetensors B.safetensors [--atol 1e-5] [--rtol 1e-4] [--prefix P]..."""
import argparse
import json
import struct
import sys

import numpy as np

DTYPES = {"F32": np.float32, "F16": np.float16, "F64": np.float64, "I32": np.int32, "I64": np.int64,
          "U8": np.uint8}


def read(path):
    with open(path, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + n])
    header.pop("__metadata__", None)
    base = 8 + n
    out = {}
    for name, t in header.items():
        lo, hi = t["data_offsets"]
        out[name] = np.frombuffer(blob[base + lo:base + hi], dtype=DTYPES[t["dtype"]]).reshape(t["shape"])
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("a")
    ap.add_argument("b")
    ap.add_argument("--atol", type=float, default=1e-5)
    ap.add_argument("--rtol", type=float, default=1e-4)
    ap.add_argument("--prefix", action="append", default=None,
                    help="compare only tensors whose name starts with this (repeatable)")
    args = ap.parse_args()
    a, b = read(args.a), read(args.b)
    names = sorted(n for n in a if not args.prefix or any(n.startswith(p) for p in args.prefix))
    ok = bool(names)
    if not names:
        print("no tensors to compare")
    for n in names:
        if n not in b or a[n].shape != b[n].shape or a[n].dtype != b[n].dtype:
            print(f"{n}: missing or different shape/dtype in {args.b}")
            ok = False
            continue
        x, y = a[n].astype(np.float64), b[n].astype(np.float64)
        diff = np.abs(x - y)
        bad = diff > args.atol + args.rtol * np.abs(y)
        print(f"{n}: max |diff| {diff.max() if diff.size else 0:.3g}, {int(bad.sum())} of {diff.size} out of tolerance")
        ok &= not bad.any()
    missing = [n for n in b if n not in a and (not args.prefix or any(n.startswith(p) for p in args.prefix))]
    if missing:
        print("only in", args.b, ":", ", ".join(missing))
        ok = False
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
