/* Clip record encode/parse/verify and record stream reading. Nothing in a record is trusted
 * until the header fields agree with each other and with the bytes available; the payload
 * is only handed out after its XXH3-64 checksum matches. */
#include "record.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#define XXH_STATIC_LINKING_ONLY /* XXH3_state_t on the stack */
#include <xxhash.h>
#include <zstd.h>

void buf_init(LmrBuf *b) { memset(b, 0, sizeof *b); }

void buf_free(LmrBuf *b)
{
    if (!b)
        return;
    free(b->data);
    memset(b, 0, sizeof *b);
}

int buf_reserve(LmrBuf *b, size_t cap)
{
    if (cap <= b->cap)
        return 0;
    if (cap > SIZE_MAX / 2) /* doubling below would wrap */
        return LMR_ENOMEM;
    size_t n = b->cap ? b->cap : 4096;
    while (n < cap)
        n *= 2;
    uint8_t *p = realloc(b->data, n);
    if (!p)
        return LMR_ENOMEM;
    b->data = p;
    b->cap = n;
    return 0;
}

int record_ctx_init(RecordCtx *ctx, int level)
{
    memset(ctx, 0, sizeof *ctx);
    ctx->level = level;
    ctx->cctx = ZSTD_createCCtx();
    ctx->dctx = ZSTD_createDCtx();
    if (!ctx->cctx || !ctx->dctx) {
        record_ctx_free(ctx);
        return LMR_ENOMEM;
    }
    return 0;
}

void record_ctx_free(RecordCtx *ctx)
{
    if (!ctx)
        return;
    ZSTD_freeCCtx(ctx->cctx);
    ZSTD_freeDCtx(ctx->dctx);
    ctx->cctx = ctx->dctx = NULL;
}

size_t record_dtype_size(int dtype)
{
    switch (dtype) {
    case LMR_DT_U8: return 1;
    case LMR_DT_F16: return 2;
    case LMR_DT_F32: return 4;
    default: return 0;
    }
}

/* Little-endian field access: the format is LE whatever the host. */
static void put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
static void put32(uint8_t *p, uint32_t v) { for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i)); }
static void put64(uint8_t *p, uint64_t v) { for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i)); }
static uint16_t get16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint32_t get32(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24; }
static uint64_t get64(const uint8_t *p) { return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32; }

/* dims product times element size, or 0 on overflow / bad dtype. */
static uint64_t raw_size_of(int dtype, int ndim, const uint32_t *dims)
{
    uint64_t n = record_dtype_size(dtype);
    for (int i = 0; i < ndim; i++) {
        if (dims[i] && n > UINT64_MAX / dims[i])
            return 0;
        n *= dims[i];
    }
    return n;
}

/* The checksum covers everything a reader relies on except the storage details (magic, codec,
 * stored size): header bytes 8..39 with the codec byte zeroed, the id, the labels and the raw
 * payload. So a flipped id or label byte is caught like a flipped payload byte, and a record
 * re-stored raw (HDF5) keeps its checksum. */
static uint64_t record_checksum(const uint8_t *head, size_t id_labels_len, const void *payload, uint64_t raw)
{
    uint8_t fields[32];
    memcpy(fields, head + 8, sizeof fields);
    fields[12 - 8] = 0;
    XXH3_state_t st;
    XXH3_64bits_reset(&st);
    XXH3_64bits_update(&st, fields, sizeof fields);
    XXH3_64bits_update(&st, head + LMR_RECORD_HEADER, id_labels_len);
    XXH3_64bits_update(&st, payload, raw);
    return XXH3_64bits_digest(&st);
}

