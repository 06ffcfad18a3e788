/* The CUDA backend against the cpu reference: every op of backend.h on the same inputs (masked
 * LMR rows, mixing partners shared by several rows, tanh and no affine included), then whole
 * training steps of both stages (LMR on) from the same state on each device; uploads staged while
 * queued ops still read their destination; the block of usable bank keys kept on the device
 * against the one kept on the host. Exits 77 (skipped) only when lmr was built without CUDA or no
 * device is present; a device that fails is a failure. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend.h"
#include "check.h"
#include "dataset.h"
#include "lmr.h"
#include "model.h"
#include "rng.h"
#include "trainer.h"

#define ATOL 2e-5
#define RTOL 2e-4

typedef struct {
    BackendCtx *cpu, *gpu;
    Rng rng;
    void *dev[128];
    int n_dev;
} Env;

static float *rnd(Env *e, size_t n, float scale)
{
    float *h = malloc(n * sizeof *h);
    for (size_t i = 0; i < n; i++)
        h[i] = (2.0f * rng_uniform(&e->rng) - 1.0f) * scale;
    return h;
}

/* A device copy of host bytes (NULL: zeroed), freed at the end. */
static void *up(Env *e, const void *h, size_t bytes)
{
    void *d = NULL;
    if (backend_alloc(e->gpu, &d, bytes) < 0 || (h && backend_upload(e->gpu, d, h, bytes) < 0)) {
        fprintf(stderr, "device alloc/upload of %zu bytes: %s\n", bytes, backend_last_error(e->gpu));
        exit(1);
    }
    e->dev[e->n_dev++] = d;
    return d;
}

static float *down(Env *e, const float *d, size_t n)
{
    float *h = malloc(n * sizeof *h);
    int rc = backend_download(e->gpu, h, d, n * sizeof *h);
    if (rc < 0)
        fprintf(stderr, "download: %s\n", backend_last_error(e->gpu));
    CHECK(rc == 0);
    return h;
}

/* got (device) vs want (host): print the worst entry and the first mismatches. */
static void same(Env *e, const char *what, const float *dev_got, const float *want, size_t n, double atol)
{
    float *got = down(e, dev_got, n);
    double worst = 0.0;
    int bad = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - want[i]);
        worst = d > worst ? d : worst;
        if (!(d <= atol + RTOL * fabs(want[i])) && bad++ < 3)
            fprintf(stderr, "%s[%zu]: gpu %.9g, cpu %.9g\n", what, i, got[i], want[i]);
    }
    printf("  %-22s max |gpu - cpu| %.3g%s\n", what, worst, bad ? "  MISMATCH" : "");
    CHECK(bad == 0);
    free(got);
}

