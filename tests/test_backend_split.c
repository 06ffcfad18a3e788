/* The CPU backend's team (threads >= 2) cuts the GEMMs into blocks of rows or columns and the
 * passes between them into rows or elements. The passes must give the same bytes as on one
 * thread, at odd sizes too (split points inside a row block, masked and all-masked rows, the own
 * key in either part), for two and three threads (each where the CPUs allow, else skipped). GEMM blocks may round
 * differently from one whole call (OpenBLAS picks kernels by size and CPU), so what depends on a
 * GEMM must match within float tolerance across thread counts and bytewise for the same thread
 * count. The team itself: its pieces cover the range once, and members asleep after a pause wake
 * up. */
#include <stdlib.h>
#include <math.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "backend.h"
#include "check.h"
#include "team.h"

static unsigned st = 7;

static float rnd(void)
{
    st = st * 1103515245u + 12345u;
    return (float)((st >> 8) & 0xffff) / 32768.0f - 1.0f;
}

static float *randv(size_t n)
{
    float *p = malloc(n * sizeof *p);
    for (size_t i = 0; i < n; i++)
        p[i] = rnd();
    return p;
}

static int same(const float *a, const float *b, size_t n)
{
    return memcmp(a, b, n * sizeof *a) == 0;
}

/* Bytewise when exact, else within 1e-5 of the larger magnitude in a. */
static int near(const float *a, const float *b, size_t n, int exact)
{
    if (exact)
        return same(a, b, n);
    float scale = 0.0f, worst = 0.0f;
    for (size_t i = 0; i < n; i++) {
        scale = fabsf(a[i]) > scale ? fabsf(a[i]) : scale;
        worst = fabsf(a[i] - b[i]) > worst ? fabsf(a[i] - b[i]) : worst;
    }
    if (worst > 1e-5f * scale)
        fprintf(stderr, "  differ by %g (scale %g)\n", worst, scale);
    return worst <= 1e-5f * scale;
}

/* Run each op on the contexts one and two; what goes through a GEMM is compared with near(),
 * bytewise when exact. */
