#!/bin/bash
# lmr-train --device cuda against the same training in PyTorch eager on the same GPU, in one run:
#   samples/s of both stages (init; lmr with the bank, masks and mixing) at D=2048 H=512 C=1004,
#   batch 256 and 1024, full f32 and TF32 (lmr-train --tf32 / torch allow_tf32), features in host
#   memory on both sides, each batch copied to the GPU per step (lmr-train --preload; PyTorch:
#   a CPU tensor indexed and .to("cuda")), plus PyTorch with the features resident on the GPU;
#   then one init epoch over a 1M-clip LMDB shard read through lmr-train's loader, to show the
#   loader keeps up with the GPU (epoch time next to the in-memory rate).
# Exits 0 (or $SKIP_RC) with a "skipped" line when there is no GPU or lmr was built without CUDA.
# usage: bench/train-gpu.sh [BIN_DIR]
#   env: CLIPS (65536, the in-memory shard), EPOCH_CLIPS (1000000; 0 skips the LMDB epoch), EPOCHS
#        (3), BATCHES ("256 1024"), PRECS ("f32 tf32"), KEEP_DIR (reuse the shards there), FIGURES (a
#        file: "key value" lines of every rate are appended to it), LMR_PYTHON (python3 with torch)
set -euo pipefail
BIN=${1:-build/bin}
HERE=$(cd "$(dirname "$0")" && pwd)
PY=${LMR_PYTHON:-/usr/bin/python3}
CLIPS=${CLIPS:-65536}
EPOCH_CLIPS=${EPOCH_CLIPS:-1000000}
EPOCHS=${EPOCHS:-3}
BATCHES=${BATCHES:-256 1024}
PRECS=${PRECS:-f32 tf32}
fig() { [ -z "${FIGURES:-}" ] || echo "$1 $2" >>"$FIGURES"; }
GEN="$BIN/../tests/gen_records"
D=2048 H=512 C=1004

skip() { echo "bench/train-gpu.sh: skipped: $*"; exit "${SKIP_RC:-0}"; }
[ -x "$BIN/lmr-train" ] && [ -x "$BIN/lmr-pack" ] || { echo "bench/train-gpu.sh: $BIN/lmr-train or lmr-pack not built" >&2; exit 1; }
[ -x "$GEN" ] || { echo "bench/train-gpu.sh: $GEN not built (cmake --build ... --target gen_records)" >&2; exit 1; }
command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L 2>/dev/null | grep -q '^GPU' || skip "no NVIDIA GPU here"
$PY -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null ||
    { echo "bench/train-gpu.sh: $PY cannot use torch on the GPU" >&2; exit 1; }

DIR=${KEEP_DIR:-$(mktemp -d)}
[ -n "${KEEP_DIR:-}" ] || trap 'rm -rf "$DIR"' EXIT
mkdir -p "$DIR"
shard() { # path clips: f16 features [1, 1, D], long-tailed labels over C classes, raw payloads
    [ -e "$1" ] && return 0
    "$GEN" - "$2" --d $D --classes $C --t 1 --dtype f16 --level 0 --seed 7 | "$BIN/lmr-pack" -o "$1" - >/dev/null
}
echo "== $(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | head -1)"
echo "== making a $CLIPS-clip shard (D=$D, C=$C, f16)"
shard "$DIR/mem.lmdb" "$CLIPS"

# one tiny cuda run: is this lmr built with CUDA, and does it see the GPU?
if ! "$BIN/lmr-train" --stage init --train "$DIR/mem.lmdb" --out "$DIR/init.safetensors" --hidden $H --batch 256 \
    --epochs 1 --stop-after 2 --device cuda --quiet 2>"$DIR/err.txt"; then
    skip "lmr-train --device cuda: $(tail -1 "$DIR/err.txt")"
fi

# lmr-train samples/s: the last epoch of --log (steady state; the first one carries the start-up)
lmr() { # stage batch extra...
    local stage=$1 b=$2
    shift 2
    local extra=()
    [ "$stage" = lmr ] && extra=(--init "$DIR/init.safetensors")
    "$BIN/lmr-train" --stage "$stage" --train "$DIR/mem.lmdb" --hidden $H --batch "$b" --epochs "$EPOCHS" --preload \
        --device cuda --quiet --out "$DIR/out.safetensors" --log "$DIR/log.jsonl" "${extra[@]}" "$@" 2>"$DIR/err.txt" ||
        { cat "$DIR/err.txt" >&2; exit 1; }
    $PY -c "import json,sys; e=json.loads(open(sys.argv[1]).read().splitlines()[-1]); \
print(int(sys.argv[2]) // int(sys.argv[3]) * int(sys.argv[3]) / e['seconds'])" "$DIR/log.jsonl" "$CLIPS" "$b"
}
torch() { $PY "$HERE/train_gpu_torch.py" --dim $D --hidden $H --classes $C "$@"; }
ratio() { $PY -c "import sys; print('%.2fx' % (float(sys.argv[1]) / float(sys.argv[2])))" "$1" "$2"; }

printf "\n%-30s %11s %11s %8s %14s\n" "samples/s (D=$D H=$H C=$C)" "lmr-train" "PyTorch" "ratio" "PyTorch on-GPU"
declare -A RATE
for b in $BATCHES; do
    for prec in $PRECS; do
        flag=()
        [ $prec = tf32 ] && flag=(--tf32)
        for stage in init lmr; do
            l=$(lmr $stage "$b" "${flag[@]}")
            steps=$((200 * 256 / b + 50))
            t=$(torch --stage $stage --batch "$b" --steps $steps --data host "${flag[@]}")
            g=$(torch --stage $stage --batch "$b" --steps $steps --data device "${flag[@]}")
            RATE[$stage-$b-$prec]=$l
            printf "%-30s %11.0f %11.0f %8s %14.0f\n" "$stage, batch $b, $prec" "$l" "$t" "$(ratio "$l" "$t")" "$g"
            fig "train.$stage.b$b.$prec.lmr_sps" "$l"
            fig "train.$stage.b$b.$prec.torch_host_sps" "$t"
            fig "train.$stage.b$b.$prec.torch_device_sps" "$g"
        done
    done
done

[ "$EPOCH_CLIPS" -gt 0 ] && [ -n "${RATE[init-1024-f32]:-}" ] || exit 0
echo
echo "== one init epoch over a $EPOCH_CLIPS-clip LMDB shard (batch 1024, f32, loader reading LMDB)"
t0=$(date +%s.%N)
shard "$DIR/epoch.lmdb" "$EPOCH_CLIPS"
echo "shard made in $($PY -c "import sys,time; print('%.0f s' % (time.time() - float(sys.argv[1])))" "$t0"), $(du -h "$DIR/epoch.lmdb" | cut -f1)"
"$BIN/lmr-train" --stage init --train "$DIR/epoch.lmdb" --hidden $H --batch 1024 --epochs 1 --device cuda --quiet \
    --out "$DIR/epoch.safetensors" --log "$DIR/epoch.jsonl" 2>"$DIR/err.txt" || { cat "$DIR/err.txt" >&2; exit 1; }
$PY - "$DIR/epoch.jsonl" "$EPOCH_CLIPS" "${RATE[init-1024-f32]}" <<'EOF'
import json, sys
e = json.loads(open(sys.argv[1]).read().splitlines()[-1])
n, mem = int(sys.argv[2]) // 1024 * 1024, float(sys.argv[3])
print(f"epoch: {e['seconds']:.1f} s = {n / e['seconds']:.0f} samples/s from LMDB; "
      f"in memory: {mem:.0f} samples/s, i.e. {n / mem:.1f} s of GPU work")
EOF
