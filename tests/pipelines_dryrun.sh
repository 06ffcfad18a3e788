#!/usr/bin/env bash
# The three benchmark pipelines on fixture annotation files: `make -n` gives the expected
# commands (sharded extraction, pack, init, lmr, cRT, eval with each benchmark's groups); the
# fixtures are valid input for lmr-extract --list; with stub stage binaries a parallel run
# completes, a finished run does nothing, and an interrupted one redoes only what is missing.
# The Slurm scripts run the same targets (checked with make -n through them).
# Env: LMR_BIN (the real lmr-extract, for --list; without it the test ends as a skip), LMR_SRC.
set -euo pipefail
: "${LMR_SRC:?}"
PIPE="$LMR_SRC/scripts/pipelines"
FIX="$LMR_SRC/tests/fixtures"
work=$(mktemp -d /tmp/lmr-pipelines-XXXXXX)
trap '[ -n "${KEEP:-}" ] || rm -rf "$work"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
count() { grep -c -- "$2" "$1" || true; }
has() { grep -q -- "$2" "$1" || { echo "--- $1"; cat "$1"; fail "missing: $2"; }; }

# Stub stage binaries: they create the files they are asked for, and log their command line.
mkdir -p "$work/bin"
for b in lmr-extract lmr-pack lmr-train lmr-eval; do
  cat > "$work/bin/$b" <<EOF
#!/usr/bin/env bash
echo "$b \$*" >> "$work/calls.log"
out=""; prev=""
for a in "\$@"; do
  case "\$prev" in --out|-o|--json|--per-class|--plot|--predictions) out="\$out \$a";; esac
  prev="\$a"
done
for f in \$out; do echo stub > "\$f"; done
case "$b" in
  lmr-extract) for f in \$out; do echo '{}' > "\$f.meta.json"; done;;
  lmr-eval) echo "few_acc 0.5";;
esac
EOF
  chmod +x "$work/bin/$b"
