/* One API over both shard containers: the writer that checks what may be mixed and keeps the
 * counts, and the reader of sets of shard files that presents them as one dataset. Metadata is
 * in shard_meta.c; the containers in shard_lmdb.c and shard_hdf5*.c. */
#include "shard.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fileid.h"
#include "shard_internal.h"

// --- label index ----------------------------------------------------------------------------

int labelindex_push(LabelIndex *x, const int32_t *labels, int n)
{
    if ((x->n & (x->n + 1)) == 0 || !x->label_off) { /* n + 2 offsets needed: grow at powers of two */
        uint64_t cap = (x->n + 2) * 2;
        uint64_t *o = realloc(x->label_off, sizeof(uint64_t) * cap);
        if (!o)
            return LMR_ENOMEM;
        x->label_off = o;
        if (x->n == 0)
            o[0] = 0;
    }
    if (x->n_labels_total + (uint64_t)n > x->labels_cap) {
        uint64_t cap = x->labels_cap ? x->labels_cap * 2 : 1024;
        while (cap < x->n_labels_total + (uint64_t)n)
            cap *= 2;
        int32_t *l = realloc(x->labels, sizeof(int32_t) * cap);
        if (!l)
            return LMR_ENOMEM;
        x->labels = l;
        x->labels_cap = cap;
    }
    if (n)
        memcpy(x->labels + x->n_labels_total, labels, sizeof(int32_t) * (size_t)n);
    x->n_labels_total += (uint64_t)n;
    x->n++;
    x->label_off[x->n] = x->n_labels_total;
    return 0;
}

void labelindex_free(LabelIndex *x)
{
    if (!x)
        return;
    if (!x->borrowed) {
        free(x->label_off);
        free(x->labels);
    }
    memset(x, 0, sizeof *x);
}

// --- writer ---------------------------------------------------------------------------------

struct ShardWriter {
    ShardFormat format;
    LmdbWriter *lmdb;
    H5Writer *h5;
    ShardMeta meta;
    char last_error[LMR_ERRLEN];
};

int shard_is_hdf5(const char *path)
{
    static const unsigned char sig[8] = {0x89, 'H', 'D', 'F', '\r', '\n', 0x1a, '\n'};
    FILE *f = fopen(path, "rb");
    if (!f)
        return -errno;
    unsigned char b[8];
    size_t n = fread(b, 1, 8, f);
    fclose(f);
    return n == 8 && memcmp(b, sig, 8) == 0;
}

int shardwriter_open(ShardWriter **out, const char *path, const ShardWriterOpts *opts, char *err)
{
    *out = NULL;
    ShardWriterOpts o = {SHARD_LMDB, 4, 64u << 20};
    if (opts) {
        o = *opts;
        if (!o.format)
            o.format = SHARD_LMDB;
        if (!o.txn_bytes)
            o.txn_bytes = 64u << 20;
    }
    struct stat st;
    if (stat(path, &st) == 0 && st.st_size > 0) {
        int h5 = shard_is_hdf5(path);
        if (h5 < 0)
            return lmr_fail(err, h5, "%s: %s", path, strerror(-h5));
        if ((h5 == 1) != (o.format == SHARD_HDF5))
            return lmr_fail(err, LMR_EMISMATCH, "%s: exists as a %s shard, asked for %s", path, h5 ? "HDF5" : "LMDB",
                            o.format == SHARD_HDF5 ? "HDF5" : "LMDB");
    }
    ShardWriter *w = calloc(1, sizeof *w);
    if (!w)
        return LMR_ENOMEM;
    shardmeta_init(&w->meta);
    w->format = o.format;
    int rc = o.format == SHARD_HDF5 ? h5w_open(&w->h5, path, o.deflate_level, &w->meta, err)
                                    : lmdbw_open(&w->lmdb, path, o.txn_bytes, &w->meta, err);
    if (rc) {
        shardmeta_free(&w->meta);
        free(w);
        return rc;
    }
    *out = w;
    return 0;
}

