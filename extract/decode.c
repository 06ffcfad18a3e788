/* Frame-accurate decoding: the canonical libavformat/libavcodec loop (open, find_stream_info,
 * best stream, parameters_to_context, open2, send/receive), a two-frame window (the frame shown
 * at the target time and one lookahead) to resolve each target by pts, keyframe seeks only where
 * they save work, non-reference frames dropped where provably unneeded, libswscale to RGB. */
#include "decode.h"

#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/display.h>
#include <libavutil/imgutils.h>
#include <libavutil/pixdesc.h>
#include <libswscale/swscale.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#define DEFAULT_EXTRA_FRAMES 6000 /* decode budget beyond the span of a fetch (a long GOP) */
#define MAX_DECODE_ERRORS 64      /* corrupt packets tolerated per fetch */
#define MAX_SEEK_TRIES 6
#define RECENT_PTS 16             /* packet pts remembered: more than any reorder window */

enum { DAMAGE_CUT = 1, DAMAGE_READ = 2 }; /* end of file inside the data the index lists; a read error */

struct Decoder {
    AVFormatContext *fmt;
    AVCodecContext *ctx;
    AVStream *st;
    int vidx, is_folder;
    int count_mode;         /* timestamps unreliable (AVI with B-frames): count frames */
    int64_t anchor, n_out;  /* count mode: dts of the first packet since the seek, frames out */
    AVPacket *pkt;
    AVFrame *prev, *last;   /* prev: latest frame at or before the target; last: lookahead */
    int have_prev, have_last, eof, flushing, positioned;
    int64_t max_pkt_pts;    /* largest packet pts sent since the last seek */
    int64_t recent_pts[RECENT_PTS]; /* pts of the latest packets sent since the last seek (a ring) */
    int n_recent;
    const int64_t *tgt;     /* the fetch's targets (borrowed during decoder_fetch), the current one */
    int tgt_n, tgt_i;
    int64_t start_pts, frame_dur;
    int64_t end_frames;     /* frames in the video, once its end was decoded; else -1 */
    int damage;             /* why reading stopped since the last seek: 0 (end of stream), DAMAGE_* */
    char damage_msg[LMR_ERRLEN];
    int64_t short_from;     /* the last fetch: its first target past the frames decoded, or -1 */
    int short_damage;       /* damage at that point */
    double short_end;       /* seconds the video decoded to, at that point */
    char short_why[LMR_ERRLEN];
    AVRational fps_q, tb;
    int64_t budget_frames, budget_packets, n_errors;
    struct SwsContext *sws;
    int sws_key[6];         /* source size, pixel format, colour space, range, valid */
    uint8_t *tmp;           /* scaled image before rotation: planar G, B, R, aligned rows */
    size_t tmp_plane;
    int tmp_linesize, sw, sh; /* scaled size before rotation */
    DecoderOpts opts;
    DecoderInfo info;
    DecoderStats stats;
    char path[1024];
    char last_error[LMR_ERRLEN];
};

// --- open / close ---------------------------------------------------------------------------

static int av_fail(char *err, int code, const char *path, const char *what, int ret)
{
    char msg[AV_ERROR_MAX_STRING_SIZE] = {0};
    av_strerror(ret, msg, sizeof msg);
    return lmr_fail(err, code, "%s: %s: %s", path, what, msg);
}

/* Clockwise rotation that makes the picture upright, from the display matrix (as ffmpeg's
 * autorotate does); 0 when absent or not a multiple of 90. */
static int stream_rotation(AVStream *st)
{
    const uint8_t *sd = av_stream_get_side_data(st, AV_PKT_DATA_DISPLAYMATRIX, NULL);
    if (!sd)
        return 0;
    double theta = -round(av_display_rotation_get((const int32_t *)sd));
    if (isnan(theta))
        return 0;
    theta -= 360 * floor(theta / 360 + 0.9 / 360);
    for (int r = 90; r <= 270; r += 90)
        if (fabs(theta - r) < 1)
            return r;
    return 0;
}

