# Tests of formats/safetensors and train/ (lmr-train).
lmr_add_test(test_safetensors SOURCES test_safetensors.c LIBS lmrformats LABELS unit)
lmr_add_test(test_model SOURCES test_model.c LIBS lmrtrain LABELS unit)
lmr_add_test(test_lmr SOURCES test_lmr.c LIBS lmrtrain LABELS unit)
lmr_add_test(test_backend_split SOURCES test_backend_split.c LIBS lmrtrain LABELS unit)
add_test(NAME test_backend_split3 COMMAND test_backend_split 3)
set_tests_properties(test_backend_split3 PROPERTIES SKIP_RETURN_CODE 77 LABELS unit)
lmr_add_test(test_sampler SOURCES test_sampler.c LIBS lmrtrain LABELS unit)
lmr_add_test(test_train_learning SOURCES test_train_learning.c LIBS lmrtrain)
lmr_add_test(test_train_cli SOURCES test_train_cli.c LIBS lmrtrain)
lmr_add_test(test_train_data SOURCES test_train_data.c LIBS lmrtrain)
# One optimiser step of lmr-train's init stage against PyTorch (skipped without torch), and one LMR
# step (batch, bank, masks, mixing, loss, gradient, AdamW) against a float64 numpy computation.
# Without python3 both are reported as skipped, never as passed.
if(LMR_PYTHON)
  add_test(NAME test_train_torch COMMAND ${LMR_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/train_torch_check.py)
  add_test(NAME test_train_lmr_step
           COMMAND ${LMR_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/train_lmr_step_check.py $<TARGET_FILE:gen_records>)
else()
  add_test(NAME test_train_torch COMMAND sh -c "echo 'skipped: no python3 found at configure time'; exit 77")
  add_test(NAME test_train_lmr_step COMMAND sh -c "echo 'skipped: no python3 found at configure time'; exit 77")
endif()
set_tests_properties(test_train_torch test_train_lmr_step PROPERTIES SKIP_RETURN_CODE 77
  ENVIRONMENT "LMR_BIN=${CMAKE_BINARY_DIR}/bin;LMR_SRC=${CMAKE_SOURCE_DIR};LMR_PYTHON=${LMR_PYTHON}")
# What lmr-train refuses or records so that no answer is about other data without a word.
lmr_add_test(test_train_trust SOURCES test_train_trust.c LIBS lmrtrain)
