/* lmr-train's data path: feature means over a T that varies per clip, from LMDB and HDF5 shards,
 * f32 and f16, equal to the means computed directly; --preload gives the same features; and
 * multi-label sets (VideoLT-style) train through both stages with softmax and with --loss bce. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "model.h"
#include "sampler.h"
#include "train_synth.h"
#include "trainer.h"

static char dir[64];

static void check_shard(const char *name, int f16, int hdf5)
{
    SynthSpec s = {.C = 5, .D = 10, .views = 2, .T = 4, .n_max = 12, .imb = 4, .sep = 4, .noise = 1,
                   .frame_noise = 0.5, .seed = 1, .sample_seed = 2, .vary_T = 1};
    Synth y;
    synth_make(&s, &y);
    float *want = synth_means(&s, &y);
    char p[256], err[LMR_ERRLEN] = "";
    snprintf(p, sizeof p, "%s/%s", dir, name);
    CHECK_RC(synth_write_shard_as(&s, &y, p, f16, hdf5), 0);
    Dataset d;
    const char *paths[1] = {p};
    int rc = dataset_open(&d, paths, 1, 0, err);
    CHECK_RC(rc, 0);
    if (rc < 0) {
        fprintf(stderr, "%s\n", err);
        free(want);
        synth_free(&y);
        return;
    }
    CHECK(d.n == y.n && d.D == 10 && d.views == 2 && d.C == 5 && d.max_labels == 1);
    for (int c = 0; c < 5; c++)
        CHECK(d.counts[c] == y.counts[c]);
    DatasetReader r;
    CHECK_RC(dataset_reader_init(&r), 0);
    float got[10];
    double maxdiff = 0;
    for (uint64_t i = 0; i < d.n; i++)
        for (int v = 0; v < 2; v++) {
            CHECK_RC(dataset_read(&d, &r, i, v, got, err), 0);
            for (int k = 0; k < 10; k++)
                maxdiff = fmax(maxdiff, fabs(got[k] - want[(i * 2 + (uint64_t)v) * 10 + (uint64_t)k]));
        }
    printf("  %s: %llu clips, T from 1 to 4, max |mean - reference| %.3g\n", name, (unsigned long long)d.n, maxdiff);
    if (f16) { // bit-exact against the scalar conversion, summed in the same order (F16C or not)
        int exact = 1;
        for (uint64_t i = 0; i < d.n; i++) {
            int T = synth_T(&s, i);
            float acc[10] = {0}, row[10];
            uint16_t h[10];
            for (int t = 0; t < T; t++) {
                lmr_f32_to_f16(y.x + ((i * 2 + 1) * 4 + (uint64_t)t) * 10, h, 10);
                lmr_f16_to_f32(h, row, 10);
                for (int k = 0; k < 10; k++)
                    acc[k] += row[k];
            }
            float inv = 1.0f / (float)T;
            CHECK_RC(dataset_read(&d, &r, i, 1, got, err), 0);
            for (int k = 0; k < 10; k++)
                exact &= got[k] == acc[k] * inv;
        }
        CHECK(exact);
    }
    CHECK(maxdiff < (f16 ? 5e-3 : 1e-5));
    // the cache of means: the same bits; once a clip is in it, reading it does not touch the shards
    // (the set is taken away to prove it); a cache for half the clips serves those and reads the rest
    uint64_t per = (uint64_t)d.views * (uint64_t)d.D * 4 + 1;
    for (int pass = 0; pass < 2; pass++) {
        CHECK_RC(dataset_cache(&d, 1, err), 0);
        if (pass) { /* shrink to half the clips (the cache counts MiB; set the count directly) */
            d.cache_n = d.n / 2;
        }
        CHECK(d.cache_n == (pass ? d.n / 2 : d.n) && per * d.cache_n <= (1u << 20));
        float a[10], b[10];
        for (uint64_t i = 0; i < d.n; i++)
            for (int v = 0; v < 2; v++) {
                CHECK_RC(dataset_read(&d, &r, i, v, a, err), 0);
                CHECK_RC(dataset_read(&d, &r, i, v, b, err), 0);
                CHECK(memcmp(a, b, sizeof a) == 0);
            }
        ShardSet *keep = d.set;
        d.set = NULL;
        for (uint64_t i = 0; i < d.cache_n; i++) {
            float c[10];
            CHECK_RC(dataset_read(&d, &r, i, 1, c, err), 0);
            CHECK(c[0] == c[0]);
        }
        d.set = keep;
        for (uint64_t i = 0; i < d.n; i++) { /* against a read without the cache */
            float c[10], e[10];
            CHECK_RC(dataset_read(&d, &r, i, 0, c, err), 0);
            uint64_t cn = d.cache_n;
            d.cache_n = 0;
            CHECK_RC(dataset_read(&d, &r, i, 0, e, err), 0);
            d.cache_n = cn;
            CHECK(memcmp(c, e, sizeof c) == 0);
        }
    }
    CHECK_RC(dataset_cache(&d, 0, err), 0);
    CHECK(d.cache == NULL && d.cache_n == 0);
    // preloaded features are the same numbers
    float first[10];
    CHECK_RC(dataset_read(&d, &r, d.n - 1, 1, first, err), 0);
    CHECK_RC(dataset_preload(&d, err), 0);
    CHECK(d.mem != NULL);
    CHECK_RC(dataset_read(&d, &r, d.n - 1, 1, got, err), 0);
    CHECK(memcmp(first, got, sizeof got) == 0);
    dataset_reader_free(&r);
    dataset_close(&d);
    free(want);
    synth_free(&y);
}

