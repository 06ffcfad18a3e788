/* SSv2 / SSv2-LT json (jansson: in Debian, strict, and it reports the line and column of a
 * syntax error). The split file is walked one array element at a time so that every skipped
 * entry can be reported with the line it starts on; the labels file is one object
 * template -> "index". */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "annot_internal.h"

/* Index of a labels-json value: "12" or 12. @return 0 or -1. */
static int class_index(json_t *v, long *out)
{
    if (json_is_integer(v)) {
        json_int_t i = json_integer_value(v);
        if (i < 0 || i > INT32_MAX)
            return -1;
        *out = (long)i;
        return 0;
    }
    if (json_is_string(v))
        return annot_parse_int(json_string_value(v), 0, INT32_MAX, out);
    return -1;
}

static int json_fail(Manifest *log, const char *name, const json_error_t *e)
{
    return lmr_fail(log->last_error, LMR_EPARSE, "%s:%d:%d: %s", name, e->line, e->column, e->text);
}

/* Parse and check the labels object: every value an index in [0, n). */
static int labels_load(Manifest *log, const char *name, const char *buf, size_t len, json_t **out,
                       int *n_classes)
{
    json_error_t e;
    buf = annot_skip_bom(buf, &len);
    json_t *j = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &e);
    if (!j)
        return json_fail(log, name, &e);
    if (!json_is_object(j)) {
        json_decref(j);
        return lmr_fail(log->last_error, LMR_EPARSE,
                        "%s: not an SSv2 labels file: want an object template -> \"index\"", name);
    }
    int n = (int)json_object_size(j);
    const char *key;
    json_t *v;
    json_object_foreach(j, key, v) {
        long idx;
        if (class_index(v, &idx) || idx >= n) {
            lmr_fail(log->last_error, LMR_EPARSE,
                     "%s: template '%s': index is not a number in [0, %d)", name, key, n);
            json_decref(j);
            return LMR_EPARSE;
        }
    }
    *out = j;
    *n_classes = n;
    return 0;
}

int annot_classes_ssv2(AnnotClasses *c, Manifest *log, const char *name, const char *buf,
                       size_t len, int strict)
{
    (void)strict;
    json_t *j;
    int n;
    LMR_TRY(labels_load(log, name, buf, len, &j, &n));
    int rc = annot_classes_alloc(c, n);
    const char *key;
    json_t *v;
    json_object_foreach(j, key, v) {
        long idx = 0;
        class_index(v, &idx);
        if (rc < 0)
            break;
        if (c->names[idx]) {
            rc = lmr_fail(log->last_error, LMR_EPARSE, "%s: index %ld given to two templates", name, idx);
            break;
        }
        if (!(c->names[idx] = strdup(key)))
            rc = LMR_ENOMEM;
    }
    json_decref(j);
    return rc;
}

// --- split files --------------------------------------------------------------------------

typedef struct {
    Manifest *m;
    const AnnotOpts *o;
    const char *name;
    json_t *labels;
    int labelled; /* -1 until the first entry says */
    AnnotIdSet ids;
    char *tmpl;   /* scratch for the template without brackets */
    size_t tmpl_cap;
} SsRead;

static int ss_entry(SsRead *r, json_t *e, int64_t line)
{
    Manifest *m = r->m;
    int strict = r->o->strict;
    if (!json_is_object(e))
        return annot_skip(m, r->name, line, strict, "entry is not an object");
    json_t *jid = json_object_get(e, "id");
    char id[64], video[80];
    if (json_is_string(jid) && json_string_length(jid) > 0 && json_string_length(jid) < sizeof id &&
        !strchr(json_string_value(jid), '/') && !memchr(json_string_value(jid), 0, json_string_length(jid)))
        snprintf(id, sizeof id, "%s", json_string_value(jid));
    else if (json_is_integer(jid) && json_integer_value(jid) >= 0)
        snprintf(id, sizeof id, "%lld", (long long)json_integer_value(jid));
    else
        return annot_skip(m, r->name, line, strict, "missing or bad \"id\"");
    ManifestRow row = {.clip_id = id, .video = video, .start_sec = 0, .stop_sec = -1, .line = line};
    snprintf(video, sizeof video, "%s.webm", id);
    json_t *jt = json_object_get(e, "template");
    if (r->labelled < 0)
        r->labelled = jt != NULL;
    if (r->labelled) {
        if (!json_is_string(jt))
            return annot_skip(m, r->name, line, strict, "id %s: missing or bad \"template\"", id);
        size_t tl = json_string_length(jt);
        if (tl + 1 > r->tmpl_cap) {
            char *p = realloc(r->tmpl, tl + 1);
            if (!p)
                return LMR_ENOMEM;
            r->tmpl = p;
            r->tmpl_cap = tl + 1;
        }
        const char *s = json_string_value(jt);
        size_t k = 0;
        for (size_t i = 0; i < tl; i++)
            if (s[i] != '[' && s[i] != ']')
                r->tmpl[k++] = s[i];
        r->tmpl[k] = '\0';
        json_t *v = json_object_get(r->labels, r->tmpl);
        long idx;
        if (!v || k != strlen(r->tmpl))
            return annot_skip(m, r->name, line, strict, "id %s: unknown template '%s'", id, s);
        if (class_index(v, &idx) || idx >= m->n_classes)
            return annot_skip(m, r->name, line, strict, "id %s: class %ld out of range [0, %d)", id,
                              idx, m->n_classes);
        row.n_labels = 1;
        row.labels[0] = (int32_t)idx;
    }
    return annot_add_unique(m, &r->ids, &row, r->name, line, strict, "id");
}

