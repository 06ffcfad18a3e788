/* Annotation readers against fixture files in each published layout (EPIC-KITCHENS-100 csv,
 * SSv2 json, VideoLT lists, the manifest), awkward cases included, checked row by row, and
 * every skipped line checked for its FILE:LINE: reason. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "annotations.h"
#include "check.h"
#include "manifest.h"

typedef struct {
    int n;
    char msg[32][LMR_ERRLEN + 300];
} Warnings;

static void collect(void *user, const char *msg)
{
    Warnings *w = user;
    if (w->n < 32)
        snprintf(w->msg[w->n], sizeof w->msg[0], "%s", msg);
    w->n++;
}

/* Some warning starts with "FILE:LINE: " and holds `what`. */
static int warned(const Warnings *w, const char *file, int line, const char *what)
{
    char head[600];
    snprintf(head, sizeof head, "%s:%d: ", file, line);
    for (int i = 0; i < w->n && i < 32; i++)
        if (strncmp(w->msg[i], head, strlen(head)) == 0 && strstr(w->msg[i], what))
            return 1;
    fprintf(stderr, "no warning '%s...%s' among %d:\n", head, what, w->n);
    for (int i = 0; i < w->n && i < 32; i++)
        fprintf(stderr, "  %s\n", w->msg[i]);
    return 0;
}

static char dir[256];

static const char *fixture(const char *name, const char *text)
{
    static char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f)
        return NULL;
    fputs(text, f);
    fclose(f);
    return path;
}

static void load_init(Manifest *m, Warnings *w, AnnotOpts *o, const char *ds)
{
    manifest_init(m);
    memset(w, 0, sizeof *w);
    m->warn = collect;
    m->warn_user = w;
    annot_opts_init(o);
    o->dataset = ds;
}

static int row_is(const Manifest *m, size_t i, const char *id, const char *video, double start,
                  double stop, int n_labels, const int32_t *labels)
{
    if (i >= m->n_rows) {
        fprintf(stderr, "row %zu missing (have %zu)\n", i, m->n_rows);
        return 0;
    }
    const ManifestRow *r = &m->rows[i];
    int ok = strcmp(r->clip_id, id) == 0 && strcmp(r->video, video) == 0 &&
             fabs(r->start_sec - start) < 1e-9 && fabs(r->stop_sec - stop) < 1e-9 &&
             r->n_labels == n_labels;
    for (int k = 0; ok && k < n_labels; k++)
        ok = r->labels[k] == labels[k];
    if (!ok)
        fprintf(stderr, "row %zu: got %s %s %.6f %.6f n_labels %d, want %s %s %.6f %.6f %d\n", i,
                r->clip_id, r->video, r->start_sec, r->stop_sec, r->n_labels, id, video, start,
                stop, n_labels);
    return ok;
}

#define EPIC_HEADER                                                                              \
    "narration_id,participant_id,video_id,narration_timestamp,start_timestamp,stop_timestamp,"   \
    "start_frame,stop_frame,narration,verb,verb_class,noun,noun_class,all_nouns,all_noun_classes"

static const char epic_train[] =
    "\xEF\xBB\xBF" EPIC_HEADER "\r\n"
    /* 2 */ "P01_01_0,P01,P01_01,00:00:01.089,00:00:00.14,00:00:03.37,8,202,open door,open,3,door,3,['door'],[3]\r\n"
    /* 3: empty narration timestamp, quoted commas, Python lists */
    "P01_01_1,P01,P01_01,,00:00:04.37,00:00:06.17,262,370,\"put down, then take cup\",put-down,1,cup,13,\"['cup', 'tap']\",\"[13, 8]\"\r\n"
    /* 4: extension video (50 fps) */
    "P01_101_2,P01,P01_101,00:00:10.000,00:01:02.50,00:01:03.00,3125,3150,take plate,take,0,plate,2,\"['plate']\",[2]\r\n"
    /* 5: bad timestamp */
    "P02_03_4,P02,P02_03,00:00:01.000,00:0x:01.00,00:00:02.00,60,120,wash,wash,2,pan,5,['pan'],[5]\r\n"
    /* 6: 14 columns */
    "P02_03_5,P02,P02_03,00:00:01.000,00:00:01.00,00:00:02.00,60,120,wash,wash,2,pan,5,['pan']\r\n"
    /* 7: class out of range (97 verbs) */
    "P02_03_6,P02,P02_03,00:00:01.000,00:00:01.00,00:00:02.00,60,120,wash,wash,97,pan,5,['pan'],[5]\r\n"
    /* 8: bad number */
    "P02_03_7,P02,P02_03,00:00:01.000,00:00:01.00,00:00:02.00,60,120,wash,wash,x,pan,5,['pan'],[5]\r\n"
    /* 9: duplicate id */
    "P01_01_0,P01,P01_01,00:00:01.089,00:00:00.14,00:00:03.37,8,202,open door,open,3,door,3,['door'],[3]\r\n"
    /* 10: empty start/stop timestamps: from frames, extension video at 50 fps */
    "P02_104_8,P02,P02_104,00:00:01.000,,,100,250,cut onion,cut,7,onion,30,['onion'],[30]\r\n"
    /* 11: unterminated quote, then 12 reads again */
    "P03_02_9,P03,P03_02,00:00:01.000,00:00:01.00,00:00:02.00,60,120,\"stir,stir,4,pot,9,['pot'],[9]\r\n"
    "P03_02_10,P03,P03_02,00:00:01.000,00:00:01.50,00:00:02.25,90,135,stir pot,stir,4,pot,9,['pot'],[9]\r\n"
    /* 13: stop before start */
    "P03_02_11,P03,P03_02,00:00:01.000,00:00:05.00,00:00:02.00,300,120,stir pot,stir,4,pot,9,['pot'],[9]";

