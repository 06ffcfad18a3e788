/* Helpers shared by the manifest and annotation readers (formats/ only): whole-file reads, a
 * line-aware libcsv walker, strict number parsing, skip reporting and a clip-id set. */
#ifndef LMR_ANNOT_INTERNAL_H
#define LMR_ANNOT_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "manifest.h"

/** Read a whole file into *data (owned, NUL-terminated; free()). @return 0, -errno, LMR_ENOMEM. */
int annot_slurp(const char *path, char **data, size_t *len);

/** Skip a UTF-8 byte order mark. */
const char *annot_skip_bom(const char *p, size_t *len);

/* One CSV row: fields NUL-terminated, borrowed until the callback returns. line = where the
 * row starts (1-based). A negative return stops the walk and is passed on. */
typedef int (*AnnotRowFn)(void *user, char **fields, int n_fields, int64_t line);

/** Walk the CSV rows of buf with libcsv. A row may not span lines: an unterminated quote or
 *  malformed quoting is reported through annot_skip (m, name) and that line is dropped.
 *  @return 0, LMR_ENOMEM, or the first negative value of fn / annot_skip in strict mode. */
int annot_csv_walk(const char *buf, size_t len, const char *name, Manifest *m, int strict,
                   AnnotRowFn fn, void *user);

/** Report "NAME:LINE: reason" through m->warn and count the skip; when strict, put it in
 *  m->last_error instead and return LMR_EPARSE. @return 0 to go on, or LMR_EPARSE. */
int annot_skip(Manifest *m, const char *name, int64_t line, int strict, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/** Pass a remark that skips nothing (a default assumed, a header oddity) to m->note, if set. */
void annot_note(Manifest *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/** Range check of a class label v: in [0, n_classes), or [0, 2^24) when n_classes <= 0.
 *  @return 0, or -1 with the reason in why ("class 7 out of range [0, 5)"). */
int annot_check_label(long v, long n_classes, char *why, size_t cap);

/** Whole-string integer in [lo, hi] (surrounding blanks allowed). @return 0 or -1. */
int annot_parse_int(const char *s, long lo, long hi, long *out);
/** Whole-string finite double. @return 0 or -1. */
int annot_parse_double(const char *s, double *out);

/* A set of clip ids (borrowed strings that outlive the set), to find duplicates. */
typedef struct {
    struct AnnotIdSlot {
        uint64_t hash; /* compared first: most probes then never touch the string */
        const char *id;
    } *slots;
    size_t cap, n;
} AnnotIdSet;

void annot_idset_init(AnnotIdSet *s);
void annot_idset_free(AnnotIdSet *s);
/** @return 1 added, 0 already present, LMR_ENOMEM. */
int annot_idset_add(AnnotIdSet *s, const char *id);
/** Add row to m unless its clip id is already in ids or longer than a record holds
 *  (MANIFEST_MAX_ID); such rows are skipped through annot_skip ("duplicate WHAT 'ID'"). @return 0, LMR_ENOMEM, or annot_skip's result. */
int annot_add_unique(Manifest *m, AnnotIdSet *ids, const ManifestRow *row, const char *name, int64_t line,
                     int strict, const char *what);

/** manifest_read on bytes in memory; name is used in messages. */
int manifest_read_mem(Manifest *m, const char *buf, size_t len, const char *name, int strict);

// --- per-dataset readers (annotations.c, annot_json.c, annot_list.c) -----------------------
#include "annotations.h"

/** The bytes of a file: data if given, else read path into *owned (free()). */
int annot_bytes(const char *path, const char *data, size_t size, char **owned, const char **buf,
                size_t *len);

int annot_load_ssv2(Manifest *m, const AnnotOpts *o, const char *buf, size_t len);
int annot_load_videolt(Manifest *m, const AnnotOpts *o, const char *buf, size_t len);
/* Class lists; log carries warn / n_skipped / last_error. */
int annot_classes_ssv2(AnnotClasses *c, Manifest *log, const char *name, const char *buf,
                       size_t len, int strict);
int annot_classes_videolt(AnnotClasses *c, Manifest *log, const char *name, const char *buf,
                          size_t len, int strict);
/** Move c's names into m->class_names (replacing any). @return 0. */
int annot_take_names(Manifest *m, AnnotClasses *c);
/** Largest label + 1 over m's rows (computed in 64 bits; at most MANIFEST_MAX_CLASSES). */
int annot_max_label_plus_one(const Manifest *m);
/** Size c for n classes (names NULL, counts -1). @return 0 or LMR_ENOMEM. */
int annot_classes_alloc(AnnotClasses *c, int n);

#endif
