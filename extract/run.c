/* The extraction run: group the selected clips by video into units (time-ordered, bounded),
 * hand units to worker threads (each with its own decoder, scaler, backbone and zstd context),
 * and deliver finished clips to the caller strictly in manifest order through a bounded
 * reorder window, so memory stays bounded and the bytes do not depend on the thread count. */
#include "run.h"

#include <libgen.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "annotations.h"
#include "record.h"

#define UNIT_CLIPS 32               /* clips of one video per work unit */
#define BATCH_BYTES (48u << 20)     /* scaled frames held per worker for one decoding pass */

typedef struct {
    size_t first_pos; /* smallest output position among its clips */
    size_t *pos;      /* output positions, in time order */
    int n;
} Unit;

typedef struct {
    int state; /* 0 pending, 1 done */
    LmrBuf rec;
    char *reason; /* failure, owned */
    char *note;   /* a written clip's remark, owned */
} Slot;

typedef struct Run {
    const Manifest *m;
    const size_t *sel;
    size_t n_sel;
    const ExtractOpts *o;
    Unit *units;
    size_t n_units;
    Slot *slots;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    size_t next_unit, next_write, window;
    int abort;
    ExtractStats stats;
} Run;

typedef struct {
    Run *r;
    Backbone *bb;
    RecordCtx rc;
    Decoder *dec;
    char dec_video[1024];   /* the video dec (or dec_err) belongs to */
    char dec_path[2048];    /* its path, as messages name it */
    DecoderStats dstats;    /* of decoders already closed */
    int dec_rc;
    char dec_err[LMR_ERRLEN];
    int64_t *idx, *uniq;    /* (V*T) one clip's indices, and sorted unique */
    int64_t *bidx;          /* (UNIT_CLIPS, V*T) a batch's indices */
    int64_t *merged;        /* (UNIT_CLIPS * V*T) their sorted union */
    int64_t bfirst[UNIT_CLIPS];
    int bok[UNIT_CLIPS];
    char berr[UNIT_CLIPS][LMR_ERRLEN];
    int *x0, *y0;           /* (views) */
    uint8_t *imgs;          /* (n_uniq, out_h, out_w, 3) */
    size_t imgs_cap;
    uint8_t *frames;        /* (views, T, size, size, 3) */
    float *feat;            /* (views, T, D) */
    uint16_t *feat16;       /* (views, T, D) when features are stored as f16 */
    LmrBuf out;
    pthread_t tid;
} Worker;

void extract_opts_init(ExtractOpts *o)
{
    memset(o, 0, sizeof *o);
    o->sample = (SampleOpts){SAMPLE_SEGMENT, SAMPLE_TEST, 8, 1, 1, 4.0, 0};
    o->decode = (DecoderOpts){1, 224, 30.0, 1, 0};
    o->backbone.name = "none";
    o->threads = 1;
    o->size = 224;
    o->feature_dtype = LMR_DT_F32;
    o->zstd_level = 1; // frames: within 1% of level 3's size, for 10% less of the run's CPU
}

int extract_record_shape(const ExtractOpts *o, uint8_t *kind, uint8_t *dtype, uint32_t dims[4],
                         char *weights_checksum, char *err)
{
    Backbone *bb = NULL;
    LMR_TRY(backbone_open(&bb, &o->backbone, err));
    int dim = backbone_dim(bb), rc = backbone_check_input(bb, o->sample.frames, o->size, err);
    uint32_t views = (uint32_t)(o->sample.views * o->sample.crops), T = (uint32_t)o->sample.frames;
    if (dim > 0) /* a video backbone makes one feature per clip of frames_per_feature frames */
        T /= (uint32_t)backbone_frames_per_feature(bb);
    if (weights_checksum)
        snprintf(weights_checksum, 24, "%s", backbone_weights_checksum(bb));
    backbone_close(&bb);
    if (rc < 0)
        return rc;
    if (dim == 0) {
        *kind = LMR_KIND_FRAMES;
        *dtype = LMR_DT_U8;
        uint32_t d[4] = {views, T, (uint32_t)o->size, (uint32_t)o->size * 3};
        memcpy(dims, d, sizeof d);
    } else {
        *kind = LMR_KIND_FEATURES;
        *dtype = o->feature_dtype == LMR_DT_F16 ? LMR_DT_F16 : LMR_DT_F32;
        uint32_t d[4] = {views, T, (uint32_t)dim, 1};
        memcpy(dims, d, sizeof d);
    }
    return 0;
}

