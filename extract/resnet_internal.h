/* Inside extract/: the ResNet network description, its weight loader (BatchNorm folded into
 * the convolutions) and the CPU layer ops that backbone_resnet.c chains. Activations are NHWC
 * f32, so every convolution is one GEMM of (pixels, k*k*c_in) x (k*k*c_in, c_out). */
#ifndef LMR_RESNET_INTERNAL_H
#define LMR_RESNET_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "lmr_error.h"

#define RESNET_BN_EPS 1e-5 /* torchvision's BatchNorm2d default */

/* One convolution with its BatchNorm folded in. Pointers are views into ResnetNet.params. */
typedef struct {
    int c_in, c_out, k, stride, pad;
    float *w; // (c_out, k, k, c_in)
    float *b; // (c_out)
} ResnetConv;

/* Basic block: c1 (3x3, stride), c2 (3x3). Bottleneck (v1.5): c1 (1x1), c2 (3x3, stride),
 * c3 (1x1). ds: 1x1 projection of the shortcut when has_ds. */
typedef struct {
    ResnetConv c1, c2, c3, ds;
    int has_ds;
    int layer, idx; /* torchvision name: layer<layer>.<idx> */
} ResnetBlock;

typedef struct {
    char name[16];
    int bottleneck;
    int dim; /* channels of the last stage = feature size */
    ResnetConv stem; /* conv1 7x7/2 + bn1, followed by maxpool 3x3/2 */
    ResnetBlock *blocks;
    int n_blocks;
    float *params; /* all folded weights and biases: one allocation */
    size_t n_params;
} ResnetNet;

/** Build the network for name (resnet18/34/50/101/152) from a safetensors file with
 *  torchvision's tensor names, folding every BatchNorm into the convolution before it.
 *  @param[out] checksum  hex XXH3-64 of the whole file (at least 17 bytes)
 *  @return 0, LMR_EINVAL (unknown name), -errno / LMR_EPARSE / LMR_ECORRUPT (file),
 *          LMR_ENOTFOUND / LMR_EMISMATCH (a tensor: err names it), LMR_ENOMEM.
 *  @note free with resnet_net_free, also after a failure. */
int resnet_net_load(ResnetNet *net, const char *name, const char *path, char *checksum, char *err);
void resnet_net_free(ResnetNet *net);

/** Fold BatchNorm (gamma, beta, mean, var; eps) into a conv given torchvision-style as
 *  w_oihw (c_out, c_in, k, k) and an optional conv bias (NULL = none). Writes w (c_out, k, k, c_in)
 *  and b (c_out). @return 0, or LMR_ECORRUPT when a scale is not finite (var < -eps, NaN). */
int resnet_fold_bn(float *w, float *b, const float *w_oihw, const float *conv_bias, const float *gamma,
                   const float *beta, const float *mean, const float *var, int c_out, int c_in, int k,
                   double eps);

/** Largest activation (elements per frame) the net produces on an h x w input. */
size_t resnet_max_activation(const ResnetNet *net, int h, int w);

static inline int resnet_out_size(int in, int k, int stride, int pad)
{
    return (in + 2 * pad - k) / stride + 1;
}

// --- CPU ops ---------------------------------------------------------------------------------

/* Scratch shared by the ops: the im2col buffer, grown on demand, and the thread count. */
typedef struct {
    float *col;
    size_t col_cap; /* floats */
    int n_threads;
} ResnetCpu;

void resnet_cpu_free(ResnetCpu *cpu);

/** ImageNet mean/std normalisation: in (n_pix, 3) u8 RGB -> out (n_pix, 3) f32. */
void resnet_normalize_forward(float *out, const uint8_t *in, size_t n_pix, int n_threads);

/** out = act(conv(in) + b [+ residual]); in (n, h, w, c_in), out and residual
 *  (n, oh, ow, c_out) with oh = resnet_out_size(h, k, stride, pad). residual may be NULL.
 *  @return 0 or LMR_ENOMEM. */
int resnet_conv_forward(ResnetCpu *cpu, float *out, const float *in, const float *residual,
                        const ResnetConv *c, int n, int h, int w, int relu);

/** Max pooling (k x k, stride, pad; padding never wins): in (n, h, w, c) -> out (n, oh, ow, c). */
void resnet_maxpool_forward(float *out, const float *in, int n, int h, int w, int c, int k, int stride,
                            int pad, int n_threads);

/** Global average pooling: in (n, hw, c) -> out (n, c). */
void resnet_avgpool_forward(float *out, const float *in, int n, int hw, int c);

/* Run fn(arg, lo, hi) over [0, n) split into n_threads contiguous ranges on pthreads
 * (inline when n_threads <= 1 or a thread cannot start). */
void resnet_parallel_for(int n_threads, size_t n, void (*fn)(void *arg, size_t lo, size_t hi), void *arg);

#endif
