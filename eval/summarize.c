/* lmr-eval --summarize: read run files, group them by method, mean +- std over seeds, mark the
 * best of each column, write Markdown / CSV / JSON and draw the figure (cairo). */
#include "summarize.h"

#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plot.h"

#ifdef LMR_HAVE_CAIRO
#include <cairo-pdf.h>
#include <cairo-svg.h>
#include <cairo.h>
#endif

static int write_json_atomic(const char *path, json_t *root, char *err)
{
    char tmp[1100];
    int n = snprintf(tmp, sizeof tmp, "%s.tmp", path);
    if (n < 0 || (size_t)n >= sizeof tmp)
        return lmr_fail(err, LMR_EINVAL, "%.200s...: path too long", path);
    FILE *f = fopen(tmp, "w");
    if (!f)
        return lmr_fail(err, -errno, "%s: cannot write: %s", tmp, strerror(errno));
    json_dumpf(root, f, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(8));
    fputc('\n', f);
    int bad = ferror(f);
    if (fclose(f) != 0 || bad) {
        remove(tmp);
        return lmr_fail(err, LMR_EIO, "%s: write failed", tmp);
    }
    if (rename(tmp, path) != 0)
        return lmr_fail(err, -errno, "%s: cannot rename to %s: %s", tmp, path, strerror(errno));
    return 0;
}

// --- the keys of a run file ---------------------------------------------------------------------

json_t *summarize_tags(const char *method, uint64_t seed, const char *posthoc, double tau, const EvalResult *res,
                       const int64_t *counts, int C)
{
    json_t *root = json_object();
    if (!root)
        return NULL;
    if (method)
        json_object_set_new(root, "method", json_string(method));
    if (seed != UINT64_MAX)
        json_object_set_new(root, "seed", json_integer((json_int_t)seed));
    if (posthoc && *posthoc) {
        json_object_set_new(root, "posthoc", json_string(posthoc));
        if (tau >= 0)
            json_object_set_new(root, "tau", json_real(tau));
    }
    json_t *acc = json_array();
    for (int c = 0; c < C; c++)
        json_array_append_new(acc, res->class_acc[c] >= 0 ? json_real(res->class_acc[c]) : json_null());
    json_object_set_new(root, "class_acc", acc);
    if (counts) {
        json_t *n = json_array();
        for (int c = 0; c < C; c++)
            json_array_append_new(n, json_integer(counts[c]));
        json_object_set_new(root, "train_counts", n);
    }
    return root;
}

// --- reading runs --------------------------------------------------------------------------------

enum { COL_AVG, COL_HEAD, COL_MEDIUM, COL_TAIL, COL_FEW, COL_MAP, N_COLS };
static const char *const col_key[N_COLS] = {"avg_class_acc", "head_acc", "medium_acc", "tail_acc", "few_acc", "map"};
static const char *const col_title[N_COLS] = {"avg", "head", "medium", "tail", "few", "mAP"};

typedef struct {
    const char *path;
    char method[64];
    long long seed;
    int has_seed;
    double v[N_COLS]; /* -1: not reported */
    int C;
    double *class_acc; /* (C), -1 absent; NULL when the file has none */
    int64_t *counts;   /* (C) or NULL */
} RunFile;

typedef struct {
    char method[64];
    int *run; /* indices into the runs */
    int n;
    SumCell cell[N_COLS];
    int best[N_COLS];
    double *class_mean; /* (C) mean over seeds, -1 where any seed lacks the class; NULL: none */
} Row;

SumCell summarize_cell(const double *x, int n)
{
    SumCell c = {0, 0, 0};
    double s = 0;
    for (int i = 0; i < n; i++)
        if (x[i] >= 0) {
            s += x[i];
            c.n++;
        }
    if (!c.n)
        return c;
    c.mean = s / c.n;
    double v = 0;
    for (int i = 0; i < n; i++)
        if (x[i] >= 0)
            v += (x[i] - c.mean) * (x[i] - c.mean);
    c.sd = c.n > 1 ? sqrt(v / (c.n - 1)) : 0.0;
    return c;
}

