# End-to-end tests: the real binary against the fake Teleport and fake PagerDuty (pytest).
# Split in two so ctest -j2 runs them side by side.
set(TPD_E2E_ENV ${TPD_TEST_ENV} "PYTHONDONTWRITEBYTECODE=1")
add_test(NAME e2e/upstream_suite
  COMMAND /usr/bin/python3 -m pytest -q -p no:cacheprovider -x
          -k "incident_creation or approval or denial or expiration or review or race"
          ${CMAKE_SOURCE_DIR}/tests/e2e/test_e2e.py
  WORKING_DIRECTORY ${CMAKE_SOURCE_DIR}/tests/e2e)
add_test(NAME e2e/recovery
  COMMAND /usr/bin/python3 -m pytest -q -p no:cacheprovider
          -k "not (incident_creation or approval or denial or expiration or review or race)"
          ${CMAKE_SOURCE_DIR}/tests/e2e/test_e2e.py
  WORKING_DIRECTORY ${CMAKE_SOURCE_DIR}/tests/e2e)
set_tests_properties(e2e/upstream_suite e2e/recovery PROPERTIES
  TIMEOUT 900 LABELS e2e ENVIRONMENT "${TPD_E2E_ENV}")

# The same binary, not sanitized, under valgrind memcheck for a few scenarios (issue: memory
# safety). Definite and indirect leaks and any memory error fail the test.
add_test(NAME e2e/valgrind
  COMMAND /usr/bin/python3 -m pytest -q -p no:cacheprovider
          -k "test_incident_creation or test_approval or test_expiration or test_auto_approval_when_on_call or test_sigterm_graceful"
          ${CMAKE_SOURCE_DIR}/tests/e2e/test_e2e.py
  WORKING_DIRECTORY ${CMAKE_SOURCE_DIR}/tests/e2e)
set_tests_properties(e2e/valgrind PROPERTIES TIMEOUT 900 LABELS "e2e;valgrind"
  FIXTURES_REQUIRED release_binary
  ENVIRONMENT "${TPD_E2E_ENV};TPD_VALGRIND=1;TPD_BIN=${CMAKE_BINARY_DIR}/release/teleport-pagerduty")

# Requests that leave PENDING right after creation (reviewed, promoted, deleted, auto-approved in
# the same millisecond; with PagerDuty slowed): every request seen PENDING gets its incident.
add_test(NAME e2e/fast
  COMMAND /usr/bin/python3 -m pytest -q -p no:cacheprovider ${CMAKE_SOURCE_DIR}/tests/e2e/test_fast.py
  WORKING_DIRECTORY ${CMAKE_SOURCE_DIR}/tests/e2e)
set_tests_properties(e2e/fast PROPERTIES
  TIMEOUT 900 LABELS e2e ENVIRONMENT "${TPD_E2E_ENV}")

# The demo (scripts/run.sh) prints colour escapes only to a terminal and never with NO_COLOR:
# the whole demo once piped into a file, once on a pseudo-terminal, once there with NO_COLOR=1.
add_test(NAME e2e/demo_output
  COMMAND /usr/bin/python3 -m pytest -q -p no:cacheprovider ${CMAKE_SOURCE_DIR}/tests/e2e/test_demo_output.py
  WORKING_DIRECTORY ${CMAKE_SOURCE_DIR}/tests/e2e)
set_tests_properties(e2e/demo_output PROPERTIES TIMEOUT 600 LABELS e2e ENVIRONMENT "${TPD_E2E_ENV}")

# The features beyond upstream, each against fresh fakes: dry-run mode (the same scenario live and
# dry: the dry run writes nothing and logs exactly the live run's writes), auto-approval limited to
# escalation levels and schedules, one incident per notify service.
foreach(t dry_run oncall_filter notify_all)
  add_test(NAME e2e/${t}
    COMMAND /usr/bin/python3 -m pytest -q -p no:cacheprovider ${CMAKE_SOURCE_DIR}/tests/e2e/test_${t}.py
    WORKING_DIRECTORY ${CMAKE_SOURCE_DIR}/tests/e2e)
  set_tests_properties(e2e/${t} PROPERTIES TIMEOUT 300 LABELS e2e ENVIRONMENT "${TPD_E2E_ENV}")
endforeach()
