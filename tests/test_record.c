/* The clip record: round trips of random records of every kind, dtype and shape (in memory and
 * through a .rec stream); every byte flipped in turn and every truncation give an error code and
 * never wrong payload bytes; bad magic and a wrong version are distinct errors; a damaged length
 * in the middle of a stream (file or pipe) is corruption at its offset, not a truncated end;
 * headers that claim impossible sizes; the stream metadata record; shapes in messages; f16
 * conversion against an independent reference. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "record.h"

static uint64_t rng_next(uint64_t *s) /* splitmix64 */
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* A random record description and payload (payload owned by the caller). */
static uint8_t *random_record(uint64_t *rng, RecordInfo *info, char *id, int compressible)
{
    memset(info, 0, sizeof *info);
    info->kind = 1 + rng_next(rng) % 2;
    info->dtype = 1 + rng_next(rng) % 3;
    info->ndim = 1 + rng_next(rng) % 4;
    for (int k = 0; k < info->ndim; k++)
        info->dims[k] = 1 + (uint32_t)(rng_next(rng) % 7);
    int idl = 1 + (int)(rng_next(rng) % 40);
    for (int k = 0; k < idl; k++)
        id[k] = "abcdefghijklmnopqrstuvwxyz0123456789_-/."[rng_next(rng) % 40];
    info->id = id;
    info->id_len = (uint16_t)idl;
    info->n_labels = rng_next(rng) % 4;
    for (int k = 0; k < info->n_labels; k++)
        info->labels[k] = (int32_t)(rng_next(rng) % 1000);
    size_t n = record_dtype_size(info->dtype);
    for (int k = 0; k < info->ndim; k++)
        n *= info->dims[k];
    info->raw_size = n;
    uint8_t *p = malloc(n);
    for (size_t k = 0; k < n; k++)
        p[k] = compressible ? (uint8_t)(k % 7) : (uint8_t)rng_next(rng);
    return p;
}

/* Decode rec fully; 0 and the payload in out on success. */
static int decode_all(RecordCtx *ctx, const uint8_t *rec, size_t len, RecordInfo *info, LmrBuf *out)
{
    char err[LMR_ERRLEN];
    int rc = record_parse(rec, len, info, err);
    if (rc)
        return rc;
    if (buf_reserve(out, info->raw_size + 1))
        return LMR_ENOMEM;
    return record_payload(ctx, info, out->data, out->cap);
}

static int same_header(const RecordInfo *a, const RecordInfo *b)
{
    return a->kind == b->kind && a->dtype == b->dtype && a->ndim == b->ndim &&
           memcmp(a->dims, b->dims, sizeof a->dims) == 0 && a->n_labels == b->n_labels &&
           memcmp(a->labels, b->labels, 4 * (size_t)a->n_labels) == 0 && a->id_len == b->id_len &&
           memcmp(a->id, b->id, a->id_len) == 0;
}

static void test_roundtrip(uint64_t *rng)
{
    TEST(1, "round trip of 400 random records, every kind/dtype/shape, raw and zstd");
    RecordCtx enc0, enc3, dec;
    record_ctx_init(&enc0, 0);
    record_ctx_init(&enc3, 3);
    record_ctx_init(&dec, 0);
    LmrBuf rec, out;
    buf_init(&rec);
    buf_init(&out);
    int kinds[3][4] = {{0}};
    for (int i = 0; i < 400; i++) {
        RecordInfo in, got;
        char id[64];
        uint8_t *p = random_record(rng, &in, id, i % 2);
        kinds[in.kind][in.dtype]++;
        CHECK_RC(record_encode(i % 3 ? &enc3 : &enc0, &in, p, &rec), 0);
        CHECK_RC(decode_all(&dec, rec.data, rec.len, &got, &out), 0);
        CHECK(got.total_size == rec.len);
        CHECK(same_header(&in, &got));
        CHECK(got.raw_size == in.raw_size && memcmp(out.data, p, in.raw_size) == 0);
        if (i % 3 && i % 2) /* compressible payloads do get compressed */
            CHECK(got.codec == LMR_CODEC_ZSTD || in.raw_size < 64);
        free(p);
    }
    for (int k = 1; k <= 2; k++)
        for (int d = 1; d <= 3; d++)
            CHECK(kinds[k][d] > 0);
    buf_free(&rec);
    buf_free(&out);
    record_ctx_free(&enc0);
    record_ctx_free(&enc3);
    record_ctx_free(&dec);
}