static int read_run(const char *path, RunFile *r, char *err)
{
    memset(r, 0, sizeof *r);
    r->path = path;
    json_error_t je;
    json_t *o = json_load_file(path, 0, &je);
    if (!json_is_object(o)) {
        json_decref(o);
        return lmr_fail(err, LMR_EPARSE, "%s: not an lmr-eval --json file (%s)", path, je.text);
    }
    const char *m = json_string_value(json_object_get(o, "method"));
    if (!m) { // an older run file: its checkpoint's name stands for the method
        const char *model = json_string_value(json_object_get(o, "model"));
        const char *b = model ? strrchr(model, '/') : NULL;
        m = b ? b + 1 : model ? model : path;
    }
    snprintf(r->method, sizeof r->method, "%s", m);
    char *dot = strstr(r->method, ".safetensors");
    if (dot && dot != r->method && !json_object_get(o, "method"))
        *dot = '\0';
    json_t *s = json_object_get(o, "seed");
    r->has_seed = json_is_integer(s);
    r->seed = r->has_seed ? (long long)json_integer_value(s) : 0;
    int any = 0;
    for (int k = 0; k < N_COLS; k++) {
        json_t *v = json_object_get(o, col_key[k]);
        r->v[k] = json_is_number(v) ? json_number_value(v) : -1;
        any |= r->v[k] >= 0;
    }
    if (!any) {
        json_decref(o);
        return lmr_fail(err, LMR_EPARSE, "%s: no accuracy in it (avg_class_acc missing)", path);
    }
    json_t *ca = json_object_get(o, "class_acc"), *tc = json_object_get(o, "train_counts");
    if (json_is_array(ca)) {
        r->C = (int)json_array_size(ca);
        r->class_acc = malloc((size_t)(r->C ? r->C : 1) * sizeof *r->class_acc);
        if (!r->class_acc) {
            json_decref(o);
            return lmr_fail(err, LMR_ENOMEM, "out of memory");
        }
        for (int c = 0; c < r->C; c++) {
            json_t *x = json_array_get(ca, (size_t)c);
            r->class_acc[c] = json_is_number(x) ? json_number_value(x) : -1;
        }
        if (json_is_array(tc) && (int)json_array_size(tc) == r->C) {
            r->counts = malloc((size_t)(r->C ? r->C : 1) * sizeof *r->counts);
            if (r->counts)
                for (int c = 0; c < r->C; c++)
                    r->counts[c] = json_integer_value(json_array_get(tc, (size_t)c));
        }
    }
    json_decref(o);
    return 0;
}

// --- the table -----------------------------------------------------------------------------------

typedef struct {
    RunFile *runs;
    int n_runs;
    Row *rows;
    int n_rows;
    int shown[N_COLS];
    const char *baseline;
    int base_row; /* -1: none */
    int C;        /* classes of the per-class panel (0: no panel) */
    const int64_t *counts;
} Summary;

static void cell_text(char *buf, size_t n, const SumCell *c)
{
    if (!c->n)
        snprintf(buf, n, "n/a");
    else if (c->n == 1) // one seed: no spread to show
        snprintf(buf, n, "%.1f", 100 * c->mean);
    else
        snprintf(buf, n, "%.1f ± %.1f", 100 * c->mean, 100 * c->sd);
}

static void write_markdown(FILE *f, const Summary *s)
{
    fprintf(f, "| method | seeds |");
    for (int k = 0; k < N_COLS; k++)
        if (s->shown[k])
            fprintf(f, " %s |", col_title[k]);
    fprintf(f, "\n|---|---|");
    for (int k = 0; k < N_COLS; k++)
        if (s->shown[k])
            fprintf(f, "---|");
    fputc('\n', f);
    for (int i = 0; i < s->n_rows; i++) {
        const Row *r = &s->rows[i];
        fprintf(f, "| %s | %d |", r->method, r->n);
        for (int k = 0; k < N_COLS; k++) {
            if (!s->shown[k])
                continue;
            char t[64];
            cell_text(t, sizeof t, &r->cell[k]);
            fprintf(f, r->best[k] ? " **%s** |" : " %s |", t);
        }
        fputc('\n', f);
    }
    fprintf(f, "\nClass accuracy in %%, mean ± std over seeds (one seed: its value); the best mean of each column in "
               "bold.\n");
}

