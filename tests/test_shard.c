/* Shards: LMDB and HDF5 round trips (byte-equal), resume by id, duplicates, mismatches, sets of
 * several files of both formats, reads from several threads, varying T, corrupt values, and
 * class counts. Inputs are generated here, in a temporary directory. */
#include <lmdb.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "classes.h"
#include "shard.h"

#define N_REC 600
#define N_CLASSES 12
#define D_MAIN 128

typedef struct {
    LmrBuf rec[N_REC];      /* zstd-encoded records */
    LmrBuf raw[N_REC];      /* the same records stored raw (level 0) */
    int64_t counts[N_CLASSES];
} Corpus;

static uint64_t rng_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Record i of a corpus: features f16 [1, T, d, 1], T in 1..40, 1-3 labels, id "<prefix>%05d". */
static void make_record(RecordCtx *ctx, uint64_t *rng, const char *prefix, int i, uint32_t d, int fixed_t,
                        LmrBuf *out, LmrBuf *raw_out, int64_t *counts)
{
    char id[32];
    snprintf(id, sizeof id, "%s%05d", prefix, i);
    RecordInfo in = {.kind = LMR_KIND_FEATURES, .dtype = LMR_DT_F16, .ndim = 4, .id = id, .id_len = (uint16_t)strlen(id)};
    in.dims[0] = 1, in.dims[1] = fixed_t ? (uint32_t)fixed_t : 1 + (uint32_t)(rng_next(rng) % 40), in.dims[2] = d, in.dims[3] = 1;
    in.n_labels = 1 + (uint16_t)(i % 5 == 0 ? rng_next(rng) % 3 : 0);
    for (int k = 0; k < in.n_labels; k++) { /* distinct labels (repeated ones: test_labels) */
        int again;
        do {
            in.labels[k] = (int32_t)(rng_next(rng) % (uint64_t)(k == 0 ? N_CLASSES : N_CLASSES / 2));
            again = 0;
            for (int j = 0; j < k; j++)
                again |= in.labels[j] == in.labels[k];
        } while (again);
        if (counts)
            counts[in.labels[k]]++;
    }
    size_t n = (size_t)in.dims[1] * d;
    uint16_t *p = malloc(2 * n);
    for (size_t k = 0; k < n; k++)
        p[k] = (uint16_t)(0x3000 + rng_next(rng) % 4096); /* halves in [0.125, 2): a little compressible */
    int level = ctx->level;
    CHECK_RC(record_encode(ctx, &in, p, out), 0);
    if (raw_out) {
        ctx->level = 0;
        CHECK_RC(record_encode(ctx, &in, p, raw_out), 0);
        ctx->level = level;
    }
    free(p);
}

static void corpus_init(Corpus *c, RecordCtx *ctx, uint64_t *rng)
{
    memset(c, 0, sizeof *c);
    for (int i = 0; i < N_REC; i++)
        make_record(ctx, rng, "clip", i, D_MAIN, 0, &c->rec[i], &c->raw[i], c->counts);
}

static void corpus_free(Corpus *c)
{
    for (int i = 0; i < N_REC; i++) {
        buf_free(&c->rec[i]);
        buf_free(&c->raw[i]);
    }
}

static int write_shard(const char *path, ShardFormat fmt, LmrBuf *recs, int from, int to, uint64_t txn_bytes,
                       int *n_added, int *n_done)
{
    char err[LMR_ERRLEN];
    ShardWriter *w;
    ShardWriterOpts o = {fmt, 4, txn_bytes};
    int rc = shardwriter_open(&w, path, &o, err);
    if (rc) {
        fprintf(stderr, "open %s: %s\n", path, err);
        return rc;
    }
    *n_added = *n_done = 0;
    for (int i = from; i < to && !rc; i++) {
        rc = shardwriter_put(w, recs[i].data, recs[i].len);
        if (rc == 0)
            ++*n_added;
        else if (rc == LMR_DONE)
            ++*n_done, rc = 0;
        else
            fprintf(stderr, "put %d: %s\n", i, shardwriter_error(w));
    }
    int crc = shardwriter_close(&w);
    return rc ? rc : crc;
}

