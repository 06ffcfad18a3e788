/* ResNet backbone layers against naive references: conv (strides, padding, 1x1, 7x7, im2col
 * chunking) with BatchNorm applied unfolded, residual and ReLU; maxpool; global pool;
 * normalisation; weight-file errors; and a whole resnet18 (random weights) against a naive
 * forward composed of the reference layers, computed in double. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backbone.h"
#include "check.h"
#include "resnet_test_weights.h"
#include "resnet_internal.h"
#include "safetensors.h"

/* max |got - want| / max |want| over n values; prints the first offender when above tol */
static int close_rel(const char *what, const float *got, const double *want, size_t n, double tol)
{
    double md = 0, mr = 1e-30;
    size_t worst = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs(got[i] - want[i]);
        if (!(d <= md)) {
            md = d;
            worst = i;
        }
        mr = fabs(want[i]) > mr ? fabs(want[i]) : mr;
    }
    if (!(md / mr <= tol)) {
        fprintf(stderr, "%s: max |diff| / max |ref| = %.3g (> %.1g), at %zu got %.7g want %.7g\n", what,
                md / mr, tol, worst, got[worst], want[worst]);
        return 0;
    }
    return 1;
}

// --- naive references (NHWC activations, torchvision OIHW weights, double) -----------------

typedef struct {
    const float *g, *b, *m, *v;
} Bn;

static void ref_conv(double *out, const double *in, int n, int h, int w, int c_in, const float *w_oihw,
                     int c_out, int k, int s, int p, const Bn *bn, const double *res, int relu)
{
    int oh = (h + 2 * p - k) / s + 1, ow = (w + 2 * p - k) / s + 1;
    for (int i = 0; i < n; i++)
        for (int oy = 0; oy < oh; oy++)
            for (int ox = 0; ox < ow; ox++)
                for (int o = 0; o < c_out; o++) {
                    double acc = 0;
                    for (int ky = 0; ky < k; ky++)
                        for (int kx = 0; kx < k; kx++) {
                            int iy = oy * s - p + ky, ix = ox * s - p + kx;
                            if (iy < 0 || iy >= h || ix < 0 || ix >= w)
                                continue;
                            for (int c = 0; c < c_in; c++)
                                acc += in[(((size_t)i * h + iy) * w + ix) * c_in + c] *
                                       w_oihw[(((size_t)o * c_in + c) * k + ky) * k + kx];
                        }
                    acc = (acc - bn->m[o]) / sqrt((double)bn->v[o] + RESNET_BN_EPS) * bn->g[o] + bn->b[o];
                    size_t at = (((size_t)i * oh + oy) * ow + ox) * c_out + o;
                    if (res)
                        acc += res[at];
                    out[at] = relu && acc < 0 ? 0 : acc;
                }
}

static void ref_maxpool(double *out, const double *in, int n, int h, int w, int c, int k, int s, int p)
{
    int oh = (h + 2 * p - k) / s + 1, ow = (w + 2 * p - k) / s + 1;
    for (int i = 0; i < n; i++)
        for (int oy = 0; oy < oh; oy++)
            for (int ox = 0; ox < ow; ox++)
                for (int j = 0; j < c; j++) {
                    double m = -INFINITY;
                    for (int ky = 0; ky < k; ky++)
                        for (int kx = 0; kx < k; kx++) {
                            int iy = oy * s - p + ky, ix = ox * s - p + kx;
                            if (iy >= 0 && iy < h && ix >= 0 && ix < w)
                                m = fmax(m, in[(((size_t)i * h + iy) * w + ix) * c + j]);
                        }
                    out[(((size_t)i * oh + oy) * ow + ox) * c + j] = m;
                }
}

static double *to_double(const float *v, size_t n)
{
    double *d = malloc(n * sizeof *d);
    for (size_t i = 0; i < n; i++)
        d[i] = v[i];
    return d;
}

// --- layer tests ---------------------------------------------------------------------------

static void random_bn(Bn *bn, int c)
{
    bn->g = rand_vec((size_t)c, 0.5f, 1.5f);
    bn->b = rand_vec((size_t)c, -0.3f, 0.3f);
    bn->m = rand_vec((size_t)c, -0.2f, 0.2f);
    bn->v = rand_vec((size_t)c, 0.5f, 2.0f);
}

