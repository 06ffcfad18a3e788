/* Shard metadata (ShardMeta): the bookkeeping both writers and the set reader share (shape of the
 * first record, T varying, class counts), and its JSON form, which is LMDB's "__meta__" value,
 * HDF5's `lmr_meta` attribute and lmr-extract's `F.rec.meta.json` sidecar. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shard_internal.h"

// --- metadata -------------------------------------------------------------------------------

void shardmeta_init(ShardMeta *m)
{
    memset(m, 0, sizeof *m);
    m->format_version = LMR_SHARD_FORMAT_VERSION;
    snprintf(m->lmr_version, sizeof m->lmr_version, "%s", LMR_VERSION);
}

void shardmeta_free(ShardMeta *m)
{
    if (!m)
        return;
    free(m->class_counts);
    m->class_counts = NULL;
    m->n_classes = 0;
    for (int i = 0; i < m->n_class_names; i++)
        free(m->class_names[i]);
    free(m->class_names);
    m->class_names = NULL;
    m->n_class_names = 0;
}

int shardmeta_set_class_names(ShardMeta *m, const char *const *names, int n)
{
    char **copy = n > 0 ? calloc((size_t)n, sizeof *copy) : NULL;
    if (n > 0 && !copy)
        return LMR_ENOMEM;
    for (int i = 0; i < n; i++) {
        if (!(copy[i] = strdup(names[i] ? names[i] : ""))) {
            while (i--)
                free(copy[i]);
            free(copy);
            return LMR_ENOMEM;
        }
    }
    for (int i = 0; i < m->n_class_names; i++)
        free(m->class_names[i]);
    free(m->class_names);
    m->class_names = copy;
    m->n_class_names = n;
    return 0;
}

int shardmeta_copy(ShardMeta *dst, const ShardMeta *src)
{
    *dst = *src;
    dst->class_counts = NULL;
    dst->class_names = NULL;
    dst->n_class_names = 0;
    if (src->n_class_names > 0 &&
        shardmeta_set_class_names(dst, (const char *const *)src->class_names, src->n_class_names))
        return LMR_ENOMEM;
    if (src->n_classes > 0 && src->class_counts) {
        dst->class_counts = malloc(sizeof(int64_t) * (size_t)src->n_classes);
        if (!dst->class_counts)
            return LMR_ENOMEM;
        memcpy(dst->class_counts, src->class_counts, sizeof(int64_t) * (size_t)src->n_classes);
    } else if (src->n_classes > 0) {
        dst->class_counts = calloc((size_t)src->n_classes, sizeof(int64_t));
        if (!dst->class_counts)
            return LMR_ENOMEM;
    }
    return 0;
}

/* Grow class_counts to n entries (new ones zero). */
int shardmeta_grow_classes(ShardMeta *m, int n)
{
    if (n <= m->n_classes && (m->class_counts || n == 0))
        return 0;
    if (n < m->n_classes)
        n = m->n_classes;
    int64_t *c = realloc(m->class_counts, sizeof(int64_t) * (size_t)n);
    if (!c)
        return LMR_ENOMEM;
    int old = m->class_counts ? m->n_classes : 0;
    memset(c + old, 0, sizeof(int64_t) * (size_t)(n - old));
    m->class_counts = c;
    m->n_classes = n;
    return 0;
}

int shardmeta_check_labels(const ShardMeta *m, const RecordInfo *r, char *err)
{
    int64_t bound = m->classes_declared && m->n_classes > 0 ? m->n_classes : LMR_MAX_CLASSES;
    for (int i = 0; i < r->n_labels; i++) {
        int32_t c = r->labels[i];
        if (c >= -1 && c < bound)
            continue;
        char show[LMR_SHOWLEN];
        if (bound < LMR_MAX_CLASSES)
            return lmr_fail(err, LMR_ERANGE, "clip %s: label %d outside 0..%lld: the shard has %lld classes",
                            lmr_show(show, r->id, r->id_len), c, (long long)bound - 1, (long long)bound);
        return lmr_fail(err, LMR_ERANGE, "clip %s: label %d outside 0..%d (-1 marks an unlabelled clip)",
                        lmr_show(show, r->id, r->id_len), c, LMR_MAX_CLASSES - 1);
    }
    return 0;
}

