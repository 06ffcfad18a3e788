/* .npy reader: magic "\x93NUMPY", major/minor version, header length (u16 for 1.x, u32 for
 * 2.x/3.x), then a Python dict literal {'descr': '<f4', 'fortran_order': False, 'shape': (T, D), }
 * padded with spaces to an aligned size and ending in '\n'. The dict is parsed by hand because
 * it is a Python literal, not JSON; only the three keys numpy writes are accepted. */
#include "npy.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

void npy_init(NpyArray *a)
{
    memset(a, 0, sizeof *a);
    buf_init(&a->buf);
}

void npy_free(NpyArray *a)
{
    if (!a)
        return;
    buf_free(&a->buf);
    memset(a, 0, sizeof *a);
}

typedef struct {
    const char *p, *end;
} Lex;

static void lex_ws(Lex *l)
{
    while (l->p < l->end && (*l->p == ' ' || *l->p == '\t' || *l->p == '\n' || *l->p == '\r'))
        l->p++;
}

static int lex_char(Lex *l, char c)
{
    lex_ws(l);
    if (l->p < l->end && *l->p == c) {
        l->p++;
        return 1;
    }
    return 0;
}

/* A quoted Python string ('..' or ".."), no escapes (numpy writes none in these keys). */
static int lex_str(Lex *l, char *out, size_t cap)
{
    lex_ws(l);
    if (l->p >= l->end || (*l->p != '\'' && *l->p != '"'))
        return -1;
    char q = *l->p++;
    size_t n = 0;
    while (l->p < l->end && *l->p != q) {
        if (*l->p == '\\' || n + 1 >= cap)
            return -1;
        out[n++] = *l->p++;
    }
    if (l->p >= l->end)
        return -1;
    l->p++;
    out[n] = '\0';
    return 0;
}

/* A non-negative Python int (an old 'L' suffix allowed). */
static int lex_int(Lex *l, int64_t *v)
{
    lex_ws(l);
    if (l->p >= l->end || *l->p < '0' || *l->p > '9')
        return -1;
    int64_t x = 0;
    while (l->p < l->end && *l->p >= '0' && *l->p <= '9') {
        if (x > (INT64_MAX - 9) / 10)
            return -1;
        x = x * 10 + (*l->p++ - '0');
    }
    if (l->p < l->end && *l->p == 'L')
        l->p++;
    *v = x;
    return 0;
}

static int lex_word(Lex *l, const char *w)
{
    lex_ws(l);
    size_t n = strlen(w);
    if ((size_t)(l->end - l->p) >= n && memcmp(l->p, w, n) == 0) {
        l->p += n;
        return 1;
    }
    return 0;
}

/* shape tuple: () | (a,) | (a, b) | (a, b, c, ...) with an optional trailing comma. */
static int lex_shape(Lex *l, int64_t *dims, int *ndim)
{
    if (!lex_char(l, '('))
        return -1;
    *ndim = 0;
    if (lex_char(l, ')'))
        return 0;
    for (;;) {
        int64_t v;
        if (lex_int(l, &v))
            return -1;
        if (*ndim < 8)
            dims[*ndim] = v;
        (*ndim)++;
        if (lex_char(l, ')'))
            return 0;
        if (!lex_char(l, ','))
            return -1;
        if (lex_char(l, ')'))
            return 0;
    }
}

static int parse_dict(const char *hdr, size_t len, char *descr, size_t descr_cap, int *fortran,
                      int64_t *dims, int *ndim, const char **why)
{
    Lex l = {hdr, hdr + len};
    int have = 0; /* bits: descr, fortran_order, shape */
    *why = "malformed header dict";
    if (!lex_char(&l, '{'))
        return -1;
    while (!lex_char(&l, '}')) {
        char key[32];
        if (lex_str(&l, key, sizeof key) || !lex_char(&l, ':'))
            return -1;
        if (strcmp(key, "descr") == 0 && !(have & 1)) {
            if (lex_str(&l, descr, descr_cap)) {
                *why = "descr is not a simple dtype string (structured dtypes are not supported)";
                return -1;
            }
            have |= 1;
        } else if (strcmp(key, "fortran_order") == 0 && !(have & 2)) {
            if (lex_word(&l, "True"))
                *fortran = 1;
            else if (lex_word(&l, "False"))
                *fortran = 0;
            else
                return -1;
            have |= 2;
        } else if (strcmp(key, "shape") == 0 && !(have & 4)) {
            if (lex_shape(&l, dims, ndim))
                return -1;
            have |= 4;
        } else {
            *why = "unknown or repeated key in header dict";
            return -1;
        }
        if (!lex_char(&l, ',')) {
            if (!lex_char(&l, '}'))
                return -1;
            break;
        }
    }
    lex_ws(&l);
    if (l.p != l.end)
        return -1;
    if (have != 7) {
        *why = "header dict lacks descr, fortran_order or shape";
        return -1;
    }
    return 0;
}

