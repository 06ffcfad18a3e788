/* HDF5 shards (placeholder until the container lands). */
#include "shard_internal.h"

int h5w_open(H5Writer **w, const char *path, int deflate_level, ShardMeta *meta, char *err)
{
    (void)deflate_level; (void)meta; *w = NULL;
    return lmr_fail(err, LMR_EUNSUPPORTED, "%s: HDF5 shards are not built yet", path);
}
int h5w_put(H5Writer *w, const RecordInfo *info, const uint8_t *rec, size_t len, char *err)
{ (void)w; (void)info; (void)rec; (void)len; return lmr_fail(err, LMR_EUNSUPPORTED, "HDF5"); }
int h5w_close(H5Writer **w, const ShardMeta *meta, char *err) { (void)w; (void)meta; (void)err; return 0; }
int h5r_open(H5Reader **r, const char *path, ShardMeta *meta, LabelIndex *labels, char *err)
{
    (void)meta; (void)labels; *r = NULL;
    return lmr_fail(err, LMR_EUNSUPPORTED, "%s: HDF5 shards are not built yet", path);
}
int h5r_get(H5Reader *r, uint64_t i, const LabelIndex *labels, LmrBuf *scratch, char *err)
{ (void)r; (void)i; (void)labels; (void)scratch; return lmr_fail(err, LMR_EUNSUPPORTED, "HDF5"); }
void h5r_id(const H5Reader *r, uint64_t i, const char **id, uint16_t *len) { (void)r; (void)i; *id = ""; *len = 0; }
void h5r_close(H5Reader **r) { (void)r; }
