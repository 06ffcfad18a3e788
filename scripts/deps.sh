#!/usr/bin/env bash
# Install the Debian packages lmr needs that are missing, and only those.
#   scripts/deps.sh          build + run dependencies
#   scripts/deps.sh --test   also the test tools (python3-h5py, python3-lmdb, numpy, Open MPI, ...)
set -euo pipefail

pkgs=(pkg-config cmake make gcc ffmpeg libavformat-dev libavcodec-dev libswscale-dev libavutil-dev
      libhdf5-dev liblmdb-dev libzstd-dev libcsv-dev libjansson-dev libopenblas-dev libxxhash-dev
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
[ ${#missing[@]} -eq 0 ] && exit 0

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
