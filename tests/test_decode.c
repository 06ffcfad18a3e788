/* The decoder on videos made here in several codecs and containers (and a JPEG frame folder):
 * every frame straight through, then random access in shuffled order (backward and forward
 * seeks) must give the same frames; VFR follows pts; rotation matches ffmpeg's autorotate; odd
 * sizes; clamping at the end (and saying so), a clip past the end, a read error or a file cut
 * short told apart from the end, the decode limit; identical bytes with and
 * without dropping non-reference frames and for any number of decoder threads; frames after a
 * target are not decoded just to close it, and fetches that follow still get theirs. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <libavutil/log.h>

#include "check.h"
#include "decode.h"
#include "extract_videos.h"
#include "sample.h"

static char dir[256];

static Decoder *open_video(const char *name, int size, int threads, int skip)
{
    char path[512], err[LMR_ERRLEN] = {0};
    snprintf(path, sizeof path, "%s/%s", dir, name);
    DecoderOpts o = {threads, size, 30, skip, 0};
    Decoder *d = NULL;
    int rc = decoder_open(&d, path, &o, err);
    if (rc < 0)
        fprintf(stderr, "open %s: %s\n", name, err);
    CHECK_RC(rc, 0);
    return d;
}

/* Fetch idx[0..n) and return the frame numbers the images show. */
static int fetch_ids(Decoder *d, const int64_t *idx, int n, int *ids)
{
    const DecoderInfo *in = decoder_info(d);
    size_t isz = (size_t)in->out_w * in->out_h * 3;
    uint8_t *img = malloc(isz * n);
    int rc = decoder_fetch(d, idx[0], idx, n, img);
    for (int i = 0; i < n && rc == 0; i++)
        ids[i] = vid_index(img + isz * i, in->out_w, in->out_h);
    free(img);
    return rc;
}

/* Straight through, then groups of 3 sorted indices in a shuffled order; expect[k] = frame shown at index k. */
static void check_access(const char *name, int n, const int *expect)
{
    Decoder *d = open_video(name, 32, 1, 1);
    if (!d)
        return;
    int64_t *idx = malloc(sizeof(int64_t) * n);
    int *ids = malloc(sizeof(int) * n), bad = 0;
    for (int k = 0; k < n; k++)
        idx[k] = k;
    CHECK_RC(fetch_ids(d, idx, n, ids), 0);
    for (int k = 0; k < n; k++)
        if (ids[k] != expect[k] && bad++ < 5)
            fprintf(stderr, "%s: straight: index %d shows frame %d, want %d\n", name, k, ids[k], expect[k]);
    SampleRng r;
    sample_rng_seed(&r, 1, name, 0);
    for (int g = 0; g < 40; g++) {
        int64_t q[3];
        for (int j = 0; j < 3; j++)
            q[j] = sample_rng_below(&r, n);
        if (q[0] > q[1]) { int64_t t = q[0]; q[0] = q[1]; q[1] = t; }
        if (q[1] > q[2]) { int64_t t = q[1]; q[1] = q[2]; q[2] = t; }
        if (q[0] > q[1]) { int64_t t = q[0]; q[0] = q[1]; q[1] = t; }
        int got[3];
        CHECK_RC(fetch_ids(d, q, 3, got), 0);
        for (int j = 0; j < 3; j++)
            if (got[j] != expect[q[j]] && bad++ < 5)
                fprintf(stderr, "%s: random: index %lld shows frame %d, want %d\n", name,
                        (long long)q[j], got[j], expect[q[j]]);
    }
    CHECK(bad == 0);
    CHECK(decoder_stats(d)->seeks > 5 || strstr(name, ".avi"));
    free(idx);
    free(ids);
    decoder_close(&d);
    // The last frames alone, from a fresh decoder (a seek into the last GOP, then the drain).
    for (int back = 1; back <= 3; back++) {
        if (!(d = open_video(name, 32, 1, 1)))
            return;
        int64_t q = n - back;
        int got = -1;
        CHECK_RC(fetch_ids(d, &q, 1, &got), 0);
        if (got != expect[q])
            fprintf(stderr, "%s: alone: index %lld shows frame %d, want %d\n", name, (long long)q, got, expect[q]);
        CHECK(got == expect[q]);
        decoder_close(&d);
    }
}

