# tests/ha/tests.cmake - high availability end to end (labels k8s, e2e): two and three REAL
# teleport-pagerduty processes with leader election on a REAL kube-apiserver (the leader area's
# k8s_harness.py), reconciling from the fake Teleport into the fake PagerDuty (the e2e area's
# harness.py): one leader, SIGKILL and SIGTERM take-overs measured, every request exactly one
# incident, and every reconciling call the fakes saw made by the process leading at that instant.
# The test lives in tests/leader/test_ha_controller.py, its helpers in tests/ha/ha_env.py.
# Needs the same tool fixtures as leader/k8s: tpd_k8s_tools (kube-apiserver, kubectl, etcd from
# scripts/k8s.sh) and tpd_deploy_tools. About 40 s warm.

set(TPD_HA_ENV ${TPD_TEST_ENV} "PYTHONDONTWRITEBYTECODE=1" "PATH=$ENV{PATH}:/usr/local/go/bin")
if(DEFINED ENV{TPD_TOOLS_DIR})
  list(APPEND TPD_HA_ENV "TPD_TOOLS_DIR=$ENV{TPD_TOOLS_DIR}")
endif()

add_test(NAME ha/controller
  COMMAND bash ${CMAKE_SOURCE_DIR}/tests/deploy/need_go_tools.sh kubernetes --
          /usr/bin/python3 -m pytest -q -s -p no:cacheprovider
          ${CMAKE_SOURCE_DIR}/tests/leader/test_ha_controller.py
  WORKING_DIRECTORY ${CMAKE_SOURCE_DIR}/tests/leader)
set_tests_properties(ha/controller PROPERTIES TIMEOUT 600 LABELS "k8s;e2e;ha"
  ENVIRONMENT "${TPD_HA_ENV}" FIXTURES_REQUIRED "tpd_k8s_tools;tpd_deploy_tools" SKIP_RETURN_CODE 77)
