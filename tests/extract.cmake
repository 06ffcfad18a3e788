# lmr-extract: sampling (unit), the decoder on generated videos, the CLI end to end.
lmr_add_test(test_sample SOURCES test_sample.c LIBS lmrextract LABELS unit)
lmr_add_test(test_decode SOURCES test_decode.c LIBS lmrextract LABELS extract)
