/* LMR's host-side pieces: class weights, bank bookkeeping, mixing draws and targets. The
 * reconstruction itself (similarities, masks, softmax, gradients) is lmr_forward/lmr_backward
 * in the backend. */
#include "lmr.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int lmr_preset(LmrParams *p, const char *name)
{
    LmrParams base = {.l = 0.6, .h = 0.001, .d = 0.25, .eps = 5, .p = 0.5, .omega = 20, .K = 8};
    if (strcmp(name, "ssv2-lt") == 0 || strcmp(name, "videolt-lt") == 0) {
        *p = base;
        return 0;
    }
    if (strcmp(name, "epic100-verbs") == 0) {
        *p = base;
        p->l = 1.0;
        p->h = 0.01;
        p->d = 0.15;
        p->p = 1.0;
        p->allow_nonmonotone = 1; // as published: (1 + 5) * 0.15 < 1
        return 0;
    }
    return LMR_ENOTFOUND;
}

int lmr_class_weights(const LmrParams *p, const int64_t *counts, int C, float *c, char *err)
{
    double lo = INFINITY, hi = -INFINITY;
    int64_t n_min = -1;
    int c_min = -1;
    for (int k = 0; k < C; k++) {
        if (counts[k] <= 0)
            continue;
        if (n_min < 0 || counts[k] < n_min) {
            n_min = counts[k];
            c_min = k;
        }
        double arg = ((double)counts[k] + p->eps) * p->d;
        if (arg == 1.0)
            return lmr_fail(err, LMR_EINVAL, "class %d (%lld clips): (n + eps) * d is exactly 1, the weight is infinite",
                            k, (long long)counts[k]);
        double t = 1.0 / log(arg);
        lo = t < lo ? t : lo;
        hi = t > hi ? t : hi;
    }
    if (n_min < 0)
        return lmr_fail(err, LMR_EINVAL, "no class has clips");
    if (((double)n_min + p->eps) * p->d <= 1.0 && !p->allow_nonmonotone) {
        double need = 1.0 / ((double)n_min + p->eps);
        // smallest 3-significant-digit value strictly above the bound
        double scale = pow(10.0, 2 - floor(log10(need))), sug = ceil(need * scale) / scale;
        if (sug <= need)
            sug += 1.0 / scale;
        return lmr_fail(err, LMR_EINVAL,
                        "class %d has %lld clips: (n + eps) * d = %.4g <= 1, so the LMR class weights are not "
                        "monotone in n; use d > %.6g (e.g. --lmr-d %.3g), or --lmr-allow-nonmonotone for the "
                        "original behaviour",
                        c_min, (long long)n_min, ((double)n_min + p->eps) * p->d, need, sug);
    }
    for (int k = 0; k < C; k++) {
        if (counts[k] <= 0) {
            c[k] = 0.0f;
            continue;
        }
        double t = 1.0 / log(((double)counts[k] + p->eps) * p->d);
        // every class with the same count: no spread to rescale, all get h
        c[k] = hi > lo ? (float)(p->h + (p->l - p->h) * (t - lo) / (hi - lo)) : (float)p->h;
    }
    return 0;
}

int lmr_bank_init(LmrBank *b, BackendCtx *ctx, int K, int B, int F)
{
    memset(b, 0, sizeof *b);
    b->K = K;
    b->B = B;
    b->F = F;
    b->ctx = ctx;
    size_t n = (size_t)K * B;
    int rc = backend_alloc(ctx, (void **)&b->keys, n * F * sizeof(float));
    if (!rc)
        rc = backend_alloc(ctx, (void **)&b->keys_n, n * F * sizeof(float));
    if (!rc)
        rc = backend_alloc(ctx, (void **)&b->key_ok, n);
    if (!rc)
        rc = backend_alloc(ctx, (void **)&b->key_clip, n * sizeof *b->key_clip);
    if (!rc) { // nothing pushed yet: no key has a clip
        int32_t *none = malloc(n * sizeof *none);
        if (!none)
            rc = LMR_ENOMEM;
        for (size_t j = 0; none && j < n; j++)
            none[j] = -1;
        if (none)
            rc = backend_upload(ctx, b->key_clip, none, n * sizeof *none);
        free(none);
    }
    if (rc)
        lmr_bank_free(b);
    return rc;
}

void lmr_bank_free(LmrBank *b)
{
    if (!b || !b->ctx)
        return;
    backend_release(b->ctx, b->keys);
    backend_release(b->ctx, b->keys_n);
    backend_release(b->ctx, b->key_ok);
    backend_release(b->ctx, b->key_clip);
    memset(b, 0, sizeof *b);
}

