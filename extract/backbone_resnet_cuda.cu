/* cuDNN twin of the CPU ResNet (resnet_conv.c): the same folded weights, NHWC tensors in f32
 * (FMA math, no TF32, so features match the CPU's) or f16 (tensor cores, f32 accumulation).
 * Every conv runs the algorithm cudnnFindConvolutionForwardAlgorithmEx measured fastest for its
 * shape, fused with bias + residual + ReLU by cudnnConvolutionBiasActivationForward when cuDNN
 * accepts it (else conv + our epilogue kernel). Frames go through pinned buffers on an upload
 * stream, so batch i+1 is copied while batch i computes. Every status is checked -> LMR_EGPU. */
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <cudnn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern "C" {
#include "resnet_cuda.h"
}

#define CUDA_TRY(call)                                                                              \
    do {                                                                                            \
        cudaError_t e_ = (call);                                                                    \
        if (e_ != cudaSuccess)                                                                      \
            return lmr_fail(err, LMR_EGPU, "%s:%d: %s: %s", __FILE__, __LINE__, #call,             \
                            cudaGetErrorString(e_));                                                \
    } while (0)

#define CUDNN_TRY(call)                                                                             \
    do {                                                                                            \
        cudnnStatus_t s_ = (call);                                                                  \
        if (s_ != CUDNN_STATUS_SUCCESS)                                                             \
            return lmr_fail(err, LMR_EGPU, "%s:%d: %s: %s", __FILE__, __LINE__, #call,             \
                            cudnnGetErrorString(s_));                                               \
    } while (0)

#define MAX_PLANS 4                       /* frame shapes remembered (full batch, last batch, ...) */
#define SEARCH_WS ((size_t)512 << 20)     /* workspace the algorithm search may use */

// --- kernels -------------------------------------------------------------------------------

template <typename T> __device__ __forceinline__ T from_f(float v);
template <> __device__ __forceinline__ float from_f<float>(float v) { return v; }
template <> __device__ __forceinline__ __half from_f<__half>(float v) { return __float2half(v); }
__device__ __forceinline__ float to_f(float v) { return v; }
__device__ __forceinline__ float to_f(__half v) { return __half2float(v); }

/* (n_pix, 3) u8 -> (n_pix, c_pad) normalised, channels >= 3 zero */
template <typename T>
__global__ void normalize_kernel(T *out, const uint8_t *in, size_t n_pix, int c_pad)
{
    size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    if (i >= n_pix * c_pad)
        return;
    size_t p = i / c_pad;
    int c = (int)(i % c_pad);
    float v = 0.0f;
    if (c < 3) {
        const float mean[3] = {0.485f, 0.456f, 0.406f}, sd[3] = {0.229f, 0.224f, 0.225f};
        v = ((float)in[p * 3 + c] / 255.0f - mean[c]) / sd[c];
    }
    out[i] = from_f<T>(v);
}

/* y = act(y + b [+ res]) over (rows, c) */
template <typename T>
__global__ void epilogue_kernel(T *y, const T *b, const T *res, size_t n, int c, int relu)
{
    size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    if (i >= n)
        return;
    float v = to_f(y[i]) + to_f(b[i % c]) + (res ? to_f(res[i]) : 0.0f);
    y[i] = from_f<T>(relu && v < 0.0f ? 0.0f : v);
}

/* (n, hw, c) -> (n, c) f32 mean; consecutive threads read consecutive channels */
template <typename T>
__global__ void avgpool_kernel(float *out, const T *in, int n, int hw, int c)
{
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n * c)
        return;
    int img = i / c, ch = i % c;
    const T *p = in + (size_t)img * hw * c + ch;
    float s = 0.0f;
    for (int k = 0; k < hw; k++)
        s += to_f(p[(size_t)k * c]);
    out[i] = s / (float)hw;
}

static unsigned grid_of(size_t n) { return (unsigned)((n + 255) / 256); }

// --- state ---------------------------------------------------------------------------------

typedef struct {
    int c_in, c_out, k, stride, pad; /* c_in padded for the stem */
    void *w, *b;                     /* device: (c_out, k, k, c_in), (c_out) */
    cudnnFilterDescriptor_t wd;
    cudnnConvolutionDescriptor_t cd;
    cudnnTensorDescriptor_t bd;
} GConv;

