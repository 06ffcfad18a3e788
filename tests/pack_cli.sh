#!/bin/sh
# lmr-pack's command line: usage errors and exit codes, never writing over an input, failure
# accounting (--max-failures, --failures), truncated and corrupt streams, refusing to mix shapes or
# backbones, sidecar and stream metadata records (class names, mode), empty inputs, --verify and
# --info of several shards each on its own, and the VideoLT import's resume across dtypes.
# usage: pack_cli.sh GEN_RECORDS   (env: LMR_BIN, LMR_PYTHON)
set -eu
GEN=$1
PACK="$LMR_BIN/lmr-pack"
d=$(mktemp -d "${TMPDIR:-/tmp}/lmr_pack_cli_XXXXXX")
trap 'rm -rf "$d"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
status() { set +e; "$@" > "$d/out" 2> "$d/err"; s=$?; set -e; echo $s; }
json_get() { "$LMR_PYTHON" -c "import json,sys; print(json.load(open('$1'))$2)"; }
last_err() { tail -n 1 "$d/err"; }
# usage_is EXPECTED-FIRST-LINE CMD...: exit 2, and stderr is that one line
usage_is() {
    want=$1
    shift
    [ "$(status "$@")" -eq 2 ] || { cat "$d/err"; fail "not exit 2: $*"; }
    [ "$(wc -l < "$d/err")" -eq 1 ] && [ "$(cat "$d/err")" = "$want" ] || { cat "$d/err"; fail "usage message of: $*"; }
}

echo "test 1: --help, --version; usage errors: exit 2, the one reason, one wording"
[ "$(status "$PACK" --help)" -eq 0 ] && grep -q "usage" "$d/out" && grep -q -- "--max-failures" "$d/out" || fail "--help"
[ "$(status "$PACK" --version)" -eq 0 ] && grep -q "lmr-pack" "$d/out" || fail "--version"
usage_is "lmr-pack: -o is required (see --help)" "$PACK" a.rec
usage_is "lmr-pack: unknown option '--x' (see --help)" "$PACK" --x -o s.lmdb a.rec
usage_is "lmr-pack: unknown option '--x' (see --help)" "$PACK" --x=3 -o s.lmdb a.rec
usage_is "lmr-pack: unknown option '-z' (see --help)" "$PACK" -z -o s.lmdb a.rec
usage_is "lmr-pack: option '--format' needs a value (see --help)" "$PACK" -o s.lmdb a.rec --format
usage_is "lmr-pack: --format: 'tar' is not lmdb or hdf5 (see --help)" "$PACK" --format tar -o x.lmdb a.rec
usage_is "lmr-pack: --from-videolt needs --labels F.lst (see --help)" "$PACK" --from-videolt feats -o x.lmdb
usage_is "lmr-pack: --info needs at least one SHARD (see --help)" "$PACK" --info
usage_is "lmr-pack: no input: give F.rec files, - for stdin, --from-npy DIR, --from-hdf5 F or --from-videolt DIR (see --help)" "$PACK" -o x.lmdb
usage_is "lmr-pack: --from-npy needs --manifest M.csv (see --help)" "$PACK" --from-npy feats -o x.lmdb
usage_is "lmr-pack: --manifest goes with --from-npy (see --help)" "$PACK" --manifest m.csv -o x.lmdb a.rec
usage_is "lmr-pack: --manifest goes with --from-npy (see --help)" "$PACK" --from-hdf5 f.h5 --manifest m.csv -o x.lmdb
usage_is "lmr-pack: --from-npy, --from-hdf5 and --from-videolt are separate runs (see --help)" \
    "$PACK" --from-npy feats --manifest m.csv --from-hdf5 f.h5 -o x.lmdb
usage_is "lmr-pack: --h5-ids goes with --from-hdf5 (see --help)" "$PACK" --from-npy f --manifest m.csv --h5-ids x -o x.lmdb
usage_is "lmr-pack: --labels goes with --from-videolt (see --help)" "$PACK" --from-npy f --manifest m.csv --labels l -o x.lmdb
usage_is "lmr-pack: --backbone goes with --from-npy, --from-hdf5 or --from-videolt (see --help)" \
    "$PACK" --backbone vit -o x.lmdb a.rec
usage_is "lmr-pack: --class-names goes with --from-npy or --from-hdf5 (VideoLT: --counts) (see --help)" \
    "$PACK" --from-videolt f --labels l --class-names c -o x.lmdb
