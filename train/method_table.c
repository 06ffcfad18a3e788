/* The table of methods: one line per method, each defined in its own method_<name>.c. Order is
 * the order of --help and of the comparison pipeline. */
#include <stdio.h>
#include <string.h>

#include "method.h"

extern const Method method_ce, method_la, method_cb, method_focal, method_ldam_drw, method_eql, method_srs,
    method_cbs, method_mixup;
extern const Method method_lmr, method_crt, method_lws, method_lmr_mix_only, method_lmr_recon_only;

static const Method *const methods[] = {
    &method_ce,  &method_la,  &method_cb,  &method_focal, &method_ldam_drw,    &method_eql,
    &method_srs, &method_cbs, &method_mixup, &method_lmr, &method_crt,          &method_lws,
    &method_lmr_mix_only, &method_lmr_recon_only,
};

const Method *method_find(const char *name)
{
    for (size_t i = 0; name && i < sizeof methods / sizeof *methods; i++)
        if (strcmp(methods[i]->name, name) == 0)
            return methods[i];
    return NULL;
}

void method_names(MethodStage stage, char *buf, size_t cap)
{
    size_t len = 0;
    if (cap)
        buf[0] = '\0';
    for (size_t i = 0; i < sizeof methods / sizeof *methods && len < cap; i++)
        if (methods[i]->stage == stage)
            len += (size_t)snprintf(buf + len, cap - len, "%s%s", len ? " " : "", methods[i]->name);
}
