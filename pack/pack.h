/* Packing record streams (.rec files or stdin) into a shard, and the two read-side tools of
 * lmr-pack: --info and --verify. The library reports through callbacks; lmr-pack prints. */
#ifndef LMR_PACK_H
#define LMR_PACK_H

#include <stdint.h>
#include <stdio.h>

#include "manifest.h"
#include "shard.h"

typedef struct {
    uint64_t written;       /* new records stored */
    uint64_t present;       /* already in the shard with the same bytes (resume) */
    uint64_t skipped;       /* truncated last records of streams, reported and ignored */
    uint64_t bytes_in;      /* record bytes read so far */
    uint64_t bytes_total;   /* total input bytes when every input is a regular file, else 0 */
    double seconds;
} PackStats;

/* Called about twice a second while packing, and once at the end (final = 1). */
typedef void (*PackProgressFn)(void *user, const PackStats *st, int final);

typedef struct {
    int zstd_level;         /* -1: store records as they come; N >= 0: re-encode payloads at level N */
    int check_payload;      /* decompress + checksum every record before storing it (default 1) */
    const ShardMeta *hint;  /* command-line dataset / split / n_classes, applied after sidecars; may be NULL */
    LmrWarnFn warn;         /* "FILE: offset N: reason" for each skipped record; may be NULL */
    void *warn_user;
    PackProgressFn progress; /* may be NULL */
    void *progress_user;
} PackOpts;

/** Read a stream's sidecar `F.rec.meta.json` (ShardMeta JSON written by lmr-extract).
 *  @param[out] found  1 when the sidecar exists. @return 0, -errno, LMR_EPARSE. */
int pack_read_sidecar(const char *rec_path, ShardMeta *m, int *found, char *err);

/** Put every record of the inputs ("-" = stdin) into w, applying each input's sidecar first.
 *  Records already present are counted, not rewritten; a truncated last record is reported
 *  through warn and skipped. Stops at the first corrupt record or write error.
 *  @return 0, or an lmr code with err naming the file, offset and clip. */
int pack_run(ShardWriter *w, const char *const *inputs, int n_inputs, const PackOpts *o, PackStats *st, char *err);

/* --- --verify and --info ---------------------------------------------------------------------- */

typedef struct {
    uint64_t n_checked, payload_bytes;
    int64_t first_bad; /* global record index, -1 when every record passed */
    double seconds;
} VerifyStats;

/** Read every record of s, check its header and payload checksum, with n_threads threads.
 *  @return 0 when all pass, else the code of the first bad record (lowest index; err names it). */
int pack_verify(ShardSet *s, int n_threads, VerifyStats *st, char *err);

/** Print the merged metadata of s and its class histogram (with the default head/tail/few
 *  groups) to out, as text or as one JSON object. @return 0 or LMR_ENOMEM. */
int pack_info(const ShardSet *s, const char *const *paths, int n_paths, int json, FILE *out);

#endif
