/* CUDA backend: the twin of backend_cpu.c, op for op, on one device. GEMMs go to cuBLAS with the
 * same row-major transposes as the cblas calls of the cpu file (optionally on TF32 tensor cores);
 * layer norm, tanh, the three losses, the LMR masks/softmax/combine, mixing, sum of squares and
 * AdamW are our own kernels, one block per row where a row needs a reduction. Every op runs in
 * order on one stream, so no op waits for the host; only download, sync and sumsq do. Large
 * uploads go through pinned staging buffers on a second stream (below), so the host is not held
 * while the device works through what was queued before them. Every
 * CUDA / cuBLAS / NCCL status is checked: the first failure is kept with file, line, call and
 * the library's message, and reported as LMR_EGPU by the next call that returns a code. */
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef LMR_HAVE_NCCL
#include <nccl.h>
#endif

extern "C" {
#include "backend.h"
}
#include "backend_cuda.h"

/* A pinned host buffer an upload is staged in, and the event marking its copy done. */
typedef struct {
    void *buf;
    size_t cap;
    cudaEvent_t done;
    int busy; /* a copy from buf was queued: wait for done before refilling */
} Staging;

#define N_STAGING 2

struct CudaState {
    int device;
    cudaStream_t stream; /* every op, copy and collective, in order */
    cudaStream_t copy;   /* staged uploads, each fenced against `stream` by events both ways */
    cudaEvent_t queued;  /* recorded on `stream`: what the next staged upload waits for */
    Staging stage[N_STAGING];
    int next_stage;
    int32_t *d_idx; /* (idx_cap) row indices of cuda_gather_rows */
    size_t idx_cap;
    cublasHandle_t blas;
    double *d_sum; /* (1) device accumulator of cuda_sumsq */
    int status;    /* 0, or LMR_EGPU after the first failure */
    char last_error[LMR_ERRLEN];
#ifdef LMR_HAVE_NCCL
    ncclComm_t comm;
#endif
};

// --- status checks -----------------------------------------------------------------------------

