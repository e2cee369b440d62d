# tests/deploy/tests.cmake - the deploy area's ctest registrations (label "deploy"):
# Helm chart (lint, render, kubeconform, yamllint, behavioural assertions), plain manifests
# drift, systemd unit, Dockerfile (hadolint + essentials + runtime packages), the runtime stage
# run for real in a debootstrap root (runtime_image.py), the chart's config through the loader
# (chart_config.py).
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
list(APPEND TPD_DEPLOY_ENV "PYTHONDONTWRITEBYTECODE=1")
foreach(v TPD_TOOLS_DIR TPD_DEBIAN_MIRROR TPD_DEBIAN_SECURITY_MIRROR)
  if(DEFINED ENV{${v}})
    list(APPEND TPD_DEPLOY_ENV "${v}=$ENV{${v}}")
  endif()
endforeach()

# Tests that need helm or kubeconform go through need_go_tools.sh: without those tools in the
# cache and without Go >= 1.22 to build them (Debian 12 ships 1.19) they report themselves
# skipped (exit 77, naming what is missing); .ci/run fails on any skip.
set(TPD_NEED_GO bash ${TPD_DEPLOY_DIR}/need_go_tools.sh)
add_test(NAME deploy/tools COMMAND ${TPD_NEED_GO} helm kubeconform --
  bash ${TPD_DEPLOY_DIR}/check.sh tools ${TPD_DEPLOY_OUT}/tools)
set_tests_properties(deploy/tools PROPERTIES TIMEOUT 1800 LABELS deploy
  ENVIRONMENT "${TPD_DEPLOY_ENV}" FIXTURES_SETUP tpd_deploy_tools SKIP_RETURN_CODE 77)

foreach(step lint render kubeconform yamllint manifests systemd hadolint)
  if(step STREQUAL "kubeconform")
    set(need ${TPD_NEED_GO} helm kubeconform --)
  elseif(step MATCHES "^(lint|render|yamllint|manifests)$")
    set(need ${TPD_NEED_GO} helm --)
  else()
    set(need "")
  endif()
  add_test(NAME deploy/${step}
    COMMAND ${need} bash ${TPD_DEPLOY_DIR}/check.sh ${step} ${TPD_DEPLOY_OUT}/${step})
  set_tests_properties(deploy/${step} PROPERTIES TIMEOUT 300 LABELS deploy
    ENVIRONMENT "${TPD_DEPLOY_ENV}" FIXTURES_REQUIRED tpd_deploy_tools SKIP_RETURN_CODE 77)
endforeach()

add_test(NAME deploy/chart_assertions
  COMMAND ${TPD_NEED_GO} helm -- /usr/bin/python3 ${TPD_DEPLOY_DIR}/chart_assertions.py)
set_tests_properties(deploy/chart_assertions PROPERTIES TIMEOUT 300 LABELS deploy
  ENVIRONMENT "${TPD_DEPLOY_ENV}" FIXTURES_REQUIRED tpd_deploy_tools SKIP_RETURN_CODE 77)

# Needs the built binary (TPD_BIN) to compare its shared libraries with the runtime stage.
add_test(NAME deploy/dockerfile COMMAND /usr/bin/python3 ${TPD_DEPLOY_DIR}/dockerfile_check.py)
set_tests_properties(deploy/dockerfile PROPERTIES TIMEOUT 120 LABELS deploy
  ENVIRONMENT "${TPD_DEPLOY_ENV}")

# The chart's rendered config (default values and every tests/deploy/values file) loads in the
# binary's own loader (`check`), and invalid values (tests/deploy/values-invalid) are refused by
# the chart or reported by the loader. Needs helm and TPD_BIN; runs `check` under unshare --net.
add_test(NAME deploy/chart_config
  COMMAND ${TPD_NEED_GO} helm -- /usr/bin/python3 ${TPD_DEPLOY_DIR}/chart_config.py)
set_tests_properties(deploy/chart_config PROPERTIES TIMEOUT 300 LABELS deploy
  ENVIRONMENT "${TPD_DEPLOY_ENV}" FIXTURES_REQUIRED tpd_deploy_tools SKIP_RETURN_CODE 77)

# The Dockerfile's runtime stage without a container engine: a debootstrap minbase root with the
# stage's RUN instructions (cached in the tools dir by package list: cold about 1.5 min for the
# root plus a release build of the binary, warm a few seconds), then version, configure, check
# and ENTRYPOINT + CMD end to end against the fakes, chrooted as the stage's USER. Needs root.
# One root build at a time: RESOURCE_LOCK here, a lock file in the cache across build trees.
set(TPD_RUNTIME_ENV ${TPD_DEPLOY_ENV})
add_test(NAME deploy/runtime_image COMMAND /usr/bin/python3 ${TPD_DEPLOY_DIR}/runtime_image.py)
set_tests_properties(deploy/runtime_image PROPERTIES TIMEOUT 1500 LABELS deploy
  ENVIRONMENT "${TPD_RUNTIME_ENV}" RESOURCE_LOCK tpd_rootfs)

add_test(NAME deploy/tarball COMMAND /usr/bin/python3 ${TPD_DEPLOY_DIR}/tarball.py)
set_tests_properties(deploy/tarball PROPERTIES TIMEOUT 300 LABELS deploy
  ENVIRONMENT "${TPD_DEPLOY_ENV}" SKIP_RETURN_CODE 77)
