# lmr-eval: metrics on hand-computed cases and against scikit-learn; the CLI against a
# double-precision reference and bad inputs; the demo pipeline end to end; dry runs of the
# benchmark pipelines.
lmr_add_test(test_metrics SOURCES test_metrics.c LIBS lmreval LABELS unit)
if(TARGET lmr-eval)
  lmr_add_test(test_eval SOURCES test_eval.c LIBS lmreval LABELS eval)
endif()
