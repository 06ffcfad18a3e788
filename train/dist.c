/* Data-parallel plumbing: MPI start-up and shut-down, the batch slice of each rank, and the three
 * collectives the trainer needs (gradient all-reduce, bank all-gather, loss sum), on the host
 * through MPI or on a GPU through NCCL. Without LMR_HAVE_MPI everything is the one-process case. */
#include "dist.h"

#include <string.h>

#ifdef LMR_HAVE_MPI
#include <mpi.h>
#endif
#ifdef LMR_HAVE_CUDA
#include "backend_cuda.h"
#endif

#ifdef LMR_HAVE_MPI
/* MPI counts are int: large buffers go in chunks. */
#define MPI_CHUNK ((size_t)1 << 30)

static int mpi_fail(Dist *d, int code, const char *call, int line)
{
    char msg[MPI_MAX_ERROR_STRING] = "";
    int len = 0;
    MPI_Error_string(code, msg, &len);
    return lmr_fail(d->last_error, LMR_EMPI, "dist.c:%d: %s: %s", line, call, msg);
}
#define MPI_OK(d, call)                                          \
    do {                                                         \
        int mpi_rc_ = (call);                                    \
        if (mpi_rc_ != MPI_SUCCESS)                              \
            return mpi_fail((d), mpi_rc_, #call, __LINE__);      \
    } while (0)
#endif

#ifdef LMR_HAVE_CUDA
static int gpu_status(Dist *d, int rc)
{
    if (rc < 0)
        lmr_fail(d->last_error, rc, "%s", cuda_last_error(backend_gpu_state(d->ctx)));
    return rc;
}
#endif

int dist_init(Dist *d, int launched, int want_gpu, int *argc, char ***argv, char *err)
{
    memset(d, 0, sizeof *d);
    d->size = 1;
#ifdef LMR_HAVE_MPI
    if (!launched)
        return 0;
    int provided = 0, rc = MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided);
    if (rc != MPI_SUCCESS)
        return lmr_fail(err, LMR_EMPI, "MPI_Init_thread failed (code %d)", rc);
    d->mpi_on = 1;
    // errors come back as codes, reported by us, instead of aborting inside MPI
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_Comm local;
    if ((rc = MPI_Comm_rank(MPI_COMM_WORLD, &d->rank)) != MPI_SUCCESS ||
        (rc = MPI_Comm_size(MPI_COMM_WORLD, &d->size)) != MPI_SUCCESS ||
        (rc = MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, d->rank, MPI_INFO_NULL, &local)) !=
            MPI_SUCCESS) {
        mpi_fail(d, rc, "MPI start-up", __LINE__);
        return lmr_fail(err, LMR_EMPI, "%s", d->last_error);
    }
    MPI_Comm_rank(local, &d->local_rank);
    MPI_Comm_free(&local);
#ifdef LMR_HAVE_CUDA
    if (want_gpu && (rc = cuda_select_device(d->local_rank, err)) < 0)
        return rc;
#else
    (void)want_gpu;
#endif
    return 0;
#else
    (void)want_gpu, (void)argc, (void)argv;
    if (launched)
        return lmr_fail(err, LMR_EUNSUPPORTED,
                        "started by an MPI launcher, but lmr was built without MPI (configure with -DLMR_MPI=ON)");
    return 0;
#endif
}

void dist_free(Dist *d)
{
    if (!d)
        return;
#ifdef LMR_HAVE_MPI
    if (d->mpi_on)
        MPI_Finalize();
#endif
    memset(d, 0, sizeof *d);
    d->size = 1;
}

void dist_abort(Dist *d, int code)
{
#ifdef LMR_HAVE_MPI
    if (d && d->mpi_on && d->size > 1)
        MPI_Abort(MPI_COMM_WORLD, code);
#else
    (void)d, (void)code;
#endif
}

