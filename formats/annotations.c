/* Dataset annotation readers: the entry point, EPIC-KITCHENS-100 csv files (libcsv, columns found
 * by header name so the 15-column train/validation files and the test timestamps file read the
 * same way) and class lists. SSv2 json is in annot_json.c, VideoLT lists in annot_list.c. */
#include "annotations.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "annot_internal.h"

void annot_opts_init(AnnotOpts *o)
{
    memset(o, 0, sizeof *o);
    o->target = ANNOT_TARGET_VERB;
    o->epic_layout = ANNOT_EPIC_VIDEOS;
}

int annot_bytes(const char *path, const char *data, size_t size, char **owned, const char **buf,
                size_t *len)
{
    *owned = NULL;
    if (data) {
        *buf = data;
        *len = size;
        return 0;
    }
    if (!path)
        return LMR_EINVAL;
    int rc = annot_slurp(path, owned, len);
    *buf = *owned;
    return rc;
}

int annot_epic_fps(const char *video_id)
{
    const char *u = strrchr(video_id, '_');
    if (!u)
        return 60;
    size_t n = 0;
    while (isdigit((unsigned char)u[1 + n]))
        n++;
    return n >= 3 && u[1 + n] == '\0' ? 50 : 60;
}

int annot_parse_timestamp(const char *s, double *sec)
{
    int v[3] = {0, 0, 0};
    const char *p = s;
    for (int k = 0; k < 3; k++) {
        int digits = 0;
        while (isdigit((unsigned char)*p) && digits < 6) {
            v[k] = v[k] * 10 + (*p - '0');
            p++;
            digits++;
        }
        if (digits == 0 || (k > 0 && digits != 2))
            return -1;
        if (k < 2 && *p++ != ':')
            return -1;
    }
    if (v[1] > 59 || v[2] > 59)
        return -1;
    double frac = 0, scale = 0.1;
    if (*p == '.') {
        p++;
        if (!isdigit((unsigned char)*p))
            return -1;
        for (int digits = 0; isdigit((unsigned char)*p); p++, digits++) {
            if (digits >= 9)
                return -1;
            frac += (*p - '0') * scale;
            scale /= 10;
        }
    }
    if (*p != '\0')
        return -1;
    *sec = v[0] * 3600.0 + v[1] * 60.0 + v[2] + frac;
    return 0;
}

// --- EPIC-KITCHENS-100 split files -------------------------------------------------------

enum { EC_NARRATION_ID, EC_PARTICIPANT, EC_VIDEO, EC_START_TS, EC_STOP_TS, EC_START_FRAME,
       EC_STOP_FRAME, EC_VERB_CLASS, EC_NOUN_CLASS, EC_N };
static const char *const epic_cols[EC_N] = {
    "narration_id", "participant_id", "video_id", "start_timestamp", "stop_timestamp",
    "start_frame", "stop_frame", "verb_class", "noun_class"};

typedef struct {
    Manifest *m;
    const AnnotOpts *o;
    const char *name;
    int n_cols, col[EC_N], label_col;
    int seen_header;
    AnnotIdSet ids;
    char video[512];
} EpicRead;

