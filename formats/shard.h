/* Shards (DESIGN section 4): LMDB (default) or HDF5 files holding clip records, and one reader
 * over sets of them. Writers resume by clip id; readers are safe to share between threads
 * (each thread passes its own RecordCtx for decompression). */
#ifndef LMR_SHARD_H
#define LMR_SHARD_H

#include <stdint.h>

#include "lmr_error.h"
#include "record.h"

#define LMR_SHARD_FORMAT_VERSION 1
#define LMR_MAX_CLASSES (1 << 24) /* labels are -1 (unlabelled) or 0 .. LMR_MAX_CLASSES - 1 */

typedef enum { SHARD_LMDB = 1, SHARD_HDF5 = 2 } ShardFormat;

/* The metadata both containers carry (LMDB: "__meta__" JSON; HDF5: root attributes). */
typedef struct {
    int format_version;
    uint8_t kind, dtype;       /* LMR_KIND_*, LMR_DT_* of every record */
    uint32_t dims[4];          /* of every record; dims[1] (T) = 0 when T varies */
    uint8_t ndim;
    uint64_t n_records;
    int n_classes;             /* 0 when unknown */
    int classes_declared;      /* n_classes was given (sidecar, --classes, stream metadata), not
                                * inferred from the labels: labels >= n_classes are refused */
    int64_t *class_counts;     /* [n_classes] clips per class (multi-label: each distinct label of a
                                * clip counts once); owned */
    int multi_label;           /* some record has more than one label */
    char dataset[64], split[32];
    char mode[16];             /* extract mode: "train", "test", "" when unknown */
    int frames, size;          /* extract settings; 0 when not applicable */
    char backbone[64];         /* "none", "pool", "resnet50", "videolt-npy", ... */
    char weights_checksum[24]; /* hex XXH3-64 of the backbone weights, "" when none */
    char lmr_version[16];
    char **class_names;        /* [n_class_names] from --labels, or NULL; owned */
    int n_class_names;
    char reduced[8];           /* "mean": each view is its mean over T (lmr-pack --reduce), "" otherwise */
    uint32_t reduced_t[2];     /* the T range (min, max) of the records before the reduction */
} ShardMeta;

void shardmeta_init(ShardMeta *m);
void shardmeta_free(ShardMeta *m);
/** Deep copy. @return 0 or LMR_ENOMEM. */
int shardmeta_copy(ShardMeta *dst, const ShardMeta *src);
/** Replace the class names with a copy of names[0..n). @return 0 or LMR_ENOMEM. */
int shardmeta_set_class_names(ShardMeta *m, const char *const *names, int n);
/** Serialise to JSON (owned string, free with free()). */
char *shardmeta_to_json(const ShardMeta *m);
/** Parse JSON written by shardmeta_to_json (or a record-stream sidecar, see lmr-pack).
 *  @return 0, LMR_EPARSE (err says which key). */
int shardmeta_from_json(ShardMeta *m, const char *json, char *err);

/* --- writing ----------------------------------------------------------------------------- */

typedef struct ShardWriter ShardWriter;

typedef struct {
    ShardFormat format;
    int deflate_level;   /* HDF5: 0..9, default 4; -1 = zstd filter 32015 */
    uint64_t txn_bytes;  /* LMDB: bytes per write transaction, default 64 MiB */
} ShardWriterOpts;

/** Open (create or resume) a shard. An existing shard's ids are kept and skipped on put. The
 *  writer holds a lock on the file until close: a second writer gets -EBUSY ("another lmr-pack
 *  is writing F"). An existing LMDB file is checked first (truncated or damaged: LMR_ECORRUPT).
 *  @return 0, -errno, LMR_ELMDB, LMR_EHDF5, LMR_ECORRUPT, LMR_EMISMATCH (existing shard of
 *  another kind). */
int shardwriter_open(ShardWriter **w, const char *path, const ShardWriterOpts *opts, char *err);
/** Add one encoded record (bytes as produced by record_encode; checked with record_parse).
 *  @return 0 added, LMR_DONE when the same clip is already present (same checksum: the codec
 *  and zstd level do not matter), LMR_EEXIST when present with other content, LMR_EMISMATCH
 *  when kind/dtype/dims differ from the shard's, LMR_ERANGE for a label < -1 or >= the class
 *  bound (see ShardMeta.classes_declared), LMR_EINVAL for stream metadata, a reserved id or (LMDB)
 *  an id longer than LMDB's key limit, or a write error. Nothing is stored on an error. */
