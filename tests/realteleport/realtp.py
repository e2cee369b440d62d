"""realtp.py - a real Teleport auth server and proxy on loopback for the real-teleport tests.

The binaries (teleport, tctl, tbot, tpd-driver) come from scripts/teleport.sh; run.sh puts
their folder in TPD_TELEPORT_BIN. Our binary runs through tests/lib/tpdtest/harness.py's Plugin, and
PagerDuty is tests/lib/tpdtest/fake_pagerduty.py, as in the e2e tests.

Each cluster gets its own loopback address (127.a.b.c), so it listens on Teleport's usual
ports (auth 3025, proxy web 3080) and several clusters can run side by side: the ports are
what selects the connection path in our binary (3025 direct, 3080 TLS routing).

Nothing here sleeps to synchronise: waits poll a condition with a deadline (`eventually`).
"""

import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.environ.get("TPD_SOURCE_DIR", os.path.abspath(os.path.join(HERE, "..", "..")))
sys.path.insert(0, os.path.join(SRC, "tests", "lib"))  # tpdtest

from tpdtest.fake_pagerduty import FakePagerDuty  # noqa: E402
from tpdtest.harness import API_KEY, BOT_EMAIL, Plugin, eventually, plugin_toml, terminate  # noqa: E402,F401

PLUGIN_USER = "teleport-plugin"
REQUESTER = "requester-oss@example.com"       # one approval or denial resolves its requests
REQUESTER2 = "requester1@example.com"         # two are needed (thresholds approve 2 / deny 2)
REVIEWERS = ("reviewer1@example.com", "reviewer2@example.com")
ADMIN = "driver-admin"                        # reads plugin data, deletes requests
NOTIFY_SERVICE = "Teleport Notifications"
PORTS = {"auth": 3025, "web": 3080, "tunnel": 3024, "ssh_proxy": 3023, "diag": 3000}


def bindir():
    d = os.environ.get("TPD_TELEPORT_BIN")
    if not d or not os.path.isfile(os.path.join(d, "teleport")):
        raise RuntimeError("TPD_TELEPORT_BIN does not name a folder with teleport in it; "
                           "run the tests through tests/realteleport/run.sh")
    return d


