# The Python module's pytest suite (tests/python), run with the interpreter the
# module was built for; skipped with a message when the module is off or
# NumPy/pytest are missing.
if(HUGINN_PYTHON)
  add_test(NAME python.pytest
    COMMAND ${Python3_EXECUTABLE} ${CMAKE_SOURCE_DIR}/tests/python/run.py
            $<TARGET_FILE_DIR:huginn_py> $<TARGET_FILE:huginn_cli> ${CMAKE_SOURCE_DIR})
  set_tests_properties(python.pytest PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 900
    ENVIRONMENT "OMP_NUM_THREADS=2;OMP_WAIT_POLICY=PASSIVE")
else()
  add_test(NAME python.pytest COMMAND ${CMAKE_COMMAND} -E echo
    "SKIPPED: the huginn Python module is off (needs python3-dev, python3-numpy, pybind11-dev, python3-pybind11; -DHUGINN_PYTHON=ON)")
  set_tests_properties(python.pytest PROPERTIES SKIP_REGULAR_EXPRESSION "SKIPPED")
endif()