static int epic_header(EpicRead *r, char **f, int n, int64_t line)
{
    for (int k = 0; k < EC_N; k++)
        r->col[k] = -1;
    AnnotIdSet names;
    annot_idset_init(&names);
    int rc = 0;
    for (int i = 0; i < n && rc == 0; i++) {
        int added = annot_idset_add(&names, f[i]);
        if (added < 0)
            rc = added;
        else if (added == 0) /* which of the two would be read is a guess: refuse */
            rc = lmr_fail(r->m->last_error, LMR_EPARSE, "%s:%lld: column '%s' appears twice in the header",
                          r->name, (long long)line, f[i]);
        for (int k = 0; k < EC_N; k++)
            if (strcmp(f[i], epic_cols[k]) == 0)
                r->col[k] = i;
    }
    annot_idset_free(&names);
    LMR_TRY(rc);
    for (int k = 0; k <= EC_STOP_TS; k++)
        if (r->col[k] < 0)
            return lmr_fail(r->m->last_error, LMR_EPARSE,
                            "%s:%lld: not an EPIC-KITCHENS-100 csv: no column '%s' in the header",
                            r->name, (long long)line, epic_cols[k]);
    r->n_cols = n;
    /* The test file has no class columns: its clips are unlabelled. */
    r->label_col = r->o->target == ANNOT_TARGET_NOUN ? r->col[EC_NOUN_CLASS] : r->col[EC_VERB_CLASS];
    if (r->label_col < 0 && r->col[EC_VERB_CLASS] >= 0)
        return lmr_fail(r->m->last_error, LMR_EPARSE, "%s:%lld: no column 'noun_class' for --target noun",
                        r->name, (long long)line);
    /* The train and validation files have 15 columns, the test file 8 or 9: a wide file without
     * its class column is more likely a misspelt header than unlabelled clips. */
    if (r->label_col < 0 && n >= 15)
        annot_note(r->m, "%s:%lld: %d columns but no '%s' column: its clips are read as "
                   "unlabelled (a test file?)", r->name, (long long)line, n,
                   epic_cols[r->o->target == ANNOT_TARGET_NOUN ? EC_NOUN_CLASS : EC_VERB_CLASS]);
    return 0;
}

/* Seconds from a timestamp, or from a frame number at the video's rate when the timestamp
 * field is empty. @return 0, or -1 with *why set. */
static int epic_time(EpicRead *r, char **f, int ts_col, int frame_col, int fps, double *t,
                     const char **why)
{
    const char *ts = f[ts_col];
    while (*ts == ' ')
        ts++;
    if (*ts) {
        if (annot_parse_timestamp(ts, t) == 0)
            return 0;
        *why = "bad timestamp";
        return -1;
    }
    long frame;
    if (frame_col >= 0 && annot_parse_int(f[frame_col], 0, INT32_MAX, &frame) == 0) {
        *t = (double)frame / fps;
        return 0;
    }
    (void)r;
    *why = frame_col >= 0 ? "empty timestamp and bad frame number" : "empty timestamp";
    return -1;
}

static int epic_row(void *user, char **f, int n, int64_t line)
{
    EpicRead *r = user;
    Manifest *m = r->m;
    int strict = r->o->strict;
    if (!r->seen_header) {
        r->seen_header = 1;
        return epic_header(r, f, n, line);
    }
    if (n != r->n_cols)
        return annot_skip(m, r->name, line, strict, "wrong column count: %d, want %d", n, r->n_cols);
    const char *id = f[r->col[EC_NARRATION_ID]], *part = f[r->col[EC_PARTICIPANT]],
               *vid = f[r->col[EC_VIDEO]];
    if (!*id || !*part || !*vid)
        return annot_skip(m, r->name, line, strict, "empty narration_id, participant_id or video_id");
    if (strchr(part, '/') || strchr(vid, '/') || strstr(part, ".."))
        return annot_skip(m, r->name, line, strict, "bad participant_id or video_id");
    ManifestRow row = {.clip_id = (char *)id, .video = r->video, .line = line};
    int fps = annot_epic_fps(vid);
    const char *why = NULL;
    if (epic_time(r, f, r->col[EC_START_TS], r->col[EC_START_FRAME], fps, &row.start_sec, &why))
        return annot_skip(m, r->name, line, strict, "%s in start_timestamp: '%s'", why,
                          f[r->col[EC_START_TS]]);
    if (epic_time(r, f, r->col[EC_STOP_TS], r->col[EC_STOP_FRAME], fps, &row.stop_sec, &why))
        return annot_skip(m, r->name, line, strict, "%s in stop_timestamp: '%s'", why,
                          f[r->col[EC_STOP_TS]]);
    if (row.stop_sec < row.start_sec)
        return annot_skip(m, r->name, line, strict, "stop %.3f s before start %.3f s", row.stop_sec,
                          row.start_sec);
    if (r->label_col >= 0) {
        long c;
        if (annot_parse_int(f[r->label_col], 0, INT32_MAX, &c))
            return annot_skip(m, r->name, line, strict, "bad number in %s: '%s'",
                              epic_cols[r->o->target == ANNOT_TARGET_NOUN ? EC_NOUN_CLASS : EC_VERB_CLASS],
                              f[r->label_col]);
        if (c >= m->n_classes)
            return annot_skip(m, r->name, line, strict, "class %ld out of range [0, %d)", c,
                              m->n_classes);
        row.n_labels = 1;
        row.labels[0] = (int32_t)c;
    }
    static const char *const fmt[] = {"%s/%s.MP4", "%s/rgb_frames/%s", "%s/%s"};
    int layout = r->o->epic_layout >= 0 && r->o->epic_layout <= 2 ? (int)r->o->epic_layout : 0;
    if (snprintf(r->video, sizeof r->video, fmt[layout], part, vid) >= (int)sizeof r->video)
        return annot_skip(m, r->name, line, strict, "video path too long");
    return annot_add_unique(m, &r->ids, &row, r->name, line, strict, "narration_id");
}