static void test_stream(uint64_t *rng)
{
    TEST(2, "a .rec stream of 50 records reads back; a truncated last record is ETRUNC and ignored");
    char dir[] = "/tmp/lmr_test_record_XXXXXX", path[128];
    CHECK(mkdtemp(dir) != NULL);
    snprintf(path, sizeof path, "%s/a.rec", dir);
    RecordCtx ctx;
    record_ctx_init(&ctx, 3);
    LmrBuf rec, out;
    buf_init(&rec);
    buf_init(&out);
    RecordInfo in[50];
    char ids[50][64];
    uint8_t *pay[50];
    FILE *f = fopen(path, "wb");
    for (int i = 0; i < 50; i++) {
        pay[i] = random_record(rng, &in[i], ids[i], i % 2);
        CHECK_RC(record_encode(&ctx, &in[i], pay[i], &rec), 0);
        size_t len = rec.len;
        if (i == 49)
            len -= 3; /* the writer died mid-record */
        fwrite(rec.data, 1, len, f);
    }
    fclose(f);
    RecReader r;
    CHECK_RC(recreader_open(&r, path), 0);
    int n = 0, rc;
    RecordInfo got;
    while ((rc = recreader_next(&r, &got)) == 0) {
        CHECK(n < 49 && same_header(&in[n], &got));
        buf_reserve(&out, got.raw_size);
        CHECK_RC(record_payload(&ctx, &got, out.data, out.cap), 0);
        CHECK(memcmp(out.data, pay[n], got.raw_size) == 0);
        n++;
    }
    CHECK_RC(rc, LMR_ETRUNC);
    CHECK(n == 49);
    CHECK(strstr(r.last_error, "offset") != NULL);
    recreader_close(&r);
    recreader_close(&r); /* idempotent */
    for (int i = 0; i < 50; i++)
        free(pay[i]);
    unlink(path);
    rmdir(dir);
    buf_free(&rec);
    buf_free(&out);
    record_ctx_free(&ctx);
}

static void test_corruption(uint64_t *rng)
{
    TEST(3, "every byte flipped and every truncation: an error, never wrong payload bytes");
    RecordCtx ctx, dec;
    record_ctx_init(&ctx, 3);
    record_ctx_init(&dec, 0);
    LmrBuf rec, out;
    buf_init(&rec);
    buf_init(&out);
    long undetected_meta = 0, flips = 0;
    for (int t = 0; t < 6; t++) {
        RecordInfo in, got;
        char id[64];
        uint8_t *p = random_record(rng, &in, id, t % 2);
        ctx.level = t < 3 ? 0 : 3;
        CHECK_RC(record_encode(&ctx, &in, p, &rec), 0);
        size_t head = LMR_RECORD_HEADER + in.id_len + 4 * (size_t)in.n_labels;
        uint8_t *copy = malloc(rec.len);
        for (size_t b = 0; b < rec.len; b++) {
            for (int bit = 0; bit < 8; bit += 3) {
                memcpy(copy, rec.data, rec.len);
                copy[b] ^= (uint8_t)(1u << bit);
                flips++;
                int rc = decode_all(&dec, copy, rec.len, &got, &out);
                if (b < 8)
                    CHECK_RC(rc, LMR_EBADMAGIC);
                else if (b < 10)
                    CHECK_RC(rc, LMR_EVERSION);
                else if (b < LMR_RECORD_HEADER || b >= head)
                    /* a few bits of a zstd frame do not matter: then the payload must be exact */
                    CHECK(rc < 0 || (same_header(&in, &got) && memcmp(out.data, p, in.raw_size) == 0));
                else if (rc == 0) {
                    undetected_meta++; /* the checksum covers id and labels: never reached */
                    CHECK(rc != 0);
                }
            }
        }
        for (size_t len = 0; len < rec.len; len++) {
            int rc = decode_all(&dec, rec.data, len, &got, &out);
            CHECK_RC(rc, LMR_ETRUNC);
        }
        free(copy);
        free(p);
    }
    printf("  %ld flips; %ld undetected\n", flips, undetected_meta);
    buf_free(&rec);
    buf_free(&out);
    record_ctx_free(&ctx);
    record_ctx_free(&dec);
}

