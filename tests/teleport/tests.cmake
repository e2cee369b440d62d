# tests/teleport/tests.cmake - integration tests of the Teleport gRPC client against the fake
# Teleport (tests/lib/tpdtest/fake_teleport.py, real gRPC + mTLS on loopback). Owned by the teleport area.
add_executable(test_teleport_fake ${CMAKE_CURRENT_LIST_DIR}/test_teleport_fake.c)
target_compile_options(test_teleport_fake PRIVATE ${TPD_WARNINGS} -Wno-missing-prototypes)
target_link_libraries(test_teleport_fake PRIVATE tpd_core PkgConfig::CMOCKA)
add_test(NAME teleport/fake_integration COMMAND test_teleport_fake WORKING_DIRECTORY ${CMAKE_SOURCE_DIR})
set_tests_properties(teleport/fake_integration PROPERTIES TIMEOUT 300
  ENVIRONMENT "${TPD_TEST_ENV}" LABELS "teleport;integration")
