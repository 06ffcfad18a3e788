# EPIC-KITCHENS-100 verbs, long-tailed: train on EPIC_100_train.csv, evaluate on
# EPIC_100_validation.csv. Groups: the LMR paper's head/tail/few lists (CLASS_GROUPS, default
# scripts/class-groups/epic100-verbs.csv); CLASS_GROUPS= (empty) takes EPIC's own tail-verb list
# instead (listed = tail, the rest head, few = <= 20 training clips carved out of both).
#
#   make -f scripts/pipelines/epic100-verbs.mk BIN=build/bin EPIC_ANN=DIR VIDEOS=DIR [SHARDS=8 -j8]
#
# EPIC_ANN: a checkout of github.com/epic-kitchens/epic-kitchens-100-annotations.
# VIDEOS:   the videos as <participant>/<video_id>.MP4 (or JPEG frames: EXTRACT_ARGS=--frames-dir).
GROUPS_DIR := $(abspath $(dir $(lastword $(MAKEFILE_LIST)))../class-groups)
NAME      := epic100-verbs
DATASET   := epic
EPIC_ANN  ?= data/epic-kitchens-100-annotations
VIDEOS    ?= data/EPIC-KITCHENS
TRAIN_ANN ?= $(EPIC_ANN)/EPIC_100_train.csv
VAL_ANN   ?= $(EPIC_ANN)/EPIC_100_validation.csv
LABELS    ?= $(EPIC_ANN)/EPIC_100_verb_classes.csv
TAIL_LIST ?= $(EPIC_ANN)/EPIC_100_tail_verbs.csv
PRESET    ?= epic100-verbs
CLASS_GROUPS ?= $(GROUPS_DIR)/epic100-verbs.csv
INPUTS    := $(if $(CLASS_GROUPS),$(CLASS_GROUPS),$(TAIL_LIST))
EXTRACT_ARGS ?= --target verb
EVAL_ARGS    ?= $(if $(CLASS_GROUPS),--class-groups $(CLASS_GROUPS),--tail-classes $(TAIL_LIST))

include $(dir $(lastword $(MAKEFILE_LIST)))common.mk
