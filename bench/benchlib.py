"""benchlib.py - shared pieces of the benchmarks (bench/bench.py) and the chaos soak
(tests/soak/soak.py): instrumented subclasses of the two fakes, a plugin runner and /proc readers.

The fakes in tests/fakes/ are used unchanged; this module only adds, in its own process:
  * TCP_NODELAY on the fake PagerDuty's accepted sockets and on the fake Teleport's TCP front.
    Without it every fake PagerDuty answer (headers and body are two TLS records) waits ~40 ms
    for the client's delayed ACK (Nagle), which makes the fake, not the plugin, the bottleneck.
  * O(1) indexes for incident lookups (the fake scans its incident list on every PUT/note/POST,
    which is quadratic at 10,000+ incidents), timestamps and callbacks for the latency figures,
    and a counter thread that folds recorded API requests into counts so that 100,000
    lifecycles do not keep 400,000 request records (headers and bodies) in memory.
"""

import collections
import json
import os
import sys
import threading
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.environ.get("TPD_SOURCE_DIR", os.path.abspath(os.path.join(HERE, "..")))
sys.path.insert(0, os.path.join(SRC, "tests", "fakes"))
sys.path.insert(0, os.path.join(SRC, "tests", "e2e"))

from fake_pagerduty import FakePagerDuty  # noqa: E402
from fake_teleport import FakeTeleport  # noqa: E402

PLUGIN_USER = "teleport-plugin"
API_KEY = "u+benchSECRETapikey0123456789"
BOT_EMAIL = "bot@example.com"
NOTIFY_SERVICE = "Teleport Notifications"
ONCALL_SERVICE = "Service 1"
CLK_TCK = os.sysconf("SC_CLK_TCK")


# --- fake PagerDuty ------------------------------------------------------------------------------

def route_of(method, path):
    """A request's route with ids folded: 'POST /incidents/{id}/notes'."""
    parts = [p for p in path.split("/") if p]
    if len(parts) >= 2:
        parts[1] = "{id}"
    return method + " /" + "/".join(parts)


class BenchPagerDuty(FakePagerDuty):
    """FakePagerDuty with indexes, timestamps, callbacks and folded request counts."""

    def __init__(self, *a, keep_requests=False, **kw):
        super().__init__(*a, **kw)
        self.t_incident = {}           # incident key -> monotonic time of creation
        self.t_resolved = {}
        self.on_incident = None        # callback(key, incident id)   (called outside the lock)
        self.on_note = None            # callback(key, note count, content)
        self.on_resolved = None        # callback(key)
        self.keep_requests = keep_requests
        self.counts = collections.Counter()      # (route, status) -> n
        self._fold_stop = threading.Event()
        self._pending_cb = []

    def start(self):
        super().start()
        if not self.keep_requests:
            threading.Thread(target=self._fold_loop, daemon=True, name="pd-fold").start()
        return self

    def stop(self):
        self._fold_stop.set()
        super().stop()

    def fold(self):
        """Moves recorded requests whose answer is known into self.counts."""
        with self.lock:
            keep = []
            for r in self.requests:
                if r["status"] is None:
                    keep.append(r)
                else:
                    self.counts[(route_of(r["method"], r["path"]), r["status"])] += 1
            self.requests = keep

    def _fold_loop(self):
        while not self._fold_stop.wait(0.5):
            self.fold()

    def snapshot_counts(self):
        """Counts of every answered request so far (folds first)."""
        if self.keep_requests:
            c = collections.Counter()
            with self.lock:
                for r in self.requests:
                    if r["status"] is not None:
                        c[(route_of(r["method"], r["path"]), r["status"])] += 1
            return c
        self.fold()
        with self.lock:
            return collections.Counter(self.counts)

    # -- timestamps and callbacks ----------------------------------------------------------------
    @property
    def by_key(self):
        """incident key -> [incidents] (the fake's own index)."""
        return self.incidents_by_key

    def _create_incident(self, service_id, title, key, urgency, status="triggered"):
        inc = super()._create_incident(service_id, title, key, urgency, status)
        if key:
            self.t_incident.setdefault(key, time.monotonic())
            if self.on_incident:
                self._pending_cb.append((self.on_incident, (key, inc["id"])))
        return inc

    def _put_incident(self, headers, body, inc):
        was = inc["status"]
        out = super()._put_incident(headers, body, inc)
        if inc["status"] == "resolved" and was != "resolved":
            self.t_resolved.setdefault(inc["incident_key"], time.monotonic())
            if self.on_resolved:
                self._pending_cb.append((self.on_resolved, (inc["incident_key"],)))
        return out

    def _post_note(self, headers, body, incident_id):
        out = super()._post_note(headers, body, incident_id)
        inc = self.incident_by_id[incident_id]
        if self.on_note:
            n = len(self._notes[incident_id])
            self._pending_cb.append((self.on_note, (inc["incident_key"], n, out[1]["note"]["content"])))
        return out

    def handle_api(self, method, path, query, headers, raw):
        try:
            return super().handle_api(method, path, query, headers, raw)
        finally:
            self._run_callbacks()

    def _run_callbacks(self):
        with self.lock:
            cbs, self._pending_cb = self._pending_cb, []
        for fn, args in cbs:
            try:
                fn(*args)
            except Exception as e:  # a driver bug must not break the fake
                print("callback error: %r" % e, file=sys.stderr)

    def incidents_for(self, key):
        with self.lock:
            return [dict(i) for i in self.by_key.get(key, [])]


