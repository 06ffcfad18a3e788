/* VideoLT import: a few hundred generated .npy files (tests/videolt_fixtures.py) imported into an
 * LMDB shard through videolt_import, read back record by record against the .npy files, resumed,
 * then checked with `lmr-pack --verify` and `lmr-pack --info --json` (the multi-label class
 * histogram must equal the one computed in Python) and `--max-frames`. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "npy.h"
#include "shard.h"
#include "videolt.h"

#define N_VIDEOS 300

static char dir[256];

typedef struct {
    int n, n_notes;
    char all[16384]; /* "input|id|reason" lines of every failure */
    char note[LMR_ERRLEN];
} Warn;

static void on_warn(void *user, const char *msg)
{
    Warn *w = user;
    if (w->n_notes++ == 0)
        snprintf(w->note, sizeof w->note, "%s", msg);
}

static void on_fail(void *user, const char *input, int64_t offset, const char *id, const char *reason)
{
    Warn *w = user;
    (void)offset;
    w->n++;
    size_t len = strlen(w->all);
    snprintf(w->all + len, sizeof w->all - len, "%s|%s|%s\n", input, id, reason);
}

/* The failure line of clip id, or NULL. */
static const char *failure_of(const Warn *w, const char *id)
{
    char key[96];
    snprintf(key, sizeof key, "|%s|", id);
    return strstr(w->all, key);
}

static int run_import_as(const char *shard, ShardFormat format, int max_frames, VideoltStats *st, Warn *w)
{
    char feats[300], list[300], counts[300], err[LMR_ERRLEN] = "";
    snprintf(feats, sizeof feats, "%s/feats/", dir); /* a trailing slash must not double in paths */
    snprintf(list, sizeof list, "%s/train.lst", dir);
    snprintf(counts, sizeof counts, "%s/count-labels-train.lst", dir);
    VideoltImportOpts o = {.root = feats, .labels = list, .counts = counts, .max_frames = max_frames,
                           .zstd_level = 3, .quiet = 1, .fail = on_fail, .fail_user = w};
    ShardWriterOpts wo = {format, 4, 1u << 20};
    ShardWriter *sw;
    int rc = shardwriter_open(&sw, shard, &wo, err);
    if (rc) {
        fprintf(stderr, "open %s: %s\n", shard, err);
        return rc;
    }
    rc = videolt_import(&o, sw, on_warn, w, st, err);
    if (rc)
        fprintf(stderr, "import: %s\n", err);
    int crc = shardwriter_close(&sw);
    return rc ? rc : crc;
}

static int run_import(const char *shard, int max_frames, VideoltStats *st, Warn *w)
{
    return run_import_as(shard, SHARD_LMDB, max_frames, st, w);
}

/* Features of record i as f32, compared with the .npy file (rows per `rows` or all). */
static int same_as_npy(ShardSet *s, uint64_t i, const int64_t *rows, int n_rows)
{
    LmrBuf scratch;
    buf_init(&scratch);
    RecordInfo info;
    RecordCtx ctx;
    record_ctx_init(&ctx, 0);
    NpyArray a;
    npy_init(&a);
    int ok = 0;
    char id[300], path[600], err[LMR_ERRLEN];
    if (shardset_get(s, i, &scratch, &info))
        goto done;
    snprintf(id, sizeof id, "%.*s", (int)info.id_len, info.id);
    snprintf(path, sizeof path, "%s/feats/%s.npy", dir, id);
    if (npy_read(&a, path, err))
        goto done;
    size_t n = (size_t)info.raw_size;
    float *got = malloc(n), *want = malloc((size_t)(a.rows * a.cols) * 4);
    if (!got || !want || record_payload(&ctx, &info, got, n)) {
        free(got);
        free(want);
        goto done;
    }
    if (a.dtype == LMR_DT_F16) {
        uint16_t *h = malloc(a.data_bytes);
        memcpy(h, a.data, a.data_bytes);
        lmr_f16_to_f32(h, want, (size_t)(a.rows * a.cols));
        free(h);
    } else {
        memcpy(want, a.data, a.data_bytes);
    }
    int64_t t = rows ? n_rows : a.rows;
    ok = info.kind == LMR_KIND_FEATURES && info.dtype == LMR_DT_F32 && info.dims[0] == 1 &&
         info.dims[1] == (uint32_t)t && info.dims[2] == (uint32_t)a.cols;
    for (int64_t r = 0; ok && r < t; r++)
        ok = memcmp(got + r * a.cols, want + (rows ? rows[r] : r) * a.cols, (size_t)a.cols * 4) == 0;
    if (!ok)
        fprintf(stderr, "record %llu (%s) differs from %s\n", (unsigned long long)i, id, path);
    free(got);
    free(want);
done:
    npy_free(&a);
    record_ctx_free(&ctx);
    buf_free(&scratch);
    return ok;
}

