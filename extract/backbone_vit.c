/* torchvision's Vision Transformers (vit_b_16, vit_l_16) as per-frame backbones: frames ->
 * ImageNet normalisation -> 16x16 patches embedded by one GEMM -> class token + learned position
 * embedding -> encoder blocks (transformer.c) -> final LayerNorm of the class token, (n, dim).
 * Weights are torchvision's state dict in safetensors (scripts/export-torchvision-weights.py);
 * the image side comes from the position embedding's length (224 for the published models). */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>

#include "backbone_internal.h"
#include "transformer.h"

#define VIT_BATCH 8 /* frames per forward: GEMMs of ~1600 rows */
#define VIT_EPS 1e-6f /* torchvision's LayerNorm(eps=1e-6) */

typedef struct {
    const char *name;
    TfmShape s;
    int patch;
} VitArch;

static const VitArch archs[] = {
    {"vit_b_16", {768, 12, 3072, 12, VIT_EPS}, 16},
    {"vit_l_16", {1024, 16, 4096, 24, VIT_EPS}, 16},
};

typedef struct {
    TfmShape s;
    int patch, side, n_patch; /* patch side, image side, patches per frame */
    int batch;
    TfmBlock *blocks;
    float *params;
    float *patch_w, *patch_b, *cls, *pos, *ln_g, *ln_b; /* (D, p*p*3), (D), (D), (1 + P, D), (D), (D) */
    TfmCpu cpu;
    float *cols, *x; /* (batch * P, p*p*3), (batch * (1 + P), D) */
} VitImpl;

static void vit_close(Backbone *b)
{
    VitImpl *v = b->impl;
    if (!v)
        return;
    tfm_cpu_free(&v->cpu);
    free(v->blocks);
    free(v->params);
    free(v->cols);
    free(v->x);
    free(v);
    b->impl = NULL;
}

/* One batch of nb frames; out (nb, D). */
static int vit_forward(VitImpl *v, const uint8_t *frames, int nb, float *out)
{
    int D = v->s.dim, P = v->n_patch, N = P + 1, K = 3 * v->patch * v->patch;
    TfmCpu *c = &v->cpu;
    LMR_TRY(tfm_cpu_reserve(c, &v->s, (size_t)nb * N, N));
    tfm_patchify(v->cols, frames, nb, v->side, v->side, 1, v->patch, c->n_threads);
    tfm_linear(c, c->h, v->cols, v->patch_w, v->patch_b, (size_t)nb * P, D, K, TFM_BIAS);
    for (int f = 0; f < nb; f++) {
        float *x = v->x + (size_t)f * N * D;
        const float *e = c->h + (size_t)f * P * D;
        for (int j = 0; j < D; j++)
            x[j] = v->cls[j] + v->pos[j];
        for (size_t i = D; i < (size_t)N * D; i++)
            x[i] = e[i - D] + v->pos[i];
    }
    for (int l = 0; l < v->s.layers; l++)
        LMR_TRY(tfm_block_forward(c, &v->blocks[l], &v->s, v->x, nb, N));
    for (int f = 0; f < nb; f++) /* the class token is all the feature needs */
        tfm_layernorm(out + (size_t)f * D, v->x + (size_t)f * N * D, v->ln_g, v->ln_b, 1, D, v->s.eps, 1);
    return 0;
}

static int vit_run(Backbone *b, const uint8_t *frames, int n, int h, int w, float *out)
{
    VitImpl *v = b->impl;
    if (h != v->side || w != v->side)
        return LMR_FAIL(b, LMR_EINVAL, "%s: frames of %dx%d, the model takes %dx%d", b->name, w, h, v->side, v->side);
    for (int i = 0; i < n; i += v->batch) {
        int nb = n - i < v->batch ? n - i : v->batch;
        if (vit_forward(v, frames + (size_t)i * h * w * 3, nb, out + (size_t)i * v->s.dim) < 0)
            return LMR_FAIL(b, LMR_ENOMEM, "%s: out of memory for a batch of %d frames", b->name, nb);
    }
    b->gemm_s = v->cpu.gemm_s;
    b->gemm_flops = v->cpu.gemm_flops;
    return 0;
}

