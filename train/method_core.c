/* What every method shares: the per-class tables (log prior, class-balanced weights, LDAM
 * margins), the soft targets, the cross-entropy and focal rows, class weighting, and the moves
 * between backend memory and the host around a method's hooks. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backend_cpu.h"
#include "method.h"

void method_params_default(MethodParams *p)
{
    *p = (MethodParams){.la_tau = 1.0,
                        .cb_beta = 0.9999,
                        .focal_gamma = -1.0,
                        .ldam_s = 30.0,
                        .ldam_max_m = 0.5,
                        .drw_frac = 0.8,
                        .eql_gamma = 0.9,
                        .eql_lambda = 0.005,
                        .mixup_alpha = 1.0,
                        .lws_lr = 0.0};
}

// --- per-class tables --------------------------------------------------------------------------

void method_log_prior(const int64_t *counts, int C, float *lp)
{
    double N = 0;
    for (int c = 0; c < C; c++)
        N += (double)counts[c];
    for (int c = 0; c < C; c++)
        lp[c] = (float)log((counts[c] > 0 ? (double)counts[c] : 0.5) / (N > 0 ? N : 1.0));
}

void method_cb_weights(const int64_t *counts, int C, double beta, float *w)
{
    // effective number E_n = (1 - beta^n) / (1 - beta); w = 1 / E_n, then rescaled so the weights
    // of the classes with clips sum to their number (Cui et al. 2019, class_balanced_loss.py)
    double sum = 0;
    int present = 0;
    double *t = malloc((size_t)C * sizeof *t);
    for (int c = 0; c < C; c++) {
        double v = 0;
        if (counts[c] > 0) {
            v = (1.0 - beta) / -expm1((double)counts[c] * log(beta)); // 1 - beta^n without cancellation
            present++;
        }
        if (t)
            t[c] = v;
        else
            w[c] = (float)v;
        sum += v;
    }
    for (int c = 0; c < C; c++)
        w[c] = sum > 0 ? (float)((t ? t[c] : (double)w[c]) / sum * present) : 0.0f;
    free(t);
}

void method_ldam_margins(const int64_t *counts, int C, double max_m, float *m)
{
    // m_c = 1 / n_c^(1/4), scaled so the largest is max_m (Cao et al. 2019, losses.py LDAMLoss)
    double mx = 0;
    for (int c = 0; c < C; c++)
        if (counts[c] > 0) {
            double v = 1.0 / sqrt(sqrt((double)counts[c]));
            mx = v > mx ? v : mx;
        }
    for (int c = 0; c < C; c++)
        m[c] = counts[c] > 0 && mx > 0 ? (float)(max_m / mx / sqrt(sqrt((double)counts[c]))) : 0.0f;
}

int method_drw_epoch(int epochs, double frac)
{
    return (int)floor(frac * epochs + 1e-9);
}

// --- loss rows -----------------------------------------------------------------------------------

/* d may alias z: each pass reads z[c] before writing d[c]. One exponential per entry (vexpf, which
 * vectorises), the sums in LANES partial sums. */
float method_ce_row(const float *z, const float *adj, const float *T, float *d, int C)
{
    float mx = -INFINITY;
    for (int c = 0; c < C; c++) {
        float v = adj ? z[c] + adj[c] : z[c];
        mx = v > mx ? v : mx;
    }
    float tz = 0.0f;
    if (adj)
        for (int c = 0; c < C; c++)
            tz += T[c] * (z[c] + adj[c]);
    else
        tz = row_dot(T, z, C);
    float ts = row_sum(T, C);
    if (adj)
        for (int c = 0; c < C; c++)
            d[c] = vexpf(z[c] + adj[c] - mx);
    else
        for (int c = 0; c < C; c++)
            d[c] = vexpf(z[c] - mx);
    float s = row_sum(d, C), k = ts / s;
    for (int c = 0; c < C; c++)
        d[c] = d[c] * k - T[c];
    return ts * (mx + logf(s)) - tz;
}

/* loss = -sum_c T_c g(p_c), g(p) = (1-p)^gamma log p (Lin et al. 2017 on a softmax). With
 * a_c = T_c g'(p_c) p_c the gradient is d_k = p_k sum_c a_c - a_k. */
