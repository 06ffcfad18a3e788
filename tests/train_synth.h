/* Synthetic long-tailed feature sets for the lmr-train tests: Gaussian class clusters, class c has
 * round(n_max * imb^(-c/(C-1))) clips (at least 1), T noisy frames per view around the clip's
 * point. Written into memory or into a shard through formats/shard.h. */
#ifndef LMR_TEST_TRAIN_SYNTH_H
#define LMR_TEST_TRAIN_SYNTH_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "record.h"
#include "rng.h"
#include "shard.h"

typedef struct {
    int C, D, views, T;
    int n_max;       /* clips of class 0 */
    double imb;      /* n_max / n_min */
    double sep;      /* distance scale of the class means */
    double noise;    /* clip spread around its class mean */
    double frame_noise;
    uint64_t seed;   /* seed of the class means: share it between train and test sets */
    uint64_t sample_seed;
    int fixed_per_class; /* > 0: this many clips per class (balanced test sets) */
    int vary_T;          /* clip i has 1 + i % T frames (the rest of its T rows are unused) */
} SynthSpec;

typedef struct {
    uint64_t n;
    float *x;        /* (n, views, T, D) */
    int32_t *labels; /* (n) */
    int64_t *counts; /* (C) */
} Synth;

static inline int synth_count(const SynthSpec *s, int c)
{
    if (s->fixed_per_class > 0)
        return s->fixed_per_class;
    double n = s->n_max * pow(s->imb, -(double)c / (s->C - 1));
    int k = (int)lround(n);
    return k < 1 ? 1 : k;
}

static inline void synth_make(const SynthSpec *s, Synth *out)
{
    Rng rm, rs;
    rng_seed(&rm, s->seed, 77, 0, 0);
    rng_seed(&rs, s->sample_seed, 78, 0, 0);
    float *mu = malloc((size_t)s->C * s->D * sizeof *mu);
    for (size_t k = 0; k < (size_t)s->C * s->D; k++)
        mu[k] = (float)(rng_normal(&rm) * s->sep / sqrt((double)s->D));
    out->n = 0;
    out->counts = calloc((size_t)s->C, sizeof *out->counts);
    for (int c = 0; c < s->C; c++)
        out->n += (uint64_t)synth_count(s, c);
    size_t per = (size_t)s->views * s->T * s->D;
    out->x = malloc(out->n * per * sizeof *out->x);
    out->labels = malloc(out->n * sizeof *out->labels);
    float *pt = malloc((size_t)s->D * sizeof *pt);
    uint64_t i = 0;
    for (int c = 0; c < s->C; c++)
        for (int k = 0; k < synth_count(s, c); k++, i++) {
            out->labels[i] = c;
            out->counts[c]++;
            for (int d = 0; d < s->D; d++)
                pt[d] = mu[(size_t)c * s->D + d] + (float)(rng_normal(&rs) * s->noise / sqrt((double)s->D));
            for (size_t e = 0; e < (size_t)s->views * s->T; e++)
                for (int d = 0; d < s->D; d++)
                    out->x[i * per + e * s->D + d] = pt[d] + (float)(rng_normal(&rs) * s->frame_noise);
        }
    free(pt);
    free(mu);
}

static inline int synth_T(const SynthSpec *s, uint64_t i)
{
    return s->vary_T ? 1 + (int)(i % (uint64_t)s->T) : s->T;
}

/* Mean over T per view: (n, views, D), as dataset_from_memory wants. */
static inline float *synth_means(const SynthSpec *s, const Synth *y)
{
    float *m = calloc(y->n * (size_t)s->views * s->D, sizeof *m);
    for (uint64_t i = 0; i < y->n; i++)
        for (int v = 0; v < s->views; v++)
            for (int t = 0; t < synth_T(s, i); t++)
                for (int d = 0; d < s->D; d++)
                    m[(i * s->views + v) * s->D + d] +=
                        y->x[((i * s->views + v) * s->T + t) * s->D + d] / (float)synth_T(s, i);
    return m;
}

static inline void synth_free(Synth *y)
{
    free(y->x);
    free(y->labels);
    free(y->counts);
    memset(y, 0, sizeof *y);
}

/* Write y as a shard (LMDB, or HDF5 with hdf5 set) of f16 (or f32) feature records.
 * @return 0 or an lmr error. */
static inline int synth_write_shard_as(const SynthSpec *s, const Synth *y, const char *path, int f16, int hdf5)
{
    ShardWriter *w = NULL;
    ShardWriterOpts wo = {.format = hdf5 ? SHARD_HDF5 : SHARD_LMDB, .deflate_level = 4, .txn_bytes = 64u << 20};
    char err[LMR_ERRLEN];
    int rc = shardwriter_open(&w, path, &wo, err);
    if (rc < 0) {
        fprintf(stderr, "shardwriter_open: %s\n", err);
        return rc;
    }
    RecordCtx ctx;
    record_ctx_init(&ctx, 1);
    LmrBuf buf;
    buf_init(&buf);
    size_t per = (size_t)s->views * s->T * s->D;
    uint16_t *h = malloc(per * sizeof *h);
    float *xt = malloc(per * sizeof *xt);
    for (uint64_t i = 0; i < y->n && rc >= 0; i++) {
        char id[32];
        int idl = snprintf(id, sizeof id, "clip%06llu", (unsigned long long)i);
        RecordInfo info;
        memset(&info, 0, sizeof info);
        info.kind = LMR_KIND_FEATURES;
        info.dtype = f16 ? LMR_DT_F16 : LMR_DT_F32;
        info.ndim = 4;
        info.dims[0] = (uint32_t)s->views;
        int T = synth_T(s, i);
        info.dims[1] = (uint32_t)T;
        info.dims[2] = (uint32_t)s->D;
        info.dims[3] = 1;
        info.n_labels = 1;
        info.labels[0] = y->labels[i];
        info.id = id;
        info.id_len = (uint16_t)idl;
        // the first T frames of each view, packed [views, T, D]
        for (int v = 0; v < s->views; v++)
            memcpy(xt + (size_t)v * T * s->D, y->x + i * per + (size_t)v * s->T * s->D,
                   (size_t)T * s->D * sizeof *xt);
        const float *x = xt;
        size_t cnt = (size_t)s->views * T * s->D;
        if (f16)
            lmr_f32_to_f16(x, h, cnt);
        rc = record_encode(&ctx, &info, f16 ? (const void *)h : (const void *)x, &buf);
        if (rc >= 0)
            rc = shardwriter_put(w, buf.data, buf.len);
    }
    if (rc < 0)
        fprintf(stderr, "shard write: %s (%s)\n", lmr_strerror(rc), shardwriter_error(w));
    ShardMeta hint;
    shardmeta_init(&hint);
    hint.n_classes = s->C;
    snprintf(hint.dataset, sizeof hint.dataset, "synthetic");
    shardwriter_set_meta(w, &hint);
    shardmeta_free(&hint);
    int rc2 = shardwriter_close(&w);
    free(h);
    free(xt);
    buf_free(&buf);
    record_ctx_free(&ctx);
    return rc < 0 ? rc : rc2;
}

static inline int synth_write_shard(const SynthSpec *s, const Synth *y, const char *path, int f16)
{
    return synth_write_shard_as(s, y, path, f16, 0);
}

#endif
