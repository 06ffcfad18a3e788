/* LMDB shards: one file (MDB_NOSUBDIR), key = clip id, value = the record bytes, "__meta__" =
 * the metadata JSON. The writer commits every txn_bytes, so a kill leaves the last commit and a
 * re-run skips what is there; when the map fills, the open transaction is redone in a bigger map
 * from the copy of its records kept in memory. The writer holds an flock on the file for its
 * whole life, so a second writer is refused. Readers hold one read transaction for their whole
 * life so that the zero-copy values stay valid, and never lock.
 *
 * A damaged file must give an error, not a dead process: the file must reach the environment's
 * last page (else pages past its end would SIGBUS), and the first walk over an existing file runs
 * in a child process, because liblmdb answers some damage (a zeroed page) with a failed assert,
 * that is abort(), and touching a value that runs past the end of the file raises SIGBUS. */
#include <errno.h>
#include <fcntl.h>
#include <lmdb.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

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

// --- checks on a file before it is trusted ------------------------------------------------------

/* The file must hold every page up to the environment's last one. @return 0 or LMR_ECORRUPT. */
static int check_size(MDB_env *env, const char *path, char *err)
{
    MDB_envinfo ei;
    MDB_stat ms;
    struct stat st;
    if (mdb_env_info(env, &ei) || mdb_env_stat(env, &ms) || stat(path, &st))
        return 0; /* nothing to compare: the walk reports what is wrong */
    uint64_t need = ((uint64_t)ei.me_last_pgno + 1) * ms.ms_psize;
    if ((uint64_t)st.st_size < need)
        return lmr_fail(err, LMR_ECORRUPT,
                        "%s: truncated LMDB file: %llu bytes, its last page ends at byte %llu (copy the whole "
                        "file again, or pack it again)",
                        path, (unsigned long long)st.st_size, (unsigned long long)need);
    return 0;
}

typedef struct {
    uint64_t n;      /* keys walked */
    uint32_t len;    /* last key walked */
    char key[512];
} WalkProgress;

/* The child's walk: every key, and the first and last byte of every value. Exit 0 when liblmdb
 * walked it all, 3 when it reported an error (the caller's own walk then reports it). */
static int walk_child(const char *path, WalkProgress *pr)
{
    MDB_env *env = NULL;
    MDB_txn *txn = NULL;
    MDB_dbi dbi;
    MDB_cursor *cur = NULL;
    if (mdb_env_create(&env) ||
        mdb_env_open(env, path, MDB_NOSUBDIR | MDB_RDONLY | MDB_NOLOCK | MDB_NOTLS, 0444) ||
        mdb_txn_begin(env, NULL, MDB_RDONLY, &txn) || mdb_dbi_open(txn, NULL, 0, &dbi) || mdb_cursor_open(txn, dbi, &cur)) {
        if (txn)
            mdb_txn_abort(txn);
        if (env)
            mdb_env_close(env);
        return 3;
    }
    MDB_val k, v;
    int rc;
    volatile uint8_t sink = 0;
    while ((rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) == 0) {
        pr->len = k.mv_size < sizeof pr->key ? (uint32_t)k.mv_size : (uint32_t)sizeof pr->key;
        memcpy(pr->key, k.mv_data, pr->len);
        pr->n++;
        if (v.mv_size)
            sink += ((const uint8_t *)v.mv_data)[0] + ((const uint8_t *)v.mv_data)[v.mv_size - 1];
    }
    (void)sink;
    // closed like any reader, so that a checker of the child (valgrind) finds nothing left over
    mdb_cursor_close(cur);
    mdb_txn_abort(txn);
    mdb_env_close(env);
    return rc == MDB_NOTFOUND ? 0 : 3;
}

/* Walk path in a child process; @return 0 (walked, or could not check), LMR_ECORRUPT when the
 * child died on the file. A fork in a threaded process is safe here: the child only opens its own
 * environment, and glibc keeps malloc usable after fork. */
