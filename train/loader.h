/* The prefetching loader: one thread walks the (epoch, step) sequence, asks the sampler for each
 * batch's clips and views, reads and averages their features, and queues finished batches in a
 * small ring, so the math never waits on LMDB, zstd or f16 conversion. Batches come out in
 * order and depend only on (seed, epoch, step). */
#ifndef LMR_TRAIN_LOADER_H
#define LMR_TRAIN_LOADER_H

#include <stdint.h>

#include "dataset.h"
#include "sampler.h"

typedef struct {
    long epoch, step;
    int B, D;
    float *x;         /* (B, D) features averaged over T */
    uint64_t *clips;  /* (B) */
    int32_t *views;   /* (B) */
    int32_t *label1;  /* (B) first label of each clip */
    int32_t *lab;     /* labels of row i: lab[lab_off[i] .. lab_off[i+1]) */
    int32_t *lab_off; /* (B + 1) */
} Batch;

typedef struct Loader Loader;

/** Start the thread at (epoch0, step0), running up to the end of epoch n_epochs - 1, with depth
 *  batches in flight; depth 0 starts no thread and makes each batch inside loader_next (features
 *  already in memory: a thread would only take a core from the math). d and s are borrowed and used only by the loader thread until loader_close.
 *  @return 0, LMR_ENOMEM, -errno (thread creation). */
int loader_open(Loader **l, Dataset *d, Sampler *s, long epoch0, long step0, long n_epochs, int depth,
                char *err);
/** Features in memory, no thread (depth 0): copy a batch's rows with run(user, n, work, fn, arg),
 *  which calls fn over [0, n) in pieces, on several threads if it likes (backend_parallel). */
typedef void (*LoaderRunFn)(void *user, size_t n, size_t work, void (*fn)(void *arg, size_t lo, size_t hi),
                            void *arg);
void loader_set_runner(Loader *l, LoaderRunFn run, void *user);
/** Next batch in order (blocks). *b is borrowed until loader_release.
 *  @return 0, LMR_DONE after the last batch, or the read error of this batch (err says which). */
int loader_next(Loader *l, Batch **b, char *err);
void loader_release(Loader *l, Batch *b);
/** Stop the thread and free everything; NULL-safe, sets *l to NULL. */
void loader_close(Loader **l);

#endif
