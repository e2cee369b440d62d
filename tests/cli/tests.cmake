# CLI tests: commands, exit codes, one-line config errors, secrets never printed.
add_test(NAME cli/commands
  COMMAND /usr/bin/python3 -m pytest -q -p no:cacheprovider ${CMAKE_SOURCE_DIR}/tests/cli/test_cli.py
  WORKING_DIRECTORY ${CMAKE_SOURCE_DIR}/tests/cli)
set_tests_properties(cli/commands PROPERTIES TIMEOUT 300 LABELS cli ENVIRONMENT "${TPD_TEST_ENV}")
