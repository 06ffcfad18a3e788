/* lmr-extract: dataset annotations -> manifest -> sampled, scaled clips (or backbone features)
 * as a clip-record stream, appended as clips finish so a killed run resumes where it stopped.
 * Prints one line per bad clip (and a failures TSV), a progress line and a summary. */
#include <errno.h>
#include <getopt.h>
#include <libgen.h>
#include <math.h>
#include <libavutil/log.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include "annotations.h"
#include "fileid.h"
#include "manifest.h"
#include "record.h"
#include "run.h"
#include "shard.h"

#define PROG "lmr-extract"
#define LMDB_MAX_KEY 511       /* LMDB's default key size limit: longer ids cannot be packed */
#define DEFAULT_MAX_FAILURES "0.01"

static const char usage[] =
    "usage: lmr-extract --dataset epic|ssv2|videolt|manifest --annotations F [--labels F]\n"
    "                   [--videos DIR] --out F.rec|- [options]\n"
    "       lmr-extract --list --dataset ... --annotations F [--labels F]\n"
    "\n"
    "videos:    absolute paths are used as they are; relative ones are joined to --videos DIR\n"
    "           (default: the annotation file's folder)\n"
    "\n"
    "sampling:  --frames T (16)  --views V (1)  --crops 1|3 (1)  --mode train|test (test)\n"
    "           --sampling segment|window (window for epic, else segment)  --rate R (4)\n"
    "           --seed S (0)  --size S (224: short side, then a square crop)\n"
    "features:  --backbone NAME (none; the list below)  --weights F.safetensors\n"
    "           --device cpu|cuda|cuda:f16  --dtype f32|f16 (f32: how features are stored)\n"
    "data:      --target verb|noun (epic)  --frames-dir (epic: <p>/rgb_frames/<video> JPEG folders)\n"
    "           --fps F (frame rate of JPEG frame folders; epic: 50/60 from the video id; else 30)\n"
    "run:       --shard K/N  --threads N (cores)  --decode-threads N  --failures F.tsv  --strict\n"
    "           --max-failures N|FRACTION (" DEFAULT_MAX_FAILURES ": more failed clips or unreadable annotation\n"
    "           lines than this and the run exits 1)  --pad-short (pad clips that need frames past\n"
    "           what the video decodes to with its last frame, counted, instead of failing them)\n"
    "           --quiet  --no-skip-nonref  --max-frames N (decode limit per clip beyond its span)\n"
    "           --zstd-level N (1; 0 = raw payloads)\n"
    "           --help  --version\n";

typedef struct {
    const char *dataset, *annotations, *labels, *videos, *out, *failures, *backbone, *weights,
        *device, *sampling, *mode, *target, *dtype, *max_failures;
    int frames, size, views, crops, threads, decode_threads, list, strict, quiet, frames_dir,
        shard_k, shard_n, skip_nonref, zstd_level, pad_short;
    double rate, fps, max_fail_frac; /* max_fail_frac < 0: max_fail_count applies */
    long long seed, max_frames, max_fail_count;
    char videos_buf[4096];
} Args;

/* A usage error: the one reason, on one line. @return 2 (the exit status). */
static int usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, PROG ": ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, " (see --help)\n");
    va_end(ap);
    return 2;
}

/* --max-failures: a count N (an integer) or a fraction of the clips (0.01, or 1%). */
static int parse_max_failures(const char *s, Args *a)
{
    char *end;
    errno = 0;
    if (strpbrk(s, ".eE%")) {
        double f = strtod(s, &end);
        if (end != s && *end == '%') {
            f /= 100;
            end++;
        }
        if (errno || end == s || *end || !(f >= 0 && f <= 1))
            return -1;
        a->max_fail_frac = f;
        a->max_fail_count = -1;
    } else {
        long long v = strtoll(s, &end, 10);
        if (errno || end == s || *end || v < 0)
            return -1;
        a->max_fail_frac = -1;
        a->max_fail_count = v;
    }
    a->max_failures = s;
    return 0;
}

/* Failures --max-failures allows among total clips. */
static size_t failures_allowed(const Args *a, size_t total)
{
    if (a->max_fail_frac < 0)
        return (size_t)a->max_fail_count;
    return (size_t)floor(a->max_fail_frac * (double)total + 1e-9);
}

static int parse_int(const char *s, int lo, int hi, int *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        return -1;
    *out = (int)v;
    return 0;
}

