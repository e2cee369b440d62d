"""ha_env.py - helpers for the high-availability end-to-end test (tests/leader/test_ha_controller.py):
several REAL teleport-pagerduty processes with `[leader_election] enabled = true` against the fake
Teleport and fake PagerDuty (tests/lib/tpdtest/harness.py) and a REAL kube-apiserver (tests/leader/
k8s_harness.py).

What it adds to those harnesses:
  * lease RBAC in a namespace for the harness's ServiceAccount token (kubectl as admin);
  * HAPlugin: one process with its own POD_NAME (its Lease holder identity), its own Teleport
    identity file (so the fake Teleport's recorded client-certificate serial names the caller),
    its own PagerDuty `user_email` (so the fake PagerDuty's recorded `From` header names the
    writer), its own status port and the [leader_election] settings;
  * a steady stream of access requests;
  * time stamps on the fake PagerDuty's recorded requests (the fake keeps a list without times);
  * the leadership timeline of every process from its JSON log ("Became leader", "Lost
    leadership", "Released leadership"; field ts) and the check that every reconciling call the
    fakes saw came from the process that led at that instant.

Nothing here sleeps to synchronise: waits poll a condition with a deadline (harness.eventually).
"""

import calendar
import json
import os
import shutil
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.environ.get("TPD_SOURCE_DIR", os.path.abspath(os.path.join(HERE, "..", "..")))
for sub in ("lib", "leader"):
    p = os.path.join(SRC, "tests", sub)
    if p not in sys.path:
        sys.path.insert(0, p)

from tpdtest import harness  # noqa: E402
from tpdtest.harness import Env, Plugin, eventually  # noqa: E402,F401
from tpdtest.fake_teleport import read_serials  # noqa: E402

# The ServiceAccount that k8s_harness's "plugin" token authenticates as.
SA_NS, SA_NAME = "teleport", "teleport-plugin-pagerduty"

# Teleport identity files made by tests/pki/gen.sh and the certificate each one carries.
IDENTITIES = [("identity", "client"), ("identity2", "client2"), ("identity-ec", "client-ec")]

# Calls that only reconciling does (followers must never make them).
TP_RECONCILE_METHODS = ("GetPluginData", "UpdatePluginData", "SubmitAccessReview")


def parse_ts(ts):
    """RFC 3339 UTC with milliseconds (the logger's `ts`) -> Unix seconds (float)."""
    base, _, frac = ts.rstrip("Z").partition(".")
    sec = calendar.timegm(time.strptime(base, "%Y-%m-%dT%H:%M:%S"))
    return sec + (int(frac) / 10 ** len(frac) if frac else 0.0)


# --- Kubernetes --------------------------------------------------------------------------------

def kubectl(h, *args, ctx="admin", check=True):
    r = subprocess.run([h.tools["KUBECTL"], "--kubeconfig", h.kubeconfig, "--context", ctx] + list(args),
                       capture_output=True, text=True, timeout=60)
    if check and r.returncode != 0:
        raise AssertionError("kubectl %s: %s%s" % (" ".join(args), r.stdout, r.stderr))
    return r


def grant_leases(h, ns):
    """Namespace `ns` with a Role for Leases (get, create, update) bound to the plugin's
    ServiceAccount; checks the grant with `kubectl auth can-i` through the plugin's own token,
    and that it does not reach another namespace (so the API server really enforces RBAC)."""
    kubectl(h, "create", "namespace", ns)
    kubectl(h, "-n", ns, "create", "role", "lease-election", "--verb=get,create,update",
            "--resource=leases.coordination.k8s.io")
    kubectl(h, "-n", ns, "create", "rolebinding", "lease-election", "--role=lease-election",
            "--serviceaccount=%s:%s" % (SA_NS, SA_NAME))

    def can(verb, namespace):
        return kubectl(h, "auth", "can-i", verb, "leases.coordination.k8s.io", "-n", namespace,
                       ctx="plugin", check=False).stdout.strip()
    assert can("update", ns) == "yes" and can("create", ns) == "yes"
    assert can("update", "default") == "no", "RBAC is not enforced"


def get_lease(h, ns, name):
    return json.loads(kubectl(h, "-n", ns, "get", "lease", name, "-o", "json").stdout)["spec"]


# --- the fakes ---------------------------------------------------------------------------------

class _TimedList(list):
    """The fake PagerDuty appends one record per API request (under its lock) before it handles
    the request; this stamps each with the arrival time (wall clock, like the logs' ts)."""

    def append(self, rec):
        rec["t"] = time.time()
        super().append(rec)


