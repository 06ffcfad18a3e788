/* dist.h in one process: rank 0 of 1, the batch slice, collectives that leave buffers as they
 * are (allgather copies), and the refusal of a batch that does not split over the ranks. The
 * multi-rank behaviour is test_dist_mpi.sh's (mpirun). */
#include <string.h>

#include "check.h"
#include "dist.h"

int main(void)
{
    char err[LMR_ERRLEN] = "";
    Dist d;
    int row0 = -1, rows = -1;

    TEST(1, "not launched: a single process");
    CHECK_RC(dist_init(&d, 0, 0, NULL, NULL, err), 0);
    CHECK(d.rank == 0 && d.size == 1 && !d.mpi_on && dist_is_root(&d) && dist_ranks(&d) == 1);
    CHECK(dist_is_root(NULL) && dist_ranks(NULL) == 1);

    TEST(2, "the slice of one rank is the whole batch");
    CHECK_RC(dist_slice(&d, 64, &row0, &rows, err), 0);
    CHECK(row0 == 0 && rows == 64);
    CHECK_RC(dist_slice(NULL, 7, &row0, &rows, err), 0);
    CHECK(row0 == 0 && rows == 7);

    TEST(3, "collectives of one process");
    BackendCtx *ctx = NULL;
    CHECK_RC(backend_init(&ctx, BACKEND_CPU, 1, err), 0);
    CHECK_RC(dist_attach(&d, ctx, err), 0);
    float g[5] = {1, -2, 3.5f, 0, 1e-3f}, want[5];
    memcpy(want, g, sizeof g);
    CHECK_RC(dist_allreduce(&d, g, 5, 1), 0);
    CHECK(memcmp(g, want, sizeof g) == 0); // the mean over one rank is the value itself
    CHECK_RC(dist_allreduce(&d, g, 5, 0), 0);
    CHECK(memcmp(g, want, sizeof g) == 0);
    float all[5] = {0};
    CHECK_RC(dist_allgather(&d, all, g, sizeof g), 0);
    CHECK(memcmp(all, g, sizeof g) == 0);
    double loss[2] = {0.25, 4.0};
    CHECK_RC(dist_sum_host(&d, loss, 2), 0);
    CHECK(loss[0] == 0.25 && loss[1] == 4.0);
    dist_abort(&d, 1); // one process: returns
    dist_free(&d);
    dist_free(&d); // idempotent
    dist_free(NULL);
    CHECK(d.size == 1);
    backend_free(&ctx);

    TEST(4, "started by a launcher without MPI support is refused; with it the batch must split");
#ifndef LMR_HAVE_MPI
    CHECK_RC(dist_init(&d, 1, 0, NULL, NULL, err), LMR_EUNSUPPORTED);
    CHECK(strstr(err, "without MPI") != NULL);
#endif
    Dist two = {.rank = 1, .size = 2};
    CHECK_RC(dist_slice(&two, 64, &row0, &rows, err), 0);
    CHECK(row0 == 32 && rows == 32);
    CHECK_RC(dist_slice(&two, 15, &row0, &rows, err), LMR_EINVAL);
    CHECK(strstr(err, "multiple of the 2 ranks") != NULL);
    CHECK_DONE();
}
