#!/bin/bash
# The one command for a GPU machine: the GPU tests (ctest label gpu: the CUDA trainer against the
# cpu one, cuDNN ResNet against the CPU one and torchvision, NCCL between two ranks),
# bench/train-gpu.sh (batch 512, f32 and TF32) and bench/backbone.sh (resnet50, f32 and f16), each
# under its own time limit, the whole run under 8 minutes. Writes run.log (everything) and
# figures.json (GPU, driver and CUDA versions, each test's result, each rate) to OUT_DIR, or to
# $OUT, or to out/device-run.
#
# It runs from the bundle of scripts/device-bundle.sh (device/lmr-device, or device/lmr-device.tar.xz
# unpacked to a temporary folder), or from a CUDA build folder given with BUILD=. cuBLAS, cuDNN and
# NCCL are not in the bundle: they are looked up in the PyTorch install (torch/lib and the nvidia-*
# packages' lib folders) and in the loader's cache, never at an assumed path.
# usage: scripts/device-run.sh [OUT_DIR]
#   env: BUNDLE (folder or .tar.xz), BUILD (a build folder instead of a bundle), LMR_PYTHON (python3
#        with torch; default: the first python3 on PATH that imports torch), BUDGET_S (480)
set -uo pipefail
T_START=$(date +%s)
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUTD=${1:-${OUT:-$ROOT/out/device-run}}
mkdir -p "$OUTD" || exit 1
OUTD=$(cd "$OUTD" && pwd)
LOG=$OUTD/run.log
FIG=$OUTD/figures.txt
RES=$OUTD/results.txt
: >"$LOG"
: >"$FIG"
: >"$RES"
BUDGET_S=${BUDGET_S:-480}

log() { echo "$*" | tee -a "$LOG"; }
fig() { echo "$1 $2" >>"$FIG"; }
left() { echo $((BUDGET_S - ($(date +%s) - T_START))); }
# step NAME LIMIT_S CMD...: run with a time limit (never past the run's budget), output to the log
step() {
    local name=$1 lim=$2 rest
    shift 2
    rest=$(($(left) - 15))
    [ "$lim" -le "$rest" ] || lim=$rest
    if [ "$lim" -lt 10 ]; then
        log "== $name: not run, the run's time budget is spent"
        echo "$name notrun 0" >>"$RES"
        return 0
    fi
    log "== $name (limit ${lim} s)"
    local t0 rc
    t0=$(date +%s)
    timeout -k 5 "$lim" "$@" >>"$LOG" 2>&1
    rc=$?
    local st=pass
    case $rc in 0) ;; 77) st=skip ;; 124 | 137) st=timeout ;; *) st=fail ;; esac
    log "-- $name: $st (exit $rc, $(($(date +%s) - t0)) s)"
    echo "$name $st $rc" >>"$RES"
    return 0
}

# --- Python with torch (it also unpacks the bundle where xz is missing) ---------------------------
PY=${LMR_PYTHON:-}
if [ -z "$PY" ]; then
    for c in $(type -ap python3 python) /usr/bin/python3; do
        "$c" -c "import torch" 2>/dev/null && PY=$c && break
    done
fi
[ -n "$PY" ] || { log "device-run.sh: no python with torch found"; PY=python3; }
export LMR_PYTHON=$PY
# --- the programs: a bundle (unpacked here if need be) or a build folder ------------------------
if [ -n "${BUILD:-}" ]; then
    B=$(cd "$BUILD" && pwd)
else
    BUNDLE=${BUNDLE:-}
    if [ -z "$BUNDLE" ]; then
        for c in "$ROOT/device/lmr-device" "$ROOT/device/lmr-device.tar.xz"; do
            [ -e "$c" ] && BUNDLE=$c && break
        done
    fi
    [ -n "$BUNDLE" ] || { log "device-run.sh: no bundle (run scripts/device-bundle.sh first, carry device/)"; exit 1; }
    if [ -f "$BUNDLE" ]; then
        TMPB=$(mktemp -d)
        trap 'rm -rf "$TMPB"' EXIT
        tar -C "$TMPB" -xJf "$BUNDLE" 2>/dev/null ||
            "$PY" -c "import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2])" "$BUNDLE" "$TMPB" ||
            { log "device-run.sh: cannot unpack $BUNDLE"; exit 1; }
        B=$TMPB/lmr-device
    else
        B=$(cd "$BUNDLE" && pwd)
    fi
