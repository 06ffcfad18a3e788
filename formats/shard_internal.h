/* Shared between shard.c and the two containers (shard_lmdb.c, shard_hdf5.c); never included
 * outside formats/. Each container exposes a writer and a reader; shard.c adds the metadata
 * bookkeeping, the checks on what may be mixed, and the set-of-files reader. */
#ifndef LMR_SHARD_INTERNAL_H
#define LMR_SHARD_INTERNAL_H

#include <stdint.h>

#include "shard.h"

#define LMR_META_KEY "__meta__"
#define LMR_INDEX_KEY "__index__" /* per-clip index of an LMDB shard (shard_lmdb.c) */

/* --- metadata bookkeeping (shard.c) ------------------------------------------------------ */

/** Labels of r are -1 or in 0 .. bound - 1, bound = n_classes when declared, else
 *  LMR_MAX_CLASSES. @return 0 or LMR_ERANGE (err names the clip and the label). */
int shardmeta_check_labels(const ShardMeta *m, const RecordInfo *r, char *err);
/** Check that a record may join a shard described by m: a clip (not stream metadata), labels in
 *  range, and kind, dtype, ndim, dims except T as the shard's.
 *  @return 0, LMR_EINVAL, LMR_ERANGE or LMR_EMISMATCH (err names the clip and the field). */
int shardmeta_check(const ShardMeta *m, const RecordInfo *r, char *err);
/** Fold one record into m: shape on the first record, T = 0 once it varies, n_records,
 *  class counts (each distinct label once, growing n_classes to cover it), multi_label (more
 *  than one distinct label). @return 0, LMR_ERANGE (a label out of range), LMR_ENOMEM. */
int shardmeta_account(ShardMeta *m, const RecordInfo *r, char *err);
/** Copy the fields records cannot tell (dataset, split, frames, size, backbone, weights,
 *  n_classes when larger) from src into dst. */
void shardmeta_merge_hint(ShardMeta *dst, const ShardMeta *src);
/** Grow class_counts to n entries (new ones zero; never shrinks). @return 0 or LMR_ENOMEM. */
int shardmeta_grow_classes(ShardMeta *m, int n);

/* --- per-file index both readers fill at open ---------------------------------------------- */

typedef struct {
    uint64_t n;
    uint64_t *label_off; /* [n + 1]: labels of record i are labels[label_off[i] .. label_off[i+1]) */
    int32_t *labels;
    uint64_t n_labels_total, labels_cap;
    int borrowed;        /* label_off and labels point into a reader's map: not freed */
} LabelIndex;

int labelindex_push(LabelIndex *x, const int32_t *labels, int n);
void labelindex_free(LabelIndex *x);

/* --- LMDB (shard_lmdb.c) ------------------------------------------------------------------ */

typedef struct LmdbWriter LmdbWriter;
typedef struct LmdbReader LmdbReader;

/** Open or resume; every existing record is folded into meta (and its __meta__ hint merged). */
int lmdbw_open(LmdbWriter **w, const char *path, uint64_t txn_bytes, ShardMeta *meta, char *err);
/** @return 0 added, LMR_DONE same bytes present, LMR_EEXIST other bytes, or an error. */
int lmdbw_put(LmdbWriter *w, const RecordInfo *info, const uint8_t *rec, size_t len, char *err);
/** Commit the open transaction with meta written as JSON under __meta__. */
int lmdbw_commit(LmdbWriter *w, const ShardMeta *meta, char *err);
void lmdbw_close(LmdbWriter **w);

int lmdbr_open(LmdbReader **r, const char *path, ShardMeta *meta, LabelIndex *labels, char *err);
/** Zero-copy bytes of record i (valid until lmdbr_close). */
void lmdbr_get(const LmdbReader *r, uint64_t i, const uint8_t **rec, size_t *len);
/** Key of record i (zero-copy); keys come in LMDB's order: bytes, then the shorter first. */
void lmdbr_key(const LmdbReader *r, uint64_t i, const char **key, uint16_t *len);
void lmdbr_close(LmdbReader **r);
/** 1 when r was opened from the shard's stored index, 0 when it walked every record. */
int lmdbr_indexed(const LmdbReader *r);
/** Compare an LMDB shard's stored index with its records (a walk of every key, in a child first).
 *  @return 0 (state: 0 no index, 1 index current and agrees, 2 index older than the file),
 *  LMR_ECORRUPT naming the first disagreement, or an open error. */
int lmdb_check_index(const char *path, int *state, char *err);

/* --- HDF5 (shard_hdf5.c) ------------------------------------------------------------------ */

typedef struct H5Writer H5Writer;
typedef struct H5Reader H5Reader;

int h5w_open(H5Writer **w, const char *path, int deflate_level, ShardMeta *meta, char *err);
int h5w_put(H5Writer *w, const RecordInfo *info, const uint8_t *rec, size_t len, char *err);
int h5w_close(H5Writer **w, const ShardMeta *meta, char *err);

/** Every HDF5 call of the readers and the writer holds one process-wide lock (shard_hdf5.c). */
int h5r_open(H5Reader **r, const char *path, ShardMeta *meta, LabelIndex *labels, char *err);
/** Rebuild record i (raw payload) into scratch and check it against the stored checksum. err does
 *  not repeat the path. */
int h5r_get(H5Reader *r, uint64_t i, const LabelIndex *labels, LmrBuf *scratch, char *err);
/** Id of record i (borrowed until h5r_close). */
void h5r_id(const H5Reader *r, uint64_t i, const char **id, uint16_t *len);
void h5r_close(H5Reader **r);

/** 1 when the file starts with the HDF5 signature, 0 otherwise, -errno when unreadable. */
int shard_is_hdf5(const char *path);

#endif
