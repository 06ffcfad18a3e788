/* CPU backend: the readable reference of every op in backend.h. GEMMs go to OpenBLAS sgemm with
 * the transposes that avoid copies; everything around them (bias, tanh, softmax, masks, mixing,
 * AdamW) is one fused pass over memory. No op allocates: scratch comes from the caller.
 * The LMR ops are in backend_lmr.c, the naive test oracles in backend_ref.c. */
#include "backend_cpu.h"

#include <cblas.h>
#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void cpu_split_run(BackendCtx *ctx, size_t n, size_t work, size_t align, TeamFn fn, void *arg)
{
    if (!ctx || !ctx->team || work < SPLIT_MIN || n < 2 * align) {
        fn(arg, 0, n);
        return;
    }
    team_run(ctx->team, n, align, fn, arg);
}

void backend_parallel(BackendCtx *ctx, size_t n, size_t work, void (*fn)(void *arg, size_t lo, size_t hi),
                      void *arg)
{
    cpu_split_run(ctx, n, work, 1, fn, arg);
}

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* An op's GEMM time: the longest any thread spent inside OpenBLAS for it (its blocks run side
 * by side), in nanoseconds; the passes fused around the calls and the hand-overs are left out. */
typedef _Atomic long long GemmClock;

static void clock_sgemm(GemmClock *clk, CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int M, int N, int K, float alpha,
                        const float *A, int lda, const float *B, int ldb, float *C, int ldc)
{
    double t0 = clk ? mono_s() : 0.0;
    cblas_sgemm(CblasRowMajor, ta, tb, M, N, K, alpha, A, lda, B, ldb, 0.0f, C, ldc);
    if (clk) {
        long long ns = (long long)((mono_s() - t0) * 1e9), cur = atomic_load(clk);
        while (ns > cur && !atomic_compare_exchange_weak(clk, &cur, ns))
            ;
    }
}

/* C (M,N) = alpha op(A) op(B), row-major, cut into blocks of rows or of columns of C. */
typedef struct {
    CBLAS_TRANSPOSE ta, tb;
    int M, N, K, lda, ldb, ldc, by_cols;
    float alpha;
    const float *A, *B;
    float *C;
    GemmClock *clock; /* may be NULL */
} Gemm;

static void gemm_block(const Gemm *g, size_t lo, size_t hi)
{
    const float *A = g->A, *B = g->B;
    float *C = g->C;
    int M = g->M, N = g->N;
    if (g->by_cols) {
        B += g->tb == CblasNoTrans ? lo : lo * (size_t)g->ldb;
        C += lo;
        N = (int)(hi - lo);
    } else {
        A += g->ta == CblasNoTrans ? lo * (size_t)g->lda : lo;
        C += lo * (size_t)g->ldc;
        M = (int)(hi - lo);
    }
    clock_sgemm(g->clock, g->ta, g->tb, M, N, g->K, g->alpha, A, g->lda, B, g->ldb, C, g->ldc);
}

static void gemm_span(void *arg, size_t lo, size_t hi)
{
    gemm_block(arg, lo, hi);
}

static Gemm gemm_args(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int M, int N, int K, float alpha,
                      const float *A, int lda, const float *B, int ldb, float *C, int ldc)
{
    return (Gemm){ta, tb, M, N, K, lda, ldb, ldc, N >= M, alpha, A, B, C, NULL};
}

/* Is a GEMM of this size worth cutting across the team? */
static int gemm_splits(const BackendCtx *ctx, int M, int N, int K)
{
    return ctx && ctx->team && (double)M * N * K >= GEMM_SPLIT_MIN && (M > 32 || N > 32);
}

/* Account a GEMM op's time (its clock) and flops (a clock read costs tens of nanoseconds; an op,
 * microseconds). */
static void gemm_account(BackendCtx *ctx, GemmClock *clk, int M, int N, int K)
{
    if (ctx) {
        ctx->gemm_s += 1e-9 * (double)atomic_load(clk);
        ctx->gemm_flops += 2.0 * M * N * K;
    }
}

