/* LMDB shards: one file (MDB_NOSUBDIR), key = clip id, value = the record bytes, "__meta__" =
 * the metadata JSON. The writer commits every txn_bytes, so a kill leaves the last commit and a
 * re-run skips what is there; when the map fills, the open transaction is redone in a bigger map
 * from the copy of its records kept in memory. Readers hold one read transaction for their whole
 * life so that the zero-copy values stay valid, and never lock. */
#include <errno.h>
#include <lmdb.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "shard_internal.h"

/* Map an MDB_* code (or errno) to an lmr code. */
static int lmdb_code(int rc)
{
    switch (rc) {
    case MDB_INVALID: return LMR_EBADMAGIC;
    case MDB_VERSION_MISMATCH: return LMR_EVERSION;
    case MDB_CORRUPTED: case MDB_PAGE_NOTFOUND: return LMR_ECORRUPT;
    default: return rc > 0 ? -rc : LMR_ELMDB;
    }
}

static int lmdb_fail(char *err, int rc, const char *path, const char *what)
{
    return lmr_fail(err, lmdb_code(rc), "%s: %s: %s", path, what, mdb_strerror(rc));
}

// --- writer ---------------------------------------------------------------------------------

struct LmdbWriter {
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    size_t map_size;
    uint64_t txn_bytes;
    LmrBuf pending; /* the open transaction's records, back to back, to redo after MDB_MAP_FULL */
    const ShardMeta *meta;
    char path[256];
};

static int grow_map(LmdbWriter *w, char *err)
{
    w->map_size *= 2;
    int rc = mdb_env_set_mapsize(w->env, w->map_size);
    return rc ? lmdb_fail(err, rc, w->path, "growing the map") : 0;
}

/* Begin a transaction and put the pending records again, growing the map until they fit. */
static int redo_pending(LmdbWriter *w, char *err)
{
    for (;;) {
        int rc = mdb_txn_begin(w->env, NULL, 0, &w->txn);
        if (rc)
            return lmdb_fail(err, rc, w->path, "begin");
        size_t off = 0;
        while (!rc && off < w->pending.len) {
            RecordInfo info;
            char perr[LMR_ERRLEN];
            if (record_parse(w->pending.data + off, w->pending.len - off, &info, perr))
                return lmr_fail(err, LMR_ECORRUPT, "%s: pending record: %s", w->path, perr); /* cannot happen */
            MDB_val k = {info.id_len, (void *)info.id}, v = {info.total_size, w->pending.data + off};
            rc = mdb_put(w->txn, w->dbi, &k, &v, 0);
            off += info.total_size;
        }
        if (!rc)
            return 0;
        mdb_txn_abort(w->txn);
        w->txn = NULL;
        if (rc != MDB_MAP_FULL)
            return lmdb_fail(err, rc, w->path, "put");
        LMR_TRY(grow_map(w, err));
    }
}

/* Write __meta__ and commit; redo in a bigger map when full. A new transaction is begun. */
static int commit_txn(LmdbWriter *w, const ShardMeta *meta, char *err)
{
    char *json = shardmeta_to_json(meta);
    if (!json)
        return lmr_fail(err, LMR_ENOMEM, "%s: metadata", w->path);
    int rc;
    for (;;) {
        MDB_val k = {strlen(LMR_META_KEY), LMR_META_KEY}, v = {strlen(json), json};
        rc = mdb_put(w->txn, w->dbi, &k, &v, 0);
        if (rc) {
            mdb_txn_abort(w->txn);
        } else {
            rc = mdb_txn_commit(w->txn); /* frees the transaction, committed or not */
        }
        w->txn = NULL;
        if (rc != MDB_MAP_FULL)
            break;
        if ((rc = grow_map(w, err)) || (rc = redo_pending(w, err))) {
            free(json);
            return rc;
        }
    }
    free(json);
    if (rc)
        return lmdb_fail(err, rc, w->path, "commit");
    w->pending.len = 0;
    rc = mdb_txn_begin(w->env, NULL, 0, &w->txn);
    return rc ? lmdb_fail(err, rc, w->path, "begin") : 0;
}

