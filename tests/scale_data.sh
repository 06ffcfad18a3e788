#!/bin/sh
# Datasets larger than memory, on the command line: lmr-pack --reduce mean writes each view's
# mean over T and says so in the metadata; lmr-train on the reduced copy learns the same weights,
# bit for bit, and lmr-eval scores it the same; lmr-train's cache of per-clip means changes no
# bit; --reindex and --verify of the per-clip index of an LMDB shard.
# usage: scale_data.sh GEN_RECORDS   (env: LMR_BIN, LMR_PYTHON)
set -eu
GEN=$1
B=$LMR_BIN
d=$(mktemp -d "${TMPDIR:-/tmp}/lmr_scale_XXXXXX")
trap 'rm -rf "$d"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
cd "$d"
# tensors of a checkpoint: the bytes after its header (the header holds the command line)
tensors() { "$LMR_PYTHON" -c "import struct,sys; b=open(sys.argv[1],'rb').read(); n=struct.unpack('<Q',b[:8])[0]; sys.stdout.buffer.write(b[8+n:])" "$1"; }

echo "test 1: --reduce mean: T = 1, f32, the T range in the metadata, 300 clips"
"$GEN" a.rec 300 --kind features --dtype f16 --views 2 --t 6 --t-max 12 --d 32 --classes 5 --seed 3
"$B/lmr-pack" -q -o a.lmdb a.rec
"$B/lmr-pack" --reduce mean -o r.lmdb a.lmdb > out.txt
grep -q "300 clips reduced" out.txt || { cat out.txt; fail "reduce summary"; }
"$B/lmr-pack" --info --json r.lmdb > info.json
"$LMR_PYTHON" - <<'PY' || fail "reduced metadata"
import json
m = json.load(open("info.json"))
m = m[0] if isinstance(m, list) else m
m = m.get("meta", m)
assert m["reduced"] == "mean", m
assert m["reduced_t"][0] >= 6 and m["reduced_t"][1] <= 12 and m["reduced_t"][0] < m["reduced_t"][1], m
assert m["dtype"] == "f32" and m["dims"][1] == 1 and m["n_records"] == 300, m
PY
[ "$(stat -c %s r.lmdb)" -lt "$(stat -c %s a.lmdb)" ] || fail "the reduced shard is not smaller"
"$B/lmr-pack" --info r.lmdb | grep -q "^reduced *mean over T (T 6 to 12 before" || fail "--info shows the reduction"
st=0; "$B/lmr-pack" --reduce mean -o a.lmdb a.lmdb > out.txt 2> err.txt || st=$?
[ $st -eq 2 ] || fail "--reduce over its input"
st=0; "$B/lmr-pack" --reduce max -o x.lmdb a.lmdb 2> err.txt || st=$?
[ $st -eq 2 ] && grep -q "not a reduction" err.txt || fail "--reduce max is a usage error"

echo "test 2: training on the reduced copy gives the same weights, bit for bit; lmr-eval the same scores"
for s in a r; do
    "$B/lmr-train" --stage init --train $s.lmdb --out $s.safetensors --epochs 3 --batch 32 --threads 1 --quiet \
        --cache-mb 0 || fail "train on $s"
    tensors $s.safetensors > $s.bin
    "$B/lmr-eval" --model $s.safetensors --data $s.lmdb --json $s.json > /dev/null || fail "eval on $s"
done
cmp -s a.bin r.bin || fail "the reduced shard trains other weights"
"$LMR_PYTHON" -c "
import json
a, r = json.load(open('a.json')), json.load(open('r.json'))
ka = {k: v for k, v in a.items() if isinstance(v, (int, float))}
kr = {k: v for k, v in r.items() if isinstance(v, (int, float))}
assert ka == kr and ka, (ka, kr)" || fail "lmr-eval scores differ"