void backend_gemm_stats(const BackendCtx *ctx, double *seconds, double *flops)
{
    *seconds = ctx ? ctx->gemm_s : 0.0;
    *flops = ctx ? ctx->gemm_flops : 0.0;
}

void cpu_gemm(BackendCtx *ctx, CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int M, int N, int K, float alpha,
                 const float *A, int lda, const float *B, int ldb, float *C, int ldc)
{
    GemmClock clk = 0;
    Gemm g = gemm_args(ta, tb, M, N, K, alpha, A, lda, B, ldb, C, ldc);
    g.clock = &clk;
    if (gemm_splits(ctx, M, N, K))
        team_run(ctx->team, (size_t)(g.by_cols ? N : M), 16, gemm_span, &g);
    else
        gemm_block(&g, 0, (size_t)(g.by_cols ? N : M));
    gemm_account(ctx, &clk, M, N, K);
}

int backend_available(BackendKind kind)
{
#ifdef LMR_HAVE_CUDA
    if (kind == BACKEND_CUDA)
        return cuda_available();
#endif
    return kind == BACKEND_CPU;
}

const char *backend_last_error(const BackendCtx *ctx)
{
#ifdef LMR_HAVE_CUDA
    if (ctx && ctx->gpu)
        return cuda_last_error(ctx->gpu);
#endif
    (void)ctx;
    return "";
}

int backend_set_tf32(BackendCtx *ctx, int on)
{
    GPU_RETURN(ctx, cuda_set_tf32(ctx->gpu, on));
    (void)on;
    return 0;
}

#ifdef LMR_HAVE_CUDA
CudaState *backend_gpu_state(BackendCtx *ctx)
{
    return ctx ? ctx->gpu : NULL;
}
#endif

int backend_init(BackendCtx **ctx, BackendKind kind, int threads, char *err)
{
    *ctx = NULL;
#ifdef LMR_HAVE_CUDA
    if (kind == BACKEND_CUDA) {
        BackendCtx *g = calloc(1, sizeof *g);
        if (!g)
            return lmr_fail(err, LMR_ENOMEM, "out of memory");
        g->kind = kind;
        g->threads = threads;
        int rc = cuda_init(&g->gpu, err);
        if (rc < 0) {
            free(g);
            return rc;
        }
        *ctx = g;
        return 0;
    }
#endif
    if (kind != BACKEND_CPU)
        return lmr_fail(err, LMR_ENODEV, "not built with CUDA / no GPU: use --device cpu");
    BackendCtx *c = calloc(1, sizeof *c);
    if (!c)
        return lmr_fail(err, LMR_ENOMEM, "out of memory");
    c->kind = kind;
    c->threads = threads;
    // The team does the threading; OpenBLAS (whose thread count is process-wide) runs each block
    // on the thread that calls it. No team: every op on the calling thread (same bytes).
    int parts = threads > 0 ? threads : openblas_get_num_threads();
    if (parts > team_cpus())
        parts = team_cpus(); // more spinning threads than cores would stall every op
    if (parts >= 2 && team_init(&c->team, parts) == 0)
        openblas_set_num_threads(1);
    else if (threads > 0)
        openblas_set_num_threads(threads);
    *ctx = c;
    return 0;
}

void backend_free(BackendCtx **ctx)
{
    if (ctx && *ctx) {
#ifdef LMR_HAVE_CUDA
        cuda_free(&(*ctx)->gpu);
#endif
        team_free(&(*ctx)->team);
        free(*ctx);
        *ctx = NULL;
    }
}

BackendKind backend_kind(const BackendCtx *ctx)
{
    return ctx ? ctx->kind : BACKEND_CPU;
}

int backend_parts(const BackendCtx *ctx)
{
    return ctx && ctx->kind == BACKEND_CPU && ctx->team ? team_parts(ctx->team) : 1;
}

// --- memory ----------------------------------------------------------------------------------

