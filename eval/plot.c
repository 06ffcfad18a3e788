/* The per-class accuracy plot: x = training clips of the class (log scale, decades labelled),
 * y = accuracy on the evaluation data, one colour and one marker shape per group (Okabe-Ito
 * colours, told apart with colour-blindness too), half-transparent markers so that equal points
 * show, a dashed line at each group's mean. The axes leave a margin, so classes at accuracy 0 or
 * 1 and 1-shot classes are not hidden by the frame. Panels share their x range; the legend sits
 * under each panel, where it hides no point. Cairo is optional at build time (LMR_HAVE_CAIRO);
 * without it the call fails with a clear reason. */
#include "plot.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "classes.h"

int plot_format(const char *path)
{
    const char *dot = path ? strrchr(path, '.') : NULL;
    if (!dot || strchr(dot, '/'))
        return -1;
    if (strcasecmp(dot, ".png") == 0)
        return PLOT_PNG;
    if (strcasecmp(dot, ".pdf") == 0)
        return PLOT_PDF;
    if (strcasecmp(dot, ".svg") == 0)
        return PLOT_SVG;
    return -1;
}

#ifdef LMR_HAVE_CAIRO
#include <cairo.h>
#ifdef CAIRO_HAS_PDF_SURFACE
#include <cairo-pdf.h>
#endif
#ifdef CAIRO_HAS_SVG_SURFACE
#include <cairo-svg.h>
#endif
#ifdef LMR_HAVE_FONTCONFIG
#include <fontconfig/fontconfig.h>
#endif

/* Panel geometry in points (pixels at scale 1): title, plot area, axis labels, legend rows. */
enum { PANEL_W = 560, MARGIN_L = 62, MARGIN_R = 18, MARGIN_T = 40, PLOT_H = 320, MARGIN_B = 106,
       PANEL_H = MARGIN_T + PLOT_H + MARGIN_B, CAPTION_H = 22 };
#define PNG_SCALE 1.5 /* PNG pixels per point: crisp on a screen and in a slide */
#define Y_MIN (-0.05) /* the margin that keeps accuracy 0 and 1 off the frame */
#define Y_MAX 1.05
#define MAX_LABELS 3  /* outliers labelled per panel */

/* Okabe & Ito's palette: head blue, tail orange, few reddish purple, medium bluish green. */
static const double group_rgb[LMR_N_GROUPS + 1][3] = {
    {0.000, 0.447, 0.698}, /* head */
    {0.902, 0.624, 0.000}, /* tail */
    {0.800, 0.475, 0.655}, /* few */
    {0.000, 0.620, 0.451}, /* medium */
    {0.400, 0.400, 0.400}, /* none */
};
/* Legend order: from the largest classes to the smallest, then classes in no group. */
static const int legend_order[LMR_N_GROUPS + 1] = {LMR_GROUP_HEAD, LMR_GROUP_MEDIUM, LMR_GROUP_TAIL,
                                                  LMR_GROUP_FEW, LMR_GROUP_NONE};

static int slot_of(int g) { return g >= 0 && g < LMR_N_GROUPS ? g : LMR_N_GROUPS; }

typedef struct {
    double x0, y0, w, h;    /* plot area in points */
    double lx_min, lx_max;  /* log10 range of the x axis */
} Frame;

static double map_lx(const Frame *f, double lx) { return f->x0 + (lx - f->lx_min) / (f->lx_max - f->lx_min) * f->w; }
static double map_x(const Frame *f, double count) { return map_lx(f, log10(count < 1 ? 1.0 : count)); }
static double map_y(const Frame *f, double acc) { return f->y0 + f->h - (acc - Y_MIN) / (Y_MAX - Y_MIN) * f->h; }

static void draw_text(cairo_t *cr, double x, double y, const char *s, double align_x)
{
    cairo_text_extents_t ext;
    cairo_text_extents(cr, s, &ext);
    cairo_move_to(cr, x - align_x * ext.x_advance, y);
    cairo_show_text(cr, s);
}

