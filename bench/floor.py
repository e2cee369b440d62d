#!/usr/bin/python3
"""floor.py - the CPU floor of a lifecycle with this stack: what the client libraries alone cost.

Builds bench/floor_client.c (gRPC core and libcurl used directly, no plugin code), starts the fakes,
and measures the client's CPU per call, N calls one after another:
  - a unary gRPC call over mutual TLS (GetPluginData, and UpdatePluginData of 10 keys, the plugin's
    write; gRPC core with the plugin's channel settings);
  - an HTTPS POST over a kept-alive connection (a PagerDuty note; libcurl as the plugin uses it);
  - a bare loopback TCP exchange (300 bytes each way, no TLS, no library): the kernel's share.
  - the two alternating in a lifecycle's order ("mix"): each call then finds the other library's
    code and data in the caches, as it does in the plugin;
  - an event received on a WatchEvents stream (the requests are created one after another here).
Then it composes the floor of one lifecycle as the plugin makes it (bench/cost.py's lifecycle: 5
Teleport writes, 4 PagerDuty calls, 3 watch events) and prints it beside the gate of issue 16
(1,000 us). It is a lower bound: no plugin code, no thread hand-off, no log line. Each figure is also a "BENCH {json}" line.

  TPD_SOURCE_DIR=$PWD python3 bench/floor.py [--n 2000] [--reps 3]
"""

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import benchlib as B  # noqa: E402

TP_WRITES, PD_CALLS, WATCH_EVENTS, GATE_US = 5, 4, 3, 1000


def build(work):
    exe = os.path.join(work, "floor_client")
    flags = subprocess.run(["pkg-config", "--cflags", "--libs", "grpc", "libcurl"], check=True,
                           capture_output=True, text=True).stdout.split()
    subprocess.run(["cc", "-std=c11", "-O2", "-o", exe, os.path.join(HERE, "floor_client.c")] + flags, check=True)
    return exe


def echo_server():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(1)

    def serve():
        c, _ = s.accept()
        c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        while True:
            d = c.recv(65536)
            if not d:
                break
            c.sendall(d)
        c.close()
        s.close()
    threading.Thread(target=serve, daemon=True).start()
    return s.getsockname()[1]


def run(cmd):
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if r.returncode != 0:
        sys.exit("floor.py: %s failed: %s" % (cmd[1], r.stderr[-2000:]))
    out = json.loads(r.stdout.strip().splitlines()[-1])
    if out["failures"]:
        sys.exit("floor.py: %s: %d calls failed" % (cmd[1], out["failures"]))
    return out["cpu_us_per_call"]