static int open_input(Decoder *d, const char *path, char *err)
{
    struct stat sb;
    if (stat(path, &sb) != 0)
        return lmr_fail(err, LMR_ENOTFOUND, "%s: no such file or folder", path);
    AVDictionary *o = NULL;
    const AVInputFormat *ifmt = NULL;
    char url[1100];
    snprintf(url, sizeof url, "%s", path);
    if (S_ISDIR(sb.st_mode)) {
        // EPIC frame folders: frame_0000000001.jpg ... read by the image2 demuxer.
        snprintf(url, sizeof url, "%s/frame_%%010d.jpg", path);
        char first[1100];
        snprintf(first, sizeof first, "%s/frame_0000000001.jpg", path);
        if (stat(first, &sb) != 0)
            return lmr_fail(err, LMR_ENOTFOUND, "%s: frame folder without frame_0000000001.jpg", path);
        char rate[32];
        snprintf(rate, sizeof rate, "%g", d->opts.folder_fps > 0 ? d->opts.folder_fps : 30.0);
        ifmt = av_find_input_format("image2");
        av_dict_set(&o, "framerate", rate, 0);
        av_dict_set(&o, "start_number", "1", 0);
        av_dict_set(&o, "pattern_type", "sequence", 0);
        d->is_folder = 1;
    } else if (sb.st_size == 0) {
        return lmr_fail(err, LMR_EDECODE, "%s: empty file", path);
    }
    int ret = avformat_open_input(&d->fmt, url, ifmt, &o);
    av_dict_free(&o);
    if (ret < 0)
        return av_fail(err, LMR_EDECODE, path, "cannot open", ret);
    if ((ret = avformat_find_stream_info(d->fmt, NULL)) < 0)
        return av_fail(err, LMR_EDECODE, path, "cannot read stream info", ret);
    const AVCodec *codec = NULL;
    ret = av_find_best_stream(d->fmt, AVMEDIA_TYPE_VIDEO, -1, -1, &codec, 0);
    if (ret == AVERROR_STREAM_NOT_FOUND)
        return lmr_fail(err, LMR_ENOSTREAM, "%s: no video stream", path);
    if (ret == AVERROR_DECODER_NOT_FOUND)
        return lmr_fail(err, LMR_EUNSUPPORTED, "%s: no decoder for this video codec", path);
    if (ret < 0)
        return av_fail(err, LMR_EDECODE, path, "cannot find a video stream", ret);
    d->vidx = ret;
    d->st = d->fmt->streams[ret];
    for (unsigned i = 0; i < d->fmt->nb_streams; i++)
        if ((int)i != d->vidx)
            d->fmt->streams[i]->discard = AVDISCARD_ALL; // the demuxer may skip other streams
    if (!(d->ctx = avcodec_alloc_context3(codec)))
        return lmr_fail(err, LMR_ENOMEM, "%s: out of memory", path);
    if ((ret = avcodec_parameters_to_context(d->ctx, d->st->codecpar)) < 0)
        return av_fail(err, LMR_EDECODE, path, "bad codec parameters", ret);
    d->ctx->thread_count = d->opts.threads > 0 ? d->opts.threads : 1;
    d->ctx->thread_type = FF_THREAD_FRAME | FF_THREAD_SLICE;
    d->ctx->pkt_timebase = d->st->time_base;
    // After a seek to a non-IDR keyframe (open GOP) the H.264 decoder marks the frames that
    // follow as not yet recovered and drops those still queued when the stream ends, losing
    // the last frames of the video. We only ever seek to keyframes, so they are whole.
    if (codec->id == AV_CODEC_ID_H264)
        d->ctx->flags2 |= AV_CODEC_FLAG2_SHOW_ALL;
    if ((ret = avcodec_open2(d->ctx, codec, NULL)) < 0)
        return av_fail(err, LMR_EDECODE, path, "cannot open the decoder", ret);
    if (d->ctx->width <= 0 || d->ctx->height <= 0)
        return lmr_fail(err, LMR_EDECODE, "%s: video has no picture size", path);
    return 0;
}

