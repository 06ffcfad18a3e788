/* HDF5 shards (DESIGN section 4), the reader and the helpers the writer shares. Decoded payloads
 * live in /features or /frames so plain h5py reads them: [N, views, T, ...] while T is constant,
 * rows [sum views*T, ...] + /rows once it varies. A file without the `lmr_complete` attribute was
 * not closed cleanly and is refused. Nothing read from a file is trusted: sizes, dims and indices
 * are checked before they size a buffer or select a hyperslab. */
#include <errno.h>
#include <fcntl.h>
#include <libdeflate.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "shard_hdf5.h"

// --- the lock and errors ------------------------------------------------------------------------

/* The one piece of global mutable state in lmr, on purpose. libhdf5 keeps process-wide state (open
 * files, identifiers, the error stack) and may be called from several threads at once only when it
 * was built thread-safe. Debian's 1.10 build is, other builds are not, and lmr reads HDF5 shards
 * from several threads (the loader and validation of lmr-train, the --verify workers). So every
 * HDF5 call of lmr's readers and writers, whatever set or file it serves, holds this one mutex.
 * Recursive: a failing open closes what it opened while still holding it. */
static pthread_mutex_t h5_mutex = PTHREAD_RECURSIVE_MUTEX_INITIALIZER_NP;

static herr_t capture_walk(unsigned n, const H5E_error2_t *e, void *user)
{
    H5Capture *c = user;
    const char *d = e->desc ? e->desc : "";
    if (n == 0) /* walking upward: the first is where the failure was detected */
        snprintf(c->desc, sizeof c->desc, "%s", d);
    const char *en = strstr(d, "errno = ");
    if (en && !c->errnum)
        c->errnum = atoi(en + 8);
    return 0;
}

/* Installed as HDF5's automatic error handler: called as a failing API call returns, while its
 * error stack still holds the cause. */
static herr_t capture_auto(hid_t estack, void *user)
{
    H5Capture *c = user;
    c->desc[0] = 0;
    c->errnum = 0;
    H5Ewalk2(estack, H5E_WALK_UPWARD, capture_walk, c);
    c->set = 1;
    return 0;
}

/* libhdf5 1.10 keeps a file whose close failed (a full disk) half torn down in its tables, and its
 * atexit handler then crashes on it. lmr closes every HDF5 file it opens, so it needs no such
 * handler. The request only counts before the library's first call, hence at program load. */
__attribute__((constructor)) static void h5_no_exit_handler(void) { H5dont_atexit(); }

void h5_lock(H5Capture *c)
{
    pthread_mutex_lock(&h5_mutex);
    memset(c, 0, sizeof *c);
    H5Eset_auto2(H5E_DEFAULT, capture_auto, c); /* this thread's stack: never printed */
}

void h5_unlock(void)
{
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL); /* the capture may go out of scope */
    pthread_mutex_unlock(&h5_mutex);
}

int h5_fail(char *err, const char *path, const char *what)
{
    H5E_auto2_t fn = NULL;
    void *data = NULL;
    H5Capture now = {0}, *c = &now;
    if (H5Eget_auto2(H5E_DEFAULT, &fn, &data) >= 0 && fn == capture_auto && data && ((H5Capture *)data)->set)
        c = data;
    else
        H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, capture_walk, c);
    H5Eclear2(H5E_DEFAULT);
    char cause[256];
    int code = LMR_EHDF5;
    if (c->errnum > 0) {
        snprintf(cause, sizeof cause, "%s", strerror(c->errnum));
        code = -c->errnum;
    } else {
        snprintf(cause, sizeof cause, "%s", c->desc[0] ? c->desc : "HDF5 gave no reason");
    }
    c->set = 0;
    if (path)
        return lmr_fail(err, code, "%s: %s: %s", path, what, cause);
    return lmr_fail(err, code, "%s: %s", what, cause);
}

int h5_file_busy(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    int busy = flock(fd, LOCK_EX | LOCK_NB) != 0 && errno == EWOULDBLOCK;
    close(fd); /* drops the probe's lock, if it got one */
    return busy;
}

/* Element type of a dtype (owned: H5Tclose). f16 is IEEE binary16, which h5py maps to float16. */
hid_t h5_elem_type(int dtype)
{
    if (dtype == LMR_DT_U8)
        return H5Tcopy(H5T_STD_U8LE);
    if (dtype == LMR_DT_F32)
        return H5Tcopy(H5T_IEEE_F32LE);
    hid_t t = H5Tcopy(H5T_IEEE_F32LE);
    if (t < 0 || H5Tset_fields(t, 15, 10, 5, 0, 10) < 0 || H5Tset_size(t, 2) < 0 || H5Tset_ebias(t, 15) < 0) {
        if (t >= 0)
            H5Tclose(t);
        return -1;
    }
    return t;
}