int extract_video_path(const ExtractOpts *o, const char *video, char *out, size_t cap)
{
    const char *root = o->videos && *o->videos && video[0] != '/' ? o->videos : NULL;
    size_t rl = root ? strlen(root) : 0;
    int n = root ? snprintf(out, cap, "%s%s%s", root, root[rl - 1] == '/' ? "" : "/", video)
                 : snprintf(out, cap, "%s", video);
    if (n < 0 || (size_t)n >= cap)
        return -1;
    struct stat sb;
    char *rf = strstr(out, "/rgb_frames/");
    if (rf && stat(out, &sb) != 0) // EPIC frame folders come with and without rgb_frames/
        memmove(rf + 1, rf + 12, strlen(rf + 12) + 1);
    return 0;
}

// --- one clip -------------------------------------------------------------------------------

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static void worker_close_decoder(Worker *w)
{
    if (w->dec) {
        const DecoderStats *ds = decoder_stats(w->dec);
        w->dstats.frames_decoded += ds->frames_decoded;
        w->dstats.frames_scaled += ds->frames_scaled;
        w->dstats.seeks += ds->seeks;
    }
    decoder_close(&w->dec);
}

/* Open (or keep) the decoder for a video; remembers an open failure for the unit's other clips. */
static int worker_decoder(Worker *w, const char *video)
{
    if (strcmp(w->dec_video, video) == 0 && (w->dec || w->dec_rc < 0))
        return w->dec_rc;
    worker_close_decoder(w);
    snprintf(w->dec_video, sizeof w->dec_video, "%s", video);
    const ExtractOpts *o = w->r->o;
    char *path = w->dec_path;
    if (extract_video_path(o, video, path, sizeof w->dec_path) < 0) {
        w->dec_rc = lmr_fail(w->dec_err, LMR_EINVAL, "%s: path too long", video);
        return w->dec_rc;
    }
    DecoderOpts d = o->decode;
    struct stat sb;
    if (o->epic_fps && stat(path, &sb) == 0 && S_ISDIR(sb.st_mode)) {
        char tmp[2048];
        snprintf(tmp, sizeof tmp, "%s", path);
        d.folder_fps = annot_epic_fps(basename(tmp));
    }
    w->dec_rc = decoder_open(&w->dec, path, &d, w->dec_err);
    if (w->dec_rc < 0)
        decoder_close(&w->dec);
    return w->dec_rc;
}

/* Strip a leading "PATH: " from a library message: the caller names the video itself. */
static const char *strip_path(const char *msg, const char *path)
{
    size_t n = strlen(path);
    return strncmp(msg, path, n) == 0 && msg[n] == ':' && msg[n + 1] == ' ' ? msg + n + 2 : msg;
}

static int grow(void **p, size_t *cap, size_t need)
{
    if (need <= *cap)
        return 0;
    void *q = realloc(*p, need);
    if (!q)
        return LMR_ENOMEM;
    *p = q;
    *cap = need;
    return 0;
}

/* Frame range and sample indices of one clip on the open decoder; n_frames > 0: the video's
 * length as decoded, instead of what its header says. */
static int clip_prepare(Worker *w, const ManifestRow *row, int64_t n_frames, int64_t *first, int64_t *idx,
                        char *err)
{
    const ExtractOpts *o = w->r->o;
    const DecoderInfo *in = decoder_info(w->dec);
    if (n_frames <= 0)
        n_frames = in->n_frames;
    if (row->stop_sec < 0 && n_frames <= 0)
        return lmr_fail(err, LMR_EUNSUPPORTED, "the video's length is unknown");
    int64_t last;
    sample_clip_range(row->start_sec, row->stop_sec, in->fps, n_frames, first, &last);
    int rc = sample_indices(&o->sample, row->clip_id, *first, last, in->fps, idx);
    return rc < 0 ? lmr_fail(err, rc, "bad sampling options") : 0;
}

