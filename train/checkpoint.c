/* Checkpoint writing and reading on top of formats/safetensors. Every value in the metadata is
 * printed with a fixed format so the same state always gives the same bytes. */
#include "checkpoint.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "safetensors.h"

#define MAX_META 32

typedef struct {
    const char *k[MAX_META];
    char *v[MAX_META];
    int n;
} Meta;

static void meta_add(Meta *m, const char *key, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void meta_add(Meta *m, const char *key, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    if (vasprintf(&s, fmt, ap) < 0)
        s = NULL;
    va_end(ap);
    m->k[m->n] = key;
    m->v[m->n++] = s;
}

static char *counts_json(const int64_t *counts, int C)
{
    json_t *a = json_array();
    for (int c = 0; c < C; c++)
        json_array_append_new(a, json_integer(counts ? counts[c] : 0));
    char *s = json_dumps(a, JSON_COMPACT);
    json_decref(a);
    return s;
}

/* A whole block (params, or an Adam moment laid out like them) into the checkpoint's layout:
 * PyTorch's (out,in) weights; the padding between tensors stays zero. */
static void block_to_file(const Model *m, const float *mem, float *file)
{
    memset(file, 0, m->n_params * sizeof *file);
    for (int i = 0; i < m->n_tensors; i++)
        model_tensor_to_file(&m->tensors[i], mem + m->tensors[i].offset, file + m->tensors[i].offset);
}

int checkpoint_save(const char *path, const Model *m, const CkptInfo *in, const LmrBank *bank, char *err)
{
    int rc = 0;
    Meta meta = {0};
    StWriteTensor t[MODEL_MAX_TENSORS + 5];
    int n = 0;
    size_t np = m->n_params;
    float *host = NULL; // params (+ m, v) downloaded from backend memory
    void *bank_host = NULL;
    char *counts = counts_json(m->class_counts, m->cfg.C);
    int resume = bank != NULL;
    host = malloc(np * sizeof(float) * (resume ? 4 : 2)); // a block as in memory; params, m, v as in the file
    if (!host || !counts) {
        rc = lmr_fail(err, LMR_ENOMEM, "%s: out of memory", path);
        goto done;
    }
    float *file = host + np;
    backend_download(m->ctx, host, m->params, np * sizeof(float));
    block_to_file(m, host, file);
    for (int i = 0; i < m->n_tensors; i++) {
        const ModelTensor *mt = &m->tensors[i];
        t[n++] = (StWriteTensor){mt->name, ST_F32, mt->ndim, {mt->shape[0], mt->shape[1]}, file + mt->offset};
    }
    meta_add(&meta, "format", "%s", CKPT_FORMAT);
    meta_add(&meta, "lmr_version", "%s", LMR_VERSION);
    meta_add(&meta, "stage", "%s", in->stage);
    meta_add(&meta, "lmr_off", "%d", in->lmr_off);
    meta_add(&meta, "sampler", "%s", in->sampler);
    meta_add(&meta, "method", "%s", in->method);
    meta_add(&meta, "freeze_rep", "%d", in->freeze_rep);
    meta_add(&meta, "epochs", "%ld", in->epochs);
    meta_add(&meta, "epoch", "%ld", in->epoch);
    meta_add(&meta, "step_in_epoch", "%ld", in->step_in_epoch);
    meta_add(&meta, "step", "%ld", in->global_step);
    meta_add(&meta, "batch", "%d", in->batch);
    meta_add(&meta, "seed", "%llu", (unsigned long long)in->seed);
    meta_add(&meta, "lr", "%.17g", in->lr);
    meta_add(&meta, "classes", "%d", m->cfg.C);
    meta_add(&meta, "dims", "%d", m->cfg.D);
    meta_add(&meta, "hidden", "%d", m->cfg.H);
    meta_add(&meta, "loss", "%s", m->loss);
    if (m->head_scale > 0) // a cosine classifier (method ldam-drw): z = s <f/|f|, w_c/|w_c|>
        meta_add(&meta, "head_scale", "%.9g", m->head_scale);
    meta_add(&meta, "class_counts", "%s", counts);
    meta_add(&meta, "lmr",
             "{\"l\":%.17g,\"h\":%.17g,\"d\":%.17g,\"eps\":%.17g,\"p\":%.17g,\"omega\":%d,\"K\":%d,"
             "\"allow_nonmonotone\":%d}",
             in->lmr.l, in->lmr.h, in->lmr.d, in->lmr.eps, in->lmr.p, in->lmr.omega, in->lmr.K,
             in->lmr.allow_nonmonotone);
    meta_add(&meta, "best_metric", "%.17g", in->best_metric);
    if (resume) {
        // the moments in the parameters' file layout, so a resume file reads the same everywhere
        float *hm = host + 2 * np, *hv = host + 3 * np;
        backend_download(m->ctx, host, m->m, np * sizeof(float));
        block_to_file(m, host, hm);
        backend_download(m->ctx, host, m->v, np * sizeof(float));
        block_to_file(m, host, hv);
        t[n++] = (StWriteTensor){"optim.m", ST_F32, 1, {(int64_t)np}, hm};
        t[n++] = (StWriteTensor){"optim.v", ST_F32, 1, {(int64_t)np}, hv};
        size_t nk = (size_t)bank->K * bank->B, kb = nk * bank->F * sizeof(float);
        bank_host = malloc(2 * kb + nk);
        if (!bank_host) {
            rc = lmr_fail(err, LMR_ENOMEM, "%s: out of memory", path);
            goto done;
        }
        uint8_t *bh = bank_host;
        backend_download(m->ctx, bh, bank->keys, kb);
        backend_download(m->ctx, bh + kb, bank->keys_n, kb);
        backend_download(m->ctx, bh + 2 * kb, bank->key_ok, nk);
        t[n++] = (StWriteTensor){"bank.keys", ST_F32, 2, {(int64_t)nk, bank->F}, bh};
        t[n++] = (StWriteTensor){"bank.keys_n", ST_F32, 2, {(int64_t)nk, bank->F}, bh + kb};
        t[n++] = (StWriteTensor){"bank.key_ok", ST_U8, 1, {(int64_t)nk}, bh + 2 * kb};
        meta_add(&meta, "bank.n_filled", "%d", bank->n_filled);
        meta_add(&meta, "bank.n_pushed", "%ld", bank->n_pushed);
    }
    for (int i = 0; i < meta.n; i++)
        if (!meta.v[i]) {
            rc = lmr_fail(err, LMR_ENOMEM, "%s: out of memory", path);
            goto done;
        }
    rc = st_write(path, t, n, meta.k, (const char *const *)meta.v, meta.n, err);
done:
    for (int i = 0; i < meta.n; i++)
        free(meta.v[i]);
    free(counts);
    free(host);
    free(bank_host);
    return rc;
}

static int get_long(StFile *f, const char *key, long *out, const char *path, char *err)
{
    const char *s = st_meta(f, key);
    char *end;
    if (!s)
        return lmr_fail(err, LMR_ENOTFOUND, "%s: metadata '%s' missing", path, key);
    *out = strtol(s, &end, 10);
    if (*end)
        return lmr_fail(err, LMR_EPARSE, "%s: metadata '%s' = '%s' is not an integer", path, key, s);
    return 0;
}

static double get_double(StFile *f, const char *key, double dflt)
{
    const char *s = st_meta(f, key);
    return s ? strtod(s, NULL) : dflt;
}

int checkpoint_read_info(const char *path, CkptInfo *in, ModelConfig *cfg, char *err)
{
    StFile f;
    memset(in, 0, sizeof *in);
    int rc = st_open(&f, path);
    if (rc < 0)
        return lmr_fail(err, rc, "%s", f.last_error);
    const char *fmt = st_meta(&f, "format");
    long v[9];
    const char *keys[9] = {"epochs", "epoch", "step_in_epoch", "step", "batch", "classes", "dims", "hidden", "lmr_off"};
    if (!fmt || strcmp(fmt, CKPT_FORMAT) != 0) {
        rc = lmr_fail(err, LMR_EPARSE, "%s: not an lmr-train checkpoint (format '%s')", path, fmt ? fmt : "");
        goto done;
    }
    for (int i = 0; i < 9; i++)
        if ((rc = get_long(&f, keys[i], &v[i], path, err)) < 0)
            goto done;
    in->epochs = v[0];
    in->epoch = v[1];
    in->step_in_epoch = v[2];
    in->global_step = v[3];
    in->batch = (int)v[4];
    cfg->C = (int)v[5];
    cfg->D = (int)v[6];
    cfg->H = (int)v[7];
    in->lmr_off = (int)v[8];
    snprintf(in->stage, sizeof in->stage, "%s", st_meta(&f, "stage") ? st_meta(&f, "stage") : "");
    snprintf(in->sampler, sizeof in->sampler, "%s", st_meta(&f, "sampler") ? st_meta(&f, "sampler") : "");
    const char *method = st_meta(&f, "method");
    snprintf(in->method, sizeof in->method, "%s",
             method ? method : strcmp(in->stage, "init") == 0 ? "ce" : in->lmr_off ? "crt" : "lmr");
    in->freeze_rep = st_meta(&f, "freeze_rep") ? atoi(st_meta(&f, "freeze_rep")) : 0;
    const char *seed = st_meta(&f, "seed");
    in->seed = seed ? strtoull(seed, NULL, 10) : 0;
    in->lr = get_double(&f, "lr", 0);
    in->best_metric = get_double(&f, "best_metric", -1);
    json_t *l = json_loads(st_meta(&f, "lmr") ? st_meta(&f, "lmr") : "{}", 0, NULL);
    if (l) {
        in->lmr.l = json_number_value(json_object_get(l, "l"));
        in->lmr.h = json_number_value(json_object_get(l, "h"));
        in->lmr.d = json_number_value(json_object_get(l, "d"));
        in->lmr.eps = json_number_value(json_object_get(l, "eps"));
        in->lmr.p = json_number_value(json_object_get(l, "p"));
        in->lmr.omega = (int)json_integer_value(json_object_get(l, "omega"));
        in->lmr.K = (int)json_integer_value(json_object_get(l, "K"));
        in->lmr.allow_nonmonotone = (int)json_integer_value(json_object_get(l, "allow_nonmonotone"));
        json_decref(l);
    }
    rc = 0;
done:
    st_close(&f);
    return rc;
}

static int copy_tensor(StFile *f, const char *name, StDtype dt, int ndim, const int64_t *shape, void *dst,
                       BackendCtx *ctx, const char *path, char *err)
{
    const StTensor *t;
    int rc = st_expect(f, name, dt, ndim, shape, &t);
    if (rc < 0)
        return lmr_fail(err, rc, "%s: %s", path, f->last_error);
    if (ctx)
        return backend_upload(ctx, dst, t->data, t->nbytes);
    memcpy(dst, t->data, t->nbytes);
    return 0;
}

/* A block laid out like the parameters into dst (backend memory), from the checkpoint's layout:
 * the named tensors (name NULL), or one flat tensor holding the whole block in file layout. */
static int load_block(StFile *f, Model *m, const char *name, float *dst, const char *path, char *err)
{
    float *host = calloc(m->n_params, sizeof *host); // padding between views stays zero
    if (!host)
        return lmr_fail(err, LMR_ENOMEM, "%s: out of memory", path);
    int rc = 0;
    const StTensor *flat = NULL;
    int64_t np = (int64_t)m->n_params;
    if (name && (rc = st_expect(f, name, ST_F32, 1, &np, &flat)) < 0)
        rc = lmr_fail(err, rc, "%s: %s", path, f->last_error);
    for (int i = 0; i < m->n_tensors && rc == 0; i++) {
        const ModelTensor *mt = &m->tensors[i];
        const StTensor *t;
        if (flat)
            model_tensor_from_file(mt, (const unsigned char *)flat->data + mt->offset * sizeof(float),
                                   host + mt->offset);
        else if ((rc = st_expect(f, mt->name, ST_F32, mt->ndim, mt->shape, &t)) < 0)
            rc = lmr_fail(err, rc, "%s: %s", path, f->last_error);
        else
            model_tensor_from_file(mt, t->data, host + mt->offset);
    }
    if (rc == 0 && m->ctx)
        rc = backend_upload(m->ctx, dst, host, m->n_params * sizeof *host);
    else if (rc == 0)
        memcpy(dst, host, m->n_params * sizeof *host);
    free(host);
    return rc;
}

static int load_params(StFile *f, Model *m, const char *path, char *err)
{
    return load_block(f, m, NULL, m->params, path, err);
}

int checkpoint_load_params(const char *path, Model *m, char *err)
{
    StFile f;
    int rc = st_open(&f, path);
    if (rc < 0)
        return lmr_fail(err, rc, "%s", f.last_error);
    rc = load_params(&f, m, path, err);
    st_close(&f);
    return rc;
}

int checkpoint_load_resume(const char *path, Model *m, LmrBank *bank, char *err)
{
    StFile f;
    int rc = st_open(&f, path);
    if (rc < 0)
        return lmr_fail(err, rc, "%s", f.last_error);
    int64_t nk = (int64_t)bank->K * bank->B, kf[2] = {nk, bank->F};
    long filled = 0, pushed = 0;
    if ((rc = load_params(&f, m, path, err)) < 0 ||
        (rc = load_block(&f, m, "optim.m", m->m, path, err)) < 0 ||
        (rc = load_block(&f, m, "optim.v", m->v, path, err)) < 0 ||
        (rc = copy_tensor(&f, "bank.keys", ST_F32, 2, kf, bank->keys, m->ctx, path, err)) < 0 ||
        (rc = copy_tensor(&f, "bank.keys_n", ST_F32, 2, kf, bank->keys_n, m->ctx, path, err)) < 0 ||
        (rc = copy_tensor(&f, "bank.key_ok", ST_U8, 1, &nk, bank->key_ok, m->ctx, path, err)) < 0 ||
        (rc = get_long(&f, "bank.n_filled", &filled, path, err)) < 0 ||
        (rc = get_long(&f, "bank.n_pushed", &pushed, path, err)) < 0)
        goto done;
    if (filled < 0 || filled > bank->K || pushed < filled) {
        rc = lmr_fail(err, LMR_ECORRUPT, "%s: bank position %ld/%ld out of range", path, filled, pushed);
        goto done;
    }
    bank->n_filled = (int)filled;
    bank->n_pushed = pushed;
done:
    st_close(&f);
    return rc;
}
