# lmr-eval: metrics on hand-computed cases and against scikit-learn; the demo pipeline end to end;
# dry runs of the benchmark pipelines.
lmr_add_test(test_metrics SOURCES test_metrics.c LIBS lmreval LABELS unit)
