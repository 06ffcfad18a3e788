#!/usr/bin/env bash
# The Python package as a user gets it: `pip install ./python` into a fresh venv (offline; numpy,
# h5py, lmdb, zstandard and torch from the system's site packages), then, from outside the source
# tree, read what lmr-pack and lmr-train wrote and check it against the C tools.
# env: LMR_BIN, LMR_SRC, LMR_PYTHON; arg: the gen_records binary. Exit 77 = skipped, with why.
set -euo pipefail
GEN=$1
PY=${LMR_PYTHON:-python3}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT

if ! "$PY" -c 'import venv, ensurepip' 2>/dev/null; then
  echo "SKIP: $PY has no venv/ensurepip (Debian: python3-venv)"; exit 77
fi
"$PY" -m venv --system-site-packages "$T/venv"
"$T/venv/bin/pip" install -q --no-index --no-build-isolation "$LMR_SRC/python" >"$T/pip.log" 2>&1 ||
  { cat "$T/pip.log"; echo "FAIL: pip install ./python"; exit 1; }
"$T/venv/bin/python" -c 'import h5py, lmdb, zstandard' 2>/dev/null ||
  { echo "SKIP: h5py/lmdb/zstandard missing (scripts/deps.sh --test installs them)"; exit 77; }

cd "$T"
"$GEN" r.rec 40 --d 12 --t 3 --views 2 --classes 4 --seed 7 --dtype f16 >/dev/null
"$LMR_BIN/lmr-pack" -q -o a.lmdb r.rec
"$LMR_BIN/lmr-pack" -q --format hdf5 -o a.h5 r.rec
"$LMR_BIN/lmr-train" --stage init --train a.lmdb --out m.safetensors --epochs 10 --lr 0.01 --batch 8 --hidden 16 --quiet
"$LMR_BIN/lmr-eval" --model m.safetensors --data a.lmdb --predictions pred.csv --quiet >/dev/null

"$T/venv/bin/python" - <<'PY'
import csv, os, sys
import numpy as np
import lmr
from lmr.record import read_stream

fails = []
def check(cond, what):
    if not cond:
        fails.append(what); print("FAIL:", what, file=sys.stderr)

check("site-packages" in lmr.__file__, f"lmr imported from {lmr.__file__}, not the venv")
recs = {r["id"]: r for r in read_stream("r.rec")}
a, b = lmr.Shard("a.lmdb"), lmr.Shard("a.h5")
check(len(a) == len(b) == len(recs) == 40, f"lengths {len(a)} {len(b)} {len(recs)}")
for i in range(len(a)):
    cid, lab, x = a[i]
    j = b.ids.index(cid)
    cid2, lab2, x2 = b[j]
    r = recs[cid]
    check(lab == lab2 == r["labels"], f"labels of {cid}")
    check(x.shape == (2, 3, 12) and np.array_equal(x, x2) and np.array_equal(x, r["data"][..., 0]),
          f"payload of {cid}")
check(a.meta["class_counts"] == b.meta["class_counts"], "class counts")
try:
    lmr.ShardSet(["a.lmdb", "a.h5"])
    check(False, "a set holding the same clips twice was accepted")
except lmr.ShardError as e:
    check("clip" in str(e), f"duplicate message: {e}")

ck = lmr.load_checkpoint("m.safetensors", model_only=True)
check(sorted(ck.tensors) == sorted(lmr.checkpoint.MODEL_TENSORS), f"tensors {sorted(ck.tensors)}")
pred = {row["clip_id"]: row for row in csv.DictReader(open("pred.csv"))}
agree = 0
for i in range(len(a)):
    cid, _, x = a[i]
    z = lmr.head_forward(ck, x.astype(np.float64).mean(1))          # [views, C]
    p = np.exp(z - z.max(1, keepdims=True)); p /= p.sum(1, keepdims=True)
    s = p.mean(0)
    agree += int(np.argmax(s)) == int(pred[cid]["pred"])
    check(abs(float(s.max()) - float(pred[cid]["score"])) < 2e-6, f"score of {cid}: {s.max()} vs {pred[cid]['score']}")
check(agree == len(a), f"top-1 agrees on {agree} of {len(a)} clips")

try:
    import torch
except ImportError:
    torch = None
if torch is None:
    print("note: torch not installed, lmr.torch not checked")
else:
    import lmr.torch as lt
    head = lt.head_from_checkpoint("m.safetensors")
    ds = lt.ShardDataset(["a.lmdb"], mean_t=True)
    x, y = ds[0]
    check(tuple(x.shape) == (2, 12) and y.dtype == torch.long, f"dataset item {tuple(x.shape)} {y.dtype}")
    with torch.no_grad():
        zt = head(x.double().float()).double().numpy()
    zn = lmr.head_forward(ck, x.double().numpy())
    check(np.abs(zt - zn).max() < 1e-4, f"torch head vs numpy: {np.abs(zt - zn).max()}")
    n = sum(len(lab) for _, lab in torch.utils.data.DataLoader(ds, batch_size=8, collate_fn=lambda b: list(zip(*b))))
    check(n == 40, f"DataLoader gave {n} items")
# A stream written by the package, metadata record first, as lmr-pack reads it.
import json, subprocess
from lmr import record
with open("py.rec", "wb") as f:
    f.write(record.meta_record({"dataset": "pyset", "backbone": "mine", "weights_checksum": "00ff00ff00ff00ff",
                                "class_names": ["a", "b", "c", "d"], "n_classes": 4}))
    for i in range(5):
        f.write(record.encode(f"p{i}", [i % 4], np.full((1, 2, 6), i, np.float32), zstd_level=3 if i % 2 else 0))
meta = {}
check(len(list(record.read_stream("py.rec", meta))) == 5 and meta.get("dataset") == "pyset", f"stream meta {meta}")
subprocess.run([os.environ["LMR_BIN"] + "/lmr-pack", "-q", "-o", "py.lmdb", "py.rec"], check=True)
info = json.loads(subprocess.run([os.environ["LMR_BIN"] + "/lmr-pack", "--info", "--json", "py.lmdb"], check=True,
                                 capture_output=True, text=True).stdout)
m = info.get("meta", info)
check(m.get("dataset") == "pyset" and m.get("backbone") == "mine" and m.get("class_names") == ["a", "b", "c", "d"],
      f"lmr-pack --info of a python-written stream: {m}")
py = lmr.Shard("py.lmdb")
check([py[i][2][0, 0, 0] for i in range(5)] == [0, 1, 2, 3, 4] and py.class_names == ["a", "b", "c", "d"],
      "python-written records read back")
if fails:
    sys.exit(1)
print("python package: all checks passed")
PY
