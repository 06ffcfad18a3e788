/* Backbones turn sampled RGB frames into per-frame features. "none" keeps the frames
 * (frames records), "pool" is a cheap built-in colour/motion descriptor, "resnet18/50/101"
 * run ImageNet ResNets from safetensors weights on CPU or CUDA. */
#ifndef LMR_BACKBONE_H
#define LMR_BACKBONE_H

#include <stdint.h>

#include "lmr_error.h"

typedef struct {
    const char *name;    /* "none", "pool", "resnet18", "resnet50", "resnet101" */
    const char *weights; /* safetensors path (resnet), NULL otherwise */
    const char *device;  /* "cpu" (default) or "cuda" */
    int threads;         /* compute threads, 0 = all cores */
    int batch;           /* frames per forward batch, 0 = backbone default */
} BackboneOpts;

typedef struct Backbone Backbone;

/** Open a backbone (one per worker thread, or one shared where the backbone says it is
 *  thread-safe). @return 0, LMR_EINVAL (unknown name), LMR_ENOTFOUND / LMR_EMISMATCH (weights),
 *  LMR_ENODEV (cuda without a GPU); err explains. */
int backbone_open(Backbone **b, const BackboneOpts *opts, char *err);
void backbone_close(Backbone **b);
/** Feature size per frame; 0 for "none". */
int backbone_dim(const Backbone *b);
/** Backbone name as stored in shard metadata. */
const char *backbone_name(const Backbone *b);
/** Hex XXH3-64 of the weights file, "" when the backbone has none. */
const char *backbone_weights_checksum(const Backbone *b);
/** Features of n frames of one clip, in time order (motion features look at the previous frame).
 *  frames: (n, h, w, 3) u8 RGB; out: (n, dim) f32.
 *  @return 0 or an lmr error (last error via backbone_error). */
int backbone_run(Backbone *b, const uint8_t *frames, int n, int h, int w, float *out);
const char *backbone_error(const Backbone *b);

#endif
