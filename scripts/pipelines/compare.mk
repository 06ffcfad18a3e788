# The long-tail comparison: every method on the same cached features, several seeds, one table.
#
#   make -f scripts/pipelines/compare.mk BIN=build/bin TRAIN=train.lmdb VAL=val.lmdb [TUNE=tune.lmdb] \
#        [METHODS="ce la ... ce+la"] [SEEDS="1 2 3"] [OUT=out/compare] [-j N]
#
# Stage-1 methods train from scratch (lmr-train --stage init --method M); stage-2 methods start
# from their seed's ce checkpoint (--stage finetune --method M --init ce); post-hoc rows (ce+P)
# correct that same ce checkpoint in lmr-eval (--posthoc P): t is tuned on TUNE when given (else
# t = 1), ncm's class means come from TRAIN. Every run is evaluated on VAL with --json, and
# lmr-eval --summarize folds them into OUT/summary.{md,csv,json,png}.
#
# Resumable like the other pipelines: checkpoints train into FILE.part with --resume and are
# renamed when complete, evaluations write FILE.part and rename, so an interrupted run redoes only
# what is missing and a finished one does nothing.
#
# Knobs: EPOCHS_INIT, EPOCHS_FT, LR_INIT, LR_FT (stage 2; default 1e-3, lmr-train's own is 1e-4),
# BATCH, HIDDEN, PRESET, THREADS, DEVICE, INIT_ARGS / FT_ARGS / EVAL_ARGS (extra flags),
# TRAIN_LAUNCH (e.g. "mpirun -np 4"), PLOT (summary figure, .png/.pdf/.svg).

BIN      ?= build/bin
OUT      ?= out/compare
TRAIN    ?=
VAL      ?=
TUNE     ?=
SEEDS    ?= 1 2 3
STAGE1   := ce la cb focal ldam-drw eql srs cbs mixup
STAGE2   := lmr crt lws lmr-mix-only lmr-recon-only
POSTHOC  := ce+tau-norm ce+la ce+ncm
METHODS  ?= $(STAGE1) $(STAGE2) $(POSTHOC)
EPOCHS_INIT ?= 30
EPOCHS_FT   ?= 30
LR_INIT  ?= 1e-3
LR_FT    ?= 1e-3
BATCH    ?= 64
HIDDEN   ?= 512
PRESET   ?= ssv2-lt
THREADS  ?= 2
DEVICE   ?= cpu
INIT_ARGS ?=
FT_ARGS   ?=
EVAL_ARGS ?=
TRAIN_LAUNCH ?=
PLOT     ?= $(OUT)/summary.png

ifeq ($(strip $(TRAIN)),)
$(error compare.mk: TRAIN=SHARD... is required)
endif
ifeq ($(strip $(VAL)),)
$(error compare.mk: VAL=SHARD... is required)
endif
UNKNOWN := $(filter-out $(STAGE1) $(STAGE2) $(POSTHOC),$(METHODS))
ifneq ($(UNKNOWN),)
$(error compare.mk: unknown METHODS: $(UNKNOWN) (known: $(STAGE1) $(STAGE2) $(POSTHOC)))
endif

TRAIN_CMD = $(TRAIN_LAUNCH) $(BIN)/lmr-train --train $(TRAIN) --device $(DEVICE) --threads $(THREADS) \
            --batch $(BATCH) --preset $(PRESET) --quiet --resume
EVAL_CMD  = $(BIN)/lmr-eval --data $(VAL) --device $(DEVICE) --threads $(THREADS) --quiet $(EVAL_ARGS)

.PHONY: all runs show
.DELETE_ON_ERROR:

all: show

# $(call rules,SEED): the checkpoints and evaluations of one seed.
define rules
$(OUT)/seed$(1)/%.json: $(OUT)/seed$(1)/%.safetensors $(VAL) $(BIN)/lmr-eval
	$$(EVAL_CMD) --model $$< --json $$@.part > $$(@:.json=.txt)
	@mv $$@.part $$@

$(OUT)/seed$(1)/ce+ncm.json: $(OUT)/seed$(1)/ce.safetensors $(VAL) $(TRAIN) $(BIN)/lmr-eval
	$$(EVAL_CMD) --model $$< --posthoc ncm --tune-on $(TRAIN) --json $$@.part > $$(@:.json=.txt)
	@mv $$@.part $$@

$(OUT)/seed$(1)/ce+tau-norm.json $(OUT)/seed$(1)/ce+la.json: $(OUT)/seed$(1)/ce+%.json: \
    $(OUT)/seed$(1)/ce.safetensors $(VAL) $(TUNE) $(BIN)/lmr-eval
	$$(EVAL_CMD) --model $$< --posthoc $$* $(if $(strip $(TUNE)),--tune-on $(TUNE)) --json $$@.part > $$(@:.json=.txt)
	@mv $$@.part $$@

$(foreach m,$(STAGE1),$(OUT)/seed$(1)/$(m).safetensors): $(OUT)/seed$(1)/%.safetensors: $(TRAIN) $(BIN)/lmr-train
	@mkdir -p $$(@D)
	$$(TRAIN_CMD) --stage init --method $$* --seed $(1) --epochs $(EPOCHS_INIT) --lr $(LR_INIT) \
	  --hidden $(HIDDEN) $(INIT_ARGS) --out $$@.part
	@mv $$@.part $$@

$(foreach m,$(STAGE2),$(OUT)/seed$(1)/$(m).safetensors): $(OUT)/seed$(1)/%.safetensors: \
    $(OUT)/seed$(1)/ce.safetensors $(TRAIN) $(BIN)/lmr-train
	$$(TRAIN_CMD) --stage finetune --method $$* --init $$< --seed $(1) --epochs $(EPOCHS_FT) --lr $(LR_FT) \
	  $(FT_ARGS) --out $$@.part
	@mv $$@.part $$@
endef
$(foreach s,$(SEEDS),$(eval $(call rules,$(s))))

# The run files in METHODS order (the table's rows), each method's seeds together.
RUNS := $(foreach m,$(METHODS),$(foreach s,$(SEEDS),$(OUT)/seed$(s)/$(m).json))
runs: $(RUNS)

$(OUT)/summary.md: $(RUNS) $(BIN)/lmr-eval
	$(BIN)/lmr-eval --summarize $(RUNS) --out $(OUT)/summary.part --plot $(PLOT) --quiet > /dev/null
	@mv $(OUT)/summary.part.csv $(OUT)/summary.csv && mv $(OUT)/summary.part.json $(OUT)/summary.json && \
	  mv $(OUT)/summary.part.md $@

show: $(OUT)/summary.md
	@echo "== long-tail comparison: $(words $(METHODS)) methods x $(words $(SEEDS)) seeds on $(VAL)"
	@cat $<
	@echo "table: $(OUT)/summary.{md,csv,json}   figure: $(PLOT)"