float method_focal_row(const float *z, const float *T, float gamma, float *d, int C)
{
    float mx = -INFINITY;
    for (int c = 0; c < C; c++)
        mx = z[c] > mx ? z[c] : mx;
    for (int c = 0; c < C; c++)
        d[c] = vexpf(z[c] - mx);
    float s = row_sum(d, C), lse = mx + logf(s), inv = 1.0f / s;
    double loss = 0, asum = 0;
    for (int c = 0; c < C; c++) {
        float p = d[c] * inv, a = 0.0f;
        if (T[c] != 0.0f) {
            // g'(p) p = (1-p)^gamma - gamma p (1-p)^(gamma-1) log p; the second term -> 0 as p -> 1
            float lp = z[c] - lse, q = 1.0f - p;
            float qg = powf(q, gamma), qg1 = q > 0.0f ? powf(q, gamma - 1.0f) : 0.0f;
            a = T[c] * (qg - gamma * p * qg1 * lp);
            loss -= (double)T[c] * qg * lp;
        }
        d[c] = a;
        asum += a;
    }
    for (int c = 0; c < C; c++)
        d[c] = vexpf(z[c] - lse) * (float)asum - d[c];
    return (float)loss;
}

// --- set-up --------------------------------------------------------------------------------------

static void *zalloc(size_t n)
{
    return calloc(n ? n : 1, 1);
}

int method_init(MethodCtx *m, const Method *me, const MethodSetup *s, char *err)
{
    memset(m, 0, sizeof *m);
    m->m = me;
    m->p = s->p;
    m->ctx = s->ctx;
    m->hctx = backend_kind(s->ctx) == BACKEND_CPU ? s->ctx : NULL;
    m->C = s->C;
    m->B = s->B;
    m->Bg = s->Bg;
    m->D = s->D;
    m->F = s->F;
    m->epochs = s->epochs;
    m->seed = s->seed;
    m->lr = s->lr;
    m->init_path = s->init_path;
    m->smoothing = s->smoothing;
    m->freeze_rep = s->freeze_rep;
    m->counts = s->counts;
    size_t C = (size_t)s->C, B = (size_t)s->B, Bg = (size_t)s->Bg, fs = sizeof(float);
    m->log_prior = zalloc(C * fs);
    m->cb_w = zalloc(C * fs);
    m->margin = zalloc(C * fs);
    m->rare = zalloc(C);
    m->T = zalloc(Bg * C * fs);
    m->w = zalloc(Bg * fs);
    m->lh = zalloc(B * fs);
    if (!m->log_prior || !m->cb_w || !m->margin || !m->rare || !m->T || !m->w || !m->lh)
        return lmr_fail(err, LMR_ENOMEM, "out of memory for the method's tables");
    int device = backend_kind(s->ctx) != BACKEND_CPU;
    if (device && (me->loss || me->head_forward)) { // host copies of the logits and gradients
        m->zh = zalloc(B * C * fs);
        m->dzh = zalloc(B * C * fs);
        if (!m->zh || !m->dzh)
            return lmr_fail(err, LMR_ENOMEM, "out of memory for the method's host logits");
    }
    if (me->input && !(m->xh = zalloc(B * (size_t)s->D * fs)))
        return lmr_fail(err, LMR_ENOMEM, "out of memory for the method's inputs");
    if (me->head_forward && device) {
        m->fh = zalloc(B * (size_t)s->F * fs);
        m->dfh = zalloc(B * (size_t)s->F * fs);
        m->wh = zalloc((size_t)s->F * C * fs);
        m->dwh = zalloc((size_t)s->F * C * fs);
        if (!m->fh || !m->dfh || !m->wh || !m->dwh)
            return lmr_fail(err, LMR_ENOMEM, "out of memory for the method's host head");
    }
    method_log_prior(s->counts, s->C, m->log_prior);
    method_cb_weights(s->counts, s->C, m->p.cb_beta, m->cb_w);
    method_ldam_margins(s->counts, s->C, m->p.ldam_max_m, m->margin);
    return me->init ? me->init(m, err) : 0;
}

