/* The manifest (DESIGN section 5): the normalised clip list every stage agrees on, CSV
 * `clip_id,video,start_sec,stop_sec,labels` with labels ';'-separated. Dataset readers
 * (annotations.h) produce it; lmr-extract consumes it. */
#ifndef LMR_MANIFEST_H
#define LMR_MANIFEST_H

#include <stdint.h>
#include <stdio.h>

#include "lmr_error.h"
#include "record.h"

#define MANIFEST_MAX_ID 65535          /* longest clip id: a record's id length is 16 bits */
#define MANIFEST_MAX_CLASSES (1 << 24) /* labels are below this (and below n_classes when known) */

typedef struct {
    char *clip_id;      /* owned by the manifest */
    char *video;        /* absolute, or relative to the videos root (a file or a frame folder) */
    double start_sec, stop_sec; /* stop_sec < 0: to the end of the video */
    int n_labels;       /* 0 = unlabelled (test splits) */
    int32_t labels[LMR_MAX_LABELS];
    int64_t line;       /* line in the source file, for messages */
} ManifestRow;

/* Called once per skipped input line; msg is "FILE:LINE: reason". */
typedef void (*LmrWarnFn)(void *user, const char *msg);

typedef struct {
    ManifestRow *rows;
    size_t n_rows, cap;
    int n_classes;        /* 0 when unknown */
    char dataset[32];     /* "epic", "ssv2", "videolt", "manifest" */
    size_t n_skipped;     /* malformed lines skipped */
    LmrWarnFn warn;       /* each skipped line, "FILE:LINE: reason"; may be NULL */
    LmrWarnFn note;       /* remarks that skip nothing (a default assumed, a header oddity); may be NULL */
    void *warn_user;      /* passed to warn and note */
    char **class_names;   /* [n_class_names] from the labels file when it names classes, else NULL;
                           * owned, entries may be NULL (an index the file does not list) */
    int n_class_names;
    char last_error[LMR_ERRLEN];
} Manifest;

void manifest_init(Manifest *m);
void manifest_free(Manifest *m);
/** Append a row (strings copied). @return 0 or LMR_ENOMEM. */
int manifest_add(Manifest *m, const ManifestRow *row);
/** Read a manifest CSV. Malformed lines are reported through m->warn and skipped. An empty
 *  start_sec is 0, an empty stop_sec "to the end"; negative times are refused.
 *  @return 0, -errno, LMR_EPARSE (strict and a line was bad). */
int manifest_read(Manifest *m, const char *path, int strict);
/** Write the manifest CSV with its header ("to the end" as an empty stop_sec).
 *  @return 0 or LMR_EIO. */
int manifest_write(const Manifest *m, FILE *f);

#endif
