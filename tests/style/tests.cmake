# Style: the C sources follow .clang-format (Debian's clang-format 14).
add_test(NAME style/clang-format
  COMMAND sh -c "git ls-files 'src/*.c' 'include/*.h' 'tests/*.c' | grep -v '^tests/fuzz/' | xargs clang-format --dry-run --Werror"
  WORKING_DIRECTORY ${CMAKE_SOURCE_DIR})
set_tests_properties(style/clang-format PROPERTIES TIMEOUT 120 LABELS style)
