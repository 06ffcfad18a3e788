/* lmr-pack: record streams -> LMDB or HDF5 shards (resumable), the import of features made
 * elsewhere (.npy files, one HDF5 file, VideoLT's release), and the --info / --verify tools. Only
 * this file prints or exits. */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "fileid.h"
#include "import.h"
#include "pack.h"

#define PROG "lmr-pack"
#define MAX_PRINTED_FAILURES 50

static const char usage[] =
    "usage: lmr-pack [--format lmdb|hdf5] [options] -o SHARD F.rec... | -\n"
    "       lmr-pack --from-npy DIR --manifest M.csv [import options] -o SHARD\n"
    "       lmr-pack --from-hdf5 F.h5 [--h5-features NAME ...] [import options] -o SHARD\n"
    "       lmr-pack --from-videolt DIR --labels F.lst [--counts F] [import options] -o SHARD\n"
    "       lmr-pack --info SHARD... [--json]\n"
    "       lmr-pack --verify SHARD... [--threads N]\n"
    "       lmr-pack --reduce mean -o OUT SHARD...\n"
    "       lmr-pack --reindex SHARD...\n"
    "\n"
    "Pack clip records (.rec streams from lmr-extract; - = stdin) into a shard. Re-running the\n"
    "same command resumes: records already stored are skipped, never written twice.\n"
    "\n"
    "  -o, --out SHARD     shard to create or complete (never one of the inputs)\n"
    "  --format F          lmdb (default) or hdf5\n"
    "  --zstd-level N      re-encode payloads at zstd level N (0 = raw); default: keep as given\n"
    "  --deflate N         HDF5: shuffle + deflate level 1..9 (default 4), 0 = no filter\n"
    "  --hdf5-zstd         HDF5: shuffle + zstd (filter 32015; readers need the plugin)\n"
    "  --txn-mb N          LMDB: MiB per write transaction (default 64)\n"
    "  --dataset NAME      metadata: dataset name (overrides the stream's metadata)\n"
    "  --split NAME        metadata: split name\n"
    "  --classes N         metadata: number of classes\n"
    "  --no-check          do not verify payload checksums while packing\n"
    "  --max-failures X    clips that may fail before the run exits 1: a count N, or a fraction\n"
    "                      such as 0.01 of the clips seen (default 0)\n"
    "  --failures F.tsv    write the failed clips (clip_id, input, offset, reason) to F.tsv\n"
    "  --info              print metadata, class names and the class histogram of each SHARD\n"
    "                      (--json: one JSON object, an array of them for several shards)\n"
    "  --verify            read every record of each SHARD, check checksums and ids; exit 1\n"
    "                      naming the bad records and the first bad shard\n"
    "  --threads N         threads for --verify (default 2)\n"
    "  --reduce mean       copy the SHARDs' clips with each view replaced by its mean over T\n"
    "                      (f32, T = 1): what lmr-train reads from them, bit for bit; with\n"
    "                      --dtype f16 half that size, the means rounded to f16\n"
    "  --reindex           write the per-clip index of LMDB shards packed without one\n"
    "\n"
    "Import features made elsewhere, one record per clip ([D], [T, D] or [views, T, D], f16/f32;\n"
    "views and D must match the first clip's, T may vary):\n"
    "  --from-npy DIR      DIR/<clip_id>.npy for each row of --manifest (ids with / are sub-folders)\n"
    "  --manifest M.csv    CSV with a header; only its clip_id and labels (0;3;7) columns are read\n"
    "  --from-hdf5 F.h5    one HDF5 file: features [N, ...], ids [N] (strings or ints), labels [N]\n"
    "                      ints, [N, C] multi-hot or [N] lists; read clip by clip\n"
    "  --h5-features NAME, --h5-ids NAME, --h5-labels NAME   dataset names (default features, ids, labels)\n"
    "  --from-videolt DIR  VideoLT's DIR/<video_id>.npy features with --labels F.lst\n"
    "  --labels F          VideoLT list file (<video_id> <label>[,<label>...])\n"
    "  --counts F          VideoLT class count list (class names and count; labels checked against it)\n"
    "  --class-names F     one class name per line (line k = class k); sets the class count\n"
    "  --backbone NAME     metadata: the model that made the features (default npy, hdf5, videolt-npy)\n"
    "  --weights-checksum S  metadata: a digest of its weights\n"
    "  --max-frames N      keep N evenly spaced rows of each view (0 = all)\n"
    "  --dtype f16|f32     dtype of the records (default: the shard's, else the first clip's)\n"
    "  --strict            stop at the first clip that cannot be imported\n"
    "  -q, --quiet         no progress line, no summary\n"
    "  -h, --help          this text\n"
    "  --version           print the version\n";

enum { OPT_FORMAT = 256, OPT_ZSTD, OPT_DEFLATE, OPT_TXN, OPT_DATASET, OPT_SPLIT, OPT_CLASSES, OPT_NOCHECK,
       OPT_INFO, OPT_JSON, OPT_VERIFY, OPT_THREADS, OPT_VIDEOLT, OPT_LABELS, OPT_COUNTS, OPT_MAXFRAMES,
       OPT_STRICT, OPT_VERSION, OPT_H5ZSTD, OPT_MAXFAIL, OPT_FAILURES, OPT_DTYPE, OPT_NPY, OPT_MANIFEST,
       OPT_HDF5, OPT_H5FEAT, OPT_H5IDS, OPT_H5LABELS, OPT_CLASSNAMES, OPT_BACKBONE, OPT_WEIGHTS, OPT_REDUCE, OPT_REINDEX };

