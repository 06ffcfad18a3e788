/* train/backend_cpu + model: every layer's gradient against central finite differences, the
 * sgemm paths against the naive loops, the losses against hand-computed values, AdamW against
 * its formula, the parameter table, the evaluation forward and checkpoint loading. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend.h"
#include "check.h"
#include "checkpoint.h"
#include "model.h"
#include "rng.h"
#include "safetensors.h"
#include "train_fd.h"

static unsigned seed_state = 12345;

static float *rnd(size_t n, double scale)
{
    float *x = malloc(n * sizeof *x);
    fill_normal(x, n, scale, &seed_state);
    return x;
}

static double dot(const float *a, const float *b, size_t n)
{
    double s = 0.0;
    for (size_t i = 0; i < n; i++)
        s += (double)a[i] * b[i];
    return s;
}

// --- linear ------------------------------------------------------------------------------------

typedef struct {
    float *x, *w, *b, *out, *G;
    int B, C, OC;
    Activation act;
} LinCtx;

static double lin_loss(void *p)
{
    LinCtx *c = p;
    linear_forward(NULL, c->out, c->x, c->w, c->b, c->B, c->C, c->OC, c->act);
    return dot(c->out, c->G, (size_t)c->B * c->OC);
}

static void test_linear(Activation act)
{
    int B = 5, C = 7, OC = 4;
    LinCtx c = {rnd((size_t)B * C, 1), rnd((size_t)OC * C, 0.5), rnd((size_t)OC, 0.5), malloc((size_t)B * OC * 4),
                rnd((size_t)B * OC, 1), B, C, OC, act};
    float *ref = malloc((size_t)B * OC * 4);
    lin_loss(&c);
    linear_forward_naive(ref, c.x, c.w, c.b, B, C, OC, act);
    for (int i = 0; i < B * OC; i++)
        CHECK_CLOSE(c.out[i], ref[i], 1e-5, 1e-5);
    float *dx = malloc((size_t)B * C * 4), *dw = malloc((size_t)OC * C * 4), *db = malloc((size_t)OC * 4);
    float *dx2 = malloc((size_t)B * C * 4), *dw2 = malloc((size_t)OC * C * 4), *db2 = malloc((size_t)OC * 4);
    float *dout = malloc((size_t)B * OC * 4), *dout2 = malloc((size_t)B * OC * 4);
    memcpy(dout, c.G, (size_t)B * OC * 4);
    memcpy(dout2, c.G, (size_t)B * OC * 4);
    linear_backward(NULL, dx, dw, db, dout, c.x, c.w, c.out, B, C, OC, act);
    linear_backward_naive(dx2, dw2, db2, dout2, c.x, c.w, c.out, B, C, OC, act);
    for (int i = 0; i < B * C; i++)
        CHECK_CLOSE(dx[i], dx2[i], 1e-5, 1e-4);
    for (int i = 0; i < OC * C; i++)
        CHECK_CLOSE(dw[i], dw2[i], 1e-5, 1e-4);
    CHECK(fd_check("linear dinp", c.x, (size_t)B * C, dx, lin_loss, &c, 1e-2f, 2e-3, 1e-2) == 0);
    CHECK(fd_check("linear dweight", c.w, (size_t)OC * C, dw, lin_loss, &c, 1e-2f, 2e-3, 1e-2) == 0);
    CHECK(fd_check("linear dbias", c.b, (size_t)OC, db, lin_loss, &c, 1e-2f, 2e-3, 1e-2) == 0);
    free(c.x), free(c.w), free(c.b), free(c.out), free(c.G), free(ref);
    free(dx), free(dw), free(db), free(dx2), free(dw2), free(db2), free(dout), free(dout2);
}

// --- layer norm --------------------------------------------------------------------------------

typedef struct {
    float *x, *w, *b, *out, *mean, *rstd, *G;
    int B, D;
} LnCtx;

static double ln_loss(void *p)
{
    LnCtx *c = p;
    layernorm_forward(NULL, c->out, c->mean, c->rstd, c->x, c->w, c->b, c->B, c->D, 1e-6f);
    return dot(c->out, c->G, (size_t)c->B * c->D);
}

static void test_layernorm(int affine)
{
    int B = 3, D = 9;
    LnCtx c = {rnd((size_t)B * D, 2), affine ? rnd((size_t)D, 1) : NULL, affine ? rnd((size_t)D, 1) : NULL,
               malloc((size_t)B * D * 4), malloc((size_t)B * 4), malloc((size_t)B * 4), rnd((size_t)B * D, 1), B, D};
    ln_loss(&c);
    // normalised rows: mean 0, variance 1 (before the affine)
    if (!affine) {
        for (int b = 0; b < B; b++) {
            double m = 0, v = 0;
            for (int i = 0; i < D; i++)
                m += c.out[b * D + i];
            for (int i = 0; i < D; i++)
                v += c.out[b * D + i] * c.out[b * D + i];
            CHECK_CLOSE(m / D, 0.0, 1e-5, 0);
            CHECK_CLOSE(v / D, 1.0, 1e-4, 0);
        }
    }
    float *dx = malloc((size_t)B * D * 4), *dw = malloc((size_t)D * 4), *db = malloc((size_t)D * 4);
    layernorm_backward(NULL, dx, affine ? dw : NULL, affine ? db : NULL, c.G, c.x, c.w, c.mean, c.rstd, B, D);
    CHECK(fd_check(affine ? "layernorm dinp" : "LN0 dinp", c.x, (size_t)B * D, dx, ln_loss, &c, 1e-2f, 3e-3, 2e-2) == 0);
    if (affine) {
        CHECK(fd_check("layernorm dweight", c.w, (size_t)D, dw, ln_loss, &c, 1e-2f, 3e-3, 2e-2) == 0);
        CHECK(fd_check("layernorm dbias", c.b, (size_t)D, db, ln_loss, &c, 1e-2f, 3e-3, 2e-2) == 0);
    }
    free(c.x), free(c.w), free(c.b), free(c.out), free(c.mean), free(c.rstd), free(c.G), free(dx), free(dw), free(db);
}

// --- losses ------------------------------------------------------------------------------------

typedef struct {
    float *z, *t, *losses, *d;
    int32_t *y;
    int B, C, kind; /* 0 hard, 1 soft, 2 bce */
    float s;
} LossCtx;