int shardwriter_put(ShardWriter *w, const uint8_t *rec, size_t len)
{
    RecordInfo info;
    char err[LMR_ERRLEN], show[LMR_SHOWLEN];
    int rc = record_parse(rec, len, &info, err);
    if (rc)
        return LMR_FAIL(w, rc, "%s", err);
    if (info.total_size != len)
        return LMR_FAIL(w, LMR_ECORRUPT, "clip %s: %zu bytes given, record is %llu", lmr_show(show, info.id, info.id_len),
                        len, (unsigned long long)info.total_size);
    if (info.kind == LMR_KIND_META)
        return LMR_FAIL(w, LMR_EINVAL, "the stream's metadata record is not a clip (read it with record_meta_json)");
    if ((info.id_len == strlen(LMR_META_KEY) && memcmp(info.id, LMR_META_KEY, info.id_len) == 0))
        return LMR_FAIL(w, LMR_EINVAL, "clip id %s is reserved", LMR_META_KEY);
    if ((info.id_len == strlen(LMR_INDEX_KEY) && memcmp(info.id, LMR_INDEX_KEY, info.id_len) == 0))
        return LMR_FAIL(w, LMR_EINVAL, "clip id %s is reserved", LMR_INDEX_KEY);
    if ((rc = shardmeta_check(&w->meta, &info, w->last_error)))
        return rc;
    rc = w->format == SHARD_HDF5 ? h5w_put(w->h5, &info, rec, len, w->last_error)
                                 : lmdbw_put(w->lmdb, &info, rec, len, w->last_error);
    if (rc)
        return rc;
    return shardmeta_account(&w->meta, &info, w->last_error);
}

static const char *or_none(const char *s) { return s && s[0] ? s : "(none)"; }

int shardwriter_set_meta(ShardWriter *w, const ShardMeta *hint)
{
    ShardMeta *m = &w->meta;
    if ((hint->backbone[0] && m->backbone[0] && strcmp(hint->backbone, m->backbone)) ||
        (hint->weights_checksum[0] && m->weights_checksum[0] && strcmp(hint->weights_checksum, m->weights_checksum)))
        return LMR_FAIL(w, LMR_EMISMATCH, "backbone %s (weights %s) differs from the shard's %s (weights %s)",
                        or_none(hint->backbone), or_none(hint->weights_checksum), or_none(m->backbone),
                        or_none(m->weights_checksum));
    /* a class count given here bounds the labels; the largest one given wins */
    if (hint->n_classes > 0 && m->n_classes > hint->n_classes && !m->classes_declared) {
        int top = m->n_classes - 1;
        while (top > 0 && m->class_counts && m->class_counts[top] == 0)
            top--;
        if (m->class_counts && m->class_counts[top] > 0 && top >= hint->n_classes)
            return LMR_FAIL(w, LMR_ERANGE, "n_classes %d given, but the shard already holds clips of class %d",
                            hint->n_classes, top);
    }
    shardmeta_merge_hint(m, hint);
    if (hint->n_classes > 0)
        m->classes_declared = 1;
    return 0;
}

int shardwriter_close(ShardWriter **pw)
{
    if (!pw || !*pw)
        return 0;
    ShardWriter *w = *pw;
    int rc = 0;
    if (w->lmdb) {
        rc = lmdbw_commit(w->lmdb, &w->meta, w->last_error);
        lmdbw_close(&w->lmdb);
    }
    if (w->h5)
        rc = h5w_close(&w->h5, &w->meta, w->last_error);
    shardmeta_free(&w->meta);
    free(w);
    *pw = NULL;
    return rc;
}

const char *shardwriter_error(const ShardWriter *w) { return w ? w->last_error : ""; }

// --- reader of sets ---------------------------------------------------------------------------

typedef struct {
    LmdbReader *lmdb;
    H5Reader *h5;
    ShardMeta meta;
    LabelIndex labels;
    uint64_t first;  /* global index of this file's record 0 */
    uint64_t *order; /* HDF5: record indices sorted by id; LMDB keys are sorted already */
    char path[256];
} SetFile;

struct ShardSet {
    SetFile *files;
    int n_files;
    uint64_t n;
    ShardMeta meta;
    char last_error[LMR_ERRLEN];
};

/* Id of record i of f (borrowed): the LMDB key, which the writer makes equal to the clip id. */
static void file_id(const SetFile *f, uint64_t i, const char **id, uint16_t *len)
{
    if (f->h5) {
        h5r_id(f->h5, i, id, len);
        return;
    }
    lmdbr_key(f->lmdb, i, id, len);
}

/* LMDB's default key order: bytes, then the shorter first. */
static int id_cmp(const char *a, size_t la, const char *b, size_t lb)
{
    int c = memcmp(a, b, la < lb ? la : lb);
    return c ? c : (la > lb) - (la < lb);
}