static void test_epic(void)
{
    Manifest m;
    Warnings w;
    AnnotOpts o;
    TEST(1, "EPIC train csv: BOM, CRLF, quoted commas, lists, 50 fps, bad lines");
    const char *path = fixture("EPIC_100_train.csv", epic_train);
    char file[512];
    snprintf(file, sizeof file, "%s", path);
    load_init(&m, &w, &o, "epic");
    o.annotations = file;
    CHECK_RC(annotations_load(&m, &o), 0);
    CHECK(m.n_rows == 5);
    CHECK(m.n_classes == ANNOT_EPIC_VERBS);
    CHECK(strcmp(m.dataset, "epic") == 0);
    CHECK(row_is(&m, 0, "P01_01_0", "P01/P01_01.MP4", 0.14, 3.37, 1, (int32_t[]){3}));
    CHECK(row_is(&m, 1, "P01_01_1", "P01/P01_01.MP4", 4.37, 6.17, 1, (int32_t[]){1}));
    CHECK(row_is(&m, 2, "P01_101_2", "P01/P01_101.MP4", 62.5, 63.0, 1, (int32_t[]){0}));
    CHECK(row_is(&m, 3, "P02_104_8", "P02/P02_104.MP4", 100.0 / 50, 250.0 / 50, 1, (int32_t[]){7}));
    CHECK(row_is(&m, 4, "P03_02_10", "P03/P03_02.MP4", 1.5, 2.25, 1, (int32_t[]){4}));
    CHECK(m.rows[0].line == 2 && m.rows[4].line == 12);
    CHECK(m.n_skipped == 7);
    CHECK(w.n == 7);
    CHECK(warned(&w, file, 5, "bad timestamp"));
    CHECK(warned(&w, file, 6, "wrong column count: 14, want 15"));
    CHECK(warned(&w, file, 7, "out of range"));
    CHECK(warned(&w, file, 8, "bad number in verb_class"));
    CHECK(warned(&w, file, 9, "duplicate"));
    CHECK(warned(&w, file, 11, "unterminated quote"));
    CHECK(warned(&w, file, 13, "before start"));
    manifest_free(&m);

    TEST(2, "EPIC --target noun, frame folder layouts");
    load_init(&m, &w, &o, "epic");
    o.annotations = file;
    o.target = ANNOT_TARGET_NOUN;
    o.epic_layout = ANNOT_EPIC_RGB_FRAMES;
    CHECK_RC(annotations_load(&m, &o), 0);
    CHECK(m.n_classes == ANNOT_EPIC_NOUNS);
    /* line 7 (verb 97) is fine as a noun row (noun 5), line 8 too (x is the verb). */
    CHECK(m.n_rows == 7);
    CHECK(row_is(&m, 1, "P01_01_1", "P01/rgb_frames/P01_01", 4.37, 6.17, 1, (int32_t[]){13}));
    CHECK(row_is(&m, 2, "P01_101_2", "P01/rgb_frames/P01_101", 62.5, 63.0, 1, (int32_t[]){2}));
    manifest_free(&m);
    load_init(&m, &w, &o, "epic");
    o.annotations = file;
    o.epic_layout = ANNOT_EPIC_FRAMES;
    CHECK_RC(annotations_load(&m, &o), 0);
    CHECK(m.n_rows == 5 && strcmp(m.rows[0].video, "P01/P01_01") == 0);
    manifest_free(&m);

    TEST(3, "EPIC --strict fails on the first bad line");
    load_init(&m, &w, &o, "epic");
    o.annotations = file;
    o.strict = 1;
    CHECK_RC(annotations_load(&m, &o), LMR_EPARSE);
    char want[600];
    snprintf(want, sizeof want, "%s:5: ", file);
    CHECK(strstr(m.last_error, want) != NULL && strstr(m.last_error, "bad timestamp"));
    CHECK(w.n == 0); /* the error carries the message; it is not also a warning */
    manifest_free(&m);

    TEST(4, "EPIC test timestamps file: no label columns, unlabelled");
    path = fixture("EPIC_100_test_timestamps.csv",
                   "uid,narration_id,participant_id,video_id,narration_timestamp,start_timestamp,"
                   "stop_timestamp,start_frame,stop_frame\n"
                   "1924,P01_101_0,P01,P01_101,00:00:02.851,00:00:02.86,00:00:03.87,143,193\n"
                   "1925,P01_101_1,P01,P01_101,,00:00:04.97,00:00:05.75,248,287\n");
    load_init(&m, &w, &o, "epic");
    o.annotations = path;
    CHECK_RC(annotations_load(&m, &o), 0);
    CHECK(m.n_rows == 2 && m.n_skipped == 0);
    CHECK(row_is(&m, 0, "P01_101_0", "P01/P01_101.MP4", 2.86, 3.87, 0, NULL));
    CHECK(row_is(&m, 1, "P01_101_1", "P01/P01_101.MP4", 4.97, 5.75, 0, NULL));
    manifest_free(&m);

    TEST(5, "EPIC 8-column test file (no uid)");
    path = fixture("EPIC_100_test.csv",
                   "narration_id,participant_id,video_id,narration_timestamp,start_timestamp,"
                   "stop_timestamp,start_frame,stop_frame\n"
                   "P04_01_0,P04,P04_01,00:00:02.851,01:02:03.5,01:02:04.25,223410,223455\n");
    load_init(&m, &w, &o, "epic");
    o.annotations = path;
    CHECK_RC(annotations_load(&m, &o), 0);
    CHECK(row_is(&m, 0, "P04_01_0", "P04/P04_01.MP4", 3723.5, 3724.25, 0, NULL));
    manifest_free(&m);

    TEST(6, "EPIC class file sets n_classes; header that is not EPIC fails");
    const char *classes = fixture("EPIC_100_verb_classes.csv",
                                  "id,key,instances,category\n"
                                  "0,take,\"['take', 'grab', 'pick-up']\",retrieve\n"
                                  "1,put,\"['put', 'put-down']\",leave\n"
                                  "2,wash,['wash'],clean\n"
                                  "3,open,\"['open', 'unscrew']\",access\n");
    char classes_path[512];
    snprintf(classes_path, sizeof classes_path, "%s", classes);
    load_init(&m, &w, &o, "epic");
    o.annotations = file;
    o.labels = classes_path;
    CHECK_RC(annotations_load(&m, &o), 0);
    CHECK(m.n_classes == 4);
    CHECK(m.n_rows == 3); /* verb 7 of P02_104_8 and verb 4 of P03_02_10 are now out of range */
    CHECK(warned(&w, file, 10, "class 7 out of range [0, 4)"));
    manifest_free(&m);
    AnnotClasses c;
    annot_classes_init(&c);
    CHECK_RC(annot_classes_read(&c, "epic", classes_path, NULL, 0, 1), 0);
    CHECK(c.n_classes == 4 && strcmp(c.names[0], "take") == 0 && strcmp(c.names[3], "open") == 0);
    annot_classes_free(&c);
    path = fixture("not_epic.csv", "a,b,c\n1,2,3\n");
    load_init(&m, &w, &o, "epic");
    o.annotations = path;
    CHECK_RC(annotations_load(&m, &o), LMR_EPARSE);
    CHECK(strstr(m.last_error, ":1: not an EPIC-KITCHENS-100 csv") != NULL);
    manifest_free(&m);

    TEST(7, "EPIC tail verbs");
    path = fixture("EPIC_100_tail_verbs.csv", "verb\r\n10\r\n12\r\n96\r\n97\r\n");
    annot_classes_init(&c);
    int32_t *ids;
    int n;
    CHECK_RC(annot_epic_tail_read(&c, path, 97, 0, &ids, &n), 0);
    CHECK(n == 3 && ids[0] == 10 && ids[1] == 12 && ids[2] == 96);
    CHECK(c.n_skipped == 1);
    free(ids);
    annot_classes_free(&c);
}