/* Every record of the set equals the corpus record with its id (bytes when want_bytes). */
static void check_set_content(ShardSet *s, const Corpus *c, int want_raw_bytes, int want_rec_bytes)
{
    RecordCtx ctx;
    record_ctx_init(&ctx, 0);
    LmrBuf scratch, pay, ref;
    buf_init(&scratch);
    buf_init(&pay);
    buf_init(&ref);
    int bad = 0;
    for (uint64_t i = 0; i < shardset_count(s); i++) {
        RecordInfo got, exp;
        int rc = shardset_get(s, i, &scratch, &got);
        if (rc) {
            fprintf(stderr, "get %llu: %s\n", (unsigned long long)i, shardset_error(s));
            bad++;
            continue;
        }
        int k = atoi(got.id + 4);
        const LmrBuf *orig = &c->raw[k];
        char err[LMR_ERRLEN];
        record_parse(orig->data, orig->len, &exp, err);
        if (want_raw_bytes && (got.total_size != orig->len || memcmp(got.id - LMR_RECORD_HEADER, orig->data, orig->len)))
            bad++;
        if (want_rec_bytes && (got.total_size != c->rec[k].len || memcmp(got.id - LMR_RECORD_HEADER, c->rec[k].data, c->rec[k].len)))
            bad++;
        buf_reserve(&pay, got.raw_size);
        if (record_payload(&ctx, &got, pay.data, pay.cap) || got.raw_size != exp.raw_size ||
            memcmp(pay.data, exp.stored, exp.raw_size))
            bad++;
        const int32_t *l;
        int nl = shardset_labels(s, i, &l);
        if (nl != exp.n_labels || memcmp(l, exp.labels, 4 * (size_t)nl))
            bad++;
        char id[64];
        snprintf(id, sizeof id, "%.*s", (int)got.id_len, got.id);
        if (shardset_find(s, id) != (int64_t)i)
            bad++;
    }
    CHECK(bad == 0);
    CHECK(shardset_find(s, "no-such-clip") == -1);
    buf_free(&scratch);
    buf_free(&pay);
    buf_free(&ref);
    record_ctx_free(&ctx);
}

static void check_meta(const ShardMeta *m, const int64_t *counts, uint64_t n)
{
    CHECK(m->n_records == n);
    CHECK(m->kind == LMR_KIND_FEATURES && m->dtype == LMR_DT_F16 && m->dims[0] == 1 && m->dims[2] == D_MAIN);
    CHECK(m->dims[1] == 0); /* T varies */
    CHECK(m->multi_label == 1);
    CHECK(m->n_classes == N_CLASSES);
    int same = m->n_classes == N_CLASSES;
    for (int c = 0; same && c < N_CLASSES; c++)
        same = m->class_counts[c] == counts[c];
    CHECK(same);
}

static void test_roundtrip(const char *dir, const Corpus *c, ShardFormat fmt)
{
    char path[256], err[LMR_ERRLEN];
    snprintf(path, sizeof path, "%s/rt.%s", dir, fmt == SHARD_HDF5 ? "h5" : "lmdb");
    int added, done;
    /* 16 KiB transactions and a 1 MiB first map: many commits, several map growths mid-transaction */
    LmrBuf *recs = fmt == SHARD_HDF5 ? (LmrBuf *)c->raw : (LmrBuf *)c->rec;
    CHECK_RC(write_shard(path, fmt, recs, 0, N_REC, 16 << 10, &added, &done), 0);
    CHECK(added == N_REC && done == 0);
    struct stat st;
    if (fmt == SHARD_LMDB) /* bigger than the first 1 MiB map: the map was grown */
        CHECK(stat(path, &st) == 0 && st.st_size > (2 << 20));
    ShardSet *s;
    const char *p[1] = {path};
    CHECK_RC(shardset_open(&s, p, 1, err), 0);
    if (!s)
        return;
    CHECK(shardset_count(s) == N_REC);
    check_meta(shardset_meta(s), c->counts, N_REC);
    /* LMDB keeps the records' bytes; HDF5 rebuilds raw records, equal to the raw originals */
    check_set_content(s, c, fmt == SHARD_HDF5, fmt == SHARD_LMDB);
    int64_t cnt[N_CLASSES];
    classes_count(s, N_CLASSES, cnt);
    CHECK(memcmp(cnt, c->counts, sizeof cnt) == 0);
    shardset_close(&s);
    shardset_close(&s);
    CHECK(s == NULL);
}

