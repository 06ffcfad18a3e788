/* Plain-C face of the CUDA backend (backend_cuda.cu): the twin of every op of backend.h with the
 * same name prefixed cuda_ and the same argument order, the context replaced by the GPU state.
 * backend_cpu.c forwards to these when a context was made with BACKEND_CUDA; dist.c uses the
 * NCCL collectives at the end. Built only when LMR_HAVE_CUDA is defined; C code includes this
 * header, never a CUDA one.
 *
 * Errors: the ops return void (as on the cpu), so the GPU state keeps the FIRST failed CUDA /
 * cuBLAS / NCCL status (file, line, call, the library's message) and every int-returning call
 * after it (sync, download, ...) returns LMR_EGPU; cuda_last_error says what happened. */
#ifndef LMR_TRAIN_BACKEND_CUDA_H
#define LMR_TRAIN_BACKEND_CUDA_H

#include <stddef.h>
#include <stdint.h>

#include "backend.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct CudaState CudaState;

/** 1 when the CUDA runtime sees at least one device. */
int cuda_available(void);
/** Make device local_rank % (devices) current for this thread, before cuda_init (one GPU per
 *  rank of a machine). No device: 0, cuda_init reports it. @return 0 or LMR_EGPU. */
int cuda_select_device(int local_rank, char *err);
/** The GPU state of a BACKEND_CUDA context (NULL for cpu); defined in backend_cpu.c. */
CudaState *backend_gpu_state(BackendCtx *ctx);
/** Pick the current device, make a stream and a cuBLAS handle.
 *  @return 0, LMR_ENODEV ("no CUDA device"), LMR_EGPU, LMR_ENOMEM; err says which. */
int cuda_init(CudaState **g, char *err);
/** NULL-safe, sets *g to NULL. */
void cuda_free(CudaState **g);
/** The first error met since cuda_init ("" when none). Borrowed until cuda_free. */
const char *cuda_last_error(const CudaState *g);
/** TF32 tensor-core GEMMs (about 10 mantissa bits) instead of full f32. */
int cuda_set_tf32(CudaState *g, int on);

int cuda_alloc(CudaState *g, void **ptr, size_t bytes);
void cuda_release(CudaState *g, void *ptr);
int cuda_upload(CudaState *g, void *dst, const void *host_src, size_t bytes);
int cuda_download(CudaState *g, void *host_dst, const void *src, size_t bytes);
int cuda_zero(CudaState *g, void *dst, size_t bytes);
int cuda_copy(CudaState *g, void *dst, const void *src, size_t bytes);
int cuda_sync(CudaState *g);
void cuda_gather_rows(CudaState *g, float *dst, const float *src, const int32_t *idx_host, int n, int F);

void cuda_layernorm_forward(CudaState *g, float *out, float *mean, float *rstd, const float *inp,
                            const float *weight, const float *bias, int B, int D, float eps);
void cuda_layernorm_backward(CudaState *g, float *dinp, float *dweight, float *dbias, const float *dout,
                             const float *inp, const float *weight, const float *mean, const float *rstd,
                             int B, int D);
void cuda_linear_forward(CudaState *g, float *out, const float *inp, const float *weight,
                         const float *bias, int B, int C, int OC, Activation act);
void cuda_linear_backward(CudaState *g, float *dinp, float *dweight, float *dbias, float *dout,
                          const float *inp, const float *weight, const float *out, int B, int C, int OC,
                          Activation act);
void cuda_ce_hard_forward_backward(CudaState *g, float *losses, float *dlogits, const float *logits,
                                   const int32_t *labels, float smoothing, int B, int C);
void cuda_ce_soft_forward_backward(CudaState *g, float *losses, float *dlogits, const float *logits,
                                   const float *targets, int B, int C);
void cuda_bce_forward_backward(CudaState *g, float *losses, float *dlogits, const float *logits,
                               const float *targets, int B, int C);
void cuda_lmr_forward(CudaState *g, float *R, float *wts, const float *f, const float *fn,
                      const float *keys, const float *keys_n, const uint8_t *key_ok,
                      const int32_t *key_clip, const int32_t *query_clip, const float *c, int B, int N,
                      int H);
void cuda_lmr_backward(CudaState *g, float *df, const float *dR, const float *wts, const float *fn,
                       const float *frstd, const float *keys, const float *keys_n, const float *c,
                       float *dwts, float *dr, float *dfn, int B, int N, int H);
void cuda_mix_forward(CudaState *g, float *X, const float *R, const int32_t *partner, const float *a,
                      int n_mix, int B, int H);
void cuda_mix_backward(CudaState *g, float *dR, const float *dX, const int32_t *partner, const float *a,
                       int n_mix, int B, int H);
double cuda_sumsq(CudaState *g, const float *x, size_t n);
void cuda_adamw_update(CudaState *g, float *params, const float *grads, float *m, float *v, size_t n,
                       float lr, float beta1, float beta2, float eps, float weight_decay, long t,
                       float grad_scale);

/* --- NCCL collectives for dist.c (device memory, on the compute stream, in order) --------------- */
#define CUDA_COMM_ID_BYTES 128 /* sizeof(ncclUniqueId) */

/** The NCCL bootstrap id, made on rank 0 and broadcast by the caller (over MPI). */
int cuda_comm_id(unsigned char id[CUDA_COMM_ID_BYTES], char *err);
/** Join the communicator of size ranks. @return 0, LMR_EGPU (err names the NCCL call). */
int cuda_comm_init(CudaState *g, const unsigned char id[CUDA_COMM_ID_BYTES], int rank, int size, char *err);
/** In place over n floats: sum, or the mean over ranks when average. @return 0 or LMR_EGPU. */
int cuda_allreduce(CudaState *g, float *buf, size_t n, int average);
/** Rank r's bytes (at src) land at dst + r * bytes, on every rank. @return 0 or LMR_EGPU. */
int cuda_allgather(CudaState *g, void *dst, const void *src, size_t bytes);

#ifdef __cplusplus
}
#endif

#endif
