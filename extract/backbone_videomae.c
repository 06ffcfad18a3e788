/* VideoMAE's video encoder (videomae_b) as a clip backbone: 16 frames -> ImageNet normalisation
 * -> 2x16x16 tubelets embedded by one GEMM -> fixed sinusoidal position table -> encoder blocks
 * (transformer.c) -> mean of the tokens -> fc_norm: the vector VideoMAEForVideoClassification's
 * classifier reads, one per clip of num_frames frames. Weights: a `transformers` state dict with
 * its tensor names, and the model's config in the safetensors metadata
 * (scripts/export-videomae-weights.py); the shape is read from there, not assumed. */
#include <cblas.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>

#include "backbone_internal.h"
#include "transformer.h"

#define FC_NORM_EPS 1e-5f /* fc_norm is nn.LayerNorm(hidden_size): torch's default eps */
#define PRE "videomae."

typedef struct {
    TfmShape s;
    int side, patch, frames, tubelet, n_tok, qkv_bias;
    TfmBlock *blocks;
    float *params;
    float *patch_w, *patch_b, *fc_g, *fc_b; /* (D, kt*p*p*3), (D), (D), (D) */
    float *pos;                             /* (n_tok, D) */
    TfmCpu cpu;
    float *cols, *x; /* (n_tok, kt*p*p*3), (n_tok, D) */
} MaeImpl;

static void mae_close(Backbone *b)
{
    MaeImpl *m = b->impl;
    if (!m)
        return;
    tfm_cpu_free(&m->cpu);
    free(m->blocks);
    free(m->params);
    free(m->pos);
    free(m->cols);
    free(m->x);
    free(m);
    b->impl = NULL;
}

/* One clip of m->frames frames -> out (D). */
static int mae_forward(MaeImpl *m, const uint8_t *frames, float *out)
{
    int D = m->s.dim, N = m->n_tok, K = 3 * m->tubelet * m->patch * m->patch;
    TfmCpu *c = &m->cpu;
    LMR_TRY(tfm_cpu_reserve(c, &m->s, (size_t)N, N));
    tfm_patchify(m->cols, frames, m->frames, m->side, m->side, m->tubelet, m->patch, c->n_threads);
    tfm_linear(c, m->x, m->cols, m->patch_w, m->patch_b, (size_t)N, D, K, TFM_BIAS);
    for (size_t i = 0; i < (size_t)N * D; i++)
        m->x[i] += m->pos[i];
    for (int l = 0; l < m->s.layers; l++)
        LMR_TRY(tfm_block_forward(c, &m->blocks[l], &m->s, m->x, 1, N));
    double *acc = calloc((size_t)D, sizeof *acc);
    float *mean = malloc((size_t)D * sizeof *mean);
    if (!acc || !mean) {
        free(acc);
        free(mean);
        return LMR_ENOMEM;
    }
    for (int t = 0; t < N; t++)
        for (int j = 0; j < D; j++)
            acc[j] += m->x[(size_t)t * D + j];
    for (int j = 0; j < D; j++)
        mean[j] = (float)(acc[j] / N);
    tfm_layernorm(out, mean, m->fc_g, m->fc_b, 1, D, FC_NORM_EPS, 1);
    free(acc);
    free(mean);
    return 0;
}

static int mae_run(Backbone *b, const uint8_t *frames, int n, int h, int w, float *out)
{
    MaeImpl *m = b->impl;
    if (h != m->side || w != m->side || n % m->frames != 0)
        return LMR_FAIL(b, LMR_EINVAL, "%s: %d frames of %dx%d; the model takes clips of %d frames of %dx%d", b->name,
                        n, w, h, m->frames, m->side, m->side);
    size_t clip = (size_t)m->frames * h * w * 3;
    for (int i = 0; i < n / m->frames; i++)
        if (mae_forward(m, frames + i * clip, out + (size_t)i * m->s.dim) < 0)
            return LMR_FAIL(b, LMR_ENOMEM, "%s: out of memory for a clip of %d tokens", b->name, m->n_tok);
    b->gemm_s = m->cpu.gemm_s;
    b->gemm_flops = m->cpu.gemm_flops;
    return 0;
}

