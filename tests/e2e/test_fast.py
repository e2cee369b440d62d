"""Requests that leave PENDING right after their creation (issue 14, part 1): every request the
controller saw PENDING gets exactly one incident, its review notes and its resolution, in that
order, however soon it was reviewed, approved, denied, promoted, deleted or auto-approved.

The real event stream drives everything: the fake Teleport's create_then() creates a request and
applies the next steps in one hold of its store lock, so the watch events (the PENDING put, the
put with the new state, the delete) leave back to back within the same millisecond, in the order
a real server sends them, and the controller's collapsing work queue sees only the newest state.
"""

import json
import os
import sys
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))  # tpdtest
from tpdtest.harness import PLUGIN_USER, Env, eventually  # noqa: E402

NOTIFY = "Teleport Notifications"
REVIEWER = "reviewer1@example.com"
ONCALL_USER = "requester-oss@example.com"
STEPS = {
    "denied": [("review", REVIEWER, "DENIED", "not okay")],
    "approved": [("review", REVIEWER, "APPROVED", "okay")],
    "promoted": [("promote", REVIEWER, "promoted to the list")],
    "deleted": [("delete",)],
    "pending": [],
}
REVIEW_STATE = {"denied": "DENIED", "approved": "APPROVED", "promoted": "PROMOTED"}


@pytest.fixture
def env():
    e = Env()
    yield e
    e.close()


def rfc822(unix_seconds):
    """Go's time.RFC822 in UTC, as upstream's note text uses it (whole minutes)."""
    return time.strftime("%d %b %y %H:%M UTC", time.gmtime(unix_seconds))


def expected_review_note(review):
    text = "%s reviewed the request at %s.\nResolution: %s.\n" % (
        review["author"], rfc822(review["created"]), review["state"])
    if review["reason"]:
        text += "Reason: %s." % review["reason"]
    return text


def burst(env, kinds, annotations=None, user="requester1@example.com"):
    """One thread per request, all released at once; each request is created and taken through
    its steps in one go. Returns [(rid, kind)]."""
    ann = annotations or {"pagerduty_notify_service": [NOTIFY]}
    gate = threading.Barrier(len(kinds))

    def one(kind):
        gate.wait()
        return env.tp.create_then(user, ["editor"], ann, "because of", STEPS[kind])
    with ThreadPoolExecutor(len(kinds)) as ex:
        rids = list(ex.map(one, kinds))
    return list(zip(rids, kinds))


def settle(env, rids, want_resolved, timeout=90):
    """Waits until every request has an incident and (want_resolved) every incident is
    resolved. On a timeout the message says how many made it, so a failure reports the loss."""
    def state():
        incs = {i.get("incident_key"): i for i in env.pd.incidents()}
        have = [r for r in rids if "teleport-access-request/" + r in incs]
        done = [r for r in have if not want_resolved or incs["teleport-access-request/" + r]["status"] == "resolved"]
        return have, done

    try:
        eventually(lambda: len(state()[1]) == len(rids), timeout, interval=0.1,
                   what="%d incidents%s" % (len(rids), ", resolved" if want_resolved else ""))
    except AssertionError:
        have, done = state()
        raise AssertionError("%d requests: %d got an incident, %d resolved; %d lost"
                             % (len(rids), len(have), len(done), len(rids) - len(have)))


def creating_posts(env):
    """Incident key -> number of successful POST /incidents for it."""
    out = {}
    for r in env.pd.api_requests():
        if r["method"] == "POST" and r["path"] == "/incidents" and r["status"] == 201:
            k = json.loads(r["body"])["incident"]["incident_key"]
            out[k] = out.get(k, 0) + 1
    return out


