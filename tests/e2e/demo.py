#!/usr/bin/python3
"""demo.py - a guided local demo: the real teleport-pagerduty binary against the bundled fake
Teleport (gRPC, mutual TLS) and fake PagerDuty (HTTPS) on loopback.

It creates two access requests, shows the incident that opens for the first, the automatic
approval of the second (its requester is on call), approves the first and shows the incident
being resolved, then keeps everything running with /metrics reachable until Ctrl-C.
Run it through scripts/run.sh, which builds the binary first.
"""

import os
import signal
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))  # tpdtest
from tpdtest.harness import Env, eventually  # noqa: E402


def use_colour(stream=sys.stdout, environ=os.environ):
    """Bold step markers only on a terminal, and never when NO_COLOR is set to a non-empty value
    (https://no-color.org); piped or redirected, every line is plain text."""
    return stream.isatty() and not environ.get("NO_COLOR")


COLOUR = use_colour()


def say(step, text):
    if COLOUR:
        print("\033[1m[demo %s]\033[0m %s" % (step, text), flush=True)
    else:
        print("[demo %s] %s" % (step, text), flush=True)


def main():
    env = Env()
    try:
        uid = env.pd.add_user("Alice Oncall", "alice@example.com")
        env.pd.add_oncall(uid, env.ep1)
        say(1, "fake Teleport on %s (mTLS), fake PagerDuty on %s" % (env.tp.addr, env.pd.url))
        say(1, "PagerDuty services: 'Teleport Notifications', 'Service 1' (alice@example.com is on call)")
        plugin = env.plugin()
        plugin.start()
        base = "http://127.0.0.1:%d" % plugin.status_port
        say(2, "teleport-pagerduty is running (log: %s); probes and metrics at %s/readyz %s/metrics"
            % (plugin.log_path, base, base))

        rid1 = env.request(user="bob@example.com", services=None, reason="debug the payment service")
        say(3, "bob@example.com requested role 'editor' (request %s)" % rid1)
        inc = env.wait_incident(rid1)
        say(3, "-> PagerDuty incident %s on 'Teleport Notifications': %r" % (inc["id"], inc["title"]))

        rid2 = env.request(user="alice@example.com", notify=None, services=("Service 1",))
        say(4, "alice@example.com requested role 'editor' with pagerduty_services=['Service 1'] (request %s)" % rid2)
        eventually(lambda: env.tp.get_request(rid2)["state"] == "APPROVED", what="auto-approval")
        review = env.tp.reviews(rid2)[0]
        say(4, "-> approved automatically by %s: %r" % (review["author"], review["reason"]))

        env.tp.review(rid1, "carol@example.com", "APPROVED", "looks fine")
        say(5, "carol@example.com approved bob's request")
        env.wait_resolved(rid1)
        for note in env.note_texts(inc["id"]):
            say(5, "-> note on %s: %r" % (inc["id"], note))
        say(5, "-> incident %s is now resolved" % inc["id"])

        say(6, "done. Everything keeps running: try `curl %s/metrics`. Ctrl-C to stop." % base)
        if os.environ.get("TPD_DEMO_EXIT"):
            return 0
        stop = []
        signal.signal(signal.SIGINT, lambda *a: stop.append(1))
        signal.signal(signal.SIGTERM, lambda *a: stop.append(1))
        while not stop and plugin.proc.poll() is None:
            time.sleep(0.5)
        return 0
    finally:
        env.close()


if __name__ == "__main__":
    sys.exit(main())