# --- fake Teleport ---------------------------------------------------------------------------------

class BenchTeleport(FakeTeleport):
    """FakeTeleport with creation/review timestamps and review counts."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.t_created = {}
        self.t_review = {}
        self.plugin_reviews = collections.Counter()
        self.on_review = None   # callback(rid) after the plugin's review was applied

    def create_request(self, user, roles, annotations=None, reason="", thresholds=None, ttl=3600, rid=None):
        rid = rid or str(uuid.uuid4())
        self.t_created[rid] = time.monotonic()
        return super().create_request(user, roles, annotations, reason, thresholds, ttl, rid)

    def _apply_review(self, rid, author, state, reason, created_ns=0):
        r = super()._apply_review(rid, author, state, reason, created_ns)
        if author == PLUGIN_USER:
            with self.lock:
                self.plugin_reviews[rid] += 1
                self.t_review.setdefault(rid, time.monotonic())
            if self.on_review:
                self.on_review(rid)
        return r

    def call_counts(self, clear=False):
        with self.lock:
            # call_totals, not the record list: the fake trims that list past 100,000 calls.
            c = collections.Counter(self.call_totals)
            if clear:
                self.calls.clear()
                self.call_totals.clear()
            return c


# --- the plugin process ------------------------------------------------------------------------------

class Env:
    """Both fakes with upstream's fixtures, an identity file and config rendering."""

    def __init__(self, workdir, pki_dir, keep_requests=False, identity_path=None):
        self.workdir = workdir
        self.pki = pki_dir
        os.makedirs(workdir, exist_ok=True)
        self.tp = BenchTeleport(pki_dir).start()
        self.pd = BenchPagerDuty(api_key=API_KEY, cert_dir=os.path.join(workdir, "pd-certs"),
                                 keep_requests=keep_requests).start()
        # Upstream's plugin omits incident.type, which the real API accepts (see the fake);
        # our plugin always sends it, so this changes nothing for our column.
        self.pd.accept_missing_incident_type = True
        self.api_key_file = os.path.join(workdir, "pagerduty_api_key")
        with open(self.api_key_file, "w") as f:
            f.write(API_KEY + "\n")
        os.chmod(self.api_key_file, 0o600)
        self.identity = identity_path or os.path.join(workdir, "identity")
        if not os.path.exists(self.identity):
            with open(os.path.join(pki_dir, "identity"), "rb") as s, open(self.identity, "wb") as d:
                d.write(s.read())
        self.ep1 = self.pd.add_escalation_policy("Escalation Policy 1")
        self.svc_notify = self.pd.add_service(NOTIFY_SERVICE)
        self.svc1 = self.pd.add_service(ONCALL_SERVICE, escalation_policy_id=self.ep1)
        self.pd.add_user("Bot", BOT_EMAIL)
        self.oncall_users = []

    def add_oncall_users(self, n):
        for i in range(n):
            email = "oncall%03d@example.com" % i
            uid = self.pd.add_user("On Call %03d" % i, email)
            self.pd.add_oncall(uid, self.ep1)
            self.oncall_users.append(email)

    def toml(self, extra="", pd_extra=""):
        return """
[teleport]
addr = "%s"
identity = "%s"
refresh_identity = true

[pagerduty]
api_key = "%s"
user_email = "%s"
api_endpoint = "%s"
%s

[log]
output = "stderr"
severity = "info"
format = "json"

[status]
listen_addr = "127.0.0.1:0"

[reconcile]
resync_interval = "1h"
%s
""" % (self.tp.addr, self.identity, self.api_key_file, BOT_EMAIL, self.pd.url, pd_extra, extra)

    def notify_request(self, user="requester@example.com", thresholds=None):
        return self.tp.create_request(user, ["editor"], annotations={"pagerduty_notify_service": [NOTIFY_SERVICE]},
                                      reason="bench", thresholds=thresholds)

    def approval_request(self, user):
        return self.tp.create_request(user, ["editor"], annotations={"pagerduty_services": [ONCALL_SERVICE]},
                                      reason="bench")

    def close(self):
        self.pd.stop()
        self.tp.stop()