static void fill_info(Decoder *d)
{
    AVStream *st = d->st;
    AVRational fps = st->avg_frame_rate;
    if (fps.num <= 0 || fps.den <= 0)
        fps = st->r_frame_rate;
    if (fps.num <= 0 || fps.den <= 0)
        fps = av_guess_frame_rate(d->fmt, st, NULL);
    if (fps.num <= 0 || fps.den <= 0)
        fps = (AVRational){30, 1};
    d->fps_q = fps;
    d->tb = st->time_base;
    d->start_pts = st->start_time != AV_NOPTS_VALUE ? st->start_time : 0;
    d->frame_dur = av_rescale_q(1, av_inv_q(fps), d->tb);
    if (d->frame_dur < 1)
        d->frame_dur = 1;
    DecoderInfo *in = &d->info;
    in->fps = av_q2d(fps);
    if (st->duration != AV_NOPTS_VALUE && st->duration > 0)
        in->duration = st->duration * av_q2d(d->tb);
    else if (d->fmt->duration != AV_NOPTS_VALUE && d->fmt->duration > 0)
        in->duration = d->fmt->duration / (double)AV_TIME_BASE;
    in->n_frames = st->nb_frames > 0 ? st->nb_frames : (int64_t)llround(in->duration * in->fps);
    in->rotation = stream_rotation(st);
    int w = d->ctx->width, h = d->ctx->height, rot90 = in->rotation % 180 != 0;
    in->width = rot90 ? h : w;
    in->height = rot90 ? w : h;
    int s = d->opts.size;
    if (in->width <= in->height) {
        in->out_w = s;
        in->out_h = (int)lround((double)in->height * s / in->width);
    } else {
        in->out_h = s;
        in->out_w = (int)lround((double)in->width * s / in->height);
    }
    if (in->out_w < s)
        in->out_w = s;
    if (in->out_h < s)
        in->out_h = s;
    d->sw = rot90 ? in->out_h : in->out_w;
    d->sh = rot90 ? in->out_w : in->out_h;
    in->codec = d->ctx->codec ? d->ctx->codec->name : "?";
    // AVI stores decode timestamps only; with B-frames the presentation times FFmpeg guesses
    // are off by the reorder delay (and open GOPs hide how many frames precede a keyframe), so
    // frames are numbered by counting from the start of the file.
    d->count_mode = (strcmp(d->fmt->iformat->name, "avi") == 0 && st->codecpar->video_delay > 0) ||
                    (d->fmt->iformat->flags & AVFMT_NOTIMESTAMPS);
}

int decoder_open(Decoder **dp, const char *path, const DecoderOpts *o, char *err)
{
    *dp = NULL;
    if (!o || o->size < 1)
        return lmr_fail(err, LMR_EINVAL, "%s: bad decoder options", path);
    Decoder *d = av_mallocz(sizeof *d);
    if (!d)
        return lmr_fail(err, LMR_ENOMEM, "out of memory");
    *dp = d;
    d->opts = *o;
    d->end_frames = -1;
    d->short_from = -1;
    snprintf(d->path, sizeof d->path, "%s", path);
    LMR_TRY(open_input(d, path, err));
    d->pkt = av_packet_alloc();
    d->prev = av_frame_alloc();
    d->last = av_frame_alloc();
    if (!d->pkt || !d->prev || !d->last)
        return lmr_fail(err, LMR_ENOMEM, "out of memory");
    fill_info(d);
    d->tmp_linesize = FFALIGN(d->sw, 64);
    d->tmp_plane = (size_t)d->tmp_linesize * (d->sh + 1);
    if (!(d->tmp = av_malloc(3 * d->tmp_plane + 64)))
        return lmr_fail(err, LMR_ENOMEM, "out of memory");
    return 0;
}

