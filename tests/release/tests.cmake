# A release (non-sanitized) build of the binary in <build>/release, for tests that cannot run a
# sanitized binary: valgrind, the runtime-image chroot. A ctest fixture builds it once.
set(TPD_RELEASE_BIN ${CMAKE_BINARY_DIR}/release/teleport-pagerduty)
add_test(NAME release/build
  COMMAND sh -c "cmake -S '${CMAKE_SOURCE_DIR}' -B '${CMAKE_BINARY_DIR}/release' -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTPD_SANITIZE=OFF -DTPD_TESTS=OFF >/dev/null && cmake --build '${CMAKE_BINARY_DIR}/release' -j2 --target teleport-pagerduty")
set_tests_properties(release/build PROPERTIES TIMEOUT 900 LABELS release FIXTURES_SETUP release_binary
  RESOURCE_LOCK release_build)