int shardwriter_put(ShardWriter *w, const uint8_t *rec, size_t len);
/** Set metadata fields the records cannot tell (dataset, split, extract settings, n_classes).
 *  Counts, n_records and dims are always computed by the writer. n_classes > 0 declares the
 *  class count: later labels must be below it (the largest declared wins); LMR_ERANGE when the
 *  shard already holds a larger label, LMR_EMISMATCH for another backbone or weights. */
int shardwriter_set_meta(ShardWriter *w, const ShardMeta *hint);
/** Commit, write metadata, close. Safe on NULL. @return 0 or a write error. */
int shardwriter_close(ShardWriter **w);
const char *shardwriter_error(const ShardWriter *w);

/* --- reading sets of shards --------------------------------------------------------------- */

typedef struct ShardSet ShardSet;

/** Open one or more shard files (either format, detected from the file) as one dataset.
 *  All must agree on kind, dtype, dims (T may vary) and backbone/weights. Records are numbered
 *  file by file in the order given (LMDB: key order; HDF5: write order). Refused: an empty set,
 *  a file given twice, a clip id held twice (in two files or within one HDF5 file), labels out
 *  of range, a truncated or damaged file (never a crash: see docs/shards.md).
 *  @note LMDB files are opened read-only without a lock file: do not read a shard while lmr-pack
 *  still writes to it. Every HDF5 call of lmr (readers and writers, any set) holds one
 *  process-wide lock, so sets may be read from several threads whatever the libhdf5 build.
 *  @return 0, -errno, LMR_EEMPTY ("shard is empty"), LMR_EINVAL (duplicates), LMR_ERANGE,
 *  LMR_EMISMATCH, LMR_ECORRUPT, LMR_ELMDB, LMR_EHDF5, LMR_EBADMAGIC; err names the file. */
int shardset_open(ShardSet **s, const char *const *paths, int n_paths, char *err);
void shardset_close(ShardSet **s);

uint64_t shardset_count(const ShardSet *s);
/** Merged metadata (counts summed over files). Borrowed until shardset_close. */
const ShardMeta *shardset_meta(const ShardSet *s);
/** Labels of record i without touching its payload (from an index built at open).
 *  @return number of labels (0 = unlabelled); *labels borrowed until shardset_close. */
int shardset_labels(const ShardSet *s, uint64_t i, const int32_t **labels);
/** Record i, header-checked; for LMDB also that the key is the record's id and that it is a
 *  clip, not stream metadata (LMR_ECORRUPT otherwise: lmr-pack --verify relies on it). For LMDB
 *  the bytes are zero-copy from the map (valid until shardset_close); for HDF5 they are built in
 *  scratch (valid until its next use). Thread-safe with one scratch buffer per thread. Use
 *  record_payload to get the data. */
int shardset_get(ShardSet *s, uint64_t i, LmrBuf *scratch, RecordInfo *info);
/** Index of a clip id, or -1. */
int64_t shardset_find(const ShardSet *s, const char *id);
/** Clip id of record i (its key, not NUL-terminated; borrowed until shardset_close) and, when
 *  file is not NULL, the path of the shard holding it. */
void shardset_id(const ShardSet *s, uint64_t i, const char **id, uint16_t *len, const char **file);
const char *shardset_error(const ShardSet *s);
/** Number of the set's files opened by walking every record: LMDB shards written before shards
 *  carried an index, or changed after it was written (lmr-pack --reindex writes it). The others
 *  open from the index alone, without touching a record (docs/shards.md). */
int shardset_walked(const ShardSet *s);
/** Compare an LMDB shard's stored per-clip index with its records (a full walk; lmr-pack
 *  --verify). state: 0 no index (HDF5 or an older shard), 1 current and in agreement, 2 older
 *  than the file (ignored by readers). @return 0, LMR_ECORRUPT naming the first disagreement, or
 *  an open error. */
int shard_check_index(const char *path, int *state, char *err);
/** 1 when the file starts with the HDF5 signature, 0 otherwise, -errno when unreadable. */
int shard_is_hdf5(const char *path);

#endif