def check_reviewed(env, rid, kind, plugin):
    """Exactly one incident, created once, with the right title and details, the review note and
    the resolution note in that order, resolved, and the plugin data recorded."""
    key = "teleport-access-request/" + rid
    incs = env.incident_for(rid)
    assert len(incs) == 1, (rid, incs)
    assert creating_posts(env).get(key) == 1, (rid, creating_posts(env).get(key))
    inc = incs[0]
    assert inc["status"] == "resolved"
    req = env.tp.get_request(rid)
    assert inc["title"] == "Access request from %s" % req["user"]
    reviews = req["reviews"]
    assert len(reviews) == 1 and reviews[0]["state"] == REVIEW_STATE[kind]
    reason = req["resolve_reason"]
    want = [expected_review_note(reviews[0]),
            "Access request has been %s\nReason: %s" % (kind, reason) if reason
            else "Access request has been %s\n" % kind]
    notes = eventually(lambda: (lambda n: n if len(n) >= 2 else None)(env.note_texts(inc["id"])),
                       what="two notes on %s" % inc["id"])
    assert notes == want, (rid, notes, want)
    data = env.wait_plugin_data(rid, lambda d: d.get("pd_resolved") == "true")
    assert data["incident_id"] == inc["id"] and data["resolution"] == kind, data
    assert data["reviews_count"] == "1" and data["resolve_reason"] == reason, data
    assert data["user"] == req["user"] and data["roles"] == "editor" and data["created"] == str(req["created"])
    assert not plugin.find("Failed to resolve the incident: plugin data is missing", request_id=rid)


def metric(p, name):
    text = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % p.status_port, timeout=5).read().decode()
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def memory_released(p, n):
    """The seen-pending memory is empty again: all n entries forgotten as handled."""
    eventually(lambda: metric(p, "teleport_pagerduty_seen_pending_requests") == 0
               and metric(p, 'teleport_pagerduty_seen_pending_forgotten_total{reason="handled"}') == n,
               what="the seen-pending memory released (%d handled)" % n)


def _mix(n):
    kinds = ["denied", "approved", "promoted"]
    return [kinds[i % 3] for i in range(n)]


def test_fast_reviews_50_parallel(env):
    """50 requests in parallel, each denied, approved or promoted in the same millisecond as its
    creation: 50 incidents, 50 review notes, 50 resolutions with the right tag."""
    p = env.plugin().start()
    done = burst(env, _mix(50))
    settle(env, [r for r, _ in done], True)
    assert len(env.pd.incidents()) == 50
    for rid, kind in done:
        check_reviewed(env, rid, kind, p)
    memory_released(p, 50)
    assert p.stop() == 0


def test_fast_reviews_with_slow_pagerduty(env):
    """The same while every PagerDuty write takes 0.2 s: the workers are busy, so the reviews
    land long before the controller gets to the requests."""
    p = env.plugin().start()
    env.pd.inject("slow", delay=0.2, count=1000, method="POST")
    done = burst(env, _mix(30))
    settle(env, [r for r, _ in done], True, timeout=120)
    assert len(env.pd.incidents()) == 30
    for rid, kind in done:
        check_reviewed(env, rid, kind, p)
    assert p.stop() == 0


def test_review_lands_while_create_is_in_flight(env):
    """The review arrives while the POST /incidents of the same request is held by PagerDuty:
    the incident is created once, then noted and resolved."""
    p = env.plugin().start()
    env.pd.inject("slow", delay=1.0, count=20, method="POST", path="/incidents")
    kinds = _mix(6)
    rids = [env.request(services=None, user="requester1@example.com") for _ in kinds]

    def in_flight(rid):
        key = "teleport-access-request/" + rid
        return [r for r in env.pd.api_requests()
                if r["method"] == "POST" and r["path"] == "/incidents" and key in r["body"]]
    for rid, kind in zip(rids, kinds):
        eventually(lambda: in_flight(rid), what="the create call of %s in flight" % rid)
        assert not env.incident_for(rid), "the create call was not held"
        if kind == "promoted":
            env.tp.promote(rid, REVIEWER, "promoted to the list")
        else:
            env.tp.review(rid, REVIEWER, REVIEW_STATE[kind], "okay" if kind == "approved" else "not okay")
    settle(env, rids, True, timeout=60)
    for rid, kind in zip(rids, kinds):
        check_reviewed(env, rid, kind, p)
    assert p.stop() == 0