static const char *base_name(const char *path)
{
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

/* Keep the first failure only: later ones are usually its consequences. */
static int gpu_fail(CudaState *g, const char *file, int line, const char *call, const char *msg)
{
    if (g && g->status == 0) {
        g->status = LMR_EGPU;
        snprintf(g->last_error, sizeof g->last_error, "%s:%d: %s: %s", base_name(file), line, call, msg);
    }
    return LMR_EGPU;
}

static int cuda_ok(CudaState *g, cudaError_t e, const char *call, const char *file, int line)
{
    return e == cudaSuccess ? 0 : gpu_fail(g, file, line, call, cudaGetErrorString(e));
}

static int blas_ok(CudaState *g, cublasStatus_t s, const char *call, const char *file, int line)
{
    return s == CUBLAS_STATUS_SUCCESS ? 0 : gpu_fail(g, file, line, call, cublasGetStatusString(s));
}

#define CUDA_OK(g, call) cuda_ok((g), (call), #call, __FILE__, __LINE__)
#define BLAS_OK(g, call) blas_ok((g), (call), #call, __FILE__, __LINE__)
/* After a kernel launch: bad configurations show up here, faults at the next sync. */
#define LAUNCH_OK(g, name) cuda_ok((g), cudaGetLastError(), name, __FILE__, __LINE__)

#ifdef LMR_HAVE_NCCL
static int nccl_ok(CudaState *g, ncclResult_t r, const char *call, const char *file, int line)
{
    return r == ncclSuccess ? 0 : gpu_fail(g, file, line, call, ncclGetErrorString(r));
}
#define NCCL_OK(g, call) nccl_ok((g), (call), #call, __FILE__, __LINE__)
#endif

// --- reductions inside a block (blockDim.x a multiple of 32, at most 1024) -------------------------

#define ROW_THREADS 256

template <typename T> __device__ T warp_sum(T v)
{
    for (int o = 16; o > 0; o >>= 1)
        v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

__device__ float warp_max(float v)
{
    for (int o = 16; o > 0; o >>= 1)
        v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

/* Every thread gets the block's sum; callable several times in a row. */
template <typename T> __device__ T block_sum(T v)
{
    __shared__ T sh[32];
    int lane = threadIdx.x & 31, wid = threadIdx.x >> 5, nw = (blockDim.x + 31) >> 5;
    v = warp_sum(v);
    __syncthreads(); // the previous call's readers are done with sh
    if (lane == 0)
        sh[wid] = v;
    __syncthreads();
    v = lane < nw ? sh[lane] : (T)0;
    return warp_sum(v);
}

__device__ float block_max(float v)
{
    __shared__ float sh[32];
    int lane = threadIdx.x & 31, wid = threadIdx.x >> 5, nw = (blockDim.x + 31) >> 5;
    v = warp_max(v);
    __syncthreads();
    if (lane == 0)
        sh[wid] = v;
    __syncthreads();
    v = lane < nw ? sh[lane] : -INFINITY;
    return warp_max(v);
}

static unsigned grid_for(size_t n, int threads)
{
    size_t b = (n + (size_t)threads - 1) / (size_t)threads;
    return (unsigned)(b < 65535u * 16u ? (b ? b : 1) : 65535u * 16u); // kernels stride over the rest
}

// --- kernels: layer norm -----------------------------------------------------------------------

__global__ void k_layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *w,
                                    const float *b, int D, float eps)
{
    const float *x = inp + (size_t)blockIdx.x * D;
    float *o = out + (size_t)blockIdx.x * D;
    float s = 0.0f;
    for (int i = threadIdx.x; i < D; i += blockDim.x)
        s += x[i];
    float mu = block_sum(s) / D, v = 0.0f;
    for (int i = threadIdx.x; i < D; i += blockDim.x) {
        float d = x[i] - mu;
        v += d * d;
    }
    float rs = 1.0f / sqrtf(block_sum(v) / D + eps);
    for (int i = threadIdx.x; i < D; i += blockDim.x) {
        float n = (x[i] - mu) * rs;
        o[i] = w ? n * w[i] + b[i] : n;
    }
    if (threadIdx.x == 0) {
        mean[blockIdx.x] = mu;
        rstd[blockIdx.x] = rs;
    }
}

__global__ void k_layernorm_backward_dx(float *dinp, const float *dout, const float *inp, const float *w,
                                        const float *mean, const float *rstd, int D)
{
    size_t row = blockIdx.x;
    const float *x = inp + row * D, *dy = dout + row * D;
    float mu = mean[row], rs = rstd[row], s1 = 0.0f, s2 = 0.0f;
    for (int i = threadIdx.x; i < D; i += blockDim.x) {
        float dn = w ? dy[i] * w[i] : dy[i];
        s1 += dn;
        s2 += dn * (x[i] - mu) * rs;
    }
    s1 = block_sum(s1) / D;
    s2 = block_sum(s2) / D;
    float *dx = dinp + row * D;
    for (int i = threadIdx.x; i < D; i += blockDim.x) {
        float dn = w ? dy[i] * w[i] : dy[i];
        dx[i] = (dn - s1 - (x[i] - mu) * rs * s2) * rs;
    }
}

/* Column sums over B rows with 32 columns x 8 row lanes per block (coalesced along a row). */
#define COL_X 32
#define COL_Y 8

__global__ void k_layernorm_backward_dw(float *dw, float *db, const float *dout, const float *inp,
                                        const float *mean, const float *rstd, int B, int D)
{
    __shared__ float sw[COL_Y][COL_X], sb[COL_Y][COL_X];
    int d = blockIdx.x * COL_X + threadIdx.x;
    float aw = 0.0f, ab = 0.0f;
    if (d < D)
        for (int r = threadIdx.y; r < B; r += COL_Y) {
            float dy = dout[(size_t)r * D + d];
            aw += dy * (inp[(size_t)r * D + d] - mean[r]) * rstd[r];
            ab += dy;
        }
    sw[threadIdx.y][threadIdx.x] = aw;
    sb[threadIdx.y][threadIdx.x] = ab;
    __syncthreads();
    if (threadIdx.y == 0 && d < D) {
        for (int k = 1; k < COL_Y; k++) {
            aw += sw[k][threadIdx.x];
            ab += sb[k][threadIdx.x];
        }
        dw[d] = aw;
        db[d] = ab;
    }
}

// --- kernels: linear epilogues -------------------------------------------------------------------

__global__ void k_bias_act(float *out, const float *bias, size_t n, int OC, int tanh_act)
{
    for (size_t k = blockIdx.x * (size_t)blockDim.x + threadIdx.x; k < n; k += (size_t)gridDim.x * blockDim.x) {
        float v = out[k] + bias[k % OC];
        out[k] = tanh_act ? tanhf(v) : v;
    }
}

/* dbias (OC) = column sums of dout, after dout *= 1 - y^2 in place for tanh. */
__global__ void k_act_backward_dbias(float *dbias, float *dout, const float *y, int B, int OC, int tanh_act)
{
    __shared__ float s[COL_Y][COL_X];
    int j = blockIdx.x * COL_X + threadIdx.x;
    float acc = 0.0f;
    if (j < OC)
        for (int r = threadIdx.y; r < B; r += COL_Y) {
            size_t k = (size_t)r * OC + j;
            float d = dout[k];
            if (tanh_act) {
                d *= 1.0f - y[k] * y[k];
                dout[k] = d;
            }
            acc += d;
        }
    s[threadIdx.y][threadIdx.x] = acc;
    __syncthreads();
    if (threadIdx.y == 0 && j < OC) {
        for (int k = 1; k < COL_Y; k++)
            acc += s[k][threadIdx.x];
        dbias[j] = acc;
    }
}

// --- kernels: losses (one block per row) ---------------------------------------------------------

__global__ void k_ce_hard(float *losses, float *dlogits, const float *logits, const int32_t *labels,
                          float off, float on, float inv_b, int C)
{
    size_t row = blockIdx.x;
    const float *z = logits + row * C;
    float *d = dlogits + row * C;
    float mx = -INFINITY, sz = 0.0f;
    for (int c = threadIdx.x; c < C; c += blockDim.x) {
        mx = fmaxf(mx, z[c]);
        sz += z[c];
    }
    mx = block_max(mx);
    sz = block_sum(sz);
    float s = 0.0f;
    for (int c = threadIdx.x; c < C; c += blockDim.x)
        s += expf(z[c] - mx);
    s = block_sum(s);
    float inv = 1.0f / s;
    int y = labels[row];
    for (int c = threadIdx.x; c < C; c += blockDim.x) {
        float g = (expf(z[c] - mx) * inv - off) * inv_b;
        d[c] = c == y ? g - (on - off) * inv_b : g;
    }
    if (threadIdx.x == 0)
        losses[row] = mx + logf(s) - off * sz - (on - off) * z[y];
}

__global__ void k_ce_soft(float *losses, float *dlogits, const float *logits, const float *targets, float inv_b,
                          int C)
{
    size_t row = blockIdx.x;
    const float *z = logits + row * C, *t = targets + row * C;
    float *d = dlogits + row * C;
    float mx = -INFINITY, tz = 0.0f, ts = 0.0f;
    for (int c = threadIdx.x; c < C; c += blockDim.x) {
        mx = fmaxf(mx, z[c]);
        tz += t[c] * z[c];
        ts += t[c];
    }
    mx = block_max(mx);
    tz = block_sum(tz);
    ts = block_sum(ts);
    float s = 0.0f;
    for (int c = threadIdx.x; c < C; c += blockDim.x)
        s += expf(z[c] - mx);
    s = block_sum(s);
    float inv = 1.0f / s;
    for (int c = threadIdx.x; c < C; c += blockDim.x)
        d[c] = (ts * expf(z[c] - mx) * inv - t[c]) * inv_b;
    if (threadIdx.x == 0)
        losses[row] = ts * (mx + logf(s)) - tz;
}

__global__ void k_bce(float *losses, float *dlogits, const float *logits, const float *targets, float inv, int C)
{
    size_t row = blockIdx.x;
    const float *z = logits + row * C, *t = targets + row * C;
    float *d = dlogits + row * C;
    float l = 0.0f;
    for (int c = threadIdx.x; c < C; c += blockDim.x) {
        float x = z[c];
        l += fmaxf(x, 0.0f) - x * t[c] + log1pf(expf(-fabsf(x)));
        float s = x >= 0 ? 1.0f / (1.0f + expf(-x)) : expf(x) / (1.0f + expf(x));
        d[c] = (s - t[c]) * inv;
    }
    l = block_sum(l);
    if (threadIdx.x == 0)
        losses[row] = l / C;
}

// --- kernels: LMR (one block per row) ------------------------------------------------------------

/* Key j may be attended to by a row of clip q: not few-shot, and not made from clip q (key_clip
 * NULL: key j's clip is j; q < 0: no clip to mask). */
__device__ __forceinline__ bool key_valid(const uint8_t *key_ok, const int32_t *key_clip, int j, int q)
{
    return key_ok[j] && (q < 0 || (key_clip ? key_clip[j] : j) != q);
}

/* In place over the similarity row; a row with every key masked becomes 0. */
__global__ void k_masked_softmax(float *wts, const uint8_t *key_ok, const int32_t *key_clip,
                                 const int32_t *query_clip, int N)
{
    float *s = wts + (size_t)blockIdx.x * N;
    int self = query_clip[blockIdx.x];
    float mx = -INFINITY;
    for (int j = threadIdx.x; j < N; j += blockDim.x)
        if (key_valid(key_ok, key_clip, j, self))
            mx = fmaxf(mx, s[j]);
    mx = block_max(mx);
    if (mx == -INFINITY) { // uniform over the block: every thread takes this branch
        for (int j = threadIdx.x; j < N; j += blockDim.x)
            s[j] = 0.0f;
        return;
    }
    float sum = 0.0f;
    for (int j = threadIdx.x; j < N; j += blockDim.x) {
        float e = key_valid(key_ok, key_clip, j, self) ? expf(s[j] - mx) : 0.0f;
        s[j] = e;
        sum += e;
    }
    float inv = 1.0f / block_sum(sum);
    for (int j = threadIdx.x; j < N; j += blockDim.x)
        s[j] *= inv;
}

/* R = c r + (1 - c) f, R holding r on entry; R = f when every key of the row is masked. */
__global__ void k_lmr_combine(float *R, const float *f, const uint8_t *key_ok, const int32_t *key_clip,
                              const int32_t *query_clip, const float *c, int N, int H)
{
    size_t row = blockIdx.x;
    int self = query_clip[row], any = 0;
    for (int j = threadIdx.x; j < N && !any; j += blockDim.x)
        any = key_valid(key_ok, key_clip, j, self);
    any = __syncthreads_or(any);
    float *r = R + row * H;
    const float *fi = f + row * H;
    float ci = c[row], cf = 1.0f - ci;
    for (int h = threadIdx.x; h < H; h += blockDim.x)
        r[h] = any ? ci * r[h] + cf * fi[h] : fi[h];
}

__global__ void k_scale_rows(float *out, const float *in, const float *scale, size_t n, int H)
{
    for (size_t k = blockIdx.x * (size_t)blockDim.x + threadIdx.x; k < n; k += (size_t)gridDim.x * blockDim.x)
        out[k] = scale[k / H] * in[k];
}

/* ds_ij = w_ij (dw_ij - sum_l w_il dw_il), in place over dw. */
__global__ void k_softmax_backward(float *dw, const float *w, int N)
{
    size_t row = blockIdx.x;
    float *d = dw + row * N;
    const float *p = w + row * N;
    float dot = 0.0f;
    for (int j = threadIdx.x; j < N; j += blockDim.x)
        dot += p[j] * d[j];
    dot = block_sum(dot);
    for (int j = threadIdx.x; j < N; j += blockDim.x)
        d[j] = p[j] * (d[j] - dot);
}

/* df = (1 - c) dR + LN0_backward(dfn); df = dR for rows whose keys were all masked (w = 0). */
__global__ void k_lmr_backward_final(float *df, const float *dR, const float *wts, const float *dfn,
                                     const float *fn, const float *frstd, const float *c, int N, int H)
{
    size_t row = blockIdx.x;
    const float *w = wts + row * N, *g = dfn + row * H, *n = fn + row * H, *dy = dR + row * H;
    float *dx = df + row * H;
    int any = 0;
    for (int j = threadIdx.x; j < N && !any; j += blockDim.x)
        any = w[j] != 0.0f;
    any = __syncthreads_or(any);
    if (!any) {
        for (int h = threadIdx.x; h < H; h += blockDim.x)
            dx[h] = dy[h];
        return;
    }
    float m1 = 0.0f, m2 = 0.0f;
    for (int h = threadIdx.x; h < H; h += blockDim.x) {
        m1 += g[h];
        m2 += g[h] * n[h];
    }
    m1 = block_sum(m1) / H;
    m2 = block_sum(m2) / H;
    float rs = frstd[row], cf = 1.0f - c[row];
    for (int h = threadIdx.x; h < H; h += blockDim.x)
        dx[h] = cf * dy[h] + (g[h] - m1 - n[h] * m2) * rs;
}

// --- kernels: mixing, optimiser ------------------------------------------------------------------

__global__ void k_mix_forward(float *X, const float *R, const int32_t *partner, const float *a, int n_mix,
                              size_t n, int H)
{
    for (size_t k = blockIdx.x * (size_t)blockDim.x + threadIdx.x; k < n; k += (size_t)gridDim.x * blockDim.x) {
        size_t i = k / H;
        int h = (int)(k % H);
        if ((long)i >= n_mix) {
            X[k] = R[k];
        } else {
            float ai = a[i];
            X[k] = (1.0f - ai) * R[k] + ai * R[(size_t)partner[i] * H + h];
        }
    }
}

__global__ void k_mix_backward_self(float *dR, const float *dX, const float *a, int n_mix, size_t n, int H)
{
    for (size_t k = blockIdx.x * (size_t)blockDim.x + threadIdx.x; k < n; k += (size_t)gridDim.x * blockDim.x) {
        size_t i = k / H;
        dR[k] = ((long)i < n_mix ? 1.0f - a[i] : 1.0f) * dX[k];
    }
}

/* Several rows may share a partner: atomics (the order of the adds is not fixed). */
__global__ void k_mix_backward_partner(float *dR, const float *dX, const int32_t *partner, const float *a,
                                       size_t n, int H)
{
    for (size_t k = blockIdx.x * (size_t)blockDim.x + threadIdx.x; k < n; k += (size_t)gridDim.x * blockDim.x) {
        size_t i = k / H;
        int h = (int)(k % H);
        atomicAdd(&dR[(size_t)partner[i] * H + h], a[i] * dX[k]);
    }
}

/* dst row k = src row idx[k], F floats each. */
__global__ void k_gather_rows(float *dst, const float *src, const int32_t *idx, int n, int F)
{
    size_t total = (size_t)n * F;
    for (size_t k = blockIdx.x * (size_t)blockDim.x + threadIdx.x; k < total; k += (size_t)gridDim.x * blockDim.x) {
        size_t r = k / F;
        dst[k] = src[(size_t)idx[r] * F + k % F];
    }
}

__global__ void k_sumsq(double *out, const float *x, size_t n)
{
    double s = 0.0;
    for (size_t k = blockIdx.x * (size_t)blockDim.x + threadIdx.x; k < n; k += (size_t)gridDim.x * blockDim.x)
        s += (double)x[k] * x[k];
    s = block_sum(s);
    if (threadIdx.x == 0)
        atomicAdd(out, s);
}

__global__ void k_adamw(float *p, const float *grads, float *m, float *v, size_t n, float beta1, float beta2,
                        float eps, float step, float rbc2, float decay, float grad_scale)
{
    for (size_t k = blockIdx.x * (size_t)blockDim.x + threadIdx.x; k < n; k += (size_t)gridDim.x * blockDim.x) {
        float g = grads[k] * grad_scale;
        float mi = beta1 * m[k] + (1.0f - beta1) * g;
        float vi = beta2 * v[k] + (1.0f - beta2) * g * g;
        m[k] = mi;
        v[k] = vi;
        p[k] = p[k] * decay - step * mi / (sqrtf(vi) * rbc2 + eps);
    }
}

// --- GEMM: the row-major cblas call of the cpu file, on cuBLAS -----------------------------------

/* C (M,N) = alpha op(A) op(B) + beta C, all row-major with row strides lda, ldb, ldc. cuBLAS is
 * column-major, where a row-major matrix reads as its transpose: compute C^T = op(B)^T op(A)^T. */
static void gemm_rm(CudaState *g, int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A,
                    int lda, const float *B, int ldb, float beta, float *C, int ldc)
{
    if (M <= 0 || N <= 0)
        return;
    BLAS_OK(g, cublasSgemm(g->blas, trans_b ? CUBLAS_OP_T : CUBLAS_OP_N, trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, N, M,
                           K, &alpha, B, ldb, A, lda, &beta, C, ldc));
}

// --- context -------------------------------------------------------------------------------------

extern "C" int cuda_available(void)
{
    int n = 0;
    return cudaGetDeviceCount(&n) == cudaSuccess && n > 0;
}

extern "C" int cuda_select_device(int local_rank, char *err)
{
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess || n == 0) {
        cudaGetLastError();
        return 0;
    }
    cudaError_t e = cudaSetDevice(local_rank % n);
    if (e != cudaSuccess)
        return lmr_fail(err, LMR_EGPU, "%s:%d: cudaSetDevice(%d): %s", base_name(__FILE__), __LINE__, local_rank % n,
                        cudaGetErrorString(e));
    return 0;
}

extern "C" int cuda_init(CudaState **out, char *err)
{
    *out = NULL;
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess || n == 0) {
        cudaGetLastError(); // clear the sticky "no device" status
        return lmr_fail(err, LMR_ENODEV, "no CUDA device (%s)", e == cudaSuccess ? "none found" : cudaGetErrorString(e));
    }
    CudaState *g = (CudaState *)calloc(1, sizeof *g);
    if (!g)
        return lmr_fail(err, LMR_ENOMEM, "out of memory");
    int rc = CUDA_OK(g, cudaGetDevice(&g->device));
    if (!rc)
        rc = CUDA_OK(g, cudaStreamCreateWithFlags(&g->stream, cudaStreamNonBlocking));
    if (!rc)
        rc = CUDA_OK(g, cudaStreamCreateWithFlags(&g->copy, cudaStreamNonBlocking));
    if (!rc)
        rc = CUDA_OK(g, cudaEventCreateWithFlags(&g->queued, cudaEventDisableTiming));
    for (int k = 0; k < N_STAGING && !rc; k++)
        rc = CUDA_OK(g, cudaEventCreateWithFlags(&g->stage[k].done, cudaEventDisableTiming));
    if (!rc)
        rc = BLAS_OK(g, cublasCreate(&g->blas));
    if (!rc)
        rc = BLAS_OK(g, cublasSetStream(g->blas, g->stream));
    if (!rc) // full f32 unless TF32 is asked for
        rc = BLAS_OK(g, cublasSetMathMode(g->blas, CUBLAS_DEFAULT_MATH));
    if (!rc)
        rc = CUDA_OK(g, cudaMalloc((void **)&g->d_sum, sizeof(double)));
    if (rc) {
        lmr_fail(err, rc, "%s", g->last_error);
        cuda_free(&g);
        return rc;
    }
    *out = g;
    return 0;
}