/* Per-slice shape after (views, T): features [D], frames [H, W, 3]. @return rank, 0 if unsupported. */
static int h5_inner_shape(int kind, int ndim, const uint32_t *dims, hsize_t *inner)
{
    if (ndim < 3)
        return 0;
    uint32_t d3 = ndim == 4 ? dims[3] : 1;
    if (kind == LMR_KIND_FEATURES && d3 == 1) {
        inner[0] = dims[2];
        return 1;
    }
    if (kind == LMR_KIND_FRAMES && d3 % 3 == 0) {
        inner[0] = dims[2], inner[1] = d3 / 3, inner[2] = 3;
        return 3;
    }
    inner[0] = dims[2], inner[1] = d3;
    return 2;
}

const char *h5_data_name(int kind) { return kind == LMR_KIND_FRAMES ? "/frames" : "/features"; }

int h5_link_exists(hid_t loc, const char *name) { return H5Lexists(loc, name, H5P_DEFAULT) > 0; }

int h5_write_attr_str(hid_t obj, const char *name, const char *val)
{
    if (H5Aexists(obj, name) > 0 && H5Adelete(obj, name) < 0)
        return -1;
    hid_t t = H5Tcopy(H5T_C_S1), sp = H5Screate(H5S_SCALAR), a = -1;
    int rc = -1;
    if (t >= 0 && sp >= 0 && H5Tset_size(t, strlen(val) + 1) >= 0 && H5Tset_cset(t, H5T_CSET_UTF8) >= 0 &&
        (a = H5Acreate2(obj, name, t, sp, H5P_DEFAULT, H5P_DEFAULT)) >= 0 && H5Awrite(a, t, val) >= 0)
        rc = 0;
    if (a >= 0)
        H5Aclose(a);
    if (sp >= 0)
        H5Sclose(sp);
    if (t >= 0)
        H5Tclose(t);
    return rc;
}

int h5_write_attr_i64(hid_t obj, const char *name, const int64_t *val, hsize_t n)
{
    if (H5Aexists(obj, name) > 0 && H5Adelete(obj, name) < 0)
        return -1;
    hid_t sp = n ? H5Screate_simple(1, &n, NULL) : H5Screate(H5S_SCALAR), a = -1;
    int rc = -1;
    if (sp >= 0 && (a = H5Acreate2(obj, name, H5T_STD_I64LE, sp, H5P_DEFAULT, H5P_DEFAULT)) >= 0 &&
        H5Awrite(a, H5T_NATIVE_INT64, val) >= 0)
        rc = 0;
    if (a >= 0)
        H5Aclose(a);
    if (sp >= 0)
        H5Sclose(sp);
    return rc;
}

/* Read a string attribute (fixed or variable length) into an owned string, NULL when absent. */
char *h5_read_attr_str(hid_t obj, const char *name)
{
    if (H5Aexists(obj, name) <= 0)
        return NULL;
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT), t = a >= 0 ? H5Aget_type(a) : -1;
    char *s = NULL;
    if (t >= 0 && H5Tget_class(t) == H5T_STRING) {
        if (H5Tis_variable_str(t) > 0) {
            char *v = NULL;
            hid_t mt = H5Tcopy(H5T_C_S1);
            H5Tset_size(mt, H5T_VARIABLE);
            if (H5Aread(a, mt, &v) >= 0 && v) {
                s = strdup(v);
                H5free_memory(v);
            }
            H5Tclose(mt);
        } else {
            size_t n = H5Tget_size(t);
            if ((s = calloc(n + 1, 1)) && H5Aread(a, t, s) < 0) {
                free(s);
                s = NULL;
            }
        }
    }
    if (t >= 0)
        H5Tclose(t);
    if (a >= 0)
        H5Aclose(a);
    return s;
}

/* Write a whole small dataset [d0, d1] (d1 = 0: 1-D) of type ft from buf; replaces an old one. */
int h5_write_small(hid_t file, const char *name, hid_t ft, hid_t mt, hsize_t d0, hsize_t d1, const void *buf)
{
    if (h5_link_exists(file, name) && H5Ldelete(file, name, H5P_DEFAULT) < 0)
        return -1;
    hsize_t dims[2] = {d0, d1};
    hid_t sp = H5Screate_simple(d1 ? 2 : 1, dims, NULL), d = -1;
    int rc = -1;
    if (sp >= 0 && (d = H5Dcreate2(file, name, ft, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT)) >= 0 &&
        (d0 == 0 || H5Dwrite(d, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) >= 0))
        rc = 0;
    if (d >= 0)
        H5Dclose(d);
    if (sp >= 0)
        H5Sclose(sp);
    return rc;
}