/* One marker of group g at (x, y): circle (head), square (tail), triangle (few), diamond
 * (medium), cross (none); filled half-transparent, outlined opaque. */
static void draw_marker(cairo_t *cr, int g, double x, double y, double r)
{
    const double *rgb = group_rgb[slot_of(g)];
    cairo_new_path(cr);
    switch (g) {
    case LMR_GROUP_HEAD: cairo_arc(cr, x, y, r, 0, 2 * M_PI); break;
    case LMR_GROUP_TAIL: cairo_rectangle(cr, x - 0.9 * r, y - 0.9 * r, 1.8 * r, 1.8 * r); break;
    case LMR_GROUP_FEW:
        cairo_move_to(cr, x, y - 1.2 * r);
        cairo_line_to(cr, x + 1.1 * r, y + 0.8 * r);
        cairo_line_to(cr, x - 1.1 * r, y + 0.8 * r);
        cairo_close_path(cr);
        break;
    case LMR_GROUP_MEDIUM:
        cairo_move_to(cr, x, y - 1.2 * r);
        cairo_line_to(cr, x + 1.2 * r, y);
        cairo_line_to(cr, x, y + 1.2 * r);
        cairo_line_to(cr, x - 1.2 * r, y);
        cairo_close_path(cr);
        break;
    default:
        cairo_move_to(cr, x - r, y - r);
        cairo_line_to(cr, x + r, y + r);
        cairo_move_to(cr, x + r, y - r);
        cairo_line_to(cr, x - r, y + r);
        cairo_set_source_rgba(cr, rgb[0], rgb[1], rgb[2], 0.9);
        cairo_set_line_width(cr, 1.2);
        cairo_stroke(cr);
        return;
    }
    cairo_set_source_rgba(cr, rgb[0], rgb[1], rgb[2], 0.45);
    cairo_fill_preserve(cr);
    cairo_set_source_rgba(cr, rgb[0], rgb[1], rgb[2], 0.95);
    cairo_set_line_width(cr, 0.9);
    cairo_stroke(cr);
}

static void draw_axes(cairo_t *cr, const Frame *f, int64_t few_max)
{
    char buf[32];
    cairo_set_font_size(cr, 11);
    cairo_set_line_width(cr, 1.0);
    for (int i = 0; i <= 5; i++) { // y ticks every 0.2, with a light grid
        double y = map_y(f, i * 0.2);
        cairo_set_source_rgb(cr, 0.9, 0.9, 0.9);
        cairo_move_to(cr, f->x0, y);
        cairo_line_to(cr, f->x0 + f->w, y);
        cairo_stroke(cr);
        cairo_set_source_rgb(cr, 0, 0, 0);
        cairo_move_to(cr, f->x0 - 4, y);
        cairo_line_to(cr, f->x0, y);
        cairo_stroke(cr);
        snprintf(buf, sizeof buf, "%.1f", i * 0.2);
        draw_text(cr, f->x0 - 7, y + 4, buf, 1.0);
    }
    for (int e = 0; e <= (int)floor(f->lx_max); e++) { // a tick per decade
        double x = map_lx(f, e);
        cairo_move_to(cr, x, f->y0 + f->h);
        cairo_line_to(cr, x, f->y0 + f->h + 4);
        cairo_stroke(cr);
        snprintf(buf, sizeof buf, "%.0f", pow(10.0, e));
        draw_text(cr, x, f->y0 + f->h + 16, buf, 0.5);
    }
    cairo_rectangle(cr, f->x0, f->y0, f->w, f->h);
    cairo_stroke(cr);
    if (few_max > 0) { // the few-shot boundary, between few_max and few_max + 1 clips
        double dash[] = {2.0, 3.0}, xf = map_x(f, (double)few_max + 0.5);
        cairo_set_source_rgb(cr, 0.35, 0.35, 0.35);
        cairo_set_dash(cr, dash, 2, 0);
        cairo_move_to(cr, xf, f->y0);
        cairo_line_to(cr, xf, f->y0 + f->h);
        cairo_stroke(cr);
        cairo_set_dash(cr, NULL, 0, 0);
    }
    cairo_set_source_rgb(cr, 0, 0, 0);
    cairo_set_font_size(cr, 12);
    draw_text(cr, f->x0 + f->w / 2, f->y0 + f->h + 34, "training clips of the class (log scale)", 0.5);
    cairo_save(cr);
    cairo_move_to(cr, f->x0 - 44, f->y0 + f->h / 2);
    cairo_rotate(cr, -M_PI / 2);
    cairo_text_extents_t ext;
    cairo_text_extents(cr, "per-class accuracy", &ext);
    cairo_rel_move_to(cr, -ext.width / 2, 0);
    cairo_show_text(cr, "per-class accuracy");
    cairo_restore(cr);
}

