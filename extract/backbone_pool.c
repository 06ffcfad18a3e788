/* "pool": a cheap hand-made per-frame descriptor for demos and tests, no weights needed.
 * Colour (grid means, a global histogram), shape (a luminance thumbnail, grid contrast and
 * edge energy) and motion against the previous sampled frame (grid frame differences,
 * Lucas-Kanade flow per cell, the displacement and the colour of the changed region).
 * L2-normalised per frame. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backbone_internal.h"

#define G 4      /* colour / motion grid */
#define TH 8     /* luminance thumbnail side */
#define LS 48    /* side of the luminance map motion and edges are computed on */
#define NBIN 4   /* histogram bins per channel */

enum {
    OFF_COLOUR = 0,                       /* G*G*3 cell colour means */
    OFF_CONTRAST = OFF_COLOUR + G * G * 3,/* G*G cell luminance std */
    OFF_EDGES = OFF_CONTRAST + G * G,     /* G*G*2 mean |dI/dx|, |dI/dy| */
    OFF_THUMB = OFF_EDGES + G * G * 2,    /* TH*TH luminance thumbnail */
    OFF_HIST = OFF_THUMB + TH * TH,       /* NBIN^3 colour histogram (sqrt of fractions) */
    OFF_MOTION = OFF_HIST + NBIN * NBIN * NBIN, /* G*G*3: mean |dI/dt|, flow u, v */
    OFF_GLOBAL = OFF_MOTION + G * G * 3,  /* mean |dI/dt|, flow u, v, change shift x, y */
    OFF_MOVING = OFF_GLOBAL + 5,          /* colour of what changed (RGB weighted by |dI/dt|) */
    POOL_DIM = OFF_MOVING + 3
};
_Static_assert(POOL_DIM == BACKBONE_POOL_DIM, "backbone_internal.h's BACKBONE_POOL_DIM is the pool size");

/* Area-average luminance (and colour, rgb: 3 maps) of an h x w RGB frame onto LS x LS maps
 * (values 0..1). */
static void luma_map(const uint8_t *f, int h, int w, float *y, float *rgb)
{
    for (int gy = 0; gy < LS; gy++) {
        int y0 = gy * h / LS, y1 = (gy + 1) * h / LS;
        if (y1 <= y0)
            y1 = y0 + 1;
        for (int gx = 0; gx < LS; gx++) {
            int x0 = gx * w / LS, x1 = (gx + 1) * w / LS;
            if (x1 <= x0)
                x1 = x0 + 1;
            float s[3] = {0, 0, 0};
            for (int yy = y0; yy < y1 && yy < h; yy++) {
                const uint8_t *p = f + ((size_t)yy * w + x0) * 3;
                for (int xx = x0; xx < x1 && xx < w; xx++, p += 3)
                    for (int c = 0; c < 3; c++)
                        s[c] += p[c];
            }
            float inv = 1.0f / (255.0f * (float)((y1 - y0) * (x1 - x0)));
            for (int c = 0; c < 3; c++)
                rgb[c * LS * LS + gy * LS + gx] = s[c] * inv;
            y[gy * LS + gx] = (0.299f * s[0] + 0.587f * s[1] + 0.114f * s[2]) * inv;
        }
    }
}