static int parse_args(int argc, char **argv, Args *a)
{
    enum { O_LIST = 256, O_VERSION, O_FRAMES_DIR, O_NOSKIP, O_DEC_THREADS, O_MAXF, O_TARGET, O_FPS, O_DEVICE, O_DTYPE, O_ZSTD,
           O_MAX_FAILURES, O_PAD_SHORT };
    static const struct option opts[] = {
        {"dataset", 1, 0, 'd'},      {"annotations", 1, 0, 'a'}, {"labels", 1, 0, 'l'},
        {"videos", 1, 0, 'v'},       {"out", 1, 0, 'o'},         {"frames", 1, 0, 'T'},
        {"size", 1, 0, 's'},         {"views", 1, 0, 'V'},       {"crops", 1, 0, 'C'},
        {"mode", 1, 0, 'm'},         {"sampling", 1, 0, 'S'},    {"rate", 1, 0, 'r'},
        {"backbone", 1, 0, 'b'},     {"weights", 1, 0, 'w'},     {"shard", 1, 0, 'k'},
        {"threads", 1, 0, 'j'},      {"seed", 1, 0, 'e'},        {"failures", 1, 0, 'f'},
        {"strict", 0, 0, 'x'},       {"quiet", 0, 0, 'q'},       {"help", 0, 0, 'h'},
        {"list", 0, 0, O_LIST},      {"version", 0, 0, O_VERSION}, {"frames-dir", 0, 0, O_FRAMES_DIR},
        {"no-skip-nonref", 0, 0, O_NOSKIP}, {"decode-threads", 1, 0, O_DEC_THREADS},
        {"max-frames", 1, 0, O_MAXF}, {"target", 1, 0, O_TARGET}, {"fps", 1, 0, O_FPS},
        {"device", 1, 0, O_DEVICE},  {"dtype", 1, 0, O_DTYPE},  {"zstd-level", 1, 0, O_ZSTD},
        {"max-failures", 1, 0, O_MAX_FAILURES}, {"pad-short", 0, 0, O_PAD_SHORT},
        {0, 0, 0, 0}};
    memset(a, 0, sizeof *a);
    a->frames = 16, a->size = 224, a->views = 1, a->crops = 1, a->rate = 4, a->skip_nonref = 1;
    a->backbone = "none", a->mode = "test", a->target = "verb", a->shard_n = 1, a->zstd_level = 1;
    parse_max_failures(DEFAULT_MAX_FAILURES, a);
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    a->threads = n > 0 ? (int)n : 1;
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
        char *end;
        switch (c) {
        case 'd': a->dataset = optarg; break;
        case 'a': a->annotations = optarg; break;
        case 'l': a->labels = optarg; break;
        case 'v': a->videos = optarg; break;
        case 'o': a->out = optarg; break;
        case 'f': a->failures = optarg; break;
        case 'b': a->backbone = optarg; break;
        case 'w': a->weights = optarg; break;
        case 'm': a->mode = optarg; break;
        case 'S': a->sampling = optarg; break;
        case O_TARGET: a->target = optarg; break;
        case O_DEVICE: a->device = optarg; break;
        case O_DTYPE:
            if (strcmp(optarg, "f32") && strcmp(optarg, "f16"))
                return usage_error("--dtype: want f32 or f16, got '%s'", optarg);
            a->dtype = optarg;
            break;
        case 'x': a->strict = 1; break;
        case O_PAD_SHORT: a->pad_short = 1; break;
        case O_MAX_FAILURES:
            if (parse_max_failures(optarg, a))
                return usage_error("--max-failures: want a count N or a fraction in [0, 1] (0.01, 1%%), got '%s'", optarg);
            break;
        case 'q': a->quiet = 1; break;
        case O_LIST: a->list = 1; break;
        case O_FRAMES_DIR: a->frames_dir = 1; break;
        case O_NOSKIP: a->skip_nonref = 0; break;
        case 'h':
            fputs(usage, stdout);
            printf("\nbackbones (NAME, feature size, input):\n");
            for (size_t i = 0; backbone_info(i); i++)
                printf("  %-11s %5d  %s\n", backbone_info(i)->name, backbone_info(i)->dim, backbone_info(i)->input);
            exit(0);
        case O_VERSION: printf("lmr-extract %s\n", LMR_VERSION); exit(0);
        case 'T': if (parse_int(optarg, 1, 4096, &a->frames)) return usage_error("--frames: want 1..4096, got '%s'", optarg); break;
        case 's': if (parse_int(optarg, 8, 4096, &a->size)) return usage_error("--size: want 8..4096, got '%s'", optarg); break;
        case 'V': if (parse_int(optarg, 1, 256, &a->views)) return usage_error("--views: want 1..256, got '%s'", optarg); break;
        case 'C': if (parse_int(optarg, 1, 3, &a->crops) || a->crops == 2) return usage_error("--crops: want 1 or 3, got '%s'", optarg); break;
        case 'j': if (parse_int(optarg, 1, 256, &a->threads)) return usage_error("--threads: want 1..256, got '%s'", optarg); break;
        case O_ZSTD: if (parse_int(optarg, 0, 19, &a->zstd_level)) return usage_error("--zstd-level: want 0..19, got '%s'", optarg); break;
        case O_DEC_THREADS: if (parse_int(optarg, 1, 64, &a->decode_threads)) return usage_error("--decode-threads: want 1..64, got '%s'", optarg); break;
        case 'r':
            a->rate = strtod(optarg, &end);
            if (*end || end == optarg || !(a->rate > 0 && a->rate < 1000))
                return usage_error("--rate: want a positive number, got '%s'", optarg);
            break;
        case O_FPS:
            a->fps = strtod(optarg, &end);
            if (*end || end == optarg || !(a->fps > 0 && a->fps < 10000))
                return usage_error("--fps: want a positive number, got '%s'", optarg);
            break;
        case 'e':
            errno = 0;
            a->seed = strtoll(optarg, &end, 10);
            if (errno || *end || end == optarg)
                return usage_error("--seed: want an integer, got '%s'", optarg);
            break;
        case O_MAXF:
            errno = 0;
            a->max_frames = strtoll(optarg, &end, 10);
            if (errno || *end || end == optarg || a->max_frames < 1)
                return usage_error("--max-frames: want a positive integer, got '%s'", optarg);
            break;
        case 'k':
            if (sscanf(optarg, "%d/%d", &a->shard_k, &a->shard_n) != 2 || a->shard_n < 1 ||
                a->shard_k < 0 || a->shard_k >= a->shard_n)
                return usage_error("--shard: want K/N with 0 <= K < N, got '%s'", optarg);
            break;
        case ':':
            return usage_error("option '%s' needs a value", argv[optind - 1]);
        default: {
            if (optopt)
                return usage_error("unknown option '-%c'", optopt);
            const char *opt = argv[optind - 1];
            const char *eq = strchr(opt, '=');
            return usage_error("unknown option '%.*s'", eq ? (int)(eq - opt) : (int)strlen(opt), opt);
        }
        }
    }
    if (optind < argc)
        return usage_error("unexpected argument '%s'", argv[optind]);
    if (!a->dataset)
        return usage_error("--dataset is required");
    if (!a->annotations)
        return usage_error("--annotations is required");
    if (strcmp(a->mode, "train") && strcmp(a->mode, "test"))
        return usage_error("--mode: want train or test, got '%s'", a->mode);
    if (a->sampling && strcmp(a->sampling, "segment") && strcmp(a->sampling, "window"))
        return usage_error("--sampling: want segment or window, got '%s'", a->sampling);
    if (strcmp(a->target, "verb") && strcmp(a->target, "noun"))
        return usage_error("--target: want verb or noun, got '%s'", a->target);
    if (!a->list && !a->out)
        return usage_error("--out is required (a .rec file, or - for stdout)");
    return 0;
}

