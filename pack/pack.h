/* Packing record streams (.rec files or stdin) into a shard, and the two read-side tools of
 * lmr-pack: --info and --verify. The library reports through callbacks; lmr-pack prints. */
#ifndef LMR_PACK_H
#define LMR_PACK_H

#include <stdint.h>
#include <stdio.h>

#include "manifest.h"
#include "shard.h"

typedef struct {
    uint64_t written;       /* new records put into the shard (committed once the writer closes) */
    uint64_t present;       /* already in the shard with the same bytes (resume) */
    uint64_t failed;        /* clip records not stored: bad checksum, other shape, id stored with other
                             * bytes, label out of range, or a truncated last record */
    uint64_t truncated;     /* of the failed: truncated last records of streams */
    uint64_t meta_records;  /* stream metadata records read (never stored as clips) */
    int stopped_inputs;     /* inputs not read to their end: a corrupt record or a read error */
    int empty_inputs;       /* inputs without a single clip record */
    uint64_t bytes_in;      /* record bytes read so far */
    uint64_t bytes_total;   /* total input bytes when every input is a regular file, else 0 */
    double seconds;
} PackStats;

/* Called about twice a second while packing, and once at the end (final = 1). */
typedef void (*PackProgressFn)(void *user, const PackStats *st, int final);

/* One clip that did not go into the shard: where it was (input, byte offset of its record or -1
 * when none), its id ("" when unknown) and why. */
typedef void (*PackFailFn)(void *user, const char *input, int64_t offset, const char *id, const char *reason);

typedef struct {
    int zstd_level;         /* -1: store records as they come; N >= 0: re-encode payloads at level N */
    int check_payload;      /* decompress + checksum every record before storing it (default 1) */
    const ShardMeta *hint;  /* command-line dataset / split / n_classes, applied after sidecars and
                             * stream metadata records (so it wins); may be NULL */
    LmrWarnFn warn;         /* notes and input errors, "FILE: offset N: reason"; may be NULL */
    void *warn_user;
    PackFailFn fail;        /* each failed clip; may be NULL */
    void *fail_user;
    PackProgressFn progress; /* may be NULL */
    void *progress_user;
} PackOpts;

/** Read a stream's sidecar `F.rec.meta.json` (ShardMeta JSON written by lmr-extract).
 *  @param[out] found  1 when the sidecar exists. @return 0, -errno, LMR_EPARSE. */
int pack_read_sidecar(const char *rec_path, ShardMeta *m, int *found, char *err);

/** Parse a stream metadata record (kind LMR_KIND_META: u8, 1-d, id LMR_META_ID, no labels, payload
 *  = shardmeta_to_json) into m; the payload checksum is checked.
 *  @return 0, LMR_ECORRUPT (not a well-formed metadata record), LMR_ECHECKSUM, LMR_ECOMPRESS,
 *  LMR_EPARSE (JSON), LMR_ENOMEM; err says which. */
int pack_parse_meta_record(RecordCtx *ctx, const RecordInfo *info, LmrBuf *scratch, ShardMeta *m, char *err);

/** Put every clip record of the inputs ("-" = stdin) into w. Metadata comes first from each
 *  input's sidecar and its stream metadata record (read before any clip for regular files; inputs
 *  whose backbone or weights disagree, or a sidecar that disagrees with its own stream, are
 *  refused before anything is written), then o->hint. Records already present are counted, not
 *  rewritten. A clip that cannot be stored (see PackStats.failed) is reported through o->fail and
 *  reading goes on; a corrupt record (or a read error) stops that input: reported through o->warn
 *  with its offset, counted in stopped_inputs, and the next input is read. An input without any
 *  clip record is reported and counted in empty_inputs.
 *  @return 0 when every input was handled so (check the counts), or an lmr code when the run
 *  cannot go on (metadata conflict, a write error, out of memory), with err naming the file, offset
 *  and clip. */
int pack_run(ShardWriter *w, const char *const *inputs, int n_inputs, const PackOpts *o, PackStats *st, char *err);

/** lmr-pack --reduce mean: copy every clip of s into w with each view replaced by its mean over T
 *  (f32, T = 1), summed in float in T order and scaled by 1/T, as lmr-train averages: training on
 *  the copy gives the same features bit for bit. The metadata records "reduced": "mean" and the T
 *  range before. @return 0, or an error naming the clip. */
int pack_reduce(ShardSet *s, ShardWriter *w, PackStats *st, char *err);
/** The same with the means stored as dtype (LMR_DT_F32, or LMR_DT_F16: half the bytes, the means
 *  rounded to f16, so training on it is the same only up to that rounding). */
int pack_reduce_as(ShardSet *s, ShardWriter *w, int dtype, PackStats *st, char *err);

/* --- --verify and --info ---------------------------------------------------------------------- */

#define PACK_VERIFY_KEEP 1000 /* bad records kept with their message; all are counted */

typedef struct {
    uint64_t index;
    int rc;
    char msg[LMR_ERRLEN];
} VerifyBad;

typedef struct {
    uint64_t n_checked, payload_bytes;
    uint64_t n_bad;   /* records that could not be read, failed a check, or whose id is not their key */
    VerifyBad *bad;   /* the first PACK_VERIFY_KEEP of them by index, sorted; free() */
    int n_kept;
    double seconds;
} VerifyStats;

/** Read every record of s with n_threads threads: header, payload checksum, and that the record's
 *  id is the key it is found under (shardset_find). Every bad record is counted, the lowest-indexed
 *  ones kept in st->bad.
 *  @return 0 when all pass, else the code of the lowest-indexed bad record (err names it). */
int pack_verify(ShardSet *s, int n_threads, VerifyStats *st, char *err);

/** Print the metadata of one shard (path) and its class histogram (with the default head/tail/few
 *  groups, and class names when the shard has them) to out, as text or as one JSON object.
 *  @return 0, LMR_ENOMEM, LMR_EIO. */
int pack_info(const ShardSet *s, const char *path, int json, FILE *out);

/** The same as a JSON object (owned; json_decref), for callers that gather several shards. */
struct json_t;
struct json_t *pack_info_json(const ShardSet *s, const char *path);

#endif
