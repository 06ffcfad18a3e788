/* VideoLT feature import: the release ships one <video_id>.npy of frame-level features per video
 * and list files of multi-label classes; the importer's VideoLT list source reads them. */
#include "videolt.h"

#include <string.h>

int videolt_import(const VideoltImportOpts *o, ShardWriter *w, LmrWarnFn warn, void *user,
                   VideoltStats *stats, char *err)
{
    VideoltStats local;
    if (!stats)
        stats = &local;
    memset(stats, 0, sizeof *stats);
    if (!o || !o->root || !o->labels || !w)
        return lmr_fail(err, LMR_EINVAL, "videolt_import: root, labels and a shard are required");
    ImportOpts io = {.max_frames = o->max_frames, .zstd_level = o->zstd_level, .strict = o->strict,
                     .dtype = o->dtype, .dim = o->dim, .n_classes = o->n_classes, .hint = o->hint,
                     .fail = o->fail, .fail_user = o->fail_user};
    Importer *im;
    if (importer_new(&im, &io, w, warn, user, stats))
        return lmr_fail(err, LMR_ENOMEM, "out of memory");
    ImportSource src;
    int rc = import_videolt_open(&src, im, o->root, o->labels, o->counts, o->n_classes, o->strict, warn, user, err);
    if (rc) {
        importer_free(im);
        return rc;
    }
    rc = import_run(im, &src, err);
    import_videolt_close(&src);
    return rc;
}