static double loss_mean(void *p)
{
    LossCtx *c = p;
    if (c->kind == 0)
        ce_hard_forward_backward(NULL, c->losses, c->d, c->z, c->y, c->s, c->B, c->C);
    else if (c->kind == 1)
        ce_soft_forward_backward(NULL, c->losses, c->d, c->z, c->t, c->B, c->C);
    else
        bce_forward_backward(NULL, c->losses, c->d, c->z, c->t, c->B, c->C);
    double s = 0;
    for (int i = 0; i < c->B; i++)
        s += c->losses[i];
    return s / c->B;
}

static void test_losses(void)
{
    int B = 4, C = 6;
    int32_t y[4] = {0, 5, 2, 2};
    LossCtx c = {rnd((size_t)B * C, 2), calloc((size_t)B * C, 4), malloc((size_t)B * 4), malloc((size_t)B * C * 4),
                 y, B, C, 0, 0.2f};
    // hand value, row 0: -sum_c t_c log p_c with t = 0.2/6 everywhere + 0.8 at the label
    loss_mean(&c);
    double lse = 0, mx = c.z[0];
    for (int k = 1; k < C; k++)
        mx = c.z[k] > mx ? c.z[k] : mx;
    for (int k = 0; k < C; k++)
        lse += exp(c.z[k] - mx);
    lse = mx + log(lse);
    double want = 0;
    for (int k = 0; k < C; k++)
        want -= (0.2 / 6 + (k == 0 ? 0.8 : 0)) * (c.z[k] - lse);
    CHECK_CLOSE(c.losses[0], want, 1e-5, 1e-5);
    float *g = malloc((size_t)B * C * 4);
    memcpy(g, c.d, (size_t)B * C * 4);
    CHECK(fd_check("smoothed CE dlogits", c.z, (size_t)B * C, g, loss_mean, &c, 1e-2f, 1e-4, 1e-2) == 0);
    // soft targets: rows of a mixed batch (two classes, weights a and 1-a)
    c.kind = 1;
    for (int b = 0; b < B; b++) {
        c.t[b * C + b] = 0.3f;
        c.t[b * C + (b + 2) % C] += 0.7f;
    }
    loss_mean(&c);
    memcpy(g, c.d, (size_t)B * C * 4);
    CHECK(fd_check("soft CE dlogits", c.z, (size_t)B * C, g, loss_mean, &c, 1e-2f, 1e-4, 1e-2) == 0);
    // soft with a one-hot target equals hard with smoothing 0
    memset(c.t, 0, (size_t)B * C * 4);
    for (int b = 0; b < B; b++)
        c.t[b * C + y[b]] = 1.0f;
    double soft = loss_mean(&c);
    c.kind = 0;
    c.s = 0.0f;
    CHECK_CLOSE(loss_mean(&c), soft, 1e-6, 1e-6);
    // BCE: hand value of one entry, and gradients
    c.kind = 2;
    double b0 = loss_mean(&c), hand = 0;
    for (int b = 0; b < B; b++)
        for (int k = 0; k < C; k++) {
            double z = c.z[b * C + k], t = c.t[b * C + k], s = 1 / (1 + exp(-z));
            hand -= t * log(s) + (1 - t) * log(1 - s);
        }
    CHECK_CLOSE(b0, hand / (B * C), 1e-5, 1e-5);
    memcpy(g, c.d, (size_t)B * C * 4);
    CHECK(fd_check("BCE dlogits", c.z, (size_t)B * C, g, loss_mean, &c, 1e-2f, 1e-4, 1e-2) == 0);
    free(c.z), free(c.t), free(c.losses), free(c.d), free(g);
}