int record_encode(RecordCtx *ctx, const RecordInfo *info, const void *payload, LmrBuf *out)
{
    if (info->kind < LMR_KIND_FRAMES || info->kind > LMR_KIND_META || info->ndim < 1 ||
        info->ndim > 4 || !record_dtype_size(info->dtype) || info->n_labels > LMR_MAX_LABELS ||
        (info->kind == LMR_KIND_META && (info->dtype != LMR_DT_U8 || info->ndim != 1 || info->n_labels)))
        return LMR_FAIL(ctx, LMR_EINVAL, "record: bad kind/dtype/ndim/labels");
    if (info->id_len == 0 || memchr(info->id, 0, info->id_len))
        return LMR_FAIL(ctx, LMR_EINVAL, "record: empty id or id with NUL");
    uint32_t dims[4] = {1, 1, 1, 1};
    memcpy(dims, info->dims, sizeof(uint32_t) * info->ndim);
    uint64_t raw = raw_size_of(info->dtype, info->ndim, dims);
    if (raw == 0)
        return LMR_FAIL(ctx, LMR_EINVAL, "record %.*s: zero or overflowing dims", (int)info->id_len, info->id);
    size_t head = LMR_RECORD_HEADER + info->id_len + 4 * (size_t)info->n_labels;
    int zstd = ctx->level > 0;
    size_t bound = zstd ? ZSTD_compressBound(raw) : raw;
    if (buf_reserve(out, head + bound))
        return LMR_ENOMEM;
    uint8_t *p = out->data;
    uint64_t stored = raw;
    if (zstd) {
        size_t r = ZSTD_compressCCtx(ctx->cctx, p + head, bound, payload, raw, ctx->level);
        if (ZSTD_isError(r))
            return LMR_FAIL(ctx, LMR_ECOMPRESS, "record %.*s: zstd: %s", (int)info->id_len, info->id, ZSTD_getErrorName(r));
        stored = r;
        if (stored >= raw) { /* incompressible: keep it raw */
            zstd = 0;
            stored = raw;
        }
    }
    if (!zstd)
        memcpy(p + head, payload, raw);
    memcpy(p, LMR_RECORD_MAGIC, 8);
    put16(p + 8, LMR_RECORD_VERSION);
    p[10] = info->kind;
    p[11] = info->dtype;
    p[12] = zstd ? LMR_CODEC_ZSTD : LMR_CODEC_RAW;
    p[13] = info->ndim;
    put16(p + 14, info->n_labels);
    for (int i = 0; i < 4; i++)
        put32(p + 16 + 4 * i, i < info->ndim ? dims[i] : 0);
    put64(p + 32, raw);
    put64(p + 40, stored);
    put16(p + 56, info->id_len);
    memcpy(p + LMR_RECORD_HEADER, info->id, info->id_len);
    for (int i = 0; i < info->n_labels; i++)
        put32(p + LMR_RECORD_HEADER + info->id_len + 4 * i, (uint32_t)info->labels[i]);
    put64(p + 48, record_checksum(p, head - LMR_RECORD_HEADER, payload, raw));
    out->len = head + stored;
    return 0;
}

int record_parse(const uint8_t *b, size_t len, RecordInfo *o, char *err)
{
    memset(o, 0, sizeof *o);
    if (len < 8)
        return lmr_fail(err, LMR_ETRUNC, "record: %zu bytes, header needs %d", len, LMR_RECORD_HEADER);
    if (memcmp(b, LMR_RECORD_MAGIC, 8) != 0)
        return lmr_fail(err, LMR_EBADMAGIC, "record: magic is not %s", LMR_RECORD_MAGIC);
    if (len < LMR_RECORD_HEADER)
        return lmr_fail(err, LMR_ETRUNC, "record: %zu bytes, header needs %d", len, LMR_RECORD_HEADER);
    uint16_t ver = get16(b + 8);
    if (ver != LMR_RECORD_VERSION)
        return lmr_fail(err, LMR_EVERSION, "record: version %u, this reader knows %d", ver, LMR_RECORD_VERSION);
    o->kind = b[10];
    o->dtype = b[11];
    o->codec = b[12];
    o->ndim = b[13];
    o->n_labels = get16(b + 14);
    if (o->kind < LMR_KIND_FRAMES || o->kind > LMR_KIND_META)
        return lmr_fail(err, LMR_ECORRUPT, "record: kind %u at offset 10 is not 1, 2 or 3", o->kind);
    if (o->kind == LMR_KIND_META && (o->dtype != LMR_DT_U8 || o->ndim != 1 || o->n_labels))
        return lmr_fail(err, LMR_ECORRUPT, "record: a metadata record (kind 3) must be u8, 1-D, unlabelled");
    if (!record_dtype_size(o->dtype))
        return lmr_fail(err, LMR_ECORRUPT, "record: dtype %u at offset 11 is not 1..3", o->dtype);
    if (o->codec > LMR_CODEC_ZSTD)
        return lmr_fail(err, LMR_ECORRUPT, "record: codec %u at offset 12 is not 0 or 1", o->codec);
    if (o->ndim < 1 || o->ndim > 4)
        return lmr_fail(err, LMR_ECORRUPT, "record: ndim %u at offset 13 is not 1..4", o->ndim);
    if (o->n_labels > LMR_MAX_LABELS)
        return lmr_fail(err, LMR_ECORRUPT, "record: %u labels at offset 14, at most %d", o->n_labels, LMR_MAX_LABELS);
    uint32_t dims[4] = {1, 1, 1, 1};
    for (int i = 0; i < 4; i++) {
        o->dims[i] = get32(b + 16 + 4 * i);
        if (i < o->ndim)
            dims[i] = o->dims[i];
        else if (o->dims[i] != 0)
            return lmr_fail(err, LMR_ECORRUPT, "record: dims[%d] = %u beyond ndim %u", i, o->dims[i], o->ndim);
    }
    o->raw_size = get64(b + 32);
    o->stored_size = get64(b + 40);
    o->checksum = get64(b + 48);
    o->id_len = get16(b + 56);
    uint64_t want = raw_size_of(o->dtype, o->ndim, dims);
    if (want == 0 || want != o->raw_size)
        return lmr_fail(err, LMR_ECORRUPT, "record: raw size %llu at offset 32, dims say %llu",
                        (unsigned long long)o->raw_size, (unsigned long long)want);
    if (o->codec == LMR_CODEC_RAW && o->stored_size != o->raw_size)
        return lmr_fail(err, LMR_ECORRUPT, "record: raw payload stored as %llu bytes, not %llu",
                        (unsigned long long)o->stored_size, (unsigned long long)o->raw_size);
    size_t bound = ZSTD_compressBound(o->raw_size);
    if (ZSTD_isError(bound) || o->stored_size == 0 || o->stored_size > bound)
        return lmr_fail(err, LMR_ECORRUPT, "record: stored size %llu at offset 40 impossible for raw %llu",
                        (unsigned long long)o->stored_size, (unsigned long long)o->raw_size);
    if (o->id_len == 0)
        return lmr_fail(err, LMR_ECORRUPT, "record: empty id at offset 56");
    uint64_t head = LMR_RECORD_HEADER + (uint64_t)o->id_len + 4ull * o->n_labels;
    o->total_size = head + o->stored_size;
    if (len < head)
        return lmr_fail(err, LMR_ETRUNC, "record: %zu bytes, id and labels need %llu", len, (unsigned long long)head);
    o->id = (const char *)b + LMR_RECORD_HEADER;
    if (memchr(o->id, 0, o->id_len))
        return lmr_fail(err, LMR_ECORRUPT, "record: id holds a NUL byte");
    for (int i = 0; i < o->n_labels; i++)
        o->labels[i] = (int32_t)get32(b + LMR_RECORD_HEADER + o->id_len + 4 * i);
    if (len < o->total_size)
        return lmr_fail(err, LMR_ETRUNC, "record %.*s: %zu bytes, record needs %llu", (int)o->id_len, o->id,
                        len, (unsigned long long)o->total_size);
    o->stored = b + head;
    return 0;
}

