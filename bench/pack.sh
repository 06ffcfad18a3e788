#!/bin/sh
# Pack the same clip records with lmr-pack and with the Python a user would write today
# (python3-lmdb with a pickled dict per key, one transaction per 1000 puts; h5py with one
# dataset per clip), in one run; print records/s (wall clock and per CPU second) and the ratios;
# then lmr-pack --verify of each shard in GB/s of payload.
# usage: bench/pack.sh BUILD/bin [N_RECORDS]   (env: PYTHON, default /usr/bin/python3; TMPDIR)
set -eu
BIN=${1:?usage: bench/pack.sh BUILD/bin [N]}
N=${2:-8000}
PY=${PYTHON:-/usr/bin/python3}
GEN="$BIN/../tests/gen_records"
SRC=$(cd "$(dirname "$0")/.." && pwd)
[ -x "$GEN" ] || { echo "bench/pack.sh: $GEN not built (cmake --build ... --target gen_records)" >&2; exit 1; }
[ -x /usr/bin/time ] || { echo "bench/pack.sh: needs /usr/bin/time (Debian package time)" >&2; exit 1; }
d=$(mktemp -d "${TMPDIR:-/tmp}/lmr_bench_pack_XXXXXX")
trap 'rm -rf "$d"' EXIT

# Features as lmr-extract writes them for a ResNet-50 at 16 frames: f16 [1, 16, 1024] per clip.
# Stored raw (zstd level 0) so that the Python peers can read the same stream with numpy alone.
"$GEN" "$d/in.rec" "$N" --t 16 --d 1024 --level 0 --classes 100
echo "input: $N records, $(du -m "$d/in.rec" | cut -f1) MB (.rec stream, raw f16 payloads); $(nproc) cores, load $(cut -d' ' -f1 /proc/loadavg)"

cat > "$d/peer.py" <<'PY'
import pickle, sys
sys.path.insert(0, sys.argv[1] + "/python")
from lmr import record as lmr_record
mode, rec, out = sys.argv[2:5]
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
PY

# measure NAME CMD...: prints "NAME wall_s cpu_s" into $d/times
measure() {
    name=$1; shift
    sync
    /usr/bin/time -f "$name %e %U %S" -a -o "$d/times" "$@"
}
measure py_lmdb "$PY" "$d/peer.py" "$SRC" lmdb "$d/in.rec" "$d/py.lmdb"
measure lmr_lmdb "$BIN/lmr-pack" -q -o "$d/lmr.lmdb" "$d/in.rec"
measure lmr_lmdbz "$BIN/lmr-pack" -q --zstd-level 1 -o "$d/lmrz.lmdb" "$d/in.rec"
measure py_h5 "$PY" "$d/peer.py" "$SRC" hdf5 "$d/in.rec" "$d/py.h5"
measure lmr_h5 "$BIN/lmr-pack" -q --format hdf5 -o "$d/lmr.h5" "$d/in.rec"

echo
awk -v n="$N" '
    { wall[$1] = $2; cpu[$1] = $3 + $4 }
    function row(label, k, peer) {
        printf "%-44s %10.0f %10.0f %7.1fx %7.1fx\n", label, n / wall[k], n / cpu[k], wall[peer] / wall[k], cpu[peer] / cpu[k]
    }
    END {
        printf "%-44s %10s %10s %8s %8s\n", "pack", "rec/s", "rec/cpu-s", "wall", "cpu"
        row("python3-lmdb, pickle per key, txn per 1000", "py_lmdb", "py_lmdb")
        row("lmr-pack --format lmdb", "lmr_lmdb", "py_lmdb")
        row("lmr-pack --format lmdb --zstd-level 1", "lmr_lmdbz", "py_lmdb")
        row("h5py, dataset per clip, shuffle+gzip 4", "py_h5", "py_h5")
        row("lmr-pack --format hdf5 (shuffle+deflate 4)", "lmr_h5", "py_h5")
    }' "$d/times"
echo
echo "sizes (MB): lmr.lmdb $(du -m "$d/lmr.lmdb" | cut -f1), lmrz.lmdb $(du -m "$d/lmrz.lmdb" | cut -f1), lmr.h5 $(du -m "$d/lmr.h5" | cut -f1), py.lmdb $(du -m "$d/py.lmdb" | cut -f1), py.h5 $(du -m "$d/py.h5" | cut -f1)"
echo
echo "verify (every record, every checksum; 2 threads):"
for s in lmr.lmdb lmrz.lmdb lmr.h5; do
    printf "  %-10s " "$s"
    "$BIN/lmr-pack" --verify --threads 2 "$d/$s" | sed 's/^lmr-pack: //'
done
