/* Shards given bad input or damaged on disk: labels out of range (writers and both readers), a
 * declared class count, repeated labels; a truncated LMDB file, every page zeroed in turn, an
 * empty or foreign file, keys that are not their record's id; the same clip stored with another
 * codec, ids too long for LMDB, two writers at once, an empty shard; HDF5 metadata with zero or
 * huge dims, short /labels, bad /rows, a damaged chunk read from another thread (one clean line,
 * nothing printed), and a write that runs out of file space (the cause named, no crash at exit).
 * Every case must end in an error code with a message, never in a signal. */
#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <lmdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "check.h"
#include "shard.h"

static char dir[] = "/tmp/lmr_test_damage_XXXXXX";

static const char *at(const char *name)
{
    static char p[4][300];
    static int k;
    k = (k + 1) % 4;
    snprintf(p[k], sizeof p[k], "%s/%s", dir, name);
    return p[k];
}

/* A features f16 record [1, T, 16, 1] with the given labels. */
static void make(RecordCtx *ctx, const char *id, const int32_t *labels, int nl, uint32_t t, LmrBuf *out)
{
    RecordInfo in = {.kind = LMR_KIND_FEATURES, .dtype = LMR_DT_F16, .ndim = 4, .dims = {1, t, 16, 1},
                     .id = id, .id_len = (uint16_t)strlen(id), .n_labels = (uint16_t)nl};
    memcpy(in.labels, labels, sizeof(int32_t) * (size_t)nl);
    uint16_t p[16 * 64];
    for (uint32_t k = 0; k < 16 * t; k++)
        p[k] = (uint16_t)(0x3c00 + (k * 7 + (uint32_t)strlen(id)) % 512);
    CHECK_RC(record_encode(ctx, &in, p, out), 0);
}

static ShardWriter *open_writer(const char *path, ShardFormat fmt)
{
    ShardWriter *w = NULL;
    char err[LMR_ERRLEN];
    ShardWriterOpts o = {fmt, 4, 0};
    int rc = shardwriter_open(&w, path, &o, err);
    if (rc)
        fprintf(stderr, "open %s: %s\n", path, err);
    return w;
}

/* A shard of n clips "c000".. with label i % 5, T = 4. */
static void write_shard(const char *path, ShardFormat fmt, int n, int level)
{
    RecordCtx ctx;
    record_ctx_init(&ctx, level);
    LmrBuf b;
    buf_init(&b);
    ShardWriter *w = open_writer(path, fmt);
    for (int i = 0; w && i < n; i++) {
        char id[16];
        snprintf(id, sizeof id, "c%03d", i);
        int32_t l = i % 5;
        make(&ctx, id, &l, 1, 4, &b);
        CHECK_RC(shardwriter_put(w, b.data, b.len), 0);
    }
    CHECK_RC(shardwriter_close(&w), 0);
    buf_free(&b);
    record_ctx_free(&ctx);
}

static int open_set(const char *path, char *err)
{
    ShardSet *s = NULL;
    const char *p[1] = {path};
    int rc = shardset_open(&s, p, 1, err);
    if (!rc) { /* and every record can be fetched without a crash; the first that cannot is the error */
        LmrBuf scratch;
        buf_init(&scratch);
        RecordInfo info;
        for (uint64_t i = 0; i < shardset_count(s); i++) {
            int g = shardset_get(s, i, &scratch, &info);
            if (g && !rc) {
                rc = g;
                snprintf(err, LMR_ERRLEN, "%s", shardset_error(s));
            }
        }
        buf_free(&scratch);
        shardset_close(&s);
    }
    return rc;
}

static void copy_file(const char *from, const char *to, long keep)
{
    FILE *a = fopen(from, "rb"), *b = fopen(to, "wb");
    char buf[4096];
    size_t n;
    long total = 0;
    while (a && b && (n = fread(buf, 1, sizeof buf, a)) > 0) {
        if (keep >= 0 && total + (long)n > keep)
            n = (size_t)(keep - total);
        fwrite(buf, 1, n, b);
        total += (long)n;
        if (keep >= 0 && total >= keep)
            break;
    }
    if (a)
        fclose(a);
    if (b)
        fclose(b);
}

static long file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (long)st.st_size : -1;
}

// --- labels ------------------------------------------------------------------------------------

