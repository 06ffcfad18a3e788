#!/bin/sh
# Pack the same clip records with lmr-pack and with the Python a user would write today
# (python3-lmdb with a pickled dict per key, one transaction per 1000 puts; h5py with one
# dataset per clip), in one run, and print records/s and the ratio; then lmr-pack --verify and
# a full read of each shard in GB/s of payload.
# usage: bench/pack.sh BUILD/bin [N_RECORDS]   (env: PYTHON, default /usr/bin/python3)
set -eu
BIN=${1:?usage: bench/pack.sh BUILD/bin [N]}
N=${2:-8000}
PY=${PYTHON:-/usr/bin/python3}
GEN="$BIN/../tests/gen_records"
SRC=$(cd "$(dirname "$0")/.." && pwd)
[ -x "$GEN" ] || { echo "bench/pack.sh: $GEN not built (cmake --build ... --target gen_records)" >&2; exit 1; }
d=$(mktemp -d "${TMPDIR:-/tmp}/lmr_bench_pack_XXXXXX")
trap 'rm -rf "$d"' EXIT

now() { date +%s.%N; }
rate() { echo "$1 $2 $3" | awk '{ printf "%.0f", $1 / ($3 - $2) }'; }

# Features as lmr-extract writes them for a ResNet-50 at 16 frames: f16 [1, 16, 1024] per clip.
# Stored raw (zstd level 0) so that the Python peers can read the same stream with numpy alone.
"$GEN" "$d/in.rec" "$N" --t 16 --d 1024 --level 0 --classes 100
mb=$(du -m "$d/in.rec" | cut -f1)
echo "input: $N records, $mb MB (.rec stream, raw f16 payloads); $(nproc) cores"
sync

sync; t0=$(now); "$BIN/lmr-pack" -q -o "$d/lmr.lmdb" "$d/in.rec"; t1=$(now)
lmr_lmdb=$(rate "$N" "$t0" "$t1")
sync; t0=$(now); "$BIN/lmr-pack" -q --zstd-level 1 -o "$d/lmrz.lmdb" "$d/in.rec"; t1=$(now)
lmr_lmdbz=$(rate "$N" "$t0" "$t1")
sync; t0=$(now); "$BIN/lmr-pack" -q --format hdf5 -o "$d/lmr.h5" "$d/in.rec"; t1=$(now)
lmr_h5=$(rate "$N" "$t0" "$t1")

cat > "$d/peer.py" <<'PY'
import pickle, sys, time
sys.path.insert(0, sys.argv[1] + "/scripts")
import lmr_record
mode, rec, out = sys.argv[2:5]
t0 = time.time()
n = 0
if mode == "lmdb":
    import lmdb
    env = lmdb.open(out, subdir=False, map_size=1 << 40)
    txn = env.begin(write=True)
    for r in lmr_record.read_stream(rec):
        txn.put(r["id"].encode(), pickle.dumps({"features": r["data"], "labels": r["labels"]}, protocol=4))
        n += 1
        if n % 1000 == 0:
            txn.commit()
            txn = env.begin(write=True)
    txn.commit()
    env.close()
else:
    import h5py
    with h5py.File(out, "w") as f:
        for r in lmr_record.read_stream(rec):
            ds = f.create_dataset(r["id"], data=r["data"], compression="gzip", compression_opts=4, shuffle=True)
            ds.attrs["labels"] = r["labels"]
            n += 1
print(f"{n / (time.time() - t0):.0f}")
PY
sync
py_lmdb=$("$PY" "$d/peer.py" "$SRC" lmdb "$d/in.rec" "$d/py.lmdb")
sync
py_h5=$("$PY" "$d/peer.py" "$SRC" hdf5 "$d/in.rec" "$d/py.h5")

echo
printf "%-44s %12s %8s\n" "pack" "records/s" "vs peer"
printf "%-44s %12s %8s\n" "python3-lmdb, pickle per key, txn per 1000" "$py_lmdb" "1.0x"
printf "%-44s %12s %8s\n" "lmr-pack --format lmdb" "$lmr_lmdb" "$(echo "$lmr_lmdb $py_lmdb" | awk '{printf "%.1fx", $1/$2}')"
printf "%-44s %12s %8s\n" "lmr-pack --format lmdb --zstd-level 1" "$lmr_lmdbz" "$(echo "$lmr_lmdbz $py_lmdb" | awk '{printf "%.1fx", $1/$2}')"
printf "%-44s %12s %8s\n" "h5py, dataset per clip, shuffle+gzip 4" "$py_h5" "1.0x"
printf "%-44s %12s %8s\n" "lmr-pack --format hdf5 (shuffle+deflate 4)" "$lmr_h5" "$(echo "$lmr_h5 $py_h5" | awk '{printf "%.1fx", $1/$2}')"
echo
echo "sizes: lmr.lmdb $(du -m "$d/lmr.lmdb" | cut -f1) MB, lmrz.lmdb $(du -m "$d/lmrz.lmdb" | cut -f1) MB, lmr.h5 $(du -m "$d/lmr.h5" | cut -f1) MB, py.lmdb $(du -m "$d/py.lmdb" | cut -f1) MB, py.h5 $(du -m "$d/py.h5" | cut -f1) MB"
echo
echo "verify (every record, every checksum; 2 threads):"
for s in lmr.lmdb lmrz.lmdb lmr.h5; do
    printf "  %-10s " "$s"
    "$BIN/lmr-pack" --verify --threads 2 "$d/$s" | sed 's/^lmr-pack: //'
done