static int order_cmp(const void *pa, const void *pb, void *user)
{
    const SetFile *f = user;
    const char *a, *b;
    uint16_t la, lb;
    file_id(f, *(const uint64_t *)pa, &a, &la);
    file_id(f, *(const uint64_t *)pb, &b, &lb);
    return id_cmp(a, la, b, lb);
}

/* The record of f at position pos in id order. */
static uint64_t file_sorted(const SetFile *f, uint64_t pos) { return f->order ? f->order[pos] : pos; }

/* Check that file f may join the set whose merged meta is m, then merge it in. */
static int set_merge(ShardMeta *m, const ShardMeta *f, const char *path, char *err)
{
    if (f->n_records == 0)
        return 0;
    if (m->n_records == 0) {
        int64_t *keep = m->class_counts;
        int nc = m->n_classes;
        char **names = m->class_names;
        int nn = m->n_class_names;
        *m = *f;
        m->class_counts = keep;
        m->n_classes = nc;
        m->class_names = names; /* the set owns its own copy (below) */
        m->n_class_names = nn;
        m->n_records = 0;
    } else {
        if (f->kind != m->kind || f->dtype != m->dtype || f->ndim != m->ndim || f->dims[0] != m->dims[0] ||
            f->dims[2] != m->dims[2] || f->dims[3] != m->dims[3]) {
            char fs[96], ms[96];
            return lmr_fail(err, LMR_EMISMATCH, "%s: holds %s, the set before it %s", path,
                            record_shape_str(f->kind, f->dtype, f->dims, f->ndim, fs, sizeof fs),
                            record_shape_str(m->kind, m->dtype, m->dims, m->ndim, ms, sizeof ms));
        }
        if (strcmp(f->backbone, m->backbone) || strcmp(f->weights_checksum, m->weights_checksum))
            return lmr_fail(err, LMR_EMISMATCH, "%s: backbone %s (weights %s) differs from the set's %s (weights %s)",
                            path, or_none(f->backbone), or_none(f->weights_checksum), or_none(m->backbone),
                            or_none(m->weights_checksum));
        if (f->dims[1] != m->dims[1])
            m->dims[1] = 0;
        m->multi_label |= f->multi_label;
    }
    m->n_records += f->n_records;
    if (f->n_class_names > m->n_class_names)
        LMR_TRY(shardmeta_set_class_names(m, (const char *const *)f->class_names, f->n_class_names));
    if (f->n_classes > m->n_classes)
        LMR_TRY(shardmeta_grow_classes(m, f->n_classes));
    for (int c = 0; c < f->n_classes && f->class_counts; c++)
        m->class_counts[c] += f->class_counts[c];
    return 0;
}

/* A clip id held twice in the set: err names it and both files. Each file's ids are walked in
 * sorted order, side by side (a merge), so this costs one comparison per record and file. */
static int set_find_duplicates(const ShardSet *s, char *err)
{
    char show[LMR_SHOWLEN];
    for (int k = 0; k < s->n_files; k++) { /* one file named twice: say so, not its first id */
        for (int j = 0; j < k; j++)
            if (lmr_same_file(s->files[j].path, s->files[k].path))
                return strcmp(s->files[j].path, s->files[k].path)
                           ? lmr_fail(err, LMR_EINVAL, "%s is given twice (as %s): its clips would count twice",
                                      s->files[k].path, s->files[j].path)
                           : lmr_fail(err, LMR_EINVAL, "%s is given twice: its clips would count twice",
                                      s->files[k].path);
    }
    uint64_t *pos = calloc((size_t)s->n_files, sizeof *pos);
    if (!pos)
        return lmr_fail(err, LMR_ENOMEM, "checking ids: out of memory");
    const char *prev = NULL;
    uint16_t prev_len = 0;
    int prev_file = -1, rc = 0;
    for (;;) {
        int best = -1;
        const char *bid = NULL;
        uint16_t blen = 0;
        for (int k = 0; k < s->n_files; k++) {
            const SetFile *f = &s->files[k];
            if (pos[k] >= f->labels.n)
                continue;
            const char *id;
            uint16_t len;
            file_id(f, file_sorted(f, pos[k]), &id, &len);
            if (best < 0 || id_cmp(id, len, bid, blen) < 0)
                best = k, bid = id, blen = len;
        }
        if (best < 0)
            break;
        if (prev && id_cmp(prev, prev_len, bid, blen) == 0) {
            rc = prev_file == best
                     ? lmr_fail(err, LMR_EINVAL, "%s: clip %s is stored twice", s->files[best].path, lmr_show(show, bid, blen))
                     : lmr_fail(err, LMR_EINVAL, "clip %s is in both %s and %s: a set holds each clip once",
                                lmr_show(show, bid, blen), s->files[prev_file].path, s->files[best].path);
            break;
        }
        prev = bid, prev_len = blen, prev_file = best;
        pos[best]++;
    }
    free(pos);
    return rc;
}

