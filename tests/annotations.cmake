# Datasets: annotation readers, NPY parser, VideoLT import, fuzz corpus regressions.
lmr_add_test(test_annotations SOURCES test_annotations.c LIBS lmrformats LABELS unit)
lmr_add_test(test_npy SOURCES test_npy.c LIBS lmrformats LABELS unit)
if(TARGET lmrpack)
  lmr_add_test(test_videolt SOURCES test_videolt.c LIBS lmrpack lmrformats PkgConfig::JANSSON)
  if(TARGET lmr-pack)
    add_dependencies(test_videolt lmr-pack)
  endif()
endif()