static void test_errors(void)
{
    TEST(4, "bad magic, wrong version, bad fields: distinct codes; encode refuses bad input");
    RecordCtx ctx;
    record_ctx_init(&ctx, 0);
    LmrBuf rec;
    buf_init(&rec);
    float x[6] = {1, 2, 3, 4, 5, 6};
    RecordInfo in = {.kind = LMR_KIND_FEATURES, .dtype = LMR_DT_F32, .ndim = 2, .dims = {2, 3}, .id = "c1", .id_len = 2};
    CHECK_RC(record_encode(&ctx, &in, x, &rec), 0);
    RecordInfo got;
    char err[LMR_ERRLEN];
    rec.data[8] = LMR_RECORD_VERSION + 1; /* a future version */
    CHECK_RC(record_parse(rec.data, rec.len, &got, err), LMR_EVERSION);
    CHECK(strstr(err, "version") != NULL);
    rec.data[8] = LMR_RECORD_VERSION;
    rec.data[0] = 'X';
    CHECK_RC(record_parse(rec.data, rec.len, &got, err), LMR_EBADMAGIC);
    rec.data[0] = 'L';
    rec.data[10] = 3; /* kind */
    CHECK_RC(record_parse(rec.data, rec.len, &got, err), LMR_ECORRUPT);
    rec.data[10] = 2;
    CHECK_RC(record_parse(rec.data, rec.len, &got, err), 0);
    in.id_len = 0;
    CHECK_RC(record_encode(&ctx, &in, x, &rec), LMR_EINVAL);
    in.id_len = 2;
    in.dtype = 9;
    CHECK_RC(record_encode(&ctx, &in, x, &rec), LMR_EINVAL);
    buf_free(&rec);
    record_ctx_free(&ctx);
}

/* --- damaged streams -------------------------------------------------------------------- */

typedef struct {
    int n;       /* records returned */
    int rc;      /* the call that ended the reading */
    int bad_at;  /* first returned record whose checksum fails, -1 when none */
    char err[LMR_ERRLEN];
} StreamRead;

/* Read a stream (a path, or bytes through a pipe when via_pipe) to its end. */
static void read_stream(const char *path, const uint8_t *bytes, size_t len, int via_pipe, StreamRead *sr)
{
    int fds[2] = {-1, -1};
    pid_t pid = -1;
    char name[64];
    if (via_pipe) {
        if (pipe(fds) != 0)
            return;
        pid = fork();
        if (pid == 0) { /* the writer: a pipe cannot seek, and may deliver in small pieces */
            close(fds[0]);
            for (size_t off = 0; off < len;) {
                size_t step = len - off < 1000 ? len - off : 1000;
                ssize_t w = write(fds[1], bytes + off, step);
                if (w <= 0)
                    _exit(1);
                off += (size_t)w;
            }
            _exit(0);
        }
        close(fds[1]);
        snprintf(name, sizeof name, "/dev/fd/%d", fds[0]);
        path = name;
    }
    RecordCtx ctx;
    record_ctx_init(&ctx, 0);
    LmrBuf scratch;
    buf_init(&scratch);
    RecReader r;
    memset(sr, 0, sizeof *sr);
    sr->bad_at = -1;
    if (recreader_open(&r, path) == 0) {
        RecordInfo got;
        while ((sr->rc = recreader_next(&r, &got)) == 0) {
            if (record_verify(&ctx, &got, &scratch) && sr->bad_at < 0)
                sr->bad_at = sr->n;
            sr->n++;
        }
        snprintf(sr->err, sizeof sr->err, "%s", r.last_error);
        recreader_close(&r);
    }
    if (via_pipe) {
        close(fds[0]);
        waitpid(pid, NULL, 0);
    }
    buf_free(&scratch);
    record_ctx_free(&ctx);
}

static void write_file(const char *path, const uint8_t *b, size_t n)
{
    FILE *f = fopen(path, "wb");
    fwrite(b, 1, n, f);
    fclose(f);
}

