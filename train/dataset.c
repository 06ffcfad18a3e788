/* Datasets for lmr-train: the label index and per-class counts built once at open (a few bytes
 * per clip), and the per-clip feature read: fetch the record, decompress and verify it, then
 * average the chosen view over T in float. */
#include "dataset.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

/* "SHARD: clip ID" for clip i of a shard set, "clip #i" in memory. */
static void clip_name(const Dataset *d, uint64_t i, char *buf, size_t cap)
{
    const char *id, *file;
    uint16_t len;
    if (!d->set) {
        snprintf(buf, cap, "clip #%llu", (unsigned long long)i);
        return;
    }
    shardset_id(d->set, i, &id, &len, &file);
    snprintf(buf, cap, "%s: clip %.*s", file, (int)len, id);
}

/* Read record i whole (header and checksum). @return 0 or its error, naming shard and clip. */
static int verify_clip(Dataset *d, uint64_t i, char *err)
{
    DatasetReader r;
    int rc = dataset_reader_init(&r);
    if (rc < 0)
        return lmr_fail(err, LMR_ENOMEM, "out of memory");
    RecordInfo info;
    if ((rc = shardset_get(d->set, i, &r.scratch, &info)) < 0)
        lmr_fail(err, rc, "%s", shardset_error(d->set));
    else if ((rc = buf_reserve(&r.payload, info.raw_size + 64)) < 0)
        lmr_fail(err, rc, "out of memory");
    else if ((rc = record_payload(&r.rctx, &info, r.payload.data, r.payload.cap)) < 0) {
        char name[400];
        clip_name(d, i, name, sizeof name);
        lmr_fail(err, rc, "%s: %s", name, r.rctx.last_error);
    }
    dataset_reader_free(&r);
    return rc;
}

static int index_labels(Dataset *d, int n_classes, char *err)
{
    uint64_t total = 0;
    int maxl = 0, top = -1;
    for (uint64_t i = 0; i < d->n; i++) {
        const int32_t *l;
        int k = shardset_labels(d->set, i, &l);
        total += (uint64_t)k;
        for (int j = 0; j < k; j++)
            top = l[j] > top ? l[j] : top;
    }
    d->label_off = malloc((d->n + 1) * sizeof *d->label_off);
    d->labels = malloc((total ? total : 1) * sizeof *d->labels);
    if (!d->label_off || !d->labels)
        return lmr_fail(err, LMR_ENOMEM, "out of memory for %llu labels", (unsigned long long)total);
    uint64_t o = 0;
    for (uint64_t i = 0; i < d->n; i++) {
        const int32_t *l;
        int k = shardset_labels(d->set, i, &l);
        d->label_off[i] = o;
        memcpy(d->labels + o, l, (size_t)k * sizeof *l);
        o += (uint64_t)k;
        maxl = k > maxl ? k : maxl;
    }
    d->label_off[d->n] = o;
    d->max_labels = maxl;
    int meta_c = shardset_meta(d->set)->n_classes;
    d->C = n_classes > 0 ? n_classes : (meta_c > top + 1 ? meta_c : top + 1);
    if (n_classes <= 0 && top >= 0) {
        // the class count comes from the headers, which no checksum has covered yet: a flipped bit
        // in one label would size the model, so the clip holding the highest label is read whole
        // (checksum) first
        for (uint64_t i = 0; i < d->n; i++) {
            const int32_t *l;
            int k = shardset_labels(d->set, i, &l), has = 0;
            for (int j = 0; j < k; j++)
                has |= l[j] == top;
            if (!has)
                continue;
            int rc = verify_clip(d, i, err);
            if (rc < 0)
                return rc;
            break;
        }
    }
    return 0;
}

/* Check every label is in [0, C) and every clip has one; count clips per class. Labels come from
 * the headers indexed at open, before any checksum: a clip without labels is read whole, so a
 * header that no longer parses is reported as what it is, with its shard and clip. */
static int count_labels(Dataset *d, char *err)
{
    d->counts = calloc((size_t)(d->C > 0 ? d->C : 1), sizeof *d->counts);
    if (!d->counts)
        return lmr_fail(err, LMR_ENOMEM, "out of memory");
    char name[400];
    for (uint64_t i = 0; i < d->n; i++) {
        const int32_t *l;
        int k = dataset_n_labels(d, i, &l);
        if (k == 0) {
            int rc = d->set ? verify_clip(d, i, err) : 0;
            if (rc < 0)
                return rc;
            clip_name(d, i, name, sizeof name);
            return lmr_fail(err, LMR_EINVAL, "%s has no label: training needs labelled clips", name);
        }
        for (int j = 0; j < k; j++) {
            if (l[j] < 0 || l[j] >= d->C) {
                clip_name(d, i, name, sizeof name);
                return lmr_fail(err, LMR_ERANGE, "%s: label %d outside the %d classes", name, l[j], d->C);
            }
            d->counts[l[j]]++;
        }
    }
    return 0;
}

