# tests/realteleport/tests.cmake - label "real-teleport": our binary against a real Teleport
# auth server and proxy on loopback (built from Teleport's Go module by scripts/teleport.sh,
# cached in ${TPD_TOOLS_DIR:-$HOME/.cache/tpd-tools}/teleport-<version>), with the fake
# PagerDuty. real-teleport/v<major>/build builds (or finds) the binaries; each scenario file
# then runs as its own test. Without Go >= 1.22 every test here exits 77 (skipped).
#
#   ctest --test-dir build -L real-teleport
set(TPD_REALTP_DIR ${CMAKE_SOURCE_DIR}/tests/realteleport)
set(TPD_REALTP_ENV ${TPD_TEST_ENV} "PATH=$ENV{PATH}:/usr/local/go/bin" "PYTHONDONTWRITEBYTECODE=1")
if(DEFINED ENV{TPD_TOOLS_DIR})
  list(APPEND TPD_REALTP_ENV "TPD_TOOLS_DIR=$ENV{TPD_TOOLS_DIR}")
endif()
# The pinned Teleport versions (majors; see PINS in scripts/teleport.sh).
set(TPD_REALTP_VERSIONS 15)
foreach(v ${TPD_REALTP_VERSIONS})
  add_test(NAME real-teleport/v${v}/build COMMAND ${CMAKE_SOURCE_DIR}/scripts/teleport.sh ${v})
  set_tests_properties(real-teleport/v${v}/build PROPERTIES TIMEOUT 3600 LABELS real-teleport
    SKIP_RETURN_CODE 77 ENVIRONMENT "${TPD_REALTP_ENV}" FIXTURES_SETUP tpd_realtp_v${v})
  foreach(s paths lifecycle fast restart)
    add_test(NAME real-teleport/v${v}/${s}
      COMMAND ${TPD_REALTP_DIR}/run.sh ${v} test_${s}.py
      WORKING_DIRECTORY ${TPD_REALTP_DIR})
    set_tests_properties(real-teleport/v${v}/${s} PROPERTIES TIMEOUT 900 LABELS real-teleport
      SKIP_RETURN_CODE 77 ENVIRONMENT "${TPD_REALTP_ENV}" FIXTURES_REQUIRED tpd_realtp_v${v})
  endforeach()
endforeach()