void method_free(MethodCtx *m)
{
    if (!m)
        return;
    if (m->m && m->m->free)
        m->m->free(m);
    void *p[] = {m->log_prior, m->cb_w, m->margin, m->rare, m->T, m->zh, m->dzh, m->lh, m->xh, m->w,
                 m->wh, m->fh, m->dfh, m->dwh, m->perm};
    for (size_t i = 0; i < sizeof p / sizeof *p; i++)
        free(p[i]);
    memset(m, 0, sizeof *m);
}

// --- the loss ------------------------------------------------------------------------------------

/* Soft targets of B rows: multi-hot / L, then (1 - s) t + s / C. */
static void build_targets(float *T, const int32_t *lab, const int32_t *off, int B, int C, float s)
{
    memset(T, 0, (size_t)B * C * sizeof *T);
    for (int i = 0; i < B; i++) {
        float *t = T + (size_t)i * C;
        int n = off[i + 1] - off[i];
        for (int q = off[i]; q < off[i + 1]; q++)
            t[lab[q]] += 1.0f / (float)n;
        if (s > 0)
            for (int c = 0; c < C; c++)
                t[c] = (1.0f - s) * t[c] + s / (float)C;
    }
}

/* The mean class weight of a row's labels. */
static float row_weight(const float *cw, const int32_t *lab, const int32_t *off, int i)
{
    float w = 0;
    for (int q = off[i]; q < off[i + 1]; q++)
        w += cw[lab[q]];
    return w / (float)(off[i + 1] - off[i]);
}

/* The loss rows [lo, hi) of a batch, weighted: a span for the cpu team. */
typedef struct {
    MethodCtx *m;
    long epoch, step;
    const int32_t *lab, *off;
    int row0;
    const float *z, *cw;
    float *dz, *losses, scale, inv_b;
} LossSpan;

static void loss_span(void *arg, size_t lo, size_t hi)
{
    const LossSpan *a = arg;
    MethodCtx *m = a->m;
    int C = m->C, i0 = (int)lo, n = (int)(hi - lo);
    size_t o = lo * (size_t)C;
    MethodLoss L = {n, C, a->z + o, m->T + o, a->lab, a->off + a->row0 + i0, a->epoch, a->step, a->row0 + i0,
                    a->losses + lo, a->dz + o};
    m->m->loss(m, &L);
    for (int i = i0; i < (int)hi; i++) {
        float r = a->cw ? a->scale * row_weight(a->cw, a->lab, a->off, a->row0 + i) : 1.0f, k = r * a->inv_b;
        a->losses[i] *= r;
        float *d = a->dz + (size_t)i * C;
        for (int c = 0; c < C; c++)
            d[c] *= k;
    }
}

void method_loss_host(MethodCtx *m, long epoch, long step, const int32_t *lab, const int32_t *off, int row0,
                      int B, const float *z, float *dz, float *losses)
{
    const Method *me = m->m;
    int C = m->C;
    build_targets(m->T, lab, off + row0, B, C, m->smoothing);
    if (me->targets)
        me->targets(m, m->T, B, C);
    int by_sum = 0;
    const float *cw = me->class_weights ? me->class_weights(m, epoch, &by_sum) : NULL;
    float scale = 1.0f;
    if (cw && by_sum) { // PyTorch's weighted mean: sum_i w_i l_i / sum_i w_i over the global batch
        double W = 0;
        int Bg = row0 + B > m->Bg ? row0 + B : m->Bg;
        for (int i = 0; i < Bg; i++)
            W += row_weight(cw, lab, off, i);
        scale = W > 0 ? (float)((double)Bg / W) : 0.0f;
    }
    // rows are independent (eql draws per row): cut across the cpu team like the trainer's own loss
    LossSpan a = {m, epoch, step, lab, off, row0, z, cw, dz, losses, scale, 1.0f / (float)B};
    backend_parallel(m->hctx, (size_t)B, (size_t)B * C, loss_span, &a);
}