static void free_bn(Bn *bn)
{
    free((void *)bn->g);
    free((void *)bn->b);
    free((void *)bn->m);
    free((void *)bn->v);
}

static void test_conv(int n, int h, int w, int c_in, int c_out, int k, int s, int p, int with_res, int relu,
                      int n_threads)
{
    int oh = resnet_out_size(h, k, s, p), ow = resnet_out_size(w, k, s, p);
    size_t n_in = (size_t)n * h * w * c_in, n_out = (size_t)n * oh * ow * c_out;
    size_t n_w = (size_t)c_out * c_in * k * k;
    float *in = rand_vec(n_in, -1, 1), *w_oihw = rand_vec(n_w, -0.5f, 0.5f);
    float *res = with_res ? rand_vec(n_out, -1, 1) : NULL;
    Bn bn;
    random_bn(&bn, c_out);
    ResnetConv c = {c_in, c_out, k, s, p, malloc(n_w * sizeof(float)), malloc((size_t)c_out * sizeof(float))};
    CHECK_RC(resnet_fold_bn(c.w, c.b, w_oihw, NULL, bn.g, bn.b, bn.m, bn.v, c_out, c_in, k, RESNET_BN_EPS), 0);
    ResnetCpu cpu = {NULL, 0, n_threads};
    float *out = malloc(n_out * sizeof(float));
    CHECK_RC(resnet_conv_forward(&cpu, out, in, res, &c, n, h, w, relu), 0);
    double *din = to_double(in, n_in), *dres = res ? to_double(res, n_out) : NULL;
    double *ref = malloc(n_out * sizeof(double));
    ref_conv(ref, din, n, h, w, c_in, w_oihw, c_out, k, s, p, &bn, dres, relu);
    char what[128];
    snprintf(what, sizeof what, "conv n%d %dx%dx%d -> %d k%d s%d p%d res%d relu%d", n, h, w, c_in, c_out, k, s, p,
             with_res, relu);
    CHECK(close_rel(what, out, ref, n_out, 1e-5));
    resnet_cpu_free(&cpu);
    free_bn(&bn);
    free(in), free(w_oihw), free(res), free(c.w), free(c.b), free(out), free(din), free(dres), free(ref);
}

static void test_pools(void)
{
    int n = 2, h = 9, w = 6, c = 5;
    size_t n_in = (size_t)n * h * w * c;
    float *in = rand_vec(n_in, -2, 1);
    double *din = to_double(in, n_in);
    static const int kinds[3][3] = {{3, 2, 1}, {2, 2, 0}, {3, 1, 1}};
    for (int t = 0; t < 3; t++) {
        int k = kinds[t][0], s = kinds[t][1], p = kinds[t][2];
        size_t n_out = (size_t)n * resnet_out_size(h, k, s, p) * resnet_out_size(w, k, s, p) * c;
        float *out = malloc(n_out * sizeof(float));
        double *ref = malloc(n_out * sizeof(double));
        resnet_maxpool_forward(out, in, n, h, w, c, k, s, p, 2);
        ref_maxpool(ref, din, n, h, w, c, k, s, p);
        CHECK(close_rel("maxpool", out, ref, n_out, 0));
        free(out), free(ref);
    }
    float gp[2 * 5];
    double gref[2 * 5] = {0};
    resnet_avgpool_forward(gp, in, n, h * w, c);
    for (int i = 0; i < n; i++)
        for (int p = 0; p < h * w; p++)
            for (int j = 0; j < c; j++)
                gref[i * c + j] += din[((size_t)i * h * w + p) * c + j] / (h * w);
    CHECK(close_rel("global average pool", gp, gref, 10, 1e-6));
    free(in), free(din);
}

static void test_normalize(void)
{
    uint8_t px[3 * 5000];
    for (size_t i = 0; i < sizeof px; i++)
        px[i] = (uint8_t)(i * 37 + i / 7);
    float *out = malloc(sizeof px * sizeof(float));
    double *ref = malloc(sizeof px * sizeof(double));
    static const double mean[3] = {0.485, 0.456, 0.406}, sd[3] = {0.229, 0.224, 0.225};
    resnet_normalize_forward(out, px, 5000, 2);
    for (size_t i = 0; i < sizeof px; i++)
        ref[i] = (px[i] / 255.0 - mean[i % 3]) / sd[i % 3];
    CHECK(close_rel("normalize", out, ref, sizeof px, 1e-6));
    free(out), free(ref);
}

