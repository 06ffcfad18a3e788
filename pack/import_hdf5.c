/* The importer's HDF5 source: one file holding the features of every clip stacked along the
 * first axis, the clip ids and the labels, as h5py writes them:
 *
 *     f.create_dataset("features", data=x)        # [N, D], [N, T, D] or [N, views, T, D]
 *     f.create_dataset("ids", data=ids)           # fixed ('S') or variable-length strings, or ints
 *     f.create_dataset("labels", data=y)          # [N] ints, [N, C] multi-hot, or vlen int lists
 *
 * Each clip is read with hyperslab selections (its features, id and labels), so memory does not
 * grow with N; a chunk cache keeps chunked, compressed files from being decompressed once per clip.
 * libhdf5 is Debian's serial build: everything here runs on the caller's one thread. */
#include "import.h"

#include <errno.h>
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

enum { LAB_INT, LAB_VLEN, LAB_HOT_INT, LAB_HOT_ENUM, LAB_HOT_FLOAT };
enum { ID_FIXED, ID_VLEN, ID_INT };

typedef struct {
    Importer *im;
    const char *path;
    Hdf5Names names;
    hid_t file, feat, ids, labels;
    hid_t f_mtype, id_ftype, id_mtype, lab_mtype;
    int dtype;
    int frank;
    hsize_t fdims[4];
    uint32_t views, t, d;
    hsize_t n, n_hot;       /* clips; multi-hot width C */
    int id_kind, lab_kind;
    size_t lab_esize;       /* LAB_HOT_ENUM: bytes of one value */
    int lab_signed;
    int n_classes;          /* > 0: labels at or above it are refused */
    hsize_t next, cur;      /* clip next() returns next; the one read() reads */
    ImportIdSet seen;
    LmrBuf fbuf, lbuf;
    char id[1100];
    char where[4200];
} H5Src;

/* f16 in memory: IEEE binary16, little endian (as shard_hdf5.c). */
static hid_t f16_type(void)
{
    hid_t t = H5Tcopy(H5T_IEEE_F32LE);
    if (t < 0 || H5Tset_fields(t, 15, 10, 5, 0, 10) < 0 || H5Tset_size(t, 2) < 0 || H5Tset_ebias(t, 15) < 0) {
        if (t >= 0)
            H5Tclose(t);
        return -1;
    }
    return t;
}

static void vlen_reclaim(hid_t type, hid_t space, void *buf)
{
#if H5_VERSION_GE(1, 12, 0)
    H5Treclaim(type, space, H5P_DEFAULT, buf);
#else
    H5Dvlen_reclaim(type, space, H5P_DEFAULT, buf);
#endif
}

/* Select row i of a dataset of rank r ([i, 0, ...], count [1, dims...]); the memory space of n
 * elements is returned (H5Sclose) or -1. */
static hid_t select_row(hid_t dset, hid_t *fspace, hsize_t i, hsize_t n_el)
{
    *fspace = H5Dget_space(dset);
    if (*fspace < 0)
        return -1;
    int r = H5Sget_simple_extent_ndims(*fspace);
    hsize_t dims[H5S_MAX_RANK], start[H5S_MAX_RANK] = {0}, count[H5S_MAX_RANK];
    if (r < 1 || H5Sget_simple_extent_dims(*fspace, dims, NULL) < 0)
        return -1;
    for (int k = 0; k < r; k++)
        count[k] = dims[k];
    start[0] = i;
    count[0] = 1;
    if (H5Sselect_hyperslab(*fspace, H5S_SELECT_SET, start, NULL, count, NULL) < 0)
        return -1;
    return H5Screate_simple(1, &n_el, NULL);
}

/* H5Dread of row i into buf (n_el elements of mtype). @return 0 or -1. */
static int read_row(hid_t dset, hid_t mtype, hsize_t i, hsize_t n_el, void *buf)
{
    hid_t fs = -1, ms = select_row(dset, &fs, i, n_el);
    int rc = ms >= 0 && H5Dread(dset, mtype, ms, fs, H5P_DEFAULT, buf) >= 0 ? 0 : -1;
    if (ms >= 0)
        H5Sclose(ms);
    if (fs >= 0)
        H5Sclose(fs);
    return rc;
}

