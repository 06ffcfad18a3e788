/* safetensors reader and writer. Reading maps the file read-only and checks every offset, shape
 * and size against the mapping before a tensor pointer is handed out; the JSON header is parsed
 * with jansson. Writing is atomic (path.tmp, fsync, rename) and deterministic: the header keeps
 * the caller's order and is padded with spaces to 8 bytes so tensor data stays aligned.
 * Tensor bytes are little endian, as the format says; lmr only runs on little-endian hosts. */
#include "safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define ST_MAX_HEADER (100u << 20) /* the reference implementation's limit */

static const struct {
    const char *name;
    StDtype dtype;
    size_t size;
} dtypes[] = {
    {"F32", ST_F32, 4}, {"F16", ST_F16, 2}, {"BF16", ST_BF16, 2}, {"I64", ST_I64, 8},
    {"I32", ST_I32, 4}, {"U8", ST_U8, 1},   {"F64", ST_F64, 8},
};

static size_t dtype_size(StDtype d)
{
    for (size_t i = 0; i < sizeof dtypes / sizeof *dtypes; i++)
        if (dtypes[i].dtype == d)
            return dtypes[i].size;
    return 0;
}

static const char *dtype_name(StDtype d)
{
    for (size_t i = 0; i < sizeof dtypes / sizeof *dtypes; i++)
        if (dtypes[i].dtype == d)
            return dtypes[i].name;
    return NULL;
}

static int dtype_parse(const char *s, StDtype *out)
{
    for (size_t i = 0; i < sizeof dtypes / sizeof *dtypes; i++)
        if (strcmp(dtypes[i].name, s) == 0) {
            *out = dtypes[i].dtype;
            return 0;
        }
    return -1;
}

// --- reading ---------------------------------------------------------------------------------

void st_close(StFile *f)
{
    if (!f)
        return;
    if (f->map)
        munmap(f->map, f->map_size);
    for (int i = 0; i < f->n_tensors; i++)
        free(f->tensors[i].name);
    free(f->tensors);
    for (int i = 0; i < f->n_meta; i++) {
        free(f->meta_keys[i]);
        free(f->meta_vals[i]);
    }
    free(f->meta_keys);
    free(f->meta_vals);
    memset(f, 0, sizeof *f);
}

static int cmp_begin(const void *a, const void *b)
{
    const StTensor *x = *(const StTensor *const *)a, *y = *(const StTensor *const *)b;
    const uint8_t *px = x->data, *py = y->data;
    return px < py ? -1 : px > py;
}

/* Read one tensor entry of the header; data offsets are relative to data_base (data_len bytes). */
static int parse_tensor(StFile *f, const char *name, json_t *v, const uint8_t *data_base,
                        uint64_t data_len, const char *path)
{
    StTensor *t = &f->tensors[f->n_tensors];
    json_t *jd = json_object_get(v, "dtype"), *js = json_object_get(v, "shape");
    json_t *jo = json_object_get(v, "data_offsets");
    if (!json_is_object(v) || !json_is_string(jd) || !json_is_array(js) || !json_is_array(jo) ||
        json_array_size(jo) != 2)
        return LMR_FAIL(f, LMR_EPARSE, "%s: tensor '%s': needs dtype, shape and data_offsets", path, name);
    if (dtype_parse(json_string_value(jd), &t->dtype))
        return LMR_FAIL(f, LMR_EPARSE, "%s: tensor '%s': unknown dtype '%s'", path, name,
                        json_string_value(jd));
    size_t nd = json_array_size(js);
    if (nd > ST_MAX_DIMS)
        return LMR_FAIL(f, LMR_EUNSUPPORTED, "%s: tensor '%s': %zu dims (max %d)", path, name, nd,
                        ST_MAX_DIMS);
    uint64_t count = 1;
    for (size_t i = 0; i < nd; i++) {
        json_t *e = json_array_get(js, i);
        if (!json_is_integer(e) || json_integer_value(e) < 0)
            return LMR_FAIL(f, LMR_EPARSE, "%s: tensor '%s': bad shape entry %zu", path, name, i);
        uint64_t d = (uint64_t)json_integer_value(e);
        if (d && count > UINT64_MAX / d)
            return LMR_FAIL(f, LMR_ECORRUPT, "%s: tensor '%s': shape overflows", path, name);
        count *= d;
        t->shape[i] = (int64_t)d;
    }
    json_t *jb = json_array_get(jo, 0), *je = json_array_get(jo, 1);
    if (!json_is_integer(jb) || !json_is_integer(je) || json_integer_value(jb) < 0 ||
        json_integer_value(je) < json_integer_value(jb))
        return LMR_FAIL(f, LMR_ECORRUPT, "%s: tensor '%s': bad data_offsets", path, name);
    uint64_t begin = (uint64_t)json_integer_value(jb), end = (uint64_t)json_integer_value(je);
    size_t es = dtype_size(t->dtype);
    if (count > UINT64_MAX / es || count * es != end - begin)
        return LMR_FAIL(f, LMR_ECORRUPT, "%s: tensor '%s': %llu bytes for %llu elements of %s", path,
                        name, (unsigned long long)(end - begin), (unsigned long long)count,
                        json_string_value(jd));
    if (end > data_len)
        return LMR_FAIL(f, LMR_ETRUNC, "%s: tensor '%s': ends at %llu, data has %llu bytes", path, name,
                        (unsigned long long)end, (unsigned long long)data_len);
    t->ndim = (int)nd;
    t->data = data_base + begin;
    t->nbytes = (size_t)(end - begin);
    t->name = strdup(name);
    if (!t->name)
        return LMR_ENOMEM;
    f->n_tensors++;
    return 0;
}