void decoder_close(Decoder **dp)
{
    if (!dp || !*dp)
        return;
    Decoder *d = *dp;
    sws_freeContext(d->sws);
    av_free(d->tmp);
    av_frame_free(&d->prev);
    av_frame_free(&d->last);
    av_packet_free(&d->pkt);
    avcodec_free_context(&d->ctx);
    avformat_close_input(&d->fmt);
    av_free(d);
    *dp = NULL;
}

const DecoderInfo *decoder_info(const Decoder *d) { return &d->info; }
const DecoderStats *decoder_stats(const Decoder *d) { return &d->stats; }
const char *decoder_error(const Decoder *d) { return d ? d->last_error : "no decoder"; }
int64_t decoder_end_frames(const Decoder *d) { return d->end_frames; }
int64_t decoder_short_from(const Decoder *d) { return d->short_from; }
double decoder_short_end(const Decoder *d) { return d->short_end; }

const char *decoder_short_why(const Decoder *d, int *read_error)
{
    if (read_error)
        *read_error = d->short_damage == DAMAGE_READ;
    return d->short_damage ? d->short_why : NULL;
}

// --- decoding ---------------------------------------------------------------------------------

static int64_t lim_of(const Decoder *d, int64_t idx);

/* Can a non-reference frame at pts be dropped? Take the first target of the fetch still to be
 * answered whose limit is at or after pts: if a later frame at or before that limit was already
 * sent, that frame (or a later one) answers this target and every target after it, so nobody is
 * shown this one. Two cases it covers: frames between targets (in decode order I0 P4 B2 b1 b3,
 * a target at 1.5 drops b1 once B2 was sent, though P4 lies past the target), and the frame
 * just after a target, which would only have been decoded to see that the target's frame is
 * the last one before its limit. A frame past the fetch's last target is kept: a later fetch
 * may want it. */
static int superseded(const Decoder *d, int64_t pts)
{
    if (!d->opts.skip_nonref || d->count_mode || pts == AV_NOPTS_VALUE || d->tgt_i >= d->tgt_n)
        return 0;
    int lo = d->tgt_i, hi = d->tgt_n; // first target with lim >= pts (lims grow with the index)
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        if (lim_of(d, d->tgt[mid]) >= pts)
            hi = mid;
        else
            lo = mid + 1;
    }
    if (lo == d->tgt_n)
        return 0;
    int64_t lim = lim_of(d, d->tgt[lo]);
    int n = d->n_recent < RECENT_PTS ? d->n_recent : RECENT_PTS;
    for (int i = 0; i < n; i++)
        if (d->recent_pts[i] > pts && d->recent_pts[i] <= lim)
            return 1;
    return 0;
}

/* Does the container's index list data past the end of the file (a cut-off download or copy)?
 * Demuxers report that as a plain end of file. */
static int file_cut(Decoder *d, int64_t *need, int64_t *have)
{
    if (d->is_folder || !d->fmt->pb)
        return 0;
    int n = avformat_index_get_entries_count(d->st);
    int64_t size = avio_size(d->fmt->pb);
    const AVIndexEntry *e = n > 0 ? avformat_index_get_entry(d->st, n - 1) : NULL;
    if (!e || e->pos < 0 || size <= 0)
        return 0;
    *need = e->pos + e->size;
    *have = size;
    return *need > size;
}

