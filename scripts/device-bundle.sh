#!/bin/bash
# Build what a GPU machine needs to run scripts/device-run.sh, here, into device/ (git ignores it):
#   device/lmr-device.tar.xz  the bundle, one file to carry (under 60 MiB)
#   device/lmr-device/        the same, unpacked: bin/ (lmr-train, lmr-pack, lmr-eval), tests/ (test
#                             programs, gen_records, resnet_features), lib/ (every shared library they
#                             load that a bare image lacks), tests.json (the ctest list, paths relative)
#                             and run_test.py (runs one of them)
# The GPU machine cannot install packages and gets only the working tree plus what is carried, so:
#   - binaries carry RPATH $ORIGIN/../lib (DT_RPATH, which also serves the libraries' own needs);
#   - glibc (libc, libm, libpthread, libdl, librt, ld-linux) stays behind, as do cuBLAS, cuDNN and
#     NCCL: device-run.sh finds them in the machine's PyTorch install. The CUDA runtime (cudart,
#     under a megabyte) is carried, so the only CUDA need of the machine is a driver for CUDA 13;
#   - FFmpeg stays behind (its codec libraries alone are over 100 MiB): lmr-extract and the decoder
#     tests are left out, the rest links with --as-needed so nothing else asks for libavcodec.
# usage: scripts/device-bundle.sh [--no-build] [--arch 90] [--rehearse]   (nvcc from CUDA 13 on
#        PATH or in /usr/local/cuda); env JOBS (2)
#   --rehearse: then unpack the tarball into a fresh folder and, with LD_LIBRARY_PATH on its lib/
#   only, prove with ldd that every library but glibc and cuBLAS/cuDNN/NCCL resolves inside it,
#   and run the CPU tests (those not labelled gpu) from it; with unshare at hand, once more with
#   the system's copies of the bundled libraries covered by empty files.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=$ROOT/build-device
OUT=$ROOT/device
NAME=lmr-device
ARCH=90
BUILD_IT=1
REHEARSE=0
while [ $# -gt 0 ]; do
    case $1 in
    --no-build) BUILD_IT=0 ;;
    --arch) ARCH=${2:?--arch needs a value}; shift ;;
    --rehearse) REHEARSE=1 ;;
    -h | --help) sed -n '2,22p' "$0"; exit 0 ;;
    *) echo "device-bundle.sh: unknown argument $1" >&2; exit 2 ;;
    esac
    shift
done
LIMIT_MIB=60
die() { echo "device-bundle.sh: $*" >&2; exit 1; }

NVCC=$(command -v nvcc || true)
[ -n "$NVCC" ] || NVCC=/usr/local/cuda/bin/nvcc
[ -x "$NVCC" ] || die "nvcc not found (CUDA 13 toolkit)"

if [ $BUILD_IT = 1 ]; then
    # DT_RPATH (not RUNPATH): searched before LD_LIBRARY_PATH and for the libraries' own dependencies.
    # libstdc++ and libgcc (the CUDA host code's) linked in: this machine's need a newer glibc than
    # a PyTorch image may have.
    cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DLMR_CUDA=ON -DLMR_MPI=OFF -DLMR_SANITIZE=OFF \
        -DCMAKE_CUDA_COMPILER="$NVCC" -DCMAKE_CUDA_ARCHITECTURES="$ARCH" -DCMAKE_SKIP_BUILD_RPATH=ON \
        "-DCMAKE_EXE_LINKER_FLAGS=-static-libstdc++ -static-libgcc -Wl,--as-needed -Wl,--disable-new-dtags -Wl,-rpath,\$ORIGIN/../lib" >/dev/null
    cmake --build "$BUILD" -j"${JOBS:-2}"
fi
[ -x "$BUILD/bin/lmr-train" ] || die "$BUILD/bin/lmr-train not built"
grep -q 'LMR_CUDA:BOOL=ON' "$BUILD/CMakeCache.txt" || die "$BUILD was configured without CUDA"

STAGE=$OUT/$NAME
rm -rf "$STAGE" "$OUT/$NAME.tar.xz"
mkdir -p "$STAGE/bin" "$STAGE/tests" "$STAGE/lib"

# glibc and the dynamic loader: every image has them, and they must match each other
base_lib() {
    case $1 in
    libc.so.* | libm.so.* | libpthread.so.* | libdl.so.* | librt.so.* | libresolv.so.* | libutil.so.* | \
        ld-linux*.so.* | linux-vdso.so.*) return 0 ;;
    esac
    return 1
}
# the device's own copies (PyTorch's nvidia-* packages) and the driver
device_lib() {
    case $1 in
    libcublas.so.* | libcublasLt.so.* | libcudnn*.so.* | libnccl.so.* | libcuda.so.* | libnvidia-*) return 0 ;;
    esac
    return 1
}
needs_ffmpeg() { readelf -d "$1" 2>/dev/null | grep -q 'NEEDED.*\(libavcodec\|libavformat\|libswscale\)'; }

