/* Central finite differences for the lmr-train gradient tests: perturb each entry of a float
 * array, recompute a scalar loss in double, compare with the analytic gradient. */
#ifndef LMR_TEST_TRAIN_FD_H
#define LMR_TEST_TRAIN_FD_H

#include <math.h>
#include <stdio.h>

typedef double (*FdLoss)(void *ctx);

/* @return the number of entries off by more than atol + rtol * |fd|; prints the first few. */
static int fd_check(const char *what, float *x, size_t n, const float *grad, FdLoss loss, void *ctx, float h,
                    double atol, double rtol)
{
    int bad = 0;
    double maxdiff = 0.0;
    for (size_t i = 0; i < n; i++) {
        float keep = x[i];
        x[i] = keep + h;
        double lp = loss(ctx);
        x[i] = keep - h;
        double lm = loss(ctx);
        x[i] = keep;
        double fd = (lp - lm) / (2.0 * ((double)(keep + h) - (double)keep));
        double diff = fabs(fd - grad[i]);
        maxdiff = diff > maxdiff ? diff : maxdiff;
        if (diff > atol + rtol * fabs(fd)) {
            if (bad < 5)
                fprintf(stderr, "  %s[%zu]: analytic %.6g, finite difference %.6g\n", what, i, grad[i], fd);
            bad++;
        }
    }
    printf("  %s: %zu entries, max |diff| %.3g, %d off\n", what, n, maxdiff, bad);
    return bad;
}

static void fill_normal(float *x, size_t n, double scale, unsigned *state)
{
    for (size_t i = 0; i < n; i++) {
        // small LCG + Box-Muller: a test-local source, independent of the code under test
        *state = *state * 1664525u + 1013904223u;
        double u1 = ((*state >> 8) + 1.0) / 16777217.0;
        *state = *state * 1664525u + 1013904223u;
        double u2 = (*state >> 8) / 16777216.0;
        x[i] = (float)(scale * sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
    }
}

#endif
