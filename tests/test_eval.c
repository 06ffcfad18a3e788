/* lmr-eval end to end on a generated shard and checkpoint: every clip's prediction and the
 * metrics are recomputed here in double precision (LayerNorm, linear head, softmax per view,
 * summed); then the bad inputs: dims or classes that do not match, an empty shard, a label out
 * of range, --device cuda without CUDA, bad usage. */
#include <csv.h>
#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend.h"
#include "dataset.h"
#include "model.h"
#include "trainer.h"
#include "check.h"
#include "record.h"
#include "safetensors.h"
#include "shard.h"

enum { D = 6, C = 4, V = 2, N = 41 };
static const int64_t counts[C] = {100, 30, 10, 5};

static char dir[] = "/tmp/lmr-test-eval-XXXXXX";
static const char *bin;

static uint64_t lcg(uint64_t *x)
{
    *x = *x * 6364136223846793005ULL + 1442695040888963407ULL;
    return *x >> 33;
}

static double unif(uint64_t *x) { return (double)lcg(x) / 2147483648.0; }

/* A checkpoint with one extra metadata key (key NULL: none). */
static void write_ckpt_meta(const char *path, const float *w2, const float *b2, int d, int n_classes,
                            const int64_t *cnt, const char *key, const char *value)
{
    float ln_w[16], ln_b[16];
    for (int i = 0; i < d; i++)
        ln_w[i] = 1.0f, ln_b[i] = 0.0f;
    StWriteTensor t[4] = {
        {"ln.weight", ST_F32, 1, {d}, ln_w},
        {"ln.bias", ST_F32, 1, {d}, ln_b},
        {"head.weight", ST_F32, 2, {n_classes, d}, w2},
        {"head.bias", ST_F32, 1, {n_classes}, b2},
    };
    char dims[16], classes[16], cc[128] = "[";
    snprintf(dims, sizeof dims, "%d", d);
    snprintf(classes, sizeof classes, "%d", n_classes);
    for (int c = 0; c < n_classes; c++)
        snprintf(cc + strlen(cc), sizeof cc - strlen(cc), "%s%lld", c ? "," : "", (long long)cnt[c % C]);
    strcat(cc, "]");
    const char *k[] = {"stage", "dims", "hidden", "classes", "class_counts", "loss", key};
    const char *v[] = {"lmr", dims, "0", classes, cc, "softmax", value};
    char err[LMR_ERRLEN];
    CHECK_RC(st_write(path, t, 4, k, v, key ? 7 : 6, err), 0);
}

static void write_ckpt_counts(const char *path, const float *w2, const float *b2, int d, int n_classes,
                              const int64_t *cnt)
{
    write_ckpt_meta(path, w2, b2, d, n_classes, cnt, NULL, NULL);
}

static void write_ckpt(const char *path, const float *w2, const float *b2, int d, int n_classes)
{
    write_ckpt_counts(path, w2, b2, d, n_classes, counts);
}

/* Record for one clip: T varies with i; labels n_labels (0 = unlabelled); id NULL: clipNNN. */
static void put_clip(ShardWriter *w, RecordCtx *rc, int i, const char *given_id, const float *x, int T,
                     const int32_t *labels, int n_labels)
{
    uint16_t h[V * 8 * D];
    lmr_f32_to_f16(x, h, (size_t)V * T * D);
    char id[64];
    snprintf(id, sizeof id, "clip%03d", i);
    if (given_id)
        snprintf(id, sizeof id, "%s", given_id);
    RecordInfo info = {.kind = LMR_KIND_FEATURES, .dtype = LMR_DT_F16, .ndim = 4,
                       .dims = {V, (uint32_t)T, D, 1}, .n_labels = (uint16_t)n_labels, .id = id,
                       .id_len = (uint16_t)strlen(id)};
    memcpy(info.labels, labels, (size_t)n_labels * sizeof *labels);
    LmrBuf b;
    buf_init(&b);
    CHECK_RC(record_encode(rc, &info, h, &b), 0);
    CHECK_RC(shardwriter_put(w, b.data, b.len), 0);
    buf_free(&b);
}

/* Reference score of one clip, in double: LN (eps 1e-6, gain 1, bias 0) of the mean over T of
 * the f16-rounded features, logits W LN + b, softmax per view, summed. */
static int reference_scores(const float *x, int T, const float *w2, const float *b2, double *s)
{
    for (int c = 0; c < C; c++)
        s[c] = 0;
    for (int v = 0; v < V; v++) {
        double m[D] = {0}, mu = 0, var = 0, z[C], zmax = -1e300, sum = 0;
        for (int t = 0; t < T; t++)
            for (int d = 0; d < D; d++) {
                uint16_t h;
                float f;
                lmr_f32_to_f16(&x[((size_t)v * T + t) * D + d], &h, 1);
                lmr_f16_to_f32(&h, &f, 1);
                m[d] += f / T;
            }
        for (int d = 0; d < D; d++)
            mu += m[d] / D;
        for (int d = 0; d < D; d++)
            var += (m[d] - mu) * (m[d] - mu) / D;
        for (int c = 0; c < C; c++) {
            z[c] = b2[c];
            for (int d = 0; d < D; d++)
                z[c] += w2[c * D + d] * (m[d] - mu) / sqrt(var + 1e-6);
            zmax = z[c] > zmax ? z[c] : zmax;
        }
        for (int c = 0; c < C; c++)
            sum += exp(z[c] - zmax);
        for (int c = 0; c < C; c++)
            s[c] += exp(z[c] - zmax) / sum;
    }
    int best = 0;
    for (int c = 1; c < C; c++)
        if (s[c] > s[best])
            best = c;
    return best;
}

static int reference_top1(const float *x, int T, const float *w2, const float *b2)
{
    double s[C];
    return reference_scores(x, T, w2, b2, s);
}