static void test_ops(Env *e)
{
    BackendCtx *c = e->cpu, *g = e->gpu;
    int B = 37, D = 300, OC = 70, C = 1004, N = 3 * B, H = OC;
    TEST(1, "layer norm forward/backward (affine and LN0)");
    float *x = rnd(e, (size_t)B * D, 2.0f), *w = rnd(e, D, 1.0f), *bi = rnd(e, D, 0.5f), *dy = rnd(e, (size_t)B * D, 1.0f);
    float *out = calloc((size_t)B * D, 4), *mean = calloc(B, 4), *rstd = calloc(B, 4), *dx = calloc((size_t)B * D, 4);
    float *dw = calloc(D, 4), *db = calloc(D, 4);
    float *gx = up(e, x, (size_t)B * D * 4), *gw = up(e, w, D * 4), *gb = up(e, bi, D * 4), *gdy = up(e, dy, (size_t)B * D * 4);
    float *gout = up(e, out, (size_t)B * D * 4), *gmean = up(e, mean, B * 4), *grstd = up(e, rstd, B * 4);
    float *gdx = up(e, dx, (size_t)B * D * 4), *gdw = up(e, dw, D * 4), *gdb = up(e, db, D * 4);
    for (int affine = 1; affine >= 0; affine--) {
        layernorm_forward(c, out, mean, rstd, x, affine ? w : NULL, affine ? bi : NULL, B, D, 1e-6f);
        layernorm_forward(g, gout, gmean, grstd, gx, affine ? gw : NULL, affine ? gb : NULL, B, D, 1e-6f);
        same(e, affine ? "ln out" : "ln0 out", gout, out, (size_t)B * D, ATOL);
        same(e, "ln rstd", grstd, rstd, B, ATOL);
        layernorm_backward(c, dx, affine ? dw : NULL, affine ? db : NULL, dy, x, affine ? w : NULL, mean, rstd, B, D);
        layernorm_backward(g, gdx, affine ? gdw : NULL, affine ? gdb : NULL, gdy, gx, affine ? gw : NULL, gmean, grstd,
                           B, D);
        same(e, "ln dinp", gdx, dx, (size_t)B * D, ATOL);
        if (affine) {
            same(e, "ln dweight", gdw, dw, D, 1e-4);
            same(e, "ln dbias", gdb, db, D, 1e-4);
        }
    }

    TEST(2, "linear forward/backward, with and without tanh");
    float *W = rnd(e, (size_t)OC * D, 0.05f), *bo = rnd(e, OC, 0.1f), *y = calloc((size_t)B * OC, 4);
    float *dout = rnd(e, (size_t)B * OC, 1.0f), *dW = calloc((size_t)OC * D, 4), *dbo = calloc(OC, 4);
    float *gW = up(e, W, (size_t)OC * D * 4), *gbo = up(e, bo, OC * 4), *gy = up(e, y, (size_t)B * OC * 4);
    float *gdW = up(e, dW, (size_t)OC * D * 4), *gdbo = up(e, dbo, OC * 4);
    for (int act = ACT_NONE; act <= ACT_TANH; act++) {
        float *d1 = malloc((size_t)B * OC * 4);
        memcpy(d1, dout, (size_t)B * OC * 4);
        float *gd1 = up(e, dout, (size_t)B * OC * 4);
        linear_forward(c, y, x, W, bo, B, D, OC, (Activation)act);
        linear_forward(g, gy, gx, gW, gbo, B, D, OC, (Activation)act);
        same(e, act ? "linear+tanh out" : "linear out", gy, y, (size_t)B * OC, ATOL);
        linear_backward(c, dx, dW, dbo, d1, x, W, y, B, D, OC, (Activation)act);
        linear_backward(g, gdx, gdW, gdbo, gd1, gx, gW, gy, B, D, OC, (Activation)act);
        same(e, "linear dinp", gdx, dx, (size_t)B * D, 1e-4);
        same(e, "linear dweight", gdW, dW, (size_t)OC * D, 1e-4);
        same(e, "linear dbias", gdbo, dbo, OC, 1e-4);
        same(e, "linear dout (pre-act)", gd1, d1, (size_t)B * OC, ATOL);
        free(d1);
    }

    TEST(3, "cross-entropy hard (smoothed), soft, and BCE");
    float *z = rnd(e, (size_t)B * C, 6.0f), *t = calloc((size_t)B * C, 4), *tb = calloc((size_t)B * C, 4);
    int32_t *lab = malloc(B * 4);
    for (int i = 0; i < B; i++) {
        lab[i] = (int32_t)rng_below(&e->rng, (uint64_t)C);
        int other = (int)rng_below(&e->rng, (uint64_t)C);
        t[(size_t)i * C + lab[i]] += 0.7f; // soft targets: two classes mixed
        t[(size_t)i * C + other] += 0.3f;
        tb[(size_t)i * C + lab[i]] = 1.0f; // multi-hot for BCE
        tb[(size_t)i * C + other] = 1.0f;
    }
    float *loss = calloc(B, 4), *dz = calloc((size_t)B * C, 4);
    float *gz = up(e, z, (size_t)B * C * 4), *gt = up(e, t, (size_t)B * C * 4), *gtb = up(e, tb, (size_t)B * C * 4);
    int32_t *glab = up(e, lab, B * 4);
    float *gloss = up(e, loss, B * 4), *gdz = up(e, dz, (size_t)B * C * 4);
    ce_hard_forward_backward(c, loss, dz, z, lab, 0.2f, B, C);
    ce_hard_forward_backward(g, gloss, gdz, gz, glab, 0.2f, B, C);
    same(e, "ce hard loss", gloss, loss, B, 1e-4);
    same(e, "ce hard dlogits", gdz, dz, (size_t)B * C, 1e-6);
    ce_soft_forward_backward(c, loss, dz, z, t, B, C);
    ce_soft_forward_backward(g, gloss, gdz, gz, gt, B, C);
    same(e, "ce soft loss", gloss, loss, B, 1e-4);
    same(e, "ce soft dlogits", gdz, dz, (size_t)B * C, 1e-6);
    bce_forward_backward(c, loss, dz, z, tb, B, C);
    bce_forward_backward(g, gloss, gdz, gz, gtb, B, C);
    same(e, "bce loss", gloss, loss, B, 1e-4);
    same(e, "bce dlogits", gdz, dz, (size_t)B * C, 1e-8);

    TEST(4, "LMR forward/backward: self and few-shot masks, a row with every key masked");
    float *f = rnd(e, (size_t)B * H, 1.0f), *keys = rnd(e, (size_t)N * H, 1.0f), *cw = rnd(e, B, 0.5f);
    float *fn = calloc((size_t)B * H, 4), *kn = calloc((size_t)N * H, 4), *fm = calloc(B, 4), *frs = calloc(B, 4);
    float *km = calloc(N, 4), *krs = calloc(N, 4);
    uint8_t *ok = malloc(N);
    int32_t *self = malloc(B * 4);
    for (int j = 0; j < N; j++)
        ok[j] = j % 4 != 1;
    for (int i = 0; i < B; i++) {
        cw[i] += 0.5f;
        self[i] = B + i; // the current batch sits in the middle slot
    }
    // row 0 of a one-key bank: its only key is itself -> fully masked (checked with N = 1 below)
    layernorm_forward(c, fn, fm, frs, f, NULL, NULL, B, H, 1e-6f);
    layernorm_forward(c, kn, km, krs, keys, NULL, NULL, N, H, 1e-6f);
    float *R = calloc((size_t)B * H, 4), *wts = calloc((size_t)B * N, 4), *dR = rnd(e, (size_t)B * H, 1.0f);
    float *df = calloc((size_t)B * H, 4), *dwts = calloc((size_t)B * N, 4), *dr = calloc((size_t)B * H, 4);
    float *dfn = calloc((size_t)B * H, 4);
    float *gf = up(e, f, (size_t)B * H * 4), *gfn = up(e, fn, (size_t)B * H * 4), *gkeys = up(e, keys, (size_t)N * H * 4);
    float *gkn = up(e, kn, (size_t)N * H * 4), *gcw = up(e, cw, B * 4), *gfrs = up(e, frs, B * 4);
    uint8_t *gok = up(e, ok, N);
    int32_t *gself = up(e, self, B * 4);
    float *gR = up(e, R, (size_t)B * H * 4), *gwts = up(e, wts, (size_t)B * N * 4), *gdR = up(e, dR, (size_t)B * H * 4);
    float *gdf = up(e, df, (size_t)B * H * 4), *gdwts = up(e, dwts, (size_t)B * N * 4), *gdr = up(e, dr, (size_t)B * H * 4);
    float *gdfn = up(e, dfn, (size_t)B * H * 4);
    for (int pass = 0; pass < 2; pass++) {
        int n_keys = pass == 0 ? N : 1; // pass 1: one key, which row 0's self mask removes
        int32_t *s_h = self, *s_d = gself;
        int32_t zero_self[64];
        if (pass == 1) {
            for (int i = 0; i < B; i++)
                zero_self[i] = i == 0 ? 0 : -1;
            s_h = zero_self;
            s_d = up(e, zero_self, B * 4);
        }
        uint8_t ok1 = 1;
        const uint8_t *ok_h = pass ? &ok1 : ok, *ok_d = pass ? up(e, &ok1, 1) : gok;
        lmr_forward(c, R, wts, f, fn, keys, kn, ok_h, NULL, s_h, cw, B, n_keys, H);
        lmr_forward(g, gR, gwts, gf, gfn, gkeys, gkn, ok_d, NULL, s_d, gcw, B, n_keys, H);
        same(e, pass ? "lmr R (1 key)" : "lmr R", gR, R, (size_t)B * H, ATOL);
        same(e, "lmr weights", gwts, wts, (size_t)B * n_keys, 1e-6);
        lmr_backward(c, df, dR, wts, fn, frs, keys, kn, cw, dwts, dr, dfn, B, n_keys, H);
        lmr_backward(g, gdf, gdR, gwts, gfn, gfrs, gkeys, gkn, gcw, gdwts, gdr, gdfn, B, n_keys, H);
        same(e, "lmr df", gdf, df, (size_t)B * H, 1e-4);
    }

    TEST(5, "mixing forward/backward (partners shared by several rows)");
    int32_t *partner = malloc(B * 4);
    float *a = rnd(e, B, 0.5f), *X = calloc((size_t)B * H, 4), *dRm = calloc((size_t)B * H, 4);
    for (int i = 0; i < B; i++) {
        partner[i] = (int32_t)rng_below(&e->rng, 5); // few distinct partners: collisions
        a[i] += 0.5f;
    }
    int n_mix = B - 7;
    int32_t *gpartner = up(e, partner, B * 4);
    float *ga = up(e, a, B * 4), *gX = up(e, X, (size_t)B * H * 4), *gdRm = up(e, dRm, (size_t)B * H * 4);
    mix_forward(c, X, f, partner, a, n_mix, B, H);
    mix_forward(g, gX, gf, gpartner, ga, n_mix, B, H);
    same(e, "mix X", gX, X, (size_t)B * H, ATOL);
    mix_backward(c, dRm, dR, partner, a, n_mix, B, H);
    mix_backward(g, gdRm, gdR, gpartner, ga, n_mix, B, H);
    same(e, "mix dR", gdRm, dRm, (size_t)B * H, 1e-4);

    TEST(6, "sum of squares and AdamW");
    size_t n = 100003;
    float *p = rnd(e, n, 1.0f), *gr = rnd(e, n, 0.1f), *m = rnd(e, n, 0.01f), *v = rnd(e, n, 0.01f);
    for (size_t i = 0; i < n; i++)
        v[i] = fabsf(v[i]);
    float *gp = up(e, p, n * 4), *ggr = up(e, gr, n * 4), *gm = up(e, m, n * 4), *gv = up(e, v, n * 4);
    double s_c = backend_sumsq(c, gr, n), s_g = backend_sumsq(g, ggr, n);
    CHECK_CLOSE(s_g, s_c, 1e-9, 1e-9);
    adamw_update(c, p, gr, m, v, n, 1e-3f, 0.9f, 0.999f, 1e-8f, 0.05f, 7, 0.5f);
    adamw_update(g, gp, ggr, gm, gv, n, 1e-3f, 0.9f, 0.999f, 1e-8f, 0.05f, 7, 0.5f);
    same(e, "adamw params", gp, p, n, 1e-6);
    same(e, "adamw m", gm, m, n, 1e-8);
    same(e, "adamw v", gv, v, n, 1e-9);
    CHECK(backend_sync(g) == 0);

    float *frees[] = {x, w, bi, dy, out, mean, rstd, dx, dw, db, W, bo, y, dout, dW, dbo, z, t, tb, loss, dz, f, keys,
                      cw, fn, kn, fm, frs, km, krs, R, wts, dR, df, dwts, dr, dfn, a, X, dRm, p, gr, m, v};
    for (size_t i = 0; i < sizeof frees / sizeof *frees; i++)
        free(frees[i]);
    free(lab);
    free(ok);
    free(self);
    free(partner);
}