/* Reading stopped with ret: remember whether that was damage. */
static void note_stop(Decoder *d, int ret)
{
    int64_t need, have;
    if (ret != AVERROR_EOF) {
        char msg[AV_ERROR_MAX_STRING_SIZE] = {0};
        av_strerror(ret, msg, sizeof msg);
        double at = d->max_pkt_pts == INT64_MIN ? 0
                  : (double)(d->max_pkt_pts - d->start_pts + d->frame_dur) * av_q2d(d->tb);
        d->damage = DAMAGE_READ;
        snprintf(d->damage_msg, sizeof d->damage_msg, "read error at %.2f s: %s", at, msg);
    } else if (file_cut(d, &need, &have)) {
        d->damage = DAMAGE_CUT;
        snprintf(d->damage_msg, sizeof d->damage_msg, "the file is cut short: its index runs to byte %lld, "
                 "the file has %lld", (long long)need, (long long)have);
    }
}

/* Next frame in presentation order into f. @return 0, LMR_DONE (end of stream), or an error. */
static int decode_next(Decoder *d, AVFrame *f)
{
    for (;;) {
        int ret = avcodec_receive_frame(d->ctx, f);
        if (ret == 0) {
            d->stats.frames_decoded++;
            if (--d->budget_frames < 0)
                return LMR_FAIL(d, LMR_ETIMEOUT, "%s: decode limit reached (frames)", d->path);
            if (d->count_mode) // closed GOPs: the keyframe we sought to is shown first
                f->best_effort_timestamp = d->anchor + d->n_out++ * d->frame_dur;
            else if (f->best_effort_timestamp == AV_NOPTS_VALUE)
                f->best_effort_timestamp = f->pts;
            return 0;
        }
        if (ret == AVERROR_EOF)
            return LMR_DONE;
        if (ret != AVERROR(EAGAIN))
            return av_fail(d->last_error, LMR_EDECODE, d->path, "decode failed", ret);
        if (d->flushing)
            return LMR_DONE;
        ret = av_read_frame(d->fmt, d->pkt);
        if (ret < 0) {
            // End of file, or a read error: drain what the decoder holds. Which of the two it
            // was decides whether targets after it are the end of the video or lost to damage.
            note_stop(d, ret);
            d->flushing = 1;
            avcodec_send_packet(d->ctx, NULL);
            continue;
        }
        if (d->pkt->stream_index != d->vidx) {
            av_packet_unref(d->pkt);
            continue;
        }
        d->stats.packets_read++;
        if (--d->budget_packets < 0) {
            av_packet_unref(d->pkt);
            return LMR_FAIL(d, LMR_ETIMEOUT, "%s: decode limit reached (packets)", d->path);
        }
        int64_t pts = d->pkt->pts;
        if (d->count_mode && d->anchor == AV_NOPTS_VALUE)
            d->anchor = d->pkt->dts != AV_NOPTS_VALUE ? d->pkt->dts : d->start_pts;
        d->ctx->skip_frame = superseded(d, pts) ? AVDISCARD_NONREF : AVDISCARD_DEFAULT;
        if (pts != AV_NOPTS_VALUE) {
            if (pts > d->max_pkt_pts)
                d->max_pkt_pts = pts;
            d->recent_pts[d->n_recent++ % RECENT_PTS] = pts;
        }
        ret = avcodec_send_packet(d->ctx, d->pkt);
        av_packet_unref(d->pkt);
        if (ret < 0 && ret != AVERROR(EAGAIN) && ++d->n_errors > MAX_DECODE_ERRORS)
            return av_fail(d->last_error, LMR_EDECODE, d->path, "too many corrupt packets", ret);
    }
}

static void reset_window(Decoder *d)
{
    av_frame_unref(d->prev);
    av_frame_unref(d->last);
    d->have_prev = d->have_last = d->eof = d->flushing = d->damage = 0;
    d->max_pkt_pts = INT64_MIN;
    d->n_recent = 0;
    d->anchor = AV_NOPTS_VALUE;
    d->n_out = 0;
}