/* The classes farthest from their group's mean, labelled with their names. */
static void draw_outliers(cairo_t *cr, const PlotPanel *p, const Frame *f, const double *mean, int n_present)
{
    int pick[MAX_LABELS], n_pick = 0;
    if (n_present <= MAX_LABELS) // a handful of classes: nothing stands out
        return;
    for (int k = 0; k < MAX_LABELS; k++) {
        int best = -1;
        double best_dev = 0.25; // at least this far from the group mean
        for (int c = 0; c < p->n_classes; c++) {
            if (p->class_acc[c] < 0)
                continue;
            int taken = 0;
            for (int j = 0; j < n_pick; j++)
                taken |= pick[j] == c;
            double dev = fabs(p->class_acc[c] - mean[slot_of(p->groups[c])]);
            if (!taken && dev > best_dev)
                best = c, best_dev = dev;
        }
        if (best < 0)
            break;
        pick[n_pick++] = best;
    }
    char buf[40];
    double box[MAX_LABELS][4]; // labels drawn: x0, y0, x1, y1
    int n_box = 0;
    cairo_set_font_size(cr, 9);
    cairo_set_source_rgb(cr, 0.15, 0.15, 0.15);
    for (int k = 0; k < n_pick; k++) {
        int c = pick[k];
        const char *name = p->class_names && p->class_names[c] && p->class_names[c][0] ? p->class_names[c] : NULL;
        if (name)
            snprintf(buf, sizeof buf, "%.*s%s", 24, name, strlen(name) > 24 ? "..." : "");
        else
            snprintf(buf, sizeof buf, "class %d", c);
        cairo_text_extents_t ext;
        cairo_text_extents(cr, buf, &ext);
        double x = map_x(f, (double)p->train_counts[c]), y = map_y(f, p->class_acc[c]);
        int right = x > f->x0 + f->w * 0.7; // near the right edge: the label goes to the left
        double tx = right ? x - 6 - ext.x_advance : x + 6, ty = y < f->y0 + 12 ? y + 11 : y - 4;
        double b[4] = {tx - 1, ty - 9, tx + ext.x_advance + 1, ty + 2};
        int clash = 0; // a label over another is unreadable: the later one is left out
        for (int j = 0; j < n_box; j++)
            clash |= b[0] < box[j][2] && box[j][0] < b[2] && b[1] < box[j][3] && box[j][1] < b[3];
        if (clash)
            continue;
        memcpy(box[n_box++], b, sizeof b);
        draw_text(cr, tx, ty, buf, 0.0);
    }
}