static int run(const char *args, const char *want_in_stderr)
{
    char cmd[4096], errf[512];
    snprintf(errf, sizeof errf, "%s/stderr.txt", dir);
    snprintf(cmd, sizeof cmd, "'%s/lmr-eval' %s > '%s/stdout.txt' 2> '%s'", bin, args, dir, errf);
    int st = system(cmd);
    int code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    if (want_in_stderr) {
        char buf[4096] = "";
        FILE *f = fopen(errf, "r");
        size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
        buf[n] = '\0';
        if (f)
            fclose(f);
        if (!strstr(buf, want_in_stderr)) {
            fprintf(stderr, "stderr of `%s` lacks '%s': %s\n", args, want_in_stderr, buf);
            check_failures++;
        }
    }
    return code;
}

static double jnum(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    if (!json_is_number(v)) {
        fprintf(stderr, "json: no number '%s'\n", k);
        check_failures++;
        return -99;
    }
    return json_number_value(v);
}

/* What some shards carry beyond clips: ids, class names, provenance. */
typedef struct {
    const char *const *ids;   /* [n_clips] clip ids; NULL: clipNNN */
    const char *const *names; /* [C] class names; NULL: none */
    const char *backbone;     /* NULL: pool */
    const char *weights;      /* weights checksum; NULL: none */
} ShardExtra;

// --- files ---------------------------------------------------------------------------------

/* Whole file (NUL-terminated; *n bytes), or NULL. */
static char *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)(len > 0 ? len : 0) + 1);
    size_t got = b ? fread(b, 1, (size_t)len, f) : 0;
    fclose(f);
    if (b)
        b[got] = '\0';
    if (n)
        *n = got;
    return b;
}

static int file_has(const char *path, const char *needle)
{
    size_t n;
    char *b = slurp(path, &n);
    int has = b && memmem(b, n, needle, strlen(needle)) != NULL;
    free(b);
    return has;
}

static int out_has(const char *name, const char *needle)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    int has = file_has(path, needle);
    if (!has)
        fprintf(stderr, "%s lacks '%s'\n", name, needle);
    return has;
}

/* A CSV file as rows of fields, read with libcsv (the quoting rules of RFC 4180). */
enum { CSV_ROWS = 64, CSV_FIELDS = 8, CSV_LEN = 96 };
typedef struct {
    char cell[CSV_ROWS][CSV_FIELDS][CSV_LEN];
    int n_fields[CSV_ROWS];
    int n_rows, field;
} Csv;

static void csv_cb_field(void *s, size_t len, void *user)
{
    Csv *c = user;
    if (c->n_rows < CSV_ROWS && c->field < CSV_FIELDS)
        snprintf(c->cell[c->n_rows][c->field], CSV_LEN, "%.*s", (int)len, s ? (const char *)s : "");
    c->field++;
}

static void csv_cb_row(int ch, void *user)
{
    (void)ch;
    Csv *c = user;
    if (c->n_rows < CSV_ROWS)
        c->n_fields[c->n_rows] = c->field;
    c->n_rows++;
    c->field = 0;
}

static int csv_load(const char *path, Csv *c)
{
    memset(c, 0, sizeof *c);
    size_t n;
    char *b = slurp(path, &n);
    struct csv_parser p;
    if (!b || csv_init(&p, CSV_STRICT) != 0) {
        free(b);
        fprintf(stderr, "%s: cannot read\n", path);
        return -1;
    }
    int ok = csv_parse(&p, b, n, csv_cb_field, csv_cb_row, c) == n && csv_fini(&p, csv_cb_field, csv_cb_row, c) == 0;
    csv_free(&p);
    free(b);
    if (!ok)
        fprintf(stderr, "%s: not valid CSV\n", path);
    return ok ? c->n_rows : -1;
}

/* multi: clip i also carries label (i + 1) % C when i is even. */
static void make_shard_x(const char *path, int n_classes, int n_clips, int bad_label, const float *xs,
                         const int *Ts, const int32_t *labels, int multi, const ShardExtra *x)
{
    ShardWriter *w = NULL;
    ShardWriterOpts o = {.format = SHARD_LMDB};
    char err[LMR_ERRLEN];
    CHECK_RC(shardwriter_open(&w, path, &o, err), 0);
    RecordCtx rc;
    CHECK_RC(record_ctx_init(&rc, 3), 0);
    for (int i = 0; i < n_clips && w; i++) {
        int32_t l[2] = {bad_label && i == 3 ? C : labels[i], (labels[i] + 1) % C};
        int n_l = l[0] < 0 ? 0 : multi && i % 2 == 0 ? 2 : 1;
        put_clip(w, &rc, i, x && x->ids ? x->ids[i] : NULL, xs + (size_t)i * V * 8 * D, Ts[i], l, n_l);
    }
    ShardMeta m;
    shardmeta_init(&m);
    m.n_classes = n_classes;
    snprintf(m.dataset, sizeof m.dataset, "test");
    snprintf(m.backbone, sizeof m.backbone, "%s", x && x->backbone ? x->backbone : "pool");
    snprintf(m.weights_checksum, sizeof m.weights_checksum, "%s", x && x->weights ? x->weights : "");
    if (x && x->names)
        CHECK_RC(shardmeta_set_class_names(&m, x->names, n_classes), 0);
    if (w)
        CHECK_RC(shardwriter_set_meta(w, &m), 0);
    CHECK_RC(shardwriter_close(&w), 0);
    shardmeta_free(&m);
    record_ctx_free(&rc);
}

static void make_shard_ml(const char *path, int n_classes, int n_clips, int bad_label, const float *xs,
                          const int *Ts, const int32_t *labels, int multi)
{
    make_shard_x(path, n_classes, n_clips, bad_label, xs, Ts, labels, multi, NULL);
}

static void make_shard(const char *path, int n_classes, int n_clips, int bad_label, const float *xs,
                       const int *Ts, const int32_t *labels)
{
    make_shard_ml(path, n_classes, n_clips, bad_label, xs, Ts, labels, 0);
}