/* Large uploads go through pinned buffers on a second stream: each must wait for the ops queued
 * before it (which may read its destination) and come before the ops queued after it. */
static void test_uploads(Env *e)
{
    TEST(7, "staged uploads: ordered against the ops queued before and after them");
    BackendCtx *g = e->gpu;
    size_t n = (size_t)1 << 20; // 4 MiB: over the size that goes straight on the stream
    float *h = malloc(n * sizeof *h), *got = malloc(n * sizeof *got);
    float *x = up(e, NULL, n * 4), *y[4];
    for (int k = 0; k < 4; k++)
        y[k] = up(e, NULL, n * 4);
    for (int round = 0; round < 4; round++) { // several rounds: both staging buffers reused
        for (size_t i = 0; i < n; i++)
            h[i] = (float)round * 1000.0f + (float)(i % 997);
        CHECK(backend_upload(g, x, h, n * 4) == 0);
        for (size_t i = 0; i < n; i++)
            h[i] = -1.0f; // the caller may reuse its buffer at once
        backend_copy(g, y[round], x, n * 4); // reads x: the next upload must wait for it
    }
    for (int round = 0; round < 4; round++) {
        CHECK(backend_download(g, got, y[round], n * 4) == 0);
        int bad = 0;
        for (size_t i = 0; i < n; i++)
            bad += got[i] != (float)round * 1000.0f + (float)(i % 997);
        printf("  round %d: %d of %zu floats wrong\n", round, bad, n);
        CHECK(bad == 0);
    }
    free(h);
    free(got);
}

