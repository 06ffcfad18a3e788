# Tests of formats/safetensors and train/ (lmr-train).
lmr_add_test(test_safetensors SOURCES test_safetensors.c LIBS lmrformats LABELS unit)
lmr_add_test(test_model SOURCES test_model.c LIBS lmrtrain LABELS unit)
lmr_add_test(test_lmr SOURCES test_lmr.c LIBS lmrtrain LABELS unit)
lmr_add_test(test_sampler SOURCES test_sampler.c LIBS lmrtrain LABELS unit)
lmr_add_test(test_train_learning SOURCES test_train_learning.c LIBS lmrtrain)
lmr_add_test(test_train_cli SOURCES test_train_cli.c LIBS lmrtrain)
lmr_add_test(test_train_data SOURCES test_train_data.c LIBS lmrtrain)