static int make_all(void)
{
    char a[1024];
    int rc = 0;
    // 64x48 at 30 fps, each frame showing its number: frames, then the encoder arguments
    static const struct {
        int n;
        const char *args;
    } coded[] = {
        {300, "-c:v libx264 -crf 8 -bf 3 -g 25 -sc_threshold 0 -pix_fmt yuv420p %s/h264.mp4"},
        {150, "-c:v libx264 -crf 8 -bf 3 -g 24 -sc_threshold 0 -x264-params open-gop=1 -pix_fmt yuv420p %s/opengop.mkv"},
        {90, "-c:v libvpx-vp9 -deadline realtime -cpu-used 8 -crf 4 -b:v 0 -g 30 %s/vp9.webm"},
        {90, "-c:v mpeg4 -q:v 2 -bf 2 -g 30 %s/mpeg4.avi"},
        {90, "-c:v mjpeg -q:v 2 %s/mjpeg.avi"},
        {60, "-c:v libx265 -preset ultrafast -x265-params log-level=none:crf=6 -pix_fmt yuv420p %s/hevc.mp4"},
        // VP9 as SSv2's encoder made it: hidden alt-ref frames (superframes), two-pass-like lag
        {90, "-c:v libvpx-vp9 -deadline good -cpu-used 8 -auto-alt-ref 1 -lag-in-frames 16 -crf 4 -b:v 0 -g 30 "
             "%s/vp9_arf.webm"},
        // HEVC with open GOPs (CRA keyframes, leading pictures after them) every 24 frames
        {120, "-c:v libx265 -preset ultrafast -x265-params "
              "log-level=none:crf=6:keyint=24:min-keyint=24:open-gop=1:bframes=3 -pix_fmt yuv420p %s/hevc_cra.mkv"},
    };
    for (size_t i = 0; i < sizeof coded / sizeof *coded; i++) {
        snprintf(a, sizeof a, coded[i].args, dir);
        rc |= vid_make(coded[i].n, 64, 48, 30, 0, a);
    }
    snprintf(a, sizeof a, "-q:v 2 -start_number 1 %s/frames/frame_%%010d.jpg", dir);
    rc |= vid_sh("mkdir -p %s/frames", dir);
    rc |= vid_make(60, 64, 48, 30, 0, a);
    // VFR: frame i at (i + floor(i/3)) / 30 s: every third gap is twice as long.
    snprintf(a, sizeof a, "-vf setpts='(N+floor(N/3))/30/TB' -vsync vfr -c:v libx264 -crf 8 -bf 2 -g 20 -sc_threshold 0 %s/vfr.mp4", dir);
    rc |= vid_make(90, 64, 48, 30, 0, a);
    snprintf(a, sizeof a, "-c:v libx264 -crf 8 -pix_fmt yuv420p %s/quad.mp4", dir);
    rc |= vid_make(3, 64, 48, 30, 1, a);
    rc |= vid_sh("ffmpeg -v error -y -i %s/quad.mp4 -c copy -metadata:s:v:0 rotate=90 %s/rot90.mp4", dir, dir);
    rc |= vid_sh("ffmpeg -v error -y -i %s/quad.mp4 -c copy -metadata:s:v:0 rotate=180 %s/rot180.mp4", dir, dir);
    snprintf(a, sizeof a, "-c:v libx264 -crf 8 -pix_fmt yuv444p %s/odd.mp4", dir);
    rc |= vid_make(30, 63, 47, 30, 0, a);
    return rc;
}