int record_payload(RecordCtx *ctx, const RecordInfo *o, void *dst, size_t cap)
{
    if (cap < o->raw_size)
        return LMR_FAIL(ctx, LMR_EINVAL, "record %.*s: buffer of %zu bytes, payload is %llu", (int)o->id_len,
                        o->id, cap, (unsigned long long)o->raw_size);
    if (o->codec == LMR_CODEC_ZSTD) {
        unsigned long long fs = ZSTD_getFrameContentSize(o->stored, o->stored_size);
        if (fs != o->raw_size)
            return LMR_FAIL(ctx, LMR_ECORRUPT, "record %.*s: zstd frame declares %llu bytes, header %llu",
                            (int)o->id_len, o->id, fs, (unsigned long long)o->raw_size);
        size_t r = ZSTD_decompressDCtx(ctx->dctx, dst, o->raw_size, o->stored, o->stored_size);
        if (ZSTD_isError(r) || r != o->raw_size)
            return LMR_FAIL(ctx, LMR_ECOMPRESS, "record %.*s: zstd: %s", (int)o->id_len, o->id,
                            ZSTD_isError(r) ? ZSTD_getErrorName(r) : "short payload");
    } else {
        memcpy(dst, o->stored, o->raw_size);
    }
    uint64_t h = record_checksum((const uint8_t *)o->id - LMR_RECORD_HEADER, o->stored - (const uint8_t *)o->id,
                                 dst, o->raw_size);
    if (h != o->checksum)
        return LMR_FAIL(ctx, LMR_ECHECKSUM, "record %.*s: payload checksum %016llx, header says %016llx",
                        (int)o->id_len, o->id, (unsigned long long)h, (unsigned long long)o->checksum);
    return 0;
}

int record_verify(RecordCtx *ctx, const RecordInfo *o, LmrBuf *scratch)
{
    if (o->codec == LMR_CODEC_RAW) { /* no copy needed */
        if (record_checksum((const uint8_t *)o->id - LMR_RECORD_HEADER, o->stored - (const uint8_t *)o->id,
                            o->stored, o->raw_size) != o->checksum)
            return LMR_FAIL(ctx, LMR_ECHECKSUM, "record %.*s: payload checksum mismatch", (int)o->id_len, o->id);
        return 0;
    }
    if (buf_reserve(scratch, o->raw_size))
        return LMR_ENOMEM;
    return record_payload(ctx, o, scratch->data, scratch->cap);
}

/* --- stream files ------------------------------------------------------------------------ */