static void test_damaged_length(uint64_t *rng)
{
    TEST(6, "a damaged length mid-stream: corruption at its offset (file and pipe); only the real end is truncated");
    char dir[] = "/tmp/lmr_test_record_XXXXXX", path[128];
    CHECK(mkdtemp(dir) != NULL);
    snprintf(path, sizeof path, "%s/d.rec", dir);
    RecordCtx ctx;
    record_ctx_init(&ctx, 3);
    LmrBuf rec, all;
    buf_init(&rec);
    buf_init(&all);
    enum { N = 60, K = 30 };
    size_t off[N + 1];
    for (int i = 0; i < N; i++) { /* frames of one value: tiny zstd payloads, as a still video gives */
        char id[16];
        snprintf(id, sizeof id, "v%04d", i);
        RecordInfo in = {.kind = LMR_KIND_FRAMES, .dtype = LMR_DT_U8, .ndim = 4, .dims = {1, 16, 64, 192},
                         .id = id, .id_len = 5, .n_labels = 1, .labels = {i % 5}};
        uint8_t *p = malloc(16 * 64 * 192);
        memset(p, i % 7 * 30, 16 * 64 * 192);
        if (i % 10 == 9 && i < K) /* some incompressible ones, stored raw; small ones after K */
            for (size_t k = 0; k < 16 * 64 * 192; k++)
                p[k] = (uint8_t)rng_next(rng);
        CHECK_RC(record_encode(&ctx, &in, p, &rec), 0);
        free(p);
        off[i] = all.len;
        buf_reserve(&all, all.len + rec.len);
        memcpy(all.data + all.len, rec.data, rec.len);
        all.len += rec.len;
    }
    off[N] = all.len;
    StreamRead sr;
    uint8_t *copy = malloc(all.len);

    /* the reported case: one bit of stored_size, in record K of a stream of small records */
    memcpy(copy, all.data, all.len);
    copy[off[K] + 42] ^= 1;
    write_file(path, copy, all.len);
    for (int via_pipe = 0; via_pipe < 2; via_pipe++) {
        read_stream(path, copy, all.len, via_pipe, &sr);
        CHECK_RC(sr.rc, LMR_ECORRUPT);
        CHECK(sr.n == K && sr.bad_at < 0);
        char want[64];
        snprintf(want, sizeof want, "offset %zu", off[K]);
        CHECK(strstr(sr.err, want) != NULL && strstr(sr.err, "damaged length") != NULL);
        if (!strstr(sr.err, want))
            fprintf(stderr, "  %s\n", sr.err);
    }

    /* every bit of the size, checksum and id-length fields, and of the id and labels, of record K */
    long flips = 0, fails = 0;
    size_t head_end = LMR_RECORD_HEADER + 5 + 4;
    for (size_t b = 32; b < head_end; b++) {
        if (b >= 48 && b < 56)
            continue; /* the checksum: caught by record_verify, not a length */
        for (int bit = 0; bit < 8; bit++) {
            memcpy(copy, all.data, all.len);
            copy[off[K] + b] ^= (uint8_t)(1u << bit);
            write_file(path, copy, all.len);
            read_stream(path, NULL, 0, 0, &sr);
            flips++;
            /* never "truncated": the stream is whole; nothing after K goes without an error */
            int ok = sr.rc != LMR_ETRUNC && sr.n >= K && (sr.bad_at < 0 || sr.bad_at == K);
            if (sr.rc == LMR_DONE)
                ok &= sr.n == N;
            else
                ok &= sr.rc < 0 && (sr.n == K || (sr.n == K + 1 && sr.bad_at == K));
            if (!ok) {
                fails++;
                fprintf(stderr, "  byte %zu bit %d: rc %d n %d bad_at %d: %s\n", b, bit, sr.rc, sr.n, sr.bad_at, sr.err);
            }
        }
    }
    printf("  %ld flips of record %d's length fields: every one an error at it or its checksum\n", flips, K);
    CHECK(fails == 0);

    /* the real end: cut inside the last record, through a file and a pipe */
    for (int via_pipe = 0; via_pipe < 2; via_pipe++) {
        write_file(path, all.data, all.len - 7);
        read_stream(path, all.data, all.len - 7, via_pipe, &sr);
        CHECK_RC(sr.rc, LMR_ETRUNC);
        CHECK(sr.n == N - 1 && strstr(sr.err, "ignored") != NULL);
    }
    /* cut inside record K's span while its length claims the rest: another record starts inside */
    memcpy(copy, all.data, all.len);
    copy[off[K] + 42] ^= 1;
    write_file(path, copy, off[K + 3] + 10);
    read_stream(path, NULL, 0, 0, &sr);
    CHECK_RC(sr.rc, LMR_ECORRUPT);
    CHECK(sr.n == K);
    /* bytes after the last record that are no record */
    memcpy(copy, all.data, all.len);
    memset(copy + off[N - 1], 'x', 20);
    write_file(path, copy, off[N - 1] + 20);
    read_stream(path, NULL, 0, 0, &sr);
    CHECK_RC(sr.rc, LMR_EBADMAGIC);
    CHECK(sr.n == N - 1);
    free(copy);
    unlink(path);
    rmdir(dir);
    buf_free(&rec);
    buf_free(&all);
    record_ctx_free(&ctx);
}

