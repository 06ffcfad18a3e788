# lmr-extract: sampling (unit), the decoder on generated videos, the CLI end to end.
lmr_add_test(test_sample SOURCES test_sample.c LIBS lmrextract LABELS unit)
lmr_add_test(test_decode SOURCES test_decode.c LIBS lmrextract LABELS extract)
lmr_add_test(test_extract SOURCES test_extract.c LIBS lmrextract LABELS extract)
add_dependencies(test_extract lmr-extract)
