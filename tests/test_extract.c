/* lmr-extract end to end on videos made here: the frames in the records are exactly those the
 * protocol asks for (segment and window, test and train, start/end of videos, a JPEG folder),
 * same bytes for any --threads and for reruns with one seed, every bad input gets its line
 * and failures row while the output still reads back, resume after a cut, shards, strict. */
#include <libavutil/log.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "extract_videos.h"
#include "record.h"
#include "sample.h"

static char dir[256], bin[1024];

typedef struct {
    char id[32];
    uint32_t dims[4];
    int kind, n_labels, label;
    int frames[64]; /* frame number shown by each (view, t) image */
    float norm0;    /* features: L2 norm of the first feature vector */
} Rec;

static char meta_json[1 << 16]; /* the metadata record of the stream read_recs read last, or "" */

/* Read every clip record of a stream (payloads checked); the metadata record, which must come
 * first, goes to meta_json. @return the clip count, or -1 on a bad stream. */
static int read_recs(const char *path, Rec *out, int cap)
{
    meta_json[0] = 0;
    RecReader r;
    RecordCtx ctx;
    if (recreader_open(&r, path) < 0 || record_ctx_init(&ctx, 3) < 0)
        return -1;
    RecordInfo in;
    int n = 0, rc, seen = 0;
    while ((rc = recreader_next(&r, &in)) == 0 && n < cap) {
        if (in.kind == LMR_KIND_META) {
            LmrBuf b;
            buf_init(&b);
            if (seen || in.id_len != 8 || memcmp(in.id, LMR_META_ID, 8) != 0 || in.raw_size >= sizeof meta_json ||
                buf_reserve(&b, in.raw_size) < 0 || record_payload(&ctx, &in, b.data, b.cap) < 0) {
                n = -1;
                buf_free(&b);
                break;
            }
            memcpy(meta_json, b.data, in.raw_size);
            meta_json[in.raw_size] = 0;
            buf_free(&b);
            seen = 1;
            continue;
        }
        seen = 1;
        Rec *o = &out[n++];
        memset(o, 0, sizeof *o);
        snprintf(o->id, sizeof o->id, "%.*s", (int)in.id_len, in.id);
        memcpy(o->dims, in.dims, sizeof o->dims);
        o->kind = in.kind;
        o->n_labels = in.n_labels;
        o->label = in.n_labels ? in.labels[0] : -1;
        uint8_t *p = malloc(in.raw_size);
        if (record_payload(&ctx, &in, p, in.raw_size) < 0) {
            free(p);
            n = -1;
            break;
        }
        if (in.kind == LMR_KIND_FRAMES) {
            int S = (int)in.dims[2];
            size_t isz = (size_t)S * S * 3;
            for (uint32_t i = 0; i < in.dims[0] * in.dims[1] && i < 64; i++)
                o->frames[i] = vid_index(p + isz * i, S, S);
        } else {
            const float *f = (const float *)p;
            double s = 0;
            for (uint32_t i = 0; i < in.dims[2]; i++)
                s += (double)f[i] * f[i];
            o->norm0 = (float)sqrt(s);
            for (uint64_t i = 0; i < in.raw_size / 4; i++)
                if (!isfinite(f[i]))
                    o->norm0 = -1;
        }
        free(p);
    }
    if (rc < 0 && rc != LMR_DONE)
        n = -1;
    record_ctx_free(&ctx);
    recreader_close(&r);
    return n;
}

static const Rec *find(const Rec *r, int n, const char *id)
{
    for (int i = 0; i < n; i++)
        if (strcmp(r[i].id, id) == 0)
            return &r[i];
    return NULL;
}

static int file_has(const char *path, const char *needle)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    static char buf[1 << 16];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = 0;
    fclose(f);
    return strstr(buf, needle) != NULL;
}

static int same_file(const char *a, const char *b)
{
    return vid_sh("cmp -s %s %s", a, b) == 0;
}

/* Run lmr-extract on the manifest with extra options; stderr to D/err.txt. @return exit code. */
static int extract(const char *manifest, const char *out, const char *opts)
{
    return vid_sh("cd %s && %s/lmr-extract --dataset manifest --annotations %s --videos . --size 32 "
                  "--out %s %s 2> err.txt", dir, bin, manifest, out, opts);
}

/* Expected segment test-mode frames: the middle of T equal parts of [first, last]. */
static int seg_mid(double start, double stop, int total, int T, int t)
{
    int first = (int)floor(start * 30 + 1e-6);
    int last = stop < 0 ? total - 1 : (int)ceil(stop * 30 - 1e-6) - 1;
    int n = last - first + 1, k = first + (int)floor(n * (t + 0.5) / T);
    return k < total ? k : total - 1;
}

