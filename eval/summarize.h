/* lmr-eval --summarize: many runs (methods x seeds, each an lmr-eval --json file) folded into one
 * table, methods as rows, the group accuracies (and mAP for multi-label data) as mean +- std over
 * seeds with the best mean of each column marked; written as Markdown (stdout and PREFIX.md),
 * CSV and JSON, and drawn (PNG, PDF or SVG by extension): grouped bars per metric with each seed's
 * value, and per class the accuracy minus the baseline's against the training count (log x).
 * The run files carry what the table needs (summarize_tags): method, seed, per-class
 * accuracies and training counts. */
#ifndef LMR_EVAL_SUMMARIZE_H
#define LMR_EVAL_SUMMARIZE_H

#include <jansson.h>
#include <stdint.h>

#include "lmr_error.h"
#include "metrics.h"

/** The keys a run file (lmr-eval --json) carries for the summary: "method" (unless NULL), "seed"
 *  (unless UINT64_MAX), "posthoc" and "tau" (when a post-hoc correction ran), "class_acc" (C, null
 *  for absent classes) and "train_counts" (C, when known). @return a new object, NULL when out
 *  of memory. */
json_t *summarize_tags(const char *method, uint64_t seed, const char *posthoc, double tau, const EvalResult *res,
                       const int64_t *counts, int C);

/** The --summarize command line: lmr-eval --summarize RUN.json... [--out PREFIX] [--plot F]
 *  [--baseline METHOD] [--quiet]. @return the exit status (0, 1, 2). */
int summarize_main(int argc, char **argv);

/* One cell of the table: mean and sample standard deviation over the seeds that report it. */
typedef struct {
    double mean, sd;
    int n; /* seeds with a value (0: the column does not apply) */
} SumCell;

/** Mean and sample std (n - 1; 0 for one value) of the values >= 0 among x (n). */
SumCell summarize_cell(const double *x, int n);

#endif
