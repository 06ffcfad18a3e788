#!/bin/sh
# Frames/s of lmr's CPU ResNet against PyTorch's on the same frames, weights and thread count; then,
# when there is a GPU, lmr's cuDNN ResNet (f32, f16) against PyTorch on the GPU (channels-last; f32,
# and AMP f16).
# usage: bench/backbone.sh BUILD/bin [MODEL] ; env: FRAMES (8), SIZE (224), THREADS (all cores),
#        REPEAT (3), GPU_FRAMES (64), GPU_ONLY (1: skip the CPU part; no GPU then exits $SKIP_RC), FIGURES (a file: "key value"
#        lines of the rates are appended to it), LMR_PYTHON (python3 with torch + torchvision)
set -eu
bin=${1:?usage: bench/backbone.sh BUILD/bin [resnet18|resnet50|resnet101]}
model=${2:-resnet50}
here=$(cd "$(dirname "$0")" && pwd)
py=${LMR_PYTHON:-python3}
driver="$bin/../tests/resnet_features"
frames=${FRAMES:-8}
size=${SIZE:-224}
threads=${THREADS:-$(nproc)}
repeat=${REPEAT:-3}
[ -x "$driver" ] || { echo "backbone.sh: $driver not built (cmake --build ... --target resnet_features)" >&2; exit 1; }
"$py" -c "import torch, torchvision" 2>/dev/null || { echo "backbone.sh: $py cannot import torch/torchvision" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$py" "$here/../scripts/export-torchvision-weights.py" "$model" "$tmp/w.safetensors" --random 0 >/dev/null
fig() { [ -z "${FIGURES:-}" ] || echo "$1 $2" >>"$FIGURES"; }
rate() { sed -n 's/.*: \([0-9.]*\) frames\/s.*/\1/p' | head -1; }
if [ "${GPU_ONLY:-0}" != 1 ]; then
"$py" -c "import numpy as np; np.random.default_rng(0).integers(0, 256, size=($frames, $size, $size, 3), dtype=np.uint8).tofile('$tmp/f.u8')"
echo "== $model, $frames frames of ${size}x${size}, $threads threads, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
lmr=$("$driver" --threads "$threads" --batch "$frames" --repeat "$repeat" "$model" "$tmp/w.safetensors" "$tmp/f.u8" \
      "$frames" "$size" "$size" "$tmp/out.f32")
echo "$lmr"
pt=$("$py" "$here/backbone_torch.py" "$model" "$tmp/w.safetensors" "$tmp/f.u8" "$frames" "$size" "$size" \
      "$threads" "$repeat" "$tmp/out.f32")
echo "$pt"
a=$(echo "$lmr" | sed -n 's/.*: \([0-9.]*\) frames\/s.*/\1/p')
b=$(echo "$pt" | sed -n 's/.*: \([0-9.]*\) frames\/s.*/\1/p' | head -1)
awk -v a="$a" -v b="$b" 'BEGIN { printf "lmr / torch = %.2fx\n", a / b }'
fig "backbone.${model}.cpu.lmr_fps" "$a"
fig "backbone.${model}.cpu.torch_fps" "$b"
fi

# Transformer backbones on the CPU, same threads: vit_b_16 per frame, videomae_b per 16-frame
# clip (transformers from .venv-test: scripts/deps.sh --test), with the sgemm share of lmr's time
# and its GFLOP/s against the sgemm peak. TRANSFORMERS=0 skips them.
if [ "${TRANSFORMERS:-1}" != 0 ]; then
    "$driver" --sgemm-peak "$threads"
    "$py" -c "import numpy as np; np.random.default_rng(2).integers(0, 256, size=(16, 224, 224, 3), dtype=np.uint8).tofile('$tmp/t.u8')"
    vpy=$py
    [ -x "$here/../.venv-test/bin/python" ] && vpy="$here/../.venv-test/bin/python"
    for tm in vit_b_16 videomae_b; do
        if [ "$tm" = vit_b_16 ]; then
            "$py" "$here/../scripts/export-torchvision-weights.py" vit_b_16 "$tmp/tw.safetensors" --random 0 >/dev/null
            tn=${VIT_FRAMES:-8} tpy=$py
        else
            "$py" "$here/../scripts/export-videomae-weights.py" "$tmp/tw.safetensors" --random 0 >/dev/null
            tn=16 tpy=$vpy
        fi
        echo "== $tm, $tn frames of 224x224, $threads threads"
        lmr=$("$driver" --threads "$threads" --repeat "$repeat" "$tm" "$tmp/tw.safetensors" "$tmp/t.u8" "$tn" 224 224 \
              "$tmp/tout.f32")
        echo "$lmr"
        if pt=$("$tpy" "$here/transformer_torch.py" "$tm" "$tmp/tw.safetensors" "$tmp/t.u8" "$tn" 224 224 "$threads" \
                "$repeat" "$tmp/tout.f32" 2>"$tmp/terr"); then
            echo "$pt"
            a=$(echo "$lmr" | sed -n 's/.*: \([0-9.]*\) frames\/s.*/\1/p')
            b=$(echo "$pt" | sed -n 's/.*: \([0-9.]*\) frames\/s.*/\1/p' | head -1)
            awk -v a="$a" -v b="$b" 'BEGIN { printf "lmr / torch = %.2fx\n", a / b }'
        else
            echo "torch side skipped: $(tail -1 "$tmp/terr")"
        fi
        rm -f "$tmp/tw.safetensors"
    done
fi

# GPU, when there is one: f32 (FMA math) and f16 (tensor cores), a larger batch
gpu_frames=${GPU_FRAMES:-64}
"$py" -c "import numpy as np; np.random.default_rng(1).integers(0, 256, size=($gpu_frames, $size, $size, 3), dtype=np.uint8).tofile('$tmp/g.u8')"
for dev in cuda cuda:f16; do
    if "$driver" --device "$dev" --batch "$gpu_frames" --repeat $((repeat * 3)) "$model" "$tmp/w.safetensors" "$tmp/g.u8" \
        "$gpu_frames" "$size" "$size" "$tmp/g.f32" 2>"$tmp/err" >"$tmp/gpu"; then
        cat "$tmp/gpu"
        prec=f32
        half=""
        [ "$dev" = cuda:f16 ] && prec=f16 && half=--half
        a=$(rate <"$tmp/gpu")
        # FLOPs per frame scale with the pixels: resnet50 is 8.18 GFLOP at 224x224
        [ "$model" = resnet50 ] && echo "$a" |
            awk -v s="$size" '{ printf "  = %.1f TFLOP/s (dense f16 peak: H100 SXM ~990, A100 ~312)\n", $1 * 8.18e-3 * s * s / 50176 }'
        fig "backbone.${model}.${prec}.lmr_fps" "$a"
        if "$py" "$here/backbone_torch.py" --device cuda $half "$model" "$tmp/w.safetensors" "$tmp/g.u8" "$gpu_frames" \
            "$size" "$size" "$threads" $((repeat * 3)) "$tmp/g.f32" >"$tmp/pt" 2>"$tmp/err"; then
            cat "$tmp/pt"
            b=$(rate <"$tmp/pt")
            awk -v a="$a" -v b="$b" -v p="$prec" 'BEGIN { printf "lmr / torch (%s) = %.2fx\n", p, a / b }'
            fig "backbone.${model}.${prec}.torch_fps" "$b"
            fig "backbone.${model}.${prec}.ratio" "$(awk -v a="$a" -v b="$b" 'BEGIN { printf "%.3f", a / b }')"
            fig "backbone.${model}.${prec}.torch_feature_diff" "$(sed -n 's/.*= \([0-9.e+-]*\)$/\1/p' "$tmp/pt" | tail -1)"
        else
            echo "torch $dev: failed: $(tail -1 "$tmp/err")"
        fi
    else
        echo "$dev: skipped ($(cat "$tmp/err"))"
        [ "${GPU_ONLY:-0}" = 1 ] && exit "${SKIP_RC:-0}"
        break
    fi
done
