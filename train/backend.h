/* The numeric ops of lmr-train behind one plain-C interface. backend_cpu.c is the readable
 * reference (OpenBLAS sgemm + fused loops); backend_cuda.cu exports the same names and argument
 * order, its context carrying the stream and cuBLAS handle. Tensor pointers passed to the ops are
 * backend memory (host for cpu, device for cuda) obtained from backend_alloc; the *_naive
 * versions are plain triple loops on host memory, kept as test oracles.
 *
 * Conventions: row-major; a linear layer's weight is (OC, C) as in PyTorch; gradients of weights
 * are written (not accumulated): every parameter is used once per step. Losses are means over the
 * batch, so dlogits already carries the 1/B factor. */
#ifndef LMR_TRAIN_BACKEND_H
#define LMR_TRAIN_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "lmr_error.h"

typedef enum { BACKEND_CPU = 0, BACKEND_CUDA = 1 } BackendKind;
typedef enum { ACT_NONE = 0, ACT_TANH = 1 } Activation;

/* Opaque per-process context: thread count (cpu); stream, cuBLAS handle, workspace (cuda). */
typedef struct BackendCtx BackendCtx;

/** Create a context. threads <= 0 keeps the library default.
 *  @return 0, LMR_ENOMEM, LMR_ENODEV (kind not built in or no device); err says which. */
int backend_init(BackendCtx **ctx, BackendKind kind, int threads, char *err);
/** Release the context; NULL-safe, sets *ctx to NULL. */
void backend_free(BackendCtx **ctx);
BackendKind backend_kind(const BackendCtx *ctx);
/** Parts the cpu ops are cut into: the team's members (threads capped at the CPUs), 1 without a
 *  team and on cuda. */
int backend_parts(const BackendCtx *ctx);
/** 1 when a backend of this kind was compiled in and can run here. */
int backend_available(BackendKind kind);
/** The first failure a (void) op met on a device backend, with file and line ("" when none, and
 *  always on cpu). Borrowed until backend_free. */
const char *backend_last_error(const BackendCtx *ctx);
/** Seconds spent in the GEMM ops since backend_init (their fused bias/tanh passes included) and
 *  the flops those GEMMs did; both 0 on cuda, where ops run asynchronously. */
void backend_gemm_stats(const BackendCtx *ctx, double *seconds, double *flops);
/** fn(arg, lo, hi) over [0, n) on host memory, cut across the cpu team when there is one and
 *  `work` (elements touched) makes it worth a hand-over; else one call on this thread. */
void backend_parallel(BackendCtx *ctx, size_t n, size_t work, void (*fn)(void *arg, size_t lo, size_t hi),
                      void *arg);
/** GEMMs on TF32 tensor cores (cuda; no-op on cpu). @return 0 or LMR_EGPU. */
int backend_set_tf32(BackendCtx *ctx, int on);

/* --- memory: owned by the caller, released with backend_release ------------------------------ */
/** Zeroed backend memory of bytes. @return 0 or LMR_ENOMEM. */
int backend_alloc(BackendCtx *ctx, void **ptr, size_t bytes);
void backend_release(BackendCtx *ctx, void *ptr);
int backend_upload(BackendCtx *ctx, void *dst, const void *host_src, size_t bytes);
int backend_download(BackendCtx *ctx, void *host_dst, const void *src, size_t bytes);
int backend_zero(BackendCtx *ctx, void *dst, size_t bytes);
/** Copy between two backend buffers. */
int backend_copy(BackendCtx *ctx, void *dst, const void *src, size_t bytes);
/** dst row k = src row idx[k] for k < n, rows of F floats (backend memory); idx is host memory,
 *  free to reuse when this returns. */
void backend_gather_rows(BackendCtx *ctx, float *dst, const float *src, const int32_t *idx, int n, int F);
/** Wait until every queued op has finished (no-op on cpu). */
int backend_sync(BackendCtx *ctx);

/* --- layer norm over the last dim: out = (x - mean) * rstd * weight + bias --------------------- */
/** weight/bias NULL: no affine (LN0). mean/rstd (B) are saved for the backward. */
void layernorm_forward(BackendCtx *ctx, float *out, float *mean, float *rstd, const float *inp,
                       const float *weight, const float *bias, int B, int D, float eps);
/** dinp (B,D) written (may be NULL); dweight/dbias (D) written (NULL when no affine). */
void layernorm_backward(BackendCtx *ctx, float *dinp, float *dweight, float *dbias, const float *dout,
                        const float *inp, const float *weight, const float *mean, const float *rstd,
                        int B, int D);

/* --- linear (+ optional tanh): out (B,OC) = act(inp (B,C) @ weight (C,OC) + bias (OC)) ---------
 * Weights are stored input-major, (C,OC): row i holds input i's weights to every output (the
 * transpose of PyTorch's (out,in); checkpoints keep PyTorch's, model.c converts). */
void linear_forward(BackendCtx *ctx, float *out, const float *inp, const float *weight,
                    const float *bias, int B, int C, int OC, Activation act);
/** With ACT_TANH, dout is overwritten by the pre-activation gradient and out must be the
 *  forward's output. dinp (B,C) may be NULL; dweight (C,OC) and dbias (OC) are written. */
