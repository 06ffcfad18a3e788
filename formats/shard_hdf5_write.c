/* The HDF5 shard writer: clips are written as they come (one chunk per clip in the fixed
 * layout); ids, labels, checksums and the metadata stay in memory and are written at close,
 * followed by the `lmr_complete` mark. A resumed writer reads them back first. */
#include <errno.h>
#include <libdeflate.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "shard_hdf5.h"

// --- per-clip index (ids, checksums, rows) ----------------------------------------------------------

typedef struct {
    uint64_t n, cap;
    char *ids;         /* NUL-terminated ids back to back */
    uint64_t ids_len, ids_cap, max_id;
    uint64_t *id_off;  /* [n] */
    uint64_t *checksums;
    uint64_t *rows;    /* [2n]: first row, row count (views * T) */
    uint64_t *slots;   /* open-addressing id -> index + 1; n_slots a power of two */
    uint64_t n_slots;
} H5Index;

static void h5index_free(H5Index *x)
{
    free(x->ids);
    free(x->id_off);
    free(x->checksums);
    free(x->rows);
    free(x->slots);
    memset(x, 0, sizeof *x);
}

static const char *h5index_id(const H5Index *x, uint64_t i) { return x->ids + x->id_off[i]; }

/* Slot of id: its index + 1 when present, else an empty slot (value 0). */
static uint64_t *h5index_slot(const H5Index *x, const char *id, size_t len)
{
    uint64_t mask = x->n_slots - 1, h = XXH3_64bits(id, len) & mask;
    for (;; h = (h + 1) & mask) {
        uint64_t v = x->slots[h];
        if (v == 0)
            return &x->slots[h];
        const char *o = h5index_id(x, v - 1);
        if (strlen(o) == len && memcmp(o, id, len) == 0)
            return &x->slots[h];
    }
}

static int h5index_push(H5Index *x, const char *id, size_t len, uint64_t checksum, uint64_t first, uint64_t count)
{
    if (x->n == x->cap) {
        uint64_t cap = x->cap ? 2 * x->cap : 1024;
        uint64_t *o = realloc(x->id_off, sizeof(uint64_t) * cap), *c = o ? realloc(x->checksums, sizeof(uint64_t) * cap) : NULL;
        if (o)
            x->id_off = o;
        if (c)
            x->checksums = c;
        uint64_t *r = c ? realloc(x->rows, sizeof(uint64_t) * 2 * cap) : NULL;
        if (!r)
            return LMR_ENOMEM;
        x->rows = r;
        x->cap = cap;
    }
    if (x->ids_len + len + 1 > x->ids_cap) {
        uint64_t cap = x->ids_cap ? 2 * x->ids_cap : 65536;
        while (cap < x->ids_len + len + 1)
            cap *= 2;
        char *s = realloc(x->ids, cap);
        if (!s)
            return LMR_ENOMEM;
        x->ids = s;
        x->ids_cap = cap;
    }
    if (2 * (x->n + 1) > x->n_slots) { /* keep the table at most half full */
        uint64_t ns = x->n_slots ? 2 * x->n_slots : 4096;
        uint64_t *old = x->slots, old_n = x->n_slots;
        if (!(x->slots = calloc(ns, sizeof(uint64_t)))) {
            x->slots = old;
            return LMR_ENOMEM;
        }
        x->n_slots = ns;
        for (uint64_t k = 0; k < old_n; k++)
            if (old[k]) {
                const char *o = h5index_id(x, old[k] - 1);
                *h5index_slot(x, o, strlen(o)) = old[k];
            }
        free(old);
    }
    x->id_off[x->n] = x->ids_len;
    memcpy(x->ids + x->ids_len, id, len);
    x->ids[x->ids_len + len] = 0;
    x->ids_len += len + 1;
    if (len > x->max_id)
        x->max_id = len;
    x->checksums[x->n] = checksum;
    x->rows[2 * x->n] = first;
    x->rows[2 * x->n + 1] = count;
    *h5index_slot(x, id, len) = x->n + 1;
    x->n++;
    return 0;
}

// --- compressing pool (direct chunk writes) ------------------------------------------------------

/* Clips of the fixed layout are filtered here, not by HDF5: shuffle, then zlib-format deflate with
 * libdeflate, by a few threads at once; the caller's thread stores the finished chunks in clip
 * order with H5Dwrite_chunk (HDF5 calls stay on one thread, under the lock). The file is the same
 * shuffle + deflate HDF5 that HDF5's own filters would write. */

enum { JOB_FREE, JOB_QUEUED, JOB_BUSY, JOB_DONE };

typedef struct {
    LmrBuf in, out;   /* the clip's raw payload; the filtered chunk */
    size_t out_len;
    uint64_t clip;    /* chunk index along dim 0 */
    int state, rc;
} H5Job;

typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t work, done;
    pthread_t *threads;
    int n_threads, n_jobs, stop;
    H5Job *jobs;
    uint64_t head, take, tail; /* next to queue, next a thread takes, oldest not yet stored */
    int level, shuffle, deflate;
    size_t elem;
} H5Pool;

