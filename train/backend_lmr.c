/* CPU backend, the LMR ops (backend.h): the reconstruction from the memory bank (similarities,
 * masked softmax, weighted keys, blend) with its backward, and the partner mixing. */
#include "backend_cpu.h"

#include <stdlib.h>

// --- LMR reconstruction ----------------------------------------------------------------------

/* Masked softmax of one similarity row, in place; a row whose every key is masked becomes 0. A
 * key is masked when key_ok is 0 or it was made from the row's own clip q (key_clip NULL: key j's
 * clip is j, so only the row's own bank position); q < 0 masks nothing by clip. Branch-free
 * loops (the own keys are knocked out before and zeroed after) so the compiler vectorises them.
 * all_ok: key_ok is all 1 (a gathered bank) and the loops need not read it; the max does not
 * depend on the order it is taken in and a masked key adds an exact 0 to the sum, so both give
 * the same bytes. */
VEC_INLINE void masked_softmax_row(float *s, const uint8_t *key_ok, int all_ok, const int32_t *key_clip, int q,
                                  int N)
{
    int one_self = !key_clip && q >= 0 && q < N, by_clip = key_clip && q >= 0;
    if (one_self)
        s[q] = -INFINITY;
    if (by_clip)
        for (int j = 0; j < N; j++)
            s[j] = key_clip[j] == q ? -INFINITY : s[j];
    float acc[LANES], mx = -INFINITY;
    for (int k = 0; k < LANES; k++)
        acc[k] = -INFINITY;
    int j = 0;
    if (all_ok) {
        for (; j + LANES <= N; j += LANES)
            for (int k = 0; k < LANES; k++)
                acc[k] = s[j + k] > acc[k] ? s[j + k] : acc[k];
        for (; j < N; j++)
            mx = s[j] > mx ? s[j] : mx;
    } else {
        for (; j + LANES <= N; j += LANES)
            for (int k = 0; k < LANES; k++) {
                float v = key_ok[j + k] ? s[j + k] : -INFINITY;
                acc[k] = v > acc[k] ? v : acc[k];
            }
        for (; j < N; j++) {
            float v = key_ok[j] ? s[j] : -INFINITY;
            mx = v > mx ? v : mx;
        }
    }
    for (int k = 0; k < LANES; k++)
        mx = acc[k] > mx ? acc[k] : mx;
    if (mx == -INFINITY) { // no key left to attend to
        memset(s, 0, (size_t)N * sizeof *s);
        return;
    }
    if (all_ok)
        for (j = 0; j < N; j++)
            s[j] = vexpf(s[j] - mx);
    else
        for (j = 0; j < N; j++)
            s[j] = key_ok[j] ? vexpf(s[j] - mx) : 0.0f;
    if (one_self)
        s[q] = 0.0f;
    if (by_clip)
        for (j = 0; j < N; j++)
            s[j] = key_clip[j] == q ? 0.0f : s[j];
    float inv = 1.0f / row_sum(s, N);
    for (j = 0; j < N; j++)
        s[j] *= inv;
}

static int all_set(const uint8_t *key_ok, int N)
{
    for (int j = 0; j < N; j++)
        if (!key_ok[j])
            return 0;
    return 1;
}

typedef struct {
    float *wts;
    const uint8_t *key_ok;
    const int32_t *key_clip, *query_clip;
    int all_ok, N;
} SoftmaxRows;

VEC_CLONES static void softmax_rows_span(void *arg, size_t lo, size_t hi)
{
    const SoftmaxRows *a = arg;
    for (size_t i = lo; i < hi; i++)
        masked_softmax_row(a->wts + i * a->N, a->key_ok, a->all_ok, a->key_clip, a->query_clip[i], a->N);
}

/* Whether row i attended to some key: a softmax row over at least one key has a weight >= 1/N. */
static int row_attends(const float *w, int N)
{
    for (int j = 0; j < N; j++)
        if (w[j] != 0.0f)
            return 1;
    return 0;
}