typedef struct {
    cudnnTensorDescriptor_t xd, yd;
    cudnnConvolutionFwdAlgo_t algo;
    cudnnMathType_t math;
    size_t ws;
    int fused;
} ConvPlan;

typedef struct {
    int n, h, w; /* 0 = empty slot */
    unsigned long tick;
    ConvPlan *cp; /* one per conv, execution order */
    cudnnTensorDescriptor_t pool_x, pool_y;
} ShapePlan;

struct ResnetCuda {
    int half, batch, bottleneck, dim, n_blocks, n_convs, c_pad;
    cudnnDataType_t dt;
    size_t esz;
    GConv *convs;  /* stem, then per block: [ds], c1, c2, [c3] */
    int *blk_conv; /* first conv index of each block */
    char *blk_ds;
    cudnnHandle_t dnn;
    cudnnActivationDescriptor_t relu, ident;
    cudnnPoolingDescriptor_t maxpool;
    cudaStream_t s_comp, s_up;
    cudaEvent_t ev_up[2], ev_used[2], ev_done[2];
    uint8_t *h_in[2], *d_in[2]; /* pinned / device frames */
    float *h_out[2], *d_out[2]; /* pinned / device features (batch, dim) */
    size_t in_cap;              /* bytes per frame buffer */
    void *act[6];               /* normalised input, x, y, t1, t2, shortcut */
    size_t act_cap;             /* bytes per activation buffer */
    void *ws;
    size_t ws_cap;
    ShapePlan plans[MAX_PLANS];
    unsigned long tick;
};

// --- setup ---------------------------------------------------------------------------------

static int upload_conv(ResnetCuda *c, GConv *g, const ResnetConv *src, int c_in_pad, char *err)
{
    *g = (GConv){c_in_pad, src->c_out, src->k, src->stride, src->pad, NULL, NULL, NULL, NULL, NULL};
    size_t nw = (size_t)g->c_out * g->k * g->k * g->c_in;
    void *hw = calloc(nw + g->c_out, c->esz);
    if (!hw)
        return lmr_fail(err, LMR_ENOMEM, "out of memory for conv weights");
    for (int o = 0; o < g->c_out; o++)
        for (int t = 0; t < g->k * g->k; t++)
            for (int i = 0; i < src->c_in; i++) {
                float v = src->w[((size_t)o * g->k * g->k + t) * src->c_in + i];
                size_t at = ((size_t)o * g->k * g->k + t) * g->c_in + i;
                if (c->half)
                    ((__half *)hw)[at] = __float2half(v);
                else
                    ((float *)hw)[at] = v;
            }
    for (int o = 0; o < g->c_out; o++) {
        if (c->half)
            ((__half *)hw)[nw + o] = __float2half(src->b[o]);
        else
            ((float *)hw)[nw + o] = src->b[o];
    }
    cudaError_t e = cudaMalloc(&g->w, nw * c->esz);
    if (e == cudaSuccess)
        e = cudaMalloc(&g->b, g->c_out * c->esz);
    if (e == cudaSuccess)
        e = cudaMemcpy(g->w, hw, nw * c->esz, cudaMemcpyHostToDevice);
    if (e == cudaSuccess)
        e = cudaMemcpy(g->b, (char *)hw + nw * c->esz, g->c_out * c->esz, cudaMemcpyHostToDevice);
    free(hw);
    CUDA_TRY(e);
    CUDNN_TRY(cudnnCreateFilterDescriptor(&g->wd));
    CUDNN_TRY(cudnnSetFilter4dDescriptor(g->wd, c->dt, CUDNN_TENSOR_NHWC, g->c_out, g->c_in, g->k, g->k));
    CUDNN_TRY(cudnnCreateConvolutionDescriptor(&g->cd));
    CUDNN_TRY(cudnnSetConvolution2dDescriptor(g->cd, g->pad, g->pad, g->stride, g->stride, 1, 1,
                                              CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT));
    CUDNN_TRY(cudnnCreateTensorDescriptor(&g->bd));
    CUDNN_TRY(cudnnSetTensor4dDescriptor(g->bd, CUDNN_TENSOR_NHWC, c->dt, 1, g->c_out, 1, 1));
    return 0;
}