static int filter_chunk(H5Pool *p, struct libdeflate_compressor *c, LmrBuf *tmp, H5Job *j)
{
    size_t n = j->in.len;
    const uint8_t *src = j->in.data;
    if (p->shuffle && p->elem > 1) {
        if (buf_reserve(tmp, n))
            return LMR_ENOMEM;
        h5_shuffle(src, tmp->data, n, p->elem);
        src = tmp->data;
    }
    if (!p->deflate) {
        if (buf_reserve(&j->out, n ? n : 1))
            return LMR_ENOMEM;
        memcpy(j->out.data, src, n);
        j->out_len = n;
        return 0;
    }
    size_t bound = libdeflate_zlib_compress_bound(c, n);
    if (buf_reserve(&j->out, bound))
        return LMR_ENOMEM;
    j->out_len = libdeflate_zlib_compress(c, src, n, j->out.data, bound);
    return j->out_len ? 0 : LMR_ECOMPRESS;
}

static void *pool_thread(void *arg)
{
    H5Pool *p = arg;
    struct libdeflate_compressor *c = p->deflate ? libdeflate_alloc_compressor(p->level) : NULL;
    LmrBuf tmp;
    buf_init(&tmp);
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (!p->stop && p->take == p->head)
            pthread_cond_wait(&p->work, &p->mu);
        if (p->take == p->head) /* stopping, nothing left */
            break;
        H5Job *j = &p->jobs[p->take++ % (uint64_t)p->n_jobs];
        j->state = JOB_BUSY;
        pthread_mutex_unlock(&p->mu);
        int rc = p->deflate && !c ? LMR_ENOMEM : filter_chunk(p, c, &tmp, j);
        pthread_mutex_lock(&p->mu);
        j->rc = rc;
        j->state = JOB_DONE;
        pthread_cond_broadcast(&p->done);
    }
    pthread_mutex_unlock(&p->mu);
    buf_free(&tmp);
    libdeflate_free_compressor(c);
    return NULL;
}

static void pool_free(H5Pool *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    p->stop = 1;
    pthread_cond_broadcast(&p->work);
    pthread_mutex_unlock(&p->mu);
    for (int t = 0; t < p->n_threads; t++)
        pthread_join(p->threads[t], NULL);
    for (int k = 0; k < p->n_jobs; k++) {
        buf_free(&p->jobs[k].in);
        buf_free(&p->jobs[k].out);
    }
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->work);
    pthread_cond_destroy(&p->done);
    free(p->threads);
    free(p->jobs);
    free(p);
}

/* Threads: the online cores, at most 8; jobs: enough to keep them busy while one chunk is stored. */
static H5Pool *pool_new(const H5Direct *d, int level, size_t elem)
{
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    int nt = cores < 1 ? 1 : cores > 8 ? 8 : (int)cores;
    H5Pool *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->n_jobs = 2 * nt + 2;
    p->level = level, p->shuffle = d->shuffle, p->deflate = d->deflate, p->elem = elem;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->work, NULL);
    pthread_cond_init(&p->done, NULL);
    p->jobs = calloc((size_t)p->n_jobs, sizeof *p->jobs);
    p->threads = calloc((size_t)nt, sizeof *p->threads);
    if (!p->jobs || !p->threads) {
        pool_free(p);
        return NULL;
    }
    for (int k = 0; k < p->n_jobs; k++) {
        buf_init(&p->jobs[k].in);
        buf_init(&p->jobs[k].out);
    }
    for (; p->n_threads < nt; p->n_threads++)
        if (pthread_create(&p->threads[p->n_threads], NULL, pool_thread, p))
            break;
    if (p->n_threads == 0) {
        pool_free(p);
        return NULL;
    }
    return p;
}

// --- writer -----------------------------------------------------------------------------------------

struct H5Writer {
    hid_t file, data, ftype;
    char path[256];
    int deflate;
    H5Shape shape;
    uint64_t cap, rows_total; /* allocated extent along dim 0; rows written (rows layout) */
    H5Index x;
    LabelIndex labels;
    RecordCtx ctx;
    LmrBuf payload;
    H5Direct direct;   /* fixed layout with a pipeline lmr filters itself: chunks go to the pool */
    H5Pool *pool;
    uint64_t n_stored; /* clips whose chunk is in the file (the first n_stored of x) */
    int failed;        /* 0, or the error of a chunk that could not be stored: later puts fail with it */
    char fail_err[LMR_ERRLEN];
};

static hid_t create_data(H5Writer *w, const char *name, int rows_layout)
{
    const H5Shape *s = &w->shape;
    hsize_t dims[6] = {0}, maxd[6], chunk[6];
    int rank;
    if (rows_layout) {
        uint64_t per = s->inner_elems * s->elem_size;
        chunk[0] = per >= ROWS_CHUNK_BYTES ? 1 : ROWS_CHUNK_BYTES / per;
        rank = 1;
    } else {
        chunk[0] = 1, chunk[1] = dims[1] = s->dims[0], chunk[2] = dims[2] = s->dims[1];
        rank = 3;
    }
    for (int k = 0; k < s->inner_rank; k++)
        chunk[rank + k] = dims[rank + k] = s->inner[k];
    rank += s->inner_rank;
    for (int k = 0; k < rank; k++)
        maxd[k] = k ? dims[k] : H5S_UNLIMITED;
    hid_t sp = H5Screate_simple(rank, dims, maxd), dcpl = H5Pcreate(H5P_DATASET_CREATE),
          dapl = H5Pcreate(H5P_DATASET_ACCESS), d = -1;
    const unsigned zstd_level = 3;
    if (sp >= 0 && dcpl >= 0 && dapl >= 0 && H5Pset_chunk(dcpl, rank, chunk) >= 0 &&
        (w->deflate == 0 || H5Pset_shuffle(dcpl) >= 0) &&
        (w->deflate <= 0 || H5Pset_deflate(dcpl, (unsigned)w->deflate) >= 0) &&
        (w->deflate >= 0 || H5Pset_filter(dcpl, H5Z_FILTER_ZSTD, H5Z_FLAG_MANDATORY, 1, &zstd_level) >= 0) &&
        H5Pset_chunk_cache(dapl, 1021, CHUNK_CACHE_BYTES, 1.0) >= 0)
        d = H5Dcreate2(w->file, name, w->ftype, sp, H5P_DEFAULT, dcpl, dapl);
    if (sp >= 0)
        H5Sclose(sp);
    if (dcpl >= 0)
        H5Pclose(dcpl);
    if (dapl >= 0)
        H5Pclose(dapl);
    return d;
}

