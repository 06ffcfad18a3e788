# Datasets: annotation readers, NPY parser, VideoLT import, fuzz corpus regressions.
lmr_add_test(test_annotations SOURCES test_annotations.c LIBS lmrformats LABELS unit)
lmr_add_test(test_npy SOURCES test_npy.c LIBS lmrformats LABELS unit)
if(TARGET lmrpack)
  lmr_add_test(test_videolt SOURCES test_videolt.c LIBS lmrpack lmrformats PkgConfig::JANSSON)
  if(TARGET lmr-pack)
    add_dependencies(test_videolt lmr-pack)
  endif()
endif()
# Fuzz corpus regressions: each libFuzzer harness (tests/fuzz/fuzz_<x>.c, run by
# tests/fuzz/run.sh with clang) over its corpus through a plain main().
foreach(x csv json list npy)
  lmr_add_test(fuzz_${x}_corpus SOURCES fuzz/fuzz_${x}.c fuzz/driver.c LIBS lmrformats
               ARGS ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/corpus/${x} LABELS unit)
endforeach()
# bench/annotations.sh times the readers with this when lmr-extract is not built.
add_executable(bench_annotations bench_annotations.c)
target_link_libraries(bench_annotations PRIVATE lmrformats)
set_target_properties(bench_annotations PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/tests)
