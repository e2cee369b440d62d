"""The plugin across changes on the Teleport side: the auth server restarted mid-run (the
plugin reconnects and loses nothing), and its identity renewed by the real tbot (read again
without a restart, each reload in the log)."""

import json
import os
import re
import subprocess

from realtp import REVIEWERS, eventually


def retry(fn, what, timeout=60):
    """A driver call right after a restart may meet a connection still reconnecting."""
    def attempt():
        try:
            return fn() or True
        except AssertionError:
            return None
    return eventually(attempt, timeout, interval=0.5, what=what)


def test_auth_restart_loses_nothing(plugins):
    env = plugins
    p = env.plugin(name="restart").start()
    before = env.driver.create(reason="before restart")
    env.wait_incident(before)
    env.cluster.stop()
    eventually(lambda: p.find("Connection problem detected, attempting to reconnect")
               or p.find("Watcher stream closed, attempting to reconnect"), 60, what="the watch broken")
    env.cluster.start()
    # Created as soon as the server is back, maybe before the plugin's watch is open again.
    during = retry(lambda: env.driver.create(reason="right after restart"), "create after restart")
    retry(lambda: env.driver.review(before, REVIEWERS[0], "APPROVED", "approved after restart"),
          "review after restart")
    env.wait_incident(during, timeout=90)
    env.wait_resolved(before, timeout=90)
    inc = env.incident_for(before)[0]
    assert env.note_texts(inc["id"])[-1] == "Access request has been approved\nReason: approved after restart"
    eventually(lambda: len(p.find("Watcher connected")) >= 2, 30, what="second watch")
    after = env.driver.create(reason="after restart")
    env.wait_incident(after)
    for rid in (before, during, after):
        assert len(env.incident_for(rid)) == 1
    assert p.proc.poll() is None


def test_tbot_renewals_are_picked_up(plugins):
    env = plugins
    c = env.cluster
    out = json.loads(c.tctl("bots", "add", "pd-bot", "--roles=pagerduty-plugin", "--format=json").stdout)
    token = out["token_id"]
    pin = re.search(r"CA pin\s+(sha256:[0-9a-f]+)", c.tctl("status").stdout).group(1)
    dest = os.path.join(env.workdir, "tbot-out")
    data = os.path.join(env.workdir, "tbot-data")
    log = open(os.path.join(env.workdir, "tbot.log"), "ab")
    tbot = subprocess.Popen([c.tool("tbot"), "start", "--data-dir=" + data, "--destination-dir=" + dest,
                             "--token=" + token, "--join-method=token", "--ca-pin=" + pin,
                             "--auth-server=" + c.auth_addr, "--certificate-ttl=1m",
                             "--renewal-interval=10s"], stdout=log, stderr=subprocess.STDOUT)
    try:
        identity = os.path.join(dest, "identity")
        eventually(lambda: os.path.exists(identity) and os.path.getsize(identity) > 0, 60, interval=0.2,
                   what="tbot's first identity")
        p = env.plugin(identity=identity, name="tbot").start()
        serials = set()
        rids = []
        # Three renewals after the plugin started, each reloaded, and the plugin still working.
        for i in range(3):
            seen = len(p.find("Reloaded identity"))
            eventually(lambda: len(p.find("Reloaded identity")) > seen, 60, interval=0.2,
                       what="reload %d" % (i + 1))
            serials.add(p.find("Reloaded identity")[-1]["serial"])
            rid = env.driver.create(reason="after renewal %d" % (i + 1))
            env.wait_incident(rid)
            rids.append(rid)
        assert len(serials) == 3, serials
        assert p.proc.poll() is None
        for rid in rids:
            env.driver.review(rid, REVIEWERS[0], "DENIED", "done")
        for rid in rids:
            env.wait_resolved(rid)
        p.stop()
    finally:
        tbot.terminate()
        try:
            tbot.wait(20)
        except subprocess.TimeoutExpired:
            tbot.kill()
            tbot.wait()
        log.close()
