/* The NCCL collectives of the CUDA backend (cuda_allreduce sum and mean, cuda_allgather) between two
 * ranks of one process, a thread each, on devices 0 and 1 (one GPU: both on device 0, which NCCL
 * may refuse: then skipped, exit 77, with NCCL's reason). Skipped also when there is no device or
 * lmr was built without CUDA or NCCL. Any other failure fails. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend.h"
#include "check.h"
#ifdef LMR_HAVE_CUDA
#include "backend_cuda.h"
#endif

#define N 1000

#ifdef LMR_HAVE_CUDA
typedef struct {
    int rank, rc, refused;
    const unsigned char *id;
    char err[LMR_ERRLEN];
    float sum[N], mean[N];
    float gathered[2 * 4];
} Rank;

static float value(int rank, int i) { return (float)(rank + 1) + 0.001f * (float)i; }

static void *rank_main(void *arg)
{
    Rank *r = arg;
    BackendCtx *ctx = NULL;
    float host[N], *a = NULL, *b = NULL, *g = NULL;
    if ((r->rc = cuda_select_device(r->rank, r->err)) < 0 || (r->rc = backend_init(&ctx, BACKEND_CUDA, 0, r->err)) < 0)
        return NULL;
    CudaState *gs = backend_gpu_state(ctx);
    if ((r->rc = cuda_comm_init(gs, r->id, r->rank, 2, r->err)) < 0) {
        r->refused = 1; // NCCL's answer to the pairing itself: the caller decides whether that is a skip
        backend_free(&ctx);
        return NULL;
    }
    for (int i = 0; i < N; i++)
        host[i] = value(r->rank, i);
    float mine[4] = {(float)r->rank, 10.0f + r->rank, 20.0f + r->rank, 30.0f + r->rank};
    if ((r->rc = backend_alloc(ctx, (void **)&a, sizeof host)) < 0 || (r->rc = backend_alloc(ctx, (void **)&b, sizeof host)) < 0 ||
        (r->rc = backend_alloc(ctx, (void **)&g, sizeof r->gathered)) < 0)
        goto out;
    backend_upload(ctx, a, host, sizeof host);
    backend_upload(ctx, b, host, sizeof host);
    backend_upload(ctx, g + 4 * r->rank, mine, sizeof mine);
    cuda_allreduce(gs, a, N, 0);
    cuda_allreduce(gs, b, N, 1);
    cuda_allgather(gs, g, g + 4 * r->rank, sizeof mine);
    if ((r->rc = backend_download(ctx, r->sum, a, sizeof host)) < 0 ||
        (r->rc = backend_download(ctx, r->mean, b, sizeof host)) < 0 ||
        (r->rc = backend_download(ctx, r->gathered, g, sizeof r->gathered)) < 0)
        snprintf(r->err, sizeof r->err, "%s", backend_last_error(ctx));
out:
    backend_release(ctx, a);
    backend_release(ctx, b);
    backend_release(ctx, g);
    backend_free(&ctx);
    return NULL;
}
#endif

int main(void)
{
#ifndef LMR_HAVE_CUDA
    (void)check_failures;
    printf("skipped: built without CUDA\n");
    return 77;
#else
    if (!backend_available(BACKEND_CUDA)) {
        printf("skipped: no CUDA device\n");
        return 77;
    }
    unsigned char id[CUDA_COMM_ID_BYTES];
    char err[LMR_ERRLEN] = "";
    int rc = cuda_comm_id(id, err);
    if (rc == LMR_EUNSUPPORTED) {
        printf("skipped: %s\n", err);
        return 77;
    }
    CHECK_RC(rc, 0);
    alarm(120); // a rank left waiting for its peer must not hang the run
    Rank *r = calloc(2, sizeof *r);
    pthread_t th[2];
    for (int k = 0; k < 2; k++) {
        r[k].rank = k;
        r[k].id = id;
        CHECK(pthread_create(&th[k], NULL, rank_main, &r[k]) == 0);
    }
    for (int k = 0; k < 2; k++)
        pthread_join(th[k], NULL);
    int devices = 0;
    FILE *p = popen("nvidia-smi -L 2>/dev/null | grep -c '^GPU'", "r");
    if (p && fscanf(p, "%d", &devices) != 1)
        devices = 0;
    if (p)
        pclose(p);
    const char *why = r[0].refused ? r[0].err : r[1].err;
    if ((r[0].refused || r[1].refused) && devices < 2 && strstr(why, "invalid usage")) {
        printf("skipped: NCCL does not pair two ranks on one GPU: %s\n", why);
        free(r);
        return 77;
    }
    TEST(1, "two ranks: all-reduce (sum, mean) and all-gather");
    for (int k = 0; k < 2; k++) {
        if (r[k].rc < 0)
            fprintf(stderr, "rank %d: %s\n", k, r[k].err);
        CHECK_RC(r[k].rc, 0);
    }
    if (r[0].rc == 0 && r[1].rc == 0) {
        for (int k = 0; k < 2; k++)
            for (int i = 0; i < N; i++) {
                float s = value(0, i) + value(1, i);
                CHECK_CLOSE(r[k].sum[i], s, 1e-6, 1e-6);
                CHECK_CLOSE(r[k].mean[i], s / 2, 1e-6, 1e-6);
            }
        for (int k = 0; k < 2; k++)
            for (int q = 0; q < 2; q++)
                for (int j = 0; j < 4; j++)
                    CHECK(r[k].gathered[4 * q + j] == 10.0f * j + q);
        printf("  ranks agree: sum, mean and gather over %d device(s)\n", devices < 2 ? 1 : 2);
    }
    free(r);
    CHECK_DONE();
#endif
}