static int ensure_cap(H5Writer *w, uint64_t need)
{
    if (need <= w->cap)
        return 0;
    uint64_t cap = w->cap ? w->cap : 64;
    while (cap < need)
        cap *= 2;
    hsize_t dims[6];
    hid_t sp = H5Dget_space(w->data);
    int rank = H5Sget_simple_extent_dims(sp, dims, NULL);
    H5Sclose(sp);
    dims[0] = cap;
    if (rank < 1 || H5Dset_extent(w->data, dims) < 0)
        return -1;
    w->cap = cap;
    return 0;
}

/* Store the filtered chunk of clip (its index in x) with the lock held. */
static int store_chunk(H5Writer *w, uint64_t clip, const void *buf, size_t len, char *err)
{
    hsize_t off[8] = {clip};
    char what[LMR_SHOWLEN + 32], show[LMR_SHOWLEN];
    const char *id = h5index_id(&w->x, clip);
    snprintf(what, sizeof what, "writing clip %s", lmr_show(show, id, strlen(id)));
    if (ensure_cap(w, clip + 1) < 0 || H5Dwrite_chunk(w->data, H5P_DEFAULT, 0, off, len, buf) < 0)
        return h5_fail(err, w->path, what);
    w->n_stored = clip + 1;
    return 0;
}

/* Store the finished chunks of the pool in clip order: every queued one when all, else those done
 * already and, while the pool is full, the oldest one waited for. The first failure is kept in
 * w->failed / w->fail_err; later chunks are dropped. @return w->failed. */
static int pool_flush(H5Writer *w, int all)
{
    H5Pool *p = w->pool;
    pthread_mutex_lock(&p->mu);
    while (p->tail < p->head) {
        H5Job *j = &p->jobs[p->tail % (uint64_t)p->n_jobs];
        if (j->state != JOB_DONE) {
            if (!all && p->head - p->tail < (uint64_t)p->n_jobs)
                break;
            pthread_cond_wait(&p->done, &p->mu);
            continue;
        }
        pthread_mutex_unlock(&p->mu);
        if (!w->failed) {
            char show[LMR_SHOWLEN];
            const char *id = h5index_id(&w->x, j->clip);
            int rc = j->rc ? lmr_fail(w->fail_err, j->rc, "%s: clip %s: %s", w->path, lmr_show(show, id, strlen(id)),
                                      j->rc == LMR_ENOMEM ? "out of memory" : "deflate failed")
                           : store_chunk(w, j->clip, j->out.data, j->out_len, w->fail_err);
            w->failed = rc;
        }
        pthread_mutex_lock(&p->mu);
        j->state = JOB_FREE;
        p->tail++;
    }
    pthread_mutex_unlock(&p->mu);
    return w->failed;
}

/* Decide how clips are stored once the data set is open (fixed layout): lmr's own filters and
 * direct chunk writes when its pipeline is one lmr knows, else HDF5's H5Dwrite. */
static void plan_direct(H5Writer *w)
{
    h5_direct_plan(w->data, &w->shape, &w->direct);
    if (w->direct.ok && (w->direct.shuffle || w->direct.deflate)) {
        int level = w->deflate > 0 ? w->deflate : 4; /* a resumed file keeps its filters, not its level */
        if (!(w->pool = pool_new(&w->direct, level, (size_t)w->shape.elem_size)))
            w->direct.ok = 0;
    }
}