static void appearance(const uint8_t *f, int h, int w, const float *y, float *o)
{
    double sum[G * G][3] = {{0}}, cnt[G * G] = {0};
    double hist[NBIN * NBIN * NBIN] = {0};
    for (int py = 0; py < h; py++) {
        int cy = py * G / h;
        const uint8_t *p = f + (size_t)py * w * 3;
        for (int px = 0; px < w; px++, p += 3) {
            int c = cy * G + px * G / w;
            sum[c][0] += p[0];
            sum[c][1] += p[1];
            sum[c][2] += p[2];
            cnt[c]++;
            hist[(p[0] * NBIN >> 8) * NBIN * NBIN + (p[1] * NBIN >> 8) * NBIN + (p[2] * NBIN >> 8)]++;
        }
    }
    for (int c = 0; c < G * G; c++)
        for (int k = 0; k < 3; k++)
            o[OFF_COLOUR + c * 3 + k] = (float)(sum[c][k] / (255.0 * (cnt[c] > 0 ? cnt[c] : 1)));
    for (int i = 0; i < NBIN * NBIN * NBIN; i++)
        o[OFF_HIST + i] = (float)sqrt(hist[i] / ((double)h * w));
    // Contrast and edges per cell, on the luminance map.
    int cs = LS / G;
    for (int c = 0; c < G * G; c++) {
        int gy0 = (c / G) * cs, gx0 = (c % G) * cs;
        double m = 0, m2 = 0, ex = 0, ey = 0;
        for (int yy = gy0; yy < gy0 + cs; yy++)
            for (int xx = gx0; xx < gx0 + cs; xx++) {
                float v = y[yy * LS + xx];
                m += v;
                m2 += v * v;
                if (xx + 1 < LS)
                    ex += fabsf(y[yy * LS + xx + 1] - v);
                if (yy + 1 < LS)
                    ey += fabsf(y[(yy + 1) * LS + xx] - v);
            }
        double n = cs * cs;
        m /= n;
        o[OFF_CONTRAST + c] = (float)(2 * sqrt(fmax(0, m2 / n - m * m)));
        o[OFF_EDGES + 2 * c] = (float)(8 * ex / n);
        o[OFF_EDGES + 2 * c + 1] = (float)(8 * ey / n);
    }
    int ts = LS / TH;
    for (int t = 0; t < TH * TH; t++) {
        int gy0 = (t / TH) * ts, gx0 = (t % TH) * ts;
        double s = 0;
        for (int yy = gy0; yy < gy0 + ts; yy++)
            for (int xx = gx0; xx < gx0 + ts; xx++)
                s += y[yy * LS + xx];
        o[OFF_THUMB + t] = (float)(s / (ts * ts) - 0.5);
    }
}

/* Motion between luminance maps a (previous) and b (current); rgb: colour maps of b. */
static void motion(const float *a, const float *b, const float *rgb, float *o)
{
    double mc[3] = {0, 0, 0}, mw = 0;
    int cs = LS / G;
    double Gxx = 0, Gxy = 0, Gyy = 0, Gxt = 0, Gyt = 0, Gat = 0;
    double px = 0, py = 0, pw = 0, nx = 0, ny = 0, nw = 0;
    for (int c = 0; c < G * G; c++) {
        int gy0 = (c / G) * cs, gx0 = (c % G) * cs;
        double xx2 = 0, xy = 0, yy2 = 0, xt = 0, yt = 0, at = 0;
        for (int y = gy0; y < gy0 + cs; y++) {
            for (int x = gx0; x < gx0 + cs; x++) {
                int i = y * LS + x;
                int xl = x > 0 ? i - 1 : i, xr = x + 1 < LS ? i + 1 : i;
                int yu = y > 0 ? i - LS : i, yd = y + 1 < LS ? i + LS : i;
                double ix = 0.25 * (a[xr] - a[xl] + b[xr] - b[xl]);
                double iy = 0.25 * (a[yd] - a[yu] + b[yd] - b[yu]);
                double it = b[i] - a[i];
                xx2 += ix * ix;
                xy += ix * iy;
                yy2 += iy * iy;
                xt += ix * it;
                yt += iy * it;
                at += fabs(it);
                mw += fabs(it);
                for (int k = 0; k < 3; k++)
                    mc[k] += fabs(it) * rgb[k * LS * LS + i];
                // Where the picture got brighter vs darker: their centroids move with objects.
                if (it > 0) {
                    px += it * x;
                    py += it * y;
                    pw += it;
                } else {
                    nx -= it * x;
                    ny -= it * y;
                    nw -= it;
                }
            }
        }
        double lam = 1e-3 * cs * cs, det = (xx2 + lam) * (yy2 + lam) - xy * xy;
        double u = -((yy2 + lam) * xt - xy * yt) / det, v = -((xx2 + lam) * yt - xy * xt) / det;
        double n = cs * cs;
        o[OFF_MOTION + 3 * c] = (float)(4 * at / n);
        o[OFF_MOTION + 3 * c + 1] = (float)tanh(u / 2);
        o[OFF_MOTION + 3 * c + 2] = (float)tanh(v / 2);
        Gxx += xx2;
        Gxy += xy;
        Gyy += yy2;
        Gxt += xt;
        Gyt += yt;
        Gat += at;
    }
    double lam = 1e-3 * LS * LS, det = (Gxx + lam) * (Gyy + lam) - Gxy * Gxy;
    double u = -((Gyy + lam) * Gxt - Gxy * Gyt) / det, v = -((Gxx + lam) * Gyt - Gxy * Gxt) / det;
    o[OFF_GLOBAL] = (float)(4 * Gat / (LS * LS));
    o[OFF_GLOBAL + 1] = (float)tanh(u / 2);
    o[OFF_GLOBAL + 2] = (float)tanh(v / 2);
    double eps = 1e-3 * LS;
    if (pw > eps && nw > eps) {
        o[OFF_GLOBAL + 3] = (float)((px / pw - nx / nw) / (LS / 4.0));
        o[OFF_GLOBAL + 4] = (float)((py / pw - ny / nw) / (LS / 4.0));
    } else {
        o[OFF_GLOBAL + 3] = o[OFF_GLOBAL + 4] = 0;
    }
    for (int k = 0; k < 3; k++)
        o[OFF_MOVING + k] = mw > eps ? (float)(mc[k] / mw) : 0;
}

