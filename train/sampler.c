/* Instance- and class-balanced batch samplers; every draw comes from a generator derived from
 * (seed, stream, epoch, step). */
#include "sampler.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "rng.h"

int sampler_init(Sampler *s, SamplerKind kind, const Dataset *d, int B, uint64_t seed)
{
    memset(s, 0, sizeof *s);
    s->kind = kind;
    s->seed = seed;
    s->n = d->n;
    s->B = B;
    s->rows = B;
    s->views = d->views;
    s->perm_epoch = -1;
    if (B <= 0 || d->n < (uint64_t)B)
        return LMR_FAIL(s, LMR_EINVAL, "%llu clips: fewer than one batch of %d; use --batch N with N <= %llu",
                        (unsigned long long)d->n, B, (unsigned long long)d->n);
    if (kind == SAMPLER_INSTANCE) {
        s->perm = malloc(d->n * sizeof *s->perm);
        return s->perm ? 0 : LMR_FAIL(s, LMR_ENOMEM, "out of memory for the permutation");
    }
    s->active = malloc((size_t)d->C * sizeof *s->active);
    s->cls_off = calloc((size_t)d->C + 1, sizeof *s->cls_off);
    uint64_t total = d->label_off[d->n];
    s->cls_clip = malloc((total ? total : 1) * sizeof *s->cls_clip);
    int *slot = malloc((size_t)d->C * sizeof *slot);
    if (!s->active || !s->cls_off || !s->cls_clip || !slot) {
        free(slot);
        sampler_free(s);
        return LMR_FAIL(s, LMR_ENOMEM, "out of memory for the class index");
    }
    for (int c = 0; c < d->C; c++) {
        slot[c] = -1;
        if (d->counts[c] > 0) {
            slot[c] = s->n_active;
            s->active[s->n_active++] = c;
        }
    }
    // CSR by active class: count, prefix sum, fill (clip order kept within a class)
    for (uint64_t i = 0; i < d->n; i++) {
        const int32_t *l;
        int k = dataset_n_labels(d, i, &l);
        for (int j = 0; j < k; j++)
            s->cls_off[slot[l[j]] + 1]++;
    }
    for (int a = 0; a < s->n_active; a++)
        s->cls_off[a + 1] += s->cls_off[a];
    uint64_t *fill = calloc((size_t)s->n_active + 1, sizeof *fill);
    if (!fill) {
        free(slot);
        sampler_free(s);
        return LMR_FAIL(s, LMR_ENOMEM, "out of memory for the class index");
    }
    for (uint64_t i = 0; i < d->n; i++) {
        const int32_t *l;
        int k = dataset_n_labels(d, i, &l);
        for (int j = 0; j < k; j++) {
            int a = slot[l[j]];
            s->cls_clip[s->cls_off[a] + fill[a]++] = i;
        }
    }
    free(fill);
    free(slot);
    if (kind == SAMPLER_SQRT) { // P(class) proportional to the square root of its clip count
        if (!(s->cls_cdf = malloc((size_t)(s->n_active ? s->n_active : 1) * sizeof *s->cls_cdf))) {
            sampler_free(s);
            return LMR_FAIL(s, LMR_ENOMEM, "out of memory for the class index");
        }
        double acc = 0;
        for (int a = 0; a < s->n_active; a++)
            s->cls_cdf[a] = acc += sqrt((double)(s->cls_off[a + 1] - s->cls_off[a]));
        for (int a = 0; a < s->n_active; a++)
            s->cls_cdf[a] /= acc;
        if (s->n_active)
            s->cls_cdf[s->n_active - 1] = 1.0;
    }
    return 0;
}

/* The active class whose cdf interval holds u in [0, 1). */
static uint64_t sqrt_class(const Sampler *s, double u)
{
    uint64_t lo = 0, hi = (uint64_t)s->n_active - 1;
    while (lo < hi) {
        uint64_t mid = (lo + hi) / 2;
        if (u < s->cls_cdf[mid])
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo;
}

void sampler_free(Sampler *s)
{
    if (!s)
        return;
    free(s->perm);
    free(s->active);
    free(s->cls_off);
    free(s->cls_clip);
    free(s->cls_cdf);
    memset(s, 0, sizeof *s);
}

long sampler_steps_per_epoch(const Sampler *s)
{
    return (long)(s->n / (uint64_t)s->B);
}

static void shuffle_epoch(Sampler *s, long epoch)
{
    Rng r;
    rng_seed(&r, s->seed, RNG_PERM, (uint64_t)epoch, 0);
    for (uint64_t i = 0; i < s->n; i++)
        s->perm[i] = i;
    for (uint64_t i = s->n - 1; i > 0; i--) { // Fisher-Yates
        uint64_t j = rng_below(&r, i + 1), t = s->perm[i];
        s->perm[i] = s->perm[j];
        s->perm[j] = t;
    }
    s->perm_epoch = epoch;
}

void sampler_batch(Sampler *s, long epoch, long step, uint64_t *clips, int32_t *views)
{
    Rng r;
    if (s->kind == SAMPLER_INSTANCE) {
        if (s->perm_epoch != epoch)
            shuffle_epoch(s, epoch);
        memcpy(clips, s->perm + (uint64_t)step * (uint64_t)s->B, (size_t)s->B * sizeof *clips);
    } else {
        rng_seed(&r, s->seed, RNG_CLASS, (uint64_t)epoch, (uint64_t)step);
        for (int i = 0; i < s->B; i++) {
            uint64_t a = s->kind == SAMPLER_SQRT ? sqrt_class(s, (double)rng_uniform(&r))
                                                 : rng_below(&r, (uint64_t)s->n_active);
            uint64_t lo = s->cls_off[a], cnt = s->cls_off[a + 1] - lo;
            clips[i] = s->cls_clip[lo + rng_below(&r, cnt)];
        }
    }
    rng_seed(&r, s->seed, RNG_VIEW, (uint64_t)epoch, (uint64_t)step);
    for (int i = 0; i < s->B; i++)
        views[i] = s->views > 1 ? (int32_t)rng_below(&r, (uint64_t)s->views) : 0;
}
