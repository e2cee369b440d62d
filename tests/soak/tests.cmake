# Chaos soak (tests/soak/soak.py): the real binary under load while it is SIGKILLed, the fake
# Teleport drops streams and refuses connections, the fake PagerDuty answers 429/5xx/slow/truncated
# and the identity is rotated kubelet-style. A short fixed-seed run (~60 s load + quiet period);
# run longer by hand: tests/soak/soak.py --seed 7 --duration 1800.
add_test(NAME soak/short
  COMMAND /usr/bin/python3 ${CMAKE_SOURCE_DIR}/tests/soak/soak.py --seed 1 --duration 60 --rate 5
  WORKING_DIRECTORY ${CMAKE_SOURCE_DIR})
set_tests_properties(soak/short PROPERTIES
  TIMEOUT 420 LABELS soak ENVIRONMENT "${TPD_TEST_ENV};PYTHONDONTWRITEBYTECODE=1")