int backend_alloc(BackendCtx *ctx, void **ptr, size_t bytes)
{
    GPU_RETURN(ctx, cuda_alloc(ctx->gpu, ptr, bytes));
    // 64-byte alignment keeps sgemm and the vector loops on whole cache lines.
    size_t rounded = (bytes + 63) & ~(size_t)63;
    *ptr = aligned_alloc(64, rounded ? rounded : 64);
    if (!*ptr)
        return LMR_ENOMEM;
    memset(*ptr, 0, rounded ? rounded : 64);
    return 0;
}

void backend_release(BackendCtx *ctx, void *ptr)
{
    GPU_FORWARD(ctx, cuda_release(ctx->gpu, ptr));
    free(ptr);
}

int backend_upload(BackendCtx *ctx, void *dst, const void *host_src, size_t bytes)
{
    GPU_RETURN(ctx, cuda_upload(ctx->gpu, dst, host_src, bytes));
    if (dst != host_src && bytes)
        memcpy(dst, host_src, bytes);
    return 0;
}

int backend_download(BackendCtx *ctx, void *host_dst, const void *src, size_t bytes)
{
    GPU_RETURN(ctx, cuda_download(ctx->gpu, host_dst, src, bytes));
    return backend_upload(ctx, host_dst, src, bytes);
}

int backend_zero(BackendCtx *ctx, void *dst, size_t bytes)
{
    GPU_RETURN(ctx, cuda_zero(ctx->gpu, dst, bytes));
    memset(dst, 0, bytes);
    return 0;
}

int backend_copy(BackendCtx *ctx, void *dst, const void *src, size_t bytes)
{
    GPU_RETURN(ctx, cuda_copy(ctx->gpu, dst, src, bytes));
    return backend_upload(ctx, dst, src, bytes);
}

void backend_gather_rows(BackendCtx *ctx, float *dst, const float *src, const int32_t *idx, int n, int F)
{
    GPU_FORWARD(ctx, cuda_gather_rows(ctx->gpu, dst, src, idx, n, F));
    for (int k = 0; k < n; k++)
        memcpy(dst + (size_t)k * F, src + (size_t)idx[k] * F, (size_t)F * sizeof *dst);
}

int backend_sync(BackendCtx *ctx)
{
    GPU_RETURN(ctx, cuda_sync(ctx->gpu));
    return 0;
}

// --- layer norm ------------------------------------------------------------------------------

/* Layer-norm rows [lo, hi) forward. */
typedef struct {
    float *out, *mean, *rstd;
    const float *inp, *weight, *bias;
    int D;
    float eps;
} LnRows;

VEC_CLONES static void ln_forward_span(void *arg, size_t lo, size_t hi)
{
    const LnRows *a = arg;
    int D = a->D;
    const float *weight = a->weight, *bias = a->bias;
    for (size_t b = lo; b < hi; b++) {
        const float *x = a->inp + b * D;
        float *o = a->out + b * D;
        float mu = row_sum(x, D) / D;
        float rs = 1.0f / sqrtf(row_sqdev(x, mu, D) / D + a->eps);
        if (weight) {
            for (int i = 0; i < D; i++)
                o[i] = (x[i] - mu) * rs * weight[i] + bias[i];
        } else {
            for (int i = 0; i < D; i++)
                o[i] = (x[i] - mu) * rs;
        }
        a->mean[b] = mu;
        a->rstd[b] = rs;
    }
}

void layernorm_forward(BackendCtx *ctx, float *out, float *mean, float *rstd, const float *inp,
                       const float *weight, const float *bias, int B, int D, float eps)
{
    GPU_FORWARD(ctx, cuda_layernorm_forward(ctx->gpu, out, mean, rstd, inp, weight, bias, B, D, eps));
    LnRows a = {out, mean, rstd, inp, weight, bias, D, eps};
    cpu_split_run(ctx, (size_t)B, (size_t)B * D, 1, ln_forward_span, &a);
}

/* Layer-norm backward: the weight/bias sums over rows split by columns [lo, hi) (each column
 * summed over the rows in order, as on one thread), dinp by rows. */
