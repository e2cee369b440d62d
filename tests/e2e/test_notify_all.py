"""One incident per notify service ([pagerduty] notify_all_services = true), end to end: the
first service keeps upstream's incident key and plugin data, each further one (annotation order,
de-duplicated) gets teleport-access-request/<request id>/<service id>; review notes and the
resolution reach every incident; a restart adds none; off by default."""

import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))  # tpdtest
from tpdtest.harness import Env, eventually  # noqa: E402

NOTIFY = ["Teleport Notifications", "Service 1", "teleport notifications", "No Such Service", "Service 3"]


@pytest.fixture
def env():
    e = Env()
    yield e
    e.close()


def request(env, notify=NOTIFY):
    return env.tp.create_request("requester-oss@example.com", ["editor"],
                                 annotations={"pagerduty_notify_service": notify}, reason="because")


def incidents(env, rid):
    pre = "teleport-access-request/" + rid
    return {i["incident_key"]: i for i in env.pd.incidents()
            if i.get("incident_key") == pre or i.get("incident_key", "").startswith(pre + "/")}


def test_one_incident_per_service(env):
    p = env.plugin(pd_extra="notify_all_services = true").start()
    rid = request(env)
    key = "teleport-access-request/" + rid
    want = {key: env.svc_notify, key + "/" + env.svc1: env.svc1, key + "/" + env.svc3: env.svc3}
    got = eventually(lambda: (lambda i: i if len(i) == 3 else None)(incidents(env, rid)), 30,
                     what="three incidents")
    assert {k: v["service_id"] for k, v in got.items()} == want
    data = env.wait_plugin_data(rid, lambda d: d.get("extra_incidents"))
    # Upstream's keys describe the first incident; ours records the others in annotation order.
    assert data["incident_id"] == got[key]["id"] and data["service_id"] == env.svc_notify
    assert data["extra_incidents"] == "Service 1=%s,No Such Service=,Service 3=%s" % (
        got[key + "/" + env.svc1]["id"], got[key + "/" + env.svc3]["id"])
    assert p.find("Notify service not found in PagerDuty, no incident there", pd_service_name="No Such Service")
    env.tp.review(rid, "reviewer@example.com", "APPROVED", reason="fine")
    for k in want:
        eventually(lambda: incidents(env, rid)[k]["status"] == "resolved", 30, what=k + " resolved")
    for k, inc in incidents(env, rid).items():
        notes = env.note_texts(inc["id"])
        assert len(notes) == 2, (k, notes)  # the review, then the resolution, once each
        assert notes[1] == "Access request has been approved\nReason: fine"
    assert p.metric("teleport_pagerduty_incidents_by_service_total") == 3
    # A restart re-reads everything and adds nothing.
    p.stop()
    before = len(env.pd.incidents()), sum(len(env.note_texts(i["id"])) for i in env.pd.incidents())
    p2 = env.plugin(pd_extra="notify_all_services = true", name="plugin2").start()
    rid2 = request(env, ["Service 3"])  # a pass through the workers after the relist
    env.wait_incident(rid2)
    assert len(env.pd.incidents()) == before[0] + 1
    assert sum(len(env.note_texts(i["id"])) for i in env.pd.incidents()) == before[1]
    p2.stop()


def test_deleted_request_resolves_every_incident(env):
    # A deleted request's plugin data goes with it: the further incidents are found by their keys.
    env.plugin(pd_extra="notify_all_services = true").start()
    rid = request(env)
    env.wait_plugin_data(rid, lambda d: d.get("extra_incidents"))
    env.tp.delete_request(rid)
    for k in list(incidents(env, rid)):
        eventually(lambda: incidents(env, rid)[k]["status"] == "resolved", 30, what=k + " resolved")
    for inc in incidents(env, rid).values():
        assert env.note_texts(inc["id"]) == ["Access request has been expired\n"]


def test_deleted_at_once_still_opens_and_resolves_every_incident(env):
    # Deleted a moment after creation (seen PENDING, nothing recorded yet): like the first
    # incident, the further ones are opened and resolved as expired, for the audit trail.
    env.plugin(pd_extra="notify_all_services = true").start()
    rid = request(env)
    env.tp.delete_request(rid)
    got = eventually(lambda: (lambda i: i if len(i) == 3 and all(x["status"] == "resolved" for x in i.values())
                              else None)(incidents(env, rid)), 30, what="three resolved incidents")
    for inc in got.values():
        assert env.note_texts(inc["id"]) == ["Access request has been expired\n"]


def test_late_services_catch_up_with_the_notes(env):
    # The option turned on for a request that already has its first incident and a review note:
    # the others are opened and get that note too, once.
    p = env.plugin().start()
    rid = env.tp.create_request("requester-oss@example.com", ["editor"],
                                annotations={"pagerduty_notify_service": NOTIFY}, reason="because",
                                thresholds=[{"name": "two", "approve": 2, "deny": 2}])
    env.wait_incident(rid)
    env.tp.review(rid, "reviewer1@example.com", "APPROVED", "one")
    env.wait_plugin_data(rid, lambda d: d.get("reviews_count") == "1")
    p.stop()
    p2 = env.plugin(pd_extra="notify_all_services = true", name="plugin2").start()
    env.wait_plugin_data(rid, lambda d: d.get("extra_incidents"))
    got = incidents(env, rid)
    assert len(got) == 3 and all(i["status"] == "triggered" for i in got.values())
    for inc in got.values():
        notes = env.note_texts(inc["id"])
        assert len(notes) == 1 and "reviewer1@example.com" in notes[0], notes
    p2.stop()


def test_orphan_scan_leaves_live_further_incidents_alone(env):
    # The start-time orphan scan looks at open incidents on the services this cluster uses; a
    # further incident's key (.../<request id>/<service id>) names a live request.
    p = env.plugin(pd_extra="notify_all_services = true").start()
    rid = request(env)
    other = request(env, ["Service 1"])  # so that Service 1 is scanned
    env.wait_plugin_data(rid, lambda d: d.get("extra_incidents"))
    env.wait_incident(other)
    p.stop()
    p2 = env.plugin(pd_extra="notify_all_services = true", name="plugin2").start()
    p2.wait_log("Scanned PagerDuty for orphaned incidents", timeout=30)
    rid3 = request(env, ["Service 3"])  # one more pass through the workers after the scan
    env.wait_incident(rid3)
    got = incidents(env, rid)
    assert len(got) == 3 and all(i["status"] == "triggered" for i in got.values()), \
        {k: i["status"] for k, i in got.items()}
    p2.stop()


def test_off_by_default(env):
    env.plugin().start()
    rid = request(env)
    env.wait_incident(rid)
    data = env.wait_plugin_data(rid, lambda d: d.get("incident_id"))
    assert list(incidents(env, rid)) == ["teleport-access-request/" + rid]
    assert "extra_incidents" not in data