static const BackboneOps mae_ops = {mae_run, mae_close};

// --- config and weights ------------------------------------------------------------------------

static int meta_num(StFile *f, const char *path, const char *key, double lo, double hi, double *out, char *err)
{
    const char *s = st_meta(f, key);
    if (!s)
        return lmr_fail(err, LMR_ENOTFOUND,
                        "%s: no '%s' in the metadata (convert the weights with scripts/export-videomae-weights.py)",
                        path, key);
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !(v >= lo && v <= hi))
        return lmr_fail(err, LMR_EPARSE, "%s: metadata '%s' is '%s', want a number in [%g, %g]", path, key, s, lo, hi);
    *out = v;
    return 0;
}

static int meta_int(StFile *f, const char *path, const char *key, int hi, int *out, char *err)
{
    double v = 0;
    LMR_TRY(meta_num(f, path, key, 1, hi, &v, err));
    if (v != floor(v))
        return lmr_fail(err, LMR_EPARSE, "%s: metadata '%s' is %g, want an integer", path, key, v);
    *out = (int)v;
    return 0;
}

/* "true"/"false" (also Python's True/False and 1/0); absent: dflt. */
static int meta_bool(StFile *f, const char *path, const char *key, int dflt, int *out, char *err)
{
    const char *s = st_meta(f, key);
    if (!s)
        *out = dflt;
    else if (!strcmp(s, "true") || !strcmp(s, "True") || !strcmp(s, "1"))
        *out = 1;
    else if (!strcmp(s, "false") || !strcmp(s, "False") || !strcmp(s, "0"))
        *out = 0;
    else
        return lmr_fail(err, LMR_EPARSE, "%s: metadata '%s' is '%s', want true or false", path, key, s);
    return 0;
}

static int mae_config(MaeImpl *m, StFile *f, const char *path, char *err)
{
    TfmShape *s = &m->s;
    double eps = 0;
    LMR_TRY(meta_int(f, path, "hidden_size", 1 << 14, &s->dim, err));
    LMR_TRY(meta_int(f, path, "num_hidden_layers", 1024, &s->layers, err));
    LMR_TRY(meta_int(f, path, "num_attention_heads", 1024, &s->heads, err));
    LMR_TRY(meta_int(f, path, "intermediate_size", 1 << 16, &s->mlp, err));
    LMR_TRY(meta_num(f, path, "layer_norm_eps", 0, 1, &eps, err));
    LMR_TRY(meta_int(f, path, "image_size", 4096, &m->side, err));
    LMR_TRY(meta_int(f, path, "patch_size", 4096, &m->patch, err));
    LMR_TRY(meta_int(f, path, "num_frames", 4096, &m->frames, err));
    LMR_TRY(meta_int(f, path, "tubelet_size", 4096, &m->tubelet, err));
    LMR_TRY(meta_bool(f, path, "qkv_bias", 1, &m->qkv_bias, err));
    int mean_pool, channels = 3;
    LMR_TRY(meta_bool(f, path, "use_mean_pooling", 1, &mean_pool, err));
    if (st_meta(f, "num_channels"))
        LMR_TRY(meta_int(f, path, "num_channels", 4096, &channels, err));
    const char *act = st_meta(f, "hidden_act");
    s->eps = (float)eps;
    if (act && strcmp(act, "gelu") != 0)
        return lmr_fail(err, LMR_EUNSUPPORTED, "%s: hidden_act '%s': only gelu (the erf form) is supported", path, act);
    if (!mean_pool)
        return lmr_fail(err, LMR_EUNSUPPORTED,
                        "%s: use_mean_pooling is false: the feature is read as the mean of the tokens through fc_norm",
                        path);
    if (channels != 3)
        return lmr_fail(err, LMR_EUNSUPPORTED, "%s: num_channels %d: frames are RGB", path, channels);
    if (s->dim % s->heads || m->side % m->patch || m->frames % m->tubelet)
        return lmr_fail(err, LMR_EMISMATCH,
                        "%s: config does not divide: hidden_size %d / heads %d, image_size %d / patch_size %d, "
                        "num_frames %d / tubelet_size %d",
                        path, s->dim, s->heads, m->side, m->patch, m->frames, m->tubelet);
    m->n_tok = (m->frames / m->tubelet) * (m->side / m->patch) * (m->side / m->patch);
    return 0;
}

