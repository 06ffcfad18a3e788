/* Reading clips for scoring: a batch of consecutive records of a shard set, decoded by worker
 * threads (each with its own zstd context and buffers) into per-view feature vectors averaged
 * over T, with the labels and, on request, the clip ids. */
#ifndef LMR_EVAL_BATCH_H
#define LMR_EVAL_BATCH_H

#include <stdint.h>

#include "lmr_error.h"
#include "record.h"
#include "shard.h"

#define CLIPBATCH_MAX_THREADS 30

typedef struct {
    int32_t labels[LMR_MAX_LABELS];
    int n_labels;  /* 0 = unlabelled */
    char *id;      /* owned by the batch (keep_ids), valid until the next clipbatch_read */
} ClipRow;

typedef struct ClipWorker ClipWorker;

typedef struct {
    ShardSet *set;   /* borrowed */
    int views, D, cap, n_threads, keep_ids;
    float *x;        /* (cap * views, D): clip-major rows of the last batch */
    ClipRow *rows;   /* (cap) */
    ClipWorker *ws;  /* (n_threads) */
} ClipBatch;

/** Prepare a reader of up to cap clips per batch with n_threads decoding threads.
 *  @return 0 or LMR_ENOMEM; err says why. */
int clipbatch_init(ClipBatch *b, ShardSet *set, int views, int D, int cap, int n_threads, int keep_ids,
                   char *err);
/** Decode clips [start, start + n) (n <= cap) into b->x and b->rows. Every record must be a
 *  f16/f32 features record [views, T >= 1, D].
 *  @return 0, LMR_EMISMATCH (another shape), a shard or record error; err names the clip. */
int clipbatch_read(ClipBatch *b, uint64_t start, int n, char *err);
/** Free everything; NULL-safe and idempotent. */
void clipbatch_free(ClipBatch *b);

#endif
