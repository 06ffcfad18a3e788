# Tests of the clip record, the shard containers, classes and lmr-pack.
add_executable(gen_records gen_records.c)
target_link_libraries(gen_records PRIVATE lmrformats m)
set_target_properties(gen_records PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/tests)

lmr_add_test(test_record SOURCES test_record.c LIBS lmrformats m LABELS unit)
lmr_add_test(test_shard SOURCES test_shard.c LIBS lmrformats Threads::Threads LABELS unit)
lmr_add_test(test_shard_damage SOURCES test_shard_damage.c LIBS lmrformats Threads::Threads LABELS unit)
lmr_add_test(test_shard_direct SOURCES test_shard_direct.c LIBS lmrformats LABELS unit)
lmr_add_test(test_classes SOURCES test_classes.c LIBS lmrformats LABELS unit)

# Interop: plain h5py / python-lmdb read what lmr-pack wrote (Debian's python3).
if(LMR_PYTHON)
  add_test(NAME interop_shards COMMAND ${LMR_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/interop_shards.py
           $<TARGET_FILE:gen_records>)
  set_tests_properties(interop_shards PROPERTIES LABELS "integration"
    ENVIRONMENT "LMR_BIN=${CMAKE_BINARY_DIR}/bin;LMR_SRC=${CMAKE_SOURCE_DIR};LMR_PYTHON=${LMR_PYTHON}")
endif()

# kill -9 in the middle of a pack, then resume (shell; needs mkfifo and the Python lmdb module).
if(LMR_PYTHON)
  add_test(NAME pack_kill COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/pack_kill.sh $<TARGET_FILE:gen_records>)
  set_tests_properties(pack_kill PROPERTIES LABELS "integration" TIMEOUT 120
    ENVIRONMENT "LMR_BIN=${CMAKE_BINARY_DIR}/bin;LMR_SRC=${CMAKE_SOURCE_DIR};LMR_PYTHON=${LMR_PYTHON}")
endif()
# lmr-pack on a full disk (a tmpfs: needs root, skipped otherwise).
if(LMR_PYTHON)
  add_test(NAME pack_disk COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/pack_disk.sh $<TARGET_FILE:gen_records>)
  set_tests_properties(pack_disk PROPERTIES LABELS "integration" TIMEOUT 120 SKIP_RETURN_CODE 77
    ENVIRONMENT "LMR_BIN=${CMAKE_BINARY_DIR}/bin;LMR_SRC=${CMAKE_SOURCE_DIR};LMR_PYTHON=${LMR_PYTHON}")
endif()
if(LMR_PYTHON)
  add_test(NAME pack_cli COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/pack_cli.sh $<TARGET_FILE:gen_records>)
  set_tests_properties(pack_cli PROPERTIES LABELS "integration" TIMEOUT 60
    ENVIRONMENT "LMR_BIN=${CMAKE_BINARY_DIR}/bin;LMR_SRC=${CMAKE_SOURCE_DIR};LMR_PYTHON=${LMR_PYTHON}")
endif()
# Mutation fuzzing of both shard readers (LMDB values and __meta__, HDF5 lmr_meta and tables):
# deterministic, a few seconds (LMR_FUZZ_SECONDS), must never crash.
lmr_add_test(fuzz_shards SOURCES fuzz/fuzz_shards.c LIBS lmrformats LABELS unit)
set_tests_properties(fuzz_shards PROPERTIES TIMEOUT 120)

# Datasets larger than memory: --reduce mean, the trainer's cache of means, the shard index on the
# command line (test 4 needs the Python lmdb module: skipped without it).
if(LMR_PYTHON)
  add_test(NAME scale_data COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/scale_data.sh $<TARGET_FILE:gen_records>)
  set_tests_properties(scale_data PROPERTIES LABELS "integration" SKIP_RETURN_CODE 77 TIMEOUT 300
    ENVIRONMENT "LMR_BIN=${CMAKE_BINARY_DIR}/bin;LMR_SRC=${CMAKE_SOURCE_DIR};LMR_PYTHON=${LMR_PYTHON}")
endif()
