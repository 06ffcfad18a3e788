/* The class names a checkpoint carries (its "provenance" metadata, or a "class_names" key), read
 * with the safetensors API, for outputs whose shards do not name the classes. */
#include "provenance.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "safetensors.h"

/* names: a JSON array of strings. @return 0, LMR_EPARSE, LMR_ENOMEM. */
static int take_names(Provenance *p, json_t *names)
{
    size_t n = json_array_size(names);
    if (!json_is_array(names) || n == 0)
        return LMR_EPARSE;
    p->class_names = calloc(n, sizeof *p->class_names);
    if (!p->class_names)
        return LMR_ENOMEM;
    p->n_class_names = (int)n;
    for (size_t i = 0; i < n; i++) {
        const char *s = json_string_value(json_array_get(names, i));
        if (!s)
            return LMR_EPARSE;
        if (!(p->class_names[i] = strdup(s)))
            return LMR_ENOMEM;
    }
    return 0;
}

int provenance_read(Provenance *p, const char *ckpt, char *err)
{
    memset(p, 0, sizeof *p);
    StFile f;
    int rc = st_open(&f, ckpt);
    if (rc < 0)
        return lmr_fail(err, rc, "%s", f.last_error);
    json_t *prov = NULL, *names = NULL;
    const char *s = st_meta(&f, "provenance");
    if (s) {
        prov = json_loads(s, 0, NULL);
        if (!json_is_object(prov)) {
            rc = lmr_fail(err, LMR_EPARSE, "%s: metadata 'provenance' is not a JSON object", ckpt);
            goto done;
        }
    }
    s = st_meta(&f, "class_names");
    if (s)
        names = json_loads(s, 0, NULL);
    else if (prov && json_object_get(prov, "class_names"))
        names = json_incref(json_object_get(prov, "class_names"));
    if ((s || names) && (rc = take_names(p, names)) < 0)
        lmr_fail(err, rc, "%s: metadata 'class_names' is not a list of names", ckpt);
done:
    json_decref(prov);
    json_decref(names);
    st_close(&f);
    if (rc < 0)
        provenance_free(p);
    return rc;
}

void provenance_free(Provenance *p)
{
    if (!p)
        return;
    for (int i = 0; i < p->n_class_names && p->class_names; i++)
        free(p->class_names[i]);
    free(p->class_names);
    memset(p, 0, sizeof *p);
}
