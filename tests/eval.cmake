# lmr-eval: metrics on hand-computed cases and against scikit-learn; the CLI against a
# double-precision reference and bad inputs; the demo pipeline end to end; dry runs of the
# benchmark pipelines.
lmr_add_test(test_metrics SOURCES test_metrics.c LIBS lmreval LABELS unit)
# The same binary against scikit-learn: a test of its own, reported as skipped without it.
add_test(NAME test_metrics_sklearn COMMAND test_metrics --sklearn)
set_tests_properties(test_metrics_sklearn PROPERTIES SKIP_RETURN_CODE 77 LABELS unit
  ENVIRONMENT "LMR_PYTHON=${LMR_PYTHON}")
if(TARGET lmr-eval)
  lmr_add_test(test_eval SOURCES test_eval.c LIBS lmreval LABELS eval)
endif()

# Shell-driven pipeline tests (they run the stage binaries and make).
function(lmr_eval_script_test name script)
  add_test(NAME ${name} COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/${script})
  set_tests_properties(${name} PROPERTIES SKIP_RETURN_CODE 77 LABELS "${ARGN}"
    ENVIRONMENT "LMR_BIN=${CMAKE_BINARY_DIR}/bin;LMR_SRC=${CMAKE_SOURCE_DIR};LMR_PYTHON=${LMR_PYTHON}")
endfunction()
if(TARGET lmr-eval AND TARGET lmr-train AND TARGET lmr-extract AND TARGET lmr-pack)
  lmr_eval_script_test(demo_e2e demo_e2e.sh e2e)
endif()
lmr_eval_script_test(pipelines_dryrun pipelines_dryrun.sh pipeline)
