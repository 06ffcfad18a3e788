/* Per-class accuracy against training count (log x), one point per class present in the
 * evaluation data, coloured by group; several checkpoints side by side. PNG through cairo. */
#ifndef LMR_EVAL_PLOT_H
#define LMR_EVAL_PLOT_H

#include <stdint.h>

#include "lmr_error.h"

typedef struct {
    const char *title;           /* panel title, e.g. the checkpoint's file name */
    int n_classes;
    const int64_t *train_counts; /* [C] borrowed */
    const double *class_acc;     /* [C] borrowed, < 0 for classes not in the evaluation data */
    const int *groups;           /* [C] borrowed, LMR_GROUP_* */
} PlotPanel;

/** Draw n_panels panels side by side and write a PNG.
 *  @return 0, LMR_EINVAL (no panel), LMR_EUNSUPPORTED (built without cairo), LMR_EIO; err says why. */
int plot_write_png(const char *path, const PlotPanel *panels, int n_panels, char *err);

/** Release cairo's and fontconfig's process-wide caches, so a leak checker sees a clean exit.
 *  Call once, at exit, after the last plot_write_png; a no-op without cairo. */
void plot_cleanup(void);

#endif