extern "C" int resnet_cuda_available(char *err)
{
    int n_dev = 0;
    cudaError_t e = cudaGetDeviceCount(&n_dev);
    if (e != cudaSuccess || n_dev == 0)
        return lmr_fail(err, LMR_ENODEV, "no CUDA device available (%s)",
                        e != cudaSuccess ? cudaGetErrorString(e) : "0 devices");
    return 0;
}

extern "C" int resnet_cuda_open(ResnetCuda **out, const ResnetNet *net, int batch, int half, char *err)
{
    *out = NULL;
    LMR_TRY(resnet_cuda_available(err));
    ResnetCuda *c = (ResnetCuda *)calloc(1, sizeof *c);
    if (!c)
        return lmr_fail(err, LMR_ENOMEM, "out of memory");
    *out = c;
    c->half = half;
    c->batch = batch > 0 ? batch : 1;
    c->bottleneck = net->bottleneck;
    c->dim = net->dim;
    c->n_blocks = net->n_blocks;
    c->dt = half ? CUDNN_DATA_HALF : CUDNN_DATA_FLOAT;
    c->esz = half ? 2 : 4;
    c->c_pad = half ? 8 : 3; /* tensor-core kernels want channels in multiples of 8 */
    c->n_convs = 1;
    for (int i = 0; i < net->n_blocks; i++)
        c->n_convs += (net->bottleneck ? 3 : 2) + net->blocks[i].has_ds;
    c->convs = (GConv *)calloc(c->n_convs, sizeof *c->convs);
    c->blk_conv = (int *)calloc(net->n_blocks, sizeof(int));
    c->blk_ds = (char *)calloc(net->n_blocks, 1);
    if (!c->convs || !c->blk_conv || !c->blk_ds)
        return lmr_fail(err, LMR_ENOMEM, "out of memory");
    CUDNN_TRY(cudnnCreate(&c->dnn));
    CUDA_TRY(cudaStreamCreateWithFlags(&c->s_comp, cudaStreamNonBlocking));
    CUDA_TRY(cudaStreamCreateWithFlags(&c->s_up, cudaStreamNonBlocking));
    CUDNN_TRY(cudnnSetStream(c->dnn, c->s_comp));
    for (int k = 0; k < 2; k++) {
        CUDA_TRY(cudaEventCreateWithFlags(&c->ev_up[k], cudaEventDisableTiming));
        CUDA_TRY(cudaEventCreateWithFlags(&c->ev_used[k], cudaEventDisableTiming));
        CUDA_TRY(cudaEventCreateWithFlags(&c->ev_done[k], cudaEventDisableTiming));
    }
    CUDNN_TRY(cudnnCreateActivationDescriptor(&c->relu));
    CUDNN_TRY(cudnnSetActivationDescriptor(c->relu, CUDNN_ACTIVATION_RELU, CUDNN_NOT_PROPAGATE_NAN, 0.0));
    CUDNN_TRY(cudnnCreateActivationDescriptor(&c->ident));
    CUDNN_TRY(cudnnSetActivationDescriptor(c->ident, CUDNN_ACTIVATION_IDENTITY, CUDNN_NOT_PROPAGATE_NAN, 0.0));
    CUDNN_TRY(cudnnCreatePoolingDescriptor(&c->maxpool));
    CUDNN_TRY(cudnnSetPooling2dDescriptor(c->maxpool, CUDNN_POOLING_MAX, CUDNN_NOT_PROPAGATE_NAN, 3, 3, 1, 1, 2, 2));
    LMR_TRY(upload_conv(c, &c->convs[0], &net->stem, c->c_pad, err));
    int ci = 1;
    for (int i = 0; i < net->n_blocks; i++) {
        const ResnetBlock *b = &net->blocks[i];
        c->blk_conv[i] = ci;
        c->blk_ds[i] = (char)b->has_ds;
        if (b->has_ds)
            LMR_TRY(upload_conv(c, &c->convs[ci++], &b->ds, b->ds.c_in, err));
        LMR_TRY(upload_conv(c, &c->convs[ci++], &b->c1, b->c1.c_in, err));
        LMR_TRY(upload_conv(c, &c->convs[ci++], &b->c2, b->c2.c_in, err));
        if (net->bottleneck)
            LMR_TRY(upload_conv(c, &c->convs[ci++], &b->c3, b->c3.c_in, err));
    }
    for (int k = 0; k < 2; k++) {
        CUDA_TRY(cudaMallocHost((void **)&c->h_out[k], (size_t)c->batch * c->dim * sizeof(float)));
        CUDA_TRY(cudaMalloc((void **)&c->d_out[k], (size_t)c->batch * c->dim * sizeof(float)));
    }
    return 0;
}