static int load_epic(Manifest *m, const AnnotOpts *o, const char *buf, size_t len)
{
    EpicRead r = {.m = m, .o = o, .name = o->annotations ? o->annotations : "(memory)"};
    annot_idset_init(&r.ids);
    for (size_t i = 0; i < m->n_rows; i++)
        if (annot_idset_add(&r.ids, m->rows[i].clip_id) < 0) {
            annot_idset_free(&r.ids);
            return LMR_ENOMEM;
        }
    buf = annot_skip_bom(buf, &len);
    int rc = annot_csv_walk(buf, len, r.name, m, o->strict, epic_row, &r);
    if (rc == 0 && !r.seen_header)
        rc = lmr_fail(m->last_error, LMR_EPARSE, "%s: empty file, want an EPIC-KITCHENS-100 csv",
                      r.name);
    annot_idset_free(&r.ids);
    return rc;
}

// --- entry point ---------------------------------------------------------------------------

int annot_take_names(Manifest *m, AnnotClasses *c)
{
    for (int i = 0; i < m->n_class_names; i++)
        free(m->class_names[i]);
    free(m->class_names);
    m->class_names = c->names;
    m->n_class_names = c->names ? c->n_classes : 0;
    c->names = NULL; /* c->n_classes stays: annot_classes_free frees names only when set */
    return 0;
}

/* n_classes from o->labels (a class file) or the dataset's published count. */
static int epic_classes(Manifest *m, const AnnotOpts *o)
{
    if (!o->labels && !o->labels_data) {
        int noun = o->target == ANNOT_TARGET_NOUN;
        m->n_classes = noun ? ANNOT_EPIC_NOUNS : ANNOT_EPIC_VERBS;
        if (o->n_classes <= 0)
            annot_note(m, "no class file given: EPIC-KITCHENS-100's %d %s classes assumed (give "
                       "EPIC_100_%s_classes.csv for other data)", m->n_classes, noun ? "noun" : "verb",
                       noun ? "noun" : "verb");
        return 0;
    }
    AnnotClasses c;
    annot_classes_init(&c);
    c.warn = m->warn;
    c.warn_user = m->warn_user;
    int rc = annot_classes_read(&c, "epic", o->labels, o->labels_data, o->labels_size, o->strict);
    m->n_skipped += c.n_skipped;
    if (rc < 0) {
        memcpy(m->last_error, c.last_error, sizeof m->last_error);
    } else {
        m->n_classes = c.n_classes;
        annot_take_names(m, &c);
    }
    annot_classes_free(&c);
    return rc;
}

