/* ResNet architecture table and weight loader. The network is laid out from torchvision's
 * definition (v1.5: the bottleneck strides on its 3x3 conv), every conv + BatchNorm pair is read
 * by its torchvision tensor names, checked for dtype and shape, and folded into one conv with
 * bias in NHWC order, so inference needs no BatchNorm at all. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "resnet_internal.h"
#include "safetensors.h"

typedef struct {
    const char *name;
    int bottleneck;
    int layers[4];
} ResnetArch;

static const ResnetArch archs[] = {
    {"resnet18", 0, {2, 2, 2, 2}},  {"resnet34", 0, {3, 4, 6, 3}},   {"resnet50", 1, {3, 4, 6, 3}},
    {"resnet101", 1, {3, 4, 23, 3}}, {"resnet152", 1, {3, 8, 36, 3}},
};

// --- architecture --------------------------------------------------------------------------

static void conv_set(ResnetConv *c, int c_in, int c_out, int k, int stride, size_t *n_params)
{
    *c = (ResnetConv){c_in, c_out, k, stride, k / 2, NULL, NULL};
    *n_params += (size_t)c_out * k * k * c_in + (size_t)c_out;
}

/* Shapes of every conv; counts the parameters. */
static int arch_build(ResnetNet *net, const ResnetArch *a)
{
    int n_blocks = a->layers[0] + a->layers[1] + a->layers[2] + a->layers[3];
    net->blocks = calloc((size_t)n_blocks, sizeof *net->blocks);
    if (!net->blocks)
        return LMR_ENOMEM;
    net->n_blocks = n_blocks;
    net->bottleneck = a->bottleneck;
    snprintf(net->name, sizeof net->name, "%s", a->name);
    size_t np = 0;
    conv_set(&net->stem, 3, 64, 7, 2, &np);
    int c_in = 64, expansion = a->bottleneck ? 4 : 1, bi = 0;
    for (int l = 0; l < 4; l++) {
        int width = 64 << l;
        for (int j = 0; j < a->layers[l]; j++, bi++) {
            ResnetBlock *blk = &net->blocks[bi];
            blk->layer = l + 1;
            blk->idx = j;
            int stride = (l > 0 && j == 0) ? 2 : 1, c_out = width * expansion;
            if (a->bottleneck) {
                conv_set(&blk->c1, c_in, width, 1, 1, &np);
                conv_set(&blk->c2, width, width, 3, stride, &np);
                conv_set(&blk->c3, width, c_out, 1, 1, &np);
            } else {
                conv_set(&blk->c1, c_in, width, 3, stride, &np);
                conv_set(&blk->c2, width, width, 3, 1, &np);
            }
            blk->has_ds = stride != 1 || c_in != c_out;
            if (blk->has_ds)
                conv_set(&blk->ds, c_in, c_out, 1, stride, &np);
            c_in = c_out;
        }
    }
    net->dim = c_in;
    net->n_params = np;
    return 0;
}

size_t resnet_max_activation(const ResnetNet *net, int h, int w)
{
    const ResnetConv *s = &net->stem;
    h = resnet_out_size(h, s->k, s->stride, s->pad);
    w = resnet_out_size(w, s->k, s->stride, s->pad);
    size_t best = (size_t)h * w * s->c_out;
    h = resnet_out_size(h, 3, 2, 1);
    w = resnet_out_size(w, 3, 2, 1);
    for (int i = 0; i < net->n_blocks; i++) {
        const ResnetBlock *b = &net->blocks[i];
        const ResnetConv *cs[3] = {&b->c1, &b->c2, net->bottleneck ? &b->c3 : NULL};
        for (int j = 0; j < 3 && cs[j]; j++) {
            h = resnet_out_size(h, cs[j]->k, cs[j]->stride, cs[j]->pad);
            w = resnet_out_size(w, cs[j]->k, cs[j]->stride, cs[j]->pad);
            size_t e = (size_t)h * w * cs[j]->c_out;
            best = e > best ? e : best;
        }
    }
    return best;
}

// --- loading -------------------------------------------------------------------------------

int resnet_fold_bn(float *w, float *b, const float *w_oihw, const float *conv_bias, const float *gamma,
                   const float *beta, const float *mean, const float *var, int c_out, int c_in, int k,
                   double eps)
{
    for (int o = 0; o < c_out; o++) {
        double scale = (double)gamma[o] / sqrt((double)var[o] + eps);
        if (!isfinite(scale))
            return LMR_ECORRUPT;
        for (int i = 0; i < c_in; i++)
            for (int y = 0; y < k; y++)
                for (int x = 0; x < k; x++)
                    w[(((size_t)o * k + y) * k + x) * c_in + i] =
                        (float)(w_oihw[(((size_t)o * c_in + i) * k + y) * k + x] * scale);
        double cb = conv_bias ? conv_bias[o] : 0.0;
        b[o] = (float)(beta[o] + (cb - mean[o]) * scale);
    }
    return 0;
}

/* A checked f32 tensor copied out (safetensors data need not be 4-byte aligned). */
static int read_f32(StFile *f, const char *name, int ndim, const int64_t *shape, float *dst, char *err,
                    const char *path)
{
    const StTensor *t;
    int rc = st_expect(f, name, ST_F32, ndim, shape, &t);
    if (rc < 0)
        return lmr_fail(err, rc, "%s: %s", path, f->last_error);
    memcpy(dst, t->data, t->nbytes);
    return 0;
}

typedef struct {
    StFile *f;
    const char *path;
    float *tmp; /* scratch for the unfolded tensors, sized for the largest conv */
    char *err;
} Loader;