static void test_resume(const char *dir, const Corpus *c, ShardFormat fmt)
{
    char path[256], err[LMR_ERRLEN];
    snprintf(path, sizeof path, "%s/resume.%s", dir, fmt == SHARD_HDF5 ? "h5" : "lmdb");
    LmrBuf *recs = (LmrBuf *)c->rec;
    int added, done;
    CHECK_RC(write_shard(path, fmt, recs, 0, N_REC / 2, 64 << 10, &added, &done), 0);
    CHECK(added == N_REC / 2);
    CHECK_RC(write_shard(path, fmt, recs, 0, N_REC, 64 << 10, &added, &done), 0);
    CHECK(added == N_REC - N_REC / 2 && done == N_REC / 2);
    CHECK_RC(write_shard(path, fmt, recs, 0, N_REC, 64 << 10, &added, &done), 0);
    CHECK(added == 0 && done == N_REC);
    ShardSet *s;
    const char *p[1] = {path};
    CHECK_RC(shardset_open(&s, p, 1, err), 0);
    if (!s)
        return;
    CHECK(shardset_count(s) == N_REC);
    check_meta(shardset_meta(s), c->counts, N_REC); /* counts rebuilt on resume, not doubled */
    check_set_content(s, c, 0, 0);
    shardset_close(&s);

    /* same id, other bytes; other dims; the reserved key */
    ShardWriter *w;
    ShardWriterOpts o = {fmt, 4, 0};
    CHECK_RC(shardwriter_open(&w, path, &o, err), 0);
    RecordCtx ctx;
    record_ctx_init(&ctx, 3);
    LmrBuf b;
    buf_init(&b);
    uint64_t rng = 99;
    make_record(&ctx, &rng, "clip", 7, D_MAIN, 0, &b, NULL, NULL);
    CHECK_RC(shardwriter_put(w, b.data, b.len), LMR_EEXIST);
    CHECK(strstr(shardwriter_error(w), "clip00007") != NULL);
    make_record(&ctx, &rng, "new", 1, 32, 0, &b, NULL, NULL);
    CHECK_RC(shardwriter_put(w, b.data, b.len), LMR_EMISMATCH);
    CHECK(strstr(shardwriter_error(w), "new00001") != NULL);
    CHECK_RC(shardwriter_put(w, recs[3].data, recs[3].len - 1), LMR_ETRUNC);
    ShardMeta hint;
    shardmeta_init(&hint);
    snprintf(hint.backbone, sizeof hint.backbone, "resnet50");
    snprintf(hint.dataset, sizeof hint.dataset, "unit");
    CHECK_RC(shardwriter_set_meta(w, &hint), 0);
    snprintf(hint.backbone, sizeof hint.backbone, "pool");
    CHECK_RC(shardwriter_set_meta(w, &hint), LMR_EMISMATCH);
    CHECK_RC(shardwriter_close(&w), 0);
    CHECK_RC(shardwriter_close(&w), 0);
    CHECK_RC(shardset_open(&s, p, 1, err), 0);
    if (s) {
        CHECK(strcmp(shardset_meta(s)->backbone, "resnet50") == 0 && strcmp(shardset_meta(s)->dataset, "unit") == 0);
        CHECK(shardset_count(s) == N_REC);
        shardset_close(&s);
    }
    /* the other format asked for an existing shard */
    ShardWriterOpts other = {fmt == SHARD_HDF5 ? SHARD_LMDB : SHARD_HDF5, 4, 0};
    CHECK_RC(shardwriter_open(&w, path, &other, err), LMR_EMISMATCH);
    buf_free(&b);
    record_ctx_free(&ctx);
    shardmeta_free(&hint);
}

