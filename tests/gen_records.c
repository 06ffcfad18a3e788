/* Test input generator: writes N random clip records to a .rec stream (and optionally a sidecar
 * F.rec.meta.json), deterministic for a seed. Used by the shell and Python tests and the bench.
 * usage: gen_records OUT.rec N [--kind features|frames] [--dtype u8|f16|f32] [--views V] [--t T]
 *        [--t-max T] [--d D] [--classes C] [--multi] [--level L] [--seed S] [--prefix P]
 *        [--backbone NAME] [--meta JSON]
 * --meta writes a stream metadata record (kind 3, payload = JSON as given) before the clips. */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "record.h"

static uint64_t next_u64(uint64_t *s) /* splitmix64 */
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"kind", 1, 0, 'k'}, {"dtype", 1, 0, 'y'}, {"views", 1, 0, 'v'}, {"t", 1, 0, 't'}, {"t-max", 1, 0, 'T'},
        {"d", 1, 0, 'd'}, {"classes", 1, 0, 'c'}, {"multi", 0, 0, 'm'}, {"level", 1, 0, 'l'}, {"seed", 1, 0, 's'},
        {"prefix", 1, 0, 'p'}, {"backbone", 1, 0, 'b'}, {"meta", 1, 0, 'M'}, {0, 0, 0, 0}};
    int kind = LMR_KIND_FEATURES, dtype = LMR_DT_F16, views = 1, t = 8, t_max = 0, d = 64, classes = 10, multi = 0,
        level = 3, c;
    uint64_t seed = 1;
    const char *prefix = "clip", *backbone = NULL, *meta = NULL;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'k': kind = strcmp(optarg, "frames") == 0 ? LMR_KIND_FRAMES : LMR_KIND_FEATURES; break;
        case 'y': dtype = strcmp(optarg, "u8") == 0 ? LMR_DT_U8 : strcmp(optarg, "f32") == 0 ? LMR_DT_F32 : LMR_DT_F16; break;
        case 'v': views = atoi(optarg); break;
        case 't': t = atoi(optarg); break;
        case 'T': t_max = atoi(optarg); break;
        case 'd': d = atoi(optarg); break;
        case 'c': classes = atoi(optarg); break;
        case 'm': multi = 1; break;
        case 'l': level = atoi(optarg); break;
        case 's': seed = strtoull(optarg, NULL, 10); break;
        case 'p': prefix = optarg; break;
        case 'b': backbone = optarg; break;
        case 'M': meta = optarg; break;
        default: fprintf(stderr, "gen_records: bad option\n"); return 2;
        }
    }
    if (argc - optind != 2) {
        fprintf(stderr, "usage: gen_records OUT.rec N [options]\n");
        return 2;
    }
    const char *path = argv[optind];
    long n = atol(argv[optind + 1]);
    FILE *f = strcmp(path, "-") ? fopen(path, "wb") : stdout;
    if (!f) {
        perror(path);
        return 1;
    }
    RecordCtx ctx;
    if (record_ctx_init(&ctx, level))
        return 1;
    LmrBuf rec, pay;
    buf_init(&rec);
    buf_init(&pay);
    int rc = 0;
    if (meta) {
        RecordInfo mi = {.kind = LMR_KIND_META, .dtype = LMR_DT_U8, .ndim = 1, .id = LMR_META_ID};
        mi.id_len = (uint16_t)strlen(LMR_META_ID);
        mi.dims[0] = (uint32_t)strlen(meta);
        if (record_encode(&ctx, &mi, meta, &rec) || fwrite(rec.data, 1, rec.len, f) != rec.len) {
            fprintf(stderr, "gen_records: metadata record: %s\n", ctx.last_error);
            rc = 1;
        }
    }
    for (long i = 0; i < n && !rc; i++) {
        RecordInfo info;
        memset(&info, 0, sizeof info);
        char id[96];
        snprintf(id, sizeof id, "%s%07ld", prefix, i);
        info.id = id;
        info.id_len = (uint16_t)strlen(id);
        info.kind = (uint8_t)kind;
        info.dtype = (uint8_t)dtype;
        info.ndim = 4;
        int ti = t_max > t ? t + (int)(next_u64(&seed) % (uint64_t)(t_max - t + 1)) : t;
        if (kind == LMR_KIND_FEATURES) {
            info.dims[0] = (uint32_t)views, info.dims[1] = (uint32_t)ti, info.dims[2] = (uint32_t)d, info.dims[3] = 1;
        } else {
            info.dims[0] = (uint32_t)views, info.dims[1] = (uint32_t)ti, info.dims[2] = (uint32_t)d;
            info.dims[3] = (uint32_t)d * 3;
        }
        /* long-tailed labels: class k drawn with weight 1/(k+1) */
        info.n_labels = multi ? 1 + (uint16_t)(next_u64(&seed) % 3) : 1;
        for (int k = 0; k < info.n_labels; k++) {
            double u = (double)(next_u64(&seed) >> 11) / 9007199254740992.0, h = 0, tot = 0;
            for (int j = 0; j < classes; j++)
                tot += 1.0 / (j + 1);
            int lab = classes - 1;
            for (int j = 0; j < classes; j++) {
                h += 1.0 / (j + 1) / tot;
                if (u < h) {
                    lab = j;
                    break;
                }
            }
            info.labels[k] = lab;
        }
        size_t elems = (size_t)info.dims[0] * info.dims[1] * info.dims[2] * info.dims[3];
        if (buf_reserve(&pay, elems * 4)) {
            rc = 1;
            break;
        }
        for (size_t e = 0; e < elems; e++) {
            uint64_t r = next_u64(&seed);
            if (dtype == LMR_DT_U8) {
                pay.data[e] = (uint8_t)((r & 0x3f) + 100); /* some redundancy, like pixels */
            } else {
                float x = (float)((double)(r >> 40) / 16777216.0 * 4.0 - 2.0);
                x = roundf(x * 64) / 64; /* features round-trip exactly through f16 */
                if (dtype == LMR_DT_F32)
                    memcpy(pay.data + 4 * e, &x, 4);
                else
                    lmr_f32_to_f16(&x, (uint16_t *)(void *)(pay.data + 2 * e), 1);
            }
        }
        if (record_encode(&ctx, &info, pay.data, &rec) || fwrite(rec.data, 1, rec.len, f) != rec.len) {
            fprintf(stderr, "gen_records: %s\n", ctx.last_error);
            rc = 1;
        }
    }
    if (f != stdout && fclose(f))
        rc = 1;
    if (!rc && backbone && strcmp(path, "-")) {
        char side[1024];
        snprintf(side, sizeof side, "%s.meta.json", path);
        FILE *s = fopen(side, "w");
        if (!s)
            return 1;
        fprintf(s, "{\"dataset\": \"synthetic\", \"split\": \"train\", \"n_classes\": %d, \"frames\": %d, "
                   "\"size\": 0, \"backbone\": \"%s\", \"weights_checksum\": \"00112233aabbccdd\"}\n",
                classes, t, backbone);
        fclose(s);
    }
    buf_free(&rec);
    buf_free(&pay);
    record_ctx_free(&ctx);
    return rc;
}
