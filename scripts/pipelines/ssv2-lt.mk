# Something-Something v2, long-tailed (SSv2-LT): the SSv2-LT split files (same json layout as
# SSv2's own) over the SSv2 videos. Groups: the LMR paper's head/tail/few lists (CLASS_GROUPS,
# CSV class,group, default scripts/class-groups/ssv2-lt.csv); CLASS_GROUPS= (empty) takes the
# head-share rule instead, with few = <= 20 training clips.
#
#   make -f scripts/pipelines/ssv2-lt.mk BIN=build/bin SSV2_ANN=DIR LT_SPLIT=DIR VIDEOS=DIR [SHARDS=8 -j8]
#
# SSV2_ANN: the folder with something-something-v2-labels.json (from the SSv2 download).
# LT_SPLIT: the SSv2-LT split files, in SSv2's own layout (something-something-v2-train.json,
#           something-something-v2-validation.json: lists of {id, label, template, placeholders}),
#           linked from the LMR release (github.com/tobyperrett/lmr-release, "LT-Dataset splits").
# VIDEOS:   <id>.webm.
GROUPS_DIR := $(abspath $(dir $(lastword $(MAKEFILE_LIST)))../class-groups)
NAME      := ssv2-lt
DATASET   := ssv2
SSV2_ANN  ?= data/something-something-v2/labels
LT_SPLIT  ?= data/ssv2-lt
VIDEOS    ?= data/something-something-v2/videos
TRAIN_ANN ?= $(LT_SPLIT)/something-something-v2-train.json
VAL_ANN   ?= $(LT_SPLIT)/something-something-v2-validation.json
LABELS    ?= $(SSV2_ANN)/something-something-v2-labels.json
PRESET    ?= ssv2-lt
CLASS_GROUPS ?= $(GROUPS_DIR)/ssv2-lt.csv
INPUTS    := $(CLASS_GROUPS)
EVAL_ARGS ?= $(if $(CLASS_GROUPS),--class-groups $(CLASS_GROUPS))

include $(dir $(lastword $(MAKEFILE_LIST)))common.mk