/* Softmax backward rows in place: ds_ij = w_ij (dw_ij - sum_l w_il dw_il); masked entries have w = 0. */
typedef struct {
    const float *wts;
    float *dwts;
    int N;
} SoftmaxBackRows;

VEC_CLONES static void softmax_back_span(void *arg, size_t lo, size_t hi)
{
    const SoftmaxBackRows *a = arg;
    int N = a->N;
    for (size_t i = lo; i < hi; i++) {
        const float *w = a->wts + i * N;
        float *d = a->dwts + i * N, dot = row_dot(w, d, N);
        for (int j = 0; j < N; j++)
            d[j] = w[j] * (d[j] - dot);
    }
}

/* The row passes around the reconstruction GEMMs, cut into rows across the team. */
typedef struct {
    float *R, *dr, *df;
    const float *f, *dR, *wts, *fn, *dfn, *frstd, *c;
    int N, H;
} LmrRows;

/* R = c r + (1 - c) f in place; a row with no key keeps f. */
VEC_CLONES static void lmr_blend_span(void *arg, size_t lo, size_t hi)
{
    const LmrRows *a = arg;
    int H = a->H;
    for (size_t i = lo; i < hi; i++) {
        float *r = a->R + i * H;
        const float *fi = a->f + i * H;
        if (!row_attends(a->wts + i * a->N, a->N)) {
            memcpy(r, fi, (size_t)H * sizeof *r);
            continue;
        }
        float ci = a->c[i], cf = 1.0f - ci;
        for (int h = 0; h < H; h++)
            r[h] = ci * r[h] + cf * fi[h];
    }
}

/* dr = c dR: the gradient reaching the reconstruction r. */
VEC_CLONES static void lmr_dr_span(void *arg, size_t lo, size_t hi)
{
    const LmrRows *a = arg;
    int H = a->H;
    for (size_t i = lo; i < hi; i++) {
        float ci = a->c[i], *d = a->dr + i * H;
        const float *g = a->dR + i * H;
        for (int h = 0; h < H; h++)
            d[h] = ci * g[h];
    }
}

/* df: LN0 backward of dfn plus the direct (1 - c) term; a row whose keys were all masked has
 * R = f, so df = dR. */
VEC_CLONES static void lmr_df_span(void *arg, size_t lo, size_t hi)
{
    const LmrRows *a = arg;
    int H = a->H, N = a->N;
    for (size_t i = lo; i < hi; i++) {
        const float *w = a->wts + i * N, *g = a->dfn + i * H, *n = a->fn + i * H;
        const float *dy = a->dR + i * H;
        float *dx = a->df + i * H;
        if (!row_attends(w, N)) {
            memcpy(dx, dy, (size_t)H * sizeof *dx);
            continue;
        }
        float m1 = row_sum(g, H) / H, m2 = row_dot(g, n, H) / H;
        float rs = a->frstd[i], cf = 1.0f - a->c[i];
        for (int h = 0; h < H; h++)
            dx[h] = cf * dy[h] + (g[h] - m1 - n[h] * m2) * rs;
    }
}

void lmr_forward(BackendCtx *ctx, float *R, float *wts, const float *f, const float *fn,
                 const float *keys, const float *keys_n, const uint8_t *key_ok,
                 const int32_t *key_clip, const int32_t *query_clip, const float *c, int B, int N, int H)
{
    GPU_FORWARD(ctx, cuda_lmr_forward(ctx->gpu, R, wts, f, fn, keys, keys_n, key_ok, key_clip, query_clip, c, B,
                                      N, H));
    if (N == 0) { // no key at all: every row keeps its own features
        memcpy(R, f, (size_t)B * H * sizeof *R);
        return;
    }
    // similarities (B,N) = fn (B,H) @ keys_n^T / H: correlations in [-1, 1]
    cpu_gemm(ctx, CblasNoTrans, CblasTrans, B, N, H, 1.0f / H, fn, H, keys_n, H, wts, N);
    SoftmaxRows sr = {wts, key_ok, key_clip, query_clip, all_set(key_ok, N), N};
    cpu_split_run(ctx, (size_t)B, (size_t)B * N, 1, softmax_rows_span, &sr);
    // r (B,H) = wts (B,N) @ keys (N,H), then R = c r + (1 - c) f in place
    cpu_gemm(ctx, CblasNoTrans, CblasNoTrans, B, H, N, 1.0f, wts, N, keys, H, R, H);
    LmrRows a = {.R = R, .f = f, .c = c, .wts = wts, .N = N, .H = H};
    cpu_split_run(ctx, (size_t)B, (size_t)B * H, 1, lmr_blend_span, &a);
}