int annot_max_label_plus_one(const Manifest *m)
{
    int64_t n = 0;
    for (size_t i = 0; i < m->n_rows; i++)
        for (int k = 0; k < m->rows[i].n_labels; k++)
            if ((int64_t)m->rows[i].labels[k] >= n)
                n = (int64_t)m->rows[i].labels[k] + 1;
    return n > MANIFEST_MAX_CLASSES ? MANIFEST_MAX_CLASSES : (int)n;
}

int annotations_load(Manifest *m, const AnnotOpts *o)
{
    const char *ds = o->dataset ? o->dataset : "";
    const char *name = o->annotations ? o->annotations : "(memory)";
    if (strcmp(ds, "epic") && strcmp(ds, "ssv2") && strcmp(ds, "videolt") && strcmp(ds, "manifest"))
        return lmr_fail(m->last_error, LMR_EINVAL, "unknown dataset '%s' (epic, ssv2, videolt, manifest)", ds);
    char *owned = NULL;
    const char *buf;
    size_t len;
    int rc = annot_bytes(o->annotations, o->annotations_data, o->annotations_size, &owned, &buf, &len);
    if (rc < 0)
        return lmr_fail(m->last_error, rc, "%s: %s", name, lmr_strerror(rc));
    snprintf(m->dataset, sizeof m->dataset, "%s", ds);
    if (o->n_classes > MANIFEST_MAX_CLASSES) {
        free(owned);
        return lmr_fail(m->last_error, LMR_EINVAL, "%d classes: lmr takes at most 2^24", o->n_classes);
    }
    size_t rows0 = m->n_rows, skipped0 = m->n_skipped;
    if (strcmp(ds, "epic") == 0) {
        rc = epic_classes(m, o);
        if (rc == 0 && o->n_classes > 0)
            m->n_classes = o->n_classes;
        if (rc == 0)
            rc = load_epic(m, o, buf, len);
    } else if (strcmp(ds, "ssv2") == 0) {
        rc = annot_load_ssv2(m, o, buf, len);
    } else if (strcmp(ds, "videolt") == 0) {
        rc = annot_load_videolt(m, o, buf, len);
    } else {
        m->n_classes = o->n_classes > 0 ? o->n_classes : 0;
        rc = manifest_read_mem(m, buf, len, name, o->strict);
        if (rc == 0 && o->n_classes <= 0)
            m->n_classes = annot_max_label_plus_one(m);
    }
    free(owned);
    /* Every line rejected is a file of another format or layout, not a dataset without clips. */
    if (rc == 0 && m->n_rows == rows0 && m->n_skipped > skipped0)
        rc = lmr_fail(m->last_error, LMR_EPARSE, "%s: no clip could be read (%zu lines skipped)", name,
                      m->n_skipped - skipped0);
    return rc;
}

// --- class lists ---------------------------------------------------------------------------

void annot_classes_init(AnnotClasses *c) { memset(c, 0, sizeof *c); }

void annot_classes_free(AnnotClasses *c)
{
    if (!c)
        return;
    for (int i = 0; i < c->n_classes && c->names; i++)
        free(c->names[i]);
    free(c->names);
    free(c->counts);
    c->names = NULL;
    c->counts = NULL;
    c->n_classes = 0;
}

int annot_classes_alloc(AnnotClasses *c, int n)
{
    char **names = calloc((size_t)(n > 0 ? n : 1), sizeof *names);
    int64_t *counts = malloc((size_t)(n > 0 ? n : 1) * sizeof *counts);
    if (!names || !counts) {
        free(names);
        free(counts);
        return LMR_ENOMEM;
    }
    for (int i = 0; i < n; i++)
        counts[i] = -1;
    annot_classes_free(c);
    c->names = names;
    c->counts = counts;
    c->n_classes = n;
    return 0;
}

