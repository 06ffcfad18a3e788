/* The per-class accuracy plot: x = training clips of the class (log scale, decades labelled),
 * y = accuracy on the evaluation data, one colour per group, a dashed line at each group's
 * mean. Panels share their x range so two checkpoints can be compared by eye. Cairo is
 * optional at build time (LMR_HAVE_CAIRO); without it the call fails with a clear reason. */
#include "plot.h"

#include <math.h>
#include <stdio.h>

#include "classes.h"

#ifdef LMR_HAVE_CAIRO
#include <cairo.h>
#ifdef LMR_HAVE_FONTCONFIG
#include <fontconfig/fontconfig.h>
#endif

enum { PANEL_W = 560, PANEL_H = 420, MARGIN_L = 62, MARGIN_R = 18, MARGIN_T = 34, MARGIN_B = 48 };

static const double group_rgb[LMR_N_GROUPS + 1][3] = {
    {0.12, 0.47, 0.71}, /* head: blue */
    {1.00, 0.50, 0.05}, /* tail: orange */
    {0.84, 0.15, 0.16}, /* few: red */
    {0.17, 0.63, 0.17}, /* medium: green */
    {0.50, 0.50, 0.50}, /* none: grey */
};
/* Legend order: from the largest classes to the smallest. */
static const int legend_order[LMR_N_GROUPS] = {LMR_GROUP_HEAD, LMR_GROUP_MEDIUM, LMR_GROUP_TAIL,
                                              LMR_GROUP_FEW};

static const double *colour_of(int g)
{
    return group_rgb[g >= 0 && g < LMR_N_GROUPS ? g : LMR_N_GROUPS];
}

typedef struct {
    double x0, y0, w, h;    /* plot area in device units */
    double lx_min, lx_max;  /* log10 range of the x axis */
} Frame;

static double map_x(const Frame *f, int64_t count)
{
    double lx = log10(count < 1 ? 1.0 : (double)count);
    return f->x0 + (lx - f->lx_min) / (f->lx_max - f->lx_min) * f->w;
}

static double map_y(const Frame *f, double acc)
{
    return f->y0 + f->h - acc * f->h;
}

static void draw_text(cairo_t *cr, double x, double y, const char *s, double align_x)
{
    cairo_text_extents_t ext;
    cairo_text_extents(cr, s, &ext);
    cairo_move_to(cr, x - align_x * ext.width - ext.x_bearing, y);
    cairo_show_text(cr, s);
}

static void draw_axes(cairo_t *cr, const Frame *f)
{
    char buf[32];
    cairo_set_source_rgb(cr, 0, 0, 0);
    cairo_set_line_width(cr, 1.0);
    cairo_rectangle(cr, f->x0, f->y0, f->w, f->h);
    cairo_stroke(cr);
    cairo_set_font_size(cr, 11);
    for (int i = 0; i <= 5; i++) { // y ticks every 0.2
        double y = map_y(f, i * 0.2);
        cairo_move_to(cr, f->x0 - 4, y);
        cairo_line_to(cr, f->x0, y);
        cairo_stroke(cr);
        snprintf(buf, sizeof buf, "%.1f", i * 0.2);
        draw_text(cr, f->x0 - 7, y + 4, buf, 1.0);
    }
    for (int e = (int)f->lx_min; e <= (int)f->lx_max; e++) { // a tick per decade
        double x = f->x0 + (e - f->lx_min) / (f->lx_max - f->lx_min) * f->w;
        cairo_move_to(cr, x, f->y0 + f->h);
        cairo_line_to(cr, x, f->y0 + f->h + 4);
        cairo_stroke(cr);
        snprintf(buf, sizeof buf, "%.0f", pow(10.0, e));
        draw_text(cr, x, f->y0 + f->h + 16, buf, 0.5);
    }
    // The few-shot boundary: the classes LMR is about sit left of it.
    double xf = map_x(f, LMR_FEW_MAX);
    if (xf > f->x0 && xf < f->x0 + f->w) {
        cairo_set_source_rgba(cr, 0.84, 0.15, 0.16, 0.35);
        cairo_move_to(cr, xf, f->y0);
        cairo_line_to(cr, xf, f->y0 + f->h);
        cairo_stroke(cr);
    }
    cairo_set_source_rgb(cr, 0, 0, 0);
    cairo_set_font_size(cr, 12);
    draw_text(cr, f->x0 + f->w / 2, f->y0 + f->h + 36, "training clips of the class (log scale)", 0.5);
    cairo_save(cr);
    cairo_move_to(cr, f->x0 - 44, f->y0 + f->h / 2);
    cairo_rotate(cr, -M_PI / 2);
    cairo_text_extents_t ext;
    cairo_text_extents(cr, "per-class accuracy", &ext);
    cairo_rel_move_to(cr, -ext.width / 2, 0);
    cairo_show_text(cr, "per-class accuracy");
    cairo_restore(cr);
}

