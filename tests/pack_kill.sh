#!/bin/sh
# kill -9 of lmr-pack in the middle of a large pack, then the same command again: --verify
# passes and every clip id is stored exactly once. An interrupted HDF5 pack is refused, not
# half-read. usage: pack_kill.sh GEN_RECORDS   (env: LMR_BIN, LMR_PYTHON)
set -eu
GEN=$1
PACK="$LMR_BIN/lmr-pack"
N=6000
d=$(mktemp -d "${TMPDIR:-/tmp}/lmr_pack_kill_XXXXXX")
feeder=
cleanup() { [ -n "$feeder" ] && kill "$feeder" 2>/dev/null; rm -rf "$d"; }
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

"$GEN" "$d/big.rec" $N --t 16 --d 256 --level 1 --classes 50
size=$(stat -c %s "$d/big.rec")
half=$((size / 2))

count_records() { "$PACK" --info --json "$1" | "$LMR_PYTHON" -c 'import json,sys; print(json.load(sys.stdin)["n_records"])'; }

# Feed half the stream, then stall: the kill lands mid-pack, after many commits.
kill_midway() { # FORMAT SHARD MIN_BYTES: kill once the shard holds MIN_BYTES
    rm -f "$d/fifo"
    mkfifo "$d/fifo"
    (head -c $half "$d/big.rec"; exec sleep 60) > "$d/fifo" &
    feeder=$!
    "$PACK" -q --format "$1" --txn-mb 1 -o "$2" - < "$d/fifo" &
    pid=$!
    i=0
    while [ "$(stat -c %s "$2" 2>/dev/null || echo 0)" -lt "$3" ]; do
        i=$((i + 1))
        [ $i -lt 600 ] || fail "lmr-pack made no progress"
        sleep 0.1
    done
    sleep 0.5
    kill -9 $pid
    wait $pid 2>/dev/null || true
    kill "$feeder" 2>/dev/null || true
    wait "$feeder" 2>/dev/null || true
    feeder=
}

echo "test 1: LMDB: kill -9 mid-pack, rerun, verify, every id once"
kill_midway lmdb "$d/s.lmdb" $((half / 3))
partial=$(count_records "$d/s.lmdb")
echo "  after kill -9: $partial of $N records committed"
[ "$partial" -gt 0 ] && [ "$partial" -lt $N ] || fail "expected a partial shard, got $partial records"
"$PACK" --verify "$d/s.lmdb" || fail "the partial shard does not verify"
"$PACK" --txn-mb 1 -o "$d/s.lmdb" "$d/big.rec" 2> "$d/log" || { cat "$d/log"; fail "rerun failed"; }
cat "$d/log"
grep -q "already present" "$d/log" || fail "no summary"
"$PACK" --verify "$d/s.lmdb" || fail "--verify after resume"
[ "$(count_records "$d/s.lmdb")" -eq $N ] || fail "record count after resume"
"$LMR_PYTHON" - "$d/s.lmdb" $N <<'PY' || fail "ids are not each present exactly once"
import lmdb, sys
env = lmdb.open(sys.argv[1], subdir=False, readonly=True, lock=False)
with env.begin() as txn:
    keys = [k.decode() for k, _ in txn.cursor() if k not in (b"__meta__", b"__index__")]
want = ["clip%07d" % i for i in range(int(sys.argv[2]))]
sys.exit(0 if sorted(keys) == want and len(set(keys)) == len(keys) else 1)
PY

echo "test 2: LMDB: kill -9 at a random moment of a file pack, rerun"
"$PACK" -q --txn-mb 2 -o "$d/t.lmdb" "$d/big.rec" &
pid=$!
sleep 0.1
kill -9 $pid 2>/dev/null || echo "  (the pack finished before the kill)"
wait $pid 2>/dev/null || true
"$PACK" -q --txn-mb 2 -o "$d/t.lmdb" "$d/big.rec" || fail "rerun after random kill"
"$PACK" --verify "$d/t.lmdb" || fail "--verify after random kill"
[ "$(count_records "$d/t.lmdb")" -eq $N ] || fail "record count after random kill"

echo "test 3: HDF5: an interrupted shard is refused by name, never half-read"
kill_midway hdf5 "$d/s.h5" 1 # HDF5 may hold chunks in its cache: any moment before close will do
if "$PACK" --format hdf5 -o "$d/s.h5" "$d/big.rec" 2> "$d/log"; then fail "resumed an interrupted HDF5 shard"; fi
grep -q "interrupted" "$d/log" || { cat "$d/log"; fail "no message naming the interruption"; }
if "$PACK" --verify "$d/s.h5" 2>/dev/null; then fail "--verify accepted an interrupted HDF5 shard"; fi
echo "all checks passed"
