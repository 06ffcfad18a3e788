/* HDF5 shards whose chunks lmr filters itself (shuffle + deflate on a pool of threads, direct chunk
 * writes and reads): the file is the plain shuffle + deflate HDF5 that HDF5's own filters read;
 * a /features written by HDF5's own filters (as h5py writes it) reads bit-exact through the direct
 * path; a pipeline lmr does not filter itself (fletcher32 added) reads through HDF5; a damaged
 * chunk is an error naming the shard and the clip. */
#include <fcntl.h>
#include <hdf5.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "shard.h"

#define N 60
#define T 8
#define D 96

static char dir[] = "/tmp/lmr_test_direct_XXXXXX";
static LmrBuf recs[N];
static uint16_t *payload[N]; /* f16 [1, T, D] */

static const char *at(const char *name)
{
    static char p[4][300];
    static int k;
    k = (k + 1) % 4;
    snprintf(p[k], sizeof p[k], "%s/%s", dir, name);
    return p[k];
}

static void make_corpus(void)
{
    RecordCtx ctx;
    record_ctx_init(&ctx, 0);
    uint64_t s = 99;
    for (int i = 0; i < N; i++) {
        char id[16];
        snprintf(id, sizeof id, "v%04d", i);
        RecordInfo in = {.kind = LMR_KIND_FEATURES, .dtype = LMR_DT_F16, .ndim = 4, .id = id, .id_len = 5};
        in.dims[0] = 1, in.dims[1] = T, in.dims[2] = D, in.dims[3] = 1;
        in.n_labels = 1, in.labels[0] = i % 7;
        payload[i] = malloc(2 * T * D);
        for (int k = 0; k < T * D; k++) {
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            payload[i][k] = (uint16_t)(0x3800 + (s >> 33) % (k % 3 ? 64 : 4096)); /* part compressible */
        }
        buf_init(&recs[i]);
        CHECK_RC(record_encode(&ctx, &in, payload[i], &recs[i]), 0);
    }
    record_ctx_free(&ctx);
}

static void write_shard(const char *path, int from, int to, int deflate)
{
    char err[LMR_ERRLEN];
    ShardWriter *w;
    ShardWriterOpts o = {SHARD_HDF5, deflate, 0};
    CHECK_RC(shardwriter_open(&w, path, &o, err), 0);
    for (int i = from; i < to; i++)
        CHECK_RC(shardwriter_put(w, recs[i].data, recs[i].len), 0);
    CHECK_RC(shardwriter_close(&w), 0);
}

/* Every clip read through lmr is byte-equal to its raw record. @return records read. */
static int read_back(const char *path, int n)
{
    char err[LMR_ERRLEN];
    ShardSet *s;
    const char *p[1] = {path};
    CHECK_RC(shardset_open(&s, p, 1, err), 0);
    if (!s)
        return 0;
    CHECK(shardset_count(s) == (uint64_t)n);
    LmrBuf scratch;
    buf_init(&scratch);
    int good = 0;
    for (int i = 0; i < n; i++) {
        RecordInfo info;
        int rc = shardset_get(s, (uint64_t)i, &scratch, &info);
        CHECK_RC(rc, 0);
        if (rc)
            fprintf(stderr, "  %s\n", shardset_error(s));
        int k = atoi(info.id + 1);
        good += !rc && k >= 0 && k < N && scratch.len == recs[k].len && memcmp(scratch.data, recs[k].data, recs[k].len) == 0;
    }
    CHECK(good == n);
    buf_free(&scratch);
    shardset_close(&s);
    return good;
}

/* /features read through HDF5's own filter pipeline (what h5py does) equals the payloads. */
/* /ids as NUL-terminated strings of 6 bytes (the ids are 5 long). */
static void read_ids(hid_t f, char (*ids)[6])
{
    hid_t it = H5Dopen2(f, "/ids", H5P_DEFAULT), mt = H5Tcopy(H5T_C_S1);
    H5Tset_size(mt, 6);
    H5Tset_cset(mt, H5T_CSET_UTF8);
    CHECK(H5Dread(it, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, ids) >= 0);
    H5Tclose(mt);
    H5Dclose(it);
}

static void check_plain_read(const char *path, int n, int want_shuffle, int want_deflate)
{
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT), d = H5Dopen2(f, "/features", H5P_DEFAULT);
    hid_t dcpl = H5Dget_create_plist(d);
    int nf = H5Pget_nfilters(dcpl), shuffle = 0, deflate = 0;
    for (int k = 0; k < nf; k++) {
        unsigned flags, cd[8];
        size_t ncd = 8;
        H5Z_filter_t id = H5Pget_filter2(dcpl, (unsigned)k, &flags, &ncd, cd, 0, NULL, NULL);
        shuffle |= id == H5Z_FILTER_SHUFFLE;
        deflate |= id == H5Z_FILTER_DEFLATE;
    }
    CHECK(nf == want_shuffle + want_deflate && shuffle == want_shuffle && deflate == want_deflate);
    uint16_t *all = malloc(2 * (size_t)n * T * D);
    hid_t ft = H5Dget_type(d); /* the stored half floats, bit for bit */
    CHECK(H5Dread(d, ft, H5S_ALL, H5S_ALL, H5P_DEFAULT, all) >= 0);
    H5Tclose(ft);
    char ids[N][6];
    read_ids(f, ids);
    int same = 0;
    for (int i = 0; i < n; i++) {
        int k = atoi(ids[i] + 1);
        same += memcmp(all + (size_t)i * T * D, payload[k], 2 * T * D) == 0;
    }
    CHECK(same == n);
    free(all);
    H5Pclose(dcpl);
    H5Dclose(d);
    H5Fclose(f);
}

