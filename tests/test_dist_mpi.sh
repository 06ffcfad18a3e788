#!/bin/sh
# Data-parallel lmr-train: `mpirun -np 2` (and -np 4) must give the checkpoint of one process with the
# same global batch and seed, within float tolerance, after several steps of both stages (init,
# then lmr with the memory bank, few-shot masks and mixing across ranks); a run with another seed
# must not (so the tolerance can fail); multi-label BCE matches too; a batch that does not split over the ranks is refused.
# usage: test_dist_mpi.sh MPIEXEC GEN_RECORDS   (env: LMR_BIN, LMR_SRC, LMR_PYTHON)
set -eu
MPIEXEC=$1
GEN=$2
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
cd "$T"
TRAIN="$LMR_BIN/lmr-train"
CMP="$LMR_PYTHON $LMR_SRC/tests/ckpt_compare.py --atol 2e-5 --rtol 1e-3"
# Open MPI refuses root without these; its own allocations are not ours to leak-check (the
# one-process runs keep the caller's sanitizer settings)
MPI="env ASAN_OPTIONS=detect_leaks=0 $MPIEXEC --allow-run-as-root --oversubscribe"
fail() { echo "FAIL: $*"; exit 1; }
# a launcher that cannot start two processes here (no network, no slots) is a skip, not a failure
if ! $MPI -np 2 true >launch.txt 2>&1; then
    echo "skipped: $MPIEXEC cannot start 2 processes here: $(tail -3 launch.txt)"
    exit 77
fi

echo "test 1: inputs"
"$GEN" a.rec 160 --d 24 --classes 6 --t 3 --views 2 --dtype f32 --seed 11 >/dev/null
"$LMR_BIN/lmr-pack" -o a.lmdb a.rec >/dev/null 2>&1 || fail "lmr-pack"

COMMON="--train a.lmdb --batch 16 --hidden 12 --seed 5 --quiet"
echo "test 2: stage init, 1 process vs 2 ranks (lr 1e-2 so a wrong gradient shows)"
"$TRAIN" --stage init $COMMON --epochs 2 --lr 0.01 --out init1.safetensors || fail "init, 1 process"
$MPI -np 2 "$TRAIN" --stage init $COMMON --epochs 2 --lr 0.01 --out init2.safetensors --log init2.jsonl \
    || fail "init, 2 ranks"
$CMP init1.safetensors init2.safetensors || fail "init: 2 ranks differ from 1 process"
[ "$(wc -l < init2.jsonl)" -eq 2 ] || fail "init2.jsonl should hold one line per epoch, written by rank 0 only"

echo "test 3: another seed differs beyond the tolerance (the comparison can fail)"
"$TRAIN" --stage init $COMMON --epochs 2 --lr 0.01 --seed 6 --out other.safetensors || fail "seed 6"
if $CMP --prefix head. init1.safetensors other.safetensors >/dev/null; then fail "seed 5 and 6 compare equal"; fi

LMR="--stage lmr --init init1.safetensors --epochs 3 --lr 0.01 --lmr-omega 20 --lmr-k 3 --lmr-p 0.75"
echo "test 4: stage lmr (bank, masks, mixing), 1 process vs 2 and 4 ranks"
"$TRAIN" $LMR $COMMON --out lmr1.safetensors || fail "lmr, 1 process"
$MPI -np 2 "$TRAIN" $LMR $COMMON --out lmr2.safetensors || fail "lmr, 2 ranks"
$CMP lmr1.safetensors lmr2.safetensors || fail "lmr: 2 ranks differ from 1 process"
$MPI -np 4 "$TRAIN" $LMR $COMMON --out lmr4.safetensors || fail "lmr, 4 ranks"
$CMP lmr1.safetensors lmr4.safetensors || fail "lmr: 4 ranks differ from 1 process"
# stage lmr re-initialises head.*, which so differs from init1's even after zero steps; the layer norm
# and pre_logits start from init1's values and move only if the stage trained them
for p in ln. pre_logits.; do
    if $CMP --prefix $p init1.safetensors lmr1.safetensors >/dev/null; then fail "lmr stage did not train $p*"; fi
done

echo "test 5: multi-label clips with --loss bce, stage lmr: 1 process vs 2 ranks"
"$GEN" m.rec 96 --d 20 --classes 5 --t 2 --dtype f32 --multi --seed 4 >/dev/null
"$LMR_BIN/lmr-pack" -o m.lmdb m.rec >/dev/null 2>&1 || fail "lmr-pack (multi-label)"
M="--train m.lmdb --batch 16 --loss bce --lr 0.01 --seed 5 --quiet"
"$TRAIN" --stage init $M --hidden 8 --epochs 1 --out minit.safetensors || fail "bce init"
"$TRAIN" --stage lmr $M --init minit.safetensors --epochs 2 --lmr-omega 30 --out mlmr1.safetensors || fail "bce lmr"
$MPI -np 2 "$TRAIN" --stage lmr $M --init minit.safetensors --epochs 2 --lmr-omega 30 --out mlmr2.safetensors \
    || fail "bce lmr, 2 ranks"
$CMP mlmr1.safetensors mlmr2.safetensors || fail "multi-label bce: 2 ranks differ from 1 process"

echo "test 6: a global batch that does not split over the ranks is refused"
if $MPI -np 2 "$TRAIN" --stage init $COMMON --batch 15 --epochs 1 --out bad.safetensors 2>err.txt; then
    fail "batch 15 over 2 ranks accepted"
fi
grep -q "multiple of the 2 ranks" err.txt || { cat err.txt; fail "no message about the batch"; }
echo "ok"
