/* lmr-eval's outputs: the table on stdout, the JSON summary, the per-class CSV and the
 * confusion CSV. One column per checkpoint; the first is the main one (--model). */
#ifndef LMR_EVAL_REPORT_H
#define LMR_EVAL_REPORT_H

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
    int multi_label;             /* mAP columns */
    uint64_t n_shards;
    const ReportColumn *cols;
    int n_cols;
} Report;

/** The summary table (one column per checkpoint). */
void report_table(FILE *f, const Report *r);
/** JSON: the main checkpoint's metrics as top-level keys, the others in "compare": [...].
 *  @return 0, LMR_EIO, LMR_ENOMEM; err names the file. */
int report_json(const char *path, const Report *r, char *err);
/** CSV class,train_count,group,n_eval,correct,accuracy[,ap] of the main checkpoint. */
int report_per_class(const char *path, const Report *r, char *err);
/** CSV true,pred,count (non-zero cells) of the main checkpoint; its acc must hold confusion. */
int report_confusion(const char *path, const Report *r, char *err);

#endif