/* Skip blanks, counting lines. */
static size_t skip_ws(const char *b, size_t pos, size_t len, int64_t *line)
{
    while (pos < len && (b[pos] == ' ' || b[pos] == '\t' || b[pos] == '\r' || b[pos] == '\n')) {
        if (b[pos] == '\n')
            (*line)++;
        pos++;
    }
    return pos;
}

static int64_t count_lines(const char *b, size_t from, size_t to)
{
    int64_t n = 0;
    const char *p = b + from, *end = b + to;
    while ((p = memchr(p, '\n', (size_t)(end - p))) != NULL) {
        n++;
        p++;
    }
    return n;
}

static int ss_split(SsRead *r, const char *b, size_t len)
{
    Manifest *m = r->m;
    int64_t line = 1;
    size_t pos = skip_ws(b, 0, len, &line);
    if (pos >= len || b[pos] != '[')
        return lmr_fail(m->last_error, LMR_EPARSE,
                        "%s:%lld: not an SSv2 split file: want a json list of entries", r->name,
                        (long long)line);
    pos = skip_ws(b, pos + 1, len, &line);
    if (pos < len && b[pos] == ']')
        pos++;
    else {
        for (;;) {
            json_error_t e;
            json_t *el = json_loadb(b + pos, len - pos,
                                    JSON_DISABLE_EOF_CHECK | JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &e);
            if (!el)
                return lmr_fail(m->last_error, LMR_EPARSE, "%s:%lld:%d: %s", r->name,
                                (long long)(line + e.line - 1), e.column, e.text);
            int rc = ss_entry(r, el, line);
            json_decref(el);
            if (rc < 0)
                return rc;
            size_t end = pos + (size_t)e.position;
            line += count_lines(b, pos, end);
            pos = skip_ws(b, end, len, &line);
            if (pos < len && b[pos] == ',') {
                pos = skip_ws(b, pos + 1, len, &line);
                continue;
            }
            if (pos < len && b[pos] == ']') {
                pos++;
                break;
            }
            return lmr_fail(m->last_error, LMR_EPARSE, "%s:%lld: want ',' or ']' after an entry",
                            r->name, (long long)line);
        }
    }
    pos = skip_ws(b, pos, len, &line);
    if (pos != len)
        return lmr_fail(m->last_error, LMR_EPARSE, "%s:%lld: text after the end of the list",
                        r->name, (long long)line);
    return 0;
}

int annot_load_ssv2(Manifest *m, const AnnotOpts *o, const char *buf, size_t len)
{
    if (!o->labels && !o->labels_data)
        return lmr_fail(m->last_error, LMR_EINVAL,
                        "ssv2 needs the labels file (something-something-v2-labels.json)");
    const char *lname = o->labels ? o->labels : "(memory)";
    char *owned;
    const char *lbuf;
    size_t llen;
    int rc = annot_bytes(o->labels, o->labels_data, o->labels_size, &owned, &lbuf, &llen);
    if (rc < 0)
        return lmr_fail(m->last_error, rc, "%s: %s", lname, lmr_strerror(rc));
    SsRead r = {.m = m, .o = o, .name = o->annotations ? o->annotations : "(memory)", .labelled = -1};
    annot_idset_init(&r.ids);
    rc = labels_load(m, lname, lbuf, llen, &r.labels, &m->n_classes);
    free(owned);
    if (rc < 0)
        return rc;
    AnnotClasses names; /* the templates, as class names */
    annot_classes_init(&names);
    if (annot_classes_alloc(&names, m->n_classes) < 0) {
        json_decref(r.labels);
        return LMR_ENOMEM;
    }
    const char *key;
    json_t *v;
    json_object_foreach(r.labels, key, v) {
        long idx = 0;
        if (class_index(v, &idx) == 0 && !names.names[idx] && !(names.names[idx] = strdup(key)))
            rc = LMR_ENOMEM;
    }
    annot_take_names(m, &names);
    annot_classes_free(&names);
    if (o->n_classes > 0)
        m->n_classes = o->n_classes;
    for (size_t i = 0; i < m->n_rows && rc == 0; i++)
        if (annot_idset_add(&r.ids, m->rows[i].clip_id) < 0)
            rc = LMR_ENOMEM;
    buf = annot_skip_bom(buf, &len);
    if (rc == 0)
        rc = ss_split(&r, buf, len);
    json_decref(r.labels);
    annot_idset_free(&r.ids);
    free(r.tmpl);
    return rc;
}
