/* lmr-eval's post-hoc corrections and summary: tau-norm at t = 0 is the plain model without its
 * bias, at t = 1 every class row has unit norm; la at t = 0 is the plain model, at t its logits
 * are z - t log pi; the t search picks the hand-checkable best on constructed logits (ties to the
 * smallest t) for both; parsing; mean and sample std over seeds. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "method.h"
#include "model.h"
#include "posthoc.h"
#include "rng.h"
#include "summarize.h"

static void random_model(Model *m, int D, int H, int C)
{
    ModelConfig cfg = {D, H, C};
    model_init(m, &cfg, NULL);
    Rng r;
    rng_seed(&r, 1, 2, 3, 4);
    for (size_t i = 0; i < m->n_params; i++)
        m->params[i] = (float)rng_normal(&r) * 0.5f;
    m->class_counts = malloc((size_t)C * sizeof *m->class_counts);
    for (int c = 0; c < C; c++)
        m->class_counts[c] = 100 >> c;
}

int main(void)
{
    enum { D = 6, H = 5, C = 4, N = 3 };
    char err[LMR_ERRLEN];
    float x[N * D], z0[N * C], z1[N * C];
    Rng r;
    rng_seed(&r, 9, 9, 9, 9);
    for (int i = 0; i < N * D; i++)
        x[i] = (float)rng_normal(&r);

    TEST(1, "tau-norm: t = 0 is the plain model without bias; t = 1 gives unit class rows");
    {
        Model m;
        random_model(&m, D, H, C);
        CHECK_RC(model_logits(&m, x, N, z0), 0);
        float b2[C];
        memcpy(b2, m.p.b2, sizeof b2);
        CHECK_RC(posthoc_apply(&m, POSTHOC_TAU_NORM, 0.0, err), 0);
        CHECK_RC(model_logits(&m, x, N, z1), 0);
        for (int i = 0; i < N * C; i++)
            CHECK_CLOSE(z1[i], z0[i] - b2[i % C], 1e-6, 1e-6);
        CHECK_RC(posthoc_apply(&m, POSTHOC_TAU_NORM, 1.0, err), 0);
        for (int c = 0; c < C; c++) {
            double ss = 0;
            for (int f = 0; f < H; f++)
                ss += m.p.w2[f * C + c] * m.p.w2[f * C + c];
            CHECK_CLOSE(sqrt(ss), 1.0, 1e-6, 0);
            CHECK(m.p.b2[c] == 0.0f);
        }
        model_free(&m);
    }

    TEST(2, "la: t = 0 is the plain model; at t the logits are z - t log pi");
    {
        Model m;
        random_model(&m, D, H, C);
        CHECK_RC(model_logits(&m, x, N, z0), 0);
        CHECK_RC(posthoc_apply(&m, POSTHOC_LA, 0.0, err), 0);
        CHECK_RC(model_logits(&m, x, N, z1), 0);
        CHECK(memcmp(z0, z1, sizeof z0) == 0);
        CHECK_RC(posthoc_apply(&m, POSTHOC_LA, 0.7, err), 0);
        CHECK_RC(model_logits(&m, x, N, z1), 0);
        double tot = 100 + 50 + 25 + 12;
        for (int i = 0; i < N * C; i++)
            CHECK_CLOSE(z1[i], z0[i] - 0.7 * log((100 >> (i % C)) / tot), 1e-5, 1e-5);
        m.head_scale = 30; // a cosine head is refused
        CHECK_RC(posthoc_apply(&m, POSTHOC_LA, 0.7, err), LMR_EINVAL);
        model_free(&m);
    }

    TEST(3, "the t search picks the hand-checkable best, ties to the smallest t");
    {
        // la, pi = (0.9, 0.1): class c gains -t log pi_c; class 1 overtakes class 0 when
        // 2.1972 t > d = z0 - z1. A class-1 clip with d = 2.1972 * 0.55 is right from t = 0.6, a
        // class-0 clip with d = 2.1972 * 0.95 up to t = 0.9: t in 0.6 .. 0.9 all score 1, 0.6 wins.
        float lp[2] = {logf(0.9f), logf(0.1f)}, wn[2] = {1, 0.5f};
        double k = log(0.9) - log(0.1);
        float base[4] = {(float)(k * 0.55), 0, (float)(k * 0.95), 0};
        int32_t lab[2] = {1, 0};
        int64_t off[3] = {0, 1, 2};
        double acc[POSTHOC_GRID];
        int g = posthoc_grid(POSTHOC_LA, base, 2, 1, 2, lab, off, NULL, lp, acc);
        CHECK(g == 6);
        CHECK_CLOSE(acc[6], 1.0, 1e-12, 0);
        CHECK_CLOSE(acc[5], 0.5, 1e-12, 0);
        CHECK_CLOSE(acc[9], 1.0, 1e-12, 0);
        CHECK_CLOSE(acc[10], 0.5, 1e-12, 0);
        // tau-norm, |w| = (1, 0.5): class 1's logit grows as 2^t. Clip of class 1 at (1, 0.6) is right
        // for t > 0.737, clip of class 0 at (1, 0.55) for t < 0.862: only t = 0.8 gets both.
        float b2[4] = {1, 0.6f, 1, 0.55f};
        g = posthoc_grid(POSTHOC_TAU_NORM, b2, 2, 1, 2, lab, off, wn, NULL, acc);
        CHECK(g == 8);
        CHECK_CLOSE(acc[8], 1.0, 1e-12, 0);
        CHECK_CLOSE(acc[7], 0.5, 1e-12, 0);
        CHECK_CLOSE(acc[9], 0.5, 1e-12, 0);
        // two views: scores are summed softmaxes, so a confident view outvotes a near-tie
        float b3[4] = {0, 3, 0.1f, 0}; // one clip of class 1, views (0, 3) and (0.1, 0)
        int32_t l1[1] = {1};
        int64_t o1[2] = {0, 1};
        g = posthoc_grid(POSTHOC_LA, b3, 1, 2, 2, l1, o1, NULL, lp, acc);
        CHECK(g == 0 && acc[0] == 1.0);
    }

    TEST(4, "parsing --posthoc");
    {
        Posthoc p;
        CHECK_RC(posthoc_parse("tau-norm", &p, err), 0);
        CHECK(p.kind == POSTHOC_TAU_NORM && !p.tau_given && p.tau == 1.0);
        CHECK_RC(posthoc_parse("la:0.5", &p, err), 0);
        CHECK(p.kind == POSTHOC_LA && p.tau_given && p.tau == 0.5);
        CHECK_RC(posthoc_parse("ncm", &p, err), 0);
        CHECK(p.kind == POSTHOC_NCM);
        CHECK_RC(posthoc_parse("ncm:1", &p, err), LMR_EUSAGE);
        CHECK_RC(posthoc_parse("la:", &p, err), LMR_EUSAGE);
        CHECK_RC(posthoc_parse("la:-1", &p, err), LMR_EUSAGE);
        CHECK_RC(posthoc_parse("tau", &p, err), LMR_EUSAGE);
    }

    TEST(5, "summary cells: mean and sample std over the seeds that report a value");
    {
        double v[4] = {0.5, 0.7, -1, 0.9};
        SumCell c = summarize_cell(v, 4);
        CHECK(c.n == 3);
        CHECK_CLOSE(c.mean, 0.7, 1e-12, 0);
        CHECK_CLOSE(c.sd, 0.2, 1e-12, 0);
        double one[1] = {0.4};
        c = summarize_cell(one, 1);
        CHECK(c.n == 1 && c.sd == 0 && c.mean == 0.4);
        double none[2] = {-1, -1};
        CHECK(summarize_cell(none, 2).n == 0);
    }
    CHECK_DONE();
}
