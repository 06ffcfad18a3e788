#!/usr/bin/env bash
# scripts/dump_features.py, the PyTorch example for your own backbone: a tiny model over a frames
# shard; every .npy must equal the model run here by hand, the manifest must carry the labels.
# env: LMR_BIN, LMR_SRC, LMR_PYTHON; arg: the gen_records binary. Exit 77 = skipped, with why.
set -euo pipefail
GEN=$1
PY=${LMR_PYTHON:-python3}
"$PY" -c 'import torch, lmdb, zstandard' 2>/dev/null || { echo "SKIP: torch/lmdb/zstandard missing"; exit 77; }
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
cd "$T"
"$GEN" frames.rec 6 --kind frames --dtype u8 --views 2 --t 3 --d 8 --classes 3 --seed 3 --prefix "p01/c" >/dev/null
"$LMR_BIN/lmr-pack" -q -o frames.lmdb frames.rec
cat > tiny.py <<'PY'
import torch
def build():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 5, 3), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
                               torch.nn.Flatten()), "frame"
PY
"$PY" "$LMR_SRC/scripts/dump_features.py" --frames frames.lmdb --model tiny.py:build --out feats
"$PY" - <<'PY'
import csv, os, sys
import numpy as np, torch
sys.path.insert(0, os.path.join(os.environ["LMR_SRC"], "python"))
import lmr
sys.path.insert(0, ".")
import tiny
model, _ = tiny.build()
s = lmr.Shard("frames.lmdb")
rows = {r["clip_id"]: r["labels"] for r in csv.DictReader(open("feats/manifest.csv"))}
assert len(rows) == len(s) == 6, (len(rows), len(s))
mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
for i in range(len(s)):
    cid, labels, x = s[i]
    assert "/" in cid and os.path.isfile(f"feats/{cid}.npy"), cid
    got = np.load(f"feats/{cid}.npy")
    f = torch.from_numpy(x.reshape(-1, 8, 8, 3).astype(np.float32) / 255).permute(0, 3, 1, 2)
    want = model((f - mean) / std).detach().numpy().reshape(2, 3, 5)
    assert got.shape == (2, 3, 5) and got.dtype == np.float32, (got.shape, got.dtype)
    assert np.abs(got - want).max() < 1e-5, np.abs(got - want).max()
    assert rows[cid] == ";".join(map(str, labels)), (rows[cid], labels)
print("dump_features: 6 clips checked")
PY