static void test_labels(ShardFormat fmt)
{
    const char *path = at(fmt == SHARD_HDF5 ? "labels.h5" : "labels.lmdb");
    RecordCtx ctx;
    record_ctx_init(&ctx, 3);
    LmrBuf b;
    buf_init(&b);
    ShardWriter *w = open_writer(path, fmt);
    if (!w)
        return;
    int32_t huge = 2147483647, neg = -5, none = -1, rep[3] = {1, 1, 1};
    make(&ctx, "big", &huge, 1, 4, &b);
    CHECK_RC(shardwriter_put(w, b.data, b.len), LMR_ERANGE);
    CHECK(strstr(shardwriter_error(w), "clip big") && strstr(shardwriter_error(w), "2147483647"));
    make(&ctx, "neg", &neg, 1, 4, &b);
    CHECK_RC(shardwriter_put(w, b.data, b.len), LMR_ERANGE);
    make(&ctx, "none", &none, 1, 4, &b);
    CHECK_RC(shardwriter_put(w, b.data, b.len), 0);
    make(&ctx, "rep", rep, 3, 4, &b);
    CHECK_RC(shardwriter_put(w, b.data, b.len), 0);
    int32_t seven = 7;
    make(&ctx, "seven", &seven, 1, 4, &b);
    CHECK_RC(shardwriter_put(w, b.data, b.len), 0);
    ShardMeta hint;
    shardmeta_init(&hint);
    hint.n_classes = 5; /* fewer than the labels already stored */
    CHECK_RC(shardwriter_set_meta(w, &hint), LMR_ERANGE);
    CHECK(strstr(shardwriter_error(w), "class 7") != NULL);
    CHECK_RC(shardwriter_close(&w), 0);
    char err[LMR_ERRLEN];
    ShardSet *s;
    const char *p[1] = {path};
    CHECK_RC(shardset_open(&s, p, 1, err), 0);
    if (s) {
        const ShardMeta *m = shardset_meta(s);
        CHECK(m->n_records == 3 && m->n_classes == 8 && m->class_counts[1] == 1 && m->class_counts[7] == 1);
        CHECK(m->multi_label == 0); /* [1, 1, 1] is one label */
        shardset_close(&s);
    }
    /* a declared class count bounds the labels, and still does after a resume */
    const char *dpath = at(fmt == SHARD_HDF5 ? "declared.h5" : "declared.lmdb");
    w = open_writer(dpath, fmt);
    hint.n_classes = 10;
    CHECK_RC(shardwriter_set_meta(w, &hint), 0);
    int32_t ten = 10, nine = 9;
    make(&ctx, "ten", &ten, 1, 4, &b);
    CHECK_RC(shardwriter_put(w, b.data, b.len), LMR_ERANGE);
    CHECK(strstr(shardwriter_error(w), "10 classes") != NULL);
    make(&ctx, "nine", &nine, 1, 4, &b);
    CHECK_RC(shardwriter_put(w, b.data, b.len), 0);
    CHECK_RC(shardwriter_close(&w), 0);
    w = open_writer(dpath, fmt);
    make(&ctx, "ten", &ten, 1, 4, &b);
    CHECK_RC(shardwriter_put(w, b.data, b.len), LMR_ERANGE);
    CHECK_RC(shardwriter_close(&w), 0);
    shardmeta_free(&hint);
    buf_free(&b);
    record_ctx_free(&ctx);
}

/* Readers refuse a label out of range that reached the file some other way. */
static void test_reader_labels(void)
{
    RecordCtx ctx;
    record_ctx_init(&ctx, 0);
    LmrBuf b;
    buf_init(&b);
    const char *lp = at("rl.lmdb");
    write_shard(lp, SHARD_LMDB, 10, 3);
    int32_t huge = 2147483647;
    make(&ctx, "c004", &huge, 1, 4, &b);
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    mdb_env_create(&env);
    CHECK(mdb_env_open(env, lp, MDB_NOSUBDIR, 0644) == 0);
    mdb_txn_begin(env, NULL, 0, &txn);
    mdb_dbi_open(txn, NULL, 0, &dbi);
    MDB_val k = {4, "c004"}, v = {b.len, b.data};
    CHECK(mdb_put(txn, dbi, &k, &v, 0) == 0);
    CHECK(mdb_txn_commit(txn) == 0);
    mdb_env_close(env);
    char err[LMR_ERRLEN];
    CHECK_RC(open_set(lp, err), LMR_ERANGE); /* the index is older than the file: the records are walked */
    CHECK(strstr(err, "rl.lmdb") && strstr(err, "clip c004") && strstr(err, "2147483647"));

    const char *hp = at("rl.h5");
    write_shard(hp, SHARD_HDF5, 10, 0);
    hid_t f = H5Fopen(hp, H5F_ACC_RDWR, H5P_DEFAULT);
    hid_t d = H5Dopen2(f, "/label_values", H5P_DEFAULT);
    int32_t vals[10];
    CHECK(H5Dread(d, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, vals) >= 0);
    vals[4] = huge;
    CHECK(H5Dwrite(d, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, vals) >= 0);
    H5Dclose(d);
    H5Fclose(f);
    CHECK_RC(open_set(hp, err), LMR_ERANGE);
    CHECK(strstr(err, "rl.h5") && strstr(err, "clip c004"));
    buf_free(&b);
    record_ctx_free(&ctx);
}

// --- LMDB ----------------------------------------------------------------------------------------