static int walk_in_child(const char *path, char *err)
{
    WalkProgress *pr = mmap(NULL, sizeof *pr, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (pr == MAP_FAILED)
        return 0;
    memset(pr, 0, sizeof *pr);
    pid_t pid = fork();
    if (pid == 0) { /* liblmdb prints its failed asserts: not the parent's business */
        int null = open("/dev/null", O_WRONLY);
        if (null >= 0)
            dup2(null, 2);
        _exit(walk_child(path, pr)); /* no atexit handlers, no stdio flush in the child */
    }
    int status = 0, rc = 0;
    if (pid > 0) {
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
            ;
        int died = WIFSIGNALED(status) || (WIFEXITED(status) && WEXITSTATUS(status) != 0 && WEXITSTATUS(status) != 3);
        if (died) {
            char how[64], show[LMR_SHOWLEN], where[LMR_SHOWLEN + 64];
            if (WIFSIGNALED(status))
                snprintf(how, sizeof how, "%s", strsignal(WTERMSIG(status)));
            else
                snprintf(how, sizeof how, "exit status %d", WEXITSTATUS(status));
            if (pr->n)
                snprintf(where, sizeof where, "after %llu keys (the last %s)", (unsigned long long)pr->n,
                         lmr_show(show, pr->key, pr->len));
            else
                snprintf(where, sizeof where, "before the first key");
            rc = lmr_fail(err, LMR_ECORRUPT,
                          "%s: corrupt LMDB shard: liblmdb stopped on a damaged page %s (%s); the records "
                          "before it may be saved with mdb_dump, or pack it again",
                          path, where, how);
        }
    }
    munmap(pr, sizeof *pr);
    return rc;
}

/* An existing file, before a writer maps it: its size (checked in a read-only environment, which
 * reads only the meta pages), then a walk in a child. */
static int check_existing(const char *path, char *err)
{
    MDB_env *env;
    int rc = mdb_env_create(&env);
    if (!rc)
        rc = mdb_env_open(env, path, MDB_NOSUBDIR | MDB_RDONLY | MDB_NOLOCK | MDB_NOTLS, 0444);
    if (rc) {
        rc = lmdb_fail(err, rc, path, "opening");
        mdb_env_close(env);
        return rc;
    }
    rc = check_size(env, path, err);
    mdb_env_close(env);
    return rc ? rc : walk_in_child(path, err);
}

/* The shard's __meta__ value parsed into hint; 0 when absent. */
static int read_meta_key(MDB_txn *txn, MDB_dbi dbi, const char *path, ShardMeta *hint, int *have, char *err)
{
    *have = 0;
    MDB_val k = {strlen(LMR_META_KEY), LMR_META_KEY}, v;
    int rc = mdb_get(txn, dbi, &k, &v);
    if (rc == MDB_NOTFOUND)
        return 0;
    if (rc)
        return lmdb_fail(err, rc, path, "reading __meta__");
    char *json = v.mv_size < LMR_META_MAX ? strndup(v.mv_data, v.mv_size) : NULL;
    if (!json)
        return lmr_fail(err, v.mv_size < LMR_META_MAX ? LMR_ENOMEM : LMR_ECORRUPT, "%s: __meta__ of %zu bytes", path,
                        v.mv_size);
    char perr[LMR_ERRLEN];
    rc = shardmeta_from_json(hint, json, perr);
    free(json);
    if (rc)
        return lmr_fail(err, rc, "%s: __meta__: %s", path, perr);
    *have = 1;
    return 0;
}

static int is_meta_key(const MDB_val *k)
{
    return k->mv_size == strlen(LMR_META_KEY) && memcmp(k->mv_data, LMR_META_KEY, k->mv_size) == 0;
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
    int lock_fd;    /* flock'ed for the writer's life */
    int max_key;    /* LMDB's key size limit */
    char path[256];
};

/* A failed write or commit: when the disk is (nearly) full, say so; liblmdb reports a short
 * write as EIO. */
static int write_fail(LmdbWriter *w, int rc, const char *what, char *err)
{
    struct statvfs vf;
    if ((rc == EIO || rc == ENOSPC || rc == EFBIG) && statvfs(w->path, &vf) == 0) {
        uint64_t free_bytes = (uint64_t)vf.f_bavail * vf.f_frsize;
        if (rc == ENOSPC || free_bytes < w->pending.len + (4u << 20))
            return lmr_fail(err, -ENOSPC, "%s: %s: no space left on device (%llu KiB free; %s)", w->path, what,
                            (unsigned long long)(free_bytes >> 10),
                            "the records of this transaction were not written; rerun to resume");
    }
    return lmr_fail(err, lmdb_code(rc), "%s: %s: %s (the records of this transaction were not written)", w->path, what,
                    mdb_strerror(rc));
}

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
        return write_fail(w, rc, "commit", err);
    w->pending.len = 0;
    rc = mdb_txn_begin(w->env, NULL, 0, &w->txn);
    return rc ? lmdb_fail(err, rc, w->path, "begin") : 0;
}

