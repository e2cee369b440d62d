"""test_ha_controller.py - high availability end to end: two and three REAL teleport-pagerduty
processes with `[leader_election] enabled = true`, electing a leader with a coordination.k8s.io/v1
Lease on a REAL kube-apiserver (tests/leader/k8s_harness.py: Debian's etcd + the v1.35
kube-apiserver built by scripts/k8s.sh; ServiceAccount bearer token, RBAC), and reconciling
access requests from the fake Teleport into the fake PagerDuty (tests/lib/tpdtest/harness.py).

Timings: lease_duration 4 s, renew_deadline 3 s, retry_period 1 s. Every process has its own
POD_NAME (Lease holder), status port, Teleport identity (certificate serial) and PagerDuty From
address, so each call the fakes record names its sender (tests/ha/ha_env.py).

  1. one process logs "Became leader", the others "Following leader <it>"; all answer /readyz 200;
  2. a steady stream of access requests: exactly one incident each;
  3. SIGKILL of the leader mid-stream: a follower takes over in less than lease_duration +
     retry_period + 2 s (printed as TAKEOVER ...); requests created during the hand-over all get
     their incident exactly once;
  4. every reconciling call the fakes saw (PagerDuty POST/PUT; Teleport GetPluginData,
     UpdatePluginData, SubmitAccessReview) came from the process leading at that instant, and
     leadership intervals (log ts of "Became leader" / "Lost leadership" / "Released
     leadership", the SIGKILL time) never overlap;
  5. SIGTERM of the leader: it releases the Lease ("Released leadership") and another process
     takes over within about one retry period (printed);
  6. the leader SIGKILLed between its resolution note and its resolve (held by the fake): the
     next leader still resolves and records it; the note is repeated at most once (the
     product's at-least-once choice; in the stream tests a repeated resolution note is accepted
     only when such a SIGKILL explains it);
  7. a burst of requests each reviewed, promoted or deleted in the millisecond of its creation,
     with the leader SIGKILLed mid-burst: every one still gets exactly one incident, its notes
     and its resolution (the followers remember what they saw PENDING, issue 14);
  8. a request the leader fully handled and a follower still remembers as seen PENDING, then
     deleted (its plugin data gone) while the follower takes over: nothing more is posted;
  9. the single-writer checker itself rejects interleaved writers (stub data, no cluster).

Run: ctest --test-dir <build> -R ha/ --output-on-failure  (scripts/k8s.sh must have built the
API server; ctest's fixtures do that).
"""
import os
import shutil
import sys
import tempfile

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "ha"))
sys.path.insert(0, HERE)

import ha_env  # noqa: E402
import k8s_harness  # noqa: E402
from ha_env import (FastStream, HAPlugin, Stream, check_exactly_once, check_fast_requests,  # noqa: E402
                    check_single_writer, election_toml, eventually)

NS = "tpd-ha"
LEASE_S, RENEW_S, RETRY_S = 4, 3, 1
KILL_LIMIT = LEASE_S + RETRY_S + 2.0   # brief: lease_duration + retry_period + 2 s slack
TERM_LIMIT = RETRY_S + 1.0             # release -> take-over: one follower poll (<= retry/2) + slack


@pytest.fixture(scope="module")
def cluster():
    with k8s_harness.running("tpd-ha-k8s-") as h:
        ha_env.grant_leases(h, NS)
        yield h


@pytest.fixture
def env():
    e = ha_env.make_env(tempfile.mkdtemp(prefix="tpd-ha-"))
    yield e
    e.close()
    if not os.environ.get("TPD_KEEP_STATE"):
        shutil.rmtree(e.workdir, ignore_errors=True)


def start_replicas(env, cluster, lease, pods):
    toml = election_toml(cluster, NS, lease, LEASE_S, RENEW_S, RETRY_S)
    ps = [HAPlugin(env, pod, i, toml) for i, pod in enumerate(pods)]
    env.plugins.extend(ps)
    for p in ps:
        p.start(wait_ready=False)
    for p in ps:
        p.wait_log("Plugin is ready", timeout=60)
    return ps