int lmr_bank_push(LmrBank *b, const float *f, const float *fn, const uint8_t *ok_host, const int32_t *clip_host)
{
    int slot = (int)(b->n_pushed % b->K);
    size_t off = (size_t)slot * b->B, bytes = (size_t)b->B * b->F * sizeof(float);
    backend_copy(b->ctx, b->keys + off * b->F, f, bytes);
    backend_copy(b->ctx, b->keys_n + off * b->F, fn, bytes);
    backend_upload(b->ctx, b->key_ok + off, ok_host, (size_t)b->B);
    backend_upload(b->ctx, b->key_clip + off, clip_host, (size_t)b->B * sizeof *clip_host);
    b->n_pushed++;
    if (b->n_filled < b->K)
        b->n_filled++;
    return slot;
}

int lmr_keys_init(LmrKeys *k, BackendCtx *ctx, int K, int B, int F)
{
    memset(k, 0, sizeof *k);
    k->K = K, k->B = B, k->F = F;
    k->ctx = ctx;
    size_t n = (size_t)K * B, rows = (size_t)2 * n * F * sizeof(float);
    int rc = backend_alloc(ctx, (void **)&k->keys, rows);
    if (!rc)
        rc = backend_alloc(ctx, (void **)&k->keys_n, rows);
    if (!rc)
        rc = backend_alloc(ctx, (void **)&k->clip, (n ? 2 * n : 1) * sizeof *k->clip);
    if (!rc)
        rc = backend_alloc(ctx, (void **)&k->ones, n ? n : 1);
    k->ok = calloc(n ? n : 1, 1);
    k->row = malloc(sizeof *k->row * (n ? n : 1));
    k->take = malloc(sizeof *k->take * (n ? n : 1));
    k->seg_lo = malloc(sizeof(int) * (size_t)K);
    k->seg_n = malloc(sizeof(int) * (size_t)K);
    if (rc || !k->ok || !k->row || !k->take || !k->seg_lo || !k->seg_n) {
        lmr_keys_free(k);
        return LMR_ENOMEM;
    }
    memset(k->ok, 1, n); // the all-ones flags of the block, uploaded once
    backend_upload(ctx, k->ones, k->ok, n);
    memset(k->ok, 0, n);
    for (size_t p = 0; p < n; p++)
        k->row[p] = -1;
    for (int s = 0; s < K; s++)
        k->seg_lo[s] = 0, k->seg_n[s] = -1;
    return 0;
}

void lmr_keys_free(LmrKeys *k)
{
    if (!k)
        return;
    backend_release(k->ctx, k->keys);
    backend_release(k->ctx, k->keys_n);
    backend_release(k->ctx, k->clip);
    backend_release(k->ctx, k->ones);
    free(k->ok);
    free(k->row);
    free(k->take);
    free(k->seg_lo);
    free(k->seg_n);
    memset(k, 0, sizeof *k);
}

/* Rows [from, from + n) of the key arrays (and their clips) to [to, to + n), to < from, in pieces that do not
 * overlap (a device copy must not), in order, so each reads rows no earlier piece has written. */
static void keys_move(LmrKeys *k, int to, int from, int n)
{
    size_t rb = (size_t)k->F * sizeof(float);
    int step = from - to;
    for (int done = 0; done < n; done += step) {
        int m = n - done < step ? n - done : step;
        backend_copy(k->ctx, k->keys + (size_t)(to + done) * k->F, k->keys + (size_t)(from + done) * k->F,
                     (size_t)m * rb);
        backend_copy(k->ctx, k->keys_n + (size_t)(to + done) * k->F, k->keys_n + (size_t)(from + done) * k->F,
                     (size_t)m * rb);
        backend_copy(k->ctx, k->clip + to + done, k->clip + from + done, (size_t)m * sizeof *k->clip);
    }
}

/* The block back to the start of the storage: at most once per K pushes, since it never holds
 * more than K batches and the storage has room for 2 K. */
static void keys_shift(LmrKeys *k)
{
    int lo = k->lo;
    if (lo > 0)
        keys_move(k, 0, lo, k->hi - lo);
    for (size_t p = 0; p < (size_t)k->K * k->B; p++)
        if (k->row[p] >= 0)
            k->row[p] -= lo;
    for (int s = 0; s < k->K; s++)
        if (k->seg_n[s] >= 0)
            k->seg_lo[s] -= lo;
    k->hi -= lo;
    k->lo = 0;
}

