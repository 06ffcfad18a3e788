/* lmr-pack's packing loop: metadata first (each input's sidecar and stream metadata record, and the
 * check that all inputs come from the same backbone), then every record of every stream, checked,
 * optionally re-encoded, and put into the shard writer, which skips what a previous run already
 * stored. A clip that cannot be stored is counted and reading goes on; a record that breaks the
 * stream stops that input, since nothing after it can be trusted to start where it claims. */
#include "pack.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int pack_read_sidecar(const char *rec_path, ShardMeta *m, int *found, char *err)
{
    *found = 0;
    char side[4096];
    if (snprintf(side, sizeof side, "%s.meta.json", rec_path) >= (int)sizeof side)
        return lmr_fail(err, LMR_EINVAL, "%s: path too long", rec_path);
    FILE *f = fopen(side, "rb");
    if (!f)
        return errno == ENOENT ? 0 : lmr_fail(err, -errno, "%s: %s", side, strerror(errno));
    LmrBuf b;
    buf_init(&b);
    int rc = 0;
    size_t n;
    do {
        if ((rc = buf_reserve(&b, b.len + 4097)))
            break;
        n = fread(b.data + b.len, 1, b.cap - b.len - 1, f);
        b.len += n;
    } while (n > 0);
    if (!rc && ferror(f))
        rc = lmr_fail(err, LMR_EIO, "%s: read error", side);
    fclose(f);
    if (!rc) {
        b.data[b.len] = 0;
        char perr[LMR_ERRLEN];
        if ((rc = shardmeta_from_json(m, (const char *)b.data, perr)))
            lmr_fail(err, rc, "%s: %.400s", side, perr);
        else
            *found = 1;
    }
    buf_free(&b);
    return rc;
}

int pack_parse_meta_record(RecordCtx *ctx, const RecordInfo *info, LmrBuf *scratch, ShardMeta *m, char *err)
{
    size_t idn = strlen(LMR_META_ID);
    if (info->kind != LMR_KIND_META || info->dtype != LMR_DT_U8 || info->ndim != 1 || info->n_labels ||
        info->id_len != idn || memcmp(info->id, LMR_META_ID, idn) != 0)
        return lmr_fail(err, LMR_ECORRUPT, "metadata record: not u8, 1-d, unlabelled with id %s", LMR_META_ID);
    if (info->raw_size > (64u << 20))
        return lmr_fail(err, LMR_ECORRUPT, "metadata record: %llu bytes of JSON, at most 64 MiB",
                        (unsigned long long)info->raw_size);
    if (buf_reserve(scratch, (size_t)info->raw_size + 1))
        return lmr_fail(err, LMR_ENOMEM, "metadata record: out of memory");
    int rc = record_payload(ctx, info, scratch->data, scratch->cap);
    if (rc)
        return lmr_fail(err, rc, "metadata record: %.400s", ctx->last_error);
    scratch->data[info->raw_size] = 0;
    char perr[LMR_ERRLEN];
    if ((rc = shardmeta_from_json(m, (const char *)scratch->data, perr)))
        return lmr_fail(err, rc, "metadata record: %.400s", perr);
    return 0;
}

// --- metadata --------------------------------------------------------------------------------

/* The provenance of the first metadata source, which every later one must match. */
typedef struct {
    ShardMeta first;
    char source[320];
    int set;
} Prov;

static const char *or_none(const char *s) { return s[0] ? s : "(none)"; }

/* Check m against the run's first metadata source, hand it to the writer, and re-apply the
 * command line's hint so that it keeps the last word. */