/* Three well separated clusters; clips of mixed clusters carry both labels. */
static void multi_label(void)
{
    enum { N = 300, D = 8, C = 3 };
    float *x = malloc(N * D * sizeof *x);
    int32_t labels[N * 2];
    uint64_t off[N + 1];
    unsigned st = 7;
    int o = 0;
    for (int i = 0; i < N; i++) {
        off[i] = (uint64_t)o;
        int c = i % 5 == 4 ? 2 : i % 2; // class 2 is rarer
        labels[o++] = c;
        if (i % 7 == 0)
            labels[o++] = (c + 1) % C;
        for (int k = 0; k < D; k++) {
            st = st * 1664525u + 1013904223u;
            x[i * D + k] = (k == c ? 3.0f : 0.0f) + ((float)(st >> 8) / 16777216.0f - 0.5f);
        }
    }
    off[N] = (uint64_t)o;
    Dataset d;
    char err[LMR_ERRLEN] = "";
    CHECK_RC(dataset_from_memory(&d, x, N, 1, D, labels, off, C, err), 0);
    CHECK(d.max_labels == 2);
    Sampler s;
    CHECK_RC(sampler_init(&s, SAMPLER_CLASS, &d, 16, 1), 0);
    CHECK(s.cls_off[C] == (uint64_t)o); // every label puts its clip in that class's list
    sampler_free(&s);
    char p_init[256], p_lmr[256];
    snprintf(p_init, sizeof p_init, "%s/ml_init.safetensors", dir);
    snprintf(p_lmr, sizeof p_lmr, "%s/ml_lmr.safetensors", dir);
    for (int bce = 0; bce < 2; bce++) {
        TrainOptions opt;
        train_options_default(&opt);
        opt.out = p_init;
        opt.epochs = 10;
        opt.lr = 3e-3;
        opt.batch = 16;
        opt.hidden = 16;
        opt.threads = 1;
        opt.loss_bce = bce;
        opt.progress_every = 0;
        TrainResult res;
        CHECK_RC(train_run(&opt, &d, NULL, &res, err), 0);
        CHECK(isfinite(res.final_loss) && res.steps == 10 * (N / 16));
        opt.stage = STAGE_LMR;
        opt.init = p_init;
        opt.out = p_lmr;
        opt.lmr.omega = 70; // class 2 (60 clips + extra labels) counts as few-shot here
        CHECK_RC(train_run(&opt, &d, NULL, &res, err), 0);
        CHECK(isfinite(res.final_loss));
        Model m;
        ValMetrics vm;
        CHECK_RC(model_load(&m, p_lmr, err), 0);
        CHECK(strcmp(m.loss, bce ? "bce" : "softmax") == 0);
        CHECK_RC(train_validate(&m, &d, d.counts, &vm, err), 0);
        printf("  multi-label, %s: train top-1 %.3f, avg class acc %.3f\n", bce ? "bce" : "softmax", vm.top1,
               vm.avg_class_acc);
        CHECK(vm.top1 > 0.9);
        model_free(&m);
    }
    dataset_close(&d);
    free(x);
}

int main(void)
{
    strcpy(dir, "/tmp/lmr_tdata_XXXXXX");
    if (!mkdtemp(dir))
        return 1;
    TEST(1, "means over a varying T: LMDB f32, LMDB f16, HDF5 f32; --preload and the cache of means give the same");
    check_shard("f32.lmdb", 0, 0);
    check_shard("f16.lmdb", 1, 0);
    check_shard("f32.h5", 0, 1);
    TEST(2, "multi-label: class lists hold every label; init + lmr train with softmax and bce");
    multi_label();
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        return 1;
    CHECK_DONE();
}