/* Sort and deduplicate n indices in place; @return the unique count. */
static int sort_unique(int64_t *v, int n)
{
    qsort(v, (size_t)n, sizeof(int64_t), cmp_i64);
    int k = 0;
    for (int i = 0; i < n; i++)
        if (k == 0 || v[k - 1] != v[i])
            v[k++] = v[i];
    return k;
}

/* Crop the clip's views out of the fetched images (uniq[i] -> image i), run the backbone,
 * encode the record into w->out. */
static int clip_encode(Worker *w, const ManifestRow *row, const int64_t *idx, const int64_t *uniq,
                       int n_u, char *err)
{
    const ExtractOpts *o = w->r->o;
    const DecoderInfo *in = decoder_info(w->dec);
    int V = o->sample.views, T = o->sample.frames, C = o->sample.crops, S = o->size, nv = V * C, rc;
    sample_crops(&o->sample, row->clip_id, in->out_w, in->out_h, S, w->x0, w->y0);
    size_t isz = (size_t)in->out_w * in->out_h * 3, fsz = (size_t)S * S * 3;
    for (int v = 0; v < V; v++)
        for (int t = 0; t < T; t++) {
            const int64_t *hit = bsearch(&idx[v * T + t], uniq, (size_t)n_u, sizeof(int64_t), cmp_i64);
            const uint8_t *src = w->imgs + isz * (size_t)(hit - uniq);
            for (int c = 0; c < C; c++) {
                int view = v * C + c;
                uint8_t *dst = w->frames + fsz * ((size_t)view * T + t);
                for (int y = 0; y < S; y++)
                    memcpy(dst + (size_t)y * S * 3,
                           src + ((size_t)(y + w->y0[view]) * in->out_w + w->x0[view]) * 3, (size_t)S * 3);
            }
        }
    RecordInfo ri;
    memset(&ri, 0, sizeof ri);
    ri.ndim = 4;
    size_t id_len = strlen(row->clip_id);
    if (id_len > UINT16_MAX) // the readers refuse such ids; never store one cut short
        return lmr_fail(err, LMR_EINVAL, "clip id of %zu bytes: a record holds at most %u", id_len,
                        (unsigned)UINT16_MAX);
    ri.id = row->clip_id;
    ri.id_len = (uint16_t)id_len;
    ri.n_labels = (uint16_t)row->n_labels;
    memcpy(ri.labels, row->labels, sizeof(int32_t) * (size_t)row->n_labels);
    const void *payload = w->frames;
    int D = backbone_dim(w->bb);
    if (D == 0) {
        ri.kind = LMR_KIND_FRAMES;
        ri.dtype = LMR_DT_U8;
        uint32_t d[4] = {(uint32_t)nv, (uint32_t)T, (uint32_t)S, (uint32_t)S * 3};
        memcpy(ri.dims, d, sizeof d);
    } else {
        int F = T / backbone_frames_per_feature(w->bb); /* features per view */
        for (int view = 0; view < nv; view++)
            if ((rc = backbone_run(w->bb, w->frames + fsz * view * T, T, S, S,
                                   w->feat + (size_t)view * F * D)) < 0)
                return lmr_fail(err, rc, "%s", backbone_error(w->bb));
        ri.kind = LMR_KIND_FEATURES;
        ri.dtype = LMR_DT_F32;
        uint32_t d[4] = {(uint32_t)nv, (uint32_t)F, (uint32_t)D, 1};
        memcpy(ri.dims, d, sizeof d);
        payload = w->feat;
        if (w->r->o->feature_dtype == LMR_DT_F16) { /* halves the shard; the trainer widens again */
            lmr_f32_to_f16(w->feat, w->feat16, (size_t)nv * F * D);
            ri.dtype = LMR_DT_F16;
            payload = w->feat16;
        }
    }
    if ((rc = record_encode(&w->rc, &ri, payload, &w->out)) < 0)
        return lmr_fail(err, rc, "%s", w->rc.last_error);
    return 0;
}

enum { SHORT_RESAMPLE = 1, SHORT_RETRY = 2 };

/* After a fetch: does the clip (indices idx[0..n)) need frames past what the video decoded to?
 * @return 0 (fine, or padded with --pad-short: note says why), SHORT_RESAMPLE (a clip to the
 * end of a video whose header claims a little more than decodes: sample it again from the
 * frames there are; only when allowed), SHORT_RETRY (a read error: a fresh look at the video
 * may get past it; only when allowed), or LMR_ERANGE with err saying why. */
