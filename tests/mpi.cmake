# Training through the CLI: bit-exact --resume, and `mpirun -np 2` data
# parallelism against one process on the same global batch.
add_test(NAME train.cli_resume
         COMMAND bash ${CMAKE_SOURCE_DIR}/tests/train_cli.sh resume $<TARGET_FILE:huginn_cli>
                 ${CMAKE_BINARY_DIR}/test_train_cli_resume)
set_tests_properties(train.cli_resume PROPERTIES ENVIRONMENT "OMP_NUM_THREADS=1" TIMEOUT 300)
find_program(MPIRUN_EXE NAMES mpirun mpiexec)
if(MPIRUN_EXE AND HUGINN_HAVE_MPI)
  add_test(NAME train.mpi2
           COMMAND bash ${CMAKE_SOURCE_DIR}/tests/train_cli.sh mpi $<TARGET_FILE:huginn_cli>
                   ${CMAKE_BINARY_DIR}/test_train_mpi2)
  set_tests_properties(train.mpi2 PROPERTIES ENVIRONMENT "OMP_NUM_THREADS=1" TIMEOUT 300)
endif()
