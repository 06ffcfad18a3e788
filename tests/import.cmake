# Bring your own features: lmr-pack --from-npy / --from-hdf5 on numpy- and h5py-written files, read
# back through the Python package, and dump_features.py -> lmr-pack -> lmr-train -> lmr-eval.
if(LMR_PYTHON AND TARGET lmr-pack AND TARGET lmr-train AND TARGET lmr-eval)
  add_test(NAME import_npy COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/import_npy.sh $<TARGET_FILE:gen_records>)
  set_tests_properties(import_npy PROPERTIES LABELS "python;integration" SKIP_RETURN_CODE 77 TIMEOUT 300
    ENVIRONMENT "LMR_BIN=${CMAKE_BINARY_DIR}/bin;LMR_SRC=${CMAKE_SOURCE_DIR};LMR_PYTHON=${LMR_PYTHON}")
endif()
