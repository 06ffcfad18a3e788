#!/bin/bash
# lmr-train against the same training in PyTorch (bench/train_torch.py: same head, losses, AdamW,
# cosine schedule, LMR), batch 128, same thread count, in one run:
#   end to end from one LMDB shard (PyTorch: an lmdb Dataset + DataLoader), both stages;
#   features in memory at D=2048 H=512 C=1004 (lmr: --preload) and at D=256 H=256 C=100;
# and the OpenBLAS sgemm peak next to lmr's GEMM rate. Prints samples/s and the ratios.
# Each case runs REPEAT times, the two tools taking turns, and keeps each tool's best: a shared
# machine's speed drifts over seconds, and the best of interleaved runs is the steadier figure.
# usage: bench/train.sh [BIN_DIR]   (THREADS=2 EPOCHS=2 CLIPS=5120 REPEAT=3 to change the sizes; the
# small case runs 5x the epochs, its steps being ~20x shorter)
set -euo pipefail
BIN=${1:-build/bin}
PY=/usr/bin/python3
HERE=$(cd "$(dirname "$0")" && pwd)
THREADS=${THREADS:-2}
EPOCHS=${EPOCHS:-2}
CLIPS=${CLIPS:-5120}
REPEAT=${REPEAT:-3}
B=128
[ -x "$BIN/lmr-train" ] || { echo "bench/train.sh: $BIN/lmr-train not built" >&2; exit 1; }
$PY -c "import torch, lmdb" 2>/dev/null || { echo "bench/train.sh: needs python3-torch and python3-lmdb" >&2; exit 1; }
DIR=$(mktemp -d)
trap 'rm -rf "$DIR"' EXIT

echo "== making shards (f16, T=4, raw payloads, imbalance 100)"
$PY "$HERE/train_torch.py" make-shard "$DIR/large.lmdb" --clips "$CLIPS" --dim 2048 --classes 1004 --frames 4
$PY "$HERE/train_torch.py" make-shard "$DIR/small.lmdb" --clips $((CLIPS * 2)) --dim 256 --classes 100 --frames 4

# lmr-train samples/s of one run (the trainer's own rate, from --log)
lmr() { # epochs stage shard hidden extra...
    local epochs=$1 stage=$2 shard=$3 hidden=$4
    shift 4
    "$BIN/lmr-train" --stage "$stage" --train "$shard" --hidden "$hidden" --batch $B --epochs "$epochs" \
        --threads "$THREADS" --quiet --log "$DIR/log.jsonl" "$@" >/dev/null 2>"$DIR/err.txt" ||
        { cat "$DIR/err.txt" >&2; exit 1; }
    $PY -c "import json,sys; print(json.loads(open(sys.argv[1]).read().splitlines()[-1])['samples_per_s'])" \
        "$DIR/log.jsonl"
}
# PyTorch (Debian's, on OpenBLAS) gets the better of two thread set-ups: torch's own THREADS
# (OpenMP) beside OpenBLAS's default pool, or one OpenMP thread and THREADS OpenBLAS threads.
torch() {
    local a b
    a=$($PY "$HERE/train_torch.py" "$@" --threads "$THREADS" --batch $B)
    b=$(OPENBLAS_NUM_THREADS=$THREADS $PY "$HERE/train_torch.py" "$@" --threads 1 --batch $B)
    $PY -c "import sys; print(max(map(float, sys.argv[1:])))" "$a" "$b"
}
# pair NAME LMR_ARGS... -- TORCH_ARGS...: best of REPEAT turns each; sets L, T and L_LOG (the log
# line of lmr's best run)
pair() {
    local name=$1 i a b
    shift
    local -a la=() ta=()
    while [ "$1" != "--" ]; do la+=("$1"); shift; done
    shift
    ta=("$@")
    L=0 T=0 L_LOG="{}"
    for i in $(seq "$REPEAT"); do
        a=$(lmr "${la[@]}")
        if $PY -c "import sys; sys.exit(float(sys.argv[1]) <= float(sys.argv[2]))" "$a" "$L"; then
            L=$a
            L_LOG=$(tail -1 "$DIR/log.jsonl")
        fi
        b=$(torch "${ta[@]}")
        T=$($PY -c "import sys; print(max(map(float, sys.argv[1:])))" "$b" "$T")
    done
    row "$name" "$L" "$T"
}
ratio() { $PY -c "import sys; print('%.2fx' % (float(sys.argv[1]) / float(sys.argv[2])))" "$1" "$2"; }
steps=$((CLIPS / B * EPOCHS))
SMALL_EPOCHS=$((EPOCHS * 5))
small_steps=$((CLIPS * 2 / B * SMALL_EPOCHS))