/* A usage error: the one reason, then where to look. @return 2. */
static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs(PROG ": ", stderr);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs(" (see --help)\n", stderr);
    return 2;
}

// --- progress, notes and failures ------------------------------------------------------------

typedef struct {
    int tty, quiet, line_open;
    double last_line;
    FILE *fail_file;      /* --failures, or NULL */
    const char *fail_path;
    uint64_t n_failed;    /* failures reported so far */
    int fail_write_error;
} Report;

static Report rep;

/* Clear the progress line before a message. */
static void clear_line(void)
{
    if (rep.line_open) {
        fputs("\r\033[K", stderr);
        rep.line_open = 0;
    }
}

static void warn_cb(void *user, const char *msg)
{
    (void)user;
    clear_line();
    fprintf(stderr, PROG ": %s\n", msg);
}

static void tsv_field(FILE *f, const char *s)
{
    for (; *s; s++)
        fputc(*s == '\t' || *s == '\n' || *s == '\r' ? ' ' : *s, f);
}

static void fail_cb(void *user, const char *input, int64_t offset, const char *id, const char *reason)
{
    (void)user;
    if (rep.n_failed++ < MAX_PRINTED_FAILURES) {
        clear_line();
        if (offset >= 0)
            fprintf(stderr, PROG ": %s: offset %lld: %s\n", input, (long long)offset, reason);
        else
            fprintf(stderr, PROG ": %s: %s\n", input, reason);
    } else if (rep.n_failed == MAX_PRINTED_FAILURES + 1) {
        clear_line();
        fprintf(stderr, PROG ": more clips failed; %s\n",
                rep.fail_file ? "the failures file lists them all" : "--failures F.tsv lists them all");
    }
    if (rep.fail_file) {
        FILE *f = rep.fail_file;
        tsv_field(f, id);
        fputc('\t', f);
        tsv_field(f, input);
        fputc('\t', f);
        if (offset >= 0)
            fprintf(f, "%lld", (long long)offset);
        fputc('\t', f);
        tsv_field(f, reason);
        fputc('\n', f);
        if (fflush(f))
            rep.fail_write_error = errno ? errno : EIO;
    }
}

static void progress_cb(void *user, const PackStats *st, int final)
{
    (void)user;
    if (rep.quiet)
        return;
    uint64_t n = st->written + st->present + st->failed;
    double rate = st->seconds > 0 ? (double)n / st->seconds : 0;
    double mbs = st->seconds > 0 ? (double)st->bytes_in / st->seconds / 1e6 : 0;
    char eta[48] = "";
    if (st->bytes_total && st->bytes_in && !final) {
        double left = (double)(st->bytes_total - st->bytes_in) / ((double)st->bytes_in / st->seconds);
        snprintf(eta, sizeof eta, ", %.0f%%, ETA %d:%02d", 100.0 * (double)st->bytes_in / (double)st->bytes_total,
                 (int)left / 60, (int)left % 60);
    }
    if (rep.tty) {
        if (final) {
            clear_line();
        } else {
            fprintf(stderr, "\r\033[K" PROG ": %llu records, %.0f records/s, %.0f MB/s%s", (unsigned long long)n, rate,
                    mbs, eta);
            rep.line_open = 1;
        }
    } else if (!final && st->seconds - rep.last_line >= 10) { /* a log file gets a line every 10 s */
        rep.last_line = st->seconds;
        fprintf(stderr, PROG ": %llu records, %.0f records/s, %.0f MB/s%s\n", (unsigned long long)n, rate, mbs, eta);
    }
}

// --- option values -----------------------------------------------------------------------------

/* The option getopt stopped at, as the user wrote it: "--name" (without "=value") or "-x". */
static const char *opt_name(char *buf, size_t cap, const char *arg)
{
    if (strncmp(arg, "--", 2) == 0)
        snprintf(buf, cap, "%.*s", (int)strcspn(arg, "="), arg);
    else
        snprintf(buf, cap, "-%c", optopt > 0 && optopt < 256 ? optopt : '?');
    return buf;
}

