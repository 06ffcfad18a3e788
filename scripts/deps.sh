#!/usr/bin/env bash
# Install the Debian packages lmr needs that are missing, and only those.
#   scripts/deps.sh          build + run dependencies
#   scripts/deps.sh --test   also the test tools (python3-h5py, python3-lmdb, numpy, Open MPI, ...),
#                            and .venv-test/: a venv over Debian's python (its torch, numpy) with
#                            transformers from PyPI, for the VideoMAE reference test
set -euo pipefail

# transformers for tests/videomae_hf.py. Debian's python refuses pip installs, so it goes into a
# venv that still sees Debian's torch 1.13; 4.46.3 is a release that runs on that torch. Quiet when
# already there; without PyPI the test is skipped with the reason, and nothing here fails.
TRANSFORMERS_PIN=transformers==4.46.3
test_venv() {
  local root venv log
  root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
  venv=${LMR_TEST_VENV:-$root/.venv-test}
  log=/tmp/lmr-deps-venv.log
  if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c 'import importlib.metadata as m; m.version("transformers")' 2>/dev/null; then
    return 0
  fi
  if ! /usr/bin/python3 -m venv --system-site-packages "$venv" >"$log" 2>&1; then
    echo "deps: cannot make $venv (python3-venv?); the VideoMAE reference test will be skipped; see $log" >&2
    return 0
  fi
  if ! "$venv/bin/pip" install -q --disable-pip-version-check "$TRANSFORMERS_PIN" >>"$log" 2>&1; then
    echo "deps: pip could not install $TRANSFORMERS_PIN into $venv (no PyPI?); the VideoMAE reference test" \
         "will be skipped; see $log" >&2
    return 0
  fi
  echo "deps: $TRANSFORMERS_PIN installed into $venv"
}

pkgs=(pkg-config cmake make gcc ffmpeg libavformat-dev libavcodec-dev libswscale-dev libavutil-dev
      libhdf5-dev libdeflate-dev liblmdb-dev libzstd-dev libcsv-dev libjansson-dev libopenblas-dev libxxhash-dev
      libcairo2-dev python3 python3-numpy)
if [ "${1:-}" = "--test" ]; then
  pkgs+=(python3-h5py python3-lmdb python3-numpy python3-sklearn openmpi-bin libopenmpi-dev
         valgrind lmdb-utils python3-torch python3-torchvision python3-zstandard
         python3-venv python3-pip python3-setuptools)
fi

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  if [ "${1:-}" = "--test" ]; then test_venv; fi
  exit 0
fi

echo "deps: installing ${missing[*]}"
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
    SUDO=sudo
  else
    echo "deps: missing packages and not root; run as root: apt-get install ${missing[*]}" >&2
    exit 1
  fi
else
  SUDO=
fi
export DEBIAN_FRONTEND=noninteractive
if ! $SUDO apt-get update -qq >/tmp/lmr-deps.log 2>&1 ||
   ! $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >>/tmp/lmr-deps.log 2>&1; then
  echo "deps: apt-get could not install ${missing[*]} (no network or no such package?); see /tmp/lmr-deps.log" >&2
  tail -5 /tmp/lmr-deps.log >&2
  exit 1
fi
echo "deps: done"
if [ "${1:-}" = "--test" ]; then test_venv; fi
