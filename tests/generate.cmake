# Decoding must not allocate per token (a separate program: it replaces operator new).
add_executable(alloc_generate ${CMAKE_SOURCE_DIR}/tests/alloc_generate.cpp)
target_include_directories(alloc_generate PRIVATE ${CMAKE_SOURCE_DIR}/src)
target_link_libraries(alloc_generate PRIVATE huginn)
target_compile_definitions(alloc_generate PRIVATE HUGINN_TEST_DATA="${CMAKE_SOURCE_DIR}/tests/data")
add_test(NAME generate.no_alloc_per_token COMMAND alloc_generate)
set_tests_properties(generate.no_alloc_per_token PROPERTIES ENVIRONMENT "OMP_NUM_THREADS=2;OMP_WAIT_POLICY=PASSIVE" TIMEOUT 120)