usage_is "lmr-pack: --from-hdf5 takes no F.rec inputs ('a.rec') (see --help)" "$PACK" --from-hdf5 f.h5 -o x.lmdb a.rec
usage_is "lmr-pack: --from-npy: the folder name is empty (see --help)" "$PACK" --from-npy "" --manifest m.csv -o x.lmdb
[ "$(status "$PACK" --from-hdf5 f.h5 --backbone "a b" -o x.lmdb)" -eq 2 ] || fail "--backbone with a blank accepted"
[ "$(status "$PACK" --max-failures -1 -o x.lmdb a.rec)" -eq 2 ] || fail "--max-failures -1 accepted"
[ "$(status "$PACK" --max-failures 1.5 -o x.lmdb a.rec)" -eq 2 ] || fail "--max-failures 1.5 accepted"
[ "$(status "$PACK" --labels l.lst -o x.lmdb a.rec)" -eq 2 ] || fail "--labels without --from-videolt accepted"
[ ! -e x.lmdb ] && [ ! -e s.lmdb ] || fail "a usage error wrote a shard"

echo "test 2: never write over an input (same file, hard link, sidecar, --failures, VideoLT lists)"
"$GEN" "$d/a.rec" 100 --t 4 --d 32 --backbone pool
sum=$(cksum < "$d/a.rec")
ln "$d/a.rec" "$d/hard.rec"
[ "$(status "$PACK" -o "$d/a.rec" "$d/a.rec")" -eq 2 ] && grep -q "refusing to write over it" "$d/err" || fail "-o = input"
[ "$(status "$PACK" -o "$d/hard.rec" "$d/a.rec")" -eq 2 ] || fail "-o = a hard link of the input"
[ "$(status "$PACK" -o "$d/a.rec.meta.json" "$d/a.rec")" -eq 2 ] || fail "-o = the input's sidecar"
[ "$(status "$PACK" -o "$d/x.lmdb" --failures "$d/a.rec" "$d/a.rec")" -eq 2 ] || fail "--failures = input"
[ "$(status "$PACK" -o "$d/x.lmdb" --failures "$d/x.lmdb" "$d/a.rec")" -eq 2 ] || fail "--failures = -o"
printf 'v1 0\n' > "$d/l.lst"
[ "$(status "$PACK" --from-videolt "$d" --labels "$d/l.lst" -o "$d/l.lst")" -eq 2 ] || fail "-o = --labels"
[ "$(status "$PACK" --from-videolt "$d" --labels "$d/x.lst" --counts "$d/l.lst" -o "$d/l.lst")" -eq 2 ] ||
    fail "-o = --counts"
[ "$(cksum < "$d/a.rec")" = "$sum" ] && [ "$(cat "$d/l.lst")" = "v1 0" ] || fail "an input was changed"
[ ! -e "$d/x.lmdb" ] || fail "a refused run made a shard"
rm "$d/hard.rec"

echo "test 3: a truncated last record is one failed clip: exit 1 by default, the list names its offset"
size=$(stat -c %s "$d/a.rec")
head -c $((size - 10)) "$d/a.rec" > "$d/cut.rec"
cp "$d/a.rec.meta.json" "$d/cut.rec.meta.json"
[ "$(status "$PACK" -o "$d/s.lmdb" --split val --failures "$d/f.tsv" "$d/cut.rec")" -eq 1 ] || fail "a lost clip exits 0"
grep -q "truncated" "$d/err" && grep -q "99 written, 0 already present, 1 failed" "$d/err" || { cat "$d/err"; fail "summary"; }
last_err | grep -q "1 of 100 records failed, more than --max-failures 0 allows; the list is in $d/f.tsv" ||
    { cat "$d/err"; fail "last line"; }