static int write_csv(const char *path, const Summary *s, char *err)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return lmr_fail(err, -errno, "%s: cannot write: %s", path, strerror(errno));
    fprintf(f, "method,seeds");
    for (int k = 0; k < N_COLS; k++)
        if (s->shown[k])
            fprintf(f, ",%s_mean,%s_std,%s_best", col_key[k], col_key[k], col_key[k]);
    fputc('\n', f);
    for (int i = 0; i < s->n_rows; i++) {
        const Row *r = &s->rows[i];
        fprintf(f, "%s,%d", r->method, r->n);
        for (int k = 0; k < N_COLS; k++)
            if (s->shown[k]) {
                if (r->cell[k].n)
                    fprintf(f, ",%.6f,%.6f,%d", r->cell[k].mean, r->cell[k].sd, r->best[k]);
                else
                    fprintf(f, ",,,0");
            }
        fputc('\n', f);
    }
    int bad = ferror(f);
    if (fclose(f) != 0 || bad)
        return lmr_fail(err, LMR_EIO, "%s: write failed", path);
    return 0;
}

static int write_json(const char *path, const Summary *s, char *err)
{
    json_t *root = json_object(), *rows = json_array(), *cols = json_array();
    for (int k = 0; k < N_COLS; k++)
        if (s->shown[k])
            json_array_append_new(cols, json_string(col_key[k]));
    json_object_set_new(root, "columns", cols);
    for (int i = 0; i < s->n_rows; i++) {
        const Row *r = &s->rows[i];
        json_t *o = json_object(), *seeds = json_array(), *files = json_array(), *m = json_object();
        json_object_set_new(o, "method", json_string(r->method));
        for (int j = 0; j < r->n; j++) {
            const RunFile *rf = &s->runs[r->run[j]];
            json_array_append_new(seeds, rf->has_seed ? json_integer(rf->seed) : json_null());
            json_array_append_new(files, json_string(rf->path));
        }
        json_object_set_new(o, "seeds", seeds);
        json_object_set_new(o, "runs", files);
        for (int k = 0; k < N_COLS; k++) {
            if (!s->shown[k])
                continue;
            json_t *c = json_object(), *vals = json_array();
            for (int j = 0; j < r->n; j++) {
                double v = s->runs[r->run[j]].v[k];
                json_array_append_new(vals, v >= 0 ? json_real(v) : json_null());
            }
            json_object_set_new(c, "mean", r->cell[k].n ? json_real(r->cell[k].mean) : json_null());
            json_object_set_new(c, "std", r->cell[k].n ? json_real(r->cell[k].sd) : json_null());
            json_object_set_new(c, "values", vals);
            json_object_set_new(c, "best", json_boolean(r->best[k]));
            json_object_set_new(m, col_key[k], c);
        }
        json_object_set_new(o, "metrics", m);
        json_array_append_new(rows, o);
    }
    json_object_set_new(root, "rows", rows);
    int rc = write_json_atomic(path, root, err);
    json_decref(root);
    return rc;
}

// --- the figure ----------------------------------------------------------------------------------

#ifdef LMR_HAVE_CAIRO
static const double palette[10][3] = {{0.12, 0.47, 0.71}, {1.00, 0.50, 0.05}, {0.17, 0.63, 0.17}, {0.84, 0.15, 0.16},
                                      {0.58, 0.40, 0.74}, {0.55, 0.34, 0.29}, {0.89, 0.47, 0.76}, {0.50, 0.50, 0.50},
                                      {0.74, 0.74, 0.13}, {0.09, 0.75, 0.81}};

static void text_at(cairo_t *cr, double x, double y, const char *s, double align)
{
    cairo_text_extents_t e;
    cairo_text_extents(cr, s, &e);
    cairo_move_to(cr, x - align * e.width - e.x_bearing, y);
    cairo_show_text(cr, s);
}

static void colour(cairo_t *cr, int i, double alpha)
{
    const double *c = palette[i % 10];
    cairo_set_source_rgba(cr, c[0], c[1], c[2], alpha);
}

enum { FIG_H = 480, PANEL_W = 560, ML = 58, MR = 16, MT = 36, MB = 86 };

/* Left: per metric, one bar per method (mean), a line from the lowest to the highest seed, a dot
 * per seed. */