/* --- sets and threads ---------------------------------------------------------------------- */

typedef struct {
    ShardSet *s;
    int t, n_threads;
    long bad, seen;
} ReadJob;

static void *read_thread(void *arg)
{
    ReadJob *j = arg;
    RecordCtx ctx;
    record_ctx_init(&ctx, 0);
    LmrBuf scratch, pay;
    buf_init(&scratch);
    buf_init(&pay);
    uint64_t n = shardset_count(j->s);
    for (int pass = 0; pass < 2; pass++)
        for (uint64_t i = (uint64_t)j->t; i < n; i += (uint64_t)j->n_threads) {
            uint64_t k = pass ? n - 1 - i : i; /* two orders, so threads meet on the same records */
            RecordInfo info;
            if (shardset_get(j->s, k, &scratch, &info) || record_verify(&ctx, &info, &pay))
                j->bad++;
            const int32_t *l;
            if (shardset_labels(j->s, k, &l) != info.n_labels || memcmp(l, info.labels, 4 * (size_t)info.n_labels))
                j->bad++;
            j->seen++;
        }
    buf_free(&scratch);
    buf_free(&pay);
    record_ctx_free(&ctx);
    return NULL;
}

static void test_sets(const char *dir, const Corpus *c)
{
    char a[256], b[256], h[256], h2[256], bad[256], err[LMR_ERRLEN];
    snprintf(a, sizeof a, "%s/rt.lmdb", dir);
    snprintf(h, sizeof h, "%s/rt.h5", dir);
    snprintf(h2, sizeof h2, "%s/h2.h5", dir);
    snprintf(b, sizeof b, "%s/b.lmdb", dir);
    snprintf(bad, sizeof bad, "%s/d32.lmdb", dir);
    RecordCtx ctx;
    record_ctx_init(&ctx, 3);
    LmrBuf recs[50];
    int64_t counts[N_CLASSES] = {0};
    uint64_t rng = 5;
    for (int i = 0; i < 50; i++) {
        buf_init(&recs[i]);
        make_record(&ctx, &rng, "hset", i, D_MAIN, 8, &recs[i], NULL, counts);
    }
    int added, done;
    CHECK_RC(write_shard(h2, SHARD_HDF5, recs, 0, 50, 0, &added, &done), 0);
    for (int i = 0; i < 50; i++)
        make_record(&ctx, &rng, "bset", i, D_MAIN, 8, &recs[i], NULL, counts);
    CHECK_RC(write_shard(b, SHARD_LMDB, recs, 0, 50, 0, &added, &done), 0);
    make_record(&ctx, &rng, "dset", 0, 32, 8, &recs[0], NULL, NULL);
    CHECK_RC(write_shard(bad, SHARD_LMDB, recs, 0, 1, 0, &added, &done), 0);
    for (int i = 0; i < 50; i++)
        buf_free(&recs[i]);
    record_ctx_free(&ctx);

    const char *paths[3] = {a, h2, b};
    ShardSet *s;
    CHECK_RC(shardset_open(&s, paths, 3, err), 0);
    if (!s)
        return;
    CHECK(shardset_count(s) == N_REC + 100);
    const ShardMeta *m = shardset_meta(s);
    CHECK(m->n_records == N_REC + 100 && m->n_classes == N_CLASSES);
    int ok = 1;
    for (int k = 0; k < N_CLASSES; k++)
        ok &= m->class_counts[k] == c->counts[k] + counts[k];
    CHECK(ok);
    CHECK(shardset_find(s, "bset00049") == N_REC + 99);
    CHECK(shardset_find(s, "hset00007") == N_REC + 7);
    CHECK(shardset_find(s, "clip00000") == 0);
    RecordInfo info;
    LmrBuf scratch;
    buf_init(&scratch);
    CHECK_RC(shardset_get(s, N_REC + 100, &scratch, &info), LMR_ERANGE);
    buf_free(&scratch);

    TEST(6, "reads from 4 threads over LMDB + HDF5 + LMDB");
    ReadJob jobs[4];
    pthread_t tid[4];
    for (int t = 0; t < 4; t++) {
        jobs[t] = (ReadJob){s, t, 4, 0, 0};
        pthread_create(&tid[t], NULL, read_thread, &jobs[t]);
    }
    long seen = 0, nbad = 0;
    for (int t = 0; t < 4; t++) {
        pthread_join(tid[t], NULL);
        seen += jobs[t].seen;
        nbad += jobs[t].bad;
    }
    CHECK(nbad == 0);
    CHECK(seen == 2 * (long)shardset_count(s));
    shardset_close(&s);

    const char *mixed[2] = {a, bad};
    CHECK_RC(shardset_open(&s, mixed, 2, err), LMR_EMISMATCH);
    CHECK(strstr(err, "d32.lmdb") != NULL);
    CHECK(strstr(err, "features f16 [1,8,32]") != NULL && strstr(err, "features f16 [1,*,128]") != NULL);
    CHECK(s == NULL);

    TEST(9, "a clip in two files of a set, or one file given twice, is refused");
    const char *dup[3] = {b, a, h}; /* rt.lmdb and rt.h5 hold the same clips */
    CHECK_RC(shardset_open(&s, dup, 3, err), LMR_EINVAL);
    CHECK(strstr(err, "clip clip00000 is in both") != NULL && strstr(err, "rt.lmdb") != NULL && strstr(err, "rt.h5") != NULL);
    CHECK(s == NULL);
    char again[300];
    snprintf(again, sizeof again, "%s/./b.lmdb", dir);
    const char *twice[2] = {b, again};
    CHECK_RC(shardset_open(&s, twice, 2, err), LMR_EINVAL);
    CHECK(strstr(err, "given twice") != NULL);
    CHECK(s == NULL);
}

