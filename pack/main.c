/* lmr-pack: record streams -> LMDB or HDF5 shards (resumable), VideoLT feature import, and the
 * --info / --verify tools. Only this file prints or exits. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pack.h"
#include "videolt.h"

static const char usage[] =
    "usage: lmr-pack [--format lmdb|hdf5] [options] -o SHARD [F.rec ... | -]\n"
    "       lmr-pack --from-videolt DIR --labels F.lst [--counts F] [--max-frames N] -o SHARD\n"
    "       lmr-pack --info SHARD... [--json]\n"
    "       lmr-pack --verify SHARD... [--threads N]\n"
    "\n"
    "Pack clip records (.rec streams from lmr-extract; - = stdin) into a shard. Re-running the\n"
    "same command resumes: records already stored are skipped, never written twice.\n"
    "\n"
    "  -o, --out SHARD     shard to create or complete\n"
    "  --format F          lmdb (default) or hdf5\n"
    "  --zstd-level N      re-encode payloads at zstd level N (0 = raw); default: keep as given\n"
    "  --deflate N         HDF5: shuffle + deflate level 1..9 (default 4), 0 = no filter\n"
    "  --hdf5-zstd         HDF5: shuffle + zstd (filter 32015; readers need the plugin)\n"
    "  --txn-mb N          LMDB: MiB per write transaction (default 64)\n"
    "  --dataset NAME      metadata: dataset name (overrides F.rec.meta.json)\n"
    "  --split NAME        metadata: split name\n"
    "  --classes N         metadata: number of classes\n"
    "  --no-check          do not verify payload checksums while packing\n"
    "  --info              print metadata and the class histogram of SHARD... (--json: as JSON)\n"
    "  --verify            read every record, check every checksum; exit 1 naming the first bad one\n"
    "  --threads N         threads for --verify (default 2)\n"
    "  --from-videolt DIR  import VideoLT's <DIR>/<video_id>.npy features with --labels F.lst\n"
    "  --labels F          VideoLT list file (<video_id> <label>[,<label>...])\n"
    "  --counts F          VideoLT class count list (gives n_classes)\n"
    "  --max-frames N      keep N evenly spaced frames per video (0 = all)\n"
    "  --strict            fail on the first bad VideoLT file instead of skipping it\n"
    "  -q, --quiet         no progress line, no summary\n"
    "  -h, --help          this text\n"
    "  --version           print the version\n";

enum { OPT_FORMAT = 256, OPT_ZSTD, OPT_DEFLATE, OPT_TXN, OPT_DATASET, OPT_SPLIT, OPT_CLASSES, OPT_NOCHECK,
       OPT_INFO, OPT_JSON, OPT_VERIFY, OPT_THREADS, OPT_VIDEOLT, OPT_LABELS, OPT_COUNTS, OPT_MAXFRAMES,
       OPT_STRICT, OPT_VERSION, OPT_H5ZSTD };

typedef struct {
    int tty, quiet;
    double last_line;
} Progress;

static void warn_cb(void *user, const char *msg)
{
    (void)user;
    fprintf(stderr, "lmr-pack: %s\n", msg);
}

static void progress_cb(void *user, const PackStats *st, int final)
{
    Progress *p = user;
    if (p->quiet)
        return;
    uint64_t n = st->written + st->present;
    double rate = st->seconds > 0 ? (double)n / st->seconds : 0;
    double mbs = st->seconds > 0 ? (double)st->bytes_in / st->seconds / 1e6 : 0;
    char eta[32] = "";
    if (st->bytes_total && st->bytes_in && !final) {
        double left = (double)(st->bytes_total - st->bytes_in) / ((double)st->bytes_in / st->seconds);
        snprintf(eta, sizeof eta, ", ETA %d:%02d", (int)left / 60, (int)left % 60);
    }
    if (p->tty) {
        fprintf(stderr, "\rlmr-pack: %llu records, %.0f records/s, %.0f MB/s%s   ", (unsigned long long)n, rate, mbs,
                eta);
        if (final)
            fputc('\n', stderr);
    } else if (!final && st->seconds - p->last_line >= 10) { /* a log file gets a line every 10 s */
        p->last_line = st->seconds;
        fprintf(stderr, "lmr-pack: %llu records, %.0f records/s, %.0f MB/s%s\n", (unsigned long long)n, rate, mbs, eta);
    }
}

