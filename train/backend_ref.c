/* The naive references of backend.h: plain loops in double precision, the test oracles. */
#include <math.h>
#include <stdlib.h>

#include "backend.h"

// --- naive references ------------------------------------------------------------------------

void linear_forward_naive(float *out, const float *inp, const float *weight, const float *bias, int B,
                          int C, int OC, Activation act)
{
    for (int b = 0; b < B; b++)
        for (int o = 0; o < OC; o++) {
            double s = bias[o];
            for (int i = 0; i < C; i++)
                s += (double)inp[(size_t)b * C + i] * weight[(size_t)i * OC + o];
            out[(size_t)b * OC + o] = act == ACT_TANH ? (float)tanh(s) : (float)s;
        }
}

void linear_backward_naive(float *dinp, float *dweight, float *dbias, float *dout, const float *inp,
                           const float *weight, const float *out, int B, int C, int OC, Activation act)
{
    if (act == ACT_TANH)
        for (size_t k = 0; k < (size_t)B * OC; k++)
            dout[k] *= 1.0f - out[k] * out[k];
    for (int o = 0; o < OC; o++) {
        double s = 0.0;
        for (int b = 0; b < B; b++)
            s += dout[(size_t)b * OC + o];
        dbias[o] = (float)s;
        for (int i = 0; i < C; i++) {
            double w = 0.0;
            for (int b = 0; b < B; b++)
                w += (double)dout[(size_t)b * OC + o] * inp[(size_t)b * C + i];
            dweight[(size_t)i * OC + o] = (float)w;
        }
    }
    if (dinp)
        for (int b = 0; b < B; b++)
            for (int i = 0; i < C; i++) {
                double s = 0.0;
                for (int o = 0; o < OC; o++)
                    s += (double)dout[(size_t)b * OC + o] * weight[(size_t)i * OC + o];
                dinp[(size_t)b * C + i] = (float)s;
            }
}

void lmr_forward_naive(float *R, float *wts, const float *f, const float *fn, const float *keys,
                       const float *keys_n, const uint8_t *key_ok, const int32_t *key_clip,
                       const int32_t *query_clip, const float *c, int B, int N, int H)
{
    for (int i = 0; i < B; i++) {
        double mx = -INFINITY, sum = 0.0;
        double *s = malloc((size_t)N * sizeof *s);
        for (int j = 0; j < N; j++) {
            double d = 0.0;
            for (int h = 0; h < H; h++)
                d += (double)fn[(size_t)i * H + h] * keys_n[(size_t)j * H + h];
            int kc = key_clip ? key_clip[j] : j, own = query_clip[i] >= 0 && kc == query_clip[i];
            s[j] = (key_ok[j] && !own) ? d / H : -INFINITY;
            if (s[j] > mx)
                mx = s[j];
        }
        for (int j = 0; j < N; j++) {
            s[j] = s[j] == -INFINITY ? 0.0 : exp(s[j] - mx);
            sum += s[j];
        }
        for (int h = 0; h < H; h++) {
            double r = 0.0;
            for (int j = 0; j < N; j++)
                r += sum > 0 ? s[j] / sum * keys[(size_t)j * H + h] : 0.0;
            double fi = f[(size_t)i * H + h];
            R[(size_t)i * H + h] = sum > 0 ? (float)(c[i] * r + (1.0 - c[i]) * fi) : (float)fi;
        }
        for (int j = 0; j < N; j++)
            wts[(size_t)i * N + j] = sum > 0 ? (float)(s[j] / sum) : 0.0f;
        free(s);
    }
}
