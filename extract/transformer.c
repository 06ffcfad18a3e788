/* The shared transformer pieces: LayerNorm, linear layers (one sgemm each, bias / GELU / residual
 * in a pass over the thread's own rows), blocked softmax attention and the patch embedding's
 * im2col. The element-wise passes are built for AVX-512, AVX2 and the baseline and picked at load
 * time; exp and erf are written so those passes vectorise (glibc's are scalar calls). */
#include <cblas.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "resnet_internal.h" /* resnet_parallel_for */
#include "transformer.h"

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define VEC_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define VEC_CLONES
#endif
/* always inlined, so each helper is built for the vector width of the pass that calls it */
#define VEC_INLINE static inline __attribute__((always_inline))

#define LANES 16      /* partial sums per row reduction */
#define MAX_PARTS 256 /* thread parts of one op */
#define SPLIT_MIN_FLOPS ((double)(1 << 21)) /* a GEMM part smaller than this is not worth a thread */

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

// --- threads -------------------------------------------------------------------------------

typedef struct {
    void (*fn)(void *arg, int part);
    void *arg;
} PartCall;

static void part_range(void *p, size_t lo, size_t hi)
{
    PartCall *c = p;
    for (size_t i = lo; i < hi; i++)
        c->fn(c->arg, (int)i);
}

void tfm_parallel(int n_parts, void (*fn)(void *arg, int part), void *arg)
{
    PartCall c = {fn, arg};
    resnet_parallel_for(n_parts, n_parts > 0 ? (size_t)n_parts : 0, part_range, &c);
}

/* Parts for a GEMM-like op of `flops`: at most the threads, each with enough work. */
static int op_parts(int n_threads, double flops, size_t max_parts)
{
    int n = n_threads < 1 ? 1 : n_threads > MAX_PARTS ? MAX_PARTS : n_threads;
    while (n > 1 && flops / n < SPLIT_MIN_FLOPS)
        n--;
    if ((size_t)n > max_parts)
        n = max_parts ? (int)max_parts : 1;
    return n;
}

static double max_of(const double *t, int n)
{
    double m = 0;
    for (int i = 0; i < n; i++)
        m = t[i] > m ? t[i] : m;
    return m;
}

// --- exp, erf ------------------------------------------------------------------------------

/* Cody-Waite range reduction and Cephes' polynomial, within 2 ulp of expf; rounding by the
 * 1.5 * 2^23 trick (no SSE4.1, no -ffast-math needed). */