static int clip_short(Worker *w, const ManifestRow *row, const int64_t *idx, int n, int allow,
                      char *err, char *note)
{
    int64_t from = decoder_short_from(w->dec), need = idx[0];
    for (int i = 1; i < n; i++)
        need = idx[i] > need ? idx[i] : need;
    if (from < 0 || need < from)
        return 0;
    const DecoderInfo *in = decoder_info(w->dec);
    int read_error = 0;
    const char *why = decoder_short_why(w->dec, &read_error);
    int64_t end = decoder_end_frames(w->dec);
    double fps = in->fps > 0 ? in->fps : 30;
    int64_t slack = (int64_t)ceil(0.5 * fps);
    if ((allow & SHORT_RETRY) && read_error)
        return SHORT_RETRY;
    if ((allow & SHORT_RESAMPLE) && row->stop_sec < 0 && !why && end > 0 && in->n_frames - end <= (slack > 1 ? slack : 1))
        return SHORT_RESAMPLE;
    char reason[LMR_ERRLEN];
    if (read_error)
        snprintf(reason, sizeof reason, "%s; the clip needs frames to %.2f s", why, (need + 1) / fps);
    else if (row->stop_sec >= 0)
        snprintf(reason, sizeof reason, "clip ends at %.2f s, video decodes to %.2f s%s%s%s", row->stop_sec,
                 decoder_short_end(w->dec), why ? " (" : "", why ? why : "", why ? ")" : "");
    else
        snprintf(reason, sizeof reason, "clip runs to the end of the video, %.2f s by its header; it decodes "
                 "to %.2f s%s%s%s", (double)in->n_frames / fps, decoder_short_end(w->dec), why ? " (" : "",
                 why ? why : "", why ? ")" : "");
    if (!w->r->o->pad_short)
        return lmr_fail(err, LMR_ERANGE, "%s", reason);
    snprintf(note, LMR_ERRLEN, "padded with the last frame decoded (--pad-short): %.400s", reason);
    return 0;
}

/* One clip on its own (a fresh look at the video): the fallback that isolates a bad clip.
 * n_frames > 0: sample it from that many frames (the video's length as decoded). */
static int clip_run(Worker *w, const ManifestRow *row, int64_t n_frames, char *err, char *note)
{
    const ExtractOpts *o = w->r->o;
    int rc = worker_decoder(w, row->video);
    if (rc < 0)
        return lmr_fail(err, rc, "%s", strip_path(w->dec_err, w->dec_path));
    int VT = o->sample.views * o->sample.frames;
    int64_t first;
    LMR_TRY(clip_prepare(w, row, n_frames, &first, w->idx, err));
    memcpy(w->uniq, w->idx, sizeof(int64_t) * VT);
    int n_u = sort_unique(w->uniq, VT);
    const DecoderInfo *in = decoder_info(w->dec);
    if (grow((void **)&w->imgs, &w->imgs_cap, (size_t)in->out_w * in->out_h * 3 * n_u) < 0)
        return lmr_fail(err, LMR_ENOMEM, "out of memory");
    rc = decoder_fetch(w->dec, first, w->uniq, n_u, w->imgs);
    if (rc < 0) {
        lmr_fail(err, rc, "%s", strip_path(decoder_error(w->dec), w->dec_path));
        if (rc != LMR_ERANGE) // the decoder's state is suspect: reopen for the next clip
            w->dec_video[0] = 0;
        return rc;
    }
    rc = clip_short(w, row, w->idx, VT, n_frames <= 0 ? SHORT_RESAMPLE : 0, err, note);
    if (rc == SHORT_RESAMPLE) // once, with the length that decodes
        return clip_run(w, row, decoder_end_frames(w->dec), err, note);
    if (rc < 0) {
        if (decoder_short_why(w->dec, NULL)) // after damage: the next clip starts afresh
            w->dec_video[0] = 0;
        return rc;
    }
    return clip_encode(w, row, w->idx, w->uniq, n_u, err);
}

// --- workers and ordering -------------------------------------------------------------------