def check_election(cluster, lease, ps):
    leader = ha_env.wait_single_leader(ps)
    followers = [p for p in ps if p is not leader and p.alive()]
    for p in ps:
        if p.alive():
            eventually(lambda: p.probe("/readyz") == 200, 30, what="%s /readyz 200" % p.pod)
            assert p.probe("/healthz") == 200
    assert ha_env.get_lease(cluster, NS, lease)["holderIdentity"] == leader.pod
    assert len(leader.find("Became leader")) == 1
    for p in followers:
        assert not p.find("Became leader"), "%s became leader too" % p.pod
    for p in followers:
        assert p.find("Following leader " + leader.pod), "%s: no 'Following leader %s'" % (p.pod, leader.pod)
    print("leader %s, followers %s (all /readyz 200)" % (leader.pod, [p.pod for p in followers]))
    return leader, followers


def kill_and_measure(env, stream, leader, followers):
    """SIGKILL the leader mid-stream; returns (new leader, takeover seconds, requests created
    while nobody led)."""
    stream.wait_more(5)
    leader.kill9()
    t_kill = leader.killed_at

    def new_leader():
        lead = [p for p in followers if p.is_leading()]
        assert len(lead) <= 1, "two leaders: %s" % [p.pod for p in lead]
        return lead[0] if lead else None
    nl = eventually(new_leader, KILL_LIMIT + 10, interval=0.05, what="a follower taking over")
    took = nl.became() - t_kill
    gap = stream.between(t_kill, nl.became())
    print("TAKEOVER after SIGKILL of %s: %s in %.3f s (limit %.1f s = lease %ds + retry %ds + 2 s); "
          "%d requests created with no leader"
          % (leader.pod, nl.pod, took, KILL_LIMIT, LEASE_S, RETRY_S, len(gap)))
    assert took < KILL_LIMIT, "take-over took %.3f s" % took
    assert gap, "no request was created during the hand-over (the stream is too slow to test it)"
    stream.wait_more(5)
    return nl, took, gap


def term_and_measure(cluster, lease, stream, leader, followers):
    """SIGTERM the leader: it releases the Lease, a follower takes over; returns (new leader,
    seconds from SIGTERM, seconds from the release)."""
    stream.wait_more(5)
    leader.term()
    rel = leader.find("Released leadership")
    assert len(rel) == 1, "no 'Released leadership' after SIGTERM; log tail:\n%s" % leader.raw_log()[-3000:]
    t_rel = ha_env.parse_ts(rel[0]["ts"])
    assert leader.find("Successfully shut down")

    def new_leader():
        lead = [p for p in followers if p.is_leading()]
        assert len(lead) <= 1, "two leaders: %s" % [p.pod for p in lead]
        return lead[0] if lead else None
    nl = eventually(new_leader, LEASE_S + 10, interval=0.05, what="a follower taking over after the release")
    from_term = nl.became() - leader.termed_at
    from_rel = nl.became() - t_rel
    print("TAKEOVER after SIGTERM of %s: %s %.3f s after the release (limit %.1f s), %.3f s after SIGTERM "
          "(graceful shutdown first)" % (leader.pod, nl.pod, from_rel, TERM_LIMIT, from_term))
    assert from_rel < TERM_LIMIT, "take-over %.3f s after the release" % from_rel
    assert ha_env.get_lease(cluster, NS, lease)["holderIdentity"] == nl.pod
    stream.wait_more(5)
    return nl, from_term, from_rel