VEC_INLINE float vexpf(float x)
{
    x = x < -87.0f ? -87.0f : x > 88.0f ? 88.0f : x;
    float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
    float r = x - n * 0.693359375f + n * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    float nn = n == n ? n : 0.0f; // NaN in, NaN out (through p), never a NaN cast to int
    uint32_t bits = (uint32_t)((int32_t)nn + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

/* Abramowitz & Stegun 7.1.26 (|error| <= 1.5e-7, 6e-7 evaluated in f32): the erf of PyTorch's
 * vectorised GELU. */
VEC_INLINE float verff(float x)
{
    float ax = x < 0 ? -x : x;
    float t = 1.0f / (0.3275911f * ax + 1.0f);
    float r = 1.061405429f;
    r = r * t - 1.453152027f;
    r = r * t + 1.421413741f;
    r = r * t - 0.284496736f;
    r = r * t + 0.254829592f;
    float y = 1.0f - r * t * vexpf(-x * x);
    return x < 0 ? -y : y;
}

VEC_INLINE float vgelu(float x) { return 0.5f * x * (1.0f + verff(x * 0.70710678118654752f)); }

float tfm_expf(float x) { return vexpf(x); }
float tfm_erff(float x) { return verff(x); }

VEC_CLONES void tfm_gelu(float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        x[i] = vgelu(x[i]);
}

// --- LayerNorm -------------------------------------------------------------------------------

VEC_INLINE float lanes_total(const float *acc, float tail)
{
    float s = tail;
    for (int k = 0; k < LANES; k++)
        s += acc[k];
    return s;
}

typedef struct {
    float *out;
    const float *in, *g, *b;
    int d;
    float eps;
} LnArgs;

VEC_CLONES static void ln_range(void *p, size_t lo, size_t hi)
{
    const LnArgs *a = p;
    int d = a->d;
    for (size_t r = lo; r < hi; r++) {
        const float *x = a->in + r * d;
        float *o = a->out + r * d;
        float acc[LANES] = {0}, tail = 0.0f;
        int j = 0;
        for (; j + LANES <= d; j += LANES)
            for (int k = 0; k < LANES; k++)
                acc[k] += x[j + k];
        for (; j < d; j++)
            tail += x[j];
        float mean = lanes_total(acc, tail) / (float)d;
        for (int k = 0; k < LANES; k++)
            acc[k] = 0.0f;
        tail = 0.0f;
        for (j = 0; j + LANES <= d; j += LANES)
            for (int k = 0; k < LANES; k++) {
                float c = x[j + k] - mean;
                acc[k] += c * c;
            }
        for (; j < d; j++)
            tail += (x[j] - mean) * (x[j] - mean);
        float rstd = 1.0f / sqrtf(lanes_total(acc, tail) / (float)d + a->eps);
        for (j = 0; j < d; j++)
            o[j] = (x[j] - mean) * rstd * a->g[j] + a->b[j];
    }
}

void tfm_layernorm(float *out, const float *in, const float *g, const float *b, size_t rows, int d, float eps,
                   int n_threads)
{
    LnArgs a = {out, in, g, b, d, eps};
    resnet_parallel_for(rows * (size_t)d < 65536 ? 1 : n_threads, rows, ln_range, &a);
}

// --- linear ------------------------------------------------------------------------------------

typedef struct {
    float *out;
    const float *in, *w, *b;
    size_t rows;
    int n, k, mode, n_parts;
    double t[MAX_PARTS];
} LinArgs;

VEC_CLONES static void linear_epilogue(float *restrict out, const float *restrict b, size_t rows, int n, int gelu)
{
    for (size_t r = 0; r < rows; r++, out += n) {
        if (b)
            for (int j = 0; j < n; j++)
                out[j] += b[j];
        if (gelu)
            for (int j = 0; j < n; j++)
                out[j] = vgelu(out[j]);
    }
}

static void linear_part(void *p, int part)
{
    LinArgs *a = p;
    size_t lo = a->rows * (size_t)part / (size_t)a->n_parts, hi = a->rows * (size_t)(part + 1) / (size_t)a->n_parts;
    a->t[part] = 0;
    if (hi <= lo)
        return;
    float *out = a->out + lo * (size_t)a->n;
    double t0 = now();
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)(hi - lo), a->n, a->k, 1.0f, a->in + lo * (size_t)a->k,
                a->k, a->w, a->k, a->mode == TFM_ADD ? 1.0f : 0.0f, out, a->n);
    a->t[part] = now() - t0;
    linear_epilogue(out, a->b, hi - lo, a->n, a->mode == TFM_GELU);
}

void tfm_linear(TfmCpu *c, float *out, const float *in, const float *w, const float *b, size_t rows, int n,
                int k, int mode)
{
    LinArgs a = {out, in, w, b, rows, n, k, mode, 1, {0}};
    double flops = 2.0 * (double)rows * n * k;
    a.n_parts = op_parts(c->n_threads, flops, rows);
    tfm_parallel(a.n_parts, linear_part, &a);
    c->gemm_s += max_of(a.t, a.n_parts);
    c->gemm_flops += flops;
}

// --- attention ---------------------------------------------------------------------------------

