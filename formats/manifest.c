/* The manifest CSV (DESIGN section 5): `clip_id,video,start_sec,stop_sec,labels`, labels
 * ';'-separated, empty for unlabelled clips. Read with libcsv through the line-aware walker
 * in annot_text.c; written with csv_fwrite quoting only the fields that need it. */
#include "manifest.h"

#include <csv.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "annot_internal.h"

void manifest_init(Manifest *m)
{
    memset(m, 0, sizeof *m);
    strcpy(m->dataset, "manifest");
}

void manifest_free(Manifest *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < m->n_rows; i++) {
        free(m->rows[i].clip_id);
        free(m->rows[i].video);
    }
    free(m->rows);
    m->rows = NULL;
    m->n_rows = m->cap = 0;
    for (int i = 0; i < m->n_class_names; i++)
        free(m->class_names[i]);
    free(m->class_names);
    m->class_names = NULL;
    m->n_class_names = 0;
}

int manifest_add(Manifest *m, const ManifestRow *row)
{
    if (row->n_labels < 0 || row->n_labels > LMR_MAX_LABELS || !row->clip_id || !row->video)
        return LMR_EINVAL;
    if (m->n_rows == m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 256;
        ManifestRow *r = realloc(m->rows, cap * sizeof *r);
        if (!r)
            return LMR_ENOMEM;
        m->rows = r;
        m->cap = cap;
    }
    ManifestRow *r = &m->rows[m->n_rows];
    *r = *row;
    r->clip_id = strdup(row->clip_id);
    r->video = strdup(row->video);
    if (!r->clip_id || !r->video) {
        free(r->clip_id);
        free(r->video);
        return LMR_ENOMEM;
    }
    m->n_rows++;
    return 0;
}

// --- reading --------------------------------------------------------------------------------

typedef struct {
    Manifest *m;
    const char *name;
    int strict, seen_header;
    AnnotIdSet ids;
} ManifestRead;

/* Parse "3;17;42" (or "") into labels, each in range (annot_check_label). @return 0, or -1
 * with why set. */
static int parse_label_list(const char *s, int n_classes, int32_t *labels, int *n, char *why, size_t cap)
{
    *n = 0;
    while (*s == ' ')
        s++;
    if (*s == '\0')
        return 0;
    char tok[32];
    for (;;) {
        const char *sep = strchr(s, ';');
        size_t len = sep ? (size_t)(sep - s) : strlen(s);
        long v;
        if (len >= sizeof tok) {
            snprintf(why, cap, "bad label: '%.40s'", s);
            return -1;
        }
        memcpy(tok, s, len);
        tok[len] = '\0';
        if (annot_parse_int(tok, LONG_MIN, LONG_MAX, &v)) {
            snprintf(why, cap, "bad label: '%s'", tok);
            return -1;
        }
        if (annot_check_label(v, n_classes, why, cap))
            return -1;
        for (int k = 0; k < *n; k++)
            if (labels[k] == v) {
                snprintf(why, cap, "class %ld listed twice", v);
                return -1;
            }
        if (*n == LMR_MAX_LABELS) {
            snprintf(why, cap, "more than %d labels", LMR_MAX_LABELS);
            return -1;
        }
        labels[(*n)++] = (int32_t)v;
        if (!sep)
            return 0;
        s = sep + 1;
    }
}

