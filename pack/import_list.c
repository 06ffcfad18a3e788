/* The importer's two list sources: one .npy file per clip, DIR/<clip_id>.npy, named either by a
 * manifest CSV (--from-npy; only its clip_id and labels columns are read, so the video and time
 * columns may be empty) or by a VideoLT list file (--from-videolt). The list is read whole first
 * (bad lines are reported then); the .npy files are read one at a time into one reused buffer. */
#include "import.h"

#include <csv.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "annotations.h"

typedef struct {
    Importer *im;
    Manifest m;          /* the clips: clip_id, labels, line */
    size_t next;
    const char *dir;
    size_t dir_len;      /* of dir without trailing slashes */
    const char *list;    /* the list file, for messages */
    int too_long;
    NpyArray npy;
    char path[4096];
} ListSrc;

static int list_next(ImportSource *s, ImportClip *c, char *err)
{
    (void)err;
    ListSrc *l = s->self;
    if (l->next >= l->m.n_rows)
        return 0;
    const ManifestRow *r = &l->m.rows[l->next++];
    c->id = r->clip_id;
    c->n_labels = r->n_labels;
    memcpy(c->labels, r->labels, sizeof c->labels[0] * (size_t)r->n_labels);
    l->too_long = snprintf(l->path, sizeof l->path, "%.*s/%s.npy", (int)l->dir_len, l->dir, r->clip_id) >=
                  (int)sizeof l->path;
    c->where = l->too_long ? r->clip_id : l->path;
    return 1;
}

static int list_read(ImportSource *s, ImportArray *a, int *fatal, char *msg)
{
    ListSrc *l = s->self;
    if (l->too_long)
        return lmr_fail(msg, LMR_EINVAL, "path too long");
    int rc = npy_read_any(&l->npy, l->path, msg);
    if (rc < 0) {
        *fatal = rc == LMR_ENOMEM && l->npy.buf.cap == 0;
        return rc;
    }
    const NpyArray *n = &l->npy;
    a->file_bytes = n->file_bytes;
    a->dtype = n->dtype;
    int64_t v = n->ndim == 3 ? n->shape[0] : 1, t = n->ndim == 1 ? 1 : n->shape[n->ndim - 2];
    if (v < 1 || t < 1 || n->cols < 1) {
        char shp[80];
        int sl = 0;
        for (int k = 0; k < n->ndim; k++)
            sl += snprintf(shp + sl, sizeof shp - (size_t)sl, "%s%lld", k ? ", " : "", (long long)n->shape[k]);
        return lmr_fail(msg, LMR_EUNSUPPORTED, "shape (%s%s) has no features", shp, n->ndim == 1 ? "," : "");
    }
    a->views = (uint32_t)v; /* each dimension is below 2^31 (npy.c) */
    a->t = (uint32_t)t;
    a->d = (uint32_t)n->cols;
    a->data = n->data;
    return 0;
}

static void list_free(ListSrc *l)
{
    if (!l)
        return;
    manifest_free(&l->m);
    npy_free(&l->npy);
    free(l);
}

static int list_new(ImportSource *s, Importer *im, const char *dir, const char *list, const char *noun, ListSrc **out)
{
    memset(s, 0, sizeof *s);
    shardmeta_init(&s->meta);
    ListSrc *l = calloc(1, sizeof *l);
    if (!l)
        return LMR_ENOMEM;
    l->im = im;
    l->dir = dir;
    l->dir_len = strlen(dir);
    while (l->dir_len > 1 && dir[l->dir_len - 1] == '/') /* "feats/" + "/x.npy" */
        l->dir_len--;
    l->list = list;
    manifest_init(&l->m);
    npy_init(&l->npy);
    s->self = l;
    s->next = list_next;
    s->read = list_read;
    s->noun = noun;
    *out = l;
    return 0;
}

static void list_close(ImportSource *s)
{
    list_free(s->self);
    s->self = NULL;
    shardmeta_free(&s->meta);
}

void import_npy_close(ImportSource *s) { list_close(s); }
void import_videolt_close(ImportSource *s) { list_close(s); }

// --- VideoLT lists ------------------------------------------------------------------------------

/* "train" from ".../train.lst". */
static void split_name(const char *path, char *out, size_t cap)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    size_t n = strlen(base);
    const char *dot = strrchr(base, '.');
    if (dot && dot != base)
        n = (size_t)(dot - base);
    if (n >= cap)
        n = cap - 1;
    memcpy(out, base, n);
    out[n] = '\0';
}

