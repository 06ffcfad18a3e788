/* lmr-pack --verify and --info, for one shard at a time. Verify walks the shard with a few
 * threads, each with its own zstd context and scratch buffer (the reader is shared, as shard.h
 * allows), checks every record, and reports the bad ones lowest-numbered first, so that the
 * answer does not depend on thread timing. */
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
    pthread_mutex_t lock;          /* guards the bad list */
    uint64_t n_bad;
    VerifyBad *bad;                /* up to PACK_VERIFY_KEEP entries, the lowest indices seen */
    int n_kept, max_at;            /* max_at: entry with the highest index once the list is full */
} VerifyJob;

typedef struct {
    VerifyJob *job;
    uint64_t checked, payload;
    int rc;
} VerifyWorker;

static void verify_bad(VerifyJob *j, uint64_t i, int rc, const char *msg)
{
    pthread_mutex_lock(&j->lock);
    j->n_bad++;
    VerifyBad *slot = NULL;
    if (j->n_kept < PACK_VERIFY_KEEP) {
        slot = &j->bad[j->n_kept++];
    } else if (i < j->bad[j->max_at].index) {
        slot = &j->bad[j->max_at];
    }
    if (slot) {
        slot->index = i;
        slot->rc = rc;
        snprintf(slot->msg, sizeof slot->msg, "%s", msg);
        if (j->n_kept == PACK_VERIFY_KEEP) { /* the entry to replace next */
            j->max_at = 0;
            for (int k = 1; k < j->n_kept; k++)
                if (j->bad[k].index > j->bad[j->max_at].index)
                    j->max_at = k;
        }
    }
    pthread_mutex_unlock(&j->lock);
}

/* The record's id must be the key it is found under: one record under two keys, or a value put
 * under another key, would otherwise be counted as a clip twice or read under a wrong name. */
static int check_key(VerifyJob *j, uint64_t i, const RecordInfo *info, LmrBuf *id)
{
    if (buf_reserve(id, (size_t)info->id_len + 1))
        return LMR_ENOMEM;
    memcpy(id->data, info->id, info->id_len);
    id->data[info->id_len] = 0;
    int64_t at = shardset_find(j->s, (const char *)id->data);
    if (at == (int64_t)i)
        return 0;
    char msg[LMR_ERRLEN];
    if (at < 0)
        snprintf(msg, sizeof msg, "record %llu: its id '%.200s' is not the key it is stored under",
                 (unsigned long long)i, (const char *)id->data);
    else
        snprintf(msg, sizeof msg, "record %llu: its id '%.200s' is the key of record %llu too (a clip stored twice)",
                 (unsigned long long)i, (const char *)id->data, (unsigned long long)at);
    verify_bad(j, i, LMR_ECORRUPT, msg);
    return LMR_ECORRUPT;
}

static void *verify_thread(void *arg)
{
    VerifyWorker *vw = arg;
    VerifyJob *j = vw->job;
    RecordCtx ctx;
    LmrBuf scratch, payload, id;
    buf_init(&scratch);
    buf_init(&payload);
    buf_init(&id);
    if ((vw->rc = record_ctx_init(&ctx, 0)))
        return NULL;
    for (;;) {
        uint64_t start = atomic_fetch_add(&j->next, VERIFY_BATCH);
        if (start >= j->n)
            break;
        uint64_t end = start + VERIFY_BATCH < j->n ? start + VERIFY_BATCH : j->n;
        for (uint64_t i = start; i < end; i++) {
            RecordInfo info;
            int rc = shardset_get(j->s, i, &scratch, &info);
            if (rc) {
                verify_bad(j, i, rc, shardset_error(j->s));
                continue;
            }
            if ((rc = record_verify(&ctx, &info, &payload))) {
                if (rc == LMR_ENOMEM)
                    lmr_fail(ctx.last_error, rc, "record %.*s: payload of %llu bytes: out of memory",
                             info.id_len > 200 ? 200 : (int)info.id_len, info.id, (unsigned long long)info.raw_size);
                verify_bad(j, i, rc, ctx.last_error);
                continue;
            }
            if (check_key(j, i, &info, &id))
                continue;
            vw->checked++;
            vw->payload += info.raw_size;
        }
    }
    record_ctx_free(&ctx);
    buf_free(&scratch);
    buf_free(&payload);
    buf_free(&id);
    return NULL;
}

static int bad_cmp(const void *a, const void *b)
{
    uint64_t x = ((const VerifyBad *)a)->index, y = ((const VerifyBad *)b)->index;
    return x < y ? -1 : x > y;
}

