/* Post-hoc corrections: parsing, writing them into the model, the grid search for t, and the
 * class means of ncm. The tuning shard is read once (features averaged over T, every view); the
 * grid then only rescales or shifts the stored logits. */
#include "posthoc.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "batch.h"
#include "method.h"
#include "metrics.h"
#include "shard.h"

#define READ_BATCH 256

const char *posthoc_name(PosthocKind k)
{
    return k == POSTHOC_TAU_NORM ? "tau-norm" : k == POSTHOC_LA ? "la" : k == POSTHOC_NCM ? "ncm" : "";
}

int posthoc_parse(const char *arg, Posthoc *p, char *err)
{
    memset(p, 0, sizeof *p);
    p->tau = 1.0;
    const char *colon = strchr(arg, ':');
    size_t n = colon ? (size_t)(colon - arg) : strlen(arg);
    if (n == 8 && strncmp(arg, "tau-norm", 8) == 0)
        p->kind = POSTHOC_TAU_NORM;
    else if (n == 2 && strncmp(arg, "la", 2) == 0)
        p->kind = POSTHOC_LA;
    else if (n == 3 && strncmp(arg, "ncm", 3) == 0)
        p->kind = POSTHOC_NCM;
    else
        return lmr_fail(err, LMR_EUSAGE, "--posthoc: '%s' is not tau-norm[:t], la[:t] or ncm", arg);
    if (colon) {
        char *end;
        p->tau = strtod(colon + 1, &end);
        if (p->kind == POSTHOC_NCM || !colon[1] || *end || !(p->tau >= 0 && p->tau <= 100))
            return lmr_fail(err, LMR_EUSAGE, "--posthoc: '%s': %s", arg,
                            p->kind == POSTHOC_NCM ? "ncm takes no strength" : "t must be a number >= 0");
        p->tau_given = 1;
    }
    return 0;
}

/* |w_c| of the classifier's columns (weights are stored input-major, (F, C)). */
static void column_norms(const Model *m, float *norm)
{
    int F = m->F, C = m->cfg.C;
    memset(norm, 0, (size_t)C * sizeof *norm);
    for (int k = 0; k < F; k++)
        for (int c = 0; c < C; c++)
            norm[c] += m->p.w2[(size_t)k * C + c] * m->p.w2[(size_t)k * C + c];
    for (int c = 0; c < C; c++)
        norm[c] = sqrtf(norm[c]);
}

int posthoc_apply(Model *m, PosthocKind k, double tau, char *err)
{
    int F = m->F, C = m->cfg.C;
    if (m->head_scale > 0)
        return lmr_fail(err, LMR_EINVAL, "--posthoc %s: the checkpoint has a cosine classifier (ldam-drw); post-hoc "
                        "corrections are for linear ones", posthoc_name(k));
    if (k == POSTHOC_TAU_NORM) {
        float *norm = malloc((size_t)C * sizeof *norm);
        if (!norm)
            return lmr_fail(err, LMR_ENOMEM, "out of memory");
        column_norms(m, norm);
        for (int c = 0; c < C; c++) // a zero row stays zero
            norm[c] = norm[c] > 0 ? powf(norm[c], (float)-tau) : 0.0f;
        for (int f = 0; f < F; f++)
            for (int c = 0; c < C; c++)
                m->p.w2[(size_t)f * C + c] *= norm[c];
        memset(m->p.b2, 0, (size_t)C * sizeof *m->p.b2);
        free(norm);
    } else if (k == POSTHOC_LA) {
        if (!m->class_counts)
            return lmr_fail(err, LMR_EINVAL, "--posthoc la: the checkpoint has no training counts");
        float *lp = malloc((size_t)C * sizeof *lp);
        if (!lp)
            return lmr_fail(err, LMR_ENOMEM, "out of memory");
        method_log_prior(m->class_counts, C, lp);
        for (int c = 0; c < C; c++) // z - t log pi is the same linear head with bias b - t log pi
            m->p.b2[c] -= (float)tau * lp[c];
        free(lp);
    }
    return 0;
}

