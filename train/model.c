/* The head's parameter table, its four contiguous blocks, initialisation, checkpoint loading for
 * evaluation and the evaluation forward. The table is the single source of tensor names, shapes
 * and offsets: allocation, views, checkpoint writing (checkpoint.c) and loading all walk it. */
#include "model.h"

#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "rng.h"
#include "safetensors.h"

static int fill_table(ModelTensor *t, const ModelConfig *cfg, int *F)
{
    int n = 0;
    size_t off = 0;
    *F = cfg->H > 0 ? cfg->H : cfg->D;
#define ADD(nm, nd, s0, s1)                                                 \
    do {                                                                    \
        t[n] = (ModelTensor){nm, nd, {s0, s1}, off, (size_t)(s0) * ((nd) == 2 ? (size_t)(s1) : 1)}; \
        off += (t[n].numel + 15) & ~(size_t)15; /* 64-byte aligned views */ \
        n++;                                                                \
    } while (0)
    ADD("ln.weight", 1, cfg->D, 0);
    ADD("ln.bias", 1, cfg->D, 0);
    if (cfg->H > 0) {
        ADD("pre_logits.weight", 2, cfg->H, cfg->D);
        ADD("pre_logits.bias", 1, cfg->H, 0);
    }
    ADD("head.weight", 2, cfg->C, *F);
    ADD("head.bias", 1, cfg->C, 0);
#undef ADD
    return n;
}

size_t model_param_count(const ModelConfig *cfg)
{
    ModelTensor t[MODEL_MAX_TENSORS];
    int F, n = fill_table(t, cfg, &F);
    return t[n - 1].offset + ((t[n - 1].numel + 15) & ~(size_t)15);
}

static float *view(const Model *m, float *block, const char *name)
{
    for (int i = 0; i < m->n_tensors; i++)
        if (strcmp(m->tensors[i].name, name) == 0)
            return block + m->tensors[i].offset;
    return NULL;
}

void model_views(const Model *m, float *block, ModelViews *o)
{
    memset(o, 0, sizeof *o);
    if (!block)
        return;
    o->ln_w = view(m, block, "ln.weight");
    o->ln_b = view(m, block, "ln.bias");
    o->w1 = view(m, block, "pre_logits.weight");
    o->b1 = view(m, block, "pre_logits.bias");
    o->w2 = view(m, block, "head.weight");
    o->b2 = view(m, block, "head.bias");
}

static int block_alloc(Model *m, float **p)
{
    size_t bytes = m->n_params * sizeof(float);
    if (m->ctx)
        return backend_alloc(m->ctx, (void **)p, bytes);
    *p = calloc(m->n_params, sizeof(float));
    return *p ? 0 : LMR_ENOMEM;
}

int model_init(Model *m, const ModelConfig *cfg, BackendCtx *ctx)
{
    memset(m, 0, sizeof *m);
    if (cfg->D <= 0 || cfg->H < 0 || cfg->C <= 0)
        return LMR_FAIL(m, LMR_EINVAL, "model: bad dims D=%d H=%d C=%d", cfg->D, cfg->H, cfg->C);
    m->cfg = *cfg;
    m->ctx = ctx;
    m->n_tensors = fill_table(m->tensors, cfg, &m->F);
    m->n_params = model_param_count(cfg);
    snprintf(m->loss, sizeof m->loss, "softmax");
    int rc = block_alloc(m, &m->params);
    if (rc == 0 && ctx) {
        if ((rc = block_alloc(m, &m->grads)) == 0 && (rc = block_alloc(m, &m->m)) == 0)
            rc = block_alloc(m, &m->v);
    }
    if (rc < 0) {
        size_t n = m->n_params; // model_free clears it
        model_free(m);
        return LMR_FAIL(m, LMR_ENOMEM, "model: out of memory for %zu parameters (D=%d H=%d C=%d)", n, cfg->D,
                        cfg->H, cfg->C);
    }
    model_views(m, m->params, &m->p);
    model_views(m, m->grads, &m->g);
    return 0;
}

void model_free(Model *m)
{
    if (!m)
        return;
    float *blocks[4] = {m->params, m->grads, m->m, m->v};
    for (int i = 0; i < 4; i++) {
        if (m->ctx)
            backend_release(m->ctx, blocks[i]);
        else
            free(blocks[i]);
    }
    free(m->class_counts);
    free(m->head_center);
    free(m->ws);
    memset(m, 0, sizeof *m);
}

// --- initialisation (host side: the trainer uploads for a device backend) ----------------------

/* Weights are drawn in PyTorch's (out,in) order, so a seed gives the same model whatever the
 * in-memory layout, and stored input-major: element (o, i) at w[i * n_out + o]. */