static void test_helpers(void)
{
    TEST(8, "timestamps and EPIC frame rates");
    double t = -1;
    CHECK(annot_parse_timestamp("00:00:00.14", &t) == 0 && fabs(t - 0.14) < 1e-12);
    CHECK(annot_parse_timestamp("01:02:03.456", &t) == 0 && fabs(t - 3723.456) < 1e-9);
    CHECK(annot_parse_timestamp("00:00:07", &t) == 0 && t == 7.0);
    CHECK(annot_parse_timestamp("00:60:00.00", &t) < 0);
    CHECK(annot_parse_timestamp("00:00:1.00", &t) < 0);
    CHECK(annot_parse_timestamp("00:00:01.", &t) < 0);
    CHECK(annot_parse_timestamp("", &t) < 0);
    CHECK(annot_parse_timestamp("00:00:01.00x", &t) < 0);
    CHECK(annot_epic_fps("P01_01") == 60);
    CHECK(annot_epic_fps("P01_101") == 50);
    CHECK(annot_epic_fps("P37_103") == 50);
    CHECK(annot_epic_fps("P22_17") == 60);
}

static const char ssv2_labels[] =
    "{\n"
    " \"Holding something next to something\": \"0\",\n"
    " \"Putting something on a surface\": \"1\",\n"
    " \"Pushing something so that it falls off the table\": \"2\"\n"
    "}\n";