int dataset_open(Dataset *d, const char *const *paths, int n_paths, int n_classes, char *err)
{
    memset(d, 0, sizeof *d);
    int rc = shardset_open(&d->set, paths, n_paths, err);
    if (rc < 0)
        return rc;
    const ShardMeta *m = shardset_meta(d->set);
    if (m->kind != LMR_KIND_FEATURES) {
        rc = lmr_fail(err, LMR_EMISMATCH, "%s: holds frames, not features: run a backbone first (lmr-extract --backbone)",
                      paths[0]);
        goto fail;
    }
    if (m->dtype != LMR_DT_F16 && m->dtype != LMR_DT_F32) {
        rc = lmr_fail(err, LMR_EMISMATCH, "%s: features of dtype %s, expected f16 or f32", paths[0],
                      record_dtype_name(m->dtype));
        goto fail;
    }
    d->n = shardset_count(d->set);
    d->views = (int)m->dims[0];
    d->D = (int)m->dims[2];
    if (d->n == 0 || d->views <= 0 || d->D <= 0) {
        rc = lmr_fail(err, LMR_EINVAL, "%s: no clips (or empty dims)", paths[0]);
        goto fail;
    }
    if ((rc = index_labels(d, n_classes, err)) < 0 || (rc = count_labels(d, err)) < 0)
        goto fail;
    return 0;
fail:;
    char keep[LMR_ERRLEN];
    snprintf(keep, sizeof keep, "%s", err ? err : "");
    dataset_close(d);
    if (err)
        snprintf(err, LMR_ERRLEN, "%s", keep);
    return rc;
}

int dataset_from_memory(Dataset *d, const float *x, uint64_t n, int views, int D, const int32_t *labels,
                        const uint64_t *label_off, int C, char *err)
{
    memset(d, 0, sizeof *d);
    if (n == 0 || views <= 0 || D <= 0 || C <= 0)
        return lmr_fail(err, LMR_EINVAL, "in-memory dataset: bad sizes");
    d->mem = x;
    d->n = n;
    d->views = views;
    d->D = D;
    d->C = C;
    uint64_t total = label_off ? label_off[n] : n;
    d->label_off = malloc((n + 1) * sizeof *d->label_off);
    d->labels = malloc((total ? total : 1) * sizeof *d->labels);
    if (!d->label_off || !d->labels) {
        dataset_close(d);
        return lmr_fail(err, LMR_ENOMEM, "out of memory");
    }
    for (uint64_t i = 0; i <= n; i++)
        d->label_off[i] = label_off ? label_off[i] : i;
    memcpy(d->labels, labels, total * sizeof *labels);
    int maxl = 0;
    for (uint64_t i = 0; i < n; i++) {
        int k = (int)(d->label_off[i + 1] - d->label_off[i]);
        maxl = k > maxl ? k : maxl;
    }
    d->max_labels = maxl;
    int rc = count_labels(d, err);
    if (rc < 0)
        dataset_close(d);
    return rc;
}

static Dataset *sort_set; /* qsort has no user pointer in C17; sets are sorted one at a time */

static int id_cmp(const void *pa, const void *pb)
{
    const char *a, *b;
    uint16_t la, lb;
    shardset_id(sort_set->set, *(const uint64_t *)pa, &a, &la, NULL);
    shardset_id(sort_set->set, *(const uint64_t *)pb, &b, &lb, NULL);
    int c = memcmp(a, b, la < lb ? la : lb);
    return c ? c : (la > lb) - (la < lb);
}