[ "$(wc -l < "$d/f.tsv")" -eq 2 ] && grep -q "cut.rec	[0-9][0-9]*	truncated record" "$d/f.tsv" || { cat "$d/f.tsv"; fail "failures list"; }
[ "$(status "$PACK" -o "$d/s.lmdb" --split val --max-failures 1 "$d/cut.rec")" -eq 0 ] || { cat "$d/err"; fail "--max-failures 1"; }
last_err | grep -q "1 of 100 records failed, within --max-failures 1" || { cat "$d/err"; fail "within the limit"; }
[ "$(status "$PACK" -q -o "$d/s.lmdb" --split val --max-failures 0.01 "$d/cut.rec")" -eq 0 ] || fail "--max-failures 0.01"
[ "$(status "$PACK" -q -o "$d/s.lmdb" --split val --max-failures 0.009 "$d/cut.rec")" -eq 1 ] || fail "--max-failures 0.009"
"$PACK" --info --json "$d/s.lmdb" > "$d/info.json"
[ "$(json_get "$d/info.json" '["n_records"]')" = 99 ] || fail "n_records"
[ "$(json_get "$d/info.json" '["backbone"]')" = pool ] || fail "backbone from the sidecar"
[ "$(json_get "$d/info.json" '["dataset"]')" = synthetic ] || fail "dataset from the sidecar"
[ "$(json_get "$d/info.json" '["split"]')" = val ] || fail "--split override"
[ "$(json_get "$d/info.json" '["n_classes"]')" = 10 ] || fail "n_classes"
[ "$(json_get "$d/info.json" '["class_groups"][0]')" = head ] || fail "class groups"
"$PACK" --info "$d/s.lmdb" | grep -q "records       99" || fail "--info text"
[ "$(status "$PACK" -o "$d/s.lmdb" "$d/a.rec")" -eq 0 ] && grep -q "1 written, 99 already present, 0 failed" "$d/err" ||
    { cat "$d/err"; fail "resume"; }

echo "test 4: a bad payload is one failed clip; a record that breaks the stream stops that input"
"$LMR_PYTHON" - "$d/a.rec" "$d" <<'PY'
import struct, sys
b = open(sys.argv[1], "rb").read()
offs, off = [], 0
while off < len(b):
    offs.append(off)
    idl, nl, st = struct.unpack_from("<H", b, off + 56)[0], struct.unpack_from("<H", b, off + 14)[0], struct.unpack_from("<Q", b, off + 40)[0]
    off += 58 + idl + 4 * nl + st
c = bytearray(b); c[offs[31 + 1] - 1] ^= 0xFF          # last payload byte of record 31
open(sys.argv[2] + "/pay.rec", "wb").write(c)
c = bytearray(b); c[offs[50] + 41] ^= 0x40             # stored size of record 50: the stream breaks
open(sys.argv[2] + "/mid.rec", "wb").write(c)
open(sys.argv[2] + "/mid_offset", "w").write(str(offs[50]))
PY
[ "$(status "$PACK" -o "$d/pay.lmdb" --failures "$d/pay.tsv" "$d/pay.rec")" -eq 1 ] || fail "bad payload exits 0"
grep -q "clip0000031" "$d/err" && grep -q "99 written" "$d/err" || { cat "$d/err"; fail "bad payload: message or count"; }
grep -q "^clip0000031	" "$d/pay.tsv" || { cat "$d/pay.tsv"; fail "bad payload: failures list"; }
"$GEN" "$d/g.rec" 20 --t 4 --d 32 --prefix good --backbone pool
[ "$(status "$PACK" -o "$d/mid.lmdb" --max-failures 100 "$d/mid.rec" "$d/g.rec")" -eq 1 ] ||
    { cat "$d/err"; fail "a broken stream exits 0 under --max-failures"; }
grep -q "mid.rec: offset $(cat "$d/mid_offset"): .*the rest of .*mid.rec is not read" "$d/err" ||
    { cat "$d/err"; fail "broken stream message"; }
last_err | grep -q "1 input stopped at a corrupt record" || { cat "$d/err"; fail "broken stream last line"; }
[ "$("$PACK" --info --json "$d/mid.lmdb" | "$LMR_PYTHON" -c 'import json,sys; print(json.load(sys.stdin)["n_records"])')" = 70 ] ||
    fail "the records before the break and the next input are not all stored"

echo "test 5: shapes and backbones are never mixed; the message names the file and clip"
"$GEN" "$d/b.rec" 5 --t 4 --d 16 --prefix other
[ "$(status "$PACK" -o "$d/s.lmdb" "$d/b.rec")" -eq 1 ] || fail "mixed D accepted"
grep -q "b.rec" "$d/err" && grep -q "other0000000" "$d/err" || { cat "$d/err"; fail "mismatch message"; }
"$GEN" "$d/c.rec" 5 --t 4 --d 32 --prefix third --backbone resnet50
[ "$(status "$PACK" -o "$d/s.lmdb" "$d/c.rec")" -eq 1 ] || fail "mixed backbone accepted"
grep -q "resnet50" "$d/err" || { cat "$d/err"; fail "backbone message"; }
[ "$(status "$PACK" -o "$d/n.lmdb" "$d/a.rec" "$d/c.rec")" -eq 1 ] || fail "two sidecars of different backbones"
grep -q "c.rec" "$d/err" || { cat "$d/err"; fail "sidecar conflict message"; }
[ ! -e "$d/n.lmdb" ] || fail "a refused run left a shard"