/* conv `cname` + bn `bname` of the reference model, on a double NHWC tensor */
static double *ref_layer(const Weights *wt, const char *cname, const char *bname, const double *in, int n,
                         int *h, int *w, int c_in, int c_out, int k, int s, const double *res, int relu)
{
    char key[96];
    snprintf(key, sizeof key, "%s.weight", cname);
    const float *wgt = find_t(wt, key);
    Bn bn;
    const float **parts[4] = {&bn.g, &bn.b, &bn.m, &bn.v};
    static const char *pn[4] = {"weight", "bias", "running_mean", "running_var"};
    for (int i = 0; i < 4; i++) {
        snprintf(key, sizeof key, "%s.%s", bname, pn[i]);
        *parts[i] = find_t(wt, key);
    }
    int oh = resnet_out_size(*h, k, s, k / 2), ow = resnet_out_size(*w, k, s, k / 2);
    double *out = malloc((size_t)n * oh * ow * c_out * sizeof(double));
    ref_conv(out, in, n, *h, *w, c_in, wgt, c_out, k, s, k / 2, &bn, res, relu);
    *h = oh, *w = ow;
    return out;
}

static double *ref_resnet18(const Weights *wt, const uint8_t *px, int n, int h, int w)
{
    static const double mean[3] = {0.485, 0.456, 0.406}, sd[3] = {0.229, 0.224, 0.225};
    size_t np = (size_t)n * h * w * 3;
    double *x = malloc(np * sizeof(double));
    for (size_t i = 0; i < np; i++)
        x[i] = (px[i] / 255.0 - mean[i % 3]) / sd[i % 3];
    double *y = ref_layer(wt, "conv1", "bn1", x, n, &h, &w, 3, 64, 7, 2, NULL, 1);
    free(x);
    int ph = resnet_out_size(h, 3, 2, 1), pw = resnet_out_size(w, 3, 2, 1);
    x = malloc((size_t)n * ph * pw * 64 * sizeof(double));
    ref_maxpool(x, y, n, h, w, 64, 3, 2, 1);
    free(y);
    h = ph, w = pw;
    int c_in = 64;
    char cn[64], bn[64];
    for (int l = 1; l <= 4; l++) {
        int width = 64 << (l - 1);
        for (int j = 0; j < 2; j++) {
            int s = l > 1 && j == 0 ? 2 : 1, h1 = h, w1 = w, hd = h, wd = w;
            snprintf(cn, sizeof cn, "layer%d.%d.conv1", l, j), snprintf(bn, sizeof bn, "layer%d.%d.bn1", l, j);
            double *t = ref_layer(wt, cn, bn, x, n, &h1, &w1, c_in, width, 3, s, NULL, 1);
            double *sc = x;
            if (s != 1 || c_in != width) {
                snprintf(cn, sizeof cn, "layer%d.%d.downsample.0", l, j);
                snprintf(bn, sizeof bn, "layer%d.%d.downsample.1", l, j);
                sc = ref_layer(wt, cn, bn, x, n, &hd, &wd, c_in, width, 1, s, NULL, 0);
            }
            snprintf(cn, sizeof cn, "layer%d.%d.conv2", l, j), snprintf(bn, sizeof bn, "layer%d.%d.bn2", l, j);
            int h2 = h1, w2 = w1;
            double *o = ref_layer(wt, cn, bn, t, n, &h2, &w2, width, width, 3, 1, sc, 1);
            if (sc != x)
                free(sc);
            free(t), free(x);
            x = o, h = h2, w = w2, c_in = width;
        }
    }
    double *f = calloc((size_t)n * 512, sizeof(double));
    for (int i = 0; i < n; i++)
        for (int p = 0; p < h * w; p++)
            for (int j = 0; j < 512; j++)
                f[i * 512 + j] += x[((size_t)i * h * w + p) * 512 + j] / (h * w);
    free(x);
    return f;
}

