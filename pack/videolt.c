/* VideoLT feature import: the release ships one <video_id>.npy of frame-level features per video
 * and list files of multi-label classes. Each listed video becomes one features record
 * (views 1, T rows or --max-frames evenly spaced ones, D) in one dtype for the whole shard: the
 * existing shard's, or the first readable file's; files of the other one are converted. Files that
 * are missing, not readable .npy, of another D or holding NaN/Inf are reported and counted (strict:
 * fail). One read buffer and one record buffer are reused, so memory does not grow with the number
 * of videos. */
#include "videolt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "annotations.h"
#include "npy.h"

static double now_sec(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* "train" from ".../train.lst". */
static void split_name(const char *path, char *out, size_t cap)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    size_t n = strlen(base);
    const char *dot = strrchr(base, '.');
    if (dot && dot != base)
        n = (size_t)(dot - base);
    if (n >= cap)
        n = cap - 1;
    memcpy(out, base, n);
    out[n] = '\0';
}

/* Row r of the kept rows when T rows are thinned to n: the middle of each of n equal spans. */
static int64_t kept_row(int64_t r, int64_t t, int64_t n) { return (2 * r + 1) * t / (2 * n); }

typedef struct {
    const VideoltImportOpts *o;
    ShardWriter *w;
    LmrWarnFn warn;
    void *user;
    VideoltStats *st;
    RecordCtx rctx;
    NpyArray npy;
    LmrBuf payload, rec;
    int dtype;      /* of the records: given, or the first readable file's; others are converted */
    int64_t dim;    /* D of the records */
    size_t root_len; /* of o->root without trailing slashes */
    char path[4096];
} Import;

/* Report a clip that is not stored; in strict mode the error ends the import. msg may start with
 * the file's path, which the failure report gives on its own. */