/* EPIC class csv: collected as (id, key) pairs, then placed by id. */
typedef struct {
    Manifest *log;
    const char *name;
    int strict, seen_header, id_col, key_col, n_cols;
    int n, cap;
    int32_t *ids;
    int64_t *lines;
    char **keys;
} EpicClassRead;

static int epic_class_row(void *user, char **f, int n, int64_t line)
{
    EpicClassRead *r = user;
    if (!r->seen_header) {
        r->seen_header = 1;
        r->id_col = r->key_col = -1;
        for (int i = 0; i < n; i++) {
            if (strcmp(f[i], "id") == 0)
                r->id_col = i;
            if (strcmp(f[i], "key") == 0)
                r->key_col = i;
        }
        r->n_cols = n;
        if (r->id_col < 0 || r->key_col < 0)
            return lmr_fail(r->log->last_error, LMR_EPARSE,
                            "%s:%lld: not an EPIC-KITCHENS-100 class csv: want columns id,key",
                            r->name, (long long)line);
        return 0;
    }
    if (n != r->n_cols)
        return annot_skip(r->log, r->name, line, r->strict, "wrong column count: %d, want %d", n,
                          r->n_cols);
    long id;
    if (annot_parse_int(f[r->id_col], 0, 1 << 20, &id))
        return annot_skip(r->log, r->name, line, r->strict, "bad number in id: '%s'", f[r->id_col]);
    if (r->n == r->cap) {
        int cap = r->cap ? r->cap * 2 : 128;
        int32_t *ids = realloc(r->ids, (size_t)cap * sizeof *ids);
        if (ids)
            r->ids = ids;
        int64_t *lines = realloc(r->lines, (size_t)cap * sizeof *lines);
        if (lines)
            r->lines = lines;
        char **keys = realloc(r->keys, (size_t)cap * sizeof *keys);
        if (keys)
            r->keys = keys;
        if (!ids || !lines || !keys)
            return LMR_ENOMEM;
        r->cap = cap;
    }
    r->keys[r->n] = strdup(f[r->key_col]);
    if (!r->keys[r->n])
        return LMR_ENOMEM;
    r->ids[r->n] = (int32_t)id;
    r->lines[r->n++] = line;
    return 0;
}

static int classes_epic(AnnotClasses *c, Manifest *log, const char *name, const char *buf,
                        size_t len, int strict)
{
    EpicClassRead r = {.log = log, .name = name, .strict = strict};
    size_t skipped0 = log->n_skipped;
    buf = annot_skip_bom(buf, &len);
    int rc = annot_csv_walk(buf, len, name, log, strict, epic_class_row, &r);
    if (rc == 0 && !r.seen_header)
        rc = lmr_fail(log->last_error, LMR_EPARSE, "%s: empty file, want id,key,instances,category", name);
    if (rc == 0 && r.n == 0 && log->n_skipped > skipped0)
        rc = lmr_fail(log->last_error, LMR_EPARSE, "%s: none of its %zu classes could be read", name,
                      log->n_skipped - skipped0);
    int n = 0;
    for (int i = 0; i < r.n; i++)
        if (r.ids[i] >= n)
            n = r.ids[i] + 1;
    if (rc == 0)
        rc = annot_classes_alloc(c, n);
    for (int i = 0; i < r.n && rc == 0; i++) {
        if (c->names[r.ids[i]]) {
            rc = annot_skip(log, name, r.lines[i], strict, "duplicate class id %d", (int)r.ids[i]);
            continue;
        }
        c->names[r.ids[i]] = r.keys[i];
        r.keys[i] = NULL;
    }
    for (int i = 0; i < r.n; i++)
        free(r.keys[i]);
    free(r.keys);
    free(r.ids);
    free(r.lines);
    return rc;
}