static void plan_free(ShapePlan *p, int n_convs)
{
    if (p->cp)
        for (int i = 0; i < n_convs; i++) {
            if (p->cp[i].xd)
                cudnnDestroyTensorDescriptor(p->cp[i].xd);
            if (p->cp[i].yd)
                cudnnDestroyTensorDescriptor(p->cp[i].yd);
        }
    free(p->cp);
    if (p->pool_x)
        cudnnDestroyTensorDescriptor(p->pool_x);
    if (p->pool_y)
        cudnnDestroyTensorDescriptor(p->pool_y);
    memset(p, 0, sizeof *p);
}

extern "C" void resnet_cuda_close(ResnetCuda **cp)
{
    if (!cp || !*cp)
        return;
    ResnetCuda *c = *cp;
    if (c->s_comp)
        cudaStreamSynchronize(c->s_comp);
    if (c->s_up)
        cudaStreamSynchronize(c->s_up);
    for (int i = 0; i < MAX_PLANS; i++)
        plan_free(&c->plans[i], c->n_convs);
    for (int i = 0; c->convs && i < c->n_convs; i++) {
        GConv *g = &c->convs[i];
        cudaFree(g->w);
        cudaFree(g->b);
        if (g->wd)
            cudnnDestroyFilterDescriptor(g->wd);
        if (g->cd)
            cudnnDestroyConvolutionDescriptor(g->cd);
        if (g->bd)
            cudnnDestroyTensorDescriptor(g->bd);
    }
    for (int k = 0; k < 2; k++) {
        cudaFreeHost(c->h_in[k]);
        cudaFree(c->d_in[k]);
        cudaFreeHost(c->h_out[k]);
        cudaFree(c->d_out[k]);
        if (c->ev_up[k])
            cudaEventDestroy(c->ev_up[k]);
        if (c->ev_used[k])
            cudaEventDestroy(c->ev_used[k]);
        if (c->ev_done[k])
            cudaEventDestroy(c->ev_done[k]);
    }
    for (int i = 0; i < 6; i++)
        cudaFree(c->act[i]);
    cudaFree(c->ws);
    if (c->relu)
        cudnnDestroyActivationDescriptor(c->relu);
    if (c->ident)
        cudnnDestroyActivationDescriptor(c->ident);
    if (c->maxpool)
        cudnnDestroyPoolingDescriptor(c->maxpool);
    if (c->dnn)
        cudnnDestroy(c->dnn);
    if (c->s_comp)
        cudaStreamDestroy(c->s_comp);
    if (c->s_up)
        cudaStreamDestroy(c->s_up);
    free(c->convs);
    free(c->blk_conv);
    free(c->blk_ds);
    free(c);
    *cp = NULL;
}

// --- buffers and plans ---------------------------------------------------------------------

typedef struct {
    int ih, iw, oh, ow;
} ConvShape;

/* Input and output sizes of every conv, in execution order, for h x w frames; the maxpool
 * input size goes to pool_hw. Mirrors forward(). */
