#!/bin/bash
# The long-tail comparison's speed, in one run:
#  (a) every stage-1 method's samples/s next to ce's (lmr-train only, one shard in memory, same
#      threads, the methods taking turns, best of REPEAT each), as a ratio table;
#  (b) the whole comparison of scripts/pipelines/compare.mk (METHODS, SEEDS, every run evaluated,
#      the summary table and figure) on a VideoLT-sized head (D=2048, C=1004, CLIPS long-tailed
#      clips, features preloaded): its wall time, and that of the same runs in PyTorch eager
#      (bench/compare_torch.py: same head, losses, AdamW, schedule, batch, epochs), and the ratio.
# usage: bench/compare.sh [BIN_DIR]
#   knobs: CLIPS=50000 EPOCHS=1 SEEDS="1 2 3" METHODS="(compare.mk's default)" THREADS=2 REPEAT=3
#          RATE_CLIPS=10000 RATE_EPOCHS=2 DIM=2048 CLASSES=1004 HIDDEN=512 BATCH=64
#   SMOKE=1: tiny sizes (D=256, C=50, 1500 clips, two seeds), to check the script end to end.
set -euo pipefail
BIN=${1:-build/bin}
PY=/usr/bin/python3
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
if [ "${SMOKE:-0}" = 1 ]; then
    : "${CLIPS:=1500}" "${RATE_CLIPS:=1500}" "${DIM:=256}" "${CLASSES:=50}" "${HIDDEN:=64}" "${SEEDS:=1 2}"
    : "${REPEAT:=1}" "${RATE_EPOCHS:=1}"
fi
CLIPS=${CLIPS:-50000}
EPOCHS=${EPOCHS:-1}
SEEDS=${SEEDS:-1 2 3}
THREADS=${THREADS:-2}
REPEAT=${REPEAT:-3}
RATE_CLIPS=${RATE_CLIPS:-10000}
RATE_EPOCHS=${RATE_EPOCHS:-2}
DIM=${DIM:-2048}
CLASSES=${CLASSES:-1004}
HIDDEN=${HIDDEN:-512}
BATCH=${BATCH:-64}
STAGE1="ce la cb focal ldam-drw eql srs cbs mixup"
METHODS=${METHODS:-$STAGE1 lmr crt lws lmr-mix-only lmr-recon-only ce+tau-norm ce+la ce+ncm}
[ -x "$BIN/lmr-train" ] && [ -x "$BIN/lmr-eval" ] || { echo "bench/compare.sh: $BIN/lmr-train or lmr-eval not built" >&2; exit 1; }
$PY -c "import torch, lmdb" 2>/dev/null || { echo "bench/compare.sh: needs python3-torch and python3-lmdb" >&2; exit 1; }
BIN=$(cd "$BIN" && pwd)
DIR=$(mktemp -d)
trap 'rm -rf "$DIR"' EXIT
echo "load average at the start: $(cut -d' ' -f1-3 /proc/loadavg) ($(nproc) cores)"

echo "== making shards (f16, T=1, D=$DIM, C=$CLASSES, imbalance 100; validation: 5 clips a class)"
$PY "$HERE/compare_torch.py" make-shards "$DIR/rate.lmdb" "$DIR/rate_val.lmdb" --clips "$RATE_CLIPS" \
    --dim "$DIM" --classes "$CLASSES" --val-per-class 1
$PY "$HERE/compare_torch.py" make-shards "$DIR/train.lmdb" "$DIR/val.lmdb" --clips "$CLIPS" --dim "$DIM" \
    --classes "$CLASSES"

# (a) stage-1 samples/s (the trainer's own rate of its last epoch, from --log)
rate() { # method
    rm -f "$DIR/rate.safetensors"
    "$BIN/lmr-train" --stage init --method "$1" --train "$DIR/rate.lmdb" --preload --hidden "$HIDDEN" \
        --batch "$BATCH" --epochs "$RATE_EPOCHS" --threads "$THREADS" --quiet --log "$DIR/rate.jsonl" \
        --out "$DIR/rate.safetensors" >/dev/null 2>"$DIR/err.txt" || { cat "$DIR/err.txt" >&2; exit 1; }
    $PY -c "import json,sys; print(json.loads(open(sys.argv[1]).read().splitlines()[-1])['samples_per_s'])" \
        "$DIR/rate.jsonl"
}
declare -A BEST
for m in $STAGE1; do BEST[$m]=0; done
for i in $(seq "$REPEAT"); do
    for m in $STAGE1; do
        r=$(rate "$m")
        BEST[$m]=$($PY -c "import sys; print(max(map(float, sys.argv[1:])))" "$r" "${BEST[$m]}")
    done
done
printf "\n(a) stage-1 samples/s, lmr-train, D=%s H=%s C=%s, %s clips, batch %s, %s threads, best of %s\n" \
    "$DIM" "$HIDDEN" "$CLASSES" "$RATE_CLIPS" "$BATCH" "$THREADS" "$REPEAT"