int posthoc_grid(PosthocKind k, const float *base, int64_t n, int views, int C, const int32_t *lab,
                 const int64_t *off, const float *wnorm, const float *log_prior, double *acc)
{
    float *z = malloc((size_t)views * C * sizeof *z), *scores = malloc((size_t)C * sizeof *scores),
          *a = malloc((size_t)C * sizeof *a);
    int best = -1;
    if (!z || !scores || !a)
        goto done;
    for (int g = 0; g < POSTHOC_GRID; g++) {
        double tau = 0.1 * g;
        for (int c = 0; c < C; c++) // tau-norm: a scale per class; la: a shift per class
            a[c] = k == POSTHOC_TAU_NORM ? (wnorm[c] > 0 ? powf(wnorm[c], (float)-tau) : 0.0f)
                                         : -(float)tau * log_prior[c];
        EvalAcc ea;
        EvalResult res;
        if (eval_acc_init(&ea, C, 0, 0) < 0)
            goto done;
        for (int64_t i = 0; i < n; i++) {
            const float *b = base + (size_t)i * views * C;
            for (int v = 0; v < views; v++)
                for (int c = 0; c < C; c++) {
                    size_t q = (size_t)v * C + c;
                    z[q] = k == POSTHOC_TAU_NORM ? b[q] * a[c] : b[q] + a[c];
                }
            eval_sum_softmax(z, views, C, scores);
            eval_acc_add(&ea, scores, lab + off[i], (int)(off[i + 1] - off[i]));
        }
        int rc = eval_finish(&ea, NULL, &res);
        eval_acc_free(&ea);
        if (rc < 0)
            goto done;
        acc[g] = res.avg_class_acc;
        eval_result_free(&res);
        if (best < 0 || acc[g] > acc[best]) // strictly better: ties stay with the smaller t
            best = g;
    }
done:
    free(z);
    free(scores);
    free(a);
    return best;
}

/* Every clip of the shards: features (n x views, D) averaged over T, and the labels. */
typedef struct {
    int64_t n;
    int views, D;
    float *x;
    int32_t *lab;
    int64_t *off;
} Clips;

static void clips_free(Clips *c)
{
    free(c->x);
    free(c->lab);
    free(c->off);
    memset(c, 0, sizeof *c);
}

static int read_clips(const char *const *shards, int n_shards, int D, int threads, Clips *out, char *err)
{
    memset(out, 0, sizeof *out);
    ShardSet *set = NULL;
    ClipBatch cb;
    memset(&cb, 0, sizeof cb);
    int rc = shardset_open(&set, shards, n_shards, err);
    if (rc < 0)
        return rc;
    const ShardMeta *meta = shardset_meta(set);
    uint64_t n = shardset_count(set);
    int V = (int)meta->dims[0];
    if (meta->kind != LMR_KIND_FEATURES || (int)meta->dims[2] != D) {
        rc = lmr_fail(err, LMR_EMISMATCH, "%s: the tuning shard must hold %d-dim features", shards[0], D);
        goto done;
    }
    out->n = (int64_t)n;
    out->views = V;
    out->D = D;
    out->x = malloc((size_t)n * V * D * sizeof *out->x);
    out->lab = malloc((size_t)n * LMR_MAX_LABELS * sizeof *out->lab);
    out->off = calloc((size_t)n + 1, sizeof *out->off);
    if (!out->x || !out->lab || !out->off) {
        rc = lmr_fail(err, LMR_ENOMEM, "out of memory for the tuning shard (%llu clips)", (unsigned long long)n);
        goto done;
    }
    if ((rc = clipbatch_init(&cb, set, V, D, READ_BATCH, threads, 0, err)) < 0)
        goto done;
    for (uint64_t s = 0; s < n; s += READ_BATCH) {
        int nb = n - s < READ_BATCH ? (int)(n - s) : READ_BATCH;
        if ((rc = clipbatch_read(&cb, s, nb, err)) < 0)
            goto done;
        memcpy(out->x + (size_t)s * V * D, cb.x, (size_t)nb * V * D * sizeof *out->x);
        for (int k = 0; k < nb; k++) {
            int64_t i = (int64_t)s + k, o = out->off[i];
            for (int l = 0; l < cb.rows[k].n_labels; l++)
                out->lab[o++] = cb.rows[k].labels[l];
            out->off[i + 1] = o;
        }
    }
done:
    clipbatch_free(&cb);
    shardset_close(&set);
    if (rc < 0)
        clips_free(out);
    return rc;
}

int posthoc_tune(Model *m, PosthocKind k, const char *const *shards, int n_shards, int threads, double *tau,
                 double *acc_best, char *err)
{
    int C = m->cfg.C;
    Clips cl;
    int rc = read_clips(shards, n_shards, m->cfg.D, threads, &cl, err);
    if (rc < 0)
        return rc;
    size_t rows = (size_t)cl.n * cl.views;
    float *base = malloc(rows * C * sizeof *base), *wnorm = malloc((size_t)C * sizeof *wnorm),
          *lp = malloc((size_t)C * sizeof *lp), *b2 = malloc((size_t)C * sizeof *b2);
    double acc[POSTHOC_GRID];
    if (!base || !wnorm || !lp || !b2) {
        rc = lmr_fail(err, LMR_ENOMEM, "out of memory for the tuning logits");
        goto done;
    }
    if (k == POSTHOC_LA && !m->class_counts) {
        rc = lmr_fail(err, LMR_EINVAL, "--posthoc la: the checkpoint has no training counts");
        goto done;
    }
    column_norms(m, wnorm);
    if (m->class_counts)
        method_log_prior(m->class_counts, C, lp);
    memcpy(b2, m->p.b2, (size_t)C * sizeof *b2);
    if (k == POSTHOC_TAU_NORM) // the bias is dropped at every t
        memset(m->p.b2, 0, (size_t)C * sizeof *b2);
    for (size_t r0 = 0; r0 < rows && rc == 0; r0 += READ_BATCH) {
        int nr = rows - r0 < READ_BATCH ? (int)(rows - r0) : READ_BATCH;
        if ((rc = model_logits(m, cl.x + r0 * cl.D, nr, base + r0 * C)) < 0)
            lmr_fail(err, rc, "%s", m->last_error);
    }
    memcpy(m->p.b2, b2, (size_t)C * sizeof *b2);
    if (rc < 0)
        goto done;
    int g = posthoc_grid(k, base, cl.n, cl.views, C, cl.lab, cl.off, wnorm, lp, acc);
    if (g < 0) {
        rc = lmr_fail(err, LMR_ENOMEM, "out of memory in the grid search");
        goto done;
    }
    *tau = 0.1 * g;
    *acc_best = acc[g];
done:
    clips_free(&cl);
    free(base);
    free(wnorm);
    free(lp);
    free(b2);
    return rc;
}

