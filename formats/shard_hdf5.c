/* HDF5 shards (DESIGN section 4), the reader and the helpers the writer shares. Decoded payloads
 * live in /features or /frames so plain h5py reads them: [N, views, T, ...] while T is constant,
 * rows [sum views*T, ...] + /rows once it varies. A file without the `lmr_complete` attribute was
 * not closed cleanly and is refused. libhdf5 (Debian's serial build) is not thread-safe: the
 * readers of one set serialise their HDF5 calls with the set's mutex. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "shard_hdf5.h"

// --- helpers ----------------------------------------------------------------------------------

static herr_t err_walk(unsigned n, const H5E_error2_t *e, void *user)
{
    if (n == 0)
        snprintf(user, 200, "%s", e->desc ? e->desc : "");
    return 0;
}

/* Fail with HDF5's innermost message, which names the actual cause. */
int h5_fail(char *err, const char *path, const char *what)
{
    char msg[200] = "";
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_DOWNWARD, err_walk, msg);
    H5Eclear2(H5E_DEFAULT);
    return lmr_fail(err, LMR_EHDF5, "%s: %s%s%s", path, what, msg[0] ? ": " : "", msg);
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

/* Read a whole 1-D or 2-D dataset of elem-byte elements of type mt into an owned buffer;
 * *n0 = its first dimension. NULL on failure. */