int shardmeta_check(const ShardMeta *m, const RecordInfo *r, char *err)
{
    char show[LMR_SHOWLEN];
    if (r->kind == LMR_KIND_META)
        return lmr_fail(err, LMR_EINVAL, "clip %s: a stream metadata record is not a clip", lmr_show(show, r->id, r->id_len));
    LMR_TRY(shardmeta_check_labels(m, r, err));
    if (m->kind == 0) /* empty shard: the first record sets the shape */
        return 0;
    const char *what = NULL;
    if (r->kind != m->kind)
        what = "kind";
    else if (r->dtype != m->dtype)
        what = "dtype";
    else if (r->ndim != m->ndim)
        what = "number of dims";
    else if (r->dims[0] != m->dims[0])
        what = "views (dims[0])";
    else if (r->dims[2] != m->dims[2] || r->dims[3] != m->dims[3])
        what = r->kind == LMR_KIND_FEATURES ? "feature size D (dims[2])" : "frame size H, W (dims[2..3])";
    if (!what)
        return 0;
    char rs[96], ms[96];
    return lmr_fail(err, LMR_EMISMATCH, "clip %s: %s differs from the shard's (record %s, shard %s)",
                    lmr_show(show, r->id, r->id_len), what, record_shape_str(r->kind, r->dtype, r->dims, r->ndim, rs, sizeof rs),
                    record_shape_str(m->kind, m->dtype, m->dims, m->ndim, ms, sizeof ms));
}

int shardmeta_account(ShardMeta *m, const RecordInfo *r, char *err)
{
    LMR_TRY(shardmeta_check_labels(m, r, err));
    if (m->kind == 0) {
        m->kind = r->kind;
        m->dtype = r->dtype;
        m->ndim = r->ndim;
        memcpy(m->dims, r->dims, sizeof m->dims);
    } else if (m->dims[1] != r->dims[1]) {
        m->dims[1] = 0; /* T varies */
    }
    m->n_records++;
    int distinct = 0;
    for (int i = 0; i < r->n_labels; i++) {
        int32_t c = r->labels[i];
        int seen = 0;
        for (int k = 0; k < i && !seen; k++)
            seen = r->labels[k] == c;
        if (seen || c < 0)
            continue;
        distinct++;
        /* c < LMR_MAX_CLASSES: c + 1 cannot overflow */
        if ((c >= m->n_classes || !m->class_counts) && shardmeta_grow_classes(m, c + 1))
            return lmr_fail(err, LMR_ENOMEM, "class counts of %d classes: out of memory", c + 1);
        m->class_counts[c]++;
    }
    if (distinct > 1)
        m->multi_label = 1;
    return 0;
}

void shardmeta_merge_hint(ShardMeta *dst, const ShardMeta *src)
{
    if (src->dataset[0])
        snprintf(dst->dataset, sizeof dst->dataset, "%s", src->dataset);
    if (src->split[0])
        snprintf(dst->split, sizeof dst->split, "%s", src->split);
    if (src->backbone[0])
        snprintf(dst->backbone, sizeof dst->backbone, "%s", src->backbone);
    if (src->weights_checksum[0])
        snprintf(dst->weights_checksum, sizeof dst->weights_checksum, "%s", src->weights_checksum);
    if (src->mode[0])
        snprintf(dst->mode, sizeof dst->mode, "%s", src->mode);
    if (src->n_class_names > 0) /* ENOMEM keeps the old names: they only label output */
        shardmeta_set_class_names(dst, (const char *const *)src->class_names, src->n_class_names);
    if (src->frames)
        dst->frames = src->frames;
    if (src->size)
        dst->size = src->size;
    if (src->reduced[0]) {
        snprintf(dst->reduced, sizeof dst->reduced, "%s", src->reduced);
        memcpy(dst->reduced_t, src->reduced_t, sizeof dst->reduced_t);
    }
    if (src->n_classes > dst->n_classes)
        shardmeta_grow_classes(dst, src->n_classes); /* ENOMEM leaves the smaller count: harmless */
    if (src->classes_declared && src->n_classes > 0 && dst->n_classes >= src->n_classes)
        dst->classes_declared = 1;
}

static const char *kind_name(int k) { return k == LMR_KIND_FRAMES || k == LMR_KIND_FEATURES ? record_kind_name(k) : ""; }

