/* Learning: on synthetic long-tailed Gaussian clusters (imbalance 100, several classes with
 * <= 20 clips), the long-tail methods do what they are for: la, cb, ldam-drw and cbs trained from
 * scratch, crt and lmr from the ce init, and the la post-hoc correction of that init (t tuned on
 * a separate balanced set) each beat ce on few-shot class accuracy on held-out data. The margin
 * is derived from the spread of the gains over several seeds. In-process, in-memory datasets. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "method.h"
#include "model.h"
#include "posthoc.h"
#include "train_synth.h"
#include "trainer.h"

#define N_SEEDS 3

enum { M_LA, M_CB, M_LDAM, M_CBS, M_CRT, M_LMR, M_LA_POSTHOC, N_M };
static const char *const names[N_M] = {"la", "cb", "ldam-drw", "cbs", "crt", "lmr", "ce+la (post-hoc)"};

static int train(const char *method, TrainStage stage, const char *init, const char *out, uint64_t seed,
                 Dataset *tr)
{
    TrainOptions o;
    train_options_default(&o);
    o.stage = stage;
    o.method = method;
    o.init = init;
    o.out = out;
    o.epochs = 20;
    o.batch = 32;
    o.hidden = 128;
    o.lr = 1e-3;
    o.seed = seed;
    o.threads = 1;
    o.progress_every = 0;
    TrainResult res;
    char err[LMR_ERRLEN] = "";
    int rc = train_run(&o, tr, NULL, &res, err);
    if (rc < 0)
        fprintf(stderr, "train_run (%s): %s\n", out, err);
    return rc;
}

static double few_acc(Model *m, Dataset *test, const int64_t *counts)
{
    ValMetrics vm = {-1, -1, -1, -1, -1};
    char err[LMR_ERRLEN];
    if (train_validate(m, test, counts, &vm, err) < 0)
        fprintf(stderr, "validate: %s\n", err);
    return vm.few_acc;
}

static double few_of(const char *ckpt, Dataset *test, const int64_t *counts)
{
    Model m;
    char err[LMR_ERRLEN];
    if (model_load(&m, ckpt, err) < 0) {
        fprintf(stderr, "model_load: %s\n", err);
        return -1;
    }
    double a = few_acc(&m, test, counts);
    model_free(&m);
    return a;
}

/* The la post-hoc correction of ce, t picked on the tuning set by the grid search of lmr-eval. */
static double la_posthoc_few(const char *ce, Dataset *tune, Dataset *test, const int64_t *counts, double *tau)
{
    Model m;
    char err[LMR_ERRLEN];
    if (model_load(&m, ce, err) < 0)
        return -1;
    int C = m.cfg.C, V = tune->views, D = tune->D;
    size_t rows = tune->n * (size_t)V;
    float *base = malloc(rows * C * sizeof *base), *x = malloc(rows * D * sizeof *x), *lp = malloc(C * sizeof *lp);
    int32_t *lab = malloc(tune->n * sizeof *lab);
    int64_t *off = malloc((tune->n + 1) * sizeof *off);
    memcpy(x, tune->mem, rows * D * sizeof *x);
    model_logits(&m, x, (int)rows, base);
    for (uint64_t i = 0; i <= tune->n; i++)
        off[i] = (int64_t)i;
    for (uint64_t i = 0; i < tune->n; i++)
        lab[i] = tune->labels[tune->label_off[i]];
    method_log_prior(counts, C, lp);
    double acc[POSTHOC_GRID];
    int g = posthoc_grid(POSTHOC_LA, base, (int64_t)tune->n, V, C, lab, off, NULL, lp, acc);
    *tau = 0.1 * g;
    posthoc_apply(&m, POSTHOC_LA, *tau, err);
    double a = few_acc(&m, test, counts);
    model_free(&m);
    free(base);
    free(x);
    free(lp);
    free(lab);
    free(off);
    return a;
}

