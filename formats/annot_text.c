/* Text plumbing for the annotation readers: whole-file reads, a libcsv walker that keeps line
 * numbers (libcsv itself does not) by feeding one line at a time, skip reporting in the
 * "FILE:LINE: reason" form, strict numbers and a small open-addressing set of clip ids. */
#include "annot_internal.h"

#include <csv.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

int annot_slurp(const char *path, char **data, size_t *len)
{
    *data = NULL;
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f)
        return -errno;
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    int rc = 0;
    if (!buf) {
        rc = LMR_ENOMEM;
        goto fail;
    }
    for (;;) {
        if (cap - n < 2) {
            char *p = realloc(buf, cap * 2);
            if (!p) {
                rc = LMR_ENOMEM;
                goto fail;
            }
            buf = p;
            cap *= 2;
        }
        size_t got = fread(buf + n, 1, cap - n - 1, f);
        n += got;
        if (got == 0) {
            if (ferror(f)) {
                rc = LMR_EIO;
                goto fail;
            }
            break;
        }
    }
    fclose(f);
    buf[n] = '\0';
    *data = buf;
    *len = n;
    return 0;
fail:
    free(buf);
    fclose(f);
    return rc;
}

const char *annot_skip_bom(const char *p, size_t *len)
{
    if (*len >= 3 && (unsigned char)p[0] == 0xEF && (unsigned char)p[1] == 0xBB &&
        (unsigned char)p[2] == 0xBF) {
        *len -= 3;
        return p + 3;
    }
    return p;
}

int annot_skip(Manifest *m, const char *name, int64_t line, int strict, const char *fmt, ...)
{
    char reason[LMR_ERRLEN], msg[LMR_ERRLEN + 300];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof reason, fmt, ap);
    va_end(ap);
    snprintf(msg, sizeof msg, "%s:%lld: %s", name, (long long)line, reason);
    if (strict) /* the error carries the message: not reported twice */
        return lmr_fail(m->last_error, LMR_EPARSE, "%s", msg);
    m->n_skipped++;
    if (m->warn)
        m->warn(m->warn_user, msg);
    return 0;
}

void annot_note(Manifest *m, const char *fmt, ...)
{
    if (!m->note)
        return;
    char msg[LMR_ERRLEN + 300];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    m->note(m->warn_user, msg);
}

int annot_check_label(long v, long n_classes, char *why, size_t cap)
{
    long hi = n_classes > 0 ? n_classes : MANIFEST_MAX_CLASSES;
    if (v < 0)
        snprintf(why, cap, "class %ld is negative", v);
    else if (v >= hi && n_classes > 0)
        snprintf(why, cap, "class %ld out of range [0, %ld)", v, hi);
    else if (v >= hi)
        snprintf(why, cap, "class %ld out of range [0, %ld): lmr takes at most 2^24 classes", v, hi);
    else
        return 0;
    return -1;
}

