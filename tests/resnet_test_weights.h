/* Test helper: a random ResNet with torchvision's tensor names, as st_write tensors, so C tests
 * need no PyTorch. Deterministic (splitmix64), weights scaled to keep activations O(1). */
#ifndef LMR_RESNET_TEST_WEIGHTS_H
#define LMR_RESNET_TEST_WEIGHTS_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "safetensors.h"

static const int resnet18_layers[4] __attribute__((unused)) = {2, 2, 2, 2};
static const int resnet50_layers[4] __attribute__((unused)) = {3, 4, 6, 3};

static uint64_t rng_state __attribute__((unused)) = 0x9E3779B97F4A7C15ull;

static inline float frand(float lo, float hi) /* splitmix64 -> uniform [lo, hi) */
{
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return lo + (hi - lo) * (float)((z >> 40) * (1.0 / 16777216.0));
}

static inline float *rand_vec(size_t n, float lo, float hi)
{
    float *v = malloc(n * sizeof *v);
    for (size_t i = 0; i < n; i++)
        v[i] = frand(lo, hi);
    return v;
}

#define MAX_T 320
typedef struct {
    StWriteTensor t[MAX_T];
    int n;
} Weights;

static inline const float *add_t(Weights *wt, const char *name, int ndim, const int64_t *shape, float lo, float hi)
{
    size_t e = 1;
    for (int i = 0; i < ndim; i++)
        e *= (size_t)shape[i];
    StWriteTensor *t = &wt->t[wt->n++];
    t->name = strdup(name);
    t->dtype = ST_F32;
    t->ndim = ndim;
    memcpy(t->shape, shape, (size_t)ndim * sizeof *shape);
    t->data = rand_vec(e, lo, hi);
    return t->data;
}

static inline const float *find_t(const Weights *wt, const char *name)
{
    for (int i = 0; i < wt->n; i++)
        if (strcmp(wt->t[i].name, name) == 0)
            return wt->t[i].data;
    return NULL;
}

static inline void add_conv_bn(Weights *wt, const char *cname, const char *bname, int c_out, int c_in, int k)
{
    char key[96];
    int64_t ws[4] = {c_out, c_in, k, k}, vs[1] = {c_out};
    float a = (float)sqrt(3.0 / (c_in * k * k)); /* unit-variance outputs keep 18 layers in range */
    snprintf(key, sizeof key, "%s.weight", cname);
    add_t(wt, key, 4, ws, -a * 1.4f, a * 1.4f);
    static const char *part[4] = {"weight", "bias", "running_mean", "running_var"};
    static const float lo[4] = {0.5f, -0.2f, -0.1f, 0.5f}, hi[4] = {1.2f, 0.2f, 0.1f, 1.5f};
    for (int i = 0; i < 4; i++) {
        snprintf(key, sizeof key, "%s.%s", bname, part[i]);
        add_t(wt, key, 1, vs, lo[i], hi[i]);
    }
}

/* torchvision resnet: basic blocks (bottleneck 0) or v1.5 bottlenecks, layers[4] blocks per stage */
static inline void make_resnet(Weights *wt, int bottleneck, const int layers[4])
{
    char cn[64], bn[64];
    add_conv_bn(wt, "conv1", "bn1", 64, 3, 7);
    int c_in = 64, exp = bottleneck ? 4 : 1;
    for (int l = 1; l <= 4; l++) {
        int width = 64 << (l - 1), c_out = width * exp;
        for (int j = 0; j < layers[l - 1]; j++) {
            int s = l > 1 && j == 0 ? 2 : 1, n_conv = bottleneck ? 3 : 2;
            for (int k = 1; k <= n_conv; k++) {
                int ci = k == 1 ? c_in : width, co = k == n_conv ? c_out : width;
                int ks = bottleneck && k != 2 ? 1 : 3;
                snprintf(cn, sizeof cn, "layer%d.%d.conv%d", l, j, k);
                snprintf(bn, sizeof bn, "layer%d.%d.bn%d", l, j, k);
                add_conv_bn(wt, cn, bn, co, ci, ks);
            }
            if (s != 1 || c_in != c_out) {
                snprintf(cn, sizeof cn, "layer%d.%d.downsample.0", l, j);
                snprintf(bn, sizeof bn, "layer%d.%d.downsample.1", l, j);
                add_conv_bn(wt, cn, bn, c_out, c_in, 1);
            }
            c_in = c_out;
        }
    }
}

static inline void free_weights(Weights *wt)
{
    for (int i = 0; i < wt->n; i++) {
        free((void *)wt->t[i].name);
        free((void *)wt->t[i].data);
    }
    wt->n = 0;
}

#endif