static const BackboneOps vit_ops = {vit_run, vit_close};

static int vit_load(VitImpl *v, StFile *f, const char *path, char *err)
{
    int D = v->s.dim, M = v->s.mlp, p = v->patch, K = 3 * p * p, N = v->n_patch + 1;
    float *tmp = malloc((size_t)D * K * sizeof(float));
    if (!tmp)
        return lmr_fail(err, LMR_ENOMEM, "out of memory");
    int rc = tfm_read(f, path, err, tmp, 4, (int64_t[]){D, 3, p, p}, "conv_proj.weight");
    if (rc == 0)
        tfm_patch_weight(v->patch_w, tmp, D, 1, p);
    free(tmp);
    LMR_TRY(rc);
    LMR_TRY(tfm_read(f, path, err, v->patch_b, 1, (int64_t[]){D}, "conv_proj.bias"));
    LMR_TRY(tfm_read(f, path, err, v->cls, 3, (int64_t[]){1, 1, D}, "class_token"));
    LMR_TRY(tfm_read(f, path, err, v->pos, 3, (int64_t[]){1, N, D}, "encoder.pos_embedding"));
    for (int l = 0; l < v->s.layers; l++) {
        TfmBlock *b = &v->blocks[l];
        const char *pre = "encoder.layers.encoder_layer_";
        LMR_TRY(tfm_read(f, path, err, b->ln1_g, 1, (int64_t[]){D}, "%s%d.ln_1.weight", pre, l));
        LMR_TRY(tfm_read(f, path, err, b->ln1_b, 1, (int64_t[]){D}, "%s%d.ln_1.bias", pre, l));
        LMR_TRY(tfm_read(f, path, err, b->qkv_w, 2, (int64_t[]){3 * D, D}, "%s%d.self_attention.in_proj_weight", pre, l));
        LMR_TRY(tfm_read(f, path, err, b->qkv_b, 1, (int64_t[]){3 * D}, "%s%d.self_attention.in_proj_bias", pre, l));
        LMR_TRY(tfm_read(f, path, err, b->proj_w, 2, (int64_t[]){D, D}, "%s%d.self_attention.out_proj.weight", pre, l));
        LMR_TRY(tfm_read(f, path, err, b->proj_b, 1, (int64_t[]){D}, "%s%d.self_attention.out_proj.bias", pre, l));
        LMR_TRY(tfm_read(f, path, err, b->ln2_g, 1, (int64_t[]){D}, "%s%d.ln_2.weight", pre, l));
        LMR_TRY(tfm_read(f, path, err, b->ln2_b, 1, (int64_t[]){D}, "%s%d.ln_2.bias", pre, l));
        LMR_TRY(tfm_read(f, path, err, b->fc1_w, 2, (int64_t[]){M, D}, "%s%d.mlp.0.weight", pre, l));
        LMR_TRY(tfm_read(f, path, err, b->fc1_b, 1, (int64_t[]){M}, "%s%d.mlp.0.bias", pre, l));
        LMR_TRY(tfm_read(f, path, err, b->fc2_w, 2, (int64_t[]){D, M}, "%s%d.mlp.3.weight", pre, l));
        LMR_TRY(tfm_read(f, path, err, b->fc2_b, 1, (int64_t[]){D}, "%s%d.mlp.3.bias", pre, l));
    }
    LMR_TRY(tfm_read(f, path, err, v->ln_g, 1, (int64_t[]){D}, "encoder.ln.weight"));
    LMR_TRY(tfm_read(f, path, err, v->ln_b, 1, (int64_t[]){D}, "encoder.ln.bias"));
    return 0;
}

