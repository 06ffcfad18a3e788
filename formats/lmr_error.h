/* lmr error codes: 0 = ok, LMR_DONE = "no more data" (not an error), negative = failure.
 * System errors travel as -errno; lmr's own codes take the block from -1000 downward.
 * Values are pinned: once a code ships, it never changes. */
#ifndef LMR_ERROR_H
#define LMR_ERROR_H

#include <stddef.h>

#define LMR_VERSION "0.1.0"
#define LMR_ERRLEN 512 /* size of every last_error buffer */

#define LMR_OK 0
#define LMR_DONE 1 /* end of stream / no more items: not an error */

enum {
    LMR_EBADMAGIC = -1000,    /* magic bytes do not match: not an lmr file */
    LMR_EVERSION = -1001,     /* known format, unsupported version */
    LMR_ETRUNC = -1002,       /* input ends before its declared size */
    LMR_ECHECKSUM = -1003,    /* checksum of the payload disagrees */
    LMR_ECORRUPT = -1004,     /* header fields disagree with each other or with the size */
    LMR_ECOMPRESS = -1005,    /* zstd (de)compression failed */
    LMR_EINVAL = -1006,       /* invalid argument */
    LMR_ENOMEM = -1007,       /* out of memory */
    LMR_EIO = -1008,          /* read/write failure */
    LMR_EPARSE = -1009,       /* malformed text input (csv, json, list, npy header) */
    LMR_ENOTFOUND = -1010,    /* a named item (file, key, tensor, class) does not exist */
    LMR_EEXIST = -1011,       /* an id is already present with different content */
    LMR_EMISMATCH = -1012,    /* inputs disagree (dims, classes, backbone, weights) */
    LMR_ELMDB = -1013,        /* LMDB reported an error */
    LMR_EHDF5 = -1014,        /* HDF5 reported an error */
    LMR_EDECODE = -1015,      /* video could not be demuxed or decoded */
    LMR_ENOSTREAM = -1016,    /* the file holds no video stream */
    LMR_ERANGE = -1017,       /* value or clip outside the valid range */
    LMR_ETIMEOUT = -1018,     /* a per-item work limit was reached */
    LMR_EUNSUPPORTED = -1019, /* valid input that lmr does not handle */
    LMR_ENAN = -1020,         /* NaN or inf appeared in a computation */
    LMR_EGPU = -1021,         /* CUDA / cuBLAS / cuDNN / NCCL error */
    LMR_ENODEV = -1022,       /* no GPU available at run time, or not built with CUDA */
    LMR_EMPI = -1023,         /* MPI error */
    LMR_EUSAGE = -1024,       /* bad command line */
    LMR_EEMPTY = -1025,       /* a shard or set holds no records */
};

/** Message for an lmr code, or strerror(-code) for -errno codes. Never NULL. */
const char *lmr_strerror(int code);

/** Write a formatted message into err (LMR_ERRLEN bytes; NULL allowed) and return code. */
int lmr_fail(char *err, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* An id (or any caller-supplied name) as it goes into a message: at most LMR_SHOWLEN - 4 bytes of
 * it, then "..." when cut, so that the reason after it still fits in the message. */
#define LMR_SHOWLEN 84
/** Copy id[0..len) for a message into buf (LMR_SHOWLEN bytes); @return buf. */
const char *lmr_show(char *buf, const char *id, size_t len);

/* Forward a negative result. */
#define LMR_TRY(expr)                 \
    do {                              \
        int lmr_try_rc_ = (expr);     \
        if (lmr_try_rc_ < 0)          \
            return lmr_try_rc_;       \
    } while (0)

/* Record a message in obj->last_error and return code. */
#define LMR_FAIL(obj, code, ...) lmr_fail((obj)->last_error, (code), __VA_ARGS__)

#endif