def make_env(workdir=None):
    env = Env(workdir)
    with env.pd.lock:
        env.pd.requests = _TimedList(env.pd.requests)
    return env


# --- the processes -----------------------------------------------------------------------------

class HAPlugin(Plugin):
    """One replica: POD_NAME `pod`, identity file IDENTITIES[index], From address
    bot-<pod>@example.com (a PagerDuty user added to the fake), leader election on."""

    def __init__(self, env, pod, index, election_toml):
        super().__init__(env, env.workdir, extra_toml=election_toml, name=pod)
        ident, cert = IDENTITIES[index]
        self.pod = pod
        self.identity = os.path.join(env.workdir, "identity-" + pod)
        shutil.copy(os.path.join(env.pki, ident), self.identity)
        self.serial = read_serials(env.pki)[cert]
        self.email = "bot-%s@example.com" % pod
        if not any(u["email"] == self.email for u in env.pd.users.values()):
            env.pd.add_user("Bot " + pod, self.email)
        self.killed_at = None
        self.termed_at = None

    def write_config(self):
        text = self.env.toml(self.extra_toml)
        a = 'identity = "%s"' % os.path.join(self.env.workdir, "identity")
        b = 'user_email = "%s"' % harness.BOT_EMAIL
        assert a in text and b in text, "harness.Env.toml changed its format"
        text = text.replace(a, 'identity = "%s"' % self.identity).replace(b, 'user_email = "%s"' % self.email)
        with open(self.config, "w") as f:
            f.write(text)

    def start(self, wait_ready=True, args=()):
        # harness.Plugin passes its own environment on; POD_NAME is the Lease holder identity.
        old = os.environ.get("POD_NAME")
        os.environ["POD_NAME"] = self.pod
        try:
            super().start(wait_ready=False, args=args)
        finally:
            if old is None:
                del os.environ["POD_NAME"]
            else:
                os.environ["POD_NAME"] = old
        if wait_ready:
            self.wait_log("Plugin is ready", timeout=60)
        self.wait_log("Controller started", timeout=30)
        return self

    def kill9(self):
        self.killed_at = time.time()
        self.kill()

    def term(self, timeout=40):
        self.termed_at = time.time()
        rc = self.stop(timeout=timeout)
        assert rc == 0, "%s exited with %s after SIGTERM" % (self.pod, rc)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def leader_events(self):
        """[(time, "start"|"end", msg)] from the log."""
        out = []
        for l in self.lines():
            m = l.get("msg")
            if m == "Became leader":
                out.append((parse_ts(l["ts"]), "start", m))
            elif m in ("Lost leadership", "Released leadership"):
                out.append((parse_ts(l["ts"]), "end", m))
        return out

    def became(self, n=1):
        got = [t for t, kind, _ in self.leader_events() if kind == "start"]
        return got[n - 1] if len(got) >= n else None

    def is_leading(self):
        ev = self.leader_events()
        return self.alive() and bool(ev) and ev[-1][1] == "start"

    def following(self):
        return [l.get("leader") for l in self.lines() if str(l.get("msg", "")).startswith("Following leader")]

    def intervals(self):
        """[(start, end, how_it_ended)] of leadership; an open interval ends at the SIGKILL (the
        process cannot act after it) or, while it still runs, now."""
        out, start = [], None
        for t, kind, msg in self.leader_events():
            if kind == "start":
                start = t
            elif start is not None:
                out.append((start, t, msg))
                start = None
        if start is not None:
            if self.killed_at:
                out.append((start, self.killed_at, "SIGKILL"))
            else:
                assert self.alive(), "%s exited while leading without releasing" % self.pod
                out.append((start, time.time(), "running"))
        return out

    def probe(self, path="/readyz"):
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d%s" % (self.status_port, path), timeout=5) as r:
                return r.status
        except urllib.error.HTTPError as e:
            return e.code
        except OSError:
            return None


def election_toml(h, ns, lease, lease_s=4, renew_s=3, retry_s=1):
    return """
[leader_election]
enabled = true
lease_name = "%s"
lease_namespace = "%s"
lease_duration = "%ds"
renew_deadline = "%ds"
retry_period = "%ds"
api_server = "%s"
token_file = "%s"
ca_file = "%s"
""" % (lease, ns, lease_s, renew_s, retry_s, h.url, os.path.join(h.pki, "plugin-token"),
       os.path.join(h.pki, "ca.crt"))