printf "%-10s %12s %12s\n" method samples/s "ce / method"
for m in $STAGE1; do
    r=$($PY -c "import sys; print(float(sys.argv[1]) / float(sys.argv[2]))" "${BEST[ce]}" "${BEST[$m]}")
    printf "%-10s %12.0f %11.2fx%s\n" "$m" "${BEST[$m]}" "$r" \
        "$($PY -c "import sys; print('  (over 1.2x)' if float(sys.argv[1]) > 1.2 else '')" "$r")"
done
echo "target: every method within 1.20x of ce"

# (b) the whole comparison. PyTorch gets the better thread set-up of a short probe (one ce epoch
# on the rate shard): its own THREADS (OpenMP) or one OpenMP thread and THREADS OpenBLAS threads.
echo
echo "== (b) the comparison: $(echo "$METHODS" | wc -w) methods x $(echo "$SEEDS" | wc -w) seeds, $CLIPS clips, $EPOCHS epoch(s) per stage"
probe() { # OPENBLAS_NUM_THREADS torch-threads
    env ${1:+OPENBLAS_NUM_THREADS=$1} "$PY" "$HERE/compare_torch.py" run "$DIR/rate.lmdb" "$DIR/rate_val.lmdb" \
        --threads "$2" --methods ce --seeds 1 --epochs 1 --hidden "$HIDDEN" --batch "$BATCH" 2>/dev/null |
        $PY -c "import json,sys; print(json.load(sys.stdin)['wall_s'])"
}
p_omp=$(probe "" "$THREADS")
p_blas=$(probe "$THREADS" 1)
if $PY -c "import sys; sys.exit(float(sys.argv[1]) > float(sys.argv[2]))" "$p_omp" "$p_blas"; then
    TORCH=(env "$PY" "$HERE/compare_torch.py" --threads "$THREADS"); SETUP="$THREADS torch threads"
else
    TORCH=(env OPENBLAS_NUM_THREADS="$THREADS" "$PY" "$HERE/compare_torch.py" --threads 1)
    SETUP="1 torch thread, $THREADS OpenBLAS threads"
fi
echo "PyTorch thread probe (one ce epoch, $RATE_CLIPS clips): ${p_omp}s with $THREADS torch threads, ${p_blas}s with 1 + $THREADS OpenBLAS"
echo "load average before lmr: $(cut -d' ' -f1-3 /proc/loadavg)"
t0=$(date +%s.%N)
make -s -f "$ROOT/scripts/pipelines/compare.mk" BIN="$BIN" TRAIN="$DIR/train.lmdb" VAL="$DIR/val.lmdb" \
    OUT="$DIR/lmr" METHODS="$METHODS" SEEDS="$SEEDS" EPOCHS_INIT="$EPOCHS" EPOCHS_FT="$EPOCHS" \
    THREADS="$THREADS" HIDDEN="$HIDDEN" BATCH="$BATCH" INIT_ARGS=--preload FT_ARGS=--preload \
    >"$DIR/lmr.txt" 2>&1 || { cat "$DIR/lmr.txt" >&2; exit 1; }
t1=$(date +%s.%N)
L=$($PY -c "import sys; print(float(sys.argv[2]) - float(sys.argv[1]))" "$t0" "$t1")
grep -E '^\|' "$DIR/lmr.txt" | head -40 || true
echo "load average before PyTorch: $(cut -d' ' -f1-3 /proc/loadavg) (PyTorch: $SETUP)"
"${TORCH[@]}" run "$DIR/train.lmdb" "$DIR/val.lmdb" \
    --methods "$METHODS" --seeds "$SEEDS" --epochs "$EPOCHS" --hidden "$HIDDEN" --batch "$BATCH" \
    >"$DIR/torch.json" 2>"$DIR/torch.txt" || { cat "$DIR/torch.txt" >&2; exit 1; }
sed 's/^/  PyTorch /' "$DIR/torch.txt"
T=$($PY -c "import json,sys; print(json.load(open(sys.argv[1]))['wall_s'])" "$DIR/torch.json")
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
printf "\n%-58s %10s %10s %7s\n" "whole comparison, wall seconds ($THREADS threads)" lmr PyTorch ratio
printf "%-58s %10.1f %10.1f %6.2fx\n" "$(echo "$METHODS" | wc -w) methods x $(echo "$SEEDS" | wc -w) seeds, D=$DIM C=$CLASSES, $CLIPS clips, $EPOCHS ep" \
    "$L" "$T" "$($PY -c "import sys; print(float(sys.argv[2]) / float(sys.argv[1]))" "$L" "$T")"
echo "lmr: make -f compare.mk, every run its own process reading the shard (--preload), evaluations,"
echo "     summary table and figure; PyTorch: one process, features read once, the same trainings and"
echo "     average-class-accuracy evaluations (no table or figure). target >= 2x"
