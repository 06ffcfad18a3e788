/* ldam-drw: label-distribution-aware margin loss with deferred re-weighting (Cao et al.,
 * "Learning Imbalanced Datasets with Label-Distribution-Aware Margin Loss", NeurIPS 2019; their
 * losses.py and NormedLinear). The classifier is a cosine one: z_c = <f/|f|, w_c/|w_c|>, no bias;
 * the loss is CE(s (z - m_y e_y)) with s = 30 and m_c = k n_c^(-1/4), largest 0.5; from 80% of the
 * epochs on each clip is weighted by its class-balanced weight (beta 0.9999), as a weighted mean
 * (PyTorch's cross_entropy with weight=). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "method.h"

typedef struct {
    float *fn, *wn, *fnorm, *wnorm, *dfn, *dwn, *bias, *db, *dots; /* (B,F) (F,C) (B) (C) (B,F) (F,C) (C) (C) (C) */
} Ldam;

static int ldam_init(MethodCtx *m, char *err)
{
    size_t B = (size_t)m->B, F = (size_t)m->F, C = (size_t)m->C, fs = sizeof(float);
    Ldam *l = calloc(1, sizeof *l);
    if (!l)
        return lmr_fail(err, LMR_ENOMEM, "out of memory");
    m->priv = l;
    l->fn = calloc(B * F, fs);
    l->wn = calloc(F * C, fs);
    l->fnorm = calloc(B, fs);
    l->wnorm = calloc(C, fs);
    l->dfn = calloc(B * F, fs);
    l->dwn = calloc(F * C, fs);
    l->bias = calloc(C, fs);
    l->db = calloc(C, fs);
    l->dots = calloc(C, fs);
    if (!l->fn || !l->wn || !l->fnorm || !l->wnorm || !l->dfn || !l->dwn || !l->bias || !l->db || !l->dots)
        return lmr_fail(err, LMR_ENOMEM, "out of memory for the cosine classifier");
    m->head_scale = (float)m->p.ldam_s;
    return 0;
}

static void ldam_free(MethodCtx *m)
{
    Ldam *l = m->priv;
    if (l) {
        free(l->fn);
        free(l->wn);
        free(l->fnorm);
        free(l->wnorm);
        free(l->dfn);
        free(l->dwn);
        free(l->bias);
        free(l->db);
        free(l->dots);
        free(l);
    }
    m->priv = NULL;
}

/* F.normalize's guard: a zero vector stays zero. */
#define NORM_EPS 1e-12f

/* Columns [lo, hi) of w (F,C): norms, and wn = w / norm (a span for the cpu team). */
typedef struct {
    const float *w, *du;
    float *wn, *norm, *dots, *dw;
    int F, C;
} ColSpan;

static void normalise_span(void *arg, size_t lo, size_t hi)
{
    const ColSpan *a = arg;
    int C = a->C;
    for (size_t c = lo; c < hi; c++)
        a->norm[c] = 0.0f;
    for (int f = 0; f < a->F; f++) {
        const float *r = a->w + (size_t)f * C;
        for (size_t c = lo; c < hi; c++)
            a->norm[c] += r[c] * r[c];
    }
    for (size_t c = lo; c < hi; c++)
        a->norm[c] = fmaxf(sqrtf(a->norm[c]), NORM_EPS);
    for (int f = 0; f < a->F; f++) {
        const float *r = a->w + (size_t)f * C;
        float *o = a->wn + (size_t)f * C;
        for (size_t c = lo; c < hi; c++)
            o[c] = r[c] / a->norm[c];
    }
}