static int make_inputs(void)
{
    char a[1024];
    int rc = 0;
    snprintf(a, sizeof a, "-c:v libx264 -crf 8 -bf 3 -g 30 -sc_threshold 0 -pix_fmt yuv420p %s/long.mp4", dir);
    rc |= vid_make(600, 64, 48, 30, 0, a);
    snprintf(a, sizeof a, "-c:v libvpx-vp9 -deadline realtime -cpu-used 8 -crf 4 -b:v 0 %s/short.webm", dir);
    rc |= vid_make(60, 64, 48, 30, 0, a);
    rc |= vid_sh("mkdir -p %s/fold", dir);
    snprintf(a, sizeof a, "-q:v 2 -start_number 1 %s/fold/frame_%%010d.jpg", dir);
    rc |= vid_make(60, 64, 48, 30, 0, a);
    snprintf(a, sizeof a, "-c:v libx264 -crf 8 -g 30 -movflags +faststart -pix_fmt yuv420p %s/full.mp4", dir);
    rc |= vid_make(300, 64, 48, 30, 0, a);
    snprintf(a, sizeof a, "-c:v libx264 -crf 8 -pix_fmt yuv444p %s/odd.mp4", dir);
    rc |= vid_make(30, 63, 47, 30, 0, a);
    rc |= vid_sh("cd %s && ffmpeg -v error -y -i odd.mp4 -c copy -metadata:s:v:0 rotate=90 rot.mp4", dir);
    rc |= vid_sh("cd %s && : > empty.mp4 && head -c 20000 /dev/urandom > garbage.mp4", dir);
    // Truncated: the first 40% of a faststart file (header intact, the end of the video gone).
    rc |= vid_sh("cd %s && head -c $(( $(stat -c %%s full.mp4) * 4 / 10 )) full.mp4 > trunc.mp4", dir);
    rc |= vid_sh("cd %s && ffmpeg -v error -y -f lavfi -i sine=d=1 audio.m4a", dir);
    char path[512];
    snprintf(path, sizeof path, "%s/m.csv", dir);
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    fputs("clip_id,video,start_sec,stop_sec,labels\n"
          "c00,long.mp4,0,2,0\n"
          "c01,long.mp4,17.5,,1\n"
          "c02,short.webm,0,,2\n"
          "c03,long.mp4,5,8,0\n"
          "c04,fold,0.5,1.5,1\n"
          "c05,missing.mp4,0,1,0\n"
          "c06,empty.mp4,0,1,0\n"
          "c07,garbage.mp4,0,1,0\n"
          "c08,trunc.mp4,0.5,1.5,0\n"
          "c09,trunc.mp4,8,9.5,0\n"
          "c10,long.mp4,30,32,0\n"
          "c11,audio.m4a,0,1,0\n"
          "c12,odd.mp4,0,1,2\n"
          "c13,rot.mp4,0,0.5,2\n"
          "c14,long.mp4,19.5,25,1\n"
          "c15,long.mp4,3,6,0\n",
          f);
    return fclose(f) == 0 ? rc : -1;
}

#define N_BAD 7
static const char *bad_ids[N_BAD] = {"c05", "c06", "c07", "c09", "c10", "c11", "c14"};
static const char *bad_why[N_BAD] = {"no such file", "empty file", "cannot open",
                                     "clip starts at frame 240, after the end",
                                     "clip starts at frame 900, after the end of the video (600 frames)",
                                     "no video stream", "clip ends at 25.00 s, video decodes to 20.00 s"};
/* As the messages name them: the path tried (--videos . joined to the manifest's path). */
static const char *bad_vid[N_BAD] = {"./missing.mp4", "./empty.mp4", "./garbage.mp4", "./trunc.mp4", "./long.mp4",
                                     "./audio.m4a", "./long.mp4"};
#define OKF "--max-failures 7" /* the 7 bad clips of m.csv */

