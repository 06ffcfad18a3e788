/* cb: class-balanced loss (Cui et al., "Class-Balanced Loss Based on Effective Number of
 * Samples", CVPR 2019): each clip's loss weighted by w_y = (1 - beta) / (1 - beta^n_y),
 * normalised to sum C, beta 0.9999, mean over the batch as in the paper's code. The loss is
 * softmax cross-entropy, or the focal loss with --focal-gamma > 0 (CB-focal). */
#include "method.h"

void method_focal_rows(const MethodCtx *m, MethodLoss *L, float gamma);

static const float *cb_weights(const MethodCtx *m, long epoch, int *by_sum)
{
    (void)epoch;
    *by_sum = 0;
    return m->cb_w;
}

static void cb_loss(const MethodCtx *m, MethodLoss *L)
{
    method_focal_rows(m, L, m->p.focal_gamma > 0 ? (float)m->p.focal_gamma : 0.0f);
}

const Method method_cb = {
    .name = "cb",
    .stage = METHOD_INIT,
    .sampler = SAMPLER_INSTANCE,
    .help = "class-balanced cross-entropy, beta 0.9999 (--focal-gamma G: CB-focal)",
    .class_weights = cb_weights,
    .loss = cb_loss,
};