typedef struct {
    float *dinp, *dweight, *dbias;
    const float *dout, *inp, *weight, *mean, *rstd;
    int B, D;
} LnBack;

VEC_CLONES static void ln_param_grad_span(void *arg, size_t lo, size_t hi)
{
    const LnBack *a = arg;
    int D = a->D;
    memset(a->dweight + lo, 0, (hi - lo) * sizeof *a->dweight);
    memset(a->dbias + lo, 0, (hi - lo) * sizeof *a->dbias);
    for (int b = 0; b < a->B; b++) {
        const float *x = a->inp + (size_t)b * D, *dy = a->dout + (size_t)b * D;
        float mu = a->mean[b], rs = a->rstd[b];
        for (size_t i = lo; i < hi; i++) {
            a->dweight[i] += dy[i] * (x[i] - mu) * rs;
            a->dbias[i] += dy[i];
        }
    }
}

VEC_CLONES static void ln_dinp_span(void *arg, size_t lo, size_t hi)
{
    const LnBack *a = arg;
    int D = a->D;
    const float *weight = a->weight;
    for (size_t b = lo; b < hi; b++) {
        const float *x = a->inp + b * D, *dy = a->dout + b * D;
        float mu = a->mean[b], rs = a->rstd[b];
        // dx = rstd * (dn - mean(dn) - n * mean(dn * n)) with n the normalised input, dn = dy * w.
        float a1[LANES] = {0}, a2[LANES] = {0}, t1 = 0.0f, t2 = 0.0f;
        int i = 0;
        for (; i + LANES <= D; i += LANES)
            for (int k = 0; k < LANES; k++) {
                float dn = weight ? dy[i + k] * weight[i + k] : dy[i + k];
                a1[k] += dn;
                a2[k] += dn * (x[i + k] - mu) * rs;
            }
        for (; i < D; i++) {
            float dn = weight ? dy[i] * weight[i] : dy[i];
            t1 += dn;
            t2 += dn * (x[i] - mu) * rs;
        }
        float sum_dn = lanes_total(a1, t1) / D, sum_dnn = lanes_total(a2, t2) / D;
        float *dx = a->dinp + b * D;
        for (int i = 0; i < D; i++) {
            float dn = weight ? dy[i] * weight[i] : dy[i];
            dx[i] = (dn - sum_dn - (x[i] - mu) * rs * sum_dnn) * rs;
        }
    }
}

void layernorm_backward(BackendCtx *ctx, float *dinp, float *dweight, float *dbias, const float *dout,
                        const float *inp, const float *weight, const float *mean, const float *rstd,
                        int B, int D)
{
    GPU_FORWARD(ctx, cuda_layernorm_backward(ctx->gpu, dinp, dweight, dbias, dout, inp, weight, mean, rstd, B, D));
    LnBack a = {dinp, dweight, dbias, dout, inp, weight, mean, rstd, B, D};
    if (dweight)
        cpu_split_run(ctx, (size_t)D, (size_t)B * D, 16, ln_param_grad_span, &a);
    if (dinp)
        cpu_split_run(ctx, (size_t)B, (size_t)B * D, 1, ln_dinp_span, &a);
}

// --- linear ----------------------------------------------------------------------------------

/* A block of a linear layer's output: its GEMM, then bias (and tanh) on the same block while it
 * is in cache. */
typedef struct {
    Gemm g;
    const float *bias;
    Activation act;
} LinFwd;

VEC_CLONES static void lin_fwd_span(void *arg, size_t lo, size_t hi)
{
    const LinFwd *a = arg;
    gemm_block(&a->g, lo, hi);
    const float *bias = a->bias;
    int OC = a->g.N;
    size_t r0 = a->g.by_cols ? 0 : lo, r1 = a->g.by_cols ? (size_t)a->g.M : hi;
    size_t c0 = a->g.by_cols ? lo : 0, c1 = a->g.by_cols ? hi : (size_t)OC;
    for (size_t b = r0; b < r1; b++) {
        float *o = a->g.C + b * OC;
        if (a->act == ACT_TANH)
            for (size_t j = c0; j < c1; j++)
                o[j] = vtanhf(o[j] + bias[j]);
        else
            for (size_t j = c0; j < c1; j++)
                o[j] += bias[j];
    }
}

