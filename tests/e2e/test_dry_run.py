"""Dry-run mode end to end (`start --dry-run`, `[reconcile] dry_run = true`): the same scenario
run twice against fresh fakes, once live and once dry. The dry run makes no write call on either
fake, and its "Dry run: would ..." lines name exactly the writes the live run made (action and
request, with multiplicity). Then the parts a live run cannot show: an on-call requester is
"would approve"d but stays PENDING, /readyz?verbose says dry-run, the Lease is never touched,
the dry run counts what it left out in /metrics."""

import collections
import json
import os
import sys
import urllib.request

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))  # tpdtest
from tpdtest.harness import Env, eventually  # noqa: E402

PD_WRITES = {"POST", "PUT", "PATCH", "DELETE"}
TP_WRITES = {"UpdatePluginData", "SubmitAccessReview"}  # the plugin's only writes (the test's go in-process)
DRY_ACTIONS = {
    "Dry run: would create an incident": "create_incident",
    "Dry run: would add a note": "add_note",
    "Dry run: would resolve the incident": "resolve_incident",
    "Dry run: would update the plugin data": "update_plugin_data",
    "Dry run: would approve the request": "submit_review",
}


@pytest.fixture
def env():
    e = Env()
    yield e
    e.close()


def scenario(env, plugin, dry):
    """Three requests through their lives and one left pending; returns {request id: label}. Waits after each step for
    the plugin to finish it (live: on the fakes; dry: in its log), so both runs see the same
    sequence of states."""
    def done(rid, live_check, dry_msg):
        if dry:
            plugin.wait_log(dry_msg, timeout=30, request_id=rid)
        else:
            live_check(rid)

    a = env.request(services=None)
    done(a, env.wait_incident, "Dry run: would create an incident")
    env.tp.review(a, "reviewer@example.com", "APPROVED", reason="looks fine")
    done(a, env.wait_resolved, "Dry run: would resolve the incident")
    b = env.request(services=None)
    done(b, env.wait_incident, "Dry run: would create an incident")
    env.tp.set_state(b, "DENIED", reason="no")
    done(b, env.wait_resolved, "Dry run: would resolve the incident")
    c = env.request(services=None)
    done(c, env.wait_incident, "Dry run: would create an incident")
    env.tp.delete_request(c)
    done(c, env.wait_resolved, "Dry run: would resolve the incident")
    d = env.request(services=None)  # stays PENDING
    done(d, env.wait_incident, "Dry run: would create an incident")
    if not dry:
        # The last plugin data write (pd_resolved) follows the resolve call.
        for r in (a, b):
            env.wait_plugin_data(r, lambda d: d.get("pd_resolved") == "true")
        env.wait_plugin_data(d, lambda x: x.get("incident_id"))
    return {a: "A", b: "B", c: "C", d: "D"}


def live_writes(env, labels):
    """(action, label) of every write the fakes saw."""
    by_incident = {i["id"]: i.get("incident_key", "").rsplit("/", 1)[-1] for i in env.pd.incidents()}
    out = collections.Counter()
    for r in env.pd.requests:
        if r["method"] not in PD_WRITES:
            continue
        parts = r["path"].strip("/").split("/")
        if parts == ["incidents"] and r["method"] == "POST":
            rid = _key(r).rsplit("/", 1)[-1]
            out[("create_incident", labels.get(rid, rid))] += 1
        elif len(parts) == 3 and parts[0] == "incidents" and parts[2] == "notes":
            out[("add_note", labels.get(by_incident.get(parts[1]), parts[1]))] += 1
        elif len(parts) == 2 and parts[0] == "incidents" and r["method"] == "PUT":
            out[("resolve_incident", labels.get(by_incident.get(parts[1]), parts[1]))] += 1
        else:
            out[("pagerduty " + r["method"] + " " + r["path"], "?")] += 1
    for call in env.tp.calls:
        if call.get("code") != "OK":
            continue  # refused (a deleted request's data): the dry run gets the same answer
        if call["method"] == "UpdatePluginData":
            rid = call["request"].get("Resource")
            out[("update_plugin_data", labels.get(rid, rid))] += 1
        elif call["method"] == "SubmitAccessReview":
            out[("submit_review", "?")] += 1
    return out


