"""procs.py - waiting without sleeping blindly, stopping processes, and /proc readers."""

import os
import signal
import subprocess
import time

CLK_TCK = os.sysconf("SC_CLK_TCK")


def eventually(pred, timeout=20.0, interval=0.02, what="condition"):
    """Polls pred() until it returns a truthy value (returned); fails after timeout seconds."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = pred()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError("timed out after %.1fs waiting for %s (last: %r)" % (timeout, what, last))


def terminate(proc, timeout=30):
    """SIGTERM, then SIGKILL if proc has not exited within timeout seconds."""
    if proc and proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def proc_cpu_seconds(pid):
    """utime + stime of a process in seconds (fields 14 and 15 of /proc/PID/stat)."""
    with open("/proc/%d/stat" % pid) as f:
        s = f.read()
    fields = s[s.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def proc_mem(pid):
    """{"VmRSS", "VmHWM", "RssAnon", "Threads"} in KiB (Threads a count)."""
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "VmHWM", "RssAnon", "Threads"):
                out[k] = int(v.split()[0])
    return out


def percentiles(xs, ps=(50, 90, 99)):
    xs = sorted(xs)
    if not xs:
        return {("p%d" % p): None for p in ps} | {"max": None, "n": 0}
    out = {}
    for p in ps:
        i = min(len(xs) - 1, max(0, int(round(p / 100.0 * len(xs) + 0.5)) - 1))
        out["p%d" % p] = xs[i]
    out["max"] = xs[-1]
    out["n"] = len(xs)
    return out


def machine_notes():
    notes = {"cpus": os.cpu_count()}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    notes["cpu"] = line.split(":", 1)[1].strip()
                    break
        with open("/proc/loadavg") as f:
            notes["loadavg"] = f.read().split()[:3]
        with open("/proc/meminfo") as f:
            notes["mem_total_kib"] = int(f.readline().split()[1])
    except OSError:
        pass
    return notes