extern "C" void cuda_free(CudaState **pg)
{
    CudaState *g = pg ? *pg : NULL;
    if (!g)
        return;
    if (g->stream)
        cudaStreamSynchronize(g->stream);
    if (g->copy)
        cudaStreamSynchronize(g->copy);
#ifdef LMR_HAVE_NCCL
    if (g->comm)
        ncclCommDestroy(g->comm);
#endif
    if (g->d_sum)
        cudaFree(g->d_sum);
    if (g->d_idx)
        cudaFree(g->d_idx);
    for (int k = 0; k < N_STAGING; k++) {
        if (g->stage[k].buf)
            cudaFreeHost(g->stage[k].buf);
        if (g->stage[k].done)
            cudaEventDestroy(g->stage[k].done);
    }
    if (g->queued)
        cudaEventDestroy(g->queued);
    if (g->blas)
        cublasDestroy(g->blas);
    if (g->copy)
        cudaStreamDestroy(g->copy);
    if (g->stream)
        cudaStreamDestroy(g->stream);
    free(g);
    *pg = NULL;
}

extern "C" const char *cuda_last_error(const CudaState *g)
{
    return g ? g->last_error : "";
}

extern "C" int cuda_set_tf32(CudaState *g, int on)
{
    BLAS_OK(g, cublasSetMathMode(g->blas, on ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH));
    return g->status;
}