static int mae_load(MaeImpl *m, StFile *f, const char *path, char *err)
{
    int D = m->s.dim, M = m->s.mlp, p = m->patch, kt = m->tubelet, K = 3 * kt * p * p;
    float *tmp = malloc((size_t)D * K * sizeof(float));
    if (!tmp)
        return lmr_fail(err, LMR_ENOMEM, "out of memory");
    int rc = tfm_read(f, path, err, tmp, 5, (int64_t[]){D, 3, kt, p, p}, PRE "embeddings.patch_embeddings.projection.weight");
    if (rc == 0)
        tfm_patch_weight(m->patch_w, tmp, D, kt, p);
    free(tmp);
    LMR_TRY(rc);
    LMR_TRY(tfm_read(f, path, err, m->patch_b, 1, (int64_t[]){D}, PRE "embeddings.patch_embeddings.projection.bias"));
    for (int l = 0; l < m->s.layers; l++) {
        TfmBlock *b = &m->blocks[l];
        const char *pre = PRE "encoder.layer.";
        LMR_TRY(tfm_read(f, path, err, b->ln1_g, 1, (int64_t[]){D}, "%s%d.layernorm_before.weight", pre, l));
        LMR_TRY(tfm_read(f, path, err, b->ln1_b, 1, (int64_t[]){D}, "%s%d.layernorm_before.bias", pre, l));
        static const char *const qkv[3] = {"query", "key", "value"};
        for (int k = 0; k < 3; k++)
            LMR_TRY(tfm_read(f, path, err, b->qkv_w + (size_t)k * D * D, 2, (int64_t[]){D, D},
                             "%s%d.attention.attention.%s.weight", pre, l, qkv[k]));
        /* the key has no bias; query and value have q_bias, v_bias when qkv_bias */
        memset(b->qkv_b, 0, 3 * (size_t)D * sizeof(float));
        if (m->qkv_bias) {
            LMR_TRY(tfm_read(f, path, err, b->qkv_b, 1, (int64_t[]){D}, "%s%d.attention.attention.q_bias", pre, l));
            LMR_TRY(tfm_read(f, path, err, b->qkv_b + 2 * D, 1, (int64_t[]){D}, "%s%d.attention.attention.v_bias", pre,
                             l));
        }
        LMR_TRY(tfm_read(f, path, err, b->proj_w, 2, (int64_t[]){D, D}, "%s%d.attention.output.dense.weight", pre, l));
        LMR_TRY(tfm_read(f, path, err, b->proj_b, 1, (int64_t[]){D}, "%s%d.attention.output.dense.bias", pre, l));
        LMR_TRY(tfm_read(f, path, err, b->ln2_g, 1, (int64_t[]){D}, "%s%d.layernorm_after.weight", pre, l));
        LMR_TRY(tfm_read(f, path, err, b->ln2_b, 1, (int64_t[]){D}, "%s%d.layernorm_after.bias", pre, l));
        LMR_TRY(tfm_read(f, path, err, b->fc1_w, 2, (int64_t[]){M, D}, "%s%d.intermediate.dense.weight", pre, l));
        LMR_TRY(tfm_read(f, path, err, b->fc1_b, 1, (int64_t[]){M}, "%s%d.intermediate.dense.bias", pre, l));
        LMR_TRY(tfm_read(f, path, err, b->fc2_w, 2, (int64_t[]){D, M}, "%s%d.output.dense.weight", pre, l));
        LMR_TRY(tfm_read(f, path, err, b->fc2_b, 1, (int64_t[]){D}, "%s%d.output.dense.bias", pre, l));
    }
    LMR_TRY(tfm_read(f, path, err, m->fc_g, 1, (int64_t[]){D}, "fc_norm.weight"));
    LMR_TRY(tfm_read(f, path, err, m->fc_b, 1, (int64_t[]){D}, "fc_norm.bias"));
    return 0;
}