/* The block of usable keys (LmrKeys) kept on the device, pushed batch by batch through a ring that
 * wraps and shifts, against the same pushes on the host: same rows, same maps, same bytes. */
static void test_key_block(Env *e)
{
    TEST(8, "block of usable bank keys on the device: the host's, push by push, and after a rebuild");
    BackendCtx *c = e->cpu, *g = e->gpu;
    int K = 3, B = 40, H = 33, Nb = K * B;
    LmrBank bc, bg;
    LmrKeys kc, kg, again;
    CHECK(lmr_bank_init(&bc, c, K, B, H) == 0 && lmr_bank_init(&bg, g, K, B, H) == 0);
    CHECK(lmr_keys_init(&kc, c, K, B, H) == 0 && lmr_keys_init(&kg, g, K, B, H) == 0);
    CHECK(lmr_keys_init(&again, g, K, B, H) == 0);
    float *f = malloc((size_t)B * H * 4), *fn = malloc((size_t)B * H * 4);
    float *gf = up(e, NULL, (size_t)B * H * 4), *gfn = up(e, NULL, (size_t)B * H * 4);
    float *got = malloc((size_t)2 * Nb * H * 4);
    uint8_t ok[40];
    int32_t mc[120], mg[120], clip[40], gotc[240];
    int shifted = 0;
    for (int round = 0; round < 14; round++) {
        for (size_t i = 0; i < (size_t)B * H; i++) {
            f[i] = (2.0f * rng_uniform(&e->rng) - 1.0f);
            fn[i] = f[i] * 0.5f + (float)round;
        }
        for (int i = 0; i < B; i++) { // rounds 4-6 bring no usable key; the others a varying share
            ok[i] = (round < 4 || round > 6) && (i * 7 + round) % (2 + round % 3) != 0;
            clip[i] = round * 1000 + i * 3; // each key's clip rides along with it
        }
        backend_upload(g, gf, f, (size_t)B * H * 4);
        backend_upload(g, gfn, fn, (size_t)B * H * 4);
        int sc = lmr_bank_push(&bc, f, fn, ok, clip), sg = lmr_bank_push(&bg, gf, gfn, ok, clip);
        CHECK(sc == sg);
        int lo_was = kg.lo;
        lmr_keys_push(&kc, &bc, sc, ok);
        lmr_keys_push(&kg, &bg, sg, ok);
        shifted |= kg.lo < lo_was;
        int n = lmr_keys_count(&kc);
        CHECK(n == lmr_keys_count(&kg) && kc.lo == kg.lo);
        for (int j = 0; j < Nb; j++)
            mc[j] = mg[j] = j;
        lmr_keys_map(&kc, mc, Nb);
        lmr_keys_map(&kg, mg, Nb);
        CHECK(memcmp(mc, mg, sizeof mc) == 0);
        if (n > 0) {
            CHECK(backend_download(g, got, lmr_keys_f(&kg), (size_t)n * H * 4) == 0);
            CHECK(memcmp(got, lmr_keys_f(&kc), (size_t)n * H * 4) == 0);
            CHECK(backend_download(g, got, lmr_keys_fn(&kg), (size_t)n * H * 4) == 0);
            CHECK(memcmp(got, lmr_keys_fn(&kc), (size_t)n * H * 4) == 0);
            CHECK(backend_download(g, gotc, lmr_keys_clip(&kg), (size_t)n * 4) == 0);
            CHECK(memcmp(gotc, lmr_keys_clip(&kc), (size_t)n * 4) == 0);
        }
    }
    CHECK(shifted); // the block went back to the start of its device storage at least once
    CHECK(lmr_keys_rebuild(&again, &bg) == 0); // as after a resume
    int n = lmr_keys_count(&again);
    CHECK(n == lmr_keys_count(&kc));
    if (n > 0 && n == lmr_keys_count(&kc)) {
        CHECK(backend_download(g, got, lmr_keys_f(&again), (size_t)n * H * 4) == 0);
        CHECK(memcmp(got, lmr_keys_f(&kc), (size_t)n * H * 4) == 0);
        CHECK(backend_download(g, gotc, lmr_keys_clip(&again), (size_t)n * 4) == 0);
        CHECK(memcmp(gotc, lmr_keys_clip(&kc), (size_t)n * 4) == 0);
    }
    uint8_t ones[120];
    CHECK(backend_download(g, ones, kg.ones, (size_t)Nb) == 0);
    int all = 1;
    for (int j = 0; j < Nb; j++)
        all &= ones[j] == 1;
    CHECK(all);
    printf("  %d pushes: %d keys in the block, maps and bytes equal on both devices\n", 14, lmr_keys_count(&kc));
    lmr_keys_free(&kc);
    lmr_keys_free(&kg);
    lmr_keys_free(&again);
    lmr_bank_free(&bc);
    lmr_bank_free(&bg);
    free(f);
    free(fn);
    free(got);
}

