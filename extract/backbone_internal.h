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
    char name[32];
    char weights_checksum[24];
    char last_error[LMR_ERRLEN];
};

/* Constructors: fill b->ops, b->impl, b->dim, b->weights_checksum. */
int backbone_pool_init(Backbone *b, const BackboneOpts *o);
int backbone_resnet_init(Backbone *b, const BackboneOpts *o); /* resnet18/50/101, cpu or cuda */

#endif
