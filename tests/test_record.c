/* The clip record: round trips of random records of every kind, dtype and shape (in memory and
 * through a .rec stream); every byte flipped in turn and every truncation give an error code and
 * never wrong payload bytes; bad magic and a wrong version are distinct errors; f16 conversion
 * against an independent reference. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
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

/* Independent reference: the value a binary16 bit pattern denotes. */
static double half_value(uint16_t h)
{
    int s = h >> 15, e = (h >> 10) & 31, m = h & 1023;
    double v = e == 0 ? ldexp(m, -24) : e == 31 ? (m ? NAN : INFINITY) : ldexp(1024 + m, e - 25);
    return s ? -v : v;
}

static void test_f16(uint64_t *rng)
{
    TEST(5, "f16 <-> f32: all 65536 halves exactly; f32 -> f16 rounds to nearest even");
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
    test_f16(&rng);
    CHECK_DONE();
}
