#!/bin/sh
# Annotation parsing and VideoLT import speed.
#   usage: bench/annotations.sh BUILD/bin [N_NPY]
# 1. Generates a full-size EPIC-KITCHENS-100 train csv (67,217 rows) and SSv2 train json
#    (168,913 entries) and times lmr's reader on each: `lmr-extract --list` (parse + write the
#    manifest) when built, and bench_annotations (parse only, from BUILD/tests).
# 2. Generates N_NPY (default 300) VideoLT-like (T, 2048) float32 .npy files and prints the
#    `lmr-pack --from-videolt` read rate next to `cat` of the same files (both from the page
#    cache after a first read: this measures lmr's overhead over reading, not the disk).
set -eu
bin=$(cd "${1:?usage: bench/annotations.sh BUILD/bin [N_NPY]}" && pwd)
n_npy=${2:-300}
py=${LMR_PYTHON:-/usr/bin/python3}
[ -x "$py" ] || py=python3
work=$(mktemp -d "${TMPDIR:-/tmp}/lmr_bench_annot_XXXXXX")
trap 'rm -rf "$work"' EXIT
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }

"$py" - "$work" "$n_npy" <<'PY'
import json, os, sys
import numpy as np
out, n_npy = sys.argv[1], int(sys.argv[2])
rng = np.random.default_rng(0)
# EPIC-KITCHENS-100 train: 67,217 rows, 15 columns, quoted narrations and lists
with open(os.path.join(out, "EPIC_100_train.csv"), "w") as f:
    f.write("narration_id,participant_id,video_id,narration_timestamp,start_timestamp,stop_timestamp,"
            "start_frame,stop_frame,narration,verb,verb_class,noun,noun_class,all_nouns,all_noun_classes\n")
    for i in range(67217):
        p = 1 + i % 37
        v = "P%02d_%s" % (p, ("%03d" % (101 + i % 20)) if i % 3 == 0 else "%02d" % (1 + i % 20))
        fps = 50 if i % 3 == 0 else 60
        t0 = (i % 5000) * 1.37
        t1 = t0 + 0.5 + (i % 7) * 0.31
        ts = lambda t: "%02d:%02d:%05.2f" % (t // 3600, (t % 3600) // 60, t % 60)
        verb, noun = int(rng.integers(0, 97)), int(rng.integers(0, 300))
        f.write('%s_%d,P%02d,%s,%s,%s,%s,%d,%d,"take cup, then %d",take,%d,cup,%d,"[\'cup\', \'tap\']","[%d, 8]"\n'
                % (v, i, p, v, ts(t0), ts(t0), ts(t1), max(1, int(t0 * fps)), int(t1 * fps), i, verb, noun, noun))
# SSv2: 174 templates, 168,913 train entries
templates = ["Template %d with [something] and [something else]" % k for k in range(174)]
with open(os.path.join(out, "labels.json"), "w") as f:
    json.dump({t.replace("[", "").replace("]", ""): str(k) for k, t in enumerate(templates)}, f, indent=1)
with open(os.path.join(out, "train.json"), "w") as f:
    f.write("[\n")
    for i in range(168913):
        t = templates[int(rng.integers(0, 174))]
        f.write('%s{"id":"%d","label":"moving a thing %d","template":"%s","placeholders":["a","b"]}\n'
                % ("," if i else "", i + 1, i, t))
    f.write("]\n")
# VideoLT features
os.makedirs(os.path.join(out, "feats"))
with open(os.path.join(out, "train.lst"), "w") as f:
    for i in range(n_npy):
        t = int(rng.integers(20, 200))
        np.save(os.path.join(out, "feats", "v_%05d.npy" % i), rng.standard_normal((t, 2048)).astype("<f4"))
        f.write("v_%05d %d,%d\n" % (i, i % 1004, (i * 7 + 1) % 1004))
PY

echo "== annotation parsing =="
for ds in epic ssv2; do
    if [ $ds = epic ]; then ann=$work/EPIC_100_train.csv; lab=""; else ann=$work/train.json; lab=$work/labels.json; fi
    if [ -x "$bin/../tests/bench_annotations" ]; then
        set -- $("$bin/../tests/bench_annotations" $ds "$ann" $lab)
        echo "$ds: $1 rows, $2 skipped, parse $3 s wall, $4 s cpu (bench_annotations)"
    fi
    if [ -x "$bin/lmr-extract" ]; then
        t0=$(now)
        "$bin/lmr-extract" --list --dataset $ds --annotations "$ann" ${lab:+--labels "$lab"} > "$work/list.csv"
        t1=$(now)
        echo "$ds: $(($(wc -l < "$work/list.csv") - 1)) rows, lmr-extract --list $(secs "$t0" "$t1") s (parse + write)"
    fi
done

echo "== VideoLT import ($n_npy files) =="
mb=$(du -sm "$work/feats" | cut -f1)
cat "$work"/feats/*.npy > /dev/null # warm the page cache for both
rate() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.0f", a / b }'; }
t0=$(now); cat "$work"/feats/*.npy > /dev/null; t1=$(now)
s=$(secs "$t0" "$t1")
echo "cat > /dev/null:          $mb MB in $s s = $(rate "$mb" "$s") MB/s (read only)"
t0=$(now); cat "$work"/feats/*.npy | dd of="$work/copy.bin" bs=1M conv=fsync status=none; t1=$(now)
s=$(secs "$t0" "$t1")
rm -f "$work/copy.bin"
echo "cat | dd conv=fsync:      $mb MB in $s s = $(rate "$mb" "$s") MB/s (read + write the same bytes)"
for z in 0 3; do
    rm -rf "$work/out.lmdb"*
    t0=$(now)
    "$bin/lmr-pack" --from-videolt "$work/feats" --labels "$work/train.lst" --zstd-level $z -o "$work/out.lmdb" --quiet
    t1=$(now)
    s=$(secs "$t0" "$t1")
    echo "lmr-pack, zstd level $z:   $mb MB in $s s = $(rate "$mb" "$s") MB/s (read, encode, LMDB write)"
done
