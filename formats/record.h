/* The clip record (DESIGN section 3): a self-describing header + an optionally zstd-compressed
 * payload, checked with XXH3-64. Records flow from lmr-extract to lmr-pack as a stream file
 * (.rec: records back to back) and are the values of LMDB shards. */
#ifndef LMR_RECORD_H
#define LMR_RECORD_H

#include <stdint.h>
#include <stdio.h>

#include "lmr_error.h"

#define LMR_RECORD_MAGIC "LMRREC01"
#define LMR_RECORD_VERSION 2 /* 2: the checksum also covers header fields, id and labels */
#define LMR_RECORD_HEADER 58 /* fixed part, before the id */
#define LMR_MAX_LABELS 64    /* more labels than this are refused (VideoLT has <= 7) */

enum { LMR_KIND_FRAMES = 1, LMR_KIND_FEATURES = 2, LMR_KIND_META = 3 };
/* A record stream (.rec, or the `--out - | lmr-pack -` pipe) may open with one metadata record:
 * kind LMR_KIND_META, dtype u8, ndim 1, dims[0] = n (dims[1..3] are 0 on the wire, as for every
 * record beyond its ndim), id LMR_META_ID, no labels, payload = n bytes of the shard metadata
 * JSON (shardmeta_to_json), so provenance travels with the data. record_meta_encode writes it,
 * record_meta_json reads it back. record_parse accepts this kind only in that form; shard
 * writers refuse it and shard readers report it as a damaged clip: it is never a clip. */
#define LMR_META_ID "__meta__"
#define LMR_META_MAX (64u << 20) /* largest metadata payload accepted */
enum { LMR_DT_U8 = 1, LMR_DT_F16 = 2, LMR_DT_F32 = 3 };
enum { LMR_CODEC_RAW = 0, LMR_CODEC_ZSTD = 1 };

/* A growable byte buffer that owns its memory. */
typedef struct {
    uint8_t *data;
    size_t len, cap;
} LmrBuf;

void buf_init(LmrBuf *b);
void buf_free(LmrBuf *b);
/** Make room for at least cap bytes. @return 0 or LMR_ENOMEM. */
int buf_reserve(LmrBuf *b, size_t cap);

/* What a record says about itself. Pointers are borrowed from the parsed bytes. */
typedef struct {
    uint8_t kind, dtype, codec, ndim;
    uint32_t dims[4];            /* frames [views, T, H, W*3]; features [views, T, D, 1] */
    uint16_t n_labels;           /* 0 = unlabelled */
    int32_t labels[LMR_MAX_LABELS];
    uint64_t raw_size, stored_size, checksum;
    const char *id;              /* not NUL-terminated: id_len bytes */
    uint16_t id_len;
    const uint8_t *stored;       /* stored_size bytes of (maybe compressed) payload */
    uint64_t total_size;         /* header + id + labels + stored payload */
} RecordInfo;

/* Per-thread codec state, reused across records. */
typedef struct {
    void *cctx, *dctx; /* ZSTD_CCtx, ZSTD_DCtx */
    int level;         /* zstd level, default 3; 0 = store raw */
    char last_error[LMR_ERRLEN];
} RecordCtx;

int record_ctx_init(RecordCtx *ctx, int level);
void record_ctx_free(RecordCtx *ctx);

/** Bytes of one element of a dtype, 0 for an unknown dtype. */
size_t record_dtype_size(int dtype);
/** "frames", "features", "metadata"; "kind N" style names are written by record_shape_str. */
const char *record_kind_name(int kind);
/** "u8", "f16", "f32", or "" for an unknown dtype. */
const char *record_dtype_name(int dtype);
/** A shape as messages show it: "features f16 [1,16,2048]" (features drop their trailing 1;
 *  frames show [views,T,H,W*3]; T = 0, "varies", shows as *; unknown codes as "kind 7").
 *  Never leaks a bare number for a kind or dtype. @return buf. */
