# Tests of formats/safetensors and train/ (lmr-train).
lmr_add_test(test_safetensors SOURCES test_safetensors.c LIBS lmrformats LABELS unit)
