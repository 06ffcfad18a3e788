# Tests of the transformer backbones (extract/transformer.c, backbone_vit.c, backbone_videomae.c).
if(TARGET lmrextract AND EXISTS ${CMAKE_SOURCE_DIR}/extract/transformer.c)
  # the layers against naive references, a tiny VideoMAE end to end, lmr-extract records
  lmr_add_test(test_transformer SOURCES test_transformer.c LIBS lmrextract LABELS unit)
  set_tests_properties(test_transformer PROPERTIES TIMEOUT 300)

  # torchvision vit_b_16 / vit_l_16 (random weights) vs lmr in f32; skipped (77) without torch.
  # resnet_features (tests/resnet.cmake) is the frames -> features driver.
  if(TARGET resnet_features)
    add_test(NAME vit_torch
             COMMAND ${LMR_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/vit_torch.py $<TARGET_FILE:resnet_features>)
    set_tests_properties(vit_torch PROPERTIES SKIP_RETURN_CODE 77 LABELS "python" TIMEOUT 900
      ENVIRONMENT "LMR_BIN=${CMAKE_BINARY_DIR}/bin;LMR_SRC=${CMAKE_SOURCE_DIR};LMR_PYTHON=${LMR_PYTHON}")

    # transformers' VideoMAEForVideoClassification (random weights) vs lmr in f32; transformers
    # from the venv scripts/deps.sh --test makes (.venv-test); skipped (77) without it.
    add_test(NAME videomae_hf
             COMMAND ${LMR_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/videomae_hf.py $<TARGET_FILE:resnet_features>)
    set_tests_properties(videomae_hf PROPERTIES SKIP_RETURN_CODE 77 LABELS "python" TIMEOUT 600
      ENVIRONMENT "LMR_BIN=${CMAKE_BINARY_DIR}/bin;LMR_SRC=${CMAKE_SOURCE_DIR};LMR_PYTHON=${LMR_PYTHON}")
  endif()
endif()