fi
[ -x "$B/bin/lmr-train" ] || { log "device-run.sh: $B/bin/lmr-train missing"; exit 1; }
log "== python: $PY"
log "== lmr device run $(date -u +%Y-%m-%dT%H:%M:%SZ), programs from $B"
[ -f "$B/BUILD_INFO" ] && sed 's/^/   /' "$B/BUILD_INFO" | tee -a "$LOG"

# the folders holding cuBLAS / cuDNN / NCCL, as this machine has them: torch/lib, the lib folders of
# the nvidia-* packages next to it, then the loader's cache
LIBDIRS=$("$PY" - <<'EOF' 2>>"$LOG"
import glob, os, subprocess, sys
want = ["libcublas.so.13", "libcublasLt.so.13", "libcudnn.so.9", "libnccl.so.2"]
roots = []
try:
    import torch
    roots.append(os.path.join(os.path.dirname(torch.__file__), "lib"))
except Exception as e:
    print(f"torch: {e}", file=sys.stderr)
try:
    import nvidia
    for p in getattr(nvidia, "__path__", []):
        roots += sorted(glob.glob(os.path.join(p, "**", "lib"), recursive=True))
except Exception:
    pass
found = {}
for r in roots:
    for w in want:
        if w not in found and os.path.exists(os.path.join(r, w)):
            found[w] = r
try:  # the loader's cache: what a system install would give
    cache = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True).stdout
    for line in cache.splitlines():
        name = line.strip().split(" ")[0]
        if name in want and name not in found and "=>" in line:
            found[name] = os.path.dirname(line.split("=>")[1].strip())
except Exception:
    pass
for w in want:
    print(f"{w} {found.get(w, '-')}", file=sys.stderr)
print(":".join(dict.fromkeys(found.values())))
EOF
)
export LD_LIBRARY_PATH=${LIBDIRS}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
log "== CUDA libraries from: ${LIBDIRS:-none found}"
grep -E '^lib(cublas|cublasLt|cudnn|nccl)\.so' "$LOG" | sed 's/^/   /'

# --- the machine ---------------------------------------------------------------------------------
GPU_NAME=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)
DRIVER=$(nvidia-smi --query-gpu=driver_version --format=csv,noheader 2>/dev/null | head -1)
DRIVER_CUDA=$(nvidia-smi 2>/dev/null | sed -n 's/.*CUDA Version: *\([0-9.]*\).*/\1/p' | head -1)
N_GPU=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU')
TORCH_INFO=$("$PY" -c "import torch; print(torch.__version__, torch.version.cuda, torch.backends.cudnn.version(), \
'.'.join(map(str, torch.cuda.nccl.version())) if torch.cuda.is_available() else '-', torch.cuda.is_available())" 2>>"$LOG")
log "== GPU: ${GPU_NAME:-none} x ${N_GPU}, driver ${DRIVER:-?} (CUDA ${DRIVER_CUDA:-?}); torch/CUDA/cuDNN/NCCL/usable: ${TORCH_INFO:-?}"
nvidia-smi >>"$LOG" 2>&1