// --- memory --------------------------------------------------------------------------------------

extern "C" int cuda_alloc(CudaState *g, void **ptr, size_t bytes)
{
    *ptr = NULL;
    cudaError_t e = cudaMalloc(ptr, bytes ? bytes : 16);
    if (e == cudaErrorMemoryAllocation) {
        cudaGetLastError();
        *ptr = NULL;
        return LMR_ENOMEM; // not sticky: the caller reports the size it asked for
    }
    if (CUDA_OK(g, e) || CUDA_OK(g, cudaMemsetAsync(*ptr, 0, bytes, g->stream)))
        return g->status;
    return 0;
}

extern "C" void cuda_release(CudaState *g, void *ptr)
{
    if (ptr)
        CUDA_OK(g, cudaFree(ptr)); // cudaFree waits for work that may still use ptr
}

/* Below this, an upload goes straight on the stream: the driver stages it at once. */
#define STAGE_MIN ((size_t)64 << 10)

/* The caller may reuse host_src as soon as this returns, and every op queued after it sees the
 * bytes. A large upload is copied into one of two pinned buffers (waiting only for that buffer's
 * copy two uploads ago) and sent on the copy stream, which first waits for the ops queued so far
 * (they may still read dst); the compute stream waits for the copy. From pageable memory the
 * driver would hold the host until the stream reached the copy; this way the host goes on queueing
 * (and making the next step's inputs) while the device works, and the copy runs at pinned speed. */