@pytest.mark.parametrize("slow", [False, True], ids=["fast", "slow-pagerduty"])
def test_fast_delete_leaves_nothing_open(env, slow):
    """Created and deleted in the same millisecond: the plugin data can no longer be written,
    so the controller opens the incident from what it saw while the request was PENDING and
    resolves it at once as expired, with upstream's note. No incident stays open."""
    p = env.plugin().start()
    if slow:
        env.pd.inject("slow", delay=0.2, count=1000, method="POST")
    done = burst(env, ["deleted"] * 20)
    rids = [r for r, _ in done]
    settle(env, rids, True, timeout=120)
    for rid in rids:
        incs = env.incident_for(rid)
        assert len(incs) == 1 and creating_posts(env).get("teleport-access-request/" + rid) == 1, rid
        assert incs[0]["title"] == "Access request from requester1@example.com"
        assert env.note_texts(incs[0]["id"]) == ["Access request has been expired\n"]
        assert env.tp.plugin_data(rid) == {}
    assert [i for i in env.pd.incidents() if i["status"] != "resolved"] == []
    memory_released(p, 20)
    assert p.stop() == 0


def _plugin_reviews_keep_nanoseconds(env, rids):
    """The approval review we submit carries Created with nanoseconds, stored as sent."""
    sent = {}
    for c in env.tp.calls_for("SubmitAccessReview"):
        created = c["request"]["Review"]["Created"]     # RFC 3339 from the protobuf JSON mapping
        sent[c["request"]["RequestID"]] = created
    stored = []
    for rid in rids:
        (rv,) = [r for r in env.tp.reviews(rid) if r["author"] == PLUGIN_USER]
        stored.append(rv["created_ns"])
        assert rid in sent and "." in sent[rid], (rid, sent.get(rid))
    assert any(ns % 10**9 for ns in stored), "every approval review's Created is a whole second"


def check_auto_approved(env, rid, plugin):
    incs = env.incident_for(rid)
    assert len(incs) == 1, (rid, incs)
    assert creating_posts(env).get("teleport-access-request/" + rid) == 1
    inc = incs[0]
    req = env.tp.get_request(rid)
    assert req["state"] == "APPROVED"
    (rv,) = req["reviews"]
    assert rv["author"] == PLUGIN_USER
    reason = ("Access requested by user Test User (%s) who is on call in service(s) Service 1" % ONCALL_USER)
    assert rv["reason"] == reason and req["resolve_reason"] == reason
    notes = eventually(lambda: (lambda n: n if len(n) >= 2 else None)(env.note_texts(inc["id"])))
    assert notes == [expected_review_note(rv), "Access request has been approved\nReason: " + reason], notes
    data = env.wait_plugin_data(rid, lambda d: d.get("pd_resolved") == "true")
    assert data["resolution"] == "approved" and data["incident_id"] == inc["id"]


@pytest.mark.parametrize("slow", [False, True], ids=["fast", "slow-pagerduty"])
def test_auto_approval_at_once(env, slow):
    """Requests of an on-call user carrying both annotations, approved by the controller itself
    right after it opened the incident: one incident each, the approval note, the resolution.
    With PagerDuty slowed, the approval's PUT event queues up behind the slow writes."""
    uid = env.pd.add_user("Test User", ONCALL_USER)
    env.pd.add_oncall(uid, env.ep1)
    p = env.plugin().start()
    if slow:
        env.pd.inject("slow", delay=0.3, count=1000, method="POST")
    ann = {"pagerduty_notify_service": [NOTIFY], "pagerduty_services": ["Service 1", "Service 2"]}
    rids = [r for r, _ in burst(env, ["pending"] * 10, ann, user=ONCALL_USER)]
    settle(env, rids, True)
    for rid in rids:
        check_auto_approved(env, rid, p)
    _plugin_reviews_keep_nanoseconds(env, rids)
    assert p.stop() == 0


