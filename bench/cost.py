#!/usr/bin/python3
"""cost.py - what one full lifecycle costs the plugin, thread by thread, at the default config.

Starts the fakes and the plugin (1 worker unless --workers), warms it with 8 lifecycles, then runs
--n lifecycles (create, review note, approve, resolution note, resolve) with --window of them in
flight, as the throughput phase of bench.py does, and prints per lifecycle:
  - CPU time, from the scheduler's per-thread run time (/proc/PID/task/*/schedstat, nanoseconds;
    the clock-tick figure of /proc/PID/stat beside it, which bench.py uses);
  - context switches, voluntary (a thread went to sleep: a wait for an answer or for work) and
    involuntary, in total and by thread name;
  - Teleport and PagerDuty calls.
--reps repeats it in a fresh environment. --binary-b runs a second binary alternately with the
first (A, B, A, B...), for before/after pairs on a noisy machine. --profile runs the plugin under
`perf record -e cpu-clock -g` and prints the top entries of its profile (self time by library and
symbol) after each run. Each figure is also a "BENCH {json}" line.

Keep --n at 200 or less at the default config: a lifecycle makes 4 PagerDuty calls and the
default budget is 900 per minute, so more lifecycles would wait in the limiter (that wait costs
almost nothing, but it makes the run a minute longer).

  TPD_SOURCE_DIR=$PWD python3 bench/cost.py --binary build-bench/teleport-pagerduty --reps 3
"""

import argparse
import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import bench as BB  # noqa: E402  (bench.py: Ctx, Lifecycles, diff, pd_total)


def threads(pid):
    """{thread name: (run ns, voluntary, involuntary)}, summed over threads of one name."""
    out = {}
    for task in glob.glob("/proc/%d/task/*" % pid):
        try:
            with open(task + "/schedstat") as f:
                ns = int(f.read().split()[0])
            with open(task + "/status") as f:
                st = dict(line.split(":", 1) for line in f.read().splitlines() if ":" in line)
        except (OSError, ValueError):
            continue   # the thread ended meanwhile
        name = st["Name"].strip()
        v, n = int(st["voluntary_ctxt_switches"]), int(st["nonvoluntary_ctxt_switches"])
        a = out.get(name, (0, 0, 0))
        out[name] = (a[0] + ns, a[1] + v, a[2] + n)
    return out


def delta(a, b):
    return {k: tuple(x - y for x, y in zip(b[k], a.get(k, (0, 0, 0)))) for k in b}


def perf_wrapper(binary, work):
    """A script that runs binary under perf record; returns (script path, data file glob)."""
    perf = shutil.which("perf")
    if not perf:
        sys.exit("cost.py: --profile needs perf (Debian package linux-perf)")
    path = os.path.join(work, "perf-wrap.sh")
    with open(path, "w") as f:
        f.write("#!/bin/sh\nexec %s record -q -e cpu-clock -F 2999 -g -o %s/perf-$$.data -- %s \"$@\"\n"
                % (perf, work, binary))
    os.chmod(path, 0o755)
    return path, os.path.join(work, "perf-*.data")


def top_entries(data, sort, n):
    r = subprocess.run(["perf", "report", "-i", data, "--no-children", "-g", "none", "--sort", sort,
                        "--stdio"], capture_output=True, text=True)
    rows = [" ".join(line.split()) for line in r.stdout.splitlines() if line.strip() and not line.startswith("#")]
    return rows[:n]


def plugin_pid(proc, profile):
    """The plugin's pid: under --profile, perf's child."""
    if not profile:
        return proc.pid
    path = "/proc/%d/task/%d/children" % (proc.pid, proc.pid)
    for _ in range(100):
        with open(path) as f:
            kids = f.read().split()
        if kids:
            return int(kids[0])
        time.sleep(0.05)
    sys.exit("cost.py: perf started no plugin")


