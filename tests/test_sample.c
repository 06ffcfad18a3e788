/* Sampling protocols against hand-computed indices: segment (middle frames at test, one random
 * frame per segment at train), window (centre / evenly spaced starts, stride scaled to fps,
 * clamping of short clips), clip ranges from timestamps, crop placement, per-clip seeding. */
#include <string.h>

#include "check.h"
#include "sample.h"

static SampleOpts opts(SampleKind k, SampleMode m, int T, int V)
{
    SampleOpts o = {k, m, T, V, 1, 4.0, 7};
    return o;
}

int main(void)
{
    int64_t idx[64];

    TEST(1, "clip range from timestamps");
    int64_t f, l;
    sample_clip_range(1.0, 2.0, 30, 0, &f, &l);
    CHECK(f == 30 && l == 59);
    sample_clip_range(0.5, 0.5, 30, 0, &f, &l); // empty interval: one frame
    CHECK(f == 15 && l == 15);
    sample_clip_range(0, -1, 25, 100, &f, &l); // to the end
    CHECK(f == 0 && l == 99);
    sample_clip_range(1.23, 2.46, 100, 0, &f, &l); // 2-decimal stamps stay on their frame
    CHECK(f == 123 && l == 245);

    TEST(2, "segment, test: the middle frame of each of T segments");
    SampleOpts o = opts(SAMPLE_SEGMENT, SAMPLE_TEST, 4, 1);
    CHECK_RC(sample_indices(&o, "a", 10, 49, 30, idx), 0); // 40 frames, segments of 10
    CHECK(idx[0] == 15 && idx[1] == 25 && idx[2] == 35 && idx[3] == 45);
    o.views = 2; // two views: at 1/4 and 3/4 of each segment
    CHECK_RC(sample_indices(&o, "a", 0, 39, 30, idx), 0);
    CHECK(idx[0] == 2 && idx[1] == 12 && idx[4] == 7 && idx[7] == 37);
    o = opts(SAMPLE_SEGMENT, SAMPLE_TEST, 8, 1); // fewer frames than T: repeats, in order
    CHECK_RC(sample_indices(&o, "a", 100, 102, 30, idx), 0);
    for (int t = 0; t < 8; t++)
        CHECK(idx[t] >= 100 && idx[t] <= 102 && (t == 0 || idx[t] >= idx[t - 1]));
    CHECK(idx[0] == 100 && idx[7] == 102);

    TEST(3, "segment, train: one frame inside each segment, seeded per clip");
    o = opts(SAMPLE_SEGMENT, SAMPLE_TRAIN, 5, 3);
    int64_t a[15], b[15], c[15];
    CHECK_RC(sample_indices(&o, "clip-1", 0, 99, 30, a), 0);
    for (int v = 0; v < 3; v++)
        for (int t = 0; t < 5; t++)
            CHECK(a[v * 5 + t] >= 20 * t && a[v * 5 + t] < 20 * (t + 1));
    CHECK_RC(sample_indices(&o, "clip-1", 0, 99, 30, b), 0);
    CHECK(memcmp(a, b, sizeof a) == 0);
    CHECK_RC(sample_indices(&o, "clip-2", 0, 99, 30, c), 0);
    CHECK(memcmp(a, c, sizeof a) != 0);
    o.seed = 8;
    CHECK_RC(sample_indices(&o, "clip-1", 0, 99, 30, c), 0);
    CHECK(memcmp(a, c, sizeof a) != 0);
    // Every frame of a segment is drawn sometimes (uniform, not stuck).
    int seen[20] = {0};
    o = opts(SAMPLE_SEGMENT, SAMPLE_TRAIN, 1, 1);
    for (int i = 0; i < 2000; i++) {
        char id[16];
        snprintf(id, sizeof id, "c%d", i);
        sample_indices(&o, id, 0, 19, 30, idx);
        seen[idx[0]]++;
    }
    for (int i = 0; i < 20; i++)
        CHECK(seen[i] > 50 && seen[i] < 150);

    TEST(4, "window, test: centred window of T frames, stride rate x fps/30");
    o = opts(SAMPLE_WINDOW, SAMPLE_TEST, 4, 1);
    CHECK_RC(sample_indices(&o, "a", 0, 99, 30, idx), 0); // span 16, slack 84, start 42
    CHECK(idx[0] == 42 && idx[1] == 46 && idx[2] == 50 && idx[3] == 54);
    CHECK_RC(sample_indices(&o, "a", 0, 99, 60, idx), 0); // stride 8, span 32, start 34
    CHECK(idx[0] == 34 && idx[1] == 42 && idx[3] == 58);
    o.views = 3; // starts 0, slack/2, slack
    CHECK_RC(sample_indices(&o, "a", 10, 109, 30, idx), 0);
    CHECK(idx[0] == 10 && idx[4] == 52 && idx[8] == 94 && idx[11] == 106);
    o = opts(SAMPLE_WINDOW, SAMPLE_TEST, 4, 1); // short action: clamp, repeat the last frame
    CHECK_RC(sample_indices(&o, "a", 20, 25, 30, idx), 0);
    CHECK(idx[0] == 20 && idx[1] == 24 && idx[2] == 25 && idx[3] == 25);

    TEST(5, "window, train: random start, fixed stride, inside the clip");
    o = opts(SAMPLE_WINDOW, SAMPLE_TRAIN, 4, 2);
    for (int i = 0; i < 200; i++) {
        char id[16];
        snprintf(id, sizeof id, "w%d", i);
        CHECK_RC(sample_indices(&o, id, 100, 199, 30, idx), 0);
        for (int v = 0; v < 2; v++) {
            CHECK(idx[v * 4] >= 100 && idx[v * 4 + 3] <= 199);
            for (int t = 1; t < 4; t++)
                CHECK(idx[v * 4 + t] - idx[v * 4 + t - 1] == 4);
        }
    }

    TEST(6, "crops: centre, three along the long side, random in bounds");
    int x0[6], y0[6];
    o = opts(SAMPLE_SEGMENT, SAMPLE_TEST, 4, 1);
    sample_crops(&o, "a", 298, 224, 224, x0, y0);
    CHECK(x0[0] == 37 && y0[0] == 0);
    o.crops = 3;
    o.views = 2;
    sample_crops(&o, "a", 224, 300, 224, x0, y0);
    CHECK(x0[0] == 0 && y0[0] == 0 && y0[1] == 38 && y0[2] == 76 && y0[5] == 76 && x0[5] == 0);
    o = opts(SAMPLE_SEGMENT, SAMPLE_TRAIN, 4, 6);
    sample_crops(&o, "a", 300, 250, 224, x0, y0);
    int moved = 0;
    for (int i = 0; i < 6; i++) {
        CHECK(x0[i] >= 0 && x0[i] <= 76 && y0[i] >= 0 && y0[i] <= 26);
        moved += x0[i] != x0[0];
    }
    CHECK(moved > 0);

    TEST(7, "bad options");
    o = opts(SAMPLE_SEGMENT, SAMPLE_TEST, 0, 1);
    CHECK_RC(sample_indices(&o, "a", 0, 9, 30, idx), LMR_EINVAL);
    o = opts(SAMPLE_SEGMENT, SAMPLE_TEST, 2, 1);
    CHECK_RC(sample_indices(&o, "a", 9, 0, 30, idx), LMR_EINVAL);
    CHECK_DONE();
}