static int seek_to(Decoder *d, int64_t ts)
{
    int ret = avformat_seek_file(d->fmt, d->vidx, INT64_MIN, ts, ts, 0);
    if (ret < 0)
        ret = av_seek_frame(d->fmt, d->vidx, ts, AVSEEK_FLAG_BACKWARD);
    if (ret < 0)
        return av_fail(d->last_error, LMR_EDECODE, d->path, "cannot seek", ret);
    avcodec_flush_buffers(d->ctx);
    reset_window(d);
    d->positioned = 1;
    d->stats.seeks++;
    return 0;
}

/* Seek so that the first decoded frame is at or before lim (the keyframe index can point past
 * the target, e.g. when it holds decode timestamps): back off further until it is, or until
 * the stream start. Leaves that first frame in the lookahead slot. */
static int seek_before(Decoder *d, int64_t target, int64_t lim)
{
    int64_t back = 0, step = av_rescale_q(1, (AVRational){1, 1}, d->tb);
    for (int attempt = 0;; attempt++) {
        int64_t ts = target - back;
        int at_start = attempt >= MAX_SEEK_TRIES || ts <= d->start_pts;
        if (at_start)
            ts = d->start_pts;
        int ret = seek_to(d, ts);
        if (ret < 0 && at_start)
            return ret;
        if (ret == 0) {
            ret = decode_next(d, d->last);
            if (ret == LMR_DONE) {
                d->eof = 1;
                if (at_start)
                    return 0;
            } else if (ret < 0) {
                return ret;
            } else {
                d->have_last = 1;
                if (d->last->best_effort_timestamp <= lim || at_start)
                    return 0;
            }
        }
        back = back ? back * 2 : step;
    }
}

/* Is seeking forward to the keyframe before target cheaper than decoding up to it? */
static int seek_pays(Decoder *d, int64_t target)
{
    int64_t pos = d->have_last ? d->last->best_effort_timestamp
                : d->have_prev ? d->prev->best_effort_timestamp : d->max_pkt_pts;
    if (pos == INT64_MIN || pos == AV_NOPTS_VALUE)
        return 1;
    int64_t half_s = av_rescale_q(1, (AVRational){1, 2}, d->tb);
    if (d->is_folder)
        return target - pos > 8 * d->frame_dur; // every image is a keyframe
    const AVIndexEntry *e = avformat_index_get_entry_from_timestamp(d->st, target, AVSEEK_FLAG_BACKWARD);
    if (e)
        return e->timestamp > pos + half_s;
    return target - pos > 6 * half_s; // no index: only for long jumps
}

static int64_t pts_of(const Decoder *d, int64_t idx)
{
    return d->start_pts + av_rescale_q(idx, av_inv_q(d->fps_q), d->tb);
}

/* The latest pts still shown "at" frame index idx: half a nominal frame after its time. */
static int64_t lim_of(const Decoder *d, int64_t idx)
{
    AVRational half = {d->fps_q.den, 2 * d->fps_q.num};
    return d->start_pts + av_rescale_q_rnd(2 * idx + 1, half, d->tb, AV_ROUND_DOWN);
}

// --- scaling ------------------------------------------------------------------------------

static enum AVPixelFormat unjpeg(enum AVPixelFormat f, int *full)
{
    switch (f) {
    case AV_PIX_FMT_YUVJ420P: *full = 1; return AV_PIX_FMT_YUV420P;
    case AV_PIX_FMT_YUVJ422P: *full = 1; return AV_PIX_FMT_YUV422P;
    case AV_PIX_FMT_YUVJ444P: *full = 1; return AV_PIX_FMT_YUV444P;
    case AV_PIX_FMT_YUVJ440P: *full = 1; return AV_PIX_FMT_YUV440P;
    default: return f;
    }
}