def final_checks(env, cluster, lease, stream, ps):
    stream.stop()
    # created by the first leader (0), taken over after the SIGKILL (1), taken after the
    # release (2): any flapping would add transitions
    spec = ha_env.get_lease(cluster, NS, lease)
    assert spec["leaseTransitions"] == 2, spec
    assert spec["holderIdentity"] == [p for p in ps if p.is_leading()][0].pod, spec
    for rid in stream.ids():
        env.wait_incident(rid, timeout=60)
    for rid in stream.approved:
        env.wait_resolved(rid, timeout=60)
    for p in ps:
        print("  %s leadership: %s" % (p.pod, [(round(a, 3), round(b, 3), how) for a, b, how in p.intervals()]))
    iv, ws = check_single_writer(env, ps)
    n, n_appr, repeats = check_exactly_once(env, stream.ids(), stream.approved, ps)
    for rid, why in repeats:
        print("REPEATED resolution note on request %s: %s" % (rid, why))
    per = {}
    for _, who, _ in ws:
        per[who] = per.get(who, 0) + 1
    print("%d requests, %d approved: each exactly one incident (approved: one resolution); "
          "%d reconciling calls, per process %s, all inside their sender's leadership"
          % (n, n_appr, len(ws), per))
    for p in ps:
        assert cluster.plugin_token not in p.raw_log(), "%s logged the ServiceAccount token" % p.pod
        assert ha_env.harness.API_KEY not in p.raw_log()


def test_two_replicas(cluster, env):
    lease = "ha-two"
    ps = start_replicas(env, cluster, lease, ["pod-a", "pod-b"])
    leader, followers = check_election(cluster, lease, ps)
    stream = Stream(env).start()
    try:
        # steady state: only the leader reconciles
        stream.wait_more(8)
        for rid in stream.ids():
            env.wait_incident(rid, timeout=30)
        check_single_writer(env, ps)
        assert not [w for w in ha_env.writes(env, ps) if w[1] != leader.pod]

        nl, _, gap = kill_and_measure(env, stream, leader, followers)
        for rid in gap:
            env.wait_incident(rid, timeout=30)
        check_single_writer(env, ps)

        # a replacement pod joins as follower; SIGTERM of the leader hands over to it
        repl = HAPlugin(env, "pod-c", 2, election_toml(cluster, NS, lease, LEASE_S, RENEW_S, RETRY_S))
        env.plugins.append(repl)
        ps.append(repl)
        repl.start()
        eventually(lambda: repl.following() and repl.following()[-1] == nl.pod, 20, what="pod-c following")
        eventually(lambda: repl.probe("/readyz") == 200, 30, what="pod-c ready")
        term_and_measure(cluster, lease, stream, nl, [repl])
    finally:
        stream.stop()
    final_checks(env, cluster, lease, stream, ps)


def test_three_replicas(cluster, env):
    lease = "ha-three"
    ps = start_replicas(env, cluster, lease, ["pod-x", "pod-y", "pod-z"])
    leader, followers = check_election(cluster, lease, ps)
    stream = Stream(env).start()
    try:
        stream.wait_more(8)
        for rid in stream.ids():
            env.wait_incident(rid, timeout=30)

        second, _, gap = kill_and_measure(env, stream, leader, followers)
        rest = [p for p in followers if p is not second]
        eventually(lambda: rest[0].following() and rest[0].following()[-1] == second.pod, 20,
                   what="the third process following the new leader")
        assert not rest[0].find("Became leader")
        for rid in gap:
            env.wait_incident(rid, timeout=30)

        term_and_measure(cluster, lease, stream, second, rest)
    finally:
        stream.stop()
    final_checks(env, cluster, lease, stream, ps)