void *h5_read_small(hid_t file, const char *name, hid_t mt, size_t elem, uint64_t max_bytes, hsize_t *n0, hsize_t *n1)
{
    if (!h5_link_exists(file, name))
        return NULL;
    hid_t d = H5Dopen2(file, name, H5P_DEFAULT);
    if (d < 0)
        return NULL;
    hid_t sp = H5Dget_space(d);
    hsize_t dims[2] = {0, 1};
    int rank = sp >= 0 && H5Sget_simple_extent_ndims(sp) >= 1 && H5Sget_simple_extent_ndims(sp) <= 2
                   ? H5Sget_simple_extent_dims(sp, dims, NULL)
                   : -1;
    void *buf = NULL;
    if (rank >= 1 && rank <= 2 && (rank == 2 || (dims[1] = 1)) && (!dims[1] || dims[0] <= UINT64_MAX / dims[1])) {
        uint64_t n = (uint64_t)dims[0] * dims[1];
        if (n <= max_bytes / (elem ? elem : 1) && (buf = malloc(n ? (size_t)n * elem : 1)) && n &&
            H5Dread(d, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0) {
            free(buf);
            buf = NULL;
        }
        *n0 = dims[0];
        if (n1)
            *n1 = dims[1];
    }
    if (sp >= 0)
        H5Sclose(sp);
    H5Dclose(d);
    return buf;
}

int h5_shape_set(H5Shape *s, const RecordInfo *r)
{
    memset(s, 0, sizeof *s);
    s->kind = r->kind, s->dtype = r->dtype, s->ndim = r->ndim;
    memcpy(s->dims, r->dims, sizeof s->dims);
    if (!(s->inner_rank = h5_inner_shape(r->kind, r->ndim, r->dims, s->inner)))
        return LMR_EUNSUPPORTED;
    s->inner_elems = 1;
    for (int k = 0; k < s->inner_rank; k++)
        s->inner_elems *= s->inner[k];
    s->elem_size = record_dtype_size(r->dtype);
    return 0;
}

#define H5_CLIP_MAX (1ull << 44) /* bytes of one clip: far above any real one, far from overflow */

int h5_shape_from_meta(H5Shape *s, const ShardMeta *m, int rows_layout, const char *path, char *err)
{
    memset(s, 0, sizeof *s);
    char shape[96];
    record_shape_str(m->kind, m->dtype, m->dims, m->ndim, shape, sizeof shape);
    if ((m->kind != LMR_KIND_FRAMES && m->kind != LMR_KIND_FEATURES) || !record_dtype_size(m->dtype) || m->ndim < 3 ||
        m->ndim > 4)
        return lmr_fail(err, LMR_ECORRUPT, "%s: lmr_meta describes %s, no shape an HDF5 shard holds", path, shape);
    for (int i = 0; i < 4; i++)
        if ((i < m->ndim && m->dims[i] == 0 && !(i == 1 && rows_layout)) || (i >= m->ndim && m->dims[i] != 0))
            return lmr_fail(err, LMR_ECORRUPT, "%s: lmr_meta describes %s: dims[%d] = %u", path, shape, i, m->dims[i]);
    if (!rows_layout && m->dims[1] == 0)
        return lmr_fail(err, LMR_ECORRUPT, "%s: lmr_meta says T varies (dims[1] = 0) but there is no /rows", path);
    RecordInfo first = {.kind = m->kind, .dtype = m->dtype, .ndim = m->ndim};
    memcpy(first.dims, m->dims, sizeof first.dims);
    if (h5_shape_set(s, &first))
        return lmr_fail(err, LMR_ECORRUPT, "%s: lmr_meta describes %s, no shape an HDF5 shard holds", path, shape);
    uint64_t per_row = s->elem_size; /* one row: views * T rows make a clip */
    for (int k = 0; k < s->inner_rank; k++)
        per_row = s->inner[k] && per_row > H5_CLIP_MAX / s->inner[k] ? H5_CLIP_MAX + 1 : per_row * s->inner[k];
    uint64_t clip = per_row * m->dims[0];
    if (per_row > H5_CLIP_MAX || clip / m->dims[0] != per_row || (m->dims[1] && clip > H5_CLIP_MAX / m->dims[1]))
        return lmr_fail(err, LMR_ECORRUPT, "%s: lmr_meta describes %s: one clip would be too large", path, shape);
    s->rows_layout = rows_layout;
    return 0;
}

/* File selection + memory space for clip rows [first, first + count) (rows layout) or clip i
 * (fixed layout, T = dims[1]). Both spaces are owned by the caller. */
int h5_select_clip(hid_t data, const H5Shape *s, uint64_t i, uint64_t first, uint64_t count, hid_t *fsp, hid_t *msp)
{
    hsize_t start[6] = {0}, cnt[6];
    int rank;
    if (s->rows_layout) {
        start[0] = first, cnt[0] = count, rank = 1;
    } else {
        start[0] = i, cnt[0] = 1, cnt[1] = s->dims[0], cnt[2] = s->dims[1], rank = 3;
    }
    for (int k = 0; k < s->inner_rank; k++)
        cnt[rank + k] = s->inner[k];
    rank += s->inner_rank;
    *fsp = H5Dget_space(data);
    *msp = H5Screate_simple(rank, cnt, NULL);
    if (*fsp < 0 || *msp < 0 || H5Sselect_hyperslab(*fsp, H5S_SELECT_SET, start, NULL, cnt, NULL) < 0) {
        if (*fsp >= 0)
            H5Sclose(*fsp);
        if (*msp >= 0)
            H5Sclose(*msp);
        return -1;
    }
    return 0;
}

// --- direct chunk I/O ----------------------------------------------------------------------------

void h5_direct_plan(hid_t data, const H5Shape *s, H5Direct *p)
{
    memset(p, 0, sizeof *p);
    if (s->rows_layout)
        return;
    hid_t dcpl = H5Dget_create_plist(data), ft = H5Dget_type(data), mt = h5_elem_type(s->dtype);
    hsize_t chunk[8] = {0};
    int rank = 3 + s->inner_rank, ok = dcpl >= 0 && ft >= 0 && mt >= 0 && H5Tequal(ft, mt) > 0 &&
                                      H5Pget_layout(dcpl) == H5D_CHUNKED && H5Pget_chunk(dcpl, 8, chunk) == rank &&
                                      chunk[0] == 1 && chunk[1] == s->dims[0] && chunk[2] == s->dims[1];
    for (int k = 0; ok && k < s->inner_rank; k++)
        ok = chunk[3 + k] == s->inner[k];
    int nf = ok ? H5Pget_nfilters(dcpl) : -1;
    for (int k = 0; ok && k < nf; k++) {
        unsigned flags = 0, cd[8], config = 0;
        size_t ncd = 8;
        char name[64];
        H5Z_filter_t id = H5Pget_filter2(dcpl, (unsigned)k, &flags, &ncd, cd, sizeof name, name, &config);
        if (id == H5Z_FILTER_SHUFFLE && k == 0) /* lmr unshuffles last: only as the first filter */
            p->shuffle = 1, p->shuffle_bit = 1u << k;
        else if (id == H5Z_FILTER_DEFLATE && !p->deflate)
            p->deflate = 1, p->deflate_bit = 1u << k;
        else
            ok = 0;
    }
    p->ok = ok && nf >= 0;
    if (mt >= 0)
        H5Tclose(mt);
    if (ft >= 0)
        H5Tclose(ft);
    if (dcpl >= 0)
        H5Pclose(dcpl);
}

/* The loops with a constant element size, so the compiler unrolls and vectorises them. */
#define SHUFFLE_LOOP(E, src_at, dst_at)                                                                 \
    for (size_t k = 0; k < (E); k++)                                                                    \
        for (size_t j = 0; j < m; j++)                                                                  \
            dst[dst_at] = src[src_at];

void h5_shuffle(const uint8_t *src, uint8_t *dst, size_t n, size_t elem)
{
    size_t m = elem ? n / elem : 0;
    if (elem <= 1) {
        memcpy(dst, src, n);
        return;
    }
    if (elem == 2) {
        uint8_t *a = dst, *b = dst + m;
        for (size_t j = 0; j < m; j++)
            a[j] = src[2 * j], b[j] = src[2 * j + 1];
    } else if (elem == 4) {
        SHUFFLE_LOOP(4, j * 4 + k, k * m + j)
    } else {
        SHUFFLE_LOOP(elem, j * elem + k, k * m + j)
    }
    memcpy(dst + m * elem, src + m * elem, n - m * elem);
}

void h5_unshuffle(const uint8_t *src, uint8_t *dst, size_t n, size_t elem)
{
    size_t m = elem ? n / elem : 0;
    if (elem <= 1) {
        memcpy(dst, src, n);
        return;
    }
    if (elem == 2) { /* the common case (f16): one pass that interleaves the two planes */
        const uint8_t *a = src, *b = src + m;
        for (size_t j = 0; j < m; j++)
            dst[2 * j] = a[j], dst[2 * j + 1] = b[j];
    } else if (elem == 4) {
        SHUFFLE_LOOP(4, k * m + j, j * 4 + k)
    } else {
        SHUFFLE_LOOP(elem, k * m + j, j * elem + k)
    }
    memcpy(dst + m * elem, src + m * elem, n - m * elem);
}

// --- reader -------------------------------------------------------------------------------------

struct H5Reader {
    hid_t file, data, mtype;
    char path[256];
    H5Shape shape;
    uint64_t n;
    char *ids;            /* [n][width], NUL padded */
    size_t width;
    uint64_t *checksums;
    uint64_t *rows;       /* [2n] */
    H5Direct direct;      /* fixed layout: chunks read as stored and decoded outside the lock */
};

static void reader_free(H5Reader *r)
{
    if (r->data >= 0)
        H5Dclose(r->data);
    if (r->mtype >= 0)
        H5Tclose(r->mtype);
    if (r->file >= 0)
        H5Fclose(r->file);
    free(r->ids);
    free(r->checksums);
    free(r->rows);
    free(r);
}

void h5r_close(H5Reader **pr)
{
    if (!pr || !*pr)
        return;
    H5Capture cap;
    h5_lock(&cap);
    reader_free(*pr);
    h5_unlock();
    *pr = NULL;
}

/* The extents of a dataset (rank at most 6); -1 when it cannot be read. */
static int data_extent(hid_t d, hsize_t *dd)
{
    hid_t sp = d >= 0 ? H5Dget_space(d) : -1;
    int rank = sp >= 0 ? H5Sget_simple_extent_ndims(sp) : -1;
    if (rank < 0 || rank > 6 || H5Sget_simple_extent_dims(sp, dd, NULL) < 0)
        rank = -1;
    if (sp >= 0)
        H5Sclose(sp);
    return rank;
}

/* /labels is what plain h5py users read: one label per clip (the first, -1 when none). */
static int check_plain_labels(H5Reader *r, const uint64_t *lidx, const int32_t *lval, uint64_t max_bytes, char *err)
{
    hsize_t n = 0;
    int32_t *l = h5_read_small(r->file, "/labels", H5T_NATIVE_INT32, 4, max_bytes, &n, NULL);
    int rc = 0;
    if (!l || n != r->n) {
        rc = lmr_fail(err, LMR_ECORRUPT, "%s: /labels holds %llu rows, /ids %llu", r->path,
                      (unsigned long long)(l ? n : 0), (unsigned long long)r->n);
    } else {
        for (uint64_t i = 0; i < r->n && !rc; i++) {
            int32_t want = lidx[2 * i + 1] ? lval[lidx[2 * i]] : -1;
            if (l[i] != want)
                rc = lmr_fail(err, LMR_ECORRUPT, "%s: /labels[%llu] is %d, the clip's first label %d", r->path,
                              (unsigned long long)i, l[i], want);
        }
    }
    free(l);
    return rc;
}

static int reader_open(H5Reader *r, const char *path, ShardMeta *meta, LabelIndex *labels, char *err)
{
    ShardMeta hint;
    shardmeta_init(&hint);
    uint64_t *lidx = NULL;
    int32_t *lval = NULL;
    int rc = 0;
    char *json = NULL, perr[LMR_ERRLEN];
    struct stat st;
    /* the per-clip tables are written whole and uncompressed: none is larger than the file */
    uint64_t max_bytes = stat(path, &st) == 0 ? (uint64_t)st.st_size : 0;
    if ((r->file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT)) < 0) {
        rc = h5_file_busy(path) ? lmr_fail(err, LMR_EHDF5, "%s: being written by another process (an lmr-pack?)", path)
                                : h5_fail(err, path, "opening (an interrupted pack leaves an unreadable file)");
        goto out;
    }
    if (H5Aexists(r->file, "lmr_complete") <= 0) {
        rc = lmr_fail(err, LMR_ECORRUPT, "%s: not a complete lmr HDF5 shard (no lmr_complete mark)", path);
        goto out;
    }
    if (!(json = h5_read_attr_str(r->file, "lmr_meta"))) {
        rc = lmr_fail(err, LMR_ECORRUPT, "%s: no lmr_meta attribute", path);
        goto out;
    }
    if ((rc = shardmeta_from_json(&hint, json, perr))) {
        rc = lmr_fail(err, rc, "%s: lmr_meta: %s", path, perr);
        goto out;
    }
    shardmeta_merge_hint(meta, &hint); /* first: a class count declared there bounds the labels */
    if (hint.n_records == 0)
        goto out;
    if ((rc = h5_shape_from_meta(&r->shape, &hint, h5_link_exists(r->file, "/rows"), path, err)))
        goto out;
    hid_t it = H5Dopen2(r->file, "/ids", H5P_DEFAULT), t = it >= 0 ? H5Dget_type(it) : -1;
    r->width = t >= 0 && H5Tget_class(t) == H5T_STRING && H5Tis_variable_str(t) == 0 ? H5Tget_size(t) : 0;
    if (t >= 0)
        H5Tclose(t);
    if (it >= 0)
        H5Dclose(it);
    if (r->width == 0 || r->width > UINT16_MAX) {
        rc = lmr_fail(err, LMR_ECORRUPT, "%s: /ids is not a dataset of fixed-length strings of 1..65535 bytes", path);
        goto out;
    }
    hid_t sty = H5Tcopy(H5T_C_S1);
    H5Tset_size(sty, r->width);
    H5Tset_strpad(sty, H5T_STR_NULLPAD);
    H5Tset_cset(sty, H5T_CSET_UTF8);
    hsize_t n = 0, nc = 0, ni = 0, nl = 0, nr = 0, w2 = 0, w3 = 0;
    r->ids = h5_read_small(r->file, "/ids", sty, r->width, max_bytes, &n, NULL);
    H5Tclose(sty);
    r->checksums = h5_read_small(r->file, "/checksums", H5T_NATIVE_UINT64, 8, max_bytes, &nc, NULL);
    lidx = h5_read_small(r->file, "/label_index", H5T_NATIVE_UINT64, 8, max_bytes, &ni, &w2);
    lval = h5_read_small(r->file, "/label_values", H5T_NATIVE_INT32, 4, max_bytes, &nl, NULL);
    if (r->shape.rows_layout)
        r->rows = h5_read_small(r->file, "/rows", H5T_NATIVE_UINT64, 8, max_bytes, &nr, &w3);
    if (!r->ids || !r->checksums || !lidx || nc != n || ni != n || w2 != 2 || (n && !lval) ||
        (r->shape.rows_layout && (!r->rows || nr != n || w3 != 2))) {
        rc = lmr_fail(err, LMR_ECORRUPT, "%s: /ids, /checksums, /label_index, /label_values or /rows missing, too "
                      "large or of other sizes", path);
        goto out;
    }
    if (n != hint.n_records) {
        rc = lmr_fail(err, LMR_ECORRUPT, "%s: lmr_meta says %llu records, /ids holds %llu", path,
                      (unsigned long long)hint.n_records, (unsigned long long)n);
        goto out;
    }
    r->n = n;
    hsize_t dd[6] = {0};
    hid_t dapl = H5Pcreate(H5P_DATASET_ACCESS);
    H5Pset_chunk_cache(dapl, 1021, CHUNK_CACHE_BYTES, 1.0);
    r->data = H5Dopen2(r->file, h5_data_name(r->shape.kind), dapl);
    H5Pclose(dapl);
    int rank = data_extent(r->data, dd), lead = r->shape.rows_layout ? 1 : 3;
    int fits = rank == lead + r->shape.inner_rank &&
               (r->shape.rows_layout || (dd[1] == r->shape.dims[0] && dd[2] == r->shape.dims[1]));
    for (int k = 0; fits && k < r->shape.inner_rank; k++)
        fits = dd[lead + k] == r->shape.inner[k];
    if (fits && !r->shape.rows_layout)
        h5_direct_plan(r->data, &r->shape, &r->direct);
    if (!fits || (r->mtype = h5_elem_type(r->shape.dtype)) < 0) {
        char shape[96];
        rc = lmr_fail(err, LMR_ECORRUPT, "%s: %s (rank %d) does not hold clips of %s", path, h5_data_name(r->shape.kind),
                      rank, record_shape_str(hint.kind, hint.dtype, hint.dims, hint.ndim, shape, sizeof shape));
        goto out;
    }
    for (uint64_t i = 0; i < n; i++) {
        RecordInfo info = {.kind = r->shape.kind, .dtype = r->shape.dtype, .ndim = r->shape.ndim};
        memcpy(info.dims, r->shape.dims, sizeof info.dims);
        info.id = r->ids + i * r->width;
        info.id_len = (uint16_t)strnlen(info.id, r->width);
        uint64_t lo = lidx[2 * i], cnt = lidx[2 * i + 1];
        uint64_t rf = r->rows ? r->rows[2 * i] : i, rcount = r->rows ? r->rows[2 * i + 1] : 1;
        int bad_rows = r->rows ? rcount == 0 || rcount % r->shape.dims[0] || rcount / r->shape.dims[0] > UINT32_MAX ||
                                     rf > dd[0] || rcount > dd[0] - rf
                               : i >= dd[0];
        if (cnt > LMR_MAX_LABELS || lo > nl || cnt > nl - lo || bad_rows || info.id_len == 0) {
            char show[LMR_SHOWLEN];
            rc = lmr_fail(err, LMR_ECORRUPT, "%s: clip %llu (%s): %s out of range", path, (unsigned long long)i,
                          lmr_show(show, info.id, info.id_len), bad_rows ? "its /rows" : info.id_len ? "its labels" : "its id");
            goto out;
        }
        info.n_labels = (uint16_t)cnt;
        if (cnt)
            memcpy(info.labels, lval + lo, 4 * cnt);
        if (r->rows) {
            info.dims[1] = (uint32_t)(rcount / r->shape.dims[0]);
            uint64_t per_clip = r->shape.inner_elems * r->shape.elem_size * r->shape.dims[0];
            if (info.dims[1] > H5_CLIP_MAX / per_clip) {
                rc = lmr_fail(err, LMR_ECORRUPT, "%s: clip %llu: %u frames would be too large", path,
                              (unsigned long long)i, info.dims[1]);
                goto out;
            }
        }
        if ((rc = labelindex_push(labels, info.labels, info.n_labels)))
            goto out;
        if ((rc = shardmeta_account(meta, &info, perr))) {
            rc = lmr_fail(err, rc, "%s: %s", path, perr);
            goto out;
        }
    }
    rc = check_plain_labels(r, lidx, lval, max_bytes, err);
out:
    shardmeta_free(&hint);
    free(json);
    free(lidx);
    free(lval);
    return rc;
}