int dataset_digest(Dataset *d, char hex[17], char *err)
{
    uint64_t *order = malloc((d->n ? d->n : 1) * sizeof *order);
    XXH3_state_t *st = XXH3_createState();
    if (!order || !st) {
        free(order);
        XXH3_freeState(st);
        return lmr_fail(err, LMR_ENOMEM, "out of memory for the training set's digest");
    }
    for (uint64_t i = 0; i < d->n; i++)
        order[i] = i;
    if (d->set) { /* one LMDB file, or files in order, are in id order already: a linear check */
        sort_set = d;
        uint64_t i = 1;
        while (i < d->n && id_cmp(&order[i - 1], &order[i]) < 0)
            i++;
        if (i < d->n)
            qsort(order, d->n, sizeof *order, id_cmp);
        sort_set = NULL;
    }
    XXH3_64bits_reset(st);
    for (uint64_t k = 0; k < d->n; k++) {
        uint64_t i = order[k];
        const char *id;
        uint16_t len;
        char num[24];
        if (d->set) {
            shardset_id(d->set, i, &id, &len, NULL);
        } else {
            len = (uint16_t)snprintf(num, sizeof num, "%llu", (unsigned long long)i);
            id = num;
        }
        const int32_t *l;
        uint32_t nl = (uint32_t)dataset_n_labels(d, i, &l), n16 = len;
        XXH3_64bits_update(st, &n16, sizeof n16);
        XXH3_64bits_update(st, id, len);
        XXH3_64bits_update(st, &nl, sizeof nl);
        XXH3_64bits_update(st, l, nl * sizeof *l);
    }
    uint32_t C = (uint32_t)d->C;
    XXH3_64bits_update(st, &C, sizeof C);
    XXH3_64bits_update(st, d->counts, (size_t)d->C * sizeof *d->counts);
    snprintf(hex, 17, "%016llx", (unsigned long long)XXH3_64bits_digest(st));
    XXH3_freeState(st);
    free(order);
    return 0;
}

void dataset_close(Dataset *d)
{
    if (d) {
        if (d->mem == d->cache)
            d->mem = NULL;
        free(d->cache);
        free((void *)d->cache_state);
        d->cache = NULL, d->cache_state = NULL, d->cache_n = 0;
    }
    if (!d)
        return;
    shardset_close(&d->set);
    free(d->mem_owned);
    free(d->label_off);
    free(d->labels);
    free(d->counts);
    memset(d, 0, sizeof *d);
}

int dataset_reader_init(DatasetReader *r)
{
    memset(r, 0, sizeof *r);
    buf_init(&r->scratch);
    buf_init(&r->payload);
    return record_ctx_init(&r->rctx, 0);
}

void dataset_reader_free(DatasetReader *r)
{
    if (!r)
        return;
    record_ctx_free(&r->rctx);
    buf_free(&r->scratch);
    buf_free(&r->payload);
    memset(r, 0, sizeof *r);
}

/* out += one f16 row. With F16C (checked at run time) eight halves convert per instruction; the
 * conversion is exact either way, so both paths give the same sums. tmp holds D floats. */
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
__attribute__((target("avx,f16c"))) static int add_f16_row_f16c(float *out, const uint16_t *x, int D)
{
    int k = 0;
    for (; k + 8 <= D; k += 8) {
        __m256 f = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(x + k)));
        _mm256_storeu_ps(out + k, _mm256_add_ps(_mm256_loadu_ps(out + k), f));
    }
    return k;
}
#endif

static void add_f16_row(float *out, const uint16_t *x, float *tmp, int D)
{
    int k = 0;
#if defined(__x86_64__) || defined(__i386__)
    if (__builtin_cpu_supports("f16c") && __builtin_cpu_supports("avx"))
        k = add_f16_row_f16c(out, x, D);
#endif
    if (k < D) {
        lmr_f16_to_f32(x + k, tmp, (size_t)(D - k));
        for (int i = k; i < D; i++)
            out[i] += tmp[i - k];
    }
}

static int read_view(Dataset *d, DatasetReader *r, uint64_t i, int view, float *out, char *err);

int dataset_read(Dataset *d, DatasetReader *r, uint64_t i, int view, float *out, char *err)
{
    int D = d->D;
    if (d->mem) {
        memcpy(out, d->mem + ((size_t)i * d->views + (size_t)view) * D, (size_t)D * sizeof *out);
        return 0;
    }
    if (i >= d->cache_n)
        return read_view(d, r, i, view, out, err);
    float *slot = d->cache + (size_t)i * d->views * D;
    unsigned char st = atomic_load_explicit(&d->cache_state[i], memory_order_acquire);
    if (st == 2) {
        memcpy(out, slot + (size_t)view * D, (size_t)D * sizeof *out);
        return 0;
    }
    unsigned char empty = 0;
    if (st != 0 || !atomic_compare_exchange_strong(&d->cache_state[i], &empty, 1))
        return read_view(d, r, i, view, out, err); /* another thread fills it */
    int rc = 0;
    for (int v = 0; v < d->views && !rc; v++)
        rc = read_view(d, r, i, v, slot + (size_t)v * D, err);
    if (rc) {
        atomic_store_explicit(&d->cache_state[i], 0, memory_order_release);
        return rc;
    }
    atomic_store_explicit(&d->cache_state[i], 2, memory_order_release);
    atomic_fetch_add_explicit(&d->cache_filled, 1, memory_order_relaxed);
    memcpy(out, slot + (size_t)view * D, (size_t)D * sizeof *out);
    return 0;
}

