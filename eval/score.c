/* Scoring clips with a checkpoint. The forward is train/'s own (model_logits on the host, the
 * same backend ops on a GPU), so lmr-eval and lmr-train's validation compute the same numbers.
 * Per clip, the views' probabilities are summed: softmax for heads trained with cross-entropy,
 * sigmoid for heads trained with BCE (VideoLT's baselines), whose classes are independent. */
#include "score.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"

static void release_device(Scorer *s)
{
    float **bufs[] = {&s->d_params, &s->d_x, &s->d_u, &s->d_h, &s->d_mean, &s->d_rstd, &s->d_logits};
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++) {
        if (*bufs[i] && s->ctx)
            backend_release(s->ctx, *bufs[i]);
        *bufs[i] = NULL;
    }
    s->cap_rows = 0;
}

int scorer_open(Scorer *s, const char *ckpt, const char *device, int threads, char *err)
{
    memset(s, 0, sizeof *s);
    snprintf(s->path, sizeof s->path, "%s", ckpt);
    int rc = model_load(&s->model, ckpt, err); // refuses NaN or infinite weights, naming the tensor
    if (rc < 0) {
        model_free(&s->model);
        return rc;
    }
    s->sigmoid = strcmp(s->model.loss, "bce") == 0;
    BackendKind kind;
    if (!device || strcmp(device, "cpu") == 0)
        kind = BACKEND_CPU;
    else if (strcmp(device, "cuda") == 0)
        kind = BACKEND_CUDA;
    else {
        scorer_close(s);
        return lmr_fail(err, LMR_EINVAL, "unknown device '%s' (cpu or cuda)", device);
    }
    rc = backend_init(&s->ctx, kind, threads, err);
    if (rc < 0) {
        scorer_close(s);
        return rc;
    }
    if (kind == BACKEND_CUDA) {
        s->on_device = 1;
        size_t bytes = s->model.n_params * sizeof(float);
        rc = backend_alloc(s->ctx, (void **)&s->d_params, bytes);
        if (rc == 0)
            rc = backend_upload(s->ctx, s->d_params, s->model.params, bytes);
        if (rc < 0) {
            lmr_fail(err, rc, "%s: cannot copy the model to the GPU", ckpt);
            scorer_close(s);
            return rc;
        }
        model_views(&s->model, s->d_params, &s->dv);
    }
    return 0;
}

void scorer_close(Scorer *s)
{
    if (!s)
        return;
    release_device(s);
    model_free(&s->model);
    backend_free(&s->ctx);
    free(s->logits);
    memset(s, 0, sizeof *s);
}

static int grow_device(Scorer *s, int rows)
{
    const ModelConfig *c = &s->model.cfg;
    int cap = s->cap_rows ? s->cap_rows : 256;
    while (cap < rows)
        cap *= 2;
    float *params = s->d_params;
    s->d_params = NULL; // keep the weights across the regrowth
    release_device(s);
    s->d_params = params;
    size_t n = (size_t)cap;
    int rc = backend_alloc(s->ctx, (void **)&s->d_x, n * (size_t)c->D * sizeof(float));
    if (!rc)
        rc = backend_alloc(s->ctx, (void **)&s->d_u, n * (size_t)c->D * sizeof(float));
    if (!rc && c->H > 0)
        rc = backend_alloc(s->ctx, (void **)&s->d_h, n * (size_t)c->H * sizeof(float));
    if (!rc)
        rc = backend_alloc(s->ctx, (void **)&s->d_mean, n * sizeof(float));
    if (!rc)
        rc = backend_alloc(s->ctx, (void **)&s->d_rstd, n * sizeof(float));
    if (!rc)
        rc = backend_alloc(s->ctx, (void **)&s->d_logits, n * (size_t)c->C * sizeof(float));
    if (rc < 0)
        return LMR_FAIL(s, rc, "%s: out of GPU memory for %d rows", s->path, cap);
    s->cap_rows = cap;
    return 0;
}

static int logits_device(Scorer *s, const float *x, int rows)
{
    const ModelConfig *c = &s->model.cfg;
    if (rows > s->cap_rows)
        LMR_TRY(grow_device(s, rows));
    int rc = backend_upload(s->ctx, s->d_x, x, (size_t)rows * (size_t)c->D * sizeof(float));
    if (rc < 0)
        return LMR_FAIL(s, rc, "%s: upload to the GPU failed", s->path);
    layernorm_forward(s->ctx, s->d_u, s->d_mean, s->d_rstd, s->d_x, s->dv.ln_w, s->dv.ln_b, rows,
                      c->D, MODEL_LN_EPS);
    const float *f = s->d_u;
    if (c->H > 0) {
        linear_forward(s->ctx, s->d_h, s->d_u, s->dv.w1, s->dv.b1, rows, c->D, c->H, ACT_TANH);
        f = s->d_h;
    }
    linear_forward(s->ctx, s->d_logits, f, s->dv.w2, s->dv.b2, rows, s->model.F, c->C, ACT_NONE);
    rc = backend_download(s->ctx, s->logits, s->d_logits, (size_t)rows * (size_t)c->C * sizeof(float));
    if (rc == 0)
        rc = backend_sync(s->ctx);
    if (rc < 0)
        return LMR_FAIL(s, rc, "%s: GPU forward failed", s->path);
    return 0;
}

int scorer_run(Scorer *s, const float *x, int n, int views, float *scores)
{
    int C = s->model.cfg.C, rows = n * views;
    if (rows > s->cap_host) {
        float *l = realloc(s->logits, (size_t)rows * (size_t)C * sizeof *l);
        if (!l)
            return LMR_FAIL(s, LMR_ENOMEM, "out of memory for %d x %d logits", rows, C);
        s->logits = l;
        s->cap_host = rows;
    }
    if (s->on_device && s->model.head_scale <= 0) {
        LMR_TRY(logits_device(s, x, rows));
    } else {
        // cosine heads (ldam-drw, --posthoc ncm) have no device forward: the host one
        s->model.ctx = s->on_device ? NULL : s->ctx; // the cpu context carries the thread count
        int rc = model_logits(&s->model, x, rows, s->logits);
        s->model.ctx = NULL;
        if (rc < 0)
            return LMR_FAIL(s, rc, "%s: %s", s->path, s->model.last_error);
    }
    for (int i = 0; i < n; i++) {
        const float *z = s->logits + (size_t)i * views * C;
        float *out = scores + (size_t)i * C;
        if (!s->sigmoid) {
            eval_sum_softmax(z, views, C, out);
            continue;
        }
        for (int c = 0; c < C; c++) {
            double sum = 0;
            for (int v = 0; v < views; v++)
                sum += 1.0 / (1.0 + exp(-(double)z[(size_t)v * C + c]));
            out[c] = (float)sum;
        }
    }
    return 0;
}