// --- whole steps through the trainer -------------------------------------------------------------

static int run(Dataset *d, TrainStage stage, BackendKind dev, const char *init, const char *out, long steps)
{
    TrainOptions o;
    train_options_default(&o);
    o.stage = stage;
    o.device = dev;
    o.out = out;
    o.init = init;
    o.epochs = 1;
    o.batch = 24;
    o.hidden = stage == STAGE_INIT ? 32 : -1;
    o.lr = 1e-2;
    // a large Adam eps keeps each update proportional to its gradient: rounding-level gradients
    // (whose sign may differ between devices) then move nothing, instead of a full +-lr step
    o.adam.eps = 1e-3;
    o.stop_after = steps;
    o.prefetch = 1;
    o.progress_every = 0;
    o.lmr.omega = 10;
    o.lmr.K = 3;
    o.lmr.p = 0.75;
    char err[LMR_ERRLEN] = "";
    TrainResult res;
    int rc = train_run(&o, d, NULL, &res, err);
    if (rc < 0)
        fprintf(stderr, "train_run(%s, %s): %s\n", stage == STAGE_INIT ? "init" : "lmr", dev ? "cuda" : "cpu", err);
    return rc;
}

/* a (gpu) against b (cpu) over every parameter; `moved`: how far the run took the parameters
 * whose names start with one of the prefixes from the start model, so the comparison is not
 * between two models nothing touched (stage lmr draws a fresh head: only ln.* and pre_logits.*
 * show what its steps did). */