static void draw_panel(cairo_t *cr, const PlotPanel *p, const Frame *f)
{
    double sum[LMR_N_GROUPS] = {0};
    int n[LMR_N_GROUPS] = {0};
    draw_axes(cr, f);
    for (int c = 0; c < p->n_classes; c++) {
        if (p->class_acc[c] < 0)
            continue;
        int g = p->groups[c];
        const double *rgb = colour_of(g);
        double jitter = ((c * 7919) % 13 - 6) * 0.0015; // keep equal points apart
        cairo_set_source_rgba(cr, rgb[0], rgb[1], rgb[2], 0.8);
        double y = p->class_acc[c] + jitter;
        cairo_arc(cr, map_x(f, p->train_counts[c]), map_y(f, y < 0 ? 0 : y > 1 ? 1 : y), 3.2, 0, 2 * M_PI);
        cairo_fill(cr);
        if (g >= 0 && g < LMR_N_GROUPS)
            sum[g] += p->class_acc[c], n[g]++;
    }
    // Group means as dashed lines, and the legend with them in the lower right corner, where
    // a long-tailed plot has no points (large classes with a low accuracy).
    double dash[] = {5.0, 4.0};
    char buf[64];
    int row = 0, n_rows = 0;
    for (int g = 0; g < LMR_N_GROUPS; g++)
        n_rows += n[g] > 0;
    cairo_set_font_size(cr, 11);
    for (int i = 0; i < LMR_N_GROUPS; i++) {
        int g = legend_order[i];
        if (!n[g])
            continue;
        const double *rgb = colour_of(g);
        double mean = sum[g] / n[g];
        cairo_set_source_rgb(cr, rgb[0], rgb[1], rgb[2]);
        cairo_set_dash(cr, dash, 2, 0);
        cairo_move_to(cr, f->x0, map_y(f, mean));
        cairo_line_to(cr, f->x0 + f->w, map_y(f, mean));
        cairo_stroke(cr);
        cairo_set_dash(cr, NULL, 0, 0);
        snprintf(buf, sizeof buf, "%s (%d classes, mean %.3f)", classes_group_name(g), n[g], mean);
        cairo_text_extents_t ext;
        cairo_text_extents(cr, buf, &ext);
        double ly = f->y0 + f->h - 10 - 15 * (n_rows - 1 - row++);
        double lx = f->x0 + f->w - 10 - ext.x_advance;
        cairo_arc(cr, lx - 9, ly - 4, 3.5, 0, 2 * M_PI);
        cairo_fill(cr);
        cairo_set_source_rgb(cr, 0, 0, 0);
        draw_text(cr, lx, ly, buf, 0.0);
    }
    cairo_set_source_rgb(cr, 0, 0, 0);
    cairo_set_font_size(cr, 13);
    draw_text(cr, f->x0 + f->w / 2, f->y0 - 12, p->title ? p->title : "", 0.5);
}

int plot_write_png(const char *path, const PlotPanel *panels, int n_panels, char *err)
{
    if (n_panels <= 0)
        return lmr_fail(err, LMR_EINVAL, "plot: no panel to draw");
    int64_t max_count = 1;
    for (int i = 0; i < n_panels; i++)
        for (int c = 0; c < panels[i].n_classes; c++)
            if (panels[i].train_counts[c] > max_count)
                max_count = panels[i].train_counts[c];
    Frame f = {0, MARGIN_T, PANEL_W - MARGIN_L - MARGIN_R, PANEL_H - MARGIN_T - MARGIN_B, 0.0,
               ceil(log10((double)max_count) + 1e-9)};
    if (f.lx_max < 1.0)
        f.lx_max = 1.0;
    cairo_surface_t *surf = cairo_image_surface_create(CAIRO_FORMAT_RGB24, PANEL_W * n_panels, PANEL_H);
    cairo_t *cr = cairo_create(surf);
    cairo_set_source_rgb(cr, 1, 1, 1);
    cairo_paint(cr);
    cairo_select_font_face(cr, "sans-serif", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);
    for (int i = 0; i < n_panels; i++) {
        f.x0 = PANEL_W * i + MARGIN_L;
        draw_panel(cr, &panels[i], &f);
    }
    int rc = 0;
    cairo_status_t st = cairo_status(cr);
    if (st == CAIRO_STATUS_SUCCESS)
        st = cairo_surface_write_to_png(surf, path);
    if (st != CAIRO_STATUS_SUCCESS)
        rc = lmr_fail(err, LMR_EIO, "%s: cannot write the plot: %s", path, cairo_status_to_string(st));
    cairo_destroy(cr);
    cairo_surface_destroy(surf);
    return rc;
}

void plot_cleanup(void)
{
    cairo_debug_reset_static_data();
#ifdef LMR_HAVE_FONTCONFIG
    FcFini();
#endif
}

#else

void plot_cleanup(void) {}

int plot_write_png(const char *path, const PlotPanel *panels, int n_panels, char *err)
{
    (void)panels;
    (void)n_panels;
    return lmr_fail(err, LMR_EUNSUPPORTED, "%s: lmr-eval was built without cairo (install libcairo2-dev)", path);
}

#endif