static void put_u64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void put_u32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void test_huge_claims(void)
{
    TEST(7, "a header that claims a huge payload is refused before anything is allocated");
    RecordCtx ctx;
    record_ctx_init(&ctx, 3);
    LmrBuf rec;
    buf_init(&rec);
    uint8_t p[256] = {0};
    RecordInfo in = {.kind = LMR_KIND_FEATURES, .dtype = LMR_DT_U8, .ndim = 4, .dims = {1, 1, 256, 1}, .id = "c0", .id_len = 2};
    CHECK_RC(record_encode(&ctx, &in, p, &rec), 0);
    RecordInfo got;
    char err[LMR_ERRLEN];
    CHECK_RC(record_parse(rec.data, rec.len, &got, err), 0);
    CHECK(got.codec == LMR_CODEC_ZSTD);
    /* dims and raw size agree on 2^60 bytes; the zstd frame is a few bytes */
    for (int k = 0; k < 4; k++)
        put_u32(rec.data + 16 + 4 * k, 1u << 15);
    put_u64(rec.data + 32, 1ull << 60);
    CHECK_RC(record_parse(rec.data, rec.len, &got, err), LMR_ECORRUPT);
    CHECK(strstr(err, "cannot come out of") != NULL);
    /* 2^34: still more than the stored bytes can hold */
    put_u32(rec.data + 16, 1u << 4);
    put_u32(rec.data + 20, 1u << 15);
    put_u32(rec.data + 24, 1u << 15);
    put_u32(rec.data + 28, 1u << 0);
    put_u64(rec.data + 32, 1ull << 34);
    CHECK_RC(record_parse(rec.data, rec.len, &got, err), LMR_ECORRUPT);
    /* a size the stored bytes could hold, but the frame declares another */
    put_u32(rec.data + 16, 1);
    put_u32(rec.data + 20, 1);
    put_u32(rec.data + 24, 512);
    put_u32(rec.data + 28, 1);
    put_u64(rec.data + 32, 512);
    CHECK_RC(record_parse(rec.data, rec.len, &got, err), LMR_ECORRUPT);
    CHECK(strstr(err, "zstd frame declares 256 bytes, header 512") != NULL);
    /* out of memory has a message */
    LmrBuf out;
    buf_init(&out);
    in.dims[0] = 1u << 31, in.dims[1] = 1u << 31, in.dims[2] = 2, in.dims[3] = 1; /* 2^63 bytes */
    CHECK_RC(record_encode(&ctx, &in, p, &out), LMR_ENOMEM);
    CHECK(strstr(ctx.last_error, "out of memory") != NULL);
    buf_free(&out);
    buf_free(&rec);
    record_ctx_free(&ctx);
}