/* The id of clip i into h->id. @return 0, or -1 with why set. */
static int read_id(H5Src *h, hsize_t i, const char **why)
{
    *why = "cannot be read";
    if (h->id_kind == ID_INT) {
        long long v;
        if (read_row(h->ids, H5T_NATIVE_LLONG, i, 1, &v))
            return -1;
        snprintf(h->id, sizeof h->id, "%lld", v);
        return 0;
    }
    if (h->id_kind == ID_VLEN) {
        char *p = NULL;
        hid_t fs = -1, ms = select_row(h->ids, &fs, i, 1);
        int rc = ms >= 0 && H5Dread(h->ids, h->id_mtype, ms, fs, H5P_DEFAULT, &p) >= 0 ? 0 : -1;
        if (!rc) {
            if (!p || strlen(p) >= sizeof h->id - 1) {
                *why = p ? "is longer than 1024 bytes" : "is missing (a NULL string)";
                rc = -1;
            } else {
                snprintf(h->id, sizeof h->id, "%s", p);
            }
            vlen_reclaim(h->id_mtype, ms, &p);
        }
        if (ms >= 0)
            H5Sclose(ms);
        if (fs >= 0)
            H5Sclose(fs);
        return rc;
    }
    size_t size = H5Tget_size(h->id_mtype);
    if (size >= sizeof h->id) {
        *why = "is longer than 1024 bytes";
        return -1;
    }
    memset(h->id, 0, sizeof h->id);
    if (read_row(h->ids, h->id_mtype, i, 1, h->id))
        return -1;
    size_t len = strnlen(h->id, size);
    if (H5Tget_strpad(h->id_mtype) == H5T_STR_SPACEPAD)
        while (len > 0 && h->id[len - 1] == ' ')
            len--;
    h->id[len] = 0;
    return 0;
}

/* Add label c to clip (range and repeat checks). @return 0, or -1 with why written. */
static int add_label(H5Src *h, ImportClip *c, long long v, char *why, size_t cap)
{
    if (v < 0 || v > INT32_MAX) {
        snprintf(why, cap, "label %lld is not a class index", v);
        return -1;
    }
    if (h->n_classes > 0 && v >= h->n_classes) {
        snprintf(why, cap, "class %lld out of range [0, %d)", v, h->n_classes);
        return -1;
    }
    for (int k = 0; k < c->n_labels; k++)
        if (c->labels[k] == v) {
            snprintf(why, cap, "label %lld listed twice", v);
            return -1;
        }
    if (c->n_labels == LMR_MAX_LABELS) {
        snprintf(why, cap, "more than %d labels", LMR_MAX_LABELS);
        return -1;
    }
    c->labels[c->n_labels++] = (int32_t)v;
    return 0;
}

/* The labels of clip i. @return 0, or -1 with why written. */
static int read_labels(H5Src *h, hsize_t i, ImportClip *c, char *why, size_t cap)
{
    c->n_labels = 0;
    snprintf(why, cap, "its labels cannot be read from dataset '%s'", h->names.labels);
    if (h->lab_kind == LAB_INT) {
        long long v;
        if (read_row(h->labels, H5T_NATIVE_LLONG, i, 1, &v))
            return -1;
        return add_label(h, c, v, why, cap);
    }
    if (h->lab_kind == LAB_VLEN) {
        hvl_t vl = {0, NULL};
        hid_t fs = -1, ms = select_row(h->labels, &fs, i, 1);
        int rc = ms >= 0 && H5Dread(h->labels, h->lab_mtype, ms, fs, H5P_DEFAULT, &vl) >= 0 ? 0 : -1;
        if (!rc) {
            for (size_t k = 0; k < vl.len && !rc; k++)
                rc = add_label(h, c, ((const long long *)vl.p)[k], why, cap);
            vlen_reclaim(h->lab_mtype, ms, &vl);
        }
        if (ms >= 0)
            H5Sclose(ms);
        if (fs >= 0)
            H5Sclose(fs);
        return rc;
    }
    size_t es = h->lab_kind == LAB_HOT_ENUM ? h->lab_esize : 8;
    if (buf_reserve(&h->lbuf, (size_t)h->n_hot * es)) {
        snprintf(why, cap, "out of memory for its labels");
        return -1;
    }
    if (read_row(h->labels, h->lab_mtype, i, h->n_hot, h->lbuf.data))
        return -1;
    for (hsize_t k = 0; k < h->n_hot; k++) {
        const uint8_t *p = h->lbuf.data + k * es;
        long long v;
        if (h->lab_kind == LAB_HOT_FLOAT) {
            double x;
            memcpy(&x, p, 8);
            v = x == 0.0 ? 0 : x == 1.0 ? 1 : 2;
            if (v == 2) {
                snprintf(why, cap, "multi-hot labels hold %g at class %llu, want 0 or 1", x, (unsigned long long)k);
                return -1;
            }
        } else if (h->lab_kind == LAB_HOT_INT) {
            memcpy(&v, p, 8);
        } else { /* an enum (h5py's bool): its integer value, little endian as the host */
            uint64_t u = 0;
            memcpy(&u, p, es);
            if (h->lab_signed && es < 8 && (u >> (8 * es - 1)) & 1)
                u |= ~(uint64_t)0 << (8 * es);
            v = (long long)u;
        }
        if (v != 0 && v != 1) {
            snprintf(why, cap, "multi-hot labels hold %lld at class %llu, want 0 or 1", v, (unsigned long long)k);
            return -1;
        }
        if (v && add_label(h, c, (long long)k, why, cap))
            return -1;
    }
    return 0;
}

