# Shared rules of the benchmark pipelines (epic100-verbs.mk, ssv2-lt.mk, videolt-lt.mk):
# sharded extraction -> pack -> init -> lmr (+ cRT) -> eval. Every step writes FILE.part and
# renames it when complete, so make's file dependencies give resume and no-op for free:
# an interrupted lmr-extract / lmr-pack resumes its .part (both skip clips already written),
# and a finished pipeline does nothing.
#
# The including file sets: NAME, DATASET, TRAIN_ANN, VAL_ANN, LABELS, VIDEOS, PRESET, and may
# set EXTRACT_ARGS, EVAL_ARGS, TRAIN_ARGS, LMR_ARGS, INPUTS (extra annotation files).
#
# Parallel extraction: make -j SHARDS=N (N extraction processes per split), or one Slurm array
# task per shard: `make shard-K SHARDS=N` (scripts/slurm/extract.sbatch).

BIN      ?= build/bin
OUT      ?= out/$(NAME)
SHARDS   ?= 1
THREADS  ?= 2
DEVICE   ?= cpu
SEED     ?= 0
BACKBONE ?= resnet50
WEIGHTS  ?= weights/resnet50.safetensors
FRAMES   ?= 16
SIZE     ?= 224
TRAIN_VIEWS ?= 2
TEST_VIEWS  ?= 3
EPOCHS_INIT ?= 30
EPOCHS_LMR  ?= 30
# Prefix for lmr-train, e.g. TRAIN_LAUNCH="mpirun -np 4" with an MPI build.
TRAIN_LAUNCH ?=

comma := ,
WEIGHTS_ARG = $(if $(filter pool none,$(BACKBONE)),,--weights $(WEIGHTS))
EXTRACT = $(BIN)/lmr-extract --dataset $(DATASET) --videos $(VIDEOS) --backbone $(BACKBONE) \
          $(WEIGHTS_ARG) --frames $(FRAMES) --size $(SIZE) --threads $(THREADS) --device $(DEVICE) \
          --seed $(SEED) $(if $(LABELS),--labels $(LABELS)) $(EXTRACT_ARGS)
TRAIN   = $(TRAIN_LAUNCH) $(BIN)/lmr-train --preset $(PRESET) --device $(DEVICE) --threads $(THREADS) \
          --seed $(SEED) $(TRAIN_ARGS)

IDX          := $(shell seq 0 $$(( $(SHARDS) - 1 )))
TRAIN_SHARDS ?= $(foreach k,$(IDX),$(OUT)/shards/train-$(k)-of-$(SHARDS).lmdb)
VAL_SHARDS   ?= $(foreach k,$(IDX),$(OUT)/shards/val-$(k)-of-$(SHARDS).lmdb)
INPUTS       += $(LABELS)

.PHONY: all extract pack train eval show clean-part
.DELETE_ON_ERROR:
# Keep the record streams (make would delete them as intermediates): a later pack can reuse them.
.PRECIOUS: $(OUT)/rec/%.rec

all: show
extract: $(TRAIN_SHARDS:$(OUT)/shards/%.lmdb=$(OUT)/rec/%.rec) $(VAL_SHARDS:$(OUT)/shards/%.lmdb=$(OUT)/rec/%.rec)
pack: $(TRAIN_SHARDS) $(VAL_SHARDS)
train: $(OUT)/init.safetensors $(OUT)/lmr.safetensors $(OUT)/crt.safetensors
eval: $(OUT)/eval.txt

# One shard of each split, for one Slurm array task.
shard-%: $(OUT)/shards/train-%-of-$(SHARDS).lmdb $(OUT)/shards/val-%-of-$(SHARDS).lmdb
	@:

$(OUT)/rec/train-%-of-$(SHARDS).rec: $(TRAIN_ANN) $(INPUTS) $(BIN)/lmr-extract
	@mkdir -p $(@D)
	$(EXTRACT) --annotations $(TRAIN_ANN) --mode train --views $(TRAIN_VIEWS) --shard $*/$(SHARDS) \
	  --failures $@.failures.tsv --out $@.part
	@mv $@.part.meta.json $@.meta.json && mv $@.part $@

$(OUT)/rec/val-%-of-$(SHARDS).rec: $(VAL_ANN) $(INPUTS) $(BIN)/lmr-extract
	@mkdir -p $(@D)
	$(EXTRACT) --annotations $(VAL_ANN) --mode test --views $(TEST_VIEWS) --shard $*/$(SHARDS) \
	  --failures $@.failures.tsv --out $@.part
	@mv $@.part.meta.json $@.meta.json && mv $@.part $@

$(OUT)/shards/%.lmdb: $(OUT)/rec/%.rec $(BIN)/lmr-pack
	@mkdir -p $(@D)
	$(BIN)/lmr-pack --quiet -o $@.part $<
	@mv $@.part $@ && rm -f $@.part-lock

$(OUT)/init.safetensors: $(TRAIN_SHARDS) $(BIN)/lmr-train
	$(TRAIN) --stage init --train $(TRAIN_SHARDS) --epochs $(EPOCHS_INIT) --out $@

$(OUT)/lmr.safetensors: $(OUT)/init.safetensors $(TRAIN_SHARDS) $(BIN)/lmr-train
	$(TRAIN) --stage lmr --train $(TRAIN_SHARDS) --init $< --epochs $(EPOCHS_LMR) $(LMR_ARGS) --out $@

$(OUT)/crt.safetensors: $(OUT)/init.safetensors $(TRAIN_SHARDS) $(BIN)/lmr-train
	$(TRAIN) --stage lmr --lmr-off --train $(TRAIN_SHARDS) --init $< --epochs $(EPOCHS_LMR) --out $@

$(OUT)/eval.txt: $(OUT)/init.safetensors $(OUT)/crt.safetensors $(OUT)/lmr.safetensors $(VAL_SHARDS) $(BIN)/lmr-eval
	$(BIN)/lmr-eval --model $(OUT)/lmr.safetensors --compare $(OUT)/init.safetensors \
	  --compare $(OUT)/crt.safetensors --data $(VAL_SHARDS) --device $(DEVICE) --threads $(THREADS) \
	  --quiet $(EVAL_ARGS) --json $(OUT)/eval.json --per-class $(OUT)/per-class.csv \
	  --predictions $(OUT)/predictions.csv --plot $(OUT)/eval.png > $@.part
	@mv $@.part $@

show: $(OUT)/eval.txt
	@echo "== $(NAME): lmr, init (instance-balanced), crt (class-balanced re-training)"
	@cat $<
	@echo "json: $(OUT)/eval.json   per-class: $(OUT)/per-class.csv (lmr), per-class.init.csv, per-class.crt.csv   plot: $(OUT)/eval.png"

# Remove the partial outputs of an interrupted run (to restart a step from scratch).
clean-part:
	rm -f $(OUT)/rec/*.part* $(OUT)/shards/*.part* $(OUT)/*.part
