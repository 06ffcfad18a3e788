/* CPU layer ops of the ResNet backbone, NHWC f32. A convolution is im2col (skipped for 1x1
 * stride-1, where the input already is the GEMM operand) + OpenBLAS sgemm against the folded
 * (c_out, k*k*c_in) weights + one fused bias/residual/ReLU pass. Pixels are processed in chunks
 * so the im2col buffer stays bounded; im2col, epilogues and pooling run on our own threads,
 * the GEMM on OpenBLAS's. */
#include <cblas.h>
#include <float.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "resnet_internal.h"

#define COL_MAX_FLOATS ((size_t)4 << 20) /* 16 MB of im2col per chunk */
#define MAX_THREADS 256

// --- threads -------------------------------------------------------------------------------

typedef struct {
    void (*fn)(void *arg, size_t lo, size_t hi);
    void *arg;
    size_t lo, hi;
} Range;

static void *range_main(void *p)
{
    Range *r = p;
    r->fn(r->arg, r->lo, r->hi);
    return NULL;
}

void resnet_parallel_for(int n_threads, size_t n, void (*fn)(void *arg, size_t lo, size_t hi), void *arg)
{
    if (n_threads > MAX_THREADS)
        n_threads = MAX_THREADS;
    if ((size_t)n_threads > n)
        n_threads = (int)n;
    if (n_threads <= 1 || n < 2) {
        if (n)
            fn(arg, 0, n);
        return;
    }
    Range r[MAX_THREADS];
    pthread_t tid[MAX_THREADS];
    int started[MAX_THREADS];
    for (int t = 0; t < n_threads; t++) {
        r[t] = (Range){fn, arg, n * (size_t)t / (size_t)n_threads, n * (size_t)(t + 1) / (size_t)n_threads};
        /* thread 0's range runs on the caller; a thread that cannot start runs inline too */
        started[t] = t > 0 && pthread_create(&tid[t], NULL, range_main, &r[t]) == 0;
        if (t > 0 && !started[t])
            range_main(&r[t]);
    }
    range_main(&r[0]);
    for (int t = 1; t < n_threads; t++)
        if (started[t])
            pthread_join(tid[t], NULL);
}

void resnet_cpu_free(ResnetCpu *cpu)
{
    if (!cpu)
        return;
    free(cpu->col);
    cpu->col = NULL;
    cpu->col_cap = 0;
}

// --- normalisation -------------------------------------------------------------------------

typedef struct {
    float *out;
    const uint8_t *in;
} NormArgs;

static void normalize_range(void *p, size_t lo, size_t hi)
{
    static const float mean[3] = {0.485f, 0.456f, 0.406f}, std[3] = {0.229f, 0.224f, 0.225f};
    NormArgs *a = p;
    for (size_t i = lo * 3; i < hi * 3; i++)
        a->out[i] = ((float)a->in[i] / 255.0f - mean[i % 3]) / std[i % 3];
}

void resnet_normalize_forward(float *out, const uint8_t *in, size_t n_pix, int n_threads)
{
    NormArgs a = {out, in};
    resnet_parallel_for(n_pix < 4096 ? 1 : n_threads, n_pix, normalize_range, &a);
}

// --- convolution ---------------------------------------------------------------------------

typedef struct {
    const float *in;   // (n, h, w, c_in)
    const float *res;  // (n, oh, ow, c_out) or NULL
    float *out;        // (n, oh, ow, c_out)
    const ResnetConv *c;
    int h, w, oh, ow, relu, direct;
    size_t m;          /* output pixels = GEMM rows */
    size_t chunk;      /* rows per GEMM */
    float *cols;       /* one im2col buffer of chunk * k*k*c_in floats per part */
    size_t n_parts;
} ConvArgs;

/* Rows [r0, r0 + rows) of the im2col matrix: one row per output pixel, (ky, kx, c_in) order to
 * match the folded weights. */
static void im2col(float *col, const ConvArgs *a, size_t r0, size_t rows)
{
    const ResnetConv *c = a->c;
    size_t ohw = (size_t)a->oh * a->ow, cb = (size_t)c->c_in * sizeof(float);
    for (size_t r = 0; r < rows; r++) {
        size_t pix = r0 + r, img = pix / ohw, rem = pix % ohw;
        int oy = (int)(rem / (size_t)a->ow), ox = (int)(rem % (size_t)a->ow);
        const float *src = a->in + img * (size_t)a->h * a->w * c->c_in;
        for (int ky = 0; ky < c->k; ky++) {
            int iy = oy * c->stride - c->pad + ky;
            for (int kx = 0; kx < c->k; kx++, col += c->c_in) {
                int ix = ox * c->stride - c->pad + kx;
                if (iy < 0 || iy >= a->h || ix < 0 || ix >= a->w)
                    memset(col, 0, cb);
                else
                    memcpy(col, src + ((size_t)iy * a->w + ix) * c->c_in, cb);
            }
        }
    }
}

/* out = act(out + b [+ res]) on rows of c_out values, while they are still in cache */
static void epilogue(float *restrict out, const float *restrict res, const float *restrict b, size_t rows,
                     int co, int relu)
{
    for (size_t r = 0; r < rows; r++, out += co) {
        if (res) {
            for (int j = 0; j < co; j++)
                out[j] += b[j] + res[j];
            res += co;
        } else {
            for (int j = 0; j < co; j++)
                out[j] += b[j];
        }
        if (relu)
            for (int j = 0; j < co; j++)
                out[j] = out[j] > 0.0f ? out[j] : 0.0f;
    }
}

