#!/bin/sh
# lmr-pack on a full disk (a 2 MiB tmpfs): the error says "no space left on device", the summary
# counts only the records the shard really holds, and the same command resumes once there is room.
# Needs root for the tmpfs mount: skipped (77) otherwise. usage: pack_disk.sh GEN_RECORDS
set -eu
GEN=$1
PACK="$LMR_BIN/lmr-pack"
d=$(mktemp -d "${TMPDIR:-/tmp}/lmr_pack_disk_XXXXXX")
mkdir "$d/full"
if ! mount -t tmpfs -o size=2m tmpfs "$d/full" 2>/dev/null; then
    rm -rf "$d"
    echo "cannot mount a tmpfs (not root?): skipped"
    exit 77
fi
trap 'umount "$d/full" 2>/dev/null; rm -rf "$d"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
count() { "$PACK" --info --json "$1" | "$LMR_PYTHON" -c 'import json,sys; print(json.load(sys.stdin)["n_records"])'; }

"$GEN" "$d/big.rec" 3000 --t 16 --d 256 --level 1

echo "test 1: LMDB on a full disk: the reason, and only committed records in the summary"
set +e
"$PACK" --txn-mb 1 -o "$d/full/a.lmdb" "$d/big.rec" 2> "$d/err"
rc=$?
set -e
cat "$d/err"
[ $rc -eq 1 ] || fail "exit $rc, not 1"
tail -n 1 "$d/err" | grep -q "no space left on device" || fail "the last line does not say the disk is full"
n=$(count "$d/full/a.lmdb")
[ "$n" -gt 0 ] && [ "$n" -lt 3000 ] || fail "expected a partial shard, got $n records"
grep -q "a.lmdb: $n written (committed before the error)" "$d/err" || fail "the summary does not give the $n committed records"

echo "test 2: with room again, the same command resumes"
mount -o remount,size=64m "$d/full"
"$PACK" --txn-mb 1 -o "$d/full/a.lmdb" "$d/big.rec" 2> "$d/err" || { cat "$d/err"; fail "resume"; }
grep -q "$((3000 - n)) written, $n already present, 0 failed" "$d/err" || { cat "$d/err"; fail "resume summary"; }
"$PACK" -q --verify "$d/full/a.lmdb" || fail "--verify after resume"
echo "all checks passed"
