/* Dataset annotation readers (DESIGN section 5): the files EPIC-KITCHENS-100, SSv2 / SSv2-LT and
 * VideoLT publish, read as they are, into the manifest (manifest.h).
 *
 * Usage, e.g. `lmr-extract --list`:
 *     Manifest m;
 *     manifest_init(&m);
 *     m.warn = print_line; m.warn_user = NULL;       // gets "FILE:LINE: reason" per skipped line
 *     AnnotOpts o;
 *     annot_opts_init(&o);
 *     o.dataset = "epic"; o.annotations = "EPIC_100_train.csv"; o.target = ANNOT_TARGET_VERB;
 *     if (annotations_load(&m, &o) < 0) fprintf(stderr, "lmr-extract: %s\n", m.last_error);
 *     else manifest_write(&m, stdout);               // m.n_classes, m.n_skipped are set
 *     manifest_free(&m);
 *
 * Files per dataset (o.annotations / o.labels):
 *   epic     EPIC_100_{train,validation}.csv (15 columns) or the test timestamps csv (no labels) /
 *            optional EPIC_100_{verb,noun}_classes.csv (else 97 verb / 300 noun classes).
 *            Columns are found by header name. clip = narration_id; start/stop from the
 *            HH:MM:SS.ff timestamps (from start_frame/stop_frame at annot_epic_fps() when a
 *            timestamp is empty); video per o.epic_layout.
 *   ssv2     split json (train / validation / test, SSv2-LT the same) / labels json (required).
 *            class = labels[template without '[' ']']; video <id>.webm; test entries unlabelled.
 *   videolt  train.lst / validate.lst / test.lst (`<video_id> <c>[,<c>...]`) / optional
 *            count-labels-train.lst (else n_classes = max label + 1). video <video_id>.mp4.
 *   manifest the manifest CSV itself / unused; n_classes = max label + 1 unless o.n_classes.
 * A UTF-8 BOM and CRLF line ends are accepted everywhere. */
#ifndef LMR_ANNOTATIONS_H
#define LMR_ANNOTATIONS_H

#include <stddef.h>
#include <stdint.h>

#include "manifest.h"

typedef enum { ANNOT_TARGET_VERB = 0, ANNOT_TARGET_NOUN = 1 } AnnotTarget;

/* Where an EPIC clip's pixels live, relative to --videos. */
typedef enum {
    ANNOT_EPIC_VIDEOS = 0,     /* <participant>/<video_id>.MP4 */
    ANNOT_EPIC_RGB_FRAMES = 1, /* <participant>/rgb_frames/<video_id> (frame_%010d.jpg from 1) */
    ANNOT_EPIC_FRAMES = 2,     /* <participant>/<video_id> (the same frames without rgb_frames/) */
} AnnotEpicLayout;

#define ANNOT_EPIC_VERBS 97
#define ANNOT_EPIC_NOUNS 300

typedef struct {
    const char *dataset;     /* "epic", "ssv2", "videolt", "manifest" */
    const char *annotations; /* the split file (names it in messages even when data is given) */
    const char *labels;      /* the class file, see above; NULL when none */
    AnnotTarget target;      /* epic only */
    AnnotEpicLayout epic_layout;
    int n_classes;           /* > 0 overrides the class count (labels >= it are skipped) */
    int strict;              /* any skipped line fails the load with LMR_EPARSE */
    /* Optional file contents already in memory (tests, fuzzing), used instead of reading
     * the paths above; borrowed. */
    const char *annotations_data;
    size_t annotations_size;
    const char *labels_data;
    size_t labels_size;
} AnnotOpts;

/** Defaults: target verb, videos layout, not strict, nothing in memory. */
void annot_opts_init(AnnotOpts *o);

/** Read a dataset's split file into m (rows appended; m->dataset, m->n_classes set).
 *  Malformed lines are reported through m->warn as "FILE:LINE: reason", skipped and counted
 *  in m->n_skipped; with o->strict the first one fails the load instead (the same text in
 *  m->last_error, not passed to m->warn). A file that is not of the dataset's format at all (wrong header, invalid
 *  JSON: "FILE:LINE:COL: reason") fails whatever o->strict says.
 *  @return 0, -errno (file), LMR_EPARSE, LMR_EINVAL (unknown dataset, missing labels file),
 *  LMR_ENOMEM; the message is in m->last_error. */
int annotations_load(Manifest *m, const AnnotOpts *o);

// --- class lists ----------------------------------------------------------------------------

typedef struct {
    int n_classes;
    char **names;      /* [n_classes] owned; NULL for an index the file does not list */
    int64_t *counts;   /* [n_classes] owned; training clips per class, -1 when the file has none */
    size_t n_skipped;
    LmrWarnFn warn;    /* may be NULL */
    void *warn_user;
    char last_error[LMR_ERRLEN];
} AnnotClasses;

void annot_classes_init(AnnotClasses *c);
void annot_classes_free(AnnotClasses *c);

/** Read a class list: "epic" EPIC_100_{verb,noun}_classes.csv (id,key,instances,category;
 *  names = key), "ssv2" something-something-v2-labels.json (names = templates), "videolt"
 *  count-labels-train.lst (<Name> <idx> <count>; counts filled). data/size: contents already in
 *  memory, or NULL to read path. Bad lines are reported, skipped and counted as above.
 *  @return 0, -errno, LMR_EPARSE, LMR_EINVAL, LMR_ENOMEM (message in c->last_error). */
int annot_classes_read(AnnotClasses *c, const char *dataset, const char *path, const char *data,
                       size_t size, int strict);

/** Read EPIC_100_tail_{verbs,nouns}.csv (a column `verb` or `noun` of class ids).
 *  @param[out] ids owned array (free()), *n entries; ids outside [0, n_classes) are skipped
 *  (n_classes <= 0: no check). Messages go through c (its warn, n_skipped, last_error).
 *  @return 0, -errno, LMR_EPARSE, LMR_ENOMEM. */
int annot_epic_tail_read(AnnotClasses *c, const char *path, int n_classes, int strict,
                         int32_t **ids, int *n);

/** Frame rate of an EPIC-KITCHENS-100 video from its id: 50 for the extension videos Pxx_1yy
 *  (three digits after the '_'), 60 for Pxx_yy. frame = max(1, int(t * fps)) for starts. */
int annot_epic_fps(const char *video_id);

/** Parse an EPIC timestamp HH:MM:SS[.fff...] into seconds. @return 0 or -1. */
int annot_parse_timestamp(const char *s, double *sec);

#endif
