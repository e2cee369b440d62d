# Config area: the broken/good corpus itself is checked by the unit test unit/test_config.
#   config/fuzz_smoke  replays the corpus through the TOML reader, the YAML reader and the config
#                      loader, then runs a deterministic mutation fuzzer over it (no crash, every
#                      error carries its file:line:col prefix; ASan/UBSan in sanitizer builds).
# The same source is a libFuzzer target when built with clang and -DTPD_LIBFUZZER (see its header).
add_executable(tpd_fuzz_config ${CMAKE_CURRENT_LIST_DIR}/fuzz_config.c)
target_compile_options(tpd_fuzz_config PRIVATE ${TPD_WARNINGS})
target_link_libraries(tpd_fuzz_config PRIVATE tpd_core)

add_test(NAME config/fuzz_smoke
  COMMAND tpd_fuzz_config -n 30000 ${CMAKE_CURRENT_LIST_DIR}/broken ${CMAKE_CURRENT_LIST_DIR}/good)
set_tests_properties(config/fuzz_smoke PROPERTIES TIMEOUT 300 LABELS config ENVIRONMENT "${TPD_TEST_ENV}")