static void draw_bars(cairo_t *cr, const Summary *s, double x0)
{
    double px = x0 + ML, py = MT, pw = PANEL_W - ML - MR, ph = FIG_H - MT - MB;
    int ng = 0;
    for (int k = 0; k < N_COLS; k++)
        ng += s->shown[k];
    cairo_set_source_rgb(cr, 0, 0, 0);
    cairo_set_font_size(cr, 13);
    text_at(cr, x0 + PANEL_W / 2.0, 20, "class accuracy by group (bars: mean; dots: seeds)", 0.5);
    cairo_set_font_size(cr, 11);
    cairo_set_line_width(cr, 1);
    for (int t = 0; t <= 5; t++) {
        double y = py + ph - t * 0.2 * ph;
        cairo_set_source_rgb(cr, 0.88, 0.88, 0.88);
        cairo_move_to(cr, px, y);
        cairo_line_to(cr, px + pw, y);
        cairo_stroke(cr);
        cairo_set_source_rgb(cr, 0, 0, 0);
        char b[16];
        snprintf(b, sizeof b, "%.1f", t * 0.2);
        text_at(cr, px - 6, y + 4, b, 1.0);
    }
    cairo_rectangle(cr, px, py, pw, ph);
    cairo_stroke(cr);
    double gw = pw / (ng ? ng : 1), bw = gw * 0.8 / (s->n_rows ? s->n_rows : 1);
    int g = 0;
    for (int k = 0; k < N_COLS; k++) {
        if (!s->shown[k])
            continue;
        double gx = px + g * gw + gw * 0.1;
        cairo_set_source_rgb(cr, 0, 0, 0);
        text_at(cr, px + g * gw + gw / 2, py + ph + 16, col_title[k], 0.5);
        for (int i = 0; i < s->n_rows; i++) {
            const Row *r = &s->rows[i];
            if (!r->cell[k].n)
                continue;
            double bx = gx + i * bw, top = py + ph - r->cell[k].mean * ph;
            colour(cr, i, 0.75);
            cairo_rectangle(cr, bx + 1, top, bw - 2, py + ph - top);
            cairo_fill(cr);
            double lo = 2, hi = -1;
            for (int j = 0; j < r->n; j++) {
                double v = s->runs[r->run[j]].v[k];
                if (v < 0)
                    continue;
                lo = fmin(lo, v);
                hi = fmax(hi, v);
                cairo_set_source_rgb(cr, 0, 0, 0);
                cairo_arc(cr, bx + bw / 2, py + ph - v * ph, 1.8, 0, 2 * M_PI);
                cairo_fill(cr);
            }
            cairo_set_source_rgb(cr, 0, 0, 0);
            cairo_move_to(cr, bx + bw / 2, py + ph - lo * ph);
            cairo_line_to(cr, bx + bw / 2, py + ph - hi * ph);
            cairo_stroke(cr);
        }
        g++;
    }
    // legend below the axis
    double lx = px, ly = py + ph + 36;
    for (int i = 0; i < s->n_rows; i++) {
        cairo_text_extents_t e;
        cairo_text_extents(cr, s->rows[i].method, &e);
        if (lx + 16 + e.width > px + pw) {
            lx = px;
            ly += 16;
        }
        colour(cr, i, 0.75);
        cairo_rectangle(cr, lx, ly - 9, 10, 10);
        cairo_fill(cr);
        cairo_set_source_rgb(cr, 0, 0, 0);
        text_at(cr, lx + 14, ly, s->rows[i].method, 0);
        lx += 24 + e.width;
    }
}

/* Right: per class, each method's accuracy minus the baseline's (means over seeds) against the
 * class's training count, a segment from the baseline (0) to the method's point. */