/* T changed: rewrite the clips so far as rows of a new dataset and continue in that layout. */
static int convert_to_rows(H5Writer *w, char *err)
{
    H5Shape *s = &w->shape;
    uint64_t per_clip = (uint64_t)s->dims[0] * s->dims[1];
    hid_t d = create_data(w, "/lmr_rows_tmp", 1);
    if (d < 0)
        return h5_fail(err, w->path, "creating the rows layout");
    hid_t old = w->data;
    w->data = d;
    w->cap = 0;
    int rc = ensure_cap(w, w->x.n * per_clip);
    size_t bytes = per_clip * s->inner_elems * s->elem_size;
    LmrBuf b;
    buf_init(&b);
    if (!rc && buf_reserve(&b, bytes))
        rc = LMR_ENOMEM;
    for (uint64_t i = 0; !rc && i < w->x.n; i++) {
        hid_t fsp, msp;
        s->rows_layout = 0;
        rc = h5_select_clip(old, s, i, 0, 0, &fsp, &msp);
        if (!rc) {
            rc = H5Dread(old, w->ftype, msp, fsp, H5P_DEFAULT, b.data) < 0 ? -1 : 0;
            H5Sclose(fsp);
            H5Sclose(msp);
        }
        s->rows_layout = 1;
        if (!rc && !(rc = h5_select_clip(d, s, i, i * per_clip, per_clip, &fsp, &msp))) {
            rc = H5Dwrite(d, w->ftype, msp, fsp, H5P_DEFAULT, b.data) < 0 ? -1 : 0;
            H5Sclose(fsp);
            H5Sclose(msp);
        }
        w->x.rows[2 * i] = i * per_clip;
        w->x.rows[2 * i + 1] = per_clip;
    }
    buf_free(&b);
    s->rows_layout = 1;
    w->rows_total = w->x.n * per_clip;
    H5Dclose(old);
    if (rc == LMR_ENOMEM)
        return lmr_fail(err, rc, "%s: converting to rows", w->path);
    if (rc || H5Ldelete(w->file, h5_data_name(s->kind), H5P_DEFAULT) < 0 ||
        H5Lmove(w->file, "/lmr_rows_tmp", w->file, h5_data_name(s->kind), H5P_DEFAULT, H5P_DEFAULT) < 0)
        return h5_fail(err, w->path, "converting to the rows layout");
    return 0;
}

/* Fold the records of an existing (cleanly closed) file into the writer and meta. */
static int resume_existing(H5Writer *w, ShardMeta *meta, char *err)
{
    int rc;
    char *json = h5_read_attr_str(w->file, "lmr_meta"), perr[LMR_ERRLEN];
    ShardMeta hint;
    shardmeta_init(&hint);
    rc = json ? shardmeta_from_json(&hint, json, perr) : LMR_ECORRUPT;
    if (rc)
        lmr_fail(err, rc, "%s: lmr_meta: %s", w->path, json ? perr : "missing");
    free(json);
    if (!rc)
        shardmeta_merge_hint(meta, &hint); /* first: a class count declared there bounds the labels */
    struct stat st;
    uint64_t max_bytes = stat(w->path, &st) == 0 ? (uint64_t)st.st_size : 0;
    hsize_t n = 0, nl = 0, nr = 0, nc = 0, ni = 0, w2 = 0, w3 = 0;
    char *ids = NULL;
    uint64_t *cks = NULL, *rows = NULL, *lidx = NULL;
    int32_t *lval = NULL;
    if (!rc && hint.n_records) {
        int rows_layout = h5_link_exists(w->file, "/rows");
        rc = h5_shape_from_meta(&w->shape, &hint, rows_layout, w->path, err);
        hid_t it = rc ? -1 : H5Dopen2(w->file, "/ids", H5P_DEFAULT), t = it >= 0 ? H5Dget_type(it) : -1;
        size_t width = t >= 0 && H5Tget_class(t) == H5T_STRING && H5Tis_variable_str(t) == 0 ? H5Tget_size(t) : 0;
        if (t >= 0)
            H5Tclose(t);
        if (it >= 0)
            H5Dclose(it);
        if (!rc && (width == 0 || width > UINT16_MAX))
            rc = lmr_fail(err, LMR_ECORRUPT, "%s: /ids is not a dataset of fixed-length strings", w->path);
        if (!rc) {
            hid_t sty = H5Tcopy(H5T_C_S1);
            H5Tset_size(sty, width);
            H5Tset_strpad(sty, H5T_STR_NULLPAD);
            H5Tset_cset(sty, H5T_CSET_UTF8);
            ids = h5_read_small(w->file, "/ids", sty, width, max_bytes, &n, NULL);
            H5Tclose(sty);
            cks = h5_read_small(w->file, "/checksums", H5T_NATIVE_UINT64, 8, max_bytes, &nc, NULL);
            lidx = h5_read_small(w->file, "/label_index", H5T_NATIVE_UINT64, 8, max_bytes, &ni, &w2);
            lval = h5_read_small(w->file, "/label_values", H5T_NATIVE_INT32, 4, max_bytes, &nl, NULL);
            if (rows_layout)
                rows = h5_read_small(w->file, "/rows", H5T_NATIVE_UINT64, 8, max_bytes, &nr, &w3);
            if (!ids || !cks || !lidx || nc != n || ni != n || w2 != 2 || (n && !lval) || n != hint.n_records ||
                (rows_layout && (!rows || nr != n || w3 != 2)))
                rc = lmr_fail(err, LMR_ECORRUPT, "%s: /ids, /checksums, /label_index or /rows missing or of other sizes",
                              w->path);
        }
        if (!rc) {
            w->data = H5Dopen2(w->file, h5_data_name(w->shape.kind), H5P_DEFAULT);
            hsize_t dd[6];
            hid_t sp = w->data >= 0 ? H5Dget_space(w->data) : -1;
            int rank = sp >= 0 ? H5Sget_simple_extent_ndims(sp) : -1;
            if (rank < 1 || rank > 6 || H5Sget_simple_extent_dims(sp, dd, NULL) < 1)
                rc = h5_fail(err, w->path, "opening the data");
            else
                w->cap = dd[0];
            if (sp >= 0)
                H5Sclose(sp);
        }
        const uint32_t v = w->shape.dims[0];
        for (hsize_t i = 0; !rc && i < n; i++) {
            RecordInfo info = {.kind = w->shape.kind, .dtype = w->shape.dtype, .ndim = w->shape.ndim};
            memcpy(info.dims, w->shape.dims, sizeof info.dims);
            char *id = ids + i * width;
            info.id = id;
            info.id_len = (uint16_t)strnlen(id, width);
            uint64_t lo = lidx[2 * i], cnt = lidx[2 * i + 1];
            uint64_t rf = rows ? rows[2 * i] : i * v * w->shape.dims[1];
            uint64_t rcount = rows ? rows[2 * i + 1] : (uint64_t)v * w->shape.dims[1];
            if (cnt > LMR_MAX_LABELS || lo > nl || cnt > nl - lo || info.id_len == 0 || rcount == 0 || rcount % v ||
                rcount / v > UINT32_MAX || rf > UINT64_MAX - rcount) {
                rc = lmr_fail(err, LMR_ECORRUPT, "%s: the index of clip %llu is out of range", w->path, (unsigned long long)i);
                break;
            }
            info.n_labels = (uint16_t)cnt;
            if (cnt)
                memcpy(info.labels, lval + lo, 4 * cnt);
            info.dims[1] = (uint32_t)(rcount / v);
            if ((rc = h5index_push(&w->x, info.id, info.id_len, cks[i], rf, rcount)) ||
                (rc = labelindex_push(&w->labels, info.labels, info.n_labels)))
                break;
            if ((rc = shardmeta_account(meta, &info, perr))) {
                lmr_fail(err, rc, "%s: %s", w->path, perr);
                break;
            }
            if (rf + rcount > w->rows_total)
                w->rows_total = rf + rcount;
        }
    }
    shardmeta_free(&hint);
    free(ids);
    free(cks);
    free(rows);
    free(lidx);
    free(lval);
    return rc;
}

