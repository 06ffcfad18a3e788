/* A training or validation set as lmr-train sees it: clips with labels and features
 * [views, T, D], read either from a shard set (formats/shard.h) or from memory (tests, benches).
 * Labels are indexed once at open; features are decoded per clip on demand, averaged over T. */
#ifndef LMR_TRAIN_DATASET_H
#define LMR_TRAIN_DATASET_H

#include <stdatomic.h>
#include <stdint.h>

#include "lmr_error.h"
#include "record.h"
#include "shard.h"

typedef struct {
    ShardSet *set;       /* owned; NULL for an in-memory set */
    const float *mem;    /* in-memory features (n, views, D), already averaged over T */
    float *mem_owned;    /* set by dataset_preload */
    uint64_t n;          /* clips */
    int D, views, C;     /* feature dim, views per clip, classes */
    uint64_t *label_off; /* (n + 1) owned: labels of clip i are labels[label_off[i] ..) */
    int32_t *labels;     /* owned */
    int max_labels;      /* most labels on one clip (1 = single-label) */
    int64_t *counts;     /* (C) clips per class, each label counted; owned */
    float *cache;        /* (cache_n, views, D) the per-view means of clips 0 .. cache_n - 1, filled on
                          * their first read (dataset_cache); NULL = off */
    _Atomic unsigned char *cache_state; /* (cache_n) 0 empty, 1 being filled, 2 ready */
    uint64_t cache_n;
    _Atomic uint64_t cache_filled; /* slots ready */
    char last_error[LMR_ERRLEN];
} Dataset;

/* Per-thread decode state for dataset_read. */
typedef struct {
    RecordCtx rctx;
    LmrBuf scratch; /* HDF5 record bytes */
    LmrBuf payload; /* decoded payload */
} DatasetReader;

/** Open shard files as one dataset of feature records. n_classes > 0 fixes C (labels must be
 *  below it); 0 takes the shards' n_classes, or max label + 1.
 *  @return 0, -errno, LMR_EMISMATCH (dims differ, not features, dtype), LMR_ERANGE (a label
 *  >= C or < 0: err names the clip), LMR_EINVAL (no clips, unlabelled clip); err says which. */
int dataset_open(Dataset *d, const char *const *paths, int n_paths, int n_classes, char *err);
/** Wrap in-memory features x (n, views, D) (borrowed) and labels: clip i has
 *  label_off[i+1]-label_off[i] labels; label_off NULL means one label per clip.
 *  @return 0, LMR_ERANGE, LMR_EINVAL, LMR_ENOMEM. */
int dataset_from_memory(Dataset *d, const float *x, uint64_t n, int views, int D, const int32_t *labels,
                        const uint64_t *label_off, int C, char *err);
void dataset_close(Dataset *d);
/** Hex XXH3-64 of what the set trains on: for every clip in id order (bytes, then the shorter
 *  first; in memory: the decimal index) its id length (u32), id, label count (u32) and labels
 *  (i32), then C (u32) and the class counts (i64), all little-endian. Not thread-safe.
 *  @return 0 or LMR_ENOMEM. */
int dataset_digest(Dataset *d, char hex[17], char *err);
/** Read every clip's views (averaged over T) into memory once, so training never touches the
 *  shards again; needs n * views * D * 4 bytes. @return 0, LMR_ENOMEM, or a read error. */
int dataset_preload(Dataset *d, char *err);

/** Keep the per-view means (averaged over T, exactly as dataset_read computes them) of the first
 *  clips that fit in mb MiB (views * D * 4 + 1 bytes a clip), filled when a clip is first read, so
 *  later epochs read those clips from memory: the features are the same bits either way. Pages of
 *  the cache cost memory only once filled. mb = 0: off. @return 0 or LMR_ENOMEM. */
int dataset_cache(Dataset *d, uint64_t mb, char *err);
/** When the cache holds every clip (all read once), make it the set's in-memory features (mem,
 *  borrowed from the cache), so batches become a gather like --preload's. @return 1 when done,
 *  0 when not (yet) possible. */
int dataset_cache_to_memory(Dataset *d);
/** A default for dataset_cache: a quarter of MemAvailable (/proc/meminfo), in MiB; 0 when unknown. */
uint64_t dataset_cache_default_mb(void);

static inline int dataset_n_labels(const Dataset *d, uint64_t i, const int32_t **labels)
{
    *labels = d->labels + d->label_off[i];
    return (int)(d->label_off[i + 1] - d->label_off[i]);
}

int dataset_reader_init(DatasetReader *r);
void dataset_reader_free(DatasetReader *r);
/** Features of clip i, view v (0 <= v < views), averaged over T, into out (D).
 *  @return 0 or a record error (checksum, corrupt, shape); err names the clip. */
int dataset_read(Dataset *d, DatasetReader *r, uint64_t i, int view, float *out, char *err);

#endif