/* Scale f to sw x sh RGB, then rotate upright into dst (out_w x out_h x 3, tight rows). */
/* One row of planar R, G, B interleaved into packed RGB. Built for AVX-512, AVX2 and the
 * baseline, picked at load time: the baseline build of this loop moves a byte at a time. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
__attribute__((target_clones("arch=x86-64-v4", "avx2", "default")))
#endif
static void interleave_row(uint8_t *restrict o, const uint8_t *restrict r, const uint8_t *restrict g,
                           const uint8_t *restrict b, int n)
{
    for (int x = 0; x < n; x++) {
        o[3 * x] = r[x];
        o[3 * x + 1] = g[x];
        o[3 * x + 2] = b[x];
    }
}

static int scale_frame(Decoder *d, const AVFrame *f, uint8_t *dst)
{
    int full = f->color_range == AVCOL_RANGE_JPEG;
    enum AVPixelFormat fmt = unjpeg((enum AVPixelFormat)f->format, &full);
    int cs = f->colorspace == AVCOL_SPC_BT709 ? SWS_CS_ITU709 : SWS_CS_DEFAULT;
    // One context per source geometry and colour setup. (sws_getCachedContext would rebuild a
    // context behind our back and drop the range set below.)
    int key[6] = {f->width, f->height, fmt, cs, full, 1};
    if (!d->sws || memcmp(key, d->sws_key, sizeof key) != 0) {
        sws_freeContext(d->sws);
        d->sws = sws_getContext(f->width, f->height, fmt, d->sw, d->sh, AV_PIX_FMT_GBRP,
                                SWS_BILINEAR, NULL, NULL, NULL);
        if (!d->sws)
            return LMR_FAIL(d, LMR_EDECODE, "%s: cannot scale %dx%d %s", d->path, f->width,
                            f->height, av_get_pix_fmt_name(fmt) ? av_get_pix_fmt_name(fmt) : "?");
        const int *coef = sws_getCoefficients(cs);
        sws_setColorspaceDetails(d->sws, coef, full, coef, 1, 0, 1 << 16, 1 << 16);
        memcpy(d->sws_key, key, sizeof key);
    }
    // Planar RGB out of swscale has SIMD paths that packed RGB24 lacks (about 4x faster here);
    // interleaving (and rotating) is a cheap pass of our own.
    uint8_t *dp[4] = {d->tmp, d->tmp + d->tmp_plane, d->tmp + 2 * d->tmp_plane, NULL};
    int dl[4] = {d->tmp_linesize, d->tmp_linesize, d->tmp_linesize, 0};
    sws_scale(d->sws, (const uint8_t *const *)f->data, f->linesize, 0, f->height, dp, dl);
    d->stats.frames_scaled++;
    int ow = d->info.out_w, oh = d->info.out_h, rot = d->info.rotation, ls = d->tmp_linesize;
    const uint8_t *pg = dp[0], *pb = dp[1], *pr = dp[2];
    for (int y = 0; y < oh; y++) {
        uint8_t *o = dst + (size_t)y * ow * 3;
        if (rot == 0) {
            interleave_row(o, pr + (size_t)y * ls, pg + (size_t)y * ls, pb + (size_t)y * ls, ow);
            continue;
        }
        for (int x = 0; x < ow; x++, o += 3) {
            int sx, sy; // source pixel in the sw x sh image
            if (rot == 90) {
                sx = y;
                sy = d->sh - 1 - x;
            } else if (rot == 270) {
                sx = d->sw - 1 - y;
                sy = x;
            } else {
                sx = d->sw - 1 - x;
                sy = d->sh - 1 - y;
            }
            size_t at = (size_t)sy * ls + sx;
            o[0] = pr[at];
            o[1] = pg[at];
            o[2] = pb[at];
        }
    }
    return 0;
}

// --- fetch ----------------------------------------------------------------------------------

int decoder_fetch(Decoder *d, int64_t clip_first, const int64_t *idx, int n, uint8_t *out)
{
    if (n < 1)
        return 0;
    int64_t span = idx[n - 1] - idx[0] + 1;
    int64_t extra = d->opts.max_frames > 0 ? d->opts.max_frames : DEFAULT_EXTRA_FRAMES;
    d->budget_frames = 2 * span + extra;
    d->budget_packets = 4 * (span + extra);
    d->n_errors = 0;
    int64_t t0 = pts_of(d, idx[0]), lim0 = lim_of(d, idx[0]);
    d->tgt = idx;
    d->tgt_n = n;
    d->tgt_i = 0;
    d->short_from = -1;
    d->short_damage = 0;

    int behind = (d->have_prev && d->prev->best_effort_timestamp > lim0) ||
                 (!d->have_prev && d->have_last && d->last->best_effort_timestamp > lim0);
    int need_seek;
    if (d->count_mode) {
        // Frame numbers are only known when counting from the start: rewind, never skip ahead.
        need_seek = !d->positioned || behind;
        if (need_seek)
            t0 = lim0 = d->start_pts;
        d->budget_frames += idx[n - 1];
        d->budget_packets += 4 * idx[n - 1];
    } else {
        need_seek = !d->positioned || behind || (!d->eof && seek_pays(d, t0));
    }
    if (need_seek)
        LMR_TRY(seek_before(d, t0, lim0));

    size_t img = (size_t)d->info.out_w * d->info.out_h * 3;
    int64_t prev_ans = AV_NOPTS_VALUE;
    for (int i = 0; i < n; i++) {
        int64_t lim = lim_of(d, idx[i]);
        d->tgt_i = i;
        // A gap in the targets that holds a keyframe (clips of a long video far apart): jump
        // to that keyframe instead of decoding the reference frames in between.
        if (i > 0 && !d->count_mode && !d->eof && seek_pays(d, pts_of(d, idx[i])))
            LMR_TRY(seek_before(d, pts_of(d, idx[i]), lim));
        for (;;) {
            if (!d->have_last && !d->eof) {
                int ret = decode_next(d, d->last);
                if (ret == LMR_DONE)
                    d->eof = 1;
                else if (ret < 0)
                    return ret;
                else
                    d->have_last = 1;
            }
            if (d->have_last && d->last->best_effort_timestamp <= lim) {
                av_frame_unref(d->prev);
                av_frame_move_ref(d->prev, d->last);
                d->have_prev = 1;
                d->have_last = 0;
                continue;
            }
            break;
        }
        // Before the first frame: clamp to it; after the end: the last frame stays shown.
        AVFrame *ans = d->have_prev ? d->prev : d->have_last ? d->last : NULL;
        if (!ans)
            return LMR_FAIL(d, LMR_EDECODE, "%s: no frame could be decoded", d->path);
        int64_t pts = ans->best_effort_timestamp;
        if (d->eof && !d->have_last) {
            // The last frame decoded: after a read error it is where the damage starts, else
            // the end of the video. Is the clip's first frame after it?
            int64_t end = av_rescale_q(pts - d->start_pts, d->tb, av_inv_q(d->fps_q)) + 1;
            if (d->damage != DAMAGE_READ) {
                d->end_frames = end;
                if (i == 0 && clip_first >= end)
                    return LMR_FAIL(d, LMR_ERANGE, "%s: clip starts at frame %lld, after the end of the video (%lld frames)",
                                    d->path, (long long)clip_first, (long long)end);
            }
            // A target up to the end of the last frame's time is that frame; one past it has
            // no frame: the caller decides (a failure, or padding on request).
            if (d->short_from < 0 && idx[i] > end) {
                d->short_from = idx[i];
                d->short_end = end / av_q2d(d->fps_q);
                d->short_damage = d->damage;
                snprintf(d->short_why, sizeof d->short_why, "%s", d->damage_msg);
            }
        }
        if (i > 0 && pts == prev_ans)
            memcpy(out + i * img, out + (i - 1) * img, img);
        else
            LMR_TRY(scale_frame(d, ans, out + i * img));
        prev_ans = pts;
    }
    d->tgt_n = 0;
    return 0;
}
