#!/usr/bin/env python3
"""Interop: shards written by lmr-pack read back with plain h5py and python-lmdb (plus the
record reader of the Python package in python/) give the same ids, labels and payloads as the .rec
streams a C generator wrote. usage: interop_shards.py GEN_RECORDS   (env: LMR_BIN, LMR_SRC)"""
import json
import os
import subprocess
import sys
import tempfile

import h5py
import numpy as np

sys.path.insert(0, os.path.join(os.environ["LMR_SRC"], "python"))
from lmr import record as lmr_record  # noqa: E402
from lmr import shards as lmr_shards  # noqa: E402


def read_lmdb(path):
    """(id, record) for every value of an LMDB shard through plain python-lmdb; the metadata first."""
    import lmdb
    env = lmdb.open(path, subdir=False, readonly=True, lock=False)
    with env.begin() as txn:
        yield "__meta__", txn.get(b"__meta__")
        for key, value in txn.cursor():
            if key not in (b"__meta__", b"__index__"):
                yield key.decode("utf-8"), lmr_record.parse(value)

GEN = sys.argv[1]
PACK = os.path.join(os.environ["LMR_BIN"], "lmr-pack")
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what, file=sys.stderr)


def run(*args):
    subprocess.run(list(args), check=True)


def expected_counts(recs):
    counts = {}
    for r in recs.values():
        for lab in set(r["labels"]):  # a label repeated in one record counts once
            counts[lab] = counts.get(lab, 0) + 1
    return [counts.get(c, 0) for c in range(max(counts) + 1)]


def check_lmdb(path, recs, name):
    items = dict(read_lmdb(path))
    meta = json.loads(items.pop("__meta__"))
    check(set(items) == set(recs), f"{name}: LMDB ids")
    for k, r in items.items():
        e = recs[k]
        check(r["labels"] == e["labels"] and np.array_equal(r["data"], e["data"]), f"{name}: LMDB clip {k}")
    check(meta["n_records"] == len(recs), f"{name}: __meta__ n_records")
    check(meta["class_counts"][:len(expected_counts(recs))] == expected_counts(recs), f"{name}: __meta__ counts")


def check_hdf5(path, recs, name):
    with h5py.File(path, "r") as f:
        ids = [s.decode() for s in f["ids"][:]]
        check(sorted(ids) == sorted(recs), f"{name}: HDF5 ids")
        kind = "frames" if "frames" in f else "features"
        data, lidx, lval = f[kind], f["label_index"][:], f["label_values"][:]
        first = f["labels"][:]
        rows = f["rows"][:] if "rows" in f else None
        multi = f["labels_multi"][:] if "labels_multi" in f else None
        meta = json.loads(f.attrs["lmr_meta"])
        check(f.attrs["n_records"] == len(recs) and meta["n_records"] == len(recs), f"{name}: n_records attrs")
        check(f["checksums"].shape == (len(recs),), f"{name}: /checksums")
        for i, k in enumerate(ids):
            e = recs[k]
            labels = list(lval[lidx[i, 0]:lidx[i, 0] + lidx[i, 1]])
            check(labels == e["labels"], f"{name}: labels of {k}")
            check(first[i] == (e["labels"][0] if e["labels"] else -1), f"{name}: /labels of {k}")
            if multi is not None:
                check(sorted(np.nonzero(multi[i])[0].tolist()) == sorted(set(e["labels"])), f"{name}: /labels_multi of {k}")
            want = e["data"]
            if rows is not None:
                got = data[rows[i, 0]:rows[i, 0] + rows[i, 1]]
                got = got.reshape(want.shape)
            else:
                got = data[i].reshape(want.shape)
            check(got.dtype == want.dtype and np.array_equal(got, want), f"{name}: payload of {k}")


