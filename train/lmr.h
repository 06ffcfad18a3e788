/* LMR (DESIGN section 6, steps 1-7) around the numeric ops of backend.h: the class weights and
 * their monotonicity check, the few-shot set, the memory bank of the last K batches (current one
 * appended before use), the per-step mixing draws and the soft targets. */
#ifndef LMR_TRAIN_LMR_H
#define LMR_TRAIN_LMR_H

#include <stdint.h>

#include "backend.h"
#include "lmr_error.h"
#include "rng.h"

typedef struct {
    double l, h, d, eps; /* class weight: c~ = 1/log((n + eps) d), rescaled to [h, l] */
    double p;            /* mix fraction: the first floor(p B) rows are mixed */
    int omega;           /* few-shot: n <= omega */
    int K;               /* memory bank: batches */
    int allow_nonmonotone;
} LmrParams;

/** Fill params from a preset name ("epic100-verbs", "ssv2-lt", "videolt-lt").
 *  @return 0 or LMR_ENOTFOUND. */
int lmr_preset(LmrParams *p, const char *name);

/** Step 1: class weights c (C) from counts (C). Classes with no clips get weight 0 and take no
 *  part in the min/max. @return 0; LMR_EINVAL when some class with clips has (n + eps) d <= 1
 *  and allow_nonmonotone is off (err names the class and the smallest d that works), or when
 *  (n + eps) d == 1 exactly (division by zero even in the original behaviour). */
int lmr_class_weights(const LmrParams *p, const int64_t *counts, int C, float *c, char *err);

/* Step 3: ring of K slots of B keys each, contiguous so the filled part is one (N, F) matrix. */
typedef struct {
    int K, B, F;
    int n_filled; /* slots holding a batch (<= K) */
    long n_pushed;
    float *keys, *keys_n; /* (K*B, F) backend memory: features and LN0(features) */
    uint8_t *key_ok;      /* (K*B) backend memory: 0 for keys of few-shot classes */
    int32_t *key_clip;    /* (K*B) backend memory: the clip (dataset index) each key was made from; -1 unknown */
    BackendCtx *ctx;      /* borrowed */
} LmrBank;

int lmr_bank_init(LmrBank *b, BackendCtx *ctx, int K, int B, int F);
void lmr_bank_free(LmrBank *b);
/** Append the current batch (f, fn (B,F) backend memory; ok, clip (B) host), dropping the oldest
 *  when full. @return the slot used; the batch's keys are rows slot*B .. slot*B+B-1. */
int lmr_bank_push(LmrBank *b, const float *f, const float *fn, const uint8_t *ok_host, const int32_t *clip_host);
/** Keys in use: n_filled * B. */
static inline int lmr_bank_keys(const LmrBank *b) { return b->n_filled * b->B; }

/* The keys that may take part (key_ok set), gathered into one block, oldest batch first, and kept
 * up to date a batch at a time: a push appends the new batch's usable keys and drops the oldest
 * batch's from the front, so no step regathers the whole bank. A key left out has zero weight in
 * every row's softmax, so lmr_forward on the block (all keys ok) gives the same reconstruction
 * with fewer GEMM columns; with class-balanced batches from a long tail, most keys are few-shot.
 * The block lives in the bank's backend memory (host for cpu, device for cuda); the bookkeeping
 * (which bank position sits in which row) stays on the host, so no step waits for the device. */
typedef struct {
    int K, B, F;
    BackendCtx *ctx;      /* borrowed */
    float *keys, *keys_n; /* (2 K B, F) backend memory; the block is rows lo .. hi-1 */
    int32_t *clip;        /* (2 K B) backend memory: each row's clip, as key_clip of the bank */
    uint8_t *ones;        /* (K B) backend memory, all 1: the key_ok of the block's keys */
    uint8_t *ok;          /* (K B) host: the bank's key_ok, as pushed */
    int32_t *row;         /* (K B) bank position -> storage row, -1 when left out */
    int32_t *take;        /* (K B) host scratch: bank positions to gather */
    int *seg_lo, *seg_n;  /* (K) each slot's first storage row and count; seg_n -1: empty slot */
    int lo, hi;
} LmrKeys;

int lmr_keys_init(LmrKeys *k, BackendCtx *ctx, int K, int B, int F);
void lmr_keys_free(LmrKeys *k);
/** After lmr_bank_push(b, ..., ok) filled `slot`: append its usable keys (ok: the batch's B flags,
 *  host memory), dropping the batch it replaced. */
void lmr_keys_push(LmrKeys *k, const LmrBank *b, int slot, const uint8_t *ok);
/** Rebuild from the bank (after a resume): the same keys in the same order as the pushes gave.
 *  @return 0 or the backend's error reading the bank's flags. */
int lmr_keys_rebuild(LmrKeys *k, const LmrBank *b);
/** Bank positions (n, host memory) -> rows of the block, -1 for a key left out (the rows' own-key
 *  indices). */
void lmr_keys_map(const LmrKeys *k, int32_t *idx, int n);
static inline int lmr_keys_count(const LmrKeys *k) { return k->hi - k->lo; }
static inline const float *lmr_keys_f(const LmrKeys *k) { return k->keys + (size_t)k->lo * k->F; }
static inline const float *lmr_keys_fn(const LmrKeys *k) { return k->keys_n + (size_t)k->lo * k->F; }
static inline const int32_t *lmr_keys_clip(const LmrKeys *k) { return k->clip + k->lo; }

/** Step 6 draws for one step: partner (B) uniform in [0, B), a (B) ~ U(0,1), for the first
 *  floor(p B) rows (others: partner = i, a = 0). @return n_mix. */
int lmr_draw_mix(Rng *rng, double p, int B, int32_t *partner, float *a);

/** Soft targets (B,C) on the host: row i is (1-a_i) y(i) + a_i y(partner_i) for i < n_mix, else
 *  y(i), where y(j) is the one-hot of clip j (multi-label: multi-hot / L; with multi_hot the
 *  multi-hot itself, for --loss bce). labels of row j: lab[off[j] .. off[j+1]). */
void lmr_targets(float *Y, const int32_t *lab, const int32_t *off, const int32_t *partner,
                 const float *a, int n_mix, int B, int C, int multi_hot);

#endif
