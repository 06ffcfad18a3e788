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
#include <xxhash.h>

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

/* Header of the __index__ value (layout below, at "the per-clip index"). */
#define IDX_MAGIC "LMRIDX1"

typedef struct {
    char magic[8];
    uint64_t txnid, n, n_labels, id_bytes, checksum;
    uint32_t psize, endian; /* 0x01020304 */
    uint64_t reserved;
} IdxHeader;

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
static int walk_child(const char *path, WalkProgress *pr, int probe_index)
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
    if (probe_index) { /* the lookups of __meta__ and __index__ are all a reader with an index does */
        MDB_envinfo ei;
        IdxHeader h;
        k = (MDB_val){strlen(LMR_META_KEY), LMR_META_KEY};
        if ((rc = mdb_get(txn, dbi, &k, &v)) && rc != MDB_NOTFOUND)
            return 3;
        k = (MDB_val){strlen(LMR_INDEX_KEY), LMR_INDEX_KEY};
        if ((rc = mdb_get(txn, dbi, &k, &v)) == 0 && v.mv_size >= sizeof h && mdb_env_info(env, &ei) == 0) {
            memcpy(&h, v.mv_data, sizeof h);
            sink += ((const uint8_t *)v.mv_data)[v.mv_size - 1];
            if (memcmp(h.magic, IDX_MAGIC, 8) == 0 && h.txnid == ei.me_last_txnid)
                return 10;
        } else if (rc && rc != MDB_NOTFOUND)
            return 3;
    }
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
static int walk_in_child(const char *path, int probe_index, int *indexed, char *err)
{
    if (indexed)
        *indexed = 0;
    WalkProgress *pr = mmap(NULL, sizeof *pr, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (pr == MAP_FAILED)
        return 0;
    memset(pr, 0, sizeof *pr);
    pid_t pid = fork();
    if (pid == 0) { /* liblmdb prints its failed asserts: not the parent's business */
        int null = open("/dev/null", O_WRONLY);
        if (null >= 0)
            dup2(null, 2);
        _exit(walk_child(path, pr, probe_index)); /* no atexit handlers, no stdio flush in the child */
    }
    int status = 0, rc = 0;
    if (pid > 0) {
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
            ;
        if (indexed && WIFEXITED(status) && WEXITSTATUS(status) == 10)
            *indexed = 1;
        int died = WIFSIGNALED(status) ||
                   (WIFEXITED(status) && WEXITSTATUS(status) != 0 && WEXITSTATUS(status) != 3 && WEXITSTATUS(status) != 10);
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
    return rc ? rc : walk_in_child(path, 0, NULL, err);
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
    return (k->mv_size == strlen(LMR_META_KEY) && memcmp(k->mv_data, LMR_META_KEY, k->mv_size) == 0) ||
           (k->mv_size == strlen(LMR_INDEX_KEY) && memcmp(k->mv_data, LMR_INDEX_KEY, k->mv_size) == 0);
}

// --- the per-clip index under __index__ ------------------------------------------------------
/* Written by the writer's last transaction, so a reader opens a shard without touching its
 * records. Native little-endian, every array aligned to its element:
 *   IdxHeader (64 bytes)
 *   uint64_t off[n]            file offset of record i's value
 *   uint64_t label_off[n + 1]  labels of record i: labels[label_off[i] .. label_off[i + 1])
 *   uint32_t len[n]            value size
 *   uint32_t id_off[n + 1]     id of record i: ids[id_off[i] .. id_off[i + 1]) (= its key)
 *   int32_t  labels[n_labels]
 *   char     ids[id_bytes]
 * Records come in key order. txnid is the transaction that wrote the index: any later write to
 * the file (a resumed pack, another tool) leaves the file's last transaction newer, and the
 * reader then ignores the index and walks the records. The checksum is XXH3-64 of all bytes
 * after the header. Offsets of the records of the one leaf page that the index's own write
 * copies point at that page's previous copy, which no later transaction reuses before it
 * replaces the index (the writer deletes __index__ in its first transaction). */

typedef struct {
    const uint64_t *off, *label_off;
    const uint32_t *len, *id_off;
    const int32_t *labels;
    const char *ids;
} IdxView;

static size_t idx_size(uint64_t n, uint64_t n_labels, uint64_t id_bytes)
{
    return sizeof(IdxHeader) + 8 * n + 8 * (n + 1) + 4 * n + 4 * (n + 1) + 4 * n_labels + id_bytes;
}

static void idx_view(const uint8_t *p, const IdxHeader *h, IdxView *v)
{
    const uint8_t *q = p + sizeof *h;
    v->off = (const uint64_t *)q, q += 8 * h->n;
    v->label_off = (const uint64_t *)q, q += 8 * (h->n + 1);
    v->len = (const uint32_t *)q, q += 4 * h->n;
    v->id_off = (const uint32_t *)q, q += 4 * (h->n + 1);
    v->labels = (const int32_t *)q, q += 4 * h->n_labels;
    v->ids = (const char *)q;
}

/* File offset of a value liblmdb handed out from its map: the page holding it starts with its
 * page number. base is the map's start, the same for every value (checked by the caller). */
static const uint8_t *map_base(const void *p, size_t psize)
{
    const uint8_t *page = (const uint8_t *)((uintptr_t)p & ~(uintptr_t)(psize - 1));
    uint64_t pgno;
    memcpy(&pgno, page, sizeof pgno);
    return page - pgno * psize;
}

typedef struct {
    LmrBuf off, label_off, len, id_off, labels, ids;
    uint64_t n;
} IdxBuild;

static int buf_add(LmrBuf *b, const void *p, size_t n)
{
    if (buf_reserve(b, b->len + n))
        return LMR_ENOMEM;
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    return 0;
}

static void idx_build_free(IdxBuild *x)
{
    buf_free(&x->off), buf_free(&x->label_off), buf_free(&x->len);
    buf_free(&x->id_off), buf_free(&x->labels), buf_free(&x->ids);
}

/* Walk the committed records in txn (no page of it dirty yet) and serialise the index into out.
 * @return 0, LMR_ENOMEM, LMR_ECORRUPT (a record that does not parse), LMR_ERANGE (too big for
 * the layout: no index is written then). */
static int idx_build(MDB_txn *txn, MDB_dbi dbi, size_t psize, LmrBuf *out, const char *path, char *err)
{
    IdxBuild x;
    memset(&x, 0, sizeof x);
    buf_init(&x.off), buf_init(&x.label_off), buf_init(&x.len), buf_init(&x.id_off), buf_init(&x.labels), buf_init(&x.ids);
    MDB_cursor *cur;
    int rc = mdb_cursor_open(txn, dbi, &cur);
    if (rc)
        return lmdb_fail(err, rc, path, "indexing");
    uint64_t zero = 0;
    uint32_t zero32 = 0;
    rc = buf_add(&x.label_off, &zero, 8) || buf_add(&x.id_off, &zero32, 4) ? LMR_ENOMEM : 0;
    const uint8_t *base = NULL;
    MDB_val k, v;
    int mrc;
    while (!rc && (mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) == 0) {
        if (is_meta_key(&k))
            continue;
        RecordInfo info;
        char perr[LMR_ERRLEN], show[LMR_SHOWLEN];
        if ((rc = record_parse(v.mv_data, v.mv_size, &info, perr))) {
            rc = lmr_fail(err, LMR_ECORRUPT, "%s: indexing: key %s: %s", path, lmr_show(show, k.mv_data, k.mv_size), perr);
            break;
        }
        const uint8_t *b = map_base(v.mv_data, psize);
        if (!base)
            base = b;
        if (b != base || v.mv_size > UINT32_MAX || x.ids.len + k.mv_size > UINT32_MAX) {
            rc = lmr_fail(err, LMR_ERANGE, "%s: indexing: the records do not fit the index layout", path);
            break;
        }
        uint64_t off = (uint64_t)((const uint8_t *)v.mv_data - base), lo;
        uint32_t len = (uint32_t)v.mv_size, io;
        if (buf_add(&x.off, &off, 8) || buf_add(&x.len, &len, 4) || buf_add(&x.labels, info.labels, 4 * (size_t)info.n_labels) ||
            buf_add(&x.ids, k.mv_data, k.mv_size)) {
            rc = LMR_ENOMEM;
            break;
        }
        lo = x.labels.len / 4, io = (uint32_t)x.ids.len;
        if (buf_add(&x.label_off, &lo, 8) || buf_add(&x.id_off, &io, 4)) {
            rc = LMR_ENOMEM;
            break;
        }
        x.n++;
    }
    mdb_cursor_close(cur);
    if (!rc && mrc != MDB_NOTFOUND)
        rc = lmdb_fail(err, mrc, path, "indexing");
    if (!rc) {
        IdxHeader h;
        memset(&h, 0, sizeof h);
        memcpy(h.magic, IDX_MAGIC, 8);
        h.txnid = mdb_txn_id(txn);
        h.n = x.n, h.n_labels = x.labels.len / 4, h.id_bytes = x.ids.len;
        h.psize = (uint32_t)psize, h.endian = 0x01020304;
        out->len = 0;
        if (buf_reserve(out, idx_size(h.n, h.n_labels, h.id_bytes)) || buf_add(out, &h, sizeof h) ||
            buf_add(out, x.off.data, x.off.len) || buf_add(out, x.label_off.data, x.label_off.len) ||
            buf_add(out, x.len.data, x.len.len) || buf_add(out, x.id_off.data, x.id_off.len) ||
            buf_add(out, x.labels.data, x.labels.len) || buf_add(out, x.ids.data, x.ids.len))
            rc = LMR_ENOMEM;
        else {
            h.checksum = XXH3_64bits(out->data + sizeof h, out->len - sizeof h);
            memcpy(out->data, &h, sizeof h);
        }
    }
    idx_build_free(&x);
    return rc == LMR_ENOMEM ? lmr_fail(err, rc, "%s: indexing: out of memory", path) : rc;
}

/* Check a stored index against the file: header, sizes, checksum, monotone arrays, values inside
 * the file. fresh is set when the index describes the file's last transaction; a stale index is
 * not checked further (the caller walks the records instead). @return 0 or LMR_ECORRUPT. */
static int idx_check(const uint8_t *p, size_t size, uint64_t last_txnid, uint64_t file_size, IdxHeader *h, int *fresh,
                     const char *path, char *err)
{
    *fresh = 0;
    if (size < sizeof *h)
        return lmr_fail(err, LMR_ECORRUPT, "%s: __index__ of %zu bytes (run lmr-pack --reindex on it)", path, size);
    memcpy(h, p, sizeof *h);
    if (memcmp(h->magic, IDX_MAGIC, 8) || h->endian != 0x01020304)
        return lmr_fail(err, LMR_ECORRUPT, "%s: __index__ has no index header (run lmr-pack --reindex on it)", path);
    if (h->txnid != last_txnid)
        return 0;
    if (h->n > size || h->n_labels > size || h->id_bytes > size || idx_size(h->n, h->n_labels, h->id_bytes) != size)
        return lmr_fail(err, LMR_ECORRUPT, "%s: __index__ of %zu bytes does not hold %llu records", path, size,
                        (unsigned long long)h->n);
    if (XXH3_64bits(p + sizeof *h, size - sizeof *h) != h->checksum)
        return lmr_fail(err, LMR_ECORRUPT, "%s: __index__ fails its checksum (damaged file? lmr-pack --verify; "
                        "lmr-pack --reindex rebuilds it)", path);
    IdxView v;
    idx_view(p, h, &v);
    if (v.label_off[0] || v.label_off[h->n] != h->n_labels || v.id_off[0] || v.id_off[h->n] != h->id_bytes)
        return lmr_fail(err, LMR_ECORRUPT, "%s: __index__: inconsistent offsets", path);
    for (uint64_t i = 0; i < h->n; i++)
        if (v.label_off[i + 1] < v.label_off[i] || v.id_off[i + 1] <= v.id_off[i] || v.id_off[i + 1] - v.id_off[i] > 511 ||
            v.off[i] > file_size || v.len[i] > file_size - v.off[i] || v.off[i] < 2 * (uint64_t)h->psize)
            return lmr_fail(err, LMR_ECORRUPT, "%s: __index__: record %llu is out of bounds", path, (unsigned long long)i);
    *fresh = 1;
    return 0;
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
    /* the index describes the file as it is: gone with the first commit of this writer, written
     * anew by its last */
    MDB_val ik = {strlen(LMR_INDEX_KEY), LMR_INDEX_KEY};
    if ((rc = mdb_del(w->txn, w->dbi, &ik, NULL)) && rc != MDB_NOTFOUND) {
        rc = lmdb_fail(err, rc, path, "dropping the old index");
        goto fail;
    }
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

/* The last transaction: the index of every record committed before it (see IdxHeader). A shard
 * too big for the index layout gets none (readers walk it). */
static int write_index(LmdbWriter *w, char *err)
{
    MDB_stat ms;
    int rc = mdb_env_stat(w->env, &ms);
    if (rc)
        return lmdb_fail(err, rc, w->path, "indexing");
    LmrBuf idx;
    buf_init(&idx);
    for (;;) {
        if (!w->txn && (rc = mdb_txn_begin(w->env, NULL, 0, &w->txn))) {
            rc = lmdb_fail(err, rc, w->path, "begin");
            break;
        }
        if ((rc = idx_build(w->txn, w->dbi, ms.ms_psize, &idx, w->path, err))) {
            if (rc == LMR_ERANGE)
                rc = 0;
            break;
        }
        MDB_val k = {strlen(LMR_INDEX_KEY), LMR_INDEX_KEY}, v = {idx.len, idx.data};
        rc = mdb_put(w->txn, w->dbi, &k, &v, 0);
        if (!rc) {
            rc = mdb_txn_commit(w->txn);
            w->txn = NULL;
            if (rc)
                rc = write_fail(w, rc, "writing the index", err);
            break;
        }
        mdb_txn_abort(w->txn);
        w->txn = NULL;
        if (rc != MDB_MAP_FULL) {
            rc = write_fail(w, rc, "writing the index", err);
            break;
        }
        if ((rc = grow_map(w, err)))
            break;
    }
    buf_free(&idx);
    return rc;
}

int lmdbw_commit(LmdbWriter *w, const ShardMeta *meta, char *err)
{
    if (!w->txn)
        return lmr_fail(err, LMR_ELMDB, "%s: no open transaction after an earlier failure", w->path);
    LMR_TRY(commit_txn(w, meta, err));
    return write_index(w, err);
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
    LmdbItem *items; /* walked shards: every record's value and key */
    uint64_t n, cap;
    /* indexed shards: the index (in liblmdb's map, or a copy when misaligned) and our own map of
     * the file, which the index's offsets point into */
    IdxView idx;
    void *idx_copy;
    const uint8_t *map;
    size_t map_len;
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
    if (r->map)
        munmap((void *)r->map, r->map_len);
    free(r->idx_copy);
    free(r->items);
    free(r);
    *pr = NULL;
}

int lmdbr_indexed(const LmdbReader *r) { return r && r->map; }

/* Open by the stored index (see IdxHeader): meta is __meta__ checked against the index (record
 * count, class counts), labels borrow the index's arrays. @return 0, LMR_DONE when the index is
 * older than the file (walk instead), or an error. */
static int open_indexed(LmdbReader *r, MDB_dbi dbi, const char *path, const ShardMeta *hint, ShardMeta *meta,
                        LabelIndex *labels, char *err)
{
    MDB_val k = {strlen(LMR_INDEX_KEY), LMR_INDEX_KEY}, v;
    int rc = mdb_get(r->txn, dbi, &k, &v);
    if (rc == MDB_NOTFOUND)
        return LMR_DONE;
    if (rc)
        return lmdb_fail(err, rc, path, "reading __index__");
    MDB_envinfo ei;
    MDB_stat ms;
    struct stat st;
    if ((rc = mdb_env_info(r->env, &ei)) || (rc = mdb_stat(r->txn, dbi, &ms)))
        return lmdb_fail(err, rc, path, "reading __index__");
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &st)) {
        rc = lmr_fail(err, -errno, "%s: %s", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return rc;
    }
    const uint8_t *p = v.mv_data;
    { /* read the whole index ahead in large requests: from a cold page cache this is the open's cost */
        uintptr_t a0 = (uintptr_t)p & ~(uintptr_t)4095, a1 = (uintptr_t)p + v.mv_size;
        madvise((void *)a0, a1 - a0, MADV_WILLNEED);
    }
    if ((uintptr_t)p % 8) { /* a small index lies in a leaf node, 2-byte aligned */
        if (!(r->idx_copy = malloc(v.mv_size ? v.mv_size : 1))) {
            close(fd);
            return LMR_ENOMEM;
        }
        memcpy(r->idx_copy, p, v.mv_size);
        p = r->idx_copy;
    }
    IdxHeader h;
    int fresh;
    if ((rc = idx_check(p, v.mv_size, ei.me_last_txnid, (uint64_t)st.st_size, &h, &fresh, path, err)) || !fresh) {
        close(fd);
        return rc ? rc : LMR_DONE;
    }
    r->map_len = (size_t)st.st_size;
    void *m = mmap(NULL, r->map_len, PROT_READ, MAP_SHARED, fd, 0);
    close(fd);
    if (m == MAP_FAILED)
        return lmr_fail(err, -errno, "%s: mapping: %s", path, strerror(errno));
    r->map = m;
    idx_view(p, &h, &r->idx);
    r->n = h.n;
    if (!hint || ms.ms_entries != h.n + 2 || hint->n_records != h.n)
        return lmr_fail(err, LMR_ECORRUPT,
                        "%s: the index holds %llu records, the file %llu keys and its metadata %llu records "
                        "(lmr-pack --verify; lmr-pack --reindex rebuilds the index)",
                        path, (unsigned long long)h.n, (unsigned long long)ms.ms_entries,
                        hint ? (unsigned long long)hint->n_records : 0ull);
    /* labels: in range, and counted as __meta__ counts them (each distinct label of a clip once) */
    int bound = hint->classes_declared && hint->n_classes > 0 ? hint->n_classes : LMR_MAX_CLASSES;
    int64_t *counts = calloc((size_t)(hint->n_classes > 0 ? hint->n_classes : 1), sizeof *counts);
    if (!counts)
        return LMR_ENOMEM;
    for (uint64_t i = 0; i < h.n && !rc; i++) {
        const int32_t *l = r->idx.labels + r->idx.label_off[i];
        uint64_t nl = r->idx.label_off[i + 1] - r->idx.label_off[i];
        for (uint64_t a = 0; a < nl; a++) {
            int dup = 0;
            for (uint64_t b = 0; b < a && !dup; b++)
                dup = l[b] == l[a];
            if (dup)
                continue;
            if (l[a] < -1 || l[a] >= bound || l[a] >= hint->n_classes) {
                char show[LMR_SHOWLEN];
                rc = lmr_fail(err, l[a] < -1 || l[a] >= bound ? LMR_ERANGE : LMR_ECORRUPT,
                              "%s: clip %s: label %d %s", path,
                              lmr_show(show, r->idx.ids + r->idx.id_off[i], r->idx.id_off[i + 1] - r->idx.id_off[i]),
                              l[a], l[a] < -1 || l[a] >= bound ? "is out of range" : "is beyond the metadata's classes");
                break;
            }
            if (l[a] >= 0)
                counts[l[a]]++;
        }
    }
    for (int c = 0; !rc && c < hint->n_classes; c++)
        if (counts[c] != (hint->class_counts ? hint->class_counts[c] : 0))
            rc = lmr_fail(err, LMR_ECORRUPT, "%s: the index counts %lld clips of class %d, the metadata %lld "
                          "(lmr-pack --verify; lmr-pack --reindex rebuilds the index)", path, (long long)counts[c], c,
                          (long long)(hint->class_counts ? hint->class_counts[c] : 0));
    free(counts);
    if (rc)
        return rc;
    if ((rc = shardmeta_copy(meta, hint)))
        return rc;
    labelindex_free(labels);
    labels->n = h.n;
    labels->label_off = (uint64_t *)r->idx.label_off;
    labels->labels = (int32_t *)r->idx.labels;
    labels->n_labels_total = h.n_labels;
    labels->borrowed = 1;
    return 0;
}

int lmdbr_open(LmdbReader **out, const char *path, ShardMeta *meta, LabelIndex *labels, char *err)
{
    *out = NULL;
    LmdbReader *r = calloc(1, sizeof *r);
    if (!r)
        return LMR_ENOMEM;
    ShardMeta hint;
    shardmeta_init(&hint);
    int have_hint = 0, indexed = 0;
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
    /* the child looks up the index; without a current one it walks every record */
    if ((rc = check_size(r->env, path, err)) || (rc = walk_in_child(path, 1, &indexed, err)))
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
    if (indexed) {
        rc = open_indexed(r, dbi, path, have_hint ? &hint : NULL, meta, labels, err);
        if (rc == 0) {
            shardmeta_free(&hint);
            *out = r;
            return 0;
        }
        if (rc != LMR_DONE)
            goto fail;
        rc = 0; /* the file changed after its index was written (the child saw an older state) */
    }
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
    if (r->map) {
        *rec = r->map + r->idx.off[i];
        *len = r->idx.len[i];
        return;
    }
    *rec = r->items[i].val;
    *len = r->items[i].len;
}

void lmdbr_key(const LmdbReader *r, uint64_t i, const char **key, uint16_t *len)
{
    if (r->map) {
        *key = r->idx.ids + r->idx.id_off[i];
        *len = (uint16_t)(r->idx.id_off[i + 1] - r->idx.id_off[i]);
        return;
    }
    *key = r->items[i].key;
    *len = (uint16_t)r->items[i].key_len;
}

int lmdb_check_index(const char *path, int *state, char *err)
{
    *state = 0;
    MDB_env *env = NULL;
    MDB_txn *txn = NULL;
    MDB_cursor *cur = NULL;
    MDB_dbi dbi;
    MDB_envinfo ei;
    MDB_stat ms;
    struct stat st;
    char show[LMR_SHOWLEN];
    int rc = mdb_env_create(&env);
    if (!rc)
        rc = mdb_env_open(env, path, MDB_NOSUBDIR | MDB_RDONLY | MDB_NOLOCK | MDB_NOTLS, 0444);
    if (rc) {
        rc = lmdb_fail(err, rc, path, "opening");
        goto out;
    }
    if ((rc = check_size(env, path, err)) || (rc = walk_in_child(path, 0, NULL, err)))
        goto out;
    if ((rc = mdb_txn_begin(env, NULL, MDB_RDONLY, &txn)) || (rc = mdb_dbi_open(txn, NULL, 0, &dbi)) ||
        (rc = mdb_env_info(env, &ei)) || (rc = mdb_env_stat(env, &ms))) {
        rc = lmdb_fail(err, rc, path, "opening");
        goto out;
    }
    MDB_val k = {strlen(LMR_INDEX_KEY), LMR_INDEX_KEY}, v;
    if ((rc = mdb_get(txn, dbi, &k, &v))) {
        rc = rc == MDB_NOTFOUND ? 0 : lmdb_fail(err, rc, path, "reading __index__");
        goto out;
    }
    if (stat(path, &st)) {
        rc = lmr_fail(err, -errno, "%s: %s", path, strerror(errno));
        goto out;
    }
    uint8_t *p = malloc(v.mv_size ? v.mv_size : 1); /* aligned */
    if (!p) {
        rc = LMR_ENOMEM;
        goto out;
    }
    memcpy(p, v.mv_data, v.mv_size);
    IdxHeader h;
    int fresh;
    if ((rc = idx_check(p, v.mv_size, ei.me_last_txnid, (uint64_t)st.st_size, &h, &fresh, path, err)) || !fresh) {
        *state = rc ? 0 : 2;
        free(p);
        goto out;
    }
    IdxView x;
    idx_view(p, &h, &x);
    if ((rc = mdb_cursor_open(txn, dbi, &cur))) {
        free(p);
        rc = lmdb_fail(err, rc, path, "walking");
        goto out;
    }
    uint64_t i = 0;
    const uint8_t *base = NULL;
    while (!rc && (rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) == 0) {
        if (is_meta_key(&k))
            continue;
        const char *what = NULL;
        RecordInfo info;
        char perr[LMR_ERRLEN];
        if (i >= h.n)
            what = "is not in the index";
        else if (k.mv_size != x.id_off[i + 1] - x.id_off[i] || memcmp(k.mv_data, x.ids + x.id_off[i], k.mv_size))
            what = "is not the index's next id";
        else if (!base && !(base = map_base(v.mv_data, ms.ms_psize)))
            what = "cannot be located";
        else if (v.mv_size != x.len[i] || ((uint64_t)((const uint8_t *)v.mv_data - base) != x.off[i] &&
                                             memcmp(base + x.off[i], v.mv_data, v.mv_size) != 0))
            what = "differs from the value the index points at"; /* equal bytes: the leaf's previous copy */
        else if (record_parse(v.mv_data, v.mv_size, &info, perr) == 0 &&
                 ((uint64_t)info.n_labels != x.label_off[i + 1] - x.label_off[i] ||
                  (info.n_labels && memcmp(info.labels, x.labels + x.label_off[i], 4 * (size_t)info.n_labels))))
            what = "has other labels than the index";
        if (what) {
            rc = lmr_fail(err, LMR_ECORRUPT, "%s: key %s %s (lmr-pack --reindex rebuilds the index)", path,
                          lmr_show(show, k.mv_data, k.mv_size), what);
            break;
        }
        i++;
    }
    if (rc == MDB_NOTFOUND)
        rc = i == h.n ? 0 : lmr_fail(err, LMR_ECORRUPT, "%s: the index holds %llu records, the file %llu", path,
                                     (unsigned long long)h.n, (unsigned long long)i);
    else if (rc > 0)
        rc = lmdb_fail(err, rc, path, "walking");
    if (!rc)
        *state = 1;
    free(p);
out:
    if (cur)
        mdb_cursor_close(cur);
    if (txn)
        mdb_txn_abort(txn);
    if (env)
        mdb_env_close(env);
    return rc;
}