typedef struct {
    ListSrc *l;
    LmrWarnFn warn;
    void *user;
    int strict;
} ListWarn;

/* The list reader's warnings: lines of the list file are entries refused ("LIST:LINE: reason"),
 * anything else is a note. */
static void list_warn(void *user, const char *msg)
{
    ListWarn *lw = user;
    const char *list = lw->l->list;
    size_t n = strlen(list);
    if (strncmp(msg, list, n) == 0 && msg[n] == ':') {
        if (lw->strict) /* the reader fails with this line */
            return;
        const char *sep = strstr(msg + n + 1, ": ");
        char where[4096];
        size_t wl = sep ? (size_t)(sep - msg) : strlen(msg);
        snprintf(where, sizeof where, "%.*s", (int)(wl < sizeof where ? wl : sizeof where - 1), msg);
        importer_bad_entry(lw->l->im, where, "", sep ? sep + 2 : msg, NULL);
        return;
    }
    if (lw->warn)
        lw->warn(lw->user, msg);
}

int import_videolt_open(ImportSource *s, Importer *im, const char *dir, const char *list, const char *counts,
                        int n_classes, int strict, LmrWarnFn warn, void *user, char *err)
{
    ListSrc *l;
    if (list_new(s, im, dir, list, ".npy file", &l))
        return lmr_fail(err, LMR_ENOMEM, "out of memory");
    ListWarn lw = {l, warn, user, strict};
    l->m.warn = list_warn;
    l->m.warn_user = &lw;
    AnnotClasses cls;
    annot_classes_init(&cls);
    cls.warn = warn;
    cls.warn_user = user;
    int rc = 0;
    if (counts) { /* class count and names; the list's labels are then checked against it */
        rc = annot_classes_read(&cls, "videolt", counts, NULL, 0, strict);
        if (rc < 0) {
            lmr_fail(err, rc, "%s", cls.last_error);
            goto done;
        }
        if (cls.n_classes == 0) {
            rc = lmr_fail(err, LMR_EPARSE, "%s: no class could be read from it (%zu lines refused)", counts,
                          cls.n_skipped);
            goto done;
        }
        if (n_classes > 0 && n_classes != cls.n_classes) {
            rc = lmr_fail(err, LMR_EMISMATCH, "%s lists %d classes, but %d are expected (--classes or the shard)",
                          counts, cls.n_classes, n_classes);
            goto done;
        }
        n_classes = cls.n_classes;
        if ((rc = shardmeta_set_class_names(&s->meta, (const char *const *)cls.names, cls.n_classes))) {
            lmr_fail(err, rc, "class names: out of memory");
            goto done;
        }
    }
    AnnotOpts ao;
    annot_opts_init(&ao);
    ao.dataset = "videolt";
    ao.annotations = list;
    ao.n_classes = n_classes;
    ao.strict = strict;
    rc = annotations_load(&l->m, &ao);
    l->m.warn = NULL; /* lw lives on this stack frame */
    if (rc < 0) {
        lmr_fail(err, rc, "%s", l->m.last_error);
        goto done;
    }
    if (l->m.n_rows == 0) {
        rc = lmr_fail(err, LMR_EPARSE, "no clips listed in %s%s", list, l->m.n_skipped ? " (every line was refused)" : "");
        goto done;
    }
    snprintf(s->meta.dataset, sizeof s->meta.dataset, "videolt");
    split_name(list, s->meta.split, sizeof s->meta.split);
    snprintf(s->meta.backbone, sizeof s->meta.backbone, "videolt-npy");
    s->meta.n_classes = l->m.n_classes;
    s->listed = l->m.n_rows;
done:
    annot_classes_free(&cls);
    if (rc)
        list_close(s);
    return rc;
}

// --- manifest CSV ---------------------------------------------------------------------------------

typedef struct {
    ListSrc *l;
    const char *name;
    int n_classes;
    int64_t line;         /* of the text fed to the parser */
    int64_t n_bad;        /* rows refused */
    int header_done, n_cols, col_id, col_labels;
    char **field;         /* the current row's fields */
    int n_field, cap_field;
    ImportIdSet ids;
    int rc;               /* the first error that ends the read */
    char *err;
} CsvRead;

