#!/bin/sh
# Fuzz the annotation and NPY readers with libFuzzer (clang -fsanitize=fuzzer, Debian's
# libclang-rt-14-dev) for SECONDS each, starting from tests/fuzz/corpus/<x>.
#   usage: tests/fuzz/run.sh [SECONDS] [csv json list npy ...]
# New inputs go to $LMR_FUZZ_WORK/corpus_<x> (default: a temp dir, printed); crashes are left
# there as crash-*. LMR_FUZZ_MERGE=1 merges the inputs that add coverage back into the corpus.
set -eu
src=$(cd "$(dirname "$0")/../.." && pwd)
secs=${1:-60}
[ $# -gt 0 ] && shift
targets=${*:-csv json list npy}
work=${LMR_FUZZ_WORK:-$(mktemp -d "${TMPDIR:-/tmp}/lmr_fuzz_XXXXXX")}
cc=${CC_FUZZ:-clang}
fmt=$src/formats
libs="$(pkg-config --cflags --libs jansson libzstd libxxhash) -lcsv -lm"
mkdir -p "$work"
echo "fuzz: work dir $work"
for x in $targets; do
    $cc -g -O1 -std=c17 -D_GNU_SOURCE -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
        -I"$fmt" "$src/tests/fuzz/fuzz_$x.c" "$fmt/annotations.c" "$fmt/annot_text.c" \
        "$fmt/annot_json.c" "$fmt/annot_list.c" "$fmt/manifest.c" "$fmt/npy.c" "$fmt/record.c" \
        "$fmt/lmr_error.c" $libs -o "$work/fuzz_$x"
    mkdir -p "$work/corpus_$x"
    echo "fuzz: $x for $secs s"
    (cd "$work" && "./fuzz_$x" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -max_len=4096 \
        -print_final_stats=1 "corpus_$x" "$src/tests/fuzz/corpus/$x")
    if [ "${LMR_FUZZ_MERGE:-0}" = 1 ]; then
        (cd "$work" && "./fuzz_$x" -merge=1 "$src/tests/fuzz/corpus/$x" "corpus_$x")
    fi
done
