/* LMR's host-side pieces: class weights, bank bookkeeping, mixing draws and targets. The
 * reconstruction itself (similarities, masks, softmax, gradients) is lmr_forward/lmr_backward
 * in the backend. */
#include "lmr.h"

#include <math.h>
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
    memset(b, 0, sizeof *b);
}

int lmr_bank_push(LmrBank *b, const float *f, const float *fn, const uint8_t *ok_host)
{
    int slot = (int)(b->n_pushed % b->K);
    size_t off = (size_t)slot * b->B, bytes = (size_t)b->B * b->F * sizeof(float);
    backend_copy(b->ctx, b->keys + off * b->F, f, bytes);
    backend_copy(b->ctx, b->keys_n + off * b->F, fn, bytes);
    backend_upload(b->ctx, b->key_ok + off, ok_host, (size_t)b->B);
    b->n_pushed++;
    if (b->n_filled < b->K)
        b->n_filled++;
    return slot;
}

int lmr_bank_compact(const LmrBank *b, float *keys, float *keys_n, int32_t *map, int32_t *self_idx, int B)
{
    int N = lmr_bank_keys(b), n = 0;
    size_t row = (size_t)b->F * sizeof(float);
    for (int j = 0; j < N; j++) {
        map[j] = b->key_ok[j] ? n : -1;
        if (b->key_ok[j]) {
            memcpy(keys + (size_t)n * b->F, b->keys + (size_t)j * b->F, row);
            memcpy(keys_n + (size_t)n * b->F, b->keys_n + (size_t)j * b->F, row);
            n++;
        }
    }
    for (int i = 0; i < B; i++)
        self_idx[i] = self_idx[i] >= 0 && self_idx[i] < N ? map[self_idx[i]] : -1;
    return n;
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
