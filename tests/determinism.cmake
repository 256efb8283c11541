# Results independent of the thread count, under the machine's default
# OpenBLAS kernel (the gtest registrations) and under the Haswell kernel, whose
# sgemm sums edge blocks in another order than the interior: every AVX2 CPU
# without AVX-512 uses it, and OPENBLAS_CORETYPE=Haswell selects it anywhere
# (Debian's OpenBLAS is built with DYNAMIC_ARCH).
#
# The products of the backward pass go through kern::gemm_fixed_blocks
# (src/tensor/gemm.h). Training is independent of the kernel only once the
# forward's kern::matmul_ld (src/tensor/kernels.cpp) calls it too; until then
# the Haswell run covers the products and the backward, and says so.
set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/src/tensor/kernels.cpp)
file(READ ${CMAKE_SOURCE_DIR}/src/tensor/kernels.cpp HUGINN_KERNELS_SRC)
string(FIND "${HUGINN_KERNELS_SRC}" "gemm_fixed_blocks(" HUGINN_FORWARD_FIXED_BLOCKS)
if(HUGINN_FORWARD_FIXED_BLOCKS EQUAL -1)
  message(STATUS "determinism: kern::matmul_ld does not use gemm_fixed_blocks yet; "
                 "training-level tests under OPENBLAS_CORETYPE=Haswell are not registered")
  set(HUGINN_HASWELL_FILTER "Determinism.Gemm*:Determinism.LinearGradients*")
else()
  set(HUGINN_HASWELL_FILTER "Determinism.*:Trainer.ResumeIsBitExact")
  add_test(NAME train.cli_resume_haswell
           COMMAND bash ${CMAKE_SOURCE_DIR}/tests/train_cli.sh resume $<TARGET_FILE:huginn_cli>
                   ${CMAKE_BINARY_DIR}/test_train_cli_resume_haswell)
  set_tests_properties(train.cli_resume_haswell PROPERTIES
    ENVIRONMENT "OPENBLAS_CORETYPE=Haswell;OMP_NUM_THREADS=1" TIMEOUT 300)
endif()
add_test(NAME determinism.haswell COMMAND $<TARGET_FILE:huginn_tests> --gtest_filter=${HUGINN_HASWELL_FILTER})
set_tests_properties(determinism.haswell PROPERTIES
  ENVIRONMENT "OPENBLAS_CORETYPE=Haswell;OMP_NUM_THREADS=2;OMP_WAIT_POLICY=PASSIVE" TIMEOUT 300)
