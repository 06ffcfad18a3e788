/* cuDNN ResNet against the CPU one on random weights: f32 (FMA math, no TF32) within 1e-4 and
 * f16 within 3e-2 (max |gpu - cpu| / max |cpu|), over several batches (a partial one included)
 * and two frame sizes (re-planned algorithms). Prints frames/s of resnet50 at 224x224 in f32
 * and f16. Exits 77 (skipped) when there is no GPU or lmr was built without CUDA. */
#include <stdint.h>
#include <time.h>
#include <unistd.h>

#include "backbone.h"
#include "check.h"
#include "resnet_test_weights.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double rel_diff(const float *got, const float *want, size_t n)
{
    double md = 0, mr = 1e-30;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - want[i]);
        md = d > md || d != d ? d : md;
        mr = fabs(want[i]) > mr ? fabs(want[i]) : mr;
    }
    return md / mr;
}

static int open_or_skip(Backbone **b, BackboneOpts *o)
{
    char err[LMR_ERRLEN];
    int rc = backbone_open(b, o, err);
    if (rc == LMR_ENODEV) {
        printf("SKIP: %s\n", err);
        exit(77);
    }
    if (rc < 0)
        fprintf(stderr, "backbone_open(%s, %s): %s\n", o->name, o->device, err);
    return rc;
}

static void compare(const char *name, const char *path, int n, int h, int w)
{
    size_t np = (size_t)n * h * w * 3;
    uint8_t *px = malloc(np);
    for (size_t i = 0; i < np; i++)
        px[i] = (uint8_t)frand(0, 256);
    BackboneOpts o = {name, path, "cpu", 0, 0};
    Backbone *cpu = NULL, *gpu = NULL, *half = NULL;
    CHECK_RC(open_or_skip(&cpu, &o), 0);
    o.device = "cuda";
    o.batch = 16;
    CHECK_RC(open_or_skip(&gpu, &o), 0);
    o.device = "cuda:f16";
    CHECK_RC(open_or_skip(&half, &o), 0);
    if (cpu && gpu && half) {
        int dim = backbone_dim(cpu);
        CHECK(backbone_dim(gpu) == dim);
        CHECK(strcmp(backbone_weights_checksum(gpu), backbone_weights_checksum(cpu)) == 0);
        float *ref = malloc((size_t)n * dim * sizeof(float)), *got = malloc((size_t)n * dim * sizeof(float));
        CHECK_RC(backbone_run(cpu, px, n, h, w, ref), 0);
        for (int pass = 0; pass < 2; pass++) { /* the second pass reuses the plans */
            CHECK_RC(backbone_run(gpu, px, n, h, w, got), 0);
            double r32 = rel_diff(got, ref, (size_t)n * dim);
            CHECK_RC(backbone_run(half, px, n, h, w, got), 0);
            double r16 = rel_diff(got, ref, (size_t)n * dim);
            printf("%s %d x %dx%d: max|gpu - cpu| / max|cpu| = %.3g (f32), %.3g (f16)\n", name, n, h, w, r32, r16);
            CHECK(r32 <= 1e-4);
            CHECK(r16 <= 3e-2);
        }
        free(ref), free(got);
    }
    backbone_close(&cpu), backbone_close(&gpu), backbone_close(&half);
    free(px);
}

static void speed(const char *path)
{
    int n = 256, h = 224, w = 224;
    size_t np = (size_t)n * h * w * 3;
    uint8_t *px = malloc(np);
    for (size_t i = 0; i < np; i++)
        px[i] = (uint8_t)(i * 2654435761u >> 24);
    float *out = malloc((size_t)n * 2048 * sizeof(float));
    static const char *devs[2] = {"cuda", "cuda:f16"};
    for (int d = 0; d < 2; d++) {
        BackboneOpts o = {"resnet50", path, devs[d], 0, 64};
        Backbone *b = NULL;
        if (open_or_skip(&b, &o) < 0) {
            check_failures++;
            continue;
        }
        CHECK_RC(backbone_run(b, px, n, h, w, out), 0); /* warm-up: algorithm search */
        double t0 = now();
        for (int r = 0; r < 3; r++)
            CHECK_RC(backbone_run(b, px, n, h, w, out), 0);
        double fps = 3 * n / (now() - t0);
        /* resnet50 at 224x224: 4.09 GMAC = 8.18 GFLOP per frame */
        printf("resnet50 %s, batch 64, 224x224: %.0f frames/s (%.1f TFLOP/s)\n", devs[d], fps, fps * 8.18e-3);
        backbone_close(&b);
    }
    free(px), free(out);
}

int main(void)
{
    char dir[] = "/tmp/lmr-resnet-gpu-XXXXXX", p18[512], p50[512], err[LMR_ERRLEN];
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(p18, sizeof p18, "%s/r18.safetensors", dir);
    snprintf(p50, sizeof p50, "%s/r50.safetensors", dir);
    Weights wt = {0};
    make_resnet(&wt, 0, resnet18_layers);
    CHECK_RC(st_write(p18, wt.t, wt.n, NULL, NULL, 0, err), 0);
    free_weights(&wt);
    make_resnet(&wt, 1, resnet50_layers);
    CHECK_RC(st_write(p50, wt.t, wt.n, NULL, NULL, 0, err), 0);
    free_weights(&wt);

    TEST(1, "resnet18: cuDNN f32 / f16 against the CPU, 37 frames in batches of 16, 67x83");
    compare("resnet18", p18, 37, 67, 83);
    TEST(2, "resnet50: the same, then another frame size");
    compare("resnet50", p50, 20, 67, 83);
    compare("resnet50", p50, 5, 112, 96);
    TEST(3, "resnet50 speed (printed, not checked)");
    speed(p50);
    unlink(p18), unlink(p50), rmdir(dir);
    CHECK_DONE();
}