void lmr_backward(BackendCtx *ctx, float *df, const float *dR, const float *wts, const float *fn,
                  const float *frstd, const float *keys, const float *keys_n, const float *c,
                  float *dwts, float *dr, float *dfn, int B, int N, int H)
{
    GPU_FORWARD(ctx, cuda_lmr_backward(ctx->gpu, df, dR, wts, fn, frstd, keys, keys_n, c, dwts, dr, dfn, B, N, H));
    if (N == 0) {
        memcpy(df, dR, (size_t)B * H * sizeof *df);
        return;
    }
    LmrRows a = {.dr = dr, .df = df, .dR = dR, .wts = wts, .fn = fn, .dfn = dfn, .frstd = frstd, .c = c,
                 .N = N, .H = H};
    cpu_split_run(ctx, (size_t)B, (size_t)B * H, 1, lmr_dr_span, &a);
    // dwts (B,N) = dr (B,H) @ keys^T
    cpu_gemm(ctx, CblasNoTrans, CblasTrans, B, N, H, 1.0f, dr, H, keys, H, dwts, N);
    SoftmaxBackRows sb = {wts, dwts, N};
    cpu_split_run(ctx, (size_t)B, (size_t)B * N, 1, softmax_back_span, &sb);
    // dfn (B,H) = ds (B,N) @ keys_n (N,H) / H
    cpu_gemm(ctx, CblasNoTrans, CblasNoTrans, B, H, N, 1.0f / H, dwts, N, keys_n, H, dfn, H);
    cpu_split_run(ctx, (size_t)B, (size_t)B * H, 1, lmr_df_span, &a);
}

// --- mixing ----------------------------------------------------------------------------------

void mix_forward(BackendCtx *ctx, float *X, const float *R, const int32_t *partner, const float *a,
                 int n_mix, int B, int H)
{
    GPU_FORWARD(ctx, cuda_mix_forward(ctx->gpu, X, R, partner, a, n_mix, B, H));
    for (int i = 0; i < B; i++) {
        float *x = X + (size_t)i * H;
        const float *r = R + (size_t)i * H;
        if (i >= n_mix) {
            memcpy(x, r, (size_t)H * sizeof *x);
            continue;
        }
        const float *rb = R + (size_t)partner[i] * H;
        float ai = a[i], am = 1.0f - ai;
        for (int h = 0; h < H; h++)
            x[h] = am * r[h] + ai * rb[h];
    }
}

void mix_backward(BackendCtx *ctx, float *dR, const float *dX, const int32_t *partner, const float *a,
                  int n_mix, int B, int H)
{
    GPU_FORWARD(ctx, cuda_mix_backward(ctx->gpu, dR, dX, partner, a, n_mix, B, H));
    for (int i = 0; i < B; i++) {
        float s = i < n_mix ? 1.0f - a[i] : 1.0f;
        float *d = dR + (size_t)i * H;
        const float *x = dX + (size_t)i * H;
        for (int h = 0; h < H; h++)
            d[h] = s * x[h];
    }
    for (int i = 0; i < n_mix; i++) {
        float *d = dR + (size_t)partner[i] * H, ai = a[i];
        const float *x = dX + (size_t)i * H;
        for (int h = 0; h < H; h++)
            d[h] += ai * x[h];
    }
}
