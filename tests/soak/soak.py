#!/usr/bin/python3
"""soak.py - chaos soak of the real teleport-pagerduty binary against the fake Teleport and the
fake PagerDuty (instrumented subclasses from tests/lib/tpdtest/instrumented.py, in this process).

    tests/soak/soak.py --seed 1 --duration 60 [--binary PATH] [--rate 4]

For --duration seconds, with a fixed seed (same seed = same sequence of operations and faults):
  load    requests (notify only; auto-approvable on-call requesters, some with an incident too;
          requesters not on call), human reviews, approvals, denials (by state and by reviews)
          and deletions. A notify request is only reviewed, resolved or deleted after its
          incident exists (people act on the page), so "exactly one incident" is strict.
  faults  SIGKILL of the controller at random moments (restarted after 0.2-2 s, like a
          Deployment would); fake Teleport: watch streams dropped (abort/eof/reset) and new
          connections refused for 1-3 s; fake PagerDuty: 429 bursts, 5xx, slow answers,
          truncated (malformed) bodies and dropped connections; the identity rotated
          Kubernetes-style (kubelet's ..data symlink swap) every 3-6 s between two certificates.
Then the faults stop, the controller is restarted if it is down, and after a quiet period:
  * every notify request has exactly one incident (matched by incident_key);
  * every resolved or deleted notify request's incident is resolved and carries exactly one
    resolution note with the right text (approved/denied + reason, or expired);
  * every pending notify request's incident is still open;
  * every eligible auto-approval happened exactly once; no ineligible request was approved;
  * the API key and private keys appear in no log.
Prints the counts (requests, operations, faults injected, duplicates, misses) and exits 1 on any
duplicate or miss (2 on a harness error).
"""

import argparse
import collections
import json
import os
import random
import shutil
import signal
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.environ.get("TPD_SOURCE_DIR", os.path.abspath(os.path.join(HERE, "..", "..")))
sys.path.insert(0, os.path.join(SRC, "tests", "lib"))
from tpdtest import fake_teleport  # noqa: E402
from tpdtest.harness import API_KEY, Plugin  # noqa: E402
from tpdtest.instrumented import NOTIFY_SERVICE, ONCALL_SERVICE, LoadEnv  # noqa: E402

KEY_PREFIX = "teleport-access-request/"


def log(msg):
    print("[soak %s] %s" % (time.strftime("%H:%M:%S"), msg), flush=True)


# --- Kubernetes-style secret volume ------------------------------------------------------------------

class SecretVolume:
    """<dir>/..<ts>/identity, <dir>/..data -> ..<ts>, <dir>/identity -> ..data/identity;
    rotate() does what kubelet's AtomicWriter does: new dir, ..data_tmp symlink, rename over
    ..data, remove the old dir."""

    def __init__(self, path, first):
        self.path = path
        self.n = 0
        self.current = None
        os.makedirs(path, exist_ok=True)
        self._swap(first)
        os.symlink(os.path.join("..data", "identity"), os.path.join(path, "identity"))

    def _swap(self, src):
        self.n += 1
        ts = "..%s.%06d" % (time.strftime("%Y_%m_%d_%H_%M_%S"), self.n)
        d = os.path.join(self.path, ts)
        os.mkdir(d)
        shutil.copy(src, os.path.join(d, "identity"))
        os.chmod(os.path.join(d, "identity"), 0o600)
        tmp = os.path.join(self.path, "..data_tmp")
        os.symlink(ts, tmp)
        os.rename(tmp, os.path.join(self.path, "..data"))
        if self.current:
            shutil.rmtree(os.path.join(self.path, self.current), ignore_errors=True)
        self.current = ts

    def rotate(self, src):
        self._swap(src)

    @property
    def identity(self):
        return os.path.join(self.path, "identity")


# --- the soak ----------------------------------------------------------------------------------------------