/* What a file that is no shard is, when it can be told from its first bytes; NULL otherwise. */
static const char *not_a_shard(const char *path, char *why, size_t cap)
{
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
        return NULL;
    if (st.st_size == 0) {
        snprintf(why, cap, "an empty file (0 bytes), not a shard");
        return why;
    }
    FILE *f = fopen(path, "rb");
    unsigned char b[9];
    size_t n = f ? fread(b, 1, sizeof b, f) : 0;
    if (f)
        fclose(f);
    uint64_t hl = 0;
    for (int i = 7; n == 9 && i >= 0; i--)
        hl = hl << 8 | b[i];
    if (n == 9 && b[8] == '{' && hl > 1 && hl <= (uint64_t)st.st_size - 8) {
        snprintf(why, cap, "a safetensors file (a checkpoint?), not a shard");
        return why;
    }
    return NULL;
}

int shardset_open(ShardSet **out, const char *const *paths, int n_paths, char *err)
{
    *out = NULL;
    if (n_paths < 1)
        return lmr_fail(err, LMR_EINVAL, "no shard given");
    ShardSet *s = calloc(1, sizeof *s);
    if (!s || !(s->files = calloc((size_t)n_paths, sizeof *s->files))) {
        free(s);
        return LMR_ENOMEM;
    }
    shardmeta_init(&s->meta);
    int rc = 0;
    for (int k = 0; k < n_paths; k++) {
        SetFile *f = &s->files[k];
        s->n_files = k + 1;
        snprintf(f->path, sizeof f->path, "%s", paths[k]);
        shardmeta_init(&f->meta);
        char why[96];
        if (not_a_shard(paths[k], why, sizeof why)) {
            rc = lmr_fail(err, LMR_EBADMAGIC, "%s: %s", paths[k], why);
            goto fail;
        }
        int h5 = shard_is_hdf5(paths[k]);
        if (h5 < 0) {
            rc = lmr_fail(err, h5, "%s: %s", paths[k], strerror(-h5));
            goto fail;
        }
        rc = h5 ? h5r_open(&f->h5, paths[k], &f->meta, &f->labels, err)
                : lmdbr_open(&f->lmdb, paths[k], &f->meta, &f->labels, err);
        if (rc)
            goto fail;
        f->first = s->n;
        s->n += f->labels.n;
        if (h5 && f->labels.n) {
            if (!(f->order = malloc(sizeof(uint64_t) * f->labels.n))) {
                rc = LMR_ENOMEM;
                goto fail;
            }
            for (uint64_t i = 0; i < f->labels.n; i++)
                f->order[i] = i;
            qsort_r(f->order, f->labels.n, sizeof(uint64_t), order_cmp, f);
        }
        if ((rc = set_merge(&s->meta, &f->meta, f->path, err)))
            goto fail;
        if (k == 0 || !s->meta.dataset[0])
            shardmeta_merge_hint(&s->meta, &f->meta);
    }
    if (s->n == 0) {
        rc = n_paths == 1 ? lmr_fail(err, LMR_EEMPTY, "%s: shard is empty (no clips)", paths[0])
                          : lmr_fail(err, LMR_EEMPTY, "shard set %s ...: shard is empty (no clips in its %d files)", paths[0], n_paths);
        goto fail;
    }
    if ((rc = set_find_duplicates(s, err)))
        goto fail;
    *out = s;
    return 0;
fail:
    shardset_close(&s);
    return rc;
}

void shardset_close(ShardSet **ps)
{
    if (!ps || !*ps)
        return;
    ShardSet *s = *ps;
    for (int k = 0; k < s->n_files; k++) {
        SetFile *f = &s->files[k];
        lmdbr_close(&f->lmdb);
        h5r_close(&f->h5);
        shardmeta_free(&f->meta);
        labelindex_free(&f->labels);
        free(f->order);
    }
    free(s->files);
    shardmeta_free(&s->meta);
    free(s);
    *ps = NULL;
}

uint64_t shardset_count(const ShardSet *s) { return s->n; }

const ShardMeta *shardset_meta(const ShardSet *s) { return &s->meta; }