static void same_models(const char *a_path, const char *b_path, const char *start_path, const char *const *moved_in)
{
    Model a, b, s;
    char err[LMR_ERRLEN];
    CHECK(model_load(&a, a_path, err) == 0);
    CHECK(model_load(&b, b_path, err) == 0);
    CHECK(model_load(&s, start_path, err) == 0);
    if (a.n_params != b.n_params || a.n_params != s.n_params) {
        CHECK(!"models of different sizes");
        return;
    }
    double worst = 0.0, moved = 0.0;
    int bad = 0;
    for (size_t i = 0; i < a.n_params; i++) {
        double d = fabs((double)a.params[i] - b.params[i]);
        worst = d > worst ? d : worst;
        bad += !(d <= 1e-5 + 1e-3 * fabs(b.params[i]));
    }
    for (int k = 0; k < s.n_tensors; k++) {
        const ModelTensor *mt = &s.tensors[k];
        int counted = moved_in == NULL;
        for (int q = 0; moved_in && moved_in[q]; q++)
            counted |= strncmp(mt->name, moved_in[q], strlen(moved_in[q])) == 0;
        for (size_t i = mt->offset; counted && i < mt->offset + mt->numel; i++) {
            moved = fmax(moved, fabs((double)a.params[i] - s.params[i]));
            moved = fmax(moved, fabs((double)b.params[i] - s.params[i]));
        }
    }
    printf("  %s vs %s: max |gpu - cpu| %.3g (%d out of tolerance); the steps moved %s by up to %.3g\n", a_path,
           b_path, worst, bad, moved_in ? "the trunk" : "the parameters", moved);
    CHECK(bad == 0);
    CHECK(moved > 1e-3); // the comparison is not between two untouched models
    model_free(&a);
    model_free(&b);
    model_free(&s);
}