extern "C" int cuda_upload(CudaState *g, void *dst, const void *host_src, size_t bytes)
{
    if (!bytes)
        return g->status;
    if (bytes < STAGE_MIN) {
        CUDA_OK(g, cudaMemcpyAsync(dst, host_src, bytes, cudaMemcpyHostToDevice, g->stream));
        return g->status;
    }
    Staging *st = &g->stage[g->next_stage];
    g->next_stage = (g->next_stage + 1) % N_STAGING;
    if (st->busy && CUDA_OK(g, cudaEventSynchronize(st->done)))
        return g->status;
    st->busy = 0;
    if (st->cap < bytes) {
        if (st->buf)
            CUDA_OK(g, cudaFreeHost(st->buf));
        st->buf = NULL;
        st->cap = 0;
        if (CUDA_OK(g, cudaHostAlloc(&st->buf, bytes, cudaHostAllocDefault)))
            return g->status;
        st->cap = bytes;
    }
    memcpy(st->buf, host_src, bytes);
    if (CUDA_OK(g, cudaEventRecord(g->queued, g->stream)) || CUDA_OK(g, cudaStreamWaitEvent(g->copy, g->queued, 0)) ||
        CUDA_OK(g, cudaMemcpyAsync(dst, st->buf, bytes, cudaMemcpyHostToDevice, g->copy)) ||
        CUDA_OK(g, cudaEventRecord(st->done, g->copy)) || CUDA_OK(g, cudaStreamWaitEvent(g->stream, st->done, 0)))
        return g->status;
    st->busy = 1;
    return g->status;
}

