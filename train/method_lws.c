/* lws: learnable weight scaling (Kang et al., "Decoupling Representation and Classifier for
 * Long-Tailed Recognition", ICLR 2020, section 4): the init's classifier W0, b0 is kept and only a
 * per-class scale s_c (init 1) is trained, class-balanced: z_c = s_c (<w0_c, f> + b0_c). Everything
 * else is frozen. The scales take AdamW steps of their own (no weight decay) at --lws-lr times the
 * stage's schedule; the stage's rate (1e-4) barely moves them, see METHOD_LWS_LR.
 *
 * The model always holds the scaled classifier (s W0, s b0), so validation, checkpoints and
 * lmr-eval see a plain linear head. For --resume the scales and their two moments ride in the
 * checkpoint's optimiser blocks, in slots AdamW leaves unused here: the first C entries of
 * head.weight's first moment hold s, head.bias's first and second moments hold s's. */
#include <stdlib.h>
#include <string.h>

#include "method.h"

typedef struct {
    float *w0, *b0, *s, *m1, *v1, *ds, *gw, *gb, *w, *b; /* (F,C) (C) (C) (C) (C) (C) (F,C) (C) (F,C) (C) */
    int started;
} Lws;

static int lws_init(MethodCtx *m, char *err)
{
    size_t F = (size_t)m->F, C = (size_t)m->C, fs = sizeof(float);
    Lws *l = calloc(1, sizeof *l);
    if (!l)
        return lmr_fail(err, LMR_ENOMEM, "out of memory");
    m->priv = l;
    m->freeze_rep = 1; // nothing but the scales trains: the representation's backward is skipped
    float **v[] = {&l->w0, &l->gw, &l->w}, **c[] = {&l->b0, &l->s, &l->m1, &l->v1, &l->ds, &l->gb, &l->b};
    for (size_t i = 0; i < sizeof v / sizeof *v; i++)
        if (!(*v[i] = calloc(F * C, fs)))
            return lmr_fail(err, LMR_ENOMEM, "out of memory for the scales");
    for (size_t i = 0; i < sizeof c / sizeof *c; i++)
        if (!(*c[i] = calloc(C, fs)))
            return lmr_fail(err, LMR_ENOMEM, "out of memory for the scales");
    // W0, b0: the init checkpoint's classifier (also after a resume, when the model holds s W0)
    Model init;
    int rc = model_load(&init, m->init_path, err);
    if (rc < 0)
        return rc;
    if (init.F != m->F || init.cfg.C != m->C) {
        model_free(&init);
        return lmr_fail(err, LMR_EMISMATCH, "%s: classifier %dx%d, this run's %dx%d", m->init_path, init.cfg.C,
                        init.F, m->C, m->F);
    }
    memcpy(l->w0, init.p.w2, F * C * fs);
    memcpy(l->b0, init.p.b2, C * fs);
    model_free(&init);
    return 0;
}

static void lws_free(MethodCtx *m)
{
    Lws *l = m->priv;
    if (l) {
        float *p[] = {l->w0, l->b0, l->s, l->m1, l->v1, l->ds, l->gw, l->gb, l->w, l->b};
        for (size_t i = 0; i < sizeof p / sizeof *p; i++)
            free(p[i]);
        free(l);
    }
    m->priv = NULL;
}

static int lws_step(MethodCtx *m, Model *model, const AdamWConfig *a, double lr, long t)
{
    Lws *l = m->priv;
    int F = m->F, C = m->C;
    size_t fc = (size_t)F * C * sizeof(float), cb = (size_t)C * sizeof(float);
    ModelViews mv, vv;
    model_views(model, model->m, &mv);
    model_views(model, model->v, &vv);
    if (!l->started) { // a fresh run starts at s = 1; a resumed one reads s and its moments back
        if (t == 1) {
            for (int c = 0; c < C; c++)
                l->s[c] = 1.0f;
        } else {
            backend_download(m->ctx, l->s, mv.w2, cb);
            backend_download(m->ctx, l->m1, mv.b2, cb);
            backend_download(m->ctx, l->v1, vv.b2, cb);
        }
        l->started = 1;
    }
    // dL/ds_c = sum_b dz_bc (<w0_c, f_b> + b0_c) = sum_f dW[f,c] w0[f,c] + db_c b0_c
    backend_download(m->ctx, l->gw, model->g.w2, fc);
    backend_download(m->ctx, l->gb, model->g.b2, cb);
    for (int c = 0; c < C; c++)
        l->ds[c] = l->gb[c] * l->b0[c];
    for (int f = 0; f < F; f++) {
        const float *g = l->gw + (size_t)f * C, *w = l->w0 + (size_t)f * C;
        for (int c = 0; c < C; c++)
            l->ds[c] += g[c] * w[c];
    }
    double rate = (m->p.lws_lr > 0 ? m->p.lws_lr : METHOD_LWS_LR) * (m->lr > 0 ? lr / m->lr : 1.0);
    adamw_update(NULL, l->s, l->ds, l->m1, l->v1, (size_t)C, (float)rate, (float)a->beta1, (float)a->beta2,
                 (float)a->eps, 0.0f, t, 1.0f);
    for (int f = 0; f < F; f++) {
        const float *w = l->w0 + (size_t)f * C;
        float *o = l->w + (size_t)f * C;
        for (int c = 0; c < C; c++)
            o[c] = l->s[c] * w[c];
    }
    for (int c = 0; c < C; c++)
        l->b[c] = l->s[c] * l->b0[c];
    backend_upload(m->ctx, model->p.w2, l->w, fc);
    backend_upload(m->ctx, model->p.b2, l->b, cb);
    backend_upload(m->ctx, mv.w2, l->s, cb);
    backend_upload(m->ctx, mv.b2, l->m1, cb);
    backend_upload(m->ctx, vv.b2, l->v1, cb);
    return 1;
}

const Method method_lws = {
    .name = "lws",
    .stage = METHOD_FINETUNE,
    .sampler = SAMPLER_CLASS,
    .keep_head = 1,
    .help = "learnable weight scaling: the init's classifier kept, per-class scales trained "
            "(--lws-lr, Kang et al. 2020)",
    .init = lws_init,
    .free = lws_free,
    .step = lws_step,
};