/* Quadrant mean colours of an RGB image (TL, TR, BL, BR). */
static void quadrants(const uint8_t *img, int w, int h, double q[4][3])
{
    memset(q, 0, sizeof(double) * 12);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int c = 0; c < 3; c++)
                q[(y >= h / 2) * 2 + (x >= w / 2)][c] += img[((size_t)y * w + x) * 3 + c] / (w * h / 4.0);
}

static void check_rotation(const char *name)
{
    Decoder *d = open_video(name, 48, 1, 1);
    if (!d)
        return;
    const DecoderInfo *in = decoder_info(d);
    int w = in->out_w, h = in->out_h;
    uint8_t *img = malloc((size_t)w * h * 3), *ref = malloc((size_t)w * h * 3);
    int64_t i0 = 0;
    CHECK_RC(decoder_fetch(d, 0, &i0, 1, img), 0);
    // ffmpeg's CLI applies the display matrix itself (autorotate): the reference picture.
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "ffmpeg -v error -i %s/%s -frames:v 1 -f rawvideo -pix_fmt rgb24 -", dir, name);
    FILE *p = popen(cmd, "r");
    size_t got = p ? fread(ref, 1, (size_t)w * h * 3, p) : 0;
    if (p)
        pclose(p);
    CHECK(got == (size_t)w * h * 3);
    double qa[4][3], qb[4][3];
    quadrants(img, w, h, qa);
    quadrants(ref, w, h, qb);
    for (int k = 0; k < 4; k++)
        for (int c = 0; c < 3; c++)
            CHECK_CLOSE(qa[k][c], qb[k][c], 12, 0);
    free(img);
    free(ref);
    decoder_close(&d);
}

