/* Fuzz the .npy parser; an accepted array's data must lie inside the input. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "npy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    NpyArray a;
    npy_init(&a);
    char err[LMR_ERRLEN];
    if (npy_parse(&a, data, size, "fuzz.npy", err) == 0) {
        if (a.data < data || a.data + a.data_bytes != data + size)
            abort();
        volatile uint8_t sum = 0; /* touch every byte so ASan sees any overrun */
        for (size_t i = 0; i < a.data_bytes; i++)
            sum += a.data[i];
        (void)sum;
    }
    npy_free(&a);
    return 0;
}