echo "test 6: the stream's metadata record: provenance, class names and mode, through a file and a pipe"
meta='{"dataset":"epic","split":"train","mode":"test","frames":4,"size":0,"backbone":"pool","weights_checksum":"00112233aabbccdd","n_classes":3,"class_names":["open","close","take"]}'
"$GEN" "$d/m.rec" 30 --t 4 --d 32 --classes 3 --meta "$meta"
"$GEN" - 30 --t 4 --d 32 --classes 3 --meta "$meta" | "$PACK" -q -o "$d/pipe.lmdb" - || fail "pack of a piped stream"
for s in m pipe; do
    [ $s = m ] && "$PACK" -q -o "$d/m.lmdb" "$d/m.rec"
    "$PACK" --info --json "$d/$s.lmdb" > "$d/mi.json"
    [ "$(json_get "$d/mi.json" '["n_records"]')" = 30 ] || fail "$s: the metadata record was stored as a clip"
    [ "$(json_get "$d/mi.json" '["dataset"]')" = epic ] && [ "$(json_get "$d/mi.json" '["mode"]')" = test ] &&
        [ "$(json_get "$d/mi.json" '["weights_checksum"]')" = 00112233aabbccdd ] || fail "$s: provenance"
    [ "$(json_get "$d/mi.json" '["class_names"]')" = "['open', 'close', 'take']" ] || fail "$s: class names"
    "$PACK" --info "$d/$s.lmdb" > "$d/mi.txt"
    grep -q "^mode          test" "$d/mi.txt" && grep -q "^     1 .* close$" "$d/mi.txt" || { cat "$d/mi.txt"; fail "$s: --info text"; }
    "$PACK" -q --verify "$d/$s.lmdb" || fail "$s: --verify"
done
"$PACK" -q -o "$d/ms.lmdb" --split val "$d/m.rec"
"$PACK" --info --json "$d/ms.lmdb" > "$d/mi.json"
[ "$(json_get "$d/mi.json" '["split"]')" = val ] || fail "--split does not override the metadata record"
cp "$d/m.rec" "$d/m2.rec"
printf '{"backbone": "resnet50", "weights_checksum": "00112233aabbccdd"}\n' > "$d/m2.rec.meta.json"
[ "$(status "$PACK" -o "$d/m2.lmdb" "$d/m2.rec")" -eq 1 ] || fail "a sidecar that disagrees with its stream"
grep -q "metadata record says backbone pool" "$d/err" && [ ! -e "$d/m2.lmdb" ] || { cat "$d/err"; fail "sidecar vs stream message"; }
"$GEN" "$d/m3.rec" 5 --t 4 --d 32 --prefix late --meta '{"backbone":"resnet50","weights_checksum":"ffff"}'
[ "$(cat "$d/m.rec" "$d/m3.rec" | status "$PACK" -o "$d/m3.lmdb" -)" -eq 1 ] || fail "a joined stream of two backbones"
grep -q "backbone resnet50 (weights ffff) differs" "$d/err" || { cat "$d/err"; fail "joined streams message"; }

echo "test 7: empty inputs make no shard and exit 1"
: > "$d/empty.rec"
[ "$(status "$PACK" -o "$d/e.lmdb" "$d/empty.rec")" -eq 1 ] || fail "an empty stream exits 0"
grep -q "no records in $d/empty.rec" "$d/err" && [ ! -e "$d/e.lmdb" ] && [ ! -e "$d/e.lmdb-lock" ] ||
    { cat "$d/err"; ls "$d"; fail "empty stream: message, or a shard left"; }