/* Average precision as the mean, over the positives, of the precision at each positive's rank
 * (no ties in these scores): an independent formula from the threshold sum lmr-eval uses. */
static double reference_ap(const double *score, const int *pos, int n)
{
    double sum = 0;
    int n_pos = 0;
    for (int i = 0; i < n; i++) {
        if (!pos[i])
            continue;
        int above = 0, pos_above = 0;
        for (int j = 0; j < n; j++)
            if (score[j] >= score[i])
                above++, pos_above += pos[j];
        sum += (double)pos_above / above;
        n_pos++;
    }
    return n_pos ? sum / n_pos : -1;
}

static void test_multilabel(const char *p_shard_ml, const float *xs, const int *Ts, const int32_t *labels,
                            const float *w2, const float *b2)
{
    TEST(6, "multi-label data with VideoLT groups: accuracy per group, mAP per group");
    char p_ckpt[256], buf[2048];
    snprintf(p_ckpt, sizeof p_ckpt, "%s/vlt.safetensors", dir);
    static const int64_t vc[C] = {600, 200, 50, 10}; // head, medium, tail, tail (and few)
    write_ckpt_counts(p_ckpt, w2, b2, D, C, vc);
    snprintf(buf, sizeof buf, "--model '%s' --data '%s' --groups videolt --json '%s/vlt.json' --quiet",
             p_ckpt, p_shard_ml, dir);
    CHECK(run(buf, NULL) == 0);
    CHECK(out_has("stdout.txt", "few (<= 20) is reported within tail, not taken out of it"));
    static double sc[N][C];
    int n_c[C] = {0}, correct[C] = {0}, hits = 0, n = 0, differs = 0;
    for (int i = 0; i < N; i++) {
        int top = reference_scores(xs + (size_t)i * V * 8 * D, Ts[i], w2, b2, sc[i]);
        if (labels[i] < 0)
            continue;
        int l2 = (labels[i] + 1) % C, multi = i % 2 == 0;
        int hit = top == labels[i] || (multi && top == l2);
        // Per class: a clip with k labels, label c is correct when c ranks among its k best.
        int k = multi ? 2 : 1, lab[2] = {labels[i], l2};
        for (int q = 0; q < k; q++) {
            int c = lab[q], rank = 0;
            for (int j = 0; j < C; j++)
                rank += sc[i][j] > sc[i][c];
            n_c[c]++, correct[c] += rank < k;
            differs += (rank < k) != hit; // where "top-1 is any label" would disagree
        }
        hits += hit, n++;
    }
    printf("  %d labels scored otherwise than by \"the top-1 is one of the labels\"\n", differs);
    CHECK(differs > 0); // the data tell the two definitions apart
    double ap[C];
    for (int c = 0; c < C; c++) {
        double s[N];
        int pos[N], k = 0;
        for (int i = 0; i < N; i++) {
            if (labels[i] < 0)
                continue;
            s[k] = sc[i][c];
            pos[k++] = labels[i] == c || (i % 2 == 0 && (labels[i] + 1) % C == c);
        }
        ap[c] = reference_ap(s, pos, k);
    }
    snprintf(buf, sizeof buf, "%s/vlt.json", dir);
    json_t *j = json_load_file(buf, 0, NULL);
    CHECK(j != NULL);
    if (!j)
        return;
    double acc[C];
    for (int c = 0; c < C; c++)
        acc[c] = (double)correct[c] / n_c[c];
    CHECK_CLOSE(jnum(j, "top1"), (double)hits / n, 1e-9, 0);
    CHECK_CLOSE(jnum(j, "head_acc"), acc[0], 1e-9, 0);
    CHECK_CLOSE(jnum(j, "medium_acc"), acc[1], 1e-9, 0);
    CHECK_CLOSE(jnum(j, "tail_acc"), (acc[2] + acc[3]) / 2, 1e-9, 0);
    CHECK_CLOSE(jnum(j, "few_acc"), acc[3], 1e-9, 0); // few: the tail class with <= 20 clips
    CHECK_CLOSE(jnum(j, "map"), (ap[0] + ap[1] + ap[2] + ap[3]) / 4, 1e-6, 0);
    CHECK_CLOSE(jnum(j, "head_map"), ap[0], 1e-6, 0);
    CHECK_CLOSE(jnum(j, "medium_map"), ap[1], 1e-6, 0);
    CHECK_CLOSE(jnum(j, "tail_map"), (ap[2] + ap[3]) / 2, 1e-6, 0);
    CHECK_CLOSE(jnum(j, "few_map"), ap[3], 1e-6, 0);
    printf("  mAP %.4f, top-1 %.4f\n", jnum(j, "map"), jnum(j, "top1"));
    json_decref(j);

    // lmr-train's validation counts per-class accuracy with the same function: the same numbers
    // on the same clips (its datasets hold labelled clips only).
    char p_val[256], err[LMR_ERRLEN] = "";
    snprintf(p_val, sizeof p_val, "%s/ml-labelled.lmdb", dir);
    make_shard_ml(p_val, C, N - 1, 0, xs, Ts, labels, 1);
    Model m;
    Dataset d;
    ValMetrics vm = {0};
    const char *paths[1] = {p_val};
    CHECK_RC(model_load(&m, p_ckpt, err), 0);
    CHECK_RC(dataset_open(&d, paths, 1, C, err), 0);
    CHECK_RC(train_validate(&m, &d, vc, &vm, err), 0);
    CHECK_CLOSE(vm.avg_class_acc, (acc[0] + acc[1] + acc[2] + acc[3]) / 4, 1e-9, 0);
    CHECK_CLOSE(vm.top1, (double)hits / n, 1e-9, 0);
    printf("  lmr-train validation: avg_class_acc %.4f\n", vm.avg_class_acc);
    dataset_close(&d);
    model_free(&m);
}

