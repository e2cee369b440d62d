"""harness.py - runs the real teleport-pagerduty binary against the fake Teleport (gRPC, mTLS) and
the fake PagerDuty (HTTPS) on loopback: the e2e tests, the demo, HA, the real-Teleport tests, the
bench and the soak all start it through Plugin.

Nothing here sleeps to synchronise: every wait polls a condition with a deadline (`eventually`).
"""

import collections
import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.request

from tpdtest import SRC
from tpdtest.fake_pagerduty import FakePagerDuty
from tpdtest.fake_teleport import FakeTeleport
from tpdtest.procs import eventually, proc_cpu_seconds, proc_mem, terminate  # noqa: F401

API_KEY = "u+testSECRETapikey0123456789"
BOT_EMAIL = "bot@example.com"
PLUGIN_USER = "teleport-plugin"
LSAN_EXIT = 23  # LeakSanitizer's default exit status when it finds a leak
HERE = os.path.dirname(os.path.abspath(__file__))


def binary():
    b = os.environ.get("TPD_BIN")
    if b:
        return b
    return os.path.join(os.environ.get("TPD_BUILD_DIR", os.path.join(SRC, "build")), "teleport-pagerduty")


def write_api_key(workdir):
    """The API key in a 0600 file (the config names the file, as a Kubernetes secret would)."""
    path = os.path.join(workdir, "pagerduty_api_key")
    with open(path, "w") as f:
        f.write(API_KEY + "\n")
    os.chmod(path, 0o600)
    return path


def plugin_toml(addr, identity, api_key_file, pd_url, extra="", pd_extra="", status_extra="",
                teleport_extra="", severity="debug", workers=4):
    """The plugin's TOML for the tests: JSON logs at `severity`, a status port of its own, and
    `workers` workers (None: the default). `extra` goes under [reconcile]."""
    return """
[teleport]
addr = "%s"
identity = "%s"
refresh_identity = true
%s

[pagerduty]
api_key = "%s"
user_email = "%s"
api_endpoint = "%s"
%s

[log]
output = "stderr"
severity = "%s"
format = "json"

[status]
listen_addr = "127.0.0.1:0"
%s

[reconcile]
%s%s
""" % (addr, identity, teleport_extra, api_key_file, BOT_EMAIL, pd_url, pd_extra, severity, status_extra,
       "" if workers is None else "workers = %d\n" % workers, extra)


