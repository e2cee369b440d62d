# Status server tests: a test server executable (status server + fake checks) driven by pytest.
#   status/endpoints   codes and bodies of /healthz, /readyz, /metrics in each check state; 404, 405, HEAD
#   status/promtool    `promtool check metrics` on a live scrape
#   status/prometheus  a real Prometheus server scrapes the endpoint; its HTTP API returns the series
#   status/hostile     1,000 connections, oversized headers, slow senders; the server still answers
add_executable(tpd_status_testserver ${CMAKE_CURRENT_LIST_DIR}/status_testserver.c)
target_compile_options(tpd_status_testserver PRIVATE ${TPD_WARNINGS})
target_link_libraries(tpd_status_testserver PRIVATE tpd_core)

foreach(t endpoints promtool prometheus hostile)
  add_test(NAME status/${t}
    COMMAND /usr/bin/python3 -m pytest -q -p no:cacheprovider ${CMAKE_CURRENT_LIST_DIR}/test_status.py -k ${t})
  set_tests_properties(status/${t} PROPERTIES
    TIMEOUT 90 LABELS status
    ENVIRONMENT "${TPD_TEST_ENV};TPD_STATUS_SERVER=$<TARGET_FILE:tpd_status_testserver>")
endforeach()