static const char ssv2_train[] =
    "[\n"
    /* 2 */ "{\"id\":\"78687\",\"label\":\"holding potato next to vicks vaporub bottle\",\"template\":\"Holding [something] next to [something]\",\"placeholders\":[\"potato\",\"vicks vaporub bottle\"]},\n"
    /* 3 */ "{\"id\":\"42326\",\"label\":\"putting a cup on a table\",\"template\":\"Putting [something] on a surface\",\"placeholders\":[\"a cup\"]},\n"
    /* 4: unknown template */
    "{\"id\":\"100\",\"label\":\"x\",\"template\":\"Spinning [something] that quickly stops spinning\",\"placeholders\":[\"x\"]},\n"
    /* 5: duplicate id */
    "{\"id\":\"42326\",\"label\":\"again\",\"template\":\"Putting [something] on a surface\",\"placeholders\":[\"y\"]},\n"
    /* 6-8: an entry over several lines, free-text label that looks like another template */
    "{\"id\": \"5\",\n \"label\": \"Putting something on a surface\",\n \"template\": \"Pushing [something] so that it falls off the table\", \"placeholders\": []},\n"
    /* 9: no id */
    "{\"label\":\"x\",\"template\":\"Putting [something] on a surface\"},\n"
    /* 10: not an object */
    "17\n"
    "]\n";

static void test_ssv2(void)
{
    Manifest m;
    Warnings w;
    AnnotOpts o;
    char labels[512], train[512];
    TEST(9, "SSv2 train json: bracket templates, unknown template, duplicates, line numbers");
    snprintf(labels, sizeof labels, "%s", fixture("something-something-v2-labels.json", ssv2_labels));
    snprintf(train, sizeof train, "%s", fixture("something-something-v2-train.json", ssv2_train));
    load_init(&m, &w, &o, "ssv2");
    o.annotations = train;
    o.labels = labels;
    CHECK_RC(annotations_load(&m, &o), 0);
    CHECK(m.n_classes == 3);
    CHECK(m.n_rows == 3);
    CHECK(row_is(&m, 0, "78687", "78687.webm", 0, -1, 1, (int32_t[]){0}));
    CHECK(row_is(&m, 1, "42326", "42326.webm", 0, -1, 1, (int32_t[]){1}));
    CHECK(row_is(&m, 2, "5", "5.webm", 0, -1, 1, (int32_t[]){2}));
    CHECK(m.rows[2].line == 6);
    CHECK(m.n_skipped == 4);
    CHECK(warned(&w, train, 4, "unknown template 'Spinning [something]"));
    CHECK(warned(&w, train, 5, "duplicate id '42326'"));
    CHECK(warned(&w, train, 9, "missing or bad \"id\""));
    CHECK(warned(&w, train, 10, "not an object"));
    manifest_free(&m);

    TEST(10, "SSv2 test split: ids only, unlabelled; integer ids");
    const char *test = fixture("something-something-v2-test.json",
                               "\xEF\xBB\xBF[{\"id\":\"1420\"},\r\n{\"id\":\"99\"},{\"id\":7}]\r\n");
    load_init(&m, &w, &o, "ssv2");
    o.annotations = test;
    o.labels = labels;
    CHECK_RC(annotations_load(&m, &o), 0);
    CHECK(m.n_rows == 3 && m.n_skipped == 0);
    CHECK(row_is(&m, 0, "1420", "1420.webm", 0, -1, 0, NULL));
    CHECK(row_is(&m, 2, "7", "7.webm", 0, -1, 0, NULL));
    CHECK(m.rows[1].line == 2);
    manifest_free(&m);

    TEST(11, "SSv2 invalid json names line and column; labels file required");
    const char *bad = fixture("bad.json", "[\n{\"id\":\"1\"},\n{\"id\": }\n]\n");
    load_init(&m, &w, &o, "ssv2");
    o.annotations = bad;
    o.labels = labels;
    CHECK_RC(annotations_load(&m, &o), LMR_EPARSE);
    CHECK(strstr(m.last_error, "bad.json:3:") != NULL);
    manifest_free(&m);
    load_init(&m, &w, &o, "ssv2");
    o.annotations = train;
    CHECK_RC(annotations_load(&m, &o), LMR_EINVAL);
    manifest_free(&m);
    bad = fixture("bad_labels.json", "{\"a\": \"0\", \"b\": \"7\"}");
    load_init(&m, &w, &o, "ssv2");
    o.annotations = train;
    o.labels = bad;
    CHECK_RC(annotations_load(&m, &o), LMR_EPARSE);
    manifest_free(&m);
    AnnotClasses c;
    annot_classes_init(&c);
    CHECK_RC(annot_classes_read(&c, "ssv2", labels, NULL, 0, 0), 0);
    CHECK(c.n_classes == 3 && strcmp(c.names[2], "Pushing something so that it falls off the table") == 0);
    annot_classes_free(&c);
}