int dist_attach(Dist *d, BackendCtx *ctx, char *err)
{
    if (!d)
        return 0;
    d->ctx = ctx;
    if (d->size == 1 || backend_kind(ctx) == BACKEND_CPU)
        return 0;
#if defined(LMR_HAVE_MPI) && defined(LMR_HAVE_CUDA)
    // NCCL's bootstrap: rank 0 makes the id, MPI carries it to the others, all join
    unsigned char id[CUDA_COMM_ID_BYTES];
    int rc = 0;
    if (d->rank == 0)
        rc = cuda_comm_id(id, err);
    // every rank must reach the broadcast; a failed rank 0 sends a zero id and stops after it
    if (rc < 0)
        memset(id, 0, sizeof id);
    int bad = rc < 0, any_bad = 0;
    if (MPI_Allreduce(&bad, &any_bad, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD) != MPI_SUCCESS || any_bad)
        return rc < 0 ? rc : lmr_fail(err, LMR_EGPU, "rank 0 could not make the NCCL id");
    if ((rc = MPI_Bcast(id, CUDA_COMM_ID_BYTES, MPI_BYTE, 0, MPI_COMM_WORLD)) != MPI_SUCCESS) {
        mpi_fail(d, rc, "MPI_Bcast(nccl id)", __LINE__);
        return lmr_fail(err, LMR_EMPI, "%s", d->last_error);
    }
    if ((rc = cuda_comm_init(backend_gpu_state(ctx), id, d->rank, d->size, err)) < 0)
        return rc;
    d->nccl = 1;
    return 0;
#else
    return lmr_fail(err, LMR_EUNSUPPORTED, "data-parallel GPU training needs MPI and CUDA with NCCL");
#endif
}

int dist_slice(const Dist *d, int batch, int *row0, int *rows, char *err)
{
    int size = dist_ranks(d);
    if (batch % size != 0)
        return lmr_fail(err, LMR_EINVAL, "--batch %d is not a multiple of the %d ranks", batch, size);
    *rows = batch / size;
    *row0 = (d ? d->rank : 0) * *rows;
    return 0;
}

// --- collectives ---------------------------------------------------------------------------------

int dist_allreduce(Dist *d, float *buf, size_t n, int average)
{
    if (!d || d->size == 1 || n == 0)
        return 0;
#ifdef LMR_HAVE_CUDA
    if (d->nccl)
        return gpu_status(d, cuda_allreduce(backend_gpu_state(d->ctx), buf, n, average));
#endif
#ifdef LMR_HAVE_MPI
    for (size_t k = 0; k < n; k += MPI_CHUNK) {
        size_t m = n - k < MPI_CHUNK ? n - k : MPI_CHUNK;
        MPI_OK(d, MPI_Allreduce(MPI_IN_PLACE, buf + k, (int)m, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD));
    }
    if (average) {
        float inv = 1.0f / (float)d->size;
        for (size_t k = 0; k < n; k++)
            buf[k] *= inv;
    }
    return 0;
#else
    (void)buf, (void)average;
    return 0;
#endif
}

int dist_allgather(Dist *d, void *dst, const void *src, size_t bytes)
{
    if (!d || d->size == 1)
        return d && d->ctx ? backend_copy(d->ctx, dst, src, bytes) : (memmove(dst, src, bytes), 0);
#ifdef LMR_HAVE_CUDA
    if (d->nccl)
        return gpu_status(d, cuda_allgather(backend_gpu_state(d->ctx), dst, src, bytes));
#endif
#ifdef LMR_HAVE_MPI
    if (bytes > (size_t)0x7fffffff)
        return lmr_fail(d->last_error, LMR_EINVAL, "all-gather of %zu bytes per rank: over MPI's int count", bytes);
    MPI_OK(d, MPI_Allgather(src, (int)bytes, MPI_BYTE, dst, (int)bytes, MPI_BYTE, MPI_COMM_WORLD));
#endif
    return 0;
}

int dist_sum_host(Dist *d, double *x, int n)
{
    if (!d || d->size == 1 || n <= 0)
        return 0;
#ifdef LMR_HAVE_MPI
    MPI_OK(d, MPI_Allreduce(MPI_IN_PLACE, x, n, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD));
#else
    (void)x;
#endif
    return 0;
}
