/* The one random generator of lmr-train: xoshiro256** seeded through splitmix64. Every draw of a
 * run comes from an Rng passed down explicitly; per-step streams are derived from (seed, stream,
 * epoch, step), so a run replays exactly and a resumed run needs only its counters. */
#ifndef LMR_TRAIN_RNG_H
#define LMR_TRAIN_RNG_H

#include <stdint.h>

typedef struct Rng {
    uint64_t s[4];
} Rng;

/** Seed from a tuple (seed, stream, a, b): independent streams for different tuples. */
void rng_seed(Rng *r, uint64_t seed, uint64_t stream, uint64_t a, uint64_t b);
uint64_t rng_u64(Rng *r);
/** Uniform in [0, 1) with 24 random bits (exactly representable as float). */
float rng_uniform(Rng *r);
/** Uniform integer in [0, n), unbiased; n > 0. */
uint64_t rng_below(Rng *r, uint64_t n);
/** Standard normal (Box-Muller, one value per call). */
double rng_normal(Rng *r);

/* Streams: what each derived generator is used for. */
enum { RNG_INIT = 1, RNG_HEAD = 2, RNG_PERM = 3, RNG_CLASS = 4, RNG_VIEW = 5, RNG_MIX = 6 };

#endif