static void writer_free(H5Writer *w)
{
    pool_free(w->pool);
    h5index_free(&w->x);
    labelindex_free(&w->labels);
    record_ctx_free(&w->ctx);
    buf_free(&w->payload);
    free(w);
}

/* Close the file; after a failed write HDF5 may keep the file open inside the library (and try
 * to flush it again at exit): closing with H5F_CLOSE_STRONG closes every object with it. */
static int writer_close_file(H5Writer *w, int rc, char *err)
{
    if (w->data >= 0)
        H5Dclose(w->data);
    if (w->ftype >= 0)
        H5Tclose(w->ftype);
    w->data = w->ftype = -1;
    if (w->file >= 0 && H5Fclose(w->file) < 0 && !rc && err)
        rc = h5_fail(err, w->path, "closing");
    w->file = -1;
    return rc;
}

static int writer_open(H5Writer *w, const char *path, ShardMeta *meta, char *err)
{
    int rc = record_ctx_init(&w->ctx, 0);
    if (rc)
        return lmr_fail(err, rc, "%s: out of memory", path);
    if (h5_file_busy(path))
        return lmr_fail(err, -EBUSY, "another lmr-pack is writing %s (or a program is reading it)", path);
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    /* STRONG: a close after a failed write closes everything, so nothing is left for exit;
     * v18 object headers: attributes beyond 64 KiB (class counts and names of many classes) */
    if (fapl < 0 || H5Pset_fclose_degree(fapl, H5F_CLOSE_STRONG) < 0 ||
        H5Pset_libver_bounds(fapl, H5F_LIBVER_V18, H5F_LIBVER_LATEST) < 0) {
        rc = h5_fail(err, path, "file access properties");
        if (fapl >= 0)
            H5Pclose(fapl);
        return rc;
    }
    struct stat st;
    if (stat(path, &st) == 0) {
        w->file = H5Fopen(path, H5F_ACC_RDWR, fapl);
        H5Pclose(fapl);
        if (w->file < 0)
            return h5_fail(err, path, "cannot be reopened (an interrupted pack? delete it and pack again)");
        if (H5Aexists(w->file, "lmr_complete") <= 0)
            return lmr_fail(err, LMR_ECORRUPT, "%s: an interrupted HDF5 shard (no lmr_complete mark); delete it and pack again", path);
        if ((rc = resume_existing(w, meta, err)))
            return rc;
        /* while this writer runs the file is incomplete; close sets the mark again */
        if (H5Adelete(w->file, "lmr_complete") < 0 || H5Fflush(w->file, H5F_SCOPE_GLOBAL) < 0)
            return h5_fail(err, path, "unmarking");
        if (w->x.n && (w->ftype = h5_elem_type(w->shape.dtype)) < 0)
            return h5_fail(err, path, "element type");
        w->n_stored = w->x.n;
        if (w->x.n && w->data >= 0 && !w->shape.rows_layout)
            plan_direct(w);
        return 0;
    }
    w->file = H5Fcreate(path, H5F_ACC_EXCL, H5P_DEFAULT, fapl);
    H5Pclose(fapl);
    return w->file < 0 ? h5_fail(err, path, "creating") : 0;
}