static void test_lmdb_damage(void)
{
    const char *good = at("good.lmdb"), *bad = at("bad.lmdb");
    write_shard(good, SHARD_LMDB, 400, 0); /* raw records: many pages */
    char err[LMR_ERRLEN];
    CHECK_RC(open_set(good, err), 0);
    long size = file_size(good);

    /* one page cut off the end */
    copy_file(good, bad, size - 4096);
    CHECK_RC(open_set(bad, err), LMR_ECORRUPT);
    CHECK(strstr(err, "truncated LMDB file") && strstr(err, "bad.lmdb"));
    ShardWriter *w0 = NULL;
    ShardWriterOpts o0 = {SHARD_LMDB, 4, 0};
    CHECK_RC(shardwriter_open(&w0, bad, &o0, err), LMR_ECORRUPT); /* nor is it resumed */
    CHECK(strstr(err, "truncated LMDB file") != NULL);

    /* every page but the two meta pages zeroed in turn: an error naming the shard (at open, or when
     * the clip is read: an indexed shard does not touch its records at open), or a set whose every
     * record can be fetched; never an abort. A writer refuses a file whose key tree aborted
     * liblmdb's cursor. */
    long pages = size / 4096, refused = 0, named = 1, writer_refused = 0;
    ShardWriter *w = NULL;
    ShardWriterOpts o = {SHARD_LMDB, 4, 0};
    char zero[4096] = {0};
    for (long pg = 2; pg < pages; pg++) {
        copy_file(good, bad, -1);
        int fd = open(bad, O_WRONLY);
        CHECK(pwrite(fd, zero, sizeof zero, pg * 4096) == 4096);
        close(fd);
        int rc = open_set(bad, err);
        if (rc) {
            refused++;
            named &= strstr(err, "bad.lmdb") != NULL;
            if (shardwriter_open(&w, bad, &o, err) < 0) {
                writer_refused++;
                named &= strstr(err, "bad.lmdb") != NULL;
            }
            shardwriter_close(&w);
        }
    }
    printf("  %ld of %ld pages zeroed in turn refused (%ld also by a writer), none aborted\n", refused, pages - 2,
           writer_refused);
    CHECK(refused > 0 && writer_refused > 0 && named);

    /* an empty file, a checkpoint */
    FILE *f = fopen(bad, "wb");
    fclose(f);
    CHECK_RC(open_set(bad, err), LMR_EBADMAGIC);
    CHECK(strstr(err, "empty file") != NULL);
    f = fopen(bad, "wb");
    const char st[] = "{\"__metadata__\":{}}";
    uint64_t hl = sizeof st - 1;
    fwrite(&hl, 8, 1, f);
    fwrite(st, 1, hl, f);
    fclose(f);
    CHECK_RC(open_set(bad, err), LMR_EBADMAGIC);
    CHECK(strstr(err, "safetensors") != NULL);
}

/* Offset of the __index__ value in an LMDB file (found by its magic), -1 when absent. */
static long index_offset(const char *path)
{
    FILE *f = fopen(path, "rb");
    long at_ = -1, pos = 0;
    char b[4096];
    size_t n;
    while (at_ < 0 && f && (n = fread(b, 1, sizeof b, f)) > 0) {
        for (size_t i = 0; i + 8 <= n; i += 8) /* the value is 8-aligned in its overflow page */
            if (memcmp(b + i, "LMRIDX1", 8) == 0)
                at_ = pos + (long)i;
        pos += (long)n;
    }
    if (f)
        fclose(f);
    return at_;
}

/* Replace the value of key in an LMDB file (a write with liblmdb: the file's last transaction moves on). */
static void lmdb_set(const char *path, const char *key, const void *val, size_t len)
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    mdb_env_create(&env);
    CHECK(mdb_env_open(env, path, MDB_NOSUBDIR, 0644) == 0);
    mdb_txn_begin(env, NULL, 0, &txn);
    mdb_dbi_open(txn, NULL, 0, &dbi);
    MDB_val k = {strlen(key), (void *)key}, v = {len, (void *)val};
    CHECK(val ? mdb_put(txn, dbi, &k, &v, 0) == 0 : mdb_del(txn, dbi, &k, NULL) == 0);
    if (val && strcmp(key, "__index__") == 0) { /* as a writer of a wrong index would: this txn's id, a good checksum */
        uint64_t id = mdb_txn_id(txn);
        uint8_t *copy = malloc(len);
        memcpy(copy, val, len);
        memcpy(copy + 8, &id, 8);
        uint64_t sum = XXH3_64bits(copy + 64, len - 64);
        memcpy(copy + 40, &sum, 8);
        MDB_val v2 = {len, copy};
        CHECK(mdb_put(txn, dbi, &k, &v2, 0) == 0);
        free(copy);
    }
    CHECK(mdb_txn_commit(txn) == 0);
    mdb_env_close(env);
}

static int walked(const char *path)
{
    ShardSet *s = NULL;
    char err[LMR_ERRLEN];
    const char *p[1] = {path};
    int n = shardset_open(&s, p, 1, err) ? -1 : shardset_walked(s);
    shardset_close(&s);
    return n;
}

