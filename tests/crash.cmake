# Crash safety of training checkpoints: SIGKILL at random moments of a run
# that saves after every step; --resume continues bit-exactly.
add_test(NAME train.crash_resume
         COMMAND bash ${CMAKE_SOURCE_DIR}/tests/train_crash.sh $<TARGET_FILE:huginn_cli>
                 ${CMAKE_BINARY_DIR}/test_train_crash 24)
set_tests_properties(train.crash_resume PROPERTIES ENVIRONMENT "OMP_NUM_THREADS=1" TIMEOUT 300)
