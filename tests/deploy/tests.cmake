# tests/deploy/tests.cmake - the deploy area's ctest registrations (label "deploy"):
# Helm chart (lint, render, kubeconform, yamllint, behavioural assertions), plain manifests
# drift, systemd unit, Dockerfile (hadolint + essentials + runtime packages).
#
# deploy/tools is a setup fixture: it installs the pinned tools once into the cache
# (${TPD_TOOLS_DIR:-$HOME/.cache/tpd-tools}, scripts/tools.sh); a cold cache builds helm and
# kubeconform with `go install` (about 4 minutes on 2 cores), a warm one takes a second.
# Every check fails (never skips) when a tool it needs cannot be installed.

set(TPD_DEPLOY_DIR ${CMAKE_SOURCE_DIR}/tests/deploy)
set(TPD_DEPLOY_OUT ${CMAKE_BINARY_DIR}/tests/deploy)
file(MAKE_DIRECTORY ${TPD_DEPLOY_OUT})
# go may live outside the default PATH (e.g. /usr/local/go/bin).
set(TPD_DEPLOY_ENV ${TPD_TEST_ENV} "PATH=$ENV{PATH}:/usr/local/go/bin")
if(DEFINED ENV{TPD_TOOLS_DIR})
  list(APPEND TPD_DEPLOY_ENV "TPD_TOOLS_DIR=$ENV{TPD_TOOLS_DIR}")
endif()

add_test(NAME deploy/tools COMMAND bash ${TPD_DEPLOY_DIR}/check.sh tools ${TPD_DEPLOY_OUT}/tools)
set_tests_properties(deploy/tools PROPERTIES TIMEOUT 1800 LABELS deploy
  ENVIRONMENT "${TPD_DEPLOY_ENV}" FIXTURES_SETUP tpd_deploy_tools)

foreach(step lint render kubeconform yamllint manifests systemd hadolint)
  add_test(NAME deploy/${step}
    COMMAND bash ${TPD_DEPLOY_DIR}/check.sh ${step} ${TPD_DEPLOY_OUT}/${step})
  set_tests_properties(deploy/${step} PROPERTIES TIMEOUT 300 LABELS deploy
    ENVIRONMENT "${TPD_DEPLOY_ENV}" FIXTURES_REQUIRED tpd_deploy_tools)
endforeach()

add_test(NAME deploy/chart_assertions COMMAND /usr/bin/python3 ${TPD_DEPLOY_DIR}/chart_assertions.py)
set_tests_properties(deploy/chart_assertions PROPERTIES TIMEOUT 300 LABELS deploy
  ENVIRONMENT "${TPD_DEPLOY_ENV}" FIXTURES_REQUIRED tpd_deploy_tools)

# Needs the built binary (TPD_BIN) to compare its shared libraries with the runtime stage.
add_test(NAME deploy/dockerfile COMMAND /usr/bin/python3 ${TPD_DEPLOY_DIR}/dockerfile_check.py)
set_tests_properties(deploy/dockerfile PROPERTIES TIMEOUT 120 LABELS deploy
  ENVIRONMENT "${TPD_DEPLOY_ENV}")
