/* Import VideoLT's pre-extracted per-video features (<root>/<video_id>.npy, (T, 2048) f32/f16)
 * with a VideoLT label list into a shard, as features records (views 1), multi-label: the VideoLT
 * list source of the importer (import.h). */
#ifndef LMR_PACK_VIDEOLT_H
#define LMR_PACK_VIDEOLT_H

#include <stdint.h>

#include "import.h"

typedef struct {
    const char *root;      /* folder of .npy files */
    const char *labels;    /* VideoLT list file: <video_id> <c>[,<c>...] */
    const char *counts;    /* optional count-labels-train.lst: n_classes and class names */
    int max_frames;        /* 0 = keep all rows; N = N evenly spaced rows */
    int zstd_level;        /* record payload compression, default 3 */
    int strict;            /* fail on the first bad file instead of counting it */
    int quiet;
    int dtype;             /* LMR_DT_F16 / LMR_DT_F32 of the records; 0 = the first readable file's */
    int64_t dim;           /* D the records must have; 0 = the first readable file's */
    int n_classes;         /* > 0: labels at or above it are refused (a --counts file decides when given,
                            * and must agree) */
    const ShardMeta *hint; /* command-line metadata, applied last; may be NULL */
    PackFailFn fail;       /* each clip that is not stored; may be NULL */
    void *fail_user;
} VideoltImportOpts;

typedef ImportStats VideoltStats;

/** Read every listed video's .npy and put a record into w (clips already in w are counted as
 *  present). Each clip that cannot be stored is reported through o->fail and counted; notes
 *  (skipped class lines, the dtype conversions) go through warn as "FILE: reason".
 *  @return 0, or the first error when strict, when nothing is listed, or when the shard cannot be
 *  written. */
int videolt_import(const VideoltImportOpts *o, ShardWriter *w, LmrWarnFn warn, void *user,
                   VideoltStats *stats, char *err);

#endif
