/* Internal to the HDF5 container (shard_hdf5.c: helpers and the reader; shard_hdf5_write.c: the
 * writer). Nothing outside these two files includes it. */
#ifndef LMR_SHARD_HDF5_H
#define LMR_SHARD_HDF5_H

#include <hdf5.h>

#include "shard_internal.h"

#define ROWS_CHUNK_BYTES (1u << 20)
#define CHUNK_CACHE_BYTES (32u << 20)
#define H5Z_FILTER_ZSTD 32015 /* registered zstd filter; needs the plugin to write and to read */

/* Shape of the stored data, shared by writer and reader. */
typedef struct {
    uint8_t kind, dtype, ndim;
    uint32_t dims[4]; /* first record's; dims[1] is the T of the fixed layout */
    int inner_rank;
    hsize_t inner[3];
    uint64_t inner_elems, elem_size;
    int rows_layout;
} H5Shape;

/* What the last failed HDF5 call said, caught as it failed (later calls clear HDF5's error stack). */
typedef struct {
    char desc[200]; /* the innermost description */
    int errnum;     /* errno the file driver reported, 0 if none */
    int set;
} H5Capture;

/** Take the process-wide HDF5 lock (every HDF5 call of lmr holds it) and catch this thread's
 *  HDF5 errors into c, printing nothing. Pairs with h5_unlock. Recursive. */
void h5_lock(H5Capture *c);
void h5_unlock(void);
/** Fail with the cause of the last HDF5 failure: "PATH: WHAT: cause" (PATH may be NULL), the
 *  cause being strerror of the file driver's errno when it gave one ("No space left on device").
 *  Call with the lock held. @return LMR_EHDF5, or -errno when the driver reported one. */
int h5_fail(char *err, const char *path, const char *what);
/** Element type of a dtype (owned: H5Tclose); f16 is IEEE binary16 (h5py: float16). */
hid_t h5_elem_type(int dtype);
/** "/features" or "/frames". */
const char *h5_data_name(int kind);
int h5_link_exists(hid_t loc, const char *name);
/** Root attributes, replacing older ones. @return 0 or -1. */
int h5_write_attr_str(hid_t obj, const char *name, const char *val);
int h5_write_attr_i64(hid_t obj, const char *name, const int64_t *val, hsize_t n);
/** A string attribute as an owned string (free), NULL when absent. */
char *h5_read_attr_str(hid_t obj, const char *name);
/** Write a whole [d0] or [d0, d1] dataset, replacing an older one. @return 0 or -1. */
int h5_write_small(hid_t file, const char *name, hid_t ft, hid_t mt, hsize_t d0, hsize_t d1, const void *buf);
/** Read a whole 1-D or 2-D dataset of at most max_bytes (owned buffer, *n0 = first dimension,
 *  *n1 = second or 1); NULL when absent, larger, or unreadable. */
void *h5_read_small(hid_t file, const char *name, hid_t mt, size_t elem, uint64_t max_bytes, hsize_t *n0, hsize_t *n1);
/** The shape the metadata m describes, checked: kind, dtype, ndim 3..4, no zero dims (T = 0 only
 *  in the rows layout), one clip's size far from overflow. @return 0 or LMR_ECORRUPT (err). */
int h5_shape_from_meta(H5Shape *s, const ShardMeta *m, int rows_layout, const char *path, char *err);
/* How the chunks of a fixed-layout data set (one chunk per clip) may bypass HDF5's filter
 * pipeline: lmr filters them itself (shuffle, then zlib-format deflate with libdeflate) and moves
 * the stored bytes with H5Dwrite_chunk / H5Dread_chunk. */
typedef struct {
    int ok;                /* one chunk per clip, the element type lmr's, a pipeline lmr knows */
    int shuffle, deflate;  /* filters present */
    uint32_t shuffle_bit, deflate_bit; /* their bits in a chunk's filter mask (set: skipped) */
} H5Direct;

/** The plan for data set data holding clips of shape s (fixed layout). Call with the lock held.
 *  Any other layout, type or filter (zstd, fletcher32, several clips per chunk) gives ok = 0. */
void h5_direct_plan(hid_t data, const H5Shape *s, H5Direct *p);
/** HDF5's shuffle filter and its inverse: byte k of every element of elem bytes goes to plane k;
 *  n % elem trailing bytes are copied as they are. src and dst do not overlap. */
void h5_shuffle(const uint8_t *src, uint8_t *dst, size_t n, size_t elem);
void h5_unshuffle(const uint8_t *src, uint8_t *dst, size_t n, size_t elem);

/** 1 when another process holds a lock on path (an HDF5 writer or reader), 0 otherwise. */
int h5_file_busy(const char *path);
/** Shape of the records of r. @return 0 or LMR_EUNSUPPORTED (fewer than 3 dims). */
int h5_shape_set(H5Shape *s, const RecordInfo *r);
/** File selection + memory space of clip i (fixed layout) or rows [first, first + count). */
int h5_select_clip(hid_t data, const H5Shape *s, uint64_t i, uint64_t first, uint64_t count, hid_t *fsp, hid_t *msp);

#endif