int recreader_open(RecReader *r, const char *path)
{
    memset(r, 0, sizeof *r);
    snprintf(r->path, sizeof r->path, "%s", strcmp(path, "-") ? path : "<stdin>");
    if (strcmp(path, "-") == 0) {
        r->f = stdin;
    } else {
        r->f = fopen(path, "rb");
        if (!r->f)
            return LMR_FAIL(r, -errno, "%s: %s", path, strerror(errno));
        r->owns_file = 1;
    }
    buf_init(&r->buf);
    return 0;
}

/* Read exactly n bytes into r->buf at off; returns bytes read. */
static size_t read_at(RecReader *r, size_t off, size_t n)
{
    return fread(r->buf.data + off, 1, n, r->f);
}

int recreader_next(RecReader *r, RecordInfo *info)
{
    if (buf_reserve(&r->buf, LMR_RECORD_HEADER))
        return LMR_ENOMEM;
    size_t got = read_at(r, 0, LMR_RECORD_HEADER);
    if (ferror(r->f))
        return LMR_FAIL(r, LMR_EIO, "%s: offset %llu: read error", r->path, (unsigned long long)r->offset);
    if (got == 0 && feof(r->f))
        return LMR_DONE;
    if (got < LMR_RECORD_HEADER)
        return LMR_FAIL(r, LMR_ETRUNC, "%s: offset %llu: truncated record header (%zu of %d bytes)", r->path,
                        (unsigned long long)r->offset, got, LMR_RECORD_HEADER);
    char err[LMR_ERRLEN];
    RecordInfo h;
    int rc = record_parse(r->buf.data, got, &h, err);
    if (rc != LMR_ETRUNC) /* the header alone is enough to spot every other fault */
        return LMR_FAIL(r, rc ? rc : LMR_ECORRUPT, "%s: offset %llu: %s", r->path, (unsigned long long)r->offset,
                        rc ? err : "record parsed without its body");
    /* ETRUNC here means every header field passed its checks: total_size is trustworthy */
    uint64_t total = h.total_size;
    if (buf_reserve(&r->buf, total))
        return LMR_FAIL(r, LMR_ENOMEM, "%s: offset %llu: record of %llu bytes", r->path,
                        (unsigned long long)r->offset, (unsigned long long)total);
    got += read_at(r, got, total - got);
    if (ferror(r->f))
        return LMR_FAIL(r, LMR_EIO, "%s: offset %llu: read error", r->path, (unsigned long long)r->offset);
    if (got < total)
        return LMR_FAIL(r, LMR_ETRUNC, "%s: offset %llu: truncated record (%zu of %llu bytes), ignored", r->path,
                        (unsigned long long)r->offset, got, (unsigned long long)total);
    rc = record_parse(r->buf.data, got, info, err);
    if (rc)
        return LMR_FAIL(r, rc, "%s: offset %llu: %s", r->path, (unsigned long long)r->offset, err);
    r->buf.len = total;
    r->offset += total;
    return 0;
}

void recreader_close(RecReader *r)
{
    if (!r)
        return;
    if (r->owns_file && r->f)
        fclose(r->f);
    r->f = NULL;
    buf_free(&r->buf);
}

/* --- half precision (IEEE binary16, round to nearest even) --------------------------------- */

static float half_to_float(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
    if (exp == 0) {
        if (man == 0) {
            bits = sign;
        } else { /* subnormal: normalise */
            exp = 127 - 15 + 1;
            while (!(man & 0x400)) {
                man <<= 1;
                exp--;
            }
            bits = sign | exp << 23 | (man & 0x3ff) << 13;
        }
    } else if (exp == 31) {
        bits = sign | 0x7f800000u | man << 13;
    } else {
        bits = sign | (exp + 112) << 23 | man << 13;
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

static uint16_t float_to_half(float f)
{
    uint32_t x;
    memcpy(&x, &f, 4);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000);
    uint32_t exp = (x >> 23) & 0xff, man = x & 0x7fffff;
    if (exp == 0xff)
        return sign | 0x7c00 | (man ? 0x200 : 0);
    int e = (int)exp - 127 + 15;
    if (e >= 31)
        return sign | 0x7c00;
    if (e <= 0) {
        if (e < -10)
            return sign;
        man |= 0x800000;
        int shift = 14 - e;
        uint32_t h = man >> shift, rem = man & ((1u << shift) - 1), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (h & 1)))
            h++;
        return sign | (uint16_t)h;
    }
    uint32_t h = (uint32_t)e << 10 | man >> 13, rem = man & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (h & 1)))
        h++; /* may carry into the exponent, which is the right answer */
    return sign | (uint16_t)h;
}

void lmr_f16_to_f32(const uint16_t *in, float *out, size_t n)
{
    for (size_t i = 0; i < n; i++)
        out[i] = half_to_float(in[i]);
}

void lmr_f32_to_f16(const float *in, uint16_t *out, size_t n)
{
    for (size_t i = 0; i < n; i++)
        out[i] = float_to_half(in[i]);
}
