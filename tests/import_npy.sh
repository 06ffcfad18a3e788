#!/usr/bin/env bash
# Bring your own features: lmr-pack --from-npy and --from-hdf5 on files numpy and h5py wrote, read
# back through lmr-pack --info and the Python package (python/lmr) value for value; bad and missing
# files listed in --failures; re-runs resume. Then the user's whole path: scripts/dump_features.py
# with a tiny torch model -> lmr-pack --from-npy -> lmr-train -> lmr-eval (skipped, exit 77, when
# torch is missing; everything before it has run and passed by then).
# env: LMR_BIN, LMR_SRC, LMR_PYTHON; arg: the gen_records binary.
set -euo pipefail
GEN=$1
PY=${LMR_PYTHON:-python3}
PACK="$LMR_BIN/lmr-pack"
"$PY" -c 'import numpy, h5py, lmdb, zstandard' 2>/dev/null || { echo "SKIP: numpy/h5py/lmdb/zstandard missing"; exit 77; }
T=$(mktemp -d "${TMPDIR:-/tmp}/lmr_import_XXXXXX")
trap 'rm -rf "$T"' EXIT
cd "$T"
fail() { echo "FAIL: $*" >&2; exit 1; }
status() { set +e; "$@" > out 2> err; s=$?; set -e; echo $s; }
export PYTHONPATH="$LMR_SRC/python${PYTHONPATH:+:$PYTHONPATH}"

echo "test 1: .npy files of [D] and [T, D] (T varies), f32 and f16, labels and multi-labels, ids in sub-folders"
"$PY" - <<'PY'
import json, os
import numpy as np
rng = np.random.default_rng(5)
D = 6
os.makedirs("f1/p01", exist_ok=True)
rows, want = [], {}
for i in range(12):
    cid = ("p01/c%02d" if i % 3 == 0 else "c%02d") % i
    shape = (D,) if i % 4 == 1 else (1 + i, D)
    a = rng.standard_normal(shape).astype("<f2" if i % 5 == 2 else "<f4")
    np.save("f1/%s.npy" % cid, a)
    labels = [i % 4] if i % 2 else [i % 4, 4]
    rows.append((cid, ";".join(map(str, labels))))
    want[cid] = {"labels": labels, "x": a.astype(np.float32).reshape(1, -1, D).tolist()}
# the clips that must fail, one reason each
np.save("f1/wrong_d.npy", np.zeros((3, D + 1), "<f4"))
np.save("f1/views.npy", np.zeros((2, 3, D), "<f4"))
np.save("f1/f8.npy", np.zeros((3, D)))
a = np.ones((4, D), "<f4"); a[2, 1] = np.inf
np.save("f1/inf.npy", a)
np.save("f1/trunc.npy", np.ones((4, D), "<f4"))
with open("f1/trunc.npy", "r+b") as f:
    f.truncate(os.path.getsize("f1/trunc.npy") - 3)
np.save("f1/p01/late.npy", np.full((2, D), 0.5, "<f4"))  # moved away below: missing on the first run
os.rename("f1/p01/late.npy", "late.npy")
bad = ["wrong_d", "views", "f8", "inf", "trunc", "p01/late"]
with open("m1.csv", "w") as f:
    f.write("clip_id,video,start_sec,stop_sec,labels\n")  # what scripts/dump_features.py writes
    for k, (cid, lab) in enumerate(rows):
        f.write('%s,,,,"%s"\n' % (cid, lab) if k == 5 else "%s,,,,%s\n" % (cid, lab))
        if k < len(bad):
            f.write("%s,,,,1\n" % bad[k])
    f.write("c01,,,,2\n")           # an id listed twice
    f.write("bad_label,,,,1;x\n")   # a label that is not a number
    f.write("big,,,,5\n")           # beyond --classes 5
    f.write("../up,,,,1\n")         # outside the features folder
json.dump(want, open("want1.json", "w"))
open("names.txt", "w").write("".join("class %d\n" % c for c in range(5)))
PY
[ "$(status "$PACK" --from-npy f1 --manifest m1.csv --classes 5 --class-names names.txt --failures f1.tsv \
     -o s1.lmdb)" -eq 1 ] || { cat err; fail "10 failed clips exit 0 by default"; }
grep -q "12 written, 0 already present, 10 failed" err || { cat err; fail "summary"; }
tail -n 1 err | grep -q "10 of 22 clips failed, more than --max-failures 0 allows; the list is in f1.tsv" ||
    { cat err; fail "verdict"; }