const char *record_shape_str(int kind, int dtype, const uint32_t *dims, int ndim, char *buf, size_t cap);

/** Encode a record into out (replacing its content). info supplies kind, dtype, ndim, dims,
 *  labels, id, id_len; raw_size is computed from dims. payload holds the raw bytes.
 *  @return 0, LMR_EINVAL (bad fields), LMR_ECOMPRESS, LMR_ENOMEM. */
int record_encode(RecordCtx *ctx, const RecordInfo *info, const void *payload, LmrBuf *out);

/** Encode the stream metadata record (LMR_KIND_META, id LMR_META_ID) holding json (NUL-terminated,
 *  at most LMR_META_MAX bytes) into out. @return 0, LMR_EINVAL, LMR_ECOMPRESS, LMR_ENOMEM. */
int record_meta_encode(RecordCtx *ctx, const char *json, LmrBuf *out);
/** The JSON of a metadata record (info->kind == LMR_KIND_META), checksum verified, as an owned
 *  NUL-terminated string in *json (free()). @return 0, LMR_EINVAL (not a metadata record),
 *  LMR_ECORRUPT (a NUL inside), LMR_ECHECKSUM, LMR_ECOMPRESS, LMR_ENOMEM; ctx->last_error says. */
int record_meta_json(RecordCtx *ctx, const RecordInfo *info, char **json);

/** Parse and check the header of the record at buf (len bytes available). Checks magic,
 *  version, kind/dtype/codec/ndim ranges (a metadata record only in its one form), dims vs raw
 *  size, that a zstd payload's frame declares the raw size and could hold it, and that the
 *  whole record fits. Does not decompress; the checksum is checked by record_payload.
 *  @return 0, LMR_EBADMAGIC, LMR_EVERSION, LMR_ECORRUPT, LMR_ETRUNC; err names the field. */
int record_parse(const uint8_t *buf, size_t len, RecordInfo *out, char *err);

/** Decompress (or copy) the payload into dst (cap >= raw_size) and verify the checksum.
 *  @return 0, LMR_ECOMPRESS, LMR_ECHECKSUM, LMR_ECORRUPT, LMR_EINVAL (cap too small). */
int record_payload(RecordCtx *ctx, const RecordInfo *info, void *dst, size_t cap);

/** Verify a record's checksum without keeping the payload (uses ctx scratch). */
int record_verify(RecordCtx *ctx, const RecordInfo *info, LmrBuf *scratch);

/* --- record stream files (.rec) ------------------------------------------------------ */

typedef struct {
    FILE *f;
    int owns_file;
    uint64_t offset; /* file offset of the next record */
    LmrBuf buf;      /* holds the current record's bytes */
    char path[256];
    char last_error[LMR_ERRLEN];
} RecReader;

/** Open a stream for reading; "-" is stdin. @return 0 or -errno. */
int recreader_open(RecReader *r, const char *path);
/** Read the next record (any kind: the caller checks info->kind, see LMR_KIND_META); info
 *  borrows r->buf until the next call. Never seeks, so a pipe works like a file; memory grows
 *  with the bytes that really arrive, not with what a header claims.
 *  @return 0; LMR_DONE at a clean end; LMR_ETRUNC only when the stream really ends inside the
 *  record (a stream cut short: its offset and the bytes dropped in last_error); LMR_ECORRUPT
 *  when a length field is damaged (another record starts inside the span it claims, or the
 *  zstd frame is not as long as the header says), and LMR_EBADMAGIC/LMR_EVERSION/LMR_ECORRUPT
 *  for other damage: last_error names the offset; reading stops. */
int recreader_next(RecReader *r, RecordInfo *info);
void recreader_close(RecReader *r);

/* --- half precision ------------------------------------------------------------------ */
void lmr_f16_to_f32(const uint16_t *in, float *out, size_t n);
void lmr_f32_to_f16(const float *in, uint16_t *out, size_t n);

#endif
