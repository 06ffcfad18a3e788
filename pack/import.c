/* The importer core: for each clip a source names, read its features, check the shape against the
 * shard's (views and D fixed, T free), convert to the records' dtype (the shard's, the one asked
 * for, or the first readable clip's), keep --max-frames evenly spaced rows of each view, refuse
 * NaN/Inf, encode and put. A clip that cannot be stored is reported and counted (strict: the
 * error); a shard that cannot be written ends the run. One payload and one record buffer are reused,
 * so memory does not grow with the number of clips. */
#include "import.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <xxhash.h>

struct Importer {
    ImportOpts o;
    ShardWriter *w;
    LmrWarnFn warn;
    void *user;
    ImportStats *st;
    RecordCtx rctx;
    LmrBuf payload, rec;
    int dtype;       /* of the records */
    uint32_t views;  /* of the records, 0 until the first readable clip */
    int64_t dim;     /* D of the records */
    int dtype_from;  /* the dtype the converted clips had (for the note) */
    double t0, last;
};

static double now_sec(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

int importer_new(Importer **out, const ImportOpts *o, ShardWriter *w, LmrWarnFn warn, void *user, ImportStats *stats)
{
    Importer *im = calloc(1, sizeof *im);
    if (!im)
        return LMR_ENOMEM;
    memset(stats, 0, sizeof *stats);
    im->o = *o;
    im->w = w;
    im->warn = warn;
    im->user = user;
    im->st = stats;
    im->dtype = o->dtype;
    im->views = o->views;
    im->dim = o->dim;
    buf_init(&im->payload);
    buf_init(&im->rec);
    im->t0 = im->last = now_sec();
    *out = im;
    return 0;
}

void importer_free(Importer *im)
{
    if (!im)
        return;
    record_ctx_free(&im->rctx);
    buf_free(&im->payload);
    buf_free(&im->rec);
    free(im);
}

int importer_bad_entry(Importer *im, const char *where, const char *id, const char *reason, char *err)
{
    if (im->o.strict)
        return lmr_fail(err, LMR_EPARSE, "%s: %s", where, reason);
    im->st->bad_lines++;
    im->st->failed++;
    if (im->o.fail)
        im->o.fail(im->o.fail_user, where, -1, id ? id : "", reason);
    return 0;
}

/* Report a clip that is not stored; in strict mode the error ends the import. msg may start with
 * "WHERE: ", which the failure report gives on its own. */
static int skip_clip(Importer *im, const ImportClip *c, int code, const char *msg, char *err)
{
    if (im->o.strict) /* the error carries the message */
        return lmr_fail(err, code, "%s", msg);
    im->st->failed++;
    size_t n = strlen(c->where);
    if (strncmp(msg, c->where, n) == 0 && msg[n] == ':' && msg[n + 1] == ' ')
        msg += n + 2;
    if (im->o.fail)
        im->o.fail(im->o.fail_user, c->where, -1, c->id, msg);
    return 0;
}

/* Values that are NaN or +-Inf in n elements of dtype; *first = index of the first one. */
static uint64_t count_nonfinite(const uint8_t *p, int dtype, size_t n, size_t *first)
{
    uint64_t bad = 0;
    for (size_t i = 0; i < n; i++) {
        int nf;
        if (dtype == LMR_DT_F32) {
            uint32_t x;
            memcpy(&x, p + 4 * i, 4);
            nf = (x & 0x7f800000u) == 0x7f800000u;
        } else {
            uint16_t x;
            memcpy(&x, p + 2 * i, 2);
            nf = (x & 0x7c00u) == 0x7c00u;
        }
        if (nf && bad++ == 0)
            *first = i;
    }
    return bad;
}

/* Row r of the kept rows when T rows are thinned to n: the middle of each of n equal spans. */
static int64_t kept_row(int64_t r, int64_t t, int64_t n) { return (2 * r + 1) * t / (2 * n); }

/* The payload of the kept rows of every view, in the records' dtype. */
static int make_payload(Importer *im, const ImportArray *a, int64_t t_keep)
{
    size_t in_es = a->dtype == LMR_DT_F32 ? 4 : 2, out_es = im->dtype == LMR_DT_F32 ? 4 : 2;
    size_t row_in = (size_t)a->d * in_es, row_out = (size_t)a->d * out_es;
    size_t total = (size_t)a->views * (size_t)t_keep * row_out;
    if (buf_reserve(&im->payload, total + 1))
        return LMR_ENOMEM;
    for (uint32_t v = 0; v < a->views; v++)
        for (int64_t r = 0; r < t_keep; r++) {
            int64_t src = t_keep == a->t ? r : kept_row(r, a->t, t_keep);
            const uint8_t *in = a->data + ((size_t)v * a->t + (size_t)src) * row_in;
            uint8_t *out = im->payload.data + ((size_t)v * (size_t)t_keep + (size_t)r) * row_out;
            if (a->dtype == im->dtype) {
                memcpy(out, in, row_in);
                continue;
            }
            uint16_t h[256];
            float f[256];
            for (uint32_t c = 0; c < a->d; c += 256) {
                size_t k = a->d - c < 256 ? a->d - c : 256;
                if (a->dtype == LMR_DT_F16) { /* f16 into f32 records: exact */
                    memcpy(h, in + (size_t)c * 2, k * 2);
                    lmr_f16_to_f32(h, f, k);
                    memcpy(out + (size_t)c * 4, f, k * 4);
                } else { /* f32 into f16 records */
                    memcpy(f, in + (size_t)c * 4, k * 4);
                    lmr_f32_to_f16(f, h, k);
                    memcpy(out + (size_t)c * 2, h, k * 2);
                }
            }
        }
    im->payload.len = total;
    return 0;
}

static int import_one(Importer *im, ImportSource *src, const ImportClip *c, char *err)
{
    char msg[LMR_ERRLEN];
    ImportArray a;
    memset(&a, 0, sizeof a);
    int fatal = 0;
    int rc = src->read(src, &a, &fatal, msg);
    im->st->bytes_read += a.file_bytes;
    if (rc < 0)
        return fatal ? lmr_fail(err, rc, "%s", msg) : skip_clip(im, c, rc, msg, err);
    if (!im->dtype)
        im->dtype = a.dtype;
    if (!im->views)
        im->views = a.views;
    if (!im->dim)
        im->dim = a.d;
    if (a.d != im->dim) {
        lmr_fail(msg, 0, "D = %u, the shard's records have %lld", a.d, (long long)im->dim);
        return skip_clip(im, c, LMR_EMISMATCH, msg, err);
    }
    if (a.views != im->views) {
        lmr_fail(msg, 0, "%u views, the shard's records have %u (only T may vary from clip to clip)", a.views,
                 im->views);
        return skip_clip(im, c, LMR_EMISMATCH, msg, err);
    }
    int64_t t_keep = im->o.max_frames > 0 && a.t > (uint32_t)im->o.max_frames ? (int64_t)im->o.max_frames : (int64_t)a.t;
    const uint8_t *payload = a.data; /* the bytes as they are, when nothing changes */
    if (t_keep != a.t || a.dtype != im->dtype) {
        rc = make_payload(im, &a, t_keep);
        if (rc < 0)
            return lmr_fail(err, rc, "%s: %s", c->where, lmr_strerror(rc));
        payload = im->payload.data;
    }
    int converted = a.dtype != im->dtype;
    if (converted)
        im->dtype_from = a.dtype;
    size_t first = 0, n_el = (size_t)a.views * (size_t)t_keep * a.d;
    uint64_t bad = count_nonfinite(payload, im->dtype, n_el, &first);
    if (bad) {
        char at[96];
        size_t row = first / a.d;
        if (a.views > 1)
            snprintf(at, sizeof at, "view %zu, row %zu", row / (size_t)t_keep, row % (size_t)t_keep);
        else
            snprintf(at, sizeof at, "row %zu", row);
        lmr_fail(msg, 0, "%llu of %zu values are NaN or Inf%s (first at %s, column %zu)", (unsigned long long)bad,
                 n_el, a.dtype == LMR_DT_F32 && im->dtype == LMR_DT_F16 ? " after conversion to f16" : "", at,
                 first % a.d);
        return skip_clip(im, c, LMR_ENAN, msg, err);
    }
    RecordInfo info;
    memset(&info, 0, sizeof info);
    info.kind = LMR_KIND_FEATURES;
    info.dtype = (uint8_t)im->dtype;
    info.ndim = 4;
    info.dims[0] = a.views;
    info.dims[1] = (uint32_t)t_keep;
    info.dims[2] = a.d;
    info.dims[3] = 1;
    info.n_labels = (uint16_t)c->n_labels;
    memcpy(info.labels, c->labels, (size_t)c->n_labels * sizeof c->labels[0]);
    info.id = c->id;
    info.id_len = (uint16_t)strlen(c->id);
    rc = record_encode(&im->rctx, &info, payload, &im->rec);
    if (rc < 0)
        return lmr_fail(err, rc, "%s: encoding the record: %s", c->where, im->rctx.last_error);
    rc = shardwriter_put(im->w, im->rec.data, im->rec.len);
    if (rc == LMR_DONE) {
        im->st->present++;
        im->st->converted += converted;
        return 0;
    }
    if (rc == LMR_EEXIST || rc == LMR_EMISMATCH || rc == LMR_ERANGE || rc == LMR_EINVAL) {
        /* the shard already holds this id with other bytes, or refuses this record alone */
        snprintf(msg, sizeof msg, "%s", shardwriter_error(im->w));
        return skip_clip(im, c, rc, msg, err);
    }
    if (rc < 0)
        return lmr_fail(err, rc, "%s", shardwriter_error(im->w));
    im->st->written++;
    im->st->converted += converted;
    return 0;
}

static void progress(Importer *im, int final)
{
    if (!im->o.progress)
        return;
    double t = now_sec();
    if (!final && t - im->last < 0.5)
        return;
    im->last = t;
    PackStats ps;
    memset(&ps, 0, sizeof ps);
    ps.written = im->st->written;
    ps.present = im->st->present;
    ps.failed = im->st->failed;
    ps.bytes_in = im->st->bytes_read;
    ps.seconds = t - im->t0;
    im->o.progress(im->o.progress_user, &ps, final);
}

int import_run(Importer *im, ImportSource *src, char *err)
{
    ImportStats *st = im->st;
    const ImportOpts *o = &im->o;
    int rc = record_ctx_init(&im->rctx, o->zstd_level);
    if (rc < 0) {
        lmr_fail(err, rc, "zstd context: %s", lmr_strerror(rc));
        goto done;
    }
    if (o->hint && o->hint->backbone[0]) /* the command line names the model: no source default */
        snprintf(src->meta.backbone, sizeof src->meta.backbone, "%s", o->hint->backbone);
    if (o->hint && o->hint->weights_checksum[0])
        snprintf(src->meta.weights_checksum, sizeof src->meta.weights_checksum, "%s", o->hint->weights_checksum);
    rc = shardwriter_set_meta(im->w, &src->meta);
    if (!rc && o->hint)
        rc = shardwriter_set_meta(im->w, o->hint);
    if (rc < 0) {
        lmr_fail(err, rc, "%s", shardwriter_error(im->w));
        goto done;
    }
    for (;;) {
        ImportClip c;
        memset(&c, 0, sizeof c);
        rc = src->next(src, &c, err);
        if (rc <= 0)
            break;
        st->listed++;
        if ((rc = import_one(im, src, &c, err)) < 0)
            break;
        progress(im, 0);
    }
    if (rc == 0 && st->listed == 0 && st->bad_lines == 0)
        rc = lmr_fail(err, LMR_EPARSE, "no clips to import");
    else if (rc == 0 && st->listed == 0)
        rc = lmr_fail(err, LMR_EPARSE, "no clips to import (every entry was refused)");
    if (st->converted && im->warn && im->dtype_from) {
        char note[LMR_ERRLEN];
        const char *noun = src->noun ? src->noun : "clip";
        snprintf(note, sizeof note, "note: %llu %s%s converted from %s to %s, the dtype of the records",
                 (unsigned long long)st->converted, noun, st->converted == 1 ? " was" : "s were",
                 im->dtype_from == LMR_DT_F16 ? "f16" : "f32", im->dtype == LMR_DT_F32 ? "f32" : "f16");
        im->warn(im->user, note);
    }
done:
    st->seconds = now_sec() - im->t0;
    progress(im, 1);
    importer_free(im);
    return rc;
}

int import_read_class_names(const char *path, ShardMeta *m, char *err)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return lmr_fail(err, -errno, "%s: %s", path, strerror(errno));
    char **names = NULL;
    int n = 0, cap = 0, rc = 0;
    char *line = NULL;
    size_t lcap = 0;
    ssize_t len;
    int64_t lineno = 0;
    while ((len = getline(&line, &lcap, f)) >= 0) {
        lineno++;
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            line[--len] = 0;
        if (len == 0) {
            rc = lmr_fail(err, LMR_EPARSE, "%s:%lld: empty line: want one class name per line", path,
                          (long long)lineno);
            break;
        }
        if (n == (1 << 24)) {
            rc = lmr_fail(err, LMR_EPARSE, "%s: more than %d classes", path, 1 << 24);
            break;
        }
        if (n == cap) {
            int nc = cap ? 2 * cap : 64;
            char **p = realloc(names, sizeof *p * (size_t)nc);
            if (!p) {
                rc = lmr_fail(err, LMR_ENOMEM, "%s: out of memory", path);
                break;
            }
            names = p;
            cap = nc;
        }
        if (!(names[n] = strdup(line))) {
            rc = lmr_fail(err, LMR_ENOMEM, "%s: out of memory", path);
            break;
        }
        n++;
    }
    if (!rc && ferror(f))
        rc = lmr_fail(err, LMR_EIO, "%s: read error", path);
    if (!rc && n == 0)
        rc = lmr_fail(err, LMR_EPARSE, "%s: no class names in it", path);
    if (!rc && shardmeta_set_class_names(m, (const char *const *)names, n))
        rc = lmr_fail(err, LMR_ENOMEM, "%s: out of memory", path);
    if (!rc)
        m->n_classes = n;
    for (int i = 0; i < n; i++)
        free(names[i]);
    free(names);
    free(line);
    fclose(f);
    return rc;
}