static void draw_delta(cairo_t *cr, const Summary *s, double x0)
{
    double px = x0 + ML, py = MT, pw = PANEL_W - ML - MR, ph = FIG_H - MT - MB;
    const Row *base = &s->rows[s->base_row];
    int64_t cmax = 1;
    double dmax = 0.05;
    for (int c = 0; c < s->C; c++)
        cmax = s->counts[c] > cmax ? s->counts[c] : cmax;
    for (int i = 0; i < s->n_rows; i++)
        for (int c = 0; c < s->C && s->rows[i].class_mean; c++)
            if (s->rows[i].class_mean[c] >= 0 && base->class_mean[c] >= 0)
                dmax = fmax(dmax, fabs(s->rows[i].class_mean[c] - base->class_mean[c]));
    dmax = ceil(dmax * 10) / 10;
    double lmax = ceil(log10((double)cmax) + 1e-9);
    if (lmax < 1)
        lmax = 1;
#define MX(n) (px + log10((double)((n) < 1 ? 1 : (n))) / lmax * pw)
#define MY(d) (py + ph / 2 - (d) / dmax * ph / 2)
    char b[128];
    cairo_set_source_rgb(cr, 0, 0, 0);
    cairo_set_font_size(cr, 13);
    snprintf(b, sizeof b, "per class: accuracy minus %s's", base->method);
    text_at(cr, x0 + PANEL_W / 2.0, 20, b, 0.5);
    cairo_set_font_size(cr, 11);
    cairo_set_line_width(cr, 1);
    cairo_rectangle(cr, px, py, pw, ph);
    cairo_stroke(cr);
    for (int t = -2; t <= 2; t++) {
        double d = dmax * t / 2, y = MY(d);
        cairo_set_source_rgb(cr, t ? 0.88 : 0.3, t ? 0.88 : 0.3, t ? 0.88 : 0.3);
        cairo_move_to(cr, px, y);
        cairo_line_to(cr, px + pw, y);
        cairo_stroke(cr);
        cairo_set_source_rgb(cr, 0, 0, 0);
        snprintf(b, sizeof b, "%+.2f", d);
        text_at(cr, px - 6, y + 4, b, 1.0);
    }
    for (int e = 0; e <= (int)lmax; e++) {
        double x = px + e / lmax * pw;
        cairo_move_to(cr, x, py + ph);
        cairo_line_to(cr, x, py + ph + 4);
        cairo_stroke(cr);
        snprintf(b, sizeof b, "%g", pow(10, e));
        text_at(cr, x, py + ph + 16, b, 0.5);
    }
    text_at(cr, px + pw / 2, py + ph + 32, "training clips of the class (log scale)", 0.5);
    for (int i = 0; i < s->n_rows; i++) {
        const Row *r = &s->rows[i];
        if (i == s->base_row || !r->class_mean)
            continue;
        for (int c = 0; c < s->C; c++) {
            if (r->class_mean[c] < 0 || base->class_mean[c] < 0)
                continue;
            double x = MX(s->counts[c]), d = r->class_mean[c] - base->class_mean[c];
            colour(cr, i, 0.35);
            cairo_move_to(cr, x, MY(0));
            cairo_line_to(cr, x, MY(d));
            cairo_stroke(cr);
            colour(cr, i, 0.9);
            cairo_arc(cr, x, MY(d), 2.6, 0, 2 * M_PI);
            cairo_fill(cr);
        }
    }
#undef MX
#undef MY
}

static int draw_figure(const char *path, const Summary *s, char *err)
{
    const char *ext = strrchr(path, '.');
    int panels = s->C > 0 && s->base_row >= 0 ? 2 : 1;
    double W = PANEL_W * panels, H = FIG_H;
    cairo_surface_t *sf;
    int png = 0;
    if (ext && strcmp(ext, ".pdf") == 0)
        sf = cairo_pdf_surface_create(path, W, H);
    else if (ext && strcmp(ext, ".svg") == 0)
        sf = cairo_svg_surface_create(path, W, H);
    else if (ext && strcmp(ext, ".png") == 0) {
        sf = cairo_image_surface_create(CAIRO_FORMAT_ARGB32, (int)W * 2, (int)H * 2);
        png = 1;
    } else
        return lmr_fail(err, LMR_EUSAGE, "--plot %s: the name must end in .png, .pdf or .svg", path);
    if (cairo_surface_status(sf) != CAIRO_STATUS_SUCCESS) {
        cairo_surface_destroy(sf);
        return lmr_fail(err, LMR_EIO, "%s: cannot create the figure", path);
    }
    cairo_t *cr = cairo_create(sf);
    if (png)
        cairo_scale(cr, 2, 2);
    cairo_set_source_rgb(cr, 1, 1, 1);
    cairo_paint(cr);
    cairo_select_font_face(cr, "sans-serif", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);
    draw_bars(cr, s, 0);
    if (panels == 2)
        draw_delta(cr, s, PANEL_W);
    cairo_destroy(cr);
    int rc = 0;
    if (png && cairo_surface_write_to_png(sf, path) != CAIRO_STATUS_SUCCESS)
        rc = lmr_fail(err, LMR_EIO, "%s: cannot write the PNG", path);
    cairo_surface_finish(sf);
    if (rc == 0 && cairo_surface_status(sf) != CAIRO_STATUS_SUCCESS)
        rc = lmr_fail(err, LMR_EIO, "%s: cannot write the figure", path);
    cairo_surface_destroy(sf);
    return rc;
}
#endif

