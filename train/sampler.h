/* Batch samplers (DESIGN section 6). Instance-balanced: a shuffled permutation of the clips per
 * epoch, drop_last. Class-balanced: each draw picks a class uniformly among the classes with at
 * least one clip (the highest index included), then a clip of it uniformly. Both also draw the
 * view of each clip. A batch depends only on (seed, epoch, step), so prefetching threads and
 * resumed runs see exactly the same batches. */
#ifndef LMR_TRAIN_SAMPLER_H
#define LMR_TRAIN_SAMPLER_H

#include <stdint.h>

#include "dataset.h"
#include "lmr_error.h"

/* SAMPLER_SQRT: like class-balanced, but a class is drawn with P(c) proportional to sqrt(n_c)
 * (square-root sampling). */
typedef enum { SAMPLER_INSTANCE = 0, SAMPLER_CLASS = 1, SAMPLER_SQRT = 2 } SamplerKind;

typedef struct {
    SamplerKind kind;
    uint64_t seed;
    uint64_t n; /* clips */
    int B, views;
    int row0, rows; /* data-parallel: the loader reads the features of rows row0 .. row0 + rows only */
    /* instance-balanced: the current epoch's permutation */
    uint64_t *perm;
    long perm_epoch;
    /* class-balanced: classes with clips, and their clips (CSR) */
    int n_active;
    int32_t *active;    /* (n_active) class indices */
    uint64_t *cls_off;  /* (n_active + 1) */
    uint64_t *cls_clip; /* clips of each active class */
    double *cls_cdf;    /* square-root: (n_active) cumulative class probabilities, the last 1 */
    char last_error[LMR_ERRLEN];
} Sampler;

/** Build a sampler over d. @return 0, LMR_ENOMEM, LMR_EINVAL (fewer clips than one batch). */
int sampler_init(Sampler *s, SamplerKind kind, const Dataset *d, int B, uint64_t seed);
void sampler_free(Sampler *s);
/** Steps per epoch: floor(n / B) for both kinds (the lmr stage runs as many steps as init). */
long sampler_steps_per_epoch(const Sampler *s);
/** Clips (B) and views (B) of batch (epoch, step). Not thread-safe (caches the permutation). */
void sampler_batch(Sampler *s, long epoch, long step, uint64_t *clips, int32_t *views);

#endif
