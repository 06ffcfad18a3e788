/* LMR: class weights against the published table, the monotonicity refusal, the self mask at the
 * sample's true bank position and at every copy of its clip, few-shot keys, all-masked rows, the bank ring, mixing draws and
 * targets, and the gradient of the whole LMR loss (reconstruction over a bank + mixing + soft CE,
 * draws fixed) against central finite differences. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "check.h"
#include "lmr.h"
#include "train_fd.h"

static unsigned st = 99;

static void ln0(float *out, float *rstd, const float *x, int B, int H)
{
    float *mean = malloc((size_t)B * sizeof *mean);
    layernorm_forward(NULL, out, mean, rstd, x, NULL, NULL, B, H, 1e-6f);
    free(mean);
}

static void test_weights(void)
{
    LmrParams p;
    CHECK_RC(lmr_preset(&p, "ssv2-lt"), 0);
    int64_t counts[8] = {5, 10, 20, 50, 100, 500, 1000, 2500};
    double want[8] = {0.600, 0.386, 0.251, 0.146, 0.097, 0.034, 0.017, 0.001};
    float c[8];
    char err[LMR_ERRLEN] = "";
    CHECK_RC(lmr_class_weights(&p, counts, 8, c, err), 0);
    for (int i = 0; i < 8; i++)
        CHECK_CLOSE(c[i], want[i], 5e-4, 0);
    // an empty class takes no part in min/max and gets 0
    int64_t with0[3] = {5, 0, 2500};
    float c0[3];
    CHECK_RC(lmr_class_weights(&p, with0, 3, c0, err), 0);
    CHECK_CLOSE(c0[0], 0.6, 1e-6, 0);
    CHECK(c0[1] == 0.0f);
    CHECK_CLOSE(c0[2], 0.001, 1e-6, 0);
    CHECK_RC(lmr_preset(&p, "nope"), LMR_ENOTFOUND);
}

static void test_nonmonotone(void)
{
    LmrParams p;
    lmr_preset(&p, "epic100-verbs");
    CHECK(p.allow_nonmonotone == 1 && p.d == 0.15 && p.l == 1.0 && p.p == 1.0);
    int64_t counts[4] = {300, 1, 40, 7};
    float c[4];
    char err[LMR_ERRLEN] = "";
    p.allow_nonmonotone = 0;
    CHECK_RC(lmr_class_weights(&p, counts, 4, c, err), LMR_EINVAL);
    // class 1 (1 clip): (1 + 5) * 0.15 = 0.9; the smallest d that works is above 1/6
    CHECK(strstr(err, "class 1 ") != NULL);
    CHECK(strstr(err, "0.166667") != NULL && strstr(err, "--lmr-d 0.167") != NULL);
    p.allow_nonmonotone = 1;
    CHECK_RC(lmr_class_weights(&p, counts, 4, c, err), 0);
    // the original behaviour: the 1-clip class has a negative c~ and gets the *lowest* weight
    CHECK_CLOSE(c[1], 0.01, 1e-6, 0);
    CHECK(c[3] > c[2] && c[2] > c[0]);
    p.allow_nonmonotone = 0;
    p.d = 1.0 / 6.0 + 1e-3;
    CHECK_RC(lmr_class_weights(&p, counts, 4, c, err), 0);
    CHECK(c[1] > c[3] && c[3] > c[2] && c[2] > c[0]);
}

/* A bank of K slots of B rows with distinct random keys; the current batch goes in last. */
static void test_masks(void)
{
    int K = 3, B = 4, H = 8;
    BackendCtx *ctx;
    char err[LMR_ERRLEN];
    CHECK_RC(backend_init(&ctx, BACKEND_CPU, 1, err), 0);
    LmrBank bank;
    CHECK_RC(lmr_bank_init(&bank, ctx, K, B, H), 0);
    float f[32], fn[32], rstd[4], R[32], Rn[32], wts[4 * 12], wn[4 * 12], c[4] = {0.5f, 0.5f, 0.5f, 0.5f};
    uint8_t ok[4] = {1, 1, 1, 1};
    int32_t clips[3][4] = {{10, 11, 12, 13}, {14, 15, 16, 17}, {0, 1, 2, 3}};
    for (int k = 0; k < 2; k++) { // two earlier batches
        fill_normal(f, 32, 1, &st);
        ln0(fn, rstd, f, B, H);
        lmr_bank_push(&bank, f, fn, ok, clips[k]);
    }
    fill_normal(f, 32, 1, &st);
    ln0(fn, rstd, f, B, H);
    uint8_t ok_cur[4] = {1, 1, 0, 1}; // row 2 is a few-shot clip: never a key
    int slot = lmr_bank_push(&bank, f, fn, ok_cur, clips[2]);
    CHECK(slot == 2 && lmr_bank_keys(&bank) == 12);
    int32_t self[4];
    for (int i = 0; i < B; i++)
        self[i] = slot * B + i;
    int N = lmr_bank_keys(&bank);
    lmr_forward(ctx, R, wts, f, fn, bank.keys, bank.keys_n, bank.key_ok, NULL, self, c, B, N, H);
    lmr_forward_naive(Rn, wn, f, fn, bank.keys, bank.keys_n, bank.key_ok, NULL, self, c, B, N, H);
    for (int i = 0; i < B * H; i++)
        CHECK_CLOSE(R[i], Rn[i], 1e-5, 1e-4);
    for (int i = 0; i < B * N; i++)
        CHECK_CLOSE(wts[i], wn[i], 1e-6, 1e-4);
    for (int i = 0; i < B; i++) {
        CHECK(wts[i * N + slot * B + i] == 0.0f); // the sample itself, at its true bank position
        if (i != 2)
            CHECK(wts[i * N + i] > 0.0f); // row i of the oldest batch is an ordinary key
        CHECK(wts[i * N + slot * B + 2] == 0.0f); // the few-shot key
        double s = 0;
        for (int j = 0; j < N; j++)
            s += wts[i * N + j];
        CHECK_CLOSE(s, 1.0, 1e-5, 0);
    }
    // few-shot keys never contribute: changing their values changes nothing
    float R2[32];
    float keep = bank.keys[(slot * B + 2) * H];
    bank.keys[(slot * B + 2) * H] += 100.0f;
    lmr_forward(ctx, R2, wts, f, fn, bank.keys, bank.keys_n, bank.key_ok, NULL, self, c, B, N, H);
    CHECK(memcmp(R, R2, sizeof R) == 0);
    bank.keys[(slot * B + 2) * H] = keep;
    // a row whose keys are all masked is left unchanged, and its gradient passes straight through
    uint8_t none[12] = {0};
    lmr_forward(ctx, R2, wts, f, fn, bank.keys, bank.keys_n, none, NULL, self, c, B, N, H);
    CHECK(memcmp(R2, f, sizeof f) == 0);
    float dR[32], df[32], dwts[48], dr[32], dfn[32];
    fill_normal(dR, 32, 1, &st);
    lmr_backward(ctx, df, dR, wts, fn, rstd, bank.keys, bank.keys_n, c, dwts, dr, dfn, B, N, H);
    CHECK(memcmp(df, dR, sizeof dR) == 0);
    // one key left per row: only self masked in a single-key bank gives an all-masked row
    int32_t self1[4] = {0, -1, -1, -1};
    uint8_t one[12] = {1};
    lmr_forward(ctx, R2, wts, f, fn, bank.keys, bank.keys_n, one, NULL, self1, c, B, N, H);
    CHECK(memcmp(R2, f, (size_t)H * sizeof *f) == 0);         // row 0: its only key is itself
    CHECK_CLOSE(R2[H], 0.5f * bank.keys[0] + 0.5f * f[H], 1e-6, 1e-6); // row 1: r = key 0
    // ring: the 4th push reuses slot 0 and the bank stays at K batches
    CHECK(lmr_bank_push(&bank, f, fn, ok, clips[0]) == 0 && bank.n_filled == K && bank.n_pushed == 4);
    lmr_bank_free(&bank);
    lmr_bank_free(&bank);
    backend_free(&ctx);
}

