/* Inside extract/: the pieces the transformer backbones (backbone_vit.c, backbone_videomae.c)
 * share. Activations are token rows, (tokens, dim) f32 row-major; every linear layer is one
 * OpenBLAS sgemm against torch's (out, in) weight; attention runs per (sequence, head, block of
 * queries) so its scratch stays (query block x tokens) per thread. Work is cut over our own
 * threads, each calling a single-threaded sgemm, as the ResNet's convolutions are. */
#ifndef LMR_TRANSFORMER_H
#define LMR_TRANSFORMER_H

#include <stddef.h>
#include <stdint.h>

#include "lmr_error.h"
#include "safetensors.h"

#define TFM_QBLOCK 64 /* queries per attention block: scores are TFM_QBLOCK x tokens per thread */

/* Width and depth of a pre-LayerNorm encoder (torchvision's ViT and VideoMAE alike). */
typedef struct {
    int dim;    /* token width D */
    int heads;  /* attention heads; D / heads per head */
    int mlp;    /* hidden width of the MLP */
    int layers; /* encoder blocks */
    float eps;  /* LayerNorm epsilon of the blocks */
} TfmShape;

/* One encoder block: x += proj(attn(LN1(x))); x += fc2(gelu(fc1(LN2(x)))). Views into the
 * backbone's parameter allocation; qkv rows are q (D), k (D), v (D) as torch's in_proj. */
typedef struct {
    float *ln1_g, *ln1_b;
    float *qkv_w, *qkv_b;   /* (3D, D), (3D) */
    float *proj_w, *proj_b; /* (D, D), (D) */
    float *ln2_g, *ln2_b;
    float *fc1_w, *fc1_b;   /* (M, D), (M) */
    float *fc2_w, *fc2_b;   /* (D, M), (D) */
} TfmBlock;

/* Scratch and threads of one backbone instance, grown on demand. gemm_s / gemm_flops add up the
 * time spent inside sgemm (per op, the slowest thread's) and the flops it did. */
typedef struct {
    int n_threads;
    int qblock;                 /* queries per attention block, 0 = TFM_QBLOCK */
    float *h, *qkv, *ctx, *mid; /* (rows, D), (rows, 3D), (rows, D), (rows, M) */
    size_t rows_cap;
    float *scores;              /* per thread: qblock x tokens scores, the head's keys and values */
    size_t scores_cap;
    double gemm_s, gemm_flops;
} TfmCpu;

/** Scratch for rows token rows of sequences of n_tok tokens. @return 0 or LMR_ENOMEM. */
int tfm_cpu_reserve(TfmCpu *c, const TfmShape *s, size_t rows, int n_tok);
void tfm_cpu_free(TfmCpu *c);

/** One encoder block over x (n_seq, n_tok, D), in place. @return 0 or LMR_ENOMEM. */
int tfm_block_forward(TfmCpu *c, const TfmBlock *b, const TfmShape *s, float *x, int n_seq, int n_tok);

/* --- the ops the block is made of (exposed for the tests) ----------------------------------- */

enum { TFM_BIAS = 0, TFM_GELU = 1, TFM_ADD = 2 };

/** out (rows, n) = in (rows, k) w^T + b, then: TFM_BIAS nothing more, TFM_GELU gelu of it,
 *  TFM_ADD added to what out held (a residual). w is torch's (n, k); b may be NULL. */
void tfm_linear(TfmCpu *c, float *out, const float *in, const float *w, const float *b, size_t rows, int n,
                int k, int mode);

/** Softmax attention: qkv (n_seq * n_tok, 3D) rows [q | k | v], heads of D / heads columns;
 *  ctx (n_seq * n_tok, D) gets softmax(q k^T / sqrt(dh)) v per head. Needs tfm_cpu_reserve. */
void tfm_attention(TfmCpu *c, float *ctx, const float *qkv, int n_seq, int n_tok, int dim, int heads);

/** LayerNorm over rows of d (biased variance, as torch). */
void tfm_layernorm(float *out, const float *in, const float *g, const float *b, size_t rows, int d, float eps,
                   int n_threads);

/** In place: x = x / 2 (1 + erf(x / sqrt 2)), torch's exact GELU (erf to 6e-7 in f32, as torch's). */
void tfm_gelu(float *x, size_t n);
/** The vectorised exp and erf the ops use, for the tests. */
float tfm_expf(float x);
float tfm_erff(float x);

/** Non-overlapping patches of n_frames u8 RGB frames (h, w, 3) under ImageNet normalisation,
 *  one row per (frame group of kt, patch row, patch column) in that order, each row
 *  (kt, p, p, 3): out (n_frames / kt * (h / p) * (w / p), kt * p * p * 3). */
void tfm_patchify(float *out, const uint8_t *frames, int n_frames, int h, int w, int kt, int p, int n_threads);
/** torch's conv weight (d, 3, kt, p, p) (a Conv2d's when kt = 1) into patchify's column order
 *  (d, kt, p, p, 3). */
void tfm_patch_weight(float *dst, const float *src, int d, int kt, int p);

/* --- weights -------------------------------------------------------------------------------- */

/** A checked f32 tensor copied into dst (name printf-style). @return 0, LMR_ENOTFOUND,
 *  LMR_EMISMATCH; err names the file and the tensor. */
int tfm_read(StFile *f, const char *path, char *err, float *dst, int ndim, const int64_t *shape,
             const char *fmt, ...) __attribute__((format(printf, 7, 8)));

/** Parameters (floats) of the blocks of s. */
size_t tfm_block_params(const TfmShape *s);
/** Point the blocks' views into p (tfm_block_params(s) floats each), block after block. */
void tfm_blocks_point(TfmBlock *blocks, const TfmShape *s, float *p);

/* Run fn(arg, part) for part in [0, n_parts) on n_parts threads (inline when 1). */
void tfm_parallel(int n_parts, void (*fn)(void *arg, int part), void *arg);

#endif
