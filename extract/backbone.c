/* The backbones lmr-extract knows, one table (name, feature size, input protocol, constructor),
 * and the dispatch through it. */
#include "backbone_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int none_init(Backbone *b, const BackboneOpts *o)
{
    (void)o;
    b->dim = 0;
    return 0;
}

typedef struct {
    BackboneInfo info;
    int (*init)(Backbone *b, const BackboneOpts *o);
} BackboneDesc;

#define RESNET_INPUT "per frame, any size, ImageNet mean/std; torchvision weights"
#define VIT_INPUT "per frame, 224x224, ImageNet mean/std; class token after the last LayerNorm; torchvision weights"

static const BackboneDesc backbones[] = {
    {{"none", 0, 1, 0, "no features: the sampled frames themselves, u8 RGB"}, none_init},
    {{"pool", BACKBONE_POOL_DIM, 1, 0, "per frame, any size: colour, shape and motion statistics, no weights"},
     backbone_pool_init},
    {{"resnet18", 512, 1, 0, RESNET_INPUT}, backbone_resnet_init},
    {{"resnet34", 512, 1, 0, RESNET_INPUT}, backbone_resnet_init},
    {{"resnet50", 2048, 1, 0, RESNET_INPUT}, backbone_resnet_init},
    {{"resnet101", 2048, 1, 0, RESNET_INPUT}, backbone_resnet_init},
    {{"resnet152", 2048, 1, 0, RESNET_INPUT}, backbone_resnet_init},
    {{"vit_b_16", 768, 1, 224, VIT_INPUT}, backbone_vit_init},
    {{"vit_l_16", 1024, 1, 224, VIT_INPUT}, backbone_vit_init},
    {{"videomae_b", 768, 16, 224,
      "one feature per 16 frames (tubelet 2x16x16), 224x224, ImageNet mean/std; mean of the tokens, then "
      "fc_norm; transformers VideoMAE weights"},
     backbone_videomae_init},
};
#define N_BACKBONES (sizeof backbones / sizeof backbones[0])

const BackboneInfo *backbone_info(size_t i) { return i < N_BACKBONES ? &backbones[i].info : NULL; }

int backbone_open(Backbone **bp, const BackboneOpts *o, char *err)
{
    *bp = NULL;
    const char *name = o && o->name ? o->name : "none";
    const BackboneDesc *d = NULL;
    for (size_t i = 0; i < N_BACKBONES && !d; i++)
        if (strcmp(name, backbones[i].info.name) == 0)
            d = &backbones[i];
    if (!d) {
        char names[512] = "";
        for (size_t i = 0, at = 0; i < N_BACKBONES && at < sizeof names; i++)
            at += (size_t)snprintf(names + at, sizeof names - at, "%s%s", i ? ", " : "", backbones[i].info.name);
        return lmr_fail(err, LMR_EINVAL, "unknown backbone '%s' (%s)", name, names);
    }
    Backbone *b = calloc(1, sizeof *b);
    if (!b)
        return lmr_fail(err, LMR_ENOMEM, "out of memory");
    snprintf(b->name, sizeof b->name, "%s", name);
    b->frames_per_feature = d->info.frames_per_feature;
    b->size = d->info.size;
    int rc = d->init(b, o);
    if (rc < 0) {
        lmr_fail(err, rc, "%s", b->last_error);
        backbone_close(&b);
        return rc;
    }
    *bp = b;
    return 0;
}

void backbone_close(Backbone **bp)
{
    if (!bp || !*bp)
        return;
    Backbone *b = *bp;
    if (b->ops && b->ops->close)
        b->ops->close(b);
    free(b);
    *bp = NULL;
}

int backbone_dim(const Backbone *b) { return b ? b->dim : 0; }
int backbone_frames_per_feature(const Backbone *b) { return b && b->frames_per_feature > 0 ? b->frames_per_feature : 1; }
const char *backbone_name(const Backbone *b) { return b ? b->name : "none"; }
const char *backbone_weights_checksum(const Backbone *b) { return b ? b->weights_checksum : ""; }
const char *backbone_error(const Backbone *b) { return b ? b->last_error : "no backbone"; }

int backbone_check_input(const Backbone *b, int frames, int size, char *err)
{
    int fpf = backbone_frames_per_feature(b);
    if (b && b->dim > 0 && frames % fpf != 0)
        return lmr_fail(err, LMR_EINVAL, "backbone %s makes one feature per %d frames: --frames %d is not a multiple of %d",
                        b->name, fpf, frames, fpf);
    if (b && b->dim > 0 && b->size > 0 && size != b->size)
        return lmr_fail(err, LMR_EINVAL, "backbone %s takes %dx%d frames: --size %d is not %d", b->name, b->size,
                        b->size, size, b->size);
    return 0;
}

int backbone_gemm_stats(const Backbone *b, double *seconds, double *flops)
{
    if (!b || b->gemm_flops <= 0)
        return LMR_EUNSUPPORTED;
    *seconds = b->gemm_s;
    *flops = b->gemm_flops;
    return 0;
}

int backbone_run(Backbone *b, const uint8_t *frames, int n, int h, int w, float *out)
{
    if (!b->ops || !b->ops->run)
        return LMR_FAIL(b, LMR_EINVAL, "backbone %s computes no features", b->name);
    if (n < 1 || h < 1 || w < 1)
        return LMR_FAIL(b, LMR_EINVAL, "backbone %s: bad input %dx%dx%d", b->name, n, h, w);
    int fpf = backbone_frames_per_feature(b);
    if (n % fpf != 0)
        return LMR_FAIL(b, LMR_EINVAL, "backbone %s: %d frames, not a multiple of the %d that make a feature", b->name,
                        n, fpf);
    if (b->size > 0 && (h != b->size || w != b->size))
        return LMR_FAIL(b, LMR_EINVAL, "backbone %s: frames of %dx%d, the model takes %dx%d", b->name, w, h, b->size,
                        b->size);
    return b->ops->run(b, frames, n, h, w, out);
}
