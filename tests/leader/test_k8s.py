"""test_k8s.py - leader election and the deploy files against a REAL kube-apiserver (v1.35, built
from the Go module proxy by scripts/k8s.sh) with Debian's etcd, on loopback (k8s_harness.py).

  * the rendered chart (HA values) and deploy/manifests pass `kubectl apply --dry-run=server`
    (a deliberately broken Deployment must fail, so the check can fail);
  * applied for real, the chart's Role/RoleBinding give its ServiceAccount exactly the Lease
    rights leader election needs (`kubectl auth can-i`);
  * two and three tpd_leader_driver processes (each one tpd_leader, authenticating with the
    ServiceAccount's bearer token, client-go's default timings 15 s / 10 s / 2 s) elect one
    leader; SIGKILL of the leader is followed by a take-over in less than lease_duration +
    retry_period; SIGTERM of a leader releases the Lease and a follower takes over within about
    one retry period; at no instant do two participants report leading (intervals compared on
    CLOCK_REALTIME); the token never appears in their logs;
  * the fake Lease server used by the unit tests answers like the real one.

Run: ctest --test-dir <build> -L k8s --output-on-failure   (needs scripts/k8s.sh to have run)
"""
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import ssl

import pytest
import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import k8s_harness  # noqa: E402

NS = "teleport"
SA = "system:serviceaccount:teleport:teleport-plugin-pagerduty"
LEASE = "teleport-plugin-pagerduty"
LEASE_MS, RENEW_MS, RETRY_MS = 15000, 10000, 2000
DRIVER = os.environ.get("TPD_LEADER_DRIVER") or os.path.join(os.environ.get("TPD_BUILD_DIR", "build"),
                                                              "tpd_leader_driver")
# Kinds the bare API server cannot take: ServiceMonitor, a CRD of the Prometheus operator, is not
# installed in this server.
EXCLUDED_KINDS = {"ServiceMonitor"}


def kubectl_bin():
    """The kubectl scripts/k8s.sh built with the API server (same version)."""
    return k8s_harness.tool_env()["KUBECTL"], "--validate=strict"


@pytest.fixture(scope="module")
def cluster():
    with k8s_harness.running("tpd-k8s-") as h:
        yield h


class Kubectl:
    def __init__(self, h):
        self.h = h
        self.bin, self.validate = kubectl_bin()

    def __call__(self, *args, ctx="admin", stdin=None, check=True):
        r = subprocess.run([self.bin, "--kubeconfig", self.h.kubeconfig, "--context", ctx] + list(args),
                           input=stdin, capture_output=True, text=True, timeout=120)
        if check and r.returncode != 0:
            raise AssertionError("kubectl %s failed (%d): %s%s" % (" ".join(args), r.returncode, r.stdout, r.stderr))
        return r


@pytest.fixture(scope="module")
def kubectl(cluster):
    k = Kubectl(cluster)
    if k("get", "namespace", NS, check=False).returncode != 0:
        k("create", "namespace", NS)
    return k


def filter_docs(text):
    docs = [d for d in yaml.safe_load_all(text) if d]
    kept = [d for d in docs if d.get("kind") not in EXCLUDED_KINDS]
    return yaml.safe_dump_all(kept), [d["kind"] for d in kept], [d["kind"] for d in docs if d not in kept]