// --- mixing ------------------------------------------------------------------------------------

typedef struct {
    float *R, *X, *a, *G;
    int32_t *partner;
    int n_mix, B, H;
} MixCtx;

static double mix_loss(void *p)
{
    MixCtx *c = p;
    mix_forward(NULL, c->X, c->R, c->partner, c->a, c->n_mix, c->B, c->H);
    return dot(c->X, c->G, (size_t)c->B * c->H);
}

static void test_mix(void)
{
    int B = 5, H = 3;
    int32_t partner[5] = {3, 3, 0, 3, 4};
    float a[5] = {0.25f, 0.5f, 0.9f, 0.f, 0.f};
    MixCtx c = {rnd((size_t)B * H, 1), malloc((size_t)B * H * 4), a, rnd((size_t)B * H, 1), partner, 3, B, H};
    mix_loss(&c);
    CHECK_CLOSE(c.X[0], 0.75f * c.R[0] + 0.25f * c.R[9], 1e-6, 1e-6);
    CHECK(c.X[3 * H] == c.R[3 * H] && c.X[4 * H + 2] == c.R[4 * H + 2]); // rows >= n_mix untouched
    float *dR = malloc((size_t)B * H * 4);
    mix_backward(NULL, dR, c.G, partner, a, 3, B, H);
    CHECK(fd_check("mix dR", c.R, (size_t)B * H, dR, mix_loss, &c, 1e-2f, 1e-4, 1e-3) == 0);
    free(c.R), free(c.X), free(c.G), free(dR);
}

// --- AdamW -------------------------------------------------------------------------------------

static void test_adamw(void)
{
    float p[3] = {1.0f, -2.0f, 0.5f}, g[3] = {0.1f, -0.3f, 0.0f}, m[3] = {0}, v[3] = {0};
    double pd[3] = {1.0, -2.0, 0.5}, md[3] = {0}, vd[3] = {0};
    double lr = 1e-2, b1 = 0.9, b2 = 0.999, eps = 1e-8, wd = 0.05;
    for (long t = 1; t <= 3; t++) {
        adamw_update(NULL, p, g, m, v, 3, (float)lr, (float)b1, (float)b2, (float)eps, (float)wd, t, 0.5f);
        for (int i = 0; i < 3; i++) { // PyTorch's AdamW, written out
            double gi = g[i] * 0.5;
            pd[i] *= 1 - lr * wd;
            md[i] = b1 * md[i] + (1 - b1) * gi;
            vd[i] = b2 * vd[i] + (1 - b2) * gi * gi;
            double mh = md[i] / (1 - pow(b1, t)), vh = vd[i] / (1 - pow(b2, t));
            pd[i] -= lr * mh / (sqrt(vh) + eps);
        }
    }
    for (int i = 0; i < 3; i++)
        CHECK_CLOSE(p[i], pd[i], 1e-6, 1e-5);
}

