/* Inside extract/: each backbone implements this table; backbone.c dispatches by name. */
#ifndef LMR_BACKBONE_INTERNAL_H
#define LMR_BACKBONE_INTERNAL_H

#include "backbone.h"

typedef struct {
    int (*run)(Backbone *b, const uint8_t *frames, int n, int h, int w, float *out);
    void (*close)(Backbone *b); /* frees impl */
} BackboneOps;

struct Backbone {
    const BackboneOps *ops;
    void *impl;
    int dim;
    int frames_per_feature; /* from the table; an init may change it (VideoMAE: its weights') */
    int size;               /* frames must be size x size; 0: any */
    double gemm_s, gemm_flops; /* kept up to date by backbones that count them */
    char name[32];
    char weights_checksum[24];
    char last_error[LMR_ERRLEN];
};

#define BACKBONE_POOL_DIM 280 /* backbone_pool.c's descriptor */

/* Constructors: fill b->ops, b->impl, b->dim, b->weights_checksum. */
int backbone_pool_init(Backbone *b, const BackboneOpts *o);
int backbone_resnet_init(Backbone *b, const BackboneOpts *o); /* resnet18..152, cpu or cuda */
int backbone_vit_init(Backbone *b, const BackboneOpts *o);    /* vit_b_16, vit_l_16 */
int backbone_videomae_init(Backbone *b, const BackboneOpts *o);

#endif