static int apply_meta(ShardWriter *w, const PackOpts *o, Prov *p, const ShardMeta *m, const char *source, char *err)
{
    if (!p->set) {
        p->set = 1;
        snprintf(p->source, sizeof p->source, "%.300s", source);
        snprintf(p->first.backbone, sizeof p->first.backbone, "%s", m->backbone);
        snprintf(p->first.weights_checksum, sizeof p->first.weights_checksum, "%s", m->weights_checksum);
    } else if (strcmp(m->backbone, p->first.backbone) || strcmp(m->weights_checksum, p->first.weights_checksum)) {
        return lmr_fail(err, LMR_EMISMATCH, "%.200s: backbone %s (weights %s) differs from %.200s: backbone %s (weights %s)",
                        source, or_none(m->backbone), or_none(m->weights_checksum), p->source,
                        or_none(p->first.backbone), or_none(p->first.weights_checksum));
    }
    if (shardwriter_set_meta(w, m))
        return lmr_fail(err, LMR_EMISMATCH, "%.200s: %.280s", source, shardwriter_error(w));
    if (o->hint && shardwriter_set_meta(w, o->hint))
        return lmr_fail(err, LMR_EMISMATCH, "%.480s", shardwriter_error(w));
    return 0;
}

static int is_regular(const char *path)
{
    struct stat sb;
    return strcmp(path, "-") != 0 && stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

/* The metadata record that opens a regular file, if any (found = 0 when the stream opens with a
 * clip, is empty or unreadable: the packing loop reports those). */
static void peek_meta_record(const char *path, RecordCtx *ctx, LmrBuf *scratch, ShardMeta *m, int *found)
{
    *found = 0;
    RecReader r;
    if (recreader_open(&r, path))
        return;
    RecordInfo info;
    if (recreader_next(&r, &info) == 0 && info.kind == LMR_KIND_META) {
        char perr[LMR_ERRLEN];
        if (pack_parse_meta_record(ctx, &info, scratch, m, perr) == 0)
            *found = 1; /* a bad one stops the input in the packing loop, with its offset */
    }
    recreader_close(&r);
}

/* Every regular input's sidecar and opening metadata record, before any clip is stored: a
 * sidecar that disagrees with its own stream, or inputs of different backbones, are refused
 * before anything is written. */
static int apply_input_meta(ShardWriter *w, const char *const *inputs, int n_inputs, const PackOpts *o, Prov *p,
                            RecordCtx *ctx, LmrBuf *scratch, char *err)
{
    int rc = 0;
    for (int k = 0; k < n_inputs && !rc; k++) {
        if (strcmp(inputs[k], "-") == 0)
            continue;
        ShardMeta side, rec;
        shardmeta_init(&side);
        shardmeta_init(&rec);
        int have_side = 0, have_rec = 0;
        rc = pack_read_sidecar(inputs[k], &side, &have_side, err);
        if (!rc && is_regular(inputs[k]))
            peek_meta_record(inputs[k], ctx, scratch, &rec, &have_rec);
        if (!rc && have_side && have_rec &&
            (strcmp(side.backbone, rec.backbone) || strcmp(side.weights_checksum, rec.weights_checksum)))
            rc = lmr_fail(err, LMR_EMISMATCH,
                          "%.200s: its metadata record says backbone %s (weights %s), %.200s.meta.json says %s (weights %s)",
                          inputs[k], or_none(rec.backbone), or_none(rec.weights_checksum), inputs[k],
                          or_none(side.backbone), or_none(side.weights_checksum));
        char src[320];
        if (!rc && have_side) {
            snprintf(src, sizeof src, "%.300s.meta.json", inputs[k]);
            rc = apply_meta(w, o, p, &side, src, err);
        }
        if (!rc && have_rec) { /* the stream's own record is applied last: it travels with the data */
            snprintf(src, sizeof src, "%.300s (metadata record)", inputs[k]);
            rc = apply_meta(w, o, p, &rec, src, err);
        }
        shardmeta_free(&side);
        shardmeta_free(&rec);
    }
    if (!rc && o->hint && shardwriter_set_meta(w, o->hint))
        rc = lmr_fail(err, LMR_EMISMATCH, "%.480s", shardwriter_error(w));
    return rc;
}

// --- the packing loop ------------------------------------------------------------------------

/* Errors that concern one record only: the writer is untouched and the stream stays aligned. */
static int record_level(int rc)
{
    return rc == LMR_ECHECKSUM || rc == LMR_ECOMPRESS || rc == LMR_ECORRUPT || rc == LMR_EEXIST ||
           rc == LMR_EMISMATCH || rc == LMR_ERANGE || rc == LMR_EINVAL || rc == LMR_ENOMEM;
}

/* msg without a leading "PATH: " and "offset N: ", for the failures list. */
static const char *bare_reason(const char *msg, const char *path)
{
    size_t n = strlen(path);
    if (strncmp(msg, path, n) == 0 && msg[n] == ':' && msg[n + 1] == ' ')
        msg += n + 2;
    if (strncmp(msg, "offset ", 7) == 0) {
        const char *c = strchr(msg, ':');
        if (c && c[1] == ' ')
            msg = c + 2;
    }
    return msg;
}

typedef struct {
    const PackOpts *o;
    PackStats *st;
    LmrBuf id;
} Loop;

static void report_fail(Loop *l, const char *input, uint64_t off, const RecordInfo *info, const char *reason)
{
    l->st->failed++;
    if (!l->o->fail)
        return;
    const char *id = "";
    if (info && info->id_len && buf_reserve(&l->id, (size_t)info->id_len + 1) == 0) {
        memcpy(l->id.data, info->id, info->id_len);
        l->id.data[info->id_len] = 0;
        id = (const char *)l->id.data;
    }
    l->o->fail(l->o->fail_user, input, (int64_t)off, id, reason);
}

static void warn(const PackOpts *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void warn(const PackOpts *o, const char *fmt, ...)
{
    if (!o->warn)
        return;
    char msg[LMR_ERRLEN];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    o->warn(o->warn_user, msg);
}

int pack_run(ShardWriter *w, const char *const *inputs, int n_inputs, const PackOpts *o, PackStats *st, char *err)
{
    memset(st, 0, sizeof *st);
    for (int k = 0; k < n_inputs; k++) {
        struct stat sb;
        if (!is_regular(inputs[k]) || stat(inputs[k], &sb)) {
            st->bytes_total = 0;
            break;
        }
        st->bytes_total += (uint64_t)sb.st_size;
    }
    RecordCtx ctx;
    if (record_ctx_init(&ctx, o->zstd_level > 0 ? o->zstd_level : 0))
        return lmr_fail(err, LMR_ENOMEM, "zstd context");
    LmrBuf scratch, reenc;
    buf_init(&scratch);
    buf_init(&reenc);
    Loop l = {.o = o, .st = st};
    buf_init(&l.id);
    Prov prov;
    memset(&prov, 0, sizeof prov);
    RecReader r;
    memset(&r, 0, sizeof r);
    double t0 = now_s(), last = t0;
    int rc = apply_input_meta(w, inputs, n_inputs, o, &prov, &ctx, &scratch, err);
    for (int k = 0; k < n_inputs && !rc; k++) {
        if ((rc = recreader_open(&r, inputs[k]))) {
            lmr_fail(err, rc, "%s", r.last_error);
            break;
        }
        uint64_t clips = 0;
        int stopped = 0;
        for (uint64_t n = 0;; n++) {
            uint64_t off = r.offset;
            RecordInfo info;
            rc = recreader_next(&r, &info);
            if (rc == LMR_DONE) {
                rc = 0;
                break;
            }
            if (rc == LMR_ETRUNC) { /* the stream ends inside its last record: that clip is lost */
                clips++;
                st->truncated++;
                char why[LMR_ERRLEN];
                snprintf(why, sizeof why, "%s", bare_reason(r.last_error, r.path));
                char *tail = strstr(why, ", ignored");
                if (tail && !tail[9])
                    *tail = 0;
                report_fail(&l, r.path, off, NULL, why);
                rc = 0;
                break;
            }
            if (rc == LMR_ENOMEM) {
                lmr_fail(err, rc, "%s", r.last_error);
                break;
            }
            if (rc) { /* the stream cannot be followed past this record */
                warn(o, "%s (the rest of %s is not read)", r.last_error, r.path);
                st->stopped_inputs++;
                stopped = 1;
                rc = 0;
                break;
            }
            st->bytes_in += info.total_size;
            if (info.kind == LMR_KIND_META) {
                ShardMeta m;
                shardmeta_init(&m);
                char merr[LMR_ERRLEN];
                if (pack_parse_meta_record(&ctx, &info, &scratch, &m, merr)) {
                    warn(o, "%s: offset %llu: %s (the rest of %s is not read)", r.path, (unsigned long long)off, merr,
                         r.path);
                    st->stopped_inputs++;
                    stopped = 1;
                } else {
                    char src[320];
                    snprintf(src, sizeof src, "%.250s (metadata record at offset %llu)", r.path,
                             (unsigned long long)off);
                    rc = apply_meta(w, o, &prov, &m, src, err);
                    st->meta_records++;
                }
                shardmeta_free(&m);
                if (stopped || rc)
                    break;
                continue;
            }
            clips++;
            const uint8_t *bytes = r.buf.data;
            size_t len = (size_t)info.total_size;
            int prc = 0;
            if (o->zstd_level >= 0) {
                if (!(prc = buf_reserve(&scratch, info.raw_size)) &&
                    !(prc = record_payload(&ctx, &info, scratch.data, scratch.cap)))
                    prc = record_encode(&ctx, &info, scratch.data, &reenc);
                bytes = reenc.data;
                len = reenc.len;
            } else if (o->check_payload) {
                prc = record_verify(&ctx, &info, &scratch);
            }
            if (prc == LMR_ENOMEM) /* a corrupt size claim more often than a real shortage */
                lmr_fail(ctx.last_error, prc, "record %.*s: payload of %llu bytes: out of memory",
                         info.id_len > 200 ? 200 : (int)info.id_len, info.id, (unsigned long long)info.raw_size);
            if (prc) {
                report_fail(&l, r.path, off, &info, ctx.last_error);
                continue;
            }
            rc = shardwriter_put(w, bytes, len);
            if (rc == 0) {
                st->written++;
            } else if (rc == LMR_DONE) {
                st->present++;
                rc = 0;
            } else if (record_level(rc)) {
                report_fail(&l, r.path, off, &info, shardwriter_error(w));
                rc = 0;
            } else {
                lmr_fail(err, rc, "%s: offset %llu: %.400s", r.path, (unsigned long long)off, shardwriter_error(w));
                break;
            }
            if (o->progress && (n & 63) == 0) {
                double t = now_s();
                if (t - last >= 0.5) {
                    last = t;
                    st->seconds = t - t0;
                    o->progress(o->progress_user, st, 0);
                }
            }
        }
        if (!rc && !stopped && clips == 0) {
            warn(o, "no records in %s", r.path);
            st->empty_inputs++;
        }
        recreader_close(&r);
    }
    st->seconds = now_s() - t0;
    if (o->progress)
        o->progress(o->progress_user, st, 1);
    shardmeta_free(&prov.first);
    buf_free(&l.id);
    buf_free(&scratch);
    buf_free(&reenc);
    record_ctx_free(&ctx);
    return rc;
}

int pack_reduce(ShardSet *s, ShardWriter *w, PackStats *st, char *err)
{
    return pack_reduce_as(s, w, LMR_DT_F32, st, err);
}

int pack_reduce_as(ShardSet *s, ShardWriter *w, int dtype, PackStats *st, char *err)
{
    memset(st, 0, sizeof *st);
    double t0 = now_s();
    const ShardMeta *sm = shardset_meta(s);
    if (sm->kind != LMR_KIND_FEATURES || (sm->dtype != LMR_DT_F16 && sm->dtype != LMR_DT_F32))
        return lmr_fail(err, LMR_EMISMATCH, "--reduce mean takes feature shards (f16 or f32)");
    ShardMeta hint;
    if (shardmeta_copy(&hint, sm))
        return LMR_ENOMEM;
    RecordCtx ctx;
    record_ctx_init(&ctx, 0);
    LmrBuf scratch, payload, out;
    buf_init(&scratch), buf_init(&payload), buf_init(&out);
    float *mean = NULL, *tmp = NULL;
    uint16_t *half = NULL;
    uint32_t tmin = UINT32_MAX, tmax = 0;
    int rc = 0;
    char show[LMR_SHOWLEN];
    for (uint64_t i = 0; !rc && i < shardset_count(s); i++) {
        RecordInfo info;
        if ((rc = shardset_get(s, i, &scratch, &info))) {
            lmr_fail(err, rc, "%s", shardset_error(s));
            break;
        }
        uint32_t V = info.dims[0], T = info.dims[1], D = info.dims[2] * (info.ndim > 3 ? info.dims[3] : 1);
        if (T == 0 || V == 0 || D == 0) {
            rc = lmr_fail(err, LMR_EMISMATCH, "clip %s: empty dims", lmr_show(show, info.id, info.id_len));
            break;
        }
        if ((rc = buf_reserve(&payload, info.raw_size)) || (rc = record_payload(&ctx, &info, payload.data, payload.cap))) {
            lmr_fail(err, rc, "clip %s: %s", lmr_show(show, info.id, info.id_len), ctx.last_error);
            break;
        }
        if (!mean && (!(mean = malloc(sizeof(float) * V * D)) || !(tmp = malloc(sizeof(float) * D)) ||
                      !(half = malloc(sizeof(uint16_t) * V * D)))) {
            rc = lmr_fail(err, LMR_ENOMEM, "out of memory");
            break;
        }
        memset(mean, 0, sizeof(float) * V * D);
        float inv = 1.0f / (float)T;
        for (uint32_t v = 0; v < V; v++) {
            float *o = mean + (size_t)v * D;
            for (uint32_t t = 0; t < T; t++) {
                size_t row = ((size_t)v * T + t) * D;
                const float *x = tmp;
                if (info.dtype == LMR_DT_F32)
                    x = (const float *)payload.data + row;
                else
                    lmr_f16_to_f32((const uint16_t *)payload.data + row, tmp, D);
                for (uint32_t k = 0; k < D; k++)
                    o[k] += x[k];
            }
            for (uint32_t k = 0; k < D; k++)
                o[k] *= inv;
        }
        tmin = T < tmin ? T : tmin, tmax = T > tmax ? T : tmax;
        RecordInfo r = info;
        r.dtype = (uint8_t)dtype;
        r.dims[1] = 1;
        if (dtype == LMR_DT_F16)
            lmr_f32_to_f16(mean, half, (size_t)V * D);
        if ((rc = record_encode(&ctx, &r, dtype == LMR_DT_F16 ? (const void *)half : mean, &out))) {
            lmr_fail(err, rc, "clip %s: %s", lmr_show(show, info.id, info.id_len), ctx.last_error);
            break;
        }
        rc = shardwriter_put(w, out.data, out.len);
        if (rc == LMR_DONE)
            st->present++, rc = 0;
        else if (rc)
            lmr_fail(err, rc, "%s", shardwriter_error(w));
        else
            st->written++;
        st->bytes_in += info.total_size;
    }
    if (!rc) {
        snprintf(hint.reduced, sizeof hint.reduced, "mean");
        hint.reduced_t[0] = tmin == UINT32_MAX ? 0 : tmin, hint.reduced_t[1] = tmax;
        if ((rc = shardwriter_set_meta(w, &hint)))
            lmr_fail(err, rc, "%s", shardwriter_error(w));
    }
    st->seconds = now_s() - t0;
    free(mean), free(tmp), free(half);
    buf_free(&scratch), buf_free(&payload), buf_free(&out);
    record_ctx_free(&ctx);
    shardmeta_free(&hint);
    return rc;
}