// --- sets of ids --------------------------------------------------------------------------------

static size_t id_hash(const char *id) { return (size_t)XXH3_64bits(id, strlen(id)); }

int64_t import_idset_get(const ImportIdSet *s, const char *id)
{
    if (!s->cap)
        return -1;
    for (size_t h = id_hash(id) & (s->cap - 1); s->key[h]; h = (h + 1) & (s->cap - 1))
        if (strcmp(s->key[h], id) == 0)
            return s->val[h];
    return -1;
}

int import_idset_put(ImportIdSet *s, const char *id, int64_t val)
{
    if ((s->n + 1) * 2 > s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 1024;
        char **key = calloc(cap, sizeof *key);
        int64_t *v = calloc(cap, sizeof *v);
        if (!key || !v) {
            free(key);
            free(v);
            return LMR_ENOMEM;
        }
        for (size_t i = 0; i < s->cap; i++)
            if (s->key[i]) {
                size_t h = id_hash(s->key[i]) & (cap - 1);
                while (key[h])
                    h = (h + 1) & (cap - 1);
                key[h] = s->key[i];
                v[h] = s->val[i];
            }
        free(s->key);
        free(s->val);
        s->key = key;
        s->val = v;
        s->cap = cap;
    }
    size_t h = id_hash(id) & (s->cap - 1);
    while (s->key[h])
        h = (h + 1) & (s->cap - 1);
    if (!(s->key[h] = strdup(id)))
        return LMR_ENOMEM;
    s->val[h] = val;
    s->n++;
    return 0;
}

void import_idset_free(ImportIdSet *s)
{
    for (size_t i = 0; i < s->cap; i++)
        free(s->key[i]);
    free(s->key);
    free(s->val);
    memset(s, 0, sizeof *s);
}