int pack_verify(ShardSet *s, int n_threads, VerifyStats *st, char *err)
{
    memset(st, 0, sizeof *st);
    if (n_threads < 1)
        n_threads = 1;
    if (n_threads > 64)
        n_threads = 64;
    VerifyJob j = {.s = s, .n = shardset_count(s)};
    if (!(j.bad = calloc(PACK_VERIFY_KEEP, sizeof *j.bad)))
        return lmr_fail(err, LMR_ENOMEM, "verify: out of memory");
    atomic_init(&j.next, 0);
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
    qsort(j.bad, (size_t)j.n_kept, sizeof *j.bad, bad_cmp);
    st->n_bad = j.n_bad;
    st->n_kept = j.n_kept;
    st->bad = j.bad;
    if (j.n_kept && !rc)
        rc = lmr_fail(err, j.bad[0].rc, "%s", j.bad[0].msg);
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

json_t *pack_info_json(const ShardSet *s, const char *path)
{
    const ShardMeta *m = shardset_meta(s);
    int *groups = calloc((size_t)(m->n_classes > 0 ? m->n_classes : 1), sizeof(int));
    char *str = groups ? shardmeta_to_json(m) : NULL;
    json_t *o = str ? json_loads(str, 0, NULL) : NULL;
    free(str);
    if (!o || classes_partition(m->class_counts, m->n_classes, LMR_HEAD_SHARE, LMR_FEW_MAX, groups)) {
        free(groups);
        json_decref(o);
        return NULL;
    }
    json_t *files = json_array(), *f = json_object(), *g = json_array();
    json_object_set_new(f, "path", json_string(path));
    json_object_set_new(f, "format", json_string(file_format(path)));
    json_array_append_new(files, f);
    for (int c = 0; c < m->n_classes; c++)
        json_array_append_new(g, json_string(classes_group_name(groups[c])));
    json_object_set_new(o, "n_records", json_integer((json_int_t)shardset_count(s)));
    json_object_set_new(o, "files", files);
    json_object_set_new(o, "class_groups", g);
    json_object_set_new(o, "few_max", json_integer(LMR_FEW_MAX));
    json_object_set_new(o, "head_share", json_real(LMR_HEAD_SHARE));
    free(groups);
    return o;
}

int pack_info(const ShardSet *s, const char *path, int json, FILE *out)
{
    if (json) {
        json_t *o = pack_info_json(s, path);
        if (!o)
            return LMR_ENOMEM;
        int rc = json_dumpf(o, out, JSON_INDENT(1) | JSON_PRESERVE_ORDER) ? LMR_EIO : 0;
        fputc('\n', out);
        json_decref(o);
        return rc;
    }
    const ShardMeta *m = shardset_meta(s);
    int *groups = calloc((size_t)(m->n_classes > 0 ? m->n_classes : 1), sizeof(int));
    if (!groups)
        return LMR_ENOMEM;
    if (classes_partition(m->class_counts, m->n_classes, LMR_HEAD_SHARE, LMR_FEW_MAX, groups)) {
        free(groups);
        return LMR_ENOMEM;
    }
    uint64_t n = shardset_count(s);
    fprintf(out, "shard         %s (%s)\n", path, file_format(path));
    fprintf(out, "records       %llu%s\n", (unsigned long long)n, n ? "" : " (the shard is empty)");
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
        fprintf(out, "kind          - (no records)\n");
    fprintf(out, "dataset       %s\nsplit         %s\nmode          %s\n", m->dataset[0] ? m->dataset : "-",
            m->split[0] ? m->split : "-", m->mode[0] ? m->mode : "-");
    fprintf(out, "extract       frames %d, size %d, backbone %s, weights %s\n", m->frames, m->size,
            m->backbone[0] ? m->backbone : "-", m->weights_checksum[0] ? m->weights_checksum : "-");
    if (m->reduced[0])
        fprintf(out, "reduced       %s over T (T %u to %u before; lmr-pack --reduce)\n", m->reduced, m->reduced_t[0],
                m->reduced_t[1]);
    fprintf(out, "written by    lmr %s, shard format %d\n", m->lmr_version, m->format_version);
    int sizes[LMR_N_GROUPS];
    classes_group_sizes(groups, m->n_classes, sizes);
    fprintf(out, "classes       %d%s: head %d, tail %d, few %d (few <= %d clips, head <= %.0f%% of clips)%s\n",
            m->n_classes, m->multi_label ? " (multi-label)" : "", sizes[LMR_GROUP_HEAD], sizes[LMR_GROUP_TAIL],
            sizes[LMR_GROUP_FEW], LMR_FEW_MAX, 100 * LMR_HEAD_SHARE,
            m->n_class_names > 0 ? "" : ", no class names");
    int64_t max = 1;
    for (int c = 0; c < m->n_classes; c++)
        if (m->class_counts[c] > max)
            max = m->class_counts[c];
    int names = m->n_class_names > 0;
    if (m->n_classes)
        fprintf(out, "\n class     clips  group%s\n", names ? "                                          name" : "");
    static const char bars[] = "########################################";
    for (int c = 0; c < m->n_classes; c++) {
        int bar = (int)(40 * m->class_counts[c] / max);
        const char *name = c < m->n_class_names && m->class_names[c] && m->class_names[c][0] ? m->class_names[c] : "-";
        if (names)
            fprintf(out, "%6d %9lld  %-6s %-40.*s %s\n", c, (long long)m->class_counts[c],
                    classes_group_name(groups[c]), bar, bars, name);
        else
            fprintf(out, "%6d %9lld  %-6s %.*s\n", c, (long long)m->class_counts[c], classes_group_name(groups[c]), bar,
                    bars);
    }
    free(groups);
    return 0;
}
