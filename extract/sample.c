/* Frame sampling: segment-based (TSN / SSv2) and window-based (EPIC-KITCHENS) protocols, and
 * the spatial crop placement, both driven by a per-clip seeded generator so reruns and any
 * thread count give identical records. */
#include "sample.h"

#include <math.h>
#include <string.h>
#include <xxhash.h>

// --- generator ---------------------------------------------------------------------------

void sample_rng_seed(SampleRng *r, uint64_t seed, const char *clip_id, uint64_t stream)
{
    uint64_t x = XXH3_64bits_withSeed(clip_id, strlen(clip_id), seed) ^ (stream * 0x632be59bd9b4e019ULL);
    rng_seed_u64(r, x);
}

int64_t sample_rng_below(SampleRng *r, int64_t n)
{
    if (n <= 1)
        return 0;
    // Rejection keeps the draw exactly uniform.
    uint64_t lim = UINT64_MAX - UINT64_MAX % (uint64_t)n, v;
    do
        v = rng_u64(r);
    while (v >= lim);
    return (int64_t)(v % (uint64_t)n);
}

// --- clip ranges and indices ---------------------------------------------------------------

void sample_clip_range(double start_sec, double stop_sec, double fps, int64_t n_frames,
                       int64_t *first, int64_t *last)
{
    // A small tolerance keeps timestamps printed to 2 decimals on their intended frame.
    int64_t f = (int64_t)floor(start_sec * fps + 1e-6);
    if (f < 0)
        f = 0;
    int64_t l;
    if (stop_sec < 0)
        l = n_frames > 0 ? n_frames - 1 : f;
    else
        l = (int64_t)ceil(stop_sec * fps - 1e-6) - 1;
    *first = f;
    *last = l < f ? f : l;
}

static int64_t clamp64(int64_t v, int64_t lo, int64_t hi) { return v < lo ? lo : v > hi ? hi : v; }

/* T equal segments of the clip; train: a random frame of each, test: the frame at fraction
 * (v + 0.5) / V of each segment (the middle for one view). Short clips repeat frames. */
static void sample_segment(const SampleOpts *o, SampleRng *r, int64_t first, int64_t n, int64_t *idx)
{
    int T = o->frames;
    for (int v = 0; v < o->views; v++) {
        for (int t = 0; t < T; t++) {
            double a = (double)n * t / T, b = (double)n * (t + 1) / T;
            int64_t lo = (int64_t)floor(a), hi = (int64_t)ceil(b) - 1; // frames overlapping the segment
            if (hi < lo)
                hi = lo;
            int64_t k;
            if (o->mode == SAMPLE_TRAIN)
                k = lo + sample_rng_below(r, hi - lo + 1);
            else
                k = (int64_t)floor(a + (b - a) * (v + 0.5) / o->views);
            idx[v * T + t] = first + clamp64(k, 0, n - 1);
        }
    }
}

/* A window of T * stride frames (stride = rate at 30 fps, scaled to the video's fps), T
 * evenly spaced frames inside; train: random start, test: V evenly spaced starts (the centre for
 * one view). Indices are clamped to the clip, so clips shorter than the window repeat their
 * last frame. */
static void sample_window(const SampleOpts *o, SampleRng *r, int64_t first, int64_t n, double fps,
                          int64_t *idx)
{
    int T = o->frames;
    double stride = o->rate * (fps > 0 ? fps / 30.0 : 1.0);
    if (stride < 1e-9)
        stride = 1;
    int64_t span = (int64_t)ceil(stride * T);       // window length in frames
    int64_t slack = n > span ? n - span : 0;        // possible start offsets: 0..slack
    for (int v = 0; v < o->views; v++) {
        int64_t s;
        if (o->mode == SAMPLE_TRAIN)
            s = sample_rng_below(r, slack + 1);
        else if (o->views == 1)
            s = slack / 2;
        else
            s = (int64_t)llround((double)slack * v / (o->views - 1));
        for (int t = 0; t < T; t++) {
            int64_t k = s + (int64_t)floor(stride * t + 1e-9);
            idx[v * T + t] = first + clamp64(k, 0, n - 1);
        }
    }
}

int sample_indices(const SampleOpts *o, const char *clip_id, int64_t first, int64_t last,
                   double fps, int64_t *idx)
{
    if (o->frames < 1 || o->views < 1 || last < first || first < 0)
        return LMR_EINVAL;
    SampleRng r;
    sample_rng_seed(&r, o->seed, clip_id, 0);
    int64_t n = last - first + 1;
    if (o->kind == SAMPLE_WINDOW)
        sample_window(o, &r, first, n, fps, idx);
    else if (o->kind == SAMPLE_SEGMENT)
        sample_segment(o, &r, first, n, idx);
    else
        return LMR_EINVAL;
    return 0;
}

void sample_crops(const SampleOpts *o, const char *clip_id, int w, int h, int size, int *x0, int *y0)
{
    SampleRng r;
    sample_rng_seed(&r, o->seed, clip_id, 1);
    int sx = w > size ? w - size : 0, sy = h > size ? h - size : 0;
    int n = o->views * o->crops;
    for (int i = 0; i < n; i++) {
        int c = i % o->crops;
        if (o->mode == SAMPLE_TRAIN) {
            x0[i] = (int)sample_rng_below(&r, sx + 1);
            y0[i] = (int)sample_rng_below(&r, sy + 1);
        } else if (o->crops == 3) {
            // Along the long side: start, centre, end (the 3-crop test of SlowFast / TSM).
            int pos = c == 0 ? 0 : c == 1 ? 1 : 2;
            x0[i] = sx > sy ? sx * pos / 2 : sx / 2;
            y0[i] = sx > sy ? sy / 2 : sy * pos / 2;
        } else {
            x0[i] = sx / 2;
            y0[i] = sy / 2;
        }
    }
}