class Soak:
    def __init__(self, a):
        self.a = a
        self.rng = random.Random(a.seed)          # load
        self.frng = random.Random(a.seed * 7919 + 1)  # faults
        self.work = tempfile.mkdtemp(prefix="tpd-soak-")
        build = os.environ.get("TPD_BUILD_DIR") or os.path.join(SRC, "build")
        self.pki = os.path.join(build, "soak-pki")
        fake_teleport.ensure_pki(self.pki)
        self.vol = SecretVolume(os.path.join(self.work, "secret"), os.path.join(self.pki, "identity"))
        self.env = LoadEnv(os.path.join(self.work, "env"), self.pki, identity_path=self.vol.identity,
                         keep_requests=True)
        self.env.add_oncall_users(5)
        self.not_oncall = []
        for i in range(3):
            email = "offcall%d@example.com" % i
            self.env.pd.add_user("Off Call %d" % i, email)
            self.not_oncall.append(email)
        self.plugins = []
        self.plugin = None
        self.plugin_lock = threading.Lock()
        self.stop = threading.Event()
        self.reqs = {}          # rid -> {"kind", "final", "human_reviews"}
        self.ops = collections.Counter()
        self.faults = collections.Counter()
        self.unexpected_exits = 0
        self.errors = []

    # plugin management
    def start_plugin(self):
        with self.plugin_lock:
            n = len(self.plugins) + 1
            p = Plugin(self.env, name="plugin%03d" % n, binary_path=self.a.binary, keep_lines=False,
                       extra_toml="workers = 4\n", pd_extra='rate_limit_per_minute = 6000\nrequest_timeout = "3s"')
            p.start(wait_ready=False)
            self.plugins.append(p)
            self.plugin = p
            return p

    def kill_plugin(self):
        with self.plugin_lock:
            p = self.plugin
            if p and p.proc.poll() is None:
                p.proc.send_signal(signal.SIGKILL)
                p.proc.wait()
            if p:
                p.logf.close()
            self.plugin = None

    def monitor(self):
        """Restarts a controller that exited without being killed (as a Deployment would)."""
        while not self.stop.wait(0.5):
            with self.plugin_lock:
                p = self.plugin
            if p and p.proc.poll() is not None:
                self.unexpected_exits += 1
                log("controller %s exited by itself (%s); restarting; tail:\n%s"
                    % (p.name, p.proc.returncode, p.tail(800)))
                with self.plugin_lock:
                    if self.plugin is p:
                        p.logf.close()
                        self.plugin = None
                if not self.stop.is_set():
                    self.start_plugin()

    # load
    def incident_exists(self, rid):
        return bool(self.env.pd.incidents_for(KEY_PREFIX + rid))

    def create(self):
        r = self.rng.random()
        env = self.env
        if r < 0.55:
            kind = "notify"
            rid = env.tp.create_request("requester%d@example.com" % self.rng.randrange(4), ["editor"],
                                        annotations={"pagerduty_notify_service": [NOTIFY_SERVICE]},
                                        reason="soak", thresholds=[{"name": "two", "approve": 2, "deny": 2}])
        elif r < 0.75:
            kind = "approve"
            rid = env.approval_request(self.rng.choice(env.oncall_users))
        elif r < 0.85:
            kind = "approve+notify"
            rid = env.tp.create_request(self.rng.choice(env.oncall_users), ["editor"],
                                        annotations={"pagerduty_notify_service": [NOTIFY_SERVICE],
                                                     "pagerduty_services": [ONCALL_SERVICE]}, reason="soak")
        else:
            kind = "not-oncall"
            rid = env.approval_request(self.rng.choice(self.not_oncall))
        self.reqs[rid] = {"kind": kind, "final": "pending", "human_reviews": 0}
        self.ops["create_" + kind] += 1

    def act(self):
        tp = self.env.tp
        cands = [rid for rid, m in self.reqs.items() if m["kind"] == "notify" and m["final"] == "pending"]
        if not cands:
            return
        rid = self.rng.choice(cands)
        if not self.incident_exists(rid):
            return
        m = self.reqs[rid]
        op = self.rng.choice(["review", "review", "approve", "deny", "deny_by_reviews", "delete"])
        if op == "review" and m["human_reviews"] == 0:
            tp.review(rid, "reviewer-a@example.com", self.rng.choice(["APPROVED", "DENIED"]), "first look")
            m["human_reviews"] = 1
        elif op == "approve":
            tp.set_state(rid, "APPROVED", "approved in soak %d" % self.ops["approve"])
            m["final"] = "approved"
        elif op == "deny":
            tp.set_state(rid, "DENIED", "denied in soak %d" % self.ops["deny"])
            m["final"] = "denied"
        elif op == "deny_by_reviews" and m["human_reviews"] == 0:
            tp.review(rid, "reviewer-b@example.com", "DENIED", "no")
            tp.review(rid, "reviewer-c@example.com", "DENIED", "still no")
            m["human_reviews"] = 2
            m["final"] = "denied"
        elif op == "delete":
            tp.delete_request(rid)
            m["final"] = "deleted"
        else:
            return
        self.ops[op] += 1

    def load_loop(self):
        period = 1.0 / self.a.rate
        while not self.stop.is_set():
            try:
                if self.rng.random() < 0.5:
                    self.create()
                else:
                    self.act()
            except Exception as e:   # the fake refused (e.g. already resolved): record, go on
                self.ops["op_error"] += 1
                if len(self.errors) < 20:
                    self.errors.append(repr(e))
            self.stop.wait(period * (0.5 + self.rng.random()))

    # faults
    def fault_loop(self):
        tp, pd = self.env.tp, self.env.pd
        while not self.stop.wait(self.frng.uniform(1.0, 4.0)):
            f = self.frng.choice(["kill", "kill", "drop_streams", "refuse", "pd_429", "pd_5xx", "pd_slow",
                                  "pd_truncated", "pd_drop"])
            self.faults[f] += 1
            if f == "kill":
                self.kill_plugin()
                if self.stop.wait(self.frng.uniform(0.2, 2.0)):
                    break
                self.start_plugin()
            elif f == "drop_streams":
                mode = self.frng.choice(["abort", "eof", "reset"])
                self.faults["drop_streams_" + mode] += 1
                tp.drop_streams(mode)
            elif f == "refuse":
                secs = self.frng.uniform(1.0, 3.0)
                tp.refuse(secs)
                if self.frng.random() < 0.5:
                    tp.drop_streams("reset")
            elif f == "pd_429":
                pd.inject("status", status=429, count=self.frng.randint(5, 20), reset=self.frng.randint(1, 2))
            elif f == "pd_5xx":
                pd.inject("status", status=self.frng.choice([500, 502, 503]), count=self.frng.randint(3, 10))
            elif f == "pd_slow":
                pd.inject("slow", delay=self.frng.uniform(1.0, 4.0), count=self.frng.randint(2, 5))
            elif f == "pd_truncated":
                pd.inject("malformed", count=self.frng.randint(1, 3), process=self.frng.random() < 0.5)
            elif f == "pd_drop":
                pd.inject("drop", count=self.frng.randint(1, 3), process=self.frng.random() < 0.5)

    def rotate_loop(self):
        which = 2
        while not self.stop.wait(self.frng.uniform(3.0, 6.0)):
            self.vol.rotate(os.path.join(self.pki, "identity" if which == 1 else "identity2"))
            which = 3 - which
            self.faults["identity_rotation"] += 1

    # checks
    def check(self):
        tp, pd = self.env.tp, self.env.pd
        res = collections.Counter()
        details = []
        for rid, m in self.reqs.items():
            kind, final = m["kind"], m["final"]
            req = tp.get_request(rid)
            if kind in ("approve", "approve+notify"):
                n = tp.plugin_reviews[rid]
                res["approvals_expected"] += 1
                if n == 0:
                    res["miss_auto_approval"] += 1
                    details.append("no auto-approval for %s" % rid)
                elif n > 1:
                    res["dup_auto_approval"] += 1
                if req and req["state"] == "APPROVED":
                    final = "approved"
            elif tp.plugin_reviews[rid]:
                res["wrong_auto_approval"] += 1
                details.append("not-on-call request %s was approved by the plugin" % rid)
            if kind not in ("notify", "approve+notify"):
                continue
            incs = pd.incidents_for(KEY_PREFIX + rid)
            res["incidents_expected"] += 1
            if not incs:
                res["miss_incident"] += 1
                details.append("no incident for %s (%s, %s)" % (rid, kind, final))
                continue
            if len(incs) > 1:
                res["dup_incident"] += 1
                details.append("%d incidents for %s" % (len(incs), rid))
            inc = incs[0]
            notes = [n["content"] for n in pd.notes(inc["id"])]
            resolution = [n for n in notes if n.startswith("Access request has been")]
            if final == "pending":
                if inc["status"] == "resolved":
                    res["wrongly_resolved"] += 1
                    details.append("incident of pending %s resolved" % rid)
                continue
            if final == "deleted":
                want = "Access request has been expired\n"
            else:
                reason = (req or {}).get("resolve_reason", "")
                want = "Access request has been %s\n" % final + ("Reason: %s" % reason if reason else "")
            res["resolutions_expected"] += 1
            if inc["status"] != "resolved":
                res["miss_resolve"] += 1
                details.append("incident of %s %s not resolved" % (final, rid))
            if not resolution:
                res["miss_resolution_note"] += 1
                details.append("no resolution note for %s %s" % (final, rid))
            if inc["status"] != "resolved" or not resolution:
                details.extend(self.forensics(rid, inc["id"]))
            elif len(resolution) > 1:
                res["dup_resolution_note"] += 1
                details.append("%d resolution notes for %s: %r" % (len(resolution), rid, resolution))
                details.extend(self.forensics(rid, inc["id"]))
            elif resolution[0] != want:
                res["wrong_resolution_note"] += 1
                details.append("resolution note of %s is %r, want %r" % (rid, resolution[0], want))
            review_notes = [n for n in notes if "reviewed the request" in n]
            if len(review_notes) > m["human_reviews"] + (1 if kind == "approve+notify" else 0):
                res["dup_review_note"] += 1
                details.append("%d review notes for %s (%d reviews)" % (len(review_notes), rid, m["human_reviews"]))
        return res, details

    def forensics(self, rid, incident_id):
        """What the fake PagerDuty recorded for one incident and what the controllers logged for the
        request, in time order: enough to tell which path repeated a write."""
        out = []
        t0 = None
        for r in self.env.pd.api_requests():
            if incident_id not in r["path"] and rid not in r["body"]:
                continue
            t0 = t0 or r["t"]
            done = " (done +%.3f)" % (r["t_done"] - t0) if r.get("t_done") else ""
            out.append("  pd %8.3f %s %s -> %s%s %s" % (r["t"] - t0, r["method"], r["path"], r["status"], done,
                                                         r["body"][:80].replace("\n", "|")))
        for p in self.plugins:
            for line in p.tail(1 << 30).splitlines():
                if rid in line or incident_id in line:
                    out.append("  %s %s" % (p.name, line[:300]))
        return out

    @staticmethod
    def failures(res):
        return {k: v for k, v in res.items() if k.startswith(("miss_", "dup_", "wrong_")) and v}

    def secrets_in_logs(self):
        bad = []
        for p in self.plugins:
            text = p.tail(1 << 30)
            for needle in (API_KEY, "PRIVATE KEY-----", API_KEY[:12]):
                if needle in text:
                    bad.append("%s in %s" % (needle[:6] + "...", p.log_path))
        return bad

    def diagnose(self):
        """When the controller did not converge: is the fake reachable by a fresh client?"""
        import grpc
        F = fake_teleport
        rd = lambda n: open(os.path.join(self.pki, n), "rb").read()  # noqa: E731
        creds = grpc.ssl_channel_credentials(rd("ca.crt"), rd("client.key"), rd("client.crt"))
        ch = grpc.secure_channel(self.env.tp.addr, creds, options=[("grpc.ssl_target_name_override", "localhost")])
        try:
            F.ga.AuthServiceStub(ch).Ping(F.pa.PingRequest(), timeout=5)
            fresh = "a fresh Python gRPC client pings the fake Teleport fine"
        except grpc.RpcError as e:
            fresh = "a fresh Python gRPC client cannot ping the fake Teleport either: %s" % e.details()
        finally:
            ch.close()
        p = self.plugin
        lines = [l for l in p.tail(200000).splitlines() if '"level":"error"' in l or '"level":"warn"' in l] if p else []
        return fresh, lines[-8:], self.env.tp.watcher_count(), self.env.tp.front.accepted, self.env.tp.front.refused

    def run(self):
        a = self.a
        log("seed %d, duration %.0fs, binary %s, work %s" % (a.seed, a.duration, a.binary, self.work))
        self.start_plugin().wait_msg("Plugin is ready", 60)
        threads = [threading.Thread(target=f, daemon=True) for f in
                   (self.monitor, self.load_loop, self.fault_loop, self.rotate_loop)]
        for t in threads:
            t.start()
        time.sleep(a.duration)
        self.stop.set()
        for t in threads:
            t.join(30)
        self.env.pd.clear_faults()
        self.env.tp.refuse_until = 0
        self.env.tp.front.refuse_until = 0
        with self.plugin_lock:
            alive = self.plugin and self.plugin.proc.poll() is None
        if not alive:
            self.kill_plugin()
            self.start_plugin()
        log("faults stopped; quiet period (up to %.0fs)" % a.quiet)
        deadline = time.monotonic() + a.quiet
        t_quiet = time.monotonic()
        while True:
            res, details = self.check()
            if not self.failures(res) or time.monotonic() > deadline:
                break
            time.sleep(1.0)
        converged_in = time.monotonic() - t_quiet
        leaks = self.secrets_in_logs()
        fails = self.failures(res)
        kinds = collections.Counter(m["kind"] for m in self.reqs.values())
        summary = {
            "seed": a.seed, "duration_s": a.duration, "requests": len(self.reqs), "by_kind": dict(kinds),
            "operations": dict(self.ops), "faults": dict(self.faults), "faults_total": sum(
                v for k, v in self.faults.items() if not k.startswith("drop_streams_")),
            "controller_starts": len(self.plugins), "unexpected_exits": self.unexpected_exits,
            "checks": dict(res), "duplicates": sum(v for k, v in fails.items() if k.startswith("dup_")),
            "misses": sum(v for k, v in fails.items() if not k.startswith("dup_")),
            "secret_leaks": leaks, "converged_after_quiet_s": round(converged_in, 1),
            "pd_answers": {"%s %s" % k: n for k, n in sorted(self.env.pd.snapshot_counts().items()) if k[1] != 200
                           and k[1] != 201},
        }
        print("SOAK " + json.dumps(summary), flush=True)
        ok = not fails and not leaks
        if not ok:
            for d in details[:200]:
                log("  " + d)
            fresh, lines, watchers, accepted, refused = self.diagnose()
            log("diagnosis: %s; open watch streams %d; front accepted %d refused %d" % (fresh, watchers, accepted,
                                                                                      refused))
            for l in lines:
                log("  plugin: " + l[:400])
        log("%s: %d requests, %d faults, %d duplicates, %d misses, %d secret leaks, %d controller starts"
            % ("PASS" if ok else "FAIL", len(self.reqs), summary["faults_total"], summary["duplicates"],
               summary["misses"], len(leaks), len(self.plugins)))
        return 0 if ok else 1

    def close(self):
        self.stop.set()
        for p in self.plugins:
            if p.proc.poll() is None:
                try:
                    p.stop(20)
                except Exception:
                    p.kill()
        self.env.close()
        if not self.a.keep:
            shutil.rmtree(self.work, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--duration", type=float, default=60)
    ap.add_argument("--rate", type=float, default=6.0, help="load operations per second (about)")
    ap.add_argument("--quiet", type=float, default=180, help="max seconds to wait for convergence after the faults")
    ap.add_argument("--binary", default=os.environ.get("TPD_BIN") or os.path.join(
        os.environ.get("TPD_BUILD_DIR") or os.path.join(SRC, "build"), "teleport-pagerduty"))
    ap.add_argument("--keep", action="store_true", help="keep the work directory (logs)")
    a = ap.parse_args()
    s = Soak(a)
    try:
        return s.run()
    except Exception as e:
        log("harness error: %r" % e)
        import traceback
        traceback.print_exc()
        return 2
    finally:
        s.close()


if __name__ == "__main__":
    sys.exit(main())