static void test_meta_record(void)
{
    TEST(8, "the stream metadata record: encoded, streamed first, read back; refused in other forms");
    char dir[] = "/tmp/lmr_test_record_XXXXXX", path[128];
    CHECK(mkdtemp(dir) != NULL);
    snprintf(path, sizeof path, "%s/m.rec", dir);
    RecordCtx ctx;
    record_ctx_init(&ctx, 3);
    LmrBuf rec;
    buf_init(&rec);
    const char *json = "{\"dataset\":\"epic\",\"backbone\":\"resnet50\",\"class_names\":[\"a\",\"b\"]}";
    CHECK_RC(record_meta_encode(&ctx, json, &rec), 0);
    RecordInfo got;
    char err[LMR_ERRLEN];
    CHECK_RC(record_parse(rec.data, rec.len, &got, err), 0);
    CHECK(got.kind == LMR_KIND_META && got.dtype == LMR_DT_U8 && got.ndim == 1 && got.dims[0] == strlen(json) &&
          got.n_labels == 0 && got.id_len == strlen(LMR_META_ID) && memcmp(got.id, LMR_META_ID, got.id_len) == 0);
    FILE *f = fopen(path, "wb");
    fwrite(rec.data, 1, rec.len, f);
    float x[4] = {1, 2, 3, 4};
    RecordInfo clip = {.kind = LMR_KIND_FEATURES, .dtype = LMR_DT_F32, .ndim = 4, .dims = {1, 1, 4, 1}, .id = "c1", .id_len = 2};
    LmrBuf crec;
    buf_init(&crec);
    CHECK_RC(record_encode(&ctx, &clip, x, &crec), 0);
    fwrite(crec.data, 1, crec.len, f);
    fclose(f);
    RecReader r;
    CHECK_RC(recreader_open(&r, path), 0);
    CHECK_RC(recreader_next(&r, &got), 0);
    CHECK(got.kind == LMR_KIND_META);
    char *back = NULL;
    CHECK_RC(record_meta_json(&ctx, &got, &back), 0);
    CHECK(back && strcmp(back, json) == 0);
    free(back);
    CHECK_RC(recreader_next(&r, &got), 0);
    CHECK(got.kind == LMR_KIND_FEATURES);
    CHECK_RC(record_meta_json(&ctx, &got, &back), LMR_EINVAL);
    CHECK(back == NULL);
    CHECK_RC(recreader_next(&r, &got), LMR_DONE);
    recreader_close(&r);
    /* other forms */
    CHECK_RC(record_meta_encode(&ctx, "", &rec), LMR_EINVAL);
    uint8_t j[3] = {'{', '}', 0};
    RecordInfo bad = {.kind = LMR_KIND_META, .dtype = LMR_DT_U8, .ndim = 1, .dims = {2}, .id = "x", .id_len = 1};
    CHECK_RC(record_encode(&ctx, &bad, j, &rec), LMR_EINVAL); /* another id */
    bad.id = LMR_META_ID, bad.id_len = (uint16_t)strlen(LMR_META_ID), bad.n_labels = 1;
    CHECK_RC(record_encode(&ctx, &bad, j, &rec), LMR_EINVAL); /* labels */
    bad.n_labels = 0, bad.dtype = LMR_DT_F16, bad.dims[0] = 1;
    CHECK_RC(record_encode(&ctx, &bad, j, &rec), LMR_EINVAL); /* not u8 */
    CHECK_RC(record_meta_encode(&ctx, json, &rec), 0);
    rec.data[LMR_RECORD_HEADER] = 'x'; /* the id */
    CHECK_RC(record_parse(rec.data, rec.len, &got, err), LMR_ECORRUPT);
    CHECK(strstr(err, "metadata record") != NULL);
    /* a NUL inside the JSON */
    ctx.level = 0;
    bad.dtype = LMR_DT_U8, bad.dims[0] = 3;
    CHECK_RC(record_encode(&ctx, &bad, j, &rec), 0);
    CHECK_RC(record_parse(rec.data, rec.len, &got, err), 0);
    CHECK_RC(record_meta_json(&ctx, &got, &back), LMR_ECORRUPT);
    unlink(path);
    rmdir(dir);
    buf_free(&rec);
    buf_free(&crec);
    record_ctx_free(&ctx);
}