/* Read conv `cname`.weight (+ optional .bias) and BatchNorm `bname`.*, fold into c. */
static int load_conv(Loader *ld, ResnetConv *c, const char *cname, const char *bname)
{
    char key[128];
    int64_t wshape[4] = {c->c_out, c->c_in, c->k, c->k}, vshape[1] = {c->c_out};
    size_t nw = (size_t)c->c_out * c->c_in * c->k * c->k, co = (size_t)c->c_out;
    float *w = ld->tmp, *cb = w + nw, *g = cb + co, *be = g + co, *mu = be + co, *var = mu + co;
    snprintf(key, sizeof key, "%s.weight", cname);
    LMR_TRY(read_f32(ld->f, key, 4, wshape, w, ld->err, ld->path));
    snprintf(key, sizeof key, "%s.bias", cname);
    int has_bias = st_find(ld->f, key) != NULL;
    if (has_bias)
        LMR_TRY(read_f32(ld->f, key, 1, vshape, cb, ld->err, ld->path));
    static const char *const bn_part[4] = {"weight", "bias", "running_mean", "running_var"};
    float *bn_dst[4] = {g, be, mu, var};
    for (int i = 0; i < 4; i++) {
        snprintf(key, sizeof key, "%s.%s", bname, bn_part[i]);
        LMR_TRY(read_f32(ld->f, key, 1, vshape, bn_dst[i], ld->err, ld->path));
    }
    if (resnet_fold_bn(c->w, c->b, w, has_bias ? cb : NULL, g, be, mu, var, c->c_out, c->c_in, c->k,
                       RESNET_BN_EPS) < 0)
        return lmr_fail(ld->err, LMR_ECORRUPT, "%s: tensor '%s.running_var' gives a non-finite BatchNorm scale",
                        ld->path, bname);
    return 0;
}

static void conv_point(ResnetConv *c, float **p)
{
    c->w = *p;
    *p += (size_t)c->c_out * c->k * c->k * c->c_in;
    c->b = *p;
    *p += c->c_out;
}

static int load_all(ResnetNet *net, Loader *ld)
{
    char cn[64], bn[64];
    LMR_TRY(load_conv(ld, &net->stem, "conv1", "bn1"));
    for (int i = 0; i < net->n_blocks; i++) {
        ResnetBlock *blk = &net->blocks[i];
        ResnetConv *cs[3] = {&blk->c1, &blk->c2, &blk->c3};
        for (int k = 0; k < (net->bottleneck ? 3 : 2); k++) {
            snprintf(cn, sizeof cn, "layer%d.%d.conv%d", blk->layer, blk->idx, k + 1);
            snprintf(bn, sizeof bn, "layer%d.%d.bn%d", blk->layer, blk->idx, k + 1);
            LMR_TRY(load_conv(ld, cs[k], cn, bn));
        }
        if (blk->has_ds) {
            snprintf(cn, sizeof cn, "layer%d.%d.downsample.0", blk->layer, blk->idx);
            snprintf(bn, sizeof bn, "layer%d.%d.downsample.1", blk->layer, blk->idx);
            LMR_TRY(load_conv(ld, &blk->ds, cn, bn));
        }
    }
    return 0;
}

int resnet_net_load(ResnetNet *net, const char *name, const char *path, char *checksum, char *err)
{
    memset(net, 0, sizeof *net);
    const ResnetArch *a = NULL;
    for (size_t i = 0; i < sizeof archs / sizeof archs[0]; i++)
        if (name && strcmp(name, archs[i].name) == 0)
            a = &archs[i];
    if (!a)
        return lmr_fail(err, LMR_EINVAL, "unknown resnet '%s' (resnet18, resnet34, resnet50, resnet101, resnet152)",
                        name ? name : "(null)");
    if (!path || !*path)
        return lmr_fail(err, LMR_EINVAL, "%s needs --weights FILE.safetensors", a->name);
    LMR_TRY(arch_build(net, a));
    net->params = malloc(net->n_params * sizeof(float));
    /* largest unfolded conv: 512*512*3*3 (basic) or 2048->512 / 1024->2048 1x1, plus 5 vectors */
    size_t tmp_n = 0;
    for (int i = 0; i < net->n_blocks; i++) {
        const ResnetConv *cs[4] = {&net->blocks[i].c1, &net->blocks[i].c2, &net->blocks[i].c3, &net->blocks[i].ds};
        for (int j = 0; j < 4; j++) {
            size_t e = (size_t)cs[j]->c_out * cs[j]->c_in * cs[j]->k * cs[j]->k + 5 * (size_t)cs[j]->c_out;
            tmp_n = e > tmp_n ? e : tmp_n;
        }
    }
    float *tmp = malloc(tmp_n * sizeof(float));
    if (!net->params || !tmp) {
        free(tmp);
        return lmr_fail(err, LMR_ENOMEM, "%s: out of memory for %zu parameters", path, net->n_params);
    }
    float *p = net->params;
    conv_point(&net->stem, &p);
    for (int i = 0; i < net->n_blocks; i++) {
        ResnetBlock *b = &net->blocks[i];
        conv_point(&b->c1, &p);
        conv_point(&b->c2, &p);
        if (net->bottleneck)
            conv_point(&b->c3, &p);
        if (b->has_ds)
            conv_point(&b->ds, &p);
    }
    StFile f;
    int rc = st_open(&f, path);
    if (rc < 0) {
        free(tmp);
        return lmr_fail(err, rc, "%s", f.last_error);
    }
    snprintf(checksum, 17, "%016llx", (unsigned long long)XXH3_64bits(f.map, f.map_size));
    Loader ld = {&f, path, tmp, err};
    rc = load_all(net, &ld);
    st_close(&f);
    free(tmp);
    return rc;
}

void resnet_net_free(ResnetNet *net)
{
    if (!net)
        return;
    free(net->blocks);
    free(net->params);
    memset(net, 0, sizeof *net);
}
