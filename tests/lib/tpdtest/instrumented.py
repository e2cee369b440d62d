"""instrumented.py - the fakes instrumented for load (the benchmarks in bench/ and the chaos soak
in tests/soak/): creation/review/resolution timestamps and callbacks, O(1) incident indexes,
TCP_NODELAY, folded request counts; and LoadEnv, both of them with the fixtures those runs use.

The fakes themselves are used unchanged; this module only adds, in its own process:
  * TCP_NODELAY on the fake PagerDuty's accepted sockets and on the fake Teleport's TCP front.
    Without it every fake PagerDuty answer (headers and body are two TLS records) waits ~40 ms
    for the client's delayed ACK (Nagle), which makes the fake, not the plugin, the bottleneck.
  * O(1) indexes for incident lookups, timestamps and callbacks for the latency figures, and a
    counter thread that folds recorded API requests into counts so that 100,000 lifecycles do not
    keep 400,000 request records (headers and bodies) in memory.
"""

import collections
import os
import sys
import threading
import time
import uuid

from tpdtest.fake_pagerduty import FakePagerDuty
from tpdtest.fake_teleport import FakeTeleport
from tpdtest.harness import API_KEY, BOT_EMAIL, PLUGIN_USER, plugin_toml, write_api_key

NOTIFY_SERVICE = "Teleport Notifications"
ONCALL_SERVICE = "Service 1"


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



class LoadEnv:
    """Both instrumented fakes with the fixtures of the load runs, an identity file and the
    plugin's config (info logs: what a user runs)."""

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
        self.api_key_file = write_api_key(workdir)
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

    def toml(self, extra="", pd_extra="", status_extra=""):
        return plugin_toml(self.tp.addr, self.identity, self.api_key_file, self.pd.url,
                           'resync_interval = "1h"\n' + extra, pd_extra, status_extra,
                           severity="info", workers=None)

    def notify_request(self, user="requester@example.com", thresholds=None):
        return self.tp.create_request(user, ["editor"], annotations={"pagerduty_notify_service": [NOTIFY_SERVICE]},
                                      reason="bench", thresholds=thresholds)

    def approval_request(self, user):
        return self.tp.create_request(user, ["editor"], annotations={"pagerduty_services": [ONCALL_SERVICE]},
                                      reason="bench")

    def close(self):
        self.pd.stop()
        self.tp.stop()