static int h5_next(ImportSource *s, ImportClip *c, char *err)
{
    H5Src *h = s->self;
    while (h->next < h->n) {
        hsize_t i = h->next++;
        h->cur = i;
        const char *why;
        char msg[LMR_ERRLEN];
        snprintf(h->where, sizeof h->where, "%s: clip %llu", h->path, (unsigned long long)i);
        c->where = h->where;
        if (read_id(h, i, &why)) {
            snprintf(msg, sizeof msg, "its id in dataset '%s' %s", h->names.ids, why);
            if (importer_bad_entry(h->im, h->where, "", msg, err))
                return LMR_EPARSE;
            continue;
        }
        c->id = h->id;
        if (!h->id[0]) {
            if (importer_bad_entry(h->im, h->where, "", "empty id", err))
                return LMR_EPARSE;
            continue;
        }
        if (read_labels(h, i, c, msg, sizeof msg)) {
            if (importer_bad_entry(h->im, h->where, h->id, msg, err))
                return LMR_EPARSE;
            continue;
        }
        int64_t first = import_idset_get(&h->seen, h->id);
        if (first >= 0) {
            snprintf(msg, sizeof msg, "id '%.200s' is also the id of clip %lld", h->id, (long long)first);
            if (importer_bad_entry(h->im, h->where, h->id, msg, err))
                return LMR_EPARSE;
            continue;
        }
        if (import_idset_put(&h->seen, h->id, (int64_t)i))
            return lmr_fail(err, LMR_ENOMEM, "%s: out of memory", h->path);
        return 1;
    }
    return 0;
}

static int h5_read(ImportSource *s, ImportArray *a, int *fatal, char *msg)
{
    H5Src *h = s->self;
    size_t es = h->dtype == LMR_DT_F32 ? 4 : 2;
    hsize_t n_el = (hsize_t)h->views * h->t * h->d;
    if (buf_reserve(&h->fbuf, (size_t)n_el * es)) {
        *fatal = 1;
        return lmr_fail(msg, LMR_ENOMEM, "%s: out of memory for a clip of %llu values", h->where,
                        (unsigned long long)n_el);
    }
    if (read_row(h->feat, h->f_mtype, h->cur, n_el, h->fbuf.data))
        return lmr_fail(msg, LMR_EHDF5, "%s: its features cannot be read from dataset '%s'", h->where,
                        h->names.features);
    a->dtype = h->dtype;
    a->views = h->views;
    a->t = h->t;
    a->d = h->d;
    a->data = h->fbuf.data;
    a->file_bytes = (uint64_t)n_el * es;
    return 0;
}

static void h5_free(H5Src *h)
{
    if (!h)
        return;
    hid_t types[] = {h->f_mtype, h->id_ftype, h->id_mtype, h->lab_mtype};
    for (size_t k = 0; k < sizeof types / sizeof types[0]; k++)
        if (types[k] > 0)
            H5Tclose(types[k]);
    hid_t sets[] = {h->feat, h->ids, h->labels};
    for (size_t k = 0; k < sizeof sets / sizeof sets[0]; k++)
        if (sets[k] > 0)
            H5Dclose(sets[k]);
    if (h->file > 0)
        H5Fclose(h->file);
    import_idset_free(&h->seen);
    buf_free(&h->fbuf);
    buf_free(&h->lbuf);
    free(h);
}