echo "test 3: the cache of per-clip means (default; 1 MiB with 2 threads): the same bits (a cache of part of the clips: test_train_data)"
"$B/lmr-train" --stage init --train a.lmdb --out c.safetensors --epochs 3 --batch 32 --threads 1 --quiet
tensors c.safetensors > c.bin
cmp -s a.bin c.bin || fail "the cache changed the weights"
"$B/lmr-train" --stage init --train a.lmdb --out p.safetensors --epochs 3 --batch 32 --threads 2 --quiet --cache-mb 0
"$B/lmr-train" --stage init --train a.lmdb --out q.safetensors --epochs 3 --batch 32 --threads 2 --quiet --cache-mb 1
tensors p.safetensors > p.bin
tensors q.safetensors > q.bin
cmp -s p.bin q.bin || fail "the cache changed the weights (2 threads)"
# batches of 30 read all 300 clips in epoch 1: from epoch 2 the cache is the features in memory
"$B/lmr-train" --stage init --train a.lmdb --out m.safetensors --epochs 3 --batch 30 --threads 2 --quiet --log m.jsonl
"$B/lmr-train" --stage init --train a.lmdb --out n.safetensors --epochs 3 --batch 30 --threads 2 --quiet --cache-mb 0 \
    --log n.jsonl
tensors m.safetensors > m.bin
tensors n.safetensors > n.bin
cmp -s m.bin n.bin || fail "the cache as features in memory changed the weights"
[ "$(grep -c '"from_memory":true' m.jsonl)" = 2 ] && [ "$(grep -c '"from_memory":true' n.jsonl)" = 0 ] ||
    { cat m.jsonl; fail "epochs 2 and 3 were not read from memory"; }
for c in 0 64; do # the validation set is cached too
    "$B/lmr-train" --stage init --train a.lmdb --val r.lmdb --out v$c.safetensors --epochs 2 --batch 32 --threads 1 \
        --quiet --cache-mb $c --log v$c.jsonl 2> /dev/null
    "$LMR_PYTHON" -c "import json,sys; [print(json.loads(l)['val']) for l in open(sys.argv[1])]" v$c.jsonl > v$c.txt
done
cmp -s v0.txt v64.txt && [ -s v0.txt ] || fail "the cache changed the validation numbers"

echo "test 3b: --reduce mean --dtype f16: half the size again; the weights within f16 rounding"
"$B/lmr-pack" -q --reduce mean --dtype f16 -o h.lmdb a.lmdb > /dev/null
"$B/lmr-pack" --info h.lmdb | grep -q "features f16 \[views 2, T 1, D 32\]" || fail "f16 means"
[ "$(stat -c %s h.lmdb)" -lt "$(stat -c %s r.lmdb)" ] || fail "the f16 means are not smaller"
"$B/lmr-train" --stage init --train h.lmdb --out h.safetensors --epochs 3 --batch 32 --threads 1 --quiet --cache-mb 0
tensors h.safetensors > h.bin
cmp -s a.bin h.bin && fail "f16 means rounded nothing?"
"$LMR_PYTHON" "$LMR_SRC/tests/ckpt_compare.py" a.safetensors h.safetensors --atol 2e-3 --rtol 2e-2 > cmp.txt ||
    { cat cmp.txt; fail "the f16 means train other weights"; }

echo "test 4: --verify checks the index; --reindex writes one for a shard without"
"$B/lmr-pack" --verify a.lmdb > out.txt || fail "--verify"
grep -q "no index" out.txt && fail "a fresh shard has its index"
"$LMR_PYTHON" -c "
import lmdb
e = lmdb.open('a.lmdb', subdir=False, lock=False)
with e.begin(write=True) as t: t.delete(b'__index__')" 2>/dev/null || { echo "skipped: test 4 needs the Python lmdb module"; exit 77; }
"$B/lmr-pack" --verify a.lmdb > out.txt || fail "--verify without an index"
grep -q "no index; lmr-pack --reindex" out.txt || { cat out.txt; fail "--verify names the missing index"; }
"$B/lmr-train" --stage init --train a.lmdb --out n.safetensors --epochs 1 --batch 32 --threads 1 2> err.txt > /dev/null
grep -q "without a current index" err.txt || { cat err.txt; fail "lmr-train notes the walk"; }
"$B/lmr-pack" --reindex a.lmdb > out.txt || fail "--reindex"
"$B/lmr-pack" --verify a.lmdb > out.txt || fail "--verify after --reindex"
grep -q "index" out.txt && { cat out.txt; fail "still no index"; }
echo "ok"