static void draw_panel(cairo_t *cr, const PlotPanel *p, const Frame *f)
{
    double sum[LMR_N_GROUPS + 1] = {0}, mean[LMR_N_GROUPS + 1] = {0};
    int n[LMR_N_GROUPS + 1] = {0}, n_present = 0;
    for (int c = 0; c < p->n_classes; c++)
        if (p->class_acc[c] >= 0)
            sum[slot_of(p->groups[c])] += p->class_acc[c], n[slot_of(p->groups[c])]++, n_present++;
    for (int g = 0; g <= LMR_N_GROUPS; g++)
        mean[g] = n[g] ? sum[g] / n[g] : 0.0;
    draw_axes(cr, f, p->few_max);
    // Group means (dashed, under the points), then the points: largest groups first, so the
    // few-shot classes are drawn on top.
    double dash[] = {6.0, 4.0};
    cairo_set_line_width(cr, 1.3);
    for (int g = 0; g < LMR_N_GROUPS; g++) {
        if (!n[g])
            continue;
        cairo_set_source_rgba(cr, group_rgb[g][0], group_rgb[g][1], group_rgb[g][2], 0.9);
        cairo_set_dash(cr, dash, 2, 0);
        cairo_move_to(cr, f->x0, map_y(f, mean[g]));
        cairo_line_to(cr, f->x0 + f->w, map_y(f, mean[g]));
        cairo_stroke(cr);
        cairo_set_dash(cr, NULL, 0, 0);
    }
    for (int i = 0; i <= LMR_N_GROUPS; i++)
        for (int c = 0; c < p->n_classes; c++) {
            if (p->class_acc[c] < 0 || slot_of(p->groups[c]) != slot_of(legend_order[i]))
                continue;
            double dx = ((c * 7919) % 13 - 6) * 0.7; // equal points side by side, not stacked
            draw_marker(cr, p->groups[c], map_x(f, (double)p->train_counts[c]) + dx,
                        map_y(f, p->class_acc[c]), 3.6);
        }
    draw_outliers(cr, p, f, mean, n_present);

    // Legend: two columns under the axis label.
    char buf[96];
    int row = 0;
    cairo_set_font_size(cr, 11);
    for (int i = 0; i <= LMR_N_GROUPS + 1; i++) {
        double lx = f->x0 + (row % 2) * (f->w / 2), ly = f->y0 + f->h + 58 + 16 * (row / 2);
        if (i == LMR_N_GROUPS + 1) { // the few-shot boundary
            if (p->few_max <= 0)
                break;
            double fd[] = {2.0, 3.0};
            cairo_set_source_rgb(cr, 0.35, 0.35, 0.35);
            cairo_set_line_width(cr, 1.0);
            cairo_set_dash(cr, fd, 2, 0);
            cairo_move_to(cr, lx + 4, ly - 10);
            cairo_line_to(cr, lx + 4, ly + 2);
            cairo_stroke(cr);
            cairo_set_dash(cr, NULL, 0, 0);
            snprintf(buf, sizeof buf, "few-shot: <= %lld training clips", (long long)p->few_max);
            cairo_set_source_rgb(cr, 0, 0, 0);
            draw_text(cr, lx + 30, ly, buf, 0.0);
            break;
        }
        int g = legend_order[i], s = slot_of(g);
        if (!n[s])
            continue;
        draw_marker(cr, g, lx + 4, ly - 4, 3.6);
        if (g != LMR_GROUP_NONE) { // a dashed sample of the mean line
            cairo_set_source_rgb(cr, group_rgb[s][0], group_rgb[s][1], group_rgb[s][2]);
            cairo_set_line_width(cr, 1.3);
            cairo_set_dash(cr, dash, 2, 0);
            cairo_move_to(cr, lx + 11, ly - 4);
            cairo_line_to(cr, lx + 25, ly - 4);
            cairo_stroke(cr);
            cairo_set_dash(cr, NULL, 0, 0);
        }
        snprintf(buf, sizeof buf, "%s: %d class%s, mean %.3f", g == LMR_GROUP_NONE ? "no group" : classes_group_name(g),
                 n[s], n[s] == 1 ? "" : "es", mean[s]);
        cairo_set_source_rgb(cr, 0, 0, 0);
        draw_text(cr, lx + 30, ly, buf, 0.0);
        row++;
    }
    cairo_set_source_rgb(cr, 0, 0, 0);
    cairo_set_font_size(cr, 13);
    if (p->avg_class_acc >= 0)
        snprintf(buf, sizeof buf, "%s: avg class acc %.3f", p->title ? p->title : "", p->avg_class_acc);
    else
        snprintf(buf, sizeof buf, "%s", p->title ? p->title : "");
    draw_text(cr, f->x0 + f->w / 2, f->y0 - 14, buf, 0.5);
}