int dataset_cache_to_memory(Dataset *d)
{
    if (d->mem || !d->cache || d->cache_n != d->n ||
        atomic_load_explicit(&d->cache_filled, memory_order_acquire) != d->n)
        return 0;
    d->mem = d->cache;
    return 1;
}

int dataset_cache(Dataset *d, uint64_t mb, char *err)
{
    if (d->mem && d->mem == d->cache)
        d->mem = NULL;
    atomic_store(&d->cache_filled, 0);
    free(d->cache);
    free((void *)d->cache_state);
    d->cache = NULL, d->cache_state = NULL, d->cache_n = 0;
    if (!mb || d->mem || !d->set)
        return 0;
    uint64_t per = (uint64_t)d->views * (uint64_t)d->D * sizeof(float) + 1;
    uint64_t n = (mb << 20) / per;
    if (n > d->n)
        n = d->n;
    if (!n)
        return 0;
    d->cache = malloc((size_t)n * (size_t)d->views * (size_t)d->D * sizeof(float)); /* untouched pages cost nothing */
    d->cache_state = calloc((size_t)n, 1);
    if (!d->cache || !d->cache_state) {
        free(d->cache);
        free((void *)d->cache_state);
        d->cache = NULL, d->cache_state = NULL;
        return lmr_fail(err, LMR_ENOMEM, "--cache-mb %llu: out of memory", (unsigned long long)mb);
    }
    d->cache_n = n;
    return 0;
}

uint64_t dataset_cache_default_mb(void)
{
    FILE *f = fopen("/proc/meminfo", "r");
    char line[256];
    unsigned long long kb = 0;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "MemAvailable: %llu kB", &kb) == 1)
            break;
    if (f)
        fclose(f);
    return kb / 1024 / 4;
}

static int read_view(Dataset *d, DatasetReader *r, uint64_t i, int view, float *out, char *err)
{
    int D = d->D;
    RecordInfo info;
    int rc = shardset_get(d->set, i, &r->scratch, &info);
    if (rc < 0)
        return lmr_fail(err, rc, "%s", shardset_error(d->set));
    uint32_t T = info.dims[1];
    if (info.kind != LMR_KIND_FEATURES || (int)info.dims[0] != d->views || (int)info.dims[2] != D || T == 0)
        return lmr_fail(err, LMR_EMISMATCH, "clip %.*s: dims [%u,%u,%u] do not match the set's [%d,T,%d]",
                        (int)info.id_len, info.id, info.dims[0], T, info.dims[2], d->views, D);
    // room for the payload, then one f32 row for f16 conversion
    if ((rc = buf_reserve(&r->payload, info.raw_size + 64 + (size_t)D * sizeof(float))) < 0)
        return lmr_fail(err, rc, "out of memory");
    if ((rc = record_payload(&r->rctx, &info, r->payload.data, r->payload.cap)) < 0) {
        const char *id, *file = NULL;
        uint16_t idl;
        shardset_id(d->set, i, &id, &idl, &file);
        return lmr_fail(err, rc, "%s: %s", file ? file : "?", r->rctx.last_error);
    }
    memset(out, 0, (size_t)D * sizeof *out);
    size_t row0 = (size_t)view * T;
    if (info.dtype == LMR_DT_F32) {
        const float *x = (const float *)r->payload.data + row0 * D;
        for (uint32_t t = 0; t < T; t++)
            for (int k = 0; k < D; k++)
                out[k] += x[(size_t)t * D + k];
    } else {
        const uint16_t *x = (const uint16_t *)r->payload.data + row0 * D;
        float *tmp = (float *)(r->payload.data + ((info.raw_size + 63) & ~(uint64_t)63));
        for (uint32_t t = 0; t < T; t++)
            add_f16_row(out, x + (size_t)t * D, tmp, D);
    }
    float inv = 1.0f / (float)T;
    for (int k = 0; k < D; k++)
        out[k] *= inv;
    return 0;
}

int dataset_preload(Dataset *d, char *err)
{
    if (d->mem)
        return 0;
    size_t rows = (size_t)d->n * (size_t)d->views;
    float *x = malloc(rows * (size_t)d->D * sizeof *x);
    if (!x)
        return lmr_fail(err, LMR_ENOMEM, "--preload: out of memory for %zu x %d features", rows, d->D);
    DatasetReader r;
    int rc = dataset_reader_init(&r);
    for (uint64_t i = 0; rc == 0 && i < d->n; i++)
        for (int v = 0; rc == 0 && v < d->views; v++)
            rc = dataset_read(d, &r, i, v, x + ((size_t)i * d->views + (size_t)v) * d->D, err);
    dataset_reader_free(&r);
    if (rc < 0) {
        free(x);
        return rc;
    }
    d->mem = d->mem_owned = x;
    return 0;
}
