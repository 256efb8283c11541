# The reference fixtures, run through the CLI as a user would.
foreach(fixture tiny_f32 tiny_bf16_sharded ouro)
  add_test(NAME golden.${fixture}
           COMMAND $<TARGET_FILE:huginn_cli> golden ${CMAKE_SOURCE_DIR}/tests/data/golden/${fixture})
  set_tests_properties(golden.${fixture} PROPERTIES ENVIRONMENT "OMP_NUM_THREADS=2;OMP_WAIT_POLICY=PASSIVE" TIMEOUT 600)
endforeach()
# ggml block formats and GGUF reading, against ggml's own output (no model).
add_test(NAME golden.quant COMMAND $<TARGET_FILE:huginn_cli> golden ${CMAKE_SOURCE_DIR}/tests/data/golden/quant)
set_tests_properties(golden.quant PROPERTIES ENVIRONMENT "OMP_NUM_THREADS=2;OMP_WAIT_POLICY=PASSIVE" TIMEOUT 120)
