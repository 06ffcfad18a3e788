/* Learning-rate schedules (linear warm-up, then cosine or step) and the optimiser step: optional
 * global-norm gradient clipping and AdamW over the model's one contiguous block. */
#ifndef LMR_TRAIN_OPTIM_H
#define LMR_TRAIN_OPTIM_H

#include "model.h"

typedef enum { SCHED_COSINE = 0, SCHED_STEP = 1, SCHED_CONSTANT = 2 } SchedKind;

#define OPTIM_MAX_MILESTONES 8

typedef struct {
    SchedKind kind;
    double lr;                 /* base rate */
    long warmup_steps;         /* linear ramp from lr/warmup to lr */
    long total_steps;          /* cosine: decays to 0 at total_steps */
    long steps_per_epoch;      /* step: milestones are epochs */
    int n_milestones;
    int milestones[OPTIM_MAX_MILESTONES];
    double gamma;              /* step: factor at each milestone */
} LrSchedule;

typedef struct {
    double beta1, beta2, eps, weight_decay;
    double clip; /* max global grad norm; <= 0 = off */
} AdamWConfig;

/** Rate for 0-based step t (the step about to run). */
double optim_lr(const LrSchedule *s, long t);

/** Clip (when asked) and apply AdamW to every parameter; t is the 1-based step.
 *  @return the global gradient norm before clipping (-1 when clipping is off). */
double optim_step(Model *m, const AdamWConfig *c, double lr, long t);

#endif