def _key(req):
    try:
        return json.loads(req["body"])["incident"].get("incident_key", "")
    except (ValueError, KeyError, TypeError):
        return ""


def dry_actions(plugin, labels):
    out = collections.Counter()
    for line in plugin.lines():
        act = DRY_ACTIONS.get(line.get("msg"))
        if act:
            out[(act, labels.get(line.get("request_id"), line.get("request_id")))] += 1
    return out


def write_calls(env):
    pd = [r["method"] + " " + r["path"] for r in env.pd.requests if r["method"] in PD_WRITES]
    tp = [c["method"] for c in env.tp.calls if c["method"] in TP_WRITES]
    return pd, tp


def test_dry_run_logs_every_write_of_the_live_run_and_makes_none(tmp_path):
    live = Env()
    try:
        p = live.plugin().start()
        labels = scenario(live, p, dry=False)
        p.stop()
        want = live_writes(live, labels)
    finally:
        live.close()
    assert want[("create_incident", "A")] == 1 and want[("resolve_incident", "C")] == 1, want

    dry = Env()
    try:
        # Leader election configured: a dry run must leave the Lease alone (nothing answers at
        # that address and the token file does not exist: a run that tried would fail).
        p = dry.plugin(extra_toml='dry_run = true\n\n[leader_election]\nenabled = true\n'
                                  'api_server = "https://127.0.0.1:9"\ntoken_file = "/nonexistent/token"\n').start()
        assert p.find("Dry run: leader election is off, the Lease is left alone")
        labels = scenario(dry, p, dry=True)
        # A relist (here after the watch stream drops) forgets what the process remembers of
        # plugin data, so only the dry run's shadow keeps it from reporting the writes again.
        lists = len(p.find("Listed access requests"))
        dry.tp.drop_streams()
        eventually(lambda: len(p.find("Listed access requests")) > lists, 30, what="a relist")
        e = dry.request(services=None)  # one more pass through the workers after the relist
        p.wait_log("Dry run: would create an incident", timeout=30, request_id=e)
        got = dry_actions(p, labels)
        total = sum(got.values())
        assert got.pop(("create_incident", e)) == 1
        got.pop(("update_plugin_data", e), None)
        pd_w, tp_w = write_calls(dry)
        assert pd_w == [], "the dry run wrote to PagerDuty: %s" % pd_w
        assert tp_w == [], "the dry run wrote to Teleport: %s" % tp_w
        assert got == want, "dry run said %s\nlive run did %s" % (sorted(got.items()), sorted(want.items()))
        assert not p.find("Successfully created PagerDuty incident")
        m = p.metric("teleport_pagerduty_dry_run_actions_total")
        assert m == total, (m, total)
    finally:
        dry.close()


def test_dry_run_approval_and_readiness(env):
    uid = env.pd.add_user("Test User", "requester-oss@example.com")
    env.pd.add_oncall(uid, env.ep1)
    p = env.plugin().start(args=("--dry-run",))
    rid = env.request(notify=None)
    line = p.wait_log("Dry run: would approve the request", request_id=rid)[0]
    assert line["reason"].startswith("Access requested by user Test User (requester-oss@example.com)")
    assert env.tp.get_request(rid)["state"] == "PENDING"
    assert env.tp.reviews(rid) == []
    assert not [c for c in env.tp.calls if c["method"] == "SubmitAccessReview"]
    body = urllib.request.urlopen("http://127.0.0.1:%d/readyz?verbose" % p.status_port, timeout=5).read().decode()
    assert "[+]dry-run ok" in body, body
    started = p.find("Controller started")[0]
    assert started["dry_run"] == "true"