def _free_on(host, port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind((host, port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def pick_host():
    """A loopback address none of whose Teleport ports is taken."""
    rnd = random.Random(os.getpid() ^ int(time.time() * 1000))
    for _ in range(50):
        host = "127.%d.%d.%d" % (rnd.randint(1, 254), rnd.randint(0, 255), rnd.randint(2, 254))
        if all(_free_on(host, p) for p in PORTS.values()):
            return host
    raise RuntimeError("no free loopback address for a Teleport cluster")


ROLES = """
kind: role
version: v7
metadata: {name: oss-requester}
spec:
  allow:
    request:
      roles: [editor]
      annotations:
        pagerduty_notify_service: ["%(notify)s"]
        pagerduty_services: ["Service 1", "Service 2"]
---
kind: role
version: v7
metadata: {name: advanced-requester}
spec:
  allow:
    request:
      roles: [editor]
      thresholds: [{approve: 2, deny: 2}]
      annotations:
        pagerduty_notify_service: ["%(notify)s"]
---
kind: role
version: v7
metadata: {name: reviewer}
spec:
  allow:
    review_requests:
      roles: [editor]
---
kind: role
version: v7
metadata: {name: pagerduty-plugin}
spec:
  allow:
    rules:
      - resources: [access_request]
        verbs: [list, read, update]
      - resources: [access_plugin_data]
        verbs: [update]
    review_requests:
      roles: [editor]
---
kind: role
version: v7
metadata: {name: driver-admin}
spec:
  allow:
    rules:
      - resources: [access_request]
        verbs: [list, read, update, delete]
      - resources: [access_plugin_data]
        verbs: [list, read]
""" % {"notify": NOTIFY_SERVICE}

USERS = ((REQUESTER, "oss-requester"), (REQUESTER2, "advanced-requester"),
         (REVIEWERS[0], "reviewer"), (REVIEWERS[1], "reviewer"),
         (PLUGIN_USER, "pagerduty-plugin"), (ADMIN, "driver-admin"))


class Cluster:
    """One teleport process (auth + proxy, multiplexed listeners) with its own data dir."""

    def __init__(self, workdir, name="tpd-real"):
        self.bin = bindir()
        self.workdir = workdir
        self.name = name
        self.host = pick_host()
        self.auth_addr = "%s:%d" % (self.host, PORTS["auth"])
        self.web_addr = "%s:%d" % (self.host, PORTS["web"])
        self.data_dir = os.path.join(workdir, "teleport-data")
        self.config = os.path.join(workdir, "teleport.yaml")
        self.log_path = os.path.join(workdir, "teleport.log")
        self.proc = None
        with open(self.config, "w") as f:
            f.write(self._yaml())

    def _yaml(self):
        h = self.host
        return """version: v3
teleport:
  nodename: %(name)s
  data_dir: %(data)s
  diag_addr: %(h)s:%(diag)d
  log: {output: stderr, severity: INFO}
auth_service:
  enabled: true
  cluster_name: %(name)s
  listen_addr: %(h)s:%(auth)d
  proxy_listener_mode: multiplex
  authentication: {type: local, second_factor: "off"}
ssh_service: {enabled: false}
proxy_service:
  enabled: true
  web_listen_addr: %(h)s:%(web)d
  tunnel_listen_addr: %(h)s:%(tunnel)d
  listen_addr: %(h)s:%(ssh_proxy)d
  public_addr: %(h)s:%(web)d
""" % dict(name=self.name, data=self.data_dir, h=h, **PORTS)

    def tool(self, name):
        return os.path.join(self.bin, name)

    def start(self, timeout=120):
        self.logf = open(self.log_path, "ab")
        self.proc = subprocess.Popen([self.tool("teleport"), "start", "-c", self.config],
                                     stdout=self.logf, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout=120):
        url = "http://%s:%d/readyz" % (self.host, PORTS["diag"])

        def ready():
            if self.proc.poll() is not None:
                raise AssertionError("teleport exited with %s:\n%s" % (self.proc.returncode, self.log()[-4000:]))
            try:
                with urllib.request.urlopen(url, timeout=2) as r:
                    return r.status == 200
            except Exception:
                return False
        eventually(ready, timeout, interval=0.2, what="teleport /readyz")

    def log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def stop(self, timeout=30):
        terminate(self.proc, timeout)
        if getattr(self, "logf", None):
            self.logf.close()
            self.logf = None

    def restart(self, timeout=120):
        self.stop()
        return self.start(timeout)

    # ---- tctl -----------------------------------------------------------------------------------

    def tctl(self, *args, input=None, timeout=120, check=True):
        r = subprocess.run([self.tool("tctl"), "-c", self.config, *args], input=input,
                           capture_output=True, text=True, timeout=timeout)
        if check and r.returncode != 0:
            raise AssertionError("tctl %s failed (%d):\n%s%s" % (" ".join(args), r.returncode, r.stdout, r.stderr))
        return r

    def create(self, yaml_text):
        path = os.path.join(self.workdir, "resource-%d.yaml" % random.randrange(1 << 30))
        with open(path, "w") as f:
            f.write(yaml_text)
        self.tctl("create", "-f", path)

    def add_user(self, name, roles):
        self.tctl("users", "add", name, "--roles=" + ",".join(roles))
        # `tctl users ls` lags behind a cache; `tctl get` reads the backend.
        eventually(lambda: self.tctl("get", "users/" + name, check=False).returncode == 0,
                   30, interval=0.2, what="user " + name)

    def sign(self, user, out, ttl="1h"):
        self.tctl("auth", "sign", "--user=" + user, "--out=" + out, "--ttl=" + ttl, "--overwrite")
        return out

    def setup_fixtures(self):
        """Roles, users and one identity per user (name -> path)."""
        self.create(ROLES)
        ids = {}
        for user, role in USERS:
            self.add_user(user, [role])
            ids[user] = self.sign(user, os.path.join(self.workdir, "id-" + user.split("@")[0]))
        return ids


class Driver:
    """tpd-driver: Teleport's own Go client acting as our test users (JSON lines over a pipe)."""

    def __init__(self, cluster, identities):
        args = [cluster.tool("tpd-driver"), "-addr", cluster.auth_addr]
        for name, path in identities.items():
            args += ["-identity", "%s=%s" % (name, path)]
        self.errf = open(os.path.join(cluster.workdir, "driver.log"), "ab")
        self.proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.errf,
                                     text=True, bufsize=1)
        self.lock = threading.Lock()

    def call(self, op, check=True, **kw):
        kw["op"] = op
        with self.lock:
            self.proc.stdin.write(json.dumps(kw) + "\n")
            self.proc.stdin.flush()
            line = self.proc.stdout.readline()
        if not line:
            raise AssertionError("tpd-driver exited (%s)" % self.proc.poll())
        res = json.loads(line)
        if check and not res.get("ok"):
            raise AssertionError("tpd-driver %s %r: %s" % (op, kw, res.get("error")))
        return res

    # Shorthands.
    def create(self, user=REQUESTER, roles=("editor",), reason="because of"):
        return self.call("create", **{"as": user, "roles": list(roles), "reason": reason})["id"]

    def review(self, rid, reviewer, state, reason):
        return self.call("review", **{"as": reviewer, "id": rid, "state": state, "reason": reason})["state"]

    def delete(self, rid):
        self.call("delete", **{"as": ADMIN, "id": rid})

    def get(self, rid):
        return self.call("get", **{"as": ADMIN, "id": rid})["request"]

    def plugin_data(self, rid, plugin="pagerduty"):
        return self.call("plugindata", **{"as": ADMIN, "id": rid, "plugin": plugin})["data"]

    def fast(self, n, action, user=REQUESTER, reviewer=REVIEWERS[0], reason="fast"):
        if action == "delete":
            reviewer = ADMIN
        return self.call("fast", **{"as": user, "reviewer": reviewer, "n": n, "action": action,
                                    "roles": ["editor"], "reason": reason})

    def close(self):
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.errf.close()


class _PluginEnv:
    """What harness.Plugin needs from its env: the TOML and the fake PagerDuty's CA."""

    def __init__(self, env, addr, identity):
        self.pd, self._env, self.addr, self.identity = env.pd, env, addr, identity

    def toml(self, extra="", pd_extra="", status_extra=""):
        return plugin_toml(self.addr, self.identity, self._env.api_key_file, self.pd.url, extra, pd_extra,
                           status_extra, teleport_extra='refresh_identity_interval = "1s"')


class RealEnv:
    """A real cluster with the fixtures, the driver and the fake PagerDuty with upstream's fixtures."""

    def __init__(self, workdir=None):
        self.workdir = workdir or tempfile.mkdtemp(prefix="tpd-realtp-")
        self.cluster = Cluster(self.workdir)
        self.pd = None
        self.driver = None
        self.plugins = []
        try:
            self.cluster.start()
            self.ids = self.cluster.setup_fixtures()
            self.driver = Driver(self.cluster, {u: p for u, p in self.ids.items() if u != PLUGIN_USER})
            self.pd = FakePagerDuty(api_key=API_KEY, cert_dir=os.path.join(self.workdir, "pd-certs")).start()
        except BaseException:
            self.close()
            raise
        self.api_key_file = os.path.join(self.workdir, "pagerduty_api_key")
        with open(self.api_key_file, "w") as f:
            f.write(API_KEY + "\n")
        os.chmod(self.api_key_file, 0o600)
        self.ep1 = self.pd.add_escalation_policy("Escalation Policy 1")
        self.ep2 = self.pd.add_escalation_policy("Escalation Policy 2")
        self.svc_notify = self.pd.add_service(NOTIFY_SERVICE)
        self.svc1 = self.pd.add_service("Service 1", escalation_policy_id=self.ep1)
        self.svc2 = self.pd.add_service("Service 2", escalation_policy_id=self.ep2)
        self.pd.add_user("Bot", BOT_EMAIL)

    def plugin(self, via="auth", identity=None, extra_toml="", name="plugin"):
        addr = self.cluster.auth_addr if via == "auth" else self.cluster.web_addr
        p = Plugin(_PluginEnv(self, addr, identity or self.ids[PLUGIN_USER]), self.workdir, extra_toml, name)
        self.plugins.append(p)
        return p

    # ---- PagerDuty side -------------------------------------------------------------------------

    def incident_for(self, rid):
        key = "teleport-access-request/" + rid
        return [i for i in self.pd.incidents() if i.get("incident_key") == key]

    def wait_incident(self, rid, timeout=30.0):
        return eventually(lambda: self.incident_for(rid), timeout, what="incident for " + rid)[0]

    def wait_resolved(self, rid, timeout=30.0):
        def check():
            inc = self.incident_for(rid)
            return inc and inc[0]["status"] == "resolved" and inc[0]
        return eventually(check, timeout, what="resolved incident for " + rid)

    def note_texts(self, incident_id):
        return [n["content"] for n in self.pd.notes(incident_id)]

    def wait_notes(self, incident_id, n, timeout=30.0):
        return eventually(lambda: (lambda t: t if len(t) >= n else None)(self.note_texts(incident_id)),
                          timeout, what="%d notes on %s" % (n, incident_id))

    def wait_plugin_data(self, rid, pred, timeout=30.0):
        return eventually(lambda: (lambda d: d if pred(d) else None)(self.driver.plugin_data(rid) or {}),
                          timeout, interval=0.1, what="plugin data of " + rid)

    def close(self):
        for p in self.plugins:
            try:
                p.stop(timeout=20)
            except Exception:
                pass
        if self.driver:
            self.driver.close()
        if self.pd:
            self.pd.stop()
        self.cluster.stop()