int annot_classes_read(AnnotClasses *c, const char *dataset, const char *path, const char *data,
                       size_t size, int strict)
{
    const char *name = path ? path : "(memory)";
    Manifest log;
    manifest_init(&log);
    log.warn = c->warn;
    log.warn_user = c->warn_user;
    char *owned;
    const char *buf;
    size_t len;
    int rc = annot_bytes(path, data, size, &owned, &buf, &len);
    if (rc < 0)
        return lmr_fail(c->last_error, rc, "%s: %s", name, lmr_strerror(rc));
    if (dataset && strcmp(dataset, "epic") == 0)
        rc = classes_epic(c, &log, name, buf, len, strict);
    else if (dataset && strcmp(dataset, "ssv2") == 0)
        rc = annot_classes_ssv2(c, &log, name, buf, len, strict);
    else if (dataset && strcmp(dataset, "videolt") == 0)
        rc = annot_classes_videolt(c, &log, name, buf, len, strict);
    else
        rc = lmr_fail(log.last_error, LMR_EINVAL, "no class list format for dataset '%s'",
                      dataset ? dataset : "");
    c->n_skipped += log.n_skipped;
    if (rc < 0)
        memcpy(c->last_error, log.last_error, sizeof c->last_error);
    free(owned);
    return rc;
}

// --- EPIC tail lists ------------------------------------------------------------------------

typedef struct {
    Manifest *log;
    const char *name;
    int strict, seen_header, n_classes, n, cap;
    int32_t *ids;
} TailRead;

static int tail_row(void *user, char **f, int n, int64_t line)
{
    TailRead *r = user;
    if (!r->seen_header) {
        r->seen_header = 1;
        if (n == 1 && (strcmp(f[0], "verb") == 0 || strcmp(f[0], "noun") == 0))
            return 0;
        return lmr_fail(r->log->last_error, LMR_EPARSE,
                        "%s:%lld: not an EPIC-KITCHENS-100 tail list: want the header verb or noun",
                        r->name, (long long)line);
    }
    long id;
    if (n != 1)
        return annot_skip(r->log, r->name, line, r->strict, "wrong column count: %d, want 1", n);
    if (annot_parse_int(f[0], 0, INT32_MAX, &id))
        return annot_skip(r->log, r->name, line, r->strict, "bad number: '%s'", f[0]);
    if (r->n_classes > 0 && id >= r->n_classes)
        return annot_skip(r->log, r->name, line, r->strict, "class %ld out of range [0, %d)", id,
                          r->n_classes);
    if (r->n == r->cap) {
        int cap = r->cap ? r->cap * 2 : 64;
        int32_t *ids = realloc(r->ids, (size_t)cap * sizeof *ids);
        if (!ids)
            return LMR_ENOMEM;
        r->ids = ids;
        r->cap = cap;
    }
    r->ids[r->n++] = (int32_t)id;
    return 0;
}

int annot_epic_tail_read(AnnotClasses *c, const char *path, int n_classes, int strict,
                         int32_t **ids, int *n)
{
    *ids = NULL;
    *n = 0;
    Manifest log;
    manifest_init(&log);
    log.warn = c->warn;
    log.warn_user = c->warn_user;
    char *buf;
    size_t len;
    int rc = annot_slurp(path, &buf, &len);
    if (rc < 0)
        return lmr_fail(c->last_error, rc, "%s: %s", path, lmr_strerror(rc));
    TailRead r = {.log = &log, .name = path, .strict = strict, .n_classes = n_classes};
    const char *p = annot_skip_bom(buf, &len);
    rc = annot_csv_walk(p, len, path, &log, strict, tail_row, &r);
    if (rc == 0 && !r.seen_header)
        rc = lmr_fail(log.last_error, LMR_EPARSE, "%s: empty file", path);
    c->n_skipped += log.n_skipped;
    if (rc < 0) {
        memcpy(c->last_error, log.last_error, sizeof c->last_error);
        free(r.ids);
    } else {
        *ids = r.ids;
        *n = r.n;
    }
    free(buf);
    return rc;
}
