/* methods_dump: every method loss, and the cosine classifier, on one fixed batch, as JSON lines
 * (inputs, the mean loss, its gradient) for methods_torch_check.py to recompute in PyTorch. eql
 * runs with gamma 1, so its left-out classes are every rare non-label (no draw to share). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "method.h"

enum { B = 4, C = 5, F = 6 };

/* A test-local normal source (LCG + Box-Muller), independent of the code under test. */
static void fill_normal(float *x, int n, double scale, unsigned *state)
{
    for (int i = 0; i < n; i++) {
        *state = *state * 1664525u + 1013904223u;
        double u1 = ((*state >> 8) + 1.0) / 16777217.0;
        *state = *state * 1664525u + 1013904223u;
        double u2 = (*state >> 8) / 16777216.0;
        x[i] = (float)(scale * sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
    }
}

static void arr(const char *key, const float *x, int n)
{
    printf(",\"%s\":[", key);
    for (int i = 0; i < n; i++)
        printf("%s%.9g", i ? "," : "", x[i]);
    printf("]");
}

int main(void)
{
    int64_t counts[C] = {900, 300, 40, 3, 1};
    int32_t lab[5] = {0, 3, 1, 4, 2}, off[B + 1] = {0, 1, 2, 4, 5}; // row 2 has two labels
    int32_t lab1[B] = {0, 3, 1, 4}, off1[B + 1] = {0, 1, 2, 3, 4};   // one label per row
    struct {
        const char *name;
        float smoothing, focal_gamma;
        int single;
        long epoch;
    } runs[] = {
        {"la", 0, -1, 0, 0},       {"la", 0.1f, -1, 0, 0},       {"cb", 0, -1, 0, 0},
        {"cb", 0, 2, 0, 0},        {"focal", 0, -1, 0, 0},       {"focal", 0.1f, -1, 0, 0},
        {"ldam-drw", 0, -1, 1, 0}, {"ldam-drw", 0, -1, 1, 9},    {"ldam-drw", 0.1f, -1, 0, 9},
        {"eql", 0, -1, 0, 0},      {"mixup", 0, -1, 0, 0},       {"mixup", 0.1f, -1, 0, 0},
    };
    unsigned st = 2024;
    for (size_t r = 0; r < sizeof runs / sizeof *runs; r++) {
        MethodSetup s = {NULL, counts, C, B, B, 3, F, 10, 1, 1e-3, NULL, runs[r].smoothing, 0, {.la_tau = 1}};
        method_params_default(&s.p);
        s.p.eql_gamma = 1.0;
        s.p.focal_gamma = runs[r].focal_gamma;
        MethodCtx m;
        char err[LMR_ERRLEN];
        if (method_init(&m, method_find(runs[r].name), &s, err) < 0) {
            fprintf(stderr, "%s: %s\n", runs[r].name, err);
            return 1;
        }
        float z[B * C], dz[B * C], losses[B], x[B * 3], xo[B * 3];
        int ldam = strcmp(runs[r].name, "ldam-drw") == 0;
        fill_normal(z, B * C, ldam ? 0.4 : 1.5, &st);
        if (m.m->input) {
            fill_normal(x, B * 3, 1, &st);
            m.m->input(&m, 0, 0, x, xo, B, 3);
        }
        const int32_t *l = runs[r].single ? lab1 : lab, *o = runs[r].single ? off1 : off;
        method_loss_host(&m, runs[r].epoch, 0, l, o, 0, B, z, dz, losses);
        double mean = 0;
        for (int i = 0; i < B; i++)
            mean += losses[i] / B;
        printf("{\"method\":\"%s\",\"smoothing\":%.9g,\"focal_gamma\":%.9g,\"epoch\":%ld,\"epochs\":10,\"loss\":%.9g",
               runs[r].name, runs[r].smoothing, runs[r].focal_gamma, runs[r].epoch, mean);
        printf(",\"counts\":[900,300,40,3,1],\"labels\":[");
        for (int i = 0; i < B; i++) {
            printf("%s[", i ? "," : "");
            for (int q = o[i]; q < o[i + 1]; q++)
                printf("%s%d", q > o[i] ? "," : "", l[q]);
            printf("]");
        }
        printf("]");
        arr("z", z, B * C);
        arr("dz", dz, B * C);
        if (m.m->input) {
            printf(",\"lam\":%.9g,\"perm\":[%d,%d,%d,%d]", m.lam, m.perm[0], m.perm[1], m.perm[2], m.perm[3]);
            arr("x", x, B * 3);
            arr("xo", xo, B * 3);
        }
        printf("}\n");
        method_free(&m);
    }
    // the cosine classifier: loss sum R z, gradients to f and w
    MethodSetup s = {NULL, counts, C, B, B, 3, F, 10, 1, 1e-3, NULL, 0, 0, {.la_tau = 1}};
    method_params_default(&s.p);
    MethodCtx m;
    char err[LMR_ERRLEN];
    if (method_init(&m, method_find("ldam-drw"), &s, err) < 0)
        return 1;
    float f[B * F], w[F * C], R[B * C], z[B * C], df[B * F], dw[F * C];
    fill_normal(f, B * F, 1, &st);
    fill_normal(w, F * C, 0.3, &st);
    fill_normal(R, B * C, 1, &st);
    m.m->head_forward(&m, z, f, w, B, F, C);
    m.m->head_backward(&m, df, dw, R, f, w, B, F, C);
    printf("{\"method\":\"cosine-head\"");
    arr("f", f, B * F);
    arr("w", w, F * C);
    arr("R", R, B * C);
    arr("z", z, B * C);
    arr("df", df, B * F);
    arr("dw", dw, F * C);
    printf("}\n");
    method_free(&m);
    return 0;
}
