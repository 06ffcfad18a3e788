/* VideoLT feature import: the release ships one <video_id>.npy of frame-level features per video
 * and list files of multi-label classes. Each listed video becomes one features record
 * (views 1, T rows or --max-frames evenly spaced ones, D, the file's f32/f16) put into the shard;
 * files that are missing or not readable .npy are reported and skipped (strict: fail). One read
 * buffer and one record buffer are reused, so memory does not grow with the number of videos. */
#include "videolt.h"

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
    int dtype;      /* of the shard: the first file's; later files are converted to it */
    int64_t dim;    /* D of the shard */
    char path[4096];
} Import;

/* Report a skipped file; in strict mode the error ends the import. */
static int skip_file(Import *im, int code, const char *msg, char *err)
{
    if (im->o->strict) /* the error carries the message */
        return lmr_fail(err, code, "%s", msg);
    im->st->skipped++;
    if (im->warn)
        im->warn(im->user, msg);
    return 0;
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
    if (snprintf(im->path, sizeof im->path, "%s/%s.npy", o->root, row->clip_id) >= (int)sizeof im->path)
        return skip_file(im, LMR_EINVAL, "path too long", err);
    int rc = npy_read(&im->npy, im->path, msg);
    if (rc < 0)
        return skip_file(im, rc, msg, err);
    im->st->bytes_read += im->npy.file_bytes;
    NpyArray *a = &im->npy;
    if (a->rows < 1 || a->cols < 1) {
        lmr_fail(msg, 0, "%s: shape (%lld, %lld) has no features", im->path,
                 (long long)a->rows, (long long)a->cols);
        return skip_file(im, LMR_EUNSUPPORTED, msg, err);
    }
    if (!im->dtype) {
        im->dtype = a->dtype;
        im->dim = a->cols;
    }
    if (a->cols != im->dim) {
        lmr_fail(msg, 0, "%s: D = %lld, earlier files have %lld", im->path,
                 (long long)a->cols, (long long)im->dim);
        return skip_file(im, LMR_EMISMATCH, msg, err);
    }
    int64_t t_keep = o->max_frames > 0 && a->rows > o->max_frames ? o->max_frames : a->rows;
    const void *payload = a->data; /* the file's bytes as they are, when nothing changes */
    if (t_keep != a->rows || a->dtype != im->dtype) {
        rc = make_payload(im, t_keep);
        if (rc < 0)
            return lmr_fail(err, rc, "%s: %s", im->path, lmr_strerror(rc));
        payload = im->payload.data;
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
        return 0;
    }
    if (rc == LMR_EEXIST || rc == LMR_EMISMATCH) {
        /* the shard already holds this id with other bytes, or is of another dtype/D */
        lmr_fail(msg, 0, "%s: %s", im->path, shardwriter_error(im->w));
        return skip_file(im, rc, msg, err);
    }
    if (rc < 0)
        return lmr_fail(err, rc, "%s", shardwriter_error(im->w));
    im->st->written++;
    return 0;
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
    Import im = {.o = o, .w = w, .warn = warn, .user = user, .st = stats};
    npy_init(&im.npy);
    buf_init(&im.payload);
    buf_init(&im.rec);
    Manifest m;
    manifest_init(&m);
    m.warn = warn;
    m.warn_user = user;
    AnnotOpts ao;
    annot_opts_init(&ao);
    ao.dataset = "videolt";
    ao.annotations = o->labels;
    ao.labels = o->counts;
    ao.strict = o->strict;
    int rc = annotations_load(&m, &ao);
    if (rc < 0) {
        lmr_fail(err, rc, "%s", m.last_error);
        goto done;
    }
    stats->listed = m.n_rows;
    rc = record_ctx_init(&im.rctx, o->zstd_level);
    if (rc < 0) {
        lmr_fail(err, rc, "zstd context: %s", lmr_strerror(rc));
        goto done;
    }
    ShardMeta hint;
    shardmeta_init(&hint);
    snprintf(hint.dataset, sizeof hint.dataset, "videolt");
    split_name(o->labels, hint.split, sizeof hint.split);
    snprintf(hint.backbone, sizeof hint.backbone, "videolt-npy");
    hint.n_classes = m.n_classes;
    rc = shardwriter_set_meta(w, &hint);
    shardmeta_free(&hint);
    if (rc < 0) {
        lmr_fail(err, rc, "%s", shardwriter_error(w));
        goto done;
    }
    for (size_t i = 0; i < m.n_rows && rc == 0; i++)
        rc = import_one(&im, &m.rows[i], err);
done:
    stats->seconds = now_sec() - t0;
    record_ctx_free(&im.rctx);
    npy_free(&im.npy);
    buf_free(&im.payload);
    buf_free(&im.rec);
    manifest_free(&m);
    return rc;
}
