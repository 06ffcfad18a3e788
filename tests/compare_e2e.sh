#!/usr/bin/env bash
# The comparison pipeline end to end on a tiny synthetic long-tailed set: every kind of row
# (stage-1, stage-2 from each seed's ce, post-hoc on that ce) over two seeds; the table holds
# every method and seed; a finished run does nothing, a removed checkpoint redoes only its row,
# an interrupted training resumes its .part; lmr-eval's post-hoc and summary refusals; the figure
# in PNG, PDF and SVG.
# Env: LMR_BIN (lmr-train, lmr-eval), LMR_SRC; arg 1: the methods_synth helper.
set -euo pipefail
: "${LMR_BIN:?}" "${LMR_SRC:?}"
SYNTH=${1:?methods_synth}
work=$(mktemp -d /tmp/lmr-compare-XXXXXX)
trap '[ -n "${KEEP:-}" ] || rm -rf "$work"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
cd "$work"
"$SYNTH" train.lmdb val.lmdb tune.lmdb

METHODS="ce la cb ldam-drw cbs mixup lmr crt lws ce+tau-norm ce+la ce+ncm"
mk() { make --no-print-directory -f "$LMR_SRC/scripts/pipelines/compare.mk" BIN="$LMR_BIN" TRAIN=train.lmdb \
  VAL=val.lmdb TUNE=tune.lmdb OUT=out SEEDS="1 2" METHODS="$METHODS" EPOCHS_INIT=4 EPOCHS_FT=2 BATCH=32 \
  HIDDEN=16 THREADS=1 "$@"; }

# an interrupted training: seed 1's ce stopped after 3 steps, left as its .part
mkdir -p out/seed1
"$LMR_BIN/lmr-train" --train train.lmdb --threads 1 --batch 32 --preset ssv2-lt --quiet --resume --stage init \
  --method ce --seed 1 --epochs 4 --lr 1e-3 --hidden 16 --stop-after 3 --out out/seed1/ce.safetensors.part
[ -f out/seed1/ce.safetensors.part ] || fail "no partial checkpoint"

mk > run1.log 2>&1 || { cat run1.log; fail "the pipeline failed"; }
grep -q 'resuming out/seed1/ce.safetensors.part' run1.log || { cat run1.log; fail "the .part was not resumed"; }
for m in $METHODS; do
  grep -q "^| $m | 2 |" out/summary.md || { cat out/summary.md; fail "row $m with 2 seeds missing"; }
  for s in 1 2; do
    python3 - "$m" "$s" out/seed$s/$m.json <<'PY' || fail "out/seed$s/$m.json"
import json, sys
j = json.load(open(sys.argv[3]))
assert j["method"] == sys.argv[1] and j["seed"] == int(sys.argv[2]), (j.get("method"), j.get("seed"))
assert len(j["class_acc"]) == len(j["train_counts"]) == 12
PY
  done
done
python3 - <<'PY' || fail "summary.json"
import json
j = json.load(open("out/summary.json"))
rows = [r["method"] for r in j["rows"]]
assert rows == "ce la cb ldam-drw cbs mixup lmr crt lws ce+tau-norm ce+la ce+ncm".split(), rows
assert all(r["seeds"] == [1, 2] for r in j["rows"])
best = [r["method"] for r in j["rows"] if r["metrics"]["avg_class_acc"]["best"]]
means = {r["method"]: r["metrics"]["avg_class_acc"]["mean"] for r in j["rows"]}
assert best and all(means[b] == max(means.values()) for b in best), best
PY
grep -q '^method,seeds,avg_class_acc_mean' out/summary.csv || fail "summary.csv header"
[ -s out/summary.png ] || fail "no figure"
grep -q 'posthoc: la t = ' out/seed1/ce+la.txt || fail "the tuned t is not printed"

# finished: nothing to do; a removed checkpoint: only its training, evaluation and the summary
mk -q runs || fail "a finished pipeline is not up to date"
rm out/seed2/crt.safetensors
mk -n > redo.log
[ "$(grep -c 'lmr-train' redo.log)" = 1 ] && grep -q 'method crt .*--seed 2' redo.log || { cat redo.log; fail "redo"; }
[ "$(grep -c 'lmr-eval --data' redo.log)" = 1 ] || { cat redo.log; fail "redo evals"; }

# refusals
set +e
"$LMR_BIN/lmr-eval" --model out/seed1/ce.safetensors --data val.lmdb --posthoc la --tune-on ./val.lmdb >/dev/null 2>err.txt
[ $? = 2 ] && grep -q 'evaluated shard' err.txt || fail "tuning on the evaluated shard was not refused"
"$LMR_BIN/lmr-eval" --model out/seed1/ce.safetensors --data val.lmdb --posthoc ncm >/dev/null 2>err.txt
[ $? = 2 ] || fail "ncm without --tune-on was not refused"
"$LMR_BIN/lmr-eval" --summarize out/seed1/ce.json out/seed1/ce.json >/dev/null 2>err.txt
[ $? = 1 ] && grep -q 'counted twice' err.txt || fail "a run counted twice was not refused"
"$LMR_BIN/lmr-train" --stage init --method lmr --train train.lmdb --out x.safetensors 2>err.txt
[ $? = 2 ] && grep -q 'stage-2' err.txt || fail "a stage-2 method at stage init was not refused"
set -e
# the figure in each format
for ext in pdf svg; do
  "$LMR_BIN/lmr-eval" --summarize out/seed*/ce.json out/seed*/lmr.json --plot fig.$ext --quiet >/dev/null
  [ -s fig.$ext ] || fail "no $ext figure"
done
head -c 4 fig.pdf | grep -q '%PDF' || fail "not a PDF"
grep -q '<svg' fig.svg || fail "not an SVG"
echo "compare pipeline: ok"
