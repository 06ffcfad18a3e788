/* VideoLT list files: `<video_id> <c>[,<c>...]` per line (train.lst, validate.lst, test.lst,
 * multi-label) and `<Name> <idx> <count>` (count-labels-train.lst, where a name may hold
 * spaces: idx and count are the last two fields). Plain whitespace-separated text, so no CSV
 * library: lines are split in place. */
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "annot_internal.h"

/* Calls fn on each line (CR stripped, NUL-terminated copy) with its 1-based number; blank
 * lines are passed over, a line holding a NUL byte is skipped through annot_skip (m, name). */
typedef int (*LineFn)(void *user, char *line, int64_t no);

static int each_line(const char *buf, size_t len, LineFn fn, void *user, Manifest *m, const char *name,
                     int strict)
{
    LmrBuf tmp;
    buf_init(&tmp);
    buf = annot_skip_bom(buf, &len);
    int64_t no = 0;
    int rc = 0;
    const char *pos = buf, *end = buf + len;
    while (pos < end && rc == 0) {
        const char *nl = memchr(pos, '\n', (size_t)(end - pos));
        size_t n = nl ? (size_t)(nl - pos) : (size_t)(end - pos);
        const char *next = nl ? nl + 1 : end;
        no++;
        if (memchr(pos, 0, n)) {
            pos = next;
            rc = annot_skip(m, name, no, strict, "NUL byte in the line");
            continue;
        }
        if (buf_reserve(&tmp, n + 1)) {
            rc = LMR_ENOMEM;
            break;
        }
        memcpy(tmp.data, pos, n);
        while (n && (tmp.data[n - 1] == '\r' || tmp.data[n - 1] == ' ' || tmp.data[n - 1] == '\t'))
            n--;
        tmp.data[n] = '\0';
        pos = next;
        char *s = (char *)tmp.data;
        while (*s == ' ' || *s == '\t')
            s++;
        if (*s)
            rc = fn(user, s, no);
    }
    buf_free(&tmp);
    return rc;
}

/* Split s in place at blanks into at most max fields. @return the field count (max + 1 when
 * there are more). */
static int split_ws(char *s, char **f, int max)
{
    int n = 0;
    while (*s) {
        while (*s == ' ' || *s == '\t')
            *s++ = '\0';
        if (!*s)
            break;
        if (n == max)
            return max + 1;
        f[n++] = s;
        while (*s && *s != ' ' && *s != '\t')
            s++;
    }
    return n;
}

typedef struct {
    Manifest *m;
    const char *name;
    int strict, known_classes;
    AnnotIdSet ids;
} ListRead;

static int list_line(void *user, char *line, int64_t no)
{
    ListRead *r = user;
    Manifest *m = r->m;
    char *f[3];
    int n = split_ws(line, f, 2);
    if (n != 2)
        return annot_skip(m, r->name, no, r->strict, "wrong field count: %d, want 2 (<video_id> <c>[,<c>...])",
                          n > 2 ? 3 : n);
    if (strchr(f[0], '/') || strlen(f[0]) > 200)
        return annot_skip(m, r->name, no, r->strict, "bad video id '%s'", f[0]);
    char video[256];
    snprintf(video, sizeof video, "%s.mp4", f[0]);
    ManifestRow row = {.clip_id = f[0], .video = video, .start_sec = 0, .stop_sec = -1, .line = no};
    char *s = f[1];
    for (;;) {
        char *comma = strchr(s, ',');
        if (comma)
            *comma = '\0';
        long c;
        char why[160];
        if (annot_parse_int(s, LONG_MIN, LONG_MAX, &c))
            return annot_skip(m, r->name, no, r->strict, "bad class number '%s'", s);
        if (annot_check_label(c, r->known_classes ? m->n_classes : 0, why, sizeof why))
            return annot_skip(m, r->name, no, r->strict, "%s", why);
        for (int k = 0; k < row.n_labels; k++)
            if (row.labels[k] == c)
                return annot_skip(m, r->name, no, r->strict, "class %ld listed twice", c);
        if (row.n_labels == LMR_MAX_LABELS)
            return annot_skip(m, r->name, no, r->strict, "more than %d labels", LMR_MAX_LABELS);
        row.labels[row.n_labels++] = (int32_t)c;
        if (!comma)
            break;
        s = comma + 1;
    }
    return annot_add_unique(m, &r->ids, &row, r->name, no, r->strict, "video id");
}