static void test_lmdb_index(void)
{
    const char *good = at("ix.lmdb"), *bad = at("ixbad.lmdb");
    write_shard(good, SHARD_LMDB, 300, 0);
    char err[LMR_ERRLEN];
    int state = -1;
    CHECK(walked(good) == 0); /* opened from the index */
    CHECK_RC(shard_check_index(good, &state, err), 0);
    CHECK(state == 1);
    /* what the index tells equals what the records tell (the walk of an index-less copy) */
    copy_file(good, bad, -1);
    lmdb_set(bad, "__index__", NULL, 0);
    CHECK(walked(bad) == 1);
    CHECK_RC(shard_check_index(bad, &state, err), 0);
    CHECK(state == 0);
    ShardSet *a = NULL, *b = NULL;
    const char *pa[1] = {good}, *pb[1] = {bad};
    CHECK_RC(shardset_open(&a, pa, 1, err), 0);
    CHECK_RC(shardset_open(&b, pb, 1, err), 0);
    CHECK(shardset_count(a) == 300 && shardset_count(b) == 300);
    const ShardMeta *ma = shardset_meta(a), *mb = shardset_meta(b);
    CHECK(ma->n_records == mb->n_records && ma->n_classes == mb->n_classes && ma->dims[1] == mb->dims[1] &&
          ma->kind == mb->kind && ma->dtype == mb->dtype);
    LmrBuf s1, s2;
    buf_init(&s1), buf_init(&s2);
    for (uint64_t i = 0; i < 300; i++) {
        const int32_t *la, *lb;
        const char *ia, *ib;
        uint16_t na, nb;
        RecordInfo ra, rb;
        CHECK(shardset_labels(a, i, &la) == shardset_labels(b, i, &lb) && la[0] == lb[0]);
        shardset_id(a, i, &ia, &na, NULL), shardset_id(b, i, &ib, &nb, NULL);
        CHECK(na == nb && memcmp(ia, ib, na) == 0);
        CHECK_RC(shardset_get(a, i, &s1, &ra), 0);
        CHECK_RC(shardset_get(b, i, &s2, &rb), 0);
        CHECK(ra.checksum == rb.checksum && ra.labels[0] == la[0]);
    }
    CHECK(shardset_find(a, "c123") == 123);
    shardset_close(&a), shardset_close(&b);
    buf_free(&s1), buf_free(&s2);

    /* a resumed writer drops the index and writes it anew */
    copy_file(good, bad, -1);
    RecordCtx ctx;
    record_ctx_init(&ctx, 0);
    ShardWriter *w = open_writer(bad, SHARD_LMDB);
    int32_t l = 2;
    make(&ctx, "d000", &l, 1, 4, &s1);
    CHECK_RC(shardwriter_put(w, s1.data, s1.len), 0);
    CHECK_RC(shardwriter_close(&w), 0);
    CHECK(walked(bad) == 0);
    CHECK_RC(shard_check_index(bad, &state, err), 0);
    CHECK(state == 1);
    CHECK_RC(open_set(bad, err), 0);

    /* a damaged index (a byte of its body): an error naming the shard, at open and in --verify */
    copy_file(good, bad, -1);
    long off = index_offset(bad);
    CHECK(off > 0);
    int fd = open(bad, O_RDWR);
    uint8_t byte;
    CHECK(pread(fd, &byte, 1, off + 64 + 3) == 1);
    byte ^= 0x40;
    CHECK(pwrite(fd, &byte, 1, off + 64 + 3) == 1);
    close(fd);
    CHECK_RC(open_set(bad, err), LMR_ECORRUPT);
    CHECK(strstr(err, "ixbad.lmdb") && strstr(err, "checksum"));
    CHECK_RC(shard_check_index(bad, &state, err), LMR_ECORRUPT);

    /* an index with a good checksum that disagrees with the records (a label changed): refused at
     * open (the class counts of __meta__ disagree), named by --verify */
    copy_file(good, bad, -1);
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    mdb_env_create(&env);
    CHECK(mdb_env_open(env, bad, MDB_NOSUBDIR | MDB_RDONLY, 0644) == 0);
    mdb_txn_begin(env, NULL, MDB_RDONLY, &txn);
    mdb_dbi_open(txn, NULL, 0, &dbi);
    MDB_val k = {9, "__index__"}, v;
    CHECK(mdb_get(txn, dbi, &k, &v) == 0);
    uint8_t *idx = malloc(v.mv_size);
    memcpy(idx, v.mv_data, v.mv_size);
    size_t idx_len = v.mv_size;
    MDB_val mk = {8, "__meta__"};
    CHECK(mdb_get(txn, dbi, &mk, &v) == 0);
    char *meta = strndup(v.mv_data, v.mv_size);
    mdb_txn_abort(txn);
    mdb_env_close(env);
    uint64_t n;
    memcpy(&n, idx + 16, 8);
    CHECK(n == 300);
    int32_t *labels0 = (int32_t *)(idx + 64 + 8 * n + 8 * (n + 1) + 4 * n + 4 * (n + 1));
    CHECK(labels0[0] == 0);
    labels0[0] = 1;
    lmdb_set(bad, "__index__", idx, idx_len);
    CHECK_RC(open_set(bad, err), LMR_ECORRUPT);
    CHECK(strstr(err, "ixbad.lmdb") && strstr(err, "class"));
    CHECK_RC(shard_check_index(bad, &state, err), LMR_ECORRUPT);
    CHECK(strstr(err, "ixbad.lmdb") && strstr(err, "c000") && strstr(err, "labels"));
    /* and one written before the last change of the file is ignored: the records are walked */
    lmdb_set(bad, "__meta__", meta, strlen(meta));
    CHECK(walked(bad) == 1);
    CHECK_RC(open_set(bad, err), 0);
    CHECK_RC(shard_check_index(bad, &state, err), 0);
    CHECK(state == 2);
    free(meta);
    free(idx);
    buf_free(&s1);
    record_ctx_free(&ctx);
}