def test_leader_killed_between_resolution_note_and_resolve(cluster, env):
    """The worst moment for a hand-over: the leader posted the resolution note and its resolve
    (PUT) is in flight (the fake PagerDuty holds it) when it is SIGKILLed. The next leader must
    still resolve the incident and record it; the note may be repeated (at least once, never
    lost), never more."""
    lease = "ha-crash"
    ps = start_replicas(env, cluster, lease, ["pod-k", "pod-l"])
    leader, followers = check_election(cluster, lease, ps)
    rid = env.request(services=None)
    inc = env.wait_incident(rid)
    env.wait_plugin_data(rid, lambda d: d.get("incident_id") == inc["id"])
    # Held longer than any take-over, so the new leader finds the incident still open.
    env.pd.inject("slow", delay=KILL_LIMIT + 4, method="PUT", path="/incidents/" + inc["id"])
    env.tp.set_state(rid, "APPROVED", "ok")
    eventually(lambda: [r for r in env.pd.api_requests() if r["method"] == "PUT"
                        and r["path"] == "/incidents/" + inc["id"]], 20, what="the leader's resolve in flight")
    leader.kill9()
    follower = followers[0]
    eventually(follower.is_leading, KILL_LIMIT + 5, interval=0.05, what="take-over")
    print("TAKEOVER after SIGKILL mid-resolution: %.3f s" % (follower.became() - leader.killed_at))
    env.wait_resolved(rid, timeout=30)
    data = env.wait_plugin_data(rid, lambda d: d.get("pd_resolved") == "true")
    assert data["resolution"] == "approved" and data["incident_id"] == inc["id"], data
    notes = [n for n in env.note_texts(inc["id"]) if n.startswith("Access request has been")]
    # The new leader finds the stored resolution without pd_resolved, sees the note already on the
    # incident and only resolves: the note stays single (exactly once).
    assert notes == ["Access request has been approved\nReason: ok"], (notes, ha_env.incident_writes(env, inc["id"]))
    check_single_writer(env, ps)
    assert len(env.incident_for(rid)) == 1


def test_leader_killed_mid_burst_of_fast_requests(cluster, env):
    """Requests that leave PENDING within the millisecond of their creation (denied, approved,
    promoted, deleted), a steady burst of them, and the leader SIGKILLed in the middle: those
    created while nobody led were seen PENDING only by the followers (they keep their watch
    warm and remember what they saw), so the new leader still opens, notes and resolves each."""
    lease = "ha-fast"
    ps = start_replicas(env, cluster, lease, ["pod-f", "pod-g"])
    leader, followers = check_election(cluster, lease, ps)
    burst = FastStream(env).start()
    try:
        burst.wait_more(20)
        leader.kill9()
        nl = eventually(lambda: followers[0] if followers[0].is_leading() else None, KILL_LIMIT + 10,
                        interval=0.05, what="a follower taking over")
        gap = burst.between(leader.killed_at, nl.became())
        burst.wait_more(20)
    finally:
        burst.stop()
    items = [(r, k) for r, k, _ in burst.items()]
    assert gap, "no fast request was created while nobody led"
    counts, repeats = check_fast_requests(env, items, ps)
    for rid, why in repeats:
        print("REPEATED resolution note on request %s: %s" % (rid, why))
    check_single_writer(env, ps)
    print("FAST BURST: %d requests %s, %d created while nobody led (%.3f s take-over): "
          "each exactly one incident, its notes and its resolution"
          % (len(items), counts, len(gap), nl.became() - leader.killed_at))


