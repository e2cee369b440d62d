# Fuzzing (issue 8): libFuzzer targets built with clang -fsanitize=fuzzer,address,undefined in a
# stand-alone project (tests/fuzz/CMakeLists.txt) under <build>/fuzz, so the gcc build is
# untouched. fuzz/build compiles them; then each target replays its regressions and fuzzes for
# TPD_FUZZ_SECONDS from the committed seeds. A crash fails the test and leaves the reproducer in
# <build>/fuzz/artifacts/<target>/. Longer runs: tests/fuzz/run.sh 600 (see tests/fuzz/README.md).
# Exit code 77 (no clang/libFuzzer installed) marks the tests skipped.
set(TPD_FUZZ_SECONDS 20 CACHE STRING "Seconds each libFuzzer target runs under ctest")

add_test(NAME fuzz/build COMMAND ${CMAKE_CURRENT_LIST_DIR}/build.sh ${CMAKE_BINARY_DIR})
set_tests_properties(fuzz/build PROPERTIES TIMEOUT 900 LABELS fuzz FIXTURES_SETUP tpd_fuzz_build
  SKIP_RETURN_CODE 77)

file(GLOB TPD_FUZZ_TARGETS CONFIGURE_DEPENDS ${CMAKE_CURRENT_LIST_DIR}/fuzz_*.c)
foreach(f ${TPD_FUZZ_TARGETS})
  get_filename_component(t ${f} NAME_WE)
  string(REPLACE "fuzz_" "" short ${t})
  set(env "TPD_BUILD_DIR=${CMAKE_BINARY_DIR}" "TPD_FUZZ_SEED=20261129")
  add_test(NAME fuzz/${short}
    COMMAND ${CMAKE_CURRENT_LIST_DIR}/run.sh -B ${CMAKE_BINARY_DIR} --no-build ${TPD_FUZZ_SECONDS} ${t})
  math(EXPR tmo "${TPD_FUZZ_SECONDS} + 120")
  set_tests_properties(fuzz/${short} PROPERTIES TIMEOUT ${tmo} LABELS fuzz
    FIXTURES_REQUIRED tpd_fuzz_build SKIP_RETURN_CODE 77 ENVIRONMENT "${env}")
endforeach()