int method_loss(MethodCtx *m, long epoch, long step, const int32_t *lab, const int32_t *off, int row0,
                const float *z, float *dz, float *losses)
{
    size_t zb = (size_t)m->B * m->C * sizeof(float);
    if (backend_kind(m->ctx) == BACKEND_CPU) {
        method_loss_host(m, epoch, step, lab, off, row0, m->B, z, dz, losses);
        return 0;
    }
    // device: no kernel for these losses; the logits come down, the gradient goes up (O(B C)
    // each way, next to the O(B F C) head GEMM)
    int rc = backend_download(m->ctx, m->zh, z, zb);
    if (rc < 0)
        return rc;
    method_loss_host(m, epoch, step, lab, off, row0, m->B, m->zh, m->dzh, m->lh);
    if ((rc = backend_upload(m->ctx, dz, m->dzh, zb)) < 0)
        return rc;
    return backend_upload(m->ctx, losses, m->lh, (size_t)m->B * sizeof(float));
}

// --- input and head hooks ------------------------------------------------------------------------

const float *method_input(MethodCtx *m, long epoch, long step, const float *x, float *xo)
{
    if (!m->m || !m->m->input)
        return NULL;
    if (backend_kind(m->ctx) == BACKEND_CPU) {
        m->m->input(m, epoch, step, x, xo, m->B, m->D);
        return xo;
    }
    // device: mixed on the host, then uploaded
    m->m->input(m, epoch, step, x, m->xh, m->B, m->D);
    backend_upload(m->ctx, xo, m->xh, (size_t)m->B * m->D * sizeof(float));
    return xo;
}

int method_head_forward(MethodCtx *m, float *z, const float *f, const float *w)
{
    if (!m->m || !m->m->head_forward)
        return 0;
    int B = m->B, F = m->F, C = m->C;
    if (backend_kind(m->ctx) == BACKEND_CPU) {
        m->m->head_forward(m, z, f, w, B, F, C);
        return 1;
    }
    // device: no kernel for the normalised head; features and weights come down, logits go up
    backend_download(m->ctx, m->fh, f, (size_t)B * F * sizeof(float));
    backend_download(m->ctx, m->wh, w, (size_t)F * C * sizeof(float));
    m->m->head_forward(m, m->zh, m->fh, m->wh, B, F, C);
    backend_upload(m->ctx, z, m->zh, (size_t)B * C * sizeof(float));
    return 1;
}

int method_head_backward(MethodCtx *m, float *df, float *dw, float *db, const float *dz, const float *f,
                         const float *w)
{
    if (!m->m || !m->m->head_backward)
        return 0;
    int B = m->B, F = m->F, C = m->C;
    backend_zero(m->ctx, db, (size_t)C * sizeof(float)); // these heads have no bias
    if (backend_kind(m->ctx) == BACKEND_CPU) {
        m->m->head_backward(m, df, dw, dz, f, w, B, F, C);
        return 1;
    }
    // device: the host copies of f and w from the forward are still current
    backend_download(m->ctx, m->dzh, dz, (size_t)B * C * sizeof(float));
    m->m->head_backward(m, m->dfh, m->dwh, m->dzh, m->fh, m->wh, B, F, C);
    backend_upload(m->ctx, df, m->dfh, (size_t)B * F * sizeof(float));
    backend_upload(m->ctx, dw, m->dwh, (size_t)F * C * sizeof(float));
    return 1;
}

// --- the optimiser -------------------------------------------------------------------------------

void method_optim_step(MethodCtx *m, Model *model, const AdamWConfig *c, double lr, long t)
{
    if (m->m && m->m->step && m->m->step(m, model, c, lr, t))
        return;
    if (!m->freeze_rep) {
        optim_step(model, c, lr, t);
        return;
    }
    // frozen representation: AdamW (and the clipping norm) over the classifier's tensors only,
    // which are the last ones of the block
    size_t off = (size_t)(model->p.w2 - model->params), n = model->n_params - off;
    double norm = c->clip > 0 ? sqrt(backend_sumsq(model->ctx, model->grads + off, n)) : -1.0;
    float scale = c->clip > 0 && norm > c->clip ? (float)(c->clip / (norm + 1e-6)) : 1.0f;
    adamw_update(model->ctx, model->params + off, model->grads + off, model->m + off, model->v + off, n, (float)lr,
                 (float)c->beta1, (float)c->beta2, (float)c->eps, (float)c->weight_decay, t, scale);
}
