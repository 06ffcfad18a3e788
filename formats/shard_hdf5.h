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

/** Record the innermost HDF5 message in err ("PATH: WHAT: cause"); @return LMR_EHDF5. */
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
/** Read a whole 1-D or 2-D dataset (owned buffer, *n0 = first dimension); NULL on failure. */
void *h5_read_small(hid_t file, const char *name, hid_t mt, size_t elem, hsize_t *n0);
/** Shape of the records of r. @return 0 or LMR_EUNSUPPORTED (fewer than 3 dims). */
int h5_shape_set(H5Shape *s, const RecordInfo *r);
/** File selection + memory space of clip i (fixed layout) or rows [first, first + count). */
int h5_select_clip(hid_t data, const H5Shape *s, uint64_t i, uint64_t first, uint64_t count, hid_t *fsp, hid_t *msp);

#endif
