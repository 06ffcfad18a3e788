/* Fuzz the VideoLT list readers: a label list (with or without a fixed counts file) or a
 * count-labels file, picked by the first byte. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "annotations.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char counts[] = "Abseiling 0 120\nplaying bass guitar 1 731\nArchery 2 15\n";

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
        annot_classes_read(&c, "videolt", "fuzz.lst", text, size, sel & 4);
        annot_classes_free(&c);
        return 0;
    }
    Manifest m;
    manifest_init(&m);
    AnnotOpts o;
    annot_opts_init(&o);
    o.dataset = "videolt";
    o.annotations = "fuzz.lst";
    o.annotations_data = text;
    o.annotations_size = size;
    if (sel & 1) {
        o.labels = "counts.lst";
        o.labels_data = counts;
        o.labels_size = strlen(counts);
    }
    o.strict = sel & 4;
    annotations_load(&m, &o);
    manifest_free(&m);
    return 0;
}
