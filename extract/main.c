/* lmr-extract: dataset annotations -> manifest -> sampled, scaled clips (or backbone features)
 * as a clip-record stream, appended as clips finish so a killed run resumes where it stopped.
 * Prints one line per bad clip (and a failures TSV), a progress line and a summary. */
#include <errno.h>
#include <getopt.h>
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
#include "manifest.h"
#include "record.h"
#include "run.h"
#include "shard.h"

#define PROG "lmr-extract"

static const char usage[] =
    "usage: lmr-extract --dataset epic|ssv2|videolt|manifest --annotations F [--labels F]\n"
    "                   --videos DIR --out F.rec|- [options]\n"
    "       lmr-extract --list --dataset ... --annotations F [--labels F]\n"
    "\n"
    "sampling:  --frames T (16)  --views V (1)  --crops 1|3 (1)  --mode train|test (test)\n"
    "           --sampling segment|window (window for epic, else segment)  --rate R (4)\n"
    "           --seed S (0)  --size S (224: short side, then a square crop)\n"
    "features:  --backbone NAME (none; the list below)  --weights F.safetensors\n"
    "           --device cpu|cuda|cuda:f16  --dtype f32|f16 (f32: how features are stored)\n"
    "data:      --target verb|noun (epic)  --frames-dir (epic: <p>/rgb_frames/<video> JPEG folders)\n"
    "           --fps F (frame rate of JPEG frame folders; epic: 50/60 from the video id; else 30)\n"
    "run:       --shard K/N  --threads N (cores)  --decode-threads N  --failures F.tsv  --strict\n"
    "           --quiet  --no-skip-nonref  --max-frames N (decode limit per clip beyond its span)\n"
    "           --zstd-level N (1; 0 = raw payloads)\n"
    "           --help  --version\n";

typedef struct {
    const char *dataset, *annotations, *labels, *videos, *out, *failures, *backbone, *weights,
        *device, *sampling, *mode, *target, *dtype;
    int frames, size, views, crops, threads, decode_threads, list, strict, quiet, frames_dir,
        shard_k, shard_n, skip_nonref, zstd_level;
    double rate, fps;
    long long seed, max_frames;
} Args;

static int usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, PROG ": ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n(see lmr-extract --help)\n");
    va_end(ap);
    return 2;
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
    enum { O_LIST = 256, O_VERSION, O_FRAMES_DIR, O_NOSKIP, O_DEC_THREADS, O_MAXF, O_TARGET, O_FPS, O_DEVICE, O_DTYPE, O_ZSTD };
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
        {0, 0, 0, 0}};
    memset(a, 0, sizeof *a);
    a->frames = 16, a->size = 224, a->views = 1, a->crops = 1, a->rate = 4, a->skip_nonref = 1;
    a->backbone = "none", a->mode = "test", a->target = "verb", a->shard_n = 1, a->zstd_level = 1;
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    a->threads = n > 0 ? (int)n : 1;
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
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
        default:
            return usage_error("unknown or incomplete option '%s'", argv[optind - 1]);
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
    if (!a->list && !a->videos)
        return usage_error("--videos is required");
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

// --- the run's output side ---------------------------------------------------------------------