static void test_videolt(void)
{
    Manifest m;
    Warnings w;
    AnnotOpts o;
    TEST(12, "VideoLT list: multi-label, CRLF, BOM, bad lines; counts file");
    char counts[512], list[512];
    snprintf(counts, sizeof counts, "%s",
             fixture("count-labels-train.lst",
                     "Abseiling 0 120\nplaying bass guitar 1 731\nArchery 2 15\nZumba 3 400\n"));
    snprintf(list, sizeof list, "%s",
             fixture("train.lst", "\xEF\xBB\xBFv_abc 0\r\n"
                                  /* 2 */ "v_def 1,3,2\r\n"
                                  /* 3 */ "\r\n"
                                  /* 4 */ "v_ghi 4\r\n"
                                  /* 5 */ "v_jkl 1,x\r\n"
                                  /* 6 */ "v_mno\r\n"
                                  /* 7 */ "v_abc 2\r\n"
                                  /* 8 */ "v_pqr 0,1,2,3\r\n"
                                  /* 9 */ "v_stu 2,2\r\n"
                                  /* 10 */ "v_vwx 1 2\r\n"
                                  /* 11 */ "  v_yz   3  "));
    load_init(&m, &w, &o, "videolt");
    o.annotations = list;
    o.labels = counts;
    CHECK_RC(annotations_load(&m, &o), 0);
    CHECK(m.n_classes == 4);
    CHECK(m.n_rows == 4);
    CHECK(row_is(&m, 0, "v_abc", "v_abc.mp4", 0, -1, 1, (int32_t[]){0}));
    CHECK(row_is(&m, 1, "v_def", "v_def.mp4", 0, -1, 3, (int32_t[]){1, 3, 2}));
    CHECK(row_is(&m, 2, "v_pqr", "v_pqr.mp4", 0, -1, 4, (int32_t[]){0, 1, 2, 3}));
    CHECK(row_is(&m, 3, "v_yz", "v_yz.mp4", 0, -1, 1, (int32_t[]){3}));
    CHECK(m.rows[2].line == 8);
    CHECK(m.n_skipped == 6);
    CHECK(warned(&w, list, 4, "class 4 out of range [0, 4)"));
    CHECK(warned(&w, list, 5, "bad class number 'x'"));
    CHECK(warned(&w, list, 6, "wrong field count: 1"));
    CHECK(warned(&w, list, 7, "duplicate video id 'v_abc'"));
    CHECK(warned(&w, list, 9, "listed twice"));
    CHECK(warned(&w, list, 10, "wrong field count"));
    manifest_free(&m);

    TEST(13, "VideoLT without counts: n_classes = max label + 1");
    load_init(&m, &w, &o, "videolt");
    o.annotations = list;
    CHECK_RC(annotations_load(&m, &o), 0);
    CHECK(m.n_rows == 5 && m.n_classes == 5);
    manifest_free(&m);

    AnnotClasses c;
    annot_classes_init(&c);
    CHECK_RC(annot_classes_read(&c, "videolt", counts, NULL, 0, 1), 0);
    CHECK(c.n_classes == 4);
    CHECK(strcmp(c.names[1], "playing bass guitar") == 0 && c.counts[1] == 731);
    CHECK(c.counts[2] == 15 && c.counts[3] == 400);
    annot_classes_free(&c);
}