/* Hand a finished clip to the writer: the record bytes move without a copy. */
static int deliver(Worker *w, size_t pos, int rc, const char *err, const char *note)
{
    Run *r = w->r;
    pthread_mutex_lock(&r->mu);
    Slot *s = &r->slots[pos];
    if (rc < 0) {
        s->reason = strdup(err[0] ? err : lmr_strerror(rc));
    } else {
        s->rec = w->out;
        buf_init(&w->out);
        if (note && note[0])
            s->note = strdup(note);
    }
    s->state = 1;
    pthread_cond_broadcast(&r->cv);
    int stop = r->abort;
    pthread_mutex_unlock(&r->mu);
    return stop;
}

/* Clips u->pos[i0..) of one video, as many as fit in memory, decoded in one forward pass over
 * the union of their frames (so overlapping clips never make the decoder go back). A failed
 * pass is redone clip by clip to pin the failure on the clip that causes it.
 * @return the number of clips done, or 0 with *stop set. */
static int batch_run(Worker *w, const Unit *u, int i0, int *stop)
{
    Run *r = w->r;
    const ExtractOpts *o = r->o;
    int VT = o->sample.views * o->sample.frames;
    const ManifestRow *row0 = &r->m->rows[r->sel[u->pos[i0]]];
    char err[LMR_ERRLEN] = {0}, note[LMR_ERRLEN] = {0};
    int rc = worker_decoder(w, row0->video);
    if (rc < 0) {
        lmr_fail(err, rc, "%s", strip_path(w->dec_err, w->dec_path));
        *stop = deliver(w, u->pos[i0], rc, err, NULL);
        return 1;
    }
    const DecoderInfo *in = decoder_info(w->dec);
    size_t isz = (size_t)in->out_w * in->out_h * 3;
    int cap = (int)(BATCH_BYTES / isz);
    if (cap < VT)
        cap = VT;
    int nb = 0, n_m = 0;
    while (i0 + nb < u->n && (nb == 0 || n_m + VT <= cap)) {
        const ManifestRow *row = &r->m->rows[r->sel[u->pos[i0 + nb]]];
        w->bok[nb] = clip_prepare(w, row, 0, &w->bfirst[nb], w->bidx + (size_t)nb * VT, w->berr[nb]);
        if (w->bok[nb] == 0) {
            memcpy(w->merged + n_m, w->bidx + (size_t)nb * VT, sizeof(int64_t) * VT);
            n_m = sort_unique(w->merged, n_m + VT);
        }
        nb++;
    }
    rc = 0;
    if (n_m > 0) {
        if (grow((void **)&w->imgs, &w->imgs_cap, isz * n_m) < 0)
            rc = LMR_ENOMEM;
        else
            rc = decoder_fetch(w->dec, -1, w->merged, n_m, w->imgs);
    }
    if (rc < 0) {
        w->dec_video[0] = 0; // start over on a fresh decoder, one clip at a time
        for (int j = 0; j < nb && !*stop; j++) {
            err[0] = note[0] = 0;
            int crc = clip_run(w, &r->m->rows[r->sel[u->pos[i0 + j]]], 0, err, note);
            *stop = deliver(w, u->pos[i0 + j], crc, err, note);
        }
        return nb;
    }
    // Clips whose frames all came: encoded from this pass. Those past a read error get a fresh
    // look of their own, and clips to the end of a video shorter than its header says are
    // sampled again, both after the others (they reuse the images buffer).
    int64_t end = decoder_end_frames(w->dec);
    int redo[UNIT_CLIPS] = {0};
    for (int j = 0; j < nb && !*stop; j++) {
        const ManifestRow *row = &r->m->rows[r->sel[u->pos[i0 + j]]];
        err[0] = note[0] = 0;
        int crc = w->bok[j];
        if (crc < 0)
            snprintf(err, sizeof err, "%s", w->berr[j]);
        else if (end >= 0 && w->bfirst[j] >= end)
            crc = lmr_fail(err, LMR_ERANGE, "clip starts at frame %lld, after the end of the video (%lld frames)",
                           (long long)w->bfirst[j], (long long)end);
        else if ((crc = clip_short(w, row, w->bidx + (size_t)j * VT, VT, SHORT_RESAMPLE | SHORT_RETRY, err,
                                   note)) > 0) {
            redo[j] = crc;
            continue;
        } else if (crc == 0) {
            crc = clip_encode(w, row, w->bidx + (size_t)j * VT, w->merged, n_m, err);
        }
        *stop = deliver(w, u->pos[i0 + j], crc, err, note);
    }
    for (int j = 0; j < nb && !*stop; j++) {
        if (!redo[j])
            continue;
        err[0] = note[0] = 0;
        if (redo[j] == SHORT_RETRY)
            w->dec_video[0] = 0;
        int crc = clip_run(w, &r->m->rows[r->sel[u->pos[i0 + j]]], redo[j] == SHORT_RESAMPLE ? end : 0, err, note);
        *stop = deliver(w, u->pos[i0 + j], crc, err, note);
    }
    return nb;
}