/* Fold the records already in the shard into meta, so a resumed pack keeps exact counts. The
 * stored metadata comes first: a class count declared there bounds the labels. */
static int scan_existing(LmdbWriter *w, ShardMeta *meta, char *err)
{
    ShardMeta hint;
    shardmeta_init(&hint);
    int have_hint = 0;
    int rc = read_meta_key(w->txn, w->dbi, w->path, &hint, &have_hint, err);
    if (!rc && have_hint)
        shardmeta_merge_hint(meta, &hint);
    shardmeta_free(&hint);
    if (rc)
        return rc;
    MDB_cursor *cur;
    if ((rc = mdb_cursor_open(w->txn, w->dbi, &cur)))
        return lmdb_fail(err, rc, w->path, "cursor");
    MDB_val k, v;
    while ((rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) == 0) {
        if (is_meta_key(&k))
            continue;
        RecordInfo info;
        char perr[LMR_ERRLEN], show[LMR_SHOWLEN];
        if ((rc = record_parse(v.mv_data, v.mv_size, &info, perr)) == 0 &&
            (info.id_len != k.mv_size || memcmp(info.id, k.mv_data, k.mv_size)))
            rc = lmr_fail(perr, LMR_ECORRUPT, "the key is not the record's id");
        if (rc || (rc = shardmeta_check(meta, &info, perr)) || (rc = shardmeta_account(meta, &info, perr))) {
            lmr_fail(err, rc, "%s: existing key %s: %s (lmr-pack --verify names every bad record)", w->path,
                     lmr_show(show, k.mv_data, k.mv_size), perr);
            break;
        }
    }
    mdb_cursor_close(cur);
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
    if (w->lock_fd >= 0)
        close(w->lock_fd); /* releases the flock */
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
    w->lock_fd = -1;
    w->txn_bytes = txn_bytes;
    w->meta = meta;
    buf_init(&w->pending);
    int rc;
    /* one writer at a time: two would each count only their own records into __meta__ */
    if ((w->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644)) < 0) {
        rc = lmr_fail(err, -errno, "%s: %s", path, strerror(errno));
        goto fail;
    }
    if (flock(w->lock_fd, LOCK_EX | LOCK_NB) != 0) {
        rc = errno == EWOULDBLOCK ? lmr_fail(err, -EBUSY, "another lmr-pack is writing %s", path)
                                  : lmr_fail(err, -errno, "%s: locking: %s", path, strerror(errno));
        goto fail;
    }
    struct stat st;
    uint64_t existing = fstat(w->lock_fd, &st) == 0 ? (uint64_t)st.st_size : 0;
    if (existing && (rc = check_existing(path, err)))
        goto fail;
    w->map_size = (size_t)(1u << 20); /* grows by doubling: small transactions, small start */
    while (w->map_size < 2 * existing + 4 * txn_bytes)
        w->map_size *= 2;
    rc = mdb_env_create(&w->env);
    if (!rc)
        rc = mdb_env_set_mapsize(w->env, w->map_size);
    if (!rc)
        rc = mdb_env_open(w->env, path, MDB_NOSUBDIR | MDB_NOMETASYNC, 0644); /* one fsync per commit, integrity kept */
    if (rc) {
        rc = lmdb_fail(err, rc, path, "opening for writing");
        goto fail;
    }
    if (existing && (rc = check_size(w->env, path, err)))
        goto fail;
    w->max_key = mdb_env_get_maxkeysize(w->env);
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
    char show[LMR_SHOWLEN];
    if (info->id_len > w->max_key)
        return lmr_fail(err, LMR_EINVAL, "%s: an id of %u bytes is longer than LMDB's key limit of %d bytes "
                        "(HDF5 shards take it): clip %s", w->path, info->id_len, w->max_key,
                        lmr_show(show, info->id, info->id_len));
    if (w->pending.len && w->pending.len + len > w->txn_bytes)
        LMR_TRY(commit_txn(w, w->meta, err));
    for (;;) {
        MDB_val k = {info->id_len, (void *)info->id}, v = {len, (void *)rec};
        int rc = mdb_put(w->txn, w->dbi, &k, &v, MDB_NOOVERWRITE);
        if (rc == MDB_KEYEXIST) { /* v now holds the stored value: the same clip when the checksums agree */
            RecordInfo old;
            char perr[LMR_ERRLEN];
            if (record_parse(v.mv_data, v.mv_size, &old, perr) == 0 && old.checksum == info->checksum &&
                old.id_len == info->id_len && memcmp(old.id, info->id, info->id_len) == 0)
                return LMR_DONE; /* codec and zstd level do not matter: the checksum is of the raw content */
            return lmr_fail(err, LMR_EEXIST, "%s: clip %s is already stored with other content", w->path,
                            lmr_show(show, info->id, info->id_len));
        }
        if (rc == MDB_MAP_FULL) {
            mdb_txn_abort(w->txn);
            w->txn = NULL;
            LMR_TRY(grow_map(w, err));
            LMR_TRY(redo_pending(w, err));
            continue;
        }
        if (rc) {
            char what[LMR_SHOWLEN + 16];
            snprintf(what, sizeof what, "clip %s: put", lmr_show(show, info->id, info->id_len));
            return write_fail(w, rc, what, err);
        }
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
    if (rc) {
        rc = lmdb_fail(err, rc, path, "opening");
        goto fail;
    }
    if ((rc = check_size(r->env, path, err)) || (rc = walk_in_child(path, err)))
        goto fail;
    if (!rc)
        rc = mdb_txn_begin(r->env, NULL, MDB_RDONLY, &r->txn);
    if (!rc)
        rc = mdb_dbi_open(r->txn, NULL, 0, &dbi);
    if (rc) {
        rc = lmdb_fail(err, rc, path, "opening");
        goto fail;
    }
    /* the stored metadata first: a class count declared there bounds the labels */
    if ((rc = read_meta_key(r->txn, dbi, path, &hint, &have_hint, err)))
        goto fail;
    if (have_hint)
        shardmeta_merge_hint(meta, &hint);
    if ((rc = mdb_cursor_open(r->txn, dbi, &cur))) {
        rc = lmdb_fail(err, rc, path, "opening");
        goto fail;
    }
    MDB_val k, v;
    char show[LMR_SHOWLEN];
    while ((rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) == 0) {
        if (is_meta_key(&k))
            continue;
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
        /* a record that does not parse, or not under its own id, or no clip at all, stays in the
         * index without labels: shardset_get reports it (and lmr-pack --verify names it) */
        RecordInfo info;
        char perr[LMR_ERRLEN];
        int bad = record_parse(v.mv_data, v.mv_size, &info, perr) || info.total_size != v.mv_size ||
                  info.id_len != k.mv_size || memcmp(info.id, k.mv_data, k.mv_size) || info.kind == LMR_KIND_META;
        if (!bad && ((rc = shardmeta_check(meta, &info, perr)) || (rc = shardmeta_account(meta, &info, perr)))) {
            lmr_fail(err, rc, "%s: %s", path, perr);
            goto fail;
        }
        if ((rc = labelindex_push(labels, info.labels, bad ? 0 : info.n_labels)))
            goto fail;
    }
    if (rc != MDB_NOTFOUND) {
        rc = r->n ? lmr_fail(err, lmdb_code(rc), "%s: corrupt LMDB shard: walking the keys after key %s: %s", path,
                             lmr_show(show, r->items[r->n - 1].key, r->items[r->n - 1].key_len), mdb_strerror(rc))
                  : lmr_fail(err, lmdb_code(rc), "%s: corrupt LMDB shard: walking the keys: %s", path, mdb_strerror(rc));
        goto fail;
    }
    mdb_cursor_close(cur);
    cur = NULL;
    if (have_hint && hint.kind && meta->kind && (hint.kind != meta->kind || hint.dtype != meta->dtype)) {
        rc = lmr_fail(err, LMR_ECORRUPT, "%s: __meta__ disagrees with the records' kind/dtype", path);
        goto fail;
    }
    shardmeta_free(&hint);
    *out = r;
    return 0;
fail:
    if (cur)
        mdb_cursor_close(cur);
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
