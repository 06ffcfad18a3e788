# Tests of the long-tail methods (train/method*.c) and lmr-eval's post-hoc and summary modes.
lmr_add_test(test_methods SOURCES test_methods.c LIBS lmrtrain LABELS unit)
# A small synthetic long-tailed shard set, for the pipeline test.
add_executable(methods_synth methods_synth.c)
target_include_directories(methods_synth PRIVATE ${CMAKE_CURRENT_SOURCE_DIR})
target_link_libraries(methods_synth PRIVATE lmrformats m)
set_target_properties(methods_synth PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/tests)
# Each method's loss and gradient against PyTorch on one batch (skipped without torch).
add_executable(methods_dump methods_dump.c)
target_include_directories(methods_dump PRIVATE ${CMAKE_CURRENT_SOURCE_DIR})
target_link_libraries(methods_dump PRIVATE lmrtrain)
set_target_properties(methods_dump PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/tests)
add_test(NAME methods_torch_check COMMAND ${LMR_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/methods_torch_check.py
  $<TARGET_FILE:methods_dump>)
set_tests_properties(methods_torch_check PROPERTIES SKIP_RETURN_CODE 77 LABELS python)
if(TARGET lmreval)
  lmr_add_test(test_posthoc SOURCES test_posthoc.c LIBS lmreval LABELS unit)
endif()
# The comparison pipeline end to end on a tiny set (a few seconds).
if(TARGET lmr-eval AND TARGET lmr-train)
  add_test(NAME compare_e2e COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/compare_e2e.sh $<TARGET_FILE:methods_synth>)
  set_tests_properties(compare_e2e PROPERTIES SKIP_RETURN_CODE 77 LABELS "pipeline"
    ENVIRONMENT "LMR_BIN=${CMAKE_BINARY_DIR}/bin;LMR_SRC=${CMAKE_SOURCE_DIR}")
endif()
# Learning: the methods beat ce on few-shot accuracy on held-out synthetic long-tailed data.
if(TARGET lmreval)
  lmr_add_test(test_methods_learning SOURCES test_methods_learning.c LIBS lmreval)
endif()
# The methods on the CUDA backend against the CPU (skipped without a GPU).
lmr_add_test(test_methods_gpu SOURCES test_methods_gpu.c LIBS lmrtrain LABELS gpu)