static int skip_file(Import *im, const ManifestRow *row, int code, const char *msg, char *err)
{
    if (im->o->strict) /* the error carries the message */
        return lmr_fail(err, code, "%s", msg);
    im->st->failed++;
    size_t n = strlen(im->path);
    if (strncmp(msg, im->path, n) == 0 && msg[n] == ':' && msg[n + 1] == ' ')
        msg += n + 2;
    if (im->o->fail)
        im->o->fail(im->o->fail_user, im->path, -1, row->clip_id, msg);
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

/* Build the payload of the kept rows in the shard's dtype. */
static int make_payload(Import *im, int64_t t_keep)
{
    NpyArray *a = &im->npy;
    size_t in_es = a->dtype == LMR_DT_F32 ? 4 : 2, out_es = im->dtype == LMR_DT_F32 ? 4 : 2;
    size_t row_in = (size_t)a->cols * in_es, row_out = (size_t)a->cols * out_es;
    if (buf_reserve(&im->payload, (size_t)t_keep * row_out + 1))
        return LMR_ENOMEM;
    for (int64_t r = 0; r < t_keep; r++) {
        int64_t src = t_keep == a->rows ? r : kept_row(r, a->rows, t_keep);
        const uint8_t *in = a->data + (size_t)src * row_in;
        uint8_t *out = im->payload.data + (size_t)r * row_out;
        if (a->dtype == im->dtype) {
            memcpy(out, in, row_in);
        } else if (a->dtype == LMR_DT_F16) { /* an f16 file into an f32 shard: exact */
            uint16_t h[256];
            float f[256];
            for (int64_t c = 0; c < a->cols; c += 256) {
                size_t k = (size_t)(a->cols - c < 256 ? a->cols - c : 256);
                memcpy(h, in + (size_t)c * 2, k * 2);
                lmr_f16_to_f32(h, f, k);
                memcpy(out + (size_t)c * 4, f, k * 4);
            }
        } else { /* an f32 file into an f16 shard */
            uint16_t h[256];
            float f[256];
            for (int64_t c = 0; c < a->cols; c += 256) {
                size_t k = (size_t)(a->cols - c < 256 ? a->cols - c : 256);
                memcpy(f, in + (size_t)c * 4, k * 4);
                lmr_f32_to_f16(f, h, k);
                memcpy(out + (size_t)c * 2, h, k * 2);
            }
        }
    }
    im->payload.len = (size_t)t_keep * row_out;
    return 0;
}

static int import_one(Import *im, const ManifestRow *row, char *err)
{
    const VideoltImportOpts *o = im->o;
    char msg[LMR_ERRLEN];
    if (snprintf(im->path, sizeof im->path, "%.*s/%s.npy", (int)im->root_len, o->root, row->clip_id) >=
        (int)sizeof im->path)
        return skip_file(im, row, LMR_EINVAL, "path too long", err);
    int rc = npy_read(&im->npy, im->path, msg);
    if (rc < 0)
        return skip_file(im, row, rc, msg, err);
    im->st->bytes_read += im->npy.file_bytes;
    NpyArray *a = &im->npy;
    if (a->rows < 1 || a->cols < 1) {
        lmr_fail(msg, 0, "shape (%lld, %lld) has no features", (long long)a->rows, (long long)a->cols);
        return skip_file(im, row, LMR_EUNSUPPORTED, msg, err);
    }
    if (a->rows > UINT32_MAX || a->cols > UINT32_MAX) {
        lmr_fail(msg, 0, "shape (%lld, %lld) is too large for a record", (long long)a->rows, (long long)a->cols);
        return skip_file(im, row, LMR_EUNSUPPORTED, msg, err);
    }
    if (!im->dtype)
        im->dtype = a->dtype;
    if (!im->dim)
        im->dim = a->cols;
    if (a->cols != im->dim) {
        lmr_fail(msg, 0, "D = %lld, the shard's records have %lld", (long long)a->cols, (long long)im->dim);
        return skip_file(im, row, LMR_EMISMATCH, msg, err);
    }
    int64_t t_keep = o->max_frames > 0 && a->rows > o->max_frames ? o->max_frames : a->rows;
    const uint8_t *payload = a->data; /* the file's bytes as they are, when nothing changes */
    if (t_keep != a->rows || a->dtype != im->dtype) {
        rc = make_payload(im, t_keep);
        if (rc < 0)
            return lmr_fail(err, rc, "%s: %s", im->path, lmr_strerror(rc));
        payload = im->payload.data;
    }
    int converted = a->dtype != im->dtype;
    size_t first = 0, n_el = (size_t)t_keep * (size_t)a->cols;
    uint64_t bad = count_nonfinite(payload, im->dtype, n_el, &first);
    if (bad) {
        lmr_fail(msg, 0, "%llu of %zu values are NaN or Inf%s (first at row %zu, column %zu)", (unsigned long long)bad,
                 n_el, a->dtype == LMR_DT_F32 && im->dtype == LMR_DT_F16 ? " after conversion to f16" : "",
                 first / (size_t)a->cols,
                 first % (size_t)a->cols);
        return skip_file(im, row, LMR_ENAN, msg, err);
    }
    RecordInfo info;
    memset(&info, 0, sizeof info);
    info.kind = LMR_KIND_FEATURES;
    info.dtype = (uint8_t)im->dtype;
    info.ndim = 4;
    info.dims[0] = 1;
    info.dims[1] = (uint32_t)t_keep;
    info.dims[2] = (uint32_t)a->cols;
    info.dims[3] = 1;
    info.n_labels = (uint16_t)row->n_labels;
    memcpy(info.labels, row->labels, (size_t)row->n_labels * sizeof row->labels[0]);
    info.id = row->clip_id;
    info.id_len = (uint16_t)strlen(row->clip_id);
    rc = record_encode(&im->rctx, &info, payload, &im->rec);
    if (rc < 0)
        return lmr_fail(err, rc, "%s: encoding the record: %s", im->path, im->rctx.last_error);
    rc = shardwriter_put(im->w, im->rec.data, im->rec.len);
    if (rc == LMR_DONE) {
        im->st->present++;
        im->st->converted += converted;
        return 0;
    }
    if (rc == LMR_EEXIST || rc == LMR_EMISMATCH || rc == LMR_ERANGE || rc == LMR_EINVAL) {
        /* the shard already holds this id with other bytes, or refuses this record alone */
        snprintf(msg, sizeof msg, "%s", shardwriter_error(im->w));
        return skip_file(im, row, rc, msg, err);
    }
    if (rc < 0)
        return lmr_fail(err, rc, "%s", shardwriter_error(im->w));
    im->st->written++;
    im->st->converted += converted;
    return 0;
}

/* The manifest's warnings: lines of the list file are clips that failed ("LIST:LINE: reason"),
 * anything else is a note. */
static void list_warn(void *user, const char *msg)
{
    Import *im = user;
    const char *list = im->o->labels;
    size_t n = strlen(list);
    if (strncmp(msg, list, n) == 0 && msg[n] == ':') {
        im->st->bad_lines++;
        im->st->failed++;
        const char *sep = strstr(msg + n + 1, ": ");
        char where[4096];
        size_t wl = sep ? (size_t)(sep - msg) : strlen(msg);
        snprintf(where, sizeof where, "%.*s", (int)(wl < sizeof where ? wl : sizeof where - 1), msg);
        if (im->o->fail)
            im->o->fail(im->o->fail_user, where, -1, "", sep ? sep + 2 : msg);
        return;
    }
    if (im->warn)
        im->warn(im->user, msg);
}

int videolt_import(const VideoltImportOpts *o, ShardWriter *w, LmrWarnFn warn, void *user,
                   VideoltStats *stats, char *err)
{
    VideoltStats local;
    if (!stats)
        stats = &local;
    memset(stats, 0, sizeof *stats);
    if (!o || !o->root || !o->labels || !w)
        return lmr_fail(err, LMR_EINVAL, "videolt_import: root, labels and a shard are required");
    double t0 = now_sec();
    Import im = {.o = o, .w = w, .warn = warn, .user = user, .st = stats, .dtype = o->dtype, .dim = o->dim};
    im.root_len = strlen(o->root);
    while (im.root_len > 1 && o->root[im.root_len - 1] == '/') /* "feats/" + "/x.npy" */
        im.root_len--;
    npy_init(&im.npy);
    buf_init(&im.payload);
    buf_init(&im.rec);
    Manifest m;
    manifest_init(&m);
    m.warn = list_warn;
    m.warn_user = &im;
    AnnotClasses cls;
    annot_classes_init(&cls);
    cls.warn = warn;
    cls.warn_user = user;
    ShardMeta hint;
    shardmeta_init(&hint);
    int rc = 0, n_classes = o->n_classes;
    if (o->counts) { /* class count and names; the list's labels are then checked against it */
        rc = annot_classes_read(&cls, "videolt", o->counts, NULL, 0, o->strict);
        if (rc < 0) {
            lmr_fail(err, rc, "%s", cls.last_error);
            goto done;
        }
        if (cls.n_classes == 0) {
            rc = lmr_fail(err, LMR_EPARSE, "%s: no class could be read from it (%zu lines refused)", o->counts,
                          cls.n_skipped);
            goto done;
        }
        if (n_classes > 0 && n_classes != cls.n_classes) {
            rc = lmr_fail(err, LMR_EMISMATCH, "%s lists %d classes, but %d are expected (--classes or the shard)",
                          o->counts, cls.n_classes, n_classes);
            goto done;
        }
        n_classes = cls.n_classes;
        if ((rc = shardmeta_set_class_names(&hint, (const char *const *)cls.names, cls.n_classes))) {
            lmr_fail(err, rc, "class names: out of memory");
            goto done;
        }
    }
    AnnotOpts ao;
    annot_opts_init(&ao);
    ao.dataset = "videolt";
    ao.annotations = o->labels;
    ao.n_classes = n_classes;
    ao.strict = o->strict;
    rc = annotations_load(&m, &ao);
    if (rc < 0) {
        lmr_fail(err, rc, "%s", m.last_error);
        goto done;
    }
    stats->listed = m.n_rows;
    if (m.n_rows == 0) {
        rc = lmr_fail(err, LMR_EPARSE, "no clips listed in %s%s", o->labels,
                      stats->bad_lines ? " (every line was refused)" : "");
        goto done;
    }
    rc = record_ctx_init(&im.rctx, o->zstd_level);
    if (rc < 0) {
        lmr_fail(err, rc, "zstd context: %s", lmr_strerror(rc));
        goto done;
    }
    snprintf(hint.dataset, sizeof hint.dataset, "videolt");
    split_name(o->labels, hint.split, sizeof hint.split);
    snprintf(hint.backbone, sizeof hint.backbone, "videolt-npy");
    hint.n_classes = m.n_classes;
    rc = shardwriter_set_meta(w, &hint);
    if (!rc && o->hint)
        rc = shardwriter_set_meta(w, o->hint);
    if (rc < 0) {
        lmr_fail(err, rc, "%s", shardwriter_error(w));
        goto done;
    }
    for (size_t i = 0; i < m.n_rows && rc == 0; i++)
        rc = import_one(&im, &m.rows[i], err);
    if (stats->converted && warn) {
        char note[LMR_ERRLEN];
        snprintf(note, sizeof note, "note: %llu .npy file%s converted from %s to %s, the dtype of the records",
                 (unsigned long long)stats->converted, stats->converted == 1 ? " was" : "s were",
                 im.dtype == LMR_DT_F32 ? "f16" : "f32", im.dtype == LMR_DT_F32 ? "f32" : "f16");
        warn(user, note);
    }
done:
    stats->seconds = now_sec() - t0;
    record_ctx_free(&im.rctx);
    npy_free(&im.npy);
    buf_free(&im.payload);
    buf_free(&im.rec);
    manifest_free(&m);
    annot_classes_free(&cls);
    shardmeta_free(&hint);
    return rc;
}