static void test_lmdb_keys(void)
{
    const char *path = at("keys.lmdb");
    write_shard(path, SHARD_LMDB, 10, 3);
    RecordCtx ctx;
    record_ctx_init(&ctx, 3);
    LmrBuf b, m;
    buf_init(&b);
    buf_init(&m);
    int32_t l = 0;
    make(&ctx, "c003", &l, 1, 4, &b);
    CHECK_RC(record_meta_encode(&ctx, "{}", &m), 0);
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    mdb_env_create(&env);
    CHECK(mdb_env_open(env, path, MDB_NOSUBDIR, 0644) == 0);
    mdb_txn_begin(env, NULL, 0, &txn);
    mdb_dbi_open(txn, NULL, 0, &dbi);
    MDB_val k = {4, "zz01"}, v = {b.len, b.data}, k2 = {4, "zz02"}, v2 = {m.len, m.data};
    CHECK(mdb_put(txn, dbi, &k, &v, 0) == 0);   /* one record under a second key */
    CHECK(mdb_put(txn, dbi, &k2, &v2, 0) == 0); /* stream metadata as a clip */
    CHECK(mdb_txn_commit(txn) == 0);
    mdb_env_close(env);
    char err[LMR_ERRLEN];
    ShardSet *s;
    const char *p[1] = {path};
    CHECK_RC(shardset_open(&s, p, 1, err), 0);
    if (s) {
        CHECK(shardset_count(s) == 12 && shardset_meta(s)->n_records == 10); /* not counted */
        LmrBuf scratch;
        buf_init(&scratch);
        RecordInfo info;
        CHECK_RC(shardset_get(s, (uint64_t)shardset_find(s, "zz01"), &scratch, &info), LMR_ECORRUPT);
        CHECK(strstr(shardset_error(s), "key zz01") && strstr(shardset_error(s), "not the record's id"));
        CHECK_RC(shardset_get(s, (uint64_t)shardset_find(s, "zz02"), &scratch, &info), LMR_ECORRUPT);
        CHECK(strstr(shardset_error(s), "zz02") != NULL);
        CHECK_RC(shardset_get(s, (uint64_t)shardset_find(s, "c003"), &scratch, &info), 0);
        buf_free(&scratch);
        shardset_close(&s);
    }
    /* a writer takes no stream metadata record as a clip */
    ShardWriter *w = open_writer(at("meta.lmdb"), SHARD_LMDB);
    CHECK_RC(shardwriter_put(w, m.data, m.len), LMR_EINVAL);
    CHECK(strstr(shardwriter_error(w), "metadata record") != NULL);
    shardwriter_close(&w);
    buf_free(&b);
    buf_free(&m);
    record_ctx_free(&ctx);
}

static void test_writers(ShardFormat fmt)
{
    const char *path = at(fmt == SHARD_HDF5 ? "w.h5" : "w.lmdb");
    write_shard(path, fmt, 5, 3); /* zstd */
    RecordCtx raw;
    record_ctx_init(&raw, 0);
    LmrBuf b;
    buf_init(&b);
    ShardWriter *w = open_writer(path, fmt);
    /* the same clips stored raw: already there (the content, not the bytes, is compared) */
    for (int i = 0; w && i < 5; i++) {
        char id[16];
        snprintf(id, sizeof id, "c%03d", i);
        int32_t l = i % 5;
        make(&raw, id, &l, 1, 4, &b);
        CHECK_RC(shardwriter_put(w, b.data, b.len), LMR_DONE);
    }
    int32_t other = 4;
    make(&raw, "c000", &other, 1, 4, &b);
    CHECK_RC(shardwriter_put(w, b.data, b.len), LMR_EEXIST);
    /* a second writer on the same file */
    ShardWriter *w2 = NULL;
    char err[LMR_ERRLEN];
    ShardWriterOpts o = {fmt, 4, 0};
    CHECK_RC(shardwriter_open(&w2, path, &o, err), -EBUSY);
    CHECK(strstr(err, "another lmr-pack is writing") != NULL);
    /* an id longer than LMDB's key limit: the reason first, the id cut */
    char id[601];
    memset(id, 'x', 600);
    id[600] = 0;
    make(&raw, id, &other, 1, 4, &b);
    int rc = shardwriter_put(w, b.data, b.len);
    if (fmt == SHARD_LMDB) {
        CHECK_RC(rc, LMR_EINVAL);
        const char *e = shardwriter_error(w);
        CHECK(strstr(e, "an id of 600 bytes is longer than LMDB's key limit of 511 bytes") != NULL);
        CHECK(strstr(e, "...") != NULL && strlen(e) < 300);
    } else {
        CHECK_RC(rc, 0); /* HDF5 takes it */
    }
    CHECK_RC(shardwriter_close(&w), 0);
    CHECK_RC(shardwriter_open(&w2, path, &o, err), 0); /* free again */
    CHECK_RC(shardwriter_close(&w2), 0);

    /* an empty shard opens as "shard is empty" */
    const char *ep = at(fmt == SHARD_HDF5 ? "empty.h5" : "empty.lmdb");
    w = open_writer(ep, fmt);
    CHECK_RC(shardwriter_close(&w), 0);
    CHECK_RC(open_set(ep, err), LMR_EEMPTY);
    CHECK(strstr(err, "shard is empty") != NULL);
    buf_free(&b);
    record_ctx_free(&raw);
}