def render_chart(values):
    env = subprocess.run(["bash", os.path.join(ROOT, "scripts", "tools.sh"), "--print-env", "helm"],
                         capture_output=True, text=True, check=True).stdout
    path = os.environ["PATH"]
    for line in env.splitlines():
        if line.startswith("export PATH="):
            path = line[len("export PATH="):].strip('"').replace("$PATH", path)
    r = subprocess.run(["helm", "template", "teleport-plugin-pagerduty",
                        os.path.join(ROOT, "deploy", "helm", "teleport-plugin-pagerduty"),
                        "-f", os.path.join(ROOT, "tests", "deploy", "values", values), "--namespace", NS],
                       capture_output=True, text=True, env=dict(os.environ, PATH=path))
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_manifests_server_dry_run(kubectl):
    bad = ("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: bad}\nspec:\n  replica: 3\n"
           "  selector: {matchLabels: {a: b}}\n  template:\n    metadata: {labels: {a: b}}\n"
           "    spec: {containers: [{name: c, image: x, ports: [{containerPort: eighty}]}]}\n")
    r = kubectl("apply", "--dry-run=server", kubectl.validate, "-n", NS, "-f", "-", stdin=bad, check=False)
    assert r.returncode != 0, "a broken Deployment passed the server dry run"
    print("broken manifest refused:", (r.stderr or r.stdout).strip()[:200])

    plain = kubectl("kustomize", os.path.join(ROOT, "deploy", "manifests")).stdout
    text, kinds, dropped = filter_docs(plain)
    r = kubectl("apply", "--dry-run=server", kubectl.validate, "-n", NS, "-f", "-", stdin=text)
    print("deploy/manifests:", kinds, "excluded:", dropped)
    assert r.stdout.count("(server dry run)") == len(kinds), r.stdout
    assert "Deployment" in kinds

    text, kinds, dropped = filter_docs(render_chart("ha.yaml"))
    r = kubectl("apply", "--dry-run=server", kubectl.validate, "-n", NS, "-f", "-", stdin=text)
    print("chart (ha.yaml):", kinds, "excluded:", dropped)
    assert r.stdout.count("(server dry run)") == len(kinds), r.stdout
    assert "Role" in kinds and "RoleBinding" in kinds


@pytest.fixture(scope="module")
def chart(kubectl):
    """The chart rendered with HA values, applied for real: its Role/RoleBinding give the
    participants (the chart's ServiceAccount) their Lease rights."""
    text, kinds, _ = filter_docs(render_chart("ha.yaml"))
    kubectl("apply", kubectl.validate, "-n", NS, "-f", "-", stdin=text)
    return kinds


def test_chart_rbac_can_i(kubectl, chart):
    def can(verb, res, ctx="admin", as_sa=True):
        args = ["auth", "can-i", verb, res, "-n", NS] + (["--as", SA] if as_sa else [])
        return kubectl(*args, ctx=ctx, check=False).stdout.strip()

    lease = "leases.coordination.k8s.io/" + LEASE
    expect = [("create", "leases.coordination.k8s.io", "yes"), ("get", lease, "yes"), ("update", lease, "yes"),
              ("update", "leases.coordination.k8s.io/someone-else", "no"), ("delete", lease, "no"),
              ("get", "secrets", "no"), ("list", "pods", "no")]
    for verb, res, want in expect:
        assert can(verb, res) == want, "%s %s as %s" % (verb, res, SA)
        # the same through the ServiceAccount's own bearer token (what the participants use)
        assert can(verb, res, ctx="plugin", as_sa=False) == want, "%s %s with the plugin token" % (verb, res)
    print("auth can-i as", SA, ":", [(v, r, w) for v, r, w in expect])


# --- election participants -------------------------------------------------------------------


class CutProxy:
    """A loopback TCP proxy in front of the API server; cut() drops every connection and
    black-holes new ones (accepted, never forwarded), as a network partition would."""

    def __init__(self, target_port):
        import socket
        self.target = target_port
        self.cut_flag = threading.Event()
        self.lsock = socket.socket()
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(16)
        self.port = self.lsock.getsockname()[1]
        self.conns = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _pump(self, a, b):
        try:
            while True:
                d = a.recv(65536)
                if not d or self.cut_flag.is_set():
                    break
                b.sendall(d)
        except OSError:
            pass
        for x in (a, b):
            try:
                x.close()
            except OSError:
                pass

    def _accept(self):
        import socket
        while True:
            try:
                c, _ = self.lsock.accept()
            except OSError:
                return
            with self.lock:
                self.conns.append(c)
            if self.cut_flag.is_set():
                continue  # black hole: keep it open, never answer
            u = socket.create_connection(("127.0.0.1", self.target))
            with self.lock:
                self.conns.append(u)
            threading.Thread(target=self._pump, args=(c, u), daemon=True).start()
            threading.Thread(target=self._pump, args=(u, c), daemon=True).start()

    def cut(self):
        import socket
        self.cut_flag.set()
        with self.lock:
            for c in self.conns:
                try:
                    c.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self):
        self.cut()
        self.lsock.close()


