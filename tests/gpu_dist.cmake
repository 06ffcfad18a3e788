# The CUDA backend against the cpu reference (skipped, exit 77, without CUDA or a device) and
# data-parallel lmr-train over MPI ranks against one process.
if(TARGET lmrtrain)
  lmr_add_test(test_backend_gpu SOURCES test_backend_gpu.c LIBS lmrtrain LABELS gpu)
  set_tests_properties(test_backend_gpu PROPERTIES TIMEOUT 120)
endif()

if(LMR_MPI AND TARGET lmr-train AND TARGET lmr-pack AND TARGET gen_records AND LMR_PYTHON)
  find_package(MPI COMPONENTS C)
  if(MPIEXEC_EXECUTABLE)
    add_test(NAME test_dist_mpi
             COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/test_dist_mpi.sh ${MPIEXEC_EXECUTABLE} $<TARGET_FILE:gen_records>)
    set_tests_properties(test_dist_mpi PROPERTIES LABELS "mpi" TIMEOUT 120 SKIP_RETURN_CODE 77
      ENVIRONMENT "LMR_BIN=${CMAKE_BINARY_DIR}/bin;LMR_SRC=${CMAKE_SOURCE_DIR};LMR_PYTHON=${LMR_PYTHON}")
  endif()
endif()

# dist.h in one process (no launcher): slice and no-op collectives
if(TARGET lmrtrain)
  lmr_add_test(test_dist SOURCES test_dist.c LIBS lmrtrain LABELS unit)
endif()

# NCCL between two ranks (threads) of one process; skipped without a device, CUDA or NCCL, and on
# one GPU when NCCL refuses two ranks on it
if(TARGET lmrtrain)
  lmr_add_test(test_nccl_pair SOURCES test_nccl_pair.c LIBS lmrtrain Threads::Threads LABELS gpu)
  set_tests_properties(test_nccl_pair PROPERTIES TIMEOUT 150)
endif()