static void *worker_main(void *arg)
{
    Worker *w = arg;
    Run *r = w->r;
    for (;;) {
        pthread_mutex_lock(&r->mu);
        while (!r->abort && r->next_unit < r->n_units &&
               r->units[r->next_unit].first_pos >= r->next_write + r->window)
            pthread_cond_wait(&r->cv, &r->mu);
        if (r->abort || r->next_unit >= r->n_units) {
            pthread_mutex_unlock(&r->mu);
            break;
        }
        Unit *u = &r->units[r->next_unit++];
        pthread_mutex_unlock(&r->mu);
        int stop = 0;
        for (int i = 0; i < u->n && !stop;)
            i += batch_run(w, u, i, &stop);
        if (stop)
            break;
    }
    worker_close_decoder(w);
    pthread_mutex_lock(&r->mu);
    r->stats.frames_decoded += w->dstats.frames_decoded;
    r->stats.frames_scaled += w->dstats.frames_scaled;
    r->stats.seeks += w->dstats.seeks;
    pthread_mutex_unlock(&r->mu);
    return NULL;
}

// --- units --------------------------------------------------------------------------------

typedef struct {
    const char *video;
    double start, stop; /* stop < 0: to the end of the video */
    size_t pos;
} ClipKey;

static int cmp_clip(const void *a, const void *b)
{
    const ClipKey *x = a, *y = b;
    int c = strcmp(x->video, y->video);
    if (c)
        return c;
    if (x->start != y->start)
        return x->start < y->start ? -1 : 1;
    return x->pos < y->pos ? -1 : x->pos > y->pos;
}

static int cmp_unit(const void *a, const void *b)
{
    const Unit *x = a, *y = b;
    return x->first_pos < y->first_pos ? -1 : x->first_pos > y->first_pos;
}

/* Seconds decoded for a group of clips from `start` to `end`, `open` of them running to the
 * end of the video: the span plus a lead-in from the keyframe before the first (unknown before
 * the video is open; a few seconds is typical), and one more lead-in per open clip. */
#define LEAD_SEC 4.0
static double group_cost(double start, double end, int open)
{
    return LEAD_SEC * (1 + open) + (end > start ? end - start : 0);
}

/* Greedy cut of k[0..n) (time order) into groups of cost <= x and at most cap clips; sizes
 * into sz (may be NULL). @return the number of groups. Optimal for a cost that only grows as a
 * group grows, as this one does. */
static int cut_groups(const ClipKey *k, int n, int cap, double x, int *sz)
{
    int g = 0;
    for (int i = 0; i < n;) {
        double end = k[i].stop;
        int open = k[i].stop < 0, m = 1;
        while (i + m < n && m < cap) {
            const ClipKey *c = &k[i + m];
            double e2 = c->stop > end ? c->stop : end;
            int o2 = open + (c->stop < 0);
            if (group_cost(k[i].start, e2, o2) > x)
                break;
            end = e2, open = o2, m++;
        }
        if (sz)
            sz[g] = m;
        g++;
        i += m;
    }
    return g;
}

/* Clips of one video, in time order, cut into units of at most UNIT_CLIPS whose decoding spans
 * are about equal, so the workers finish together; units ordered by their earliest output
 * position so the reorder window drains steadily. */