void linear_backward(BackendCtx *ctx, float *dinp, float *dweight, float *dbias, float *dout,
                     const float *inp, const float *weight, const float *out, int B, int C, int OC,
                     Activation act);

/* --- LayerNorm (affine) -> Linear (+tanh), backward to the parameters only (cpu) ------------
 * When nothing upstream needs the gradient of the LN's input (the features are data), the LN's
 * gains and biases follow from G = xhat^T da (D,H) and the layer's weight, with no (B,D) input
 * gradient: dW = gamma G + beta db^T, dgamma = rowsum(W . G), dbeta = W db; one GEMM where the
 * composed ops take two. dout (B,H) is overwritten by da as in linear_backward; out is the layer's
 * forward output; x (B,D), mean, rstd (B) the LN's input and statistics; xhat (B,D) scratch.
 * @return 0, or LMR_ENODEV on a device backend. */
int ln_linear_backward(BackendCtx *ctx, float *dweight, float *dbias, float *dgamma, float *dbeta, float *dout,
                        const float *out, const float *x, const float *mean, const float *rstd, const float *gamma,
                        const float *beta, const float *weight, float *xhat, int B, int D, int H, Activation act);

/* --- losses on logits (B,C); losses (B) per row, dlogits (B,C) = d(mean loss)/dlogits ---------- */
/** Hard labels with label smoothing s: target = (1-s) onehot + s/C. */
void ce_hard_forward_backward(BackendCtx *ctx, float *losses, float *dlogits, const float *logits,
                              const int32_t *labels, float smoothing, int B, int C);
/** Soft targets (B,C), rows summing to 1. */
void ce_soft_forward_backward(BackendCtx *ctx, float *losses, float *dlogits, const float *logits,
                              const float *targets, int B, int C);
/** Sigmoid binary cross-entropy against targets in [0,1] (B,C), mean over all B*C entries. */
void bce_forward_backward(BackendCtx *ctx, float *losses, float *dlogits, const float *logits,
                          const float *targets, int B, int C);

/* --- LMR reconstruction (DESIGN section 6, steps 4-5) ------------------------------------------
 * f (B,H) the batch's features and fn = LN0(f) with its rstd (B); keys (N,H) and keys_n = LN0(keys)
 * are the memory bank (constants); key_ok (N) is 0 for keys of few-shot classes; c (B) the class
 * weight of each row. A sample never reconstructs from itself: key_clip (N) holds the clip each
 * key was made from and query_clip (B) each row's clip, and row i masks every key j with
 * key_clip[j] == query_clip[i] (its own bank row, other draws of the same clip in the batch, and
 * its copies in earlier batches); query_clip[i] < 0 masks nothing by clip. key_clip NULL means
 * key j's clip is j, so query_clip[i] is then the one bank row holding sample i (-1: none).
 * R = c r + (1-c) f with r = softmax(fn keys_n^T / H, masked) keys; a row with every key masked
 * gets R = f and w = 0. wts (B,N) keeps the softmax for the backward. */
void lmr_forward(BackendCtx *ctx, float *R, float *wts, const float *f, const float *fn,
                 const float *keys, const float *keys_n, const uint8_t *key_ok,
                 const int32_t *key_clip, const int32_t *query_clip, const float *c, int B, int N, int H);
/** df (B,H) written from dR (B,H): through (1-c) f and through the similarity softmax (fn path,
 *  LN0 backward with frstd). Scratch: dwts (B,N), dr (B,H), dfn (B,H). */
void lmr_backward(BackendCtx *ctx, float *df, const float *dR, const float *wts, const float *fn,
                  const float *frstd, const float *keys, const float *keys_n, const float *c,
                  float *dwts, float *dr, float *dfn, int B, int N, int H);

/* --- mixing (step 6): rows i < n_mix: X_i = (1-a_i) R_i + a_i R_partner_i; others X_i = R_i ----- */
void mix_forward(BackendCtx *ctx, float *X, const float *R, const int32_t *partner, const float *a,
                 int n_mix, int B, int H);
/** dR (B,H) written. */
void mix_backward(BackendCtx *ctx, float *dR, const float *dX, const int32_t *partner, const float *a,
                  int n_mix, int B, int H);

/* --- optimiser --------------------------------------------------------------------------------- */
/** Sum of squares of n values, returned in double on the host. */
double backend_sumsq(BackendCtx *ctx, const float *x, size_t n);
/** AdamW (decoupled weight decay, PyTorch's formulas) over n values; t is the 1-based step;
 *  grads are multiplied by grad_scale first (gradient clipping). */
void adamw_update(BackendCtx *ctx, float *params, const float *grads, float *m, float *v, size_t n,
                  float lr, float beta1, float beta2, float eps, float weight_decay, long t,
                  float grad_scale);

/* --- naive host references (test oracles; same semantics as the ops above) -------------------- */
void linear_forward_naive(float *out, const float *inp, const float *weight, const float *bias, int B,
                          int C, int OC, Activation act);
void linear_backward_naive(float *dinp, float *dweight, float *dbias, float *dout, const float *inp,
                           const float *weight, const float *out, int B, int C, int OC, Activation act);
void lmr_forward_naive(float *R, float *wts, const float *f, const float *fn, const float *keys,
                       const float *keys_n, const uint8_t *key_ok, const int32_t *key_clip,
                       const int32_t *query_clip, const float *c, int B, int N, int H);

#endif
