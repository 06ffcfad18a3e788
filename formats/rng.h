/* lmr's one random generator: xoshiro256** seeded through splitmix64. Every draw comes from an
 * Rng passed down explicitly. lmr-train derives per-step streams from (seed, stream, epoch, step),
 * so a run replays exactly and a resumed run needs only its counters; lmr-extract seeds one per
 * clip from the run seed and the clip id. */
#ifndef LMR_RNG_H
#define LMR_RNG_H

#include <stdint.h>

typedef struct Rng {
    uint64_t s[4];
} Rng;

/** Seed from a tuple (seed, stream, a, b): independent streams for different tuples. */
void rng_seed(Rng *r, uint64_t seed, uint64_t stream, uint64_t a, uint64_t b);
/** Seed from one 64-bit value (its splitmix64 expansion). */
void rng_seed_u64(Rng *r, uint64_t x);
uint64_t rng_u64(Rng *r);
/** Uniform in [0, 1) with 24 random bits (exactly representable as float). */
float rng_uniform(Rng *r);
/** Uniform integer in [0, n), unbiased; n > 0. */
uint64_t rng_below(Rng *r, uint64_t n);
/** Standard normal (Box-Muller, one value per call). */
double rng_normal(Rng *r);

/* lmr-train streams: what each derived generator is used for. */
enum { RNG_INIT = 1, RNG_HEAD = 2, RNG_PERM = 3, RNG_CLASS = 4, RNG_VIEW = 5, RNG_MIX = 6 };

#endif