[ "$(status "$PACK" -o "$d/e.lmdb" - < /dev/null)" -eq 1 ] && grep -q "no records in <stdin>" "$d/err" || fail "empty stdin"
"$GEN" "$d/onlymeta.rec" 0 --meta "$meta"
[ "$(status "$PACK" --format hdf5 -o "$d/e.h5" "$d/onlymeta.rec")" -eq 1 ] && [ ! -e "$d/e.h5" ] || fail "a stream of metadata only"
[ "$(status "$PACK" -o "$d/s.lmdb" "$d/a.rec" "$d/empty.rec")" -eq 1 ] || fail "an empty input among others"
grep -q "0 written, 100 already present" "$d/err" || { cat "$d/err"; fail "the other input was not read"; }

echo "test 8: stdin; --verify names every bad record, and ids that are not their key"
"$GEN" - 50 --t 4 --d 32 --prefix pipe | "$PACK" -q -o "$d/p.lmdb" - || fail "pack from stdin"
[ "$(status "$PACK" --verify "$d/p.lmdb")" -eq 0 ] && grep -q "verified 50 records" "$d/out" || fail "--verify"
cp "$d/p.lmdb" "$d/k.lmdb"
"$LMR_PYTHON" - "$d/p.lmdb" "$d/k.lmdb" <<'PY'
import lmdb, sys
env = lmdb.open(sys.argv[1], subdir=False)
with env.begin(write=True) as txn:
    for key in (b"pipe0000031", b"pipe0000040"):
        v = bytearray(txn.get(key))
        v[-1] ^= 0xFF
        txn.put(key, bytes(v))
env = lmdb.open(sys.argv[2], subdir=False)
with env.begin(write=True) as txn:
    txn.put(b"pipe0000045x", txn.get(b"pipe0000045"))  # one record under a second key
    txn.put(b"zzz", txn.get(b"pipe0000010"))            # and one under another key only
    txn.delete(b"pipe0000010")
PY
[ "$(status "$PACK" --verify --threads 2 "$d/p.lmdb")" -eq 1 ] || fail "--verify passed a corrupt shard"
grep -q "record 31: .*pipe0000031" "$d/err" && grep -q "record 40: .*pipe0000040" "$d/err" ||
    { cat "$d/err"; fail "--verify does not name every bad record"; }
grep -q "2 of 50 records are unreadable or bad" "$d/err" || { cat "$d/err"; fail "--verify count"; }
last_err | grep -q "1 of 1 shard failed, the first is $d/p.lmdb" || { cat "$d/err"; fail "--verify last line"; }
[ "$(status "$PACK" --verify "$d/k.lmdb")" -eq 1 ] || fail "--verify passed ids that are not their keys"
grep -q "pipe0000045" "$d/err" && grep -q "pipe0000010\|zzz" "$d/err" || { cat "$d/err"; fail "key != id"; }
last_err | grep -q "the first is $d/k.lmdb" || { cat "$d/err"; fail "key != id: last line"; }

echo "test 9: HDF5; --info and --verify of unrelated shards check each one on its own"
[ "$(status "$PACK" --format hdf5 -o "$d/s.h5" "$d/a.rec")" -eq 0 ] || { cat "$d/err"; fail "hdf5 pack"; }
[ "$(status "$PACK" --verify "$d/s.h5")" -eq 0 ] || { cat "$d/err"; fail "hdf5 verify"; }
"$GEN" "$d/o.rec" 20 --t 4 --d 16 --views 2 --prefix extra
"$PACK" -q -o "$d/o.lmdb" "$d/o.rec"
[ "$(status "$PACK" --verify "$d/s.h5" "$d/o.lmdb")" -eq 0 ] || { cat "$d/err"; fail "--verify of shards of other dims"; }
grep -q "s.h5: verified 100 records" "$d/out" && grep -q "o.lmdb: verified 20 records" "$d/out" || { cat "$d/out"; fail "per-shard verify"; }
[ "$(status "$PACK" --info "$d/s.h5" "$d/o.lmdb")" -eq 0 ] || { cat "$d/err"; fail "--info of shards of other dims"; }
grep -q "records       100" "$d/out" && grep -q "records       20" "$d/out" || { cat "$d/out"; fail "per-shard info"; }
"$PACK" --info --json "$d/s.h5" "$d/o.lmdb" > "$d/two.json"
[ "$(json_get "$d/two.json" '[1]["dims"][0]')" = 2 ] && [ "$(json_get "$d/two.json" '[0]["n_records"]')" = 100 ] ||
    fail "--info --json of two shards"