def wait_single_leader(plugins, timeout=30):
    """Waits until exactly one live process leads and every other live one logged that it
    follows it; returns the leader."""
    def check():
        live = [p for p in plugins if p.alive()]
        lead = [p for p in live if p.is_leading()]
        if len(lead) > 1:
            raise AssertionError("two leaders at once: %s" % [p.pod for p in lead])
        if len(lead) != 1:
            return None
        others = [p for p in live if p is not lead[0]]
        if all(p.following() and p.following()[-1] == lead[0].pod for p in others):
            return lead[0]
        return None
    return eventually(check, timeout, interval=0.05, what="one leader, the others following it")


# --- the workload ------------------------------------------------------------------------------

class _Background:
    """A request generator on a thread: subclasses set up their state, call _init_background
    and implement _run (appending to self.created under self._lock, errors to self.errors)."""

    def _init_background(self, env, period):
        self.env = env
        self.period = period
        self.created = []
        self.errors = []
        self._stop = threading.Event()
        self._thread = None
        self._lock = threading.Lock()

    def start(self):
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def stop(self):
        self._stop.set()
        if self._thread:
            self._thread.join(30)
        assert not self.errors, self.errors

    def count(self):
        with self._lock:
            return len(self.created)

    def wait_more(self, n, timeout=30):
        """Waits until n more requests than now were created."""
        target = self.count() + n
        eventually(lambda: self.count() >= target, timeout, what="%d requests created" % target)


class Stream(_Background):
    """Creates an access request (notify annotation only) every `period` seconds on a thread;
    approves (in Teleport) every third one once its incident exists, so the run also has notes
    and resolutions. `created` is [(rid, wall time)]."""

    def __init__(self, env, period=0.12):
        self._init_background(env, period)
        self.approved = []
        self._to_approve = []

    def _run(self):
        n = 0
        while not self._stop.is_set():
            try:
                rid = self.env.request(services=None)
                with self._lock:
                    self.created.append((rid, time.time()))
                n += 1
                if n % 3 == 0:
                    self._to_approve.append(rid)
                for r in list(self._to_approve):
                    if self.env.incident_for(r):
                        self.env.tp.set_state(r, "APPROVED", "ok")
                        self._to_approve.remove(r)
                        with self._lock:
                            self.approved.append(r)
            except Exception as e:  # reported by stop()
                self.errors.append(repr(e))
                return
            self._stop.wait(self.period)

    def ids(self):
        with self._lock:
            return [r for r, _ in self.created]

    def between(self, t0, t1):
        with self._lock:
            return [r for r, t in self.created if t0 <= t <= t1]


class FastStream(_Background):
    """Creates a request every `period` seconds on a thread and, in the same hold of the fake
    Teleport's store lock, denies, approves, promotes or deletes it (in turn): the watch events
    of each request (PENDING put, then the new state or the delete) leave within the same
    millisecond, so the controllers' collapsing work queues only ever see the newest state.
    `created` is [(rid, kind, wall time)]."""

    KINDS = ("denied", "approved", "promoted", "deleted")
    REVIEWER = "reviewer1@example.com"

    def __init__(self, env, period=0.05):
        self._init_background(env, period)

    def _steps(self, kind):
        return {"denied": [("review", self.REVIEWER, "DENIED", "not okay")],
                "approved": [("review", self.REVIEWER, "APPROVED", "okay")],
                "promoted": [("promote", self.REVIEWER, "to the list")],
                "deleted": [("delete",)]}[kind]

    def _run(self):
        n = 0
        while not self._stop.is_set():
            kind = self.KINDS[n % len(self.KINDS)]
            try:
                rid = self.env.tp.create_then("requester1@example.com", ["editor"],
                                              {"pagerduty_notify_service": ["Teleport Notifications"]},
                                              "because of", self._steps(kind))
            except Exception as e:  # reported by stop()
                self.errors.append(repr(e))
                return
            with self._lock:
                self.created.append((rid, kind, time.time()))
            n += 1
            self._stop.wait(self.period)

    def items(self):
        with self._lock:
            return list(self.created)

    def between(self, t0, t1):
        with self._lock:
            return [(r, k) for r, k, t in self.created if t0 <= t <= t1]