static void test_split(BackendCtx *one, BackendCtx *two, int B, int N, int H, int C, int one_key, int exact)
{
    float *f = randv((size_t)B * H), *fn = randv((size_t)B * H), *keys = randv((size_t)N * H);
    float *keys_n = randv((size_t)N * H), *c = randv((size_t)B), *dR = randv((size_t)B * H);
    float *frstd = randv((size_t)B);
    uint8_t *ok = malloc((size_t)N);
    int32_t *self = malloc((size_t)B * sizeof *self), *lab = malloc((size_t)B * sizeof *lab);
    int32_t *clip = malloc((size_t)N * sizeof *clip);
    for (int j = 0; j < N; j++) {
        ok[j] = one_key ? j == 1 : j % 5 != 3; // one key: the rows whose own key it is have none
        clip[j] = j % 37; // many keys per clip: rows mask every copy of theirs
    }
    for (int i = 0; i < B; i++) {
        self[i] = one_key ? (i * 7) % N : (i * 7) % 37; // a bank position (one key), else a clip
        lab[i] = i % C;
        c[i] = 0.5f + 0.4f * c[i];
    }
    BackendCtx *ctx[2] = {one, two};
    float *R[2], *w[2], *df[2], *dw[2], *dr[2], *dfn[2];
    for (int k = 0; k < 2; k++) {
        R[k] = calloc((size_t)B * H, sizeof(float));
        w[k] = calloc((size_t)B * N, sizeof(float));
        df[k] = calloc((size_t)B * H, sizeof(float));
        dw[k] = calloc((size_t)B * N, sizeof(float));
        dr[k] = calloc((size_t)B * H, sizeof(float));
        dfn[k] = calloc((size_t)B * H, sizeof(float));
        lmr_forward(ctx[k], R[k], w[k], f, fn, keys, keys_n, ok, one_key ? NULL : clip, self, c, B, N, H);
        lmr_backward(ctx[k], df[k], dR, w[k], fn, frstd, keys, keys_n, c, dw[k], dr[k], dfn[k], B, N, H);
    }
    CHECK(near(R[0], R[1], (size_t)B * H, exact));
    CHECK(near(w[0], w[1], (size_t)B * N, exact));
    CHECK(near(df[0], df[1], (size_t)B * H, exact));
    CHECK(near(dw[0], dw[1], (size_t)B * N, exact));

    // losses and dlogits, hard (smoothed) and soft
    float *z = randv((size_t)B * C), *t = randv((size_t)B * C), *loss[2], *dz[2];
    for (int k = 0; k < 2; k++) {
        loss[k] = calloc((size_t)B * 2, sizeof(float));
        dz[k] = calloc((size_t)B * C * 2, sizeof(float));
        ce_hard_forward_backward(ctx[k], loss[k], dz[k], z, lab, 0.1f, B, C);
        ce_soft_forward_backward(ctx[k], loss[k] + B, dz[k] + (size_t)B * C, z, t, B, C);
    }
    CHECK(same(loss[0], loss[1], (size_t)B * 2));
    CHECK(same(dz[0], dz[1], (size_t)B * C * 2));

    // linear + tanh, then AdamW over an odd count
    float *x = randv((size_t)B * H), *W = randv((size_t)C * H), *bias = randv((size_t)C), *out[2];
    size_t n = (size_t)B * N + 5;
    float *g = randv(n), *p[2], *m[2], *v[2];
    for (int k = 0; k < 2; k++) {
        out[k] = calloc((size_t)B * C, sizeof(float));
        linear_forward(ctx[k], out[k], x, W, bias, B, H, C, ACT_TANH);
        p[k] = calloc(n, sizeof(float));
        m[k] = calloc(n, sizeof(float));
        v[k] = calloc(n, sizeof(float));
        for (long step = 1; step <= 3; step++)
            adamw_update(ctx[k], p[k], g, m[k], v[k], n, 1e-3f, 0.9f, 0.999f, 1e-8f, 0.01f, step, 0.5f);
    }
    CHECK(near(out[0], out[1], (size_t)B * C, exact));

    // linear backward (tanh' and bias sums by columns), layer norm forward/backward
    float *dW[2], *db[2], *dx[2], *dout[2], *ln[2], *mean[2], *rs[2], *dlw[2], *dlb[2], *dln[2];
    float *lw = randv((size_t)C), *lb = randv((size_t)C);
    for (int k = 0; k < 2; k++) {
        st = 11; // the same dout on both sides (linear_backward scales it in place)
        dout[k] = randv((size_t)B * C);
        dW[k] = calloc((size_t)C * H, sizeof(float));
        db[k] = calloc((size_t)C, sizeof(float));
        dx[k] = calloc((size_t)B * H, sizeof(float));
        linear_backward(ctx[k], dx[k], dW[k], db[k], dout[k], x, W, out[k], B, H, C, ACT_TANH);
        ln[k] = calloc((size_t)B * C * 2, sizeof(float));
        mean[k] = calloc((size_t)B * 2, sizeof(float));
        rs[k] = calloc((size_t)B * 2, sizeof(float));
        dlw[k] = calloc((size_t)C, sizeof(float));
        dlb[k] = calloc((size_t)C, sizeof(float));
        dln[k] = calloc((size_t)B * C * 2, sizeof(float));
        layernorm_forward(ctx[k], ln[k], mean[k], rs[k], z, lw, lb, B, C, 1e-5f);
        layernorm_forward(ctx[k], ln[k] + (size_t)B * C, mean[k] + B, rs[k] + B, t, NULL, NULL, B, C, 1e-5f);
        layernorm_backward(ctx[k], dln[k], dlw[k], dlb[k], t, z, lw, mean[k], rs[k], B, C);
        layernorm_backward(ctx[k], dln[k] + (size_t)B * C, NULL, NULL, t, t, NULL, mean[k] + B, rs[k] + B, B, C);
    }
    CHECK(near(dout[0], dout[1], (size_t)B * C, exact) && near(db[0], db[1], (size_t)C, exact));
    CHECK(near(dW[0], dW[1], (size_t)C * H, exact) && near(dx[0], dx[1], (size_t)B * H, exact));
    CHECK(same(ln[0], ln[1], (size_t)B * C * 2) && same(mean[0], mean[1], (size_t)B * 2));
    CHECK(same(rs[0], rs[1], (size_t)B * 2) && same(dln[0], dln[1], (size_t)B * C * 2));
    CHECK(same(dlw[0], dlw[1], (size_t)C) && same(dlb[0], dlb[1], (size_t)C));
    for (int k = 0; k < 2; k++) {
        free(dW[k]), free(db[k]), free(dx[k]), free(dout[k]), free(ln[k]), free(mean[k]), free(rs[k]);
        free(dlw[k]), free(dlb[k]), free(dln[k]);
    }
    free(lw), free(lb);
    CHECK(same(p[0], p[1], n) && same(m[0], m[1], n) && same(v[0], v[1], n));

    for (int k = 0; k < 2; k++) {
        free(R[k]), free(w[k]), free(df[k]), free(dw[k]), free(dr[k]), free(dfn[k]);
        free(loss[k]), free(dz[k]), free(out[k]), free(p[k]), free(m[k]), free(v[k]);
    }
    free(f), free(fn), free(keys), free(keys_n), free(c), free(dR), free(frstd), free(ok), free(self), free(clip);
    free(lab), free(z), free(t), free(x), free(W), free(bias), free(g);
}

