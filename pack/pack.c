/* lmr-pack's packing loop: sidecar metadata first (and the check that all inputs come from the
 * same backbone), then every record of every stream, checked, optionally re-encoded, and put
 * into the shard writer, which skips what a previous run already stored. */
#include "pack.h"

#include <errno.h>
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
    char side[1024];
    snprintf(side, sizeof side, "%s.meta.json", rec_path);
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
            lmr_fail(err, rc, "%s: %s", side, perr);
        else
            *found = 1;
    }
    buf_free(&b);
    return rc;
}

/* Read all sidecars, refuse inputs from different backbones, hand the result to the writer. */
static int apply_sidecars(ShardWriter *w, const char *const *inputs, int n_inputs, const PackOpts *o, char *err)
{
    ShardMeta first;
    shardmeta_init(&first);
    const char *first_path = NULL;
    int rc = 0;
    for (int k = 0; k < n_inputs && !rc; k++) {
        if (strcmp(inputs[k], "-") == 0)
            continue;
        ShardMeta m;
        shardmeta_init(&m);
        int found;
        rc = pack_read_sidecar(inputs[k], &m, &found, err);
        if (!rc && found) {
            if (!first_path) {
                first_path = inputs[k];
                shardmeta_free(&first);
                rc = shardmeta_copy(&first, &m);
            } else if (strcmp(m.backbone, first.backbone) || strcmp(m.weights_checksum, first.weights_checksum)) {
                rc = lmr_fail(err, LMR_EMISMATCH, "%s: backbone %s (weights %s) differs from %s's %s (weights %s)",
                              inputs[k], m.backbone, m.weights_checksum, first_path, first.backbone,
                              first.weights_checksum);
            }
            if (!rc && shardwriter_set_meta(w, &m))
                rc = lmr_fail(err, LMR_EMISMATCH, "%s: %s", inputs[k], shardwriter_error(w));
        }
        shardmeta_free(&m);
    }
    shardmeta_free(&first);
    if (!rc && o->hint && shardwriter_set_meta(w, o->hint))
        rc = lmr_fail(err, LMR_EMISMATCH, "%s", shardwriter_error(w));
    return rc;
}

int pack_run(ShardWriter *w, const char *const *inputs, int n_inputs, const PackOpts *o, PackStats *st, char *err)
{
    memset(st, 0, sizeof *st);
    for (int k = 0; k < n_inputs; k++) {
        struct stat sb;
        if (strcmp(inputs[k], "-") == 0 || stat(inputs[k], &sb) || !S_ISREG(sb.st_mode)) {
            st->bytes_total = 0;
            break;
        }
        st->bytes_total += (uint64_t)sb.st_size;
    }
    LMR_TRY(apply_sidecars(w, inputs, n_inputs, o, err));
    RecordCtx ctx;
    if (record_ctx_init(&ctx, o->zstd_level > 0 ? o->zstd_level : 0))
        return lmr_fail(err, LMR_ENOMEM, "zstd context");
    LmrBuf scratch, reenc;
    buf_init(&scratch);
    buf_init(&reenc);
    RecReader r;
    memset(&r, 0, sizeof r);
    double t0 = now_s(), last = t0;
    int rc = 0;
    for (int k = 0; k < n_inputs && !rc; k++) {
        if ((rc = recreader_open(&r, inputs[k]))) {
            lmr_fail(err, rc, "%s", r.last_error);
            break;
        }
        for (uint64_t n = 0;; n++) {
            uint64_t off = r.offset;
            RecordInfo info;
            rc = recreader_next(&r, &info);
            if (rc == LMR_DONE) {
                rc = 0;
                break;
            }
            if (rc == LMR_ETRUNC) { /* a stream cut short by a crash: its last record is not stored */
                if (o->warn)
                    o->warn(o->warn_user, r.last_error);
                st->skipped++;
                rc = 0;
                break;
            }
            if (rc) {
                lmr_fail(err, rc, "%s", r.last_error);
                break;
            }
            if (info.kind == LMR_KIND_META) /* the stream's provenance, not a clip */
                continue;
            const uint8_t *bytes = r.buf.data;
            size_t len = (size_t)info.total_size;
            if (o->zstd_level >= 0) {
                if ((rc = buf_reserve(&scratch, info.raw_size)) ||
                    (rc = record_payload(&ctx, &info, scratch.data, scratch.cap)) ||
                    (rc = record_encode(&ctx, &info, scratch.data, &reenc))) {
                    lmr_fail(err, rc, "%s: offset %llu: %s", r.path, (unsigned long long)off, ctx.last_error);
                    break;
                }
                bytes = reenc.data;
                len = reenc.len;
            } else if (o->check_payload && (rc = record_verify(&ctx, &info, &scratch))) {
                lmr_fail(err, rc, "%s: offset %llu: %s", r.path, (unsigned long long)off, ctx.last_error);
                break;
            }
            rc = shardwriter_put(w, bytes, len);
            if (rc == 0) {
                st->written++;
            } else if (rc == LMR_DONE) {
                st->present++;
                rc = 0;
            } else {
                lmr_fail(err, rc, "%s: offset %llu: %s", r.path, (unsigned long long)off, shardwriter_error(w));
                break;
            }
            st->bytes_in += info.total_size;
            if (o->progress && (n & 63) == 0) {
                double t = now_s();
                if (t - last >= 0.5) {
                    last = t;
                    st->seconds = t - t0;
                    o->progress(o->progress_user, st, 0);
                }
            }
        }
        recreader_close(&r);
    }
    st->seconds = now_s() - t0;
    if (o->progress)
        o->progress(o->progress_user, st, 1);
    buf_free(&scratch);
    buf_free(&reenc);
    record_ctx_free(&ctx);
    return rc;
}
