/* lmr-eval's outputs: the table on stdout, the JSON summary, the per-class and confusion CSVs
 * (one per checkpoint) and the predictions CSV. One column per checkpoint; the first is the
 * main one (--model). Class names, when known, label the CSV rows. */
#ifndef LMR_EVAL_REPORT_H
#define LMR_EVAL_REPORT_H

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>

#include "lmr_error.h"
#include "metrics.h"

typedef struct {
    const char *name;     /* column title: the checkpoint's file name without .safetensors */
    const char *path;     /* the checkpoint */
    const EvalAcc *acc;   /* borrowed */
    EvalResult res;       /* borrowed */
} ReportColumn;

typedef struct {
    int n_classes;
    const int64_t *train_counts; /* [C] from the main checkpoint; NULL when it has none */
    const int *groups;           /* [C] LMR_GROUP_* */
    const char *groups_rule;     /* "head-share 0.50", "videolt", "file F" */
    const char *groups_text;     /* what the rule means, one sentence for the table header */
    const char *const *class_names; /* [C] or NULL when unknown */
    int multi_label;             /* mAP columns */
    uint64_t n_shards;
    const ReportColumn *cols;
    int n_cols;
} Report;

/** The summary table (one column per checkpoint), under the group rule and group sizes. */
void report_table(FILE *f, const Report *r);
/** JSON: the main checkpoint's metrics as top-level keys, the others in "compare": [...], and
 *  the keys of extra (may be NULL) at the top level. path "-" writes to stdout.
 *  @return 0, LMR_EIO, LMR_ENOMEM; err names the file. */
int report_json(const char *path, const Report *r, json_t *extra, char *err);
/** CSV class,name,train_count,group,n_eval,correct,accuracy[,ap] of checkpoint col (name empty
 *  when unknown; accuracy and ap empty for a class absent from the data). */
int report_per_class(const char *path, const Report *r, int col, char *err);
/** CSV true,pred,count,true_name,pred_name (non-zero cells) of checkpoint col; its acc must
 *  hold the confusion matrix. */
int report_confusion(const char *path, const Report *r, int col, char *err);

/** One CSV field: quoted (quotes doubled) when it holds a comma, a quote, CR or LF. */
void report_csv_field(FILE *f, const char *s);
/** The predictions CSV: the header, then one row per clip: id, labels (;-separated), the top-1,
 *  the top 5 (;-separated), the top-1's score divided by views (the mean over views of its
 *  probability), and the names of the labels (;-separated) and of the top-1 (empty when
 *  unknown). scores: [C] summed over views. */
void report_prediction_header(FILE *f);
void report_prediction(FILE *f, const char *id, const int32_t *labels, int n_labels, const float *scores,
                       int n_classes, int views, const char *const *class_names);

#endif