int h5r_open(H5Reader **out, const char *path, ShardMeta *meta, LabelIndex *labels, char *err)
{
    *out = NULL;
    H5Reader *r = calloc(1, sizeof *r);
    if (!r)
        return LMR_ENOMEM;
    r->file = r->data = r->mtype = -1;
    snprintf(r->path, sizeof r->path, "%s", path);
    H5Capture cap;
    h5_lock(&cap);
    int rc = reader_open(r, path, meta, labels, err);
    if (rc)
        reader_free(r);
    h5_unlock();
    if (!rc)
        *out = r;
    return rc;
}

void h5r_id(const H5Reader *r, uint64_t i, const char **id, uint16_t *len)
{
    *id = r->ids + i * r->width;
    *len = (uint16_t)strnlen(*id, r->width);
}

/* Bytes a stored chunk of a clip of raw bytes may take: deflate's worst case (stored blocks, a few
 * bytes per 64 KiB) with room to spare. A larger size is damage, refused before it sizes a buffer. */
static uint64_t chunk_bound(uint64_t raw) { return raw + raw / 16 + 4096; }

/* Clip i through the direct path: its chunk read as stored (under the lock), then inflated and
 * unshuffled here, outside it, so that several threads decode at once. On success the payload is
 * at scratch + head + raw. @return 0, 1 when the chunk is not stored (read it through HDF5), or an
 * error (err does not repeat the path). */
