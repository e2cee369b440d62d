# tests/cluster/tests.cmake - the chart on a real one-node Kubernetes v1.35 cluster (label
# "cluster"): helm upgrade --install, kubectl logs, rollouts on config change, a Secret rotated
# under a running pod, two replicas with a Lease and a PDB, a rollout restart under load.
#
# cluster/up is a setup fixture: tests/cluster/cluster.py builds the runtime image (as
# deploy/runtime_image does, from the cached Debian root) and starts etcd, kube-apiserver,
# kube-controller-manager, kube-scheduler, containerd, the kubelet and kube-proxy in a network
# namespace of its own (about 10 s warm; the binaries come from scripts/k8s.sh, fixture
# tpd_k8s_tools; helm from tpd_deploy_tools). cluster/down stops it and removes what it made.
# The five tests share the cluster, one at a time. Needs root; without root or without Go >= 1.25
# they report themselves skipped (exit 77), which .ci/run does not accept.

set(TPD_CLUSTER_ENV ${TPD_TEST_ENV} "PATH=$ENV{PATH}:/usr/local/go/bin" "PYTHONDONTWRITEBYTECODE=1")
foreach(v TPD_TOOLS_DIR TPD_DEBIAN_MIRROR TPD_DEBIAN_SECURITY_MIRROR)
  if(DEFINED ENV{${v}})
    list(APPEND TPD_CLUSTER_ENV "${v}=$ENV{${v}}")
  endif()
endforeach()
set(TPD_CLUSTER_STATE ${CMAKE_BINARY_DIR}/tests/cluster/state)
set(TPD_CLUSTER_PY /usr/bin/python3 ${CMAKE_SOURCE_DIR}/tests/cluster/cluster.py)

add_test(NAME cluster/up COMMAND ${TPD_CLUSTER_PY} up ${TPD_CLUSTER_STATE})
set_tests_properties(cluster/up PROPERTIES TIMEOUT 900 LABELS cluster
  ENVIRONMENT "${TPD_CLUSTER_ENV}" FIXTURES_SETUP tpd_cluster
  FIXTURES_REQUIRED "tpd_k8s_tools;tpd_deploy_tools" RESOURCE_LOCK "tpd_rootfs;tpd_cluster"
  SKIP_RETURN_CODE 77)

foreach(t install upgrade identity_rotation two_replicas rollout_restart)
  add_test(NAME cluster/${t} COMMAND ${TPD_CLUSTER_PY} test ${TPD_CLUSTER_STATE} test_${t})
  set_tests_properties(cluster/${t} PROPERTIES TIMEOUT 600 LABELS cluster
    ENVIRONMENT "${TPD_CLUSTER_ENV}" FIXTURES_REQUIRED tpd_cluster RESOURCE_LOCK tpd_cluster
    SKIP_RETURN_CODE 77)
endforeach()

add_test(NAME cluster/down COMMAND ${TPD_CLUSTER_PY} down ${TPD_CLUSTER_STATE})
set_tests_properties(cluster/down PROPERTIES TIMEOUT 300 LABELS cluster
  ENVIRONMENT "${TPD_CLUSTER_ENV}" FIXTURES_CLEANUP tpd_cluster RESOURCE_LOCK tpd_cluster)
