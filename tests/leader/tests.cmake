# tests/leader/tests.cmake - leader election against a REAL Kubernetes API server (label "k8s").
#
# leader/k8s_tools is a setup fixture (also of the ha and cluster tests): scripts/k8s.sh builds
# Kubernetes v1.35 (kube-apiserver, kubectl, and the node's binaries for the cluster tests) from
# the Go module proxy into ${TPD_TOOLS_DIR:-$HOME/.cache/tpd-tools} and installs etcd-server and
# the node's packages. Cold: about 4.5 minutes on 2 idle cores; cached: about a second. Without
# Go >= 1.25 it reports itself skipped (exit 77). leader/k8s then runs tests/leader/test_k8s.py (a loopback etcd +
# kube-apiserver per run, about 1-1.5 minutes): chart/manifests server dry run, RBAC can-i,
# two and three election participants (tpd_leader_driver) with SIGKILL and SIGTERM take-overs,
# and the unit tests' fake Lease server checked against the real one. The unit tests of
# src/runtime/leader.c (tests/unit/test_leader.c) use tests/leader/fake_lease.py and need none of this.

add_executable(tpd_leader_driver ${CMAKE_SOURCE_DIR}/tests/leader/leader_driver.c)
target_compile_options(tpd_leader_driver PRIVATE ${TPD_WARNINGS})
target_link_libraries(tpd_leader_driver PRIVATE tpd_core)

set(TPD_LEADER_ENV ${TPD_TEST_ENV} "TPD_LEADER_DRIVER=$<TARGET_FILE:tpd_leader_driver>"
  "PATH=$ENV{PATH}:/usr/local/go/bin")
if(DEFINED ENV{TPD_TOOLS_DIR})
  list(APPEND TPD_LEADER_ENV "TPD_TOOLS_DIR=$ENV{TPD_TOOLS_DIR}")
endif()

add_test(NAME leader/k8s_tools COMMAND bash ${CMAKE_SOURCE_DIR}/scripts/k8s.sh)
set_tests_properties(leader/k8s_tools PROPERTIES TIMEOUT 1800 LABELS "k8s;leader"
  ENVIRONMENT "${TPD_LEADER_ENV}" FIXTURES_SETUP tpd_k8s_tools SKIP_RETURN_CODE 77)

# The chart is rendered with helm from the deploy area's tool cache (fixture tpd_deploy_tools).
# Without helm and without Go >= 1.22 to build it: skipped (exit 77, tests/deploy/need_go_tools.sh).
add_test(NAME leader/k8s
  COMMAND bash ${CMAKE_SOURCE_DIR}/tests/deploy/need_go_tools.sh helm kubernetes --
          /usr/bin/python3 -m pytest -q -s -p no:cacheprovider ${CMAKE_SOURCE_DIR}/tests/leader/test_k8s.py)
set_tests_properties(leader/k8s PROPERTIES TIMEOUT 600 LABELS "k8s;leader"
  ENVIRONMENT "${TPD_LEADER_ENV}" FIXTURES_REQUIRED "tpd_k8s_tools;tpd_deploy_tools" SKIP_RETURN_CODE 77)