static int manifest_row(void *user, char **f, int n, int64_t line)
{
    ManifestRead *r = user;
    Manifest *m = r->m;
    if (!r->seen_header) {
        r->seen_header = 1;
        if (n == 5 && strcmp(f[0], "clip_id") == 0)
            return 0;
        return lmr_fail(m->last_error, LMR_EPARSE,
                        "%s:%lld: not a manifest: want the header clip_id,video,start_sec,stop_sec,labels",
                        r->name, (long long)line);
    }
    if (n != 5)
        return annot_skip(m, r->name, line, r->strict, "wrong column count: %d, want 5", n);
    ManifestRow row = {.clip_id = f[0], .video = f[1], .line = line};
    char why[200];
    if (f[0][0] == '\0')
        return annot_skip(m, r->name, line, r->strict, "empty clip_id");
    if (f[1][0] == '\0')
        return annot_skip(m, r->name, line, r->strict, "empty video");
    if (f[2][0] == '\0')
        row.start_sec = 0;
    else if (annot_parse_double(f[2], &row.start_sec))
        return annot_skip(m, r->name, line, r->strict, "bad number in start_sec: '%s'", f[2]);
    else if (row.start_sec < 0)
        return annot_skip(m, r->name, line, r->strict, "negative start_sec %g", row.start_sec);
    if (f[3][0] == '\0')
        row.stop_sec = -1; /* to the end of the video */
    else if (annot_parse_double(f[3], &row.stop_sec))
        return annot_skip(m, r->name, line, r->strict, "bad number in stop_sec: '%s'", f[3]);
    else if (row.stop_sec < 0)
        return annot_skip(m, r->name, line, r->strict,
                          "negative stop_sec %g (leave it empty for \"to the end of the video\")", row.stop_sec);
    else if (row.stop_sec < row.start_sec)
        return annot_skip(m, r->name, line, r->strict, "stop_sec %g before start_sec %g",
                          row.stop_sec, row.start_sec);
    if (parse_label_list(f[4], m->n_classes, row.labels, &row.n_labels, why, sizeof why))
        return annot_skip(m, r->name, line, r->strict, "%s", why);
    return annot_add_unique(m, &r->ids, &row, r->name, line, r->strict, "clip_id");
}

int manifest_read_mem(Manifest *m, const char *buf, size_t len, const char *name, int strict)
{
    ManifestRead r = {.m = m, .name = name, .strict = strict};
    annot_idset_init(&r.ids);
    for (size_t i = 0; i < m->n_rows; i++)
        if (annot_idset_add(&r.ids, m->rows[i].clip_id) < 0) {
            annot_idset_free(&r.ids);
            return LMR_ENOMEM;
        }
    buf = annot_skip_bom(buf, &len);
    int rc = annot_csv_walk(buf, len, name, m, strict, manifest_row, &r);
    if (rc == 0 && !r.seen_header)
        rc = lmr_fail(m->last_error, LMR_EPARSE, "%s: empty file, want a manifest header", name);
    annot_idset_free(&r.ids);
    return rc;
}

int manifest_read(Manifest *m, const char *path, int strict)
{
    char *buf;
    size_t len;
    int rc = annot_slurp(path, &buf, &len);
    if (rc < 0)
        return lmr_fail(m->last_error, rc, "%s: %s", path, lmr_strerror(rc));
    rc = manifest_read_mem(m, buf, len, path, strict);
    free(buf);
    return rc;
}

// --- writing --------------------------------------------------------------------------------

static int put_field(FILE *f, const char *s)
{
    size_t n = strlen(s);
    /* quote what libcsv would split on or trim (blanks at either end) */
    if (strpbrk(s, ",\"\r\n") || (n && (s[0] == ' ' || s[0] == '\t' || s[n - 1] == ' ' || s[n - 1] == '\t')))
        return csv_fwrite(f, s, n) == 0 ? 0 : -1;
    return fputs(s, f) < 0 ? -1 : 0;
}

/* Shortest of %.15g / %.17g that reads back as the same double. */
static void fmt_double(char *out, size_t cap, double v)
{
    snprintf(out, cap, "%.15g", v);
    if (strtod(out, NULL) != v)
        snprintf(out, cap, "%.17g", v);
}

int manifest_write(const Manifest *m, FILE *f)
{
    int bad = fputs("clip_id,video,start_sec,stop_sec,labels\n", f) < 0;
    char num[40];
    for (size_t i = 0; i < m->n_rows && !bad; i++) {
        const ManifestRow *r = &m->rows[i];
        bad |= put_field(f, r->clip_id);
        bad |= fputc(',', f) == EOF;
        bad |= put_field(f, r->video);
        fmt_double(num, sizeof num, r->start_sec);
        bad |= fprintf(f, ",%s,", num) < 0;
        if (r->stop_sec >= 0) { /* to the end: left empty */
            fmt_double(num, sizeof num, r->stop_sec);
            bad |= fputs(num, f) < 0;
        }
        bad |= fputc(',', f) == EOF;
        for (int k = 0; k < r->n_labels; k++)
            bad |= fprintf(f, k ? ";%d" : "%d", (int)r->labels[k]) < 0;
        bad |= fputc('\n', f) == EOF;
    }
    if (bad || fflush(f) != 0 || ferror(f))
        return LMR_EIO;
    return 0;
}