static void conv_shapes(const ResnetCuda *c, int h, int w, ConvShape *s, int pool_hw[2])
{
    const GConv *g = &c->convs[0];
    s[0] = (ConvShape){h, w, resnet_out_size(h, g->k, g->stride, g->pad), resnet_out_size(w, g->k, g->stride, g->pad)};
    pool_hw[0] = s[0].oh, pool_hw[1] = s[0].ow;
    h = resnet_out_size(s[0].oh, 3, 2, 1), w = resnet_out_size(s[0].ow, 3, 2, 1);
    int ci = 1;
    for (int b = 0; b < c->n_blocks; b++) {
        int ch = h, cw = w, n_conv = (c->bottleneck ? 3 : 2) + c->blk_ds[b];
        for (int k = 0; k < n_conv; k++, ci++) {
            g = &c->convs[ci];
            int is_ds = c->blk_ds[b] && k == 0;
            int ih = is_ds ? h : ch, iw = is_ds ? w : cw;
            s[ci] = (ConvShape){ih, iw, resnet_out_size(ih, g->k, g->stride, g->pad),
                                resnet_out_size(iw, g->k, g->stride, g->pad)};
            if (!is_ds)
                ch = s[ci].oh, cw = s[ci].ow;
        }
        h = ch, w = cw;
    }
}

/* Largest activation in bytes per frame for h x w frames (the padded input included). */
static int max_act_bytes(const ResnetCuda *c, int h, int w, size_t *out, char *err)
{
    ConvShape *s = (ConvShape *)malloc(c->n_convs * sizeof *s);
    if (!s)
        return lmr_fail(err, LMR_ENOMEM, "out of memory");
    int pool_hw[2];
    conv_shapes(c, h, w, s, pool_hw);
    size_t best = (size_t)h * w * c->c_pad;
    for (int i = 0; i < c->n_convs; i++) {
        size_t e = (size_t)s[i].oh * s[i].ow * c->convs[i].c_out;
        best = e > best ? e : best;
    }
    free(s);
    *out = best * c->esz;
    return 0;
}

static int buffers_reserve(ResnetCuda *c, int h, int w, char *err)
{
    size_t in = (size_t)c->batch * h * w * 3, act;
    LMR_TRY(max_act_bytes(c, h, w, &act, err));
    act *= (size_t)c->batch;
    if (in > c->in_cap || act > c->act_cap) {
        CUDA_TRY(cudaDeviceSynchronize());
        /* plans hold no pointers, only shapes: they stay valid */
    }
    if (in > c->in_cap) {
        for (int k = 0; k < 2; k++) {
            cudaFreeHost(c->h_in[k]);
            cudaFree(c->d_in[k]);
            c->h_in[k] = c->d_in[k] = NULL;
        }
        c->in_cap = 0;
        for (int k = 0; k < 2; k++) {
            CUDA_TRY(cudaMallocHost((void **)&c->h_in[k], in));
            CUDA_TRY(cudaMalloc((void **)&c->d_in[k], in));
        }
        c->in_cap = in;
    }
    if (act > c->act_cap) {
        for (int i = 0; i < 6; i++) {
            cudaFree(c->act[i]);
            c->act[i] = NULL;
        }
        c->act_cap = 0;
        for (int i = 0; i < 6; i++)
            CUDA_TRY(cudaMalloc(&c->act[i], act));
        c->act_cap = act;
    }
    return 0;
}

static int tensor_desc(cudnnTensorDescriptor_t *d, cudnnDataType_t dt, int n, int ch, int h, int w, char *err)
{
    CUDNN_TRY(cudnnCreateTensorDescriptor(d));
    CUDNN_TRY(cudnnSetTensor4dDescriptor(*d, CUDNN_TENSOR_NHWC, dt, n, ch, h, w));
    return 0;
}

static int ws_reserve(ResnetCuda *c, size_t bytes, char *err)
{
    if (bytes <= c->ws_cap)
        return 0;
    CUDA_TRY(cudaStreamSynchronize(c->s_comp));
    cudaFree(c->ws);
    c->ws = NULL;
    c->ws_cap = 0;
    CUDA_TRY(cudaMalloc(&c->ws, bytes));
    c->ws_cap = bytes;
    return 0;
}

/* Time every algorithm cuDNN offers for conv g on these shapes, keep the fastest allowed one:
 * f32 runs insist on FMA math so the features stay within 1e-4 of the CPU's. */