def test_auto_approval_before_the_incident_exists(env):
    """PagerDuty refuses the first create call: like upstream, the controller still tries the
    approval, so the request is APPROVED before its incident exists; the incident is then
    opened, noted and resolved."""
    uid = env.pd.add_user("Test User", ONCALL_USER)
    env.pd.add_oncall(uid, env.ep1)
    p = env.plugin().start()
    env.pd.inject("status", status=400, count=5, method="POST", path="/incidents",
                  body={"error": {"message": "Invalid Input Provided", "code": 2001}})
    ann = {"pagerduty_notify_service": [NOTIFY], "pagerduty_services": ["Service 1"]}
    rids = [env.tp.create_request(ONCALL_USER, ["editor"], ann, "because of") for _ in range(5)]
    for rid in rids:
        eventually(lambda: env.tp.get_request(rid)["state"] == "APPROVED", what="approval of " + rid)
    settle(env, rids, True)
    assert len([r for r in env.pd.api_requests() if r["method"] == "POST" and r["path"] == "/incidents"
                and r["status"] == 400]) == 5
    for rid in rids:
        check_auto_approved(env, rid, p)
    assert p.stop() == 0


def test_resolved_before_it_was_ever_seen_stays_untouched(env):
    """A request created and denied while the controller was down was never seen PENDING: no
    incident, as upstream. One created while it runs still gets its incident."""
    (old, _), = burst(env, ["denied"])
    p = env.plugin().start()
    (new, _), = burst(env, ["denied"])
    settle(env, [new], True)
    p.wait_log("Listed access requests")
    eventually(lambda: p.find("Failed to resolve the incident: plugin data is missing", request_id=old),
               what="the old request skipped")
    assert env.incident_for(old) == [] and env.tp.plugin_data(old) == {}
    assert p.stop() == 0


def test_left_pending_while_disconnected(env):
    """Requests seen PENDING whose plugin data could not be written yet (Teleport refuses the
    writes), then denied or deleted while the watch is down: the listing after the reconnection
    shows them resolved or gone, and the controller still opens, notes and resolves each."""
    p = env.plugin().start()
    env.tp.fail("UpdatePluginData", "UNAVAILABLE", "connection problem", count=100000)
    rids = [env.request(services=None, user="requester1@example.com") for _ in range(4)]
    for rid in rids:
        p.wait_log("Access request event", request_id=rid, request_state="PENDING")
    eventually(lambda: len([c for c in env.tp.calls_for("UpdatePluginData") if c["code"] == "UNAVAILABLE"]) >= 4,
               what="the intent writes refused")
    env.tp.refuse(3.0)
    env.tp.drop_streams("reset")
    env.tp.review(rids[0], REVIEWER, "DENIED", "not okay")
    env.tp.review(rids[1], REVIEWER, "APPROVED", "okay")
    env.tp.delete_request(rids[2])
    env.tp.delete_request(rids[3])
    env.tp.fail("UpdatePluginData", "UNAVAILABLE", "connection problem", count=0)
    eventually(lambda: len(p.find("Listed access requests")) >= 2, 60, what="the listing after the reconnection")
    settle(env, rids, True, timeout=60)
    check_reviewed(env, rids[0], "denied", p)
    check_reviewed(env, rids[1], "approved", p)
    for rid in rids[2:]:
        (inc,) = env.incident_for(rid)
        assert env.note_texts(inc["id"]) == ["Access request has been expired\n"]
    assert [i for i in env.pd.incidents() if i["status"] != "resolved"] == []
    assert p.stop() == 0
