# The demo: a generated long-tailed video dataset -> lmr-extract (pool backbone) -> lmr-pack ->
# lmr-train init -> lmr-train lmr (and --lmr-off, i.e. cRT) -> lmr-eval, three checkpoints side
# by side. Every step is a file target: an interrupted run resumes, a finished one does nothing.
#
#   make -f scripts/pipelines/demo.mk BIN=build/bin [OUT=out/demo] [JOBS=2]
#
# Knobs for a smaller run (the ctest uses them): DATA_ARGS (scripts/make_demo_data.py options),
# FRAMES, SIZE, VIEWS, EPOCHS_INIT, EPOCHS_LMR, HIDDEN, SEED.

BIN     ?= build/bin
OUT     ?= out/demo
JOBS    ?= 2
PYTHON  ?= $(firstword $(wildcard /usr/bin/python3) python3)
SRC     := $(abspath $(dir $(lastword $(MAKEFILE_LIST)))../..)

DATA_ARGS   ?=
FRAMES      ?= 8
SIZE        ?= 64
VIEWS       ?= 2
EPOCHS_INIT ?= 30
EPOCHS_LMR  ?= 30
HIDDEN      ?= 256
LR_LMR      ?= 1e-3
BATCH       ?= 64
SEED        ?= 1
PRESET      ?= ssv2-lt
TRAIN_ARGS  ?=
LMR_ARGS    ?=
# The class-balanced stage (LMR and cRT alike) at lr 1e-3 instead of the default 1e-4: on this
# small set, 30 epochs at 1e-4 leave a freshly initialised classifier under-trained.

DATA   := $(OUT)/data
EXTRACT = $(BIN)/lmr-extract --backbone pool --frames $(FRAMES) --size $(SIZE) --views $(VIEWS) \
          --threads $(JOBS) --seed $(SEED) --quiet
TRAIN   = $(BIN)/lmr-train --threads $(JOBS) --seed $(SEED) --hidden $(HIDDEN) --batch $(BATCH) --quiet

.PHONY: all show compare
.DELETE_ON_ERROR:

all: show compare

# 1. The dataset, generated once (a stamp marks a complete generation).
$(DATA)/.done: $(SRC)/scripts/make_demo_data.py
	@$(PYTHON) -c 'import numpy' 2>/dev/null || { echo "demo: $(PYTHON) has no numpy:" \
	  "apt-get install python3-numpy (or scripts/deps.sh --test)" >&2; exit 1; }
	@command -v ffmpeg >/dev/null || { echo "demo: no ffmpeg command: apt-get install ffmpeg" >&2; exit 1; }
	@mkdir -p $(DATA)
	$(PYTHON) $(SRC)/scripts/make_demo_data.py --out $(DATA) --jobs $(JOBS) --seed $(SEED) $(DATA_ARGS)
	@touch $@

# 2. Clip records: training clips from the EPIC-style csv (H.264 inside long videos, random
#    sampling), validation clips from the SSv2-style json (one VP9 WebM each, test views).
#    Written to .part first (lmr-extract resumes it), renamed when complete.
$(OUT)/train.rec: $(DATA)/.done $(BIN)/lmr-extract
	$(EXTRACT) --dataset epic --annotations $(DATA)/EPIC_100_train.csv \
	  --labels $(DATA)/EPIC_100_verb_classes.csv --videos $(DATA)/videos --mode train --out $@.part
	@mv $@.part.meta.json $@.meta.json && mv $@.part $@

$(OUT)/val.rec: $(DATA)/.done $(BIN)/lmr-extract
	$(EXTRACT) --dataset ssv2 --annotations $(DATA)/something-something-v2-validation.json \
	  --labels $(DATA)/something-something-v2-labels.json --videos $(DATA)/videos --mode test --out $@.part
	@mv $@.part.meta.json $@.meta.json && mv $@.part $@

# 3. Shards (LMDB). lmr-pack resumes a .part shard; the rename marks it complete.
$(OUT)/%.lmdb: $(OUT)/%.rec $(BIN)/lmr-pack
	$(BIN)/lmr-pack --quiet -o $@.part $<
	@mv $@.part $@ && rm -f $@.part-lock

# 4. Training: instance-balanced init, then the class-balanced stage with LMR and without (cRT).
$(OUT)/init.safetensors: $(OUT)/train.lmdb $(BIN)/lmr-train
	$(TRAIN) --stage init --train $< --epochs $(EPOCHS_INIT) $(TRAIN_ARGS) --out $@

$(OUT)/lmr.safetensors: $(OUT)/init.safetensors $(OUT)/train.lmdb $(BIN)/lmr-train
	$(TRAIN) --stage lmr --preset $(PRESET) --train $(OUT)/train.lmdb --init $< \
	  --epochs $(EPOCHS_LMR) --lr $(LR_LMR) $(LMR_ARGS) --out $@

$(OUT)/crt.safetensors: $(OUT)/init.safetensors $(OUT)/train.lmdb $(BIN)/lmr-train
	$(TRAIN) --stage lmr --lmr-off --preset $(PRESET) --train $(OUT)/train.lmdb --init $< \
	  --epochs $(EPOCHS_LMR) --lr $(LR_LMR) $(LMR_ARGS) --out $@

# 5. Evaluation of the three checkpoints on the balanced validation set.
CKPTS := $(OUT)/init.safetensors $(OUT)/crt.safetensors $(OUT)/lmr.safetensors
$(OUT)/eval.txt: $(CKPTS) $(OUT)/val.lmdb $(BIN)/lmr-eval
	$(BIN)/lmr-eval --model $(OUT)/init.safetensors --compare $(OUT)/crt.safetensors \
	  --compare $(OUT)/lmr.safetensors --data $(OUT)/val.lmdb --threads $(JOBS) --quiet \
	  --json $(OUT)/eval.json --per-class $(OUT)/per-class.csv --plot $(OUT)/eval.png > $@.part
	@mv $@.part $@

show: $(OUT)/eval.txt
	@echo "== lmr demo: init (instance-balanced), crt (class-balanced re-training, --lmr-off), lmr"
	@cat $<
	@echo "json: $(OUT)/eval.json   per-class: $(OUT)/per-class.csv (init), per-class.crt.csv, per-class.lmr.csv   plot: $(OUT)/eval.png"

# 6. A short long-tail comparison on the same shards, one seed (compare.mk; COMPARE_METHODS= skips it).
COMPARE_METHODS ?= ce la cb ldam-drw cbs crt lmr ce+ncm
compare: show
	@$(if $(strip $(COMPARE_METHODS)),$(MAKE) -s --no-print-directory -f $(SRC)/scripts/pipelines/compare.mk BIN=$(BIN) \
	  OUT=$(OUT)/compare TRAIN=$(OUT)/train.lmdb VAL=$(OUT)/val.lmdb METHODS="$(COMPARE_METHODS)" SEEDS=$(SEED) \
	  EPOCHS_INIT=$(EPOCHS_INIT) EPOCHS_FT=$(EPOCHS_LMR) LR_FT=$(LR_LMR) HIDDEN=$(HIDDEN) BATCH=$(BATCH) \
	  PRESET=$(PRESET) THREADS=$(JOBS),:)