void import_hdf5_close(ImportSource *s)
{
    h5_free(s->self);
    s->self = NULL;
    shardmeta_free(&s->meta);
}

/* Open dataset name (with a chunk cache for the features); rank and dims out. */
static int open_set(H5Src *h, const char *name, size_t cache, hid_t *d, int *rank, hsize_t *dims, char *err)
{
    htri_t there = H5Lexists(h->file, name, H5P_DEFAULT);
    if (there <= 0)
        return lmr_fail(err, LMR_EINVAL, "%s: no dataset '%s' in it", h->path, name);
    hid_t dapl = H5Pcreate(H5P_DATASET_ACCESS);
    if (dapl >= 0 && cache)
        H5Pset_chunk_cache(dapl, 12421, cache, 1.0);
    *d = H5Dopen2(h->file, name, dapl >= 0 ? dapl : H5P_DEFAULT);
    if (dapl >= 0)
        H5Pclose(dapl);
    if (*d < 0)
        return lmr_fail(err, LMR_EHDF5, "%s: '%s' cannot be opened as a dataset", h->path, name);
    hid_t sp = H5Dget_space(*d);
    *rank = sp >= 0 ? H5Sget_simple_extent_ndims(sp) : -1;
    if (*rank < 0 || *rank > 4 || H5Sget_simple_extent_dims(sp, dims, NULL) < 0) {
        if (sp >= 0)
            H5Sclose(sp);
        return lmr_fail(err, LMR_EUNSUPPORTED, "%s: dataset '%s' has %d dimensions, at most 4 are read", h->path, name,
                        *rank);
    }
    H5Sclose(sp);
    return 0;
}

static int open_features(H5Src *h, char *err)
{
    const char *name = h->names.features;
    int rc = open_set(h, name, 128u << 20, &h->feat, &h->frank, h->fdims, err);
    if (rc)
        return rc;
    if (h->frank < 2)
        return lmr_fail(err, LMR_EUNSUPPORTED, "%s: dataset '%s' has %d dimension%s, want [N, D], [N, T, D] or "
                        "[N, views, T, D]", h->path, name, h->frank, h->frank == 1 ? "" : "s");
    hid_t ft = H5Dget_type(h->feat);
    H5T_class_t cls = ft >= 0 ? H5Tget_class(ft) : H5T_NO_CLASS;
    size_t size = ft >= 0 ? H5Tget_size(ft) : 0;
    if (ft >= 0)
        H5Tclose(ft);
    if (cls != H5T_FLOAT || (size != 2 && size != 4))
        return lmr_fail(err, LMR_EUNSUPPORTED, "%s: dataset '%s' holds %s, want float32 or float16 (h5py: "
                        "data=x.astype('float32'))", h->path, name,
                        cls == H5T_FLOAT && size == 8 ? "float64" : cls == H5T_INTEGER ? "integers" : "another type");
    h->dtype = size == 4 ? LMR_DT_F32 : LMR_DT_F16;
    h->f_mtype = size == 4 ? H5Tcopy(H5T_IEEE_F32LE) : f16_type();
    if (h->f_mtype < 0)
        return lmr_fail(err, LMR_EHDF5, "%s: HDF5 type", h->path);
    h->n = h->fdims[0];
    hsize_t v = h->frank == 4 ? h->fdims[1] : 1, t = h->frank >= 3 ? h->fdims[h->frank - 2] : 1,
            d = h->fdims[h->frank - 1];
    if (h->n == 0 || v == 0 || t == 0 || d == 0)
        return lmr_fail(err, LMR_EINVAL, "%s: dataset '%s' is empty (a dimension of size 0)", h->path, name);
    if (v > UINT32_MAX || t > UINT32_MAX || d > UINT32_MAX || v * t > ((hsize_t)1 << 34) / d)
        return lmr_fail(err, LMR_EUNSUPPORTED, "%s: dataset '%s': a clip of %llu x %llu x %llu values is too large",
                        h->path, name, (unsigned long long)v, (unsigned long long)t, (unsigned long long)d);
    h->views = (uint32_t)v;
    h->t = (uint32_t)t;
    h->d = (uint32_t)d;
    return 0;
}