static int build_units(Run *r, size_t **store)
{
    size_t nn = r->n_sel ? r->n_sel : 1;
    ClipKey *k = malloc(sizeof *k * nn);
    int *sz = malloc(sizeof(int) * nn);
    *store = malloc(sizeof(size_t) * nn);
    r->units = malloc(sizeof(Unit) * nn);
    if (!k || !sz || !*store || !r->units) {
        free(k);
        free(sz);
        return LMR_ENOMEM;
    }
    for (size_t i = 0; i < r->n_sel; i++) {
        const ManifestRow *row = &r->m->rows[r->sel[i]];
        k[i] = (ClipKey){row->video, row->start_sec, row->stop_sec, i};
    }
    qsort(k, r->n_sel, sizeof *k, cmp_clip);
    // Few long videos and several workers: smaller units keep every worker busy, at the cost
    // of one more keyframe seek per unit.
    size_t per = (r->n_sel + 2 * (size_t)r->o->threads - 1) / (2 * (size_t)r->o->threads);
    int cap = per < 4 ? 4 : per > UNIT_CLIPS ? UNIT_CLIPS : (int)per;
    r->n_units = 0;
    for (size_t i = 0; i < r->n_sel;) {
        int n = 1;
        while (i + n < r->n_sel && strcmp(k[i + n].video, k[i].video) == 0)
            n++;
        // As many parts as cap clips each would give, then the smallest cost bound that
        // still cuts the video into that many (bisection; the greedy cut is exact for a bound).
        int parts = (n + cap - 1) / cap;
        double end = k[i].start;
        int open = 0;
        for (int c = 0; c < n; c++) {
            open += k[i + c].stop < 0;
            end = k[i + c].stop > end ? k[i + c].stop : end;
        }
        double lo = 0, hi = group_cost(k[i].start, end, open); // the whole video: one group
        for (int it = 0; it < 40 && parts > 1; it++) {
            double mid = 0.5 * (lo + hi);
            if (cut_groups(k + i, n, UNIT_CLIPS, mid, NULL) <= parts)
                hi = mid;
            else
                lo = mid;
        }
        int g = parts > 1 ? cut_groups(k + i, n, UNIT_CLIPS, hi, sz) : (sz[0] = n, 1);
        for (int j = 0, at = 0; j < g; at += sz[j++]) {
            Unit *u = &r->units[r->n_units++];
            *u = (Unit){k[i + at].pos, &(*store)[i + at], sz[j]};
            for (int c = 0; c < sz[j]; c++) {
                (*store)[i + at + c] = k[i + at + c].pos;
                if (k[i + at + c].pos < u->first_pos)
                    u->first_pos = k[i + at + c].pos;
            }
        }
        i += (size_t)n;
    }
    free(k);
    free(sz);
    qsort(r->units, r->n_units, sizeof(Unit), cmp_unit);
    return 0;
}

// --- the run ------------------------------------------------------------------------------

static void worker_free(Worker *w)
{
    backbone_close(&w->bb);
    record_ctx_free(&w->rc);
    decoder_close(&w->dec);
    free(w->idx);
    free(w->uniq);
    free(w->bidx);
    free(w->merged);
    free(w->x0);
    free(w->y0);
    free(w->imgs);
    free(w->frames);
    free(w->feat);
    free(w->feat16);
    buf_free(&w->out);
}

static int worker_init(Worker *w, Run *r, char *err)
{
    memset(w, 0, sizeof *w);
    w->r = r;
    const ExtractOpts *o = r->o;
    LMR_TRY(backbone_open(&w->bb, &o->backbone, err));
    if (record_ctx_init(&w->rc, o->zstd_level) < 0)
        return lmr_fail(err, LMR_ENOMEM, "out of memory");
    size_t vt = (size_t)o->sample.views * o->sample.frames, nv = (size_t)o->sample.views * o->sample.crops;
    size_t D = (size_t)backbone_dim(w->bb);
    w->idx = malloc(sizeof(int64_t) * vt);
    w->uniq = malloc(sizeof(int64_t) * vt);
    w->bidx = malloc(sizeof(int64_t) * vt * UNIT_CLIPS);
    w->merged = malloc(sizeof(int64_t) * vt * UNIT_CLIPS);
    w->x0 = malloc(sizeof(int) * nv);
    w->y0 = malloc(sizeof(int) * nv);
    w->frames = malloc((size_t)o->size * o->size * 3 * nv * o->sample.frames);
    w->feat = malloc(sizeof(float) * (D ? D : 1) * nv * o->sample.frames);
    w->feat16 = malloc(sizeof(uint16_t) * (D ? D : 1) * nv * o->sample.frames);
    if (!w->idx || !w->uniq || !w->bidx || !w->merged || !w->x0 || !w->y0 || !w->frames || !w->feat || !w->feat16)
        return lmr_fail(err, LMR_ENOMEM, "out of memory");
    return 0;
}

