/* Importing features that were made elsewhere into a shard: one importer core that takes clips
 * (id, labels, features) from a source, checks and converts them and puts them into a shard
 * writer, and three sources: .npy files named by a manifest CSV (--from-npy), one HDF5 file of
 * stacked arrays (--from-hdf5), and VideoLT's .npy files with its list format (--from-videolt). */
#ifndef LMR_PACK_IMPORT_H
#define LMR_PACK_IMPORT_H

#include <stdint.h>

#include "manifest.h"
#include "npy.h"
#include "pack.h"
#include "shard.h"

typedef struct {
    int max_frames;        /* 0 = keep all rows; N = N evenly spaced rows of each view */
    int zstd_level;        /* record payload compression, default 3 */
    int strict;            /* fail on the first clip that cannot be imported instead of counting it */
    int dtype;             /* LMR_DT_F16 / LMR_DT_F32 of the records; 0 = the first readable clip's */
    uint32_t views;        /* views the records must have; 0 = the first readable clip's */
    int64_t dim;           /* D the records must have; 0 = the first readable clip's */
    int n_classes;         /* > 0: labels at or above it are refused (a class file decides when given,
                            * and must agree) */
    const ShardMeta *hint; /* command-line metadata, applied after the source's; may be NULL */
    PackFailFn fail;       /* each clip that is not stored; may be NULL */
    void *fail_user;
    PackProgressFn progress; /* about twice a second, and once at the end; may be NULL */
    void *progress_user;
} ImportOpts;

typedef struct {
    uint64_t listed;       /* clips the source names (good entries) */
    uint64_t bad_lines;    /* entries refused before any file is read (bad id or label, label out of
                            * range, duplicate id) */
    uint64_t written, present;
    uint64_t failed;       /* clips not stored: bad_lines, and features missing, unreadable, of
                            * another shape, holding NaN/Inf, or stored already with other content */
    uint64_t converted;    /* clips converted to the records' dtype (f16 <-> f32) */
    uint64_t bytes_read;
    double seconds;
} ImportStats;

/* One clip of a source. Strings are borrowed until the source's next call. */
typedef struct {
    const char *id;
    int n_labels;
    int32_t labels[LMR_MAX_LABELS];
    const char *where;     /* what messages name: the .npy path, or "FILE.h5: clip N" */
} ImportClip;

/* Features of one clip: views x t x d elements of dtype, C order, borrowed until the next read. */
typedef struct {
    int dtype;
    uint32_t views, t, d;
    const uint8_t *data;
    uint64_t file_bytes;   /* bytes read for it */
} ImportArray;

typedef struct ImportSource ImportSource;
typedef struct Importer Importer;

struct ImportSource {
    void *self;
    /** Next clip: 1 (clip filled), 0 (no more), or a negative code that ends the import (err). */
    int (*next)(ImportSource *s, ImportClip *c, char *err);
    /** Features of the clip last returned by next: 0, or a negative code with msg the reason the
     *  clip cannot be stored ("WHERE: reason"); LMR_ENOMEM and LMR_EHDF5 of the file itself end
     *  the import only when fatal is set to 1. */
    int (*read)(ImportSource *s, ImportArray *a, int *fatal, char *msg);
    ShardMeta meta;        /* what the source says of the shard (dataset, split, backbone, classes) */
    const char *noun;      /* what a clip's features are, in notes: ".npy file", "clip" */
    uint64_t listed;       /* good entries, when known in advance (progress) */
};

/** Report an entry of the source that is refused before its features are read (a bad line of a
 *  list): counted in bad_lines and failed; strict makes it an error (returned).
 *  where: "FILE:LINE", id ("" when unknown), reason. */
int importer_bad_entry(Importer *im, const char *where, const char *id, const char *reason, char *err);

/** Begin an import into w. warn (may be NULL) gets the notes ("FILE: reason"). The importer is
 *  freed by import_run. @return 0 or LMR_ENOMEM. */
int importer_new(Importer **im, const ImportOpts *o, ShardWriter *w, LmrWarnFn warn, void *user,
                 ImportStats *stats);
/** Put every clip of src into the shard, then free im. Clips already in the shard are counted as
 *  present; each clip that cannot be stored is reported through o->fail and counted (strict: the
 *  first one is the error).
 *  @return 0, or the first error when strict, when the source names no clip, or when the shard
 *  cannot be written (err names the file and clip). */
int import_run(Importer *im, ImportSource *src, char *err);
/** Free an importer that import_run will not get (a source that could not be opened). */
void importer_free(Importer *im);

/* A set of clip ids (owned copies), each with a value. */
typedef struct {
    char **key;
    int64_t *val;
    size_t cap, n;
} ImportIdSet;

/** Value of id, or -1 when absent. */
int64_t import_idset_get(const ImportIdSet *s, const char *id);
/** Add id (absent) with val >= 0. @return 0 or LMR_ENOMEM. */
int import_idset_put(ImportIdSet *s, const char *id, int64_t val);
void import_idset_free(ImportIdSet *s);

/* --- sources ---------------------------------------------------------------------------------- */

/** .npy files DIR/<clip_id>.npy named by a manifest CSV (a header naming at least the columns
 *  clip_id and labels, labels ';'-separated; other columns are not read). class_names: a file of
 *  one class name per line (NULL: none; the count comes from n_classes or the largest label).
 *  Bad rows (empty id, an id with '..' or a leading '/', bad or out-of-range labels, an id listed
 *  twice) are reported through importer_bad_entry as "MANIFEST:LINE".
 *  @return 0, or an error reading the manifest or the class names, or no clip listed (err). */
int import_npy_open(ImportSource *s, Importer *im, const char *dir, const char *manifest, const char *class_names,
                    int n_classes, int strict, char *err);
void import_npy_close(ImportSource *s);

/** VideoLT: DIR/<video_id>.npy with a list file `<video_id> <label>[,<label>...]` and optional
 *  count-labels-train.lst (class names and count). */
int import_videolt_open(ImportSource *s, Importer *im, const char *dir, const char *list, const char *counts,
                        int n_classes, int strict, LmrWarnFn warn, void *user, char *err);
void import_videolt_close(ImportSource *s);

typedef struct {
    const char *features;  /* dataset names in the file: default "features", "ids", "labels" */
    const char *ids;
    const char *labels;
} Hdf5Names;

/** One HDF5 file: features [N, D], [N, T, D] or [N, views, T, D] (f16 or f32); ids [N] (fixed or
 *  variable-length strings, or integers); labels [N] integers, [N, C] multi-hot (integers, bools or
 *  0/1 floats) or [N] variable-length lists of integers. Read clip by clip. */
int import_hdf5_open(ImportSource *s, Importer *im, const char *path, const Hdf5Names *names,
                     const char *class_names, int n_classes, char *err);
void import_hdf5_close(ImportSource *s);

/** Read a class-names file (one name per line, UTF-8; a last line without newline is fine; an
 *  empty line is an error) into m's class names and n_classes. @return 0, -errno, LMR_EPARSE. */
int import_read_class_names(const char *path, ShardMeta *m, char *err);

#endif
