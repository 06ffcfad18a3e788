#!/bin/sh
# lmr-pack's command line: usage and exit codes, truncated streams, --verify naming the first bad
# record, refusing to mix shapes or backbones, sidecar metadata and overrides, --info --json.
# usage: pack_cli.sh GEN_RECORDS   (env: LMR_BIN, LMR_PYTHON)
set -eu
GEN=$1
PACK="$LMR_BIN/lmr-pack"
d=$(mktemp -d "${TMPDIR:-/tmp}/lmr_pack_cli_XXXXXX")
trap 'rm -rf "$d"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
status() { set +e; "$@" > "$d/out" 2> "$d/err"; s=$?; set -e; echo $s; }
json_get() { "$LMR_PYTHON" -c "import json,sys; print(json.load(open('$1'))$2)"; }

echo "test 1: --help, --version, bad usage"
[ "$(status "$PACK" --help)" -eq 0 ] && grep -q "usage" "$d/out" || fail "--help"
[ "$(status "$PACK" --version)" -eq 0 ] && grep -q "lmr-pack" "$d/out" || fail "--version"
[ "$(status "$PACK" --format tar -o x.lmdb a.rec)" -eq 2 ] || fail "bad --format is not exit 2"
[ "$(status "$PACK" a.rec)" -eq 2 ] || fail "missing -o is not exit 2"
[ "$(status "$PACK" --info)" -eq 2 ] || fail "--info without a shard is not exit 2"

echo "test 2: a truncated last record is reported and ignored; sidecar metadata; overrides"
"$GEN" "$d/a.rec" 100 --t 4 --d 32 --backbone pool
size=$(stat -c %s "$d/a.rec")
head -c $((size - 10)) "$d/a.rec" > "$d/cut.rec"
cp "$d/a.rec.meta.json" "$d/cut.rec.meta.json"
[ "$(status "$PACK" -o "$d/s.lmdb" --split val "$d/cut.rec")" -eq 0 ] || { cat "$d/err"; fail "pack of a cut stream"; }
grep -q "truncated" "$d/err" && grep -q "99 written, 0 already present, 1 skipped" "$d/err" || { cat "$d/err"; fail "summary"; }
"$PACK" --info --json "$d/s.lmdb" > "$d/info.json"
[ "$(json_get "$d/info.json" '["n_records"]')" = 99 ] || fail "n_records"
[ "$(json_get "$d/info.json" '["backbone"]')" = pool ] || fail "backbone from the sidecar"
[ "$(json_get "$d/info.json" '["dataset"]')" = synthetic ] || fail "dataset from the sidecar"
[ "$(json_get "$d/info.json" '["split"]')" = val ] || fail "--split override"
[ "$(json_get "$d/info.json" '["n_classes"]')" = 10 ] || fail "n_classes"
[ "$(json_get "$d/info.json" '["class_groups"][0]')" = head ] || fail "class groups"
"$PACK" --info "$d/s.lmdb" | grep -q "records       99" || fail "--info text"
[ "$(status "$PACK" -o "$d/s.lmdb" "$d/a.rec")" -eq 0 ] && grep -q "1 written, 99 already present" "$d/err" || fail "resume"

echo "test 3: shapes and backbones are never mixed; the message names the file and clip"
"$GEN" "$d/b.rec" 5 --t 4 --d 16 --prefix other
[ "$(status "$PACK" -o "$d/s.lmdb" "$d/b.rec")" -eq 1 ] || fail "mixed D accepted"
grep -q "b.rec" "$d/err" && grep -q "other0000000" "$d/err" || { cat "$d/err"; fail "mismatch message"; }
"$GEN" "$d/c.rec" 5 --t 4 --d 32 --prefix third --backbone resnet50
[ "$(status "$PACK" -o "$d/s.lmdb" "$d/c.rec")" -eq 1 ] || fail "mixed backbone accepted"
grep -q "resnet50" "$d/err" || { cat "$d/err"; fail "backbone message"; }
[ "$(status "$PACK" -o "$d/n.lmdb" "$d/a.rec" "$d/c.rec")" -eq 1 ] || fail "two sidecars of different backbones"
grep -q "c.rec" "$d/err" || { cat "$d/err"; fail "sidecar conflict message"; }

echo "test 4: stdin; --verify passes, then names the first bad record and exits 1"
"$GEN" - 50 --t 4 --d 32 --prefix pipe | "$PACK" -q -o "$d/p.lmdb" - || fail "pack from stdin"
[ "$(status "$PACK" --verify "$d/p.lmdb")" -eq 0 ] && grep -q "verified 50 records" "$d/out" || fail "--verify"
"$LMR_PYTHON" - "$d/p.lmdb" <<'PY'
import lmdb, sys
env = lmdb.open(sys.argv[1], subdir=False)
with env.begin(write=True) as txn:
    for key in (b"pipe0000031", b"pipe0000040"):
        v = bytearray(txn.get(key))
        v[-1] ^= 0xFF
        txn.put(key, bytes(v))
PY
[ "$(status "$PACK" --verify --threads 2 "$d/p.lmdb")" -eq 1 ] || fail "--verify passed a corrupt shard"
grep -q "pipe0000031" "$d/err" || { cat "$d/err"; fail "--verify does not name the first bad record"; }

echo "test 5: HDF5 from the same stream, --info, --verify; a set of both formats"
[ "$(status "$PACK" --format hdf5 -o "$d/s.h5" "$d/a.rec")" -eq 0 ] || { cat "$d/err"; fail "hdf5 pack"; }
[ "$(status "$PACK" --verify "$d/s.h5")" -eq 0 ] || { cat "$d/err"; fail "hdf5 verify"; }
"$GEN" "$d/e.rec" 20 --t 4 --d 32 --prefix extra --backbone pool
"$PACK" -q -o "$d/e.lmdb" "$d/e.rec"
[ "$(status "$PACK" --info "$d/s.h5" "$d/e.lmdb")" -eq 0 ] && grep -q "records       120" "$d/out" || { cat "$d/out" "$d/err"; fail "set info"; }
echo "all checks passed"
