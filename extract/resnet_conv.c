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
    float *col;        // (rows, k*k*c_in)
    const float *in;   // (n, h, w, c_in)
    const ResnetConv *c;
    int h, w, oh, ow;
    size_t row0;       /* first output pixel of the chunk */
    float *out;        // (rows, c_out), the chunk's GEMM result
    const float *res;  // (rows, c_out) or NULL
    int relu;
} ConvArgs;

static void im2col_range(void *p, size_t lo, size_t hi)
{
    ConvArgs *a = p;
    const ResnetConv *c = a->c;
    size_t kdim = (size_t)c->k * c->k * c->c_in, ohw = (size_t)a->oh * a->ow;
    size_t cb = (size_t)c->c_in * sizeof(float);
    for (size_t r = lo; r < hi; r++) {
        size_t pix = a->row0 + r, img = pix / ohw, rem = pix % ohw;
        int oy = (int)(rem / (size_t)a->ow), ox = (int)(rem % (size_t)a->ow);
        float *dst = a->col + r * kdim;
        const float *src = a->in + img * (size_t)a->h * a->w * c->c_in;
        for (int ky = 0; ky < c->k; ky++) {
            int iy = oy * c->stride - c->pad + ky;
            for (int kx = 0; kx < c->k; kx++, dst += c->c_in) {
                int ix = ox * c->stride - c->pad + kx;
                if (iy < 0 || iy >= a->h || ix < 0 || ix >= a->w)
                    memset(dst, 0, cb);
                else
                    memcpy(dst, src + ((size_t)iy * a->w + ix) * c->c_in, cb);
            }
        }
    }
}

static void epilogue_range(void *p, size_t lo, size_t hi)
{
    ConvArgs *a = p;
    int co = a->c->c_out;
    const float *b = a->c->b;
    for (size_t r = lo; r < hi; r++) {
        float *o = a->out + r * co;
        const float *res = a->res ? a->res + r * co : NULL;
        if (res && a->relu)
            for (int j = 0; j < co; j++) {
                float v = o[j] + b[j] + res[j];
                o[j] = v > 0.0f ? v : 0.0f;
            }
        else if (res)
            for (int j = 0; j < co; j++)
                o[j] += b[j] + res[j];
        else if (a->relu)
            for (int j = 0; j < co; j++) {
                float v = o[j] + b[j];
                o[j] = v > 0.0f ? v : 0.0f;
            }
        else
            for (int j = 0; j < co; j++)
                o[j] += b[j];
    }
}

int resnet_conv_forward(ResnetCpu *cpu, float *out, const float *in, const float *residual,
                        const ResnetConv *c, int n, int h, int w, int relu)
{
    int oh = resnet_out_size(h, c->k, c->stride, c->pad), ow = resnet_out_size(w, c->k, c->stride, c->pad);
    size_t m = (size_t)n * oh * ow, kdim = (size_t)c->k * c->k * c->c_in;
    int direct = c->k == 1 && c->stride == 1 && c->pad == 0;
    size_t chunk = direct ? m : COL_MAX_FLOATS / kdim;
    if (chunk < 64)
        chunk = 64;
    if (chunk > m)
        chunk = m;
    if (!direct && cpu->col_cap < chunk * kdim) {
        float *col = realloc(cpu->col, chunk * kdim * sizeof(float));
        if (!col)
            return LMR_ENOMEM;
        cpu->col = col;
        cpu->col_cap = chunk * kdim;
    }
    int nt = cpu->n_threads > 0 ? cpu->n_threads : 1;
    for (size_t row0 = 0; row0 < m; row0 += chunk) {
        size_t rows = m - row0 < chunk ? m - row0 : chunk;
        ConvArgs a = {cpu->col, in, c, h, w, oh, ow, row0, out + row0 * c->c_out,
                      residual ? residual + row0 * c->c_out : NULL, relu};
        const float *A = in + row0 * kdim;
        if (!direct) {
            resnet_parallel_for(rows * kdim < 65536 ? 1 : nt, rows, im2col_range, &a);
            A = cpu->col;
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)rows, c->c_out, (int)kdim, 1.0f, A,
                    (int)kdim, c->w, (int)kdim, 0.0f, a.out, c->c_out);
        resnet_parallel_for(rows * c->c_out < 65536 ? 1 : nt, rows, epilogue_range, &a);
    }
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