/* One thread's share of output pixels: im2col + single-threaded sgemm + epilogue, chunk by
 * chunk, so a conv runs entirely on our threads with nothing handed between thread pools. */
static void conv_parts(void *p, size_t part, size_t part_end)
{
    ConvArgs *a = p;
    const ResnetConv *c = a->c;
    size_t kdim = (size_t)c->k * c->k * c->c_in, co = (size_t)c->c_out;
    for (; part < part_end; part++) {
        size_t lo = a->m * part / a->n_parts, hi = a->m * (part + 1) / a->n_parts;
        float *col = a->direct ? NULL : a->cols + part * a->chunk * kdim;
        for (size_t r0 = lo; r0 < hi; r0 += a->chunk) {
            size_t rows = hi - r0 < a->chunk ? hi - r0 : a->chunk;
            const float *A = a->in + r0 * kdim;
            if (!a->direct) {
                im2col(col, a, r0, rows);
                A = col;
            }
            float *C = a->out + r0 * co;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)rows, c->c_out, (int)kdim, 1.0f, A,
                        (int)kdim, c->w, (int)kdim, 0.0f, C, c->c_out);
            epilogue(C, a->res ? a->res + r0 * co : NULL, c->b, rows, c->c_out, a->relu);
        }
    }
}

int resnet_conv_forward(ResnetCpu *cpu, float *out, const float *in, const float *residual,
                        const ResnetConv *c, int n, int h, int w, int relu)
{
    ConvArgs a = {in, residual, out, c, h, w, resnet_out_size(h, c->k, c->stride, c->pad),
                  resnet_out_size(w, c->k, c->stride, c->pad), relu, c->k == 1 && c->stride == 1 && c->pad == 0,
                  0, 0, NULL, 1};
    size_t kdim = (size_t)c->k * c->k * c->c_in;
    a.m = (size_t)n * a.oh * a.ow;
    int nt = cpu->n_threads > 0 ? cpu->n_threads : 1;
    /* enough work per thread to pay for a thread start and a weight packing */
    size_t flops_per_row = kdim * (size_t)c->c_out;
    a.n_parts = (size_t)nt;
    while (a.n_parts > 1 && a.m * flops_per_row / a.n_parts < ((size_t)1 << 20))
        a.n_parts--;
    if (a.n_parts > a.m)
        a.n_parts = a.m ? a.m : 1;
    a.chunk = a.direct ? a.m : COL_MAX_FLOATS / (kdim * a.n_parts);
    if (a.chunk < 32)
        a.chunk = 32;
    if (!a.direct) {
        size_t need = a.chunk * kdim * a.n_parts;
        if (cpu->col_cap < need) {
            free(cpu->col);
            cpu->col = malloc(need * sizeof(float));
            cpu->col_cap = cpu->col ? need : 0;
            if (!cpu->col)
                return LMR_ENOMEM;
        }
        a.cols = cpu->col;
    }
    resnet_parallel_for((int)a.n_parts, a.n_parts, conv_parts, &a);
    return 0;
}

// --- pooling -------------------------------------------------------------------------------

typedef struct {
    float *out;
    const float *in;
    int h, w, c, k, stride, pad, oh, ow;
} PoolArgs;

static void maxpool_range(void *p, size_t lo, size_t hi)
{
    PoolArgs *a = p;
    size_t ohw = (size_t)a->oh * a->ow;
    for (size_t pix = lo; pix < hi; pix++) {
        size_t img = pix / ohw, rem = pix % ohw;
        int oy = (int)(rem / (size_t)a->ow), ox = (int)(rem % (size_t)a->ow);
        float *o = a->out + pix * a->c;
        for (int j = 0; j < a->c; j++)
            o[j] = -FLT_MAX;
        for (int ky = 0; ky < a->k; ky++) {
            int iy = oy * a->stride - a->pad + ky;
            if (iy < 0 || iy >= a->h)
                continue;
            for (int kx = 0; kx < a->k; kx++) {
                int ix = ox * a->stride - a->pad + kx;
                if (ix < 0 || ix >= a->w)
                    continue;
                const float *s = a->in + ((img * a->h + iy) * a->w + ix) * a->c;
                for (int j = 0; j < a->c; j++)
                    o[j] = s[j] > o[j] ? s[j] : o[j];
            }
        }
    }
}

void resnet_maxpool_forward(float *out, const float *in, int n, int h, int w, int c, int k, int stride,
                            int pad, int n_threads)
{
    PoolArgs a = {out, in, h, w, c, k, stride, pad, resnet_out_size(h, k, stride, pad),
                  resnet_out_size(w, k, stride, pad)};
    size_t m = (size_t)n * a.oh * a.ow;
    resnet_parallel_for(m * c < 65536 ? 1 : n_threads, m, maxpool_range, &a);
}

void resnet_avgpool_forward(float *out, const float *in, int n, int hw, int c)
{
    for (int i = 0; i < n; i++) {
        float *o = out + (size_t)i * c;
        const float *s = in + (size_t)i * hw * c;
        memset(o, 0, (size_t)c * sizeof(float));
        for (int p = 0; p < hw; p++, s += c)
            for (int j = 0; j < c; j++)
                o[j] += s[j];
        for (int j = 0; j < c; j++)
            o[j] /= (float)hw;
    }
}