/* The class-balanced sampler draws with replacement: clip 7 is drawn twice in the current batch
 * (rows 0 and 2) and once in an earlier one. Rows of clip 7 take no weight from any of its three
 * copies (the bare own-position mask left two of them in); other rows use them as ordinary keys. */
static void test_self_clip(void)
{
    int K = 3, B = 4, H = 8, N = K * B;
    BackendCtx *ctx;
    char err[LMR_ERRLEN];
    CHECK_RC(backend_init(&ctx, BACKEND_CPU, 1, err), 0);
    LmrBank bank;
    CHECK_RC(lmr_bank_init(&bank, ctx, K, B, H), 0);
    float f[32], fn[32], rstd[4], R[32], Rn[32], R2[32], wts[48], wn[48], c[4] = {0.7f, 0.7f, 0.7f, 0.7f};
    uint8_t ok[4] = {1, 1, 1, 1};
    int32_t clips[3][4] = {{10, 11, 12, 13}, {7, 14, 15, 16}, {7, 20, 7, 21}};
    for (int k = 0; k < 3; k++) {
        fill_normal(f, 32, 1, &st);
        if (k == 2) // the two draws of clip 7 in this batch are the same features (one view)
            memcpy(f + 2 * H, f, (size_t)H * sizeof *f);
        ln0(fn, rstd, f, B, H);
        lmr_bank_push(&bank, f, fn, ok, clips[k]);
    }
    const int32_t *q = clips[2];
    int copies[3] = {4, 8, 10}; // bank rows made from clip 7
    lmr_forward(ctx, R, wts, f, fn, bank.keys, bank.keys_n, bank.key_ok, bank.key_clip, q, c, B, N, H);
    lmr_forward_naive(Rn, wn, f, fn, bank.keys, bank.keys_n, bank.key_ok, bank.key_clip, q, c, B, N, H);
    for (int i = 0; i < B * H; i++)
        CHECK_CLOSE(R[i], Rn[i], 1e-5, 1e-4);
    for (int i = 0; i < B * N; i++)
        CHECK_CLOSE(wts[i], wn[i], 1e-6, 1e-4);
    for (int i = 0; i < B; i++) {
        double s = 0;
        for (int j = 0; j < N; j++)
            s += wts[i * N + j];
        CHECK_CLOSE(s, 1.0, 1e-5, 0);
        for (int k = 0; k < 3; k++)
            if (q[i] == 7)
                CHECK(wts[i * N + copies[k]] == 0.0f);
            else
                CHECK(wts[i * N + copies[k]] > 0.0f);
        CHECK(wts[i * N + 8 + i] == 0.0f); // and every row's own position
    }
    // the copies' values reach rows of other clips only
    bank.keys[4 * H] += 50.0f;
    bank.keys[10 * H + 1] -= 50.0f;
    lmr_forward(ctx, R2, wts, f, fn, bank.keys, bank.keys_n, bank.key_ok, bank.key_clip, q, c, B, N, H);
    CHECK(memcmp(R2, R, (size_t)H * sizeof *R) == 0 && memcmp(R2 + 2 * H, R + 2 * H, (size_t)H * sizeof *R) == 0);
    CHECK(memcmp(R2 + H, R + H, (size_t)H * sizeof *R) != 0 && memcmp(R2 + 3 * H, R + 3 * H, (size_t)H * sizeof *R) != 0);
    // the mask by position alone (key_clip NULL) leaves the other copies in: what this guards against
    int32_t pos[4] = {8, 9, 10, 11};
    lmr_forward(ctx, R2, wts, f, fn, bank.keys, bank.keys_n, bank.key_ok, NULL, pos, c, B, N, H);
    CHECK(wts[0 * N + 4] > 0.0f && wts[0 * N + 10] > 0.0f && wts[0 * N + 8] == 0.0f);
    // a clip whose every key is one of its own copies keeps its features
    uint8_t only7[12] = {0};
    for (int k = 0; k < 3; k++)
        only7[copies[k]] = 1;
    lmr_forward(ctx, R2, wts, f, fn, bank.keys, bank.keys_n, only7, bank.key_clip, q, c, B, N, H);
    CHECK(memcmp(R2, f, (size_t)H * sizeof *f) == 0 && memcmp(R2 + 2 * H, f + 2 * H, (size_t)H * sizeof *f) == 0);
    CHECK(memcmp(R2 + H, f + H, (size_t)H * sizeof *f) != 0);
    lmr_bank_free(&bank);
    backend_free(&ctx);
}