static void draw_figure(cairo_t *cr, const PlotPanel *panels, int n_panels, const char *caption)
{
    int64_t max_count = 1;
    for (int i = 0; i < n_panels; i++)
        for (int c = 0; c < panels[i].n_classes; c++)
            if (panels[i].train_counts[c] > max_count)
                max_count = panels[i].train_counts[c];
    // x from below 1 clip to a little past the largest class, whole decades labelled
    double top = ceil(log10((double)max_count) + 1e-9);
    Frame f = {0, MARGIN_T, PANEL_W - MARGIN_L - MARGIN_R, PLOT_H, log10(0.6), (top < 1.0 ? 1.0 : top) + 0.12};
    cairo_set_source_rgb(cr, 1, 1, 1);
    cairo_paint(cr);
    cairo_select_font_face(cr, "sans-serif", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);
    for (int i = 0; i < n_panels; i++) {
        f.x0 = PANEL_W * i + MARGIN_L;
        draw_panel(cr, &panels[i], &f);
    }
    if (caption && caption[0]) {
        cairo_set_source_rgb(cr, 0.3, 0.3, 0.3);
        cairo_set_font_size(cr, 10);
        draw_text(cr, MARGIN_L, PANEL_H + CAPTION_H - 8, caption, 0.0);
    }
}

int plot_write(const char *path, const PlotPanel *panels, int n_panels, const char *caption, char *err)
{
    if (n_panels <= 0)
        return lmr_fail(err, LMR_EINVAL, "plot: no panel to draw");
    int fmt = plot_format(path);
    if (fmt < 0)
        return lmr_fail(err, LMR_EINVAL, "%s: the plot's name must end in .png, .pdf or .svg", path);
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    double w = (double)PANEL_W * n_panels, h = PANEL_H + (caption && caption[0] ? CAPTION_H : 0);
    cairo_surface_t *surf = NULL;
    if (fmt == PLOT_PNG)
        surf = cairo_image_surface_create(CAIRO_FORMAT_RGB24, (int)(w * PNG_SCALE), (int)(h * PNG_SCALE));
#ifdef CAIRO_HAS_PDF_SURFACE
    else if (fmt == PLOT_PDF)
        surf = cairo_pdf_surface_create(tmp, w, h);
#endif
#ifdef CAIRO_HAS_SVG_SURFACE
    else if (fmt == PLOT_SVG)
        surf = cairo_svg_surface_create(tmp, w, h);
#endif
    if (!surf)
        return lmr_fail(err, LMR_EUNSUPPORTED, "%s: this cairo cannot write %s", path, fmt == PLOT_PDF ? "PDF" : "SVG");
    cairo_t *cr = cairo_create(surf);
    if (fmt == PLOT_PNG)
        cairo_scale(cr, PNG_SCALE, PNG_SCALE);
    draw_figure(cr, panels, n_panels, caption);
    cairo_status_t st = cairo_status(cr);
    cairo_destroy(cr);
    if (st == CAIRO_STATUS_SUCCESS && fmt == PLOT_PNG)
        st = cairo_surface_write_to_png(surf, tmp);
    cairo_surface_finish(surf); // PDF and SVG are written out here
    if (st == CAIRO_STATUS_SUCCESS)
        st = cairo_surface_status(surf);
    cairo_surface_destroy(surf);
    if (st != CAIRO_STATUS_SUCCESS) {
        remove(tmp);
        return lmr_fail(err, LMR_EIO, "%s: cannot write the plot: %s", tmp, cairo_status_to_string(st));
    }
    if (rename(tmp, path) != 0) {
        int e = errno;
        remove(tmp);
        return lmr_fail(err, -e, "%s: cannot rename to %s: %s", tmp, path, strerror(e));
    }
    return 0;
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

int plot_write(const char *path, const PlotPanel *panels, int n_panels, const char *caption, char *err)
{
    (void)panels;
    (void)n_panels;
    (void)caption;
    return lmr_fail(err, LMR_EUNSUPPORTED, "%s: lmr-eval was built without cairo (install libcairo2-dev)", path);
}

#endif
