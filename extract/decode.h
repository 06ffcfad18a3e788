/* Video decoding with libavformat/libavcodec and scaling with libswscale: one open video, read
 * frame-accurately at nominal frame indices (index k = the frame displayed at time k / fps from
 * the stream start), scaled so the short side is `size`, rotated upright, RGB u8.
 * One decoder per worker thread; a decoder keeps its position, so fetches in time order decode
 * forward without seeking, and it seeks (keyframe + flush) only when that saves work. */
#ifndef LMR_DECODE_H
#define LMR_DECODE_H

#include <stdint.h>

#include "lmr_error.h"

typedef struct {
    int threads;         /* libavcodec threads per decoder (0 = 1) */
    int size;            /* short side of the output images */
    double folder_fps;   /* frame rate of JPEG frame folders (frame_%010d.jpg from 1) */
    int skip_nonref;     /* let the decoder drop non-reference frames nobody asked for */
    int64_t max_frames;  /* decode limit per fetch beyond the frames it spans (0 = default) */
} DecoderOpts;

typedef struct {
    double fps;          /* nominal frame rate: average rate, else the container's guess */
    int64_t n_frames;    /* frame count (container count or duration x fps); 0 when unknown */
    double duration;     /* seconds; 0 when unknown */
    int width, height;   /* displayed size, after rotation */
    int out_w, out_h;    /* size of the fetched images (short side = size) */
    int rotation;        /* clockwise degrees applied: 0, 90, 180, 270 */
    const char *codec;   /* codec name (borrowed) */
} DecoderInfo;

typedef struct {
    int64_t frames_decoded, packets_read, seeks, frames_scaled;
} DecoderStats;

typedef struct Decoder Decoder;

/** Open a video file, or a JPEG frame folder (a directory holding frame_%010d.jpg).
 *  @return 0, -errno, LMR_ENOTFOUND, LMR_EDECODE (not readable), LMR_ENOSTREAM (no video);
 *  err (LMR_ERRLEN bytes) says why. @note close with decoder_close even on failure. */
int decoder_open(Decoder **d, const char *path, const DecoderOpts *o, char *err);
/** Release everything; NULL-safe, sets *d to NULL. */
void decoder_close(Decoder **d);
/** Stream facts. Borrowed until decoder_close. */
const DecoderInfo *decoder_info(const Decoder *d);
const DecoderStats *decoder_stats(const Decoder *d);

/** Decode the frames at nominal indices idx[0..n) (non-decreasing) into out, one out_w x out_h
 *  x 3 image each. Indices past the last frame that could be decoded (the end of the video, or
 *  a read error) give that frame, and decoder_short_from says from which index on that
 *  happened; a clip whose first frame (clip_first; < 0: no check) lies past the end of the
 *  video is an error.
 *  @param[out] out n * out_w * out_h * 3 bytes.
 *  @return 0, LMR_ERANGE (clip past the end), LMR_EDECODE, LMR_ETIMEOUT (decode limit),
 *  LMR_ENOMEM; decoder_error says why. */
int decoder_fetch(Decoder *d, int64_t clip_first, const int64_t *idx, int n, uint8_t *out);
const char *decoder_error(const Decoder *d);
/** Number of frames in the video once a fetch has decoded its last frame, else -1. */
int64_t decoder_end_frames(const Decoder *d);
/** After a fetch: its smallest target index that lay more than one frame past the last frame
 *  decoded (and got that frame), or -1 when every target had its own frame. An index equal to
 *  the frame count is the instant the video ends: it shows the last frame and is not short. */
int64_t decoder_short_from(const Decoder *d);
/** For that fetch: seconds the video decoded to (the end of its last frame's time). */
double decoder_short_end(const Decoder *d);
/** For that fetch: NULL at a clean end of stream, else why decoding stopped ("read error at
 *  2.00 s: Input/output error", "the file is cut short: ..."); *read_error (may be NULL) is set
 *  for a read error, which a fresh look at frames after it may get past. */
const char *decoder_short_why(const Decoder *d, int *read_error);

#endif
