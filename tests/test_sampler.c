/* Samplers and the prefetching loader: the class-balanced sampler draws every class with clips
 * (the highest index too) at an even rate and clips uniformly within a class, within bounds
 * from the binomial variance; empty classes are never drawn; the instance sampler visits each
 * clip once per epoch (drop_last) in a new order each epoch; batches depend only on
 * (seed, epoch, step); the loader returns exactly the sampler's batches, in order, from a resume
 * point too. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "loader.h"
#include "sampler.h"

int main(void)
{
    enum { C = 10 };
    int64_t counts[C] = {50, 20, 0, 5, 1, 3, 0, 8, 2, 1};
    uint64_t n = 0;
    for (int c = 0; c < C; c++)
        n += (uint64_t)counts[c];
    int32_t *labels = malloc(n * sizeof *labels);
    float *x = malloc(n * 2 * 3 * sizeof *x); // 2 views, D = 3: x = (clip, view, d)
    uint64_t i = 0;
    for (int c = 0; c < C; c++)
        for (int k = 0; k < counts[c]; k++, i++)
            labels[i] = c;
    for (uint64_t k = 0; k < n * 6; k++)
        x[k] = (float)k;
    Dataset d;
    char err[LMR_ERRLEN];
    CHECK_RC(dataset_from_memory(&d, x, n, 2, 3, labels, NULL, C, err), 0);
    CHECK(d.counts[9] == 1 && d.counts[2] == 0);

    TEST(1, "class-balanced: every class with clips at rate 1/8, empty classes never");
    Sampler s;
    int B = 64;
    long steps = 2000;
    CHECK_RC(sampler_init(&s, SAMPLER_CLASS, &d, B, 7), 0);
    CHECK(s.n_active == 8 && s.active[7] == 9);
    CHECK(sampler_steps_per_epoch(&s) == (long)(n / (uint64_t)B));
    uint64_t *clips = malloc((size_t)B * sizeof *clips), per_class[C] = {0}, *per_clip = calloc(n, sizeof *per_clip);
    int32_t views[64];
    uint64_t view1 = 0;
    for (long st = 0; st < steps; st++) {
        sampler_batch(&s, st / 10, st % 10, clips, views);
        for (int b = 0; b < B; b++) {
            per_class[labels[clips[b]]]++;
            per_clip[clips[b]]++;
            view1 += (uint64_t)views[b];
        }
    }
    double N = (double)steps * B, p = 1.0 / 8, sd = sqrt(N * p * (1 - p));
    for (int c = 0; c < C; c++) {
        if (counts[c] == 0) {
            CHECK(per_class[c] == 0);
            continue;
        }
        if (fabs((double)per_class[c] - N * p) > 5 * sd)
            fprintf(stderr, "class %d drawn %llu times, expected %.0f +- %.0f\n", c, (unsigned long long)per_class[c],
                    N * p, 5 * sd);
        CHECK(fabs((double)per_class[c] - N * p) <= 5 * sd);
    }
    printf("  highest class 9 drawn %llu times (expected %.0f, 5 sd = %.0f)\n", (unsigned long long)per_class[9], N * p,
           5 * sd);
    // within class 0 (50 clips) every clip at rate 1/50 of the class's draws
    double nc = (double)per_class[0], q = 1.0 / 50, sdc = sqrt(nc * q * (1 - q));
    for (uint64_t k = 0; k < 50; k++)
        CHECK(fabs((double)per_clip[k] - nc * q) <= 5 * sdc);
    // views: uniform over 2
    double sdv = sqrt(N * 0.25);
    CHECK(fabs((double)view1 - N / 2) <= 5 * sdv);

    TEST(2, "batches depend only on (seed, epoch, step)");
    uint64_t a1[64], a2[64];
    int32_t v1[64], v2[64];
    sampler_batch(&s, 3, 4, a1, v1);
    sampler_batch(&s, 0, 0, a2, v2);
    sampler_batch(&s, 3, 4, a2, v2);
    CHECK(memcmp(a1, a2, sizeof a1) == 0 && memcmp(v1, v2, sizeof v1) == 0);
    sampler_free(&s);

    TEST(3, "instance-balanced: each clip at most once per epoch, drop_last, new order per epoch");
    B = 8;
    CHECK_RC(sampler_init(&s, SAMPLER_INSTANCE, &d, B, 7), 0);
    long spe = sampler_steps_per_epoch(&s);
    CHECK(spe == (long)(n / 8));
    uint8_t *seen = calloc(n, 1);
    uint64_t first0[8], first1[8];
    int dup = 0;
    for (long st = 0; st < spe; st++) {
        sampler_batch(&s, 0, st, clips, views);
        if (st == 0)
            memcpy(first0, clips, sizeof first0);
        for (int b = 0; b < B; b++)
            dup += seen[clips[b]]++;
    }
    CHECK(dup == 0);
    sampler_batch(&s, 1, 0, first1, views);
    CHECK(memcmp(first0, first1, sizeof first0) != 0);
    sampler_free(&s);
    CHECK_RC(sampler_init(&s, SAMPLER_INSTANCE, &d, (int)n + 1, 7), LMR_EINVAL);
    sampler_free(&s);

    TEST(4, "loader: same batches as the sampler, in order, with features of the drawn view");
    CHECK_RC(sampler_init(&s, SAMPLER_CLASS, &d, B, 11), 0);
    Sampler ref;
    CHECK_RC(sampler_init(&ref, SAMPLER_CLASS, &d, B, 11), 0);
    Loader *ld;
    long epochs = 3, got = 0;
    CHECK_RC(loader_open(&ld, &d, &s, 1, 2, epochs, 3, err), 0); // resume point: epoch 1, step 2
    Batch *b;
    long e = 1, st = 2;
    int rc, ok = 1;
    while ((rc = loader_next(ld, &b, err)) == 0) {
        sampler_batch(&ref, e, st, clips, views);
        ok &= b->epoch == e && b->step == st && memcmp(b->clips, clips, (size_t)B * sizeof *clips) == 0;
        for (int k = 0; k < B; k++) {
            ok &= b->x[k * 3 + 1] == x[(clips[k] * 2 + (uint64_t)views[k]) * 3 + 1];
            ok &= b->label1[k] == labels[clips[k]] && b->lab_off[k] == k;
        }
        loader_release(ld, b);
        got++;
        if (++st == spe) {
            st = 0;
            e++;
        }
    }
    CHECK_RC(rc, LMR_DONE);
    CHECK(ok);
    CHECK(got == 2 * spe - 2);
    loader_close(&ld);
    loader_close(&ld);
    // closing early while the thread is ahead
    CHECK_RC(loader_open(&ld, &d, &s, 0, 0, 100, 2, err), 0);
    CHECK_RC(loader_next(ld, &b, err), 0);
    loader_release(ld, b);
    loader_close(&ld);
    sampler_free(&s);
    sampler_free(&ref);

    free(seen);
    free(clips);
    free(per_clip);
    free(labels);
    free(x);
    dataset_close(&d);
    CHECK_DONE();
}
