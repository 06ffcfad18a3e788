/* Per-class accuracy against training count (log x), one point per class present in the
 * evaluation data, coloured and shaped by group; several checkpoints side by side. PNG, PDF or
 * SVG through cairo, chosen by the file's extension. */
#ifndef LMR_EVAL_PLOT_H
#define LMR_EVAL_PLOT_H

#include <stdint.h>

#include "lmr_error.h"

typedef struct {
    const char *title;              /* panel title, e.g. the checkpoint's file stem */
    int n_classes;
    const int64_t *train_counts;    /* [C] borrowed */
    const double *class_acc;        /* [C] borrowed, < 0 for classes not in the evaluation data */
    const int *groups;              /* [C] borrowed, LMR_GROUP_* */
    double avg_class_acc;           /* shown in the title; < 0: not shown */
    const char *const *class_names; /* [C] borrowed or NULL: the outliers' labels ("class N" without) */
    int64_t few_max;                /* few = training count <= few_max: a vertical line; 0 = none
                                       (groups from a list, where few is what the list says) */
} PlotPanel;

typedef enum { PLOT_PNG = 0, PLOT_PDF = 1, PLOT_SVG = 2 } PlotFormat;

/** The format a file name asks for: its extension .png, .pdf or .svg (any case).
 *  @return a PlotFormat, or -1 for any other name. */
int plot_format(const char *path);

/** Draw n_panels panels side by side, with caption (one line under them: the data, the group
 *  rule; NULL for none), and write path in the format of its extension, through path.tmp and
 *  a rename (a reader never sees half a file; an existing file is replaced only when complete).
 *  @return 0, LMR_EINVAL (no panel, unknown extension), LMR_EUNSUPPORTED (built without cairo or
 *  without its PDF/SVG surface), LMR_EIO; err says why. */
int plot_write(const char *path, const PlotPanel *panels, int n_panels, const char *caption, char *err);

/** Release cairo's and fontconfig's process-wide caches, so a leak checker sees a clean exit.
 *  Call once, at exit, after the last plot_write; a no-op without cairo. */
void plot_cleanup(void);

#endif