typedef struct {
    float *ctx, *scores;
    const float *qkv;
    int n_seq, n_tok, dim, heads, qb_size, n_qb, n_parts;
    size_t n_tasks;
    double t[MAX_PARTS];
} AttnArgs;

/* Rows of s (rows, n) in place: exp(s - max) / sum. Max, exp and sum are separate passes, the
 * reductions in LANES partial sums, so each vectorises. */
VEC_CLONES static void softmax_rows(float *s, int rows, int n)
{
    for (int r = 0; r < rows; r++, s += n) {
        float acc[LANES], mx = s[0];
        for (int k = 0; k < LANES; k++)
            acc[k] = s[0];
        int j = 0;
        for (; j + LANES <= n; j += LANES)
            for (int k = 0; k < LANES; k++)
                acc[k] = s[j + k] > acc[k] ? s[j + k] : acc[k];
        for (; j < n; j++)
            mx = s[j] > mx ? s[j] : mx;
        for (int k = 0; k < LANES; k++)
            mx = acc[k] > mx ? acc[k] : mx;
        for (int k = 0; k < LANES; k++)
            acc[k] = 0.0f;
        float tail = 0.0f;
        for (j = 0; j + LANES <= n; j += LANES)
            for (int k = 0; k < LANES; k++) {
                float e = vexpf(s[j + k] - mx);
                s[j + k] = e;
                acc[k] += e;
            }
        for (; j < n; j++) {
            s[j] = vexpf(s[j] - mx);
            tail += s[j];
        }
        float inv = 1.0f / lanes_total(acc, tail);
        for (j = 0; j < n; j++)
            s[j] *= inv;
    }
}

/* Per-thread scratch of attention, in floats: the scores of a query block, and the head's keys
 * and values copied out of the qkv rows (contiguous operands pack faster than rows 3D apart). */
static size_t attn_scratch(int qb, int n_tok, int dh) { return (size_t)n_tok * ((size_t)qb + 2 * (size_t)dh); }

/* One thread's tasks, a task being (sequence, head, block of queries): scores = q k^T / sqrt(dh)
 * for the block against every key, softmax, times v into the block's rows of ctx. A thread's
 * tasks are consecutive, so it copies a head's keys and values once for all its blocks. */
static void attn_part(void *p, int part)
{
    AttnArgs *a = p;
    size_t lo = a->n_tasks * (size_t)part / (size_t)a->n_parts, hi = a->n_tasks * (size_t)(part + 1) / (size_t)a->n_parts;
    int D = a->dim, dh = D / a->heads, ld = 3 * D, N = a->n_tok;
    float *S = a->scores + (size_t)part * attn_scratch(a->qb_size, N, dh);
    float *K = S + (size_t)a->qb_size * N, *V = K + (size_t)N * dh;
    float scale = (float)(1.0 / sqrt((double)dh));
    double tg = 0;
    size_t have = (size_t)-1; /* the (sequence, head) whose keys and values K, V hold */
    for (size_t task = lo; task < hi; task++) {
        int qb = (int)(task % (size_t)a->n_qb);
        size_t sh = task / (size_t)a->n_qb, s = sh / (size_t)a->heads;
        int h = (int)(sh % (size_t)a->heads);
        const float *base = a->qkv + s * N * ld;
        if (sh != have) {
            for (int j = 0; j < N; j++) {
                memcpy(K + (size_t)j * dh, base + (size_t)j * ld + D + h * dh, (size_t)dh * sizeof(float));
                memcpy(V + (size_t)j * dh, base + (size_t)j * ld + 2 * D + h * dh, (size_t)dh * sizeof(float));
            }
            have = sh;
        }
        int q0 = qb * a->qb_size, nq = N - q0 < a->qb_size ? N - q0 : a->qb_size;
        const float *Q = base + (size_t)q0 * ld + h * dh;
        double t0 = now();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nq, N, dh, scale, Q, ld, K, dh, 0.0f, S, N);
        double t1 = now();
        softmax_rows(S, nq, N);
        double t2 = now();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nq, dh, N, 1.0f, S, N, V, dh, 0.0f,
                    a->ctx + (s * N + q0) * D + h * dh, D);
        tg += (t1 - t0) + (now() - t2);
    }
    a->t[part] = tg;
}

