# tests/cleanroom/tests.cmake - the dependency lists are complete (label "cleanroom").
#
# cleanroom/debian12: a pristine `debootstrap --variant=minbase bookworm` root (cached in the tool
# cache before anything is installed into it; a fresh copy per run) gets this machine's APT
# sources and the repository, then runs scripts/deps.sh, `scripts/test.sh -L unit` (ASan+UBSan,
# -DTPD_WERROR=ON) and a Release build (-DTPD_WERROR=ON) with its unit tests, chrooted. A
# package missing from scripts/deps.d/ fails it, naming the step. Needs root (else skipped, 77).
# Logs: <build>/tests/cleanroom/<step>.log. Times: see README "How long things take".
set(TPD_CLEANROOM_ENV "TPD_BUILD_DIR=${CMAKE_BINARY_DIR}")
foreach(v TPD_TOOLS_DIR TPD_DEBIAN_MIRROR)
  if(DEFINED ENV{${v}})
    list(APPEND TPD_CLEANROOM_ENV "${v}=$ENV{${v}}")
  endif()
endforeach()
add_test(NAME cleanroom/debian12
  COMMAND bash ${CMAKE_SOURCE_DIR}/tests/cleanroom/cleanroom.sh ${CMAKE_BINARY_DIR}/tests/cleanroom)
set_tests_properties(cleanroom/debian12 PROPERTIES TIMEOUT 3000 LABELS cleanroom
  ENVIRONMENT "${TPD_CLEANROOM_ENV}" SKIP_RETURN_CODE 77)

# cleanroom/packages: the release artefacts (scripts/release.sh: tarball and .deb, built here in
# <build>/tests/cleanroom/release-pkg) installed and removed in a fresh copy of the same pristine
# root: the tarball's `install` without and with the runtime libraries, `apt-get install` of the
# .deb, `dpkg -P` (tests/cleanroom/cleanroom.sh --packages). Needs root (else skipped, 77).
add_test(NAME cleanroom/packages
  COMMAND sh -c "'${CMAKE_SOURCE_DIR}/scripts/release.sh' --build '${CMAKE_BINARY_DIR}/tests/cleanroom/release-pkg' --out '${CMAKE_BINARY_DIR}/tests/cleanroom/dist' >/dev/null && exec bash '${CMAKE_SOURCE_DIR}/tests/cleanroom/cleanroom.sh' --packages '${CMAKE_BINARY_DIR}/tests/cleanroom/dist' '${CMAKE_BINARY_DIR}/tests/cleanroom/packages'")
set_tests_properties(cleanroom/packages PROPERTIES TIMEOUT 1200 LABELS cleanroom
  ENVIRONMENT "${TPD_CLEANROOM_ENV}" SKIP_RETURN_CODE 77 RESOURCE_LOCK tpd_cleanroom)
set_tests_properties(cleanroom/debian12 PROPERTIES RESOURCE_LOCK tpd_cleanroom)