/* Fold the records already in the shard into meta, so a resumed pack keeps exact counts. */
static int scan_existing(LmdbWriter *w, ShardMeta *meta, char *err)
{
    MDB_cursor *cur;
    int rc = mdb_cursor_open(w->txn, w->dbi, &cur);
    if (rc)
        return lmdb_fail(err, rc, w->path, "cursor");
    MDB_val k, v;
    ShardMeta hint;
    shardmeta_init(&hint);
    int have_hint = 0;
    while ((rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) == 0) {
        if (k.mv_size == strlen(LMR_META_KEY) && memcmp(k.mv_data, LMR_META_KEY, k.mv_size) == 0) {
            char *json = strndup(v.mv_data, v.mv_size);
            rc = json ? shardmeta_from_json(&hint, json, err) : LMR_ENOMEM;
            free(json);
            if (rc)
                break;
            have_hint = 1;
            continue;
        }
        RecordInfo info;
        char perr[LMR_ERRLEN];
        if ((rc = record_parse(v.mv_data, v.mv_size, &info, perr)) ||
            (rc = shardmeta_check(meta, &info, perr)) || (rc = shardmeta_account(meta, &info))) {
            lmr_fail(err, rc, "%s: existing key %.*s: %s (lmr-pack --verify names every bad record)", w->path,
                     (int)k.mv_size, (char *)k.mv_data, perr);
            break;
        }
    }
    mdb_cursor_close(cur);
    if (have_hint && rc == MDB_NOTFOUND)
        shardmeta_merge_hint(meta, &hint);
    shardmeta_free(&hint);
    if (rc == MDB_NOTFOUND)
        return 0;
    return rc < 0 ? rc : lmdb_fail(err, rc, w->path, "reading existing records");
}

void lmdbw_close(LmdbWriter **pw)
{
    if (!pw || !*pw)
        return;
    LmdbWriter *w = *pw;
    if (w->txn)
        mdb_txn_abort(w->txn);
    if (w->env)
        mdb_env_close(w->env);
    buf_free(&w->pending);
    free(w);
    *pw = NULL;
}

int lmdbw_open(LmdbWriter **out, const char *path, uint64_t txn_bytes, ShardMeta *meta, char *err)
{
    *out = NULL;
    LmdbWriter *w = calloc(1, sizeof *w);
    if (!w)
        return LMR_ENOMEM;
    snprintf(w->path, sizeof w->path, "%s", path);
    w->txn_bytes = txn_bytes;
    w->meta = meta;
    buf_init(&w->pending);
    struct stat st;
    uint64_t existing = stat(path, &st) == 0 ? (uint64_t)st.st_size : 0;
    w->map_size = (size_t)(1u << 20); /* grows by doubling: small transactions, small start */
    while (w->map_size < 2 * existing + 4 * txn_bytes)
        w->map_size *= 2;
    int rc = mdb_env_create(&w->env);
    if (!rc)
        rc = mdb_env_set_mapsize(w->env, w->map_size);
    if (!rc)
        rc = mdb_env_open(w->env, path, MDB_NOSUBDIR | MDB_NOMETASYNC, 0644); /* one fsync per commit, integrity kept */
    if (rc) {
        rc = lmdb_fail(err, rc, path, "opening for writing");
        goto fail;
    }
    MDB_envinfo ei;
    if (mdb_env_info(w->env, &ei) == 0 && ei.me_mapsize > w->map_size)
        w->map_size = ei.me_mapsize;
    if ((rc = mdb_txn_begin(w->env, NULL, 0, &w->txn)) || (rc = mdb_dbi_open(w->txn, NULL, 0, &w->dbi))) {
        rc = lmdb_fail(err, rc, path, "begin");
        goto fail;
    }
    if ((rc = scan_existing(w, meta, err)))
        goto fail;
    *out = w;
    return 0;
fail:
    lmdbw_close(&w);
    return rc;
}

int lmdbw_put(LmdbWriter *w, const RecordInfo *info, const uint8_t *rec, size_t len, char *err)
{
    if (w->pending.len && w->pending.len + len > w->txn_bytes)
        LMR_TRY(commit_txn(w, w->meta, err));
    for (;;) {
        MDB_val k = {info->id_len, (void *)info->id}, v = {len, (void *)rec};
        int rc = mdb_put(w->txn, w->dbi, &k, &v, MDB_NOOVERWRITE);
        if (rc == MDB_KEYEXIST) /* v now holds the stored value */
            return v.mv_size == len && memcmp(v.mv_data, rec, len) == 0
                       ? LMR_DONE
                       : lmr_fail(err, LMR_EEXIST, "%s: clip %.*s is already stored with other bytes", w->path,
                                  (int)info->id_len, info->id);
        if (rc == MDB_MAP_FULL) {
            mdb_txn_abort(w->txn);
            w->txn = NULL;
            LMR_TRY(grow_map(w, err));
            LMR_TRY(redo_pending(w, err));
            continue;
        }
        if (rc)
            return lmr_fail(err, lmdb_code(rc), "%s: clip %.*s: put: %s", w->path, (int)info->id_len, info->id,
                            mdb_strerror(rc));
        break;
    }
    if (buf_reserve(&w->pending, w->pending.len + len))
        return lmr_fail(err, LMR_ENOMEM, "%s: transaction copy", w->path);
    memcpy(w->pending.data + w->pending.len, rec, len);
    w->pending.len += len;
    return 0;
}

