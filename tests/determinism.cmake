# Results independent of the thread count, under the machine's default
# OpenBLAS kernel (the gtest registrations) and under the Haswell kernel, whose
# sgemm sums edge blocks in another order than the interior: every AVX2 CPU
# without AVX-512 uses it, and OPENBLAS_CORETYPE=Haswell selects it anywhere
# (Debian's OpenBLAS is built with DYNAMIC_ARCH).
add_test(NAME determinism.haswell
         COMMAND $<TARGET_FILE:huginn_tests> --gtest_filter=Determinism.*:Trainer.ResumeIsBitExact)
set_tests_properties(determinism.haswell PROPERTIES
  ENVIRONMENT "OPENBLAS_CORETYPE=Haswell;OMP_NUM_THREADS=2;OMP_WAIT_POLICY=PASSIVE" TIMEOUT 300)
add_test(NAME train.cli_resume_haswell
         COMMAND bash ${CMAKE_SOURCE_DIR}/tests/train_cli.sh resume $<TARGET_FILE:huginn_cli>
                 ${CMAKE_BINARY_DIR}/test_train_cli_resume_haswell)
set_tests_properties(train.cli_resume_haswell PROPERTIES
  ENVIRONMENT "OPENBLAS_CORETYPE=Haswell;OMP_NUM_THREADS=1" TIMEOUT 300)
