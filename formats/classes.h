/* Classes: per-class clip counts and the head / tail / few-shot partition (DESIGN section 7),
 * shared by lmr-train (few-shot classes for LMR), lmr-eval (group accuracies) and lmr-pack
 * --info. A group array has one entry per class: LMR_GROUP_* or LMR_GROUP_NONE. */
#ifndef LMR_CLASSES_H
#define LMR_CLASSES_H

#include <stdint.h>

#include "lmr_error.h"
#include "shard.h"

enum {
    LMR_GROUP_NONE = -1,  /* not in any group (a class missing from a --class-groups file) */
    LMR_GROUP_HEAD = 0,
    LMR_GROUP_TAIL = 1,
    LMR_GROUP_FEW = 2,
    LMR_GROUP_MEDIUM = 3, /* only from the VideoLT rule or a groups file */
    LMR_N_GROUPS = 4,
};

#define LMR_FEW_MAX 20        /* default: few = training count <= 20 */
#define LMR_HEAD_SHARE 0.5    /* default: head classes hold at most half the training clips */

/** "head", "tail", "few", "medium", or "none". Never NULL. */
const char *classes_group_name(int group);
/** Group of a name ("head", "tail", "few" / "few-shot" / "fewshot", "medium"; any case).
 *  @return LMR_GROUP_* or LMR_GROUP_NONE for an unknown name. */
int classes_group_parse(const char *name);

/** Clips per class of a shard set (multi-label: each label counts once per clip).
 *  @param[out] counts  n_classes entries, zeroed first; labels >= n_classes are ignored.
 *  @return 0. @note the same numbers as shardset_meta(s)->class_counts, recounted from labels. */
int classes_count(const ShardSet *s, int n_classes, int64_t *counts);

/** Default partition (DESIGN section 7): few = count <= few_max; head = the longest run of the
 *  most frequent remaining classes (count descending, ties by lower index first) whose summed
 *  count does not exceed head_share of all training clips (the sum of counts); tail = the rest.
 *  The three groups are disjoint.
 *  @param[out] groups  n_classes entries.
 *  @return 0, LMR_EINVAL (n_classes < 0, head_share outside [0, 1]), LMR_ENOMEM. */
int classes_partition(const int64_t *counts, int n_classes, double head_share, int64_t few_max, int *groups);

/** VideoLT's rule: tail <= 100 training clips, medium 101..500, head > 500 (no few group). */
void classes_partition_videolt(const int64_t *counts, int n_classes, int *groups);

/** Read a `class,group` CSV (libcsv; an optional header line whose first field is not a number;
 *  class = index in [0, n_classes)). Classes not listed get LMR_GROUP_NONE.
 *  @param[out] groups  n_classes entries.
 *  @return 0, -errno, LMR_EPARSE (err is "FILE:LINE: reason"), LMR_ERANGE (class out of range). */
int classes_read_groups(const char *path, int n_classes, int *groups, char *err);

/** Number of classes of each group: n_in_group[LMR_N_GROUPS]. */
void classes_group_sizes(const int *groups, int n_classes, int *n_in_group);

#endif