class Plugin:
    """One teleport-pagerduty process with its config, log file and status port.

    env provides toml(extra, pd_extra, status_extra) and .pd (the fake PagerDuty, for its CA).
    The log (JSON lines) is read incrementally; keep_lines=False keeps only message counts (for
    long load runs), which wait_msg uses; lines/find/wait_log need the lines."""

    def __init__(self, env, workdir=None, extra_toml="", name="plugin", pd_extra="", status_extra="",
                 binary_path=None, keep_lines=True):
        self.env = env
        self.workdir = workdir or env.workdir
        self.name = name
        self.binary = binary_path or binary()
        self.config = os.path.join(self.workdir, name + ".toml")
        # Not beside the identity file: the plugin watches that directory (inotify), so every
        # log line written there would wake its housekeeper (3 wake-ups per lifecycle in bench/).
        logs = os.path.join(self.workdir, "logs")
        os.makedirs(logs, exist_ok=True)
        self.log_path = os.path.join(logs, name + ".log")
        self.extra_toml, self.pd_extra, self.status_extra = extra_toml, pd_extra, status_extra
        self.keep_lines = keep_lines
        self.proc = None
        self.logf = None
        self.vg_log = None
        self.status_port = None
        self.t_start = None
        self._off = 0
        self._lines = []
        self._seen = collections.Counter()

    def write_config(self):
        with open(self.config, "w") as f:
            f.write(self.env.toml(self.extra_toml, self.pd_extra, self.status_extra))

    def command(self, args=()):
        return [self.binary, "start", "-c", self.config, *args]

    def start(self, wait_ready=True, args=(), timeout=None):
        self.write_config()
        self.logf = open(self.log_path, "ab")
        penv = dict(os.environ)
        penv["SSL_CERT_FILE"] = self.env.pd.ca_file
        penv.setdefault("ASAN_OPTIONS", "detect_leaks=1")
        cmd = self.command(args)
        if os.environ.get("TPD_VALGRIND"):
            # Memory check of the release binary (see tests/e2e/tests.cmake, e2e/valgrind).
            self.vg_log = os.path.join(self.workdir, self.name + ".valgrind")
            cmd = ["valgrind", "--quiet", "--leak-check=full", "--errors-for-leak-kinds=definite,indirect",
                   "--show-leak-kinds=definite,indirect", "--error-exitcode=99",
                   "--suppressions=" + os.path.join(SRC, "tests", "e2e", "valgrind.supp"),
                   "--log-file=" + self.vg_log] + cmd
        self.proc = subprocess.Popen(cmd, stdout=self.logf, stderr=subprocess.STDOUT, env=penv)
        self.t_start = time.monotonic()
        if wait_ready:
            t = timeout or (180 if self.vg_log else 30)
            self.wait_msg("Plugin is ready", t)
            # The watcher may report ready before the main thread logs the status port (seen
            # under ThreadSanitizer's slowdown): wait for that line too.
            self.wait_msg("Controller started", t)
        return self

    # -- the log ---------------------------------------------------------------------------------
    def scan(self):
        """Reads the lines written since the last scan; returns them parsed."""
        out = []
        try:
            with open(self.log_path, "rb") as f:
                f.seek(self._off)
                data = f.read()
        except FileNotFoundError:
            return out
        end = data.rfind(b"\n")
        if end < 0:
            return out
        self._off += end + 1
        for line in data[:end].decode("utf-8", "replace").splitlines():
            d = self.parse_line(line)
            self._seen[d.get("msg")] += 1
            if d.get("msg") == "Controller started" and str(d.get("status_port", "")).isdigit():
                self.status_port = int(d["status_port"])
            out.append(d)
        if self.keep_lines:
            self._lines.extend(out)
        return out

    def parse_line(self, line):
        """One log line as a dict (JSON); a line that is not JSON is {"msg": line, "raw": True}."""
        try:
            return json.loads(line)
        except ValueError:
            return {"msg": line, "raw": True}

    def lines(self):
        assert self.keep_lines, "Plugin(keep_lines=False) keeps message counts only"
        self.scan()
        return list(self._lines)

    def raw_log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def tail(self, n=3000):
        return self.raw_log()[-n:]

    def find(self, msg, **fields):
        return [l for l in self.lines() if l.get("msg") == msg and all(l.get(k) == v for k, v in fields.items())]

    def _check_alive(self, what):
        if self.proc and self.proc.poll() is not None:
            raise AssertionError("plugin %s exited with %s while waiting for %s; log:\n%s"
                                 % (self.name, self.proc.returncode, what, self.tail(4000)))

    def wait_log(self, msg, timeout=20.0, **fields):
        """Waits for a log line with this message and fields; returns every such line."""
        def check():
            self._check_alive("%r %r" % (msg, fields))
            return self.find(msg, **fields)
        return eventually(check, timeout, what="log line %r %r of %s" % (msg, fields, self.name))

    def wait_msg(self, msg, timeout=60):
        """Waits until a line with this message was logged (counts only: cheap on long logs)."""
        def check():
            self.scan()
            if self._seen[msg]:
                return True
            self._check_alive(repr(msg))
            return False
        return eventually(check, timeout, interval=0.05, what="log line %r of %s" % (msg, self.name))

    # -- the process ------------------------------------------------------------------------------
    def metric(self, name):
        """Sum of every series of a metric on /metrics, or None when the binary has no such metric."""
        self.scan()
        if not self.status_port:
            return None
        text = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % self.status_port, timeout=10).read().decode()
        vals = [float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                if line.startswith(name + "{") or line.startswith(name + " ")]
        return sum(vals) if vals else None

    def cpu_seconds(self):
        return proc_cpu_seconds(self.proc.pid)

    def mem(self):
        return proc_mem(self.proc.pid)

    def signal(self, sig):
        self.proc.send_signal(sig)

    def stop(self, timeout=30):
        """SIGTERM, then SIGKILL after timeout s; says so when the exit took more than 5 s (an idle
        plugin exits within a second). Returns the exit status."""
        if self.proc and self.proc.poll() is None:
            t0 = time.monotonic()
            terminate(self.proc, timeout)
            took = time.monotonic() - t0
            if took > 5:
                print("WARNING: %s took %.1f s to exit after SIGTERM" % (self.name, took), flush=True)
        if self.logf:
            self.logf.close()
        if self.vg_log and self.proc and self.proc.returncode == 99:
            with open(self.vg_log) as f:
                raise AssertionError("valgrind found errors:\n" + f.read()[-6000:])
        return self.proc.returncode if self.proc else None

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        if self.logf:
            self.logf.close()