def check_fast_requests(env, items, plugins, timeout=90):
    """Every fast request: exactly one incident (one creating POST), resolved; a reviewed one
    carries its review note once and its resolution note (denied/approved/promoted), a deleted
    one the expired note. A repeated resolution note is accepted only where a SIGKILL explains it
    (resolution_repeat_explained). Returns (counts per kind, explained repeats)."""
    rids = [r for r, _ in items]

    def resolved():
        by_key = {i.get("incident_key"): i for i in env.pd.incidents()}
        return [r for r in rids if by_key.get("teleport-access-request/" + r, {}).get("status") == "resolved"]
    try:
        eventually(lambda: len(resolved()) == len(rids), timeout, interval=0.2, what="every fast request resolved")
    except AssertionError:
        keys = {i.get("incident_key") for i in env.pd.incidents()}
        lost = [(r, k) for r, k in items if "teleport-access-request/" + r not in keys]
        raise AssertionError("%d fast requests: %d without an incident %s, %d not resolved"
                             % (len(rids), len(lost), lost[:10], len(rids) - len(resolved())))
    posts = {}
    for r in env.pd.api_requests():
        if r["method"] == "POST" and r["path"] == "/incidents" and r["status"] == 201:
            k = json.loads(r["body"])["incident"].get("incident_key")
            posts[k] = posts.get(k, 0) + 1
    counts, repeats = {}, []
    for rid, kind in items:
        key = "teleport-access-request/" + rid
        incs = env.incident_for(rid)
        assert len(incs) == 1 and posts.get(key) == 1, (rid, kind, len(incs), posts.get(key))
        notes = env.note_texts(incs[0]["id"])
        res = [n for n in notes if n.startswith("Access request has been")]
        rev = [n for n in notes if " reviewed the request at " in n]
        want = "Access request has been %s" % ("expired" if kind == "deleted" else kind)
        assert res and all(n.startswith(want) for n in res), (rid, kind, notes)
        assert len(rev) == (0 if kind == "deleted" else 1), (rid, kind, notes)
        if len(res) != 1:
            why = resolution_repeat_explained(env, incs[0]["id"], plugins)
            assert why, (rid, kind, notes, incident_writes(env, incs[0]["id"]))
            repeats.append((rid, why))
        counts[kind] = counts.get(kind, 0) + 1
    return counts, repeats


def check_exactly_once(env, rids, approved, plugins, timeout=60):
    """Every request has exactly one incident (one successful POST /incidents, one incident with
    its key); every approved one is resolved with exactly one resolution note, except where a
    SIGKILL explains a repeat (see resolution_repeat_explained). Returns (requests, approved,
    explained repeats)."""
    for rid in rids:
        env.wait_incident(rid, timeout=timeout)
    for rid in approved:
        env.wait_resolved(rid, timeout=timeout)
    by_key = {}
    for i in env.pd.incidents():
        by_key.setdefault(i.get("incident_key"), []).append(i)
    posts = {}
    for r in env.pd.api_requests():
        if r["method"] == "POST" and r["path"] == "/incidents" and r["status"] == 201:
            k = json.loads(r["body"])["incident"].get("incident_key")
            posts[k] = posts.get(k, 0) + 1
    missing, dup = [], []
    for rid in rids:
        k = "teleport-access-request/" + rid
        n = len(by_key.get(k, []))
        if n == 0:
            missing.append(rid)
        elif n > 1 or posts.get(k, 0) != 1:
            dup.append((rid, n, posts.get(k, 0)))
    assert not missing, "requests without an incident: %s" % missing
    assert not dup, "requests with more than one incident (rid, incidents, creating POSTs): %s" % dup
    repeats = []
    for rid in approved:
        inc = env.incident_for(rid)[0]
        res = [n for n in env.note_texts(inc["id"]) if n.startswith("Access request has been")]
        if len(res) == 1:
            continue
        why = resolution_repeat_explained(env, inc["id"], plugins)
        assert why, "request %s: resolution notes %r; its PagerDuty writes %s" % (
            rid, res, incident_writes(env, inc["id"]))
        repeats.append((rid, why))
    return len(rids), len(approved), repeats


def _from(r):
    return {k.lower(): v for k, v in r["headers"].items()}.get("from", "").lower()


def incident_writes(env, incident_id):
    """[(time, From, method, path, status)] of the PagerDuty writes on one incident (diagnostics)."""
    return [(round(r["t"], 3), _from(r), r["method"], r["path"], r["status"]) for r in env.pd.api_requests()
            if r["method"] in ("POST", "PUT") and r["path"].startswith("/incidents/" + incident_id)]