[ "$(status "$PACK" --verify "$d/s.h5" "$d/p.lmdb" "$d/o.lmdb")" -eq 1 ] || fail "a bad shard among good ones"
grep -q "o.lmdb: verified 20 records" "$d/out" || fail "the shard after the bad one was not verified"
last_err | grep -q "1 of 3 shards failed, the first is $d/p.lmdb" || { cat "$d/err"; fail "several shards: last line"; }
printf 'not a shard' > "$d/junk.lmdb"
[ "$(status "$PACK" --info "$d/o.lmdb" "$d/junk.lmdb")" -eq 1 ] && last_err | grep -q "the first is $d/junk.lmdb" ||
    { cat "$d/err"; fail "--info of an unreadable shard"; }

echo "test 10: VideoLT: a resumed import continues across dtypes; 100% failed is exit 1"
mkdir "$d/vlt"
"$LMR_PYTHON" - "$d/vlt" <<'PY'
import numpy as np, os, sys
out = sys.argv[1]
os.makedirs(out + "/feats")
rng = np.random.default_rng(3)
for i in range(5):  # v_0 is the only f16 file
    a = rng.standard_normal((4 + i, 8)).astype("<f2" if i == 0 else "<f4")
    np.save("%s/feats/v_%d.npy" % (out, i), a)
open(out + "/train.lst", "w").write("".join("v_%d %d\n" % (i, i % 2) for i in range(5)))
PY
mv "$d/vlt/feats/v_0.npy" "$d/vlt/v_0.npy"
[ "$(status "$PACK" --from-videolt "$d/vlt/feats/" --labels "$d/vlt/train.lst" -o "$d/vlt.lmdb")" -eq 1 ] ||
    fail "a missing file exits 0"
grep -q "feats/v_0.npy" "$d/err" && ! grep -q "//" "$d/err" || { cat "$d/err"; fail "missing file message"; }
mv "$d/vlt/v_0.npy" "$d/vlt/feats/v_0.npy"
[ "$(status "$PACK" --from-videolt "$d/vlt/feats" --labels "$d/vlt/train.lst" -o "$d/vlt.lmdb")" -eq 0 ] ||
    { cat "$d/err"; fail "the resumed import (f16 file into an f32 shard) failed"; }
grep -q "1 written, 4 already present, 0 failed" "$d/err" && grep -q "1 .npy file was converted from f16 to f32" "$d/err" ||
    { cat "$d/err"; fail "resume across dtypes"; }
mv "$d/vlt/feats" "$d/vlt/gone"
[ "$(status "$PACK" --from-videolt "$d/vlt/feats" --labels "$d/vlt/train.lst" -o "$d/vlt.lmdb")" -eq 1 ] ||
    fail "every file missing exits 0"
last_err | grep -q "5 of 5 clips failed" || { cat "$d/err"; fail "all missing: last line"; }
[ "$(status "$PACK" --from-videolt "$d/vlt/gone" --labels "$d/vlt/train.lst" --dtype f16 -o "$d/vlt.lmdb")" -eq 1 ] &&
    grep -q "holds f32 features" "$d/err" || { cat "$d/err"; fail "--dtype against the shard's"; }
mv "$d/vlt/gone" "$d/vlt/feats"
"$LMR_PYTHON" -c "import numpy as np; a = np.ones((4, 8), '<f4'); a[2, 3] = 1e6; np.save('$d/vlt/feats/v_1.npy', a)"
[ "$(status "$PACK" --from-videolt "$d/vlt/feats" --labels "$d/vlt/train.lst" --dtype f16 --max-failures 1 -o "$d/v16.lmdb")" -eq 0 ] ||
    { cat "$d/err"; fail "--dtype f16"; }
grep -q "v_1.npy: 1 of 32 values are NaN or Inf after conversion to f16 (first at row 2, column 3)" "$d/err" &&
    grep -q "4 written, 0 already present, 1 failed" "$d/err" || { cat "$d/err"; fail "an f32 value beyond f16's range"; }
printf 'Class a x 2\nClass b -1 z\n' > "$d/vlt/bad-counts.lst"
[ "$(status "$PACK" --from-videolt "$d/vlt/feats" --labels "$d/vlt/train.lst" --counts "$d/vlt/bad-counts.lst" -o "$d/v2.lmdb")" -eq 1 ] &&
    grep -q "none of its 2 lines could be read" "$d/err" || { cat "$d/err"; fail "a count file without one good line"; }
echo "all checks passed"