class Participant:
    def __init__(self, h, ident, logdir, url=None):
        self.id = ident
        self.events = []
        self.cv = threading.Condition()
        self.errpath = os.path.join(logdir, ident + ".stderr")
        self.err = open(self.errpath, "w")
        self.p = subprocess.Popen([DRIVER, "--api", url or h.url, "--token-file", h.pki + "/plugin-token",
                                   "--ca-file", h.pki + "/ca.crt", "--namespace", NS, "--name", LEASE,
                                   "--id", ident, "--lease-ms", str(LEASE_MS), "--renew-ms", str(RENEW_MS),
                                   "--retry-ms", str(RETRY_MS)],
                                  stdout=subprocess.PIPE, stderr=self.err, text=True)
        self.killed_at = None
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.p.stdout:
            ev = json.loads(line)
            with self.cv:
                self.events.append(ev)
                self.cv.notify_all()

    def wait(self, event, n=1, timeout=40):
        end = time.time() + timeout
        with self.cv:
            while True:
                got = [e for e in self.events if e["event"] == event]
                if len(got) >= n:
                    return got[n - 1]
                left = end - time.time()
                if left <= 0:
                    return None
                self.cv.wait(min(left, 0.2))

    def count(self, event):
        with self.cv:
            return sum(1 for e in self.events if e["event"] == event)

    def leading(self):
        return self.count("lead_start") > self.count("lead_end")

    def kill9(self):
        self.killed_at = int(time.time() * 1000)
        self.p.send_signal(signal.SIGKILL)
        self.p.wait()

    def term(self):
        self.p.send_signal(signal.SIGTERM)
        assert self.p.wait(30) == 0
        assert self.wait("released", timeout=5)

    def intervals(self):
        out, start = [], None
        with self.cv:
            evs = list(self.events)
        for e in evs:
            if e["event"] == "lead_start":
                start = e["wall_ms"]
            elif e["event"] == "lead_end" and start is not None:
                out.append((start, e["wall_ms"]))
                start = None
        if start is not None:  # still leading: until killed, or until now while running
            end = self.killed_at if self.killed_at else int(time.time() * 1000)
            assert self.killed_at or self.p.poll() is None, "%s exited while leading" % self.id
            out.append((start, end))
        return out

    def close(self):
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait()
        self.err.close()


def wait_leader(parts, timeout=40):
    end = time.time() + timeout
    while time.time() < end:
        lead = [p for p in parts if p.p.poll() is None and p.leading()]
        if lead:
            return lead
        time.sleep(0.02)
    return []


def check_no_overlap(parts):
    iv = [(a, b, p.id) for p in parts for (a, b) in p.intervals()]
    iv.sort()
    for (a1, b1, p1), (a2, b2, p2) in zip(iv, iv[1:]):
        assert b1 <= a2, "%s led until %d but %s led from %d" % (p1, b1, p2, a2)
        print("handover %s -> %s: gap %d ms" % (p1, p2, a2 - b1))
    return iv


def get_lease(kubectl):
    return json.loads(kubectl("get", "lease", LEASE, "-n", NS, "-o", "json").stdout)["spec"]


def check_logs(cluster, parts):
    for p in parts:
        with open(p.errpath) as f:
            text = f.read()
        assert cluster.plugin_token not in text, "%s logged the token" % p.id
        assert cluster.plugin_token[-16:] not in text


@pytest.fixture
def logdir():
    d = tempfile.mkdtemp(prefix="tpd-leader-logs-")
    yield d
    shutil.rmtree(d, ignore_errors=True)


def fresh_lease(kubectl):
    kubectl("delete", "lease", LEASE, "-n", NS, "--ignore-not-found")