char *shardmeta_to_json(const ShardMeta *m)
{
    json_t *o = json_object(), *dims = json_array(), *counts = json_array();
    if (!o || !dims || !counts) {
        json_decref(o);
        json_decref(dims);
        json_decref(counts);
        return NULL;
    }
    for (int i = 0; i < 4; i++)
        json_array_append_new(dims, json_integer(m->dims[i]));
    for (int i = 0; i < m->n_classes; i++)
        json_array_append_new(counts, json_integer(m->class_counts ? m->class_counts[i] : 0));
    json_object_set_new(o, "format_version", json_integer(m->format_version));
    json_object_set_new(o, "kind", json_string(kind_name(m->kind)));
    json_object_set_new(o, "dtype", json_string(record_dtype_name(m->dtype)));
    json_object_set_new(o, "ndim", json_integer(m->ndim));
    json_object_set_new(o, "dims", dims);
    json_object_set_new(o, "n_records", json_integer((json_int_t)m->n_records));
    json_object_set_new(o, "n_classes", json_integer(m->n_classes));
    json_object_set_new(o, "n_classes_declared", json_boolean(m->classes_declared && m->n_classes > 0));
    json_object_set_new(o, "class_counts", counts);
    json_object_set_new(o, "multi_label", json_boolean(m->multi_label));
    json_object_set_new(o, "dataset", json_string(m->dataset));
    json_object_set_new(o, "split", json_string(m->split));
    json_object_set_new(o, "mode", json_string(m->mode));
    json_object_set_new(o, "frames", json_integer(m->frames));
    json_object_set_new(o, "size", json_integer(m->size));
    json_object_set_new(o, "backbone", json_string(m->backbone));
    json_object_set_new(o, "weights_checksum", json_string(m->weights_checksum));
    json_object_set_new(o, "lmr_version", json_string(m->lmr_version));
    if (m->reduced[0]) {
        json_object_set_new(o, "reduced", json_string(m->reduced));
        json_object_set_new(o, "reduced_t", json_pack("[II]", (json_int_t)m->reduced_t[0], (json_int_t)m->reduced_t[1]));
    }
    if (m->n_class_names > 0) {
        json_t *names = json_array();
        for (int i = 0; names && i < m->n_class_names; i++)
            json_array_append_new(names, json_string(m->class_names[i]));
        json_object_set_new(o, "class_names", names);
    }
    char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    return s;
}

/* Copy a string member if present; @return 0 or LMR_EPARSE. */
static int json_str(json_t *o, const char *key, char *dst, size_t cap, char *err)
{
    json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_string(v))
        return lmr_fail(err, LMR_EPARSE, "metadata: \"%s\" is not a string", key);
    if (strlen(json_string_value(v)) >= cap)
        return lmr_fail(err, LMR_EPARSE, "metadata: \"%s\" longer than %zu bytes", key, cap - 1);
    snprintf(dst, cap, "%s", json_string_value(v));
    return 0;
}

static int json_int(json_t *o, const char *key, int64_t lo, int64_t hi, int64_t *dst, char *err)
{
    json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v))
        return 0;
    if (json_is_boolean(v)) {
        *dst = json_is_true(v);
        return 0;
    }
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi)
        return lmr_fail(err, LMR_EPARSE, "metadata: \"%s\" is not an integer in [%lld, %lld]", key,
                        (long long)lo, (long long)hi);
    *dst = json_integer_value(v);
    return 0;
}

static int name_index(const char *s, const char *const *names, int n)
{
    for (int i = 1; i < n; i++)
        if (strcmp(s, names[i]) == 0)
            return i;
    return 0;
}