def _metric(p, name):
    import urllib.request
    text = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % p.status_port, timeout=5).read().decode()
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_new_leader_leaves_a_handled_deletion_alone(cluster, env):
    """A follower remembers a request it saw PENDING that the leader then handled (incident,
    note, resolution). The leader dies, the request is deleted and its plugin data is gone (as
    Teleport drops it an hour after expiry): the new leader reconciles its memory, finds the
    incident resolved already and posts nothing more (no stray "expired" note)."""
    lease = "ha-handled"
    ps = start_replicas(env, cluster, lease, ["pod-h", "pod-i"])
    leader, followers = check_election(cluster, lease, ps)
    rid = env.tp.create_then("requester1@example.com", ["editor"],
                             {"pagerduty_notify_service": ["Teleport Notifications"]}, "because of",
                             [("review", "reviewer1@example.com", "DENIED", "no")])
    inc = env.wait_resolved(rid, timeout=30)
    env.wait_plugin_data(rid, lambda d: d.get("pd_resolved") == "true")
    notes = env.note_texts(inc["id"])
    assert len(notes) == 2 and notes[1] == "Access request has been denied\nReason: no", notes
    eventually(lambda: _metric(followers[0], "teleport_pagerduty_seen_pending_requests") >= 1, 10,
               what="the follower remembering the request")
    leader.kill9()
    env.tp.delete_request(rid)
    env.tp.set_plugin_data(rid, {})
    eventually(followers[0].is_leading, KILL_LIMIT + 5, interval=0.05, what="take-over")
    eventually(lambda: _metric(followers[0], 'teleport_pagerduty_seen_pending_forgotten_total{reason="handled"}') >= 1,
               30, what="the new leader handling its memory")
    assert env.note_texts(inc["id"]) == notes
    assert len(env.incident_for(rid)) == 1 and env.incident_for(rid)[0]["status"] == "resolved"
    check_single_writer(env, ps)


# --- the checker itself can fail ---------------------------------------------------------------

class _StubPlugin:
    def __init__(self, pod, serial, iv):
        self.pod, self.serial, self.email, self._iv = pod, serial, "bot-%s@example.com" % pod, iv

    def intervals(self):
        return self._iv


class _StubEnv:
    class _PD:
        def __init__(self, reqs):
            self.reqs = reqs

        def api_requests(self):
            return self.reqs

    class _TP:
        def __init__(self, calls):
            import threading
            self.calls, self.lock = calls, threading.Lock()

    def __init__(self, pd, tp):
        self.pd, self.tp = self._PD(pd), self._TP(tp)


def _pd(t, pod):
    return {"t": t, "method": "POST", "path": "/incidents", "headers": {"From": "bot-%s@example.com" % pod}}


def _tp(t, serial):
    return {"time": t, "method": "UpdatePluginData", "serial": serial}


def test_single_writer_check_catches_violations():
    """check_single_writer accepts a clean hand-over and rejects interleaved writers, a write
    before its sender led, one after a release, one long after a SIGKILL, and overlapping
    leadership, so the end-to-end assertions above can fail."""
    a = _StubPlugin("a", "1", [(10.0, 20.0, "SIGKILL")])
    b = _StubPlugin("b", "2", [(24.0, 30.0, "Released leadership")])
    c = _StubPlugin("c", "3", [(30.5, 40.0, "Lost leadership")])
    ok_pd = [_pd(11, "a"), _pd(20.2, "a"), _pd(25, "b"), _pd(29.9, "b"), _pd(31, "c"), _pd(41, "c")]
    ok_tp = [_tp(12, "1"), _tp(26, "2"), _tp(35, "3")]
    iv, ws = check_single_writer(_StubEnv(ok_pd, ok_tp), [a, b, c])
    assert len(ws) == 9 and len(iv) == 3
    bad_cases = {
        "follower writes": (ok_pd + [_pd(15, "b")], ok_tp),
        "old leader after the new one": (ok_pd + [_pd(25, "a")], ok_tp),
        "long after SIGKILL": (ok_pd + [_pd(21, "a")], ok_tp),
        "after release": (ok_pd + [_pd(30.2, "b")], ok_tp),
        "teleport write by a follower": (ok_pd, ok_tp + [_tp(27, "1")]),
    }
    for what, (pd, tp) in bad_cases.items():
        with pytest.raises(AssertionError):
            check_single_writer(_StubEnv(pd, tp), [a, b, c])
            print("not caught:", what)
    overlap = _StubPlugin("b", "2", [(19.0, 30.0, "Released leadership")])
    with pytest.raises(AssertionError, match="led until"):
        check_single_writer(_StubEnv([], []), [a, overlap, c])