static int parse_int(const char *s, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (!*s || *end || errno || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

typedef struct {
    int is_frac;
    double frac;
    uint64_t n;
    const char *text;
} MaxFail;

/* "N" (a count) or "F" with a decimal point (a fraction in [0, 1] of the clips seen). */
static int parse_max_failures(const char *s, MaxFail *m)
{
    m->text = s;
    char *end;
    if (strpbrk(s, ".eE")) {
        errno = 0;
        double f = strtod(s, &end);
        if (!*s || *end || errno || !isfinite(f) || f < 0 || f > 1)
            return -1;
        m->is_frac = 1;
        m->frac = f;
        return 0;
    }
    if (!*s || *s == '-' || *s == '+')
        return -1;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (*end || errno)
        return -1;
    m->is_frac = 0;
    m->n = v;
    return 0;
}

static int over_limit(const MaxFail *m, uint64_t failed, uint64_t total)
{
    return m->is_frac ? (double)failed > m->frac * (double)total : failed > m->n;
}

// --- --info and --verify ---------------------------------------------------------------------

/* "PROG: msg", with "path: " in front unless msg names the path already. */
static void print_about(FILE *f, const char *path, const char *msg)
{
    if (strncmp(msg, path, strlen(path)) == 0)
        fprintf(f, PROG ": %s\n", msg);
    else
        fprintf(f, PROG ": %s: %s\n", path, msg);
}

/* --info and --verify take each shard on its own: one that does not open is reported and counted,
 * and the others still run. */
static ShardSet *open_one(const char *path, int *n_bad, const char **first_bad, char *err)
{
    ShardSet *s;
    if (shardset_open(&s, &path, 1, err) == 0)
        return s;
    print_about(stderr, path, err);
    if (!(*n_bad)++)
        *first_bad = path;
    return NULL;
}

static int run_info(int json, char **paths, int n)
{
    json_t *all = json && n > 1 ? json_array() : NULL;
    int n_bad = 0;
    const char *first_bad = NULL;
    for (int k = 0; k < n; k++) {
        char err[LMR_ERRLEN] = "";
        ShardSet *s = open_one(paths[k], &n_bad, &first_bad, err);
        if (!s) {
            if (all) {
                json_t *o = json_object();
                json_object_set_new(o, "files", json_pack("[{s:s}]", "path", paths[k]));
                json_object_set_new(o, "error", json_string(err));
                json_array_append_new(all, o);
            }
            continue;
        }
        int rc;
        if (all) {
            json_t *o = pack_info_json(s, paths[k]);
            rc = o ? json_array_append_new(all, o) : LMR_ENOMEM;
        } else {
            if (k > 0 && !json)
                fputc('\n', stdout);
            rc = pack_info(s, paths[k], json, stdout);
        }
        shardset_close(&s);
        if (rc) {
            fprintf(stderr, PROG ": %s: --info: %s\n", paths[k], lmr_strerror(rc));
            if (!n_bad++)
                first_bad = paths[k];
        }
    }
    if (all) {
        if (json_dumpf(all, stdout, JSON_INDENT(1) | JSON_PRESERVE_ORDER))
            n_bad += !n_bad;
        fputc('\n', stdout);
        json_decref(all);
    }
    if (fflush(stdout)) {
        fprintf(stderr, PROG ": --info: writing the output: %s\n", strerror(errno));
        return 1;
    }
    if (n_bad) {
        fprintf(stderr, PROG ": --info: %d of %d shard%s could not be read, the first is %s\n", n_bad, n,
                n == 1 ? "" : "s", first_bad ? first_bad : "?");
        return 1;
    }
    return 0;
}

/* --reindex: open each LMDB shard as a writer and close it, which writes its index anew. */
static int run_reindex(char **paths, int n)
{
    int n_bad = 0;
    for (int k = 0; k < n; k++) {
        char err[LMR_ERRLEN] = "";
        int h5 = shard_is_hdf5(paths[k]);
        if (h5 != 0) {
            print_about(stderr, paths[k], h5 > 0 ? "an HDF5 shard: it opens without a walk already, nothing to do"
                                                 : strerror(-h5));
            n_bad += h5 < 0;
            continue;
        }
        ShardWriterOpts o = {SHARD_LMDB, 4, 64u << 20};
        ShardWriter *w = NULL;
        int rc = shardwriter_open(&w, paths[k], &o, err);
        if (!rc && (rc = shardwriter_close(&w)))
            snprintf(err, sizeof err, "%s", "writing the index failed");
        if (rc) {
            print_about(stderr, paths[k], err);
            n_bad++;
        } else {
            printf(PROG ": %s: index written\n", paths[k]);
        }
    }
    return n_bad ? 1 : 0;
}

/* --reduce mean: the shards' clips, each view averaged over T, into out. */
static int run_reduce(const char *out, const ShardWriterOpts *wo, int dtype, const char *const *paths, int n, int quiet)
{
    char err[LMR_ERRLEN] = "";
    int rc = lmr_check_outputs(paths, n, &out, 1, err);
    if (rc) {
        fprintf(stderr, PROG ": %s\n", err);
        return 2;
    }
    ShardSet *s = NULL;
    if ((rc = shardset_open(&s, paths, n, err))) {
        fprintf(stderr, PROG ": %s\n", err);
        return 1;
    }
    ShardWriter *w = NULL;
    if ((rc = shardwriter_open(&w, out, wo, err))) {
        fprintf(stderr, PROG ": %s\n", err);
        shardset_close(&s);
        return 1;
    }
    PackStats st;
    rc = pack_reduce_as(s, w, dtype, &st, err);
    int crc = shardwriter_close(&w);
    shardset_close(&s);
    if (rc || crc) {
        fprintf(stderr, PROG ": %s: %s\n", out, rc ? err : "closing the shard failed");
        return 1;
    }
    if (!quiet)
        printf(PROG ": %s: %llu clips reduced to their mean over T (%llu already present) in %.1f s\n", out,
               (unsigned long long)st.written, (unsigned long long)st.present, st.seconds);
    return 0;
}

static int run_verify(int threads, int quiet, char **paths, int n)
{
    int n_bad = 0;
    const char *first_bad = NULL;
    for (int k = 0; k < n; k++) {
        char err[LMR_ERRLEN] = "";
        ShardSet *s = open_one(paths[k], &n_bad, &first_bad, err);
        if (!s)
            continue;
        uint64_t total = shardset_count(s);
        VerifyStats vs;
        int rc = pack_verify(s, threads, &vs, err);
        shardset_close(&s);
        int istate = 0;
        char ierr[LMR_ERRLEN] = "";
        if (!rc && !vs.n_bad && (rc = shard_check_index(paths[k], &istate, ierr)))
            snprintf(err, sizeof err, "%s", ierr);
        if (!rc && istate != 1 && !quiet && !shard_is_hdf5(paths[k]))
            printf(PROG ": %s: %s; lmr-pack --reindex %s lets readers open it without reading every record\n", paths[k],
                   istate == 2 ? "its index is older than the file" : "no index", paths[k]);
        if (vs.n_bad) {
            int shown = vs.n_kept < 20 ? vs.n_kept : 20;
            for (int b = 0; b < shown; b++) {
                char msg[LMR_ERRLEN + 64];
                if (strncmp(vs.bad[b].msg, "record ", 7) == 0 && vs.bad[b].msg[7] >= '0' && vs.bad[b].msg[7] <= '9')
                    snprintf(msg, sizeof msg, "%s", vs.bad[b].msg);
                else
                    snprintf(msg, sizeof msg, "record %llu: %s", (unsigned long long)vs.bad[b].index, vs.bad[b].msg);
                print_about(stderr, paths[k], msg);
            }
            if (vs.n_bad > (uint64_t)shown)
                fprintf(stderr, PROG ": %s: ... and %llu more\n", paths[k], (unsigned long long)(vs.n_bad - shown));
            fprintf(stderr, PROG ": %s: %llu of %llu records are unreadable or bad\n", paths[k],
                    (unsigned long long)vs.n_bad, (unsigned long long)total);
        } else if (rc) {
            print_about(stderr, paths[k], err);
        } else if (!quiet) {
            double gbs = vs.seconds > 0 ? (double)vs.payload_bytes / vs.seconds / 1e9 : 0;
            if (total == 0)
                printf(PROG ": %s: the shard is empty (0 records)\n", paths[k]);
            else
                printf(PROG ": %s: verified %llu records, %.3f GB of payload in %.2f s (%.2f GB/s)\n", paths[k],
                       (unsigned long long)vs.n_checked, (double)vs.payload_bytes / 1e9, vs.seconds, gbs);
        }
        free(vs.bad);
        if (rc && !n_bad++)
            first_bad = paths[k];
    }
    if (n_bad) {
        fprintf(stderr, PROG ": --verify: %d of %d shard%s failed, the first is %s\n", n_bad, n, n == 1 ? "" : "s",
                first_bad);
        return 1;
    }
    return 0;
}

// --- packing -----------------------------------------------------------------------------------

/* What an existing shard holds, read before the writer opens it (exists = 0: no file, or empty). */
typedef struct {
    int exists, readable;
    uint64_t n;
    int dtype, n_classes;
    uint32_t views;
    int64_t dim;
} ShardState;

static void shard_state(const char *path, ShardState *st)
{
    memset(st, 0, sizeof *st);
    struct stat sb;
    if (stat(path, &sb) != 0)
        return;
    st->exists = 1;
    if (sb.st_size == 0)
        return;
    char err[LMR_ERRLEN];
    ShardSet *s;
    int rc = shardset_open(&s, &path, 1, err);
    if (rc == LMR_EEMPTY) { /* readable, and holds nothing */
        st->readable = 1;
        return;
    }
    if (rc)
        return; /* the writer says why */
    const ShardMeta *m = shardset_meta(s);
    st->readable = 1;
    st->n = shardset_count(s);
    st->dtype = m->kind == LMR_KIND_FEATURES ? m->dtype : 0;
    st->dim = m->kind == LMR_KIND_FEATURES ? m->dims[2] : 0;
    st->views = m->kind == LMR_KIND_FEATURES ? m->dims[0] : 0;
    st->n_classes = m->n_classes;
    shardset_close(&s);
}

/* The file system of path is full (or nearly): a write error there most likely means that. */
static int disk_full(const char *path, int rc, unsigned long long *free_bytes)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash)
        slash == dir ? (void)(slash[1] = 0) : (void)(*slash = 0);
    else
        snprintf(dir, sizeof dir, ".");
    struct statvfs vfs;
    *free_bytes = 0;
    int known = statvfs(dir, &vfs) == 0;
    if (known)
        *free_bytes = (unsigned long long)vfs.f_bavail * vfs.f_frsize;
    return rc == -ENOSPC || rc == -EDQUOT || (known && *free_bytes < (1u << 20));
}