static void test_mix_targets(void)
{
    Rng r;
    rng_seed(&r, 5, RNG_MIX, 0, 0);
    int32_t partner[5];
    float a[5];
    CHECK(lmr_draw_mix(&r, 0.5, 5, partner, a) == 2);
    CHECK(partner[2] == 2 && a[2] == 0.0f && a[4] == 0.0f);
    CHECK(a[0] >= 0.0f && a[0] < 1.0f && partner[0] >= 0 && partner[0] < 5);
    CHECK(lmr_draw_mix(&r, 1.0, 5, partner, a) == 5);
    // row 0 single label 1, row 1 multi-label {0, 2}: mixed targets sum to 1
    int32_t lab[3] = {1, 0, 2}, off[3] = {0, 1, 3};
    int32_t pr[2] = {1, 1};
    float aa[2] = {0.25f, 0.0f}, Y[6];
    lmr_targets(Y, lab, off, pr, aa, 1, 2, 3, 0);
    CHECK_CLOSE(Y[0], 0.125, 1e-7, 0);
    CHECK_CLOSE(Y[1], 0.75, 1e-7, 0);
    CHECK_CLOSE(Y[2], 0.125, 1e-7, 0);
    CHECK_CLOSE(Y[3], 0.5, 1e-7, 0);
    CHECK_CLOSE(Y[5], 0.5, 1e-7, 0);
    lmr_targets(Y, lab, off, pr, aa, 1, 2, 3, 1); // bce: multi-hot, not divided
    CHECK_CLOSE(Y[3], 1.0, 1e-7, 0);
    CHECK_CLOSE(Y[0], 0.25, 1e-7, 0);
}