// --- clip-id set for resuming ------------------------------------------------------------------

typedef struct {
    char **slot;
    size_t cap, n;
} IdSet;

static size_t idset_find(const IdSet *s, const char *id, size_t len)
{
    size_t i = (size_t)XXH3_64bits(id, len) & (s->cap - 1);
    while (s->slot[i] && (strlen(s->slot[i]) != len || memcmp(s->slot[i], id, len) != 0))
        i = (i + 1) & (s->cap - 1);
    return i;
}

static int idset_add(IdSet *s, const char *id, size_t len)
{
    if (2 * (s->n + 1) > s->cap) {
        IdSet t = {calloc(s->cap ? 2 * s->cap : 1024, sizeof(char *)), s->cap ? 2 * s->cap : 1024, 0};
        if (!t.slot)
            return LMR_ENOMEM;
        for (size_t i = 0; i < s->cap; i++)
            if (s->slot[i])
                t.slot[idset_find(&t, s->slot[i], strlen(s->slot[i]))] = s->slot[i], t.n++;
        free(s->slot);
        *s = t;
    }
    size_t i = idset_find(s, id, len);
    if (s->slot[i])
        return 0;
    if (!(s->slot[i] = strndup(id, len)))
        return LMR_ENOMEM;
    s->n++;
    return 1;
}

static int idset_has(const IdSet *s, const char *id)
{
    return s->cap && s->slot[idset_find(s, id, strlen(id))] != NULL;
}

static void idset_free(IdSet *s)
{
    for (size_t i = 0; i < s->cap; i++)
        free(s->slot[i]);
    free(s->slot);
    memset(s, 0, sizeof *s);
}

// --- annotation lines that could not be read -------------------------------------------------

/* Skipped annotation lines ("FILE:LINE: reason"), printed as they come and kept for --failures;
 * they count as failures. */
typedef struct {
    char **msg;
    size_t n, cap;
    int quiet;
} Rejects;

static void warn_line(void *user, const char *msg)
{
    Rejects *r = user;
    fprintf(stderr, PROG ": %s\n", msg);
    if (r->n == r->cap) {
        size_t cap = r->cap ? 2 * r->cap : 64;
        char **p = realloc(r->msg, cap * sizeof *p);
        if (!p)
            return;
        r->msg = p;
        r->cap = cap;
    }
    if ((r->msg[r->n] = strdup(msg)) != NULL)
        r->n++;
}

static void note_line(void *user, const char *msg)
{
    (void)user;
    fprintf(stderr, PROG ": note: %s\n", msg);
}

static void rejects_free(Rejects *r)
{
    for (size_t i = 0; i < r->n; i++)
        free(r->msg[i]);
    free(r->msg);
}

/* Ids an LMDB shard cannot hold as keys: taken out of the manifest and reported like a line the
 * reader skipped (--strict: an error). @return 0, or 1 after printing why. */
static int drop_long_ids(Manifest *m, const Args *a, Rejects *rej)
{
    size_t k = 0;
    for (size_t i = 0; i < m->n_rows; i++) {
        ManifestRow *r = &m->rows[i];
        size_t len = strlen(r->clip_id);
        if (len <= LMDB_MAX_KEY) {
            m->rows[k++] = *r;
            continue;
        }
        char msg[600];
        snprintf(msg, sizeof msg, "%s:%lld: clip id of %zu bytes ('%.40s...'): longer than LMDB's key limit "
                 "(%d bytes), so no shard could hold it", a->annotations, (long long)r->line, len, r->clip_id,
                 LMDB_MAX_KEY);
        if (a->strict) {
            fprintf(stderr, PROG ": %s\n", msg);
            return 1;
        }
        warn_line(rej, msg);
        m->n_skipped++;
        free(r->clip_id);
        free(r->video);
    }
    m->n_rows = k;
    return 0;
}

// --- the run's output side ---------------------------------------------------------------------

typedef struct {
    const Args *a;
    FILE *out, *fail;
    int n_classes;
    int64_t *counts;      /* [n_classes] clips per label over the whole output file */
    uint64_t n_records;   /* records in the output file, resumed ones included */
    int multi_label;
    size_t total, done, failed, padded;
    double t0, last_print;
    int tty;
} Out;