static void remove_empty_shard(const char *out, ShardFormat format)
{
    unlink(out);
    if (format == SHARD_LMDB) {
        char lock[4096];
        snprintf(lock, sizeof lock, "%s-lock", out);
        unlink(lock);
    }
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"out", required_argument, 0, 'o'},           {"format", required_argument, 0, OPT_FORMAT},
        {"zstd-level", required_argument, 0, OPT_ZSTD}, {"deflate", required_argument, 0, OPT_DEFLATE},
        {"txn-mb", required_argument, 0, OPT_TXN},     {"dataset", required_argument, 0, OPT_DATASET},
        {"split", required_argument, 0, OPT_SPLIT},     {"classes", required_argument, 0, OPT_CLASSES},
        {"no-check", no_argument, 0, OPT_NOCHECK},      {"info", no_argument, 0, OPT_INFO},
        {"json", no_argument, 0, OPT_JSON},             {"verify", no_argument, 0, OPT_VERIFY},
        {"threads", required_argument, 0, OPT_THREADS}, {"from-videolt", required_argument, 0, OPT_VIDEOLT},
        {"labels", required_argument, 0, OPT_LABELS},   {"counts", required_argument, 0, OPT_COUNTS},
        {"max-frames", required_argument, 0, OPT_MAXFRAMES}, {"strict", no_argument, 0, OPT_STRICT},
        {"quiet", no_argument, 0, 'q'},                 {"help", no_argument, 0, 'h'},
        {"version", no_argument, 0, OPT_VERSION},       {"hdf5-zstd", no_argument, 0, OPT_H5ZSTD},
        {"max-failures", required_argument, 0, OPT_MAXFAIL}, {"failures", required_argument, 0, OPT_FAILURES},
        {"dtype", required_argument, 0, OPT_DTYPE},     {"from-npy", required_argument, 0, OPT_NPY},
        {"manifest", required_argument, 0, OPT_MANIFEST}, {"from-hdf5", required_argument, 0, OPT_HDF5},
        {"h5-features", required_argument, 0, OPT_H5FEAT}, {"h5-ids", required_argument, 0, OPT_H5IDS},
        {"h5-labels", required_argument, 0, OPT_H5LABELS}, {"class-names", required_argument, 0, OPT_CLASSNAMES},
        {"backbone", required_argument, 0, OPT_BACKBONE}, {"weights-checksum", required_argument, 0, OPT_WEIGHTS},
        {"reduce", required_argument, 0, OPT_REDUCE},   {"reindex", no_argument, 0, OPT_REINDEX},
        {0, 0, 0, 0}};
    const char *out = NULL, *videolt = NULL, *labels = NULL, *counts = NULL, *failures = NULL;
    const char *npy = NULL, *manifest = NULL, *hdf5 = NULL, *class_names = NULL;
    Hdf5Names h5n = {NULL, NULL, NULL};
    ShardWriterOpts wo = {SHARD_LMDB, 4, 64u << 20};
    ShardMeta hint;
    shardmeta_init(&hint);
    MaxFail maxfail = {0, 0, 0, "0"};
    long zstd = -1, threads = 2, max_frames = 0, v;
    int reduce = 0, reindex = 0;
    int info = 0, json = 0, verify = 0, quiet = 0, check = 1, strict = 0, dtype = 0, c;
    int threads_given = 0; /* --threads needs --verify */
    const char *import_opt = NULL, *videolt_opt = NULL, *h5_opt = NULL; /* options that need an importer */
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":o:qh", opts, NULL)) != -1) {
        const char *opt = argv[optind - 1]; /* the argument holding the option, for messages */
        switch (c) {
        case 'o': out = optarg; break;
        case OPT_FORMAT:
            if (strcmp(optarg, "lmdb") == 0)
                wo.format = SHARD_LMDB;
            else if (strcmp(optarg, "hdf5") == 0)
                wo.format = SHARD_HDF5;
            else
                return usage_error("--format: '%s' is not lmdb or hdf5", optarg);
            break;
        case OPT_ZSTD:
            if (parse_int(optarg, 0, 22, &zstd))
                return usage_error("--zstd-level: '%s' is not an integer in [0, 22]", optarg);
            break;
        case OPT_DEFLATE:
            if (parse_int(optarg, 0, 9, &v))
                return usage_error("--deflate: '%s' is not an integer in [0, 9]", optarg);
            wo.deflate_level = (int)v;
            break;
        case OPT_TXN:
            if (parse_int(optarg, 1, 1 << 20, &v))
                return usage_error("--txn-mb: '%s' is not an integer in [1, 1048576]", optarg);
            wo.txn_bytes = (uint64_t)v << 20;
            break;
        case OPT_DATASET: snprintf(hint.dataset, sizeof hint.dataset, "%s", optarg); break;
        case OPT_SPLIT: snprintf(hint.split, sizeof hint.split, "%s", optarg); break;
        case OPT_CLASSES:
            if (parse_int(optarg, 1, 1 << 24, &v))
                return usage_error("--classes: '%s' is not an integer in [1, 16777216]", optarg);
            hint.n_classes = (int)v;
            break;
        case OPT_NOCHECK: check = 0; break;
        case OPT_H5ZSTD: wo.deflate_level = -1; break;
        case OPT_INFO: info = 1; break;
        case OPT_JSON: json = 1; break;
        case OPT_VERIFY: verify = 1; break;
        case OPT_REINDEX: reindex = 1; break;
        case OPT_REDUCE:
            if (strcmp(optarg, "mean"))
                return usage_error("--reduce: '%s' is not a reduction (mean)", optarg);
            reduce = 1;
            break;
        case OPT_THREADS:
            if (parse_int(optarg, 1, 64, &threads))
                return usage_error("--threads: '%s' is not an integer in [1, 64]", optarg);
            threads_given = 1;
            break;
        case OPT_VIDEOLT: videolt = optarg; break;
        case OPT_LABELS: labels = optarg; videolt_opt = "--labels"; break;
        case OPT_COUNTS: counts = optarg; videolt_opt = "--counts"; break;
        case OPT_NPY: npy = optarg; break;
        case OPT_MANIFEST: manifest = optarg; break;
        case OPT_HDF5: hdf5 = optarg; break;
        case OPT_H5FEAT: h5n.features = optarg; h5_opt = "--h5-features"; break;
        case OPT_H5IDS: h5n.ids = optarg; h5_opt = "--h5-ids"; break;
        case OPT_H5LABELS: h5n.labels = optarg; h5_opt = "--h5-labels"; break;
        case OPT_CLASSNAMES: class_names = optarg; import_opt = "--class-names"; break;
        case OPT_BACKBONE:
            if (!optarg[0] || strlen(optarg) >= sizeof hint.backbone || strpbrk(optarg, " \t\n\r"))
                return usage_error("--backbone: '%s' is not a name of 1 to %zu characters without blanks", optarg,
                                   sizeof hint.backbone - 1);
            snprintf(hint.backbone, sizeof hint.backbone, "%s", optarg);
            import_opt = "--backbone";
            break;
        case OPT_WEIGHTS:
            if (!optarg[0] || strlen(optarg) >= sizeof hint.weights_checksum || strpbrk(optarg, " \t\n\r"))
                return usage_error("--weights-checksum: '%s' is not a digest of 1 to %zu characters without blanks",
                                   optarg, sizeof hint.weights_checksum - 1);
            snprintf(hint.weights_checksum, sizeof hint.weights_checksum, "%s", optarg);
            import_opt = "--weights-checksum";
            break;
        case OPT_MAXFRAMES:
            if (parse_int(optarg, 0, 1 << 30, &max_frames))
                return usage_error("--max-frames: '%s' is not an integer >= 0", optarg);
            import_opt = "--max-frames";
            break;
        case OPT_STRICT: strict = 1; import_opt = "--strict"; break;
        case OPT_DTYPE:
            if (strcmp(optarg, "f16") == 0)
                dtype = LMR_DT_F16;
            else if (strcmp(optarg, "f32") == 0)
                dtype = LMR_DT_F32;
            else
                return usage_error("--dtype: '%s' is not f16 or f32", optarg);
            import_opt = "--dtype";
            break;
        case OPT_MAXFAIL:
            if (parse_max_failures(optarg, &maxfail))
                return usage_error("--max-failures: '%s' is not a count N >= 0 or a fraction in [0, 1] such as 0.01",
                                   optarg);
            break;
        case OPT_FAILURES: failures = optarg; break;
        case 'q': quiet = 1; break;
        case 'h': fputs(usage, stdout); return 0;
        case OPT_VERSION: printf("lmr-pack %s\n", LMR_VERSION); return 0;
        case ':': {
            char name[128];
            return usage_error("option '%s' needs a value", opt_name(name, sizeof name, opt));
        }
        default: {
            char name[128];
            return usage_error("unknown option '%s'", opt_name(name, sizeof name, opt));
        }
        }
    }
    int n_inputs = argc - optind;
    if (reindex) {
        if (info || verify || reduce || out)
            return usage_error("--reindex SHARD... is a run of its own");
        if (n_inputs < 1)
            return usage_error("--reindex needs at least one SHARD");
        return run_reindex(argv + optind, n_inputs);
    }
    if (reduce) {
        if (info || verify)
            return usage_error("--reduce copies shards: not with --info or --verify");
        if (!out || n_inputs < 1)
            return usage_error("--reduce mean needs -o OUT and at least one SHARD");
        if (import_opt && strcmp(import_opt, "--dtype"))
            return usage_error("%s goes with --from-npy, --from-hdf5 or --from-videolt", import_opt);
        return run_reduce(out, &wo, dtype ? dtype : LMR_DT_F32, (const char *const *)argv + optind, n_inputs, quiet);
    }
    if (info || verify) {
        if (info && verify)
            return usage_error("--info and --verify are separate runs");
        if (out)
            return usage_error("%s reads shards and writes none: drop -o", info ? "--info" : "--verify");
        if (n_inputs < 1)
            return usage_error("%s needs at least one SHARD", info ? "--info" : "--verify");
        if (json && !info)
            return usage_error("--json goes with --info");
        if (threads_given && !verify)
            return usage_error("--threads goes with --verify");
        return info ? run_info(json, argv + optind, n_inputs) : run_verify((int)threads, quiet, argv + optind, n_inputs);
    }
    if (json)
        return usage_error("--json goes with --info");
    if (threads_given)
        return usage_error("--threads goes with --verify");
    if (!out)
        return usage_error("-o is required");
    const char *from = videolt ? "--from-videolt" : npy ? "--from-npy" : hdf5 ? "--from-hdf5" : NULL;
    if (!!videolt + !!npy + !!hdf5 > 1)
        return usage_error("--from-npy, --from-hdf5 and --from-videolt are separate runs");
    if (from) {
        const char *arg = videolt ? videolt : npy ? npy : hdf5;
        if (!arg[0])
            return usage_error("%s: the %s name is empty", from, hdf5 ? "file" : "folder");
        if (n_inputs)
            return usage_error("%s takes no F.rec inputs ('%s')", from, argv[optind]);
        if (videolt && !labels)
            return usage_error("--from-videolt needs --labels F.lst");
        if (npy && !manifest)
            return usage_error("--from-npy needs --manifest M.csv");
        if (videolt_opt && !videolt)
            return usage_error("%s goes with --from-videolt", videolt_opt);
        if (manifest && !npy)
            return usage_error("--manifest goes with --from-npy");
        if (h5_opt && !hdf5)
            return usage_error("%s goes with --from-hdf5", h5_opt);
        if (class_names && videolt)
            return usage_error("--class-names goes with --from-npy or --from-hdf5 (VideoLT: --counts)");
        if ((h5n.features && !h5n.features[0]) || (h5n.ids && !h5n.ids[0]) || (h5n.labels && !h5n.labels[0]))
            return usage_error("--h5-features, --h5-ids, --h5-labels: the dataset name is empty");
    } else {
        if (videolt_opt)
            return usage_error("%s goes with --from-videolt", videolt_opt);
        if (manifest)
            return usage_error("--manifest goes with --from-npy");
        if (h5_opt)
            return usage_error("%s goes with --from-hdf5", h5_opt);
        if (import_opt)
            return usage_error("%s goes with --from-npy, --from-hdf5 or --from-videolt", import_opt);
        if (n_inputs < 1)
            return usage_error("no input: give F.rec files, - for stdin, --from-npy DIR, --from-hdf5 F or "
                               "--from-videolt DIR");
    }

    /* never write over an input: every stream and sidecar, the lists, the HDF5 file */
    int n_in = 0;
    const char *lists[] = {labels, counts, manifest, hdf5, class_names};
    const char **ins = calloc((size_t)(2 * n_inputs) + sizeof lists / sizeof lists[0], sizeof *ins);
    char **sidecars = calloc((size_t)(n_inputs + 1), sizeof *sidecars);
    if (!ins || !sidecars) {
        fprintf(stderr, PROG ": out of memory\n");
        return 1;
    }
    for (size_t k = 0; k < sizeof lists / sizeof lists[0]; k++)
        if (lists[k])
            ins[n_in++] = lists[k];
    for (int k = 0; k < n_inputs; k++) {
        ins[n_in++] = argv[optind + k];
        size_t len = strlen(argv[optind + k]) + sizeof ".meta.json";
        if ((sidecars[k] = malloc(len))) {
            snprintf(sidecars[k], len, "%s.meta.json", argv[optind + k]);
            ins[n_in++] = sidecars[k];
        }
    }
    const char *outs[2] = {out, failures};
    char err[LMR_ERRLEN] = "";
    int rc = lmr_check_outputs(ins, n_in, outs, 2, err);
    for (int k = 0; k < n_inputs; k++)
        free(sidecars[k]);
    free(sidecars);
    free(ins);
    if (rc) {
        fprintf(stderr, PROG ": %s\n", err);
        return 2;
    }

    ShardState before;
    shard_state(out, &before);
    if (from && dtype && before.dtype && dtype != before.dtype) {
        fprintf(stderr, PROG ": %s holds %s features; --dtype %s records cannot be added to it\n", out,
                before.dtype == LMR_DT_F32 ? "f32" : "f16", dtype == LMR_DT_F32 ? "f32" : "f16");
        return 1;
    }
    rep.tty = isatty(2);
    rep.quiet = quiet;
    rep.fail_path = failures;
    if (failures) {
        if (!(rep.fail_file = fopen(failures, "w"))) {
            fprintf(stderr, PROG ": %s: cannot open: %s\n", failures, strerror(errno));
            return 1;
        }
        fputs("clip_id\tinput\toffset\treason\n", rep.fail_file);
    }
    ShardWriter *w;
    rc = shardwriter_open(&w, out, &wo, err);
    if (rc) {
        fprintf(stderr, PROG ": %s\n", err);
        if (rep.fail_file)
            fclose(rep.fail_file);
        return 1;
    }
    uint64_t written = 0, present = 0, failed = 0, total = 0;
    int stopped = 0, empty = 0;
    double seconds = 0;
    const char *unit = "records";
    if (from) {
        ImportOpts io = {.max_frames = (int)max_frames, .zstd_level = zstd >= 0 ? (int)zstd : 3, .strict = strict,
                         .fail = fail_cb, .progress = progress_cb};
        io.dtype = dtype ? dtype : before.dtype;
        io.views = before.views;
        io.dim = before.dim;
        /* VideoLT's class count is declared (--counts, else the shard's); elsewhere a shard's count may
         * only be the largest label stored so far, which must not refuse the clips a re-run adds */
        io.n_classes = hint.n_classes ? hint.n_classes : videolt && !counts ? before.n_classes : 0;
        io.hint = &hint;
        ImportStats is;
        Importer *im;
        ImportSource src;
        rc = importer_new(&im, &io, w, warn_cb, NULL, &is);
        if (rc) {
            snprintf(err, sizeof err, "out of memory");
        } else {
            rc = videolt ? import_videolt_open(&src, im, videolt, labels, counts, io.n_classes, strict, warn_cb, NULL, err)
                 : npy   ? import_npy_open(&src, im, npy, manifest, class_names, io.n_classes, strict, err)
                         : import_hdf5_open(&src, im, hdf5, &h5n, class_names, io.n_classes, err);
            if (rc) {
                importer_free(im);
            } else {
                rc = import_run(im, &src, err);
                videolt ? import_videolt_close(&src) : npy ? import_npy_close(&src) : import_hdf5_close(&src);
            }
        }
        written = is.written, present = is.present, failed = is.failed, seconds = is.seconds;
        total = is.listed + is.bad_lines;
        unit = "clips";
    } else {
        PackOpts po = {(int)zstd, check, &hint, warn_cb, NULL, fail_cb, NULL, progress_cb, NULL};
        PackStats st;
        rc = pack_run(w, (const char *const *)argv + optind, n_inputs, &po, &st, err);
        written = st.written, present = st.present, failed = st.failed, seconds = st.seconds;
        total = st.written + st.present + st.failed;
        stopped = st.stopped_inputs, empty = st.empty_inputs;
    }
    clear_line();
    /* close even after a failure: every record committed so far is whole, and a re-run resumes */
    int crc = shardwriter_close(&w);
    int fatal = rc ? rc : crc;
    if (!rc && crc)
        snprintf(err, sizeof err, "%s: closing: %s", out, lmr_strerror(crc));
    /* after a write error, count what the shard really holds: records put since its last commit
     * are not in it */
    int committed_known = 1;
    if (fatal) {
        ShardState after;
        shard_state(out, &after);
        committed_known = after.readable;
        written = after.readable && after.n > before.n ? after.n - before.n : 0;
    }
    int removed = 0;
    if (!before.exists && written == 0 && present == 0 && committed_known) {
        remove_empty_shard(out, wo.format);
        removed = 1;
    }
    if (rep.fail_file && (fclose(rep.fail_file) || rep.fail_write_error)) {
        fprintf(stderr, PROG ": %s: writing the failures list failed\n", failures);
        if (!fatal)
            fatal = LMR_EIO, snprintf(err, sizeof err, "%s: cannot be written", failures);
    }
    if (!quiet && (!fatal || written + present + failed > 0)) {
        char done[64];
        if (committed_known)
            snprintf(done, sizeof done, "%llu written%s", (unsigned long long)written,
                     fatal ? " (committed before the error)" : "");
        else
            snprintf(done, sizeof done, "written: unknown (the shard cannot be reopened)");
        fprintf(stderr, PROG ": %s: %s, %llu already present, %llu failed in %.1f s", out, done,
                (unsigned long long)present, (unsigned long long)failed, seconds);
        if (!from && seconds > 0)
            fprintf(stderr, " (%.0f records/s)", (double)(written + present + failed) / seconds);
        fputc('\n', stderr);
    }
    if (fatal) {
        unsigned long long free_bytes;
        int write_error = fatal == LMR_EIO || fatal == LMR_ELMDB || fatal == LMR_EHDF5 || fatal > -1000;
        if (write_error && disk_full(out, fatal, &free_bytes) && !strstr(err, "No space left"))
            fprintf(stderr, PROG ": %s (no space left on device: %llu KiB free where %s is)\n", err, free_bytes >> 10,
                    out);
        else
            fprintf(stderr, PROG ": %s\n", err);
        return 1;
    }
    /* the verdict: what went wrong, how many clips failed against --max-failures, where the list is */
    int over = over_limit(&maxfail, failed, total);
    char where[4200];
    if (failures)
        snprintf(where, sizeof where, "the list is in %s", failures);
    else
        snprintf(where, sizeof where, "they are listed above (--failures F.tsv keeps a list)");
    if (!stopped && !empty && !over) {
        if (failed)
            fprintf(stderr, PROG ": %llu of %llu %s failed, within --max-failures %s; %s\n", (unsigned long long)failed,
                    (unsigned long long)total, unit, maxfail.text, where);
        return 0;
    }
    fprintf(stderr, PROG ":");
    const char *sep = " ";
    if (stopped) {
        fprintf(stderr, "%s%d input%s stopped at a corrupt record", sep, stopped, stopped == 1 ? "" : "s");
        sep = "; ";
    }
    if (empty) {
        fprintf(stderr, "%s%d input%s without records", sep, empty, empty == 1 ? "" : "s");
        sep = "; ";
    }
    if (failed || over)
        fprintf(stderr, "%s%llu of %llu %s failed%s%s%s; %s", sep, (unsigned long long)failed, (unsigned long long)total,
                unit, over ? ", more than --max-failures " : "", over ? maxfail.text : "", over ? " allows" : "", where);
    if (removed)
        fprintf(stderr, "%snothing stored, no shard written", sep);
    fputc('\n', stderr);
    return 1;
}