static void test_manifest(void)
{
    TEST(14, "manifest write -> read round trip, quoting, unlabelled, to-the-end stop");
    Manifest m, back;
    Warnings w = {0};
    manifest_init(&m);
    ManifestRow r = {.clip_id = "a,1", .video = "dir/with \"quote\".mp4", .start_sec = 0.1,
                     .stop_sec = 2.0 / 3.0, .n_labels = 2, .labels = {5, 7}};
    CHECK_RC(manifest_add(&m, &r), 0);
    ManifestRow r2 = {.clip_id = "b", .video = "b.webm", .start_sec = 0, .stop_sec = -1};
    CHECK_RC(manifest_add(&m, &r2), 0);
    char path[512];
    snprintf(path, sizeof path, "%s/manifest.csv", dir);
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    CHECK_RC(manifest_write(&m, f), 0);
    fclose(f);
    manifest_init(&back);
    back.warn = collect;
    back.warn_user = &w;
    CHECK_RC(manifest_read(&back, path, 1), 0);
    CHECK(row_is(&back, 0, "a,1", "dir/with \"quote\".mp4", 0.1, 2.0 / 3.0, 2, (int32_t[]){5, 7}));
    CHECK(back.rows[0].stop_sec == 2.0 / 3.0); /* bit exact */
    CHECK(row_is(&back, 1, "b", "b.webm", 0, -1, 0, NULL));
    manifest_free(&back);
    manifest_free(&m);

    TEST(15, "manifest reader: bad lines reported; dataset manifest sets n_classes");
    const char *bad = fixture("bad_manifest.csv",
                              "clip_id,video,start_sec,stop_sec,labels\r\n"
                              "c1,v1.mp4,0,1.5,3\r\n"
                              "c2,v2.mp4,zero,1.5,3\r\n"
                              "c3,v3.mp4,0,1.5,3;x\r\n"
                              "c4,v4.mp4,0,1.5\r\n"
                              "c1,v1.mp4,0,1.5,3\r\n"
                              "c5,v5.mp4,2,1,3\r\n"
                              "c6,v6.mp4,1,,11;2\r\n");
    char bad_path[512];
    snprintf(bad_path, sizeof bad_path, "%s", bad);
    AnnotOpts o;
    load_init(&m, &w, &o, "manifest");
    o.annotations = bad_path;
    CHECK_RC(annotations_load(&m, &o), 0);
    CHECK(m.n_rows == 2 && m.n_skipped == 5 && m.n_classes == 12);
    CHECK(row_is(&m, 1, "c6", "v6.mp4", 1, -1, 2, (int32_t[]){11, 2}));
    CHECK(warned(&w, bad_path, 3, "bad number in start_sec"));
    CHECK(warned(&w, bad_path, 4, "bad label"));
    CHECK(warned(&w, bad_path, 5, "wrong column count: 4, want 5"));
    CHECK(warned(&w, bad_path, 6, "duplicate clip_id 'c1'"));
    CHECK(warned(&w, bad_path, 7, "before start_sec"));
    manifest_free(&m);
    load_init(&m, &w, &o, "manifest");
    o.annotations = bad_path;
    o.strict = 1;
    CHECK_RC(annotations_load(&m, &o), LMR_EPARSE);
    manifest_free(&m);
    load_init(&m, &w, &o, "nope");
    CHECK_RC(annotations_load(&m, &o), LMR_EINVAL);
    load_init(&m, &w, &o, "epic");
    o.annotations = "/nonexistent/EPIC_100_train.csv";
    CHECK(annotations_load(&m, &o) < 0 && strstr(m.last_error, "/nonexistent/EPIC_100_train.csv"));
    manifest_free(&m);
}

/* A file of n copies of byte c (long ids). */
static char *repeat(char c, size_t n)
{
    char *s = malloc(n + 1);
    memset(s, c, n);
    s[n] = 0;
    return s;
}

