/* Batch decoding for lmr-eval. Worker k takes clips k, k + n, k + 2n, ... of a batch, so a
 * batch of variable-length records (VideoLT's T runs from 1 to thousands) still spreads
 * evenly; each writes only its own rows, so no lock is needed. Threads are started per batch:
 * the cost is tiny next to decompressing 256 records. */
#include "batch.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct ClipWorker {
    ClipBatch *b;
    uint64_t start;
    int n, tid;
    RecordCtx rctx;
    LmrBuf scratch, payload;
    float *row; /* (D) one f16 row converted */
    int rc;
    char err[LMR_ERRLEN];
};

static int decode_clip(ClipWorker *w, uint64_t i, float *x, ClipRow *row)
{
    const ClipBatch *b = w->b;
    RecordInfo info;
    int rc = shardset_get(b->set, i, &w->scratch, &info);
    if (rc < 0)
        return lmr_fail(w->err, rc, "clip %llu: %s", (unsigned long long)i, shardset_error(b->set));
    int id_len = info.id_len;
    if (info.kind != LMR_KIND_FEATURES || (info.dtype != LMR_DT_F16 && info.dtype != LMR_DT_F32) ||
        (int)info.dims[0] != b->views || (int)info.dims[2] != b->D || info.dims[1] == 0)
    {
        char shape[96];
        record_shape_str(info.kind, info.dtype, info.dims, info.ndim, shape, sizeof shape);
        return lmr_fail(w->err, LMR_EMISMATCH, "clip %.*s: record holds %s, want f16/f32 features [%d, T, %d]", id_len,
                        info.id, shape, b->views, b->D);
    }
    if ((rc = buf_reserve(&w->payload, info.raw_size)) < 0)
        return lmr_fail(w->err, rc, "clip %.*s: out of memory", id_len, info.id);
    if ((rc = record_payload(&w->rctx, &info, w->payload.data, w->payload.cap)) < 0)
        return lmr_fail(w->err, rc, "clip %.*s: %s", id_len, info.id, w->rctx.last_error);
    int T = (int)info.dims[1], D = b->D;
    for (int v = 0; v < b->views; v++) {
        float *out = x + (size_t)v * D; // mean over T of view v
        memset(out, 0, (size_t)D * sizeof *out);
        for (int t = 0; t < T; t++) {
            size_t off = ((size_t)v * T + t) * D;
            const float *src = (const float *)w->payload.data + off;
            if (info.dtype == LMR_DT_F16) {
                lmr_f16_to_f32((const uint16_t *)w->payload.data + off, w->row, (size_t)D);
                src = w->row;
            }
            for (int d = 0; d < D; d++)
                out[d] += src[d];
        }
        for (int d = 0; d < D; d++)
            out[d] /= (float)T;
    }
    row->n_labels = info.n_labels;
    memcpy(row->labels, info.labels, (size_t)info.n_labels * sizeof *info.labels);
    if (b->keep_ids) {
        free(row->id);
        row->id = strndup(info.id, (size_t)id_len);
        if (!row->id)
            return lmr_fail(w->err, LMR_ENOMEM, "out of memory");
    }
    return 0;
}

static void *worker_run(void *arg)
{
    ClipWorker *w = arg;
    const ClipBatch *b = w->b;
    w->rc = 0;
    for (int k = w->tid; k < w->n && w->rc == 0; k += b->n_threads)
        w->rc = decode_clip(w, w->start + (uint64_t)k, b->x + (size_t)k * b->views * b->D, &b->rows[k]);
    return NULL;
}

int clipbatch_init(ClipBatch *b, ShardSet *set, int views, int D, int cap, int n_threads, int keep_ids,
                   char *err)
{
    if (n_threads < 1)
        n_threads = 1;
    if (n_threads > CLIPBATCH_MAX_THREADS)
        n_threads = CLIPBATCH_MAX_THREADS;
    *b = (ClipBatch){set, views, D, cap, n_threads, keep_ids, NULL, NULL, NULL};
    b->x = malloc((size_t)cap * views * D * sizeof *b->x);
    b->rows = calloc((size_t)cap, sizeof *b->rows);
    b->ws = calloc((size_t)n_threads, sizeof *b->ws);
    if (!b->x || !b->rows || !b->ws)
        goto fail;
    for (int t = 0; t < n_threads; t++) {
        ClipWorker *w = &b->ws[t];
        w->b = b;
        w->tid = t;
        w->row = malloc((size_t)D * sizeof *w->row);
        if (!w->row || record_ctx_init(&w->rctx, 3) < 0)
            goto fail;
    }
    return 0;
fail:
    clipbatch_free(b);
    return lmr_fail(err, LMR_ENOMEM, "out of memory for a batch of %d clips", cap);
}

int clipbatch_read(ClipBatch *b, uint64_t start, int n, char *err)
{
    if (n > b->cap)
        return lmr_fail(err, LMR_EINVAL, "batch of %d clips, room for %d", n, b->cap);
    pthread_t th[CLIPBATCH_MAX_THREADS];
    int started[CLIPBATCH_MAX_THREADS] = {0};
    for (int t = 0; t < b->n_threads; t++) {
        b->ws[t].start = start;
        b->ws[t].n = n;
        if (t > 0) // worker 0 (and any that could not start) runs on this thread
            started[t] = pthread_create(&th[t], NULL, worker_run, &b->ws[t]) == 0;
    }
    worker_run(&b->ws[0]);
    for (int t = 1; t < b->n_threads; t++) {
        if (started[t])
            pthread_join(th[t], NULL);
        else
            worker_run(&b->ws[t]);
    }
    for (int t = 0; t < b->n_threads; t++)
        if (b->ws[t].rc < 0)
            return lmr_fail(err, b->ws[t].rc, "%s", b->ws[t].err);
    return 0;
}

void clipbatch_free(ClipBatch *b)
{
    if (!b)
        return;
    for (int t = 0; b->ws && t < b->n_threads; t++) {
        ClipWorker *w = &b->ws[t];
        record_ctx_free(&w->rctx);
        buf_free(&w->scratch);
        buf_free(&w->payload);
        free(w->row);
    }
    for (int k = 0; b->rows && k < b->cap; k++)
        free(b->rows[k].id);
    free(b->ws);
    free(b->rows);
    free(b->x);
    memset(b, 0, sizeof *b);
}