/* The shard and checkpoint of test 1, for the tests below. */
typedef struct {
    const char *ckpt, *shard;
    const float *xs, *w2, *b2;
    const int *Ts;
    const int32_t *labels;
} Fixture;

static void test_names(const Fixture *fx)
{
    TEST(7, "class names in the per-class, confusion and predictions CSVs; ids quoted; every --compare");
    static const char *const names[C] = {"take", "put, down", "say \"hi\"", "open"};
    static const char *const ids[5] = {"a,b", "q\"x", "cr\rx", "lf\ny", "plain"};
    char p_shard[256], p_other[256], buf[2048], path[512];
    snprintf(p_shard, sizeof p_shard, "%s/named.lmdb", dir);
    snprintf(p_other, sizeof p_other, "%s/other.safetensors", dir);
    ShardExtra x = {.ids = ids, .names = names};
    make_shard_x(p_shard, C, 5, 0, fx->xs, fx->Ts, fx->labels, 0, &x);
    write_ckpt(p_other, fx->w2, fx->b2, D, C);
    snprintf(buf, sizeof buf, "--model '%s' --compare '%s' --data '%s' --per-class '%s/n.csv' --confusion "
             "'%s/nc.csv' --predictions '%s/np.csv' --quiet", fx->ckpt, p_other, p_shard, dir, dir, dir);
    CHECK(run(buf, NULL) == 0);
    static Csv c;
    const char *want_head[] = {"class", "name", "train_count", "group", "n_eval", "correct", "accuracy"};
    snprintf(path, sizeof path, "%s/n.csv", dir);
    CHECK(csv_load(path, &c) == C + 1);
    CHECK(c.n_fields[0] == 7);
    for (int k = 0; k < 7; k++)
        CHECK(strcmp(c.cell[0][k], want_head[k]) == 0);
    for (int k = 0; k < C; k++)
        CHECK(strcmp(c.cell[k + 1][1], names[k]) == 0);
    snprintf(path, sizeof path, "%s/n.other.csv", dir); // the --compare checkpoint's own file
    CHECK(csv_load(path, &c) == C + 1 && strcmp(c.cell[2][1], "put, down") == 0);
    snprintf(path, sizeof path, "%s/nc.other.csv", dir);
    CHECK(csv_load(path, &c) > 1 && strcmp(c.cell[0][4], "pred_name") == 0);
    snprintf(path, sizeof path, "%s/nc.csv", dir);
    int rows = csv_load(path, &c);
    CHECK(rows > 1 && c.n_fields[0] == 5);
    for (int r = 1; r < rows && r < CSV_ROWS; r++) {
        int t = atoi(c.cell[r][0]), p = atoi(c.cell[r][1]);
        CHECK(t >= 0 && t < C && p >= 0 && p < C && strcmp(c.cell[r][3], names[t]) == 0 &&
              strcmp(c.cell[r][4], names[p]) == 0);
    }
    snprintf(path, sizeof path, "%s/np.csv", dir);
    CHECK(csv_load(path, &c) == 6);
    CHECK(c.n_fields[0] == 7 && strcmp(c.cell[0][5], "label_names") == 0 && strcmp(c.cell[0][6], "pred_name") == 0);
    int seen[5] = {0};
    for (int r = 1; r < 6; r++) {
        CHECK(c.n_fields[r] == 7);
        for (int i = 0; i < 5; i++)
            seen[i] += strcmp(c.cell[r][0], ids[i]) == 0; // the id back exactly, CR and LF included
        int l = atoi(c.cell[r][1]), p = atoi(c.cell[r][2]);
        CHECK(l >= 0 && l < C && strcmp(c.cell[r][5], names[l]) == 0);
        CHECK(p >= 0 && p < C && strcmp(c.cell[r][6], names[p]) == 0);
    }
    for (int i = 0; i < 5; i++)
        CHECK(seen[i] == 1);

    // A shard without names: the checkpoint's own (metadata class_names), else empty.
    snprintf(p_other, sizeof p_other, "%s/named.safetensors", dir);
    write_ckpt_meta(p_other, fx->w2, fx->b2, D, C, counts, "class_names", "[\"n0\",\"n1\",\"n2\",\"n3\"]");
    snprintf(buf, sizeof buf, "--model '%s' --data '%s' --per-class '%s/nk.csv' --quiet", p_other, fx->shard, dir);
    CHECK(run(buf, NULL) == 0);
    snprintf(path, sizeof path, "%s/nk.csv", dir);
    CHECK(csv_load(path, &c) == C + 1 && strcmp(c.cell[1][1], "n0") == 0 && strcmp(c.cell[4][1], "n3") == 0);
    write_ckpt_meta(p_other, fx->w2, fx->b2, D, C, counts, "class_names", "{\"not\":\"a list\"}");
    CHECK(run(buf, "class_names") == 1);
}