void *h5_read_small(hid_t file, const char *name, hid_t mt, size_t elem, hsize_t *n0)
{
    hid_t d = H5Dopen2(file, name, H5P_DEFAULT);
    if (d < 0)
        return NULL;
    hid_t sp = H5Dget_space(d);
    hsize_t dims[2] = {0, 1};
    int rank = sp >= 0 ? H5Sget_simple_extent_dims(sp, dims, NULL) : -1;
    void *buf = NULL;
    if (rank >= 1 && rank <= 2) {
        size_t n = (size_t)dims[0] * (rank == 2 ? dims[1] : 1);
        buf = malloc(n ? n * elem : 1);
        if (buf && n && H5Dread(d, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0) {
            free(buf);
            buf = NULL;
        }
        *n0 = dims[0];
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

// --- reader -------------------------------------------------------------------------------------

struct H5Reader {
    pthread_mutex_t *lock; /* the set's: every HDF5 call after open goes through it */
    hid_t file, data, mtype;
    char path[256];
    H5Shape shape;
    uint64_t n;
    char *ids;            /* [n][width], NUL padded */
    size_t width;
    uint64_t *checksums;
    uint64_t *rows;       /* [2n] */
};

void h5r_close(H5Reader **pr)
{
    if (!pr || !*pr)
        return;
    H5Reader *r = *pr;
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
    *pr = NULL;
}

int h5r_open(H5Reader **out, const char *path, pthread_mutex_t *lock, ShardMeta *meta, LabelIndex *labels, char *err)
{
    *out = NULL;
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    H5Reader *r = calloc(1, sizeof *r);
    if (!r)
        return LMR_ENOMEM;
    r->file = r->data = r->mtype = -1;
    r->lock = lock;
    snprintf(r->path, sizeof r->path, "%s", path);
    ShardMeta hint;
    shardmeta_init(&hint);
    uint64_t *lidx = NULL;
    int32_t *lval = NULL;
    int rc = 0;
    char *json = NULL;
    if ((r->file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT)) < 0) {
        rc = h5_fail(err, path, "opening (an interrupted pack leaves an unreadable file)");
        goto fail;
    }
    if (H5Aexists(r->file, "lmr_complete") <= 0) {
        rc = lmr_fail(err, LMR_ECORRUPT, "%s: not a complete lmr HDF5 shard (no lmr_complete mark)", path);
        goto fail;
    }
    if (!(json = h5_read_attr_str(r->file, "lmr_meta"))) {
        rc = lmr_fail(err, LMR_ECORRUPT, "%s: no lmr_meta attribute", path);
        goto fail;
    }
    if ((rc = shardmeta_from_json(&hint, json, err)))
        goto fail;
    if (hint.n_records == 0)
        goto done;
    RecordInfo first = {.kind = hint.kind, .dtype = hint.dtype, .ndim = hint.ndim};
    memcpy(first.dims, hint.dims, sizeof first.dims);
    if (h5_shape_set(&r->shape, &first)) {
        rc = lmr_fail(err, LMR_ECORRUPT, "%s: lmr_meta describes no storable shape", path);
        goto fail;
    }
    r->shape.rows_layout = h5_link_exists(r->file, "/rows");
    hid_t it = H5Dopen2(r->file, "/ids", H5P_DEFAULT), t = it >= 0 ? H5Dget_type(it) : -1;
    r->width = t >= 0 ? H5Tget_size(t) : 0;
    if (t >= 0)
        H5Tclose(t);
    if (it >= 0)
        H5Dclose(it);
    hid_t st = H5Tcopy(H5T_C_S1);
    H5Tset_size(st, r->width ? r->width : 1);
    H5Tset_strpad(st, H5T_STR_NULLPAD);
    H5Tset_cset(st, H5T_CSET_UTF8);
    hsize_t n = 0, nc = 0, ni = 0, nl = 0, nr = 0;
    r->ids = r->width ? h5_read_small(r->file, "/ids", st, r->width, &n) : NULL;
    H5Tclose(st);
    r->checksums = h5_read_small(r->file, "/checksums", H5T_NATIVE_UINT64, 8, &nc);
    lidx = h5_read_small(r->file, "/label_index", H5T_NATIVE_UINT64, 8, &ni);
    if (h5_link_exists(r->file, "/label_values"))
        lval = h5_read_small(r->file, "/label_values", H5T_NATIVE_INT32, 4, &nl);
    if (r->shape.rows_layout)
        r->rows = h5_read_small(r->file, "/rows", H5T_NATIVE_UINT64, 8, &nr);
    if (!r->ids || !r->checksums || !lidx || nc != n || ni != n || (r->shape.rows_layout && (!r->rows || nr != n)) ||
        (!r->shape.rows_layout && hint.dims[1] == 0)) {
        rc = lmr_fail(err, LMR_ECORRUPT, "%s: /ids, /checksums, /label_index or /rows missing or of other sizes", path);
        goto fail;
    }
    r->n = n;
    hsize_t dd[6] = {0};
    hid_t dapl = H5Pcreate(H5P_DATASET_ACCESS);
    H5Pset_chunk_cache(dapl, 1021, CHUNK_CACHE_BYTES, 1.0);
    r->data = H5Dopen2(r->file, h5_data_name(r->shape.kind), dapl);
    H5Pclose(dapl);
    hid_t sp = r->data >= 0 ? H5Dget_space(r->data) : -1;
    int rank = sp >= 0 ? H5Sget_simple_extent_dims(sp, dd, NULL) : -1;
    if (sp >= 0)
        H5Sclose(sp);
    if (rank != (r->shape.rows_layout ? 1 : 3) + r->shape.inner_rank || (r->mtype = h5_elem_type(r->shape.dtype)) < 0) {
        rc = lmr_fail(err, LMR_ECORRUPT, "%s: %s has rank %d, the metadata says otherwise", path,
                      h5_data_name(r->shape.kind), rank);
        goto fail;
    }
    for (uint64_t i = 0; i < n; i++) {
        RecordInfo info = first;
        info.id = r->ids + i * r->width;
        info.id_len = (uint16_t)strnlen(info.id, r->width);
        uint64_t lo = lidx[2 * i], cnt = lidx[2 * i + 1];
        uint64_t rf = r->rows ? r->rows[2 * i] : i, rcount = r->rows ? r->rows[2 * i + 1] : 1;
        if (cnt > LMR_MAX_LABELS || lo + cnt > nl || (r->rows && (rcount == 0 || rcount % first.dims[0] || rf + rcount > dd[0])) ||
            (!r->rows && i >= dd[0]) || info.id_len == 0) {
            rc = lmr_fail(err, LMR_ECORRUPT, "%s: clip %llu: labels, rows or id out of range", path, (unsigned long long)i);
            goto fail;
        }
        info.n_labels = (uint16_t)cnt;
        if (cnt)
            memcpy(info.labels, lval + lo, 4 * cnt);
        if (r->rows)
            info.dims[1] = (uint32_t)(rcount / first.dims[0]);
        if ((rc = labelindex_push(labels, info.labels, info.n_labels)) || (rc = shardmeta_account(meta, &info)))
            goto fail;
    }
done:
    shardmeta_merge_hint(meta, &hint);
    shardmeta_free(&hint);
    free(json);
    free(lidx);
    free(lval);
    *out = r;
    return 0;
fail:
    shardmeta_free(&hint);
    free(json);
    free(lidx);
    free(lval);
    h5r_close(&r);
    return rc;
}

void h5r_id(const H5Reader *r, uint64_t i, const char **id, uint16_t *len)
{
    *id = r->ids + i * r->width;
    *len = (uint16_t)strnlen(*id, r->width);
}

int h5r_get(H5Reader *r, uint64_t i, const LabelIndex *labels, LmrBuf *scratch, char *err)
{
    const H5Shape *s = &r->shape;
    RecordInfo info = {.kind = s->kind, .dtype = s->dtype, .ndim = s->ndim};
    memcpy(info.dims, s->dims, sizeof info.dims);
    uint64_t first = r->rows ? r->rows[2 * i] : 0, count = r->rows ? r->rows[2 * i + 1] : (uint64_t)s->dims[0] * s->dims[1];
    info.dims[1] = (uint32_t)(count / s->dims[0]);
    h5r_id(r, i, &info.id, &info.id_len);
    uint64_t lo = labels->label_off[i];
    info.n_labels = (uint16_t)(labels->label_off[i + 1] - lo);
    memcpy(info.labels, labels->labels + lo, 4 * (size_t)info.n_labels);
    uint64_t raw = count * s->inner_elems * s->elem_size;
    size_t head = LMR_RECORD_HEADER + info.id_len + 4 * (size_t)info.n_labels;
    /* the payload is read behind the place record_encode copies it to, so the two never overlap */
    if (buf_reserve(scratch, head + 2 * raw))
        return lmr_fail(err, LMR_ENOMEM, "clip %s: %llu bytes", info.id, (unsigned long long)raw);
    uint8_t *payload = scratch->data + head + raw;
    pthread_mutex_lock(r->lock);
    hid_t fsp, msp;
    herr_t hr = -1;
    if (h5_select_clip(r->data, s, i, first, count, &fsp, &msp) == 0) {
        hr = H5Dread(r->data, r->mtype, msp, fsp, H5P_DEFAULT, payload);
        H5Sclose(fsp);
        H5Sclose(msp);
    }
    int rc = hr < 0 ? h5_fail(err, r->path, "reading a clip") : 0;
    pthread_mutex_unlock(r->lock);
    if (rc)
        return rc;
    RecordCtx raw_ctx = {.level = 0}; /* level 0 never touches the zstd contexts */
    if ((rc = record_encode(&raw_ctx, &info, payload, scratch)))
        return lmr_fail(err, rc, "%s", raw_ctx.last_error);
    uint64_t got = 0; /* record_encode's checksum of what was read, at offset 48, little endian */
    for (int k = 7; k >= 0; k--)
        got = got << 8 | scratch->data[48 + k];
    if (got != r->checksums[i])
        return lmr_fail(err, LMR_ECHECKSUM, "clip %.*s: payload checksum %016llx, /checksums says %016llx",
                        (int)info.id_len, info.id, (unsigned long long)got, (unsigned long long)r->checksums[i]);
    return 0;
}
