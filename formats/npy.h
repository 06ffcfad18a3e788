/* NumPy .npy files (format versions 1.0, 2.0, 3.0), the subset lmr reads: 2-D (T, D) arrays of
 * little-endian float32 ('<f4') or float16 ('<f2') in C order, as VideoLT's features ship, and with
 * npy_read_any also 1-D (D) and 3-D (views, T, D) ones. Anything else is refused with a reason that
 * names the file. */
#ifndef LMR_NPY_H
#define LMR_NPY_H

#include <stddef.h>
#include <stdint.h>

#include "lmr_error.h"
#include "record.h"

typedef struct {
    int version;          /* major format version: 1, 2 or 3 */
    int dtype;            /* LMR_DT_F32 or LMR_DT_F16 */
    int64_t rows, cols;   /* shape (T, D); npy_*_any: rows = views * T (1 for a 1-D array) */
    int ndim;             /* 1, 2 or 3 */
    int64_t shape[3];     /* the file's shape, ndim entries */
    size_t data_offset;   /* bytes before the data */
    size_t data_bytes;    /* rows * cols * element size */
    const uint8_t *data;  /* borrowed: into the parsed buffer (npy_parse) or a->buf (npy_read) */
    LmrBuf buf;           /* owned by npy_read, reused from call to call */
    uint64_t file_bytes;  /* size of the last file read */
} NpyArray;

void npy_init(NpyArray *a);
void npy_free(NpyArray *a);

/** Parse the header of .npy bytes in memory and check the data fits exactly.
 *  @param name file name for messages. @param[out] err "NAME: reason" (LMR_ERRLEN; may be NULL).
 *  @return 0, LMR_EBADMAGIC (not .npy), LMR_EVERSION (format version other than 1/2/3),
 *  LMR_EPARSE (malformed header dict), LMR_EUNSUPPORTED (dtype, big-endian, Fortran order,
 *  not 2-D), LMR_ETRUNC (data shorter than the shape), LMR_ECORRUPT (bytes after the data).
 *  @note a->data points into buf. */
int npy_parse(NpyArray *a, const void *buf, size_t len, const char *name, char *err);

/** Read a whole .npy file into a->buf (reused across calls) and parse it.
 *  @return as npy_parse, or -errno. */
int npy_read(NpyArray *a, const char *path, char *err);

/** As npy_parse / npy_read, but 1-D (D,) and 3-D (views, T, D) arrays are accepted too: a->ndim
 *  and a->shape give the shape, a->rows the product of all but the last dimension. */
int npy_parse_any(NpyArray *a, const void *buf, size_t len, const char *name, char *err);
int npy_read_any(NpyArray *a, const char *path, char *err);

#endif