int h5w_open(H5Writer **out, const char *path, int deflate_level, ShardMeta *meta, char *err)
{
    *out = NULL;
    H5Writer *w = calloc(1, sizeof *w);
    if (!w)
        return LMR_ENOMEM;
    w->file = w->data = w->ftype = -1;
    snprintf(w->path, sizeof w->path, "%s", path);
    w->deflate = deflate_level > 9 ? 9 : deflate_level < 0 ? -1 : deflate_level;
    buf_init(&w->payload);
    H5Capture cap;
    h5_lock(&cap);
    int rc = w->deflate < 0 && H5Zfilter_avail(H5Z_FILTER_ZSTD) <= 0
                 ? lmr_fail(err, LMR_EUNSUPPORTED, "%s: the HDF5 zstd filter (32015) is not installed; use deflate", path)
                 : writer_open(w, path, meta, err);
    if (rc) {
        writer_close_file(w, rc, NULL);
        writer_free(w);
    }
    h5_unlock();
    if (!rc)
        *out = w;
    return rc;
}

static int writer_put(H5Writer *w, const RecordInfo *info, char *err)
{
    H5Shape *s = &w->shape;
    char show[LMR_SHOWLEN];
    if (w->failed)
        return lmr_fail(err, w->failed, "%s", w->fail_err);
    if (w->x.n) {
        uint64_t j = *h5index_slot(&w->x, info->id, info->id_len);
        if (j--) { /* stored already: the same clip when checksum, T and labels agree */
            const int32_t *l = w->labels.labels + w->labels.label_off[j];
            uint64_t nl = w->labels.label_off[j + 1] - w->labels.label_off[j];
            int same = w->x.checksums[j] == info->checksum && w->x.rows[2 * j + 1] == (uint64_t)info->dims[0] * info->dims[1] &&
                       nl == info->n_labels && memcmp(l, info->labels, 4 * nl) == 0;
            return same ? LMR_DONE
                        : lmr_fail(err, LMR_EEXIST, "%s: clip %s is already stored with other content", w->path,
                                   lmr_show(show, info->id, info->id_len));
        }
    }
    if (w->data < 0) { /* first record: it decides the shape */
        int rc = h5_shape_set(s, info);
        if (rc) {
            char shape[96];
            return lmr_fail(err, rc, "%s: clip %s: records of %s cannot be stored in HDF5 (3 or 4 dims)", w->path,
                            lmr_show(show, info->id, info->id_len),
                            record_shape_str(info->kind, info->dtype, info->dims, info->ndim, shape, sizeof shape));
        }
        if ((w->ftype = h5_elem_type(s->dtype)) < 0 || (w->data = create_data(w, h5_data_name(s->kind), 0)) < 0)
            return h5_fail(err, w->path, "creating the data set");
        plan_direct(w);
    }
    uint64_t count = (uint64_t)info->dims[0] * info->dims[1];
    if (!s->rows_layout && info->dims[1] != s->dims[1]) { /* every chunk stored before the data move */
        if (w->pool && pool_flush(w, 1))
            return lmr_fail(err, w->failed, "%s", w->fail_err);
        pool_free(w->pool);
        w->pool = NULL;
        w->direct.ok = 0;
        LMR_TRY(convert_to_rows(w, err));
    }
    /* the raw payload goes to a free job of the pool, else to w->payload */
    LmrBuf *dst = &w->payload;
    H5Job *job = NULL;
    if (w->pool) {
        if (pool_flush(w, 0))
            return lmr_fail(err, w->failed, "%s", w->fail_err);
        job = &w->pool->jobs[w->pool->head % (uint64_t)w->pool->n_jobs];
        dst = &job->in;
    }
    if (info->raw_size > SIZE_MAX / 2 || buf_reserve(dst, info->raw_size ? info->raw_size : 1))
        return lmr_fail(err, LMR_ENOMEM, "%s: clip %s: %llu bytes: out of memory", w->path,
                        lmr_show(show, info->id, info->id_len), (unsigned long long)info->raw_size);
    int rc = record_payload(&w->ctx, info, dst->data, dst->cap);
    if (rc)
        return lmr_fail(err, rc, "%s: %s", w->path, w->ctx.last_error);
    dst->len = info->raw_size;
    uint64_t first = s->rows_layout ? w->rows_total : w->x.n * count;
    if (h5index_push(&w->x, info->id, info->id_len, info->checksum, first, count) ||
        labelindex_push(&w->labels, info->labels, info->n_labels))
        return lmr_fail(err, LMR_ENOMEM, "%s: index", w->path);
    uint64_t clip = w->x.n - 1;
    if (job) {
        H5Pool *p = w->pool;
        pthread_mutex_lock(&p->mu);
        job->clip = clip;
        job->rc = 0;
        job->state = JOB_QUEUED;
        p->head++;
        pthread_cond_signal(&p->work);
        pthread_mutex_unlock(&p->mu);
        return 0;
    }
    if (w->direct.ok) /* no filter: the raw bytes are the chunk */
        rc = store_chunk(w, clip, dst->data, dst->len, err);
    else if (ensure_cap(w, s->rows_layout ? first + count : clip + 1) < 0)
        rc = h5_fail(err, w->path, "extending the data set");
    else {
        hid_t fsp, msp;
        if (h5_select_clip(w->data, s, clip, first, count, &fsp, &msp) < 0)
            rc = h5_fail(err, w->path, "selecting");
        else {
            if (H5Dwrite(w->data, w->ftype, msp, fsp, H5P_DEFAULT, dst->data) < 0)
                rc = h5_fail(err, w->path, "writing a clip");
            H5Sclose(fsp);
            H5Sclose(msp);
        }
    }
    if (rc) { /* the clip is not in the file: out of the index again (it was the last one in) */
        w->x.n--;
        *h5index_slot(&w->x, info->id, info->id_len) = 0;
        w->labels.n--;
        w->labels.n_labels_total = w->labels.label_off[w->labels.n];
        return rc;
    }
    w->n_stored = w->x.n;
    if (s->rows_layout)
        w->rows_total += count;
    return 0;
}

