/* lmr-pack --verify and --info. Verify walks the set with a few threads, each with its own
 * zstd context and scratch buffer (the reader is shared, as shard.h allows), and reports the
 * lowest-numbered bad record so that the answer does not depend on thread timing. */
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "classes.h"
#include "pack.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

// --- verify ---------------------------------------------------------------------------------

#define VERIFY_BATCH 64

typedef struct {
    ShardSet *s;
    uint64_t n;
    atomic_uint_fast64_t next;     /* next batch start */
    atomic_int_fast64_t first_bad; /* lowest bad index so far, INT64_MAX when none */
    pthread_mutex_t lock;          /* guards bad_rc / err */
    int bad_rc;
    char err[LMR_ERRLEN];
} VerifyJob;

typedef struct {
    VerifyJob *job;
    uint64_t checked, payload;
    int rc;
} VerifyWorker;

static void verify_bad(VerifyJob *j, uint64_t i, int rc, const char *msg)
{
    pthread_mutex_lock(&j->lock);
    if ((int64_t)i < atomic_load(&j->first_bad)) {
        atomic_store(&j->first_bad, (int64_t)i);
        j->bad_rc = rc;
        snprintf(j->err, sizeof j->err, "record %llu: %.440s", (unsigned long long)i, msg);
    }
    pthread_mutex_unlock(&j->lock);
}

static void *verify_thread(void *arg)
{
    VerifyWorker *vw = arg;
    VerifyJob *j = vw->job;
    RecordCtx ctx;
    LmrBuf scratch, payload;
    buf_init(&scratch);
    buf_init(&payload);
    if ((vw->rc = record_ctx_init(&ctx, 0)))
        return NULL;
    for (;;) {
        uint64_t start = atomic_fetch_add(&j->next, VERIFY_BATCH);
        if (start >= j->n || (int64_t)start > atomic_load(&j->first_bad))
            break;
        uint64_t end = start + VERIFY_BATCH < j->n ? start + VERIFY_BATCH : j->n;
        for (uint64_t i = start; i < end; i++) {
            RecordInfo info;
            int rc = shardset_get(j->s, i, &scratch, &info);
            if (rc) {
                verify_bad(j, i, rc, shardset_error(j->s));
                break;
            }
            if ((rc = record_verify(&ctx, &info, &payload))) {
                verify_bad(j, i, rc, ctx.last_error);
                break;
            }
            vw->checked++;
            vw->payload += info.raw_size;
        }
    }
    record_ctx_free(&ctx);
    buf_free(&scratch);
    buf_free(&payload);
    return NULL;
}

int pack_verify(ShardSet *s, int n_threads, VerifyStats *st, char *err)
{
    memset(st, 0, sizeof *st);
    st->first_bad = -1;
    if (n_threads < 1)
        n_threads = 1;
    if (n_threads > 64)
        n_threads = 64;
    VerifyJob j = {.s = s, .n = shardset_count(s)};
    atomic_init(&j.next, 0);
    atomic_init(&j.first_bad, INT64_MAX);
    pthread_mutex_init(&j.lock, NULL);
    VerifyWorker w[64];
    pthread_t tid[64];
    double t0 = now_s();
    int started = 0, rc = 0;
    for (int t = 0; t < n_threads; t++) {
        w[t] = (VerifyWorker){.job = &j};
        if (t > 0 && pthread_create(&tid[t], NULL, verify_thread, &w[t]) != 0)
            break;
        started = t + 1;
    }
    verify_thread(&w[0]); /* the calling thread works too */
    for (int t = 1; t < started; t++)
        pthread_join(tid[t], NULL);
    st->seconds = now_s() - t0;
    for (int t = 0; t < started; t++) {
        st->n_checked += w[t].checked;
        st->payload_bytes += w[t].payload;
        if (w[t].rc && !rc)
            rc = lmr_fail(err, w[t].rc, "verify: %s", lmr_strerror(w[t].rc));
    }
    if (atomic_load(&j.first_bad) != INT64_MAX) {
        st->first_bad = atomic_load(&j.first_bad);
        rc = lmr_fail(err, j.bad_rc, "%s", j.err);
    }
    pthread_mutex_destroy(&j.lock);
    return rc;
}

// --- info -------------------------------------------------------------------------------------

static const char *file_format(const char *path)
{
    static const unsigned char sig[8] = {0x89, 'H', 'D', 'F', '\r', '\n', 0x1a, '\n'};
    unsigned char b[8] = {0};
    FILE *f = fopen(path, "rb");
    size_t n = f ? fread(b, 1, 8, f) : 0;
    if (f)
        fclose(f);
    return n == 8 && memcmp(b, sig, 8) == 0 ? "hdf5" : "lmdb";
}

