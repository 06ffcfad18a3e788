/* Test and bench driver: raw frames (n, h, w, 3) u8 in a file -> backbone_run -> raw
 * (n / frames_per_feature, dim) f32 file. With --repeat R it times R extra passes and prints
 * frames/s, and where the backbone counts them, the share of that time spent in sgemm. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cblas.h>

#include "backbone.h"
#include "resnet_internal.h" /* resnet_parallel_for */

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* sgemm as the CPU backbones run it: one single-threaded sgemm per thread, all at once. */
#define PEAK_N 1536
typedef struct {
    float *a, *b, *c;
} PeakArgs;

static void peak_part(void *p, size_t lo, size_t hi)
{
    const PeakArgs *a = p;
    for (size_t t = lo; t < hi; t++)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, PEAK_N, PEAK_N, PEAK_N, 1.0f, a->a, PEAK_N, a->b, PEAK_N,
                    0.0f, a->c + t * PEAK_N * PEAK_N, PEAK_N);
}

static int sgemm_peak(int threads)
{
    size_t nn = (size_t)PEAK_N * PEAK_N;
    PeakArgs a = {calloc(nn, sizeof(float)), calloc(nn, sizeof(float)), calloc(nn * threads, sizeof(float))};
    if (!a.a || !a.b || !a.c)
        return 1;
    openblas_set_num_threads(1);
    resnet_parallel_for(threads, (size_t)threads, peak_part, &a); /* warm-up */
    double t0 = now();
    for (int r = 0; r < 3; r++)
        resnet_parallel_for(threads, (size_t)threads, peak_part, &a);
    double dt = now() - t0;
    printf("sgemm peak: %.1f GFLOP/s on %d threads (a single-threaded %dx%dx%d sgemm per thread)\n",
           3.0 * threads * 2.0 * PEAK_N * PEAK_N * PEAK_N / dt * 1e-9, threads, PEAK_N, PEAK_N, PEAK_N);
    free(a.a), free(a.b), free(a.c);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "--sgemm-peak") == 0)
        return sgemm_peak(atoi(argv[2]) > 0 ? atoi(argv[2]) : 1);
    BackboneOpts o = {0};
    int repeat = 0, i = 1;
    o.device = "cpu";
    for (; i < argc && strncmp(argv[i], "--", 2) == 0 && i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--device") == 0)
            o.device = argv[i + 1];
        else if (strcmp(argv[i], "--threads") == 0)
            o.threads = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--batch") == 0)
            o.batch = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--repeat") == 0)
            repeat = atoi(argv[i + 1]);
        else
            break;
    }
    if (argc - i != 7) {
        fprintf(stderr, "usage: resnet_features [--device D] [--threads T] [--batch B] [--repeat R] "
                        "NAME WEIGHTS FRAMES.u8 N H W OUT.f32\n"
                        "       resnet_features --sgemm-peak THREADS\n");
        return 2;
    }
    o.name = argv[i];
    o.weights = argv[i + 1];
    int n = atoi(argv[i + 3]), h = atoi(argv[i + 4]), w = atoi(argv[i + 5]);
    size_t nb = (size_t)n * h * w * 3;
    char err[LMR_ERRLEN] = "";
    Backbone *b = NULL;
    uint8_t *px = malloc(nb ? nb : 1);
    float *out = NULL;
    int rc = backbone_open(&b, &o, err);
    if (rc < 0) {
        fprintf(stderr, "resnet_features: %s\n", err);
        free(px);
        return rc == LMR_ENODEV ? 77 : 1; /* no GPU: the caller's test is skipped */
    }
    FILE *f = fopen(argv[i + 2], "rb");
    size_t got = f ? fread(px, 1, nb, f) : 0;
    if (f)
        fclose(f);
    if (got != nb) {
        fprintf(stderr, "resnet_features: %s: cannot read %zu bytes\n", argv[i + 2], nb);
        rc = 1;
        goto done;
    }
    size_t n_out = (size_t)(n / backbone_frames_per_feature(b)) * backbone_dim(b);
    out = malloc((n_out ? n_out : 1) * sizeof(float));
    if ((rc = backbone_run(b, px, n, h, w, out)) < 0) {
        fprintf(stderr, "resnet_features: %s\n", backbone_error(b));
        goto done;
    }
    if (repeat > 0) {
        double g0 = 0, f0 = 0, g1, f1;
        int counted = backbone_gemm_stats(b, &g0, &f0) == 0;
        double t0 = now();
        for (int r = 0; r < repeat && rc == 0; r++)
            rc = backbone_run(b, px, n, h, w, out);
        double dt = now() - t0;
        printf("lmr %s %s: %d x %d frames of %dx%d in %.3f s: %.2f frames/s\n", o.name, o.device, repeat, n, h, w,
               dt, repeat * n / dt);
        if (counted && backbone_gemm_stats(b, &g1, &f1) == 0)
            printf("  sgemm: %.0f%% of the time, %.1f GFLOP/s inside it, %.1f GFLOP/s over the whole pass\n",
                   100 * (g1 - g0) / dt, (f1 - f0) / (g1 - g0) * 1e-9, (f1 - f0) / dt * 1e-9);
    }
    f = fopen(argv[i + 6], "wb");
    if (!f || fwrite(out, sizeof(float), n_out, f) != n_out ||
        fclose(f) != 0) {
        fprintf(stderr, "resnet_features: %s: write failed\n", argv[i + 6]);
        rc = 1;
    }
done:
    backbone_close(&b);
    free(px);
    free(out);
    return rc < 0 ? 1 : rc;
}
