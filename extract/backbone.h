/* Backbones turn sampled RGB frames into features. "none" keeps the frames (frames records),
 * "pool" is a cheap built-in colour/motion descriptor, "resnet18..152" run ImageNet ResNets
 * (CPU or CUDA), "vit_b_16" / "vit_l_16" torchvision's ViTs per frame, and "videomae_b" the
 * VideoMAE video encoder, one feature per 16-frame clip; weights from safetensors files.
 * backbone_info lists them with their feature size and input protocol. */
#ifndef LMR_BACKBONE_H
#define LMR_BACKBONE_H

#include <stddef.h>
#include <stdint.h>

#include "lmr_error.h"

typedef struct {
    const char *name;    /* one of backbone_info's names */
    const char *weights; /* safetensors path (resnet, vit, videomae), NULL otherwise */
    const char *device;  /* "cpu" (default) or "cuda" */
    int threads;         /* compute threads, 0 = all cores */
    int batch;           /* frames per forward batch, 0 = backbone default */
} BackboneOpts;

typedef struct Backbone Backbone;

/* What a backbone takes and gives, as lmr-extract --help lists it. */
typedef struct {
    const char *name;
    int dim;                /* feature size (videomae_b: its weights may say otherwise) */
    int frames_per_feature; /* 1: a feature per frame; 16: one per 16 consecutive frames */
    int size;               /* frames must be size x size; 0: any size */
    const char *input;      /* the input protocol in a few words */
} BackboneInfo;

/** The i-th backbone this build knows, NULL past the last. */
const BackboneInfo *backbone_info(size_t i);

/** Open a backbone (one per worker thread, or one shared where the backbone says it is
 *  thread-safe). @return 0, LMR_EINVAL (unknown name), LMR_ENOTFOUND / LMR_EMISMATCH (weights),
 *  LMR_ENODEV (cuda without a GPU); err explains. */
int backbone_open(Backbone **b, const BackboneOpts *opts, char *err);
void backbone_close(Backbone **b);
/** Feature size; 0 for "none". */
int backbone_dim(const Backbone *b);
/** Frames that make one feature (1, or the clip length of a video backbone). */
int backbone_frames_per_feature(const Backbone *b);
/** Whether clips of `frames` frames of size x size suit the backbone.
 *  @return 0, or LMR_EINVAL with err naming the option to change. */
int backbone_check_input(const Backbone *b, int frames, int size, char *err);
/** Backbone name as stored in shard metadata. */
const char *backbone_name(const Backbone *b);
/** Hex XXH3-64 of the weights file, "" when the backbone has none. */
const char *backbone_weights_checksum(const Backbone *b);
/** Features of n frames of one clip, in time order (motion features look at the previous frame).
 *  frames: (n, h, w, 3) u8 RGB; out: (n / frames_per_feature, dim) f32.
 *  @return 0 or an lmr error (last error via backbone_error). */
int backbone_run(Backbone *b, const uint8_t *frames, int n, int h, int w, float *out);
const char *backbone_error(const Backbone *b);
/** Seconds spent inside sgemm and the flops it did, summed over the runs so far.
 *  @return 0, or LMR_EUNSUPPORTED for a backbone that does not count them. */
int backbone_gemm_stats(const Backbone *b, double *seconds, double *flops);

#endif
