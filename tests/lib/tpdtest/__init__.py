"""tpdtest - the one test library of teleport-pagerduty: the fakes (fake_teleport, fake_pagerduty),
the process harness (harness: Env, Plugin, plugin_toml, eventually), their instrumented variants
for load (instrumented: the bench and the soak) and /proc readers (procs).

Every entry script finds it the same way, before its first `import tpdtest`:

    sys.path.insert(0, os.path.join(<repository>, "tests", "lib"))

The benchmarks (bench/) import this library; nothing under tests/ imports bench/.
"""

import os

SRC = os.environ.get("TPD_SOURCE_DIR") or os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                                          "..", "..", ".."))
