# VideoLT / VideoLT-LT (multi-label, 1004 classes): either VideoLT's released per-video ResNet
# features (FEATURES=DIR of <video_id>.npy, imported by lmr-pack --from-videolt; the default)
# or the raw videos (FEATURES= VIDEOS=DIR, extracted like the other benchmarks). Groups follow
# VideoLT's rule (head > 500, medium 101-500, tail <= 100 training clips); few_acc is still
# reported for the classes with <= 20. mAP per group is the benchmark's metric.
#
#   make -f scripts/pipelines/videolt-lt.mk BIN=build/bin LISTS=DIR FEATURES=DIR
#
# LISTS: the folder with train.lst, validate.lst / test.lst and count-labels-train.lst
# (VideoLT-LT: its own split lists in the same format).
# MAX_FAILURES: clips whose .npy may be missing or unreadable before the import fails, a count or a
# fraction of the listed clips (the release lacks a few files; default 0.001, i.e. 0.1%). The
# clips left out are listed in $(OUT)/shards/{train,val}-npy.failures.tsv.
NAME      := videolt-lt
DATASET   := videolt
LISTS     ?= data/videolt/lists
FEATURES  ?= data/videolt/features
VIDEOS    ?= data/videolt/videos
TRAIN_ANN ?= $(LISTS)/train.lst
VAL_ANN   ?= $(LISTS)/test.lst
LABELS    ?= $(LISTS)/count-labels-train.lst
MAX_FRAMES ?= 60
MAX_FAILURES ?= 0.001
PRESET    ?= videolt-lt
EVAL_ARGS ?= --groups videolt

ifneq ($(strip $(FEATURES)),)
TRAIN_SHARDS := $(OUT)/shards/train-npy.lmdb
VAL_SHARDS   := $(OUT)/shards/val-npy.lmdb
endif

include $(dir $(lastword $(MAKEFILE_LIST)))common.mk

ifneq ($(strip $(FEATURES)),)
# Import the .npy features (MAX_FRAMES evenly spaced rows per video; 0 = all).
$(OUT)/shards/train-npy.lmdb: $(TRAIN_ANN) $(LABELS) $(BIN)/lmr-pack
	@mkdir -p $(@D)
	$(BIN)/lmr-pack --quiet --from-videolt $(FEATURES) --labels $(TRAIN_ANN) --counts $(LABELS) \
	  --max-failures $(MAX_FAILURES) --failures $(OUT)/shards/train-npy.failures.tsv \
	  --max-frames $(MAX_FRAMES) -o $@.part
	@mv $@.part $@ && rm -f $@.part-lock

$(OUT)/shards/val-npy.lmdb: $(VAL_ANN) $(LABELS) $(BIN)/lmr-pack
	@mkdir -p $(@D)
	$(BIN)/lmr-pack --quiet --from-videolt $(FEATURES) --labels $(VAL_ANN) --counts $(LABELS) \
	  --max-failures $(MAX_FAILURES) --failures $(OUT)/shards/val-npy.failures.tsv \
	  --max-frames $(MAX_FRAMES) -o $@.part
	@mv $@.part $@ && rm -f $@.part-lock
endif