int lmdbw_commit(LmdbWriter *w, const ShardMeta *meta, char *err)
{
    if (!w->txn)
        return lmr_fail(err, LMR_ELMDB, "%s: no open transaction after an earlier failure", w->path);
    return commit_txn(w, meta, err);
}

// --- reader ---------------------------------------------------------------------------------

typedef struct {
    const uint8_t *val;
    size_t len;
    const char *key;
    size_t key_len;
} LmdbItem;

struct LmdbReader {
    MDB_env *env;
    MDB_txn *txn; /* held open: the map pages it sees stay valid for zero-copy reads */
    LmdbItem *items;
    uint64_t n, cap;
};

void lmdbr_close(LmdbReader **pr)
{
    if (!pr || !*pr)
        return;
    LmdbReader *r = *pr;
    if (r->txn)
        mdb_txn_abort(r->txn);
    if (r->env)
        mdb_env_close(r->env);
    free(r->items);
    free(r);
    *pr = NULL;
}

int lmdbr_open(LmdbReader **out, const char *path, ShardMeta *meta, LabelIndex *labels, char *err)
{
    *out = NULL;
    LmdbReader *r = calloc(1, sizeof *r);
    if (!r)
        return LMR_ENOMEM;
    ShardMeta hint;
    shardmeta_init(&hint);
    int have_hint = 0;
    MDB_cursor *cur = NULL;
    MDB_dbi dbi;
    int rc = mdb_env_create(&r->env);
    /* read-only, no lock file: many processes may read, none of them registers or blocks */
    if (!rc)
        rc = mdb_env_open(r->env, path, MDB_NOSUBDIR | MDB_RDONLY | MDB_NOLOCK | MDB_NOTLS, 0444);
    if (!rc)
        rc = mdb_txn_begin(r->env, NULL, MDB_RDONLY, &r->txn);
    if (!rc)
        rc = mdb_dbi_open(r->txn, NULL, 0, &dbi);
    if (!rc)
        rc = mdb_cursor_open(r->txn, dbi, &cur);
    if (rc) {
        rc = lmdb_fail(err, rc, path, "opening");
        goto fail;
    }
    MDB_val k, v;
    while ((rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) == 0) {
        if (k.mv_size == strlen(LMR_META_KEY) && memcmp(k.mv_data, LMR_META_KEY, k.mv_size) == 0) {
            char *json = strndup(v.mv_data, v.mv_size);
            rc = json ? shardmeta_from_json(&hint, json, err) : LMR_ENOMEM;
            free(json);
            if (rc)
                goto fail;
            have_hint = 1;
            continue;
        }
        if (r->n == r->cap) {
            uint64_t cap = r->cap ? r->cap * 2 : 1024;
            LmdbItem *it = realloc(r->items, sizeof *it * cap);
            if (!it) {
                rc = LMR_ENOMEM;
                goto fail;
            }
            r->items = it;
            r->cap = cap;
        }
        r->items[r->n++] = (LmdbItem){v.mv_data, v.mv_size, k.mv_data, k.mv_size};
        /* a record that does not parse stays in the index; shardset_get reports it */
        RecordInfo info;
        char perr[LMR_ERRLEN];
        int bad = record_parse(v.mv_data, v.mv_size, &info, perr);
        if (!bad && (rc = shardmeta_check(meta, &info, perr))) {
            lmr_fail(err, rc, "%s: %s", path, perr);
            goto fail;
        }
        if ((rc = labelindex_push(labels, info.labels, bad ? 0 : info.n_labels)) ||
            (!bad && (rc = shardmeta_account(meta, &info))))
            goto fail;
    }
    if (rc != MDB_NOTFOUND) {
        rc = lmdb_fail(err, rc, path, "walking the keys");
        goto fail;
    }
    mdb_cursor_close(cur);
    if (have_hint) {
        if (hint.kind && meta->kind && (hint.kind != meta->kind || hint.dtype != meta->dtype)) {
            rc = lmr_fail(err, LMR_ECORRUPT, "%s: __meta__ disagrees with the records' kind/dtype", path);
            goto fail_nocur;
        }
        shardmeta_merge_hint(meta, &hint);
    }
    shardmeta_free(&hint);
    *out = r;
    return 0;
fail:
    if (cur)
        mdb_cursor_close(cur);
fail_nocur:
    shardmeta_free(&hint);
    lmdbr_close(&r);
    return rc;
}

void lmdbr_get(const LmdbReader *r, uint64_t i, const uint8_t **rec, size_t *len)
{
    *rec = r->items[i].val;
    *len = r->items[i].len;
}

void lmdbr_key(const LmdbReader *r, uint64_t i, const char **key, uint16_t *len)
{
    *key = r->items[i].key;
    *len = (uint16_t)r->items[i].key_len;
}
