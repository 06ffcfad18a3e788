/* Import VideoLT's pre-extracted per-video features (<root>/<video_id>.npy, (T, 2048) f32/f16)
 * with a VideoLT label list into a shard, as features records (views 1), multi-label. */
#ifndef LMR_PACK_VIDEOLT_H
#define LMR_PACK_VIDEOLT_H

#include <stdint.h>

#include "manifest.h"
#include "shard.h"

typedef struct {
    const char *root;      /* folder of .npy files */
    const char *labels;    /* VideoLT list file: <video_id> <c>[,<c>...] */
    const char *counts;    /* optional count-labels-train.lst, for n_classes and names */
    int max_frames;        /* 0 = keep all rows; N = N evenly spaced rows */
    int zstd_level;        /* record payload compression, default 3 */
    int strict;            /* fail on the first bad file instead of skipping */
    int quiet;
} VideoltImportOpts;

typedef struct {
    uint64_t listed, written, present, skipped;
    uint64_t bytes_read;
    double seconds;
} VideoltStats;

/** Read every listed video's .npy and put a record into w (clips already in w are skipped).
 *  Each skipped file is reported through warn as "FILE: reason".
 *  @return 0, or the first error when strict or when the shard cannot be written. */
int videolt_import(const VideoltImportOpts *o, ShardWriter *w, LmrWarnFn warn, void *user,
                   VideoltStats *stats, char *err);

#endif