def test_two_participants_sigkill_takeover(cluster, kubectl, chart, logdir):
    assert os.access(DRIVER, os.X_OK), DRIVER
    fresh_lease(kubectl)
    parts = [Participant(cluster, "pod-%d" % i, logdir) for i in range(2)]
    try:
        lead = wait_leader(parts)
        assert len(lead) == 1
        leader = lead[0]
        follower = [p for p in parts if p is not leader][0]
        time.sleep(2 * RETRY_MS / 1000)
        assert not follower.leading()
        spec = get_lease(kubectl)
        assert spec["holderIdentity"] == leader.id
        assert spec["leaseDurationSeconds"] == LEASE_MS // 1000
        t0 = spec.get("leaseTransitions", 0)

        leader.kill9()
        ev = follower.wait("lead_start", timeout=(LEASE_MS + 3 * RETRY_MS) / 1000)
        assert ev, "no take-over"
        took = ev["wall_ms"] - leader.killed_at
        print("TAKEOVER two participants: %d ms after SIGKILL (limit %d ms)" % (took, LEASE_MS + RETRY_MS))
        assert took < LEASE_MS + RETRY_MS
        spec = get_lease(kubectl)
        assert spec["holderIdentity"] == follower.id
        assert spec["leaseTransitions"] == t0 + 1
        check_no_overlap(parts)

        follower.term()
        spec = get_lease(kubectl)
        assert spec["holderIdentity"] == "" and spec["leaseDurationSeconds"] == 1
        check_logs(cluster, parts)
    finally:
        for p in parts:
            p.close()


def test_three_participants_kill_then_release(cluster, kubectl, chart, logdir):
    fresh_lease(kubectl)
    parts = [Participant(cluster, "pod-%d" % i, logdir) for i in range(3)]
    try:
        lead = wait_leader(parts)
        assert len(lead) == 1
        first = lead[0]
        time.sleep(2 * RETRY_MS / 1000)
        assert sum(p.leading() for p in parts) == 1

        first.kill9()
        rest = [p for p in parts if p is not first]
        lead = wait_leader(rest, timeout=(LEASE_MS + 3 * RETRY_MS) / 1000)
        assert len(lead) == 1
        second = lead[0]
        took = second.wait("lead_start")["wall_ms"] - first.killed_at
        print("TAKEOVER three participants: %d ms after SIGKILL (limit %d ms)" % (took, LEASE_MS + RETRY_MS))
        assert took < LEASE_MS + RETRY_MS
        time.sleep(RETRY_MS / 1000)
        assert sum(p.leading() for p in rest) == 1

        # graceful: SIGTERM releases the lease, the last one takes over within about a retry period
        third = [p for p in rest if p is not second][0]
        t_term = int(time.time() * 1000)
        second.term()
        ev = third.wait("lead_start", timeout=(LEASE_MS + 3 * RETRY_MS) / 1000)
        assert ev
        took = ev["wall_ms"] - t_term
        print("TAKEOVER after release (SIGTERM): %d ms (retry period %d ms)" % (took, RETRY_MS))
        assert took < RETRY_MS + 1500
        assert get_lease(kubectl)["holderIdentity"] == third.id
        iv = check_no_overlap(parts)
        assert len(iv) == 3
        for p in rest:
            with open(p.errpath) as f:
                assert "Following leader" in f.read()
        third.term()
        check_logs(cluster, parts)
    finally:
        for p in parts:
            p.close()