grep -q "note: 2 .npy files were converted from f16 to f32" err || { cat err; fail "conversion note"; }
check_reason() { grep -q "^$1	$2		.*$3" f1.tsv || { cat f1.tsv; fail "failure of $1: want '$3'"; }; }
check_reason wrong_d "f1/wrong_d.npy" "D = 7, the shard's records have 6"
check_reason views "f1/views.npy" "2 views, the shard's records have 1 (only T may vary"
check_reason f8 "f1/f8.npy" "dtype '<f8'"
check_reason inf "f1/inf.npy" "1 of 24 values are NaN or Inf (first at row 2, column 1)"
check_reason trunc "f1/trunc.npy" "truncated"
check_reason p01/late "f1/p01/late.npy" "No such file"
check_reason c01 "m1.csv:20" "clip_id listed twice (first at line 4)"
check_reason bad_label "m1.csv:21" "bad label 'x'"
check_reason big "m1.csv:22" "class 5 out of range \[0, 5)"
check_reason ../up "m1.csv:23" "does not name a file under the features folder"
[ "$(wc -l < f1.tsv)" -eq 11 ] || { cat f1.tsv; fail "failures list length"; }
"$PACK" --info --json s1.lmdb > info1.json
"$PY" - <<'PY'
import json
import numpy as np
import lmr
want = json.load(open("want1.json"))
info = json.load(open("info1.json"))
assert info["n_records"] == 12 and info["n_classes"] == 5 and info["multi_label"], info
assert info["backbone"] == "npy" and info["dtype"] == "f32" and info["dims"][0] == 1 and info["dims"][2] == 6, info
assert info["class_names"] == ["class %d" % c for c in range(5)], info["class_names"]
counts = [0] * 5
for v in want.values():
    for c in v["labels"]:
        counts[c] += 1
assert info["class_counts"] == counts, (info["class_counts"], counts)
s = lmr.Shard("s1.lmdb")
assert sorted(s.ids) == sorted(want), s.ids
for i in range(len(s)):
    cid, labels, x = s[i]
    w = want[cid]
    assert labels == w["labels"], (cid, labels, w["labels"])
    ref = np.array(w["x"], np.float32)
    assert x.dtype == np.float32 and x.shape == ref.shape and np.array_equal(x, ref), (cid, x.shape, ref.shape)
print("test 1: 12 clips equal their .npy files")
PY

echo "test 2: a re-run resumes (the missing file added), the others stay listed"
mv late.npy f1/p01/late.npy
[ "$(status "$PACK" --from-npy f1/ --manifest m1.csv --classes 5 --class-names names.txt --max-failures 9 \
     --failures f2.tsv -o s1.lmdb)" -eq 0 ] || { cat err; fail "the re-run"; }
grep -q "1 written, 12 already present, 9 failed" err || { cat err; fail "resume summary"; }
! grep -q "p01/late" f2.tsv && [ "$(wc -l < f2.tsv)" -eq 10 ] || { cat f2.tsv; fail "failures of the re-run"; }
"$PY" -c "
import lmr, numpy as np
s = lmr.Shard('s1.lmdb'); i = s.ids.index('p01/late'); cid, lab, x = s[i]
assert len(s) == 13 and lab == [1] and x.shape == (1, 2, 6) and (x == 0.5).all(), (lab, x)"
"$PACK" --verify s1.lmdb > /dev/null || fail "--verify"
# a clip already stored whose file changed is refused, never overwritten
"$PY" -c "import numpy as np; np.save('f1/c02.npy', np.zeros((3, 6), '<f4'))"
[ "$(status "$PACK" --from-npy f1 --manifest m1.csv --classes 5 --failures f3.tsv -o s1.lmdb)" -eq 1 ] ||
    fail "a changed file accepted"
grep -q "^c02	f1/c02.npy	" f3.tsv || { cat f3.tsv; fail "changed file not listed"; }
# a manifest without a labels column is refused before anything is read
printf 'clip_id,video\nc01,\n' > nolabels.csv
[ "$(status "$PACK" --from-npy f1 --manifest nolabels.csv -o s9.lmdb)" -eq 1 ] &&
    grep -q "nolabels.csv:1: not a manifest: the header names no labels column" err && [ ! -e s9.lmdb ] ||
    { cat err; fail "manifest without labels"; }