static void test_steps(void)
{
    // long-tailed labels: classes 3..5 are few-shot (n <= 10) so the bank masks their keys
    int counts[6] = {40, 24, 14, 8, 6, 4}, C = 6, Dm = 48, n = 96;
    float *x = malloc((size_t)n * Dm * sizeof *x);
    int32_t *lab = malloc((size_t)n * sizeof *lab);
    Rng r;
    rng_seed(&r, 9, 1, 0, 0);
    for (int c = 0, i = 0; c < C; c++)
        for (int k = 0; k < counts[c]; k++, i++) {
            lab[i] = c;
            for (int j = 0; j < Dm; j++)
                x[(size_t)i * Dm + j] = (float)rng_normal(&r) + (j % C == c ? 2.0f : 0.0f);
        }
    Dataset d;
    char err[LMR_ERRLEN];
    CHECK(dataset_from_memory(&d, x, (uint64_t)n, 1, Dm, lab, NULL, C, err) == 0);
    char dir[] = "/tmp/lmr_gpu_XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    CHECK(chdir(dir) == 0);

    TEST(9, "stage init: steps on cpu and on cuda from the same seeded initial state");
    // both devices start from the same host-made weights; the one-step run shows the second step moved them
    CHECK(run(&d, STAGE_INIT, BACKEND_CPU, NULL, "one_step.safetensors", 1) == 0);
    CHECK(run(&d, STAGE_INIT, BACKEND_CPU, NULL, "init_cpu.safetensors", 2) == 0);
    CHECK(run(&d, STAGE_INIT, BACKEND_CUDA, NULL, "init_gpu.safetensors", 2) == 0);
    same_models("init_gpu.safetensors", "init_cpu.safetensors", "one_step.safetensors", NULL);

    TEST(10, "stage lmr (bank of 3 batches, masks, mixing): steps on cpu and on cuda from the init checkpoint");
    CHECK(run(&d, STAGE_LMR, BACKEND_CPU, "init_cpu.safetensors", "lmr_cpu.safetensors", 3) == 0);
    CHECK(run(&d, STAGE_LMR, BACKEND_CUDA, "init_cpu.safetensors", "lmr_gpu.safetensors", 3) == 0);
    const char *trunk[] = {"ln.", "pre_logits.", NULL};
    same_models("lmr_gpu.safetensors", "lmr_cpu.safetensors", "init_cpu.safetensors", trunk);

    const char *files[] = {"one_step.safetensors", "init_cpu.safetensors", "init_gpu.safetensors", "lmr_cpu.safetensors",
                           "lmr_gpu.safetensors"};
    for (size_t i = 0; i < sizeof files / sizeof *files; i++)
        unlink(files[i]);
    CHECK(chdir("/") == 0);
    rmdir(dir);
    dataset_close(&d);
    free(x);
    free(lab);
}

int main(void)
{
    Env e;
    memset(&e, 0, sizeof e);
    char err[LMR_ERRLEN] = "";
    int rc = backend_init(&e.gpu, BACKEND_CUDA, 0, err);
    if (rc == LMR_ENODEV) { // no CUDA device, or built without CUDA: nothing to compare
        printf("skipped: %s\n", err);
        return 77;
    }
    if (rc < 0) { // a device that fails to start (driver, cuBLAS, memory) is a failure
        fprintf(stderr, "backend_init(cuda): %s\n", err);
        return 1;
    }
    CHECK(backend_init(&e.cpu, BACKEND_CPU, 1, err) == 0);
    rng_seed(&e.rng, 1234, 0, 0, 0);
    test_ops(&e);
    test_uploads(&e);
    test_key_block(&e);
    CHECK(backend_sync(e.gpu) == 0);
    if (backend_last_error(e.gpu)[0])
        fprintf(stderr, "device error: %s\n", backend_last_error(e.gpu));
    for (int i = 0; i < e.n_dev; i++)
        backend_release(e.gpu, e.dev[i]);
    backend_free(&e.gpu);
    backend_free(&e.cpu);
    test_steps();
    CHECK_DONE();
}