elfs=()
for f in "$BUILD"/bin/* "$BUILD"/tests/*; do
    [ -f "$f" ] && [ -x "$f" ] && head -c4 "$f" | grep -q ELF || continue
    if needs_ffmpeg "$f"; then
        echo "left out (needs FFmpeg): ${f#$BUILD/}"
        continue
    fi
    dst=$STAGE/${f#$BUILD/}
    cp "$f" "$dst"
    strip --strip-unneeded "$dst"
    elfs+=("$dst")
done

# the closure of shared libraries, as this machine resolves it, minus glibc and the device's own
missing=()
while read -r soname path; do
    base_lib "$soname" && continue
    device_lib "$soname" && continue
    if [ "$path" = "not" ]; then
        missing+=("$soname")
        continue
    fi
    cp -L "$path" "$STAGE/lib/$soname"
    strip --strip-unneeded "$STAGE/lib/$soname" 2>/dev/null || true
done < <(for e in "${elfs[@]}"; do ldd "$e"; done | awk '$2 == "=>" { print $1, $3 }' | sort -u)
[ ${#missing[@]} -eq 0 ] || die "unresolved here: ${missing[*]}"
# the libraries find each other through the binaries' DT_RPATH; give them $ORIGIN too when patchelf
# is at hand, for programs that dlopen them
if command -v patchelf >/dev/null; then
    for l in "$STAGE"/lib/*; do patchelf --set-rpath '$ORIGIN' "$l"; done
fi

# the test list, relocatable: ctest's own (commands, labels, environment, timeouts) with the build
# folder written @BUNDLE@, the source tree @SRC@ and Python @PYTHON@; device-run.sh runs it
(cd "$BUILD" && ctest --show-only=json-v1) >"$STAGE/ctest.raw.json"
python3 - "$STAGE/ctest.raw.json" "$STAGE/tests.json" "$BUILD" "$ROOT" "$STAGE" <<'EOF'
import json, os, sys
raw, out, build, src, stage = sys.argv[1:6]
py = None
tests = []
for t in json.load(open(raw))["tests"]:
    props = {p["name"]: p["value"] for p in t.get("properties", [])}
    env = {}
    for kv in props.get("ENVIRONMENT", []):
        k, _, v = kv.partition("=")
        env[k] = v
    py = py or env.get("LMR_PYTHON")
    def rel(s):
        s = s.replace(build, "@BUNDLE@").replace(src, "@SRC@")
        return s.replace(py, "@PYTHON@") if py and s == py else s
    cmd = [rel(c) for c in t.get("command", [])]
    # a test whose program is not in the bundle (FFmpeg) is listed as absent, so the runner says so
    prog = cmd[0] if cmd else ""
    present = not prog.startswith("@BUNDLE@/") or os.path.exists(prog.replace("@BUNDLE@", stage))
    # a C test that runs lmr-extract needs the decoder, which stays behind
    csrc = os.path.join(src, "tests", t["name"] + ".c")
    runs_extract = t["name"] == "demo_e2e" or \
        (os.path.exists(csrc) and "lmr-extract" in open(csrc, errors="replace").read())
    if runs_extract and not os.path.exists(os.path.join(stage, "bin", "lmr-extract")):
        present = False
    tests.append({
        "name": t["name"], "command": cmd, "labels": props.get("LABELS", []),
        "env": {k: rel(v) for k, v in env.items()},
        "timeout": props.get("TIMEOUT", 300), "skip_rc": props.get("SKIP_RETURN_CODE", 77),
        "present": present,
    })
json.dump({"tests": tests}, open(out, "w"), indent=1)
print(f"tests.json: {len(tests)} tests; left out with the decoder: {[t['name'] for t in tests if not t['present']]}")
EOF
rm "$STAGE/ctest.raw.json"
cat >"$STAGE/run_test.py" <<'EOF'
"""Run one test of tests.json, paths filled in, in a scratch folder; exit 77 when it skipped.
usage: run_test.py BUNDLE SRC PYTHON NAME"""
import json, os, subprocess, sys, tempfile
b, src, py, name = sys.argv[1:5]
t = {t["name"]: t for t in json.load(open(os.path.join(b, "tests.json")))["tests"]}[name]
fill = lambda s: s.replace("@BUNDLE@", b).replace("@SRC@", src).replace("@PYTHON@", py)
env = dict(os.environ)
env.update({k: fill(v) for k, v in t["env"].items()})
with tempfile.TemporaryDirectory() as d:
    rc = subprocess.call([fill(c) for c in t["command"]], env=env, cwd=d)
sys.exit(77 if rc == t["skip_rc"] else rc)
EOF
{
    echo "built $(date -u +%Y-%m-%dT%H:%MZ) from $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')"
    echo "nvcc: $("$NVCC" --version | tail -1)"
    echo "arch: sm_$ARCH"
    # the newest glibc each program needs with what it loads from the bundle (the device's must be as new)
    for e in "${elfs[@]}"; do
        libs=$(ldd "$e" | awk -v s="$STAGE/lib/" 'index($3, s) == 1 { print $3 }')
        v=$(for x in "$e" $libs; do objdump -T "$x" 2>/dev/null; done | grep -o 'GLIBC_2\.[0-9]*' | sort -uV | tail -1)
        echo "${v:-GLIBC_2.2.5} ${e#$STAGE/}"
    done | sort -V | awk '{ n[$1]++; last[$1] = $2 } END { for (v in n) printf "needs %s: %d programs (e.g. %s)\n", v, n[v], last[v] }' | sort -V
} >"$STAGE/BUILD_INFO"

tar -C "$OUT" -cf - "$NAME" | xz -T2 -9 >"$OUT/$NAME.tar.xz"
size=$(stat -c %s "$OUT/$NAME.tar.xz")
cat "$STAGE/BUILD_INFO"
echo "bundle: $OUT/$NAME.tar.xz $((size / 1024 / 1024)) MiB ($(du -sm "$STAGE" | cut -f1) MiB unpacked," \
    "$(ls "$STAGE/lib" | wc -l) libraries, ${#elfs[@]} programs)"
[ "$size" -le $((LIMIT_MIB * 1024 * 1024)) ] || die "bundle over $LIMIT_MIB MiB"
[ $REHEARSE = 1 ] || exit 0

# --- rehearsal: the bundle on its own ------------------------------------------------------------
set +e # tests fail and skip: counted below
R=$(mktemp -d)
trap 'rm -rf "$R"' EXIT
cp "$OUT/$NAME.tar.xz" "$R/" && tar -C "$R" -xJf "$R/$NAME.tar.xz"
RB=$(readlink -f "$R/$NAME")
echo "== rehearsal in $RB"
export LD_LIBRARY_PATH=$RB/lib
bad=0
for e in "$RB"/bin/* "$RB"/tests/*; do
    [ -f "$e" ] && head -c4 "$e" | grep -q ELF || continue
    while read -r soname path; do
        if base_lib "$soname" || device_lib "$soname"; then continue; fi
        path=$(readlink -f "$path")
        case $path in "$RB"/lib/*) ;; *) echo "  ${e#$RB/}: $soname -> $path (outside the bundle)"; bad=1 ;; esac
    done < <(ldd "$e" | awk '$2 == "=>" { print $1, $3 }')
done
[ $bad = 0 ] || die "rehearsal: libraries resolved outside the bundle"
echo "ldd: every library of $(ls "$RB"/bin "$RB"/tests | wc -l) programs but glibc and cuBLAS/cuDNN/NCCL resolves in $RB/lib"
ldd "$RB/bin/lmr-train"
TESTS=$(python3 -c "import json,sys; print(' '.join(t['name'] for t in json.load(open(sys.argv[1]))['tests'] \
if 'gpu' not in t['labels'] and t['present']))" "$RB/tests.json")
PYT=$(sed -n 's/^LMR_PYTHON:FILEPATH=//p' "$BUILD/CMakeCache.txt") # the python the tests were set up with
run_all() { # every test of $TESTS from the bundle; prints the failures' count last
    local fails=0 t rc st
    for t in $TESTS; do
        timeout -k 5 600 "$PYT" "$RB/run_test.py" "$RB" "$ROOT" "$PYT" "$t" >"$R/$t.log" 2>&1
        rc=$?
        case $rc in 0) st=passed ;; 77) st=skipped ;; *) st="FAILED ($rc)"; fails=$((fails + 1)) ;; esac
        echo "  $t: $st"
        [ $rc = 0 ] || [ $rc = 77 ] || tail -5 "$R/$t.log" | sed 's/^/      /'
    done
    echo "$fails"
}
out=$(run_all)
echo "$out" | sed '$d'
fails=$(echo "$out" | tail -1)
# again with the system's copies of every bundled library covered up
if command -v unshare >/dev/null && unshare -rm true 2>/dev/null; then
    hide=$(for l in "$RB"/lib/*; do n=$(basename "$l"); p=$(ldconfig -p | awk -v n="$n" '$1 == n { print $NF }'); \
        for q in $p; do readlink -f "$q"; done; done | sort -u)
    echo "== the same tests with $(echo "$hide" | wc -w) system libraries covered up"
    export -f run_all
    export HIDE="$hide" RB ROOT R PYT TESTS
    out=$(unshare -rm bash -c 'for f in $HIDE; do mount --bind /dev/null "$f"; done; run_all')
    echo "$out" | sed '$d'
    fails=$((fails + $(echo "$out" | tail -1)))
fi
[ $fails = 0 ] || die "rehearsal: $fails tests failed (logs were in $R)"
echo "rehearsal: the bundle runs on its own"
