/* Frame sampling protocols (DESIGN section 5): which frames of a clip a record holds.
 * Everything is in frame indices of the video's own nominal timeline (index k = time k / fps
 * from the stream start); the decoder maps indices to timestamps, so VFR video is handled by pts.
 * Randomness (train mode) is seeded per clip from the run seed and the clip id, so a clip gets
 * the same frames whatever the thread count or the order clips are processed in. */
#ifndef LMR_SAMPLE_H
#define LMR_SAMPLE_H

#include <stdint.h>

#include "rng.h"

#include "lmr_error.h"

typedef enum { SAMPLE_SEGMENT = 1, SAMPLE_WINDOW = 2 } SampleKind;
typedef enum { SAMPLE_TRAIN = 1, SAMPLE_TEST = 2 } SampleMode;

typedef struct {
    SampleKind kind;  /* segment (SSv2 default) or window (EPIC default) */
    SampleMode mode;  /* train: random, seeded per clip; test: deterministic */
    int frames;       /* T, frames per view */
    int views;        /* V temporal views (test); train uses V random draws */
    int crops;        /* spatial crops per temporal view: 1 or 3 */
    double rate;      /* window: frame stride at 30 fps-equivalent (default 4) */
    uint64_t seed;    /* run seed */
} SampleOpts;

/* lmr's generator (formats/rng.h), seeded per clip. */
typedef Rng SampleRng;

/** Seed a generator from the run seed, a clip id and a stream number (0 frames, 1 crops). */
void sample_rng_seed(SampleRng *r, uint64_t seed, const char *clip_id, uint64_t stream);
/** Uniform integer in [0, n) (n >= 1). */
int64_t sample_rng_below(SampleRng *r, int64_t n);

/** Frame range [first, last] (inclusive) of a clip from its times: the frames whose start time
 *  lies in [start, stop). stop_sec < 0 means to the end (n_frames, when known; else an upper
 *  bound the decoder clamps). Always last >= first. */
void sample_clip_range(double start_sec, double stop_sec, double fps, int64_t n_frames,
                       int64_t *first, int64_t *last);

/** Frame indices of every temporal view of one clip.
 *  @param[out] idx (views, frames) frame indices, each inside [first, last].
 *  @param[in] fps the video's nominal frame rate (window sampling scales the stride by fps/30).
 *  @return 0 or LMR_EINVAL (bad options). */
int sample_indices(const SampleOpts *o, const char *clip_id, int64_t first, int64_t last,
                   double fps, int64_t *idx);

/** Top-left corners of the spatial crops of size x size in an image of w x h, one per view
 *  (views = o->views * o->crops, temporal-major). Test: centre crop, or with 3 crops the two
 *  ends and the centre of the long side; train: a random crop per view.
 *  @param[out] x0, y0 (views * crops). */
void sample_crops(const SampleOpts *o, const char *clip_id, int w, int h, int size, int *x0,
                  int *y0);

#endif