void tfm_attention(TfmCpu *c, float *ctx, const float *qkv, int n_seq, int n_tok, int dim, int heads)
{
    int qb = c->qblock > 0 ? c->qblock : TFM_QBLOCK;
    AttnArgs a = {ctx, c->scores, qkv, n_seq, n_tok, dim, heads, qb, (n_tok + qb - 1) / qb, 1, 0, {0}};
    a.n_tasks = (size_t)n_seq * heads * a.n_qb;
    double flops = 4.0 * n_seq * (double)n_tok * n_tok * dim;
    a.n_parts = op_parts(c->n_threads, flops, a.n_tasks);
    tfm_parallel(a.n_parts, attn_part, &a);
    c->gemm_s += max_of(a.t, a.n_parts);
    c->gemm_flops += flops;
}

// --- the block -------------------------------------------------------------------------------

static int grow(float **p, size_t *cap, size_t need)
{
    if (need <= *cap)
        return 0;
    free(*p);
    *p = malloc(need * sizeof(float));
    *cap = *p ? need : 0;
    return *p ? 0 : LMR_ENOMEM;
}

int tfm_cpu_reserve(TfmCpu *c, const TfmShape *s, size_t rows, int n_tok)
{
    int nt = c->n_threads < 1 ? 1 : c->n_threads > MAX_PARTS ? MAX_PARTS : c->n_threads;
    if (rows > c->rows_cap) {
        free(c->h), free(c->qkv), free(c->ctx), free(c->mid);
        c->h = malloc(rows * s->dim * sizeof(float));
        c->qkv = malloc(rows * 3 * s->dim * sizeof(float));
        c->ctx = malloc(rows * s->dim * sizeof(float));
        c->mid = malloc(rows * s->mlp * sizeof(float));
        c->rows_cap = rows;
        if (!c->h || !c->qkv || !c->ctx || !c->mid) {
            c->rows_cap = 0;
            return LMR_ENOMEM;
        }
    }
    int qb = c->qblock > 0 ? c->qblock : TFM_QBLOCK;
    return grow(&c->scores, &c->scores_cap, (size_t)nt * attn_scratch(qb, n_tok, s->dim / s->heads));
}

void tfm_cpu_free(TfmCpu *c)
{
    if (!c)
        return;
    free(c->h), free(c->qkv), free(c->ctx), free(c->mid), free(c->scores);
    c->h = c->qkv = c->ctx = c->mid = c->scores = NULL;
    c->rows_cap = c->scores_cap = 0;
}

int tfm_block_forward(TfmCpu *c, const TfmBlock *b, const TfmShape *s, float *x, int n_seq, int n_tok)
{
    size_t rows = (size_t)n_seq * n_tok;
    int D = s->dim;
    LMR_TRY(tfm_cpu_reserve(c, s, rows, n_tok));
    tfm_layernorm(c->h, x, b->ln1_g, b->ln1_b, rows, D, s->eps, c->n_threads);
    tfm_linear(c, c->qkv, c->h, b->qkv_w, b->qkv_b, rows, 3 * D, D, TFM_BIAS);
    tfm_attention(c, c->ctx, c->qkv, n_seq, n_tok, D, s->heads);
    tfm_linear(c, x, c->ctx, b->proj_w, b->proj_b, rows, D, D, TFM_ADD);
    tfm_layernorm(c->h, x, b->ln2_g, b->ln2_b, rows, D, s->eps, c->n_threads);
    tfm_linear(c, c->mid, c->h, b->fc1_w, b->fc1_b, rows, s->mlp, D, TFM_GELU);
    tfm_linear(c, x, c->mid, b->fc2_w, b->fc2_b, rows, D, s->mlp, TFM_ADD);
    return 0;
}