static double now_sec(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void count_labels(Out *o, const int32_t *labels, int n)
{
    if (n > 1)
        o->multi_label = 1;
    for (int i = 0; i < n; i++)
        if (labels[i] >= 0 && labels[i] < o->n_classes)
            o->counts[labels[i]]++;
}

static void progress(Out *o, int final)
{
    if (o->a->quiet)
        return;
    double t = now_sec(), el = t - o->t0;
    if (!final && t - o->last_print < (o->tty ? 0.5 : 10.0))
        return;
    o->last_print = t;
    size_t n = o->done + o->failed;
    double rate = el > 0 ? n / el : 0;
    double eta = rate > 0 ? (o->total - n) / rate : 0;
    if (final && o->tty)
        fprintf(stderr, "\r\033[K");
    else if (!final)
        fprintf(stderr, "%s" PROG ": %zu/%zu clips, %.1f clips/s, ETA %.0f s%s", o->tty ? "\r\033[K" : "",
                n, o->total, rate, eta, o->tty ? "" : "\n");
}

/* Tabs and newlines would break the TSV row. */
static void tsv_field(FILE *f, const char *s)
{
    for (; *s; s++)
        fputc(*s == '\t' || *s == '\n' || *s == '\r' ? ' ' : *s, f);
}

static void tsv_row(FILE *f, const char *id, const char *video, const char *reason)
{
    if (!f)
        return;
    tsv_field(f, id);
    fputc('\t', f);
    tsv_field(f, video);
    fputc('\t', f);
    tsv_field(f, reason);
    fputc('\n', f);
    fflush(f);
}

static int on_clip(void *user, const ExtractClip *c)
{
    Out *o = user;
    const ManifestRow *row = c->row;
    if (c->reason || c->note) {
        if (o->tty && !o->a->quiet)
            fprintf(stderr, "\r\033[K");
        fprintf(stderr, PROG ": %s: clip %s: %s\n", c->path, row->clip_id, c->reason ? c->reason : c->note);
        tsv_row(o->fail, row->clip_id, c->path, c->reason ? c->reason : c->note);
    }
    if (c->reason) {
        o->failed++;
        progress(o, 0);
        return o->a->strict ? LMR_EDECODE : 0;
    }
    // Whole records only, flushed one by one: a kill loses at most the one being written.
    if (fwrite(c->rec, 1, c->len, o->out) != c->len || fflush(o->out) != 0) {
        fprintf(stderr, PROG ": %s: write failed: %s\n", o->a->out, strerror(errno));
        return LMR_EIO;
    }
    o->done++;
    o->padded += c->note != NULL;
    o->n_records++;
    count_labels(o, row->labels, row->n_labels);
    progress(o, 0);
    return 0;
}

/* "train" / "val" / "test" from the annotation file name, else its base name. */
static void split_name(const char *ann, char *out, size_t cap)
{
    const char *b = strrchr(ann, '/');
    b = b ? b + 1 : ann;
    char low[256];
    size_t i;
    for (i = 0; b[i] && i + 1 < sizeof low; i++)
        low[i] = (char)(b[i] >= 'A' && b[i] <= 'Z' ? b[i] + 32 : b[i]);
    low[i] = 0;
    if (strstr(low, "train"))
        snprintf(out, cap, "train");
    else if (strstr(low, "val"))
        snprintf(out, cap, "val");
    else if (strstr(low, "test"))
        snprintf(out, cap, "test");
    else {
        snprintf(out, cap, "%s", b);
        char *dot = strrchr(out, '.');
        if (dot && dot != out)
            *dot = 0;
    }
}

/* The run's provenance: what the stream's metadata record and the sidecar say (counts apart).
 * @return 0 or LMR_ENOMEM. */
static int build_meta(ShardMeta *sm, const Args *a, const Manifest *m, uint8_t kind, uint8_t dtype,
                      const uint32_t dims[4], const char *wsum)
{
    shardmeta_init(sm);
    sm->kind = kind;
    sm->dtype = dtype;
    sm->ndim = 4;
    memcpy(sm->dims, dims, sizeof sm->dims);
    sm->n_classes = m->n_classes;
    snprintf(sm->dataset, sizeof sm->dataset, "%s", a->dataset);
    split_name(a->annotations, sm->split, sizeof sm->split);
    snprintf(sm->mode, sizeof sm->mode, "%s", a->mode);
    sm->frames = a->frames;
    sm->size = a->size;
    snprintf(sm->backbone, sizeof sm->backbone, "%s", a->backbone);
    snprintf(sm->weights_checksum, sizeof sm->weights_checksum, "%s", wsum);
    snprintf(sm->lmr_version, sizeof sm->lmr_version, "%s", LMR_VERSION);
    if (m->n_class_names > 0)
        return shardmeta_set_class_names(sm, (const char *const *)m->class_names, m->n_class_names);
    return 0;
}

/* The metadata record that opens a stream (record.h, LMR_KIND_META): the provenance travels with
 * the records, through a pipe too. Counts are left to the reader (n_records 0, counts 0). */
static int meta_record(const ShardMeta *sm, LmrBuf *out, char *err)
{
    char *json = shardmeta_to_json(sm);
    if (!json)
        return lmr_fail(err, LMR_ENOMEM, "out of memory");
    RecordCtx ctx;
    int rc = record_ctx_init(&ctx, 1);
    if (rc == 0) {
        RecordInfo ri;
        memset(&ri, 0, sizeof ri);
        ri.kind = LMR_KIND_META;
        ri.dtype = LMR_DT_U8;
        ri.ndim = 1;
        ri.dims[0] = (uint32_t)strlen(json);
        ri.id = LMR_META_ID;
        ri.id_len = (uint16_t)strlen(LMR_META_ID);
        if ((rc = record_encode(&ctx, &ri, json, out)) < 0)
            lmr_fail(err, rc, "metadata record: %s", ctx.last_error);
    } else {
        lmr_fail(err, rc, "out of memory");
    }
    record_ctx_free(&ctx);
    free(json);
    return rc;
}

/* The first setting in which an existing stream's metadata differs from this run's, or NULL. */
static const char *meta_differs(const ShardMeta *had, const ShardMeta *want, char *buf, size_t cap)
{
    static const char *const names[] = {"dataset", "split", "mode", "backbone", "weights checksum"};
    const char *h[] = {had->dataset, had->split, had->mode, had->backbone, had->weights_checksum};
    const char *w[] = {want->dataset, want->split, want->mode, want->backbone, want->weights_checksum};
    for (int i = 0; i < 5; i++)
        if (strcmp(h[i], w[i]) != 0) {
            snprintf(buf, cap, "%s '%s', this run's '%s'", names[i], h[i], w[i]);
            return buf;
        }
    if (had->frames != want->frames || had->size != want->size) {
        snprintf(buf, cap, "frames %d size %d, this run's frames %d size %d", had->frames, had->size,
                 want->frames, want->size);
        return buf;
    }
    return NULL;
}

/* Offset of the first record magic at or after byte from of path, or -1. */
static long long find_magic(const char *path, uint64_t from)
{
    FILE *f = fopen(path, "rb");
    if (!f || fseeko(f, (off_t)from, SEEK_SET) != 0) {
        if (f)
            fclose(f);
        return -1;
    }
    static char buf[1 << 16];
    size_t keep = 0, n;
    long long base = (long long)from, hit = -1;
    while (hit < 0 && (n = fread(buf + keep, 1, sizeof buf - keep, f)) > 0) {
        size_t have = keep + n;
        void *p = memmem(buf, have, LMR_RECORD_MAGIC, 8);
        if (p) {
            hit = base + ((char *)p - buf);
            break;
        }
        keep = have < 7 ? have : 7; // a magic split across two reads
        memmove(buf, buf + have - keep, keep);
        base += (long long)(have - keep);
    }
    fclose(f);
    return hit;
}

/* Copy the first n bytes of path to f. @return 0 or -1. */
static int copy_prefix(const char *path, uint64_t n, FILE *f)
{
    FILE *in = fopen(path, "rb");
    static char buf[1 << 16];
    while (in && n > 0) {
        size_t want = n < sizeof buf ? (size_t)n : sizeof buf, got = fread(buf, 1, want, in);
        if (got == 0 || fwrite(buf, 1, got, f) != got)
            break;
        n -= got;
    }
    int ok = in && n == 0;
    if (in)
        fclose(in);
    return ok ? 0 : -1;
}

/* Read the records already in path: their ids go to done, after their checksums are verified.
 * A cut-off last record (what a kill leaves) is cut away; records whose checksum fails are
 * dropped (the file rewritten without them) so those clips are extracted again. *fresh: the
 * stream is new or empty, so it opens with this run's metadata record. @return 0, or 1 after
 * printing why. */
static int resume_scan(const char *path, Out *o, IdSet *done, const ShardMeta *want, int *fresh)
{
    struct stat sb;
    *fresh = 0;
    if (stat(path, &sb) != 0 || sb.st_size == 0) {
        *fresh = 1;
        return 0;
    }
    // A file that does not even start like a record stream is not ours to append to or cut.
    FILE *f = fopen(path, "rb");
    char head[8];
    size_t nh = f ? fread(head, 1, sizeof head, f) : 0;
    if (f)
        fclose(f);
    if (nh == 0 || memcmp(head, LMR_RECORD_MAGIC, nh) != 0) {
        fprintf(stderr, PROG ": %s: exists and is not a record stream; refusing to append to it\n", path);
        return 1;
    }
    RecReader r;
    int rc = recreader_open(&r, path);
    if (rc < 0) {
        fprintf(stderr, PROG ": %s: %s\n", path, lmr_strerror(rc));
        return 1;
    }
    RecordCtx ctx;
    LmrBuf scratch;
    buf_init(&scratch);
    if (record_ctx_init(&ctx, 0) < 0) {
        recreader_close(&r);
        return 1;
    }
    char tmp[4200], why[LMR_ERRLEN + 200];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *fix = NULL; // the rewrite without damaged records, once one is found
    uint64_t good = 0, at = 0;
    size_t n_bad = 0, n_rec = 0;
    int fail = 0;
    RecordInfo info;
    for (;; n_rec++) {
        at = r.offset;
        if ((rc = recreader_next(&r, &info)) != 0)
            break;
        int bad = info.kind == LMR_KIND_META // its payload is read, raw or not
                      ? buf_reserve(&scratch, info.raw_size + 1) < 0 ? LMR_ENOMEM
                                                                      : record_payload(&ctx, &info, scratch.data, scratch.cap)
                      : record_verify(&ctx, &info, &scratch);
        if (info.kind == LMR_KIND_META) {
            ShardMeta had;
            shardmeta_init(&had);
            char *json = bad < 0 ? NULL : strndup((const char *)scratch.data, info.raw_size);
            if (n_rec != 0 || bad < 0 || !json || shardmeta_from_json(&had, json, why) < 0) {
                fprintf(stderr, PROG ": %s: byte %llu: %s; refusing to append to it\n", path,
                        (unsigned long long)at, n_rec ? "a metadata record after the first record"
                                                      : "a damaged metadata record");
                fail = 1;
            } else if (meta_differs(&had, want, why, sizeof why)) {
                fprintf(stderr, PROG ": %s: written with other settings (%s); remove it or choose another --out\n",
                        path, why);
                fail = 1;
            }
            free(json);
            shardmeta_free(&had);
            if (fail)
                break;
        } else {
            if (info.kind != want->kind || info.dtype != want->dtype ||
                memcmp(info.dims, want->dims, sizeof info.dims) != 0) {
                char have[96], run[96];
                record_shape_str(info.kind, info.dtype, info.dims, info.ndim, have, sizeof have);
                record_shape_str(want->kind, want->dtype, want->dims, want->ndim, run, sizeof run);
                fprintf(stderr, PROG ": %s: holds %s records, this run makes %s; remove it or choose another --out\n",
                        path, have, run);
                fail = 1;
                break;
            }
            if (bad < 0) {
                fprintf(stderr, PROG ": %s: byte %llu: clip %.*s: %s: dropped, the clip is extracted again\n", path,
                        (unsigned long long)at, info.id_len > 60 ? 60 : (int)info.id_len, info.id, ctx.last_error);
                n_bad++;
                if (!fix && (!(fix = fopen(tmp, "wb")) || copy_prefix(path, at, fix) < 0)) {
                    fprintf(stderr, PROG ": %s: cannot write: %s\n", tmp, strerror(errno));
                    fail = 1;
                    break;
                }
                good = r.offset;
                continue;
            }
            if (idset_add(done, info.id, info.id_len) < 0) {
                fail = 1;
                break;
            }
            o->n_records++;
            count_labels(o, info.labels, info.n_labels);
        }
        if (fix && fwrite(r.buf.data, 1, (size_t)info.total_size, fix) != info.total_size) {
            fprintf(stderr, PROG ": %s: write failed: %s\n", tmp, strerror(errno));
            fail = 1;
            break;
        }
        good = r.offset;
    }
    recreader_close(&r);
    record_ctx_free(&ctx);
    buf_free(&scratch);
    if (!fail && rc != LMR_DONE && rc != LMR_ETRUNC) {
        // Only a cut-off last record is what a killed run leaves; anything else is not ours to cut.
        fprintf(stderr, PROG ": %s: not a clean record stream (%s at byte %llu); refusing to append to it\n",
                path, lmr_strerror(rc), (unsigned long long)at);
        fail = 1;
    }
    long long later = !fail && rc == LMR_ETRUNC ? find_magic(path, at + 8) : -1;
    if (later >= 0) { // a damaged length, not a cut-off tail: cutting would lose what follows
        fprintf(stderr, PROG ": %s: the record at byte %llu is damaged and records follow it (byte %lld); "
                "refusing to cut the file\n", path, (unsigned long long)at, later);
        fail = 1;
    }
    if (fix) {
        int ok = !fail && fflush(fix) == 0 && fsync(fileno(fix)) == 0;
        ok = fclose(fix) == 0 && ok;
        if (ok && rename(tmp, path) != 0)
            ok = 0;
        if (!ok) {
            if (!fail)
                fprintf(stderr, PROG ": %s: cannot rewrite without its %zu damaged records: %s\n", path, n_bad,
                        strerror(errno));
            unlink(tmp);
            return 1;
        }
        if (!o->a->quiet)
            fprintf(stderr, PROG ": %s: %zu records failed their checksum; rewritten without them\n", path, n_bad);
        return 0;
    }
    if (fail)
        return 1;
    if (rc == LMR_ETRUNC) {
        if (!o->a->quiet)
            fprintf(stderr, PROG ": %s: dropping a damaged tail after byte %llu (%s)\n", path,
                    (unsigned long long)good, lmr_strerror(rc));
        if (truncate(path, (off_t)good) != 0) {
            fprintf(stderr, PROG ": %s: cannot truncate: %s\n", path, strerror(errno));
            return 1;
        }
        *fresh = good == 0;
    }
    return 0;
}

static int write_meta(const Args *a, ShardMeta *sm, const Out *o)
{
    sm->n_records = o->n_records;
    sm->class_counts = o->counts; // borrowed: detached before the caller frees sm
    sm->multi_label = o->multi_label;
    char *json = shardmeta_to_json(sm);
    sm->class_counts = NULL;
    if (!json)
        return -1;
    char path[4096], tmp[4200];
    snprintf(path, sizeof path, "%s.meta.json", a->out);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    int ok = f && fputs(json, f) >= 0 && fputc('\n', f) != EOF;
    ok = f && fclose(f) == 0 && ok;
    free(json);
    if (!ok || rename(tmp, path) != 0) {
        fprintf(stderr, PROG ": %s: cannot write: %s\n", path, strerror(errno));
        return -1;
    }
    return 0;
}

/* The last line when clips failed: how many, against --max-failures, and where the list is. */
static void failure_line(const Args *a, size_t failed, size_t total, size_t allowed)
{
    char where[4200];
    if (a->failures)
        snprintf(where, sizeof where, "listed in %s", a->failures);
    else
        snprintf(where, sizeof where, "named above (--failures F.tsv lists them)");
    fprintf(stderr, PROG ": %zu of %zu clips failed, %s --max-failures %s (%zu); %s%s\n", failed, total,
            failed > allowed ? "more than" : "within", a->max_failures, allowed, where,
            failed > allowed ? ": exit 1" : "");
}

int main(int argc, char **argv)
{
    Args a;
    int rc = parse_args(argc, argv, &a);
    if (rc)
        return rc;
    av_log_set_level(AV_LOG_QUIET); // our own messages name the clip; FFmpeg's would be noise
    char err[LMR_ERRLEN] = {0}, meta_path[4200];
    if (a.out)
        snprintf(meta_path, sizeof meta_path, "%s.meta.json", a.out);
    const char *ins[] = {a.annotations, a.labels, a.weights};
    const char *outs[] = {a.list ? NULL : a.out, a.list || !a.out || !strcmp(a.out, "-") ? NULL : meta_path,
                          a.list ? NULL : a.failures};
    if (lmr_check_outputs(ins, 3, outs, 3, err) < 0) {
        fprintf(stderr, PROG ": %s\n", err);
        return 2;
    }
    Rejects rej = {0};
    Manifest m;
    manifest_init(&m);
    m.warn = warn_line;
    m.note = note_line;
    m.warn_user = &rej;
    AnnotOpts ao;
    annot_opts_init(&ao);
    ao.dataset = a.dataset;
    ao.annotations = a.annotations;
    ao.labels = a.labels;
    ao.target = strcmp(a.target, "noun") == 0 ? ANNOT_TARGET_NOUN : ANNOT_TARGET_VERB;
    ao.epic_layout = a.frames_dir ? ANNOT_EPIC_RGB_FRAMES : ANNOT_EPIC_VIDEOS;
    ao.strict = a.strict;
    if ((rc = annotations_load(&m, &ao)) < 0 || drop_long_ids(&m, &a, &rej)) {
        if (rc < 0)
            fprintf(stderr, PROG ": %s\n", m.last_error);
        manifest_free(&m);
        rejects_free(&rej);
        return rc == LMR_EINVAL ? 2 : 1;
    }
    if (a.list) {
        rc = manifest_write(&m, stdout);
        size_t total = m.n_rows + rej.n, allowed = failures_allowed(&a, total);
        int status = rc < 0 ? 1 : 0;
        if (rej.n) {
            fprintf(stderr, PROG ": %zu of %zu annotation lines could not be read, %s --max-failures %s (%zu)%s\n",
                    rej.n, total, rej.n > allowed ? "more than" : "within", a.max_failures, allowed,
                    rej.n > allowed ? ": exit 1" : "");
            status |= rej.n > allowed;
        }
        manifest_free(&m);
        rejects_free(&rej);
        return status;
    }

    // Relative video paths are relative to --videos, by default the annotation file's folder;
    // checked before any clip.
    if (!a.videos) {
        snprintf(a.videos_buf, sizeof a.videos_buf, "%s", a.annotations);
        a.videos = dirname(a.videos_buf);
    }
    struct stat vsb;
    if (stat(a.videos, &vsb) != 0 || !S_ISDIR(vsb.st_mode)) {
        fprintf(stderr, PROG ": --videos %s: %s\n", a.videos, stat(a.videos, &vsb) != 0 ? "no such folder" : "not a folder");
        manifest_free(&m);
        rejects_free(&rej);
        return 2;
    }

    int epic = strcmp(a.dataset, "epic") == 0;
    ExtractOpts eo;
    extract_opts_init(&eo);
    eo.sample.kind = a.sampling ? (strcmp(a.sampling, "window") == 0 ? SAMPLE_WINDOW : SAMPLE_SEGMENT)
                                : (epic ? SAMPLE_WINDOW : SAMPLE_SEGMENT);
    eo.sample.mode = strcmp(a.mode, "train") == 0 ? SAMPLE_TRAIN : SAMPLE_TEST;
    eo.sample.frames = a.frames;
    eo.sample.views = a.views;
    eo.sample.crops = a.crops;
    eo.sample.rate = a.rate;
    eo.sample.seed = (uint64_t)a.seed;
    eo.size = eo.decode.size = a.size;
    eo.threads = a.threads;
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    eo.decode.threads = a.decode_threads ? a.decode_threads
                                         : (int)(ncpu > a.threads ? ncpu / a.threads : 1);
    eo.decode.skip_nonref = a.skip_nonref;
    eo.decode.max_frames = a.max_frames;
    eo.zstd_level = a.zstd_level;
    eo.decode.folder_fps = a.fps > 0 ? a.fps : 30;
    eo.epic_fps = epic && a.fps <= 0;
    eo.videos = a.videos;
    eo.pad_short = a.pad_short;
    eo.backbone.name = a.backbone;
    eo.backbone.weights = a.weights;
    eo.backbone.device = a.device;
    eo.backbone.threads = 1;
    eo.feature_dtype = a.dtype && strcmp(a.dtype, "f16") == 0 ? LMR_DT_F16 : LMR_DT_F32;

    char wsum[24] = {0};
    uint8_t kind, dtype;
    uint32_t dims[4];
    Out o;
    memset(&o, 0, sizeof o);
    o.a = &a;
    IdSet done = {0};
    ShardMeta sm;
    shardmeta_init(&sm);
    LmrBuf mrec;
    buf_init(&mrec);
    size_t *sel = NULL, n_sel = 0, n_resumed = 0, n_rej = 0;
    int status = 1, fresh = 0, to_stdout = strcmp(a.out, "-") == 0;
    if ((rc = extract_record_shape(&eo, &kind, &dtype, dims, wsum, err)) < 0) {
        fprintf(stderr, PROG ": %s\n", err);
        status = rc == LMR_EINVAL ? 2 : 1;
        goto end;
    }
    if (build_meta(&sm, &a, &m, kind, dtype, dims, wsum) < 0 || meta_record(&sm, &mrec, err) < 0) {
        fprintf(stderr, PROG ": %s\n", err[0] ? err : "out of memory");
        goto end;
    }
    if (strcmp(sm.split, "train") == 0 && eo.sample.mode == SAMPLE_TEST)
        fprintf(stderr, PROG ": warning: %s looks like a training split, but --mode is test (the middle "
                "frames, no augmentation); give --mode train to sample training clips\n", a.annotations);
    o.n_classes = m.n_classes > 0 ? m.n_classes : 0;
    o.counts = calloc((size_t)o.n_classes + 1, sizeof(int64_t));
    sel = malloc(sizeof(size_t) * (m.n_rows + 1));
    if (!o.counts || !sel)
        goto end;
    if (to_stdout)
        fresh = 1;
    else if (resume_scan(a.out, &o, &done, &sm, &fresh))
        goto end;
    for (size_t i = 0; i < m.n_rows; i++) {
        if (i % (size_t)a.shard_n != (size_t)a.shard_k)
            continue;
        if (idset_has(&done, m.rows[i].clip_id))
            n_resumed++;
        else
            sel[n_sel++] = i;
    }
    o.out = to_stdout ? stdout : fopen(a.out, "ab");
    if (!o.out) {
        fprintf(stderr, PROG ": %s: cannot open: %s\n", a.out, strerror(errno));
        goto end;
    }
    if (fresh && (fwrite(mrec.data, 1, mrec.len, o.out) != mrec.len || fflush(o.out) != 0)) {
        fprintf(stderr, PROG ": %s: write failed: %s\n", a.out, strerror(errno));
        goto end;
    }
    if (a.failures && !(o.fail = fopen(a.failures, "w"))) {
        fprintf(stderr, PROG ": %s: cannot open: %s\n", a.failures, strerror(errno));
        goto end;
    }
    if (o.fail)
        fputs("clip_id\tvideo\treason\n", o.fail);
    // Annotation lines that could not be read are failures too: each shard of a --shard K/N run
    // takes every N-th of them, as it takes every N-th clip.
    for (size_t j = 0; j < rej.n; j++)
        if (j % (size_t)a.shard_n == (size_t)a.shard_k) {
            tsv_row(o.fail, "", "", rej.msg[j]);
            n_rej++;
        }
    o.total = n_sel;
    o.tty = isatty(2);
    o.t0 = o.last_print = now_sec();
    ExtractStats st;
    rc = extract_run(&m, sel, n_sel, &eo, on_clip, &o, &st, err);
    progress(&o, 1);
    double el = now_sec() - o.t0;
    if (rc < 0 && !(a.strict && o.failed))
        fprintf(stderr, PROG ": %s\n", err);
    size_t total = n_sel + n_resumed + n_rej, failures = o.failed + n_rej, allowed = failures_allowed(&a, total);
    int nothing = failures > 0 && o.done == 0 && n_resumed == 0; // every clip failed
    int empty = o.n_records == 0; // no clip record in the file, this run's or an earlier one's
    if (nothing && empty && !to_stdout) { // no stream of nothing but its metadata left behind
        fclose(o.out);
        o.out = NULL;
        unlink(a.out);
    } else if (!to_stdout && write_meta(&a, &sm, &o) < 0) {
        rc = LMR_EIO;
    }
    if (!a.quiet) {
        char padded[64] = "";
        if (a.pad_short)
            snprintf(padded, sizeof padded, "%zu padded (--pad-short), ", o.padded);
        fprintf(stderr, PROG ": %zu clips written, %zu failed, %zu skipped (already in %s), %s%.1f s "
                "(%.1f clips/s; %lld frames decoded, %lld seeks)\n",
                o.done, failures, n_resumed, a.out, padded, el, el > 0 ? o.done / el : 0.0,
                (long long)st.frames_decoded, (long long)st.seeks);
    }
    if (o.padded)
        fprintf(stderr, PROG ": %zu clips padded with their last decoded frame (--pad-short)%s%s\n", o.padded,
                a.failures ? "; listed in " : "", a.failures ? a.failures : "");
    if (a.strict && o.failed)
        fprintf(stderr, PROG ": --strict: stopping at the first failed clip\n");
    else if (failures)
        failure_line(&a, failures, total, allowed);
    if (nothing && !a.strict)
        fprintf(stderr, PROG ": no clip could be extracted%s\n", empty && !to_stdout ? ": no output written" : "");
    status = rc < 0 || (a.strict && o.failed) || failures > allowed || nothing ? 1 : 0;
end:
    if (o.out && o.out != stdout && fclose(o.out) != 0)
        status = 1;
    if (o.out == stdout && fflush(stdout) != 0)
        status = 1;
    if (o.fail && fclose(o.fail) != 0)
        status = 1;
    free(o.counts);
    free(sel);
    idset_free(&done);
    shardmeta_free(&sm);
    buf_free(&mrec);
    manifest_free(&m);
    rejects_free(&rej);
    return status;
}