int shardmeta_from_json(ShardMeta *m, const char *json, char *err)
{
    json_error_t je;
    json_t *o = json_loads(json, 0, &je);
    if (!o)
        return lmr_fail(err, LMR_EPARSE, "metadata: line %d: %s", je.line, je.text);
    int rc = LMR_EPARSE;
    if (!json_is_object(o)) {
        lmr_fail(err, LMR_EPARSE, "metadata: not a JSON object");
        goto fail;
    }
    int64_t v;
    static const char *const kinds[] = {"", "frames", "features"}, *const dtypes[] = {"", "u8", "f16", "f32"};
    char s[16] = "";
    if ((rc = json_str(o, "kind", s, sizeof s, err)))
        goto fail;
    if (s[0] && !(m->kind = (uint8_t)name_index(s, kinds, 3))) {
        rc = lmr_fail(err, LMR_EPARSE, "metadata: unknown kind \"%s\"", s);
        goto fail;
    }
    s[0] = 0;
    if ((rc = json_str(o, "dtype", s, sizeof s, err)))
        goto fail;
    if (s[0] && !(m->dtype = (uint8_t)name_index(s, dtypes, 4))) {
        rc = lmr_fail(err, LMR_EPARSE, "metadata: unknown dtype \"%s\"", s);
        goto fail;
    }
#define GETI(key, lo, hi, field)                                   \
    v = m->field;                                                  \
    if ((rc = json_int(o, key, lo, hi, &v, err)))                  \
        goto fail;                                                 \
    m->field = v;
    GETI("format_version", 0, 1000000, format_version);
    GETI("ndim", 0, 4, ndim);
    GETI("n_records", 0, INT64_MAX, n_records);
    GETI("multi_label", 0, 1, multi_label);
    GETI("n_classes_declared", 0, 1, classes_declared);
    GETI("frames", 0, 1 << 30, frames);
    GETI("size", 0, 1 << 30, size);
#undef GETI
    if (m->format_version > LMR_SHARD_FORMAT_VERSION) {
        rc = lmr_fail(err, LMR_EVERSION, "metadata: shard format %d, this reader knows %d", m->format_version,
                      LMR_SHARD_FORMAT_VERSION);
        goto fail;
    }
    json_t *dims = json_object_get(o, "dims");
    if (dims) {
        if (!json_is_array(dims) || json_array_size(dims) != 4) {
            rc = lmr_fail(err, LMR_EPARSE, "metadata: \"dims\" is not an array of 4 integers");
            goto fail;
        }
        for (int i = 0; i < 4; i++) {
            json_t *d = json_array_get(dims, (size_t)i);
            if (!json_is_integer(d) || json_integer_value(d) < 0 || json_integer_value(d) > UINT32_MAX) {
                rc = lmr_fail(err, LMR_EPARSE, "metadata: dims[%d] is not a u32", i);
                goto fail;
            }
            m->dims[i] = (uint32_t)json_integer_value(d);
        }
    }
    int64_t nc = m->n_classes;
    if ((rc = json_int(o, "n_classes", 0, 1 << 24, &nc, err)))
        goto fail;
    json_t *counts = json_object_get(o, "class_counts");
    if (counts && (!json_is_array(counts) || (int64_t)json_array_size(counts) > (nc > 0 ? nc : 1 << 24))) {
        rc = lmr_fail(err, LMR_EPARSE, "metadata: \"class_counts\" is not an array of at most n_classes integers");
        goto fail;
    }
    if (counts && (int64_t)json_array_size(counts) > nc)
        nc = (int64_t)json_array_size(counts);
    if (nc > m->n_classes && (rc = shardmeta_grow_classes(m, (int)nc)))
        goto fail;
    for (size_t i = 0; counts && i < json_array_size(counts); i++) {
        json_t *c = json_array_get(counts, i);
        if (!json_is_integer(c) || json_integer_value(c) < 0) {
            rc = lmr_fail(err, LMR_EPARSE, "metadata: class_counts[%zu] is not a count", i);
            goto fail;
        }
        m->class_counts[i] = json_integer_value(c);
    }
    if ((rc = json_str(o, "dataset", m->dataset, sizeof m->dataset, err)) ||
        (rc = json_str(o, "split", m->split, sizeof m->split, err)) ||
        (rc = json_str(o, "mode", m->mode, sizeof m->mode, err)) ||
        (rc = json_str(o, "backbone", m->backbone, sizeof m->backbone, err)) ||
        (rc = json_str(o, "weights_checksum", m->weights_checksum, sizeof m->weights_checksum, err)) ||
        (rc = json_str(o, "lmr_version", m->lmr_version, sizeof m->lmr_version, err)) ||
        (rc = json_str(o, "reduced", m->reduced, sizeof m->reduced, err)))
        goto fail;
    json_t *rt = json_object_get(o, "reduced_t");
    if (rt && !json_is_null(rt)) {
        json_int_t a, b;
        if (json_unpack(rt, "[II]", &a, &b) || a < 0 || b < a || b > UINT32_MAX) {
            rc = lmr_fail(err, LMR_EPARSE, "metadata: \"reduced_t\" is not [min T, max T]");
            goto fail;
        }
        m->reduced_t[0] = (uint32_t)a, m->reduced_t[1] = (uint32_t)b;
    }
    json_t *names = json_object_get(o, "class_names");
    if (names && !json_is_null(names)) {
        size_t n = json_is_array(names) ? json_array_size(names) : 0;
        if (!json_is_array(names) || n > (1u << 24)) {
            rc = lmr_fail(err, LMR_EPARSE, "metadata: \"class_names\" is not an array of strings");
            goto fail;
        }
        const char **tmp = n ? malloc(n * sizeof *tmp) : NULL;
        if (n && !tmp) {
            rc = LMR_ENOMEM;
            goto fail;
        }
        for (size_t i = 0; i < n; i++) {
            json_t *e = json_array_get(names, i);
            if (!json_is_string(e)) {
                free(tmp);
                rc = lmr_fail(err, LMR_EPARSE, "metadata: class_names[%zu] is not a string", i);
                goto fail;
            }
            tmp[i] = json_string_value(e);
        }
        rc = shardmeta_set_class_names(m, tmp, (int)n);
        free(tmp);
        if (rc)
            goto fail;
    }
    rc = 0;
fail:
    json_decref(o);
    return rc;
}

