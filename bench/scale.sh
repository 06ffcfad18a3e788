#!/bin/bash
# Datasets larger than memory (not a test). For each size: pack a shard of CLIPS clips of small
# features (f16 [1, T, D]), then measure
#   open:   lmr-pack --info on a cold page cache (the shard's per-clip index, no record touched);
#   train:  lmr-train --stage init, EPOCHS epochs: samples/s of epoch 1 (from disk) and epoch 2
#           (from the cache of per-clip means, --cache-mb default), peak RSS;
#   nocache: the same with --cache-mb 0 (every epoch from the shard);
#   memory: the same with --preload (features in memory before the first step), the in-memory figure.
# The page cache the shard may use is limited when possible: a systemd scope with
# MemoryMax=LIMIT_MB (systemd-run --scope), else dropping the page cache before each run (root),
# else not at all; the output says which.
# usage: bench/scale.sh [BIN_DIR [GEN_RECORDS]]
#   env: SIZES="10000 1000000 3000000" D=256 T=4 EPOCHS=2 THREADS=2 LIMIT_MB=1024 DIR=/var/tmp
#        FORCE=1 to run although the machine is busy (load above 2.5); LIMIT_MODE=none to leave the
#        page cache alone (a dry run of the script)
set -euo pipefail
BIN=${1:-build/bin}
GEN=${2:-$(dirname "$BIN")/tests/gen_records}
SIZES=${SIZES:-10000 1000000 3000000}
D=${D:-256}
T=${T:-4}
EPOCHS=${EPOCHS:-2}
THREADS=${THREADS:-2}
LIMIT_MB=${LIMIT_MB:-1024}
PY=/usr/bin/python3
for t in lmr-pack lmr-train; do
    [ -x "$BIN/$t" ] || { echo "bench/scale.sh: $BIN/$t not built" >&2; exit 1; }
done
[ -x "$GEN" ] || { echo "bench/scale.sh: $GEN not built (the tests' gen_records)" >&2; exit 1; }
load=$(cut -d' ' -f1 /proc/loadavg)
if [ -z "${FORCE:-}" ] && awk -v l="$load" 'BEGIN { exit !(l > 2.5) }'; then
    echo "bench/scale.sh: load average $load is above 2.5: the figures would measure the other jobs (FORCE=1 runs anyway)" >&2
    exit 1
fi
WORK=$(mktemp -d "${DIR:-/var/tmp}/lmr_scale_XXXXXX")
trap 'rm -rf "$WORK"' EXIT

# How the page cache is limited.
if [ "${LIMIT_MODE:-auto}" = none ]; then
    LIMIT="NOT limited (LIMIT_MODE=none)"
    run_limited() { "$@"; }
    cold() { :; }
elif systemd-run --scope -q -p MemoryMax=64M true 2>/dev/null; then
    LIMIT="systemd scope MemoryMax=${LIMIT_MB}M"
    run_limited() { systemd-run --scope -q -p MemoryMax="${LIMIT_MB}M" "$@"; }
    cold() { :; }
elif [ -w /proc/sys/vm/drop_caches ]; then
    LIMIT="page cache dropped before each run (no systemd scope here)"
    run_limited() { "$@"; }
    cold() { sync; echo 3 > /proc/sys/vm/drop_caches; }
else
    LIMIT="NOT limited: no systemd scope and not root (the shard may sit in the page cache)"
    run_limited() { "$@"; }
    cold() { :; }
fi
echo "page cache: $LIMIT"
echo "features f16 [1, $T, $D], $EPOCHS epochs, $THREADS threads, $(nproc) cores, $(free -g | awk '/Mem:/ { print $2 }') GiB of memory"
printf '%9s %9s %8s %8s %10s %10s %10s %10s %10s %9s %9s\n' clips shard_MB gen+pack_s open_s \
    ep1_sps ep2_sps nocache2 memory_sps rss_MB rss_noc rss_mem

# samples/s of epoch E alone from a --log file (its samples_per_s averages the run so far)
sps() {
    $PY -c "
import json, sys
e = [json.loads(l) for l in open(sys.argv[1])]
k = int(sys.argv[2]) - 1
steps = e[k]['step'] - (e[k - 1]['step'] if k else 0)
print(int(steps * 256 / e[k]['seconds']))" "$1" "$2"
}
train() { # log extra...: runs lmr-train, prints its peak RSS in MB
    local log=$1
    shift
    cold
    run_limited /usr/bin/time -f '%M' -o "$WORK/time.txt" "$BIN/lmr-train" --stage init --train "$WORK/s.lmdb" \
        --out "$WORK/c.safetensors" --epochs "$EPOCHS" --batch 256 --threads "$THREADS" --hidden 0 --quiet \
        --log "$log" "$@" > /dev/null 2> "$WORK/err.txt" || { cat "$WORK/err.txt" >&2; exit 1; }
    echo $(($(tail -n 1 "$WORK/time.txt") / 1024))
}
for n in $SIZES; do
    rm -f "$WORK"/s.lmdb*
    t0=$(date +%s.%N)
    "$GEN" - "$n" --kind features --dtype f16 --t "$T" --d "$D" --classes 100 --seed 1 |
        "$BIN/lmr-pack" -q -o "$WORK/s.lmdb" - > /dev/null
    pack_s=$(echo "$(date +%s.%N) - $t0" | bc)
    mb=$(($(stat -c %s "$WORK/s.lmdb") >> 20))
    cold
    t0=$(date +%s.%N)
    "$BIN/lmr-pack" --info "$WORK/s.lmdb" > /dev/null
    open_s=$(echo "$(date +%s.%N) - $t0" | bc)
    rss=$(train "$WORK/a.jsonl")
    rss_noc=$(train "$WORK/b.jsonl" --cache-mb 0)
    rss_mem=$(train "$WORK/m.jsonl" --preload)
    printf '%9d %9d %8.2f %8.3f %10d %10d %10d %10d %10d %9d %9d\n' "$n" "$mb" "$pack_s" "$open_s" \
        "$(sps "$WORK/a.jsonl" 1)" "$(sps "$WORK/a.jsonl" 2)" "$(sps "$WORK/b.jsonl" 2)" "$(sps "$WORK/m.jsonl" 2)" \
        "$rss" "$rss_noc" "$rss_mem"
done
