/* A fixed team of threads that, with the calling thread, runs one function over the parts of an
 * index range. Members wait for work by spinning briefly and then sleeping, so a hand-over costs
 * well under a microsecond while ops follow each other: ops of a few microseconds (the GEMMs and
 * passes of a small training step) are worth splitting, which OpenBLAS's own pool, woken per
 * call, does not manage. */
#ifndef LMR_TRAIN_TEAM_H
#define LMR_TRAIN_TEAM_H
#include <stddef.h>

/* Work on [lo, hi) of a range. */
typedef void (*TeamFn)(void *arg, size_t lo, size_t hi);

typedef struct Team Team;

/** A team of `parts` threads in all: the caller and parts - 1 members started here.
 *  @return 0, LMR_EINVAL (parts < 2) or LMR_ENOMEM (a thread could not start). */
int team_init(Team **t, int parts);
/** Stop and join the members; NULL-safe, sets *t to NULL. */
void team_free(Team **t);
int team_parts(const Team *t);
/** fn over [0, n) cut into team_parts() pieces at multiples of align (the last piece takes the
 *  rest; a piece may be empty). The caller runs the first piece; returns when all are done. */
void team_run(Team *t, size_t n, size_t align, TeamFn fn, void *arg);
/** CPUs this process may run on (its affinity mask: a Slurm or MPI binding, taskset). A team
 *  that waits by spinning must not be larger: a member without a core stalls every op. */
int team_cpus(void);
/** The bounds team_run gives piece k (0 <= k <= parts): piece k is [team_cut(k), team_cut(k+1)). */
size_t team_cut(size_t n, size_t align, int parts, int k);

#endif