int h5w_put(H5Writer *w, const RecordInfo *info, const uint8_t *rec, size_t len, char *err)
{
    (void)rec;
    (void)len;
    H5Capture cap;
    h5_lock(&cap);
    int rc = writer_put(w, info, err);
    h5_unlock();
    return rc;
}

/* Per-clip datasets, multi-hot labels, attributes, then the completion mark. */
static int write_tables(H5Writer *w, const ShardMeta *meta, char *err)
{
    H5Index *x = &w->x;
    uint64_t n = x->n;
    int rc = 0;
    if (w->data >= 0) {
        hsize_t dims[6];
        hid_t sp = H5Dget_space(w->data);
        H5Sget_simple_extent_dims(sp, dims, NULL);
        H5Sclose(sp);
        dims[0] = w->shape.rows_layout ? w->rows_total : n;
        if (H5Dset_extent(w->data, dims) < 0)
            return h5_fail(err, w->path, "trimming the data set");
        w->cap = dims[0];
    }
    size_t width = x->max_id ? x->max_id : 1;
    char *ids = calloc(n ? n : 1, width);
    int32_t *first_label = malloc(sizeof(int32_t) * (n ? n : 1));
    uint64_t *lidx = malloc(sizeof(uint64_t) * 2 * (n ? n : 1));
    if (!ids || !first_label || !lidx)
        rc = LMR_ENOMEM;
    for (uint64_t i = 0; !rc && i < n; i++) {
        const char *id = h5index_id(x, i);
        memcpy(ids + i * width, id, strlen(id));
        uint64_t lo = w->labels.label_off[i], hi = w->labels.label_off[i + 1];
        first_label[i] = hi > lo ? w->labels.labels[lo] : -1;
        lidx[2 * i] = lo, lidx[2 * i + 1] = hi - lo;
    }
    hid_t st = H5Tcopy(H5T_C_S1);
    H5Tset_size(st, width);
    H5Tset_strpad(st, H5T_STR_NULLPAD);
    H5Tset_cset(st, H5T_CSET_UTF8);
    if (!rc && (h5_write_small(w->file, "/ids", st, st, n, 0, ids) < 0 ||
                h5_write_small(w->file, "/labels", H5T_STD_I32LE, H5T_NATIVE_INT32, n, 0, first_label) < 0 ||
                h5_write_small(w->file, "/checksums", H5T_STD_U64LE, H5T_NATIVE_UINT64, n, 0, x->checksums) < 0 ||
                h5_write_small(w->file, "/label_index", H5T_STD_U64LE, H5T_NATIVE_UINT64, n, 2, lidx) < 0 ||
                h5_write_small(w->file, "/label_values", H5T_STD_I32LE, H5T_NATIVE_INT32, w->labels.n_labels_total, 0,
                            w->labels.labels) < 0 ||
                (w->shape.rows_layout && h5_write_small(w->file, "/rows", H5T_STD_U64LE, H5T_NATIVE_UINT64, n, 2, x->rows) < 0)))
        rc = h5_fail(err, w->path, "writing ids, labels and checksums");
    H5Tclose(st);
    free(ids);
    free(first_label);
    free(lidx);
    if (!rc && meta->multi_label && meta->n_classes > 0) { /* [N, C] u8, written a block of clips at a time */
        hsize_t C = (hsize_t)meta->n_classes, block = 4096;
        uint8_t *m = malloc(block * C);
        if (!m)
            return LMR_ENOMEM;
        if (h5_link_exists(w->file, "/labels_multi"))
            H5Ldelete(w->file, "/labels_multi", H5P_DEFAULT);
        hsize_t dims[2] = {n, C}, chunk[2] = {n < 256 ? (n ? n : 1) : 256, C};
        hid_t sp = H5Screate_simple(2, dims, NULL), dcpl = H5Pcreate(H5P_DATASET_CREATE), d = -1;
        if (sp >= 0 && dcpl >= 0 && H5Pset_chunk(dcpl, 2, chunk) >= 0 && H5Pset_deflate(dcpl, 4) >= 0)
            d = H5Dcreate2(w->file, "/labels_multi", H5T_STD_U8LE, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT);
        for (hsize_t b0 = 0; d >= 0 && !rc && b0 < n; b0 += block) {
            hsize_t cnt[2] = {n - b0 < block ? n - b0 : block, C}, start[2] = {b0, 0};
            memset(m, 0, cnt[0] * C);
            for (hsize_t i = 0; i < cnt[0]; i++)
                for (uint64_t k = w->labels.label_off[b0 + i]; k < w->labels.label_off[b0 + i + 1]; k++)
                    if (w->labels.labels[k] >= 0 && (hsize_t)w->labels.labels[k] < C)
                        m[i * C + (hsize_t)w->labels.labels[k]] = 1;
            hid_t msp = H5Screate_simple(2, cnt, NULL);
            if (H5Sselect_hyperslab(sp, H5S_SELECT_SET, start, NULL, cnt, NULL) < 0 ||
                H5Dwrite(d, H5T_NATIVE_UINT8, msp, sp, H5P_DEFAULT, m) < 0)
                rc = -1;
            H5Sclose(msp);
        }
        if (d < 0 || rc)
            rc = h5_fail(err, w->path, "writing /labels_multi");
        if (d >= 0)
            H5Dclose(d);
        if (dcpl >= 0)
            H5Pclose(dcpl);
        if (sp >= 0)
            H5Sclose(sp);
        free(m);
    }
    if (rc)
        return rc;
    char *json = shardmeta_to_json(meta);
    if (!json)
        return LMR_ENOMEM;
    int64_t dims64[4] = {meta->dims[0], meta->dims[1], meta->dims[2], meta->dims[3]}, v;
    int bad = h5_write_attr_str(w->file, "lmr_meta", json) < 0 || h5_write_attr_i64(w->file, "dims", dims64, 4) < 0;
    free(json);
#define ATTR_I(name, val) (v = (int64_t)(val), bad |= h5_write_attr_i64(w->file, name, &v, 0) < 0)
    ATTR_I("format_version", meta->format_version);
    ATTR_I("n_records", meta->n_records);
    ATTR_I("n_classes", meta->n_classes);
    ATTR_I("frames", meta->frames);
    ATTR_I("size", meta->size);
#undef ATTR_I
    static const char *const kinds[] = {"", "frames", "features"}, *const dtypes[] = {"", "u8", "f16", "f32"};
    bad |= h5_write_attr_str(w->file, "kind", kinds[meta->kind <= 2 ? meta->kind : 0]) < 0;
    bad |= h5_write_attr_str(w->file, "dtype", dtypes[meta->dtype <= 3 ? meta->dtype : 0]) < 0;
    bad |= h5_write_attr_str(w->file, "layout", w->shape.rows_layout ? "rows" : "fixed") < 0;
    bad |= h5_write_attr_str(w->file, "dataset", meta->dataset) < 0 || h5_write_attr_str(w->file, "split", meta->split) < 0;
    bad |= h5_write_attr_str(w->file, "backbone", meta->backbone) < 0;
    bad |= h5_write_attr_str(w->file, "weights_checksum", meta->weights_checksum) < 0;
    bad |= h5_write_attr_str(w->file, "lmr_version", meta->lmr_version) < 0;
    if (meta->n_classes > 0)
        bad |= h5_write_attr_i64(w->file, "class_counts", meta->class_counts, (hsize_t)meta->n_classes) < 0;
    if (bad || H5Fflush(w->file, H5F_SCOPE_GLOBAL) < 0)
        return h5_fail(err, w->path, "writing attributes");
    int64_t one = 1; /* last, after everything else is on disk */
    if (h5_write_attr_i64(w->file, "lmr_complete", &one, 0) < 0 || H5Fflush(w->file, H5F_SCOPE_GLOBAL) < 0)
        return h5_fail(err, w->path, "marking complete");
    return 0;
}