// --- model table, evaluation forward, checkpoints ---------------------------------------------

static void test_model(const char *dir)
{
    ModelConfig cfg = {.D = 6, .H = 4, .C = 3};
    BackendCtx *ctx;
    char err[LMR_ERRLEN];
    CHECK_RC(backend_init(&ctx, BACKEND_CPU, 1, err), 0);
    Model m;
    CHECK_RC(model_init(&m, &cfg, ctx), 0);
    CHECK(m.n_tensors == 6 && strcmp(m.tensors[2].name, "pre_logits.weight") == 0);
    CHECK(m.tensors[2].shape[0] == 4 && m.tensors[2].shape[1] == 6 && m.tensors[4].shape[1] == 4);
    CHECK(m.n_params >= 6 + 6 + 24 + 4 + 12 + 3 && m.n_params == model_param_count(&cfg));
    CHECK(m.p.w1 == m.params + m.tensors[2].offset && m.g.w2 == m.grads + m.tensors[4].offset);
    Rng r;
    rng_seed(&r, 1, RNG_INIT, 0, 0);
    model_init_weights(&m, &r);
    CHECK(m.p.ln_w[0] == 1.0f && m.p.ln_b[5] == 0.0f && m.p.b2[2] == 0.0f);
    int within = 1;
    for (int i = 0; i < 12; i++)
        within &= fabsf(m.p.w2[i]) <= 0.04f; // truncated at 2 std
    CHECK(within);
    float x[12], z[6], u[12], h[8], mean[2], rstd[2], z2[6];
    fill_normal(x, 12, 1.0, &seed_state);
    CHECK_RC(model_logits(&m, x, 2, z), 0);
    layernorm_forward(NULL, u, mean, rstd, x, m.p.ln_w, m.p.ln_b, 2, 6, 1e-6f);
    linear_forward_naive(h, u, m.p.w1, m.p.b1, 2, 6, 4, ACT_TANH);
    linear_forward_naive(z2, h, m.p.w2, m.p.b2, 2, 4, 3, ACT_NONE);
    for (int i = 0; i < 6; i++)
        CHECK_CLOSE(z[i], z2[i], 1e-5, 1e-5);
    // checkpoint round trip: model_load gives the same logits, counts and dims
    int64_t counts[3] = {10, 0, 3};
    m.class_counts = malloc(sizeof counts);
    memcpy(m.class_counts, counts, sizeof counts);
    CkptInfo info = {.stage = "init", .sampler = "instance", .epochs = 1, .epoch = 1, .batch = 2, .lr = 1e-3,
                     .best_metric = -1};
    lmr_preset(&info.lmr, "ssv2-lt");
    char path[256];
    snprintf(path, sizeof path, "%s/m.safetensors", dir);
    CHECK_RC(checkpoint_save(path, &m, &info, NULL, err), 0);
    // in memory a weight is input-major (w1[i*H + o]); the file holds PyTorch's (out,in)
    {
        StFile sf;
        const StTensor *st;
        int64_t shape[2] = {4, 6};
        CHECK_RC(st_open(&sf, path), 0);
        CHECK_RC(st_expect(&sf, "pre_logits.weight", ST_F32, 2, shape, &st), 0);
        int same = 1;
        for (int o = 0; o < 4; o++)
            for (int i = 0; i < 6; i++) {
                float v;
                memcpy(&v, (const char *)st->data + sizeof v * (size_t)(o * 6 + i), sizeof v);
                same &= v == m.p.w1[i * 4 + o];
            }
        CHECK(same);
        st_close(&sf);
        // and back, from a source that is not 4-byte aligned
        float file[24], back[24];
        unsigned char raw[sizeof file + 1];
        model_tensor_to_file(&m.tensors[2], m.p.w1, file);
        memcpy(raw + 1, file, sizeof file);
        model_tensor_from_file(&m.tensors[2], raw + 1, back);
        CHECK(memcmp(back, m.p.w1, sizeof back) == 0 && file[1] == m.p.w1[4] && file[6] == m.p.w1[1]);
    }
    Model e;
    CHECK_RC(model_load(&e, path, err), 0);
    CHECK(model_classes(&e) == 3 && model_dim(&e) == 6 && model_hidden(&e) == 4);
    CHECK(model_class_counts(&e) && model_class_counts(&e)[0] == 10 && model_class_counts(&e)[2] == 3);
    float ze[6];
    CHECK_RC(model_logits(&e, x, 2, ze), 0);
    CHECK(memcmp(ze, z, sizeof z) == 0);
    model_free(&e);
    model_free(&e); // idempotent
    // a checkpoint whose tensor has another shape is refused, naming the tensor
    StFile f;
    CHECK_RC(st_open(&f, path), 0);
    float junk[64] = {0};
    StWriteTensor t[6];
    for (int i = 0; i < f.n_tensors && i < 6; i++)
        t[i] = (StWriteTensor){f.tensors[i].name, ST_F32, f.tensors[i].ndim, {0}, junk};
    for (int i = 0; i < 6; i++)
        for (int k = 0; k < t[i].ndim; k++)
            t[i].shape[k] = f.tensors[i].shape[k];
    for (int i = 0; i < 6; i++)
        if (strcmp(t[i].name, "head.weight") == 0)
            t[i].shape[1] = 5;
    CHECK_RC(st_write(path, t, 6, (const char *const *)f.meta_keys, (const char *const *)f.meta_vals, f.n_meta, err), 0);
    st_close(&f);
    CHECK_RC(model_load(&e, path, err), LMR_EMISMATCH);
    CHECK(strstr(err, "head.weight") != NULL);
    CHECK(model_load(&e, "/nonexistent/x.safetensors", err) < 0);
    // hidden 0: no pre_logits tensors, classifier reads LN(x)
    ModelConfig c0 = {.D = 6, .H = 0, .C = 3};
    Model m0;
    CHECK_RC(model_init(&m0, &c0, NULL), 0);
    CHECK(m0.n_tensors == 4 && m0.F == 6 && m0.p.w1 == NULL && m0.tensors[2].shape[1] == 6);
    model_free(&m0);
    model_free(&m);
    backend_free(&ctx);
    // a CUDA context starts exactly when a device is there (and lmr was built with CUDA)
    int rc = backend_init(&ctx, BACKEND_CUDA, 1, err);
    if (backend_available(BACKEND_CUDA)) {
        CHECK_RC(rc, 0);
        CHECK(ctx != NULL && backend_kind(ctx) == BACKEND_CUDA);
    } else {
        CHECK_RC(rc, LMR_ENODEV);
        CHECK(ctx == NULL);
    }
    backend_free(&ctx);
    CHECK(ctx == NULL);
}