/* The indices go up on the stream (small: staged at once), the copy is one kernel. */
extern "C" void cuda_gather_rows(CudaState *g, float *dst, const float *src, const int32_t *idx_host, int n, int F)
{
    if (n <= 0 || F <= 0)
        return;
    if ((size_t)n > g->idx_cap) {
        // a kernel queued earlier may still read the old indices: let the stream finish them
        if (g->d_idx && (CUDA_OK(g, cudaStreamSynchronize(g->stream)) || CUDA_OK(g, cudaFree(g->d_idx))))
            return;
        g->d_idx = NULL;
        g->idx_cap = 0;
        if (CUDA_OK(g, cudaMalloc((void **)&g->d_idx, (size_t)n * sizeof(int32_t))))
            return;
        g->idx_cap = (size_t)n;
    }
    // on the compute stream, after the kernel that last read d_idx: no second buffer needed
    if (CUDA_OK(g, cudaMemcpyAsync(g->d_idx, idx_host, (size_t)n * sizeof(int32_t), cudaMemcpyHostToDevice,
                                   g->stream)))
        return;
    size_t total = (size_t)n * F;
    k_gather_rows<<<grid_for(total, 256), 256, 0, g->stream>>>(dst, src, g->d_idx, n, F);
    LAUNCH_OK(g, "k_gather_rows");
}

extern "C" int cuda_download(CudaState *g, void *host_dst, const void *src, size_t bytes)
{
    if (bytes && !CUDA_OK(g, cudaMemcpyAsync(host_dst, src, bytes, cudaMemcpyDeviceToHost, g->stream)))
        CUDA_OK(g, cudaStreamSynchronize(g->stream)); // the host reads host_dst next
    return g->status;
}

extern "C" int cuda_zero(CudaState *g, void *dst, size_t bytes)
{
    if (bytes)
        CUDA_OK(g, cudaMemsetAsync(dst, 0, bytes, g->stream));
    return g->status;
}

extern "C" int cuda_copy(CudaState *g, void *dst, const void *src, size_t bytes)
{
    if (bytes && dst != src)
        CUDA_OK(g, cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, g->stream));
    return g->status;
}

extern "C" int cuda_sync(CudaState *g)
{
    CUDA_OK(g, cudaStreamSynchronize(g->stream));
    return g->status;
}

// --- ops -----------------------------------------------------------------------------------------

extern "C" void cuda_layernorm_forward(CudaState *g, float *out, float *mean, float *rstd, const float *inp,
                                       const float *weight, const float *bias, int B, int D, float eps)
{
    if (B <= 0)
        return;
    k_layernorm_forward<<<B, ROW_THREADS, 0, g->stream>>>(out, mean, rstd, inp, weight, bias, D, eps);
    LAUNCH_OK(g, "k_layernorm_forward");
}

extern "C" void cuda_layernorm_backward(CudaState *g, float *dinp, float *dweight, float *dbias,
                                        const float *dout, const float *inp, const float *weight,
                                        const float *mean, const float *rstd, int B, int D)
{
    if (dweight) {
        dim3 block(COL_X, COL_Y);
        k_layernorm_backward_dw<<<(D + COL_X - 1) / COL_X, block, 0, g->stream>>>(dweight, dbias, dout, inp, mean,
                                                                                  rstd, B, D);
        LAUNCH_OK(g, "k_layernorm_backward_dw");
    }
    if (dinp && B > 0) {
        k_layernorm_backward_dx<<<B, ROW_THREADS, 0, g->stream>>>(dinp, dout, inp, weight, mean, rstd, D);
        LAUNCH_OK(g, "k_layernorm_backward_dx");
    }
}

