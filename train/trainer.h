/* The training loop of both stages (DESIGN section 6): set-up checks before any step, the step
 * itself (forward, LMR, loss, backward, gradient sync point, AdamW), per-epoch validation,
 * logging and checkpoints, resume. main.c turns the command line into TrainOptions. */
#ifndef LMR_TRAIN_TRAINER_H
#define LMR_TRAIN_TRAINER_H

#include <stdint.h>
#include <stdio.h>

#include "backend.h"
#include "dataset.h"
#include "lmr.h"
#include "method.h"
#include "optim.h"

typedef enum { STAGE_INIT = 0, STAGE_LMR = 1 } TrainStage;

/* Messages for the user (warnings, progress); the library never prints. */
typedef void (*TrainNoteFn)(void *user, int is_progress, const char *msg);
/* Called once per step when every gradient is complete, before clipping and AdamW: the place for
 * a data-parallel all-reduce. grads is backend memory of n floats. */
typedef int (*TrainGradSyncFn)(void *user, float *grads, size_t n);

typedef struct {
    TrainStage stage;
    int lmr_off;          /* lmr stage as plain cRT: class-balanced, re-initialised head, no LMR */
    const char *out;      /* checkpoint path */
    const char *init;     /* init checkpoint (lmr stage) */
    const char *log_path; /* --log F.jsonl, NULL = none */
    int epochs, batch;
    int hidden;           /* -1: 512 for init, the init checkpoint's for lmr */
    double lr;            /* <= 0: 1e-3 init, 1e-4 lmr */
    double smoothing;     /* init stage label smoothing */
    LrSchedule sched;     /* kind, milestones, gamma; lr and steps are filled in by the trainer */
    double warmup_epochs;
    AdamWConfig adam;
    LmrParams lmr;
    int loss_bce;
    uint64_t seed;
    BackendKind device;
    int threads;
    int resume;
    long stop_after;      /* > 0: save and stop after this many steps of this run (tests) */
    long save_every;      /* > 0: also checkpoint every this many steps */
    int prefetch;         /* batches in flight, default 4 */
    double progress_every; /* seconds between progress notes */
    TrainNoteFn note;
    void *note_user;
    TrainGradSyncFn grad_sync;
    void *grad_sync_user;
    struct Dist *dist;    /* data-parallel ranks (dist.h); NULL = one process */
    int tf32;             /* cuda: TF32 tensor-core GEMMs */
    const char *preset;   /* the preset the LMR values started from (NULL: ssv2-lt), recorded */
    const char *command;  /* the command line, recorded in the checkpoint (NULL: none) */
    int allow_other_features; /* --init made on features of another backbone/weights: warn, do not refuse */
    int quiet;            /* no configuration summary at the start */
    /* long-tail methods (method.h) */
    const char *method;   /* NULL: ce for init; lmr for stage lmr (crt with lmr_off) */
    MethodParams mp;      /* the methods' tunables, canonical defaults */
    int smoothing_set;    /* smoothing was asked for: every init method uses it (else only ce smooths) */
    int freeze_rep;       /* stage lmr: LayerNorm and pre-logits frozen, the classifier trains */
} TrainOptions;

/** The best checkpoint's path next to out: "X.safetensors" -> "X.best.safetensors", else out + ".best". */
void train_best_path(char *dst, size_t cap, const char *out);

/** Defaults of DESIGN section 6 (ssv2-lt LMR values, AdamW 0.9/0.999 wd 0.05, batch 64, ...). */
void train_options_default(TrainOptions *o);

/* What a run reports back. */
typedef struct {
    double final_loss;   /* mean loss of the last epoch */
    double best_metric;  /* best validation avg class accuracy, -1 without --val */
    double samples_per_s;
    long steps;          /* steps run by this call */
} TrainResult;

/** The method a run uses: o->method, else the stage's default. @return NULL (err says why) when
 *  the name is unknown or belongs to the other stage. */
const Method *train_method(const TrainOptions *o, char *err);

/** Train on train (and validate on val, may be NULL). Every input check happens before the
 *  first step. @return 0, LMR_DONE (resume found the run finished), LMR_EMISMATCH / LMR_EINVAL /
 *  LMR_ENOTFOUND (bad inputs), LMR_ENAN (loss not finite: out keeps the last good checkpoint),
 *  LMR_ENODEV, I/O errors. err says what and where. */
int train_run(const TrainOptions *o, Dataset *train, Dataset *val, TrainResult *res, char *err);

/* Validation metrics of DESIGN section 7 (the subset lmr-train reports). */
typedef struct {
    double avg_class_acc, head_acc, tail_acc, few_acc, top1;
} ValMetrics;

/** Evaluate a host-readable model on d: per clip softmax summed over views, top-1; groups from
 *  train_counts (few <= 20, head share 0.5). @return 0 or a read error. */
int train_validate(Model *m, Dataset *d, const int64_t *train_counts, ValMetrics *out, char *err);

#endif