static void csv_field(void *s, size_t len, void *user)
{
    CsvRead *r = user;
    if (r->rc)
        return;
    if (r->n_field == r->cap_field) {
        int cap = r->cap_field ? 2 * r->cap_field : 16;
        char **f = realloc(r->field, sizeof *f * (size_t)cap);
        if (!f) {
            r->rc = lmr_fail(r->err, LMR_ENOMEM, "%s: out of memory", r->name);
            return;
        }
        r->field = f;
        r->cap_field = cap;
    }
    char *v = malloc(len + 1);
    if (!v) {
        r->rc = lmr_fail(r->err, LMR_ENOMEM, "%s: out of memory", r->name);
        return;
    }
    if (len)
        memcpy(v, s, len);
    v[len] = 0;
    r->field[r->n_field++] = v;
}

static int bad_row(CsvRead *r, const char *id, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int bad_row(CsvRead *r, const char *id, const char *fmt, ...)
{
    char where[4200], why[LMR_ERRLEN];
    snprintf(where, sizeof where, "%s:%lld", r->name, (long long)r->line);
    r->n_bad++;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    return importer_bad_entry(r->l->im, where, id, why, r->err);
}

/* "3;17;42" (or "") into labels. @return 0, or -1 with why set. */
static int parse_labels(const char *s, int32_t *labels, int *n, char *why, size_t cap)
{
    *n = 0;
    while (*s == ' ')
        s++;
    if (!*s)
        return 0;
    for (;;) {
        char *end;
        errno = 0;
        long v = strtol(s, &end, 10);
        while (*end == ' ')
            end++;
        if (end == s || *s == '-' || *s == '+' || errno || v > INT32_MAX || (*end && *end != ';')) {
            size_t len = strcspn(s, ";");
            snprintf(why, cap, "bad label '%.*s' (want class indices separated by ';')", (int)(len > 40 ? 40 : len), s);
            return -1;
        }
        for (int k = 0; k < *n; k++)
            if (labels[k] == v) {
                snprintf(why, cap, "label %ld listed twice", v);
                return -1;
            }
        if (*n == LMR_MAX_LABELS) {
            snprintf(why, cap, "more than %d labels", LMR_MAX_LABELS);
            return -1;
        }
        labels[(*n)++] = (int32_t)v;
        if (!*end)
            return 0;
        s = end + 1;
        while (*s == ' ')
            s++;
    }
}

/* An id that names a file under DIR: no absolute path, no '..' component, no empty component. */
static int id_stays_inside(const char *id)
{
    if (id[0] == '/')
        return 0;
    for (const char *p = id; *p;) {
        size_t n = strcspn(p, "/");
        if (n == 0 || (n == 2 && p[0] == '.' && p[1] == '.') || (n == 1 && p[0] == '.'))
            return 0;
        p += n;
        if (*p == '/' && !*++p)
            return 0;
    }
    return 1;
}

static int csv_row_done(CsvRead *r)
{
    char **f = r->field;
    int n = r->n_field;
    if (!r->header_done) {
        r->header_done = 1;
        r->n_cols = n;
        r->col_id = r->col_labels = -1;
        for (int k = 0; k < n; k++) {
            const char *name = f[k];
            if (k == 0 && (unsigned char)name[0] == 0xEF && (unsigned char)name[1] == 0xBB &&
                (unsigned char)name[2] == 0xBF)
                name += 3; /* a UTF-8 byte order mark */
            if (strcmp(name, "clip_id") == 0 && r->col_id < 0)
                r->col_id = k;
            else if (strcmp(name, "labels") == 0 && r->col_labels < 0)
                r->col_labels = k;
        }
        if (r->col_id < 0 || r->col_labels < 0)
            return lmr_fail(r->err, LMR_EPARSE,
                            "%s:%lld: not a manifest: the header names no %s column (want clip_id,video,start_sec,"
                            "stop_sec,labels; only clip_id and labels are read)",
                            r->name, (long long)r->line, r->col_id < 0 ? "clip_id" : "labels");
        return 0;
    }
    if (n != r->n_cols)
        return bad_row(r, n > r->col_id ? f[r->col_id] : "", "wrong column count: %d, the header has %d", n,
                       r->n_cols);
    const char *id = f[r->col_id];
    if (!id[0])
        return bad_row(r, "", "empty clip_id");
    if (strlen(id) > 1024)
        return bad_row(r, "", "clip_id longer than 1024 bytes");
    if (!id_stays_inside(id))
        return bad_row(r, id, "clip_id '%s' does not name a file under the features folder", id);
    ManifestRow row;
    memset(&row, 0, sizeof row);
    char why[256];
    if (parse_labels(f[r->col_labels], row.labels, &row.n_labels, why, sizeof why))
        return bad_row(r, id, "%s", why);
    for (int k = 0; k < row.n_labels; k++)
        if (r->n_classes > 0 && row.labels[k] >= r->n_classes)
            return bad_row(r, id, "class %d out of range [0, %d)", row.labels[k], r->n_classes);
    int64_t first = import_idset_get(&r->ids, id);
    if (first >= 0)
        return bad_row(r, id, "clip_id listed twice (first at line %lld)", (long long)first);
    row.clip_id = (char *)id;
    row.video = "";
    row.line = r->line;
    if (import_idset_put(&r->ids, id, r->line) || manifest_add(&r->l->m, &row))
        return lmr_fail(r->err, LMR_ENOMEM, "%s: out of memory", r->name);
    return 0;
}

static void csv_row(int c, void *user)
{
    (void)c;
    CsvRead *r = user;
    if (!r->rc)
        r->rc = csv_row_done(r);
    for (int k = 0; k < r->n_field; k++)
        free(r->field[k]);
    r->n_field = 0;
}

static int read_manifest(CsvRead *r, const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return lmr_fail(r->err, -errno, "%s: %s", path, strerror(errno));
    struct csv_parser p;
    if (csv_init(&p, CSV_APPEND_NULL) != 0) {
        fclose(f);
        return lmr_fail(r->err, LMR_ENOMEM, "%s: out of memory", path);
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    /* one line at a time, so that a row's end is known to be on the line just fed */
    while (!r->rc && (len = getline(&line, &cap, f)) >= 0) {
        r->line++;
        if (csv_parse(&p, line, (size_t)len, csv_field, csv_row, r) != (size_t)len && !r->rc)
            r->rc = lmr_fail(r->err, LMR_EPARSE, "%s:%lld: %s", path, (long long)r->line,
                             csv_strerror(csv_error(&p)));
    }
    if (!r->rc && ferror(f))
        r->rc = lmr_fail(r->err, LMR_EIO, "%s: read error", path);
    if (!r->rc)
        csv_fini(&p, csv_field, csv_row, r);
    for (int k = 0; k < r->n_field; k++)
        free(r->field[k]);
    r->n_field = 0;
    csv_free(&p);
    free(line);
    fclose(f);
    if (!r->rc && !r->header_done)
        r->rc = lmr_fail(r->err, LMR_EPARSE, "%s: empty file, want a manifest header (clip_id,...,labels)", path);
    return r->rc;
}

int import_npy_open(ImportSource *s, Importer *im, const char *dir, const char *manifest, const char *class_names,
                    int n_classes, int strict, char *err)
{
    ListSrc *l;
    if (list_new(s, im, dir, manifest, ".npy file", &l))
        return lmr_fail(err, LMR_ENOMEM, "out of memory");
    int rc = 0;
    if (class_names) {
        if ((rc = import_read_class_names(class_names, &s->meta, err)))
            goto done;
        if (n_classes > 0 && n_classes != s->meta.n_classes) {
            rc = lmr_fail(err, LMR_EMISMATCH, "%s names %d classes, but %d are expected (--classes or the shard)",
                          class_names, s->meta.n_classes, n_classes);
            goto done;
        }
        n_classes = s->meta.n_classes;
    }
    CsvRead r = {.l = l, .name = manifest, .n_classes = n_classes, .err = err};
    (void)strict; /* the importer's own option decides (importer_bad_entry) */
    rc = read_manifest(&r, manifest);
    free(r.field);
    import_idset_free(&r.ids);
    if (rc)
        goto done;
    if (l->m.n_rows == 0) {
        rc = lmr_fail(err, LMR_EPARSE, "no clips listed in %s%s", manifest, r.n_bad ? " (every line was refused)" : "");
        goto done;
    }
    snprintf(s->meta.backbone, sizeof s->meta.backbone, "npy");
    if (n_classes > s->meta.n_classes)
        s->meta.n_classes = n_classes;
    s->listed = l->m.n_rows;
done:
    if (rc)
        list_close(s);
    return rc;
}