/* The whole LMR loss as a function of the batch features f, draws fixed, keys constant. */
typedef struct {
    int B, N, H, C, n_mix;
    float *f, *fn, *rstd, *keys, *keys_n, *c, *R, *X, *wts, *w2, *b2, *z, *Y, *losses, *dz;
    uint8_t *ok;
    int32_t *self, *partner;
    float *a;
} Whole;

static double whole_loss(void *p)
{
    Whole *w = p;
    ln0(w->fn, w->rstd, w->f, w->B, w->H);
    lmr_forward(NULL, w->R, w->wts, w->f, w->fn, w->keys, w->keys_n, w->ok, NULL, w->self, w->c, w->B, w->N, w->H);
    mix_forward(NULL, w->X, w->R, w->partner, w->a, w->n_mix, w->B, w->H);
    linear_forward(NULL, w->z, w->X, w->w2, w->b2, w->B, w->H, w->C, ACT_NONE);
    ce_soft_forward_backward(NULL, w->losses, w->dz, w->z, w->Y, w->B, w->C);
    double s = 0;
    for (int i = 0; i < w->B; i++)
        s += w->losses[i];
    return s / w->B;
}

static void test_whole_gradient(void)
{
    int K = 3, B = 5, H = 6, C = 4, N = K * B;
    Whole w;
    memset(&w, 0, sizeof w);
    w.B = B, w.N = N, w.H = H, w.C = C, w.n_mix = 3;
#define A(name, n) w.name = calloc((size_t)(n), sizeof *w.name)
    A(f, B * H), A(fn, B * H), A(rstd, B), A(keys, N * H), A(keys_n, N * H), A(c, B), A(R, B * H), A(X, B * H);
    A(wts, B * N), A(w2, C * H), A(b2, C), A(z, B * C), A(Y, B * C), A(losses, B), A(dz, B * C), A(ok, N);
    A(self, B), A(partner, B), A(a, B);
#undef A
    fill_normal(w.keys, (size_t)N * H, 1, &st);
    fill_normal(w.f, (size_t)B * H, 1, &st);
    fill_normal(w.w2, (size_t)C * H, 1, &st);
    fill_normal(w.b2, (size_t)C, 0.1, &st);
    // the current batch sits in slot 1 of the bank, as detached copies of f
    memcpy(w.keys + (size_t)1 * B * H, w.f, (size_t)B * H * sizeof(float));
    float *krstd = calloc((size_t)N, sizeof *krstd);
    ln0(w.keys_n, krstd, w.keys, N, H);
    free(krstd);
    for (int j = 0; j < N; j++)
        w.ok[j] = j % 7 != 3; // a few few-shot keys
    int32_t lab[5] = {0, 1, 2, 3, 1}, off[6] = {0, 1, 2, 3, 4, 5}, partner[5] = {4, 0, 1, 3, 4};
    float a[5] = {0.3f, 0.6f, 0.1f, 0, 0}, c[5] = {0.6f, 0.2f, 0.9f, 0.05f, 0.4f};
    for (int i = 0; i < B; i++) {
        w.self[i] = B + i;
        w.partner[i] = partner[i];
        w.a[i] = a[i];
        w.c[i] = c[i];
    }
    lmr_targets(w.Y, lab, off, w.partner, w.a, w.n_mix, B, C, 0);
    whole_loss(&w);
    // analytic: soft CE -> head -> mix -> LMR (through (1-c) f and the softmax path)
    float *dX = calloc((size_t)B * H, 4), *dR = calloc((size_t)B * H, 4), *df = calloc((size_t)B * H, 4);
    float *dw2 = calloc((size_t)C * H, 4), *db2 = calloc((size_t)C, 4), *dwts = calloc((size_t)B * N, 4);
    float *dr = calloc((size_t)B * H, 4), *dfn = calloc((size_t)B * H, 4);
    linear_backward(NULL, dX, dw2, db2, w.dz, w.X, w.w2, NULL, B, H, C, ACT_NONE);
    mix_backward(NULL, dR, dX, w.partner, w.a, w.n_mix, B, H);
    lmr_backward(NULL, df, dR, w.wts, w.fn, w.rstd, w.keys, w.keys_n, w.c, dwts, dr, dfn, B, N, H);
    CHECK(fd_check("LMR loss d/df", w.f, (size_t)B * H, df, whole_loss, &w, 5e-3f, 5e-4, 2e-2) == 0);
    // the softmax path matters: without it the gradient would be (1-c) dR only
    double diff = 0;
    for (int k = 0; k < B * H; k++)
        diff += fabs(df[k] - (1 - w.c[k / H]) * dR[k]);
    CHECK(diff > 1e-3);
    float *ptrs[] = {w.f, w.fn, w.rstd, w.keys, w.keys_n, w.c, w.R, w.X, w.wts, w.w2, w.b2, w.z, w.Y, w.losses, w.dz,
                     w.a, dX, dR, df, dw2, db2, dwts, dr, dfn};
    for (size_t i = 0; i < sizeof ptrs / sizeof *ptrs; i++)
        free(ptrs[i]);
    free(w.ok), free(w.self), free(w.partner);
}

