# Tests of the long-tail methods (train/method*.c) and lmr-eval's post-hoc and summary modes.
lmr_add_test(test_methods SOURCES test_methods.c LIBS lmrtrain LABELS unit)
# A small synthetic long-tailed shard set, for the pipeline test.
add_executable(methods_synth methods_synth.c)
target_include_directories(methods_synth PRIVATE ${CMAKE_CURRENT_SOURCE_DIR})
target_link_libraries(methods_synth PRIVATE lmrformats m)
set_target_properties(methods_synth PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/tests)
