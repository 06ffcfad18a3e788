/* The one table of lmr's error strings. */
#include "lmr_error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const char *const messages[] = {
    "bad magic: not an lmr file",
    "unsupported format version",
    "truncated input",
    "checksum mismatch",
    "corrupt header",
    "compression error",
    "invalid argument",
    "out of memory",
    "input/output error",
    "parse error",
    "not found",
    "already present with different content",
    "inputs do not match",
    "LMDB error",
    "HDF5 error",
    "video decode error",
    "no video stream",
    "out of range",
    "work limit reached",
    "unsupported",
    "NaN or inf",
    "GPU error",
    "no GPU device",
    "MPI error",
    "bad usage",
    "empty: no records",
};

const char *lmr_strerror(int code)
{
    if (code == LMR_OK)
        return "ok";
    if (code == LMR_DONE)
        return "done";
    if (code <= LMR_EBADMAGIC && code > LMR_EBADMAGIC - (int)(sizeof messages / sizeof *messages))
        return messages[LMR_EBADMAGIC - code];
    if (code < 0 && code > -4096)
        return strerror(-code);
    return "unknown error";
}

int lmr_fail(char *err, int code, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, LMR_ERRLEN, fmt, ap);
        va_end(ap);
    }
    return code;
}

const char *lmr_show(char *buf, const char *id, size_t len)
{
    size_t keep = LMR_SHOWLEN - 4;
    if (!id)
        len = 0;
    if (len <= LMR_SHOWLEN - 1)
        keep = len;
    memcpy(buf, id ? id : "", keep);
    if (keep < len)
        memcpy(buf + keep, "...", 4);
    else
        buf[keep] = 0;
    return buf;
}
