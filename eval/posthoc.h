/* Post-hoc long-tail corrections of a trained classifier (lmr-eval --posthoc), no retraining:
 *   tau-norm[:t]  classifier rows divided by |w_c|^t, bias dropped (Kang et al. 2020)
 *   la[:t]        argmax of z - t log pi, pi from the checkpoint's training counts (Menon et al. 2021)
 *   ncm           nearest class mean of the L2-normalised, centred pre-logit features; centre and
 *                 means from the tuning shard (normally the training shard)
 * Without t, t is picked on a tuning shard (--tune-on): the grid 0, 0.1, ..., 2 by average class
 * accuracy, ties to the smallest t; without a tuning shard t = 1. Each correction is written into
 * the model itself (linear heads: weights and bias; ncm: a centred cosine head), so scoring,
 * metrics and outputs run unchanged. */
#ifndef LMR_EVAL_POSTHOC_H
#define LMR_EVAL_POSTHOC_H

#include <stdint.h>

#include "lmr_error.h"
#include "model.h"

typedef enum { POSTHOC_NONE = 0, POSTHOC_TAU_NORM, POSTHOC_LA, POSTHOC_NCM } PosthocKind;

#define POSTHOC_GRID 21 /* t = 0, 0.1, ..., 2 */
#define POSTHOC_NCM_SCALE 30.0f /* the cosine head's scale: only view averaging sees it */

typedef struct {
    PosthocKind kind;
    double tau;    /* given with ":t", or chosen */
    int tau_given;
} Posthoc;

/** Parse "tau-norm", "tau-norm:0.5", "la", "la:1", "ncm". @return 0, or LMR_EUSAGE (err says why). */
int posthoc_parse(const char *arg, Posthoc *p, char *err);
/** "tau-norm", "la", "ncm" ("" for none). */
const char *posthoc_name(PosthocKind k);

/** Write the correction with strength tau into the host model m (tau-norm, la).
 *  @return 0, LMR_EINVAL (a cosine head, or la without training counts); err says why. */
int posthoc_apply(Model *m, PosthocKind k, double tau, char *err);

/** The grid search on precomputed logits: base (n clips x views x C) are the plain model's logits
 *  (tau-norm: without the bias), labels of clip i lab[off[i] .. off[i+1]); the logits at t are
 *  base * |w_c|^-t (tau-norm, wnorm) or base - t log_prior (la). acc (POSTHOC_GRID) receives each
 *  t's average class accuracy. @return the index of the best t (ties: the smallest), or < 0. */
int posthoc_grid(PosthocKind k, const float *base, int64_t n, int views, int C, const int32_t *lab,
                 const int64_t *off, const float *wnorm, const float *log_prior, double *acc);

/** Pick t on the tuning shards: score them once with m, run posthoc_grid.
 *  @return 0, a read error, LMR_ENOMEM; *tau and *acc (the best average class accuracy). */
int posthoc_tune(Model *m, PosthocKind k, const char *const *shards, int n_shards, int threads, double *tau,
                 double *acc, char *err);

/** ncm: centre and class means of the pre-logit features of the shards, installed in m as a
 *  centred cosine head. @return 0, a read error, LMR_EINVAL (a class without clips is kept at
 *  zero weight and counted in *missing). */
int posthoc_ncm(Model *m, const char *const *shards, int n_shards, int threads, int *missing, char *err);

#endif
