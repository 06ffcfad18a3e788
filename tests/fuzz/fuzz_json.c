/* Fuzz the SSv2 json readers: a split file against a fixed labels file, or a labels file
 * (first byte even / odd). */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "annotations.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char labels[] = "{\"Holding something next to something\": \"0\", "
                             "\"Putting something on a surface\": \"1\", \"Pushing something\": \"2\"}";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    int sel = data[0];
    const char *text = (const char *)data + 1;
    size--;
    if (sel & 1) {
        AnnotClasses c;
        annot_classes_init(&c);
        annot_classes_read(&c, "ssv2", "fuzz.json", text, size, 0);
        annot_classes_free(&c);
        return 0;
    }
    Manifest m;
    manifest_init(&m);
    AnnotOpts o;
    annot_opts_init(&o);
    o.dataset = "ssv2";
    o.annotations = "fuzz.json";
    o.annotations_data = text;
    o.annotations_size = size;
    o.labels = "labels.json";
    o.labels_data = labels;
    o.labels_size = strlen(labels);
    o.strict = sel & 2;
    annotations_load(&m, &o);
    manifest_free(&m);
    return 0;
}