static int write_subset(const char *path, const Weights *wt, int n)
{
    char err[LMR_ERRLEN];
    int rc = st_write(path, wt->t, n, NULL, NULL, 0, err);
    if (rc < 0)
        fprintf(stderr, "st_write: %s\n", err);
    return rc;
}

static void test_weights_and_net(const char *dir)
{
    Weights wt = {0};
    make_resnet(&wt, 0, resnet18_layers);
    char path[512], err[LMR_ERRLEN];
    snprintf(path, sizeof path, "%s/r18.safetensors", dir);
    ResnetNet net;
    char sum[24];

    TEST(5, "weights: a missing tensor is LMR_ENOTFOUND naming it");
    CHECK_RC(write_subset(path, &wt, 4), 0); /* conv1.weight + 3 of bn1's 4 tensors */
    CHECK_RC(resnet_net_load(&net, "resnet18", path, sum, err), LMR_ENOTFOUND);
    CHECK(strstr(err, "bn1.running_var") != NULL);
    resnet_net_free(&net);

    TEST(6, "weights: a mis-shaped tensor is LMR_EMISMATCH naming it (resnet18 file as resnet50)");
    CHECK_RC(write_subset(path, &wt, wt.n), 0);
    CHECK_RC(resnet_net_load(&net, "resnet50", path, sum, err), LMR_EMISMATCH);
    CHECK(strstr(err, "layer1.0.conv1.weight") != NULL);
    resnet_net_free(&net);
    CHECK_RC(resnet_net_load(&net, "resnet7", path, sum, err), LMR_EINVAL);
    resnet_net_free(&net);

    TEST(7, "resnet18 through backbone_open/run against the naive double reference");
    BackboneOpts o = {"resnet18", path, "cpu", 2, 2};
    Backbone *b = NULL;
    int rc = backbone_open(&b, &o, err);
    CHECK_RC(rc, 0);
    if (rc == 0) {
        CHECK(backbone_dim(b) == 512);
        CHECK(strlen(backbone_weights_checksum(b)) == 16);
        int n = 3, h = 25, w = 21; /* batch 2: a full batch and a partial one */
        uint8_t *px = malloc((size_t)n * h * w * 3);
        for (size_t i = 0; i < (size_t)n * h * w * 3; i++)
            px[i] = (uint8_t)frand(0, 256);
        float *out = malloc((size_t)n * 512 * sizeof(float));
        CHECK_RC(backbone_run(b, px, n, h, w, out), 0);
        double *ref = ref_resnet18(&wt, px, n, h, w);
        CHECK(close_rel("resnet18", out, ref, (size_t)n * 512, 1e-5));
        free(px), free(out), free(ref);
    } else {
        fprintf(stderr, "backbone_open: %s\n", err);
    }
    backbone_close(&b);
    o.device = "cuda:f99";
    CHECK(backbone_open(&b, &o, err) < 0);
    unlink(path);
    free_weights(&wt);
}

int main(void)
{
    TEST(1, "conv + folded BN (+ residual, ReLU) against a naive conv then BN");
    test_conv(2, 7, 9, 5, 6, 1, 1, 0, 1, 1, 2);  /* 1x1 stride 1: no im2col */
    test_conv(2, 7, 9, 5, 6, 1, 2, 0, 0, 0, 2);  /* 1x1 stride 2: projection shortcut */
    test_conv(1, 8, 8, 4, 3, 3, 1, 1, 0, 1, 1);
    test_conv(3, 9, 6, 7, 5, 3, 2, 1, 1, 1, 2);
    test_conv(1, 11, 10, 3, 8, 7, 2, 3, 0, 1, 2); /* the stem */
    test_conv(1, 3, 2, 2, 4, 7, 2, 3, 0, 0, 2);   /* image smaller than the kernel */
    TEST(2, "conv whose im2col spans several chunks");
    test_conv(2, 60, 50, 16, 4, 7, 1, 3, 1, 1, 2);
    TEST(3, "maxpool and global average pool");
    test_pools();
    TEST(4, "ImageNet normalisation");
    test_normalize();
    char dir[] = "/tmp/lmr-resnet-XXXXXX";
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    test_weights_and_net(dir);
    rmdir(dir);
    CHECK_DONE();
}