/* ok: the slot's B flags (host). */
static void keys_append(LmrKeys *k, const LmrBank *b, int slot, const uint8_t *ok)
{
    if (k->hi + k->B > 2 * k->K * k->B)
        keys_shift(k);
    k->seg_lo[slot] = k->hi;
    k->seg_n[slot] = 0;
    int n = 0;
    for (int j = 0; j < k->B; j++) {
        size_t p = (size_t)slot * k->B + j;
        k->ok[p] = ok[j];
        k->row[p] = -1;
        if (!ok[j])
            continue;
        k->take[n++] = (int32_t)p;
        k->row[p] = k->hi + k->seg_n[slot]++;
    }
    backend_gather_rows(k->ctx, k->keys + (size_t)k->hi * k->F, b->keys, k->take, n, k->F);
    backend_gather_rows(k->ctx, k->keys_n + (size_t)k->hi * k->F, b->keys_n, k->take, n, k->F);
    // the clip ids travel as 4-byte rows: the gather copies bits, never does arithmetic on them
    backend_gather_rows(k->ctx, (float *)(k->clip + k->hi), (const float *)b->key_clip, k->take, n, 1);
    k->hi += n;
}

void lmr_keys_push(LmrKeys *k, const LmrBank *b, int slot, const uint8_t *ok)
{
    if (k->seg_n[slot] >= 0) { // the slot's previous batch is the oldest: at the front
        k->lo += k->seg_n[slot];
        for (int j = 0; j < k->B; j++)
            k->row[(size_t)slot * k->B + j] = -1;
    }
    keys_append(k, b, slot, ok);
}

int lmr_keys_rebuild(LmrKeys *k, const LmrBank *b)
{
    k->lo = k->hi = 0;
    for (size_t p = 0; p < (size_t)k->K * k->B; p++)
        k->row[p] = -1;
    for (int s = 0; s < k->K; s++)
        k->seg_lo[s] = 0, k->seg_n[s] = -1;
    int rc = backend_download(k->ctx, k->ok, b->key_ok, (size_t)k->K * k->B);
    if (rc < 0)
        return rc;
    // oldest first: slots 0.. while the bank fills, then from the next one to be overwritten
    int first = b->n_filled < b->K ? 0 : (int)(b->n_pushed % b->K);
    for (int t = 0; t < b->n_filled; t++) {
        int s = (first + t) % b->K;
        keys_append(k, b, s, k->ok + (size_t)s * k->B);
    }
    return 0;
}

void lmr_keys_map(const LmrKeys *k, int32_t *idx, int n)
{
    int N = k->K * k->B;
    for (int i = 0; i < n; i++)
        idx[i] = idx[i] >= 0 && idx[i] < N && k->row[idx[i]] >= 0 ? k->row[idx[i]] - k->lo : -1;
}

int lmr_draw_mix(Rng *rng, double p, int B, int32_t *partner, float *a)
{
    int n_mix = (int)floor(p * B + 1e-9);
    n_mix = n_mix < 0 ? 0 : n_mix > B ? B : n_mix;
    for (int i = 0; i < B; i++) {
        partner[i] = i;
        a[i] = 0.0f;
    }
    for (int i = 0; i < n_mix; i++) {
        partner[i] = (int32_t)rng_below(rng, (uint64_t)B);
        a[i] = rng_uniform(rng);
    }
    return n_mix;
}

/* Add w * y(j) to row t. */
static void add_label(float *t, const int32_t *lab, const int32_t *off, int j, float w, int multi_hot)
{
    int k = off[j + 1] - off[j];
    float each = multi_hot ? w : w / (float)k;
    for (int q = off[j]; q < off[j + 1]; q++)
        t[lab[q]] += each;
}

void lmr_targets(float *Y, const int32_t *lab, const int32_t *off, const int32_t *partner,
                 const float *a, int n_mix, int B, int C, int multi_hot)
{
    memset(Y, 0, (size_t)B * C * sizeof *Y);
    for (int i = 0; i < B; i++) {
        float *t = Y + (size_t)i * C;
        if (i < n_mix) {
            add_label(t, lab, off, i, 1.0f - a[i], multi_hot);
            add_label(t, lab, off, partner[i], a[i], multi_hot);
        } else {
            add_label(t, lab, off, i, 1.0f, multi_hot);
        }
    }
}