static void test_corrupt(const char *dir)
{
    TEST(7, "a corrupt LMDB value is reported by get, not trusted; a foreign file is not a shard");
    char path[256], junk[256], err[LMR_ERRLEN];
    snprintf(path, sizeof path, "%s/b.lmdb", dir);
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    mdb_env_create(&env);
    CHECK(mdb_env_open(env, path, MDB_NOSUBDIR, 0644) == 0);
    mdb_txn_begin(env, NULL, 0, &txn);
    mdb_dbi_open(txn, NULL, 0, &dbi);
    MDB_val k = {9, "bset00003"}, v;
    CHECK(mdb_get(txn, dbi, &k, &v) == 0);
    uint8_t *copy = malloc(v.mv_size);
    memcpy(copy, v.mv_data, v.mv_size);
    copy[v.mv_size - 1] ^= 0x40; /* last payload byte */
    v.mv_data = copy;
    CHECK(mdb_put(txn, dbi, &k, &v, 0) == 0);
    MDB_val k2 = {9, "bset00004"}, v2 = {5, "short"};
    CHECK(mdb_put(txn, dbi, &k2, &v2, 0) == 0);
    CHECK(mdb_txn_commit(txn) == 0);
    mdb_env_close(env);
    free(copy);
    ShardSet *s;
    const char *p[1] = {path};
    CHECK_RC(shardset_open(&s, p, 1, err), 0);
    if (s) {
        RecordCtx ctx;
        record_ctx_init(&ctx, 0);
        LmrBuf scratch, pay;
        buf_init(&scratch);
        buf_init(&pay);
        RecordInfo info;
        int64_t i3 = shardset_find(s, "bset00003"), i4 = shardset_find(s, "bset00004");
        CHECK(i3 == 3 && i4 == 4);
        CHECK_RC(shardset_get(s, (uint64_t)i3, &scratch, &info), 0);
        int rc = record_verify(&ctx, &info, &pay);
        CHECK(rc == LMR_ECHECKSUM || rc == LMR_ECOMPRESS);
        CHECK_RC(shardset_get(s, (uint64_t)i4, &scratch, &info), LMR_ETRUNC);
        CHECK(strstr(shardset_error(s), "bset00004") != NULL);
        buf_free(&scratch);
        buf_free(&pay);
        record_ctx_free(&ctx);
        shardset_close(&s);
    }
    snprintf(junk, sizeof junk, "%s/junk.bin", dir);
    FILE *f = fopen(junk, "wb");
    for (int i = 0; i < 20000; i++)
        fputc(i * 7, f);
    fclose(f);
    p[0] = junk;
    CHECK_RC(shardset_open(&s, p, 1, err), LMR_EBADMAGIC);
    p[0] = "/nonexistent/shard.lmdb";
    CHECK(shardset_open(&s, p, 1, err) < 0);
    unlink(junk);
}

