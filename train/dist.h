/* Data-parallel training over MPI ranks (DESIGN section 6). Every rank runs the same seeded global
 * sampler and takes its contiguous part of each global batch (rows row0 .. row0 + rows), so the
 * union of the ranks' rows is exactly the one-process batch. Gradients are averaged with one
 * all-reduce over the contiguous gradient block (MPI_Allreduce on the cpu backend, NCCL on GPUs,
 * its communicator bootstrapped over MPI); the LMR memory bank gathers every rank's features so
 * results do not depend on the number of ranks; rank 0 writes checkpoints and logs.
 *
 * Built with MPI when LMR_HAVE_MPI is defined; otherwise, and whenever the process was not
 * started by an MPI launcher, every call is the single-process no-op (rank 0 of 1). */
#ifndef LMR_TRAIN_DIST_H
#define LMR_TRAIN_DIST_H

#include <stddef.h>

#include "backend.h"
#include "lmr_error.h"

typedef struct Dist {
    int rank, size;     /* 0 and 1 for a single process */
    int local_rank;     /* rank among this machine's processes: picks the GPU */
    int mpi_on;         /* MPI_Init was called by dist_init; dist_free finalises */
    int nccl;           /* collectives go through NCCL on the backend's GPU */
    BackendCtx *ctx;    /* borrowed (dist_attach): the backend whose memory the buffers are */
    char last_error[LMR_ERRLEN];
} Dist;

/** Join the MPI job when launched is non-zero (the process was started by mpirun / srun: main.c
 *  reads the launcher's environment); else stay a single process. With want_gpu, each rank
 *  takes GPU local_rank % (GPUs on the machine) for the backend made after this call.
 *  @return 0, LMR_EMPI, LMR_EUNSUPPORTED (launched, but built without MPI); err says which. */
int dist_init(Dist *d, int launched, int want_gpu, int *argc, char ***argv, char *err);
/** Leave the job (MPI_Finalize). NULL-safe and idempotent; call after the backend is freed. */
void dist_free(Dist *d);
/** Stop every rank after a failure on one of them (the others would wait forever in the next
 *  collective). Returns only for a single process. */
void dist_abort(Dist *d, int code);

/** Bind the collectives to a backend: GPU contexts bootstrap NCCL here (rank 0 makes the id,
 *  MPI broadcasts it). Collective: every rank calls it. @return 0, LMR_EMPI, LMR_EGPU. */
int dist_attach(Dist *d, BackendCtx *ctx, char *err);

/** This rank's rows of a global batch of `batch`. @return 0, or LMR_EINVAL when batch is not a
 *  multiple of the number of ranks (err says so). */
int dist_slice(const Dist *d, int batch, int *row0, int *rows, char *err);
static inline int dist_is_root(const Dist *d) { return !d || d->rank == 0; }
static inline int dist_ranks(const Dist *d) { return d ? d->size : 1; }

/* The collectives below take backend memory (device memory on a GPU), are called by every rank
 * in the same order, and return 0, LMR_EMPI or LMR_EGPU with d->last_error set. NULL d or a
 * single process: nothing to do (allgather copies src to dst). */

/** In place over n floats: the sum over ranks, or the mean with average (gradients). */
int dist_allreduce(Dist *d, float *buf, size_t n, int average);
/** Rank r's `bytes` at src land at dst + r * bytes on every rank (dst holds size * bytes). */
int dist_allgather(Dist *d, void *dst, const void *src, size_t bytes);
/** In place over n host doubles: the sum over ranks (losses, counts). */
int dist_sum_host(Dist *d, double *x, int n);

#endif
