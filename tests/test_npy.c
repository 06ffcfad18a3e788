/* NPY parser: files written by numpy (tests/npy_fixtures.py, run with LMR_PYTHON) in header
 * versions 1.0 / 2.0 / 3.0 must read back numpy's exact bytes; truncated, wrong-dtype,
 * Fortran-order, big-endian and malformed files must be refused with the right code and a
 * message naming the file. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "npy.h"

static char dir[256];

static int read_raw(const char *name, LmrBuf *b)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s.raw", dir, name);
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    buf_reserve(b, (size_t)n + 1);
    b->len = fread(b->data, 1, (size_t)n, f);
    fclose(f);
    return b->len == (size_t)n ? 0 : -1;
}

static void good(NpyArray *a, const char *name, int version, int dtype, int64_t rows, int64_t cols)
{
    char path[512], err[LMR_ERRLEN] = "";
    snprintf(path, sizeof path, "%s/%s.npy", dir, name);
    int rc = npy_read(a, path, err);
    if (rc != 0)
        fprintf(stderr, "%s: %s\n", name, err);
    CHECK_RC(rc, 0);
    CHECK(a->version == version && a->dtype == dtype && a->rows == rows && a->cols == cols);
    CHECK(a->data_bytes == (size_t)(rows * cols) * (dtype == LMR_DT_F32 ? 4 : 2));
    CHECK(a->data_offset % 64 == 0); /* numpy aligns the data */
    LmrBuf raw;
    buf_init(&raw);
    CHECK(read_raw(name, &raw) == 0);
    CHECK(raw.len == a->data_bytes && memcmp(raw.data, a->data, raw.len) == 0);
    buf_free(&raw);
}

static void refused(NpyArray *a, const char *name, int want, const char *reason)
{
    char path[512], err[LMR_ERRLEN] = "";
    snprintf(path, sizeof path, "%s/%s.npy", dir, name);
    CHECK_RC(npy_read(a, path, err), want);
    if (!strstr(err, path) || !strstr(err, reason)) {
        fprintf(stderr, "%s: message '%s' lacks the path or '%s'\n", name, err, reason);
        check_failures++;
    }
}

int main(void)
{
    const char *py = getenv("LMR_PYTHON"), *src = getenv("LMR_SRC");
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/lmr_npy_XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir))
        return 1;
    NpyArray a;
    npy_init(&a);

    TEST(1, "hand-made header: keys in any order, trailing comma, 'L' ints");
    {
        const char h[] = "{'shape': (2L, 3L,), 'fortran_order': False, 'descr': '<f4'}         \n";
        uint8_t b[256];
        memcpy(b, "\x93NUMPY\x01\x00", 8);
        b[8] = (uint8_t)(sizeof h - 1);
        b[9] = 0;
        memcpy(b + 10, h, sizeof h - 1);
        float v[6] = {1, 2, 3, 4, 5, 6.5f};
        memcpy(b + 10 + sizeof h - 1, v, sizeof v);
        char err[LMR_ERRLEN];
        CHECK_RC(npy_parse(&a, b, 10 + sizeof h - 1 + sizeof v, "mem.npy", err), 0);
        CHECK(a.rows == 2 && a.cols == 3 && a.dtype == LMR_DT_F32);
        float got[6];
        memcpy(got, a.data, sizeof got);
        CHECK(got[5] == 6.5f && got[0] == 1.0f);
        CHECK_RC(npy_parse(&a, b, 9, "mem.npy", err), LMR_EBADMAGIC);
        CHECK_RC(npy_parse(&a, b, 10 + sizeof h - 1 + sizeof v - 1, "mem.npy", err), LMR_ETRUNC);
        CHECK(strstr(err, "mem.npy: truncated") != NULL);
    }

    TEST(2, "numpy-written files");
    if (!py || !*py || !src) {
        printf("LMR_PYTHON or LMR_SRC not set: skipping the numpy part\n");
        npy_free(&a);
        return check_failures ? 1 : 77;
    }
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "'%s' '%s/tests/npy_fixtures.py' '%s'", py, src, dir);
    if (system(cmd) != 0) {
        fprintf(stderr, "%s failed\n", cmd);
        return 1;
    }
    good(&a, "v1_f4", 1, LMR_DT_F32, 3, 5);
    float ramp[15];
    memcpy(ramp, a.data, sizeof ramp);
    for (int i = 0; i < 15; i++)
        CHECK_CLOSE(ramp[i], i * 0.5 - 3, 0, 0);
    good(&a, "v2_f4", 2, LMR_DT_F32, 37, 64);
    good(&a, "v3_f2", 3, LMR_DT_F16, 9, 2048);
    good(&a, "v1_f2", 1, LMR_DT_F16, 4, 6);
    uint16_t h[24];
    float f[24];
    memcpy(h, a.data, sizeof h);
    lmr_f16_to_f32(h, f, 24);
    for (int i = 0; i < 24; i++)
        CHECK_CLOSE(f[i], i * 0.25, 0, 0);
    good(&a, "v1_rows0", 1, LMR_DT_F32, 0, 16);
    good(&a, "v1_big", 1, LMR_DT_F32, 300, 2048);

    TEST(3, "refused files name the file and the reason");
    refused(&a, "f8", LMR_EUNSUPPORTED, "dtype '<f8'");
    refused(&a, "i4", LMR_EUNSUPPORTED, "dtype '<i4'");
    refused(&a, "fortran", LMR_EUNSUPPORTED, "Fortran");
    refused(&a, "bigendian", LMR_EUNSUPPORTED, "big-endian");
    refused(&a, "onedim", LMR_EUNSUPPORTED, "1-D");
    refused(&a, "threedim", LMR_EUNSUPPORTED, "3-D");
    refused(&a, "truncated", LMR_ETRUNC, "truncated");
    refused(&a, "trailing", LMR_ECORRUPT, "after the data");
    refused(&a, "version4", LMR_EVERSION, "version 4.0");
    refused(&a, "badmagic", LMR_EBADMAGIC, "not a .npy file");
    refused(&a, "badheader", LMR_EPARSE, "malformed header");
    refused(&a, "shortheader", LMR_ETRUNC, "header");
    refused(&a, "missing", -2 /* -ENOENT */, "No such file");

    npy_free(&a);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    CHECK_DONE();
}
