/* The extraction run: a manifest in, clip records out in manifest order. Clips are grouped by
 * video and served in time order from one decoder per worker thread; finished records go
 * through a reorder window so the output is the same for any thread count. The caller's
 * thread receives every clip (record or failure) in order through callbacks. */
#ifndef LMR_EXTRACT_RUN_H
#define LMR_EXTRACT_RUN_H

#include <stddef.h>
#include <stdint.h>

#include "backbone.h"
#include "decode.h"
#include "manifest.h"
#include "sample.h"

typedef struct {
    SampleOpts sample;
    DecoderOpts decode;   /* size, threads per decoder, limits */
    BackboneOpts backbone;
    const char *videos;   /* root relative video paths are joined to (NULL: as they are) */
    int pad_short;        /* clips needing frames past what decodes: padded (noted), not failed */
    int epic_fps;         /* frame folders: frame rate from the EPIC video id (50/60) */
    int threads;          /* worker threads (each: decoder + scaler + backbone) */
    int size;             /* crop side */
    int feature_dtype;    /* LMR_DT_F32 (default) or LMR_DT_F16: how features are stored */
    int zstd_level;       /* records' payload: zstd level, 0 = raw (default 1) */
} ExtractOpts;

/* A finished clip, borrowed for the callback. */
typedef struct {
    const ManifestRow *row;
    const char *path;     /* the video as opened (extract_video_path) */
    const uint8_t *rec;   /* the encoded record, or NULL when the clip failed */
    size_t len;
    const char *reason;   /* why it failed, or NULL */
    const char *note;     /* a written clip's remark (padded with --pad-short: why), or NULL */
} ExtractClip;

/* Called for every clip in order. Return nonzero to stop the run (write error, --strict). */
typedef int (*ExtractClipFn)(void *user, const ExtractClip *clip);

typedef struct {
    size_t n_written, n_failed, n_padded;
    int64_t frames_decoded, frames_scaled, seeks;
} ExtractStats;

/** Defaults: segment sampling, test mode, 8 frames, 1 view, 1 crop, rate 4, size 224, 1 thread,
 *  backbone none. */
void extract_opts_init(ExtractOpts *o);

/** Feature/frame geometry of the records a run writes: kind, dtype, dims. Opens the backbone
 *  once to learn its size. @return 0 or a backbone error (err says why). */
int extract_record_shape(const ExtractOpts *o, uint8_t *kind, uint8_t *dtype, uint32_t dims[4],
                         char *weights_checksum, char *err);

/** Path of a manifest video: an absolute path as it is, a relative one joined to o->videos
 *  (EPIC's `rgb_frames/` is dropped when only the folder without it exists).
 *  @return 0, or -1 when it does not fit in cap. */
int extract_video_path(const ExtractOpts *o, const char *video, char *out, size_t cap);

/** Extract rows[sel[i]] for i in [0, n_sel), calling fn for each in that order.
 *  @return 0, LMR_EINVAL, LMR_ENOMEM, the backbone's open error, or the first nonzero value
 *  of fn (as LMR_EIO when it was positive); err says why. */
int extract_run(const Manifest *m, const size_t *sel, size_t n_sel, const ExtractOpts *o,
                ExtractClipFn fn, void *user, ExtractStats *stats, char *err);

#endif