int annot_parse_int(const char *s, long lo, long hi, long *out)
{
    while (*s == ' ' || *s == '\t')
        s++;
    if (*s == '\0')
        return -1;
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    while (*end == ' ' || *end == '\t')
        end++;
    if (errno || *end != '\0' || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

int annot_parse_double(const char *s, double *out)
{
    while (*s == ' ' || *s == '\t')
        s++;
    if (*s == '\0')
        return -1;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    while (*end == ' ' || *end == '\t')
        end++;
    if (errno || *end != '\0' || !isfinite(v))
        return -1;
    *out = v;
    return 0;
}

// --- CSV walking ----------------------------------------------------------------------------

typedef struct {
    LmrBuf text;        /* this row's fields, NUL-separated */
    size_t *offs;       /* field start offsets into text */
    int n, cap;
    char **ptrs;        /* built at row end */
    int ptr_cap;
    int64_t line, row_line;
    int rc, oom, nul; /* nul: a field of this row holds a NUL byte */
    AnnotRowFn fn;
    void *user;
    Manifest *m;
    const char *name;
    int strict;
} CsvWalk;

static void walk_field(void *s, size_t len, void *data)
{
    CsvWalk *w = data;
    if (w->oom)
        return;
    if (w->n == 0)
        w->row_line = w->line;
    if (w->n == w->cap) {
        int cap = w->cap ? w->cap * 2 : 32;
        size_t *o = realloc(w->offs, (size_t)cap * sizeof *o);
        if (!o) {
            w->oom = 1;
            return;
        }
        w->offs = o;
        w->cap = cap;
    }
    if (buf_reserve(&w->text, w->text.len + len + 1)) {
        w->oom = 1;
        return;
    }
    w->offs[w->n++] = w->text.len;
    if (len && s && memchr(s, 0, len))
        w->nul = 1; /* a C string would end there: the id or path would be cut short */
    if (len && s)
        memcpy(w->text.data + w->text.len, s, len);
    w->text.data[w->text.len + len] = '\0';
    w->text.len += len + 1;
}

static void walk_row(int c, void *data)
{
    (void)c;
    CsvWalk *w = data;
    if (w->oom || w->rc < 0 || w->n == 0 || w->nul) {
        if (!w->oom && w->rc >= 0 && w->n > 0) {
            int rc = annot_skip(w->m, w->name, w->row_line, w->strict, "NUL byte in a field");
            if (rc < 0)
                w->rc = rc;
        }
        w->n = 0;
        w->nul = 0;
        w->text.len = 0;
        return;
    }
    if (w->n > w->ptr_cap) {
        char **p = realloc(w->ptrs, (size_t)w->cap * sizeof *p);
        if (!p) {
            w->oom = 1;
            return;
        }
        w->ptrs = p;
        w->ptr_cap = w->cap;
    }
    for (int i = 0; i < w->n; i++)
        w->ptrs[i] = (char *)w->text.data + w->offs[i];
    int rc = w->fn(w->user, w->ptrs, w->n, w->row_line);
    if (rc < 0)
        w->rc = rc;
    w->n = 0;
    w->text.len = 0;
}

static int walk_reset(struct csv_parser *p, CsvWalk *w)
{
    csv_free(p);
    w->n = 0;
    w->nul = 0;
    w->text.len = 0;
    return csv_init(p, CSV_STRICT | CSV_STRICT_FINI | CSV_APPEND_NULL) ? LMR_ENOMEM : 0;
}

int annot_csv_walk(const char *buf, size_t len, const char *name, Manifest *m, int strict,
                   AnnotRowFn fn, void *user)
{
    CsvWalk w = {.fn = fn, .user = user, .m = m, .name = name, .strict = strict};
    struct csv_parser p;
    buf_init(&w.text);
    if (csv_init(&p, CSV_STRICT | CSV_STRICT_FINI | CSV_APPEND_NULL))
        return LMR_ENOMEM;
    int rc = 0;
    const char *pos = buf, *end = buf + len;
    while (pos < end && rc == 0) {
        const char *nl = memchr(pos, '\n', (size_t)(end - pos));
        size_t n = nl ? (size_t)(nl - pos) + 1 : (size_t)(end - pos);
        w.line++;
        size_t used = csv_parse(&p, pos, n, walk_field, walk_row, &w);
        pos += n;
        if (w.oom) {
            rc = LMR_ENOMEM;
            break;
        }
        if (w.rc < 0) {
            rc = w.rc;
            break;
        }
        /* A quote problem, or a quoted field still open at the end of the line: none of the
         * published files has a line break inside a field, so drop this line and resync. */
        int open = nl && p.pstate != 0 && p.quoted;
        if (used != n || open) {
            int64_t at = w.n ? w.row_line : w.line;
            rc = annot_skip(m, name, at, strict, "%s",
                            used != n ? "malformed quoting" : "unterminated quote");
            if (rc == 0)
                rc = walk_reset(&p, &w);
        }
    }
    if (rc == 0) {
        if (csv_fini(&p, walk_field, walk_row, &w) != 0)
            rc = annot_skip(m, name, w.line, strict, "unterminated quote at end of file");
        if (w.oom)
            rc = LMR_ENOMEM;
        else if (rc == 0 && w.rc < 0)
            rc = w.rc;
    }
    csv_free(&p);
    buf_free(&w.text);
    free(w.offs);
    free(w.ptrs);
    return rc;
}

// --- id set ---------------------------------------------------------------------------------

void annot_idset_init(AnnotIdSet *s) { memset(s, 0, sizeof *s); }

void annot_idset_free(AnnotIdSet *s)
{
    if (!s)
        return;
    free(s->slots);
    memset(s, 0, sizeof *s);
}

static size_t idset_slot(const AnnotIdSet *s, uint64_t h, const char *id)
{
    size_t mask = s->cap - 1, i = (size_t)h & mask;
    while (s->slots[i].id && (s->slots[i].hash != h || strcmp(s->slots[i].id, id) != 0))
        i = (i + 1) & mask;
    return i;
}

int annot_idset_add(AnnotIdSet *s, const char *id)
{
    if ((s->n + 1) * 2 > s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 1024;
        AnnotIdSet grown = {.slots = calloc(cap, sizeof *grown.slots), .cap = cap};
        if (!grown.slots)
            return LMR_ENOMEM;
        for (size_t i = 0; i < s->cap; i++)
            if (s->slots[i].id)
                grown.slots[idset_slot(&grown, s->slots[i].hash, s->slots[i].id)] = s->slots[i];
        free(s->slots);
        s->slots = grown.slots;
        s->cap = cap;
    }
    uint64_t h = XXH3_64bits(id, strlen(id));
    size_t i = idset_slot(s, h, id);
    if (s->slots[i].id)
        return 0;
    s->slots[i].hash = h;
    s->slots[i].id = id;
    s->n++;
    return 1;
}

int annot_add_unique(Manifest *m, AnnotIdSet *ids, const ManifestRow *row, const char *name, int64_t line,
                     int strict, const char *what)
{
    size_t id_len = strlen(row->clip_id);
    if (id_len > MANIFEST_MAX_ID)
        return annot_skip(m, name, line, strict, "%s of %zu bytes ('%.40s...'): a record holds ids of at most %d bytes",
                          what, id_len, row->clip_id, MANIFEST_MAX_ID);
    int rc = manifest_add(m, row);
    if (rc < 0)
        return rc;
    rc = annot_idset_add(ids, m->rows[m->n_rows - 1].clip_id); /* the row's own copy: outlives the set */
    if (rc < 0)
        return rc;
    if (rc == 0) {
        ManifestRow *last = &m->rows[--m->n_rows];
        rc = annot_skip(m, name, line, strict, "duplicate %s '%s'", what, last->clip_id);
        free(last->clip_id);
        free(last->video);
        return rc;
    }
    return 0;
}