static void test_outputs(const Fixture *fx)
{
    TEST(8, "no output overwrites an input (by identity) or another output: exit 2, inputs intact");
    size_t n_ck, n_sh;
    char *ck0 = slurp(fx->ckpt, &n_ck), *sh0 = slurp(fx->shard, &n_sh);
    char buf[2048], path[512], link1[512];
    const char *flags[] = {"--json", "--per-class", "--confusion", "--predictions"};
    for (int i = 0; i < 4; i++) {
        snprintf(buf, sizeof buf, "--model '%s' --data '%s' %s '%s'", fx->ckpt, fx->shard, flags[i], fx->ckpt);
        CHECK(run(buf, "is also an input") == 2);
        snprintf(buf, sizeof buf, "--model '%s' --data '%s' %s '%s/./val.lmdb'", fx->ckpt, fx->shard, flags[i], dir);
        CHECK(run(buf, "is also an input") == 2);
    }
    snprintf(link1, sizeof link1, "%s/val-link.png", dir); // a hard link: another name, the same file
    CHECK(link(fx->shard, link1) == 0);
    snprintf(buf, sizeof buf, "--model '%s' --data '%s' --plot '%s'", fx->ckpt, fx->shard, link1);
    CHECK(run(buf, "is also an input") == 2);
    snprintf(path, sizeof path, "%s/j.tmp", dir); // the staging file of --json j
    CHECK(link(fx->shard, path) == 0);
    snprintf(buf, sizeof buf, "--model '%s' --data '%s' --json '%s/j'", fx->ckpt, fx->shard, dir);
    CHECK(run(buf, "staging file") == 2);
    unlink(path);
    snprintf(path, sizeof path, "%s/pcx.m.csv", dir); // --per-class pcx.csv of --compare m.safetensors
    CHECK(link(fx->shard, path) == 0);
    snprintf(buf, sizeof buf, "--model '%s' --compare '%s' --data '%s' --per-class '%s/pcx.csv'", fx->ckpt,
             fx->ckpt, fx->shard, dir);
    CHECK(run(buf, "pcx.m.csv is also an input") == 2);
    // usage errors: one line, the one reason first, the wording every lmr tool uses, exit 2
    CHECK(run("--x", "lmr-eval: unknown option '--x' (see --help)") == 2);
    CHECK(run("--model", "lmr-eval: option '--model' needs a value (see --help)") == 2);
    unlink(path);
    snprintf(buf, sizeof buf, "--model '%s' --data '%s' --json '%s/x' --per-class '%s/x'", fx->ckpt, fx->shard,
             dir, dir);
    CHECK(run(buf, "two outputs") == 2);
    size_t n1, n2;
    char *ck1 = slurp(fx->ckpt, &n1), *sh1 = slurp(fx->shard, &n2);
    CHECK(ck0 && ck1 && n1 == n_ck && memcmp(ck0, ck1, n1) == 0);
    CHECK(sh0 && sh1 && n2 == n_sh && memcmp(sh0, sh1, n2) == 0);
    free(ck0), free(ck1), free(sh0), free(sh1);
    unlink(link1);
}

static void test_plot_json(const Fixture *fx)
{
    TEST(9, "--plot F.png|pdf|svg writes that format, other names are refused; --json - is stdout");
    const char *ext[] = {"pdf", "svg", "PNG"}, *magic[] = {"%PDF-", "<svg", "\x89PNG"};
    char buf[2048], path[512];
    for (int i = 0; i < 3; i++) {
        snprintf(path, sizeof path, "%s/fig.%s", dir, ext[i]);
        snprintf(buf, sizeof buf, "--model '%s' --compare '%s' --data '%s' --plot '%s' --quiet", fx->ckpt,
                 fx->ckpt, fx->shard, path);
        CHECK(run(buf, NULL) == 0);
        size_t n;
        char *b = slurp(path, &n);
        CHECK(b && memmem(b, n < 400 ? n : 400, magic[i], strlen(magic[i])) != NULL);
        free(b);
        snprintf(path + strlen(path), sizeof path - strlen(path), ".tmp");
        CHECK(access(path, F_OK) != 0); // renamed into place
    }
    snprintf(buf, sizeof buf, "--model '%s' --data '%s' --plot '%s/fig.jpg'", fx->ckpt, fx->shard, dir);
    CHECK(run(buf, ".png, .pdf or .svg") == 2);
    snprintf(buf, sizeof buf, "--model '%s' --data '%s' --plot '%s/fig'", fx->ckpt, fx->shard, dir);
    CHECK(run(buf, ".png, .pdf or .svg") == 2);
    snprintf(path, sizeof path, "%s/fig.jpg", dir);
    CHECK(access(path, F_OK) != 0);

    snprintf(buf, sizeof buf, "--model '%s' --data '%s' --json -", fx->ckpt, fx->shard);
    CHECK(run(buf, "avg_class_acc") == 0); // the table on stderr
    snprintf(path, sizeof path, "%s/stdout.txt", dir);
    json_t *j = json_load_file(path, 0, NULL); // stdout is the JSON alone
    CHECK(j && json_is_number(json_object_get(j, "top1")));
    json_decref(j);
    snprintf(path, sizeof path, "%s/-", dir);
    CHECK(access(path, F_OK) != 0 && access("-", F_OK) != 0);
    snprintf(buf, sizeof buf, "--model '%s' --data '%s' --predictions -", fx->ckpt, fx->shard);
    CHECK(run(buf, "--predictions wants a file name") == 2);
}

static void test_non_finite(const Fixture *fx)
{
    TEST(10, "NaN/Inf features or scores stop the run naming the clip; NaN weights refused at load");
    static float xs[N * V * 8 * D];
    char p_shard[256], p_bad[256], buf[2048], path[512];
    snprintf(p_shard, sizeof p_shard, "%s/nan.lmdb", dir);
    const float bad[3] = {NAN, INFINITY, -INFINITY};
    const int clip[3] = {2, 7, N - 1}; // the last is unlabelled: it would still get a prediction
    const char *ids[3] = {"clip002", "clip007", "clip040"};
    snprintf(path, sizeof path, "%s/keep.csv", dir);
    for (int i = 0; i < 3; i++) {
        memcpy(xs, fx->xs, sizeof xs);
        xs[(size_t)clip[i] * V * 8 * D + 1] = bad[i];
        unlink(p_shard);
        make_shard(p_shard, C, N, 0, xs, fx->Ts, fx->labels);
        FILE *f = fopen(path, "w");
        if (f)
            fputs("kept\n", f), fclose(f);
        snprintf(buf, sizeof buf, "--model '%s' --data '%s' --predictions '%s'", fx->ckpt, p_shard, path);
        CHECK(run(buf, ids[i]) == 1);
        CHECK(out_has("stderr.txt", "not finite"));
        CHECK(file_has(path, "kept\n") && !file_has(path, "clip_id")); // the old file stays whole
        char tmp[600];
        snprintf(tmp, sizeof tmp, "%s.tmp", path);
        CHECK(access(tmp, F_OK) != 0); // and the partial one is gone
    }
    // Finite features, a huge weight: logits overflow, the scores are NaN.
    float w[C * D], b[C] = {0};
    memcpy(w, fx->w2, sizeof w);
    w[1] = 3e38f;
    snprintf(p_bad, sizeof p_bad, "%s/huge.safetensors", dir);
    write_ckpt(p_bad, w, b, D, C);
    snprintf(buf, sizeof buf, "--model '%s' --data '%s'", p_bad, fx->shard);
    CHECK(run(buf, "scores that are not finite") == 1);
    w[1] = NAN;
    snprintf(p_bad, sizeof p_bad, "%s/nanw.safetensors", dir);
    write_ckpt(p_bad, w, b, D, C);
    snprintf(buf, sizeof buf, "--model '%s' --data '%s'", p_bad, fx->shard);
    CHECK(run(buf, "tensor head.weight holds NaN or inf") == 1);
    snprintf(buf, sizeof buf, "--model '%s' --compare '%s' --data '%s'", fx->ckpt, p_bad, fx->shard);
    CHECK(run(buf, "nanw.safetensors: tensor head.weight") == 1);
}

