/* The long-tail methods of lmr-train (train/method.h): the per-class tables (class-balanced
 * weights, LDAM margins, the DRW switch epoch) and every loss's value against hand-computed
 * cases; every loss's gradient, and the cosine classifier's, against central finite differences
 * (single- and multi-label rows, with and without smoothing, DRW weights on); the square-root and
 * class-balanced samplers' class rates within binomial bounds; mixup's draws; and, through
 * train_run, what each method writes: the method and seed in the checkpoint, the frozen
 * representation of --freeze-rep and lws, lws's scaled classifier, refusals of mismatched flags. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "checkpoint.h"
#include "method.h"
#include "model.h"
#include "sampler.h"
#include "train_fd.h"
#include "train_synth.h"
#include "trainer.h"

/* A method context on the host for counts (C) and a batch of B rows. */
static int setup(MethodCtx *m, const char *name, const int64_t *counts, int C, int B, float smoothing,
                 const MethodParams *p)
{
    MethodSetup s = {NULL, counts, C, B, B, 4, 3, 10, 7, 1e-3, NULL, smoothing, 0, {.la_tau = 1}};
    method_params_default(&s.p);
    if (p)
        s.p = *p;
    char err[LMR_ERRLEN] = "";
    int rc = method_init(m, method_find(name), &s, err);
    if (rc < 0)
        fprintf(stderr, "method_init(%s): %s\n", name, err);
    return rc;
}

typedef struct {
    MethodCtx *m;
    const int32_t *lab, *off;
    int B, C;
    long epoch;
    float *z, *dz, *losses;
} LossCase;

static double mean_loss(void *arg)
{
    LossCase *c = arg;
    method_loss_host(c->m, c->epoch, 3, c->lab, c->off, 0, c->B, c->z, c->dz, c->losses);
    double s = 0;
    for (int i = 0; i < c->B; i++)
        s += c->losses[i];
    return s / c->B;
}

/* Loss of one batch: the mean of the rows' losses. */
static double batch_loss(MethodCtx *m, const int32_t *lab, const int32_t *off, int B, long epoch, const float *z,
                         float *dz)
{
    float losses[16];
    LossCase c = {m, lab, off, B, m->C, epoch, (float *)z, dz, losses};
    return mean_loss(&c);
}

typedef struct {
    MethodCtx *m;
    float *f, *w, *R, *z;
    int B, F, C;
} HeadCase;

static double head_loss(void *arg)
{
    HeadCase *h = arg;
    h->m->m->head_forward(h->m, h->z, h->f, h->w, h->B, h->F, h->C);
    double s = 0;
    for (int k = 0; k < h->B * h->C; k++)
        s += (double)h->R[k] * h->z[k];
    return s;
}

static long g_stop_after;
static int g_resume;

static int train_one(const char *method, TrainStage stage, const char *init, const char *out, Dataset *tr,
                     int freeze, int epochs, char *err)
{
    TrainOptions o;
    train_options_default(&o);
    o.stage = stage;
    o.method = method;
    o.init = init;
    o.out = out;
    o.epochs = epochs;
    o.batch = 16;
    o.hidden = 8;
    o.lr = 1e-2;
    o.seed = 5;
    o.threads = 1;
    o.progress_every = 0;
    o.freeze_rep = freeze;
    o.stop_after = g_stop_after;
    o.resume = g_resume;
    TrainResult res;
    err[0] = '\0';
    return train_run(&o, tr, NULL, &res, err);
}