static void trunc_normal(float *w, int n_out, int n_in, double std, Rng *rng)
{
    for (size_t o = 0; o < (size_t)n_out; o++)
        for (size_t i = 0; i < (size_t)n_in; i++) {
            double x;
            do
                x = rng_normal(rng);
            while (x < -2.0 || x > 2.0);
            w[i * n_out + o] = (float)(x * std);
        }
}

/* dst (cols, rows) = src (rows, cols) transposed, element by element through memcpy (a file's
 * tensor data need not be 4-byte aligned), in tiles so both sides stay in cache. */
static void transpose(void *dst, const void *src, size_t rows, size_t cols)
{
    enum { TILE = 32 };
    unsigned char *d = dst;
    const unsigned char *s = src;
    for (size_t r0 = 0; r0 < rows; r0 += TILE)
        for (size_t c0 = 0; c0 < cols; c0 += TILE)
            for (size_t r = r0; r < rows && r < r0 + TILE; r++)
                for (size_t c = c0; c < cols && c < c0 + TILE; c++)
                    memcpy(d + (c * rows + r) * sizeof(float), s + (r * cols + c) * sizeof(float), sizeof(float));
}

void model_tensor_to_file(const ModelTensor *t, const float *mem, float *file)
{
    if (t->ndim != 2)
        memcpy(file, mem, t->numel * sizeof *file);
    else // memory (in,out) -> file (out,in)
        transpose(file, mem, (size_t)t->shape[1], (size_t)t->shape[0]);
}

void model_tensor_from_file(const ModelTensor *t, const void *file, float *mem)
{
    if (t->ndim != 2)
        memcpy(mem, file, t->numel * sizeof *mem);
    else // file (out,in) -> memory (in,out)
        transpose(mem, file, (size_t)t->shape[0], (size_t)t->shape[1]);
}

void model_reinit_head(Model *m, Rng *rng)
{
    trunc_normal(m->p.w2, m->cfg.C, m->F, 0.02, rng);
    memset(m->p.b2, 0, (size_t)m->cfg.C * sizeof(float));
}

void model_init_weights(Model *m, Rng *rng)
{
    const ModelConfig *c = &m->cfg;
    for (int i = 0; i < c->D; i++) {
        m->p.ln_w[i] = 1.0f;
        m->p.ln_b[i] = 0.0f;
    }
    if (c->H > 0) {
        // PyTorch's nn.Linear default: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weight and bias
        float bound = 1.0f / sqrtf((float)c->D);
        for (size_t o = 0; o < (size_t)c->H; o++)
            for (size_t i = 0; i < (size_t)c->D; i++)
                m->p.w1[i * c->H + o] = (2.0f * rng_uniform(rng) - 1.0f) * bound;
        for (int i = 0; i < c->H; i++)
            m->p.b1[i] = (2.0f * rng_uniform(rng) - 1.0f) * bound;
    }
    model_reinit_head(m, rng);
}

// --- loading ---------------------------------------------------------------------------------

static int meta_int(StFile *f, const char *key, int *out, const char *path, char *err)
{
    const char *s = st_meta(f, key);
    char *end;
    long v = s ? strtol(s, &end, 10) : 0;
    if (!s || *end || v < 0 || v > (1L << 30))
        return lmr_fail(err, s ? LMR_EPARSE : LMR_ENOTFOUND, "%s: metadata '%s' %s", path, key,
                        s ? "is not a count" : "missing: not an lmr-train checkpoint");
    *out = (int)v;
    return 0;
}