echo "== sgemm peak (OpenBLAS, 2048^3, $THREADS threads)"
PEAK=$($PY "$HERE/train_torch.py" sgemm --threads "$THREADS")
SHAPE=$($PY "$HERE/train_torch.py" sgemm --threads "$THREADS" --shape $B,512,2048)
echo "sgemm peak (first reading): $PEAK GFLOP/s at 2048^3, $SHAPE GFLOP/s at the model's ${B}x512x2048"

printf "\n%-40s %12s %12s %8s\n" "case (batch $B, $THREADS threads)" "lmr-train" "PyTorch" "ratio"
row() { printf "%-40s %12.0f %12.0f %8s\n" "$1" "$2" "$3" "$(ratio "$2" "$3")"; }

# end to end from the LMDB shard
pair "LMDB e2e, init, D=2048 H=512 C=1004" "$EPOCHS" init "$DIR/large.lmdb" 512 --out "$DIR/init.safetensors" \
    -- lmdb "$DIR/large.lmdb" --hidden 512 --stage init --steps "$steps"
pair "LMDB e2e, lmr, D=2048 H=512 C=1004" "$EPOCHS" lmr "$DIR/large.lmdb" 512 --init "$DIR/init.safetensors" \
    --out "$DIR/lmr.safetensors" -- lmdb "$DIR/large.lmdb" --hidden 512 --stage lmr --steps "$steps"

# features in memory
pair "in memory, init, D=2048 H=512 C=1004" "$EPOCHS" init "$DIR/large.lmdb" 512 --preload --out "$DIR/init.safetensors" \
    -- mem --dim 2048 --hidden 512 --classes 1004 --stage init --steps "$steps"
L_MEM=$L T_MEM=$T GEMM_LOG=$L_LOG   # lmr's own GEMM rate and share of the step (cpu backend)
pair "in memory, lmr, D=2048 H=512 C=1004" "$EPOCHS" lmr "$DIR/large.lmdb" 512 --preload --init "$DIR/init.safetensors" \
    --out "$DIR/lmr.safetensors" -- mem --dim 2048 --hidden 512 --classes 1004 --stage lmr --steps "$steps"
pair "in memory, init, D=256 H=256 C=100" "$SMALL_EPOCHS" init "$DIR/small.lmdb" 256 --preload \
    --out "$DIR/small.safetensors" -- mem --dim 256 --hidden 256 --classes 100 --stage init --steps "$small_steps"
pair "in memory, lmr, D=256 H=256 C=100" "$SMALL_EPOCHS" lmr "$DIR/small.lmdb" 256 --preload \
    --init "$DIR/small.safetensors" --out "$DIR/small_lmr.safetensors" \
    -- mem --dim 256 --hidden 256 --classes 100 --stage lmr --steps "$small_steps"

# the sgemm peak again, after the runs: the better of the two readings
PEAK=$($PY -c "import sys; print(max(map(float, sys.argv[1:])))" "$PEAK" "$($PY "$HERE/train_torch.py" sgemm --threads "$THREADS")")
SHAPE=$($PY -c "import sys; print(max(map(float, sys.argv[1:])))" "$SHAPE" \
    "$($PY "$HERE/train_torch.py" sgemm --threads "$THREADS" --shape $B,512,2048)")

# GEMM rate: lmr times its GEMM calls (gemm_gflops in its log: GEMM flops / time inside
# OpenBLAS, per op the longest thread's); both tools also as the model's flops / whole step time
# (6 (D H + H C) per sample, what the textbook backward does; lmr's CPU backward skips the
# (B,D) input gradient, 2 B D H of them, so this is an effective rate for lmr).
$PY - "$L_MEM" "$T_MEM" "$PEAK" "$SHAPE" "$GEMM_LOG" <<'EOF'
import json, sys
lmr, pt, peak, shape = map(float, sys.argv[1:5])
log = json.loads(sys.argv[5])
flops = 6 * (2048 * 512 + 512 * 1004)
print(f"\nGEMMs at D=2048 H=512 C=1004, sgemm peak {peak:.1f} GFLOP/s (2048^3):")
if "gemm_gflops" in log:
    g = log["gemm_gflops"]
    print(f"  lmr's GEMM ops run at {g:.1f} GFLOP/s = {100 * g / peak:.0f}% of the peak "
          f"({100 * g / shape:.0f}% of sgemm alone at {shape:.1f} on the model's first shape); "
          f"they take {100 * log['gemm_share']:.0f}% of lmr's step time")
print(f"  model flops / whole step time: lmr {lmr * flops / 1e9:.1f} ({100 * lmr * flops / 1e9 / peak:.0f}% of the peak), "
      f"PyTorch {pt * flops / 1e9:.1f} ({100 * pt * flops / 1e9 / peak:.0f}%)")
EOF
echo "targets: e2e >= 2x, large in memory >= 1.15x, small >= 3x, lmr GEMMs >= 85% of the peak"