/* File holding global record i (i < s->n). */
static const SetFile *set_file(const ShardSet *s, uint64_t i)
{
    int lo = 0, hi = s->n_files - 1;
    while (lo < hi) {
        int mid = (lo + hi + 1) / 2;
        if (s->files[mid].first <= i)
            lo = mid;
        else
            hi = mid - 1;
    }
    return &s->files[lo];
}

int shardset_labels(const ShardSet *s, uint64_t i, const int32_t **labels)
{
    *labels = NULL;
    if (i >= s->n)
        return 0;
    const SetFile *f = set_file(s, i);
    uint64_t j = i - f->first;
    *labels = f->labels.labels + f->labels.label_off[j];
    return (int)(f->labels.label_off[j + 1] - f->labels.label_off[j]);
}

int shardset_get(ShardSet *s, uint64_t i, LmrBuf *scratch, RecordInfo *info)
{
    memset(info, 0, sizeof *info);
    if (i >= s->n)
        return LMR_FAIL(s, LMR_ERANGE, "record %llu of %llu", (unsigned long long)i, (unsigned long long)s->n);
    const SetFile *f = set_file(s, i);
    uint64_t j = i - f->first;
    const uint8_t *rec;
    size_t len;
    char err[LMR_ERRLEN], show[LMR_SHOWLEN];
    const char *id;
    uint16_t idl;
    file_id(f, j, &id, &idl);
    if (f->h5) {
        int rc = h5r_get(f->h5, j, &f->labels, scratch, err);
        if (rc)
            return LMR_FAIL(s, rc, "%s: record %llu (clip %s): %s", f->path, (unsigned long long)j, lmr_show(show, id, idl), err);
        rec = scratch->data;
        len = scratch->len;
    } else {
        lmdbr_get(f->lmdb, j, &rec, &len);
    }
    int rc = record_parse(rec, len, info, err);
    if (!rc && info->total_size != len)
        rc = lmr_fail(err, LMR_ECORRUPT, "a value of %zu bytes holds a record of %llu", len,
                      (unsigned long long)info->total_size);
    if (!rc && (info->id_len != idl || memcmp(info->id, id, idl) != 0)) {
        char other[LMR_SHOWLEN];
        rc = lmr_fail(err, LMR_ECORRUPT, "holds the record of clip %s: the key is not the record's id",
                      lmr_show(other, info->id, info->id_len));
    }
    if (!rc && info->kind == LMR_KIND_META)
        rc = lmr_fail(err, LMR_ECORRUPT, "holds a stream metadata record, not a clip");
    if (rc) {
        memset(info, 0, sizeof *info);
        return LMR_FAIL(s, rc, "%s: record %llu (%s %s): %s", f->path, (unsigned long long)j, f->h5 ? "clip" : "key",
                        lmr_show(show, id, idl), err);
    }
    return 0;
}

int64_t shardset_find(const ShardSet *s, const char *id)
{
    size_t n = strlen(id);
    for (int k = 0; k < s->n_files; k++) {
        const SetFile *f = &s->files[k];
        uint64_t lo = 0, hi = f->labels.n;
        while (lo < hi) {
            uint64_t mid = lo + (hi - lo) / 2, j = f->order ? f->order[mid] : mid;
            const char *m;
            uint16_t ml;
            file_id(f, j, &m, &ml);
            int c = id_cmp(m, ml, id, n);
            if (c == 0)
                return (int64_t)(f->first + j);
            if (c < 0)
                lo = mid + 1;
            else
                hi = mid;
        }
    }
    return -1;
}

void shardset_id(const ShardSet *s, uint64_t i, const char **id, uint16_t *len, const char **file)
{
    int k = 0;
    while (k + 1 < s->n_files && i >= s->files[k + 1].first)
        k++;
    file_id(&s->files[k], i - s->files[k].first, id, len);
    if (file)
        *file = s->files[k].path;
}

const char *shardset_error(const ShardSet *s) { return s ? s->last_error : ""; }

int shardset_walked(const ShardSet *s)
{
    int n = 0;
    for (int k = 0; s && k < s->n_files; k++)
        n += s->files[k].lmdb && !lmdbr_indexed(s->files[k].lmdb);
    return n;
}

int shard_check_index(const char *path, int *state, char *err)
{
    *state = 0;
    int h5 = shard_is_hdf5(path);
    if (h5 < 0)
        return lmr_fail(err, h5, "%s: %s", path, strerror(-h5));
    return h5 ? 0 : lmdb_check_index(path, state, err);
}
