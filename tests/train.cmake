# Tests of formats/safetensors and train/ (lmr-train).
lmr_add_test(test_safetensors SOURCES test_safetensors.c LIBS lmrformats LABELS unit)
lmr_add_test(test_model SOURCES test_model.c LIBS lmrtrain LABELS unit)
lmr_add_test(test_lmr SOURCES test_lmr.c LIBS lmrtrain LABELS unit)
lmr_add_test(test_backend_split SOURCES test_backend_split.c LIBS lmrtrain LABELS unit)
lmr_add_test(test_sampler SOURCES test_sampler.c LIBS lmrtrain LABELS unit)
lmr_add_test(test_train_learning SOURCES test_train_learning.c LIBS lmrtrain)
lmr_add_test(test_train_cli SOURCES test_train_cli.c LIBS lmrtrain)
lmr_add_test(test_train_data SOURCES test_train_data.c LIBS lmrtrain)
# One optimiser step of lmr-train against PyTorch (skipped without torch).
add_test(NAME test_train_torch COMMAND ${LMR_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/train_torch_check.py)
set_tests_properties(test_train_torch PROPERTIES SKIP_RETURN_CODE 77 DEPENDS lmr-train
  ENVIRONMENT "LMR_BIN=${CMAKE_BINARY_DIR}/bin;LMR_SRC=${CMAKE_SOURCE_DIR};LMR_PYTHON=${LMR_PYTHON}")
# What lmr-train refuses or records so that no answer is about other data without a word.
lmr_add_test(test_train_trust SOURCES test_train_trust.c LIBS lmrtrain)
