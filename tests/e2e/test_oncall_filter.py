"""Auto-approval limited to escalation levels and schedules ([pagerduty]
auto_approve_escalation_levels / auto_approve_schedules), end to end against the fakes: who is
approved, who is not, the reason text, and a schedule that disappears while the plugin runs."""

import os
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))  # tpdtest
from tpdtest.harness import PLUGIN_USER, Env, eventually  # noqa: E402

REQUESTER = "requester-oss@example.com"
REASON = "Access requested by user Test User (%s) who is on call in service(s) " % REQUESTER


@pytest.fixture
def env():
    e = Env()
    e.uid = e.pd.add_user("Test User", REQUESTER)
    e.primary = e.pd.add_schedule("Primary")
    e.secondary = e.pd.add_schedule("Secondary")
    yield e
    e.close()


def approved(env, rid):
    eventually(lambda: env.tp.get_request(rid)["state"] == "APPROVED", what="approval of " + rid)
    reviews = env.tp.reviews(rid)
    assert len(reviews) == 1 and reviews[0]["author"] == PLUGIN_USER
    return reviews[0]["reason"]


def not_approved(env, plugin, rid):
    plugin.wait_log("Skipping the approval: user is not on call", request_id=rid)
    assert env.tp.get_request(rid)["state"] == "PENDING" and env.tp.reviews(rid) == []


def expect(env, plugin, rid, reason):
    """The request is approved with `reason`, or (reason None) left alone as not on call."""
    if reason is None:
        not_approved(env, plugin, rid)
    else:
        assert approved(env, rid) == reason


@pytest.mark.parametrize("level,ok", [(1, True), (2, False)])
def test_escalation_level(env, level, ok):
    env.pd.add_oncall(env.uid, env.ep1, level=level, schedule_id=env.primary)
    p = env.plugin(pd_extra="auto_approve_escalation_levels = [1]").start()
    expect(env, p, env.request(notify=None), REASON + "Service 1 (level 1)" if ok else None)


@pytest.mark.parametrize("schedule,ok", [("primary", True), ("secondary", False)])
def test_schedule(env, schedule, ok):
    env.pd.add_oncall(env.uid, env.ep2, level=1, schedule_id=getattr(env, schedule))
    # Matched by name, case-insensitively; both options: both must hold.
    p = env.plugin(pd_extra='auto_approve_schedules = ["PRIMARY"]\nauto_approve_escalation_levels = [1, 3]').start()
    expect(env, p, env.request(notify=None), REASON + "Service 2 (level 1, schedule Primary)" if ok else None)


def test_direct_escalation_does_not_match_a_schedule(env):
    env.pd.add_oncall(env.uid, env.ep1, level=1, schedule_id=None)  # the user is a direct target
    p = env.plugin(pd_extra='auto_approve_schedules = ["Primary"]').start()
    rid = env.request(notify=None)
    not_approved(env, p, rid)


def test_schedule_deleted_while_running(env):
    env.pd.add_oncall(env.uid, env.ep1, level=1, schedule_id=env.primary)
    # An unknown schedule is a warning at start, never fatal. cache_ttl 1 ms: every decision
    # looks the schedules and the on-call entries up afresh (answers are cached up to cache_ttl,
    # at most 10 s for on-call, so a deletion takes effect within that time).
    p = env.plugin(pd_extra='auto_approve_schedules = ["Primary", "Nights"]\ncache_ttl = "1ms"').start()
    assert p.find("Auto-approval schedule not found in PagerDuty: nobody is approved through it",
                  pd_schedule_name="Nights")
    rid = env.request(notify=None)
    assert approved(env, rid) == REASON + "Service 1 (schedule Primary)"
    env.pd.delete_schedule(env.primary)
    rid2 = env.request(notify=None)
    p.wait_log("Skipping the approval: none of the auto-approval schedules exists in PagerDuty", request_id=rid2)
    assert p.find("Auto-approval schedule not found in PagerDuty: nobody is approved through it",
                  pd_schedule_name="Primary", request_id=rid2)
    assert env.tp.get_request(rid2)["state"] == "PENDING" and env.tp.reviews(rid2) == []


def test_without_the_options_any_level_counts_and_the_text_is_upstreams(env):
    env.pd.add_oncall(env.uid, env.ep1, level=3, schedule_id=env.secondary)
    env.plugin().start()
    rid = env.request(notify=None)
    assert approved(env, rid) == REASON + "Service 1"


def test_check_names_the_unknown_schedule(env):
    p = env.plugin(pd_extra='auto_approve_schedules = ["primary", "Nights"]')
    p.write_config()
    r = subprocess.run([p.binary, "check", "-c", p.config], capture_output=True, text=True,
                       env=dict(os.environ, SSL_CERT_FILE=env.pd.ca_file), timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr  # a warning, not a failure
    assert "[ok] pagerduty: auto-approval schedule primary is %s" % env.primary in r.stdout
    assert ('[warn] pagerduty: auto-approval schedule "Nights" not found: nobody is approved through it'
            in r.stdout), r.stdout
