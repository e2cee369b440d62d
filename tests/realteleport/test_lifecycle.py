"""A request's whole life against a real auth server: the incident's exact title and details,
review notes, resolution notes for approval, denial and deletion, requests pending before the
plugin starts, plugin data read back through Teleport's own client in upstream's format, and
auto-approval accepted by the real server."""

import json
import time

import pytest

from conftest import rfc822
from realtp import PLUGIN_USER, REQUESTER, REQUESTER2, REVIEWERS, eventually

UPSTREAM_KEYS = {"incident_id", "service_id", "user", "roles", "created", "request_reason", "reviews_count",
                 "resolution", "resolve_reason"}


@pytest.fixture
def plugin(plugins):
    p = plugins.plugin().start()
    yield p


def create_body(env, rid):
    key = "teleport-access-request/" + rid
    for r in env.pd.api_requests():
        if r["method"] == "POST" and r["path"] == "/incidents":
            body = json.loads(r["body"]) if isinstance(r["body"], str) else r["body"]
            if body["incident"].get("incident_key") == key:
                return body["incident"]
    raise AssertionError("no POST /incidents for " + rid)


def test_incident_title_details_and_plugin_data(plugins, plugin):
    env = plugins
    rid = env.driver.create(reason="because of")
    req = env.driver.get(rid)
    inc = env.wait_incident(rid)
    assert inc["title"] == "Access request from " + REQUESTER
    assert inc["status"] == "triggered"
    assert inc["service_id"] == env.svc_notify
    sent = create_body(env, rid)
    assert sent["title"] == "Access request from " + REQUESTER
    assert sent["body"]["details"] == (
        "%s requested permissions for roles editor on Teleport at %s.\nReason: because of\n"
        "To approve or deny the request, proceed to https://%s/web/requests/%s\n"
        % (REQUESTER, rfc822(req["created"]), env.cluster.web_addr, rid))
    # Plugin data as upstream writes it, read back through Teleport's own client.
    data = env.wait_plugin_data(rid, lambda d: d.get("incident_id"))
    assert set(data) <= UPSTREAM_KEYS | {"pd_resolved"}, data
    assert data["incident_id"] == inc["id"]
    assert data["service_id"] == env.svc_notify
    assert data["user"] == REQUESTER
    assert data["roles"] == "editor"
    assert data["request_reason"] == "because of"
    assert data["created"].isdigit() and abs(int(data["created"]) - time.time()) < 600
    assert "reviews_count" not in data and "resolution" not in data
    assert len(env.incident_for(rid)) == 1
    env.driver.delete(rid)
    env.wait_resolved(rid)


@pytest.mark.parametrize("state,word", [("APPROVED", "approved"), ("DENIED", "denied")])
def test_review_then_resolution(plugins, plugin, state, word):
    env = plugins
    rid = env.driver.create(user=REQUESTER2, reason="two reviews")
    inc = env.wait_incident(rid)
    env.driver.review(rid, REVIEWERS[0], state, "first " + word)
    notes = env.wait_notes(inc["id"], 1)
    req = env.driver.get(rid)
    assert req["state"] == "PENDING"
    rv = req["reviews"][0]
    assert notes == ["%s reviewed the request at %s.\nResolution: %s.\nReason: first %s."
                     % (REVIEWERS[0], rfc822(rv["created"]), state, word)]
    assert env.wait_plugin_data(rid, lambda d: d.get("reviews_count") == "1")
    env.driver.review(rid, REVIEWERS[1], state, "second " + word)
    env.wait_resolved(rid)
    assert env.driver.get(rid)["state"] == state
    notes = env.wait_notes(inc["id"], 3)
    assert len(notes) == 3, notes
    assert notes[1].startswith("%s reviewed the request at " % REVIEWERS[1])
    assert notes[2] == "Access request has been %s\nReason: second %s" % (word, word)
    data = env.wait_plugin_data(rid, lambda d: d.get("pd_resolved") == "true")
    assert data["resolution"] == word and data["resolve_reason"] == "second " + word
    assert data["reviews_count"] == "2"
    assert set(data) <= UPSTREAM_KEYS | {"pd_resolved"}, data


def test_deletion_resolves_as_expired(plugins, plugin):
    env = plugins
    rid = env.driver.create(reason="to be deleted")
    inc = env.wait_incident(rid)
    env.wait_plugin_data(rid, lambda d: d.get("incident_id"))
    env.driver.delete(rid)
    env.wait_resolved(rid)
    assert env.wait_notes(inc["id"], 1) == ["Access request has been expired\n"]
    assert env.driver.get(rid) is None


def test_requests_pending_before_start(plugins):
    env = plugins
    rids = [env.driver.create(reason="before start %d" % i) for i in range(3)]
    p = env.plugin(name="late").start()
    for rid in rids:
        env.wait_incident(rid)
        assert len(env.incident_for(rid)) == 1
    for rid in rids:
        env.driver.review(rid, REVIEWERS[0], "DENIED", "late no")
    for rid in rids:
        env.wait_resolved(rid)
    p.stop()


def test_auto_approval_accepted_by_the_server(plugins, plugin):
    env = plugins
    uid = env.pd.add_user("Test User", REQUESTER)
    env.pd.add_oncall(uid, env.ep1)
    try:
        rid = env.driver.create(reason="on call")
        req = eventually(lambda: (lambda r: r if r["state"] == "APPROVED" else None)(env.driver.get(rid)),
                         30, interval=0.1, what="approval of " + rid)
        assert len(req["reviews"]) == 1
        rv = req["reviews"][0]
        assert rv["author"] == PLUGIN_USER and rv["state"] == "APPROVED"
        reason = ("Access requested by user Test User (%s) who is on call in service(s) Service 1" % REQUESTER)
        assert rv["reason"] == reason
        assert req["resolve_reason"] == reason
        plugin.wait_log("Successfully submitted a request approval", request_id=rid)
        # The notification side resolves the incident as approved with the same reason.
        env.wait_resolved(rid)
        inc = env.incident_for(rid)[0]
        assert env.note_texts(inc["id"])[-1] == "Access request has been approved\nReason: " + reason
    finally:
        env.pd.clear_oncalls()