class Env:
    """The two fakes plus the fixtures of upstream's suite (services, policies, annotations)."""

    def __init__(self, workdir=None, advanced_workflows=True, tp_port=0, severity="debug", host="127.0.0.1"):
        self.workdir = workdir or tempfile.mkdtemp(prefix="tpd-e2e-")
        self.severity = severity
        self.pki = os.path.join(os.environ.get("TPD_BUILD_DIR", self.workdir), "e2e-pki")
        # host: where the fakes listen (the cluster tests: the host end of the pods' bridge).
        self.tp = FakeTeleport(self.pki, host=host, advanced_workflows=advanced_workflows, port=tp_port).start()
        self.pd = FakePagerDuty(api_key=API_KEY, host=host, cert_dir=os.path.join(self.workdir, "pd-certs")).start()
        self.api_key_file = write_api_key(self.workdir)
        # Upstream suite fixtures.
        self.ep1 = self.pd.add_escalation_policy("Escalation Policy 1")
        self.ep2 = self.pd.add_escalation_policy("Escalation Policy 2")
        self.ep3 = self.pd.add_escalation_policy("Escalation Policy 3")
        self.svc_notify = self.pd.add_service("Teleport Notifications")
        self.svc1 = self.pd.add_service("Service 1", escalation_policy_id=self.ep1)
        self.svc2 = self.pd.add_service("Service 2", escalation_policy_id=self.ep2)
        self.svc3 = self.pd.add_service("Service 3", escalation_policy_id=self.ep3)
        self.pd.add_user("Bot", BOT_EMAIL)
        self.plugins = []

    def toml(self, extra="", pd_extra="", status_extra=""):
        return plugin_toml(self.tp.addr, os.path.join(self.workdir, "identity"), self.api_key_file,
                           self.pd.url, extra, pd_extra, status_extra, severity=self.severity)

    def install_identity(self, name="identity"):
        shutil.copy(os.path.join(self.pki, name), os.path.join(self.workdir, "identity"))

    def plugin(self, extra_toml="", name="plugin", pd_extra="", status_extra=""):
        if not os.path.exists(os.path.join(self.workdir, "identity")):
            self.install_identity()
        p = Plugin(self, self.workdir, extra_toml, name, pd_extra, status_extra)
        self.plugins.append(p)
        return p

    # Requests like upstream's fixtures: notify annotation plus services annotation.
    def request(self, user="requester-oss@example.com", notify="Teleport Notifications",
                services=("Service 1", "Service 2"), thresholds=None, reason="because of"):
        ann = {}
        if notify is not None:
            ann["pagerduty_notify_service"] = [notify]
        if services is not None:
            ann["pagerduty_services"] = list(services)
        return self.tp.create_request(user, ["editor"], annotations=ann, reason=reason, thresholds=thresholds)

    def incident_for(self, rid):
        key = "teleport-access-request/" + rid
        return [i for i in self.pd.incidents() if i.get("incident_key") == key]

    def wait_incident(self, rid, timeout=20.0):
        return eventually(lambda: self.incident_for(rid), timeout, what="incident for " + rid)[0]

    def wait_resolved(self, rid, timeout=20.0):
        def check():
            inc = self.incident_for(rid)
            return inc and inc[0]["status"] == "resolved" and inc[0]
        return eventually(check, timeout, what="resolved incident for " + rid)

    def wait_plugin_data(self, rid, pred, timeout=20.0):
        return eventually(lambda: (lambda d: d if pred(d) else None)(self.tp.plugin_data(rid) or {}), timeout,
                          what="plugin data of " + rid)

    def note_texts(self, incident_id):
        return [n["content"] for n in self.pd.notes(incident_id)]

    def close(self):
        leaks = []
        for p in self.plugins:
            try:
                p.stop(timeout=20)
            except Exception:
                pass
            # LeakSanitizer's exit status (the sanitizer build): a leak fails the test that ran it.
            if p.proc and p.proc.returncode == LSAN_EXIT:
                leaks.append("%s:\n%s" % (p.name, p.tail(6000)))
        self.pd.stop()
        self.tp.stop()
        if leaks:
            raise AssertionError("LeakSanitizer found leaks in " + "\n".join(leaks))