def test_partitioned_leader_steps_down_first(cluster, kubectl, chart, logdir):
    """The leader loses the API server (its connections cut, new ones black-holed): it must stop
    leading (is_leader false and its callback) within renew_deadline, and the follower may only
    take over after that: the intervals never overlap, with lease - renew deadline to spare."""
    fresh_lease(kubectl)
    port = int(cluster.url.rsplit(":", 1)[1])
    proxy = CutProxy(port)
    parts = []
    try:
        a = Participant(cluster, "pod-a", logdir, url="https://127.0.0.1:%d" % proxy.port)
        parts.append(a)
        assert a.wait("lead_start"), "the proxied participant did not become leader"
        b = Participant(cluster, "pod-b", logdir)
        parts.append(b)
        time.sleep(2 * RETRY_MS / 1000)
        assert not b.leading()
        t_cut = int(time.time() * 1000)
        proxy.cut()
        end_a = a.wait("lead_end", timeout=(LEASE_MS + 2 * RETRY_MS) / 1000)
        cb_a = a.wait("cb", n=2, timeout=5)
        start_b = b.wait("lead_start", timeout=(LEASE_MS + 4 * RETRY_MS) / 1000)
        assert end_a and cb_a and start_b
        assert cb_a["leading"] is False
        print("PARTITION: leader stopped %d ms after the cut (renew deadline %d), callback at %d ms; "
              "follower took over at %d ms; margin %d ms"
              % (end_a["wall_ms"] - t_cut, RENEW_MS, cb_a["wall_ms"] - t_cut, start_b["wall_ms"] - t_cut,
                 start_b["wall_ms"] - max(end_a["wall_ms"], cb_a["wall_ms"])))
        assert end_a["wall_ms"] - t_cut <= RENEW_MS + 100
        assert cb_a["wall_ms"] < start_b["wall_ms"]
        check_no_overlap(parts)
        assert get_lease(kubectl)["holderIdentity"] == "pod-b"
        for p in parts:
            p.p.send_signal(signal.SIGTERM)
            p.p.wait(30)
        check_logs(cluster, parts)
    finally:
        for p in parts:
            p.close()
        proxy.close()


# --- the unit tests' fake answers like the real server -------------------------------------------


def lease_calls(url, token, ca, ns):
    """A fixed sequence of Lease calls; returns [(status, reason)]."""
    ctx = ssl.create_default_context(cafile=ca)
    base = "%s/apis/coordination.k8s.io/v1/namespaces/%s/leases" % (url, ns)
    name = "conf-" + secrets.token_hex(4)

    def call(method, path, body=None, tok=token):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(base + path, data=data, method=method,
                                     headers={"Authorization": "Bearer " + tok, "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, context=ctx, timeout=10) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())

    spec = {"holderIdentity": "a", "leaseDurationSeconds": 15, "acquireTime": "2026-01-01T00:00:00.000000Z",
            "renewTime": "2026-01-01T00:00:00.000000Z", "leaseTransitions": 0}
    obj = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": name}, "spec": spec}
    out = []

    def rec(res):
        code, body = res
        out.append((code, body.get("reason") if code >= 400 else None))
        return body

    rec(call("GET", "/" + name))
    created = rec(call("POST", "", obj))
    rec(call("POST", "", obj))
    rv = created["metadata"]["resourceVersion"]
    noversion = json.loads(json.dumps(obj))
    rec(call("PUT", "/" + name, noversion))
    upd = json.loads(json.dumps(created))
    upd["spec"]["holderIdentity"] = "b"
    rec(call("PUT", "/" + name, upd))
    rec(call("PUT", "/" + name, upd))  # stale rv now
    badtime = json.loads(json.dumps(created))
    badtime["metadata"]["resourceVersion"] = rv
    badtime["spec"]["renewTime"] = "2024-01-01 00:00:00"
    rec(call("PUT", "/" + name, badtime))
    rec(call("GET", "/" + name, tok="wrong-token"))
    return out


def test_fake_matches_real_server(cluster, kubectl, tmp_path):
    real = lease_calls(cluster.url, cluster.admin_token, cluster.pki + "/ca.crt", NS)
    tok = "fake-" + secrets.token_hex(8)
    fk = subprocess.Popen(["/usr/bin/python3", os.path.join(HERE, "fake_lease.py"), "--dir", str(tmp_path),
                           "--token", tok], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        port = int(fk.stdout.readline().split()[1])
        fake = lease_calls("https://127.0.0.1:%d" % port, tok, str(tmp_path / "ca.crt"), NS)
    finally:
        fk.stdin.close()
        fk.terminate()
        fk.wait()
    print("real:", real)
    print("fake:", fake)
    assert real == [(404, "NotFound"), (201, None), (409, "AlreadyExists"), (422, "Invalid"), (200, None),
                    (409, "Conflict"), (400, "BadRequest"), (401, "Unauthorized")]
    assert fake == real
