/* la: logit-adjusted loss (Menon et al., "Long-tail learning via logit adjustment", ICLR 2021,
 * eq. 10): CE(z + tau log pi, y), tau = 1 (the Balanced Softmax of Ren et al. 2020). */
#include <stdlib.h>

#include "method.h"

static int la_init(MethodCtx *m, char *err)
{
    float *adj = malloc((size_t)m->C * sizeof *adj);
    if (!adj)
        return lmr_fail(err, LMR_ENOMEM, "out of memory");
    for (int c = 0; c < m->C; c++)
        adj[c] = (float)m->p.la_tau * m->log_prior[c];
    m->priv = adj;
    return 0;
}

static void la_free(MethodCtx *m)
{
    free(m->priv);
    m->priv = NULL;
}

static void la_loss(const MethodCtx *m, MethodLoss *L)
{
    const float *adj = m->priv;
    for (int i = 0; i < L->B; i++) {
        size_t o = (size_t)i * L->C;
        L->losses[i] = method_ce_row(L->z + o, adj, L->T + o, L->dz + o, L->C);
    }
}

const Method method_la = {
    .name = "la",
    .stage = METHOD_INIT,
    .sampler = SAMPLER_INSTANCE,
    .help = "logit-adjusted cross-entropy, tau 1 (Menon et al. 2021)",
    .init = la_init,
    .free = la_free,
    .loss = la_loss,
};