done
touch -d '2020-01-01' "$work/bin"/*

mk() { make --no-print-directory -f "$PIPE/$1" BIN="$work/bin" OUT="$work/out-$1" "${@:2}"; }

echo "test 1: epic100-verbs, SHARDS=3: the expected commands"
epic=(EPIC_ANN="$FIX/epic" VIDEOS=/videos SHARDS=3 BACKBONE=pool)
mk epic100-verbs.mk "${epic[@]}" -n > "$work/epic.n"
[ "$(count "$work/epic.n" 'lmr-extract --dataset epic')" = 6 ] || fail "want 6 extractions"
for k in 0 1 2; do
  has "$work/epic.n" "--annotations $FIX/epic/EPIC_100_train.csv --mode train --views 2 --shard $k/3"
  has "$work/epic.n" "--annotations $FIX/epic/EPIC_100_validation.csv --mode test --views 3 --shard $k/3"
  has "$work/epic.n" "lmr-pack --quiet -o $work/out-epic100-verbs.mk/shards/train-$k-of-3.lmdb.part"
done
has "$work/epic.n" "--labels $FIX/epic/EPIC_100_verb_classes.csv --target verb"
has "$work/epic.n" "--frames 16 --size 224"
shards="$(for k in 0 1 2; do printf '%s ' "$work/out-epic100-verbs.mk/shards/train-$k-of-3.lmdb"; done)"
has "$work/epic.n" "lmr-train --preset epic100-verbs --device cpu --threads 2 --seed 0"
has "$work/epic.n" "--stage init --train ${shards}--epochs 30"
has "$work/epic.n" "--stage lmr --train ${shards}--init $work/out-epic100-verbs.mk/init.safetensors"
has "$work/epic.n" "--stage lmr --lmr-off"
has "$work/epic.n" "--class-groups $LMR_SRC/scripts/class-groups/epic100-verbs.csv"
mk epic100-verbs.mk "${epic[@]}" CLASS_GROUPS= -n > "$work/epic-tail.n"
has "$work/epic-tail.n" "--tail-classes $FIX/epic/EPIC_100_tail_verbs.csv"
has "$work/epic.n" "lmr-eval --model $work/out-epic100-verbs.mk/lmr.safetensors --compare $work/out-epic100-verbs.mk/init.safetensors"
mk epic100-verbs.mk "${epic[@]}" BACKBONE=resnet50 WEIGHTS=/w/r50.safetensors -n > "$work/epic-r50.n"
has "$work/epic-r50.n" "--backbone resnet50 --weights /w/r50.safetensors"
mk epic100-verbs.mk "${epic[@]}" DEVICE=cuda TRAIN_LAUNCH="mpirun -np 4" -n > "$work/epic-mpi.n"
has "$work/epic-mpi.n" "mpirun -np 4 $work/bin/lmr-train --preset epic100-verbs --device cuda"

echo "test 2: ssv2-lt with a class-groups file; videolt-lt from features and from videos"
mk ssv2-lt.mk SSV2_ANN="$FIX/ssv2" LT_SPLIT="$FIX/ssv2" VIDEOS=/v CLASS_GROUPS="$FIX/ssv2/groups.csv" -n > "$work/ssv2.n"
has "$work/ssv2.n" "lmr-extract --dataset ssv2 --videos /v"
has "$work/ssv2.n" "--labels $FIX/ssv2/something-something-v2-labels.json"
has "$work/ssv2.n" "--annotations $FIX/ssv2/something-something-v2-train.json --mode train --views 2 --shard 0/1"
has "$work/ssv2.n" "--annotations $FIX/ssv2/something-something-v2-validation.json --mode test --views 3 --shard 0/1"
has "$work/ssv2.n" "lmr-train --preset ssv2-lt"
has "$work/ssv2.n" "--class-groups $FIX/ssv2/groups.csv"
mk ssv2-lt.mk SSV2_ANN="$FIX/ssv2" LT_SPLIT="$FIX/ssv2" VIDEOS=/v -n > "$work/ssv2-paper.n"
has "$work/ssv2-paper.n" "--class-groups $LMR_SRC/scripts/class-groups/ssv2-lt.csv"
mk videolt-lt.mk LISTS="$FIX/videolt" FEATURES=/feat -n > "$work/vlt.n"
[ "$(count "$work/vlt.n" 'lmr-extract')" = 0 ] || fail "videolt from features must not extract"
has "$work/vlt.n" "lmr-pack --quiet --from-videolt /feat --labels $FIX/videolt/train.lst --counts $FIX/videolt/count-labels-train.lst"
has "$work/vlt.n" "--max-frames 60 -o $work/out-videolt-lt.mk/shards/train-npy.lmdb.part"
has "$work/vlt.n" "--max-failures 0.001 --failures $work/out-videolt-lt.mk/shards/train-npy.failures.tsv"
mk videolt-lt.mk LISTS="$FIX/videolt" FEATURES=/feat MAX_FAILURES=25 -n > "$work/vlt25.n"
has "$work/vlt25.n" "--max-failures 25 --failures"
has "$work/vlt.n" "--labels $FIX/videolt/test.lst"
has "$work/vlt.n" "lmr-train --preset videolt-lt"
has "$work/vlt.n" "--groups videolt"
mk videolt-lt.mk LISTS="$FIX/videolt" FEATURES= VIDEOS=/vid SHARDS=2 -n > "$work/vlt-v.n"
[ "$(count "$work/vlt-v.n" 'lmr-extract --dataset videolt --videos /vid')" = 4 ] || fail "videolt from videos: 4 extractions"

echo "test 3: the fixtures are what the dataset readers accept"
if [ -x "${LMR_BIN:-}/lmr-extract" ]; then
  L="$LMR_BIN/lmr-extract --list --strict"
  [ "$($L --dataset epic --annotations "$FIX/epic/EPIC_100_train.csv" --labels "$FIX/epic/EPIC_100_verb_classes.csv" | wc -l)" = 5 ] || fail "epic fixture"
  [ "$($L --dataset ssv2 --annotations "$FIX/ssv2/something-something-v2-train.json" --labels "$FIX/ssv2/something-something-v2-labels.json" | wc -l)" = 4 ] || fail "ssv2 fixture"
  [ "$($L --dataset videolt --annotations "$FIX/videolt/train.lst" --labels "$FIX/videolt/count-labels-train.lst" | wc -l)" = 5 ] || fail "videolt fixture"
else
  echo "  skipped: no lmr-extract in LMR_BIN (reported as a skip at the end)"
  skipped=1
fi

echo "test 4: a parallel run with stub stages completes; a second run does nothing"
mk epic100-verbs.mk "${epic[@]}" -j2 > "$work/run1.txt" 2>&1 || { cat "$work/run1.txt"; fail "stub run"; }
has "$work/run1.txt" "few_acc 0.5"
o="$work/out-epic100-verbs.mk"
for f in rec/train-2-of-3.rec rec/train-2-of-3.rec.meta.json shards/val-1-of-3.lmdb init.safetensors \
         lmr.safetensors crt.safetensors eval.txt eval.json; do
  [ -f "$o/$f" ] || fail "missing $f"
done
[ -z "$(find "$o" -name '*.part*')" ] || fail "partial files left: $(find "$o" -name '*.part*')"
[ "$(count "$work/calls.log" 'lmr-extract')" = 6 ] || fail "want 6 extract calls"
mk epic100-verbs.mk "${epic[@]}" -q "$o/eval.txt" || fail "make -q: not up to date after a full run"
: > "$work/calls.log"
mk epic100-verbs.mk "${epic[@]}" -j2 > "$work/run2.txt" 2>&1
[ ! -s "$work/calls.log" ] || { cat "$work/calls.log"; fail "second run called a stage"; }

echo "test 5: after an interruption only the missing work is redone"
rm "$o/shards/train-1-of-3.lmdb" # lost
rm "$o/rec/val-2-of-3.rec" "$o/shards/val-2-of-3.lmdb" "$o/eval.txt" # killed mid-extraction
echo partial > "$o/rec/val-2-of-3.rec.part"
mk epic100-verbs.mk "${epic[@]}" -n > "$work/resume.n"
[ "$(count "$work/resume.n" 'lmr-extract')" = 1 ] || fail "want 1 extraction to resume"
has "$work/resume.n" "--mode test --views 3 --shard 2/3"
has "$work/resume.n" "-o $o/shards/train-1-of-3.lmdb.part"
[ "$(count "$work/resume.n" 'lmr-pack')" = 2 ] || fail "want 2 packs"
has "$work/resume.n" "--stage init"
mk epic100-verbs.mk "${epic[@]}" shard-0 -n > "$work/shard0.n"
[ "$(count "$work/shard0.n" 'lmr-')" = 0 ] || fail "shard-0 should be complete"
mk epic100-verbs.mk "${epic[@]}" shard-2 -n > "$work/shard2.n"
has "$work/shard2.n" "--shard 2/3"
echo "test 6: the Slurm scripts drive the same targets"
cd "$LMR_SRC"
SLURM_ARRAY_TASK_ID=1 SLURM_ARRAY_TASK_COUNT=4 BIN="$work/bin" bash scripts/slurm/extract.sbatch \
  epic100-verbs EPIC_ANN="$FIX/epic" VIDEOS=/videos BACKBONE=pool OUT="$work/slurm" -n > "$work/slurm-x.n"
[ "$(count "$work/slurm-x.n" 'lmr-extract')" = 2 ] || fail "one array task: 2 extractions"
has "$work/slurm-x.n" "--mode train --views 2 --shard 1/4"
has "$work/slurm-x.n" "--mode test --views 3 --shard 1/4"
SHARDS=4 SLURM_NTASKS=2 BIN="$work/bin" bash scripts/slurm/train.sbatch epic100-verbs EPIC_ANN="$FIX/epic" \
  OUT="$work/slurm" -n > "$work/slurm-t.n"
has "$work/slurm-t.n" "mpirun -np 2 $work/bin/lmr-train"
[ "$(count "$work/slurm-t.n" 'lmr-eval')" = 0 ] || fail "train job must not evaluate"
if [ -n "${skipped:-}" ]; then
  echo "all other checks passed; the fixtures were not read (no lmr-extract): SKIP"
  exit 77
fi
echo "all checks passed"