static void test_checks(void)
{
    Manifest m;
    Warnings w, notes;
    AnnotOpts o;
    char path[512], path2[512];

    TEST(16, "ids: longer than a record holds, or holding a NUL byte, are refused with FILE:LINE");
    {
        char *big = repeat('a', 70001), *text = malloc(70200);
        snprintf(text, 70200, "clip_id,video,start_sec,stop_sec,labels\nok,v.mp4,0,1,0\n%s,v.mp4,0,1,1\n", big);
        snprintf(path, sizeof path, "%s", fixture("long_ids.csv", text));
        load_init(&m, &w, &o, "manifest");
        o.annotations = path;
        CHECK_RC(annotations_load(&m, &o), 0);
        CHECK(m.n_rows == 1 && m.n_skipped == 1);
        CHECK(warned(&w, path, 3, "of 70001 bytes"));
        manifest_free(&m);
        free(big);
        free(text);
    }
    {
        static const char csv[] = EPIC_HEADER "\n"
            "P01_01_0,P01,P01_01,00:00:01.089,00:00:00.14,00:00:03.37,8,202,open door,open,3,door,3,[],[]\n"
            "P01\0_01_1,P01,P01_01,00:00:01.089,00:00:00.14,00:00:03.37,8,202,open door,open,3,door,3,[],[]\n";
        load_init(&m, &w, &o, "epic");
        o.annotations = "nul.csv";
        o.annotations_data = csv;
        o.annotations_size = sizeof csv - 1;
        CHECK_RC(annotations_load(&m, &o), 0);
        CHECK(m.n_rows == 1 && strcmp(m.rows[0].clip_id, "P01_01_0") == 0);
        CHECK(warned(&w, "nul.csv", 3, "NUL byte"));
        manifest_free(&m);
        static const char lst[] = "v_a 0\nv_\0b 1\nv_c 1\n";
        load_init(&m, &w, &o, "videolt");
        o.annotations = "nul.lst";
        o.annotations_data = lst;
        o.annotations_size = sizeof lst - 1;
        CHECK_RC(annotations_load(&m, &o), 0);
        CHECK(m.n_rows == 2 && warned(&w, "nul.lst", 2, "NUL byte"));
        manifest_free(&m);
    }

    TEST(17, "labels: negative, 2^24 and more, at or above a given class count are refused");
    snprintf(path, sizeof path, "%s",
             fixture("labels.csv", "clip_id,video,start_sec,stop_sec,labels\n"
                                   "a,v.mp4,0,1,2147483647\n"
                                   "b,v.mp4,0,1,-5\n"
                                   "c,v.mp4,0,1,16777216\n"
                                   "d,v.mp4,0,1,16777215\n"
                                   "e,v.mp4,0,1,3;3\n"
                                   "f,v.mp4,0,1,4\n"));
    load_init(&m, &w, &o, "manifest");
    o.annotations = path;
    CHECK_RC(annotations_load(&m, &o), 0);
    CHECK(m.n_rows == 2 && m.n_classes == 16777216);
    CHECK(warned(&w, path, 2, "class 2147483647 out of range [0, 16777216)"));
    CHECK(warned(&w, path, 3, "class -5 is negative"));
    CHECK(warned(&w, path, 4, "out of range"));
    CHECK(warned(&w, path, 6, "class 3 listed twice"));
    manifest_free(&m);
    load_init(&m, &w, &o, "manifest");
    o.annotations = path;
    o.n_classes = 5;
    CHECK_RC(annotations_load(&m, &o), 0);
    CHECK(m.n_rows == 1 && m.n_classes == 5 && strcmp(m.rows[0].clip_id, "f") == 0);
    CHECK(warned(&w, path, 5, "class 16777215 out of range [0, 5)"));
    manifest_free(&m);
    snprintf(path, sizeof path, "%s", fixture("big.lst", "v_a 100000000\nv_b 2147483647\nv_c -1\nv_d 2\n"));
    load_init(&m, &w, &o, "videolt");
    o.annotations = path;
    CHECK_RC(annotations_load(&m, &o), 0);
    CHECK(m.n_rows == 1 && m.n_classes == 3);
    CHECK(warned(&w, path, 1, "out of range [0, 16777216)") && warned(&w, path, 3, "negative"));
    manifest_free(&m);

    TEST(18, "VideoLT counts written as 137.0 read as counts; a count file no line of which reads fails");
    snprintf(path, sizeof path, "%s", fixture("counts.lst", "Abseiling 0 137.0\nplaying bass guitar 1 2.0\nZumba 2 7\n"));
    snprintf(path2, sizeof path2, "%s", fixture("t.lst", "v_a 0\nv_b 1,2\n"));
    load_init(&m, &w, &o, "videolt");
    o.annotations = path2;
    o.labels = path;
    CHECK_RC(annotations_load(&m, &o), 0);
    CHECK(m.n_classes == 3 && m.n_rows == 2 && w.n == 0);
    CHECK(m.n_class_names == 3 && m.class_names && strcmp(m.class_names[1], "playing bass guitar") == 0);
    manifest_free(&m);
    AnnotClasses c;
    annot_classes_init(&c);
    CHECK_RC(annot_classes_read(&c, "videolt", path, NULL, 0, 1), 0);
    CHECK(c.n_classes == 3 && c.counts[0] == 137 && c.counts[1] == 2 && c.counts[2] == 7);
    annot_classes_free(&c);
    snprintf(path, sizeof path, "%s", fixture("counts_bad.lst", "Abseiling 0 137.5\nZumba 1 -2.0\nx 2 nan\n"));
    load_init(&m, &w, &o, "videolt");
    o.annotations = path2;
    o.labels = path;
    CHECK_RC(annotations_load(&m, &o), LMR_EPARSE);
    CHECK(strstr(m.last_error, "none of its 3 lines") != NULL);
    CHECK(warned(&w, path, 1, "bad count '137.5'"));
    manifest_free(&m);

    TEST(19, "a split file none of whose lines reads fails the load");
    snprintf(path, sizeof path, "%s", fixture("allbad.csv", "clip_id,video,start_sec,stop_sec,labels\n"
                                                           "a,v.mp4,x,1,0\nb,v.mp4,0,1,y\n"));
    load_init(&m, &w, &o, "manifest");
    o.annotations = path;
    CHECK_RC(annotations_load(&m, &o), LMR_EPARSE);
    CHECK(strstr(m.last_error, "no clip could be read (2 lines skipped)") != NULL);
    manifest_free(&m);
    snprintf(path, sizeof path, "%s", fixture("empty_ok.csv", "clip_id,video,start_sec,stop_sec,labels\n"));
    load_init(&m, &w, &o, "manifest");
    o.annotations = path;
    CHECK_RC(annotations_load(&m, &o), 0); /* no rows and nothing skipped: an empty list */
    manifest_free(&m);

    TEST(20, "manifest times: negative stop_sec refused, empty stop_sec = to the end, empty start = 0");
    snprintf(path, sizeof path, "%s", fixture("times.csv", "clip_id,video,start_sec,stop_sec,labels\n"
                                                          "a,v.mp4,0,-5,0\n"
                                                          "b,v.mp4,0,-1,0\n"
                                                          "c,v.mp4,,,0\n"
                                                          "d,v.mp4,-1,2,0\n"));
    load_init(&m, &w, &o, "manifest");
    o.annotations = path;
    CHECK_RC(annotations_load(&m, &o), 0);
    CHECK(m.n_rows == 1 && row_is(&m, 0, "c", "v.mp4", 0, -1, 1, (int32_t[]){0}));
    CHECK(warned(&w, path, 2, "negative stop_sec -5") && warned(&w, path, 3, "negative stop_sec -1"));
    CHECK(warned(&w, path, 5, "negative start_sec"));
    {
        char *buf = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&buf, &len);
        CHECK_RC(manifest_write(&m, f), 0);
        fclose(f);
        CHECK(buf && strstr(buf, "\nc,v.mp4,0,,0\n") != NULL);
        free(buf);
    }
    manifest_free(&m);

    TEST(21, "EPIC header: a duplicated column is refused; 15 columns without verb_class noted; default class count noted");
    {
        static const char dup[] = "narration_id,participant_id,video_id,narration_timestamp,start_timestamp,"
            "stop_timestamp,start_frame,stop_frame,narration,verb,verb_class,noun,noun_class,all_nouns,verb_class\n"
            "P01_01_0,P01,P01_01,00:00:01.089,00:00:00.14,00:00:03.37,8,202,open door,open,3,door,3,[],1\n";
        load_init(&m, &w, &o, "epic");
        o.annotations = "dup.csv";
        o.annotations_data = dup;
        o.annotations_size = sizeof dup - 1;
        CHECK_RC(annotations_load(&m, &o), LMR_EPARSE);
        CHECK(strstr(m.last_error, "dup.csv:1: column 'verb_class' appears twice") != NULL);
        manifest_free(&m);
        static const char miss[] = "narration_id,participant_id,video_id,narration_timestamp,start_timestamp,"
            "stop_timestamp,start_frame,stop_frame,narration,verb,verbclass,noun,noun_class,all_nouns,all_noun_classes\n"
            "P01_01_0,P01,P01_01,00:00:01.089,00:00:00.14,00:00:03.37,8,202,open door,open,3,door,3,[],[]\n";
        load_init(&m, &w, &o, "epic");
        memset(&notes, 0, sizeof notes);
        m.note = collect;
        m.warn_user = &notes; /* warn and note share the user pointer */
        o.annotations = "miss.csv";
        o.annotations_data = miss;
        o.annotations_size = sizeof miss - 1;
        CHECK_RC(annotations_load(&m, &o), 0);
        CHECK(m.n_rows == 1 && m.rows[0].n_labels == 0);
        CHECK(warned(&notes, "miss.csv", 1, "no 'verb_class' column"));
        int dflt = 0;
        for (int i = 0; i < notes.n && i < 32; i++)
            dflt |= strstr(notes.msg[i], "97 verb classes assumed") != NULL;
        CHECK(dflt);
        manifest_free(&m);
    }

    TEST(22, "class names reach the manifest (EPIC, SSv2)");
    snprintf(path, sizeof path, "%s", fixture("vc.csv", "id,key,instances,category\n0,take,[],x\n2,wash,[],y\n"));
    load_init(&m, &w, &o, "epic");
    o.annotations = "t.csv";
    o.annotations_data = EPIC_HEADER "\nP01_01_0,P01,P01_01,00:00:01.089,00:00:00.14,00:00:03.37,8,202,x,x,2,y,3,[],[]\n";
    o.annotations_size = strlen(o.annotations_data);
    o.labels = path;
    CHECK_RC(annotations_load(&m, &o), 0);
    CHECK(m.n_classes == 3 && m.n_class_names == 3 && strcmp(m.class_names[0], "take") == 0 &&
          m.class_names[1] == NULL && strcmp(m.class_names[2], "wash") == 0);
    manifest_free(&m);
    load_init(&m, &w, &o, "ssv2");
    o.annotations = "s.json";
    o.annotations_data = "[{\"id\":\"1\",\"template\":\"Pushing [something]\"}]";
    o.annotations_size = strlen(o.annotations_data);
    o.labels = "l.json";
    o.labels_data = "{\"Holding something\": \"1\", \"Pushing something\": \"0\"}";
    o.labels_size = strlen(o.labels_data);
    CHECK_RC(annotations_load(&m, &o), 0);
    CHECK(m.n_class_names == 2 && strcmp(m.class_names[0], "Pushing something") == 0 &&
          strcmp(m.class_names[1], "Holding something") == 0);
    manifest_free(&m);
}

int main(void)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/lmr_annot_XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    test_epic();
    test_helpers();
    test_ssv2();
    test_videolt();
    test_manifest();
    test_checks();
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    CHECK_DONE();
}