echo "test 3: [views, T, D] f16 files, --dtype f16, --max-frames, an HDF5 shard, --backbone"
"$PY" - <<'PY'
import json, os
import numpy as np
rng = np.random.default_rng(9)
os.makedirs("f3", exist_ok=True)
want = {}
with open("m3.csv", "w") as f:
    f.write("labels,clip_id\n")  # any column order; only clip_id and labels are read
    for i in range(6):
        t = [2, 9, 5, 1, 12, 4][i]
        a = rng.standard_normal((3, t, 8)).astype("<f2" if i != 4 else "<f4")
        np.save("f3/v%d.npy" % i, a)
        keep = list(range(t)) if t <= 4 else [(2 * r + 1) * t // 8 for r in range(4)]
        b = a[:, keep, :].astype(np.float16)
        want["v%d" % i] = {"labels": [i % 3], "x": b.astype(np.float32).tolist()}
        f.write("%d,v%d\n" % (i % 3, i))
json.dump(want, open("want3.json", "w"))
PY
[ "$(status "$PACK" --from-npy f3 --manifest m3.csv --dtype f16 --max-frames 4 --format hdf5 \
     --backbone my_vit --weights-checksum 0123abcd --dataset mine --split val -o s3.h5)" -eq 0 ] || { cat err; fail "views"; }
grep -q "note: 1 .npy file was converted from f32 to f16" err || { cat err; fail "f32 -> f16 note"; }
"$PACK" --info --json s3.h5 > info3.json
"$PY" - <<'PY'
import json
import numpy as np
import lmr
want = json.load(open("want3.json"))
info = json.load(open("info3.json"))
assert info["dims"][:3] == [3, 0, 8] and info["dtype"] == "f16", info
assert (info["backbone"], info["weights_checksum"], info["dataset"], info["split"]) == ("my_vit", "0123abcd", "mine", "val"), info
s = lmr.Shard("s3.h5")
assert len(s) == 6
for i in range(len(s)):
    cid, labels, x = s[i]
    ref = np.array(want[cid]["x"], np.float32)
    assert labels == want[cid]["labels"] and x.dtype == np.float16, (cid, labels, x.dtype)
    assert x.shape == ref.shape and np.array_equal(x.astype(np.float32), ref), (cid, x.shape, ref.shape)
print("test 3: 6 clips of 3 views equal their .npy files (f16, at most 4 rows)")
PY
# the provenance cannot change on a re-run: another backbone is refused
[ "$(status "$PACK" --from-npy f3 --manifest m3.csv --format hdf5 -o s3.h5)" -eq 1 ] && grep -q "backbone npy" err ||
    { cat err; fail "a re-run with another backbone"; }

echo "test 4: --from-hdf5: h5py files with fixed and variable-length string ids, [N] and multi-hot labels"
"$PY" - <<'PY'
import json
import h5py
import numpy as np
rng = np.random.default_rng(2)
# a: [N, T, D] f32, fixed-length ids, [N] int labels; chunked and compressed as h5py users often do
N, Tn, D = 40, 5, 6
x = rng.standard_normal((N, Tn, D)).astype("f4")
x[7, 2, 3] = np.nan
ids = np.array([b"clip_%03d" % i for i in range(N)])
ids[9] = b"clip_003"  # a repeated id
y = (np.arange(N) % 4).astype("i8")
y[11] = 9              # beyond --classes 5
y[12] = -1
with h5py.File("a.h5", "w") as f:
    f.create_dataset("features", data=x, chunks=(8, Tn, D), compression="gzip")
    f["ids"] = ids
    f["labels"] = y
want = {ids[i].decode(): {"labels": [int(y[i])], "x": x[i][None].tolist()} for i in range(N) if i not in (7, 9, 11, 12)}
json.dump(want, open("want_a.json", "w"))
# b: [N, views, T, D] f16, variable-length str ids, [N, C] bool multi-hot, other dataset names
N, V, C = 10, 2, 7
xb = rng.standard_normal((N, V, 3, D)).astype("f2")
hot = rng.random((N, C)) < 0.3
hot[:, 0] = True
hot[4, :] = [True, False, True, False, False, False, True]
with h5py.File("b.h5", "w") as f:
    g = f.create_group("out")
    g["feats"] = xb
    g.create_dataset("names", data=["vid/%d" % i for i in range(N)], dtype=h5py.string_dtype())
    g["multi"] = hot
wb = {"vid/%d" % i: {"labels": [int(c) for c in np.nonzero(hot[i])[0]], "x": xb[i].astype("f4").tolist()}
      for i in range(N)}
json.dump(wb, open("want_b.json", "w"))
# c: [N, D], int ids, variable-length label lists, u8 multi-hot in d
with h5py.File("c.h5", "w") as f:
    f["features"] = rng.standard_normal((4, D)).astype("f4")
    f["ids"] = np.array([10, 11, 12, 13])
    lab = f.create_dataset("labels", (4,), dtype=h5py.vlen_dtype(np.int64))
    for i, l in enumerate([[0], [1, 2], [], [3, 0]]):
        lab[i] = np.array(l, np.int64)
with h5py.File("d.h5", "w") as f:
    f["features"] = np.ones((2, D), "f4")
    f["ids"] = np.array([b"p", b"q"])
    f["labels"] = np.array([[1, 0, 2], [0, 1, 0]], "u1")  # 2 is not multi-hot
PY
[ "$(status "$PACK" --from-hdf5 a.h5 --classes 5 --failures fa.tsv -o a.lmdb)" -eq 1 ] || { cat err; fail "a.h5"; }
grep -q "36 written, 0 already present, 4 failed" err || { cat err; fail "a.h5 summary"; }
grep -q "^clip_007	a.h5: clip 7		1 of 30 values are NaN or Inf (first at row 2, column 3)" fa.tsv &&
    grep -q "^clip_003	a.h5: clip 9		id 'clip_003' is also the id of clip 3" fa.tsv &&
    grep -q "^clip_011	a.h5: clip 11		class 9 out of range \[0, 5)" fa.tsv &&
    grep -q "^clip_012	a.h5: clip 12		label -1 is not a class index" fa.tsv || { cat fa.tsv; fail "a.h5 failures"; }
[ "$(status "$PACK" --from-hdf5 a.h5 --classes 5 --max-failures 4 -o a.lmdb)" -eq 0 ] &&
    grep -q "0 written, 36 already present, 4 failed" err || { cat err; fail "a.h5 resume"; }
[ "$(status "$PACK" --from-hdf5 b.h5 --h5-features out/feats --h5-ids out/names --h5-labels out/multi -o b.lmdb)" -eq 0 ] ||
    { cat err; fail "b.h5"; }
[ "$(status "$PACK" --from-hdf5 c.h5 -o c.lmdb)" -eq 0 ] || { cat err; fail "c.h5"; }
[ "$(status "$PACK" --from-hdf5 c.h5 --format hdf5 -o c_out.h5)" -eq 0 ] || { cat err; fail "c.h5 into an HDF5 shard"; }
[ "$(status "$PACK" --from-hdf5 c.h5 --format hdf5 -o c.h5)" -eq 2 ] && grep -q "refusing to write over it" err ||
    { cat err; fail "-o = the HDF5 input"; }
[ "$(status "$PACK" --from-hdf5 d.h5 -o d.lmdb --max-failures 1)" -eq 0 ] &&
    grep -q "d.h5: clip 0: multi-hot labels hold 2 at class 2, want 0 or 1" err || { cat err; fail "d.h5"; }
[ "$(status "$PACK" --from-hdf5 b.h5 -o x.lmdb)" -eq 1 ] && grep -q "b.h5: no dataset 'features' in it" err &&
    [ ! -e x.lmdb ] || { cat err; fail "a missing dataset"; }
[ "$(status "$PACK" --from-hdf5 b.h5 --h5-features out/feats --h5-ids out/names --h5-labels out/multi --classes 5 -o x.lmdb)" -eq 1 ] &&
    grep -q "multi-hot over 7 classes, but 5 are expected" err || { cat err; fail "multi-hot width against --classes"; }
"$PACK" --info --json b.lmdb > info_b.json
"$PY" - <<'PY'
import json
import numpy as np
import lmr
for shard, wfile in (("a.lmdb", "want_a.json"), ("b.lmdb", "want_b.json")):
    want = json.load(open(wfile))
    s = lmr.Shard(shard)
    assert sorted(s.ids) == sorted(want), (shard, len(s), len(want))
    for i in range(len(s)):
        cid, labels, x = s[i]
        ref = np.array(want[cid]["x"], np.float32)
        assert labels == want[cid]["labels"], (shard, cid, labels, want[cid]["labels"])
        assert x.shape == ref.shape and np.array_equal(x.astype(np.float32), ref), (shard, cid, x.shape, ref.shape)
info = json.load(open("info_b.json"))
assert info["n_classes"] == 7 and info["multi_label"] and info["dtype"] == "f16" and info["backbone"] == "hdf5", info
s = lmr.Shard("c.lmdb")
got = {s[i][0]: (s[i][1], s[i][2].shape) for i in range(len(s))}
assert got == {"10": ([0], (1, 1, 6)), "11": ([1, 2], (1, 1, 6)), "12": ([], (1, 1, 6)), "13": ([3, 0], (1, 1, 6))}, got
h = lmr.Shard("c_out.h5")
assert {h[i][0]: (h[i][1], h[i][2].shape) for i in range(len(h))} == got
for i in range(len(h)):
    assert np.array_equal(h[i][2], s[s.ids.index(h[i][0])][2])
print("test 4: a.h5 (36 clips), b.h5 (10 clips, 2 views, multi-hot), c.h5 (vlen labels) read back equal")
PY

echo "test 5: the user's path: dump_features.py (tiny torch model) -> --from-npy -> lmr-train -> lmr-eval"
if ! "$PY" -c 'import torch' 2>/dev/null; then
    echo "SKIP: torch missing (tests 1-4 passed)"
    exit 77
fi
"$GEN" frames.rec 24 --kind frames --dtype u8 --views 1 --t 3 --d 8 --classes 3 --seed 4 --prefix "p02/c" >/dev/null
"$PACK" -q -o frames.lmdb frames.rec
cat > tiny.py <<'PY'
import torch
def build():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
                               torch.nn.Flatten()), "frame"