int annot_load_videolt(Manifest *m, const AnnotOpts *o, const char *buf, size_t len)
{
    ListRead r = {.m = m, .name = o->annotations ? o->annotations : "(memory)", .strict = o->strict};
    int rc = 0;
    m->n_classes = 0;
    if (o->n_classes > 0 && o->n_classes <= MANIFEST_MAX_CLASSES) {
        m->n_classes = o->n_classes;
    } else if (o->labels || o->labels_data) {
        AnnotClasses c;
        annot_classes_init(&c);
        c.warn = m->warn;
        c.warn_user = m->warn_user;
        rc = annot_classes_read(&c, "videolt", o->labels, o->labels_data, o->labels_size, o->strict);
        m->n_skipped += c.n_skipped;
        if (rc < 0)
            memcpy(m->last_error, c.last_error, sizeof m->last_error);
        m->n_classes = c.n_classes;
        if (rc == 0)
            annot_take_names(m, &c);
        annot_classes_free(&c);
        if (rc < 0)
            return rc;
    }
    r.known_classes = m->n_classes > 0;
    annot_idset_init(&r.ids);
    for (size_t i = 0; i < m->n_rows && rc == 0; i++)
        if (annot_idset_add(&r.ids, m->rows[i].clip_id) < 0)
            rc = LMR_ENOMEM;
    if (rc == 0)
        rc = each_line(buf, len, list_line, &r, m, r.name, r.strict);
    annot_idset_free(&r.ids);
    if (rc == 0 && !r.known_classes)
        m->n_classes = annot_max_label_plus_one(m);
    return rc;
}

// --- count-labels-train.lst -------------------------------------------------------------------

typedef struct {
    Manifest *log;
    const char *name;
    int strict, n, cap;
    char **names;
    int32_t *idx;
    int64_t *counts, *lines;
} CountRead;

static int count_line(void *user, char *line, int64_t no)
{
    CountRead *r = user;
    /* Name (may hold blanks), then idx and count: take the last two fields. */
    char *end = line + strlen(line), *f[2];
    for (int k = 1; k >= 0; k--) {
        char *sp = end;
        while (sp > line && sp[-1] != ' ' && sp[-1] != '\t')
            sp--;
        f[k] = sp;
        if (sp == line)
            return annot_skip(r->log, r->name, no, r->strict, "wrong field count, want <Name> <idx> <count>");
        end = sp;
        while (end > line && (end[-1] == ' ' || end[-1] == '\t'))
            end--;
        *end = '\0';
    }
    if (end == line)
        return annot_skip(r->log, r->name, no, r->strict, "wrong field count, want <Name> <idx> <count>");
    long idx, count;
    double dcount;
    if (annot_parse_int(f[0], 0, 1 << 20, &idx))
        return annot_skip(r->log, r->name, no, r->strict, "bad class index '%s'", f[0]);
    /* The published count-labels-train.lst writes its counts as floats ("137.0"): an
     * integer-valued number is a count whatever its spelling. */
    if (annot_parse_int(f[1], 0, INT32_MAX, &count)) {
        if (annot_parse_double(f[1], &dcount) || dcount < 0 || dcount > INT32_MAX || dcount != floor(dcount))
            return annot_skip(r->log, r->name, no, r->strict, "bad count '%s'", f[1]);
        count = (long)dcount;
    }
    if (r->n == r->cap) {
        int cap = r->cap ? r->cap * 2 : 1024;
        char **names = realloc(r->names, (size_t)cap * sizeof *names);
        if (names)
            r->names = names;
        int32_t *ix = realloc(r->idx, (size_t)cap * sizeof *ix);
        if (ix)
            r->idx = ix;
        int64_t *counts = realloc(r->counts, (size_t)cap * sizeof *counts);
        if (counts)
            r->counts = counts;
        int64_t *lines = realloc(r->lines, (size_t)cap * sizeof *lines);
        if (lines)
            r->lines = lines;
        if (!names || !ix || !counts || !lines)
            return LMR_ENOMEM;
        r->cap = cap;
    }
    if (!(r->names[r->n] = strdup(line)))
        return LMR_ENOMEM;
    r->idx[r->n] = (int32_t)idx;
    r->counts[r->n] = count;
    r->lines[r->n++] = no;
    return 0;
}

int annot_classes_videolt(AnnotClasses *c, Manifest *log, const char *name, const char *buf,
                          size_t len, int strict)
{
    CountRead r = {.log = log, .name = name, .strict = strict};
    size_t skipped0 = log->n_skipped;
    int rc = each_line(buf, len, count_line, &r, log, name, strict);
    if (rc == 0 && r.n == 0 && log->n_skipped > skipped0)
        rc = lmr_fail(log->last_error, LMR_EPARSE, "%s: none of its %zu lines could be read: not a "
                      "VideoLT class count list (<Name> <idx> <count>)", name, log->n_skipped - skipped0);
    int n = 0;
    for (int i = 0; i < r.n; i++)
        if (r.idx[i] >= n)
            n = r.idx[i] + 1;
    if (rc == 0)
        rc = annot_classes_alloc(c, n);
    for (int i = 0; i < r.n && rc == 0; i++) {
        if (c->names[r.idx[i]]) {
            rc = annot_skip(log, name, r.lines[i], strict, "duplicate class index %d", (int)r.idx[i]);
            continue;
        }
        c->names[r.idx[i]] = r.names[i];
        c->counts[r.idx[i]] = r.counts[i];
        r.names[i] = NULL;
    }
    for (int i = 0; i < r.n; i++)
        free(r.names[i]);
    free(r.names);
    free(r.idx);
    free(r.counts);
    free(r.lines);
    return rc;
}
