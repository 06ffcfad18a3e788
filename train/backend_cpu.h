/* CPU backend internals shared by its source files (backend_cpu.c: context, memory, GEMMs,
 * layer norm, linear, losses, AdamW; backend_lmr.c: the LMR reconstruction and mixing). Not
 * part of the API: callers include backend.h. */
#ifndef LMR_TRAIN_BACKEND_CPU_H
#define LMR_TRAIN_BACKEND_CPU_H

#include <cblas.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "backend.h"
#include "team.h"

#ifdef LMR_HAVE_CUDA
/* A BACKEND_CUDA context forwards every call to its twin in backend_cuda.cu (same arguments). */
#include "backend_cuda.h"
#define GPU_FORWARD(ctx, call)           \
    do {                                 \
        if ((ctx) && (ctx)->gpu) {       \
            call;                        \
            return;                      \
        }                                \
    } while (0)
#define GPU_RETURN(ctx, call)            \
    do {                                 \
        if ((ctx) && (ctx)->gpu)         \
            return call;                 \
    } while (0)
#else
#define GPU_FORWARD(ctx, call) (void)(ctx)
#define GPU_RETURN(ctx, call) (void)(ctx)
#endif

/* With two or more threads a team (team.h) runs every op: the GEMMs cut into blocks of rows or
 * columns, each an OpenBLAS call on one thread, and the passes between them cut into rows or
 * elements. The passes compute each element exactly as on one thread; a GEMM block may round
 * differently from the whole call (OpenBLAS picks kernels by size), within float tolerance. */
struct BackendCtx {
    BackendKind kind;
    int threads;
    Team *team;
    double gemm_s, gemm_flops; /* time in the GEMM ops and the flops they did (backend_gemm_stats) */
#ifdef LMR_HAVE_CUDA
    CudaState *gpu; /* BACKEND_CUDA only */
#endif
};

/* The passes between the GEMMs are built for three vector widths and the widest the CPU has is
 * picked at load time (GCC's function multi-versioning). The build never contracts a * b + c into
 * an FMA (ISO C mode), so every version gives the same bytes. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define VEC_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define VEC_CLONES
#endif

/* Helpers of the passes: always inlined, so each is built for the vector width of the pass
 * that calls it (a call out of a clone would run the baseline SSE build). */
#define VEC_INLINE static inline __attribute__((always_inline))

/* Below this many elements of work a hand-over costs more than it saves. */
#define SPLIT_MIN ((size_t)1 << 13)
/* ... and below this many multiply-adds for a GEMM. */
#define GEMM_SPLIT_MIN ((double)(1 << 18))

/* fn over [0, n), cut across the team when there is one and work (elements touched) is worth
 * it. Split points are multiples of align (whole vectors / cache lines per side). */
void cpu_split_run(BackendCtx *ctx, size_t n, size_t work, size_t align, TeamFn fn, void *arg);
/* C (M,N) = alpha op(A) op(B) (row-major sgemm), cut across the team when worth it, its time
 * and flops accounted (backend_gemm_stats). */
void cpu_gemm(BackendCtx *ctx, CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int M, int N, int K, float alpha,
              const float *A, int lda, const float *B, int ldb, float *C, int ldc);

/* Row reductions with 16 independent partial sums: the compiler turns them into vector adds
 * (one AVX-512 register, two AVX2, four SSE; with 8, GCC's AVX-512 code shuffled lanes and ran
 * layer norm 2.5x slower) without -ffast-math, and the fixed order keeps every run
 * bit-identical. */
#define LANES 16
VEC_INLINE float lanes_total(const float *acc, float tail)
{
    float h[8];
    for (int k = 0; k < 8; k++)
        h[k] = acc[k] + acc[k + 8];
    return ((h[0] + h[4]) + (h[1] + h[5])) + ((h[2] + h[6]) + (h[3] + h[7])) + tail;
}

VEC_INLINE float row_sum(const float *x, int n)
{
    float acc[LANES] = {0}, tail = 0.0f;
    int i = 0;
    for (; i + LANES <= n; i += LANES)
        for (int k = 0; k < LANES; k++)
            acc[k] += x[i + k];
    for (; i < n; i++)
        tail += x[i];
    return lanes_total(acc, tail);
}

VEC_INLINE float row_sqdev(const float *x, float mu, int n)
{
    float acc[LANES] = {0}, tail = 0.0f;
    int i = 0;
    for (; i + LANES <= n; i += LANES)
        for (int k = 0; k < LANES; k++)
            acc[k] += (x[i + k] - mu) * (x[i + k] - mu);
    for (; i < n; i++)
        tail += (x[i] - mu) * (x[i] - mu);
    return lanes_total(acc, tail);
}

VEC_INLINE float row_dot(const float *a, const float *b, int n)
{
    float acc[LANES] = {0}, tail = 0.0f;
    int i = 0;
    for (; i + LANES <= n; i += LANES)
        for (int k = 0; k < LANES; k++)
            acc[k] += a[i + k] * b[i + k];
    for (; i < n; i++)
        tail += a[i] * b[i];
    return lanes_total(acc, tail);
}

/* exp and tanh written so the compiler can vectorise them (glibc's are scalar calls): Cody-Waite
 * range reduction and Cephes' polynomial, within 2 ulp of expf over the float range. Rounding uses
 * the 1.5 * 2^23 trick, which needs no SSE4.1 and no -ffast-math. */
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

VEC_INLINE float vtanhf(float x)
{
    float ax = x < 0 ? -x : x, x2 = x * x;
    // small |x|: the odd series, where 1 - e^{-2|x|} would cancel
    float small = x * (1.0f + x2 * (-1.0f / 3 + x2 * (2.0f / 15 + x2 * (-17.0f / 315))));
    float t = vexpf(-2.0f * ax), big = (1.0f - t) / (1.0f + t);
    big = x < 0 ? -big : big;
    return ax < 0.0625f ? small : big;
}

#endif