extern "C" void cuda_linear_forward(CudaState *g, float *out, const float *inp, const float *weight,
                                    const float *bias, int B, int C, int OC, Activation act)
{
    // out (B,OC) = inp (B,C) @ weight, weight (C,OC) (input-major, backend.h)
    gemm_rm(g, 0, 0, B, OC, C, 1.0f, inp, C, weight, OC, 0.0f, out, OC);
    size_t n = (size_t)B * OC;
    if (!n)
        return;
    k_bias_act<<<grid_for(n, 256), 256, 0, g->stream>>>(out, bias, n, OC, act == ACT_TANH);
    LAUNCH_OK(g, "k_bias_act");
}

extern "C" void cuda_linear_backward(CudaState *g, float *dinp, float *dweight, float *dbias, float *dout,
                                     const float *inp, const float *weight, const float *out, int B, int C,
                                     int OC, Activation act)
{
    dim3 block(COL_X, COL_Y);
    k_act_backward_dbias<<<(OC + COL_X - 1) / COL_X, block, 0, g->stream>>>(dbias, dout, out, B, OC,
                                                                            act == ACT_TANH);
    LAUNCH_OK(g, "k_act_backward_dbias");
    // dweight (C,OC) = inp^T (C,B) @ dout (B,OC); dinp (B,C) = dout (B,OC) @ weight^T (OC,C)
    gemm_rm(g, 1, 0, C, OC, B, 1.0f, inp, C, dout, OC, 0.0f, dweight, OC);
    if (dinp)
        gemm_rm(g, 0, 1, B, C, OC, 1.0f, dout, OC, weight, OC, 0.0f, dinp, C);
}

extern "C" void cuda_ce_hard_forward_backward(CudaState *g, float *losses, float *dlogits, const float *logits,
                                              const int32_t *labels, float smoothing, int B, int C)
{
    if (B <= 0)
        return;
    float off = smoothing / C, on = 1.0f - smoothing + off;
    k_ce_hard<<<B, ROW_THREADS, 0, g->stream>>>(losses, dlogits, logits, labels, off, on, 1.0f / B, C);
    LAUNCH_OK(g, "k_ce_hard");
}

extern "C" void cuda_ce_soft_forward_backward(CudaState *g, float *losses, float *dlogits, const float *logits,
                                              const float *targets, int B, int C)
{
    if (B <= 0)
        return;
    k_ce_soft<<<B, ROW_THREADS, 0, g->stream>>>(losses, dlogits, logits, targets, 1.0f / B, C);
    LAUNCH_OK(g, "k_ce_soft");
}

extern "C" void cuda_bce_forward_backward(CudaState *g, float *losses, float *dlogits, const float *logits,
                                          const float *targets, int B, int C)
{
    if (B <= 0)
        return;
    k_bce<<<B, ROW_THREADS, 0, g->stream>>>(losses, dlogits, logits, targets, 1.0f / ((float)B * C), C);
    LAUNCH_OK(g, "k_bce");
}

extern "C" void cuda_lmr_forward(CudaState *g, float *R, float *wts, const float *f, const float *fn,
                                 const float *keys, const float *keys_n, const uint8_t *key_ok,
                                 const int32_t *key_clip, const int32_t *query_clip, const float *c, int B,
                                 int N, int H)
{
    if (B <= 0)
        return;
    // similarities (B,N) = fn (B,H) @ keys_n^T / H, masked softmax in place, r (B,H) = wts @ keys
    gemm_rm(g, 0, 1, B, N, H, 1.0f / H, fn, H, keys_n, H, 0.0f, wts, N);
    k_masked_softmax<<<B, ROW_THREADS, 0, g->stream>>>(wts, key_ok, key_clip, query_clip, N);
    LAUNCH_OK(g, "k_masked_softmax");
    gemm_rm(g, 0, 0, B, H, N, 1.0f, wts, N, keys, H, 0.0f, R, H);
    k_lmr_combine<<<B, ROW_THREADS, 0, g->stream>>>(R, f, key_ok, key_clip, query_clip, c, N, H);
    LAUNCH_OK(g, "k_lmr_combine");
}

extern "C" void cuda_lmr_backward(CudaState *g, float *df, const float *dR, const float *wts, const float *fn,
                                  const float *frstd, const float *keys, const float *keys_n, const float *c,
                                  float *dwts, float *dr, float *dfn, int B, int N, int H)
{
    if (B <= 0)
        return;
    size_t n = (size_t)B * H;
    k_scale_rows<<<grid_for(n, 256), 256, 0, g->stream>>>(dr, dR, c, n, H);
    LAUNCH_OK(g, "k_scale_rows");
    gemm_rm(g, 0, 1, B, N, H, 1.0f, dr, H, keys, H, 0.0f, dwts, N); // dwts (B,N) = dr @ keys^T
    k_softmax_backward<<<B, ROW_THREADS, 0, g->stream>>>(dwts, wts, N);
    LAUNCH_OK(g, "k_softmax_backward");
    gemm_rm(g, 0, 0, B, H, N, 1.0f / H, dwts, N, keys_n, H, 0.0f, dfn, H); // dfn (B,H) = ds @ keys_n / H
    k_lmr_backward_final<<<B, ROW_THREADS, 0, g->stream>>>(df, dR, wts, dfn, fn, frstd, c, N, H);
    LAUNCH_OK(g, "k_lmr_backward_final");
}

