# Style: the C sources follow .clang-format (Debian's clang-format 14).
add_test(NAME style/clang-format
  COMMAND sh -c "git ls-files 'src/*.c' 'include/*.h' 'tests/*.c' | grep -v '^tests/fuzz/' | xargs clang-format --dry-run --Werror"
  WORKING_DIRECTORY ${CMAKE_SOURCE_DIR})
set_tests_properties(style/clang-format PROPERTIES TIMEOUT 120 LABELS style)

# The README's module map names every source file (a file added without a line there fails).
add_test(NAME style/module_map COMMAND sh ${CMAKE_CURRENT_LIST_DIR}/module_map.sh
  WORKING_DIRECTORY ${CMAKE_SOURCE_DIR})
set_tests_properties(style/module_map PROPERTIES TIMEOUT 60 LABELS style)

# The layers of src/ (README "Hacking"): no include reaches up or sideways.
add_test(NAME style/layers COMMAND sh ${CMAKE_CURRENT_LIST_DIR}/layers.sh
  WORKING_DIRECTORY ${CMAKE_SOURCE_DIR})
set_tests_properties(style/layers PROPERTIES TIMEOUT 60 LABELS style)

# Tests use the shared test library, never the benchmarks (no tests -> bench import).
add_test(NAME style/no_bench_imports COMMAND sh ${CMAKE_CURRENT_LIST_DIR}/no_bench_imports.sh
  WORKING_DIRECTORY ${CMAKE_SOURCE_DIR})
set_tests_properties(style/no_bench_imports PROPERTIES TIMEOUT 60 LABELS style)
