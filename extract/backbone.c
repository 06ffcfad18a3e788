/* Backbone dispatch by name: "none" keeps frames, "pool" is the built-in colour/motion
 * descriptor, "resnet*" lives in backbone_resnet.c (built when present). */
#include "backbone_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int backbone_open(Backbone **bp, const BackboneOpts *o, char *err)
{
    *bp = NULL;
    const char *name = o && o->name ? o->name : "none";
    Backbone *b = calloc(1, sizeof *b);
    if (!b)
        return lmr_fail(err, LMR_ENOMEM, "out of memory");
    snprintf(b->name, sizeof b->name, "%s", name);
    int rc = 0;
    if (strcmp(name, "none") == 0) {
        b->dim = 0;
    } else if (strcmp(name, "pool") == 0) {
        rc = backbone_pool_init(b, o);
    } else if (strncmp(name, "resnet", 6) == 0) {
        rc = backbone_resnet_init(b, o); // resnet18/50/101 (backbone_resnet.c)
    } else {
        rc = lmr_fail(b->last_error, LMR_EINVAL, "unknown backbone '%s' (none, pool, resnet18, resnet50, resnet101)", name);
    }
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
const char *backbone_name(const Backbone *b) { return b ? b->name : "none"; }
const char *backbone_weights_checksum(const Backbone *b) { return b ? b->weights_checksum : ""; }
const char *backbone_error(const Backbone *b) { return b ? b->last_error : "no backbone"; }

int backbone_run(Backbone *b, const uint8_t *frames, int n, int h, int w, float *out)
{
    if (!b->ops || !b->ops->run)
        return LMR_FAIL(b, LMR_EINVAL, "backbone %s computes no features", b->name);
    if (n < 1 || h < 1 || w < 1)
        return LMR_FAIL(b, LMR_EINVAL, "backbone %s: bad input %dx%dx%d", b->name, n, h, w);
    return b->ops->run(b, frames, n, h, w, out);
}