static int open_ids(H5Src *h, char *err)
{
    const char *name = h->names.ids;
    int rank;
    hsize_t dims[4];
    int rc = open_set(h, name, 0, &h->ids, &rank, dims, err);
    if (rc)
        return rc;
    if (rank != 1 || dims[0] != h->n)
        return lmr_fail(err, LMR_EMISMATCH, "%s: dataset '%s' must be [N] with N = %llu, the clips of '%s'",
                        h->path, name, (unsigned long long)h->n, h->names.features);
    h->id_ftype = H5Dget_type(h->ids);
    H5T_class_t cls = h->id_ftype >= 0 ? H5Tget_class(h->id_ftype) : H5T_NO_CLASS;
    if (cls == H5T_INTEGER) {
        h->id_kind = ID_INT;
        return 0;
    }
    if (cls != H5T_STRING)
        return lmr_fail(err, LMR_EUNSUPPORTED, "%s: dataset '%s' holds neither strings nor integers", h->path, name);
    if (H5Tis_variable_str(h->id_ftype) > 0) {
        h->id_kind = ID_VLEN;
        h->id_mtype = H5Tcopy(H5T_C_S1);
        if (h->id_mtype < 0 || H5Tset_size(h->id_mtype, H5T_VARIABLE) < 0 ||
            H5Tset_cset(h->id_mtype, H5Tget_cset(h->id_ftype)) < 0)
            return lmr_fail(err, LMR_EHDF5, "%s: HDF5 string type", h->path);
    } else {
        h->id_kind = ID_FIXED;
        h->id_mtype = H5Tcopy(h->id_ftype);
        if (h->id_mtype < 0)
            return lmr_fail(err, LMR_EHDF5, "%s: HDF5 string type", h->path);
    }
    return 0;
}

static int open_labels(H5Src *h, char *err)
{
    const char *name = h->names.labels;
    int rank;
    hsize_t dims[4];
    int rc = open_set(h, name, 16u << 20, &h->labels, &rank, dims, err);
    if (rc)
        return rc;
    if (rank < 1 || rank > 2 || dims[0] != h->n)
        return lmr_fail(err, LMR_EMISMATCH, "%s: dataset '%s' must be [N] or [N, C] with N = %llu, the clips of '%s'",
                        h->path, name, (unsigned long long)h->n, h->names.features);
    hid_t ft = H5Dget_type(h->labels);
    H5T_class_t cls = ft >= 0 ? H5Tget_class(ft) : H5T_NO_CLASS;
    rc = 0;
    if (rank == 1 && cls == H5T_INTEGER) {
        h->lab_kind = LAB_INT;
    } else if (rank == 1 && cls == H5T_VLEN) {
        hid_t base = H5Tget_super(ft);
        if (base < 0 || H5Tget_class(base) != H5T_INTEGER)
            rc = lmr_fail(err, LMR_EUNSUPPORTED, "%s: dataset '%s' holds lists of something other than integers",
                          h->path, name);
        if (base >= 0)
            H5Tclose(base);
        h->lab_kind = LAB_VLEN;
        if (!rc && (h->lab_mtype = H5Tvlen_create(H5T_NATIVE_LLONG)) < 0)
            rc = lmr_fail(err, LMR_EHDF5, "%s: HDF5 type", h->path);
    } else if (rank == 2 && (cls == H5T_INTEGER || cls == H5T_FLOAT || cls == H5T_ENUM)) {
        h->n_hot = dims[1];
        if (h->n_hot == 0 || h->n_hot > (1 << 24))
            rc = lmr_fail(err, LMR_EUNSUPPORTED, "%s: dataset '%s' is [N, %llu]: want 1 to %d classes", h->path, name,
                          (unsigned long long)h->n_hot, 1 << 24);
        if (cls == H5T_INTEGER) {
            h->lab_kind = LAB_HOT_INT;
            h->lab_mtype = H5Tcopy(H5T_NATIVE_LLONG);
        } else if (cls == H5T_FLOAT) {
            h->lab_kind = LAB_HOT_FLOAT;
            h->lab_mtype = H5Tcopy(H5T_NATIVE_DOUBLE);
        } else { /* h5py's bool is an enum of int8; HDF5 does not convert enums to integers */
            h->lab_kind = LAB_HOT_ENUM;
            h->lab_mtype = H5Tget_native_type(ft, H5T_DIR_ASCEND);
            hid_t base = h->lab_mtype >= 0 ? H5Tget_super(h->lab_mtype) : -1;
            h->lab_esize = h->lab_mtype >= 0 ? H5Tget_size(h->lab_mtype) : 0;
            h->lab_signed = base >= 0 && H5Tget_sign(base) == H5T_SGN_2;
            if (base >= 0)
                H5Tclose(base);
            if (!rc && (h->lab_esize < 1 || h->lab_esize > 8))
                rc = lmr_fail(err, LMR_EUNSUPPORTED, "%s: dataset '%s': enum of %zu bytes", h->path, name, h->lab_esize);
        }
        if (!rc && h->lab_mtype < 0)
            rc = lmr_fail(err, LMR_EHDF5, "%s: HDF5 type", h->path);
    } else {
        rc = lmr_fail(err, LMR_EUNSUPPORTED, "%s: dataset '%s' is neither [N] integers, [N, C] multi-hot nor [N] "
                      "variable-length lists of integers", h->path, name);
    }
    if (ft >= 0)
        H5Tclose(ft);
    return rc;
}

