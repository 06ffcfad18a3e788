/* Mutation fuzzing of both shard readers, deterministic and bounded in time (LMR_FUZZ_SECONDS,
 * default 3; at least MIN_ROUNDS rounds): LMDB record values and the __meta__ JSON, HDF5's
 * lmr_meta attribute and its per-clip tables, and record_parse / shardmeta_from_json on the
 * mutated bytes directly. Every outcome is allowed except a crash, a hang or a sanitizer report;
 * what opens must read back with every record either fetched or reported. */
#include <hdf5.h>
#include <lmdb.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "shard.h"

#define N_CLIPS 6
#define MIN_ROUNDS 60

static uint64_t rng = 0x5eed;

static uint64_t next(void)
{
    uint64_t z = (rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static char dir[] = "/tmp/lmr_fuzz_shards_XXXXXX";
static char lmdb_good[300], lmdb_try[300], h5_good[300], h5_try[300];
static LmrBuf recs[N_CLIPS];
static char *meta_json;
static long opened, refused, fetched, reported;

/* Values that break assumptions: zero, one, signs, powers of two, the type limits. */
static uint64_t nasty(void)
{
    static const uint64_t v[] = {0, 1, 2, 3, 255, 256, 65535, 65536, 0x7fffffff, 0x80000000u, 0xffffffffu,
                                 1ull << 32, 1ull << 40, 1ull << 60, INT64_MAX, UINT64_MAX, UINT64_MAX - 1};
    return next() % 3 ? v[next() % (sizeof v / sizeof *v)] : next();
}

/* Mutate b[0..*n) in place (cap bytes room). */
static void mutate(uint8_t *b, size_t *n, size_t cap)
{
    int k = 1 + (int)(next() % 4);
    while (k--) {
        size_t len = *n;
        switch (next() % 6) {
        case 0: /* flip a bit */
            if (len)
                b[next() % len] ^= (uint8_t)(1u << (next() % 8));
            break;
        case 1: /* a nasty integer over a header field (little endian), or anywhere */
            if (len >= 8) {
                static const size_t fields[] = {14, 16, 20, 24, 28, 32, 40, 56};
                size_t at = next() % 2 ? fields[next() % 8] : next() % (len - 7);
                uint64_t v = nasty();
                int w = 1 << (next() % 4);
                for (int i = 0; i < w && at + (size_t)i < len; i++)
                    b[at + (size_t)i] = (uint8_t)(v >> (8 * i));
            }
            break;
        case 2: /* cut */
            if (len)
                *n = next() % len;
            break;
        case 3: /* grow with junk */
            while (*n < cap && next() % 8)
                b[(*n)++] = (uint8_t)next();
            break;
        case 4: /* an ASCII digit or JSON token byte, for the JSON */
            if (len)
                b[next() % len] = (uint8_t)"0123456789-,:[]{}\"e.9"[next() % 21];
            break;
        default: /* copy a run within */
            if (len > 2) {
                size_t from = next() % len, to = next() % len, m = next() % (len - (from > to ? from : to));
                memmove(b + to, b + from, m);
            }
        }
    }
}

static void copy(const char *from, const char *to)
{
    FILE *a = fopen(from, "rb"), *b = fopen(to, "wb");
    char buf[65536];
    size_t n;
    while (a && b && (n = fread(buf, 1, sizeof buf, a)) > 0)
        fwrite(buf, 1, n, b);
    if (a)
        fclose(a);
    if (b)
        fclose(b);
}

static void read_set(const char *path)
{
    char err[LMR_ERRLEN];
    ShardSet *s = NULL;
    const char *p[1] = {path};
    if (shardset_open(&s, p, 1, err)) {
        refused++;
        if (!err[0])
            abort(); /* every refusal says why */
        return;
    }
    opened++;
    RecordCtx ctx;
    record_ctx_init(&ctx, 0);
    LmrBuf scratch, pay;
    buf_init(&scratch);
    buf_init(&pay);
    for (uint64_t i = 0; i < shardset_count(s); i++) {
        RecordInfo info;
        const int32_t *l;
        shardset_labels(s, i, &l);
        if (shardset_get(s, i, &scratch, &info) || record_verify(&ctx, &info, &pay))
            reported++;
        else
            fetched++;
    }
    const ShardMeta *m = shardset_meta(s);
    for (int c = 0; c < m->n_classes; c++) /* the counts array is as long as it says */
        if (m->class_counts[c] < 0)
            abort();
    buf_free(&scratch);
    buf_free(&pay);
    record_ctx_free(&ctx);
    shardset_close(&s);
}

static void lmdb_put(const char *path, const char *key, const void *val, size_t len)
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    if (mdb_env_create(&env) || mdb_env_open(env, path, MDB_NOSUBDIR, 0644)) {
        fprintf(stderr, "cannot open %s\n", path);
        exit(1);
    }
    mdb_txn_begin(env, NULL, 0, &txn);
    mdb_dbi_open(txn, NULL, 0, &dbi);
    MDB_val k = {strlen(key), (void *)key}, v = {len, (void *)val};
    if (mdb_put(txn, dbi, &k, &v, 0) || mdb_txn_commit(txn)) {
        fprintf(stderr, "cannot write %s\n", path);
        exit(1);
    }
    mdb_env_close(env);
}

static void round_lmdb_value(uint8_t *b, size_t cap)
{
    int i = (int)(next() % N_CLIPS);
    size_t n = recs[i].len;
    memcpy(b, recs[i].data, n);
    mutate(b, &n, cap);
    RecordInfo info; /* the parser alone first */
    char err[LMR_ERRLEN];
    record_parse(b, n, &info, err);
    copy(lmdb_good, lmdb_try);
    char key[16];
    snprintf(key, sizeof key, "c%02d", i);
    lmdb_put(lmdb_try, key, b, n ? n : 1);
    read_set(lmdb_try);
}

static void round_json(uint8_t *b, size_t cap, int hdf5)
{
    size_t n = strlen(meta_json);
    memcpy(b, meta_json, n);
    mutate(b, &n, cap - 1);
    b[n] = 0;
    ShardMeta m;
    shardmeta_init(&m);
    char err[LMR_ERRLEN];
    shardmeta_from_json(&m, (const char *)b, err);
    shardmeta_free(&m);
    if (!hdf5) {
        copy(lmdb_good, lmdb_try);
        lmdb_put(lmdb_try, "__meta__", b, n ? n : 1);
        read_set(lmdb_try);
        return;
    }
    copy(h5_good, h5_try);
    hid_t f = H5Fopen(h5_try, H5F_ACC_RDWR, H5P_DEFAULT);
    H5Adelete(f, "lmr_meta");
    hid_t t = H5Tcopy(H5T_C_S1), sp = H5Screate(H5S_SCALAR);
    H5Tset_size(t, strlen((char *)b) + 1);
    hid_t a = H5Acreate2(f, "lmr_meta", t, sp, H5P_DEFAULT, H5P_DEFAULT);
    H5Awrite(a, t, b);
    H5Aclose(a);
    H5Sclose(sp);
    H5Tclose(t);
    H5Fclose(f);
    read_set(h5_try);
}

/* One per-clip table of the HDF5 shard with nasty values (same shape or another). */
static void round_h5_table(void)
{
    static const char *const names[] = {"/rows", "/label_index", "/checksums", "/label_values", "/labels"};
    const char *name = names[next() % 5];
    copy(h5_good, h5_try);
    hid_t f = H5Fopen(h5_try, H5F_ACC_RDWR, H5P_DEFAULT);
    hsize_t dims[2] = {N_CLIPS, 2};
    int rank = strcmp(name, "/rows") && strcmp(name, "/label_index") ? 1 : 2;
    if (next() % 3 == 0)
        dims[0] = next() % (2 * N_CLIPS + 1);
    uint64_t vals[64];
    for (int i = 0; i < 64; i++)
        vals[i] = next() % 2 ? next() % 8 : nasty();
    H5Ldelete(f, name, H5P_DEFAULT);
    hid_t sp = H5Screate_simple(rank, dims, NULL);
    int i32 = !strcmp(name, "/label_values") || !strcmp(name, "/labels");
    hid_t d = H5Dcreate2(f, name, i32 ? H5T_STD_I32LE : H5T_STD_U64LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    H5Dwrite(d, H5T_NATIVE_UINT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, vals); /* converted, clipped */
    H5Dclose(d);
    H5Sclose(sp);
    H5Fclose(f);
    read_set(h5_try);
}

static void build(void)
{
    RecordCtx ctx;
    record_ctx_init(&ctx, 3);
    char err[LMR_ERRLEN];
    ShardWriter *wl, *wh;
    ShardWriterOpts lo = {SHARD_LMDB, 4, 0}, ho = {SHARD_HDF5, 4, 0};
    if (shardwriter_open(&wl, lmdb_good, &lo, err) || shardwriter_open(&wh, h5_good, &ho, err)) {
        fprintf(stderr, "%s\n", err);
        exit(1);
    }
    for (int i = 0; i < N_CLIPS; i++) {
        char id[16];
        snprintf(id, sizeof id, "c%02d", i);
        RecordInfo in = {.kind = LMR_KIND_FEATURES, .dtype = LMR_DT_F16, .ndim = 4,
                         .dims = {1, 2 + (uint32_t)i % 3, 8, 1}, .id = id, .id_len = 3,
                         .n_labels = (uint16_t)(1 + i % 2), .labels = {i % 4, (i + 1) % 4}};
        uint16_t p[64];
        for (int k = 0; k < 64; k++)
            p[k] = (uint16_t)(0x3c00 + (k * 13 + i) % 300);
        buf_init(&recs[i]);
        if (record_encode(&ctx, &in, p, &recs[i]) || shardwriter_put(wl, recs[i].data, recs[i].len) ||
            shardwriter_put(wh, recs[i].data, recs[i].len)) {
            fprintf(stderr, "building: %s %s\n", shardwriter_error(wl), shardwriter_error(wh));
            exit(1);
        }
    }
    ShardMeta hint;
    shardmeta_init(&hint);
    snprintf(hint.dataset, sizeof hint.dataset, "fuzz");
    const char *names[4] = {"a", "b", "c", "d"};
    shardmeta_set_class_names(&hint, names, 4);
    shardwriter_set_meta(wl, &hint);
    shardwriter_set_meta(wh, &hint);
    shardmeta_free(&hint);
    if (shardwriter_close(&wl) || shardwriter_close(&wh)) {
        fprintf(stderr, "closing\n");
        exit(1);
    }
    const char *p[1] = {lmdb_good};
    ShardSet *s;
    if (shardset_open(&s, p, 1, err)) {
        fprintf(stderr, "%s\n", err);
        exit(1);
    }
    meta_json = shardmeta_to_json(shardset_meta(s));
    shardset_close(&s);
    record_ctx_free(&ctx);
}

int main(void)
{
    if (!mkdtemp(dir))
        return 1;
    snprintf(lmdb_good, sizeof lmdb_good, "%s/g.lmdb", dir);
    snprintf(lmdb_try, sizeof lmdb_try, "%s/t.lmdb", dir);
    snprintf(h5_good, sizeof h5_good, "%s/g.h5", dir);
    snprintf(h5_try, sizeof h5_try, "%s/t.h5", dir);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    build();
    const char *secs = getenv("LMR_FUZZ_SECONDS");
    double limit = secs ? atof(secs) : 3.0, t0 = now();
    size_t cap = 1 << 16;
    uint8_t *b = malloc(cap);
    long rounds = 0;
    while (rounds < MIN_ROUNDS || now() - t0 < limit) {
        switch (next() % 4) {
        case 0: round_lmdb_value(b, cap); break;
        case 1: round_json(b, cap, 0); break;
        case 2: round_json(b, cap, 1); break;
        default: round_h5_table();
        }
        rounds++;
    }
    printf("%ld rounds: %ld sets opened (%ld records fetched, %ld reported), %ld refused\n", rounds, opened, fetched,
           reported, refused);
    free(b);
    free(meta_json);
    for (int i = 0; i < N_CLIPS; i++)
        buf_free(&recs[i]);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        return 1;
    return opened > 0 && refused > 0 ? 0 : 1; /* both outcomes reached: the mutations bite */
}