static void test_provenance(const Fixture *fx)
{
    TEST(11, "a checkpoint trained on another backbone's features is refused, unless allowed (loudly)");
    char p_r50[256], p_shard[256], buf[2048];
    snprintf(p_r50, sizeof p_r50, "%s/r50.safetensors", dir);
    write_ckpt_meta(p_r50, fx->w2, fx->b2, D, C, counts, "provenance",
                    "{\"dataset\":\"epic\",\"split\":\"train\",\"mode\":\"train\",\"frames\":16,\"size\":224,"
                    "\"backbone\":\"resnet50\",\"weights_checksum\":\"00000000aaaaaaaa\"}");
    snprintf(buf, sizeof buf, "--model '%s' --data '%s'", p_r50, fx->shard); // pool features
    CHECK(run(buf, "trained on features of backbone resnet50") == 1);
    CHECK(out_has("stderr.txt", "--allow-other-features"));
    snprintf(buf, sizeof buf, "--model '%s' --data '%s' --allow-other-features --quiet", p_r50, fx->shard);
    CHECK(run(buf, "WARNING") == 0);
    snprintf(p_shard, sizeof p_shard, "%s/r50-other.lmdb", dir);
    ShardExtra x = {.backbone = "resnet50", .weights = "00000000bbbbbbbb"};
    make_shard_x(p_shard, C, 8, 0, fx->xs, fx->Ts, fx->labels, 0, &x);
    snprintf(buf, sizeof buf, "--model '%s' --data '%s'", p_r50, p_shard);
    CHECK(run(buf, "weights 00000000aaaaaaaa") == 1);
    snprintf(p_shard, sizeof p_shard, "%s/r50-same.lmdb", dir);
    x.weights = "00000000aaaaaaaa";
    make_shard_x(p_shard, C, 8, 0, fx->xs, fx->Ts, fx->labels, 0, &x);
    snprintf(buf, sizeof buf, "--model '%s' --data '%s'", p_r50, p_shard);
    CHECK(run(buf, NULL) == 0);
    snprintf(buf, sizeof buf, "%s/stderr.txt", dir);
    CHECK(!file_has(buf, "note")); // nothing to say when the provenance matches
    snprintf(buf, sizeof buf, "--model '%s' --data '%s'", fx->ckpt, fx->shard); // an older checkpoint
    CHECK(run(buf, "records no feature provenance") == 0);
    write_ckpt_meta(p_r50, fx->w2, fx->b2, D, C, counts, "provenance", "resnet50");
    snprintf(buf, sizeof buf, "--model '%s' --data '%s'", p_r50, fx->shard);
    CHECK(run(buf, "'provenance' is not a JSON object") == 1);

    TEST(12, "--class-groups: a class listed twice or an empty list is an error");
    snprintf(buf, sizeof buf, "%s/dup.csv", dir);
    FILE *f = fopen(buf, "w");
    if (f)
        fputs("class,group\n0,head\n1,tail\n0,tail\n", f), fclose(f);
    snprintf(buf, sizeof buf, "--model '%s' --data '%s' --class-groups '%s/dup.csv'", fx->ckpt, fx->shard, dir);
    CHECK(run(buf, "dup.csv:4: class 0 is listed twice") == 1);
    snprintf(buf, sizeof buf, "%s/empty.csv", dir);
    f = fopen(buf, "w");
    if (f)
        fclose(f);
    snprintf(buf, sizeof buf, "--model '%s' --data '%s' --class-groups '%s/empty.csv'", fx->ckpt, fx->shard, dir);
    CHECK(run(buf, "lists no class") == 1);
}

