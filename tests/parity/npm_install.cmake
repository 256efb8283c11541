# Installs tests/parity/package.json's packages (HF tokenizers for node and the
# tokenizer files) into the build directory with `npm ci`. Run as
#   cmake -DNPM=... -DSRC=tests/parity -DDST=build/parity -P npm_install.cmake
# Fails loudly when npm or the registry is unavailable: the parity test must
# never pass without having run.
if(NOT NPM OR NOT EXISTS "${NPM}")
  message(FATAL_ERROR "tokenizer parity: npm not found; install nodejs and npm (scripts/setup.sh does) and re-run cmake")
endif()
file(MAKE_DIRECTORY "${DST}")
file(SHA256 "${SRC}/package-lock.json" lock_hash)
set(stamp "${DST}/node_modules/.huginn-lock-sha256")
if(EXISTS "${stamp}")
  file(READ "${stamp}" old_hash)
  if(old_hash STREQUAL lock_hash AND EXISTS "${DST}/node_modules/@anush008/tokenizers/package.json")
    message(STATUS "tokenizer parity: npm packages already installed in ${DST}")
    return()
  endif()
endif()
configure_file("${SRC}/package.json" "${DST}/package.json" COPYONLY)
configure_file("${SRC}/package-lock.json" "${DST}/package-lock.json" COPYONLY)
execute_process(COMMAND "${NPM}" ci --no-audit --no-fund --loglevel=error
                WORKING_DIRECTORY "${DST}" RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err TIMEOUT 600)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "tokenizer parity: `npm ci` in ${DST} failed (${rc}); is the npm registry reachable?\n${out}\n${err}")
endif()
file(WRITE "${stamp}" "${lock_hash}")
message(STATUS "tokenizer parity: installed npm packages into ${DST}")
