"""harness.py - runs the real teleport-pagerduty binary against the fake Teleport (gRPC, mTLS) and
the fake PagerDuty (HTTPS) on loopback, for the end-to-end tests and the demo.

Nothing here sleeps to synchronise: every wait polls a condition with a deadline (`eventually`).
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.environ.get("TPD_SOURCE_DIR", os.path.abspath(os.path.join(HERE, "..", "..")))
sys.path.insert(0, os.path.join(SRC, "tests", "fakes"))

from fake_pagerduty import FakePagerDuty  # noqa: E402
from fake_teleport import FakeTeleport  # noqa: E402

API_KEY = "u+e2eSECRETapikey0123456789"
BOT_EMAIL = "bot@example.com"
PLUGIN_USER = "teleport-plugin"


def binary():
    b = os.environ.get("TPD_BIN")
    if b:
        return b
    return os.path.join(os.environ.get("TPD_BUILD_DIR", os.path.join(SRC, "build")), "teleport-pagerduty")


def eventually(pred, timeout=20.0, interval=0.02, what="condition"):
    """Polls pred() until it returns a truthy value; fails after timeout seconds."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = pred()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError("timed out after %.1fs waiting for %s (last: %r)" % (timeout, what, last))


def terminate(proc, timeout=30):
    """SIGTERM, then SIGKILL if proc has not exited within timeout seconds."""
    if proc and proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def plugin_toml(addr, identity, api_key_file, pd_url, extra="", pd_extra="", status_extra="",
                teleport_extra=""):
    """The plugin's TOML for the tests: debug JSON logs, a status port of its own, 4 workers."""
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
severity = "debug"
format = "json"

[status]
listen_addr = "127.0.0.1:0"
%s

[reconcile]
workers = 4
%s
""" % (addr, identity, teleport_extra, api_key_file, BOT_EMAIL, pd_url, pd_extra, status_extra, extra)


class Plugin:
    """One teleport-pagerduty process with its config, log file and status port."""

    def __init__(self, env, workdir, extra_toml="", name="plugin", pd_extra="", status_extra=""):
        self.env = env
        self.workdir = workdir
        self.name = name
        self.config = os.path.join(workdir, name + ".toml")
        self.log_path = os.path.join(workdir, name + ".log")
        self.extra_toml = extra_toml
        self.pd_extra = pd_extra
        self.status_extra = status_extra
        self.proc = None
        self.status_port = None
        self._log_offset = 0

    def write_config(self):
        with open(self.config, "w") as f:
            f.write(self.env.toml(self.extra_toml, self.pd_extra, self.status_extra))

    def start(self, wait_ready=True, args=()):
        self.write_config()
        self.logf = open(self.log_path, "ab")
        penv = dict(os.environ)
        penv["SSL_CERT_FILE"] = self.env.pd.ca_file
        penv.setdefault("ASAN_OPTIONS", "detect_leaks=1")
        cmd = [binary(), "start", "-c", self.config, *args]
        self.vg_log = None
        if os.environ.get("TPD_VALGRIND"):
            # Memory check of the release binary (see tests/e2e/tests.cmake, e2e/valgrind).
            self.vg_log = os.path.join(self.workdir, self.name + ".valgrind")
            cmd = ["valgrind", "--quiet", "--leak-check=full", "--errors-for-leak-kinds=definite,indirect",
                   "--show-leak-kinds=definite,indirect", "--error-exitcode=99",
                   "--suppressions=" + os.path.join(HERE, "valgrind.supp"), "--log-file=" + self.vg_log] + cmd
        self.proc = subprocess.Popen(cmd, stdout=self.logf, stderr=subprocess.STDOUT, env=penv)
        if wait_ready:
            self.wait_log("Plugin is ready", timeout=180 if self.vg_log else 30)
            # The watcher may report ready before the main thread logs the status port (seen
            # under ThreadSanitizer's slowdown): wait for that line too.
            self.wait_log("Controller started", timeout=180 if self.vg_log else 30)
        return self

    def lines(self):
        try:
            with open(self.log_path, "rb") as f:
                data = f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return []
        out = []
        for line in data.splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                out.append({"msg": line, "raw": True})
        return out

    def raw_log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def find(self, msg, **fields):
        return [l for l in self.lines() if l.get("msg") == msg and all(l.get(k) == v for k, v in fields.items())]

    def wait_log(self, msg, timeout=20.0, **fields):
        def check():
            if self.proc and self.proc.poll() is not None:
                raise AssertionError("plugin exited with %s while waiting for %r; log:\n%s"
                                     % (self.proc.returncode, msg, self.raw_log()[-4000:]))
            return self.find(msg, **fields)
        found = eventually(check, timeout, what="log line %r %r" % (msg, fields))
        for l in self.lines():
            if l.get("msg") == "Controller started" and l.get("status_port", "").isdigit():
                self.status_port = int(l["status_port"])
        return found

    def signal(self, sig):
        self.proc.send_signal(sig)

    def stop(self, timeout=30):
        terminate(self.proc, timeout)
        if getattr(self, "logf", None):
            self.logf.close()
        if getattr(self, "vg_log", None) and self.proc and self.proc.returncode == 99:
            with open(self.vg_log) as f:
                raise AssertionError("valgrind found errors:\n" + f.read()[-6000:])
        return self.proc.returncode if self.proc else None

    def kill(self):
        self.proc.kill()
        self.proc.wait()
        self.logf.close()


class Env:
    """The two fakes plus the fixtures of upstream's suite (services, policies, annotations)."""

    def __init__(self, workdir=None, advanced_workflows=True, tp_port=0):
        self.workdir = workdir or tempfile.mkdtemp(prefix="tpd-e2e-")
        self.pki = os.path.join(os.environ.get("TPD_BUILD_DIR", self.workdir), "e2e-pki")
        self.tp = FakeTeleport(self.pki, advanced_workflows=advanced_workflows, port=tp_port).start()
        self.pd = FakePagerDuty(api_key=API_KEY, cert_dir=os.path.join(self.workdir, "pd-certs")).start()
        self.api_key_file = os.path.join(self.workdir, "pagerduty_api_key")
        with open(self.api_key_file, "w") as f:
            f.write(API_KEY + "\n")
        os.chmod(self.api_key_file, 0o600)
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
                           self.pd.url, extra, pd_extra, status_extra)

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
        found = [i for i in self.pd.incidents() if i.get("incident_key") == key]
        return found

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
        for p in self.plugins:
            try:
                p.stop(timeout=20)
            except Exception:
                pass
        self.pd.stop()
        self.tp.stop()