static int info_json(const ShardMeta *m, const int *groups, const char *const *paths, int n_paths, FILE *out)
{
    char *s = shardmeta_to_json(m);
    json_t *o = s ? json_loads(s, 0, NULL) : NULL;
    free(s);
    if (!o)
        return LMR_ENOMEM;
    json_t *files = json_array(), *g = json_array();
    for (int k = 0; k < n_paths; k++) {
        json_t *f = json_object();
        json_object_set_new(f, "path", json_string(paths[k]));
        json_object_set_new(f, "format", json_string(file_format(paths[k])));
        json_array_append_new(files, f);
    }
    for (int c = 0; c < m->n_classes; c++)
        json_array_append_new(g, json_string(classes_group_name(groups[c])));
    json_object_set_new(o, "files", files);
    json_object_set_new(o, "class_groups", g);
    json_object_set_new(o, "few_max", json_integer(LMR_FEW_MAX));
    json_object_set_new(o, "head_share", json_real(LMR_HEAD_SHARE));
    int rc = json_dumpf(o, out, JSON_INDENT(1) | JSON_PRESERVE_ORDER) ? LMR_EIO : 0;
    fputc('\n', out);
    json_decref(o);
    return rc;
}

int pack_info(const ShardSet *s, const char *const *paths, int n_paths, int json, FILE *out)
{
    const ShardMeta *m = shardset_meta(s);
    int *groups = calloc((size_t)(m->n_classes > 0 ? m->n_classes : 1), sizeof(int));
    if (!groups)
        return LMR_ENOMEM;
    classes_partition(m->class_counts, m->n_classes, LMR_HEAD_SHARE, LMR_FEW_MAX, groups);
    int rc = 0;
    if (json) {
        rc = info_json(m, groups, paths, n_paths, out);
        free(groups);
        return rc;
    }
    for (int k = 0; k < n_paths; k++)
        fprintf(out, "shard         %s (%s)\n", paths[k], file_format(paths[k]));
    fprintf(out, "records       %llu\n", (unsigned long long)shardset_count(s));
    static const char *const dt[] = {"?", "u8", "f16", "f32"};
    const char *dtn = m->dtype <= 3 ? dt[m->dtype] : "?";
    char t[24];
    if (m->dims[1])
        snprintf(t, sizeof t, "%u", m->dims[1]);
    else
        snprintf(t, sizeof t, "varies");
    if (m->kind == LMR_KIND_FEATURES)
        fprintf(out, "kind          features %s [views %u, T %s, D %u]\n", dtn, m->dims[0], t, m->dims[2]);
    else if (m->kind == LMR_KIND_FRAMES)
        fprintf(out, "kind          frames %s [views %u, T %s, H %u, W %u, 3]\n", dtn, m->dims[0], t, m->dims[2],
                m->dims[3] / 3);
    else
        fprintf(out, "kind          (empty)\n");
    fprintf(out, "dataset       %s\nsplit         %s\n", m->dataset[0] ? m->dataset : "-", m->split[0] ? m->split : "-");
    fprintf(out, "extract       frames %d, size %d, backbone %s, weights %s\n", m->frames, m->size,
            m->backbone[0] ? m->backbone : "-", m->weights_checksum[0] ? m->weights_checksum : "-");
    fprintf(out, "written by    lmr %s, shard format %d\n", m->lmr_version, m->format_version);
    int sizes[LMR_N_GROUPS];
    classes_group_sizes(groups, m->n_classes, sizes);
    fprintf(out, "classes       %d%s: head %d, tail %d, few %d (few <= %d clips, head <= %.0f%% of clips)\n",
            m->n_classes, m->multi_label ? " (multi-label)" : "", sizes[LMR_GROUP_HEAD], sizes[LMR_GROUP_TAIL],
            sizes[LMR_GROUP_FEW], LMR_FEW_MAX, 100 * LMR_HEAD_SHARE);
    int64_t max = 1;
    for (int c = 0; c < m->n_classes; c++)
        if (m->class_counts[c] > max)
            max = m->class_counts[c];
    if (m->n_classes)
        fprintf(out, "\n class     clips  group\n");
    for (int c = 0; c < m->n_classes; c++) {
        int bar = (int)(40 * m->class_counts[c] / max);
        fprintf(out, "%6d %9lld  %-6s %.*s\n", c, (long long)m->class_counts[c], classes_group_name(groups[c]), bar,
                "########################################");
    }
    free(groups);
    return rc;
}