typedef struct {
    int *count;
} Marks;

static void mark_span(void *arg, size_t lo, size_t hi)
{
    Marks *m = arg;
    for (size_t i = lo; i < hi; i++)
        m->count[i]++;
}

static void test_team(void)
{
    size_t sizes[] = {0, 1, 7, 16, 33, 100, 1000};
    for (int parts = 2; parts <= 5; parts++)
        for (int si = 0; si < 7; si++)
            for (size_t align = 1; align <= 16; align += 15) {
                size_t n = sizes[si], prev = 0;
                CHECK(team_cut(n, align, parts, 0) == 0 && team_cut(n, align, parts, parts) == n);
                for (int k = 1; k <= parts; k++) {
                    size_t c = team_cut(n, align, parts, k);
                    CHECK(c >= prev && c <= n && (c % align == 0 || c == n));
                    prev = c;
                }
            }
    CHECK(team_cpus() >= 1 && team_cpus() <= sysconf(_SC_NPROCESSORS_CONF));
    Team *t = NULL;
    CHECK_RC(team_init(&t, 1), LMR_EINVAL);
    CHECK_RC(team_init(&t, 3), 0);
    CHECK(team_parts(t) == 3);
    int count[1000] = {0};
    Marks m = {count};
    for (int r = 0; r < 40; r++) {
        team_run(t, 1000, 16, mark_span, &m);
        if (r % 10 == 9) { // long enough for the members to stop spinning and sleep
            struct timespec ts = {0, 20 * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
    }
    int bad = 0;
    for (int i = 0; i < 1000; i++)
        bad += count[i] != 40;
    CHECK(bad == 0);
    team_free(&t);
    CHECK(t == NULL);
}

/* usage: test_backend_split [PARTS]: one thread against PARTS (2) threads; the team is capped at the
 * CPUs, so a runner with fewer CPUs than PARTS skips (77) saying so instead of comparing one thread
 * with one thread. The team and accounting tests run with PARTS 2 only. */
int main(int argc, char **argv)
{
    char err[LMR_ERRLEN] = "";
    int want = argc > 1 ? atoi(argv[1]) : 2;
    BackendCtx *many = NULL, *one = NULL;
    CHECK_RC(backend_init(&many, BACKEND_CPU, want, err), 0);
    CHECK_RC(backend_init(&one, BACKEND_CPU, 1, err), 0);
    CHECK(backend_parts(one) == 1);
    if (backend_parts(many) != want) {
        printf("skipped: %d CPUs here, so %d threads run as %d part(s): the %d-way split cannot be tested\n",
               team_cpus(), want, backend_parts(many), want);
        backend_free(&many);
        backend_free(&one);
        return check_failures ? 1 : 77;
    }
    printf("comparing 1 thread with %d parts\n", backend_parts(many));
    TEST(1, "LMR forward/backward, CE hard/soft, linear+tanh forward/backward, layer norm forward/backward, "
            "AdamW: N threads == 1 thread (GEMM results within 1e-5)");
    test_split(one, many, 128, 1024, 64, 300, 0, 0);
    TEST(2, "same at odd sizes, one key in the bank (all-masked rows)");
    test_split(one, many, 97, 517, 33, 1001, 1, 0);
    TEST(3, "the same context twice (a determinism check, not a split check): every output bytewise");
    test_split(many, many, 128, 1024, 64, 300, 0, 1);
    test_split(many, many, 97, 517, 33, 1001, 1, 1);
    backend_free(&many);
    backend_free(&one);
    if (want != 2)
        CHECK_DONE();
    BackendCtx *two = NULL, *three = NULL;
    CHECK_RC(backend_init(&two, BACKEND_CPU, 2, err), 0);
    CHECK_RC(backend_init(&three, BACKEND_CPU, 3, err), 0);
    TEST(4, "team: pieces cover the range once at aligned cuts; sleeping members wake for the next job; "
            "backend_parallel covers its range once, split or not");
    test_team();
    for (int k = 0; k < 4; k++) {
        int count[999] = {0};
        Marks m = {count};
        backend_parallel(k < 2 ? two : three, 999, k % 2 ? 1u << 20 : 10, mark_span, &m);
        int bad = 0;
        for (int i = 0; i < 999; i++)
            bad += count[i] != 1;
        CHECK(bad == 0);
    }
    TEST(5, "GEMM accounting: the flops of linear forward/backward and LMR, and time spent");
    for (int k = 0; k < 2; k++) {
        BackendCtx *ctx = NULL;
        CHECK_RC(backend_init(&ctx, BACKEND_CPU, k + 1, err), 0);
        double s0, f0, s1, f1;
        backend_gemm_stats(ctx, &s0, &f0);
        CHECK(s0 == 0.0 && f0 == 0.0);
        int B = 37, C = 65, OC = 300, N = 200;
        float *x = randv((size_t)B * C), *W = randv((size_t)OC * C), *bias = randv((size_t)OC);
        float *out = calloc((size_t)B * OC, sizeof(float)), *dout = randv((size_t)B * OC);
        float *dW = calloc((size_t)OC * C, sizeof(float)), *db = calloc((size_t)OC, sizeof(float));
        float *dx = calloc((size_t)B * C, sizeof(float));
        linear_forward(ctx, out, x, W, bias, B, C, OC, ACT_TANH);
        linear_backward(ctx, dx, dW, db, dout, x, W, out, B, C, OC, ACT_TANH);
        linear_backward(ctx, NULL, dW, db, dout, x, W, out, B, C, OC, ACT_NONE);
        backend_gemm_stats(ctx, &s1, &f1);
        CHECK(s1 > 0.0 && f1 == 2.0 * B * C * OC * 4);
        // LMR: two GEMMs forward, two backward, each 2 B N H
        float *keys = randv((size_t)N * C), *R = calloc((size_t)B * C, sizeof(float));
        float *wts = calloc((size_t)B * N, sizeof(float)), *c = randv((size_t)B), *dR = randv((size_t)B * C);
        float *df = calloc((size_t)B * C, sizeof(float)), *dw = calloc((size_t)B * N, sizeof(float));
        float *dr = calloc((size_t)B * C, sizeof(float)), *dfn = calloc((size_t)B * C, sizeof(float));
        uint8_t *ok = malloc((size_t)N);
        int32_t *self = malloc((size_t)B * sizeof *self);
        for (int j = 0; j < N; j++)
            ok[j] = 1;
        for (int i = 0; i < B; i++)
            self[i] = -1;
        lmr_forward(ctx, R, wts, x, x, keys, keys, ok, NULL, self, c, B, N, C);
        lmr_backward(ctx, df, dR, wts, x, c, keys, keys, c, dw, dr, dfn, B, N, C);
        backend_gemm_stats(ctx, &s0, &f0);
        CHECK(s0 > s1 && f0 == f1 + 4 * 2.0 * B * N * C);
        free(x), free(W), free(bias), free(out), free(dout), free(dW), free(db), free(dx);
        free(keys), free(R), free(wts), free(c), free(dR), free(df), free(dw), free(dr), free(dfn), free(ok), free(self);
        backend_free(&ctx);
    }
    backend_free(&three);
    backend_free(&two);
    CHECK_DONE();
}