// --- the command ---------------------------------------------------------------------------------

static void usage(FILE *f)
{
    fprintf(f, "usage: lmr-eval --summarize RUN.json... [--out PREFIX] [--plot F.png|pdf|svg] [--baseline M]\n"
               "Fold lmr-eval --json runs (methods x seeds) into one table: mean ± std over seeds per\n"
               "method, best of each column marked. Markdown on stdout; with --out also PREFIX.md,\n"
               "PREFIX.csv, PREFIX.json. --plot draws grouped bars with the seeds and, per class, each\n"
               "method's accuracy minus the baseline's (--baseline, default ce) against training count.\n");
}

static void summary_free(Summary *s)
{
    for (int i = 0; i < s->n_runs; i++) {
        free(s->runs[i].class_acc);
        free(s->runs[i].counts);
    }
    for (int i = 0; i < s->n_rows; i++) {
        free(s->rows[i].run);
        free(s->rows[i].class_mean);
    }
    free(s->runs);
    free(s->rows);
}

/* Group the runs by method (first appearance order), cells, best marks, per-class means. */
static int build(Summary *s, char *err)
{
    s->rows = calloc((size_t)s->n_runs, sizeof *s->rows);
    if (!s->rows)
        return lmr_fail(err, LMR_ENOMEM, "out of memory");
    for (int i = 0; i < s->n_runs; i++) {
        RunFile *rf = &s->runs[i];
        int r = 0;
        while (r < s->n_rows && strcmp(s->rows[r].method, rf->method) != 0)
            r++;
        if (r == s->n_rows) {
            snprintf(s->rows[r].method, sizeof s->rows[r].method, "%s", rf->method);
            if (!(s->rows[r].run = malloc((size_t)s->n_runs * sizeof(int))))
                return lmr_fail(err, LMR_ENOMEM, "out of memory");
            s->n_rows++;
        }
        Row *row = &s->rows[r];
        for (int j = 0; j < row->n; j++) {
            const RunFile *o = &s->runs[row->run[j]];
            if (o->has_seed && rf->has_seed && o->seed == rf->seed)
                return lmr_fail(err, LMR_EINVAL, "%s and %s are both method %s seed %lld: one run counted twice?",
                                o->path, rf->path, rf->method, rf->seed);
        }
        row->run[row->n++] = i;
    }
    double *x = malloc((size_t)s->n_runs * sizeof *x);
    if (!x)
        return lmr_fail(err, LMR_ENOMEM, "out of memory");
    for (int k = 0; k < N_COLS; k++) {
        int best = -1;
        for (int r = 0; r < s->n_rows; r++) {
            Row *row = &s->rows[r];
            for (int j = 0; j < row->n; j++)
                x[j] = s->runs[row->run[j]].v[k];
            row->cell[k] = summarize_cell(x, row->n);
            s->shown[k] |= row->cell[k].n > 0;
            if (row->cell[k].n && (best < 0 || row->cell[k].mean > s->rows[best].cell[k].mean))
                best = r;
        }
        for (int r = 0; r < s->n_rows && best >= 0; r++) // ties are all marked
            s->rows[r].best[k] = s->rows[r].cell[k].n && s->rows[r].cell[k].mean == s->rows[best].cell[k].mean;
    }
    free(x);
    // per-class means: only when every run has them, over the same classes and counts
    s->base_row = -1;
    s->C = s->runs[0].class_acc && s->runs[0].counts ? s->runs[0].C : 0;
    s->counts = s->runs[0].counts;
    for (int i = 1; i < s->n_runs && s->C; i++)
        if (!s->runs[i].class_acc || s->runs[i].C != s->C)
            s->C = 0;
    for (int r = 0; r < s->n_rows && s->C; r++) {
        Row *row = &s->rows[r];
        if (!(row->class_mean = malloc((size_t)s->C * sizeof *row->class_mean)))
            return lmr_fail(err, LMR_ENOMEM, "out of memory");
        for (int c = 0; c < s->C; c++) {
            double sum = 0;
            int ok = 1;
            for (int j = 0; j < row->n; j++) {
                double v = s->runs[row->run[j]].class_acc[c];
                ok &= v >= 0;
                sum += v;
            }
            row->class_mean[c] = ok ? sum / row->n : -1;
        }
        if (strcmp(row->method, s->baseline) == 0)
            s->base_row = r;
    }
    return 0;
}

