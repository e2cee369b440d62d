# tests/pagerduty/tests.cmake - PagerDuty client tests beyond the unit tests:
#   pagerduty/integration   the client against the fake PagerDuty (HTTPS, test CA) in a subprocess
#   pagerduty/conformance   the client's requests through Prism (validating proxy, PagerDuty's
#                           OpenAPI spec) in front of the fake; installs the pinned Prism with npm ci
pkg_check_modules(PD_CMOCKA REQUIRED IMPORTED_TARGET cmocka)

add_executable(pd_integration ${CMAKE_SOURCE_DIR}/tests/pagerduty/pd_integration.c)
target_compile_options(pd_integration PRIVATE ${TPD_WARNINGS} -Wno-missing-prototypes)
target_link_libraries(pd_integration PRIVATE tpd_core PkgConfig::PD_CMOCKA)
add_test(NAME pagerduty/integration COMMAND pd_integration WORKING_DIRECTORY ${CMAKE_SOURCE_DIR})
set_tests_properties(pagerduty/integration PROPERTIES TIMEOUT 300 LABELS pagerduty
  ENVIRONMENT "${TPD_TEST_ENV}")

add_executable(pd_conformance_driver ${CMAKE_SOURCE_DIR}/tests/pagerduty/pd_conformance_driver.c)
target_compile_options(pd_conformance_driver PRIVATE ${TPD_WARNINGS})
target_link_libraries(pd_conformance_driver PRIVATE tpd_core)
# The spec is not part of the repository: by default ../shared/pagerduty/openapiv3.json next to
# the checkout. Without it the test reports itself skipped (exit 77) with the path it looked for;
# CI fails on any skip (.ci/run).
# Another place: -DTPD_PD_SPEC=<path> or the environment variable TPD_PD_SPEC at configure time.
if(DEFINED ENV{TPD_PD_SPEC})
  set(tpd_pd_spec_default $ENV{TPD_PD_SPEC})
else()
  set(tpd_pd_spec_default ${CMAKE_SOURCE_DIR}/../shared/pagerduty/openapiv3.json)
endif()
set(TPD_PD_SPEC ${tpd_pd_spec_default} CACHE FILEPATH "PagerDuty's OpenAPI v3 spec for pagerduty/conformance")
add_test(NAME pagerduty/conformance
  COMMAND /usr/bin/python3 ${CMAKE_SOURCE_DIR}/tests/pagerduty/prism_conformance.py
          --driver $<TARGET_FILE:pd_conformance_driver>
          --spec ${TPD_PD_SPEC}
          --npm-dir ${CMAKE_BINARY_DIR}/prism
  WORKING_DIRECTORY ${CMAKE_SOURCE_DIR})
set_tests_properties(pagerduty/conformance PROPERTIES TIMEOUT 600 LABELS pagerduty
  ENVIRONMENT "${TPD_TEST_ENV}" SKIP_RETURN_CODE 77)

add_test(NAME pagerduty/fake COMMAND /usr/bin/python3 -m pytest -q -p no:cacheprovider
  ${CMAKE_SOURCE_DIR}/tests/pagerduty/test_fake_pagerduty.py WORKING_DIRECTORY ${CMAKE_SOURCE_DIR})
set_tests_properties(pagerduty/fake PROPERTIES TIMEOUT 120 LABELS pagerduty ENVIRONMENT "${TPD_TEST_ENV}")
