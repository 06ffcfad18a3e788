#!/usr/bin/python3
"""lmr-train against PyTorch, one optimiser step: lmr-train runs step 1 of the init stage
(full-batch, so the batch is the whole shard in any order) and stops; from that checkpoint's
parameters and Adam moments PyTorch computes step 2 (LayerNorm, Linear+tanh, Linear, label-smoothed
cross-entropy, AdamW with weight decay, cosine rate), and lmr-train's resumed step 2 must agree.
Exit 77 (skipped) without torch."""
import json
import math
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import types
from pathlib import Path

try:
    import torch
except ImportError:
    print("skipped: no torch")
    sys.exit(77)
try:
    import numpy as np
except ImportError:
    print("skipped: no numpy")
    sys.exit(77)

SRC = Path(os.environ.get("LMR_SRC", Path(__file__).resolve().parent.parent))
BIN = Path(os.environ.get("LMR_BIN", "build/bin"))
sys.path.insert(0, str(SRC / "bench"))
import train_torch  # noqa: E402  (its shard writer)

D, H, C, LR, EPOCHS = 16, 8, 4, 0.01, 3


def load_st(path):
    buf = open(path, "rb").read()
    (n,) = struct.unpack("<Q", buf[:8])
    head = json.loads(buf[8:8 + n])
    data = buf[8 + n:]
    out = {}
    for k, v in head.items():
        if k == "__metadata__":
            continue
        b, e = v["data_offsets"]
        dt = {"F32": "<f4", "U8": "u1", "I32": "<i4"}[v["dtype"]]
        out[k] = np.frombuffer(data[b:e], dt).reshape(v["shape"]).copy()
    return out, head.get("__metadata__", {})


def read_shard(path):
    import lmdb
    env = lmdb.open(str(path), subdir=False, readonly=True, lock=False)
    xs, ys = [], []
    with env.begin() as txn:
        for k, v in txn.cursor():
            if k in (b"__meta__", b"__index__"):
                continue
            h = train_torch.HEADER.unpack_from(v)
            idl, T, dd = h[14], h[8], h[9]
            off = train_torch.HEADER.size + idl
            ys.append(struct.unpack_from("<i", v, off)[0])
            xs.append(np.frombuffer(v, np.float16, T * dd, off + 4).reshape(T, dd).astype(np.float32).mean(0))
    env.close()
    return np.stack(xs), np.array(ys)


def main():
    tmp = Path(tempfile.mkdtemp(prefix="lmr_torch_"))
    try:
        shard = tmp / "s.lmdb"
        train_torch.make_shard(types.SimpleNamespace(out=str(shard), seed=3, classes=C, dim=D, frames=1, clips=48))
        x, y = read_shard(shard)
        n = len(y)
        args = [str(BIN / "lmr-train"), "--stage", "init", "--train", str(shard), "--batch", str(n), "--epochs",
                str(EPOCHS), "--hidden", str(H), "--lr", str(LR), "--threads", "1", "--quiet", "--seed", "5"]
        a, b = tmp / "a.safetensors", tmp / "b.safetensors"
        subprocess.run(args + ["--out", str(a), "--stop-after", "1"], check=True)
        shutil.copy(a, b)
        subprocess.run(args + ["--out", str(b), "--resume", "--stop-after", "1", "--log", str(tmp / "log.jsonl")],
                       check=True)
        pa, meta = load_st(a)
        pb, _ = load_st(b)
        assert meta["step"] == "1", meta["step"]

        # the parameter table's order and 16-float alignment give the moments' layout
        names = ["ln.weight", "ln.bias", "pre_logits.weight", "pre_logits.bias", "head.weight", "head.bias"]
        offs, o = {}, 0
        for k in names:
            offs[k] = o
            o += (pa[k].size + 15) // 16 * 16
        assert pa["optim.m"].size == o, (pa["optim.m"].size, o)

        # PyTorch: gradient of step 2 at the step-1 parameters, on the whole set
        P = {k: torch.tensor(pa[k], dtype=torch.float64, requires_grad=True) for k in names}
        X, Y = torch.tensor(x, dtype=torch.float64), torch.tensor(y)
        u = torch.nn.functional.layer_norm(X, (D,), P["ln.weight"], P["ln.bias"], eps=1e-6)
        f = torch.tanh(u @ P["pre_logits.weight"].T + P["pre_logits.bias"])
        z = f @ P["head.weight"].T + P["head.bias"]
        loss = torch.nn.functional.cross_entropy(z, Y, label_smoothing=0.2)
        loss.backward()
        logged = json.loads((tmp / "log.jsonl").read_text().splitlines()[-1])["loss"]
        print(f"loss at step 2: lmr-train {logged:.6f}, PyTorch {loss.item():.6f}")
        ok = abs(logged - loss.item()) <= 1e-5 + 1e-5 * abs(loss.item())

        # AdamW step 2 (PyTorch's formulas), cosine rate for step index 1 of EPOCHS steps
        lr = 0.5 * LR * (1 + math.cos(math.pi * 1 / EPOCHS))
        b1, b2, eps, wd, t = 0.9, 0.999, 1e-8, 0.05, 2
        worst, moved = 0.0, 0.0
        for k in names:
            g = P[k].grad.numpy().ravel()
            sl = slice(offs[k], offs[k] + g.size)
            m = b1 * pa["optim.m"][sl].astype(np.float64) + (1 - b1) * g
            v = b2 * pa["optim.v"][sl].astype(np.float64) + (1 - b2) * g * g
            p = pa[k].ravel().astype(np.float64) * (1 - lr * wd)
            p -= lr * (m / (1 - b1 ** t)) / (np.sqrt(v / (1 - b2 ** t)) + eps)
            got = pb[k].ravel()
            worst = max(worst, float(np.max(np.abs(got - p))))
            moved = max(moved, float(np.max(np.abs(got - pa[k].ravel()))))
            mdiff = float(np.max(np.abs(pb["optim.m"][sl] - m)))
            ok &= mdiff <= 1e-6 + 1e-4 * float(np.max(np.abs(m)))
        print(f"parameters after step 2: max |lmr-train - PyTorch| {worst:.3g} (largest update {moved:.3g})")
        ok &= worst <= 2e-5 and moved > 1e-3
        print("all checks passed" if ok else "MISMATCH")
        return 0 if ok else 1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