static int plan_conv(ResnetCuda *c, GConv *g, ConvPlan *p, const void *x, void *y, char *err)
{
    CUDNN_TRY(cudnnSetConvolutionMathType(g->cd, c->half ? CUDNN_TENSOR_OP_MATH : CUDNN_FMA_MATH));
    cudnnConvolutionFwdAlgoPerf_t perf[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
    int n_perf = 0;
    LMR_TRY(ws_reserve(c, SEARCH_WS, err));
    CUDNN_TRY(cudnnFindConvolutionForwardAlgorithmEx(c->dnn, p->xd, x, g->wd, g->w, g->cd, p->yd, y,
                                                     CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &n_perf, perf, c->ws,
                                                     c->ws_cap));
    int pick = -1;
    for (int i = 0; i < n_perf && pick < 0; i++)
        if (perf[i].status == CUDNN_STATUS_SUCCESS && perf[i].memory <= c->ws_cap &&
            (c->half || perf[i].mathType == CUDNN_FMA_MATH))
            pick = i;
    if (pick < 0) { /* nothing measured under our math rule: the always-available implicit GEMM */
        p->algo = CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM;
        p->math = c->half ? CUDNN_TENSOR_OP_MATH : CUDNN_FMA_MATH;
        CUDNN_TRY(cudnnGetConvolutionForwardWorkspaceSize(c->dnn, p->xd, g->wd, g->cd, p->yd, p->algo, &p->ws));
        return 0;
    }
    p->algo = perf[pick].algo;
    p->math = perf[pick].mathType;
    p->ws = perf[pick].memory;
    return 0;
}

static int conv_run(ResnetCuda *c, GConv *g, ConvPlan *p, const void *x, void *y, const void *res, int relu,
                    size_t n_out, char *err);

/* Build the plan for a batch of n frames of h x w: descriptors, algorithms, fused or not. */
static int plan_build(ResnetCuda *c, ShapePlan *sp, int n, int h, int w, char *err)
{
    sp->cp = (ConvPlan *)calloc(c->n_convs, sizeof *sp->cp);
    ConvShape *s = (ConvShape *)malloc(c->n_convs * sizeof *s);
    if (!sp->cp || !s) {
        free(s);
        return lmr_fail(err, LMR_ENOMEM, "out of memory");
    }
    sp->n = n, sp->h = h, sp->w = w;
    int pool_hw[2], rc = 0;
    conv_shapes(c, h, w, s, pool_hw);
    rc = tensor_desc(&sp->pool_x, c->dt, n, c->convs[0].c_out, pool_hw[0], pool_hw[1], err);
    if (rc == 0)
        rc = tensor_desc(&sp->pool_y, c->dt, n, c->convs[0].c_out, resnet_out_size(pool_hw[0], 3, 2, 1),
                         resnet_out_size(pool_hw[1], 3, 2, 1), err);
    for (int i = 0; i < c->n_convs && rc == 0; i++) {
        GConv *g = &c->convs[i];
        ConvPlan *p = &sp->cp[i];
        int is_ds = 0, is_last = 0;
        for (int b = 0; b < c->n_blocks; b++) {
            int end = c->blk_conv[b] + c->blk_ds[b] + (c->bottleneck ? 3 : 2);
            is_ds |= c->blk_ds[b] && c->blk_conv[b] == i;
            is_last |= i == end - 1;
        }
        if ((rc = tensor_desc(&p->xd, c->dt, n, g->c_in, s[i].ih, s[i].iw, err)) < 0 ||
            (rc = tensor_desc(&p->yd, c->dt, n, g->c_out, s[i].oh, s[i].ow, err)) < 0 ||
            (rc = plan_conv(c, g, p, c->act[1], c->act[2], err)) < 0)
            break;
        /* try the fused call once, as it will run, on scratch buffers: cuDNN refuses some
         * algorithm / activation pairs, which then run as conv + our epilogue */
        p->fused = 1;
        if (conv_run(c, g, p, c->act[1], c->act[2], is_last ? c->act[5] : NULL, !is_ds,
                     (size_t)n * s[i].oh * s[i].ow * g->c_out, err) < 0) {
            p->fused = 0;
            err[0] = '\0';
        }
    }
    free(s);
    LMR_TRY(rc);
    CUDA_TRY(cudaStreamSynchronize(c->s_comp));
    return 0;
}

static int plan_get(ResnetCuda *c, int n, int h, int w, ShapePlan **out, char *err)
{
    ShapePlan *victim = &c->plans[0];
    for (int i = 0; i < MAX_PLANS; i++) {
        ShapePlan *p = &c->plans[i];
        if (p->n == n && p->h == h && p->w == w) {
            p->tick = ++c->tick;
            *out = p;
            return 0;
        }
        if (p->tick < victim->tick)
            victim = p;
    }
    CUDA_TRY(cudaStreamSynchronize(c->s_comp));
    plan_free(victim, c->n_convs);
    int rc = plan_build(c, victim, n, h, w, err);
    if (rc < 0) {
        plan_free(victim, c->n_convs);
        return rc;
    }
    victim->tick = ++c->tick;
    *out = victim;
    return 0;
}

// --- forward -------------------------------------------------------------------------------

/* y = act(conv(x) + b [+ res]) */
static int conv_run(ResnetCuda *c, GConv *g, ConvPlan *p, const void *x, void *y, const void *res, int relu,
                    size_t n_out, char *err)
{
    const float one = 1.0f, zero = 0.0f;
    LMR_TRY(ws_reserve(c, p->ws, err));
    CUDNN_TRY(cudnnSetConvolutionMathType(g->cd, p->math));
    /* cuDNN fuses the identity activation only with IMPLICIT_PRECOMP_GEMM */
    if (p->fused && (relu || p->algo == CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM)) {
        CUDNN_TRY(cudnnConvolutionBiasActivationForward(c->dnn, &one, p->xd, x, g->wd, g->w, g->cd, p->algo, c->ws,
                                                        p->ws, res ? &one : &zero, p->yd, res ? res : y, g->bd,
                                                        g->b, relu ? c->relu : c->ident, p->yd, y));
        return 0;
    }
    CUDNN_TRY(cudnnConvolutionForward(c->dnn, &one, p->xd, x, g->wd, g->w, g->cd, p->algo, c->ws, p->ws, &zero,
                                      p->yd, y));
    if (c->half)
        epilogue_kernel<__half><<<grid_of(n_out), 256, 0, c->s_comp>>>((__half *)y, (const __half *)g->b,
                                                                      (const __half *)res, n_out, g->c_out, relu);
    else
        epilogue_kernel<float><<<grid_of(n_out), 256, 0, c->s_comp>>>((float *)y, (const float *)g->b,
                                                                     (const float *)res, n_out, g->c_out, relu);
    CUDA_TRY(cudaGetLastError());
    return 0;
}

/* One batch already on the device (d_in) -> features in d_feat (n, dim) f32, on s_comp. */
static int forward(ResnetCuda *c, ShapePlan *sp, const uint8_t *d_in, cudaEvent_t ev_used, float *d_feat, char *err)
{
    int n = sp->n, h = sp->h, w = sp->w;
    void *in = c->act[0], *x = c->act[1], *y = c->act[2], *t1 = c->act[3], *t2 = c->act[4], *sc = c->act[5];
    size_t n_in = (size_t)n * h * w * c->c_pad;
    if (c->half)
        normalize_kernel<__half><<<grid_of(n_in), 256, 0, c->s_comp>>>((__half *)in, d_in, (size_t)n * h * w, c->c_pad);
    else
        normalize_kernel<float><<<grid_of(n_in), 256, 0, c->s_comp>>>((float *)in, d_in, (size_t)n * h * w, c->c_pad);
    CUDA_TRY(cudaGetLastError());
    CUDA_TRY(cudaEventRecord(ev_used, c->s_comp)); /* the frame buffer may be refilled now */
    GConv *g = &c->convs[0];
    ConvPlan *p = &sp->cp[0];
    int oh = resnet_out_size(h, 7, 2, 3), ow = resnet_out_size(w, 7, 2, 3);
    LMR_TRY(conv_run(c, g, p, in, y, NULL, 1, (size_t)n * oh * ow * g->c_out, err));
    const float one = 1.0f, zero = 0.0f;
    CUDNN_TRY(cudnnPoolingForward(c->dnn, c->maxpool, &one, sp->pool_x, y, &zero, sp->pool_y, x));
    h = resnet_out_size(oh, 3, 2, 1), w = resnet_out_size(ow, 3, 2, 1);
    int ci = 1;
    for (int b = 0; b < c->n_blocks; b++) {
        const void *shortcut = x;
        int sh = h, sw = w;
        if (c->blk_ds[b]) {
            g = &c->convs[ci];
            sh = resnet_out_size(h, 1, g->stride, 0), sw = resnet_out_size(w, 1, g->stride, 0);
            LMR_TRY(conv_run(c, g, &sp->cp[ci], x, sc, NULL, 0, (size_t)n * sh * sw * g->c_out, err));
            shortcut = sc;
            ci++;
        }
        int n_conv = c->bottleneck ? 3 : 2;
        const void *src = x;
        void *dst_mid[2] = {t1, t2};
        int ch = h, cw = w;
        for (int k = 0; k < n_conv; k++, ci++) {
            g = &c->convs[ci];
            int last = k == n_conv - 1;
            oh = resnet_out_size(ch, g->k, g->stride, g->pad), ow = resnet_out_size(cw, g->k, g->stride, g->pad);
            void *dst = last ? y : dst_mid[k];
            LMR_TRY(conv_run(c, g, &sp->cp[ci], src, dst, last ? shortcut : NULL, 1,
                             (size_t)n * oh * ow * g->c_out, err));
            src = dst, ch = oh, cw = ow;
        }
        (void)sh, (void)sw;
        void *tmp = x;
        x = y, y = tmp, h = ch, w = cw;
    }
    int nc = n * c->dim;
    if (c->half)
        avgpool_kernel<__half><<<grid_of(nc), 256, 0, c->s_comp>>>(d_feat, (const __half *)x, n, h * w, c->dim);
    else
        avgpool_kernel<float><<<grid_of(nc), 256, 0, c->s_comp>>>(d_feat, (const float *)x, n, h * w, c->dim);
    CUDA_TRY(cudaGetLastError());
    return 0;
}

extern "C" int resnet_cuda_run(ResnetCuda *c, const uint8_t *frames, int n, int h, int w, float *out, char *err)
{
    LMR_TRY(buffers_reserve(c, h, w, err));
    size_t fbytes = (size_t)h * w * 3;
    int n_batches = (n + c->batch - 1) / c->batch;
    for (int i = 0; i <= n_batches; i++) {
        int k = i % 2;
        if (i < n_batches) {
            int lo = i * c->batch, nb = n - lo < c->batch ? n - lo : c->batch;
            ShapePlan *sp;
            LMR_TRY(plan_get(c, nb, h, w, &sp, err));
            /* batch i-2 has finished reading this slot's buffers */
            CUDA_TRY(cudaEventSynchronize(c->ev_used[k]));
            memcpy(c->h_in[k], frames + (size_t)lo * fbytes, (size_t)nb * fbytes);
            CUDA_TRY(cudaMemcpyAsync(c->d_in[k], c->h_in[k], (size_t)nb * fbytes, cudaMemcpyHostToDevice, c->s_up));
            CUDA_TRY(cudaEventRecord(c->ev_up[k], c->s_up));
            CUDA_TRY(cudaStreamWaitEvent(c->s_comp, c->ev_up[k], 0));
            LMR_TRY(forward(c, sp, c->d_in[k], c->ev_used[k], c->d_out[k], err));
            CUDA_TRY(cudaMemcpyAsync(c->h_out[k], c->d_out[k], (size_t)nb * c->dim * sizeof(float),
                                     cudaMemcpyDeviceToHost, c->s_comp));
            CUDA_TRY(cudaEventRecord(c->ev_done[k], c->s_comp));
        }
        if (i > 0) { /* while batch i computes, hand back batch i-1 */
            int j = i - 1, kj = j % 2, lo = j * c->batch, nb = n - lo < c->batch ? n - lo : c->batch;
            CUDA_TRY(cudaEventSynchronize(c->ev_done[kj]));
            memcpy(out + (size_t)lo * c->dim, c->h_out[kj], (size_t)nb * c->dim * sizeof(float));
        }
    }
    return 0;
}