static int parse_meta(StFile *f, json_t *m, const char *path)
{
    if (!json_is_object(m))
        return LMR_FAIL(f, LMR_EPARSE, "%s: __metadata__ is not an object", path);
    size_t n = json_object_size(m);
    f->meta_keys = calloc(n ? n : 1, sizeof *f->meta_keys);
    f->meta_vals = calloc(n ? n : 1, sizeof *f->meta_vals);
    if (!f->meta_keys || !f->meta_vals)
        return LMR_ENOMEM;
    const char *k;
    json_t *v;
    json_object_foreach(m, k, v) {
        if (!json_is_string(v))
            return LMR_FAIL(f, LMR_EPARSE, "%s: __metadata__ '%s' is not a string", path, k);
        f->meta_keys[f->n_meta] = strdup(k);
        f->meta_vals[f->n_meta] = strdup(json_string_value(v));
        f->n_meta++;
        if (!f->meta_keys[f->n_meta - 1] || !f->meta_vals[f->n_meta - 1])
            return LMR_ENOMEM;
    }
    return 0;
}

int st_open(StFile *f, const char *path)
{
    memset(f, 0, sizeof *f);
    json_t *root = NULL;
    StTensor **order = NULL;
    int rc = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return LMR_FAIL(f, -errno, "%s: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) < 0) {
        rc = LMR_FAIL(f, -errno, "%s: %s", path, strerror(errno));
        goto fail;
    }
    if (sb.st_size < 8) {
        rc = LMR_FAIL(f, LMR_ETRUNC, "%s: %lld bytes, shorter than the 8-byte header length", path,
                      (long long)sb.st_size);
        goto fail;
    }
    f->map_size = (size_t)sb.st_size;
    f->map = mmap(NULL, f->map_size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (f->map == MAP_FAILED) {
        f->map = NULL;
        rc = LMR_FAIL(f, -errno, "%s: mmap: %s", path, strerror(errno));
        goto fail;
    }
    const uint8_t *p = f->map;
    uint64_t hlen = 0;
    for (int i = 0; i < 8; i++)
        hlen |= (uint64_t)p[i] << (8 * i);
    if (hlen > ST_MAX_HEADER || hlen > f->map_size - 8) {
        rc = LMR_FAIL(f, LMR_ETRUNC, "%s: header of %llu bytes, file has %zu", path,
                      (unsigned long long)hlen, f->map_size);
        goto fail;
    }
    json_error_t jerr;
    root = json_loadb((const char *)p + 8, (size_t)hlen, JSON_REJECT_DUPLICATES, &jerr);
    if (!root || !json_is_object(root)) {
        rc = LMR_FAIL(f, LMR_EPARSE, "%s: header JSON: %s", path, root ? "not an object" : jerr.text);
        goto fail;
    }
    size_t n = json_object_size(root);
    f->tensors = calloc(n ? n : 1, sizeof *f->tensors);
    if (!f->tensors) {
        rc = LMR_ENOMEM;
        goto fail;
    }
    const uint8_t *data = p + 8 + hlen;
    uint64_t data_len = f->map_size - 8 - hlen;
    const char *k;
    json_t *v;
    json_object_foreach(root, k, v) {
        rc = strcmp(k, "__metadata__") == 0 ? parse_meta(f, v, path)
                                             : parse_tensor(f, k, v, data, data_len, path);
        if (rc < 0)
            goto fail;
    }
    // Tensors must not overlap: a corrupt header could alias two names onto the same bytes.
    order = malloc((size_t)(f->n_tensors ? f->n_tensors : 1) * sizeof *order);
    if (!order) {
        rc = LMR_ENOMEM;
        goto fail;
    }
    for (int i = 0; i < f->n_tensors; i++)
        order[i] = &f->tensors[i];
    qsort(order, (size_t)f->n_tensors, sizeof *order, cmp_begin);
    for (int i = 1; i < f->n_tensors; i++) {
        const uint8_t *prev_end = (const uint8_t *)order[i - 1]->data + order[i - 1]->nbytes;
        if ((const uint8_t *)order[i]->data < prev_end) {
            rc = LMR_FAIL(f, LMR_ECORRUPT, "%s: tensors '%s' and '%s' overlap", path,
                          order[i - 1]->name, order[i]->name);
            goto fail;
        }
    }
    free(order);
    json_decref(root);
    close(fd);
    return 0;
fail:;
    char keep[LMR_ERRLEN];
    memcpy(keep, f->last_error, sizeof keep);
    if (rc == LMR_ENOMEM)
        snprintf(keep, sizeof keep, "%s: out of memory", path);
    free(order);
    json_decref(root);
    close(fd);
    st_close(f);
    memcpy(f->last_error, keep, sizeof keep);
    return rc;
}

const StTensor *st_find(const StFile *f, const char *name)
{
    for (int i = 0; i < f->n_tensors; i++)
        if (strcmp(f->tensors[i].name, name) == 0)
            return &f->tensors[i];
    return NULL;
}

const char *st_meta(const StFile *f, const char *key)
{
    for (int i = 0; i < f->n_meta; i++)
        if (strcmp(f->meta_keys[i], key) == 0)
            return f->meta_vals[i];
    return NULL;
}

static void shape_str(char *buf, size_t cap, const char *dt, int ndim, const int64_t *shape)
{
    size_t o = (size_t)snprintf(buf, cap, "%s[", dt ? dt : "?");
    for (int i = 0; i < ndim && o < cap; i++)
        o += (size_t)snprintf(buf + o, cap - o, i ? ",%lld" : "%lld", (long long)shape[i]);
    if (o < cap)
        snprintf(buf + o, cap - o, "]");
}

int st_expect(StFile *f, const char *name, StDtype dtype, int ndim, const int64_t *shape, const StTensor **out)
{
    const StTensor *t = st_find(f, name);
    if (out)
        *out = NULL;
    if (!t)
        return LMR_FAIL(f, LMR_ENOTFOUND, "tensor '%s' not found", name);
    int same = t->dtype == dtype && t->ndim == ndim;
    for (int i = 0; same && i < ndim; i++)
        same = t->shape[i] == shape[i];
    if (!same) {
        char want[160], got[160];
        shape_str(want, sizeof want, dtype_name(dtype), ndim, shape);
        shape_str(got, sizeof got, dtype_name(t->dtype), t->ndim, t->shape);
        return LMR_FAIL(f, LMR_EMISMATCH, "tensor '%s' is %s, expected %s", name, got, want);
    }
    if (out)
        *out = t;
    return 0;
}

// --- writing ---------------------------------------------------------------------------------

static int write_all(int fd, const void *buf, size_t n)
{
    const uint8_t *p = buf;
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* The JSON header, in the caller's order, offsets contiguous from 0. */
static char *build_header(const StWriteTensor *t, int n, const char *const *mk, const char *const *mv,
                          int n_meta, char *err, int *rc)
{
    json_t *root = json_object();
    char *s = NULL;
    *rc = LMR_ENOMEM;
    if (!root)
        return NULL;
    if (n_meta > 0) {
        json_t *m = json_object();
        if (!m || json_object_set_new(root, "__metadata__", m))
            goto done;
        for (int i = 0; i < n_meta; i++)
            if (json_object_set_new(m, mk[i], json_string(mv[i])))
                goto done;
    }
    uint64_t off = 0;
    for (int i = 0; i < n; i++) {
        size_t es = dtype_size(t[i].dtype);
        if (!es || t[i].ndim < 0 || t[i].ndim > ST_MAX_DIMS || !t[i].name ||
            strcmp(t[i].name, "__metadata__") == 0) {
            *rc = lmr_fail(err, LMR_EINVAL, "safetensors: bad tensor %d ('%s')", i,
                           t[i].name ? t[i].name : "(null)");
            goto done;
        }
        uint64_t bytes = es;
        json_t *shape = json_array();
        if (!shape)
            goto done;
        for (int d = 0; d < t[i].ndim; d++) {
            bytes *= (uint64_t)t[i].shape[d];
            json_array_append_new(shape, json_integer(t[i].shape[d]));
        }
        json_t *e = json_pack("{s:s, s:o, s:[I,I]}", "dtype", dtype_name(t[i].dtype), "shape", shape,
                              "data_offsets", (json_int_t)off, (json_int_t)(off + bytes));
        if (!e)
            goto done;
        if (json_object_get(root, t[i].name)) {
            json_decref(e);
            *rc = lmr_fail(err, LMR_EINVAL, "safetensors: tensor '%s' given twice", t[i].name);
            goto done;
        }
        if (json_object_set_new(root, t[i].name, e))
            goto done;
        off += bytes;
    }
    s = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
    *rc = s ? 0 : LMR_ENOMEM;
done:
    json_decref(root);
    return s;
}

int st_write(const char *path, const StWriteTensor *t, int n, const char *const *meta_keys,
             const char *const *meta_vals, int n_meta, char *err)
{
    int rc = 0, fd = -1;
    char *hdr = build_header(t, n, meta_keys, meta_vals, n_meta, err, &rc);
    char *tmp = NULL;
    if (!hdr) {
        if (rc == LMR_ENOMEM)
            lmr_fail(err, rc, "%s: out of memory", path);
        return rc;
    }
    size_t hlen = strlen(hdr), padded = (hlen + 7) & ~(size_t)7;
    size_t plen = strlen(path) + 5;
    tmp = malloc(plen);
    if (!tmp) {
        rc = lmr_fail(err, LMR_ENOMEM, "%s: out of memory", path);
        goto done;
    }
    snprintf(tmp, plen, "%s.tmp", path);
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        rc = lmr_fail(err, -errno, "%s: %s", tmp, strerror(errno));
        goto done;
    }
    uint8_t len8[8];
    for (int i = 0; i < 8; i++)
        len8[i] = (uint8_t)((uint64_t)padded >> (8 * i));
    static const char spaces[8] = "        ";
    if ((rc = write_all(fd, len8, 8)) < 0 || (rc = write_all(fd, hdr, hlen)) < 0 ||
        (rc = write_all(fd, spaces, padded - hlen)) < 0)
        goto io_fail;
    for (int i = 0; i < n; i++) {
        size_t bytes = dtype_size(t[i].dtype);
        for (int d = 0; d < t[i].ndim; d++)
            bytes *= (size_t)t[i].shape[d];
        if (bytes && (rc = write_all(fd, t[i].data, bytes)) < 0)
            goto io_fail;
    }
    if (fsync(fd) < 0) {
        rc = -errno;
        goto io_fail;
    }
    rc = close(fd) < 0 ? -errno : 0;
    fd = -1;
    if (rc < 0)
        goto io_fail;
    if (rename(tmp, path) < 0) {
        rc = lmr_fail(err, -errno, "%s: rename: %s", path, strerror(errno));
        unlink(tmp);
        goto done;
    }
    goto done;
io_fail:
    lmr_fail(err, rc, "%s: write: %s", tmp, strerror(-rc));
    if (fd >= 0)
        close(fd);
    fd = -1;
    unlink(tmp);
done:
    if (fd >= 0)
        close(fd);
    free(tmp);
    free(hdr);
    return rc;
}
