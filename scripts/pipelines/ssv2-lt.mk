# Something-Something v2, long-tailed (SSv2-LT): the SSv2-LT split files (same json layout as
# SSv2's own) over the SSv2 videos; head/tail/few from the benchmark's class list when given
# (CLASS_GROUPS, CSV class,group), else the head-share rule with few = <= 20 training clips.
#
#   make -f scripts/pipelines/ssv2-lt.mk BIN=build/bin SSV2_ANN=DIR LT_SPLIT=DIR VIDEOS=DIR [SHARDS=8 -j8]
#
# SSV2_ANN: the folder with something-something-v2-labels.json (from the SSv2 download).
# LT_SPLIT: the SSv2-LT split files, in SSv2's own layout (something-something-v2-train.json,
#           something-something-v2-validation.json: lists of {id, label, template, placeholders}),
#           linked from the LMR release (github.com/tobyperrett/lmr-release, "LT-Dataset splits").
# VIDEOS:   <id>.webm.
NAME      := ssv2-lt
DATASET   := ssv2
SSV2_ANN  ?= data/something-something-v2/labels
LT_SPLIT  ?= data/ssv2-lt
VIDEOS    ?= data/something-something-v2/videos
TRAIN_ANN ?= $(LT_SPLIT)/something-something-v2-train.json
VAL_ANN   ?= $(LT_SPLIT)/something-something-v2-validation.json
LABELS    ?= $(SSV2_ANN)/something-something-v2-labels.json
PRESET    ?= ssv2-lt
CLASS_GROUPS ?=
INPUTS    := $(CLASS_GROUPS)
EVAL_ARGS ?= $(if $(CLASS_GROUPS),--class-groups $(CLASS_GROUPS))

include $(dir $(lastword $(MAKEFILE_LIST)))common.mk