// --- layer norm -> linear + tanh, parameter gradients only -------------------------------------

typedef struct {
    float *x, *gamma, *beta, *w, *b, *u, *h, *mean, *rstd, *G;
    int B, D, H;
} LnLinCtx;

static double ln_lin_loss(void *p)
{
    LnLinCtx *c = p;
    layernorm_forward(NULL, c->u, c->mean, c->rstd, c->x, c->gamma, c->beta, c->B, c->D, MODEL_LN_EPS);
    linear_forward(NULL, c->h, c->u, c->w, c->b, c->B, c->D, c->H, ACT_TANH);
    return dot(c->h, c->G, (size_t)c->B * c->H);
}

/* ln_linear_backward against the composed ops (linear_backward, then layernorm_backward), on one
 * thread and on two, and against finite differences of the whole LN -> linear -> tanh. */
static void test_ln_linear(int B, int D, int H, int fd)
{
    char err[LMR_ERRLEN];
    BackendCtx *two = NULL;
    CHECK_RC(backend_init(&two, BACKEND_CPU, 2, err), 0);
    LnLinCtx c = {rnd((size_t)B * D, 2), rnd((size_t)D, 0.5), rnd((size_t)D, 0.5), rnd((size_t)D * H, 0.3),
                  rnd((size_t)H, 0.3), malloc((size_t)B * D * 4), malloc((size_t)B * H * 4), malloc((size_t)B * 4),
                  malloc((size_t)B * 4), rnd((size_t)B * H, 1), B, D, H};
    for (int i = 0; i < D; i++)
        c.gamma[i] += 1.0f;
    ln_lin_loss(&c);
    size_t nw = (size_t)D * H;
    float *dW[3], *db[3], *dg[3], *dbe[3], *dout = malloc((size_t)B * H * 4);
    float *du = malloc((size_t)B * D * 4);
    for (int k = 0; k < 3; k++) {
        dW[k] = malloc(nw * 4), db[k] = malloc((size_t)H * 4), dg[k] = malloc((size_t)D * 4);
        dbe[k] = malloc((size_t)D * 4);
    }
    memcpy(dout, c.G, (size_t)B * H * 4);
    linear_backward(NULL, du, dW[0], db[0], dout, c.u, c.w, c.h, B, D, H, ACT_TANH);
    layernorm_backward(NULL, NULL, dg[0], dbe[0], du, c.x, c.gamma, c.mean, c.rstd, B, D);
    for (int k = 1; k < 3; k++) {
        memcpy(dout, c.G, (size_t)B * H * 4);
        CHECK_RC(ln_linear_backward(k == 1 ? NULL : two, dW[k], db[k], dg[k], dbe[k], dout, c.h, c.x, c.mean, c.rstd,
                                    c.gamma, c.beta, c.w, du, B, D, H, ACT_TANH), 0);
        int bad = 0;
        for (size_t i = 0; i < nw; i++)
            bad += fabsf(dW[k][i] - dW[0][i]) > 1e-5f + 1e-4f * fabsf(dW[0][i]);
        for (int i = 0; i < D; i++)
            bad += fabsf(dg[k][i] - dg[0][i]) > 1e-4f + 1e-4f * fabsf(dg[0][i]) ||
                   fabsf(dbe[k][i] - dbe[0][i]) > 1e-4f + 1e-4f * fabsf(dbe[0][i]);
        for (int i = 0; i < H; i++)
            bad += db[k][i] != db[0][i];
        CHECK(bad == 0);
    }
    if (fd) {
        CHECK(fd_check("ln->linear dgamma", c.gamma, (size_t)D, dg[1], ln_lin_loss, &c, 1e-2f, 2e-3, 1e-2) == 0);
        CHECK(fd_check("ln->linear dbeta", c.beta, (size_t)D, dbe[1], ln_lin_loss, &c, 1e-2f, 2e-3, 1e-2) == 0);
        CHECK(fd_check("ln->linear dW", c.w, nw, dW[1], ln_lin_loss, &c, 1e-2f, 2e-3, 1e-2) == 0);
    }
    float *all[] = {c.x, c.gamma, c.beta, c.w, c.b, c.u, c.h, c.mean, c.rstd, c.G, dout, du};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++)
        free(all[i]);
    for (int k = 0; k < 3; k++)
        free(dW[k]), free(db[k]), free(dg[k]), free(dbe[k]);
    backend_free(&two);
}

int main(void)
{
    char dir[] = "/tmp/lmr_model_XXXXXX";
    if (!mkdtemp(dir))
        return 1;
    TEST(1, "linear: sgemm path = naive loops; finite differences (no activation)");
    test_linear(ACT_NONE);
    TEST(2, "linear + tanh: finite differences");
    test_linear(ACT_TANH);
    TEST(3, "layer norm with affine: finite differences");
    test_layernorm(1);
    TEST(4, "layer norm without affine (LN0): unit rows, finite differences");
    test_layernorm(0);
    TEST(5, "losses: smoothed CE hand value, soft CE, BCE; finite differences");
    test_losses();
    TEST(6, "mixing: forward values, backward by finite differences");
    test_mix();
    TEST(7, "AdamW matches PyTorch's formulas over three steps");
    test_adamw();
    TEST(8, "model table, evaluation forward, checkpoint round trip and shape errors");
    test_model(dir);
    TEST(9, "LN -> linear + tanh, parameter gradients without the input gradient = the composed ops "
            "(1 and 2 threads); finite differences");
    test_ln_linear(5, 7, 4, 1);
    test_ln_linear(96, 300, 160, 0);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        return 1;
    CHECK_DONE();
}
