#include "fileid.h"

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "lmr_error.h"

int lmr_same_file(const char *a, const char *b)
{
    struct stat sa, sb;
    if (!a || !b || stat(a, &sa) != 0 || stat(b, &sb) != 0)
        return 0;
    return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

static int is_std(const char *p) { return !p || !p[0] || strcmp(p, "-") == 0; }

int lmr_check_outputs(const char *const *inputs, int n_in, const char *const *outputs, int n_out,
                      char *err)
{
    char tmp[4096];
    for (int o = 0; o < n_out; o++) {
        if (is_std(outputs[o]))
            continue;
        snprintf(tmp, sizeof tmp, "%s.tmp", outputs[o]);
        for (int i = 0; i < n_in; i++) {
            if (is_std(inputs[i]))
                continue;
            if (lmr_same_file(outputs[o], inputs[i]))
                return lmr_fail(err, LMR_EUSAGE, "%s is also an input (%s): refusing to write over it",
                                outputs[o], inputs[i]);
            if (lmr_same_file(tmp, inputs[i]))
                return lmr_fail(err, LMR_EUSAGE, "%s (staging file of %s) is an input: refusing to write over it",
                                tmp, outputs[o]);
        }
        for (int p = 0; p < o; p++) {
            if (is_std(outputs[p]))
                continue;
            if (strcmp(outputs[p], outputs[o]) == 0 || lmr_same_file(outputs[p], outputs[o]))
                return lmr_fail(err, LMR_EUSAGE, "%s is given for two outputs", outputs[o]);
        }
    }
    return 0;
}