int main(void)
{
    char dir[] = "/tmp/lmr_mlearn_XXXXXX";
    if (!mkdtemp(dir))
        return 1;
    char p_ce[300], p[300];
    snprintf(p_ce, sizeof p_ce, "%s/ce.safetensors", dir);
    double gain[N_M][N_SEEDS];
    TEST(1, "ce, then every method, on long-tailed clusters, several seeds");
    for (int s = 0; s < N_SEEDS; s++) {
        SynthSpec spec = {.C = 20, .D = 64, .views = 2, .T = 3, .n_max = 200, .imb = 100, .sep = 4, .noise = 6,
                          .frame_noise = 0.3, .seed = 1 + (uint64_t)s, .sample_seed = 100 + (uint64_t)s};
        Synth ytr, yte, ytu;
        synth_make(&spec, &ytr);
        SynthSpec tspec = spec;
        tspec.fixed_per_class = 50;
        tspec.sample_seed = 200 + (uint64_t)s;
        synth_make(&tspec, &yte);
        tspec.fixed_per_class = 20;
        tspec.sample_seed = 300 + (uint64_t)s;
        synth_make(&tspec, &ytu);
        float *mtr = synth_means(&spec, &ytr), *mte = synth_means(&tspec, &yte), *mtu = synth_means(&tspec, &ytu);
        Dataset tr, te, tu;
        char err[LMR_ERRLEN];
        CHECK_RC(dataset_from_memory(&tr, mtr, ytr.n, 2, spec.D, ytr.labels, NULL, spec.C, err), 0);
        CHECK_RC(dataset_from_memory(&te, mte, yte.n, 2, spec.D, yte.labels, NULL, spec.C, err), 0);
        CHECK_RC(dataset_from_memory(&tu, mtu, ytu.n, 2, spec.D, ytu.labels, NULL, spec.C, err), 0);
        CHECK_RC(train(NULL, STAGE_INIT, NULL, p_ce, (uint64_t)s, &tr), 0);
        double ce = few_of(p_ce, &te, tr.counts);
        printf("  seed %d: few-shot acc ce %.3f", s, ce);
        for (int k = 0; k < N_M; k++) {
            double a;
            if (k == M_LA_POSTHOC) {
                double tau = -1;
                a = la_posthoc_few(p_ce, &tu, &te, tr.counts, &tau);
                printf(", %s %.3f (t %.1f)", names[k], a, tau);
            } else {
                snprintf(p, sizeof p, "%s/%s.safetensors", dir, names[k]);
                int stage2 = k == M_CRT || k == M_LMR;
                CHECK_RC(train(names[k], stage2 ? STAGE_LMR : STAGE_INIT, stage2 ? p_ce : NULL, p, (uint64_t)s, &tr), 0);
                a = few_of(p, &te, tr.counts);
                printf(", %s %.3f", names[k], a);
            }
            gain[k][s] = a - ce;
        }
        printf("\n");
        dataset_close(&tr);
        dataset_close(&te);
        dataset_close(&tu);
        free(mtr);
        free(mte);
        free(mtu);
        synth_free(&ytr);
        synth_free(&yte);
        synth_free(&ytu);
    }
    TEST(2, "each method beats ce on few-shot accuracy: mean gain > max(0.02, 2 standard errors)");
    for (int k = 0; k < N_M; k++) {
        double m = 0, v = 0;
        for (int s = 0; s < N_SEEDS; s++)
            m += gain[k][s] / N_SEEDS;
        for (int s = 0; s < N_SEEDS; s++)
            v += (gain[k][s] - m) * (gain[k][s] - m);
        double sd = sqrt(v / (N_SEEDS - 1)), margin = fmax(0.02, 2 * sd / sqrt((double)N_SEEDS));
        printf("  %-18s mean gain %+.3f, sd %.3f, margin %.3f\n", names[k], m, sd, margin);
        CHECK(m > margin);
    }
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        return 1;
    CHECK_DONE();
}
