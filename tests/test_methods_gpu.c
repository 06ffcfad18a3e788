/* Every method on the CUDA backend against the CPU: a few steps from the same seed give the same
 * parameters within float tolerance (the GPU runs the methods' losses and the cosine classifier
 * through host code, the rest on its kernels). Skipped (77) without a CUDA device. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "model.h"
#include "train_synth.h"
#include "trainer.h"

static int train_on(BackendKind dev, const char *method, TrainStage stage, const char *init, const char *out,
                    Dataset *tr)
{
    TrainOptions o;
    train_options_default(&o);
    o.stage = stage;
    o.method = method;
    o.init = init;
    o.out = out;
    o.epochs = 2;
    o.batch = 16;
    o.hidden = 8;
    o.lr = 1e-2;
    o.seed = 5;
    o.threads = 1;
    o.progress_every = 0;
    o.device = dev;
    TrainResult res;
    char err[LMR_ERRLEN] = "";
    int rc = train_run(&o, tr, NULL, &res, err);
    if (rc < 0)
        fprintf(stderr, "%s (%s): %s\n", method, dev == BACKEND_CUDA ? "cuda" : "cpu", err);
    return rc;
}

int main(void)
{
    if (!backend_available(BACKEND_CUDA)) {
        printf("skipped: no CUDA device (or not built with CUDA)\n");
        return 77;
    }
    char dir[] = "/tmp/lmr_methods_gpu_XXXXXX", err[LMR_ERRLEN];
    if (!mkdtemp(dir))
        return 1;
    SynthSpec spec = {.C = 6, .D = 10, .views = 1, .T = 1, .n_max = 60, .imb = 20, .sep = 4, .noise = 2,
                      .frame_noise = 0.1, .seed = 3, .sample_seed = 4};
    Synth y;
    synth_make(&spec, &y);
    float *mx = synth_means(&spec, &y);
    Dataset tr;
    CHECK_RC(dataset_from_memory(&tr, mx, y.n, 1, spec.D, y.labels, NULL, spec.C, err), 0);
    char init[300], a[300], b[300];
    snprintf(init, sizeof init, "%s/init.safetensors", dir);
    CHECK_RC(train_on(BACKEND_CPU, "ce", STAGE_INIT, NULL, init, &tr), 0);
    const char *ms[] = {"la", "cb", "focal", "ldam-drw", "eql", "srs", "cbs", "mixup", "lmr", "crt", "lws",
                        "lmr-mix-only", "lmr-recon-only"};
    TEST(1, "each method, cpu vs cuda, same seed: parameters within float tolerance");
    for (size_t k = 0; k < sizeof ms / sizeof *ms; k++) {
        int s2 = k >= 8;
        snprintf(a, sizeof a, "%s/%s-cpu.safetensors", dir, ms[k]);
        snprintf(b, sizeof b, "%s/%s-cuda.safetensors", dir, ms[k]);
        CHECK_RC(train_on(BACKEND_CPU, ms[k], s2 ? STAGE_LMR : STAGE_INIT, s2 ? init : NULL, a, &tr), 0);
        CHECK_RC(train_on(BACKEND_CUDA, ms[k], s2 ? STAGE_LMR : STAGE_INIT, s2 ? init : NULL, b, &tr), 0);
        Model ma, mb;
        if (model_load(&ma, a, err) < 0 || model_load(&mb, b, err) < 0) {
            fprintf(stderr, "%s\n", err);
            CHECK(0);
            continue;
        }
        double worst = 0;
        for (size_t i = 0; i < ma.n_params; i++)
            worst = fmax(worst, fabs(ma.params[i] - mb.params[i]) / (1e-3 + fabs(ma.params[i])));
        printf("  %s: max relative difference %.2g\n", ms[k], worst);
        CHECK(worst < 2e-2 && ma.head_scale == mb.head_scale);
        model_free(&ma);
        model_free(&mb);
    }
    dataset_close(&tr);
    free(mx);
    synth_free(&y);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    CHECK(system(cmd) == 0);
    CHECK_DONE();
}
