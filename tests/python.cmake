# The pip-installable Python package (python/), installed into a fresh venv and checked against
# what the C tools wrote.
if(LMR_PYTHON AND TARGET lmr-pack AND TARGET lmr-train AND TARGET lmr-eval)
  add_test(NAME python_pkg COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/python_pkg.sh $<TARGET_FILE:gen_records>)
  set_tests_properties(python_pkg PROPERTIES LABELS "python;integration" SKIP_RETURN_CODE 77 TIMEOUT 300
    ENVIRONMENT "LMR_BIN=${CMAKE_BINARY_DIR}/bin;LMR_SRC=${CMAKE_SOURCE_DIR};LMR_PYTHON=${LMR_PYTHON}")
endif()

# scripts/dump_features.py (features from any torch module, in the --from-npy layout).
if(LMR_PYTHON AND TARGET lmr-pack)
  add_test(NAME dump_features COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/dump_features.sh $<TARGET_FILE:gen_records>)
  set_tests_properties(dump_features PROPERTIES LABELS "python;integration" SKIP_RETURN_CODE 77 TIMEOUT 120
    ENVIRONMENT "LMR_BIN=${CMAKE_BINARY_DIR}/bin;LMR_SRC=${CMAKE_SOURCE_DIR};LMR_PYTHON=${LMR_PYTHON}")
endif()