static int parse(NpyArray *a, const void *buf, size_t len, const char *name, char *err, int any)
{
    const uint8_t *b = buf;
    if (!name)
        name = "(memory)";
    if (len < 10 || memcmp(b, "\x93NUMPY", 6) != 0)
        return lmr_fail(err, LMR_EBADMAGIC, "%s: not a .npy file (no \\x93NUMPY magic)", name);
    int major = b[6], minor = b[7];
    if (major < 1 || major > 3)
        return lmr_fail(err, LMR_EVERSION, "%s: .npy format version %d.%d, want 1.0, 2.0 or 3.0",
                        name, major, minor);
    size_t hlen, start;
    if (major == 1) {
        hlen = (size_t)b[8] | (size_t)b[9] << 8;
        start = 10;
    } else {
        if (len < 12)
            return lmr_fail(err, LMR_ETRUNC, "%s: header truncated", name);
        hlen = (size_t)b[8] | (size_t)b[9] << 8 | (size_t)b[10] << 16 | (size_t)b[11] << 24;
        start = 12;
    }
    if (hlen > len - start)
        return lmr_fail(err, LMR_ETRUNC, "%s: header of %zu bytes, file has %zu after the preamble",
                        name, hlen, len - start);
    const char *hdr = (const char *)b + start;
    if (hlen == 0 || hdr[hlen - 1] != '\n')
        return lmr_fail(err, LMR_EPARSE, "%s: header does not end with a newline", name);
    if (memchr(hdr, '\0', hlen))
        return lmr_fail(err, LMR_EPARSE, "%s: NUL byte in the header", name);
    char descr[32];
    int fortran = 0, ndim = 0;
    int64_t dims[8] = {0};
    const char *why;
    if (parse_dict(hdr, hlen, descr, sizeof descr, &fortran, dims, &ndim, &why))
        return lmr_fail(err, LMR_EPARSE, "%s: %s", name, why);
    int dtype;
    size_t esize;
    if (strcmp(descr, "<f4") == 0) {
        dtype = LMR_DT_F32;
        esize = 4;
    } else if (strcmp(descr, "<f2") == 0) {
        dtype = LMR_DT_F16;
        esize = 2;
    } else if (descr[0] == '>' && (strcmp(descr + 1, "f4") == 0 || strcmp(descr + 1, "f2") == 0)) {
        return lmr_fail(err, LMR_EUNSUPPORTED, "%s: big-endian dtype '%s', want '<f4' or '<f2'",
                        name, descr);
    } else {
        return lmr_fail(err, LMR_EUNSUPPORTED, "%s: dtype '%s', want '<f4' (float32) or '<f2' (float16)",
                        name, descr);
    }
    if (fortran)
        return lmr_fail(err, LMR_EUNSUPPORTED, "%s: Fortran-order array, want C order", name);
    if (any ? ndim < 1 || ndim > 3 : ndim != 2)
        return lmr_fail(err, LMR_EUNSUPPORTED, any ? "%s: %d-D array, want (D), (T, D) or (views, T, D)"
                                                   : "%s: %d-D array, want 2-D (T, D)", name, ndim);
    size_t off = start + hlen, avail = len - off;
    char shp[80];
    int sl = 0;
    uint64_t n_el = 1;
    int too_large = 0;
    for (int k = 0; k < ndim; k++) {
        sl += snprintf(shp + sl, sizeof shp - (size_t)sl, "%s%lld", k ? ", " : "(", (long long)dims[k]);
        if (dims[k] > INT32_MAX || (dims[k] && n_el > (uint64_t)SIZE_MAX / esize / (uint64_t)dims[k]))
            too_large = 1;
        else
            n_el *= (uint64_t)dims[k];
    }
    snprintf(shp + sl, sizeof shp - (size_t)sl, ")");
    if (too_large)
        return lmr_fail(err, LMR_EUNSUPPORTED, "%s: shape %s too large", name, shp);
    size_t need = (size_t)n_el * esize;
    if (avail < need)
        return lmr_fail(err, LMR_ETRUNC, "%s: truncated: shape %s needs %zu data bytes, file has %zu",
                        name, shp, need, avail);
    if (avail > need)
        return lmr_fail(err, LMR_ECORRUPT, "%s: %zu bytes after the data of shape %s", name,
                        avail - need, shp);
    a->version = major;
    a->dtype = dtype;
    a->ndim = ndim;
    a->rows = 1;
    for (int k = 0; k < ndim; k++) {
        a->shape[k] = dims[k];
        if (k < ndim - 1)
            a->rows *= dims[k];
    }
    a->cols = dims[ndim - 1];
    a->data_offset = off;
    a->data_bytes = need;
    a->data = b + off;
    return 0;
}

int npy_parse(NpyArray *a, const void *buf, size_t len, const char *name, char *err)
{
    return parse(a, buf, len, name, err, 0);
}

int npy_parse_any(NpyArray *a, const void *buf, size_t len, const char *name, char *err)
{
    return parse(a, buf, len, name, err, 1);
}

static int read_file(NpyArray *a, const char *path, char *err, int any)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return lmr_fail(err, -errno, "%s: %s", path, strerror(errno));
    struct stat st;
    int rc = 0;
    if (fstat(fd, &st) != 0) {
        rc = lmr_fail(err, -errno, "%s: %s", path, strerror(errno));
        goto done;
    }
    if (!S_ISREG(st.st_mode)) {
        rc = lmr_fail(err, LMR_EINVAL, "%s: not a regular file", path);
        goto done;
    }
    size_t size = (size_t)st.st_size;
    if (buf_reserve(&a->buf, size + 1)) {
        rc = lmr_fail(err, LMR_ENOMEM, "%s: out of memory for %zu bytes", path, size);
        goto done;
    }
    size_t got = 0;
    while (got < size) {
        ssize_t n = read(fd, a->buf.data + got, size - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = lmr_fail(err, -errno, "%s: %s", path, strerror(errno));
            goto done;
        }
        if (n == 0)
            break; /* shrank while reading: parse what is there, it will say truncated */
        got += (size_t)n;
    }
    a->buf.len = got;
    a->file_bytes = got;
    rc = parse(a, a->buf.data, got, path, err, any);
done:
    close(fd);
    return rc;
}

int npy_read(NpyArray *a, const char *path, char *err) { return read_file(a, path, err, 0); }

int npy_read_any(NpyArray *a, const char *path, char *err) { return read_file(a, path, err, 1); }