void linear_forward(BackendCtx *ctx, float *out, const float *inp, const float *weight,
                    const float *bias, int B, int C, int OC, Activation act)
{
    GPU_FORWARD(ctx, cuda_linear_forward(ctx->gpu, out, inp, weight, bias, B, C, OC, act));
    // out (B,OC) = inp (B,C) @ weight (C,OC): both operands as stored (OpenBLAS runs this form
    // ~15% faster than reading an (OC,C) weight transposed when C is large).
    GemmClock clk = 0;
    LinFwd a = {gemm_args(CblasNoTrans, CblasNoTrans, B, OC, C, 1.0f, inp, C, weight, OC, out, OC), bias, act};
    a.g.clock = &clk;
    size_t n = (size_t)(a.g.by_cols ? OC : B);
    if (gemm_splits(ctx, B, OC, C))
        team_run(ctx->team, n, 16, lin_fwd_span, &a);
    else
        lin_fwd_span(&a, 0, n);
    gemm_account(ctx, &clk, B, OC, C);
}

/* Output features [lo, hi) of a linear layer's backward: tanh' into those columns of dout, their
 * bias gradient (each column summed over the rows in order), then (with_dw) those columns of
 * dweight. */
typedef struct {
    float *dbias, *dout, *dweight, *dinp;
    const float *out, *inp, *weight;
    int B, C, OC, with_dw;
    Activation act;
    GemmClock *clock;
} LinBack;

static Gemm dweight_gemm(const LinBack *a)
{
    // dweight (C,OC) = inp^T (C,B) @ dout (B,OC), in blocks of columns (output features)
    Gemm g = gemm_args(CblasTrans, CblasNoTrans, a->C, a->OC, a->B, 1.0f, a->inp, a->C, a->dout, a->OC,
                       a->dweight, a->OC);
    g.by_cols = 1;
    g.clock = a->clock;
    return g;
}

VEC_CLONES static void lin_back_span(void *arg, size_t lo, size_t hi)
{
    const LinBack *a = arg;
    float *dbias = a->dbias;
    memset(dbias + lo, 0, (hi - lo) * sizeof *dbias);
    for (int b = 0; b < a->B; b++) {
        float *d = a->dout + (size_t)b * a->OC;
        if (a->act == ACT_TANH) {
            const float *y = a->out + (size_t)b * a->OC;
            for (size_t j = lo; j < hi; j++) {
                d[j] *= 1.0f - y[j] * y[j];
                dbias[j] += d[j];
            }
        } else {
            for (size_t j = lo; j < hi; j++)
                dbias[j] += d[j];
        }
    }
    if (a->with_dw) {
        Gemm g = dweight_gemm(a);
        gemm_block(&g, lo, hi);
    }
}

/* The two weight-side GEMMs, whole, one per thread: dweight (piece 0) and dinp (piece 1). They
 * have the same flops, and a whole GEMM on one core runs faster than two halves on two (each
 * half would pack the shared operand again). */
static void lin_grads_task(void *arg, size_t lo, size_t hi)
{
    const LinBack *a = arg;
    for (size_t k = lo; k < hi; k++) {
        if (k == 0) {
            Gemm g = dweight_gemm(a);
            gemm_block(&g, 0, (size_t)a->OC);
        } else { // dinp (B,C) = dout (B,OC) @ weight^T (OC,C)
            Gemm g = gemm_args(CblasNoTrans, CblasTrans, a->B, a->C, a->OC, 1.0f, a->dout, a->OC, a->weight,
                               a->OC, a->dinp, a->C);
            g.clock = a->clock;
            gemm_block(&g, 0, (size_t)(g.by_cols ? a->C : a->B));
        }
    }
}