extern "C" void cuda_mix_forward(CudaState *g, float *X, const float *R, const int32_t *partner, const float *a,
                                 int n_mix, int B, int H)
{
    size_t n = (size_t)B * H;
    if (!n)
        return;
    k_mix_forward<<<grid_for(n, 256), 256, 0, g->stream>>>(X, R, partner, a, n_mix, n, H);
    LAUNCH_OK(g, "k_mix_forward");
}

extern "C" void cuda_mix_backward(CudaState *g, float *dR, const float *dX, const int32_t *partner,
                                  const float *a, int n_mix, int B, int H)
{
    size_t n = (size_t)B * H, nm = (size_t)n_mix * H;
    if (!n)
        return;
    k_mix_backward_self<<<grid_for(n, 256), 256, 0, g->stream>>>(dR, dX, a, n_mix, n, H);
    LAUNCH_OK(g, "k_mix_backward_self");
    if (nm) {
        k_mix_backward_partner<<<grid_for(nm, 256), 256, 0, g->stream>>>(dR, dX, partner, a, nm, H);
        LAUNCH_OK(g, "k_mix_backward_partner");
    }
}

extern "C" double cuda_sumsq(CudaState *g, const float *x, size_t n)
{
    double s = 0.0;
    if (CUDA_OK(g, cudaMemsetAsync(g->d_sum, 0, sizeof(double), g->stream)))
        return NAN;
    if (n) {
        unsigned blocks = grid_for(n, 256);
        blocks = blocks > 1024 ? 1024 : blocks; // few atomics: blocks stride over the rest
        k_sumsq<<<blocks, 256, 0, g->stream>>>(g->d_sum, x, n);
        LAUNCH_OK(g, "k_sumsq");
    }
    if (cuda_download(g, &s, g->d_sum, sizeof s) < 0)
        return NAN; // the caller sees a non-finite norm
    return s;
}

extern "C" void cuda_adamw_update(CudaState *g, float *params, const float *grads, float *m, float *v, size_t n,
                                  float lr, float beta1, float beta2, float eps, float weight_decay, long t,
                                  float grad_scale)
{
    if (!n)
        return;
    // the same host-side constants as the cpu version, so both round alike
    float bc1 = 1.0f - powf(beta1, (float)t), bc2 = 1.0f - powf(beta2, (float)t);
    float step = lr / bc1, rbc2 = 1.0f / sqrtf(bc2), decay = 1.0f - lr * weight_decay;
    k_adamw<<<grid_for(n, 256), 256, 0, g->stream>>>(params, grads, m, v, n, beta1, beta2, eps, step, rbc2, decay,
                                                     grad_scale);
    LAUNCH_OK(g, "k_adamw");
}

// --- NCCL ----------------------------------------------------------------------------------------

#ifdef LMR_HAVE_NCCL
static_assert(sizeof(ncclUniqueId) == CUDA_COMM_ID_BYTES, "ncclUniqueId size");

extern "C" int cuda_comm_id(unsigned char id[CUDA_COMM_ID_BYTES], char *err)
{
    ncclUniqueId u;
    ncclResult_t r = ncclGetUniqueId(&u);
    if (r != ncclSuccess)
        return lmr_fail(err, LMR_EGPU, "%s:%d: ncclGetUniqueId: %s", base_name(__FILE__), __LINE__,
                        ncclGetErrorString(r));
    memcpy(id, &u, sizeof u);
    return 0;
}

extern "C" int cuda_comm_init(CudaState *g, const unsigned char id[CUDA_COMM_ID_BYTES], int rank, int size,
                              char *err)
{
    ncclUniqueId u;
    memcpy(&u, id, sizeof u);
    if (NCCL_OK(g, ncclCommInitRank(&g->comm, size, u, rank)))
        return lmr_fail(err, LMR_EGPU, "%s", g->last_error);
    return 0;
}

extern "C" int cuda_allreduce(CudaState *g, float *buf, size_t n, int average)
{
    if (n)
        NCCL_OK(g, ncclAllReduce(buf, buf, n, ncclFloat32, average ? ncclAvg : ncclSum, g->comm, g->stream));
    return g->status;
}

extern "C" int cuda_allgather(CudaState *g, void *dst, const void *src, size_t bytes)
{
    if (bytes)
        NCCL_OK(g, ncclAllGather(src, dst, bytes, ncclUint8, g->comm, g->stream));
    return g->status;
}
#else
extern "C" int cuda_comm_id(unsigned char id[CUDA_COMM_ID_BYTES], char *err)
{
    (void)id;
    return lmr_fail(err, LMR_EUNSUPPORTED, "built without NCCL: multi-GPU training is not available");
}

extern "C" int cuda_comm_init(CudaState *g, const unsigned char id[CUDA_COMM_ID_BYTES], int rank, int size,
                              char *err)
{
    (void)g, (void)id, (void)rank, (void)size;
    return lmr_fail(err, LMR_EUNSUPPORTED, "built without NCCL: multi-GPU training is not available");
}

extern "C" int cuda_allreduce(CudaState *g, float *buf, size_t n, int average)
{
    (void)buf, (void)n, (void)average;
    return gpu_fail(g, __FILE__, __LINE__, "cuda_allreduce", "built without NCCL");
}

extern "C" int cuda_allgather(CudaState *g, void *dst, const void *src, size_t bytes)
{
    (void)dst, (void)src, (void)bytes;
    return gpu_fail(g, __FILE__, __LINE__, "cuda_allgather", "built without NCCL");
}
#endif