static void test_meta_json(void)
{
    TEST(8, "metadata JSON round trip and bad JSON");
    ShardMeta m, back;
    shardmeta_init(&m);
    shardmeta_init(&back);
    m.kind = LMR_KIND_FRAMES, m.dtype = LMR_DT_U8, m.ndim = 4, m.n_records = 5, m.multi_label = 1;
    m.dims[0] = 1, m.dims[1] = 16, m.dims[2] = 112, m.dims[3] = 336;
    m.n_classes = 3;
    m.class_counts = calloc(3, sizeof(int64_t));
    m.class_counts[1] = 4;
    snprintf(m.dataset, sizeof m.dataset, "epic");
    snprintf(m.backbone, sizeof m.backbone, "resnet50");
    m.frames = 16, m.size = 112;
    char *j = shardmeta_to_json(&m), err[LMR_ERRLEN];
    CHECK_RC(shardmeta_from_json(&back, j, err), 0);
    CHECK(back.kind == m.kind && back.dtype == m.dtype && back.n_records == 5 && back.dims[3] == 336 &&
          back.n_classes == 3 && back.class_counts[1] == 4 && strcmp(back.dataset, "epic") == 0 &&
          strcmp(back.backbone, "resnet50") == 0 && back.frames == 16 && back.multi_label == 1);
    free(j);
    CHECK_RC(shardmeta_from_json(&back, "{\"kind\": 3}", err), LMR_EPARSE);
    CHECK_RC(shardmeta_from_json(&back, "{\"dataset\": 7}", err), LMR_EPARSE);
    CHECK(strstr(err, "dataset") != NULL);
    CHECK_RC(shardmeta_from_json(&back, "[1,", err), LMR_EPARSE);
    CHECK_RC(shardmeta_from_json(&back, "{\"format_version\": 9}", err), LMR_EVERSION);
    shardmeta_free(&m);
    shardmeta_free(&back);
}

static void rm_dir(const char *dir)
{
    const char *names[] = {"rt.lmdb", "rt.lmdb-lock", "rt.h5", "resume.lmdb", "resume.lmdb-lock", "resume.h5",
                           "b.lmdb", "b.lmdb-lock", "d32.lmdb", "d32.lmdb-lock", "h2.h5"};
    char p[300];
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, names[i]);
        unlink(p);
    }
    rmdir(dir);
}

int main(void)
{
    char dir[] = "/tmp/lmr_test_shard_XXXXXX";
    if (!mkdtemp(dir))
        return 1;
    RecordCtx ctx;
    record_ctx_init(&ctx, 3);
    uint64_t rng = 2024;
    static Corpus c;
    corpus_init(&c, &ctx, &rng);
    TEST(1, "LMDB round trip: byte-equal, varying T, multi-label, small transactions, map growth");
    test_roundtrip(dir, &c, SHARD_LMDB);
    TEST(2, "HDF5 round trip: rebuilt records byte-equal to raw originals, varying T (rows layout)");
    test_roundtrip(dir, &c, SHARD_HDF5);
    TEST(3, "LMDB resume adds only missing ids; duplicates, mismatches, backbone conflicts");
    test_resume(dir, &c, SHARD_LMDB);
    TEST(4, "HDF5 resume adds only missing ids; duplicates, mismatches, backbone conflicts");
    test_resume(dir, &c, SHARD_HDF5);
    TEST(5, "a set of three files of both formats; a file of other dims is refused");
    test_sets(dir, &c);
    test_corrupt(dir);
    test_meta_json();
    corpus_free(&c);
    record_ctx_free(&ctx);
    rm_dir(dir);
    CHECK_DONE();
}
