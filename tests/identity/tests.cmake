# tests/identity/tests.cmake - identity area integration test (owned by the identity area):
# the TLS-routing path end to end, tpd_tlsdial -> in-test ALPN router (like Teleport's Proxy)
# -> fake Teleport (grpcio, mTLS) -> a real gRPC Ping over grpc_channel_create_from_fd.
# Unit tests (test_identity, test_idwatch, test_tlsdial) live in tests/unit/.
add_executable(test_routing_grpc ${CMAKE_CURRENT_LIST_DIR}/test_routing_grpc.c)
target_compile_options(test_routing_grpc PRIVATE ${TPD_WARNINGS} -Wno-missing-prototypes
  -Wno-missing-field-initializers)
target_link_libraries(test_routing_grpc PRIVATE tpd_core PkgConfig::CMOCKA)
add_test(NAME identity/routing_grpc COMMAND test_routing_grpc WORKING_DIRECTORY ${CMAKE_SOURCE_DIR})
set_tests_properties(identity/routing_grpc PROPERTIES TIMEOUT 180
  ENVIRONMENT "${TPD_TEST_ENV}" LABELS "identity;integration")