int import_hdf5_open(ImportSource *s, Importer *im, const char *path, const Hdf5Names *names,
                     const char *class_names, int n_classes, char *err)
{
    memset(s, 0, sizeof *s);
    shardmeta_init(&s->meta);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL); /* errors come back as codes, never printed */
    H5Src *h = calloc(1, sizeof *h);
    if (!h)
        return lmr_fail(err, LMR_ENOMEM, "out of memory");
    h->im = im;
    h->path = path;
    h->names.features = names && names->features ? names->features : "features";
    h->names.ids = names && names->ids ? names->ids : "ids";
    h->names.labels = names && names->labels ? names->labels : "labels";
    h->file = h->feat = h->ids = h->labels = -1;
    h->f_mtype = h->id_ftype = h->id_mtype = h->lab_mtype = -1;
    s->self = h;
    s->next = h5_next;
    s->read = h5_read;
    s->noun = "clip";
    int rc = 0;
    struct stat sb;
    if (stat(path, &sb) != 0) {
        rc = lmr_fail(err, -errno, "%s: %s", path, strerror(errno));
        goto done;
    }
    if (H5Fis_hdf5(path) <= 0) {
        rc = lmr_fail(err, LMR_EBADMAGIC, "%s: not an HDF5 file", path);
        goto done;
    }
    if ((h->file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT)) < 0) {
        rc = lmr_fail(err, LMR_EHDF5, "%s: cannot be opened", path);
        goto done;
    }
    if ((rc = open_features(h, err)) || (rc = open_ids(h, err)) || (rc = open_labels(h, err)))
        goto done;
    if (class_names) {
        if ((rc = import_read_class_names(class_names, &s->meta, err)))
            goto done;
        if (n_classes > 0 && n_classes != s->meta.n_classes) {
            rc = lmr_fail(err, LMR_EMISMATCH, "%s names %d classes, but %d are expected (--classes or the shard)",
                          class_names, s->meta.n_classes, n_classes);
            goto done;
        }
        n_classes = s->meta.n_classes;
    }
    if (h->n_hot) {
        if (n_classes > 0 && (hsize_t)n_classes != h->n_hot) {
            rc = lmr_fail(err, LMR_EMISMATCH, "%s: dataset '%s' is multi-hot over %llu classes, but %d are expected "
                          "(--classes, --class-names or the shard)", path, h->names.labels,
                          (unsigned long long)h->n_hot, n_classes);
            goto done;
        }
        n_classes = (int)h->n_hot;
    }
    h->n_classes = n_classes;
    snprintf(s->meta.backbone, sizeof s->meta.backbone, "hdf5");
    if (n_classes > s->meta.n_classes)
        s->meta.n_classes = n_classes;
    s->listed = h->n;
done:
    if (rc)
        import_hdf5_close(s);
    return rc;
}