static int read_direct(H5Reader *r, uint64_t i, uint64_t raw, LmrBuf *scratch, size_t head, char *err)
{
    hsize_t off[8] = {i}, csz = 0;
    uint32_t mask = 0;
    H5Capture cap;
    h5_lock(&cap);
    int rc = 0;
    if (H5Dget_chunk_storage_size(r->data, off, &csz) < 0)
        rc = h5_fail(err, NULL, "reading the clip");
    else if (csz == 0)
        rc = 1;
    else if (csz > chunk_bound(raw))
        rc = lmr_fail(err, LMR_ECORRUPT, "reading the clip: its chunk claims %llu bytes, more than a clip of %llu "
                      "can take", (unsigned long long)csz, (unsigned long long)raw);
    else if (buf_reserve(scratch, head + 3 * raw + csz))
        rc = lmr_fail(err, LMR_ENOMEM, "%llu bytes: out of memory", (unsigned long long)(3 * raw + csz));
    else if (H5Dread_chunk(r->data, H5P_DEFAULT, off, &mask, scratch->data + head + 3 * raw) < 0)
        rc = h5_fail(err, NULL, "reading the clip");
    h5_unlock();
    if (rc)
        return rc;
    uint8_t *payload = scratch->data + head + raw, *tmp = payload + raw, *src = tmp + raw;
    size_t len = (size_t)csz;
    int unshuffle = r->direct.shuffle && !(mask & r->direct.shuffle_bit);
    if (r->direct.deflate && !(mask & r->direct.deflate_bit)) {
        uint8_t *dst = unshuffle ? tmp : payload;
        struct libdeflate_decompressor *d = libdeflate_alloc_decompressor();
        if (!d)
            return lmr_fail(err, LMR_ENOMEM, "reading the clip: out of memory");
        size_t got = 0;
        enum libdeflate_result res = libdeflate_zlib_decompress(d, src, len, dst, (size_t)raw, &got);
        libdeflate_free_decompressor(d);
        if (res != LIBDEFLATE_SUCCESS || got != raw)
            return lmr_fail(err, LMR_ECORRUPT, "reading the clip: its chunk (%zu bytes stored) does not inflate to the "
                            "clip's %llu bytes: damaged deflate data", len, (unsigned long long)raw);
        src = dst, len = (size_t)raw;
    } else if (len != raw) {
        return lmr_fail(err, LMR_ECORRUPT, "reading the clip: its unfiltered chunk holds %zu bytes, the clip %llu", len,
                        (unsigned long long)raw);
    }
    if (unshuffle)
        h5_unshuffle(src, payload, (size_t)raw, (size_t)r->shape.elem_size);
    else if (src != payload)
        memcpy(payload, src, (size_t)raw);
    return 0;
}