/* VideoMAE's fixed table: angle pos / 10000^(2 floor(j / 2) / D), sin on even j, cos on odd,
 * in double as its numpy original, then f32. */
static void sinusoid_table(float *pos, int n, int d)
{
    for (int t = 0; t < n; t++)
        for (int j = 0; j < d; j++) {
            double a = t / pow(10000.0, 2.0 * (j / 2) / d);
            pos[(size_t)t * d + j] = (float)(j % 2 ? cos(a) : sin(a));
        }
}

int backbone_videomae_init(Backbone *b, const BackboneOpts *o)
{
    if (o->device && strcmp(o->device, "cpu") != 0)
        return LMR_FAIL(b, LMR_EUNSUPPORTED, "%s runs on the cpu only (--device %s)", b->name, o->device);
    if (!o->weights || !*o->weights)
        return LMR_FAIL(b, LMR_EINVAL, "%s needs --weights FILE.safetensors", b->name);
    MaeImpl *m = calloc(1, sizeof *m);
    if (!m)
        return LMR_FAIL(b, LMR_ENOMEM, "out of memory");
    b->impl = m;
    b->ops = &mae_ops;
    StFile f;
    int rc = st_open(&f, o->weights);
    if (rc < 0) {
        lmr_fail(b->last_error, rc, "%s", f.last_error);
        goto fail;
    }
    snprintf(b->weights_checksum, 17, "%016llx", (unsigned long long)XXH3_64bits(f.map, f.map_size));
    if ((rc = mae_config(m, &f, o->weights, b->last_error)) == 0) {
        int D = m->s.dim, K = 3 * m->tubelet * m->patch * m->patch;
        size_t head = (size_t)D * K + 3 * (size_t)D;
        m->params = malloc((head + tfm_block_params(&m->s) * m->s.layers) * sizeof(float));
        m->blocks = calloc((size_t)m->s.layers, sizeof *m->blocks);
        m->pos = malloc((size_t)m->n_tok * D * sizeof(float));
        m->cols = malloc((size_t)m->n_tok * K * sizeof(float));
        m->x = malloc((size_t)m->n_tok * D * sizeof(float));
        if (!m->params || !m->blocks || !m->pos || !m->cols || !m->x) {
            rc = lmr_fail(b->last_error, LMR_ENOMEM, "%s: out of memory for the %s weights", o->weights, b->name);
        } else {
            float *p = m->params;
            m->patch_w = p, p += (size_t)D * K;
            m->patch_b = p, p += D;
            m->fc_g = p, p += D;
            m->fc_b = p, p += D;
            tfm_blocks_point(m->blocks, &m->s, p);
            sinusoid_table(m->pos, m->n_tok, D);
            rc = mae_load(m, &f, o->weights, b->last_error);
        }
    }
    st_close(&f);
    if (rc < 0)
        goto fail;
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    m->cpu.n_threads = o->threads > 0 ? o->threads : (cores > 0 ? (int)cores : 1);
    openblas_set_num_threads(1); /* our threads each run a single-threaded sgemm, as the ResNet's */
    b->dim = m->s.dim;
    b->size = m->side;
    b->frames_per_feature = m->frames;
    return 0;
fail:
    mae_close(b);
    return rc;
}
