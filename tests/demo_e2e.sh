#!/usr/bin/env bash
# The demo pipeline end to end, shortened (8 classes, tiny clips, few epochs): generate videos ->
# lmr-extract -> lmr-pack -> lmr-train init / lmr / --lmr-off -> lmr-eval. Checks the table and
# the JSON (few_acc reported for all three checkpoints), then that a second run does no work.
# Env: LMR_BIN, LMR_SRC, LMR_PYTHON (set by ctest).
set -euo pipefail
: "${LMR_BIN:?}" "${LMR_SRC:?}"
PY=${LMR_PYTHON:-python3}
"$PY" -c 'import numpy' 2>/dev/null || { echo "skipped: numpy missing for $PY"; exit 77; }
command -v ffmpeg >/dev/null || { echo "skipped: no ffmpeg CLI"; exit 77; }

work=$(mktemp -d /tmp/lmr-demo-e2e-XXXXXX)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

args=(-f "$LMR_SRC/scripts/pipelines/demo.mk" BIN="$LMR_BIN" OUT="$work/demo" PYTHON="$PY" JOBS=2
      DATA_ARGS="--classes 8 --max-clips 120 --min-clips 4 --val-per-class 5 --size 32 --clip-seconds 0.8 --clips-per-video 48"
      FRAMES=4 SIZE=32 EPOCHS_INIT=15 EPOCHS_LMR=15 HIDDEN=64 BATCH=16)

echo "test 1: first run builds everything"
start=$(date +%s)
make --no-print-directory "${args[@]}" > "$work/run1.txt" 2>&1 || { cat "$work/run1.txt"; fail "first run"; }
echo "  first run: $(( $(date +%s) - start )) s"
cat "$work/run1.txt" | sed -n '/== lmr demo/,$p'
for stage in make_demo_data.py "lmr-extract --backbone pool" lmr-pack "--stage init" "--stage lmr" \
             "--lmr-off" lmr-eval; do
  grep -q -- "$stage" "$work/run1.txt" || fail "first run did not run '$stage'"
done

echo "test 2: the table has the three checkpoints and every group"
table=$(sed -n '/== lmr demo/,$p' "$work/run1.txt")
echo "$table" | grep -Eq '^ +init +crt +lmr$' || fail "no 'init crt lmr' header"
for row in top1 top5 avg_class_acc head_acc tail_acc few_acc; do
  echo "$table" | grep -Eq "^$row( +([0-9]\.[0-9]{4}|-)){3}$" || fail "row $row missing or malformed"
done
echo "$table" | grep -Eq '^few_acc( +[0-9]\.[0-9]{4}){3}$' || fail "few_acc not reported for all three"
echo "$table" | grep -q "plot: $work/demo/eval.png" || fail "no plot path"
[ "$(head -c 4 "$work/demo/eval.png" | od -An -c | tr -d ' ')" = "211PNG" ] || fail "eval.png is not a PNG"

echo "test 3: the JSON has exactly the contract keys, few_acc for LMR"
"$PY" - "$work/demo/eval.json" <<'EOF' || fail "json"
import json, sys
j = json.load(open(sys.argv[1]))
keys = ["top1", "top5", "avg_class_acc", "head_acc", "tail_acc", "few_acc"]
models = [j] + j["compare"]
assert [m["model"].rsplit("/", 1)[1] for m in models] == \
    ["init.safetensors", "crt.safetensors", "lmr.safetensors"], [m["model"] for m in models]
for m in models:
    for k in keys:
        assert isinstance(m[k], float), (k, m.get(k))
    assert 0.0 <= m["few_acc"] <= 1.0, m["few_acc"]
    assert "map" not in m  # single-label data
lmr = models[2]
# The pipeline learned something: 8 classes, chance is 0.125.
assert lmr["avg_class_acc"] > 0.25 and models[1]["avg_class_acc"] > 0.25, lmr
print("  lmr: avg %.3f few %.3f (init few %.3f, crt few %.3f)" % (lmr["avg_class_acc"], lmr["few_acc"],
      models[0]["few_acc"], models[1]["few_acc"]))
EOF

echo "test 4: a second run does no work"
stamp="$work/stamp"; touch "$stamp"; sleep 1
make --no-print-directory -q "${args[@]}" "$work/demo/eval.txt" || fail "make -q: not up to date"
make --no-print-directory "${args[@]}" > "$work/run2.txt" 2>&1 || fail "second run"
if grep -Eq 'lmr-(extract|pack|train|eval)|make_demo_data' "$work/run2.txt"; then
  cat "$work/run2.txt"; fail "second run ran a stage"
fi
changed=$(find "$work/demo" -type f -newer "$stamp" | wc -l)
[ "$changed" -eq 0 ] || fail "second run touched $changed files"
grep -q "few_acc" "$work/run2.txt" || fail "second run does not print the table"
echo "all checks passed"