def check_shard_reader(lm, h5, recs, name):
    a, b = lmr_shards.Shard(lm), lmr_shards.Shard(h5)
    check(len(a) == len(b) == len(recs), f"{name}: lmr_shards lengths")
    pos = {cid: i for i, cid in enumerate(b.ids)}
    for i in range(len(a)):
        cid, labels, x = a[i]
        cid2, labels2, x2 = b[pos[cid]]
        check(cid == cid2 and labels == labels2 == recs[cid]["labels"], f"{name}: lmr_shards clip {cid}")
        check(x.shape == x2.shape and np.array_equal(x, x2), f"{name}: lmr_shards payload {cid}")
        check(x.size == recs[cid]["data"].size, f"{name}: lmr_shards size {cid}")


def check_h5py_written(h5, recs, name):
    """/features rewritten by h5py (gzip + shuffle, a chunk per clip) reads back through lmr-pack
    --verify, every checksum included; a byte flipped inside one chunk is an error naming the clip."""
    with h5py.File(h5, "r+") as f:
        data = f["features"][:]
        del f["features"]
        f.create_dataset("features", data=data, chunks=(1,) + data.shape[1:], compression="gzip",
                         compression_opts=6, shuffle=True)
        ids = [s.decode() for s in f["ids"][:]]
        off, size = f["features"].id.get_chunk_info(3).byte_offset, f["features"].id.get_chunk_info(3).size
    out = subprocess.run([PACK, "--verify", h5], capture_output=True, text=True)
    check(out.returncode == 0 and f"verified {len(recs)} records" in out.stdout + out.stderr,
          f"{name}: h5py's /features: {out.stdout} {out.stderr}")
    with open(h5, "r+b") as fh:
        fh.seek(off + size // 2)
        b = fh.read(8)
        fh.seek(off + size // 2)
        fh.write(bytes(x ^ 0xFF for x in b))
    out = subprocess.run([PACK, "--verify", h5], capture_output=True, text=True)
    check(out.returncode == 1 and f"clip {ids[3]}" in out.stderr and "does not inflate" in out.stderr,
          f"{name}: a damaged chunk of h5py's /features: {out.stderr}")
    print(f"{name}: /features written by h5py read back; the damaged chunk: {out.stderr.strip().splitlines()[0]}")


def main():
    with tempfile.TemporaryDirectory(prefix="lmr_interop_") as d:
        cases = [  # name, generator options, lmr-pack options
            ("feat-f16-varyT-multi", ["300", "--level", "0", "--t", "4", "--t-max", "12", "--d", "32", "--multi",
                                      "--backbone", "pool"], []),
            ("frames-u8", ["40", "--level", "0", "--kind", "frames", "--dtype", "u8", "--t", "4", "--d", "8",
                           "--views", "2"], []),
            ("feat-f16-fixed", ["200", "--level", "0", "--t", "8", "--d", "64"], []),
            ("feat-f32-zstd", ["80", "--level", "3", "--dtype", "f32", "--t", "5", "--d", "16"], ["--zstd-level", "0"]),
        ]
        for name, gen, opts in cases:
            rec = os.path.join(d, name + ".rec")
            run(GEN, rec, *gen, "--prefix", name[:4])
            lm, h5 = os.path.join(d, name + ".lmdb"), os.path.join(d, name + ".h5")
            run(PACK, "-q", *opts, "-o", lm, rec)
            run(PACK, "-q", "--format", "hdf5", "-o", h5, rec)
            if "zstd" in name:  # the .rec itself is compressed: read the expected data from the raw LMDB
                recs = {k: r for k, r in read_lmdb(lm) if k != "__meta__"}
            else:
                recs = {r["id"]: r for r in lmr_record.read_stream(rec)}
            check(len(recs) == int(gen[0]), f"{name}: generator wrote {len(recs)} records")
            check_lmdb(lm, recs, name)
            check_hdf5(h5, recs, name)
            check_shard_reader(lm, h5, recs, name)
            print(f"{name}: {len(recs)} records checked in LMDB and HDF5")
            if name == "feat-f16-fixed":
                check_h5py_written(h5, recs, name)
    if failures:
        print(f"{len(failures)} check(s) failed", file=sys.stderr)
        return 1
    print("all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