/* dw = (dwn - wn <wn, dwn>) / norm over columns [lo, hi). */
static void column_grad_span(void *arg, size_t lo, size_t hi)
{
    const ColSpan *a = arg;
    int C = a->C;
    for (size_t c = lo; c < hi; c++)
        a->dots[c] = 0.0f;
    for (int f = 0; f < a->F; f++) {
        const float *u = a->wn + (size_t)f * C, *du = a->du + (size_t)f * C;
        for (size_t c = lo; c < hi; c++)
            a->dots[c] += u[c] * du[c];
    }
    for (int f = 0; f < a->F; f++) {
        const float *u = a->wn + (size_t)f * C, *du = a->du + (size_t)f * C;
        float *o = a->dw + (size_t)f * C;
        for (size_t c = lo; c < hi; c++)
            o[c] = (du[c] - u[c] * a->dots[c]) / a->norm[c];
    }
}

static void ldam_head_forward(MethodCtx *m, float *z, const float *f, const float *w, int B, int F, int C)
{
    Ldam *l = m->priv;
    for (int i = 0; i < B; i++) {
        const float *x = f + (size_t)i * F;
        float *o = l->fn + (size_t)i * F, ss = 0.0f;
        for (int k = 0; k < F; k++)
            ss += x[k] * x[k];
        l->fnorm[i] = fmaxf(sqrtf(ss), NORM_EPS);
        for (int k = 0; k < F; k++)
            o[k] = x[k] / l->fnorm[i];
    }
    ColSpan cs = {w, NULL, l->wn, l->wnorm, NULL, NULL, F, C};
    backend_parallel(m->hctx, (size_t)C, (size_t)F * C, normalise_span, &cs);
    linear_forward(m->hctx, z, l->fn, l->wn, l->bias, B, F, C, ACT_NONE);
}

/* Through u = x / |x|: dx = (du - u <u, du>) / |x|. */
static void ldam_head_backward(MethodCtx *m, float *df, float *dw, const float *dz, const float *f, const float *w,
                               int B, int F, int C)
{
    (void)f;
    (void)w;
    Ldam *l = m->priv;
    linear_backward(m->hctx, l->dfn, l->dwn, l->db, (float *)dz, l->fn, l->wn, NULL, B, F, C, ACT_NONE);
    for (int i = 0; i < B; i++) {
        const float *u = l->fn + (size_t)i * F, *du = l->dfn + (size_t)i * F;
        float *o = df + (size_t)i * F, dot = 0.0f;
        for (int k = 0; k < F; k++)
            dot += u[k] * du[k];
        for (int k = 0; k < F; k++)
            o[k] = (du[k] - u[k] * dot) / l->fnorm[i];
    }
    ColSpan cs = {NULL, l->dwn, l->wn, l->wnorm, l->dots, dw, F, C};
    backend_parallel(m->hctx, (size_t)C, (size_t)F * C, column_grad_span, &cs);
}

/* z are cosines: CE(s z - s m at the labels). */
static void ldam_loss(const MethodCtx *m, MethodLoss *L)
{
    float s = (float)m->p.ldam_s;
    for (int i = 0; i < L->B; i++) {
        size_t o = (size_t)i * L->C;
        float *d = L->dz + o;
        for (int c = 0; c < L->C; c++)
            d[c] = s * L->z[o + c];
        for (int q = L->off[i]; q < L->off[i + 1]; q++)
            d[L->lab[q]] -= s * m->margin[L->lab[q]];
        L->losses[i] = method_ce_row(d, NULL, L->T + o, d, L->C);
        for (int c = 0; c < L->C; c++)
            d[c] *= s;
    }
}

static const float *ldam_weights(const MethodCtx *m, long epoch, int *by_sum)
{
    *by_sum = 1;
    return epoch >= method_drw_epoch(m->epochs, m->p.drw_frac) ? m->cb_w : NULL;
}

const Method method_ldam_drw = {
    .name = "ldam-drw",
    .stage = METHOD_INIT,
    .sampler = SAMPLER_INSTANCE,
    .help = "LDAM margins on a cosine classifier (s 30, max margin 0.5), class-balanced re-weighting "
            "from 80% of the epochs (Cao et al. 2019)",
    .init = ldam_init,
    .free = ldam_free,
    .class_weights = ldam_weights,
    .loss = ldam_loss,
    .head_forward = ldam_head_forward,
    .head_backward = ldam_head_backward,
};