class Plugin:
    """One teleport-pagerduty process; the log goes to a file that is scanned incrementally."""

    def __init__(self, env, binary, name, extra_toml="", pd_extra=""):
        self.env, self.binary, self.name = env, binary, name
        self.config = os.path.join(env.workdir, name + ".toml")
        self.log_path = os.path.join(env.workdir, name + ".log")
        self.extra_toml, self.pd_extra = extra_toml, pd_extra
        self.proc = None
        self._off = 0
        self._seen = collections.Counter()
        self.status_port = None

    def start(self, wait_ready=True, timeout=60):
        with open(self.config, "w") as f:
            f.write(self.env.toml(self.extra_toml, self.pd_extra))
        import subprocess
        self.logf = open(self.log_path, "ab")
        self._off = self.logf.tell()
        penv = dict(os.environ, SSL_CERT_FILE=self.env.pd.ca_file)
        self.proc = subprocess.Popen([self.binary, "start", "-c", self.config], stdout=self.logf,
                                     stderr=subprocess.STDOUT, env=penv)
        self.t_start = time.monotonic()
        if wait_ready:
            self.wait_msg("Plugin is ready", timeout)
        return self

    def scan(self):
        """Reads new log lines; counts messages. Returns the list of new parsed lines."""
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
            try:
                d = json.loads(line)
            except ValueError:
                d = {"msg": line, "raw": True}
            self._seen[d.get("msg")] += 1
            if d.get("msg") == "Controller started" and str(d.get("status_port", "")).isdigit():
                self.status_port = int(d["status_port"])
            out.append(d)
        return out

    def metric(self, name):
        """Sum of every series of a metric on /metrics, or None when the binary has no such metric."""
        import urllib.request
        self.scan()
        if not self.status_port:
            return None
        text = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % self.status_port, timeout=10).read().decode()
        vals = [float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                if line.startswith(name + "{") or line.startswith(name + " ")]
        return sum(vals) if vals else None

    def wait_msg(self, msg, timeout=60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.scan()
            if self._seen[msg]:
                return True
            if self.proc.poll() is not None:
                raise RuntimeError("plugin %s exited (%s) waiting for %r; log tail:\n%s"
                                   % (self.name, self.proc.returncode, msg, self.tail()))
            time.sleep(0.05)
        raise RuntimeError("plugin %s: timed out waiting for %r; log tail:\n%s" % (self.name, msg, self.tail()))

    def tail(self, n=3000):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")[-n:]
        except FileNotFoundError:
            return ""

    def cpu_seconds(self):
        return proc_cpu_seconds(self.proc.pid)

    def mem(self):
        return proc_mem(self.proc.pid)

    def stop(self, timeout=30):
        """SIGTERM, then SIGKILL after timeout s; says so when the exit took more than 5 s
        (an idle plugin exits within a second), so a slow exit shows in the output."""
        import subprocess
        if self.proc and self.proc.poll() is None:
            t0 = time.monotonic()
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                print("WARNING: %s did not exit within %.0f s of SIGTERM; killed" % (self.name, timeout),
                      flush=True)
            took = time.monotonic() - t0
            if took > 5:
                print("WARNING: %s took %.1f s to exit after SIGTERM" % (self.name, took), flush=True)
        self.logf.close()
        return self.proc.returncode

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self.logf.close()


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
        import subprocess
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

    def scan(self):
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
            for msg in ("Plugin is ready",):
                if msg in line:
                    self._seen[msg] += 1
            out.append({"msg": line, "raw": True})
        return out

    def metric(self, name):
        return None


# --- /proc ---------------------------------------------------------------------------------------------

def proc_cpu_seconds(pid):
    """utime + stime of a process in seconds (fields 14 and 15 of /proc/PID/stat)."""
    with open("/proc/%d/stat" % pid) as f:
        s = f.read()
    fields = s[s.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def proc_mem(pid):
    """{"VmRSS", "VmHWM", "RssAnon", "Threads"} in KiB (Threads a count)."""
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "VmHWM", "RssAnon", "Threads"):
                out[k] = int(v.split()[0])
    return out


def percentiles(xs, ps=(50, 90, 99)):
    xs = sorted(xs)
    if not xs:
        return {("p%d" % p): None for p in ps} | {"max": None, "n": 0}
    out = {}
    for p in ps:
        i = min(len(xs) - 1, max(0, int(round(p / 100.0 * len(xs) + 0.5)) - 1))
        out["p%d" % p] = xs[i]
    out["max"] = xs[-1]
    out["n"] = len(xs)
    return out


def wait_until(pred, timeout, interval=0.05, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(interval)
    raise RuntimeError("timed out after %.0fs waiting for %s" % (timeout, what))


def machine_notes():
    notes = {"cpus": os.cpu_count()}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    notes["cpu"] = line.split(":", 1)[1].strip()
                    break
        with open("/proc/loadavg") as f:
            notes["loadavg"] = f.read().split()[:3]
        with open("/proc/meminfo") as f:
            notes["mem_total_kib"] = int(f.readline().split()[1])
    except OSError:
        pass
    return notes
