/* Evaluation metrics (DESIGN section 7): top-1/top-5 over clips, per-class accuracy over the
 * classes present in the evaluation data, group means (head / medium / tail / few) and, for
 * multi-label data, average precision per class with the same tie rule as scikit-learn.
 * Clips are added one at a time (scores already summed over views); nothing here reads files. */
#ifndef LMR_EVAL_METRICS_H
#define LMR_EVAL_METRICS_H

#include <stdint.h>

#include "classes.h"
#include "lmr_error.h"

/* Class groups are formats/classes.h's LMR_GROUP_* (head, tail, few, medium; NONE). */

/* Accumulates clips; then eval_finish computes the numbers. */
typedef struct {
    int n_classes;
    int keep_scores;          /* store every labelled clip's scores for average precision */
    int64_t n_scored, n_labelled;
    int64_t top1_hits, top5_hits;
    int64_t *class_n;         /* [C] labelled clips carrying class c */
    int64_t *class_correct;   /* [C] of those, clips with c among their k best scores (k labels;
                                 classes_score_clip) */
    int64_t *confusion;       /* [C, C] true label x top-1, or NULL */
    void *spill;              /* FILE *: the labelled clips' scores [n_labelled, C], when keep_scores, in
                                 an unlinked temporary file ($TMPDIR or /tmp): read once more by
                                 eval_finish, never held in memory */
    float *label_scores;      /* the clip's score of each of its labels, back to back with labels */
    int32_t *labels;          /* all labels back to back, when keep_scores */
    int64_t *label_off;       /* [n_labelled + 1] offsets into labels, when keep_scores */
    int64_t cap_clips, cap_labels;
    double *dscores;          /* [C] scratch: the clip's scores for classes_score_clip */
    char last_error[LMR_ERRLEN];
} EvalAcc;

/** @param keep_scores  1 to compute average precision: memory 16 bytes a clip and 8 a label (the
 *                      n_clips x C scores go to a temporary file, read once by eval_finish).
 *  @param confusion    1 to count the C x C confusion matrix.
 *  @return 0, LMR_EINVAL, LMR_ENOMEM. */
int eval_acc_init(EvalAcc *a, int n_classes, int keep_scores, int confusion);
void eval_acc_free(EvalAcc *a);

/** Top-k classes of a score vector, best first; ties go to the lower class index.
 *  k is clamped to n_classes. */
void eval_topk(const float *scores, int n_classes, int k, int *out);

/** Clip scores from per-view logits: softmax of each view, summed over views.
 *  logits: [n_views, C]; out: [C]. Stable for any finite logits. */
void eval_sum_softmax(const float *logits, int n_views, int n_classes, float *out);

/** Add one clip: scores [C] (any monotone score: summed softmax), its labels (n_labels = 0 for
 *  an unlabelled clip, which is counted in n_scored only). Per-class accuracy follows
 *  classes_score_clip (formats/classes.h): a label listed twice counts once; with k labels, c is
 *  correct when among the k best scores. Top-1/top-5: a hit when any label is in the top k.
 *  @return 0, LMR_ERANGE (a label outside [0, C)), LMR_ENAN (a score is not finite),
 *  LMR_ENOMEM; last_error says which, and the clip counts nowhere. */
int eval_acc_add(EvalAcc *a, const float *scores, const int32_t *labels, int n_labels);

typedef struct {
    int n_classes;
    int64_t n_clips, n_unlabelled;
    double top1, top5;              /* fractions of labelled clips, -1 when none */
    double avg_class_acc;           /* mean over present classes, -1 when none */
    double group_acc[LMR_N_GROUPS];/* mean over present classes of each group, -1 when empty */
    int n_present, group_present[LMR_N_GROUPS];
    double map;                     /* mean AP over present classes, -1 when not computed */
    double group_map[LMR_N_GROUPS];
    double *class_acc;              /* [C] owned, -1 for absent classes */
    double *class_ap;               /* [C] owned, -1 for absent classes or when not computed */
} EvalResult;

/** Compute the metrics. groups: [C] per class (LMR_GROUP_*; NONE counts only in the average),
 *  or NULL. Average precision is exact (the same numbers as eval_average_precision on every
 *  class's column), from one pass over the spilled scores.
 *  @return 0, LMR_ENOMEM, -errno (reading the spilled scores). @note free the result with
 *  eval_result_free. */
int eval_finish(const EvalAcc *a, const int *groups, EvalResult *r);
void eval_result_free(EvalResult *r);

typedef struct {
    float score;
    int positive;
} EvalScorePair;

/** Average precision of one class, scikit-learn's definition: sum over distinct score
 *  thresholds of (R_n - R_{n-1}) P_n, tied scores forming one threshold.
 *  pairs: [n], sorted in place (descending score).
 *  @return the AP, or -1 when there is no positive. */
double eval_average_precision(EvalScorePair *pairs, int64_t n);

#endif
