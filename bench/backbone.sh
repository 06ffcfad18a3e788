#!/bin/sh
# Frames/s of lmr's CPU ResNet against PyTorch's on the same frames, weights and thread count.
# usage: bench/backbone.sh BUILD/bin [MODEL] ; env: FRAMES (8), SIZE (224), THREADS (all cores),
#        REPEAT (3), LMR_PYTHON (python3 with torch + torchvision)
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