int extract_run(const Manifest *m, const size_t *sel, size_t n_sel, const ExtractOpts *o,
                ExtractClipFn fn, void *user, ExtractStats *stats, char *err)
{
    const SampleOpts *so = &o->sample;
    if (so->frames < 1 || so->views < 1 || (so->crops != 1 && so->crops != 3) || o->size < 1 ||
        o->decode.size != o->size || o->threads < 1)
        return lmr_fail(err, LMR_EINVAL, "bad extract options");
    Run r;
    memset(&r, 0, sizeof r);
    r.m = m;
    r.sel = sel;
    r.n_sel = n_sel;
    r.o = o;
    r.window = (size_t)3 * UNIT_CLIPS * o->threads;
    size_t *store = NULL;
    int nw = 0, rc = 0;
    Worker *ws = calloc((size_t)o->threads, sizeof *ws); // large: berr per batch clip
    r.slots = calloc(n_sel ? n_sel : 1, sizeof(Slot));
    if (!ws || !r.slots || build_units(&r, &store) < 0) {
        rc = lmr_fail(err, LMR_ENOMEM, "out of memory");
        goto fail;
    }
    pthread_mutex_init(&r.mu, NULL);
    pthread_cond_init(&r.cv, NULL);
    for (nw = 0; nw < o->threads; nw++) {
        if ((rc = worker_init(&ws[nw], &r, err)) < 0 ||
            (pthread_create(&ws[nw].tid, NULL, worker_main, &ws[nw]) != 0 &&
             (rc = lmr_fail(err, LMR_ENOMEM, "cannot start a worker thread")) < 0)) {
            worker_free(&ws[nw]);
            break;
        }
    }
    for (size_t pos = 0; rc == 0 && pos < n_sel; pos++) {
        pthread_mutex_lock(&r.mu);
        while (!r.slots[pos].state)
            pthread_cond_wait(&r.cv, &r.mu);
        Slot s = r.slots[pos];
        memset(&r.slots[pos], 0, sizeof(Slot));
        pthread_mutex_unlock(&r.mu);
        const ManifestRow *row = &m->rows[sel[pos]];
        char path[2048];
        if (extract_video_path(o, row->video, path, sizeof path) < 0)
            snprintf(path, sizeof path, "%s", row->video);
        ExtractClip c = {row, path, s.reason ? NULL : s.rec.data, s.rec.len, s.reason, s.note};
        int stop = fn(user, &c);
        if (s.reason)
            r.stats.n_failed++;
        else
            r.stats.n_written++;
        r.stats.n_padded += !s.reason && s.note;
        buf_free(&s.rec);
        free(s.reason);
        free(s.note);
        pthread_mutex_lock(&r.mu);
        r.next_write = pos + 1;
        if (stop) {
            r.abort = 1;
            rc = stop < 0 ? stop : LMR_EIO;
            lmr_fail(err, rc, "stopped after clip %s", row->clip_id);
        }
        pthread_cond_broadcast(&r.cv);
        pthread_mutex_unlock(&r.mu);
    }
    if (rc < 0) { // a worker that failed to start, or the caller stopped: let the others finish
        pthread_mutex_lock(&r.mu);
        r.abort = 1;
        pthread_cond_broadcast(&r.cv);
        pthread_mutex_unlock(&r.mu);
    }
    for (int i = 0; i < nw; i++) {
        pthread_join(ws[i].tid, NULL);
        worker_free(&ws[i]);
    }
    pthread_cond_destroy(&r.cv);
    pthread_mutex_destroy(&r.mu);
fail:
    for (size_t i = 0; r.slots && i < n_sel; i++) {
        buf_free(&r.slots[i].rec);
        free(r.slots[i].reason);
        free(r.slots[i].note);
    }
    if (stats)
        *stats = r.stats;
    free(r.slots);
    free(r.units);
    free(store);
    free(ws);
    return rc;
}