/* Pre-logit features f (rows, F) of x (rows, D): LayerNorm, then Linear + tanh when there is one. */
static int prelogits(const Model *m, const float *x, int rows, float *f, float *scratch)
{
    const ModelConfig *c = &m->cfg;
    float *u = c->H > 0 ? scratch : f, *mean = scratch + (size_t)rows * c->D, *rstd = mean + rows;
    layernorm_forward(NULL, u, mean, rstd, x, m->p.ln_w, m->p.ln_b, rows, c->D, MODEL_LN_EPS);
    if (c->H > 0)
        linear_forward(NULL, f, u, m->p.w1, m->p.b1, rows, c->D, c->H, ACT_TANH);
    return 0;
}

int posthoc_ncm(Model *m, const char *const *shards, int n_shards, int threads, int *missing, char *err)
{
    int C = m->cfg.C, F = m->F, D = m->cfg.D;
    Clips cl;
    int rc = read_clips(shards, n_shards, D, threads, &cl, err);
    if (rc < 0)
        return rc;
    size_t rows = (size_t)cl.n * cl.views;
    float *f = malloc(rows * F * sizeof *f), *scratch = malloc(((size_t)READ_BATCH * (D + 2)) * sizeof *scratch);
    double *mu = calloc((size_t)F, sizeof *mu), *mean = calloc((size_t)C * F, sizeof *mean);
    int64_t *cnt = calloc((size_t)C, sizeof *cnt);
    float *center = malloc((size_t)F * sizeof *center);
    if (!f || !scratch || !mu || !mean || !cnt || !center) {
        rc = lmr_fail(err, LMR_ENOMEM, "out of memory for the class means");
        goto done;
    }
    for (size_t r0 = 0; r0 < rows; r0 += READ_BATCH) {
        int nr = rows - r0 < READ_BATCH ? (int)(rows - r0) : READ_BATCH;
        prelogits(m, cl.x + r0 * D, nr, f + r0 * F, scratch);
    }
    for (size_t r = 0; r < rows; r++) // the centre: the mean feature over every clip and view
        for (int k = 0; k < F; k++)
            mu[k] += f[r * F + k];
    for (int k = 0; k < F; k++)
        center[k] = (float)(mu[k] / (double)(rows ? rows : 1));
    for (int64_t i = 0; i < cl.n; i++)
        for (int v = 0; v < cl.views; v++) {
            float *g = f + ((size_t)i * cl.views + v) * F;
            double ss = 0;
            for (int k = 0; k < F; k++) {
                g[k] -= center[k];
                ss += (double)g[k] * g[k];
            }
            double r = 1.0 / fmax(sqrt(ss), 1e-12);
            for (int64_t q = cl.off[i]; q < cl.off[i + 1]; q++) {
                int c = cl.lab[q];
                if (c < 0 || c >= C) {
                    rc = lmr_fail(err, LMR_ERANGE, "%s: label %d outside the checkpoint's %d classes", shards[0], c, C);
                    goto done;
                }
                for (int k = 0; k < F; k++)
                    mean[(size_t)c * F + k] += g[k] * r;
                cnt[c] += v == 0;
            }
        }
    // the head: column c = the class mean (the cosine head normalises it), no bias
    *missing = 0;
    for (int c = 0; c < C; c++) {
        *missing += cnt[c] == 0;
        for (int k = 0; k < F; k++)
            m->p.w2[(size_t)k * C + c] = (float)mean[(size_t)c * F + k];
        m->p.b2[c] = 0.0f;
    }
    free(m->head_center);
    m->head_center = center;
    center = NULL;
    m->head_scale = POSTHOC_NCM_SCALE;
done:
    clips_free(&cl);
    free(f);
    free(scratch);
    free(mu);
    free(mean);
    free(cnt);
    free(center);
    return rc;
}
