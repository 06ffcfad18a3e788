/* Helpers of the lmr-train command-line tests: run the binary inside a temporary folder and read
 * what it left there. The test sets the folder (dir) and the binaries' folder (bin) first. */
#ifndef LMR_TEST_TRAIN_CLI_H
#define LMR_TEST_TRAIN_CLI_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

static char dir[64], bin[512];

/* lmr-train --threads 1 EXTRA ARGS, in the folder, output to out.txt. @return its exit status. */
static int train_cli_run(const char *extra, const char *args)
{
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "cd %s && %s/lmr-train --threads 1 %s %s > out.txt 2>&1", dir, bin,
             extra, args);
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* A file of the folder, NUL-terminated (NULL when missing); *len its size. */
static char *slurp(const char *name, size_t *len)
{
    char p[256];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *f = fopen(p, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    if (fread(b, 1, (size_t)n, f) != (size_t)n)
        n = 0;
    b[n] = 0;
    fclose(f);
    if (len)
        *len = (size_t)n;
    return b;
}

static int same_file(const char *a, const char *b)
{
    size_t la, lb;
    char *x = slurp(a, &la), *y = slurp(b, &lb);
    int same = x && y && la == lb && memcmp(x, y, la) == 0;
    free(x);
    free(y);
    return same;
}

static int output_has(const char *needle)
{
    char *o = slurp("out.txt", NULL);
    int has = o && strstr(o, needle);
    if (!has)
        fprintf(stderr, "output lacks '%s':\n%s\n", needle, o ? o : "(none)");
    free(o);
    return has;
}

#endif