int main(void)
{
    const char *py = getenv("LMR_PYTHON"), *src = getenv("LMR_SRC"), *bin = getenv("LMR_BIN");
    const char *tmp = getenv("TMPDIR");
    if (!py || !*py || !src) {
        printf("LMR_PYTHON / LMR_SRC not set: skipped\n");
        return 77;
    }
    snprintf(dir, sizeof dir, "%s/lmr_videolt_XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir))
        return 1;
    char cmd[4096], path[512];
    snprintf(cmd, sizeof cmd, "'%s' '%s/tests/videolt_fixtures.py' '%s' %d", py, src, dir, N_VIDEOS);
    if (system(cmd) != 0) {
        fprintf(stderr, "%s failed\n", cmd);
        return 1;
    }
    snprintf(path, sizeof path, "%s/expected.json", dir);
    json_error_t je;
    json_t *exp = json_load_file(path, 0, &je);
    if (!exp) {
        fprintf(stderr, "%s: %s\n", path, je.text);
        return 1;
    }
    json_t *hist = json_object_get(exp, "hist"), *labels = json_object_get(exp, "labels");
    int n_classes = (int)json_integer_value(json_object_get(exp, "C"));

    TEST(1, "import: written, failed clips with reasons, bytes read, one note for the conversions");
    char shard[512];
    snprintf(shard, sizeof shard, "%s/a.lmdb", dir);
    VideoltStats st;
    Warn w;
    memset(&w, 0, sizeof w);
    int n_bad = (int)json_integer_value(json_object_get(exp, "n_bad"));
    int n_bad_lines = (int)json_integer_value(json_object_get(exp, "n_bad_lines"));
    CHECK(n_bad == 11 && n_bad_lines == 1);
    CHECK_RC(run_import(shard, 0, &st, &w), 0);
    CHECK(st.listed == (uint64_t)(N_VIDEOS + n_bad) && st.bad_lines == (uint64_t)n_bad_lines);
    CHECK(st.written == N_VIDEOS && st.present == 0 && st.failed == (uint64_t)(n_bad + n_bad_lines));
    CHECK(w.n == n_bad + n_bad_lines);
    CHECK(failure_of(&w, "bad_0") && strstr(w.all, "feats/bad_0.npy|bad_0|") != NULL);
    CHECK(strstr(w.all, "//") == NULL);
    const char *f = failure_of(&w, "bad_8"); /* NaN at row 3, column 5 */
    CHECK(f && strstr(f, "1 of 320 values are NaN or Inf (first at row 3, column 5)") != NULL);
    f = failure_of(&w, "bad_9"); /* -Inf in an f16 file */
    CHECK(f && strstr(f, "1 of 320 values are NaN or Inf (first at row 9, column 31)") != NULL);
    f = failure_of(&w, "bad_10");
    CHECK(f && strstr(f, "D = 16, the shard's records have 32") != NULL);
    CHECK(strstr(w.all, "train.lst:41|") != NULL && strstr(w.all, "class 12 out of range [0, 12)") != NULL);
    CHECK(st.converted == (uint64_t)json_integer_value(json_object_get(exp, "n_f16")));
    CHECK(w.n_notes == 1 && strstr(w.note, "6 .npy files were converted from f16 to f32") != NULL);
    CHECK(st.bytes_read == (uint64_t)(json_integer_value(json_object_get(exp, "bytes")) +
                                      json_integer_value(json_object_get(exp, "bytes_bad_read"))));
    CHECK(st.seconds > 0);

    TEST(2, "records read back equal the .npy files, labels as listed");
    ShardSet *s;
    char err[LMR_ERRLEN];
    const char *paths[1] = {shard};
    CHECK_RC(shardset_open(&s, paths, 1, err), 0);
    CHECK(shardset_count(s) == N_VIDEOS);
    const ShardMeta *m = shardset_meta(s);
    CHECK(m->n_classes == n_classes && m->multi_label);
    CHECK(strcmp(m->dataset, "videolt") == 0 && strcmp(m->split, "train") == 0);
    CHECK(strcmp(m->backbone, "videolt-npy") == 0);
    CHECK(m->n_class_names == n_classes && m->class_names && strcmp(m->class_names[3], "Class name 3") == 0);
    for (int c = 0; c < n_classes; c++)
        CHECK(m->class_counts && m->class_counts[c] == json_integer_value(json_array_get(hist, (size_t)c)));
    const char *key;
    json_t *lab;
    int n_checked = 0;
    json_object_foreach(labels, key, lab) {
        int64_t i = shardset_find(s, key);
        const int32_t *got;
        CHECK(i >= 0);
        if (i < 0)
            continue;
        int n = shardset_labels(s, (uint64_t)i, &got);
        int ok = n == (int)json_array_size(lab);
        for (int k = 0; ok && k < n; k++)
            ok = got[k] == json_integer_value(json_array_get(lab, (size_t)k));
        CHECK(ok);
        if (n_checked++ % 7 == 0 || strcmp(key, "v_00007") == 0) /* v_00007 is an f16 file */
            CHECK(same_as_npy(s, (uint64_t)i, NULL, 0));
    }
    CHECK(n_checked == N_VIDEOS);
    shardset_close(&s);

    TEST(3, "resume: every video already present");
    memset(&w, 0, sizeof w);
    CHECK_RC(run_import(shard, 0, &st, &w), 0);
    CHECK(st.written == 0 && st.present == N_VIDEOS && st.failed == (uint64_t)(n_bad + n_bad_lines));

    TEST(4, "--max-frames keeps evenly spaced rows");
    char shard_b[512];
    snprintf(shard_b, sizeof shard_b, "%s/b.lmdb", dir);
    CHECK_RC(run_import(shard_b, 4, &st, &w), 0);
    paths[0] = shard_b;
    CHECK_RC(shardset_open(&s, paths, 1, err), 0);
    int64_t i40 = shardset_find(s, "v_00000"), i3 = shardset_find(s, "v_00001");
    CHECK(i40 >= 0 && i3 >= 0);
    if (i40 >= 0 && i3 >= 0) {
        CHECK(same_as_npy(s, (uint64_t)i40, (int64_t[]){5, 15, 25, 35}, 4)); /* T = 40 -> 4 */
        CHECK(same_as_npy(s, (uint64_t)i3, NULL, 0));                         /* T = 3 stays */
    }
    shardset_close(&s);

    TEST(5, "HDF5 shard: rows of varying T, same histogram and bytes");
    char shard_h[512];
    snprintf(shard_h, sizeof shard_h, "%s/a.h5", dir);
    CHECK_RC(run_import_as(shard_h, SHARD_HDF5, 0, &st, &w), 0);
    CHECK(st.written == N_VIDEOS && st.failed == (uint64_t)(n_bad + n_bad_lines));
    paths[0] = shard_h;
    CHECK_RC(shardset_open(&s, paths, 1, err), 0);
    if (s) {
        m = shardset_meta(s);
        CHECK(shardset_count(s) == N_VIDEOS && m->n_classes == n_classes && m->multi_label);
        for (int c = 0; c < n_classes; c++)
            CHECK(m->class_counts && m->class_counts[c] == json_integer_value(json_array_get(hist, (size_t)c)));
        for (const char *id = "v_00000"; id; id = strcmp(id, "v_00000") == 0 ? "v_00007" : NULL) {
            int64_t i = shardset_find(s, id);
            CHECK(i >= 0 && same_as_npy(s, (uint64_t)i, NULL, 0));
        }
        shardset_close(&s);
    }

    TEST(6, "lmr-pack --verify and --info --json");
    char pack[512];
    snprintf(pack, sizeof pack, "%s/lmr-pack", bin ? bin : ".");
    if (access(pack, X_OK) != 0) {
        printf("%s not built: skipping the command-line part\n", pack);
        json_decref(exp);
        return check_failures ? 1 : 77;
    }
    snprintf(cmd, sizeof cmd, "'%s' --verify '%s' >/dev/null 2>&1", pack, shard);
    CHECK(system(cmd) == 0);
    snprintf(cmd, sizeof cmd, "'%s' --verify '%s' >/dev/null 2>&1", pack, shard_h);
    CHECK(system(cmd) == 0);
    snprintf(cmd, sizeof cmd, "'%s' --info --json '%s' > '%s/info.json'", pack, shard, dir);
    CHECK(system(cmd) == 0);
    snprintf(path, sizeof path, "%s/info.json", dir);
    json_t *info = json_load_file(path, 0, &je);
    CHECK(info != NULL);
    if (info) {
        CHECK(json_integer_value(json_object_get(info, "n_records")) == N_VIDEOS);
        CHECK(json_integer_value(json_object_get(info, "n_classes")) == n_classes);
        CHECK(json_is_true(json_object_get(info, "multi_label")));
        CHECK(json_equal(json_object_get(info, "class_counts"), hist));
        json_decref(info);
    }
    /* the command line: same histogram and class names when the failures are allowed; without
     * --max-failures the same run exits 1 naming the count and the list; --strict stops at the first */
    snprintf(cmd, sizeof cmd,
             "'%s' --from-videolt '%s/feats' --labels '%s/train.lst' --counts '%s/count-labels-train.lst' "
             "--max-failures 12 -o '%s/c.lmdb' --quiet 2>/dev/null && '%s' --info --json '%s/c.lmdb' > '%s/info_c.json'",
             pack, dir, dir, dir, dir, pack, dir, dir);
    CHECK(system(cmd) == 0);
    snprintf(path, sizeof path, "%s/info_c.json", dir);
    info = json_load_file(path, 0, &je);
    CHECK(info && json_equal(json_object_get(info, "class_counts"), hist));
    CHECK(info && json_array_size(json_object_get(info, "class_names")) == (size_t)n_classes &&
          strcmp(json_string_value(json_array_get(json_object_get(info, "class_names"), 0)), "Class name 0") == 0);
    json_decref(info);
    snprintf(cmd, sizeof cmd,
             "'%s' --from-videolt '%s/feats' --labels '%s/train.lst' --counts '%s/count-labels-train.lst' "
             "--failures '%s/f.tsv' -o '%s/e.lmdb' 2>'%s/e.err'",
             pack, dir, dir, dir, dir, dir, dir);
    int src_rc = system(cmd);
    CHECK(WIFEXITED(src_rc) && WEXITSTATUS(src_rc) == 1);
    snprintf(cmd, sizeof cmd, "tail -n 1 '%s/e.err' | grep -q '12 of 312 clips failed, more than --max-failures 0 allows; "
             "the list is in %s/f.tsv' && test $(wc -l < '%s/f.tsv') -eq 13 && grep -q '^bad_8	.*NaN' '%s/f.tsv'",
             dir, dir, dir, dir);
    CHECK(system(cmd) == 0);
    snprintf(cmd, sizeof cmd,
             "'%s' --from-videolt '%s/feats' --labels '%s/train.lst' --strict -o '%s/d.lmdb' --quiet 2>/dev/null",
             pack, dir, dir, dir);
    src_rc = system(cmd);
    CHECK(WIFEXITED(src_rc) && WEXITSTATUS(src_rc) == 1);

    json_decref(exp);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    CHECK_DONE();
}
