/* focal: softmax focal loss (Lin et al., "Focal Loss for Dense Object Detection", ICCV 2017):
 * -(1 - p_y)^gamma log p_y, gamma 2 (--focal-gamma). */
#include "method.h"

static float focal_gamma(const MethodCtx *m, float dflt)
{
    return m->p.focal_gamma >= 0 ? (float)m->p.focal_gamma : dflt;
}

void method_focal_rows(const MethodCtx *m, MethodLoss *L, float gamma);
void method_focal_rows(const MethodCtx *m, MethodLoss *L, float gamma)
{
    (void)m;
    for (int i = 0; i < L->B; i++) {
        size_t o = (size_t)i * L->C;
        L->losses[i] = gamma > 0 ? method_focal_row(L->z + o, L->T + o, gamma, L->dz + o, L->C)
                                 : method_ce_row(L->z + o, NULL, L->T + o, L->dz + o, L->C);
    }
}

static void focal_loss(const MethodCtx *m, MethodLoss *L)
{
    method_focal_rows(m, L, focal_gamma(m, 2.0f));
}

const Method method_focal = {
    .name = "focal",
    .stage = METHOD_INIT,
    .sampler = SAMPLER_INSTANCE,
    .help = "softmax focal loss, gamma 2 (--focal-gamma)",
    .loss = focal_loss,
};
