/* Checkpoint provenance: the "provenance" metadata (a JSON object) and the class names of a
 * checkpoint, read with the safetensors API, and the check that the shards being scored hold
 * features from the same backbone and weights. A head trained on one backbone's features gives
 * numbers on another's that mean nothing, and nothing else would say so. */
#include "provenance.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "safetensors.h"

static void copy_str(char *dst, size_t n, json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    snprintf(dst, n, "%s", s ? s : "");
}

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
        p->present = 1;
        copy_str(p->dataset, sizeof p->dataset, prov, "dataset");
        copy_str(p->split, sizeof p->split, prov, "split");
        copy_str(p->backbone, sizeof p->backbone, prov, "backbone");
        copy_str(p->weights_checksum, sizeof p->weights_checksum, prov, "weights_checksum");
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

int provenance_check(const Provenance *p, const ShardMeta *m, const char *ckpt, const char *data,
                     char *note, size_t note_len, char *err)
{
    if (note_len)
        note[0] = '\0';
    if (!p->present) {
        snprintf(note, note_len, "%s records no provenance (an older checkpoint): whether it was "
                 "trained on features like those of %s (backbone %s) is not checked", ckpt, data,
                 m->backbone[0] ? m->backbone : "unknown");
        return 0;
    }
    if (p->backbone[0] && m->backbone[0] && strcmp(p->backbone, m->backbone) != 0)
        return lmr_fail(err, LMR_EMISMATCH, "%s was trained on %s features, but %s holds %s features",
                        ckpt, p->backbone, data, m->backbone);
    if (p->weights_checksum[0] && m->weights_checksum[0] &&
        strcmp(p->weights_checksum, m->weights_checksum) != 0)
        return lmr_fail(err, LMR_EMISMATCH, "%s was trained on %s features from weights %s, but %s "
                        "holds features from weights %s", ckpt, p->backbone[0] ? p->backbone : "",
                        p->weights_checksum, data, m->weights_checksum);
    if (!p->backbone[0] || !m->backbone[0])
        snprintf(note, note_len, "the backbone of %s is not recorded: the features of %s are not "
                 "checked against it", p->backbone[0] ? data : ckpt, data);
    else if (!p->weights_checksum[0] != !m->weights_checksum[0])
        snprintf(note, note_len, "the weights checksum of %s is not recorded: only the backbone "
                 "(%s) is checked", p->weights_checksum[0] ? data : ckpt, m->backbone);
    return 0;
}