def resolution_repeat_explained(env, incident_id, plugins):
    """A resolution note is posted, then the incident resolved, then `pd_resolved` stored. A
    leader SIGKILLed after its note but before its resolve leaves an open incident; the next
    leader finds it by key and posts note + resolve again (the product repeats a note rather than
    lose one, like its review notes). That is the only accepted repeat: exactly two resolution
    notes, the first by a process SIGKILLed after posting it and whose resolve never succeeded,
    the second by another process. Returns a description, or None."""
    by_email = {p.email.lower(): p for p in plugins}
    notes, resolves = [], []
    for r in env.pd.api_requests():
        if r["method"] == "POST" and r["path"] == "/incidents/%s/notes" % incident_id and r["status"] == 200:
            if json.loads(r["body"])["note"]["content"].startswith("Access request has been"):
                notes.append((r["t"], by_email.get(_from(r))))
        elif r["method"] == "PUT" and r["path"] == "/incidents/" + incident_id and r["status"] == 200:
            if json.loads(r["body"])["incident"].get("status") == "resolved":
                resolves.append((r["t"], by_email.get(_from(r))))
    if len(notes) != 2 or None in (notes[0][1], notes[1][1]):
        return None
    (t1, p1), (t2, p2) = notes
    if p1 is p2 or not p1.killed_at or t1 > p1.killed_at + KILL_TRANSPORT_SLACK:
        return None
    if any(p is p1 for _, p in resolves) or [p for _, p in resolves] != [p2]:
        return None
    return "note by %s, SIGKILLed %.3f s later before resolving; note + resolve repeated by %s" % (
        p1.pod, p1.killed_at - t1, p2.pod)


# --- who reconciled when -----------------------------------------------------------------------

# A SIGKILLed process cannot send anything after the signal, but a request it wrote into its
# socket just before can be read (and so recorded) by the fake a little later.
KILL_TRANSPORT_SLACK = 0.5


def writes(env, plugins):
    """[(t, pod, what)] of every reconciling call the fakes saw: PagerDuty writes (POST/PUT,
    attributed by their From header) and Teleport plugin-data reads/writes and reviews
    (attributed by client-certificate serial). Fails on a call no process can be named for."""
    by_email = {p.email.lower(): p.pod for p in plugins}
    by_serial = {p.serial: p.pod for p in plugins}
    assert len(by_serial) == len(plugins), "two processes share a Teleport identity"
    out = []
    for r in env.pd.api_requests():
        if r["method"] in ("POST", "PUT"):
            frm = {k.lower(): v for k, v in r["headers"].items()}.get("from", "").lower()
            assert frm in by_email, "PagerDuty write from an unknown sender %r" % frm
            out.append((r["t"], by_email[frm], "PD %s %s" % (r["method"], r["path"])))
    with env.tp.lock:
        calls = list(env.tp.calls)
    for c in calls:
        if c["method"] in TP_RECONCILE_METHODS:
            pod = by_serial.get(c["serial"])
            assert pod, "Teleport call %s with unknown serial %s" % (c["method"], c["serial"])
            out.append((c["time"], pod, "TP " + c["method"]))
    out.sort(key=lambda w: w[0])
    return out


def check_single_writer(env, plugins):
    """The heart of "no two processes reconcile at once":
      1. the processes' leadership intervals never overlap;
      2. every reconciling call the fakes saw lies in an interval of the process that made it,
         and in no other process's interval; so the calls of two leaders never interleave.
    Allowances (the only ones): a call recorded up to KILL_TRANSPORT_SLACK after its sender was
    SIGKILLed (sent before, read by the fake after); and a call recorded after its sender logged
    "Lost leadership" but before anyone else became leader: client-go semantics stop *starting*
    work at the renew deadline, a call already in flight finishes, and the renew deadline is
    shorter than the lease duration precisely so that it can finish before another process can
    acquire the Lease. A release ("Released leadership") comes only after the workers stopped,
    so it gets no allowance. Returns (intervals, calls)."""
    iv = sorted((a, b, how, p.pod) for p in plugins for (a, b, how) in p.intervals())
    for (a1, b1, how1, p1), (a2, b2, how2, p2) in zip(iv, iv[1:]):
        assert b1 <= a2, "%s led until %.3f (%s) but %s led from %.3f" % (p1, b1, how1, p2, a2)
    ws = writes(env, plugins)
    bad = []
    for t, who, what in ws:
        ok = False
        for k, (a, b, how, pod) in enumerate(iv):
            if pod != who or t < a:
                continue
            next_start = iv[k + 1][0] if k + 1 < len(iv) else float("inf")
            if how == "SIGKILL":
                end = min(b + KILL_TRANSPORT_SLACK, next_start)
            elif how == "Lost leadership":
                end = next_start
            elif how == "running":
                end = time.time()
            else:  # Released leadership
                end = b
            if t <= end + 0.001:  # log ts are whole milliseconds (truncated)
                ok = True
                break
        if not ok:
            bad.append((round(t, 3), who, what))
    assert not bad, ("reconciling calls outside their sender's leadership %s; intervals %s"
                     % (bad[:20], [(round(a, 3), round(b, 3), h, p) for a, b, h, p in iv]))
    return iv, ws
