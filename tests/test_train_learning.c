/* Learning: on synthetic long-tailed Gaussian clusters (imbalance 100, ten classes with <= 20
 * clips) the init stage reaches a clear accuracy, and the LMR stage then raises few-shot and
 * average class accuracy on held-out data over init and over --lmr-off (cRT). The margin is
 * derived from the spread of the differences over several seeds. Runs in-process on
 * in-memory datasets (the shard path is covered by test_train_cli). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "model.h"
#include "train_synth.h"
#include "trainer.h"

#define N_SEEDS 3

typedef struct {
    double avg, few;
} Acc;

static Acc evaluate(const char *ckpt, Dataset *test, const int64_t *train_counts)
{
    Model m;
    char err[LMR_ERRLEN];
    ValMetrics vm = {-1, -1, -1, -1, -1};
    Acc a = {-1, -1};
    if (model_load(&m, ckpt, err) < 0) {
        fprintf(stderr, "model_load: %s\n", err);
        return a;
    }
    if (train_validate(&m, test, train_counts, &vm, err) < 0)
        fprintf(stderr, "validate: %s\n", err);
    model_free(&m);
    a.avg = vm.avg_class_acc;
    a.few = vm.few_acc;
    return a;
}

static int run(TrainStage stage, int lmr_off, const char *out, const char *init, uint64_t seed, Dataset *tr)
{
    TrainOptions o;
    train_options_default(&o);
    o.stage = stage;
    o.lmr_off = lmr_off;
    o.out = out;
    o.init = init;
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

static void mean_sd(const double *x, int n, double *mean, double *sd)
{
    double m = 0, v = 0;
    for (int i = 0; i < n; i++)
        m += x[i];
    m /= n;
    for (int i = 0; i < n; i++)
        v += (x[i] - m) * (x[i] - m);
    *mean = m;
    *sd = n > 1 ? sqrt(v / (n - 1)) : 0;
}

int main(void)
{
    char dir[] = "/tmp/lmr_learn_XXXXXX";
    if (!mkdtemp(dir))
        return 1;
    char p_init[256], p_lmr[256], p_crt[256];
    snprintf(p_init, sizeof p_init, "%s/init.safetensors", dir);
    snprintf(p_lmr, sizeof p_lmr, "%s/lmr.safetensors", dir);
    snprintf(p_crt, sizeof p_crt, "%s/crt.safetensors", dir);
    double d_avg_crt[N_SEEDS], d_few_crt[N_SEEDS], d_avg_init[N_SEEDS], d_few_init[N_SEEDS], init_avg[N_SEEDS];
    TEST(1, "init, lmr and --lmr-off on long-tailed clusters, several seeds");
    for (int s = 0; s < N_SEEDS; s++) {
        SynthSpec spec = {.C = 20, .D = 64, .views = 2, .T = 3, .n_max = 200, .imb = 100, .sep = 4, .noise = 6,
                          .frame_noise = 0.3, .seed = 1 + (uint64_t)s, .sample_seed = 100 + (uint64_t)s};
        Synth ytr, yte;
        synth_make(&spec, &ytr);
        SynthSpec tspec = spec;
        tspec.fixed_per_class = 50;
        tspec.sample_seed = 200 + (uint64_t)s;
        synth_make(&tspec, &yte);
        float *mtr = synth_means(&spec, &ytr), *mte = synth_means(&tspec, &yte);
        Dataset tr, te;
        char err[LMR_ERRLEN];
        CHECK_RC(dataset_from_memory(&tr, mtr, ytr.n, 2, spec.D, ytr.labels, NULL, spec.C, err), 0);
        CHECK_RC(dataset_from_memory(&te, mte, yte.n, 2, spec.D, yte.labels, NULL, spec.C, err), 0);
        int n_few = 0;
        for (int c = 0; c < spec.C; c++)
            n_few += tr.counts[c] <= 20;
        CHECK(n_few >= 5 && tr.counts[0] >= 100 * tr.counts[spec.C - 1]);
        CHECK_RC(run(STAGE_INIT, 0, p_init, NULL, (uint64_t)s, &tr), 0);
        CHECK_RC(run(STAGE_LMR, 0, p_lmr, p_init, (uint64_t)s, &tr), 0);
        CHECK_RC(run(STAGE_LMR, 1, p_crt, p_init, (uint64_t)s, &tr), 0);
        Acc ai = evaluate(p_init, &te, tr.counts), al = evaluate(p_lmr, &te, tr.counts),
            ac = evaluate(p_crt, &te, tr.counts);
        printf("  seed %d: avg/few init %.3f/%.3f  lmr %.3f/%.3f  crt %.3f/%.3f\n", s, ai.avg, ai.few, al.avg, al.few,
               ac.avg, ac.few);
        init_avg[s] = ai.avg;
        d_avg_init[s] = al.avg - ai.avg;
        d_few_init[s] = al.few - ai.few;
        d_avg_crt[s] = al.avg - ac.avg;
        d_few_crt[s] = al.few - ac.few;
        dataset_close(&tr);
        dataset_close(&te);
        free(mtr);
        free(mte);
        synth_free(&ytr);
        synth_free(&yte);
    }
    TEST(2, "init is clearly above chance (0.05): avg class acc >= 0.5 on every seed");
    for (int s = 0; s < N_SEEDS; s++)
        CHECK(init_avg[s] >= 0.5);
    TEST(3, "lmr beats init and cRT on avg and few-shot: mean gain > max(0.01, 2 standard errors)");
    const char *names[4] = {"avg vs init", "few vs init", "avg vs cRT", "few vs cRT"};
    double *diffs[4] = {d_avg_init, d_few_init, d_avg_crt, d_few_crt};
    for (int k = 0; k < 4; k++) {
        double m, sd;
        mean_sd(diffs[k], N_SEEDS, &m, &sd);
        double margin = fmax(0.01, 2 * sd / sqrt((double)N_SEEDS));
        printf("  %s: mean gain %.3f, sd %.3f, margin %.3f\n", names[k], m, sd, margin);
        CHECK(m > margin);
    }
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        return 1;
    CHECK_DONE();
}
