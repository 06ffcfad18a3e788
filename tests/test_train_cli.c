/* lmr-train end to end from LMDB shards: both stages with --val and --log, determinism (same
 * seed and threads give the same checkpoint bytes, with or without the loader thread and with
 * --preload), --resume after an interruption (mid-epoch
 * and at an epoch end) ending bit-identical to an uninterrupted run, NaN stopping with the last
 * good checkpoint kept, and the bad inputs that must fail before training. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "backend.h"
#include "check.h"
#include "model.h"
#include "train_synth.h"

#include "train_cli.h"

static int train(const char *args) { return train_cli_run("--quiet", args); }

static void make_shard(const char *name, int D, int per_class, uint64_t sample_seed)
{
    SynthSpec s = {.C = 8, .D = D, .views = 2, .T = 3, .n_max = 80, .imb = 40, .sep = 4, .noise = 2,
                   .frame_noise = 0.3, .seed = 5, .sample_seed = sample_seed, .fixed_per_class = per_class};
    Synth y;
    synth_make(&s, &y);
    char p[256];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    CHECK_RC(synth_write_shard(&s, &y, p, 1), 0);
    synth_free(&y);
}

int main(void)
{
    const char *b = getenv("LMR_BIN");
    // absolute: the runs cd into the temp dir
    if (!realpath(b ? b : "build/bin", bin))
        snprintf(bin, sizeof bin, "%s", b ? b : "build/bin");
    strcpy(dir, "/tmp/lmr_cli_XXXXXX");
    if (!mkdtemp(dir))
        return 1;
    make_shard("train.lmdb", 16, 0, 1);
    make_shard("val.lmdb", 16, 10, 2);
    make_shard("other.lmdb", 12, 10, 3);
    const char *common = "--train train.lmdb --batch 16 --hidden 32 --seed 3";

    TEST(1, "init and lmr from shards with --val and --log; best checkpoint kept; --hidden 0; presets, schedules");
    char a[1024];
    snprintf(a, sizeof a, "--stage init %s --val val.lmdb --epochs 4 --out init.safetensors --log init.jsonl", common);
    CHECK(train(a) == 0);
    char *log = slurp("init.jsonl", NULL);
    int lines = 0;
    for (char *p = log; p && *p; p++)
        lines += *p == '\n';
    CHECK(lines == 4 && log && strstr(log, "\"avg_class_acc\""));
    free(log);
    struct stat sb;
    char p[256];
    snprintf(p, sizeof p, "%s/init.best.safetensors", dir);
    CHECK(stat(p, &sb) == 0);
    snprintf(a, sizeof a, "--stage lmr %s --val val.lmdb --epochs 3 --init init.safetensors --out lmr.safetensors",
             common);
    CHECK(train(a) == 0);
    snprintf(a, sizeof a, "--stage lmr --lmr-off %s --epochs 2 --init init.safetensors --out crt.safetensors", common);
    CHECK(train(a) == 0);

    snprintf(a, sizeof a, "--stage init --train train.lmdb --batch 16 --hidden 0 --epochs 2 --out h0.safetensors");
    CHECK(train(a) == 0);
    snprintf(a, sizeof a, "--stage lmr --train train.lmdb --batch 16 --epochs 2 --init h0.safetensors --out h0l.safetensors");
    CHECK(train(a) == 0);
    snprintf(a, sizeof a, "--stage lmr --train train.lmdb --batch 16 --preset epic100-verbs --schedule step "
             "--milestones 1 --warmup 1 --clip 1 --epochs 2 --init h0.safetensors --out h0e.safetensors");
    CHECK(train(a) == 0);

    TEST(2, "determinism: the same run twice, with no loader thread, or preloaded gives the same checkpoint bytes");
    snprintf(a, sizeof a, "--stage init %s --val val.lmdb --epochs 4 --out init2.safetensors", common);
    CHECK(train(a) == 0);
    CHECK(same_file("init.safetensors", "init2.safetensors"));
    snprintf(a, sizeof a, "--stage lmr %s --val val.lmdb --epochs 3 --init init.safetensors --out lmr2.safetensors",
             common);
    CHECK(train(a) == 0);
    CHECK(same_file("lmr.safetensors", "lmr2.safetensors"));
    // batches made on the training thread (no loader thread), from shards or preloaded: same bytes
    snprintf(a, sizeof a, "--stage lmr %s --val val.lmdb --epochs 3 --init init.safetensors --prefetch 0 "
             "--out lmr3.safetensors", common);
    CHECK(train(a) == 0);
    CHECK(same_file("lmr.safetensors", "lmr3.safetensors"));
    snprintf(a, sizeof a, "--stage lmr %s --val val.lmdb --epochs 3 --init init.safetensors --preload "
             "--out lmr4.safetensors", common);
    CHECK(train(a) == 0);
    CHECK(same_file("lmr.safetensors", "lmr4.safetensors"));

    TEST(3, "--resume after a mid-epoch stop and after an epoch-end stop ends bit-identical");
    // 192 clips / 16 = 12 steps per epoch: stop at step 5 (mid-epoch 1), then at 24 (end of epoch 2)
    snprintf(a, sizeof a, "--stage lmr %s --epochs 3 --init init.safetensors --out r.safetensors --stop-after 5",
             common);
    CHECK(train(a) == 0);
    CHECK(!same_file("lmr.safetensors", "r.safetensors"));
    snprintf(a, sizeof a,
             "--stage lmr %s --epochs 3 --init init.safetensors --out r.safetensors --resume --stop-after 19", common);
    CHECK(train(a) == 0);
    snprintf(a, sizeof a, "--stage lmr %s --epochs 3 --init init.safetensors --out r.safetensors --resume", common);
    CHECK(train(a) == 0);
    snprintf(a, sizeof a, "--stage lmr %s --epochs 3 --init init.safetensors --out u.safetensors", common);
    CHECK(train(a) == 0);
    CHECK(same_file("u.safetensors", "r.safetensors"));
    snprintf(a, sizeof a, "--stage lmr %s --epochs 3 --init init.safetensors --out r.safetensors --resume", common);
    CHECK(train(a) == 0 && output_has("already complete"));
    snprintf(a, sizeof a, "--stage init %s --epochs 4 --out ri.safetensors --stop-after 7", common);
    CHECK(train(a) == 0);
    snprintf(a, sizeof a, "--stage init %s --epochs 4 --out ri.safetensors --resume", common);
    CHECK(train(a) == 0);
    snprintf(a, sizeof a, "--stage init %s --epochs 4 --out ui.safetensors", common);
    CHECK(train(a) == 0);
    CHECK(same_file("ui.safetensors", "ri.safetensors"));
    snprintf(a, sizeof a, "--stage init %s --epochs 5 --out ri.safetensors --resume", common);
    CHECK(train(a) == 1 && output_has("another run"));

    TEST(4, "NaN stops the run and keeps the last good checkpoint");
    snprintf(a, sizeof a, "--stage init %s --epochs 3 --out nan.safetensors --stop-after 12", common);
    CHECK(train(a) == 0);
    size_t lb = 0, la = 1;
    char *before = slurp("nan.safetensors", &lb);
    snprintf(a, sizeof a, "--stage init %s --epochs 3 --out nan.safetensors --lr 1e38", common);
    CHECK(train(a) == 1 && output_has("loss is") && output_has("keeps the last good checkpoint"));
    char *after = slurp("nan.safetensors", &la);
    CHECK(before && after && la == lb && memcmp(before, after, la) == 0);
    free(before);
    free(after);

    TEST(5, "bad inputs fail before training with a clear message");
    snprintf(a, sizeof a, "--stage init %s --val other.lmdb --epochs 1 --out bad.safetensors", common);
    CHECK(train(a) == 1 && output_has("dims"));
    CHECK(train("--stage init --train train.lmdb other.lmdb --out bad.safetensors") == 1);
    snprintf(a, sizeof a, "--stage init %s --classes 5 --out bad.safetensors", common);
    CHECK(train(a) == 1 && output_has("outside the 5 classes"));
    snprintf(a, sizeof a, "--stage lmr %s --init missing.safetensors --out bad.safetensors", common);
    CHECK(train(a) == 1 && output_has("missing.safetensors"));
    snprintf(a, sizeof a, "--stage lmr --train train.lmdb --hidden 16 --init init.safetensors --out bad.safetensors");
    CHECK(train(a) == 1 && output_has("hidden 32"));
    snprintf(a, sizeof a, "--stage lmr %s --init init.safetensors --out bad.safetensors --lmr-d 0.1", common);
    CHECK(train(a) == 1 && output_has("not monotone") && output_has("--lmr-d"));
    snprintf(a, sizeof a, "--stage lmr %s --init init.safetensors --out bad.safetensors --lmr-d 0.1 --epochs 1 "
             "--lmr-allow-nonmonotone", common);
    CHECK(train(a) == 0);
    snprintf(a, sizeof a, "--stage lmr %s --epochs 1 --init init.safetensors --out bad.safetensors --classes 9", common);
    CHECK(train(a) == 1 && output_has("classes"));
    snprintf(a, sizeof a, "--stage init %s --epochs 1 --classes 9 --out empty.safetensors", common);
    CHECK(train(a) == 0 && output_has("class 8 has no training clips"));
    // --device cuda trains where there is a device and fails clearly where there is none
    snprintf(a, sizeof a, "--stage init %s --epochs 1 --device cuda --out cuda.safetensors", common);
    if (backend_available(BACKEND_CUDA)) {
        CHECK(train(a) == 0);
        Model mc, mi;
        char merr[LMR_ERRLEN], pc[256], pi[256];
        snprintf(pc, sizeof pc, "%s/cuda.safetensors", dir);
        snprintf(pi, sizeof pi, "%s/init.safetensors", dir);
        int lc = model_load(&mc, pc, merr), li = model_load(&mi, pi, merr);
        CHECK(lc == 0 && li == 0);
        if (lc == 0 && li == 0) {
            CHECK(mc.n_params == mi.n_params);
            int finite = 1;
            for (size_t i = 0; i < mc.n_params; i++)
                finite &= isfinite(mc.params[i]) != 0;
            CHECK(finite);
        }
        if (lc == 0)
            model_free(&mc);
        if (li == 0)
            model_free(&mi);
    } else {
        CHECK(train(a) == 1 && output_has("--device cuda: n"));
    }
    CHECK(train("--stage init --train nothere.lmdb --out bad.safetensors") == 1);
    CHECK(train("--stage init --out x") == 2);
    CHECK(train("--stage init --train train.lmdb --out x --bogus") == 2);
    CHECK(train("--stage init --train train.lmdb --out x --epochs abc") == 2);
    CHECK(train("--help") == 0 && output_has("--stage"));
    CHECK(train("--version") == 0 && output_has(LMR_VERSION));
    snprintf(p, sizeof p, "%s/bad.safetensors", dir);

    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (!check_failures && system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    CHECK_DONE();
}
