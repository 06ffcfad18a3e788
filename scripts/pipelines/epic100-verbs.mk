# EPIC-KITCHENS-100 verbs, long-tailed: train on EPIC_100_train.csv, evaluate on
# EPIC_100_validation.csv; head/tail from EPIC's own tail-verb list, few = <= 20 training clips.
#
#   make -f scripts/pipelines/epic100-verbs.mk BIN=build/bin EPIC_ANN=DIR VIDEOS=DIR [SHARDS=8 -j8]
#
# EPIC_ANN: a checkout of github.com/epic-kitchens/epic-kitchens-100-annotations.
# VIDEOS:   the videos as <participant>/<video_id>.MP4 (or JPEG frames: EXTRACT_ARGS=--frames-dir).
NAME      := epic100-verbs
DATASET   := epic
EPIC_ANN  ?= data/epic-kitchens-100-annotations
VIDEOS    ?= data/EPIC-KITCHENS
TRAIN_ANN ?= $(EPIC_ANN)/EPIC_100_train.csv
VAL_ANN   ?= $(EPIC_ANN)/EPIC_100_validation.csv
LABELS    ?= $(EPIC_ANN)/EPIC_100_verb_classes.csv
TAIL_LIST ?= $(EPIC_ANN)/EPIC_100_tail_verbs.csv
PRESET    ?= epic100-verbs
INPUTS    := $(TAIL_LIST)
EXTRACT_ARGS ?= --target verb
EVAL_ARGS    ?= --tail-classes $(TAIL_LIST)

include $(dir $(lastword $(MAKEFILE_LIST)))common.mk