PY
"$PY" "$LMR_SRC/scripts/dump_features.py" --frames frames.lmdb --model tiny.py:build --out feats > /dev/null
[ "$(status "$PACK" --from-npy feats --manifest feats/manifest.csv -o train.lmdb)" -eq 0 ] || { cat err; fail "import"; }
grep -q "24 written, 0 already present, 0 failed" err || { cat err; fail "import summary"; }
"$PY" - <<'PY'
import csv
import numpy as np
import lmr
s = lmr.Shard("train.lmdb")
rows = {r["clip_id"]: r["labels"] for r in csv.DictReader(open("feats/manifest.csv"))}
assert len(s) == len(rows) == 24
for i in range(len(s)):
    cid, labels, x = s[i]
    assert rows[cid] == ";".join(map(str, labels)) and np.array_equal(x, np.load("feats/%s.npy" % cid)), cid
PY
# a per-clip model (one feature per view, a video transformer's shape): [views, 1, D] records
"$GEN" frames2.rec 4 --kind frames --dtype u8 --views 2 --t 4 --d 8 --classes 2 --seed 6 >/dev/null
"$PACK" -q -o frames2.lmdb frames2.rec
cat > clipnet.py <<'PY'
import torch
def build():
    torch.manual_seed(1)
    return torch.nn.Sequential(torch.nn.Conv3d(3, 5, (2, 3, 3)), torch.nn.AdaptiveAvgPool3d(1),
                               torch.nn.Flatten()), "clip"
PY
"$PY" "$LMR_SRC/scripts/dump_features.py" --frames frames2.lmdb --model clipnet.py:build --out feats2 > /dev/null
[ "$(status "$PACK" --from-npy feats2 --manifest feats2/manifest.csv -o clip.lmdb)" -eq 0 ] || { cat err; fail "per-clip import"; }
"$PY" -c "
import lmr, numpy as np
s = lmr.Shard('clip.lmdb'); assert len(s) == 4
for i in range(4):
    cid, lab, x = s[i]
    assert x.shape == (2, 1, 5) and np.array_equal(x, np.load('feats2/%s.npy' % cid)), (cid, x.shape)"
"$LMR_BIN/lmr-train" --stage init --train train.lmdb --out m.safetensors --epochs 2 --batch 8 --hidden 16 --quiet ||
    fail "lmr-train on the imported shard"
"$LMR_BIN/lmr-eval" --model m.safetensors --data train.lmdb --json eval.json > /dev/null || fail "lmr-eval"
"$PY" -c "import json; d = json.load(open('eval.json')); print('test 5: lmr-eval top-1', d.get('top1', d.get('acc')))"
echo "all checks passed"