static int pool_run(Backbone *b, const uint8_t *frames, int n, int h, int w, float *out)
{
    float *ymap = malloc(sizeof(float) * LS * LS * (size_t)n), *rgb = malloc(sizeof(float) * LS * LS * 3);
    if (!ymap || !rgb) {
        free(ymap);
        free(rgb);
        return LMR_FAIL(b, LMR_ENOMEM, "pool: out of memory");
    }
    size_t fsz = (size_t)h * w * 3;
    for (int t = 0; t < n; t++) {
        float *o = out + (size_t)t * POOL_DIM;
        memset(o, 0, sizeof(float) * POOL_DIM);
        luma_map(frames + t * fsz, h, w, ymap + (size_t)t * LS * LS, rgb);
        appearance(frames + t * fsz, h, w, ymap + (size_t)t * LS * LS, o);
        if (t > 0)
            motion(ymap + (size_t)(t - 1) * LS * LS, ymap + (size_t)t * LS * LS, rgb, o);
    }
    // The first frame has no predecessor: it shares the motion of the second.
    if (n > 1)
        memcpy(out + OFF_MOTION, out + POOL_DIM + OFF_MOTION, sizeof(float) * (POOL_DIM - OFF_MOTION));
    for (int t = 0; t < n; t++) {
        float *o = out + (size_t)t * POOL_DIM;
        double s = 0;
        for (int i = 0; i < POOL_DIM; i++)
            s += (double)o[i] * o[i];
        float inv = s > 0 ? (float)(1.0 / sqrt(s)) : 0;
        for (int i = 0; i < POOL_DIM; i++)
            o[i] *= inv;
    }
    free(ymap);
    free(rgb);
    return 0;
}

static void pool_close(Backbone *b) { (void)b; }

static const BackboneOps pool_ops = {pool_run, pool_close};

int backbone_pool_init(Backbone *b, const BackboneOpts *o)
{
    (void)o;
    b->ops = &pool_ops;
    b->impl = NULL;
    b->dim = POOL_DIM;
    b->weights_checksum[0] = 0;
    return 0;
}