void linear_backward(BackendCtx *ctx, float *dinp, float *dweight, float *dbias, float *dout,
                     const float *inp, const float *weight, const float *out, int B, int C, int OC,
                     Activation act)
{
    GPU_FORWARD(ctx, cuda_linear_backward(ctx->gpu, dinp, dweight, dbias, dout, inp, weight, out, B, C, OC, act));
    GemmClock clk = 0;
    LinBack a = {dbias, dout, dweight, dinp, out, inp, weight, B, C, OC, 1, act, &clk};
    if (dinp && gemm_splits(ctx, OC, C, B) && team_parts(ctx->team) == 2) {
        a.with_dw = 0;
        cpu_split_run(ctx, (size_t)OC, (size_t)B * OC, 16, lin_back_span, &a);
        team_run(ctx->team, 2, 1, lin_grads_task, &a);
        gemm_account(ctx, &clk, OC, C, 2 * B); // both GEMMs' flops
        return;
    }
    if (gemm_splits(ctx, OC, C, B))
        team_run(ctx->team, (size_t)OC, 16, lin_back_span, &a);
    else
        lin_back_span(&a, 0, (size_t)OC);
    gemm_account(ctx, &clk, OC, C, B);
    if (dinp)
        cpu_gemm(ctx, CblasNoTrans, CblasTrans, B, C, OC, 1.0f, dout, OC, weight, OC, dinp, C);
}

/* LayerNorm -> Linear backward to the parameters only (backend.h), cut into blocks of input
 * features [lo, hi): those columns of xhat and those rows of G = xhat^T da (one OpenBLAS call);
 * then, over the same blocks (so on the thread that has them in cache), the LN's gain and bias
 * gradients and G turned into dW in place. */
typedef struct {
    float *xhat, *G, *dgamma, *dbeta;
    const float *x, *mean, *rstd, *W, *da, *db, *gamma, *beta;
    int B, D, H;
    GemmClock *clock;
} LnLinBack;

VEC_CLONES static void ln_lin_span(void *arg, size_t lo, size_t hi)
{
    const LnLinBack *a = arg;
    int B = a->B, D = a->D, H = a->H, w = (int)(hi - lo);
    // the block's xhat columns as a dense (B, w) block of the scratch: writing them in place
    // beside x's own layout would put every store 4 KiB-aliased with the load before it
    float *xh = a->xhat + (size_t)B * lo;
    for (int b = 0; b < B; b++) {
        const float *x = a->x + (size_t)b * D + lo;
        float *o = xh + (size_t)b * w, mu = a->mean[b], rs = a->rstd[b];
        for (int i = 0; i < w; i++)
            o[i] = (x[i] - mu) * rs;
    }
    clock_sgemm(a->clock, CblasTrans, CblasNoTrans, w, H, B, 1.0f, xh, w, a->da, H, a->G + lo * H, H);
}

VEC_CLONES static void ln_lin_rows_span(void *arg, size_t lo, size_t hi)
{
    const LnLinBack *a = arg;
    int H = a->H;
    const float *db = a->db;
    // dbeta = W db over the block's rows, dgamma row by row, both before G becomes dW
    cblas_sgemv(CblasRowMajor, CblasNoTrans, (int)(hi - lo), H, 1.0f, a->W + lo * H, H, db, 1, 0.0f, a->dbeta + lo, 1);
    for (size_t d = lo; d < hi; d++) {
        float *g = a->G + d * H, ga = a->gamma[d], be = a->beta[d];
        a->dgamma[d] = cblas_sdot(H, a->W + d * H, 1, g, 1);
        for (int h = 0; h < H; h++)
            g[h] = ga * g[h] + be * db[h];
    }
}