static int parse_int(const char *s, long lo, long hi, long *out)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (!*s || *end || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

static int run_info_verify(int verify, int json, int threads, int quiet, char **paths, int n)
{
    char err[LMR_ERRLEN] = "";
    ShardSet *s;
    int rc = shardset_open(&s, (const char *const *)paths, n, err);
    if (rc) {
        fprintf(stderr, "lmr-pack: %s\n", err);
        return 1;
    }
    if (!verify) {
        rc = pack_info(s, (const char *const *)paths, n, json, stdout);
        shardset_close(&s);
        if (rc)
            fprintf(stderr, "lmr-pack: --info: %s\n", lmr_strerror(rc));
        return rc ? 1 : 0;
    }
    VerifyStats vs;
    rc = pack_verify(s, threads, &vs, err);
    shardset_close(&s);
    double gbs = vs.seconds > 0 ? (double)vs.payload_bytes / vs.seconds / 1e9 : 0;
    if (rc) {
        fprintf(stderr, "lmr-pack: %s: %s\n", n == 1 ? paths[0] : "shard set", err);
        return 1;
    }
    if (!quiet)
        printf("lmr-pack: verified %llu records, %.3f GB of payload in %.2f s (%.2f GB/s)\n",
               (unsigned long long)vs.n_checked, (double)vs.payload_bytes / 1e9, vs.seconds, gbs);
    return 0;
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
        {0, 0, 0, 0}};
    const char *out = NULL, *videolt = NULL, *labels = NULL, *counts = NULL;
    ShardWriterOpts wo = {SHARD_LMDB, 4, 64u << 20};
    ShardMeta hint;
    shardmeta_init(&hint);
    long zstd = -1, threads = 2, max_frames = 0, v;
    int info = 0, json = 0, verify = 0, quiet = 0, check = 1, strict = 0, c;
    while ((c = getopt_long(argc, argv, "o:qh", opts, NULL)) != -1) {
        switch (c) {
        case 'o': out = optarg; break;
        case OPT_FORMAT:
            if (strcmp(optarg, "lmdb") == 0)
                wo.format = SHARD_LMDB;
            else if (strcmp(optarg, "hdf5") == 0)
                wo.format = SHARD_HDF5;
            else
                goto bad_usage;
            break;
        case OPT_ZSTD: if (parse_int(optarg, 0, 22, &zstd)) goto bad_usage; break;
        case OPT_DEFLATE: if (parse_int(optarg, 0, 9, &v)) goto bad_usage; wo.deflate_level = (int)v; break;
        case OPT_TXN: if (parse_int(optarg, 1, 1 << 20, &v)) goto bad_usage; wo.txn_bytes = (uint64_t)v << 20; break;
        case OPT_DATASET: snprintf(hint.dataset, sizeof hint.dataset, "%s", optarg); break;
        case OPT_SPLIT: snprintf(hint.split, sizeof hint.split, "%s", optarg); break;
        case OPT_CLASSES: if (parse_int(optarg, 1, 1 << 24, &v)) goto bad_usage; hint.n_classes = (int)v; break;
        case OPT_NOCHECK: check = 0; break;
        case OPT_H5ZSTD: wo.deflate_level = -1; break;
        case OPT_INFO: info = 1; break;
        case OPT_JSON: json = 1; break;
        case OPT_VERIFY: verify = 1; break;
        case OPT_THREADS: if (parse_int(optarg, 1, 64, &threads)) goto bad_usage; break;
        case OPT_VIDEOLT: videolt = optarg; break;
        case OPT_LABELS: labels = optarg; break;
        case OPT_COUNTS: counts = optarg; break;
        case OPT_MAXFRAMES: if (parse_int(optarg, 0, 1 << 30, &max_frames)) goto bad_usage; break;
        case OPT_STRICT: strict = 1; break;
        case 'q': quiet = 1; break;
        case 'h': fputs(usage, stdout); return 0;
        case OPT_VERSION: printf("lmr-pack %s\n", LMR_VERSION); return 0;
        default: goto bad_usage;
        }
    }
    if (info || verify) {
        if (info + verify > 1 || out || optind >= argc)
            goto bad_usage;
        return run_info_verify(verify, json, (int)threads, quiet, argv + optind, argc - optind);
    }
    if (!out || (videolt && (!labels || optind < argc)) || (!videolt && optind >= argc))
        goto bad_usage;

    char err[LMR_ERRLEN] = "";
    ShardWriter *w;
    int rc = shardwriter_open(&w, out, &wo, err);
    if (rc) {
        fprintf(stderr, "lmr-pack: %s\n", err);
        return 1;
    }
    Progress prog = {isatty(2), quiet, 0};
    if (videolt) {
        VideoltImportOpts vo = {videolt, labels, counts, (int)max_frames, zstd >= 0 ? (int)zstd : 3, strict, quiet};
        VideoltStats vs;
        memset(&vs, 0, sizeof vs);
        if (hint.dataset[0] || hint.split[0] || hint.n_classes)
            rc = shardwriter_set_meta(w, &hint);
        if (rc)
            snprintf(err, sizeof err, "%s", shardwriter_error(w));
        else
            rc = videolt_import(&vo, w, warn_cb, NULL, &vs, err);
        if (!quiet)
            fprintf(stderr, "lmr-pack: %s: %llu listed, %llu written, %llu already present, %llu skipped in %.1f s\n",
                    out, (unsigned long long)vs.listed, (unsigned long long)vs.written,
                    (unsigned long long)vs.present, (unsigned long long)vs.skipped, vs.seconds);
    } else {
        PackOpts po = {(int)zstd, check, &hint, warn_cb, NULL, progress_cb, &prog};
        PackStats st;
        rc = pack_run(w, (const char *const *)argv + optind, argc - optind, &po, &st, err);
        if (!quiet)
            fprintf(stderr, "lmr-pack: %s: %llu written, %llu already present, %llu skipped in %.1f s (%.0f records/s)\n",
                    out, (unsigned long long)st.written, (unsigned long long)st.present,
                    (unsigned long long)st.skipped, st.seconds,
                    st.seconds > 0 ? (double)(st.written + st.present) / st.seconds : 0.0);
    }
    /* close even after a failure: every record put so far is whole, and a re-run resumes */
    int crc = shardwriter_close(&w);
    shardmeta_free(&hint);
    if (rc) {
        fprintf(stderr, "lmr-pack: %s\n", err);
        return 1;
    }
    if (crc) {
        fprintf(stderr, "lmr-pack: %s: closing: %s\n", out, lmr_strerror(crc));
        return 1;
    }
    return 0;
bad_usage:
    fputs(usage, stderr);
    shardmeta_free(&hint);
    return 2;
}