int model_load(Model *m, const char *ckpt, char *err)
{
    StFile f;
    memset(m, 0, sizeof *m);
    int rc = st_open(&f, ckpt);
    if (rc < 0)
        return lmr_fail(err, rc, "%s", f.last_error);
    ModelConfig cfg;
    if ((rc = meta_int(&f, "dims", &cfg.D, ckpt, err)) < 0 || (rc = meta_int(&f, "hidden", &cfg.H, ckpt, err)) < 0 ||
        (rc = meta_int(&f, "classes", &cfg.C, ckpt, err)) < 0)
        goto done;
    if ((rc = model_init(m, &cfg, NULL)) < 0) {
        lmr_fail(err, rc, "%s: %s", ckpt, m->last_error);
        goto done;
    }
    for (int i = 0; i < m->n_tensors; i++) {
        const ModelTensor *t = &m->tensors[i];
        const StTensor *st;
        if ((rc = st_expect(&f, t->name, ST_F32, t->ndim, t->shape, &st)) < 0) {
            lmr_fail(err, rc, "%s: %s", ckpt, f.last_error);
            goto done;
        }
        model_tensor_from_file(t, st->data, m->params + t->offset);
        for (size_t k = 0; k < t->numel; k++)
            if (!isfinite(m->params[t->offset + k])) {
                rc = lmr_fail(err, LMR_ENAN, "%s: tensor %s holds NaN or inf", ckpt, t->name);
                goto done;
            }
    }
    const char *scale = st_meta(&f, "head_scale");
    if (scale)
        m->head_scale = strtof(scale, NULL);
    const char *loss = st_meta(&f, "loss");
    if (loss)
        snprintf(m->loss, sizeof m->loss, "%s", loss);
    const char *counts = st_meta(&f, "class_counts");
    if (counts) {
        json_t *a = json_loads(counts, 0, NULL);
        if (!json_is_array(a) || (int)json_array_size(a) != cfg.C) {
            json_decref(a);
            rc = lmr_fail(err, LMR_ECORRUPT, "%s: class_counts is not a list of %d counts", ckpt, cfg.C);
            goto done;
        }
        m->class_counts = calloc((size_t)cfg.C, sizeof *m->class_counts);
        if (!m->class_counts) {
            json_decref(a);
            rc = lmr_fail(err, LMR_ENOMEM, "%s: out of memory", ckpt);
            goto done;
        }
        for (int c = 0; c < cfg.C && rc == 0; c++) {
            json_t *v = json_array_get(a, (size_t)c);
            if (!json_is_integer(v) || json_integer_value(v) < 0)
                rc = lmr_fail(err, LMR_ECORRUPT, "%s: class_counts[%d] is not a count of clips", ckpt, c);
            m->class_counts[c] = json_integer_value(v);
        }
        json_decref(a);
        if (rc < 0)
            goto done;
    }
    rc = 0;
done:
    st_close(&f);
    if (rc < 0)
        model_free(m);
    return rc;
}

// --- evaluation forward --------------------------------------------------------------------

/* The cosine classifier: scale times the cosine between f and each class's weight column. */
static int cosine_logits(Model *m, const float *f, int B, float *logits)
{
    int F = m->F, C = m->cfg.C;
    float *fn = malloc(((size_t)B * F + (size_t)F * C + C) * sizeof *fn);
    if (!fn)
        return LMR_FAIL(m, LMR_ENOMEM, "model_logits: out of memory for batch %d", B);
    float *wn = fn + (size_t)B * F, *norm = wn + (size_t)F * C;
    for (int i = 0; i < B; i++) {
        float *o = fn + (size_t)i * F;
        double ss = 0;
        for (int k = 0; k < F; k++) {
            o[k] = f[(size_t)i * F + k] - (m->head_center ? m->head_center[k] : 0.0f);
            ss += (double)o[k] * o[k];
        }
        float r = 1.0f / fmaxf((float)sqrt(ss), 1e-12f);
        for (int k = 0; k < F; k++)
            o[k] *= r * m->head_scale;
    }
    for (int c = 0; c < C; c++)
        norm[c] = 0.0f;
    for (int k = 0; k < F; k++)
        for (int c = 0; c < C; c++)
            norm[c] += m->p.w2[(size_t)k * C + c] * m->p.w2[(size_t)k * C + c];
    for (int c = 0; c < C; c++)
        norm[c] = 1.0f / fmaxf(sqrtf(norm[c]), 1e-12f);
    for (int k = 0; k < F; k++)
        for (int c = 0; c < C; c++)
            wn[(size_t)k * C + c] = m->p.w2[(size_t)k * C + c] * norm[c];
    memset(norm, 0, (size_t)C * sizeof *norm); // the bias: none
    linear_forward(m->ctx, logits, fn, wn, norm, B, F, C, ACT_NONE);
    free(fn);
    return 0;
}

int model_logits(Model *m, const float *x, int B, float *logits)
{
    if (m->ctx && backend_kind(m->ctx) != BACKEND_CPU)
        return LMR_FAIL(m, LMR_EINVAL, "model_logits: host models only");
    const ModelConfig *c = &m->cfg;
    size_t need = (size_t)B * ((size_t)c->D + (size_t)c->H + 2);
    if (need > m->ws_len) {
        float *w = realloc(m->ws, need * sizeof *w);
        if (!w)
            return LMR_FAIL(m, LMR_ENOMEM, "model_logits: out of memory for batch %d", B);
        m->ws = w;
        m->ws_len = need;
    }
    float *u = m->ws, *h = u + (size_t)B * c->D, *mean = h + (size_t)B * c->H, *rstd = mean + B;
    layernorm_forward(m->ctx, u, mean, rstd, x, m->p.ln_w, m->p.ln_b, B, c->D, MODEL_LN_EPS);
    const float *f = u;
    if (c->H > 0) {
        linear_forward(m->ctx, h, u, m->p.w1, m->p.b1, B, c->D, c->H, ACT_TANH);
        f = h;
    }
    if (m->head_scale > 0)
        return cosine_logits(m, f, B, logits);
    linear_forward(m->ctx, logits, f, m->p.w2, m->p.b2, B, m->F, c->C, ACT_NONE);
    return 0;
}