int ln_linear_backward(BackendCtx *ctx, float *dweight, float *dbias, float *dgamma, float *dbeta, float *dout,
                       const float *out, const float *x, const float *mean, const float *rstd, const float *gamma,
                       const float *beta, const float *weight, float *xhat, int B, int D, int H, Activation act)
{
    if (ctx && ctx->kind != BACKEND_CPU)
        return LMR_ENODEV; // device backends compose linear_backward and layernorm_backward
    // da (tanh' in place) and db, as linear_backward does them
    LinBack lb = {dbias, dout, NULL, NULL, out, NULL, NULL, B, D, H, 0, act, NULL};
    cpu_split_run(ctx, (size_t)H, (size_t)B * H, 16, lin_back_span, &lb);
    GemmClock clk = 0;
    LnLinBack a = {xhat, dweight, dgamma, dbeta, x, mean, rstd, weight, dout, dbias, gamma, beta, B, D, H, &clk};
    int split = gemm_splits(ctx, D, H, B);
    if (split)
        team_run(ctx->team, (size_t)D, 16, ln_lin_span, &a);
    else
        ln_lin_span(&a, 0, (size_t)D);
    gemm_account(ctx, &clk, D, H, B);
    if (split)
        team_run(ctx->team, (size_t)D, 16, ln_lin_rows_span, &a);
    else
        ln_lin_rows_span(&a, 0, (size_t)D);
    return 0;
}

// --- losses ----------------------------------------------------------------------------------

/* Softmax of one row into p; returns log-sum-exp of z. Max, exp and sum are separate passes
 * (the sum in LANES partial sums) so each vectorises. */
VEC_INLINE float row_softmax(float *p, const float *z, int C)
{
    float acc[LANES], mx = z[0];
    for (int k = 0; k < LANES; k++)
        acc[k] = z[0];
    int c = 0;
    for (; c + LANES <= C; c += LANES)
        for (int k = 0; k < LANES; k++)
            acc[k] = z[c + k] > acc[k] ? z[c + k] : acc[k];
    for (; c < C; c++)
        mx = z[c] > mx ? z[c] : mx;
    for (int k = 0; k < LANES; k++)
        mx = acc[k] > mx ? acc[k] : mx;
    for (c = 0; c < C; c++)
        p[c] = vexpf(z[c] - mx);
    float s = row_sum(p, C), inv = 1.0f / s;
    for (c = 0; c < C; c++)
        p[c] *= inv;
    return mx + logf(s);
}

/* Cross-entropy rows: hard labels (targets NULL, label smoothing) or soft targets. */
typedef struct {
    float *losses, *dlogits;
    const float *logits, *targets;
    const int32_t *labels;
    float smoothing;
    int B, C;
} CeRows;

VEC_CLONES static void ce_rows_span(void *arg, size_t lo, size_t hi)
{
    const CeRows *a = arg;
    int C = a->C;
    float inv_b = 1.0f / a->B, off = a->smoothing / C, on = 1.0f - a->smoothing + off;
    for (size_t b = lo; b < hi; b++) {
        const float *z = a->logits + b * C;
        float *d = a->dlogits + b * C;
        float lse = row_softmax(d, z, C);
        if (!a->targets) {
            float sum_z = row_sum(z, C);
            int y = a->labels[b];
            // loss = lse - sum_c t_c z_c, t = off everywhere and on at the label
            for (int c = 0; c < C; c++)
                d[c] = (d[c] - off) * inv_b;
            a->losses[b] = lse - off * sum_z - (on - off) * z[y];
            d[y] -= (on - off) * inv_b;
        } else {
            const float *t = a->targets + b * C;
            float tz = row_dot(t, z, C), ts = row_sum(t, C);
            a->losses[b] = ts * lse - tz;
            for (int c = 0; c < C; c++)
                d[c] = (ts * d[c] - t[c]) * inv_b;
        }
    }
}

void ce_hard_forward_backward(BackendCtx *ctx, float *losses, float *dlogits, const float *logits,
                              const int32_t *labels, float smoothing, int B, int C)
{
    GPU_FORWARD(ctx, cuda_ce_hard_forward_backward(ctx->gpu, losses, dlogits, logits, labels, smoothing, B, C));
    CeRows a = {losses, dlogits, logits, NULL, labels, smoothing, B, C};
    cpu_split_run(ctx, (size_t)B, (size_t)B * C, 1, ce_rows_span, &a);
}