static void test_messages(void)
{
    TEST(9, "shapes and ids in messages: names, not numbers; long ids cut");
    char b[96];
    uint32_t f[4] = {1, 16, 2048, 1}, v[4] = {1, 0, 2048, 1}, fr[4] = {1, 16, 112, 336};
    CHECK(strcmp(record_shape_str(LMR_KIND_FEATURES, LMR_DT_F16, f, 4, b, sizeof b), "features f16 [1,16,2048]") == 0);
    CHECK(strcmp(record_shape_str(LMR_KIND_FEATURES, LMR_DT_F32, v, 4, b, sizeof b), "features f32 [1,*,2048]") == 0);
    CHECK(strcmp(record_shape_str(LMR_KIND_FRAMES, LMR_DT_U8, fr, 4, b, sizeof b), "frames u8 [1,16,112,336]") == 0);
    CHECK(strcmp(record_shape_str(7, 9, f, 2, b, sizeof b), "kind 7 dtype 9 [1,16]") == 0);
    CHECK(strcmp(record_shape_str(0, 0, f, 0, b, sizeof b), "no records") == 0);
    record_shape_str(LMR_KIND_FEATURES, LMR_DT_F16, f, 4, b, 10); /* cut, terminated */
    CHECK(strlen(b) == 9);
    char show[LMR_SHOWLEN], id[600];
    memset(id, 'a', sizeof id);
    lmr_show(show, id, sizeof id);
    CHECK(strlen(show) == LMR_SHOWLEN - 1 && strcmp(show + LMR_SHOWLEN - 4, "...") == 0);
    CHECK(strcmp(lmr_show(show, "c0", 2), "c0") == 0);
    CHECK(strcmp(lmr_strerror(LMR_EEMPTY), "empty: no records") == 0);
}

/* Independent reference: the value a binary16 bit pattern denotes. */
static double half_value(uint16_t h)
{
    int s = h >> 15, e = (h >> 10) & 31, m = h & 1023;
    double v = e == 0 ? ldexp(m, -24) : e == 31 ? (m ? NAN : INFINITY) : ldexp(1024 + m, e - 25);
    return s ? -v : v;
}

static void test_f16(uint64_t *rng)
{
    TEST(10, "f16 <-> f32: all 65536 halves exactly; f32 -> f16 rounds to nearest even");
    long bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        uint16_t hh = (uint16_t)h;
        float f;
        lmr_f16_to_f32(&hh, &f, 1);
        double ref = half_value(hh);
        if (isnan(ref) ? !isnan(f) : (double)f != ref || !signbit(f) != !signbit(ref)) {
            printf("h %04x f %g ref %g\n", hh, f, ref);
            bad++;
        }
        uint16_t back;
        lmr_f32_to_f16(&f, &back, 1);
        if (!isnan(ref) && back != hh) {
            printf("h %04x f %g back %04x\n", hh, f, back);
            bad++;
        }
    }
    CHECK(bad == 0);
    /* random floats over the whole half range and beyond: nearest half, ties to even */
    long bad_round = 0;
    for (int i = 0; i < 200000; i++) {
        uint32_t bits = (uint32_t)rng_next(rng);
        float f;
        memcpy(&f, &bits, 4);
        if (isnan(f))
            continue;
        uint16_t h;
        lmr_f32_to_f16(&f, &h, 1);
#ifdef __FLT16_MAX__
        _Float16 ref = (_Float16)f; /* the compiler's conversion, round to nearest even */
        uint16_t rb;
        memcpy(&rb, &ref, 2);
        if (rb != h)
            bad_round++;
#else
        double got = half_value(h), d = fabs(got - (double)f);
        for (int delta = -1; delta <= 1; delta += 2) { /* no neighbour is strictly nearer */
            uint16_t nb = (uint16_t)(h + delta);
            if ((nb & 0x7c00) != 0x7c00 && ((nb ^ h) & 0x8000) == 0 && fabs(half_value(nb) - (double)f) < d)
                bad_round++;
        }
#endif
    }
    CHECK(bad_round == 0);
    float ties[3] = {1.0f + 1.0f / 2048, 1.0f + 3.0f / 2048, 65520.0f};
    uint16_t th[3];
    lmr_f32_to_f16(ties, th, 3);
    CHECK(th[0] == 0x3c00); /* halfway, rounds to even (down) */
    CHECK(th[1] == 0x3c02); /* halfway, rounds to even (up) */
    CHECK(th[2] == 0x7c00); /* rounds to infinity */
}

int main(void)
{
    uint64_t rng = 12345;
    test_roundtrip(&rng);
    test_stream(&rng);
    test_corruption(&rng);
    test_errors();
    test_damaged_length(&rng);
    test_huge_claims();
    test_meta_record();
    test_messages();
    test_f16(&rng);
    CHECK_DONE();
}