typedef struct {
    const Args *a;
    FILE *out, *fail;
    int n_classes;
    int64_t *counts;      /* [n_classes] clips per label over the whole output file */
    uint64_t n_records;   /* records in the output file, resumed ones included */
    int multi_label;
    size_t total, done, failed;
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

static int on_clip(void *user, const ManifestRow *row, const uint8_t *rec, size_t len, const char *reason)
{
    Out *o = user;
    if (reason) {
        o->failed++;
        if (o->tty && !o->a->quiet)
            fprintf(stderr, "\r\033[K");
        fprintf(stderr, PROG ": %s: clip %s: %s\n", row->video, row->clip_id, reason);
        if (o->fail) {
            tsv_field(o->fail, row->clip_id);
            fputc('\t', o->fail);
            tsv_field(o->fail, row->video);
            fputc('\t', o->fail);
            tsv_field(o->fail, reason);
            fputc('\n', o->fail);
            fflush(o->fail);
        }
        progress(o, 0);
        return o->a->strict ? LMR_EDECODE : 0;
    }
    // Whole records only, flushed one by one: a kill loses at most the one being written.
    if (fwrite(rec, 1, len, o->out) != len || fflush(o->out) != 0) {
        fprintf(stderr, PROG ": %s: write failed: %s\n", o->a->out, strerror(errno));
        return LMR_EIO;
    }
    o->done++;
    o->n_records++;
    count_labels(o, row->labels, row->n_labels);
    progress(o, 0);
    return 0;
}

/* Read the records already in path: their ids go to done; a truncated tail is cut off so new
 * records follow the last whole one. @return 0, or 1 after printing why. */
static int resume_scan(const char *path, Out *o, IdSet *done, const uint8_t kind, const uint8_t dtype,
                       const uint32_t dims[4])
{
    struct stat sb;
    if (stat(path, &sb) != 0)
        return 0;
    // A file that does not even start like a record stream is not ours to append to or cut.
    FILE *f = fopen(path, "rb");
    char head[8];
    size_t nh = f ? fread(head, 1, sizeof head, f) : 0;
    if (f)
        fclose(f);
    if (memcmp(head, LMR_RECORD_MAGIC, nh) != 0) {
        fprintf(stderr, PROG ": %s: exists and is not a record stream; refusing to append to it\n", path);
        return 1;
    }
    RecReader r;
    int rc = recreader_open(&r, path);
    if (rc < 0) {
        fprintf(stderr, PROG ": %s: %s\n", path, lmr_strerror(rc));
        return 1;
    }
    uint64_t good = 0;
    RecordInfo info;
    while ((rc = recreader_next(&r, &info)) == 0) {
        if (info.kind != kind || info.dtype != dtype || memcmp(info.dims, dims, sizeof info.dims) != 0) {
            fprintf(stderr, PROG ": %s: holds records of another shape than this run's (kind %d, dims %ux%ux%ux%u); "
                    "remove it or choose another --out\n", path, info.kind, info.dims[0], info.dims[1],
                    info.dims[2], info.dims[3]);
            recreader_close(&r);
            return 1;
        }
        if (idset_add(done, info.id, info.id_len) < 0) {
            recreader_close(&r);
            return 1;
        }
        o->n_records++;
        count_labels(o, info.labels, info.n_labels);
        good = r.offset;
    }
    recreader_close(&r);
    if (rc != LMR_DONE && rc != LMR_ETRUNC) {
        // Only a cut-off last record is what a killed run leaves; anything else is not ours to cut.
        fprintf(stderr, PROG ": %s: not a clean record stream (%s at byte %llu); refusing to append to it\n",
                path, lmr_strerror(rc), (unsigned long long)good);
        return 1;
    }
    if (rc == LMR_ETRUNC) {
        if (!o->a->quiet)
            fprintf(stderr, PROG ": %s: dropping a damaged tail after byte %llu (%s)\n", path,
                    (unsigned long long)good, lmr_strerror(rc));
        if (truncate(path, (off_t)good) != 0) {
            fprintf(stderr, PROG ": %s: cannot truncate: %s\n", path, strerror(errno));
            return 1;
        }
    }
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

static int write_meta(const Args *a, const Manifest *m, const Out *o, uint8_t kind, uint8_t dtype,
                      const uint32_t dims[4], const char *wsum)
{
    ShardMeta sm;
    shardmeta_init(&sm);
    sm.kind = kind;
    sm.dtype = dtype;
    sm.ndim = 4;
    memcpy(sm.dims, dims, sizeof sm.dims);
    sm.n_records = o->n_records;
    sm.n_classes = m->n_classes;
    sm.class_counts = o->counts; // borrowed: not freed below
    sm.multi_label = o->multi_label;
    snprintf(sm.dataset, sizeof sm.dataset, "%s", a->dataset);
    split_name(a->annotations, sm.split, sizeof sm.split);
    sm.frames = a->frames;
    sm.size = a->size;
    snprintf(sm.backbone, sizeof sm.backbone, "%s", a->backbone);
    snprintf(sm.weights_checksum, sizeof sm.weights_checksum, "%s", wsum);
    snprintf(sm.lmr_version, sizeof sm.lmr_version, "%s", LMR_VERSION);
    char *json = shardmeta_to_json(&sm);
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

static void warn_line(void *user, const char *msg)
{
    (void)user;
    fprintf(stderr, PROG ": %s\n", msg);
}

int main(int argc, char **argv)
{
    Args a;
    int rc = parse_args(argc, argv, &a);
    if (rc)
        return rc;
    av_log_set_level(AV_LOG_QUIET); // our own messages name the clip; FFmpeg's would be noise
    Manifest m;
    manifest_init(&m);
    m.warn = warn_line;
    AnnotOpts ao;
    annot_opts_init(&ao);
    ao.dataset = a.dataset;
    ao.annotations = a.annotations;
    ao.labels = a.labels;
    ao.target = strcmp(a.target, "noun") == 0 ? ANNOT_TARGET_NOUN : ANNOT_TARGET_VERB;
    ao.epic_layout = a.frames_dir ? ANNOT_EPIC_RGB_FRAMES : ANNOT_EPIC_VIDEOS;
    ao.strict = a.strict;
    if ((rc = annotations_load(&m, &ao)) < 0) {
        fprintf(stderr, PROG ": %s\n", m.last_error);
        manifest_free(&m);
        return rc == LMR_EINVAL ? 2 : 1;
    }
    if (a.list) {
        rc = manifest_write(&m, stdout);
        manifest_free(&m);
        return rc < 0 ? 1 : 0;
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
    eo.backbone.name = a.backbone;
    eo.backbone.weights = a.weights;
    eo.backbone.device = a.device;
    eo.backbone.threads = 1;
    eo.feature_dtype = a.dtype && strcmp(a.dtype, "f16") == 0 ? LMR_DT_F16 : LMR_DT_F32;

    char err[LMR_ERRLEN] = {0}, wsum[24] = {0};
    uint8_t kind, dtype;
    uint32_t dims[4];
    Out o;
    memset(&o, 0, sizeof o);
    o.a = &a;
    IdSet done = {0};
    size_t *sel = NULL, n_sel = 0, n_resumed = 0;
    int status = 1;
    if ((rc = extract_record_shape(&eo, &kind, &dtype, dims, wsum, err)) < 0) {
        fprintf(stderr, PROG ": %s\n", err);
        status = rc == LMR_EINVAL ? 2 : 1;
        goto end;
    }
    o.n_classes = m.n_classes > 0 ? m.n_classes : 0;
    o.counts = calloc((size_t)o.n_classes + 1, sizeof(int64_t));
    sel = malloc(sizeof(size_t) * (m.n_rows + 1));
    if (!o.counts || !sel)
        goto end;
    int to_stdout = strcmp(a.out, "-") == 0;
    if (!to_stdout && resume_scan(a.out, &o, &done, kind, dtype, dims))
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
    if (a.failures && !(o.fail = fopen(a.failures, "w"))) {
        fprintf(stderr, PROG ": %s: cannot open: %s\n", a.failures, strerror(errno));
        goto end;
    }
    if (o.fail)
        fputs("clip_id\tvideo\treason\n", o.fail);
    o.total = n_sel;
    o.tty = isatty(2);
    o.t0 = o.last_print = now_sec();
    ExtractStats st;
    rc = extract_run(&m, sel, n_sel, &eo, on_clip, &o, &st, err);
    progress(&o, 1);
    double el = now_sec() - o.t0;
    if (rc < 0 && !(a.strict && o.failed))
        fprintf(stderr, PROG ": %s\n", err);
    if (!to_stdout && write_meta(&a, &m, &o, kind, dtype, dims, wsum) < 0)
        rc = LMR_EIO;
    if (!a.quiet)
        fprintf(stderr, PROG ": %zu clips written, %zu failed, %zu skipped (already in %s), %.1f s "
                "(%.1f clips/s; %lld frames decoded, %lld seeks)\n",
                o.done, o.failed, n_resumed, a.out, el, el > 0 ? o.done / el : 0.0,
                (long long)st.frames_decoded, (long long)st.seeks);
    if (a.strict && o.failed)
        fprintf(stderr, PROG ": --strict: stopping at the first failed clip\n");
    status = rc < 0 || (a.strict && o.failed) || (o.failed && !o.done && !n_resumed) ? 1 : 0;
end:
    if (o.out && o.out != stdout && fclose(o.out) != 0)
        status = 1;
    if (o.fail && fclose(o.fail) != 0)
        status = 1;
    free(o.counts);
    free(sel);
    idset_free(&done);
    manifest_free(&m);
    return status;
}