int main(void)
{
    char err[LMR_ERRLEN];

    TEST(1, "class-balanced weights, LDAM margins and the DRW epoch by hand");
    {
        // beta 0.5, n = 1, 2, 3: 1/E_n = 0.5/0.5, 0.5/0.75, 0.5/0.875; sum 2.238095, times 3 present
        int64_t n[4] = {1, 2, 3, 0};
        float w[4];
        method_cb_weights(n, 4, 0.5, w);
        CHECK_CLOSE(w[0], 3.0 * 1.0 / 2.2380952, 1e-6, 1e-5);
        CHECK_CLOSE(w[1], 3.0 * 0.6666667 / 2.2380952, 1e-6, 1e-5);
        CHECK_CLOSE(w[2], 3.0 * 0.5714286 / 2.2380952, 1e-6, 1e-5);
        CHECK(w[3] == 0.0f);
        // beta 0.9999: w ~ 1/n for small n (E_n ~ n), normalised over the present classes
        int64_t m[3] = {1000, 10, 1};
        method_cb_weights(m, 3, 0.9999, w);
        double e0 = (1 - pow(0.9999, 1000)) / 1e-4, e1 = (1 - pow(0.9999, 10)) / 1e-4, e2 = 1.0;
        double s = 1 / e0 + 1 / e1 + 1 / e2;
        CHECK_CLOSE(w[0], 3 / e0 / s, 1e-7, 1e-4);
        CHECK_CLOSE(w[2], 3 / e2 / s, 1e-7, 1e-4);
        CHECK_CLOSE(w[0] + w[1] + w[2], 3.0, 1e-5, 0);
        // margins: n^(-1/4) = 0.5, 1, 1/3 for 16, 1, 81; scaled to max 0.5
        int64_t k[4] = {16, 1, 81, 0};
        float mg[4];
        method_ldam_margins(k, 4, 0.5, mg);
        CHECK_CLOSE(mg[0], 0.25, 1e-7, 1e-6);
        CHECK_CLOSE(mg[1], 0.5, 1e-7, 1e-6);
        CHECK_CLOSE(mg[2], 0.5 / 3, 1e-7, 1e-6);
        CHECK(mg[3] == 0.0f);
        CHECK(method_drw_epoch(200, 0.8) == 160 && method_drw_epoch(10, 0.8) == 8 && method_drw_epoch(5, 0.8) == 4 &&
              method_drw_epoch(1, 0.8) == 0 && method_drw_epoch(30, 0.8) == 24);
        float lp[3];
        int64_t q[3] = {1, 3, 0};
        method_log_prior(q, 3, lp);
        CHECK_CLOSE(lp[0], log(0.25), 1e-6, 0);
        CHECK_CLOSE(lp[1], log(0.75), 1e-6, 0);
        CHECK_CLOSE(lp[2], log(0.125), 1e-6, 0);
    }

    TEST(2, "loss values against hand-computed cases");
    {
        MethodCtx m;
        int32_t lab0[1] = {0}, lab1[1] = {1}, off[2] = {0, 1};
        float dz[8];
        // la: z = 0, pi = (1/4, 1/2, 1/4): CE(log pi, 0) = -log(1/4)
        int64_t n3[3] = {1, 2, 1};
        float z3[3] = {0, 0, 0};
        CHECK_RC(setup(&m, "la", n3, 3, 1, 0, NULL), 0);
        CHECK_CLOSE(batch_loss(&m, lab0, off, 1, 0, z3, dz), log(4.0), 1e-6, 1e-6);
        CHECK_CLOSE(dz[0], 0.25 - 1, 1e-6, 0); // softmax(log pi) - onehot
        CHECK_CLOSE(dz[1], 0.5, 1e-6, 0);
        method_free(&m);
        // la with smoothing 0.3: target (0.8, 0.1, 0.1): -sum t log pi
        CHECK_RC(setup(&m, "la", n3, 3, 1, 0.3f, NULL), 0);
        CHECK_CLOSE(batch_loss(&m, lab0, off, 1, 0, z3, dz), -(0.8 * log(0.25) + 0.1 * log(0.5) + 0.1 * log(0.25)),
                    1e-6, 1e-6);
        method_free(&m);
        // focal, gamma 2, two equal logits: -(1/2)^2 log(1/2)
        int64_t n2[2] = {1, 16};
        float z2[2] = {0, 0};
        CHECK_RC(setup(&m, "focal", n2, 2, 1, 0, NULL), 0);
        CHECK_CLOSE(batch_loss(&m, lab0, off, 1, 0, z2, dz), 0.25 * log(2.0), 1e-7, 1e-6);
        method_free(&m);
        // cb, beta 0.5, n = (1, 2): weights (1, 2/3) normalised to sum 2 = (1.2, 0.8); label 1: 0.8 log 2
        MethodParams p;
        method_params_default(&p);
        p.cb_beta = 0.5;
        int64_t n12[2] = {1, 2};
        CHECK_RC(setup(&m, "cb", n12, 2, 1, 0, &p), 0);
        CHECK_CLOSE(batch_loss(&m, lab1, off, 1, 0, z2, dz), 0.8 * log(2.0), 1e-6, 1e-6);
        method_free(&m);
        // cb-focal, gamma 2: 1.2 * focal for label 0
        p.focal_gamma = 2;
        CHECK_RC(setup(&m, "cb", n12, 2, 1, 0, &p), 0);
        CHECK_CLOSE(batch_loss(&m, lab0, off, 1, 0, z2, dz), 1.2 * 0.25 * log(2.0), 1e-6, 1e-6);
        method_free(&m);
        // ldam: cosines (0.5, 0.5), margins (0.5, 0.25) for n = (1, 16), s 30, label 0:
        // CE((15 - 15, 15), 0) = log(1 + e^15)
        float c2[2] = {0.5f, 0.5f};
        CHECK_RC(setup(&m, "ldam-drw", n2, 2, 1, 0, NULL), 0);
        CHECK_CLOSE(batch_loss(&m, lab0, off, 1, 0, c2, dz), 15.0 + log1p(exp(-15.0)), 1e-5, 1e-6);
        // after the switch (epoch 8 of 10) a single row's weighted mean is the same loss
        CHECK_CLOSE(batch_loss(&m, lab0, off, 1, 8, c2, dz), 15.0 + log1p(exp(-15.0)), 1e-5, 1e-6);
        method_free(&m);
        // eql, gamma 1 (every rare non-label left out), class 1 rare (1/1001 < 0.005)
        p.eql_gamma = 1;
        int64_t nr[2] = {1000, 1};
        float ze[2] = {0, 5};
        CHECK_RC(setup(&m, "eql", nr, 2, 1, 0, &p), 0);
        CHECK_CLOSE(batch_loss(&m, lab0, off, 1, 0, ze, dz), 0.0, 1e-7, 0);    // denominator e^0 alone
        CHECK_CLOSE(batch_loss(&m, lab1, off, 1, 0, ze, dz), log1p(exp(-5.0)), 1e-6, 1e-5); // plain CE
        method_free(&m);
        // eql refuses label smoothing
        MethodSetup s = {NULL, nr, 2, 1, 1, 4, 3, 10, 7, 1e-3, NULL, 0.1f, 0, p};
        CHECK_RC(method_init(&m, method_find("eql"), &s, err), LMR_EINVAL);
        method_free(&m);
    }

    TEST(3, "DRW: from epoch 8 of 10 the rows are weighted by w_y / mean w over the batch");
    {
        MethodCtx m;
        MethodParams p;
        method_params_default(&p);
        p.cb_beta = 0.5;
        int64_t n12[2] = {1, 2}; // cb weights (1.2, 0.8)
        int32_t lab[2] = {0, 1}, off[3] = {0, 1, 2};
        float z[4] = {0.1f, 0.1f, 0.1f, 0.1f}, dz[4], losses[2];
        CHECK_RC(setup(&m, "ldam-drw", n12, 2, 2, 0, &p), 0);
        method_loss_host(&m, 7, 0, lab, off, 0, 2, z, dz, losses);
        float l0 = losses[0], l1 = losses[1];
        method_loss_host(&m, 8, 0, lab, off, 0, 2, z, dz, losses);
        CHECK_CLOSE(losses[0], l0 * 2 * 1.2 / 2.0, 1e-6, 1e-5);
        CHECK_CLOSE(losses[1], l1 * 2 * 0.8 / 2.0, 1e-6, 1e-5);
        method_free(&m);
    }

    TEST(4, "every loss's gradient against central finite differences");
    {
        enum { B = 4, C = 5 };
        int64_t counts[C] = {900, 300, 40, 3, 1}; // classes 3 and 4 rare for eql (< 0.005 of 1244)
        // rows: labels 0; 3; {1, 4} (multi-label); 4
        int32_t lab[5] = {0, 3, 1, 4, 4}, off[B + 1] = {0, 1, 2, 4, 5};
        const char *names[] = {"la", "cb", "focal", "ldam-drw", "eql", "mixup", "cb"};
        unsigned st = 12345;
        for (size_t k = 0; k < sizeof names / sizeof *names; k++)
            for (int sm = 0; sm < 2; sm++) {
                int is_eql = strcmp(names[k], "eql") == 0, cbf = k == 6;
                if (is_eql && sm)
                    continue;
                MethodParams p;
                method_params_default(&p);
                p.eql_gamma = 0.5;
                if (cbf)
                    p.focal_gamma = 1.5;
                MethodCtx m;
                CHECK_RC(setup(&m, names[k], counts, C, B, sm ? 0.1f : 0.0f, &p), 0);
                float z[B * C], dz[B * C], g[B * C], losses[B];
                fill_normal(z, B * C, strcmp(names[k], "ldam-drw") == 0 ? 0.3 : 1.5, &st);
                long epoch = strcmp(names[k], "ldam-drw") == 0 ? 9 : 2;
                if (m.m->input) { // mixup: the draws of this step fix perm and lambda
                    float x[B * 4], xo[B * 4];
                    fill_normal(x, B * 4, 1, &st);
                    m.m->input(&m, epoch, 3, x, xo, B, 4);
                    CHECK(m.lam > 0 && m.lam < 1);
                    for (int i = 0; i < B; i++)
                        CHECK_CLOSE(xo[i * 4 + 1], m.lam * x[i * 4 + 1] + (1 - m.lam) * x[m.perm[i] * 4 + 1], 1e-6,
                                    0);
                }
                LossCase c = {&m, lab, off, B, C, epoch, z, dz, losses};
                mean_loss(&c);
                memcpy(g, dz, sizeof g);
                char what[64];
                snprintf(what, sizeof what, "%s%s%s", names[k], cbf ? "-focal" : "", sm ? " smoothed" : "");
                // ldam's logits are cosines scaled by 30 inside the loss: a smaller step
                int ldam = strcmp(names[k], "ldam-drw") == 0;
                CHECK(fd_check(what, z, B * C, g, mean_loss, &c, ldam ? 1e-3f : 1e-2f, ldam ? 1e-3 : 2e-4, 2e-3) == 0);
                method_free(&m);
            }
    }

    TEST(5, "the cosine classifier's gradient (features and weights) against finite differences");
    {
        enum { B = 3, F = 6, C = 4 };
        int64_t counts[C] = {5, 4, 3, 2};
        MethodCtx m;
        MethodSetup s = {NULL, counts, C, B, B, 4, F, 10, 7, 1e-3, NULL, 0, 0, {.la_tau = 1}};
        method_params_default(&s.p);
        CHECK_RC(method_init(&m, method_find("ldam-drw"), &s, err), 0);
        CHECK(m.head_scale == 30.0f);
        float f[B * F], w[F * C], R[B * C], z[B * C], df[B * F], dw[F * C];
        unsigned st = 99;
        fill_normal(f, B * F, 1, &st);
        fill_normal(w, F * C, 0.3, &st);
        fill_normal(R, B * C, 1, &st);
        HeadCase h = {&m, f, w, R, z, B, F, C};
        head_loss(&h);
        for (int i = 0; i < B; i++) // cosines
            for (int c = 0; c < C; c++) {
                double fw = 0, ff = 0, ww = 0;
                for (int k = 0; k < F; k++) {
                    fw += f[i * F + k] * w[k * C + c];
                    ff += f[i * F + k] * f[i * F + k];
                    ww += w[k * C + c] * w[k * C + c];
                }
                CHECK_CLOSE(z[i * C + c], fw / sqrt(ff * ww), 1e-6, 1e-5);
            }
        m.m->head_backward(&m, df, dw, R, f, w, B, F, C);
        CHECK(fd_check("cosine head df", f, B * F, df, head_loss, &h, 1e-2f, 1e-4, 2e-3) == 0);
        CHECK(fd_check("cosine head dw", w, F * C, dw, head_loss, &h, 1e-2f, 1e-4, 2e-3) == 0);
        method_free(&m);
    }

    TEST(6, "srs and cbs draw classes at sqrt(n_c) and uniform rates (binomial bounds, fixed seed)");
    {
        enum { C = 5 };
        int64_t counts[C] = {400, 100, 25, 4, 1};
        uint64_t n = 530;
        int32_t *labels = malloc(n * sizeof *labels);
        float *x = calloc(n, sizeof *x);
        uint64_t i = 0;
        for (int c = 0; c < C; c++)
            for (int k = 0; k < counts[c]; k++)
                labels[i++] = c;
        Dataset d;
        CHECK_RC(dataset_from_memory(&d, x, n, 1, 1, labels, NULL, C, err), 0);
        SamplerKind kinds[2] = {SAMPLER_SQRT, SAMPLER_CLASS};
        for (int k = 0; k < 2; k++) {
            Sampler s;
            enum { Bt = 32 };
            CHECK_RC(sampler_init(&s, kinds[k], &d, Bt, 3), 0);
            uint64_t clips[Bt], per[C] = {0};
            int32_t views[Bt];
            long steps = 3000;
            for (long t = 0; t < steps; t++) {
                sampler_batch(&s, t / 16, t % 16, clips, views);
                for (int b = 0; b < Bt; b++)
                    per[labels[clips[b]]]++;
            }
            double N = (double)steps * Bt, roots = 20 + 10 + 5 + 2 + 1;
            for (int c = 0; c < C; c++) {
                double p = k == 0 ? sqrt((double)counts[c]) / roots : 1.0 / C, sd = sqrt(N * p * (1 - p));
                printf("  %s class %d: %llu draws, expected %.0f +- %.0f\n", k ? "cbs" : "srs", c,
                       (unsigned long long)per[c], N * p, sd);
                CHECK(fabs((double)per[c] - N * p) <= 4.5 * sd);
            }
            sampler_free(&s);
        }
        dataset_close(&d);
        free(labels);
        free(x);
    }

    TEST(7, "train_run: every method trains; method and seed in the checkpoint; frozen parts stay");
    {
        char dir[] = "/tmp/lmr_methods_XXXXXX";
        CHECK(mkdtemp(dir) != NULL);
        SynthSpec spec = {.C = 6, .D = 10, .views = 1, .T = 1, .n_max = 60, .imb = 20, .sep = 4, .noise = 2,
                          .frame_noise = 0.1, .seed = 3, .sample_seed = 4};
        Synth y;
        synth_make(&spec, &y);
        float *mx = synth_means(&spec, &y);
        Dataset tr;
        CHECK_RC(dataset_from_memory(&tr, mx, y.n, 1, spec.D, y.labels, NULL, spec.C, err), 0);
        char init[300], out[300];
        snprintf(init, sizeof init, "%s/ce.safetensors", dir);
        CHECK_RC(train_one(NULL, STAGE_INIT, NULL, init, &tr, 0, 2, err), 0);
        const char *s1[] = {"ce", "la", "cb", "focal", "ldam-drw", "eql", "srs", "cbs", "mixup"};
        for (size_t k = 0; k < sizeof s1 / sizeof *s1; k++) {
            snprintf(out, sizeof out, "%s/%s.safetensors", dir, s1[k]);
            int rc = train_one(s1[k], STAGE_INIT, NULL, out, &tr, 0, 2, err);
            if (rc < 0)
                fprintf(stderr, "%s: %s\n", s1[k], err);
            CHECK_RC(rc, 0);
            CkptInfo in;
            ModelConfig cfg;
            CHECK_RC(checkpoint_read_info(out, &in, &cfg, err), 0);
            CHECK(strcmp(in.method, s1[k]) == 0 && in.seed == 5);
            CHECK(strcmp(in.sampler, k == 6 ? "sqrt" : k == 7 ? "class" : "instance") == 0);
            Model mm;
            CHECK_RC(model_load(&mm, out, err), 0);
            CHECK(mm.head_scale == (k == 4 ? 30.0f : 0.0f));
            model_free(&mm);
        }
        // ce unchanged: without --method the same bytes as --method ce
        snprintf(out, sizeof out, "%s/ce.safetensors", dir);
        char cmd[700];
        snprintf(cmd, sizeof cmd, "cmp -s %s/ce.safetensors %s", dir, init);
        CHECK(system(cmd) == 0);
        const char *s2[] = {"lmr", "crt", "lws", "lmr-mix-only", "lmr-recon-only"};
        Model m0;
        CHECK_RC(model_load(&m0, init, err), 0);
        for (size_t k = 0; k < sizeof s2 / sizeof *s2; k++)
            for (int fr = 0; fr < 2; fr++) {
                snprintf(out, sizeof out, "%s/%s%s.safetensors", dir, s2[k], fr ? "-frozen" : "");
                int rc = train_one(s2[k], STAGE_LMR, init, out, &tr, fr, 2, err);
                if (rc < 0)
                    fprintf(stderr, "%s: %s\n", s2[k], err);
                CHECK_RC(rc, 0);
                CkptInfo in;
                ModelConfig cfg;
                CHECK_RC(checkpoint_read_info(out, &in, &cfg, err), 0);
                CHECK(strcmp(in.method, s2[k]) == 0 && in.freeze_rep == (fr || k == 2));
                Model m1;
                CHECK_RC(model_load(&m1, out, err), 0);
                size_t rep = (size_t)(m1.p.w2 - m1.params), head = m1.n_params - rep;
                int same_rep = memcmp(m1.params, m0.params, rep * sizeof(float)) == 0;
                CHECK(same_rep == (fr || k == 2));
                CHECK(memcmp(m1.params + rep, m0.params + rep, head * sizeof(float)) != 0);
                if (k == 2) { // lws: every column of the head is its init column times one scale
                    int F = m1.F, C = m1.cfg.C, bad = 0;
                    double smin = 1e9, smax = -1e9;
                    for (int c = 0; c < C; c++) {
                        double sc = m1.p.b2[c] / m0.p.b2[c];
                        if (m0.p.b2[c] == 0)
                            sc = m1.p.w2[c] / m0.p.w2[c];
                        smin = fmin(smin, sc);
                        smax = fmax(smax, sc);
                        for (int f = 0; f < F; f++)
                            bad += fabs(m1.p.w2[f * C + c] - sc * m0.p.w2[f * C + c]) >
                                   1e-5 * (1 + fabs(m0.p.w2[f * C + c]));
                    }
                    printf("  lws%s: scales in [%.3f, %.3f]\n", fr ? " --freeze-rep" : "", smin, smax);
                    CHECK(bad == 0 && smax - smin > 0.02);
                }
                model_free(&m1);
            }
        model_free(&m0);
        // an interrupted run resumed ends with the same bytes as an uninterrupted one (lws keeps its
        // scales in the checkpoint's moments; ldam-drw crosses its re-weighting epoch after the stop)
        const char *rs[] = {"lws", "ldam-drw", "mixup", "eql"};
        for (size_t k = 0; k < sizeof rs / sizeof *rs; k++) {
            int s2 = k == 0;
            char ref[300];
            snprintf(ref, sizeof ref, "%s/%s-ref.safetensors", dir, rs[k]);
            snprintf(out, sizeof out, "%s/%s-resumed.safetensors", dir, rs[k]);
            CHECK_RC(train_one(rs[k], s2 ? STAGE_LMR : STAGE_INIT, s2 ? init : NULL, ref, &tr, 0, 5, err), 0);
            g_stop_after = 9;
            CHECK_RC(train_one(rs[k], s2 ? STAGE_LMR : STAGE_INIT, s2 ? init : NULL, out, &tr, 0, 5, err), 0);
            g_stop_after = 0;
            g_resume = 1;
            CHECK_RC(train_one(rs[k], s2 ? STAGE_LMR : STAGE_INIT, s2 ? init : NULL, out, &tr, 0, 5, err), 0);
            g_resume = 0;
            Model a, b;
            CHECK_RC(model_load(&a, ref, err), 0);
            CHECK_RC(model_load(&b, out, err), 0);
            int same = a.n_params == b.n_params && memcmp(a.params, b.params, a.n_params * sizeof(float)) == 0;
            printf("  %s: resumed after 9 steps %s the uninterrupted run\n", rs[k], same ? "equals" : "DIFFERS FROM");
            CHECK(same);
            model_free(&a);
            model_free(&b);
        }
        // refusals: a stage-1 method at stage 2, an unknown name, --lmr-off with another method
        CHECK_RC(train_one("la", STAGE_LMR, init, out, &tr, 0, 1, err), LMR_EINVAL);
        CHECK(strstr(err, "stage-1") != NULL);
        CHECK_RC(train_one("lws", STAGE_INIT, NULL, out, &tr, 0, 1, err), LMR_EINVAL);
        CHECK_RC(train_one("nope", STAGE_INIT, NULL, out, &tr, 0, 1, err), LMR_EINVAL);
        CHECK(strstr(err, "ldam-drw") != NULL); // the message lists the methods
        CHECK_RC(train_one(NULL, STAGE_INIT, NULL, out, &tr, 1, 1, err), LMR_EINVAL);
        TrainOptions o;
        train_options_default(&o);
        o.method = "la";
        o.mp.focal_gamma = 1;
        CHECK(train_method(&o, err) == NULL && strstr(err, "--focal-gamma"));
        o.method = "cb";
        CHECK(train_method(&o, err) != NULL);
        o.mp.lws_lr = 0.1;
        CHECK(train_method(&o, err) == NULL && strstr(err, "--lws-lr"));
        dataset_close(&tr);
        free(mx);
        synth_free(&y);
        snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
        CHECK(system(cmd) == 0);
    }
    CHECK_DONE();
}