// --- patches ---------------------------------------------------------------------------------

typedef struct {
    float *out;
    const uint8_t *f;
    int h, w, kt, p;
} PatchArgs;

static void patch_range(void *arg, size_t lo, size_t hi)
{
    static const float mean[3] = {0.485f, 0.456f, 0.406f}, sd[3] = {0.229f, 0.224f, 0.225f};
    const PatchArgs *a = arg;
    int p = a->p, gw = a->w / p;
    size_t per = (size_t)(a->h / p) * gw, row = (size_t)a->kt * p * p * 3;
    for (size_t tok = lo; tok < hi; tok++) {
        size_t g = tok / per, rem = tok % per;
        int py = (int)(rem / (size_t)gw), px = (int)(rem % (size_t)gw);
        float *o = a->out + tok * row;
        for (int t = 0; t < a->kt; t++) {
            size_t frame = g * a->kt + t;
            for (int ky = 0; ky < p; ky++, o += 3 * p) {
                const uint8_t *src = a->f + ((frame * a->h + (size_t)py * p + ky) * a->w + (size_t)px * p) * 3;
                for (int i = 0; i < 3 * p; i++)
                    o[i] = ((float)src[i] / 255.0f - mean[i % 3]) / sd[i % 3];
            }
        }
    }
}

void tfm_patchify(float *out, const uint8_t *frames, int n_frames, int h, int w, int kt, int p, int n_threads)
{
    PatchArgs a = {out, frames, h, w, kt, p};
    size_t n_tok = (size_t)(n_frames / kt) * (h / p) * (w / p);
    resnet_parallel_for(n_tok < 256 ? 1 : n_threads, n_tok, patch_range, &a);
}

void tfm_patch_weight(float *dst, const float *src, int d, int kt, int p)
{
    for (int o = 0; o < d; o++)
        for (int c = 0; c < 3; c++)
            for (int t = 0; t < kt; t++)
                for (int y = 0; y < p; y++)
                    for (int x = 0; x < p; x++)
                        dst[((((size_t)o * kt + t) * p + y) * p + x) * 3 + c] =
                            src[((((size_t)o * 3 + c) * kt + t) * p + y) * p + x];
}

// --- weights ---------------------------------------------------------------------------------

int tfm_read(StFile *f, const char *path, char *err, float *dst, int ndim, const int64_t *shape, const char *fmt,
             ...)
{
    char name[160];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    const StTensor *t;
    int rc = st_expect(f, name, ST_F32, ndim, shape, &t);
    if (rc < 0)
        return lmr_fail(err, rc, "%s: %s", path, f->last_error);
    memcpy(dst, t->data, t->nbytes); /* safetensors data need not be 4-byte aligned */
    return 0;
}

size_t tfm_block_params(const TfmShape *s)
{
    size_t D = (size_t)s->dim, M = (size_t)s->mlp;
    return 4 * D + 3 * D * D + 3 * D + D * D + D + M * D + M + D * M + D;
}

void tfm_blocks_point(TfmBlock *blocks, const TfmShape *s, float *p)
{
    size_t D = (size_t)s->dim, M = (size_t)s->mlp;
    for (int i = 0; i < s->layers; i++) {
        TfmBlock *b = &blocks[i];
        float **v[12] = {&b->ln1_g, &b->ln1_b, &b->qkv_w, &b->qkv_b, &b->proj_w, &b->proj_b,
                         &b->ln2_g, &b->ln2_b, &b->fc1_w, &b->fc1_b, &b->fc2_w, &b->fc2_b};
        size_t n[12] = {D, D, 3 * D * D, 3 * D, D * D, D, D, D, M * D, M, D * M, D};
        for (int k = 0; k < 12; k++) {
            *v[k] = p;
            p += n[k];
        }
    }
}
