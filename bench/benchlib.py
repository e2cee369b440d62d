"""benchlib.py - what only the benchmarks need: upstream's Go plugin as a Plugin, and the names
bench.py uses from the shared test library (tests/lib/tpdtest), which holds the fakes, their
instrumented variants (also used by the soak) and the process harness. Nothing under tests/
imports this file."""

import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.environ.get("TPD_SOURCE_DIR", os.path.abspath(os.path.join(HERE, "..")))
sys.path.insert(0, os.path.join(SRC, "tests", "lib"))

from tpdtest.harness import API_KEY, BOT_EMAIL, PLUGIN_USER, Plugin  # noqa: E402,F401
from tpdtest.instrumented import NOTIFY_SERVICE, ONCALL_SERVICE, LoadEnv as Env, route_of  # noqa: E402,F401
from tpdtest.procs import eventually, machine_notes, percentiles, proc_cpu_seconds, proc_mem  # noqa: E402,F401


class Upstream(Plugin):
    """Upstream's Go plugin (scripts/teleport.sh builds `pagerduty-upstream`, a wrapper main whose
    PagerDuty base URL is settable) against the same fakes: the identity file of the fake
    Teleport's PKI over gRPC mTLS, the fake PagerDuty's CA through SSL_CERT_FILE (Go reads it).
    Its logs are text (logrus), so readiness is a substring match; it has no /metrics."""

    def upstream_toml(self):
        # api_key starting with "/" is read from that file by upstream's LoadConfig.
        return """
[teleport]
addr = "%s"
identity = "%s"

[pagerduty]
api_key = "%s"
user_email = "%s"

[log]
output = "stderr"
severity = "info"
""" % (self.env.tp.addr, self.env.identity, self.env.api_key_file, BOT_EMAIL)

    def start(self, wait_ready=True, timeout=60):
        with open(self.config, "w") as f:
            f.write(self.upstream_toml())
        self.logf = open(self.log_path, "ab")
        self._off = self.logf.tell()
        penv = dict(os.environ, SSL_CERT_FILE=self.env.pd.ca_file)
        self.proc = subprocess.Popen([self.binary, "-config", self.config, "-pagerduty-url", self.env.pd.url],
                                     stdout=self.logf, stderr=subprocess.STDOUT, env=penv)
        self.t_start = time.monotonic()
        if wait_ready:
            self.wait_msg("Plugin is ready", timeout)
        return self

    def parse_line(self, line):
        # logrus text lines: only readiness is looked for.
        if "Plugin is ready" in line:
            return {"msg": "Plugin is ready", "raw": True}
        return {"msg": line, "raw": True}

    def metric(self, name):
        return None