/* Replace /features of path with one HDF5's own filters write: chunk per clip, shuffle + deflate
 * 6 (h5py's compression="gzip", shuffle=True), fletcher32 after them when checksum. */
static void rewrite_features(const char *path, int n, int checksum)
{
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT), d = H5Dopen2(f, "/features", H5P_DEFAULT);
    hid_t ft = H5Dget_type(d);
    hsize_t ids_n = (hsize_t)n;
    char (*ids)[6] = calloc((size_t)n, 6);
    read_ids(f, ids);
    H5Dclose(d);
    CHECK(H5Ldelete(f, "/features", H5P_DEFAULT) >= 0);
    hsize_t dims[4] = {ids_n, 1, T, D}, chunk[4] = {1, 1, T, D};
    hid_t sp = H5Screate_simple(4, dims, NULL), dcpl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_chunk(dcpl, 4, chunk);
    H5Pset_shuffle(dcpl);
    H5Pset_deflate(dcpl, 6);
    if (checksum)
        H5Pset_fletcher32(dcpl);
    d = H5Dcreate2(f, "/features", ft, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    uint16_t *all = malloc(2 * (size_t)n * T * D);
    for (int i = 0; i < n; i++)
        memcpy(all + (size_t)i * T * D, payload[atoi(ids[i] + 1)], 2 * T * D);
    CHECK(d >= 0 && H5Dwrite(d, ft, H5S_ALL, H5S_ALL, H5P_DEFAULT, all) >= 0);
    free(all);
    free(ids);
    H5Pclose(dcpl);
    H5Sclose(sp);
    H5Tclose(ft);
    H5Dclose(d);
    H5Fclose(f);
}

/* Overwrite the first bytes of the stored chunk of clip i; then reading it must fail with an error
 * that names the file once, the clip, and contains want. */
static void damage_and_read(const char *path, int i, const char *want, const char *not_want)
{
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT), d = H5Dopen2(f, "/features", H5P_DEFAULT);
    hsize_t off[4] = {(hsize_t)i, 0, 0, 0}, size = 0;
    unsigned mask;
    haddr_t addr = 0;
    CHECK(H5Dget_chunk_info_by_coord(d, off, &mask, &addr, &size) >= 0);
    H5Dclose(d);
    H5Fclose(f);
    int fd = open(path, O_WRONLY);
    char junk[48];
    memset(junk, 0xa5, sizeof junk);
    CHECK(size > sizeof junk && pwrite(fd, junk, sizeof junk, (off_t)addr + 2) == (ssize_t)sizeof junk);
    close(fd);
    char err[LMR_ERRLEN], clip[32];
    ShardSet *s;
    const char *p[1] = {path};
    CHECK_RC(shardset_open(&s, p, 1, err), 0);
    if (!s)
        return;
    LmrBuf scratch;
    buf_init(&scratch);
    RecordInfo info;
    const char *id;
    uint16_t idl;
    shardset_id(s, (uint64_t)i, &id, &idl, NULL);
    snprintf(clip, sizeof clip, "clip %.*s", idl, id);
    CHECK(shardset_get(s, (uint64_t)i, &scratch, &info) < 0);
    const char *e = shardset_error(s), *first = strstr(e, path);
    printf("  %s\n", e);
    CHECK(first && !strstr(first + 1, path) && strstr(e, clip) && strstr(e, want));
    CHECK(!not_want || !strstr(e, not_want));
    CHECK_RC(shardset_get(s, (uint64_t)(i + 1), &scratch, &info), 0); /* the next clip is fine */
    buf_free(&scratch);
    shardset_close(&s);
}

int main(void)
{
    if (!mkdtemp(dir))
        return 1;
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    make_corpus();
    TEST(1, "written by lmr's pool: read back bit-exact by lmr and through HDF5's own shuffle + deflate");
    const char *a = at("a.h5");
    write_shard(a, 0, N / 2, 4);
    CHECK(read_back(a, N / 2) == N / 2);
    check_plain_read(a, N / 2, 1, 1);
    TEST(2, "resumed: the clips added go through the pool too; deflate 0 stores raw chunks");
    write_shard(a, N / 2, N, 9);
    CHECK(read_back(a, N) == N);
    check_plain_read(a, N, 1, 1);
    const char *r = at("raw.h5");
    write_shard(r, 0, N, 0);
    CHECK(read_back(r, N) == N);
    check_plain_read(r, N, 0, 0);
    TEST(3, "/features written by HDF5's filters (as h5py does): bit-exact through the direct path");
    const char *h = at("h.h5");
    write_shard(h, 0, N, 4);
    rewrite_features(h, N, 0);
    CHECK(read_back(h, N) == N);
    damage_and_read(h, 5, "does not inflate", NULL); /* the direct path's own words */
    TEST(4, "a pipeline lmr does not filter itself (+ fletcher32) reads through HDF5");
    const char *c = at("c.h5");
    write_shard(c, 0, N, 4);
    rewrite_features(c, N, 1);
    CHECK(read_back(c, N) == N);
    damage_and_read(c, 7, "reading the clip: ", "does not inflate");
    TEST(5, "a damaged chunk of lmr's own file: the error names shard and clip");
    damage_and_read(a, 11, "does not inflate", NULL);
    for (int i = 0; i < N; i++) {
        buf_free(&recs[i]);
        free(payload[i]);
    }
    const char *files[] = {"a.h5", "raw.h5", "h.h5", "c.h5"};
    for (size_t k = 0; k < sizeof files / sizeof *files; k++)
        unlink(at(files[k]));
    rmdir(dir);
    CHECK_DONE();
}
