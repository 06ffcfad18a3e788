/* eql: softmax equalization loss (Tan et al., "Equalization Loss for Long-Tailed Object
 * Recognition", CVPR 2020, the softmax form of section 3.3):
 *   loss = -log( e^{z_y} / sum_k w_k e^{z_k} ),  w_k = 1 - beta_k [pi_k < lambda] (1 - y_k),
 * beta_k ~ Bernoulli(gamma) drawn per clip and class, gamma 0.9, lambda 0.005: the logits of rare
 * classes that are not the clip's label are mostly left out of the denominator, so a head-class
 * clip does not push them down. */
#include <math.h>

#include "backend_cpu.h"
#include "method.h"
#include "rng.h"

static int eql_init(MethodCtx *m, char *err)
{
    if (m->smoothing > 0)
        return lmr_fail(err, LMR_EINVAL, "--method eql trains without label smoothing: a smoothed target on a class "
                        "left out of the denominator has no minimum");
    double N = 0;
    for (int c = 0; c < m->C; c++)
        N += (double)m->counts[c];
    for (int c = 0; c < m->C; c++)
        m->rare[c] = N > 0 && (double)m->counts[c] / N < m->p.eql_lambda;
    return 0;
}

static void eql_loss(const MethodCtx *m, MethodLoss *L)
{
    int C = L->C;
    float gamma = (float)m->p.eql_gamma;
    for (int i = 0; i < L->B; i++) {
        size_t o = (size_t)i * C;
        const float *z = L->z + o, *T = L->T + o;
        float *d = L->dz + o; // holds w_k until the last pass
        Rng r; // one stream per clip of the global batch: the same draws on any number of ranks
        rng_seed(&r, m->seed, METHOD_RNG_EQL, (uint64_t)L->epoch, (uint64_t)L->step * (uint64_t)m->Bg + (uint64_t)(L->row0 + i));
        for (int c = 0; c < C; c++)
            d[c] = 1.0f;
        for (int c = 0; c < C; c++)
            if (m->rare[c] && rng_uniform(&r) < gamma)
                d[c] = 0.0f;
        for (int q = L->off[i]; q < L->off[i + 1]; q++)
            d[L->lab[q]] = 1.0f; // a label is never left out
        float mx = -INFINITY;
        for (int c = 0; c < C; c++)
            mx = d[c] > 0.0f && z[c] > mx ? z[c] : mx;
        float tz = 0.0f, ts = 0.0f;
        for (int c = 0; c < C; c++) {
            tz += T[c] * z[c];
            ts += T[c];
        }
        for (int c = 0; c < C; c++) // w_k e^(z_k - max), kept in d
            d[c] = d[c] * vexpf(z[c] - mx);
        float s = 0.0f;
        for (int c = 0; c < C; c++)
            s += d[c];
        L->losses[i] = ts * (mx + logf(s)) - tz;
        float k = ts / s;
        for (int c = 0; c < C; c++)
            d[c] = d[c] * k - T[c];
    }
}

const Method method_eql = {
    .name = "eql",
    .stage = METHOD_INIT,
    .sampler = SAMPLER_INSTANCE,
    .help = "softmax equalization loss, gamma 0.9, lambda 0.005 (Tan et al. 2020)",
    .init = eql_init,
    .loss = eql_loss,
};
