/* Plain-C face of the cuDNN ResNet (backbone_resnet_cuda.cu): C code includes this, never a
 * CUDA header. Built only when LMR_HAVE_RESNET_CUDA is defined. */
#ifndef LMR_RESNET_CUDA_H
#define LMR_RESNET_CUDA_H

#include <stdint.h>

#include "resnet_internal.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ResnetCuda ResnetCuda;

/** 0 when a CUDA device can be used, else LMR_ENODEV with the reason in err. */
int resnet_cuda_available(char *err);

/** Upload the folded weights of net to the current GPU and create the cuDNN handles.
 *  @param batch  frames per forward batch (>= 1)
 *  @param half   1: f16 NHWC tensors with f32 accumulation (tensor cores); 0: f32 (FMA math)
 *  @return 0, LMR_ENODEV (no usable GPU), LMR_EGPU (a CUDA/cuDNN call failed: err names the
 *          call, file and line), LMR_ENOMEM.
 *  @note close with resnet_cuda_close, also after a failure; net may be freed after open. */
int resnet_cuda_open(ResnetCuda **out, const ResnetNet *net, int batch, int half, char *err);

/** Features of n frames (n, h, w, 3) u8 RGB -> out (n, dim) f32. The upload of the next batch
 *  overlaps the compute of the current one. @return 0, LMR_EGPU, LMR_ENOMEM. */
int resnet_cuda_run(ResnetCuda *c, const uint8_t *frames, int n, int h, int w, float *out, char *err);

/** Release everything; NULL-safe, sets *c to NULL. */
void resnet_cuda_close(ResnetCuda **c);

#ifdef __cplusplus
}
#endif

#endif