def watch(exe, env, pki, n):
    """CPU per event on a watch stream; the requests are created here, one after another (pacing, not
    synchronisation: events that came in bursts would share the client's wake-ups and cost less)."""
    p = subprocess.Popen([exe, "watch", env.tp.addr, os.path.join(pki, "ca.crt"), os.path.join(pki, "client.crt"),
                          os.path.join(pki, "client.key"), "-", str(n)], stdout=subprocess.PIPE, text=True)
    try:
        if p.stdout.readline().strip() != "ready":
            sys.exit("floor.py: the watch did not start")
        for i in range(n):   # 2 ms apart, so that each event arrives alone, as in a lifecycle
            env.tp.create_request("floor%05d@example.com" % i, ["editor"])
            time.sleep(0.002)
        out = json.loads(p.stdout.readline())
    finally:
        p.kill()
        p.wait()
    if out["failures"]:
        sys.exit("floor.py: watch: %d events missing" % out["failures"])
    return out["cpu_us_per_call"]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build-dir", default=os.path.join(HERE, "..", "build-bench"))
    ap.add_argument("--n", type=int, default=1500, help="calls per run (at most 1,900: PagerDuty keeps 2,000 notes "
                    "per incident, and the fake as faithfully)")
    ap.add_argument("--reps", type=int, default=3)
    a = ap.parse_args()
    if not 0 < a.n <= 1900:
        sys.exit("floor.py: --n must be between 1 and 1900")
    work = tempfile.mkdtemp(prefix="tpd-floor-")
    pki = os.path.join(a.build_dir, "bench-pki")
    if not os.path.exists(os.path.join(pki, "client.crt")):
        sys.exit("floor.py: no %s; run bench/run.sh or bench/cost.py once first (it makes the PKI)" % pki)
    exe = build(work)
    env = B.Env(os.path.join(work, "env"), pki)
    env.pd.set_rate_limit(10 ** 9)
    try:
        rid = env.tp.create_request("probe@example.com", ["editor"])
        figs = {"grpc": [], "grpc-update": [], "curl": [], "mix": [], "watch": [], "tcp": []}
        for rep in range(a.reps):
            iid = env.pd.add_incident(env.svc_notify, "floor probe", incident_key="bench-floor-%d" % rep)
            figs["grpc"].append(run([exe, "grpc", env.tp.addr, os.path.join(pki, "ca.crt"),
                                     os.path.join(pki, "client.crt"), os.path.join(pki, "client.key"), rid, str(a.n)]))
            figs["grpc-update"].append(run([exe, "grpc", env.tp.addr, os.path.join(pki, "ca.crt"),
                                            os.path.join(pki, "client.crt"), os.path.join(pki, "client.key"), rid,
                                            str(a.n), "update"]))
            figs["curl"].append(run([exe, "curl", "%s/incidents/%s/notes" % (env.pd.url, iid), env.pd.ca_file,
                                     env.api_key_file, str(a.n)]))
            iid = env.pd.add_incident(env.svc_notify, "floor probe", incident_key="bench-floor-mix-%d" % rep)
            figs["mix"].append(run([exe, "mix", env.tp.addr, os.path.join(pki, "ca.crt"),
                                    os.path.join(pki, "client.crt"), os.path.join(pki, "client.key"), rid,
                                    str(a.n // 4), "%s/incidents/%s/notes" % (env.pd.url, iid), env.pd.ca_file,
                                    env.api_key_file]))
            figs["watch"].append(watch(exe, env, pki, a.n))
            figs["tcp"].append(run([exe, "tcp", str(echo_server()), str(a.n)]))
        med = {k: sorted(v)[len(v) // 2] for k, v in figs.items()}
        for k, v in figs.items():
            print("%-5s CPU per call: median %6.1f us  (runs: %s)" % (k, med[k], ", ".join("%.1f" % x for x in v)))
            print("BENCH " + json.dumps({"figure": "floor_per_call", "mode": k, "cpu_us": med[k], "runs": v,
                                         "calls_per_run": a.n}))
        alone = TP_WRITES * med["grpc-update"] + PD_CALLS * med["curl"]
        mixed = (TP_WRITES + PD_CALLS) * med["mix"]
        events = WATCH_EVENTS * med["watch"]
        print("lifecycle floor, the libraries alone, no plugin code (gate %d us):" % GATE_US)
        print("  each library in its own loop: %d UpdatePluginData + %d POSTs = %.0f us" % (TP_WRITES, PD_CALLS, alone))
        print("  in the lifecycle's order (the two alternating): %d x mix = %.0f us" % (TP_WRITES + PD_CALLS, mixed))
        print("  and the %d watch events: %d x watch = %.0f us; in all %.0f us" % (
            WATCH_EVENTS, WATCH_EVENTS, events, mixed + events))
        print("  of it the kernel's bare loopback exchanges (%d x tcp): %.0f us" % (
            TP_WRITES + PD_CALLS, (TP_WRITES + PD_CALLS) * med["tcp"]))
        print("BENCH " + json.dumps({"figure": "lifecycle_floor", "cpu_us_alone": round(alone),
                                     "cpu_us_in_order": round(mixed),
                                     "cpu_us_watch_events": round(events), "cpu_us": round(mixed + events),
                                     "gate_us": GATE_US,
                                     "teleport_writes": TP_WRITES, "pagerduty_calls": PD_CALLS}))
    finally:
        env.close()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
