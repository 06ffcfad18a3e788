/* Test videos for the extract tests, made with the ffmpeg CLI from raw frames written here.
 * Frame i is one flat colour that encodes i (4 bits per channel, levels 8 + 16k), so it
 * survives any codec, scaling, cropping and rotation, and reads back from a block mean. */
#ifndef LMR_TEST_EXTRACT_VIDEOS_H
#define LMR_TEST_EXTRACT_VIDEOS_H

#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

static void vid_colour(int i, uint8_t rgb[3])
{
    rgb[0] = (uint8_t)(8 + 16 * (i & 15));
    rgb[1] = (uint8_t)(8 + 16 * ((i >> 4) & 15));
    rgb[2] = (uint8_t)(8 + 16 * ((i >> 8) & 15));
}

/* Frame number encoded in an RGB image (mean of its central half); -1 when unreadable. */
static int vid_index(const uint8_t *img, int w, int h)
{
    double s[3] = {0};
    int n = 0;
    for (int y = h / 4; y < 3 * h / 4; y++)
        for (int x = w / 4; x < 3 * w / 4; x++, n++)
            for (int c = 0; c < 3; c++)
                s[c] += img[((size_t)y * w + x) * 3 + c];
    int idx = 0;
    for (int c = 0; c < 3; c++) {
        double lv = (s[c] / n - 8) / 16;
        long k = lround(lv);
        if (k < 0 || k > 15 || fabs(lv - k) > 0.35)
            return -1;
        idx |= (int)k << (4 * c);
    }
    return idx;
}

/* Is the ffmpeg CLI there? */
static int vid_have_ffmpeg(void)
{
    return system("ffmpeg -version > /dev/null 2>&1") == 0;
}

/* Encode n numbered frames of w x h at fps with ffmpeg; args: output options and path.
 * pattern != 0 draws four coloured quadrants instead (orientation tests). @return 0 or -1. */
static int vid_make(int n, int w, int h, int fps, int pattern, const char *args)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "ffmpeg -v error -y -f rawvideo -pix_fmt rgb24 -s %dx%d -r %d -i - %s", w, h, fps, args);
    FILE *p = popen(cmd, "w");
    if (!p)
        return -1;
    uint8_t *f = malloc((size_t)w * h * 3);
    static const uint8_t quad[4][3] = {{230, 30, 30}, {30, 230, 30}, {30, 30, 230}, {230, 230, 230}};
    for (int i = 0; i < n; i++) {
        uint8_t c[3];
        vid_colour(i, c);
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
                memcpy(f + ((size_t)y * w + x) * 3, pattern ? quad[(y >= h / 2) * 2 + (x >= w / 2)] : c, 3);
        if (fwrite(f, 1, (size_t)w * h * 3, p) != (size_t)w * h * 3)
            break;
    }
    free(f);
    return pclose(p) == 0 ? 0 : -1;
}

/* Run a shell command; @return its exit status. */
static int vid_sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int vid_sh(const char *fmt, ...)
{
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    int rc = system(cmd);
    return rc == -1 ? -1 : WEXITSTATUS(rc);
}

#endif