int h5r_get(H5Reader *r, uint64_t i, const LabelIndex *labels, LmrBuf *scratch, char *err)
{
    const H5Shape *s = &r->shape;
    RecordInfo info = {.kind = s->kind, .dtype = s->dtype, .ndim = s->ndim};
    memcpy(info.dims, s->dims, sizeof info.dims);
    /* dims and rows were checked at open: dims[0] > 0, count a multiple of it, a clip < 2^44 bytes */
    uint64_t first = r->rows ? r->rows[2 * i] : 0, count = r->rows ? r->rows[2 * i + 1] : (uint64_t)s->dims[0] * s->dims[1];
    info.dims[1] = (uint32_t)(count / s->dims[0]);
    h5r_id(r, i, &info.id, &info.id_len);
    uint64_t lo = labels->label_off[i];
    info.n_labels = (uint16_t)(labels->label_off[i + 1] - lo);
    memcpy(info.labels, labels->labels + lo, 4 * (size_t)info.n_labels);
    uint64_t raw = count * s->inner_elems * s->elem_size;
    size_t head = LMR_RECORD_HEADER + info.id_len + 4 * (size_t)info.n_labels;
    /* the payload is read behind the place record_encode copies it to, so the two never overlap */
    int rc = r->direct.ok ? read_direct(r, i, raw, scratch, head, err) : 1;
    if (rc < 0)
        return rc;
    if (rc == 1) { /* through HDF5's own pipeline */
        if (buf_reserve(scratch, head + 2 * raw))
            return lmr_fail(err, LMR_ENOMEM, "%llu bytes: out of memory", (unsigned long long)raw);
        H5Capture cap;
        h5_lock(&cap);
        hid_t fsp, msp;
        rc = 0;
        if (h5_select_clip(r->data, s, i, first, count, &fsp, &msp) == 0) {
            if (H5Dread(r->data, r->mtype, msp, fsp, H5P_DEFAULT, scratch->data + head + raw) < 0)
                rc = h5_fail(err, NULL, "reading the clip");
            H5Sclose(fsp);
            H5Sclose(msp);
        } else {
            rc = h5_fail(err, NULL, "selecting the clip");
        }
        h5_unlock();
        if (rc)
            return rc;
    }
    uint8_t *payload = scratch->data + head + raw;
    RecordCtx raw_ctx = {.level = 0}; /* level 0 never touches the zstd contexts */
    if ((rc = record_encode(&raw_ctx, &info, payload, scratch)))
        return lmr_fail(err, rc, "%s", raw_ctx.last_error);
    uint64_t got = 0; /* record_encode's checksum of what was read, at offset 48, little endian */
    for (int k = 7; k >= 0; k--)
        got = got << 8 | scratch->data[48 + k];
    if (got != r->checksums[i])
        return lmr_fail(err, LMR_ECHECKSUM, "payload checksum %016llx, /checksums says %016llx", (unsigned long long)got,
                        (unsigned long long)r->checksums[i]);
    return 0;
}
