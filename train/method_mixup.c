/* mixup (Zhang et al., "mixup: Beyond Empirical Risk Minimization", ICLR 2018) on the
 * time-pooled feature x (the model's input): one lambda ~ Beta(alpha, alpha) per batch, alpha 1,
 * the partner of row i is row perm(i) of a random permutation of the batch; x_i <- lambda x_i +
 * (1 - lambda) x_perm(i), and the soft targets alike; cross-entropy on the soft targets.
 * Data-parallel: partners are drawn within each rank's rows. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "method.h"
#include "rng.h"

/* Gamma(a, 1): Marsaglia and Tsang (2000); a < 1 through Gamma(a + 1) U^(1/a). */
static double gamma_draw(Rng *r, double a)
{
    if (a < 1.0) {
        double u = rng_uniform(r);
        return gamma_draw(r, a + 1.0) * pow(u > 0 ? u : 1e-300, 1.0 / a);
    }
    double d = a - 1.0 / 3.0, c = 1.0 / sqrt(9.0 * d);
    for (;;) {
        double x = rng_normal(r), v = 1.0 + c * x;
        if (v <= 0)
            continue;
        v = v * v * v;
        double u = rng_uniform(r);
        if (u < 1.0 - 0.0331 * x * x * x * x || log(u > 0 ? u : 1e-300) < 0.5 * x * x + d * (1.0 - v + log(v)))
            return d * v;
    }
}

static int mixup_init(MethodCtx *m, char *err)
{
    m->perm = malloc((size_t)m->B * sizeof *m->perm);
    m->priv = malloc((size_t)m->B * m->C * sizeof(float)); // the unmixed targets
    if (!m->perm || !m->priv)
        return lmr_fail(err, LMR_ENOMEM, "out of memory");
    return 0;
}

static void mixup_free(MethodCtx *m)
{
    free(m->priv);
    m->priv = NULL;
}

typedef struct {
    const float *x;
    float *xo;
    const int32_t *perm;
    float lam;
    int D;
} MixRows;

static void mix_span(void *arg, size_t lo, size_t hi)
{
    const MixRows *a = arg;
    for (size_t i = lo; i < hi; i++) {
        const float *u = a->x + i * a->D, *v = a->x + (size_t)a->perm[i] * a->D;
        float *o = a->xo + i * a->D;
        for (int k = 0; k < a->D; k++)
            o[k] = a->lam * u[k] + (1.0f - a->lam) * v[k];
    }
}

static void mixup_input(MethodCtx *m, long epoch, long step, const float *x, float *xo, int B, int D)
{
    Rng r;
    rng_seed(&r, m->seed, METHOD_RNG_MIXUP, (uint64_t)epoch, (uint64_t)step);
    double a = gamma_draw(&r, m->p.mixup_alpha), b = gamma_draw(&r, m->p.mixup_alpha);
    float lam = (float)(a + b > 0 ? a / (a + b) : 0.5);
    for (int i = 0; i < B; i++)
        m->perm[i] = i;
    for (int i = B - 1; i > 0; i--) { // Fisher-Yates
        int j = (int)rng_below(&r, (uint64_t)i + 1), t = m->perm[i];
        m->perm[i] = m->perm[j];
        m->perm[j] = t;
    }
    m->lam = lam;
    MixRows rows = {x, xo, m->perm, lam, D};
    backend_parallel(m->hctx, (size_t)B, (size_t)B * D, mix_span, &rows);
}

static void mixup_targets(const MethodCtx *m, float *T, int B, int C)
{
    float *T0 = m->priv, lam = m->lam;
    memcpy(T0, T, (size_t)B * C * sizeof *T0);
    for (int i = 0; i < B; i++) {
        const float *u = T0 + (size_t)i * C, *v = T0 + (size_t)m->perm[i] * C;
        float *o = T + (size_t)i * C;
        for (int c = 0; c < C; c++)
            o[c] = lam * u[c] + (1.0f - lam) * v[c];
    }
}

static void mixup_loss(const MethodCtx *m, MethodLoss *L)
{
    (void)m;
    for (int i = 0; i < L->B; i++) {
        size_t o = (size_t)i * L->C;
        L->losses[i] = method_ce_row(L->z + o, NULL, L->T + o, L->dz + o, L->C);
    }
}

const Method method_mixup = {
    .name = "mixup",
    .stage = METHOD_INIT,
    .sampler = SAMPLER_INSTANCE,
    .help = "mixup of the pooled features and targets, lambda ~ Beta(1, 1) (Zhang et al. 2018)",
    .init = mixup_init,
    .free = mixup_free,
    .loss = mixup_loss,
    .input = mixup_input,
    .targets = mixup_targets,
};
