/* safetensors files: an 8-byte little-endian header length, a JSON header mapping tensor names
 * to {dtype, shape, data_offsets} (plus "__metadata__": string -> string), then raw LE tensor
 * bytes. Used for checkpoints (train/) and backbone weights (extract/). */
#ifndef LMR_SAFETENSORS_H
#define LMR_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "lmr_error.h"

#define ST_MAX_DIMS 8

typedef enum { ST_F32 = 1, ST_F16 = 2, ST_BF16 = 3, ST_I64 = 4, ST_I32 = 5, ST_U8 = 6, ST_F64 = 7 } StDtype;

typedef struct {
    char *name;
    StDtype dtype;
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    const void *data; /* borrowed from the file's mapping: valid until st_close */
    size_t nbytes;
} StTensor;

typedef struct {
    void *map;        /* the whole file, mmap'ed read-only */
    size_t map_size;
    StTensor *tensors;
    int n_tensors;
    char **meta_keys, **meta_vals; /* "__metadata__" */
    int n_meta;
    char last_error[LMR_ERRLEN];
} StFile;

/** Map and parse a safetensors file; every offset and shape is checked against the size.
 *  @return 0, -errno, LMR_EPARSE, LMR_ECORRUPT, LMR_ETRUNC (last_error names the tensor). */
int st_open(StFile *f, const char *path);
void st_close(StFile *f);
/** Tensor by name or NULL. */
const StTensor *st_find(const StFile *f, const char *name);
/** Metadata value by key or NULL. */
const char *st_meta(const StFile *f, const char *key);
/** Tensor by name that must have this dtype and shape (ndim entries).
 *  @return 0, LMR_ENOTFOUND, LMR_EMISMATCH; last_error names the tensor and both shapes. */
int st_expect(StFile *f, const char *name, StDtype dtype, int ndim, const int64_t *shape, const StTensor **out);

/* Writing: collect tensors (borrowed data, must stay valid until st_write) and metadata. */
typedef struct {
    const char *name;
    StDtype dtype;
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    const void *data;
} StWriteTensor;

/** Write atomically: path.tmp, fsync, rename. Tensors are written in the order given.
 *  meta_keys/vals may be NULL when n_meta is 0. @return 0, -errno. */
int st_write(const char *path, const StWriteTensor *t, int n, const char *const *meta_keys,
             const char *const *meta_vals, int n_meta, char *err);

#endif