int main(void)
{
    av_log_set_level(AV_LOG_QUIET);
    if (!vid_have_ffmpeg()) {
        printf("ffmpeg CLI not found: skipped\n");
        return 77;
    }
    snprintf(dir, sizeof dir, "%s/lmr-decode-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    CHECK(mkdtemp(dir) != NULL);
    TEST(1, "make test videos (H.264, VP9, MPEG-4, MJPEG, HEVC, JPEG folder, VFR, rotated, odd size)");
    CHECK(make_all() == 0);

    TEST(2, "stream facts");
    Decoder *d = open_video("h264.mp4", 32, 1, 1);
    if (d) {
        const DecoderInfo *in = decoder_info(d);
        CHECK_CLOSE(in->fps, 30, 1e-9, 0);
        CHECK(in->n_frames == 300);
        CHECK(in->width == 64 && in->height == 48 && in->out_w == 43 && in->out_h == 32);
        CHECK(in->rotation == 0);
    }
    decoder_close(&d);

    TEST(3, "every codec (and open-GOP H.264 and HEVC, VP9 with alt-ref frames): straight through and random access agree");
    int ident[300];
    for (int k = 0; k < 300; k++)
        ident[k] = k;
    const char *names[] = {"h264.mp4", "vp9.webm", "mpeg4.avi", "mjpeg.avi", "hevc.mp4", "frames", "opengop.mkv",
                           "hevc_cra.mkv", "vp9_arf.webm"};
    const int counts[] = {300, 90, 90, 90, 60, 60, 150, 120, 90};
    for (int i = 0; i < 9; i++) {
        printf("  %s\n", names[i]);
        check_access(names[i], counts[i], ident);
    }

    TEST(4, "VFR: index k shows the last frame with pts <= (k + 0.5) / fps");
    d = open_video("vfr.mp4", 32, 1, 1);
    if (d) {
        const DecoderInfo *in = decoder_info(d);
        int n = (int)in->n_frames, exp[300];
        CHECK(n > 60 && n < 300);
        if (n > 300)
            n = 300;
        for (int k = 0; k < n; k++) {
            double lim = (k + 0.5) / in->fps;
            exp[k] = 0;
            for (int i = 0; i < 90; i++)
                if ((i + i / 3) / 30.0 <= lim + 1e-9)
                    exp[k] = i;
        }
        decoder_close(&d);
        check_access("vfr.mp4", n, exp);
    }

    TEST(5, "rotation metadata: upright like ffmpeg's autorotate");
    check_rotation("rot90.mp4");
    check_rotation("rot180.mp4");
    d = open_video("rot90.mp4", 48, 1, 1);
    CHECK(d && decoder_info(d)->rotation % 180 == 90 && decoder_info(d)->out_w == 48 &&
          decoder_info(d)->out_h == 64);
    decoder_close(&d);

    TEST(6, "odd picture size");
    d = open_video("odd.mp4", 48, 1, 1);
    if (d) {
        CHECK(decoder_info(d)->out_w == 64 && decoder_info(d)->out_h == 48);
        int64_t q[2] = {3, 29};
        int got[2] = {-1, -1};
        CHECK_RC(fetch_ids(d, q, 2, got), 0);
        CHECK(got[0] == 3 && got[1] == 29);
    }
    decoder_close(&d);

    TEST(7, "end of video: clamp to the last frame; a clip past the end is an error");
    d = open_video("h264.mp4", 32, 1, 1);
    if (d) {
        int64_t q[2] = {290, 320};
        int got[2] = {-1, -1};
        CHECK_RC(fetch_ids(d, q, 2, got), 0);
        CHECK(got[0] == 290 && got[1] == 299);
        // 320 has no frame of its own: the fetch says so, and that the video ended cleanly.
        int rerr = -1;
        CHECK(decoder_short_from(d) == 320 && decoder_short_why(d, &rerr) == NULL && rerr == 0);
        CHECK_CLOSE(decoder_short_end(d), 10.0, 1e-9, 0);
        int64_t at_end[2] = {299, 300}; // 300: the instant the video ends, still its last frame
        CHECK_RC(fetch_ids(d, at_end, 2, got), 0);
        CHECK(got[0] == 299 && got[1] == 299 && decoder_short_from(d) == -1);
        uint8_t img[43 * 32 * 3];
        int64_t past = 400;
        CHECK_RC(decoder_fetch(d, 400, &past, 1, img), LMR_ERANGE);
        CHECK(strstr(decoder_error(d), "after the end") != NULL);
        int64_t first = 0; // and it still serves the start afterwards
        CHECK_RC(fetch_ids(d, &first, 1, got), 0);
        CHECK(got[0] == 0);
    }
    decoder_close(&d);

    TEST(8, "decode limit: a fetch that needs too many frames stops");
    {
        char path[512], err[LMR_ERRLEN];
        snprintf(path, sizeof path, "%s/h264.mp4", dir);
        DecoderOpts o = {1, 32, 30, 0, 2};
        CHECK_RC(decoder_open(&d, path, &o, err), 0);
        uint8_t img[43 * 32 * 3];
        int64_t q = 290; // keyframe at 275: 16 frames to decode
        if (d) {
            CHECK_RC(decoder_fetch(d, q, &q, 1, img), LMR_ETIMEOUT);
            CHECK(strstr(decoder_error(d), "decode limit") != NULL);
        }
        decoder_close(&d);
    }

    TEST(9, "same bytes: with or without dropping non-reference frames, 1 or 3 decoder threads");
    {
        int64_t q[6] = {5, 6, 100, 101, 187, 260};
        uint8_t *img[3];
        int64_t decoded[3];
        int cfg[3][2] = {{1, 1}, {1, 0}, {3, 1}};
        size_t isz = 43 * 32 * 3 * 6;
        for (int c = 0; c < 3; c++) {
            img[c] = calloc(1, isz);
            d = open_video("h264.mp4", 32, cfg[c][0], cfg[c][1]);
            if (d) {
                CHECK_RC(decoder_fetch(d, q[0], q, 3, img[c]), 0);
                CHECK_RC(decoder_fetch(d, q[3], q + 3, 3, img[c] + isz / 2), 0);
                decoded[c] = decoder_stats(d)->frames_decoded;
            }
            decoder_close(&d);
        }
        CHECK(memcmp(img[0], img[1], isz) == 0);
        CHECK(memcmp(img[0], img[2], isz) == 0);
        printf("  frames decoded: %lld (skip non-ref) vs %lld (all), 300 in the video\n",
               (long long)decoded[0], (long long)decoded[1]);
        CHECK(decoded[0] <= decoded[1] && decoded[0] < 200);
        for (int c = 0; c < 3; c++)
            free(img[c]);
    }

    TEST(10, "missing, empty and non-video inputs");
    {
        char path[512], err[LMR_ERRLEN];
        DecoderOpts o = {1, 32, 30, 1, 0};
        snprintf(path, sizeof path, "%s/none.mp4", dir);
        CHECK_RC(decoder_open(&d, path, &o, err), LMR_ENOTFOUND);
        decoder_close(&d);
        snprintf(path, sizeof path, "%s/empty.mp4", dir);
        fclose(fopen(path, "w"));
        CHECK_RC(decoder_open(&d, path, &o, err), LMR_EDECODE);
        CHECK(strstr(err, "empty") != NULL);
        decoder_close(&d);
        CHECK(vid_sh("ffmpeg -v error -y -f lavfi -i sine=d=0.5 %s/audio.m4a", dir) == 0);
        snprintf(path, sizeof path, "%s/audio.m4a", dir);
        CHECK_RC(decoder_open(&d, path, &o, err), LMR_ENOSTREAM);
        decoder_close(&d);
    }

    TEST(11, "frames after a target are not decoded to close it, and later fetches still get theirs");
    {
        // Fetches that continue one another (no seek between them): each target's own frame,
        // whether the frames right after it were dropped or not, same bytes as with no dropping.
        static const int64_t seq[][8] = {{10, 11, 12, 40, -1}, {41, 42, 43, -1}, {45, 50, 55, 60, 61, 62, 63, -1},
                                         {64, -1}, {66, 66, 70, 90, 91, -1}, {93, 95, 97, 99, 150, 151, 180, -1},
                                         {181, 182, 200, 299, -1}, {5, 6, 7, -1}, {9, 13, 17, -1}};
        const int ns = sizeof seq / sizeof *seq;
        for (int v = 0; v < 2; v++) {
            const char *name = v == 0 ? "h264.mp4" : "opengop.mkv";
            Decoder *dd[2] = {open_video(name, 32, 1, 1), open_video(name, 32, 1, 0)};
            if (!dd[0] || !dd[1]) {
                decoder_close(&dd[0]);
                decoder_close(&dd[1]);
                continue;
            }
            size_t isz = (size_t)decoder_info(dd[0])->out_w * decoder_info(dd[0])->out_h * 3;
            uint8_t *img[2] = {malloc(isz * 8), malloc(isz * 8)};
            int bad = 0, limit = v == 0 ? 300 : 150;
            for (int k = 0; k < ns; k++) {
                int n = 0; // the targets inside this video
                while (seq[k][n] >= 0 && seq[k][n] < limit)
                    n++;
                if (n == 0)
                    continue;
                for (int c = 0; c < 2; c++)
                    CHECK_RC(decoder_fetch(dd[c], seq[k][0], seq[k], n, img[c]), 0);
                for (int i = 0; i < n; i++) {
                    const DecoderInfo *in = decoder_info(dd[0]);
                    int id = vid_index(img[0] + isz * i, in->out_w, in->out_h);
                    if (id != seq[k][i] && bad++ < 5)
                        fprintf(stderr, "%s: fetch %d: index %lld shows frame %d\n", name, k, (long long)seq[k][i], id);
                }
                if (memcmp(img[0], img[1], isz * n) != 0 && bad++ < 5)
                    fprintf(stderr, "%s: fetch %d: bytes differ with and without dropping\n", name, k);
            }
            CHECK(bad == 0);
            int64_t fd[2] = {decoder_stats(dd[0])->frames_decoded, decoder_stats(dd[1])->frames_decoded};
            printf("  %s: %lld frames decoded dropping unneeded ones, %lld without\n", name, (long long)fd[0],
                   (long long)fd[1]);
            CHECK(fd[0] < fd[1]);
            free(img[0]);
            free(img[1]);
            decoder_close(&dd[0]);
            decoder_close(&dd[1]);
        }
        // Targets every 10th frame, one fetch: the frame after each target is a B-frame nobody
        // is shown, so it is no longer decoded (the two-frame window closes on the next one).
        int64_t q[29];
        for (int i = 0; i < 29; i++)
            q[i] = 5 + 10 * i;
        int64_t fd[2] = {0, 0};
        for (int c = 0; c < 2; c++) {
            Decoder *x = open_video("h264.mp4", 32, 1, 1 - c);
            int got[29];
            if (x) {
                CHECK_RC(fetch_ids(x, q, 29, got), 0);
                for (int i = 0; i < 29; i++)
                    CHECK(got[i] == q[i]);
                fd[c] = decoder_stats(x)->frames_decoded;
            }
            decoder_close(&x);
        }
        printf("  every 10th frame: %lld decoded (of %lld without dropping)\n", (long long)fd[0], (long long)fd[1]);
        CHECK(fd[0] > 0 && fd[0] < fd[1]);
    }

    TEST(12, "a read error is not the end of the video; a file cut short says so");
    {
        // A JPEG folder with frame 61 (index 60) missing: the image demuxer fails to read it.
        char a[600];
        CHECK(vid_sh("mkdir -p %s/gap", dir) == 0);
        snprintf(a, sizeof a, "-q:v 2 -start_number 1 %s/gap/frame_%%010d.jpg", dir);
        CHECK(vid_make(120, 64, 48, 30, 0, a) == 0);
        CHECK(vid_sh("rm %s/gap/frame_0000000061.jpg", dir) == 0);
        d = open_video("gap", 32, 1, 1);
        if (d) {
            int64_t q[3] = {10, 59, 75};
            int got[3] = {-1, -1, -1}, rerr = 0;
            CHECK_RC(fetch_ids(d, q, 3, got), 0);
            CHECK(got[0] == 10 && got[1] == 59);
            const char *why = decoder_short_why(d, &rerr);
            CHECK(decoder_short_from(d) == 75 && why && rerr == 1);
            CHECK(why && strstr(why, "read error at 2.00 s") != NULL);
            CHECK(decoder_end_frames(d) == -1); // the damage is not the end of the video
            CHECK_CLOSE(decoder_short_end(d), 2.0, 1e-9, 0);
        }
        decoder_close(&d);
        d = open_video("gap", 32, 1, 1); // frames after the gap, from a fresh look
        if (d) {
            int64_t q[2] = {75, 119};
            int got[2] = {-1, -1};
            CHECK_RC(fetch_ids(d, q, 2, got), 0);
            CHECK(got[0] == 75 && got[1] == 119 && decoder_short_from(d) == -1);
        }
        decoder_close(&d);
        // The first 40% of a faststart MP4: its index lists samples past the end of the file.
        snprintf(a, sizeof a, "-c:v libx264 -crf 8 -g 30 -movflags +faststart -pix_fmt yuv420p %s/whole.mp4", dir);
        CHECK(vid_make(300, 64, 48, 30, 0, a) == 0);
        CHECK(vid_sh("cd %s && head -c $(( $(stat -c %%s whole.mp4) * 4 / 10 )) whole.mp4 > cut.mp4", dir) == 0);
        d = open_video("cut.mp4", 32, 1, 1);
        if (d) {
            int64_t q[2] = {20, 250};
            int got[2] = {-1, -1}, rerr = 1;
            CHECK_RC(fetch_ids(d, q, 2, got), 0);
            CHECK(got[0] == 20);
            const char *why = decoder_short_why(d, &rerr);
            CHECK(decoder_short_from(d) == 250 && why && rerr == 0 && strstr(why, "cut short"));
            CHECK(decoder_short_end(d) > 1 && decoder_short_end(d) < 8);
        }
        decoder_close(&d);
    }

    vid_sh("rm -rf %s", dir);
    CHECK_DONE();
}
