/* Checkpoint writing and reading on top of formats/safetensors. Every value in the metadata is
 * printed with a fixed format so the same state always gives the same bytes. */
#include "checkpoint.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>

#include "safetensors.h"

#define MAX_META 40

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

/* A copy from backend memory failed: nothing is written. */
static int download_fail(const Model *m, int rc, const char *path, const char *what, char *err)
{
    const char *why = m->ctx ? backend_last_error(m->ctx) : "";
    return lmr_fail(err, rc, "%s: not written: copying the %s from the device failed: %s", path, what,
                    why[0] ? why : lmr_strerror(rc));
}

int checkpoint_save(const char *path, const Model *m, const CkptInfo *in, const LmrBank *bank, char *err)
{
    int rc = 0;
    Meta meta = {0};
    StWriteTensor t[MODEL_MAX_TENSORS + 6];
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
    if ((rc = backend_download(m->ctx, host, m->params, np * sizeof(float))) < 0) {
        rc = download_fail(m, rc, path, "parameters", err);
        goto done;
    }
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
    if (in->provenance)
        meta_add(&meta, "provenance", "%s", in->provenance);
    if (in->settings)
        meta_add(&meta, "settings", "%s", in->settings);
    if (in->command)
        meta_add(&meta, "command", "%s", in->command);
    if (in->train_digest[0])
        meta_add(&meta, "train_digest", "%s", in->train_digest);
    if (in->init_digest[0])
        meta_add(&meta, "init_digest", "%s", in->init_digest);
    if (resume) {
        // the moments in the parameters' file layout, so a resume file reads the same everywhere
        float *hm = host + 2 * np, *hv = host + 3 * np;
        if ((rc = backend_download(m->ctx, host, m->m, np * sizeof(float))) < 0) {
            rc = download_fail(m, rc, path, "Adam moments", err);
            goto done;
        }
        block_to_file(m, host, hm);
        if ((rc = backend_download(m->ctx, host, m->v, np * sizeof(float))) < 0) {
            rc = download_fail(m, rc, path, "Adam moments", err);
            goto done;
        }
        block_to_file(m, host, hv);
        t[n++] = (StWriteTensor){"optim.m", ST_F32, 1, {(int64_t)np}, hm};
        t[n++] = (StWriteTensor){"optim.v", ST_F32, 1, {(int64_t)np}, hv};
        size_t nk = (size_t)bank->K * bank->B, kb = nk * bank->F * sizeof(float), cb = nk * sizeof(int32_t);
        bank_host = malloc(2 * kb + cb + nk);
        if (!bank_host) {
            rc = lmr_fail(err, LMR_ENOMEM, "%s: out of memory", path);
            goto done;
        }
        uint8_t *bh = bank_host;
        if ((rc = backend_download(m->ctx, bh, bank->keys, kb)) < 0 ||
            (rc = backend_download(m->ctx, bh + kb, bank->keys_n, kb)) < 0 ||
            (rc = backend_download(m->ctx, bh + 2 * kb, bank->key_clip, cb)) < 0 ||
            (rc = backend_download(m->ctx, bh + 2 * kb + cb, bank->key_ok, nk)) < 0) {
            rc = download_fail(m, rc, path, "memory bank", err);
            goto done;
        }
        t[n++] = (StWriteTensor){"bank.keys", ST_F32, 2, {(int64_t)nk, bank->F}, bh};
        t[n++] = (StWriteTensor){"bank.keys_n", ST_F32, 2, {(int64_t)nk, bank->F}, bh + kb};
        t[n++] = (StWriteTensor){"bank.key_ok", ST_U8, 1, {(int64_t)nk}, bh + 2 * kb + cb};
        t[n++] = (StWriteTensor){"bank.key_clip", ST_I32, 1, {(int64_t)nk}, bh + 2 * kb};
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
    errno = 0;
    *out = strtol(s, &end, 10);
    if (!*s || *end || errno)
        return lmr_fail(err, LMR_EPARSE, "%s: metadata '%s' = '%s' is not an integer", path, key, s);
    return 0;
}

/* A real-valued key: absent gives dflt; present must be a finite number. */
static int get_double(StFile *f, const char *key, double dflt, double *out, const char *path, char *err)
{
    const char *s = st_meta(f, key);
    char *end;
    *out = dflt;
    if (!s)
        return 0;
    *out = strtod(s, &end);
    if (!*s || *end || !isfinite(*out))
        return lmr_fail(err, LMR_EPARSE, "%s: metadata '%s' = '%s' is not a finite number", path, key, s);
    return 0;
}

/* The "lmr" object: every member present in it a number of the right kind. */
static int get_lmr(StFile *f, LmrParams *p, const char *path, char *err)
{
    const char *s = st_meta(f, "lmr");
    if (!s)
        return 0;
    json_t *l = json_loads(s, 0, NULL);
    int rc = json_is_object(l) ? 0 : LMR_EPARSE;
    double *real[] = {&p->l, &p->h, &p->d, &p->eps, &p->p};
    const char *rk[] = {"l", "h", "d", "eps", "p"};
    for (int i = 0; i < 5 && rc == 0; i++) {
        json_t *v = json_object_get(l, rk[i]);
        if (v && !json_is_number(v))
            rc = LMR_EPARSE;
        *real[i] = json_number_value(v);
        rc |= isfinite(*real[i]) ? 0 : LMR_EPARSE;
    }
    int *ints[] = {&p->omega, &p->K, &p->allow_nonmonotone};
    const char *ik[] = {"omega", "K", "allow_nonmonotone"};
    for (int i = 0; i < 3 && rc == 0; i++) {
        json_t *v = json_object_get(l, ik[i]);
        if (v && (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > INT32_MAX))
            rc = LMR_EPARSE;
        *ints[i] = (int)json_integer_value(v);
    }
    json_decref(l);
    return rc ? lmr_fail(err, LMR_EPARSE, "%s: metadata 'lmr' = '%.80s' is not an object of finite numbers", path, s)
              : 0;
}

/* What a file that is not a checkpoint holds, from its first bytes: "" when not one of lmr's. */
static const char *other_kind(const char *path)
{
    unsigned char b[32] = {0};
    FILE *fp = fopen(path, "rb");
    size_t n = fp ? fread(b, 1, sizeof b, fp) : 0;
    if (fp)
        fclose(fp);
    uint32_t lmdb_magic = 0;
    if (n >= 20)
        memcpy(&lmdb_magic, b + 16, 4); // the first meta page, after its 16-byte page header
    if (n >= 8 && memcmp(b, "\x89HDF\r\n\x1a\n", 8) == 0)
        return " (this is an HDF5 file: a shard? --init takes the init stage's checkpoint)";
    if (lmdb_magic == 0xBEEFC0DE)
        return " (this is an LMDB file: a shard? --init takes the init stage's checkpoint)";
    if (n >= 8 && memcmp(b, "LMRREC01", 8) == 0)
        return " (this is a .rec record stream, not a checkpoint)";
    return "";
}

int checkpoint_read_info(const char *path, CkptInfo *in, ModelConfig *cfg, char *err)
{
    StFile f;
    memset(in, 0, sizeof *in);
    int rc = st_open(&f, path);
    if (rc < 0) {
        const char *kind = rc == LMR_EPARSE || rc == LMR_ECORRUPT || rc == LMR_ETRUNC ? other_kind(path) : "";
        if (kind[0])
            return lmr_fail(err, LMR_EPARSE, "%s: not a safetensors checkpoint%s", path, kind);
        return lmr_fail(err, rc, "%s", f.last_error);
    }
    const char *fmt = st_meta(&f, "format");
    long v[9];
    const char *keys[9] = {"epochs", "epoch", "step_in_epoch", "step", "batch", "classes", "dims", "hidden", "lmr_off"};
    // the smallest and largest value each may take
    const long lo[9] = {1, 0, 0, 0, 1, 1, 1, 0, 0}, hi[9] = {1000000, 1000000, 1L << 40, 1L << 50, 1 << 24,
                                                          1 << 24, 1 << 24, 1 << 20, 1};
    if (!fmt || strcmp(fmt, CKPT_FORMAT) != 0) {
        rc = lmr_fail(err, LMR_EPARSE, "%s: not an lmr-train checkpoint (format '%s')", path, fmt ? fmt : "");
        goto done;
    }
    for (int i = 0; i < 9; i++) {
        if ((rc = get_long(&f, keys[i], &v[i], path, err)) < 0)
            goto done;
        if (v[i] < lo[i] || v[i] > hi[i]) {
            rc = lmr_fail(err, LMR_EPARSE, "%s: metadata '%s' = %ld is outside [%ld, %ld]", path, keys[i], v[i],
                          lo[i], hi[i]);
            goto done;
        }
    }
    if (v[1] > v[0]) {
        rc = lmr_fail(err, LMR_EPARSE, "%s: metadata epoch %ld is past its epochs %ld", path, v[1], v[0]);
        goto done;
    }
    in->epochs = v[0];
    in->epoch = v[1];
    in->step_in_epoch = v[2];
    in->global_step = v[3];
    in->batch = (int)v[4];
    cfg->C = (int)v[5];
    cfg->D = (int)v[6];
    cfg->H = (int)v[7];
    in->lmr_off = (int)v[8];
    const char *stage = st_meta(&f, "stage");
    if (!stage || (strcmp(stage, "init") && strcmp(stage, "lmr"))) {
        rc = lmr_fail(err, LMR_EPARSE, "%s: metadata 'stage' = '%s' is not init or lmr", path, stage ? stage : "");
        goto done;
    }
    snprintf(in->stage, sizeof in->stage, "%s", stage);
    snprintf(in->sampler, sizeof in->sampler, "%s", st_meta(&f, "sampler") ? st_meta(&f, "sampler") : "");
    const char *method = st_meta(&f, "method");
    snprintf(in->method, sizeof in->method, "%s",
             method ? method : strcmp(in->stage, "init") == 0 ? "ce" : in->lmr_off ? "crt" : "lmr");
    in->freeze_rep = st_meta(&f, "freeze_rep") ? atoi(st_meta(&f, "freeze_rep")) : 0;
    const char *seed = st_meta(&f, "seed");
    char *end = NULL;
    errno = 0;
    in->seed = seed ? strtoull(seed, &end, 10) : 0;
    if (seed && (*seed < '0' || *seed > '9' || *end || errno)) {
        rc = lmr_fail(err, LMR_EPARSE, "%s: metadata 'seed' = '%s' is not an unsigned integer", path, seed);
        goto done;
    }
    if ((rc = get_double(&f, "lr", 0, &in->lr, path, err)) < 0 ||
        (rc = get_double(&f, "best_metric", -1, &in->best_metric, path, err)) < 0 ||
        (rc = get_lmr(&f, &in->lmr, path, err)) < 0)
        goto done;
    const char *digest[2] = {st_meta(&f, "train_digest"), st_meta(&f, "init_digest")};
    snprintf(in->train_digest, sizeof in->train_digest, "%s", digest[0] ? digest[0] : "");
    snprintf(in->init_digest, sizeof in->init_digest, "%s", digest[1] ? digest[1] : "");
    rc = 0;
done:
    st_close(&f);
    return rc;
}

int checkpoint_read_meta(const char *path, const char *key, char **out, char *err)
{
    StFile f;
    *out = NULL;
    int rc = st_open(&f, path);
    if (rc < 0)
        return lmr_fail(err, rc, "%s", f.last_error);
    const char *v = st_meta(&f, key);
    if (v && !(*out = strdup(v)))
        rc = lmr_fail(err, LMR_ENOMEM, "%s: out of memory", path);
    st_close(&f);
    return rc;
}

char *checkpoint_provenance_json(const ShardMeta *m)
{
    json_t *o = json_object();
    json_object_set_new(o, "dataset", json_string(m->dataset));
    json_object_set_new(o, "split", json_string(m->split));
    json_object_set_new(o, "mode", json_string(m->mode));
    json_object_set_new(o, "frames", json_integer(m->frames));
    json_object_set_new(o, "size", json_integer(m->size));
    json_object_set_new(o, "backbone", json_string(m->backbone));
    json_object_set_new(o, "weights_checksum", json_string(m->weights_checksum));
    if (m->n_class_names > 0) {
        json_t *names = json_array();
        for (int c = 0; c < m->n_class_names; c++)
            json_array_append_new(names, json_string(m->class_names[c]));
        json_object_set_new(o, "class_names", names);
    }
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return s;
}

/* "" for fields a pipe or an older tool left unset. */
static int unsaid(const char *s) { return !s || !s[0] || strcmp(s, "-") == 0; }

int checkpoint_check_features(const char *ckpt_path, const ShardMeta *m, int allow, char *msg)
{
    char *prov = NULL;
    int rc = checkpoint_read_meta(ckpt_path, "provenance", &prov, msg);
    if (rc < 0)
        return rc;
    if (!prov)
        return lmr_fail(msg, CKPT_FEATURES_UNCHECKED,
                        "%s records no feature provenance (written by an older lmr-train): whether the shards' "
                        "features (backbone %s, weights %s) are the ones it was trained on is not checked",
                        ckpt_path, unsaid(m->backbone) ? "unknown" : m->backbone,
                        unsaid(m->weights_checksum) ? "unknown" : m->weights_checksum);
    json_t *o = json_loads(prov, 0, NULL);
    free(prov);
    if (!json_is_object(o)) {
        json_decref(o);
        return lmr_fail(msg, LMR_EPARSE, "%s: metadata 'provenance' is not a JSON object", ckpt_path);
    }
    const char *bb = json_string_value(json_object_get(o, "backbone"));
    const char *ws = json_string_value(json_object_get(o, "weights_checksum"));
    char cb[64], cw[24];
    snprintf(cb, sizeof cb, "%s", bb ? bb : "");
    snprintf(cw, sizeof cw, "%s", ws ? ws : "");
    json_decref(o);
    int differ = (!unsaid(cb) && !unsaid(m->backbone) && strcmp(cb, m->backbone)) ||
                 (!unsaid(cw) && !unsaid(m->weights_checksum) && strcmp(cw, m->weights_checksum));
    if (differ)
        return lmr_fail(msg, allow ? CKPT_FEATURES_OVERRIDDEN : LMR_EMISMATCH,
                        "%s was trained on features of backbone %s (weights %s); these shards hold backbone %s "
                        "(weights %s)%s",
                        ckpt_path, unsaid(cb) ? "unknown" : cb, unsaid(cw) ? "unknown" : cw,
                        unsaid(m->backbone) ? "unknown" : m->backbone,
                        unsaid(m->weights_checksum) ? "unknown" : m->weights_checksum,
                        allow ? ": going on as --allow-other-features asks; the results mix two feature spaces"
                              : " (--allow-other-features to use them anyway)");
    int cb_un = unsaid(cb), sb_un = unsaid(m->backbone), cw_un = unsaid(cw), sw_un = unsaid(m->weights_checksum);
    if (cb_un != sb_un || cw_un != sw_un)
        return lmr_fail(msg, CKPT_FEATURES_UNCHECKED,
                        "%s (backbone %s, weights %s) and the shards (backbone %s, weights %s): the %s does not "
                        "say where its features came from, so they are not compared",
                        ckpt_path, cb_un ? "unknown" : cb, cw_un ? "unknown" : cw, sb_un ? "unknown" : m->backbone,
                        sw_un ? "unknown" : m->weights_checksum,
                        (cb_un && !sb_un) || (cw_un && !sw_un) ? "checkpoint" : "shard set");
    if (msg)
        msg[0] = 0;
    return 0;
}

int checkpoint_file_digest(const char *path, char hex[17], char *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return lmr_fail(err, -errno, "%s: %s", path, strerror(errno));
    XXH3_state_t *st = XXH3_createState();
    char *buf = malloc(1 << 20);
    int rc = st && buf ? 0 : lmr_fail(err, LMR_ENOMEM, "%s: out of memory", path);
    if (rc == 0)
        XXH3_64bits_reset(st);
    ssize_t n;
    while (rc == 0 && (n = read(fd, buf, 1 << 20)) != 0) {
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            rc = lmr_fail(err, -errno, "%s: %s", path, strerror(errno));
        else
            XXH3_64bits_update(st, buf, (size_t)n);
    }
    if (rc == 0)
        snprintf(hex, 17, "%016llx", (unsigned long long)XXH3_64bits_digest(st));
    close(fd);
    free(buf);
    XXH3_freeState(st);
    return rc;
}

static int copy_tensor(StFile *f, const char *name, StDtype dt, int ndim, const int64_t *shape, void *dst,
                       BackendCtx *ctx, const char *path, char *err)
{
    const StTensor *t;
    int rc = st_expect(f, name, dt, ndim, shape, &t);
    if (rc < 0)
        return lmr_fail(err, rc, "%s: %s", path, f->last_error);
    if (dt == ST_F32)
        for (size_t k = 0; k < t->nbytes / sizeof(float); k++) {
            float x;
            memcpy(&x, (const char *)t->data + k * sizeof x, sizeof x);
            if (!isfinite(x))
                return lmr_fail(err, LMR_ENAN, "%s: tensor %s holds NaN or inf", path, name);
        }
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
    for (size_t k = 0; rc == 0 && k < m->n_params; k++)
        if (!isfinite(host[k])) {
            const char *t = name;
            for (int i = 0; i < m->n_tensors && !t; i++)
                if (k >= m->tensors[i].offset && k < m->tensors[i].offset + m->tensors[i].numel)
                    t = m->tensors[i].name;
            rc = lmr_fail(err, LMR_ENAN, "%s: tensor %s holds NaN or inf", path, t ? t : "?");
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
        // written before keys kept their clip: its keys mask nothing by clip (lmr_bank_init's -1)
        (st_find(&f, "bank.key_clip") &&
         (rc = copy_tensor(&f, "bank.key_clip", ST_I32, 1, &nk, bank->key_clip, m->ctx, path, err)) < 0) ||
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
