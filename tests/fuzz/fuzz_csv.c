/* Fuzz the CSV readers: EPIC-KITCHENS-100 split files (verb / noun, strict or not), EPIC class
 * lists and the manifest. The first byte picks the reader, the rest is the file. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "annotations.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* What was read must write and read back as the same rows. */
static void round_trip(const Manifest *m)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f)
        return;
    int rc = manifest_write(m, f);
    fclose(f);
    Manifest back;
    manifest_init(&back);
    AnnotOpts o;
    annot_opts_init(&o);
    o.dataset = "manifest";
    o.annotations = "round-trip.csv";
    o.annotations_data = text;
    o.annotations_size = len;
    o.strict = 1;
    if (rc != 0 || annotations_load(&back, &o) != 0 || back.n_rows != m->n_rows)
        abort();
    for (size_t i = 0; i < m->n_rows; i++) {
        const ManifestRow *a = &m->rows[i], *b = &back.rows[i];
        if (strcmp(a->clip_id, b->clip_id) || strcmp(a->video, b->video) ||
            a->start_sec != b->start_sec || a->stop_sec != b->stop_sec || a->n_labels != b->n_labels ||
            memcmp(a->labels, b->labels, (size_t)a->n_labels * sizeof a->labels[0]))
            abort();
    }
    manifest_free(&back);
    free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    int sel = data[0];
    const char *text = (const char *)data + 1;
    size--;
    if ((sel & 3) == 3) {
        AnnotClasses c;
        annot_classes_init(&c);
        annot_classes_read(&c, "epic", "fuzz.csv", text, size, sel & 4);
        annot_classes_free(&c);
        return 0;
    }
    Manifest m;
    manifest_init(&m);
    AnnotOpts o;
    annot_opts_init(&o);
    o.dataset = (sel & 3) == 2 ? "manifest" : "epic";
    o.annotations = "fuzz.csv";
    o.annotations_data = text;
    o.annotations_size = size;
    o.target = (sel & 3) == 1 ? ANNOT_TARGET_NOUN : ANNOT_TARGET_VERB;
    o.epic_layout = (AnnotEpicLayout)((sel >> 3) % 3);
    o.strict = sel & 4;
    if (annotations_load(&m, &o) == 0 && m.n_rows)
        round_trip(&m);
    manifest_free(&m);
    return 0;
}