int main(void)
{
    av_log_set_level(AV_LOG_QUIET);
    if (!vid_have_ffmpeg() || !getenv("LMR_BIN")) {
        printf("ffmpeg CLI or LMR_BIN missing: skipped\n");
        return 77;
    }
    snprintf(bin, sizeof bin, "%s", getenv("LMR_BIN"));
    snprintf(dir, sizeof dir, "%s/lmr-extract-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    CHECK(mkdtemp(dir) != NULL);
    char p[1024], q[1024];
    static Rec r[64], r2[64];

    TEST(1, "make inputs; --list prints the manifest");
    CHECK(make_inputs() == 0);
    CHECK(vid_sh("cd %s && %s/lmr-extract --dataset manifest --annotations m.csv --list > list.csv", dir, bin) == 0);
    snprintf(p, sizeof p, "%s/list.csv", dir);
    CHECK(file_has(p, "c15,long.mp4,3,6,0"));

    TEST(2, "segment sampling, test mode: exact frames; bad inputs reported, output still reads; 7 of 16 failed: exit 1");
    CHECK(extract("m.csv", "seg.rec", "--frames 4 --threads 2 --failures fail.tsv") == 1);
    snprintf(p, sizeof p, "%s/seg.rec", dir);
    int n = read_recs(p, r, 64);
    CHECK(n == 9);
    const char *order[] = {"c00", "c01", "c02", "c03", "c04", "c08", "c12", "c13", "c15"};
    for (int i = 0; i < n && i < 9; i++)
        CHECK(strcmp(r[i].id, order[i]) == 0);
    struct { const char *id; double a, b; int total; } segs[] = {
        {"c00", 0, 2, 600}, {"c01", 17.5, -1, 600}, {"c02", 0, -1, 60}, {"c03", 5, 8, 600},
        {"c04", 0.5, 1.5, 60}, {"c08", 0.5, 1.5, 300}, {"c12", 0, 1, 30}, {"c15", 3, 6, 600}};
    for (int s = 0; s < 8; s++) {
        const Rec *x = find(r, n, segs[s].id);
        CHECK(x != NULL);
        if (!x)
            continue;
        CHECK(x->kind == LMR_KIND_FRAMES && x->dims[0] == 1 && x->dims[1] == 4 && x->dims[2] == 32 &&
              x->dims[3] == 96);
        for (int t = 0; t < 4; t++) {
            int want = seg_mid(segs[s].a, segs[s].b, segs[s].total, 4, t);
            if (x->frames[t] != want)
                fprintf(stderr, "%s t=%d: frame %d, want %d\n", x->id, t, x->frames[t], want);
            CHECK(x->frames[t] == want);
        }
    }
    const Rec *x = find(r, n, "c02");
    CHECK(x && x->label == 2 && x->n_labels == 1);
    snprintf(p, sizeof p, "%s/fail.tsv", dir);
    snprintf(q, sizeof q, "%s/err.txt", dir);
    for (int i = 0; i < N_BAD; i++) {
        char row[256], line[256];
        snprintf(row, sizeof row, "%s\t%s\t", bad_ids[i], bad_vid[i]);
        snprintf(line, sizeof line, "lmr-extract: %s: clip %s: ", bad_vid[i], bad_ids[i]);
        CHECK(file_has(p, row));
        CHECK(file_has(q, line));
    }
    for (int i = 0; i < N_BAD; i++) {
        char row[256];
        snprintf(row, sizeof row, "%s: clip %s: %s", bad_vid[i], bad_ids[i], bad_why[i]);
        if (!file_has(q, row))
            fprintf(stderr, "stderr lacks '%s'\n", row);
        CHECK(file_has(q, row));
        CHECK(file_has(p, bad_why[i]));
    }
    CHECK(file_has(q, "9 clips written, 7 failed"));
    CHECK(file_has(q, "7 of 16 clips failed, more than --max-failures 0.01 (0); listed in fail.tsv: exit 1\n"));
    snprintf(p, sizeof p, "%s/seg.rec.meta.json", dir);
    CHECK(file_has(p, "\"dims\":[1,4,32,96]") && file_has(p, "\"n_records\":9") &&
          file_has(p, "\"class_counts\":[4,2,3]") && file_has(p, "\"mode\":\"test\""));

    TEST(3, "window sampling, test mode, 2 views: evenly spaced windows of stride 4; --pad-short pads and counts");
    CHECK(extract("m.csv", "win.rec", "--frames 3 --views 2 --sampling window --rate 4 --threads 1 --pad-short "
                                      "--max-failures 6 --failures win.tsv") == 0);
    snprintf(q, sizeof q, "%s/err.txt", dir);
    CHECK(file_has(q, "10 clips written, 6 failed, 0 skipped (already in win.rec), 1 padded (--pad-short)"));
    CHECK(file_has(q, "./long.mp4: clip c14: padded with the last frame decoded (--pad-short): clip ends at 25.00 s, "
                      "video decodes to 20.00 s"));
    snprintf(q, sizeof q, "%s/win.tsv", dir);
    CHECK(file_has(q, "c14\t./long.mp4\tpadded with the last frame decoded"));
    snprintf(p, sizeof p, "%s/win.rec", dir);
    n = read_recs(p, r, 64);
    CHECK(n == 10);
    x = find(r, n, "c03"); // frames 150..239 (90): span 12, slack 78: starts 150 and 228
    CHECK(x && x->dims[0] == 2 && x->dims[1] == 3);
    if (x) {
        int want[6] = {150, 154, 158, 228, 232, 236};
        for (int i = 0; i < 6; i++)
            CHECK(x->frames[i] == want[i]);
    }
    x = find(r, n, "c14"); // frames 585..749 clamped to 599 at the video's end
    if (x)
        for (int i = 0; i < 6; i++)
            CHECK(x->frames[i] >= 585 && x->frames[i] <= 599);

    TEST(4, "train mode: same bytes for --threads 1 and 4 and reruns; frames inside their segments");
    CHECK(extract("m.csv", "t1.rec", "--frames 4 --mode train --seed 5 --threads 1 " OKF) == 0);
    CHECK(extract("m.csv", "t4.rec", "--frames 4 --mode train --seed 5 --threads 4 " OKF) == 0);
    CHECK(extract("m.csv", "t4b.rec", "--frames 4 --mode train --seed 5 --threads 4 " OKF) == 0);
    CHECK(extract("m.csv", "t9.rec", "--frames 4 --mode train --seed 9 --threads 2 " OKF) == 0);
    snprintf(p, sizeof p, "%s/t1.rec", dir);
    snprintf(q, sizeof q, "%s/t4.rec", dir);
    CHECK(same_file(p, q));
    snprintf(q, sizeof q, "%s/t4b.rec", dir);
    CHECK(same_file(p, q));
    snprintf(q, sizeof q, "%s/t9.rec", dir);
    CHECK(!same_file(p, q));
    n = read_recs(p, r, 64);
    x = find(r, n, "c03"); // frames 150..239 in 4 segments of 22.5
    CHECK(x != NULL);
    for (int t = 0; x && t < 4; t++)
        CHECK(x->frames[t] >= 150 + (int)floor(22.5 * t) && x->frames[t] <= 150 + (int)ceil(22.5 * (t + 1)) - 1);

    TEST(5, "pool features and 3 crops");
    CHECK(extract("m.csv", "pool.rec", "--frames 4 --views 2 --crops 3 --backbone pool " OKF) == 0);
    snprintf(p, sizeof p, "%s/pool.rec", dir);
    n = read_recs(p, r, 64);
    CHECK(n == 9);
    CHECK(n > 0 && r[0].kind == LMR_KIND_FEATURES && r[0].dims[0] == 6 && r[0].dims[1] == 4 &&
          r[0].dims[2] >= 100 && r[0].dims[3] == 1);
    CHECK_CLOSE(n > 0 ? r[0].norm0 : 0, 1.0, 1e-4, 0);

    TEST(51, "--dtype f16 stores the f32 features rounded to half precision");
    CHECK(extract("m.csv", "pool16.rec", "--frames 4 --views 2 --crops 3 --backbone pool --dtype f16 " OKF) == 0);
    {
        RecReader a, b;
        RecordCtx ctx;
        RecordInfo ia, ib;
        char pa[600], pb[600];
        snprintf(pa, sizeof pa, "%s/pool.rec", dir);
        snprintf(pb, sizeof pb, "%s/pool16.rec", dir);
        CHECK(record_ctx_init(&ctx, 3) == 0);
        CHECK(recreader_open(&a, pa) == 0 && recreader_open(&b, pb) == 0);
        int same = 0, recs = 0;
        while (recreader_next(&a, &ia) == 0 && recreader_next(&b, &ib) == 0) {
            if (ia.kind == LMR_KIND_META || ib.kind == LMR_KIND_META) {
                CHECK(ia.kind == ib.kind);
                continue;
            }
            recs++;
            size_t n = ia.raw_size / 4;
            float *f = malloc(ia.raw_size);
            uint16_t *want = malloc(n * 2), *got = malloc(ib.raw_size ? ib.raw_size : 1);
            CHECK(ib.dtype == LMR_DT_F16 && ib.raw_size == n * 2);
            if (ib.raw_size == n * 2 && record_payload(&ctx, &ia, f, ia.raw_size) == 0 &&
                record_payload(&ctx, &ib, got, ib.raw_size) == 0) {
                lmr_f32_to_f16(f, want, n);
                same += memcmp(want, got, n * 2) == 0;
            }
            free(f), free(want), free(got);
        }
        CHECK(recs == 9 && same == recs);
        recreader_close(&a), recreader_close(&b);
        record_ctx_free(&ctx);
    }
    CHECK(extract("m.csv", "bad.rec", "--backbone pool --dtype f64") == 2);

    TEST(6, "resume: a cut record is dropped, the rest completed, nothing twice");
    snprintf(p, sizeof p, "%s/seg.rec", dir);
    CHECK(vid_sh("cd %s && cp seg.rec cut.rec && truncate -s $(( $(stat -c %%s seg.rec) - 37 )) cut.rec", dir) == 0);
    CHECK(extract("m.csv", "cut.rec", "--frames 4 --threads 2 " OKF) == 0);
    snprintf(q, sizeof q, "%s/err.txt", dir);
    CHECK(file_has(q, "dropping a damaged tail") && file_has(q, "1 clips written") &&
          file_has(q, "8 skipped"));
    snprintf(q, sizeof q, "%s/cut.rec", dir);
    CHECK(same_file(p, q));
    CHECK(extract("m.csv", "cut.rec", "--frames 4 " OKF) == 0);
    snprintf(q, sizeof q, "%s/err.txt", dir);
    CHECK(file_has(q, "0 clips written") && file_has(q, "9 skipped"));
    CHECK(extract("m.csv", "cut.rec", "--frames 5") == 1); // other settings: refused
    CHECK(file_has(q, "written with other settings (frames 4 size 32, this run's frames 5 size 32)"));
    CHECK(extract("m.csv", "cut.rec", "--frames 4 --mode train") == 1);
    CHECK(file_has(q, "written with other settings (mode 'test', this run's 'train')"));
    snprintf(q, sizeof q, "%s/cut.rec", dir);
    CHECK(same_file(p, q)); // and left as it was
    snprintf(q, sizeof q, "%s/err.txt", dir);
    CHECK(vid_sh("cd %s && echo 'precious notes' > notes.txt", dir) == 0); // not ours: left alone
    CHECK(extract("m.csv", "notes.txt", "--frames 4") == 1);
    CHECK(file_has(q, "refusing to append"));
    snprintf(p, sizeof p, "%s/notes.txt", dir);
    CHECK(file_has(p, "precious notes"));

    TEST(7, "shards K/N split the clips; stdout output");
    CHECK(extract("m.csv", "s0.rec", "--frames 4 --shard 0/2 " OKF) == 0);
    CHECK(extract("m.csv", "s1.rec", "--frames 4 --shard 1/2 " OKF) == 0);
    snprintf(p, sizeof p, "%s/s0.rec", dir);
    snprintf(q, sizeof q, "%s/s1.rec", dir);
    int n0 = read_recs(p, r, 64), n1 = read_recs(q, r2, 64);
    CHECK(n0 + n1 == 9 && n0 > 0 && n1 > 0);
    for (int i = 0; i < n0; i++)
        CHECK(find(r2, n1, r[i].id) == NULL);
    CHECK(vid_sh("cd %s && %s/lmr-extract --dataset manifest --annotations m.csv --videos . --size 32 "
                 "--frames 4 --quiet " OKF " --out - > std.rec 2>/dev/null", dir, bin) == 0);
    snprintf(p, sizeof p, "%s/seg.rec", dir);
    snprintf(q, sizeof q, "%s/std.rec", dir);
    CHECK(same_file(p, q));

    TEST(71, "--zstd-level 0 stores raw payloads: the same frames as the default's zstd, a larger file");
    CHECK(extract("m.csv", "raw.rec", "--frames 4 --zstd-level 0 " OKF) == 0);
    snprintf(p, sizeof p, "%s/seg.rec", dir);
    snprintf(q, sizeof q, "%s/raw.rec", dir);
    n0 = read_recs(p, r, 64), n1 = read_recs(q, r2, 64);
    CHECK(n0 == 9 && n1 == n0);
    for (int i = 0; i < n0 && i < n1; i++)
        CHECK(strcmp(r[i].id, r2[i].id) == 0 && memcmp(r[i].frames, r2[i].frames, sizeof r[i].frames) == 0);
    struct stat sz, sr;
    CHECK(stat(p, &sz) == 0 && stat(q, &sr) == 0 && sr.st_size > sz.st_size);
    CHECK(extract("m.csv", "bad.rec", "--frames 4 --zstd-level 20") != 0);

    TEST(8, "--strict stops at a bad clip; usage errors; --help, --version");
    CHECK(extract("m.csv", "strict.rec", "--frames 4 --strict") == 1);
    snprintf(q, sizeof q, "%s/err.txt", dir);
    CHECK(file_has(q, "clip c05"));
    CHECK(extract("m.csv", "x.rec", "--mode sideways") == 2);
    CHECK(extract("m.csv", "x.rec", "--crops 2") == 2);
    CHECK(extract("m.csv", "x.rec", "--backbone nope") == 2);
    CHECK(vid_sh("%s/lmr-extract --help > /dev/null", bin) == 0);
    CHECK(vid_sh("%s/lmr-extract --version | grep -q %s", bin, LMR_VERSION) == 0);

    TEST(9, "a decode limit turns a runaway clip into a failure, not a hang");
    snprintf(p, sizeof p, "-c:v libx264 -crf 8 -g 600 -sc_threshold 0 -pix_fmt yuv420p %s/gop.mp4", dir);
    CHECK(vid_make(300, 64, 48, 30, 0, p) == 0); // one keyframe: frame 150 needs 150 frames first
    CHECK(vid_sh("cd %s && printf 'clip_id,video,start_sec,stop_sec,labels\\nl0,gop.mp4,5,8,0\\n"
                 "l1,long.mp4,0,1,0\\n' > lim.csv", dir) == 0);
    CHECK(extract("lim.csv", "lim.rec", "--frames 4 --max-frames 5 --no-skip-nonref --failures lim.tsv --max-failures 1") == 0);
    snprintf(p, sizeof p, "%s/lim.tsv", dir);
    CHECK(file_has(p, "decode limit"));
    snprintf(p, sizeof p, "%s/lim.rec", dir);
    CHECK(read_recs(p, r, 64) == 1 && strcmp(r[0].id, "l1") == 0);

    TEST(10, "EPIC csv with a JPEG frame folder (60 fps by the id, window sampling); SSv2 json");
    CHECK(vid_sh("mkdir -p %s/P01/P01_02", dir) == 0);
    snprintf(p, sizeof p, "-q:v 2 -start_number 1 %s/P01/P01_02/frame_%%010d.jpg", dir);
    CHECK(vid_make(120, 64, 48, 60, 0, p) == 0);
    CHECK(vid_sh("cd %s && printf 'narration_id,participant_id,video_id,narration_timestamp,start_timestamp,"
                 "stop_timestamp,start_frame,stop_frame,narration,verb,verb_class,noun,noun_class,all_nouns,"
                 "all_noun_classes\\nP01_02_0,P01,P01_02,00:00:00.50,00:00:00.50,00:00:01.50,30,90,open door,"
                 "open,3,door,8,[],[]\\n' > EPIC_100_validation.csv && cp short.webm 7.webm && "
                 "printf '{\"Holding something\": \"0\", \"Pushing something\": \"1\"}' > labels.json && "
                 "printf '[{\"id\":\"7\",\"label\":\"pushing a pen\",\"template\":\"Pushing [something]\","
                 "\"placeholders\":[\"a pen\"]}]' > val.json", dir) == 0);
    CHECK(vid_sh("cd %s && %s/lmr-extract --dataset epic --annotations EPIC_100_validation.csv --videos . "
                 "--frames-dir --frames 4 --size 32 --quiet --out epic.rec", dir, bin) == 0);
    snprintf(p, sizeof p, "%s/epic.rec", dir);
    n = read_recs(p, r, 64); // frames 30..89 at 60 fps; stride 8, span 32, slack 28: start 44
    CHECK(n == 1 && strcmp(r[0].id, "P01_02_0") == 0 && r[0].label == 3);
    if (n == 1)
        for (int t = 0; t < 4; t++)
            CHECK(r[0].frames[t] == 44 + 8 * t);
    CHECK(vid_sh("cd %s && %s/lmr-extract --dataset ssv2 --annotations val.json --labels labels.json "
                 "--videos . --frames 4 --size 32 --backbone pool --quiet --out ssv2.rec", dir, bin) == 0);
    snprintf(p, sizeof p, "%s/ssv2.rec", dir);
    n = read_recs(p, r, 64);
    CHECK(n == 1 && strcmp(r[0].id, "7") == 0 && r[0].label == 1 && r[0].kind == LMR_KIND_FEATURES);
    snprintf(p, sizeof p, "%s/ssv2.rec.meta.json", dir);
    CHECK(file_has(p, "\"dataset\":\"ssv2\"") && file_has(p, "\"split\":\"val\"") &&
          file_has(p, "\"backbone\":\"pool\"") && file_has(p, "\"n_classes\":2"));

    TEST(11, "paths: absolute as they are, relative to --videos, which defaults to the manifest's folder");
    CHECK(vid_sh("mkdir -p %s/sub/clips %s/elsewhere && cp %s/short.webm %s/sub/clips/s.webm", dir, dir, dir, dir) == 0);
    CHECK(vid_sh("cd %s && printf 'clip_id,video,start_sec,stop_sec,labels\\na0,%s/long.mp4,0,1,0\\n"
                 "a1,clips/s.webm,0,1,1\\n' > sub/paths.csv", dir, dir) == 0);
    // No --videos: relative paths are relative to sub/, the absolute one is used as it is.
    CHECK(vid_sh("cd %s && %s/lmr-extract --dataset manifest --annotations sub/paths.csv --size 32 --frames 4 "
                 "--out paths.rec 2> err.txt", dir, bin) == 0);
    snprintf(p, sizeof p, "%s/paths.rec", dir);
    CHECK(read_recs(p, r, 64) == 2 && r[0].frames[0] == seg_mid(0, 1, 600, 4, 0) && r[1].frames[3] == seg_mid(0, 1, 60, 4, 3));
    // --videos elsewhere: the absolute path still works, the relative one is looked for there.
    CHECK(vid_sh("cd %s && %s/lmr-extract --dataset manifest --annotations sub/paths.csv --videos elsewhere --size 32 "
                 "--frames 4 --out paths2.rec --max-failures 1 2> err.txt", dir, bin) == 0);
    snprintf(q, sizeof q, "%s/err.txt", dir);
    CHECK(file_has(q, "lmr-extract: elsewhere/clips/s.webm: clip a1: no such file or folder"));
    snprintf(p, sizeof p, "%s/paths2.rec", dir);
    CHECK(read_recs(p, r, 64) == 1 && strcmp(r[0].id, "a0") == 0);
    // A --videos that does not exist: refused before any clip, nothing written.
    CHECK(vid_sh("cd %s && %s/lmr-extract --dataset manifest --annotations sub/paths.csv --videos vidoes --size 32 "
                 "--out none.rec 2> err.txt", dir, bin) == 2);
    CHECK(file_has(q, "lmr-extract: --videos vidoes: no such folder\n"));
    snprintf(p, sizeof p, "%s/none.rec", dir);
    CHECK(access(p, F_OK) != 0);

    TEST(12, "--max-failures N|FRACTION; unreadable manifest lines are failures in --failures; all failed: exit 1, no output");
    CHECK(vid_sh("cd %s && printf 'clip_id,video,start_sec,stop_sec,labels\\nf0,long.mp4,0,1,0\\nf1,long.mp4,2,1,0\\n"
                 "f2,missing.mp4,0,1,0\\nf3,long.mp4,nan,1,0\\nf4,long.mp4,3,4,1\\n' > fm.csv", dir) == 0);
    CHECK(extract("fm.csv", "fm.rec", "--frames 4 --failures fm.tsv") == 1); // 3 of 5 failed
    CHECK(file_has(q, "3 of 5 clips failed, more than --max-failures 0.01 (0); listed in fm.tsv: exit 1\n"));
    snprintf(p, sizeof p, "%s/fm.tsv", dir);
    CHECK(file_has(p, "\t\tfm.csv:3: stop_sec 1 before start_sec 2\n") && file_has(p, "\t\tfm.csv:5: bad number in start_sec"));
    CHECK(file_has(p, "f2\t./missing.mp4\tno such file or folder"));
    snprintf(p, sizeof p, "%s/fm.rec", dir);
    CHECK(read_recs(p, r, 64) == 2); // what could be written was
    CHECK(extract("fm.csv", "fm3.rec", "--frames 4 --max-failures 3") == 0);
    CHECK(file_has(q, "3 of 5 clips failed, within --max-failures 3 (3); named above"));
    CHECK(extract("fm.csv", "fm6.rec", "--frames 4 --max-failures 0.6") == 0);
    CHECK(extract("fm.csv", "fm5.rec", "--frames 4 --max-failures 50%") == 1);
    CHECK(extract("fm.csv", "x.rec", "--max-failures 1.5") == 2 && extract("fm.csv", "x.rec", "--max-failures -1") == 2);
    CHECK(vid_sh("cd %s && printf 'clip_id,video,start_sec,stop_sec,labels\\nn0,missing.mp4,0,1,0\\nn1,gone.mp4,0,1,0\\n' "
                 "> nm.csv", dir) == 0);
    CHECK(extract("nm.csv", "nm.rec", "--frames 4 --max-failures 1.0") == 1);
    CHECK(file_has(q, "no clip could be extracted: no output written"));
    snprintf(p, sizeof p, "%s/nm.rec", dir);
    CHECK(access(p, F_OK) != 0);
    CHECK(vid_sh("cd %s && %s/lmr-extract --dataset manifest --annotations fm.csv --list > /dev/null 2> err.txt", dir, bin) == 1);
    CHECK(file_has(q, "2 of 5 annotation lines could not be read, more than --max-failures 0.01 (0): exit 1"));
    CHECK(vid_sh("cd %s && %s/lmr-extract --dataset manifest --annotations fm.csv --list --max-failures 2 > /dev/null 2>&1", dir, bin) == 0);
    // Ids an LMDB key cannot hold (511 bytes) are refused at --list and extract time.
    {
        char *big = malloc(600);
        memset(big, 'k', 599);
        big[599] = 0;
        CHECK(vid_sh("cd %s && printf 'clip_id,video,start_sec,stop_sec,labels\\nshort,long.mp4,0,1,0\\n%s,long.mp4,0,1,0\\n' > ids.csv",
                     dir, big) == 0);
        free(big);
    }
    CHECK(vid_sh("cd %s && %s/lmr-extract --dataset manifest --annotations ids.csv --list > ids.out 2> err.txt", dir, bin) == 1);
    CHECK(file_has(q, "ids.csv:3: clip id of 599 bytes ('kkkk") && file_has(q, "longer than LMDB's key limit (511 bytes)"));
    snprintf(p, sizeof p, "%s/ids.out", dir);
    CHECK(file_has(p, "short,long.mp4") && !file_has(p, "kkkk"));
    CHECK(extract("ids.csv", "ids.rec", "--frames 4 --max-failures 1 --failures ids.tsv") == 0);
    snprintf(p, sizeof p, "%s/ids.rec", dir);
    CHECK(read_recs(p, r, 64) == 1 && strcmp(r[0].id, "short") == 0);

    TEST(13, "read errors and files cut short are failures naming why, not repeated frames; --pad-short counts them");
    CHECK(vid_sh("mkdir -p %s/gapf", dir) == 0);
    snprintf(p, sizeof p, "-q:v 2 -start_number 1 %s/gapf/frame_%%010d.jpg", dir);
    CHECK(vid_make(120, 64, 48, 30, 0, p) == 0);
    // Index 60 gone: the image reader fails there. (A clip that skips past it never reads it,
    // as it should not; and the folder still holds 120 frames.)
    CHECK(vid_sh("rm %s/gapf/frame_0000000061.jpg", dir) == 0);
    CHECK(vid_sh("cd %s && printf 'clip_id,video,start_sec,stop_sec,labels\\ng0,gapf,0.5,1.5,0\\ng1,gapf,1.7,2.3,0\\n"
                 "g2,gapf,2.5,3.9,1\\nt0,trunc.mp4,0,6,1\\nt1,trunc.mp4,0.2,1.2,1\\n' > dmg.csv", dir) == 0);
    CHECK(extract("dmg.csv", "dmg.rec", "--frames 4 --failures dmg.tsv --max-failures 2 --threads 2") == 0);
    CHECK(file_has(q, "./gapf: clip g1: read error at 2.00 s: Input/output error; the clip needs frames to "));
    CHECK(file_has(q, "./trunc.mp4: clip t0: clip ends at 6.00 s, video decodes to ") &&
          file_has(q, "(the file is cut short: its index runs to byte"));
    snprintf(p, sizeof p, "%s/dmg.rec", dir);
    n = read_recs(p, r, 64);
    CHECK(n == 3 && find(r, n, "g0") && find(r, n, "g2") && find(r, n, "t1"));
    x = find(r, n, "g2"); // after the damage: its own frames, from a fresh look at the folder
    for (int t = 0; x && t < 4; t++)
        CHECK(x->frames[t] == seg_mid(2.5, 3.9, 120, 4, t));
    CHECK(extract("dmg.csv", "dmgp.rec", "--frames 4 --failures dmgp.tsv --pad-short") == 0);
    CHECK(file_has(q, "5 clips written, 0 failed, 0 skipped (already in dmgp.rec), 2 padded (--pad-short)"));
    CHECK(file_has(q, "2 clips padded with their last decoded frame (--pad-short); listed in dmgp.tsv"));
    snprintf(p, sizeof p, "%s/dmgp.tsv", dir);
    CHECK(file_has(p, "g1\t./gapf\tpadded with the last frame decoded (--pad-short): read error at 2.00 s"));
    snprintf(p, sizeof p, "%s/dmgp.rec", dir);
    n = read_recs(p, r, 64);
    x = find(r, n, "g1"); // frames 51..68: 53, 57, then frame 59 again for 62 and 66, as asked
    CHECK(n == 5 && x && x->frames[0] == 53 && x->frames[1] == 57 && x->frames[2] == 59 && x->frames[3] == 59);

    TEST(14, "provenance travels in the stream (--out - too): dataset, split, mode, frames, size, backbone, class names");
    CHECK(vid_sh("cd %s && printf 'id,key,instances,category\\n0,open,[],x\\n1,close,[],y\\n2,wash,[],z\\n3,turn,[],w\\n' "
                 "> EPIC_100_verb_classes.csv && cp EPIC_100_validation.csv EPIC_100_train.csv && "
                 "%s/lmr-extract --dataset epic --annotations EPIC_100_train.csv --labels EPIC_100_verb_classes.csv "
                 "--frames-dir --frames 4 --size 32 --backbone pool --out - > pipe.rec 2> err.txt", dir, bin) == 0);
    CHECK(file_has(q, "warning: EPIC_100_train.csv looks like a training split, but --mode is test"));
    snprintf(p, sizeof p, "%s/pipe.rec", dir);
    CHECK(read_recs(p, r, 64) == 1);
    CHECK(strstr(meta_json, "\"kind\":\"features\"") && strstr(meta_json, "\"dataset\":\"epic\"") &&
          strstr(meta_json, "\"split\":\"train\"") && strstr(meta_json, "\"mode\":\"test\"") &&
          strstr(meta_json, "\"frames\":4") && strstr(meta_json, "\"size\":32") &&
          strstr(meta_json, "\"backbone\":\"pool\"") &&
          strstr(meta_json, "\"class_names\":[\"open\",\"close\",\"wash\",\"turn\"]"));
    CHECK(vid_sh("cd %s && %s/lmr-extract --dataset epic --annotations EPIC_100_train.csv --labels EPIC_100_verb_classes.csv "
                 "--frames-dir --frames 4 --size 32 --mode train --out epic_tr.rec 2> err.txt", dir, bin) == 0);
    CHECK(!file_has(q, "looks like a training split"));
    snprintf(p, sizeof p, "%s/epic_tr.rec.meta.json", dir);
    CHECK(file_has(p, "\"mode\":\"train\"") && file_has(p, "\"class_names\":[\"open\",\"close\",\"wash\",\"turn\"]"));
    snprintf(p, sizeof p, "%s/epic_tr.rec", dir);
    CHECK(read_recs(p, r, 64) == 1 && strstr(meta_json, "\"mode\":\"train\""));

    TEST(15, "a rerun verifies the records already there: a damaged one is dropped and its clip redone");
    CHECK(vid_sh("cd %s && cp seg.rec chk.rec", dir) == 0);
    {
        // Flip one payload byte of the fourth clip record (c03).
        RecReader rr;
        RecordInfo in;
        uint64_t at = 0, size = 0;
        snprintf(p, sizeof p, "%s/chk.rec", dir);
        CHECK(recreader_open(&rr, p) == 0);
        for (int k = 0; recreader_next(&rr, &in) == 0; k++)
            if (k == 4) { // the metadata record, then c00 c01 c02 c03
                at = rr.offset - in.total_size;
                size = in.total_size;
            }
        recreader_close(&rr);
        CHECK(size > 100);
        FILE *f = fopen(p, "r+b");
        CHECK(f && fseek(f, (long)(at + size - 20), SEEK_SET) == 0);
        int ch = f ? fgetc(f) : 0;
        if (f) {
            fseek(f, (long)(at + size - 20), SEEK_SET);
            fputc(ch ^ 0x10, f);
            fclose(f);
        }
    }
    CHECK(extract("m.csv", "chk.rec", "--frames 4 " OKF) == 0);
    CHECK(file_has(q, "clip c03: ") && file_has(q, "dropped, the clip is extracted again") &&
          file_has(q, "1 records failed their checksum; rewritten without them") &&
          file_has(q, "1 clips written, 7 failed, 8 skipped"));
    n = read_recs(p, r, 64);
    CHECK(n == 9 && find(r, n, "c03") && find(r, n, "c03")->frames[0] == seg_mid(5, 8, 600, 4, 0));
    // A damaged length in the middle (records follow it) is not a cut-off tail: refused, not cut.
    CHECK(vid_sh("cd %s && cp seg.rec len.rec", dir) == 0);
    {
        RecReader rr;
        RecordInfo in;
        uint64_t at = 0;
        snprintf(p, sizeof p, "%s/len.rec", dir);
        CHECK(recreader_open(&rr, p) == 0);
        for (int k = 0; recreader_next(&rr, &in) == 0; k++)
            if (k == 3)
                at = rr.offset - in.total_size;
        recreader_close(&rr);
        FILE *f = fopen(p, "r+b"); // stored_size (offset 40) of that raw-or-zstd record: far too big
        CHECK(f && fseek(f, (long)(at + 40 + 3), SEEK_SET) == 0);
        if (f) {
            fputc(0x01, f);
            fclose(f);
        }
    }
    CHECK(vid_sh("cd %s && cp len.rec len.orig", dir) == 0);
    CHECK(extract("m.csv", "len.rec", "--frames 4 " OKF) == 1);
    CHECK(file_has(q, "refusing to"));
    snprintf(q, sizeof q, "%s/len.orig", dir);
    CHECK(same_file(p, q));
    snprintf(q, sizeof q, "%s/err.txt", dir);

    TEST(16, "outputs never overwrite inputs; usage errors: one line, exit 2");
    snprintf(p, sizeof p, "%s/m.csv", dir);
    CHECK(vid_sh("cd %s && cp m.csv m.keep", dir) == 0);
    CHECK(extract("m.csv", "o1.rec", "--failures m.csv") == 2);
    CHECK(file_has(q, "m.csv is also an input (m.csv): refusing to write over it"));
    CHECK(extract("m.csv", "m.csv", "") == 2);
    CHECK(extract("m.csv", "o2.rec", "--labels EPIC_100_verb_classes.csv --failures ./EPIC_100_verb_classes.csv") == 2);
    snprintf(q, sizeof q, "%s/m.keep", dir);
    CHECK(same_file(p, q));
    snprintf(q, sizeof q, "%s/err.txt", dir);
    CHECK(extract("m.csv", "x.rec", "--bogus 3") == 2);
    CHECK(vid_sh("head -1 %s | grep -qx \"lmr-extract: unknown option '--bogus' (see --help)\"", q) == 0);
    CHECK(extract("m.csv", "x.rec", "--frames") == 2);
    CHECK(file_has(q, "lmr-extract: option '--frames' needs a value (see --help)\n"));

    TEST(17, "a clip to the end of a video whose header claims a little more than decodes: sampled from what decodes");
    snprintf(p, sizeof p, "-c:v libx264 -crf 8 -pix_fmt yuv420p %s/v60.mkv", dir);
    CHECK(vid_make(60, 64, 48, 30, 0, p) == 0);
    // The container's duration is the audio's, longer than the 2 s of video.
    CHECK(vid_sh("cd %s && ffmpeg -v error -y -i v60.mkv -f lavfi -i sine=d=2.3 -map 0 -map 1 -c:v copy -c:a flac av23.mkv && "
                 "ffmpeg -v error -y -i v60.mkv -f lavfi -i sine=d=3 -map 0 -map 1 -c:v copy -c:a flac av3.mkv && "
                 "printf 'clip_id,video,start_sec,stop_sec,labels\\nw0,av23.mkv,,,0\\nw1,av3.mkv,,,0\\n' > whole.csv", dir) == 0);
    CHECK(extract("whole.csv", "whole.rec", "--frames 8 --max-failures 1") == 0);
    CHECK(file_has(q, "./av3.mkv: clip w1: clip runs to the end of the video, 3.00 s by its header; it decodes to 2.00 s"));
    snprintf(p, sizeof p, "%s/whole.rec", dir);
    n = read_recs(p, r, 64);
    CHECK(n == 1 && strcmp(r[0].id, "w0") == 0);
    for (int t = 0; n == 1 && t < 8; t++)
        CHECK(r[0].frames[t] == seg_mid(0, -1, 60, 8, t));

    if (!getenv("LMR_KEEP"))
        vid_sh("rm -rf %s", dir);
    CHECK_DONE();
}