// --- HDF5 ----------------------------------------------------------------------------------------

static void set_attr_str(const char *path, const char *name, const char *val)
{
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    H5Adelete(f, name);
    hid_t t = H5Tcopy(H5T_C_S1), sp = H5Screate(H5S_SCALAR);
    H5Tset_size(t, strlen(val) + 1);
    hid_t a = H5Acreate2(f, name, t, sp, H5P_DEFAULT, H5P_DEFAULT);
    CHECK(H5Awrite(a, t, val) >= 0);
    H5Aclose(a);
    H5Sclose(sp);
    H5Tclose(t);
    H5Fclose(f);
}

static void replace_u64(const char *path, const char *name, hsize_t d0, hsize_t d1, const uint64_t *vals)
{
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    H5Ldelete(f, name, H5P_DEFAULT);
    hsize_t dims[2] = {d0, d1};
    hid_t sp = H5Screate_simple(d1 ? 2 : 1, dims, NULL);
    hid_t d = H5Dcreate2(f, name, H5T_STD_U64LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    CHECK(H5Dwrite(d, H5T_NATIVE_UINT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, vals) >= 0);
    H5Dclose(d);
    H5Sclose(sp);
    H5Fclose(f);
}

static void test_hdf5_meta(void)
{
    const char *good = at("g.h5"), *bad = at("b.h5");
    write_shard(good, SHARD_HDF5, 10, 0);
    char err[LMR_ERRLEN];
    CHECK_RC(open_set(good, err), 0);
    static const char *const metas[] = {
        "{\"kind\":\"features\",\"dtype\":\"f16\",\"ndim\":4,\"dims\":[0,4,16,1],\"n_records\":10}",
        "{\"kind\":\"features\",\"dtype\":\"f16\",\"ndim\":4,\"dims\":[1,4,0,1],\"n_records\":10}",
        "{\"kind\":\"features\",\"dtype\":\"f16\",\"ndim\":4,\"dims\":[1,0,16,1],\"n_records\":10}",
        "{\"kind\":\"features\",\"dtype\":\"f16\",\"ndim\":2,\"dims\":[1,4,0,0],\"n_records\":10}",
        "{\"kind\":\"features\",\"dtype\":\"f16\",\"ndim\":4,\"dims\":[4294967295,4294967295,16,1],\"n_records\":10}",
        "{\"kind\":\"features\",\"dtype\":\"f16\",\"ndim\":4,\"dims\":[1,4,16,1],\"n_records\":11}",
        "{\"ndim\":4,\"dims\":[1,4,16,1],\"n_records\":10}",
    };
    for (size_t i = 0; i < sizeof metas / sizeof *metas; i++) {
        copy_file(good, bad, -1);
        set_attr_str(bad, "lmr_meta", metas[i]);
        CHECK_RC(open_set(bad, err), LMR_ECORRUPT);
        CHECK(strstr(err, "b.h5") != NULL);
    }
    /* /labels shorter than /ids */
    copy_file(good, bad, -1);
    hid_t f = H5Fopen(bad, H5F_ACC_RDWR, H5P_DEFAULT);
    H5Ldelete(f, "/labels", H5P_DEFAULT);
    hsize_t n7 = 7;
    hid_t sp = H5Screate_simple(1, &n7, NULL);
    hid_t d = H5Dcreate2(f, "/labels", H5T_STD_I32LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    int32_t l7[7] = {0, 1, 2, 3, 4, 0, 1};
    H5Dwrite(d, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, l7);
    H5Dclose(d);
    H5Sclose(sp);
    H5Fclose(f);
    CHECK_RC(open_set(bad, err), LMR_ECORRUPT);
    CHECK(strstr(err, "/labels holds 7 rows, /ids 10") != NULL);
    /* the same id twice in one file */
    copy_file(good, bad, -1);
    f = H5Fopen(bad, H5F_ACC_RDWR, H5P_DEFAULT);
    d = H5Dopen2(f, "/ids", H5P_DEFAULT);
    hid_t ty = H5Dget_type(d);
    size_t wid = H5Tget_size(ty);
    char *ids = calloc(10, wid);
    CHECK(H5Dread(d, ty, H5S_ALL, H5S_ALL, H5P_DEFAULT, ids) >= 0);
    memcpy(ids + 7 * wid, ids + 2 * wid, wid);
    CHECK(H5Dwrite(d, ty, H5S_ALL, H5S_ALL, H5P_DEFAULT, ids) >= 0);
    free(ids);
    H5Tclose(ty);
    H5Dclose(d);
    H5Fclose(f);
    CHECK_RC(open_set(bad, err), LMR_EINVAL);
    CHECK(strstr(err, "clip c002 is stored twice") != NULL);
    /* /label_index pointing past /label_values, with an offset that would wrap */
    uint64_t lidx[20];
    for (int i = 0; i < 10; i++)
        lidx[2 * i] = (uint64_t)i, lidx[2 * i + 1] = 1;
    lidx[6] = UINT64_MAX;
    copy_file(good, bad, -1);
    replace_u64(bad, "/label_index", 10, 2, lidx);
    CHECK_RC(open_set(bad, err), LMR_ECORRUPT);
    /* a clip of T = 0 through /rows in a fixed file with varying T */
    const char *vp = at("v.h5");
    RecordCtx ctx;
    record_ctx_init(&ctx, 0);
    LmrBuf b;
    buf_init(&b);
    ShardWriter *w = open_writer(vp, SHARD_HDF5);
    for (int i = 0; w && i < 4; i++) {
        char id[8];
        snprintf(id, sizeof id, "r%d", i);
        int32_t l = 0;
        make(&ctx, id, &l, 1, (uint32_t)(2 + i), &b);
        CHECK_RC(shardwriter_put(w, b.data, b.len), 0);
    }
    CHECK_RC(shardwriter_close(&w), 0);
    CHECK_RC(open_set(vp, err), 0);
    const char *vb = at("vb.h5");
    uint64_t rows[8] = {0, 2, 2, 0, 5, 4, 9, 5};
    copy_file(vp, vb, -1);
    replace_u64(vb, "/rows", 4, 2, rows);
    CHECK_RC(open_set(vb, err), LMR_ECORRUPT);
    rows[3] = 3, rows[6] = UINT64_MAX - 2;
    copy_file(vp, vb, -1);
    replace_u64(vb, "/rows", 4, 2, rows);
    CHECK_RC(open_set(vb, err), LMR_ECORRUPT);
    /* the class counts of a million classes are too large for a plain attribute */
    const char *mp = at("million.h5");
    w = open_writer(mp, SHARD_HDF5);
    int32_t l = 999999;
    make(&ctx, "m0", &l, 1, 4, &b);
    CHECK_RC(shardwriter_put(w, b.data, b.len), 0);
    CHECK_RC(shardwriter_close(&w), 0);
    ShardSet *s;
    const char *p[1] = {mp};
    CHECK_RC(shardset_open(&s, p, 1, err), 0);
    if (s) {
        CHECK(shardset_meta(s)->n_classes == 1000000);
        shardset_close(&s);
    }
    buf_free(&b);
    record_ctx_free(&ctx);
}

typedef struct {
    ShardSet *s;
    int rc;
    char err[LMR_ERRLEN];
} GetJob;

static void *get_all(void *arg)
{
    GetJob *j = arg;
    LmrBuf scratch;
    buf_init(&scratch);
    RecordInfo info;
    for (uint64_t i = 0; i < shardset_count(j->s) && !j->rc; i++)
        if ((j->rc = shardset_get(j->s, i, &scratch, &info)))
            snprintf(j->err, sizeof j->err, "%s", shardset_error(j->s));
    buf_free(&scratch);
    return NULL;
}

static void test_hdf5_read_error(void)
{
    const char *path = at("chunk.h5");
    write_shard(path, SHARD_HDF5, 10, 0); /* deflate: a damaged chunk fails to inflate */
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    hid_t d = H5Dopen2(f, "/features", H5P_DEFAULT), sp = H5Dget_space(d);
    hsize_t off[3];
    unsigned mask;
    haddr_t addr = 0;
    hsize_t size = 0;
    CHECK(H5Dget_chunk_info(d, sp, 3, off, &mask, &addr, &size) >= 0);
    H5Sclose(sp);
    H5Dclose(d);
    H5Fclose(f);
    CHECK(size > 8);
    int fd = open(path, O_WRONLY);
    char junk[64];
    memset(junk, 0x5a, sizeof junk);
    CHECK(pwrite(fd, junk, size < sizeof junk ? size : sizeof junk, (off_t)addr) > 0);
    close(fd);
    char err[LMR_ERRLEN];
    ShardSet *s;
    const char *p[1] = {path};
    CHECK_RC(shardset_open(&s, p, 1, err), 0);
    if (!s)
        return;
    /* read from another thread, with stderr caught: nothing printed, one line with the cause */
    fflush(stderr);
    int saved = dup(2), tmp = open(at("stderr.txt"), O_RDWR | O_CREAT | O_TRUNC, 0644);
    dup2(tmp, 2);
    GetJob job = {s, 0, ""};
    pthread_t t;
    pthread_create(&t, NULL, get_all, &job);
    pthread_join(t, NULL);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    long printed = lseek(tmp, 0, SEEK_END);
    close(tmp);
    CHECK(printed == 0);
    CHECK(job.rc < 0);
    CHECK(strstr(job.err, "reading the clip: ") != NULL && strchr(job.err, '\n') == NULL);
    const char *first = strstr(job.err, "chunk.h5");
    CHECK(first && !strstr(first + 1, "chunk.h5")); /* the path once */
    printf("  %s\n", job.err);
    shardset_close(&s);
}

/* A writer that runs out of file space (RLIMIT_FSIZE, as a full disk would) in a child: the
 * error names the cause, and the process exits normally (HDF5 crashed at exit). */
static void test_out_of_space(ShardFormat fmt)
{
    const char *path = at(fmt == SHARD_HDF5 ? "full.h5" : "full.lmdb");
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        signal(SIGXFSZ, SIG_IGN);
        struct rlimit rl = {1 << 20, 1 << 20};
        setrlimit(RLIMIT_FSIZE, &rl);
        RecordCtx ctx;
        record_ctx_init(&ctx, 0);
        LmrBuf b;
        buf_init(&b);
        char err[LMR_ERRLEN];
        ShardWriter *w = NULL;
        ShardWriterOpts o = {fmt, 0, 64 << 10};
        if (shardwriter_open(&w, path, &o, err))
            _exit(2);
        int rc = 0;
        for (int i = 0; i < 4000 && !rc; i++) {
            char id[16];
            snprintf(id, sizeof id, "f%05d", i);
            int32_t l = 0;
            make(&ctx, id, &l, 1, 64, &b);
            rc = shardwriter_put(w, b.data, b.len);
        }
        char msg[LMR_ERRLEN];
        snprintf(msg, sizeof msg, "%s", rc ? shardwriter_error(w) : "");
        int crc = shardwriter_close(&w);
        if (!rc) {
            rc = crc;
            snprintf(msg, sizeof msg, "%s", err);
        }
        printf("  %s\n", msg);
        int named = strstr(msg, "File too large") != NULL || strstr(msg, "Input/output error") != NULL ||
                    strstr(msg, "no space left") != NULL;
        buf_free(&b);
        record_ctx_free(&ctx);
        FILE *f = fopen(at("full.ok"), "w");
        if (f && rc < 0 && named)
            fputs("ok", f);
        if (f)
            fclose(f);
        /* exit(), not _exit(): atexit handlers run. (Under LeakSanitizer the status may say that
         * libhdf5 leaked the buffers of the file whose close failed: only a signal is a failure.) */
        exit(0);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    char ok[4] = "";
    FILE *f = fopen(at("full.ok"), "r");
    if (f) {
        if (!fgets(ok, sizeof ok, f))
            ok[0] = 0;
        fclose(f);
    }
    unlink(at("full.ok"));
    CHECK(WIFEXITED(status) && strcmp(ok, "ok") == 0);
    if (!WIFEXITED(status))
        fprintf(stderr, "  writer died on signal %d\n", WTERMSIG(status));
}

int main(void)
{
    if (!mkdtemp(dir))
        return 1;
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL); /* the test's own HDF5 calls print nothing */
    TEST(1, "LMDB labels: out of range refused with the clip; -1 kept; repeats count once; declared counts");
    test_labels(SHARD_LMDB);
    TEST(2, "HDF5 labels: the same");
    test_labels(SHARD_HDF5);
    TEST(3, "readers refuse a label out of range (LMDB value, HDF5 /label_values), naming shard and clip");
    test_reader_labels();
    TEST(4, "LMDB: a truncated file, every page zeroed in turn, an empty file, a checkpoint: errors, no abort");
    test_lmdb_damage();
    TEST(11, "LMDB index: opened without a walk, equal to the walk, rewritten on resume; damaged or disagreeing: "
             "refused naming the shard; older than the file: ignored");
    test_lmdb_index();
    TEST(5, "LMDB: a key that is not its record's id, stream metadata under a key: reported, not counted");
    test_lmdb_keys();
    TEST(6, "LMDB writer: same clip other codec is present; other content refused; a second writer; long ids; empty");
    test_writers(SHARD_LMDB);
    TEST(7, "HDF5 writer: the same");
    test_writers(SHARD_HDF5);
    TEST(8, "HDF5: zero, huge or missing dims, wrong n_records, short /labels, bad indices: errors, no SIGFPE");
    test_hdf5_meta();
    TEST(9, "HDF5: a damaged chunk read from another thread: one line with the cause, nothing printed");
    test_hdf5_read_error();
    TEST(10, "out of file space: the cause named, a clean exit (HDF5 and LMDB)");
    test_out_of_space(SHARD_HDF5);
    test_out_of_space(SHARD_LMDB);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    CHECK_DONE();
}