# every program loads (ldd: nothing missing, nothing too new for this glibc)
log "== can the programs load here?"
LOAD_OK=1
for p in "$B"/bin/* "$B"/tests/*; do
    [ -x "$p" ] && [ -f "$p" ] || continue
    head -c4 "$p" | grep -q ELF || continue
    bad=$(ldd "$p" 2>&1 | grep -E 'not found|version .* not found')
    if [ -n "$bad" ]; then
        LOAD_OK=0
        log "   ${p#$B/}: $(echo "$bad" | tr '\n' ';')"
    fi
done
[ $LOAD_OK = 1 ] && log "   all load"
ldd "$B/bin/lmr-train" >>"$LOG" 2>&1

# --- 1. the GPU tests, from the bundle's test list ----------------------------------------------
if [ -f "$B/tests.json" ]; then
    GPU_TESTS=$("$PY" -c "import json,sys; print(' '.join(t['name'] for t in json.load(open(sys.argv[1]))['tests'] \
if 'gpu' in t['labels'] and t['present']))" "$B/tests.json")
    for t in $GPU_TESTS; do
        step "test $t" 150 "$PY" "$B/run_test.py" "$B" "$ROOT" "$PY" "$t"
    done
elif command -v ctest >/dev/null && [ -f "$B/CTestTestfile.cmake" ]; then
    step "ctest -L gpu" 300 ctest --test-dir "$B" -L gpu --output-on-failure
fi

# --- 2. training samples/s against PyTorch eager (D=2048, C=1004, batch 512) ---------------------
step "bench/train-gpu.sh" 200 env SKIP_RC=77 FIGURES="$FIG" CLIPS=32768 EPOCHS=2 BATCHES=512 PRECS="f32 tf32" EPOCH_CLIPS=0 \
    bash "$ROOT/bench/train-gpu.sh" "$B/bin"

# --- 3. backbone frames/s: resnet50 f32 and f16 against PyTorch (channels-last, AMP) --------------
step "bench/backbone.sh" 120 env SKIP_RC=77 FIGURES="$FIG" GPU_ONLY=1 GPU_FRAMES=128 REPEAT=3 sh "$ROOT/bench/backbone.sh" \
    "$B/bin" resnet50

# --- figures.json ------------------------------------------------------------------------------
"$PY" - "$LOG" "$FIG" "$RES" "$OUTD/figures.json" "$GPU_NAME" "$DRIVER" "$DRIVER_CUDA" "$N_GPU" "${TORCH_INFO:-}" \
    "$B" "$(($(date +%s) - T_START))" <<'EOF'
import json, os, re, sys
log, fig, res, out, gpu, driver, dcuda, ngpu, torch_info, b, secs = sys.argv[1:12]
text = open(log, errors="replace").read()
j = {"gpu": gpu, "gpus": int(ngpu or 0), "driver": driver, "driver_cuda": dcuda, "seconds": int(secs)}
ti = torch_info.split()
if len(ti) >= 5:
    j.update(torch=ti[0], torch_cuda=ti[1], cudnn=ti[2], nccl=ti[3], torch_sees_gpu=ti[4] == "True")
bi = os.path.join(b, "BUILD_INFO")
if os.path.exists(bi):
    j["build"] = open(bi).read().strip().splitlines()
j["steps"] = [dict(zip(("name", "result", "exit"), l.rsplit(" ", 2))) for l in open(res).read().splitlines()]
figs = {}
for l in open(fig).read().splitlines():
    k, _, v = l.partition(" ")
    try:
        figs[k] = float(v)
    except ValueError:
        figs[k] = v
# from the test output: CPU-vs-GPU agreement of the trainer's checkpoints, cuDNN vs CPU, speeds
for m in re.finditer(r"(\S+) vs (\S+): max \|gpu - cpu\| (\S+) \((\d+) out of tolerance\)", text):
    figs[f"trainer.{m.group(1).split('_')[0]}.max_abs_gpu_cpu"] = float(m.group(3))
for m in re.finditer(r"^\s+(.+?)\s+max \|gpu - cpu\| (\S+)", text, re.M):
    figs[f"ops.{m.group(1).strip().replace(' ', '_')}.max_abs_gpu_cpu"] = float(m.group(2))
for m in re.finditer(r"(resnet\d+) (\d+) x (\d+)x(\d+): max\|gpu - cpu\| / max\|cpu\| = (\S+) \(f32\), (\S+) \(f16\)", text):
    k = f"resnet.{m.group(1)}.{m.group(3)}x{m.group(4)}"
    figs[k + ".rel_gpu_cpu_f32"] = float(m.group(5))
    figs[k + ".rel_gpu_cpu_f16"] = float(m.group(6))
for m in re.finditer(r"resnet50 (cuda(?::f16)?), batch 64, 224x224: (\d+) frames/s", text):
    figs[f"resnet.test_speed.{m.group(1)}_fps"] = float(m.group(2))
for m in re.finditer(r"skipped: NCCL does not pair two ranks on one GPU: (.*)", text):
    figs["nccl.note"] = m.group(1).strip()
j["figures"] = figs
json.dump(j, open(out, "w"), indent=1)
bad = [s for s in j["steps"] if s["result"] in ("fail", "timeout")]
print(f"figures.json: {len(figs)} figures, {len(j['steps'])} steps, {len(bad)} failed")
EOF
log "== done in $(($(date +%s) - T_START)) s: $OUTD/run.log, $OUTD/figures.json"
grep -E ' (fail|timeout) ' "$RES" >/dev/null && exit 1
[ $LOAD_OK = 1 ] || exit 1
exit 0
