/* Classes: per-class clip counts, the head / tail / few-shot partition and the per-class
 * accuracy of a clip (DESIGN section 7), shared by lmr-train (few-shot classes for LMR, its
 * validation), lmr-eval (group accuracies) and lmr-pack --info. A group array has one entry per
 * class: LMR_GROUP_* or LMR_GROUP_NONE. */
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

/** Per-class accuracy of one clip, the one definition lmr-eval and lmr-train's validation share
 *  (DESIGN section 7): a clip with k distinct labels counts once for each of them, and label c is
 *  correct when c is among the clip's k best scores (top-1 for a single-label clip). A label
 *  listed twice counts once. Ranking: higher score first, equal scores to the lower class index.
 *  @param scores   [n_classes] the clip's scores (any monotone score, e.g. summed softmax).
 *  @param labels   [n_labels] the clip's labels; n_labels = 0 for an unlabelled clip.
 *  @param[in,out] n_eval   [n_classes] clips carrying each class, incremented.
 *  @param[in,out] correct  [n_classes] of those, the correct ones, incremented.
 *  @return the number of distinct labels counted (0: unlabelled), LMR_ERANGE (a label outside
 *  [0, n_classes)), LMR_ENAN (a score is NaN or infinite); on an error nothing is counted and err
 *  (NULL allowed) says which label or class. */
int classes_score_clip(const double *scores, int n_classes, const int32_t *labels, int n_labels,
                       int64_t *n_eval, int64_t *correct, char *err);

/** Read a `class,group` CSV (libcsv; an optional header line whose first field is not a number;
 *  class = index in [0, n_classes)). Classes not listed get LMR_GROUP_NONE. A class listed twice
 *  and a file that lists no class are errors.
 *  @param[out] groups  n_classes entries.
 *  @return 0, -errno, LMR_EPARSE (err is "FILE:LINE: reason", or "FILE: no class"), LMR_ERANGE
 *  (class out of range). */
int classes_read_groups(const char *path, int n_classes, int *groups, char *err);

/** Number of classes of each group: n_in_group[LMR_N_GROUPS]. */
void classes_group_sizes(const int *groups, int n_classes, int *n_in_group);

#endif