/* Largest |a - b| over n, relative to the largest |a|. */
static double rel_diff(const float *a, const float *b, size_t n)
{
    double worst = 0, scale = 1e-30;
    for (size_t i = 0; i < n; i++) {
        worst = fmax(worst, fabs((double)a[i] - b[i]));
        scale = fmax(scale, fabs((double)a[i]));
    }
    return worst / scale;
}

/* The bank's usable keys kept in one block (LmrKeys) give the same reconstruction and gradient as
 * the whole bank with its mask, own keys in and out of the block, and no usable key; the block
 * rebuilt from the bank (a resume) is the one the pushes built. */
static void test_compact(void)
{
    int K = 3, B = 6, H = 8, N = K * B;
    BackendCtx *ctx = NULL;
    char err[LMR_ERRLEN];
    CHECK_RC(backend_init(&ctx, BACKEND_CPU, 1, err), 0);
    LmrBank bank;
    LmrKeys live, again;
    CHECK_RC(lmr_bank_init(&bank, ctx, K, B, H), 0);
    CHECK_RC(lmr_keys_init(&live, ctx, K, B, H), 0);
    CHECK_RC(lmr_keys_init(&again, ctx, K, B, H), 0);
    float *f = calloc((size_t)B * H, 4), *fn = calloc((size_t)B * H, 4), *rstd = calloc((size_t)B, 4);
    float *c = calloc((size_t)B, 4);
    float *R[2], *wts[2], *df[2], *dR = calloc((size_t)B * H, 4);
    float *dwts = calloc((size_t)B * N, 4), *dr = calloc((size_t)B * H, 4), *dfn = calloc((size_t)B * H, 4);
    for (int k = 0; k < 2; k++) {
        R[k] = calloc((size_t)B * H, 4);
        wts[k] = calloc((size_t)B * N, 4);
        df[k] = calloc((size_t)B * H, 4);
    }
    uint8_t ok[6];
    int32_t map[18], self[6], selfc[6], clip[6];
    fill_normal(dR, (size_t)B * H, 1, &st);
    for (int i = 0; i < B; i++)
        c[i] = 0.2f + 0.1f * i;
    int moved = 0;
    for (int round = 0; round < 12; round++) {
        // rounds 3-5 push no usable key, so round 5 has none left; later rounds wrap the ring
        // and move the block back to the start of its storage; the current batch goes in last
        for (int i = 0; i < B; i++)
            ok[i] = (round < 3 && (i + round) % 3 != 0) || (round >= 6 && (i + round) % 4 != 0);
        for (int i = 0; i < B; i++) // drawn with replacement from 9 clips: copies in and across batches
            clip[i] = (int32_t)((round * 5 + i * 3 + (i == 4 ? 1 : 0)) % 9);
        fill_normal(f, (size_t)B * H, 1, &st);
        ln0(fn, rstd, f, B, H);
        int slot = lmr_bank_push(&bank, f, fn, ok, clip);
        int lo_was = live.lo;
        lmr_keys_push(&live, &bank, slot, ok);
        moved |= live.lo < lo_was;
        int n = lmr_bank_keys(&bank), kept = lmr_keys_count(&live), want = 0;
        for (int j = 0; j < n; j++) {
            want += bank.key_ok[j] != 0;
            map[j] = j;
        }
        lmr_keys_map(&live, map, n);
        CHECK(kept == want);
        for (int i = 0; i < B; i++)
            self[i] = selfc[i] = slot * B + i;
        lmr_keys_map(&live, selfc, B);
        const float *kc = lmr_keys_f(&live), *knc = lmr_keys_fn(&live);
        for (int i = 0; i < B; i++) // own key: at its gathered row when kept, else none
            CHECK(ok[i] ? selfc[i] >= 0 && memcmp(kc + (size_t)selfc[i] * H, f + (size_t)i * H, (size_t)H * 4) == 0
                        : selfc[i] == -1);
        int order = 1; // oldest batch first, a batch's keys in their order
        for (int t = 0, prev = -1; t < bank.n_filled; t++) {
            int s = (bank.n_filled < K ? t : (int)((bank.n_pushed + t) % K));
            for (int j = s * B; j < s * B + B; j++)
                if (map[j] >= 0) {
                    order &= map[j] == prev + 1 && memcmp(kc + (size_t)map[j] * H, bank.keys + (size_t)j * H, 4u * H) == 0;
                    prev = map[j];
                }
        }
        CHECK(order);
        for (int j = 0; j < n; j++) // each gathered key keeps its clip
            if (map[j] >= 0)
                CHECK(lmr_keys_clip(&live)[map[j]] == bank.key_clip[j]);
        CHECK_RC(lmr_keys_rebuild(&again, &bank), 0); // as after a resume: the same block
        CHECK(lmr_keys_count(&again) == kept &&
              memcmp(lmr_keys_f(&again), kc, (size_t)kept * H * 4) == 0 &&
              memcmp(lmr_keys_fn(&again), knc, (size_t)kept * H * 4) == 0 &&
              memcmp(lmr_keys_clip(&again), lmr_keys_clip(&live), (size_t)kept * 4) == 0);
        lmr_forward(ctx, R[0], wts[0], f, fn, bank.keys, bank.keys_n, bank.key_ok, NULL, self, c, B, n, H);
        lmr_forward(ctx, R[1], wts[1], f, fn, kc, knc, live.ones, NULL, selfc, c, B, kept, H);
        CHECK(rel_diff(R[0], R[1], (size_t)B * H) < 1e-6);
        for (int i = 0; i < B; i++) // the softmax weights of the kept keys
            for (int j = 0; j < n; j++)
                if (map[j] >= 0)
                    CHECK_CLOSE(wts[1][(size_t)i * kept + map[j]], wts[0][(size_t)i * n + j], 1e-6, 1e-6);
                else
                    CHECK(wts[0][(size_t)i * n + j] == 0.0f);
        lmr_backward(ctx, df[0], dR, wts[0], fn, rstd, bank.keys, bank.keys_n, c, dwts, dr, dfn, B, n, H);
        lmr_backward(ctx, df[1], dR, wts[1], fn, rstd, kc, knc, c, dwts, dr, dfn, B, kept, H);
        CHECK(rel_diff(df[0], df[1], (size_t)B * H) < 1e-6);
        // masked by clip: the whole bank and the block agree too, and no row weighs a key of its clip
        lmr_forward(ctx, R[0], wts[0], f, fn, bank.keys, bank.keys_n, bank.key_ok, bank.key_clip, clip, c, B, n, H);
        lmr_forward(ctx, R[1], wts[1], f, fn, kc, knc, live.ones, lmr_keys_clip(&live), clip, c, B, kept, H);
        CHECK(rel_diff(R[0], R[1], (size_t)B * H) < 1e-6);
        for (int i = 0; i < B; i++)
            for (int j = 0; j < n; j++)
                if (bank.key_clip[j] == clip[i])
                    CHECK(wts[0][(size_t)i * n + j] == 0.0f);
                else if (map[j] >= 0)
                    CHECK_CLOSE(wts[1][(size_t)i * kept + map[j]], wts[0][(size_t)i * n + j], 1e-6, 1e-6);
        if (round == 5) // every row keeps its own features
            CHECK(kept == 0 && memcmp(R[1], f, (size_t)B * H * 4) == 0 && memcmp(R[0], f, (size_t)B * H * 4) == 0);
    }
    CHECK(moved); // the block went back to the start of its storage at least once
    for (int k = 0; k < 2; k++)
        free(R[k]), free(wts[k]), free(df[k]);
    free(f), free(fn), free(rstd), free(c), free(dR), free(dwts), free(dr), free(dfn);
    lmr_keys_free(&live);
    lmr_keys_free(&again);
    lmr_bank_free(&bank);
    backend_free(&ctx);
}

int main(void)
{
    TEST(1, "class weights, ssv2-lt preset: 0.600 0.386 0.251 0.146 0.097 0.034 0.017 0.001");
    test_weights();
    TEST(2, "non-monotone class weights refused (class and smallest d named) unless asked");
    test_nonmonotone();
    TEST(3, "self key masked at its true bank position; few-shot keys never contribute; all-masked rows unchanged");
    test_masks();
    TEST(4, "mixing draws and soft / multi-label targets");
    test_mix_targets();
    TEST(5, "whole LMR loss (bank + mixing + soft CE, draws fixed): finite differences");
    test_whole_gradient();
    TEST(6, "gathered bank (few-shot keys left out) = whole bank with its mask: R, weights, gradient; "
            "clip masks on both");
    test_compact();
    TEST(7, "a clip drawn twice in a batch and once before: no weight from any of its copies");
    test_self_clip();
    CHECK_DONE();
}