int main(void)
{
    bin = getenv("LMR_BIN");
    if (!bin) {
        printf("skipped: LMR_BIN not set\n");
        return 77;
    }
    CHECK(mkdtemp(dir) != NULL);
    char p_ckpt[256], p_shard[256], buf[2048];
    snprintf(p_ckpt, sizeof p_ckpt, "%s/m.safetensors", dir);
    snprintf(p_shard, sizeof p_shard, "%s/val.lmdb", dir);

    // Head: class c reads feature c (plus a little of feature c+1); clips are noisy class means.
    float w2[C * D] = {0}, b2[C] = {0.1f, 0, 0, -0.1f};
    for (int c = 0; c < C; c++)
        w2[c * D + c] = 3.0f, w2[c * D + c + 1] = 0.5f;
    write_ckpt(p_ckpt, w2, b2, D, C);
    static float xs[N * V * 8 * D];
    int Ts[N];
    int32_t labels[N];
    uint64_t seed = 7;
    for (int i = 0; i < N; i++) {
        labels[i] = i == N - 1 ? -1 : i % C; // the last clip is unlabelled
        Ts[i] = 1 + i % 5 + (i % 5 == 4 ? 3 : 0);
        for (int k = 0; k < V * Ts[i] * D; k++)
            xs[(size_t)i * V * 8 * D + k] = (float)(unif(&seed) * 2.2 + (labels[i] >= 0 && k % D == labels[i]));
    }
    make_shard(p_shard, C, N, 0, xs, Ts, labels);

    TEST(1, "predictions and metrics against a double-precision reference");
    snprintf(buf, sizeof buf, "--model '%s' --data '%s' --json '%s/m.json' --per-class '%s/pc.csv' "
             "--predictions '%s/pred.csv' --confusion '%s/conf.csv' --plot '%s/p.png' --threads 3",
             p_ckpt, p_shard, dir, dir, dir, dir, dir);
    CHECK(run(buf, NULL) == 0);
    CHECK(out_has("stdout.txt", "groups (head-share 0.50): few = <= 20 training clips; head = the most "
                  "frequent other classes holding <= 50% of the training clips; tail = the rest"));
    int hits = 0, correct[C] = {0}, n_c[C] = {0}, pred[N];
    for (int i = 0; i < N; i++) {
        pred[i] = reference_top1(xs + (size_t)i * V * 8 * D, Ts[i], w2, b2);
        if (labels[i] >= 0) {
            n_c[labels[i]]++;
            correct[labels[i]] += pred[i] == labels[i];
            hits += pred[i] == labels[i];
        }
    }
    double acc[C], avg = 0;
    for (int c = 0; c < C; c++)
        acc[c] = (double)correct[c] / n_c[c], avg += acc[c] / C;
    printf("  reference top-1 %d/%d\n", hits, N - 1);
    CHECK(hits > 10 && hits < N - 1); // neither trivial nor hopeless
    snprintf(buf, sizeof buf, "%s/m.json", dir);
    json_t *j = json_load_file(buf, 0, NULL);
    CHECK(j != NULL);
    if (j) {
        CHECK_CLOSE(jnum(j, "top1"), (double)hits / (N - 1), 1e-9, 0);
        CHECK_CLOSE(jnum(j, "avg_class_acc"), avg, 1e-9, 0);
        // counts {100,30,10,5}, share 0.5: 100 > 72.5 so no head; tail {0,1}; few {2,3}
        CHECK(jnum(j, "head_acc") == -1.0);
        CHECK_CLOSE(jnum(j, "tail_acc"), (acc[0] + acc[1]) / 2, 1e-9, 0);
        CHECK_CLOSE(jnum(j, "few_acc"), (acc[2] + acc[3]) / 2, 1e-9, 0);
        CHECK(jnum(j, "n_unlabelled") == 1 && jnum(j, "n_clips") == N - 1);
        CHECK(json_object_get(j, "map") == NULL); // single-label data
        json_decref(j);
    }
    snprintf(buf, sizeof buf, "%s/pred.csv", dir);
    FILE *f = fopen(buf, "r");
    int n_lines = 0, pred_ok = 0;
    char line[512];
    while (f && fgets(line, sizeof line, f)) {
        int i, p;
        if (n_lines++ == 0)
            continue;
        char *l1 = strchr(line, ','), *l2 = l1 ? strchr(l1 + 1, ',') : NULL;
        if (sscanf(line, "clip%d,", &i) == 1 && l2 && sscanf(l2 + 1, "%d", &p) == 1 && i >= 0 && i < N)
            pred_ok += p == pred[i];
    }
    if (f)
        fclose(f);
    CHECK(n_lines == N + 1); // header + every clip, the unlabelled one included
    CHECK(pred_ok == N);
    snprintf(buf, sizeof buf, "%s/pc.csv", dir);
    f = fopen(buf, "r");
    CHECK(f && fgets(line, sizeof line, f) &&
          strcmp(line, "class,name,train_count,group,n_eval,correct,accuracy\n") == 0);
    CHECK(f && fgets(line, sizeof line, f) && strncmp(line, "0,,100,tail,10,", 15) == 0); // no names
    if (f)
        fclose(f);
    snprintf(buf, sizeof buf, "%s/conf.csv", dir);
    f = fopen(buf, "r");
    int cells[C][C] = {{0}}, t, p, n, total = 0;
    CHECK(f && fgets(line, sizeof line, f) && strcmp(line, "true,pred,count,true_name,pred_name\n") == 0);
    while (f && fscanf(f, "%d,%d,%d,,\n", &t, &p, &n) == 3)
        if (t >= 0 && t < C && p >= 0 && p < C)
            cells[t][p] += n, total += n;
    if (f)
        fclose(f);
    int want[C][C] = {{0}};
    for (int i = 0; i < N; i++)
        if (labels[i] >= 0)
            want[labels[i]][pred[i]]++;
    CHECK(total == N - 1 && memcmp(cells, want, sizeof want) == 0);
    snprintf(buf, sizeof buf, "%s/p.png", dir);
    f = fopen(buf, "rb");
    unsigned char magic[8] = {0};
    CHECK(f && fread(magic, 1, 8, f) == 8 && memcmp(magic, "\x89PNG\r\n\x1a\n", 8) == 0);
    if (f)
        fclose(f);

    TEST(2, "--compare and --class-groups");
    snprintf(buf, sizeof buf, "%s/groups.csv", dir);
    f = fopen(buf, "w");
    if (f) {
        fputs("class,group\n0,head\n1,tail\n2,tail\n", f); // no few group: few = count <= 20
        fclose(f);
    }
    snprintf(buf, sizeof buf, "--model '%s' --compare '%s' --data '%s' --class-groups '%s/groups.csv' "
             "--json '%s/c.json' --quiet", p_ckpt, p_ckpt, p_shard, dir, dir);
    CHECK(run(buf, NULL) == 0);
    CHECK(out_has("stdout.txt", "few = <= 20 training clips, taken out of head/tail (the file has no few group)"));
    snprintf(buf, sizeof buf, "%s/c.json", dir);
    j = json_load_file(buf, 0, NULL);
    if (j) {
        CHECK_CLOSE(jnum(j, "head_acc"), acc[0], 1e-9, 0);
        CHECK_CLOSE(jnum(j, "tail_acc"), acc[1], 1e-9, 0); // class 2 became few
        CHECK_CLOSE(jnum(j, "few_acc"), (acc[2] + acc[3]) / 2, 1e-9, 0);
        json_t *cmp = json_array_get(json_object_get(j, "compare"), 0);
        CHECK(cmp && jnum(cmp, "top1") == jnum(j, "top1"));
        json_decref(j);
    } else {
        CHECK(!"c.json readable");
    }

    TEST(3, "bad input: dims, classes, empty shard, label out of range");
    char p_bad[256];
    snprintf(p_bad, sizeof p_bad, "%s/d5.safetensors", dir);
    float w5[C * 5] = {0}, b5[C] = {0};
    write_ckpt(p_bad, w5, b5, 5, C);
    snprintf(buf, sizeof buf, "--model '%s' --data '%s'", p_bad, p_shard);
    CHECK(run(buf, "5-dim features, the shards hold 6-dim") == 1);
    snprintf(p_bad, sizeof p_bad, "%s/c6.safetensors", dir);
    float w6[6 * D] = {0}, b6[6] = {0};
    write_ckpt(p_bad, w6, b6, D, 6);
    snprintf(buf, sizeof buf, "--model '%s' --data '%s'", p_bad, p_shard);
    CHECK(run(buf, "6 classes, but the shards have 4") == 1);
    snprintf(p_bad, sizeof p_bad, "%s/empty.lmdb", dir);
    make_shard(p_bad, C, 0, 0, xs, Ts, labels);
    snprintf(buf, sizeof buf, "--model '%s' --data '%s'", p_ckpt, p_bad);
    CHECK(run(buf, "no clips") == 1);
    snprintf(p_bad, sizeof p_bad, "%s/badlabel.lmdb", dir);
    make_shard(p_bad, 0, 8, 1, xs, Ts, labels);
    snprintf(buf, sizeof buf, "--model '%s' --data '%s'", p_ckpt, p_bad);
    CHECK(run(buf, "4 classes, but the shards have 5") == 1); // the writer counts label 4
    snprintf(buf, sizeof buf, "--model '%s' --data '%s/missing.lmdb'", p_ckpt, dir);
    CHECK(run(buf, "missing.lmdb") == 1);

    TEST(4, "--tail-classes: EPIC's tail list, the rest head, few by count");
    snprintf(buf, sizeof buf, "%s/tail.csv", dir);
    f = fopen(buf, "w");
    if (f) {
        fputs("verb\n1\n", f); // EPIC's tail-verb list layout
        fclose(f);
    }
    snprintf(buf, sizeof buf, "--model '%s' --data '%s' --tail-classes '%s/tail.csv' --json '%s/t.json' --quiet",
             p_ckpt, p_shard, dir, dir);
    CHECK(run(buf, NULL) == 0);
    snprintf(buf, sizeof buf, "%s/t.json", dir);
    j = json_load_file(buf, 0, NULL);
    if (j) {
        CHECK_CLOSE(jnum(j, "head_acc"), acc[0], 1e-9, 0);
        CHECK_CLOSE(jnum(j, "tail_acc"), acc[1], 1e-9, 0);
        CHECK_CLOSE(jnum(j, "few_acc"), (acc[2] + acc[3]) / 2, 1e-9, 0);
        json_decref(j);
    } else {
        CHECK(!"t.json readable");
    }

    TEST(5, "--device cuda without CUDA, bad usage, --help, --version");
    snprintf(buf, sizeof buf, "--model '%s' --data '%s' --device cuda --json '%s/cuda.json'", p_ckpt,
             p_shard, dir);
    if (!backend_available(BACKEND_CUDA)) {
        CHECK(run(buf, "") == 1);
    } else { // same numbers on both devices
        CHECK(run(buf, NULL) == 0);
        snprintf(buf, sizeof buf, "%s/cuda.json", dir);
        json_t *jc = json_load_file(buf, 0, NULL);
        snprintf(buf, sizeof buf, "%s/m.json", dir);
        json_t *jm = json_load_file(buf, 0, NULL);
        CHECK(jc && jm);
        if (jc && jm) {
            const char *keys[] = {"top1", "top5", "avg_class_acc", "tail_acc", "few_acc"};
            for (int k = 0; k < 5; k++)
                CHECK_CLOSE(jnum(jc, keys[k]), jnum(jm, keys[k]), 1e-12, 0);
        }
        json_decref(jc);
        json_decref(jm);
    }
    CHECK(run("--model x", "--data are required") == 2);
    CHECK(run("--model x --data y --head-share 2", "--head-share") == 2);
    CHECK(run("--bogus", NULL) == 2);
    CHECK(run("--help", NULL) == 0);
    CHECK(run("--version", NULL) == 0);

    char p_ml[256];
    snprintf(p_ml, sizeof p_ml, "%s/ml.lmdb", dir);
    make_shard_ml(p_ml, C, N, 0, xs, Ts, labels, 1);
    test_multilabel(p_ml, xs, Ts, labels, w2, b2);

    Fixture fx = {p_ckpt, p_shard, xs, w2, b2, Ts, labels};
    test_names(&fx);
    test_outputs(&fx);
    test_plot_json(&fx);
    test_non_finite(&fx);
    test_provenance(&fx);

    if (getenv("LMR_KEEP"))
        return check_failures ? 1 : 0;
    snprintf(buf, sizeof buf, "rm -rf '%s'", dir);
    if (check_failures == 0 && system(buf) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    CHECK_DONE();
}