void ce_soft_forward_backward(BackendCtx *ctx, float *losses, float *dlogits, const float *logits,
                              const float *targets, int B, int C)
{
    GPU_FORWARD(ctx, cuda_ce_soft_forward_backward(ctx->gpu, losses, dlogits, logits, targets, B, C));
    CeRows a = {losses, dlogits, logits, targets, NULL, 0.0f, B, C};
    cpu_split_run(ctx, (size_t)B, (size_t)B * C, 1, ce_rows_span, &a);
}

void bce_forward_backward(BackendCtx *ctx, float *losses, float *dlogits, const float *logits,
                          const float *targets, int B, int C)
{
    GPU_FORWARD(ctx, cuda_bce_forward_backward(ctx->gpu, losses, dlogits, logits, targets, B, C));
    float inv = 1.0f / ((float)B * C);
    for (int b = 0; b < B; b++) {
        const float *z = logits + (size_t)b * C, *t = targets + (size_t)b * C;
        float *d = dlogits + (size_t)b * C;
        float l = 0.0f;
        for (int c = 0; c < C; c++) {
            float x = z[c];
            // stable: max(x,0) - x t + log(1 + exp(-|x|))
            l += fmaxf(x, 0.0f) - x * t[c] + log1pf(expf(-fabsf(x)));
            float s = x >= 0 ? 1.0f / (1.0f + expf(-x)) : expf(x) / (1.0f + expf(x));
            d[c] = (s - t[c]) * inv;
        }
        losses[b] = l / C;
    }
}

// --- optimiser -------------------------------------------------------------------------------

double backend_sumsq(BackendCtx *ctx, const float *x, size_t n)
{
    GPU_RETURN(ctx, cuda_sumsq(ctx->gpu, x, n));
    double s = 0.0;
    for (size_t i = 0; i < n; i++)
        s += (double)x[i] * x[i];
    return s;
}

typedef struct {
    float *params, *m, *v;
    const float *grads;
    size_t n;
    float beta1, beta2, eps, step, rbc2, decay, grad_scale;
} AdamSpan;

VEC_CLONES static void adamw_span(void *arg, size_t lo, size_t hi)
{
    const AdamSpan *a = arg;
    float *params = a->params, *m = a->m, *v = a->v;
    const float *grads = a->grads;
    float beta1 = a->beta1, beta2 = a->beta2, eps = a->eps, step = a->step, rbc2 = a->rbc2;
    float decay = a->decay, grad_scale = a->grad_scale;
    for (size_t i = lo; i < hi; i++) {
        float g = grads[i] * grad_scale;
        float mi = beta1 * m[i] + (1.0f - beta1) * g;
        float vi = beta2 * v[i] + (1.0f - beta2) * g * g;
        m[i] = mi;
        v[i] = vi;
        params[i] = params[i] * decay - step * mi / (sqrtf(vi) * rbc2 + eps);
    }
}

void adamw_update(BackendCtx *ctx, float *params, const float *grads, float *m, float *v, size_t n,
                  float lr, float beta1, float beta2, float eps, float weight_decay, long t,
                  float grad_scale)
{
    GPU_FORWARD(ctx, cuda_adamw_update(ctx->gpu, params, grads, m, v, n, lr, beta1, beta2, eps, weight_decay,
                                       t, grad_scale));
    float bc1 = 1.0f - powf(beta1, (float)t), bc2 = 1.0f - powf(beta2, (float)t);
    AdamSpan all = {params, m, v, grads, n, beta1, beta2, eps, lr / bc1, 1.0f / sqrtf(bc2), 1.0f - lr * weight_decay,
                    grad_scale};
    // memory-bound and elementwise: each half on its own core (same values either way)
    cpu_split_run(ctx, n, n, 16, adamw_span, &all);
}