def one_run(ctx, binary, args, label, rep, profile=False):
    env = ctx.env()
    ctx.args.binary = binary
    p = ctx.plugin(env, workers=args.workers).start()
    try:
        lc = BB.Lifecycles(env, args.window)
        try:
            lc.run_count(8)   # warm the connections and caches
        finally:
            lc.close()
        pid = plugin_pid(p.proc, profile)
        lc = BB.Lifecycles(env, args.window)
        pd0, tp0 = env.pd.snapshot_counts(), env.tp.call_counts()
        t0, cpu0 = threads(pid), p.cpu_seconds()
        try:
            secs = lc.run_count(args.n)
        finally:
            lc.close()
        d = delta(t0, threads(pid))
        tick_cpu = p.cpu_seconds() - cpu0   # under --profile: perf's own, not the plugin's
        tp = sum(BB.diff(tp0, env.tp.call_counts()).values()) / args.n
        pd = BB.pd_total(BB.diff(pd0, env.pd.snapshot_counts())) / args.n
    finally:
        p.stop()
        env.close()
    n = args.n
    fig = {"figure": "lifecycle_cost", "run": label, "rep": rep, "lifecycles": n, "window": args.window,
           "workers": args.workers, "seconds": round(secs, 2),
           "cpu_us": round(sum(x[0] for x in d.values()) / 1e3 / n),
           "cpu_us_ticks": round(1e6 * tick_cpu / n),
           "voluntary_switches": round(sum(x[1] for x in d.values()) / n, 1),
           "involuntary_switches": round(sum(x[2] for x in d.values()) / n, 1),
           "teleport_calls": round(tp, 2), "pagerduty_calls": round(pd, 2),
           "by_thread": {k: {"cpu_us": round(v[0] / 1e3 / n), "switches": round((v[1] + v[2]) / n, 1)}
                         for k, v in sorted(d.items()) if v[0] / 1e3 / n >= 1 or v[1] + v[2] >= n / 20}}
    print("%-6s rep %d: CPU %5d us/lifecycle (ticks: %d), switches %.1f voluntary + %.1f involuntary, "
          "Teleport %.2f, PagerDuty %.2f calls, %.1f s" % (
              label, rep, fig["cpu_us"], fig["cpu_us_ticks"], fig["voluntary_switches"],
              fig["involuntary_switches"], tp, pd, secs))
    for k, v in fig["by_thread"].items():
        print("         %-16s %5d us  %5.1f switches" % (k, v["cpu_us"], v["switches"]))
    print("BENCH " + json.dumps(fig), flush=True)
    return fig


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", default=os.path.join(HERE, "..", "build-bench", "teleport-pagerduty"))
    ap.add_argument("--binary-b", help="a second binary, run alternately with --binary")
    ap.add_argument("--build-dir", default=os.path.join(HERE, "..", "build-bench"))
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--window", type=int, default=8)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--keep-profile", metavar="DIR", help="with --profile: copy each perf.data to DIR")
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="tpd-cost-")
    ctx = BB.Ctx(args)
    runs = [("A", os.path.abspath(args.binary))]
    if args.binary_b:
        runs.append(("B", os.path.abspath(args.binary_b)))
    figs = {label: [] for label, _ in runs}
    for rep in range(args.reps):
        for label, binary in runs:
            if args.profile:
                for old in glob.glob(os.path.join(work, "perf-*.data")):
                    os.unlink(old)
                wrap, pattern = perf_wrapper(binary, work)
                figs[label].append(one_run(ctx, wrap, args, label, rep, profile=True))
                for data in glob.glob(pattern):
                    if args.keep_profile:
                        os.makedirs(args.keep_profile, exist_ok=True)
                        shutil.copy(data, os.path.join(args.keep_profile, "%s-%d.data" % (label, rep)))
                    print("  profile, whole run (start, warm-up, lifecycles), self time by library:")
                    for row in top_entries(data, "dso", 12):
                        print("     " + row)
                    print("  by symbol:")
                    for row in top_entries(data, "dso,sym", 15):
                        print("     " + row)
            else:
                figs[label].append(one_run(ctx, binary, args, label, rep))
    for label, fs in figs.items():
        cpu = sorted(f["cpu_us"] for f in fs)
        print("%s: CPU per lifecycle over %d runs: min %d, median %d, max %d us" % (
            label, len(cpu), cpu[0], cpu[len(cpu) // 2], cpu[-1]))
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
