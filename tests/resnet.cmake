# Tests of the ResNet backbone (extract/backbone_resnet*.c, resnet_*.c).
if(TARGET lmrextract AND EXISTS ${CMAKE_SOURCE_DIR}/extract/backbone_resnet.c)
  # layer kinds and a whole resnet18 against naive references; weight-file errors
  lmr_add_test(test_resnet_layers SOURCES test_resnet_layers.c LIBS lmrextract LABELS unit)

  # raw frames -> features driver, used by the torchvision test and bench/backbone.sh
  add_executable(resnet_features resnet_features.c)
  target_link_libraries(resnet_features PRIVATE lmrextract)
  set_target_properties(resnet_features PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/tests)

  # torchvision resnet18/50 (random weights) vs lmr in f32; skipped (77) without torch
  add_test(NAME resnet_torch
           COMMAND ${LMR_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/resnet_torch.py $<TARGET_FILE:resnet_features>)
  set_tests_properties(resnet_torch PROPERTIES SKIP_RETURN_CODE 77 LABELS "python" TIMEOUT 120
    ENVIRONMENT "LMR_BIN=${CMAKE_BINARY_DIR}/bin;LMR_SRC=${CMAKE_SOURCE_DIR};LMR_PYTHON=${LMR_PYTHON}")

  # cuDNN vs CPU (and vs torchvision); skipped (77) without a GPU or without CUDA
  lmr_add_test(test_resnet_gpu SOURCES test_resnet_gpu.c LIBS lmrextract LABELS gpu)
  add_test(NAME resnet_torch_gpu
           COMMAND ${LMR_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/resnet_torch.py $<TARGET_FILE:resnet_features>
                   --device cuda)
  set_tests_properties(resnet_torch_gpu PROPERTIES SKIP_RETURN_CODE 77 LABELS "gpu;python" TIMEOUT 120
    ENVIRONMENT "LMR_BIN=${CMAKE_BINARY_DIR}/bin;LMR_SRC=${CMAKE_SOURCE_DIR};LMR_PYTHON=${LMR_PYTHON}")
endif()