int summarize_main(int argc, char **argv)
{
    enum { O_SUM = 256, O_OUT, O_PLOT, O_BASE, O_QUIET, O_HELP };
    static const struct option longs[] = {{"summarize", no_argument, 0, O_SUM},  {"out", required_argument, 0, O_OUT},
                                          {"plot", required_argument, 0, O_PLOT}, {"baseline", required_argument, 0, O_BASE},
                                          {"quiet", no_argument, 0, O_QUIET},    {"help", no_argument, 0, O_HELP},
                                          {0, 0, 0, 0}};
    const char *out = NULL, *plot = NULL, *baseline = "ce";
    int quiet = 0, opt;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "", longs, NULL)) != -1) {
        switch (opt) {
        case O_SUM: break;
        case O_OUT: out = optarg; break;
        case O_PLOT: plot = optarg; break;
        case O_BASE: baseline = optarg; break;
        case O_QUIET: quiet = 1; break;
        case O_HELP: usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind >= argc) {
        fprintf(stderr, "lmr-eval: --summarize needs one or more RUN.json files\n");
        return 2;
    }
    if (plot) {
        const char *e = strrchr(plot, '.');
        if (!e || (strcmp(e, ".png") && strcmp(e, ".pdf") && strcmp(e, ".svg"))) {
            fprintf(stderr, "lmr-eval: --plot %s: the name must end in .png, .pdf or .svg\n", plot);
            return 2;
        }
    }
    Summary s;
    memset(&s, 0, sizeof s);
    s.baseline = baseline;
    s.runs = calloc((size_t)(argc - optind), sizeof *s.runs);
    char err[LMR_ERRLEN] = "";
    int rc = s.runs ? 0 : lmr_fail(err, LMR_ENOMEM, "out of memory");
    for (int i = optind; i < argc && rc == 0; i++)
        if ((rc = read_run(argv[i], &s.runs[s.n_runs], err)) == 0)
            s.n_runs++;
    if (rc == 0)
        rc = build(&s, err);
    if (rc == 0) {
        write_markdown(stdout, &s);
        if (out) {
            char p[1100];
            snprintf(p, sizeof p, "%s.md", out);
            FILE *f = fopen(p, "w");
            if (!f)
                rc = lmr_fail(err, -errno, "%s: cannot write: %s", p, strerror(errno));
            else {
                write_markdown(f, &s);
                if (fclose(f) != 0)
                    rc = lmr_fail(err, LMR_EIO, "%s: write failed", p);
            }
            snprintf(p, sizeof p, "%s.csv", out);
            if (rc == 0)
                rc = write_csv(p, &s, err);
            snprintf(p, sizeof p, "%s.json", out);
            if (rc == 0)
                rc = write_json(p, &s, err);
        }
    }
    if (rc == 0 && plot) {
#ifdef LMR_HAVE_CAIRO
        if (s.C && s.base_row < 0 && !quiet)
            fprintf(stderr, "lmr-eval: note: no run of the baseline '%s': the figure has no per-class panel\n",
                    baseline);
        rc = draw_figure(plot, &s, err);
        plot_cleanup(); // cairo's and fontconfig's caches, for a clean exit
        if (rc == 0 && !quiet)
            printf("plot: %s\n", plot);
#else
        rc = lmr_fail(err, LMR_EUNSUPPORTED, "--plot: lmr-eval was built without cairo");
#endif
    }
    if (rc < 0)
        fprintf(stderr, "lmr-eval: %s\n", err);
    summary_free(&s);
    return rc < 0 ? (rc == LMR_EUSAGE ? 2 : 1) : 0;
}