/* After a chunk failed to be stored, the clips queued behind it are not in the file: drop them from
 * the index and from a copy of the metadata (records, class counts) that out then describes;
 * out->class_counts is owned (free). @return 0 or LMR_ENOMEM. */
static int drop_unstored(H5Writer *w, const ShardMeta *meta, ShardMeta *out)
{
    *out = *meta;
    out->class_counts = NULL;
    if (meta->n_classes > 0 && meta->class_counts) {
        if (!(out->class_counts = malloc(sizeof(int64_t) * (size_t)meta->n_classes)))
            return LMR_ENOMEM;
        memcpy(out->class_counts, meta->class_counts, sizeof(int64_t) * (size_t)meta->n_classes);
    }
    for (uint64_t i = w->n_stored; i < w->x.n; i++) {
        const int32_t *l = w->labels.labels + w->labels.label_off[i];
        uint64_t nl = w->labels.label_off[i + 1] - w->labels.label_off[i];
        for (uint64_t a = 0; a < nl; a++) { /* each distinct label of the clip was counted once */
            int seen = 0;
            for (uint64_t b = 0; b < a && !seen; b++)
                seen = l[b] == l[a];
            if (!seen && l[a] >= 0 && l[a] < out->n_classes && out->class_counts)
                out->class_counts[l[a]]--;
        }
    }
    out->n_records -= w->x.n - w->n_stored;
    w->x.n = w->labels.n = w->n_stored;
    w->labels.n_labels_total = w->labels.label_off[w->n_stored];
    return 0;
}

int h5w_close(H5Writer **pw, const ShardMeta *meta, char *err)
{
    if (!pw || !*pw)
        return 0;
    H5Writer *w = *pw;
    H5Capture cap;
    h5_lock(&cap);
    int rc = 0;
    if (w->pool)
        pool_flush(w, 1);
    pool_free(w->pool);
    w->pool = NULL;
    ShardMeta kept;
    int trimmed = 0;
    if (meta && w->n_stored < w->x.n) {
        if ((rc = drop_unstored(w, meta, &kept)))
            lmr_fail(err, rc, "%s: out of memory", w->path);
        else
            trimmed = 1, meta = &kept;
    }
    if (!rc && meta && w->file >= 0)
        rc = write_tables(w, meta, err);
    if (!rc && w->failed) /* the stored clips are safe; the first one that is not is the error */
        rc = lmr_fail(err, w->failed, "%s", w->fail_err);
    rc = writer_close_file(w, rc, err);
    if (trimmed)
        free(kept.class_counts);
    h5_unlock();
    writer_free(w);
    *pw = NULL;
    return rc;
}
