#!/usr/bin/python3
"""idle.py - what an idle plugin costs: CPU and wake-ups per thread.

Starts the fakes and the plugin (the release binary bench/run.sh builds, or TPD_BIN) with
`[log] severity = "info"` and otherwise default timers, lets it settle, then reads every
thread's CPU time and context switches (/proc/PID/task/*/stat and status) twice, SECONDS apart,
and prints one line per thread (by its name: tpd-* are ours, the rest are gRPC's) and a total:

    bench/idle.py [SECONDS]        (default 300, issue 16's five minutes)

Each figure is also a `BENCH {json}` line, like bench.py's."""

import glob
import json
import os
import sys
import time

SRC = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
os.environ.setdefault("TPD_SOURCE_DIR", SRC)
os.environ.setdefault("TPD_BIN", os.path.join(SRC, "build-bench", "teleport-pagerduty"))
sys.path.insert(0, os.path.join(SRC, "tests", "lib"))  # tpdtest

from tpdtest.harness import Env  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


def snapshot(pid):
    out = {}
    for t in glob.glob("/proc/%d/task/*" % pid):
        try:
            name = open(t + "/comm").read().strip()
            st = open(t + "/stat").read().rsplit(")", 1)[1].split()
            switches = 0
            for line in open(t + "/status"):
                if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                    switches += int(line.split()[1])
            out[t.rsplit("/", 1)[1]] = (name, int(st[11]) + int(st[12]), switches)
        except OSError:
            pass  # a thread that ended between listing and reading
    return out


def main():
    secs = float(sys.argv[1]) if len(sys.argv) > 1 else 300.0
    env = Env(severity="info")
    try:
        plugin = env.plugin()
        plugin.start()
        pid = plugin.proc.pid
        time.sleep(5)  # let start-up work (list, health check) finish: idle is what follows
        a, t0 = snapshot(pid), time.monotonic()
        time.sleep(secs)
        b, dt = snapshot(pid), time.monotonic() - t0
        total_cpu = total_sw = 0
        for tid, (name, cpu, sw) in sorted(b.items(), key=lambda kv: kv[1][0]):
            cpu0, sw0 = a.get(tid, (name, 0, 0))[1:]
            total_cpu += cpu - cpu0
            total_sw += sw - sw0
            print("%-16s cpu %6.3f %%  wake-ups %6.2f /s" % (name, 100.0 * (cpu - cpu0) / TICK / dt,
                                                             (sw - sw0) / dt))
        res = {"seconds": round(dt), "threads": len(b), "cpu_percent": round(100.0 * total_cpu / TICK / dt, 4),
               "wakeups_per_s": round(total_sw / dt, 2)}
        print("idle over %(seconds)ss: %(threads)d threads, %(cpu_percent)s %% of a core, "
              "%(wakeups_per_s)s wake-ups/s" % res)
        print("BENCH " + json.dumps(dict(res, phase="idle")))
        plugin.stop()
    finally:
        env.close()


if __name__ == "__main__":
    main()