/* Image side from the position embedding (1, 1 + (side / p)^2, D). */
static int vit_side(VitImpl *v, StFile *f, const char *path, char *err)
{
    const StTensor *t = st_find(f, "encoder.pos_embedding");
    if (!t)
        return lmr_fail(err, LMR_ENOTFOUND, "%s: no tensor 'encoder.pos_embedding' (not a torchvision ViT?)", path);
    int64_t n = t->ndim == 3 ? t->shape[1] - 1 : 0, g = (int64_t)llround(sqrt((double)(n > 0 ? n : 0)));
    if (t->ndim != 3 || n < 1 || g * g != n || g > 1024)
        return lmr_fail(err, LMR_EMISMATCH, "%s: tensor 'encoder.pos_embedding' has no square patch grid", path);
    v->n_patch = (int)n;
    v->side = (int)g * v->patch;
    return 0;
}

int backbone_vit_init(Backbone *b, const BackboneOpts *o)
{
    const VitArch *a = NULL;
    for (size_t i = 0; i < sizeof archs / sizeof archs[0]; i++)
        if (strcmp(b->name, archs[i].name) == 0)
            a = &archs[i];
    if (!a)
        return LMR_FAIL(b, LMR_EINVAL, "unknown ViT '%s' (vit_b_16, vit_l_16)", b->name);
    if (o->device && strcmp(o->device, "cpu") != 0)
        return LMR_FAIL(b, LMR_EUNSUPPORTED, "%s runs on the cpu only (--device %s)", b->name, o->device);
    if (!o->weights || !*o->weights)
        return LMR_FAIL(b, LMR_EINVAL, "%s needs --weights FILE.safetensors", b->name);
    VitImpl *v = calloc(1, sizeof *v);
    if (!v)
        return LMR_FAIL(b, LMR_ENOMEM, "out of memory");
    b->impl = v;
    b->ops = &vit_ops;
    v->s = a->s;
    v->patch = a->patch;
    StFile f;
    int rc = st_open(&f, o->weights);
    if (rc < 0) {
        lmr_fail(b->last_error, rc, "%s", f.last_error);
        goto fail;
    }
    snprintf(b->weights_checksum, 17, "%016llx", (unsigned long long)XXH3_64bits(f.map, f.map_size));
    if ((rc = vit_side(v, &f, o->weights, b->last_error)) == 0) {
        int D = v->s.dim, K = 3 * v->patch * v->patch, N = v->n_patch + 1;
        size_t head = (size_t)D * K + D + D + (size_t)N * D + 2 * (size_t)D;
        v->batch = o->batch > 0 ? o->batch : VIT_BATCH;
        v->params = malloc((head + tfm_block_params(&v->s) * v->s.layers) * sizeof(float));
        v->blocks = calloc((size_t)v->s.layers, sizeof *v->blocks);
        v->cols = malloc((size_t)v->batch * v->n_patch * K * sizeof(float));
        v->x = malloc((size_t)v->batch * N * D * sizeof(float));
        if (!v->params || !v->blocks || !v->cols || !v->x) {
            rc = lmr_fail(b->last_error, LMR_ENOMEM, "%s: out of memory for the %s weights", o->weights, b->name);
        } else {
            float *p = v->params;
            v->patch_w = p, p += (size_t)D * K;
            v->patch_b = p, p += D;
            v->cls = p, p += D;
            v->pos = p, p += (size_t)N * D;
            v->ln_g = p, p += D;
            v->ln_b = p, p += D;
            tfm_blocks_point(v->blocks, &v->s, p);
            rc = vit_load(v, &f, o->weights, b->last_error);
        }
    }
    st_close(&f);
    if (rc < 0)
        goto fail;
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    v->cpu.n_threads = o->threads > 0 ? o->threads : (cores > 0 ? (int)cores : 1);
    openblas_set_num_threads(1); /* our threads each run a single-threaded sgemm, as the ResNet's */
    b->dim = v->s.dim;
    b->size = v->side;
    return 0;
fail:
    vit_close(b);
    return rc;
}
