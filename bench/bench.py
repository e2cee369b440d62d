#!/usr/bin/python3
"""bench.py - benchmarks of the real teleport-pagerduty binary against the fake Teleport and the
fake PagerDuty (in this process, instrumented by tests/lib/tpdtest/instrumented.py). Run through
bench/run.sh, which builds a release binary first. Prints a table at the end and one JSON line per figure
("BENCH {...}") as soon as it is measured.

Phases (--only a,b,... to run some; all by default):
  fakes       each fake's own capacity (separate client process) and round-trip times (the floor)
  latency     at the default config first: event -> incident for 150 requests one after another
              (each created once the previous one's incident exists) and for a burst of 150 created
              at once, with the limiter's waits (teleport_pagerduty_pagerduty_limiter_waits_total);
              then, with a raised limit, event -> incident and event -> auto-approval review,
              p50/p90/p99/max, at a low and at a steady high rate (N requests of each kind per rate)
  throughput  full lifecycles/s (create, review note, approve, resolution note, resolve) with 1 and
              4 workers at the default config, then 1, 4 and 16 workers with a raised limit;
              PagerDuty calls, Teleport calls and CPU us per lifecycle
  memory      RSS idle, then a long lifecycle run (--long-seconds, or --long-lifecycles N), RSS after it
  scale       N pending requests before start (1,000 and 10,000; --scale-max 100000 adds more):
              time to converge, calls and CPU per request, RSS with N tracked
  startup     10,000 pending requests before start, fake PagerDuty enforcing 6,000/min:
              time to converge / floor ((ceil(calls needed / limit) - 1) minutes), number of 429s
  upstream    upstream's Go plugin beside ours, against the same fakes, both at the default config
              (ours: rate_limit_per_minute 900; upstream has no client-side limiter): event -> incident
              and -> auto-approval p50/p99, CPU and calls per lifecycle, calls per auto-approval, RSS
              idle and with 10,000 pending, startup with 1,000 pending (upstream: "0 handled", it
              watches new events only). A table with a ratio column (ours / upstream). The binary
              comes from `scripts/teleport.sh --print-env` (builds it once, cached); without Go >=
              1.22 the upstream column says "skipped" and why.
"""

import argparse
import collections
import json
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import benchlib as B  # noqa: E402

FIGS = []          # (figure name, dict)
DEFAULT = ""       # the default config: rate_limit_per_minute unset (900)
RAISED = "rate_limit_per_minute = 100000"   # so that the client-side limit does not cap a run
CFG_DEFAULT = "default (rate_limit_per_minute = 900)"
CFG_RAISED = "RAISED: rate_limit_per_minute = 100000"
WAITS = "teleport_pagerduty_pagerduty_limiter_waits_total"
WAIT_S = "teleport_pagerduty_pagerduty_limiter_wait_seconds_total"
SATURATION = 0.8   # a fake answering more than this share of its measured capacity saturates
CAP = {}           # measured capacities
CMD = "bench/run.sh --only %s"


def emit(name, phase, **vals):
    vals = {k: (round(v, 3) if isinstance(v, float) else v) for k, v in vals.items()}
    d = dict(figure=name, cmd=CMD % phase, **vals)
    FIGS.append((name, d))
    print("BENCH " + json.dumps(d), flush=True)


def log(msg):
    print("[%s] %s" % (time.strftime("%H:%M:%S"), msg), flush=True)


def pd_total(c, pred=lambda route, st: True):
    return sum(n for (route, st), n in c.items() if pred(route, st))


def diff(a, b):
    out = collections.Counter(b)
    out.subtract(a)
    return +out


def validity(pd_calls, tp_calls, seconds, fakes_cpu_s=None):
    """'ok' or 'INVALID: ...' when a fake was pushed near its own measured capacity, or when the
    fakes' process (one interpreter lock) was busy more than 90% of the time."""
    if seconds <= 0 or not CAP:
        return "unchecked"
    pr, tr = pd_calls / seconds, tp_calls / seconds
    bad = []
    if fakes_cpu_s is not None and fakes_cpu_s / seconds > 0.9:
        bad.append("fakes' process at %.0f%% CPU" % (100 * fakes_cpu_s / seconds))
    if pr > SATURATION * CAP["pd_rps"]:
        bad.append("fake PagerDuty at %.0f%% of its capacity" % (100 * pr / CAP["pd_rps"]))
    if tr > SATURATION * CAP["tp_rps"]:
        bad.append("fake Teleport at %.0f%% of its capacity" % (100 * tr / CAP["tp_rps"]))
    cpu = "" if fakes_cpu_s is None else ", fakes' process %.0f%% CPU" % (100 * fakes_cpu_s / seconds)
    return "INVALID: " + "; ".join(bad) if bad else "ok (fakes at %.0f%%/%.0f%% of capacity%s)" % (
        100 * pr / CAP["pd_rps"], 100 * tr / CAP["tp_rps"], cpu)


class Ctx:
    def __init__(self, args):
        self.args = args
        self.work = tempfile.mkdtemp(prefix="tpd-bench-")
        self.pki = os.path.join(args.build_dir, "bench-pki")
        self.n_plugins = 0

    def env(self):
        e = B.Env(os.path.join(self.work, "env%d" % self.n_plugins), self.pki)
        e.pd.set_rate_limit(10 ** 9)   # enforced but never reached: headers do not throttle the plugin
        e.add_oncall_users(20)
        return e

    def plugin(self, env, workers=4, pd_extra=DEFAULT, extra=""):
        self.n_plugins += 1
        return B.Plugin(env, name="plugin%d" % self.n_plugins, binary_path=self.args.binary, keep_lines=False,
                        extra_toml="workers = %d\n%s" % (workers, extra), pd_extra=pd_extra)


# --- fakes: capacity and floor ------------------------------------------------------------------------

def phase_fakes(ctx):
    env = ctx.env()
    try:
        iid = env.pd.add_incident(env.svc_notify, "capacity probe", incident_key="bench-capacity")
        rid = env.tp.create_request("probe@example.com", ["editor"])
        cpu0 = B.proc_cpu_seconds(os.getpid())
        r = subprocess.run([sys.executable, os.path.join(HERE, "fakecap.py"), "--pd-url", env.pd.url,
                            "--ca", env.pd.ca_file, "--api-key-file", env.api_key_file, "--incident", iid,
                            "--tp-addr", env.tp.addr, "--pki", ctx.pki, "--rid", rid,
                            "--seconds", str(ctx.args.cap_seconds)], capture_output=True, text=True, timeout=120)
        if r.returncode != 0:
            raise RuntimeError("fakecap failed: " + r.stderr[-2000:])
        cap = json.loads(r.stdout.strip().splitlines()[-1])
        CAP.update(cap)
        emit("fake_capacity", "fakes", pd_rps=cap["pd_rps"], tp_rps=cap["tp_rps"],
             client_threads=cap["threads"], fakes_process_cpu_s=B.proc_cpu_seconds(os.getpid()) - cpu0,
             note="lower bounds: the client process shares the 2 cores")
        floor = measure_floor(ctx, env, iid)
        CAP["floor"] = floor
    finally:
        env.close()


def measure_floor(ctx, env, iid):
    import grpc
    from tpdtest import fake_teleport as F
    import http.client
    import ssl
    rd = lambda n: open(os.path.join(ctx.pki, n), "rb").read()  # noqa: E731
    creds = grpc.ssl_channel_credentials(rd("ca.crt"), rd("client.key"), rd("client.crt"))
    ch = grpc.secure_channel(env.tp.addr, creds, options=[("grpc.ssl_target_name_override", "localhost")])
    stub = F.ga.AuthServiceStub(ch)
    rid = env.tp.create_request("probe@example.com", ["editor"])
    unary = []
    for _ in range(300):
        t = time.perf_counter()
        stub.GetPluginData(F.pt.PluginDataFilter(Kind="access_request", Resource=rid, Plugin="pagerduty"))
        unary.append(time.perf_counter() - t)
    # Watch delivery: create requests, time until the watch stream hands them over.
    got = {}
    ready = threading.Event()
    w = F.pa.Watch()
    w.Kinds.add(Kind="access_request")
    stream = stub.WatchEvents(w)

    def reader():
        try:
            for ev in stream:
                if ev.Type == F.pa.INIT:
                    ready.set()
                elif ev.Type == F.pa.PUT:
                    got[ev.AccessRequest.Metadata.Name] = time.monotonic()
        except grpc.RpcError:
            pass   # cancelled at the end
    th = threading.Thread(target=reader, daemon=True)
    th.start()
    ready.wait(10)
    rids = []
    for _ in range(300):
        rids.append(env.tp.create_request("probe@example.com", ["editor"]))
        time.sleep(0.005)
    B.eventually(lambda: all(r in got for r in rids), 20, what="watch deliveries")
    stream.cancel()
    watch = [got[r] - env.tp.t_created[r] for r in rids]
    ch.close()
    ctxs = ssl.create_default_context(cafile=env.pd.ca_file)
    c = http.client.HTTPSConnection("127.0.0.1", env.pd.port, context=ctxs)
    hdr = {"Authorization": "Token token=" + B.API_KEY, "Accept": "application/vnd.pagerduty+json;version=2",
           "Content-Type": "application/json", "From": B.BOT_EMAIL}
    pdr = []
    for _ in range(300):
        t = time.perf_counter()
        c.request("POST", "/incidents/%s/notes" % iid, body='{"note":{"content":"floor"}}', headers=hdr)
        resp = c.getresponse()
        resp.read()
        pdr.append(time.perf_counter() - t)
    c.close()
    pw, pu, pp = (B.percentiles([x * 1000 for x in v]) for v in (watch, unary, pdr))
    floor = pw["p50"] + 2 * pu["p50"] + pp["p50"]
    emit("fake_rtt_ms", "fakes", watch_delivery_p50=pw["p50"], watch_delivery_p99=pw["p99"],
         grpc_unary_p50=pu["p50"], grpc_unary_p99=pu["p99"], pd_https_p50=pp["p50"], pd_https_p99=pp["p99"],
         floor_p50=floor, floor_formula="watch delivery + 2 unary gRPC (read + CAS) + 1 PagerDuty call")
    return floor


# --- lifecycle driver ----------------------------------------------------------------------------------

class Lifecycles:
    """Keeps `window` full lifecycles in flight: create -> (incident) review -> (note) approve ->
    (resolved) done. Reacts to the fake PagerDuty's callbacks; actions run on one driver thread."""

    def __init__(self, env, window, delete_after=False):
        self.env, self.window, self.delete_after = env, window, delete_after
        self.q = queue.Queue()
        self.active = set()
        self.lock = threading.Lock()
        self.done_times = []
        self.started = 0
        self.running = False
        self.limit = 0     # > 0: start no more than this many lifecycles (run_count)
        self.th2 = [{"name": "two", "approve": 2, "deny": 2}]
        env.pd.on_incident = lambda key, iid: self._ev("review", key)
        env.pd.on_note = lambda key, n, content: n == 1 and self._ev("approve", key)
        env.pd.on_resolved = lambda key: self._ev("done", key)
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _ev(self, what, key):
        rid = key.rsplit("/", 1)[-1]
        with self.lock:
            if rid not in self.active:
                return
        self.q.put((what, rid))

    def _new(self):
        rid = self.env.notify_request(thresholds=self.th2)
        with self.lock:
            self.active.add(rid)
            self.started += 1
        # The incident may already exist (callback ignored before we knew the id).
        if self.env.pd.incidents_for("teleport-access-request/" + rid):
            self.q.put(("review", rid))

    def _loop(self):
        while True:
            what, rid = self.q.get()
            if what == "stop":
                return
            if what == "start":
                self._new()
            elif what == "review":
                self.env.tp.review(rid, "reviewer1@example.com", "APPROVED", "looks fine")
            elif what == "approve":
                self.env.tp.set_state(rid, "APPROVED", "approved by bench")
            elif what == "done":
                with self.lock:
                    self.active.discard(rid)
                    self.done_times.append(time.monotonic())
                if self.delete_after:   # what expiry does in a real cluster
                    self.env.tp.delete_request(rid)
                if self.running and (not self.limit or self.started < self.limit):
                    self._new()

    def run(self, seconds, warmup=2.0, drain_timeout=120):
        self.running = True
        t0 = time.monotonic()
        for _ in range(self.window):
            self.q.put(("start", None))
        time.sleep(seconds)
        self.running = False
        t1 = time.monotonic()
        B.eventually(lambda: not self.active, drain_timeout, 0.1, "lifecycles to drain")
        steady = [t for t in self.done_times if t0 + warmup <= t <= t1]
        rate = len(steady) / max(1e-9, (t1 - t0 - warmup))
        return rate, len(self.done_times)

    def run_count(self, n, timeout=300):
        """Exactly n lifecycles, `window` in flight; returns seconds until the last one is done."""
        self.limit, self.running = n, True
        t0 = time.monotonic()
        for _ in range(min(self.window, n)):
            self.q.put(("start", None))
        B.eventually(lambda: len(self.done_times) >= n and not self.active, timeout, 0.05, "%d lifecycles" % n)
        self.running = False
        return time.monotonic() - t0

    def close(self):
        self.q.put(("stop", None))
        self.env.pd.on_incident = self.env.pd.on_note = self.env.pd.on_resolved = None


# --- latency -------------------------------------------------------------------------------------------------

def run_rate(ctx, env, plugin, rate, n):
    """n notify requests and n auto-approval requests, interleaved, at `rate` requests/s in total."""
    rids_inc, rids_apr = [], []
    pd0, tp0 = env.pd.snapshot_counts(), env.tp.call_counts()
    cpu0, t0 = plugin.cpu_seconds(), time.monotonic()
    fcpu0 = B.proc_cpu_seconds(os.getpid())
    users = env.oncall_users
    for i in range(2 * n):
        due = t0 + i / rate
        d = due - time.monotonic()
        if d > 0:
            time.sleep(d)
        if i % 2 == 0:
            rids_inc.append(env.notify_request())
        else:
            rids_apr.append(env.approval_request(users[(i // 2) % len(users)]))
    gen_s = time.monotonic() - t0
    B.eventually(lambda: all(("teleport-access-request/" + r) in env.pd.t_incident for r in rids_inc)
                 and all(r in env.tp.t_review for r in rids_apr), 300, 0.1, "all incidents and approvals")
    t1 = time.monotonic()
    pdc, tpc = diff(pd0, env.pd.snapshot_counts()), diff(tp0, env.tp.call_counts())
    lat_i = [(env.pd.t_incident["teleport-access-request/" + r] - env.tp.t_created[r]) * 1000 for r in rids_inc]
    lat_a = [(env.tp.t_review[r] - env.tp.t_created[r]) * 1000 for r in rids_apr]
    lookups = pd_total(pdc, lambda route, st: route.startswith("GET ") and "/incidents" not in route)
    return {"inc": B.percentiles(lat_i), "apr": B.percentiles(lat_a), "achieved_rate": 2 * n / gen_s,
            "pd_calls": pd_total(pdc), "pd_lookups": lookups, "tp_calls": sum(tpc.values()),
            "seconds": t1 - t0, "cpu_s": plugin.cpu_seconds() - cpu0, "pdc": pdc,
            "dup_reviews": sum(1 for r in rids_apr if env.tp.plugin_reviews[r] != 1),
            "fakes_cpu_s": B.proc_cpu_seconds(os.getpid()) - fcpu0}


def limiter_waits(plugin):
    """(waits, seconds) from the plugin's metrics; None when the binary has no such metric."""
    return plugin.metric(WAITS), plugin.metric(WAIT_S)


def run_default_incidents(ctx, env, plugin, n, burst):
    """n notify requests at the default config: one after another (each once the previous one's
    incident exists) or all at once. Event -> incident latencies and the limiter's waits."""
    done = {}
    ev = threading.Event()

    def on_incident(key, iid):
        done[key] = True
        ev.set()
    env.pd.on_incident = on_incident
    w0, s0 = limiter_waits(plugin)
    pd0 = env.pd.snapshot_counts()
    cpu0, t0 = plugin.cpu_seconds(), time.monotonic()
    rids = []
    try:
        for _ in range(n):
            rid = env.notify_request()
            rids.append(rid)
            if not burst:
                key = "teleport-access-request/" + rid
                deadline = time.monotonic() + 60
                while key not in env.pd.t_incident:
                    if time.monotonic() > deadline:
                        raise RuntimeError("no incident for %s within 60 s" % rid)
                    ev.wait(0.5)
                    ev.clear()
        B.eventually(lambda: all(("teleport-access-request/" + r) in env.pd.t_incident for r in rids), 300, 0.05,
                     "all incidents")
    finally:
        env.pd.on_incident = None
    t1 = time.monotonic()
    w1, s1 = limiter_waits(plugin)
    lat = [(env.pd.t_incident["teleport-access-request/" + r] - env.tp.t_created[r]) * 1000 for r in rids]
    pdc = diff(pd0, env.pd.snapshot_counts())
    return {"q": B.percentiles(lat), "seconds": t1 - t0, "cpu_s": plugin.cpu_seconds() - cpu0,
            "waits": None if w1 is None else w1 - (w0 or 0), "wait_s": None if s1 is None else s1 - (s0 or 0),
            "pd_calls": pd_total(pdc), "http_429": pd_total(pdc, lambda route, st: st == 429)}


def phase_latency(ctx):
    floor = CAP.get("floor")
    for label, burst in (("sequential", False), ("burst", True)):
        env = ctx.env()
        p = ctx.plugin(env, pd_extra=DEFAULT).start()
        try:
            n = ctx.args.default_n
            log("latency at the default config: %d requests %s" % (n, "at once" if burst else "one after another"))
            r = run_default_incidents(ctx, env, p, n, burst)
            q = r["q"]
            emit("latency_incident_default_%s_ms" % label, "latency", config=CFG_DEFAULT, n=q["n"], p50=q["p50"],
                 p90=q["p90"], p99=q["p99"], max=q["max"], fake_floor_p50=floor,
                 gate_p99_ms=None if floor is None else floor + 5,
                 limiter_waits=r["waits"], limiter_wait_s=r["wait_s"], pd_calls=r["pd_calls"],
                 http_429=r["http_429"], cpu_us_per_request=1e6 * r["cpu_s"] / n,
                 note="limiter_waits None: the binary has no limiter metrics" if r["waits"] is None else "")
        finally:
            p.stop()
            env.close()
    env = ctx.env()
    p = ctx.plugin(env, pd_extra=RAISED).start()
    try:
        for label, rate in (("low", ctx.args.low_rate), ("high", ctx.args.high_rate)):
            n = ctx.args.latency_n
            log("latency at %s rate: %d incidents + %d approvals at %.0f req/s" % (label, n, n, rate))
            r = run_rate(ctx, env, p, rate, n)
            v = validity(r["pd_calls"], r["tp_calls"], r["seconds"], r["fakes_cpu_s"])
            for kind, key in (("incident", "inc"), ("auto_approval", "apr")):
                q = r[key]
                emit("latency_%s_%s_ms" % (kind, label), "latency", config=CFG_RAISED, rate_per_s=rate,
                     achieved_rate=r["achieved_rate"], n=q["n"], p50=q["p50"], p90=q["p90"], p99=q["p99"],
                     max=q["max"], fake_floor_p50=floor, validity=v)
            emit("cost_per_auto_approval_%s" % label, "latency", config=CFG_RAISED,
                 pd_lookups_per_decision=r["pd_lookups"] / n, dup_reviews=r["dup_reviews"],
                 pd_calls_by_route={"%s %s" % k: v for k, v in sorted(r["pdc"].items())})
    finally:
        p.stop()
        env.close()


# --- throughput, cost, memory ----------------------------------------------------------------------------

def lifecycle_run(ctx, env, plugin, seconds, window, delete_after=False):
    lc = Lifecycles(env, window, delete_after)
    pd0, tp0 = env.pd.snapshot_counts(), env.tp.call_counts()
    cpu0, t0 = plugin.cpu_seconds(), time.monotonic()
    fcpu0 = B.proc_cpu_seconds(os.getpid())
    conn0 = env.pd.connections
    try:
        rate, total = lc.run(seconds)
    finally:
        lc.close()
    t1 = time.monotonic()
    pdc, tpc = diff(pd0, env.pd.snapshot_counts()), diff(tp0, env.tp.call_counts())
    return {"rate": rate, "total": total, "pd_calls": pd_total(pdc), "tp_calls": sum(tpc.values()),
            "cpu_s": plugin.cpu_seconds() - cpu0, "seconds": t1 - t0, "pdc": pdc, "tpc": tpc,
            "pd_conns": env.pd.connections - conn0,
            "fakes_cpu_s": B.proc_cpu_seconds(os.getpid()) - fcpu0}


def phase_throughput(ctx):
    env = ctx.env()
    try:
        runs = [("default", DEFAULT, CFG_DEFAULT, 1), ("default", DEFAULT, CFG_DEFAULT, 4),
                ("raised", RAISED, CFG_RAISED, 1), ("raised", RAISED, CFG_RAISED, 4), ("raised", RAISED, CFG_RAISED, 16)]
        for tag, pd_extra, cfg, w in runs:
            log("throughput: %s, %d workers" % (cfg, w))
            p = ctx.plugin(env, workers=w, pd_extra=pd_extra).start()
            try:
                lifecycle_run(ctx, env, p, 2, 8)   # warm the caches and the connections
                w0, s0 = limiter_waits(p)
                r = lifecycle_run(ctx, env, p, ctx.args.tp_seconds, max(32, 4 * w))
                w1, s1 = limiter_waits(p)
            finally:
                p.stop()
            v = validity(r["pd_calls"], r["tp_calls"], r["seconds"], r["fakes_cpu_s"])
            emit("throughput_%s_workers_%d" % (tag, w), "throughput", config=cfg, lifecycles_per_s=r["rate"],
                 lifecycles=r["total"], seconds_incl_drain=r["seconds"],
                 lifecycles_per_s_incl_drain=r["total"] / r["seconds"], validity=v,
                 limiter_waits=None if w1 is None else w1 - (w0 or 0),
                 limiter_wait_s=None if s1 is None else s1 - (s0 or 0))
            emit("cost_per_lifecycle_%s_workers_%d" % (tag, w), "throughput", config=cfg,
                 pd_calls=r["pd_calls"] / r["total"],
                 tp_calls=r["tp_calls"] / r["total"], cpu_us=1e6 * r["cpu_s"] / r["total"],
                 pd_floor=4, pd_tcp_connections=r["pd_conns"], pd_calls_by_route={"%s %s" % k: n for k, n in sorted(r["pdc"].items())},
                 tp_calls_by_method=dict(sorted(r["tpc"].items())))
    finally:
        env.close()


def phase_memory(ctx):
    env = ctx.env()
    p = ctx.plugin(env, pd_extra=RAISED).start()
    try:
        time.sleep(2)
        m0 = p.mem()
        emit("memory_idle_kib", "memory", config=CFG_RAISED, **m0)
        samples = []
        total = 0
        goal = ctx.args.long_lifecycles
        t_end = time.monotonic() + ctx.args.long_seconds
        while (total < goal) if goal else (time.monotonic() < t_end):
            left = 30 if goal else min(30, max(5, t_end - time.monotonic()))
            r = lifecycle_run(ctx, env, p, left, 64, delete_after=True)
            total += r["total"]
            time.sleep(1)
            samples.append((total, p.mem()))
            log("long run: %d lifecycles, RssAnon %d KiB" % (total, samples[-1][1]["RssAnon"]))
        time.sleep(2)
        m1 = p.mem()
        emit("memory_after_lifecycles_kib", "memory", config=CFG_RAISED, lifecycles=total, **m1,
             rss_anon_growth_kib=m1["RssAnon"] - samples[0][1]["RssAnon"],
             samples=[(n, m["RssAnon"]) for n, m in samples],
             note="requests deleted after their lifecycle (as expiry does); growth measured from the "
                  "first sample (after %d lifecycles)" % samples[0][0])
    finally:
        p.stop()
        env.close()


# --- scale and startup convergence ------------------------------------------------------------------------

def converge(ctx, n, rate_limit=None, workers=4):
    env = ctx.env()
    try:
        t0 = time.monotonic()
        rids = [env.notify_request() for _ in range(n)]
        log("created %d pending requests in %.1fs" % (n, time.monotonic() - t0))
        pd_extra = "rate_limit_per_minute = %d" % (rate_limit or 100000)
        if rate_limit:
            env.pd.set_rate_limit(rate_limit)
        pd0, tp0 = env.pd.snapshot_counts(), env.tp.call_counts(clear=True)
        p = ctx.plugin(env, workers=workers, pd_extra=pd_extra).start(wait_ready=False)
        try:
            keys = ["teleport-access-request/" + r for r in rids]

            def done():
                return len(env.pd.t_incident) >= n and all(k in env.pd.t_incident for k in keys)
            B.eventually(done, ctx.args.converge_timeout, 0.2, "%d incidents" % n)
            # Converged = every incident exists and its id is stored in the plugin data.
            B.eventually(lambda: all(env.tp.plugin_data(r).get("incident_id") for r in rids[-50:]), 60, 0.2,
                         "plugin data")
            t_conv = max(env.pd.t_incident[k] for k in keys) - p.t_start
            cpu = p.cpu_seconds()
            time.sleep(2)
            mem = p.mem()
            pdc, tpc = diff(pd0, env.pd.snapshot_counts()), env.tp.call_counts()
            dups = sum(1 for k in keys if len(env.pd.by_key.get(k, [])) != 1)
        finally:
            p.stop()
        return {"seconds": t_conv, "pdc": pdc, "tpc": tpc, "cpu_s": cpu, "mem": mem, "dups": dups}
    finally:
        env.close()


def phase_scale(ctx):
    sizes = [1000, 10000] + ([100000] if ctx.args.scale_max >= 100000 else [])
    for n in sizes:
        log("scale: %d pending requests before start" % n)
        r = converge(ctx, n)
        pd_calls, tp_calls = pd_total(r["pdc"]), sum(r["tpc"].values())
        emit("scale_%d" % n, "scale", config=CFG_RAISED, requests=n, converge_s=r["seconds"], requests_per_s=n / r["seconds"],
             pd_calls_per_request=pd_calls / n, tp_calls_per_request=tp_calls / n,
             cpu_us_per_request=1e6 * r["cpu_s"] / n, duplicates=r["dups"],
             validity=validity(pd_calls, tp_calls, r["seconds"]))
        emit("memory_%d_pending_kib" % n, "scale", **r["mem"])


def phase_startup(ctx):
    n, limit = ctx.args.startup_n, ctx.args.startup_rate
    log("startup convergence: %d pending, fake PagerDuty enforcing %d/min" % (n, limit))
    r = converge(ctx, n, rate_limit=limit)
    ok_calls = pd_total(r["pdc"], lambda route, st: st != 429)
    n429 = pd_total(r["pdc"], lambda route, st: st == 429)
    # The budget is per rolling minute: the last of `calls` cannot go out before the window has
    # rolled ceil(calls / limit) - 1 times. (Spread evenly, calls / rate, it was 100.25 s here.)
    floor = (-(-ok_calls // limit) - 1) * 60.0
    even = ok_calls / (limit / 60.0)
    emit("startup_convergence", "startup", config="rate_limit_per_minute = %d" % limit, requests=n,
         rate_limit_per_min=limit, converge_s=r["seconds"], floor_s=floor,
         ratio=r["seconds"] / floor if floor else None, spread_evenly_s=even, calls_needed=ok_calls, http_429=n429,
         duplicates=r["dups"],
         note="plugin configured with rate_limit_per_minute = %d (the key's limit); floor = (ceil(calls / "
              "limit) - 1) minutes" % limit)


# --- upstream beside us ------------------------------------------------------------------------------------

def upstream_binary(ctx):
    """(path, None) or (None, reason): --upstream-binary, else scripts/teleport.sh --print-env
    (which builds upstream's plugin once and caches it; exit 77 when Go >= 1.22 is missing)."""
    if ctx.args.upstream_binary == "none":
        return None, "not asked for (--upstream-binary none)"
    if ctx.args.upstream_binary:
        return ctx.args.upstream_binary, None
    script = os.path.join(B.SRC, "scripts", "teleport.sh")
    r = subprocess.run([script, "--print-env", "15.3.1"], capture_output=True, text=True)
    if r.returncode == 77:
        return None, r.stderr.strip().splitlines()[-1] if r.stderr.strip() else "Go >= 1.22 is missing"
    if r.returncode != 0:
        return None, "scripts/teleport.sh failed (%d): %s" % (r.returncode, r.stderr.strip()[-500:])
    for line in r.stdout.splitlines():
        if line.startswith("export TPD_TELEPORT_BIN_15="):
            return os.path.join(line.split("=", 1)[1].strip('"'), "pagerduty-upstream"), None
    return None, "scripts/teleport.sh printed no binary folder"


def side_measure(ctx, make, startup_wait):
    """The figures of the side-by-side table for one plugin (`make(env, workers)` starts it), at the
    default config, each in a fresh environment (fresh fakes, fresh process)."""
    n, out = ctx.args.upstream_n, {}
    # 1. event -> incident, n requests one after another; 2. event -> auto-approval, n of each kind
    #    interleaved at --low-rate (well inside 900 calls/min for ours).
    env = ctx.env()
    p = make(env, 4)
    try:
        r = run_default_incidents(ctx, env, p, n, False)
        out["inc_p50"], out["inc_p99"] = r["q"]["p50"], r["q"]["p99"]
        # Calls per auto-approval: a separate run of approval requests only, so that no incident's
        # calls are counted in it; before the rate run, so that ours starts with cold caches.
        pd0, tp0 = env.pd.snapshot_counts(), env.tp.call_counts()
        rids = []
        for i in range(n):
            rids.append(env.approval_request(env.oncall_users[i % len(env.oncall_users)]))
            time.sleep(1.0 / ctx.args.low_rate)
        B.eventually(lambda: all(x in env.tp.t_review for x in rids), 120, 0.05, "auto-approvals")
        time.sleep(1)   # the APPROVED events that follow the reviews are handled too
        out["apr_pd_calls"] = pd_total(diff(pd0, env.pd.snapshot_counts())) / n
        out["apr_tp_calls"] = sum(diff(tp0, env.tp.call_counts()).values()) / n
        r = run_rate(ctx, env, p, ctx.args.low_rate, n)
        out["apr_p50"], out["apr_p99"] = r["apr"]["p50"], r["apr"]["p99"]
    finally:
        p.stop()
        env.close()
    # 3. n full lifecycles, one worker, 8 in flight: CPU, PagerDuty and Teleport calls per lifecycle.
    env = ctx.env()
    p = make(env, 1)
    try:
        lc = Lifecycles(env, 8)
        try:
            lc.run_count(8)   # warm the connections and caches
        finally:
            lc.close()
        lc = Lifecycles(env, 8)
        pd0, tp0 = env.pd.snapshot_counts(), env.tp.call_counts()
        cpu0 = p.cpu_seconds()
        try:
            out["lc_seconds"] = lc.run_count(n)
        finally:
            lc.close()
        time.sleep(0.5)
        out["lc_cpu_us"] = 1e6 * (p.cpu_seconds() - cpu0) / n
        out["lc_pd_calls"] = pd_total(diff(pd0, env.pd.snapshot_counts())) / n
        tpc = diff(tp0, env.tp.call_counts())
        out["lc_tp_calls"] = sum(tpc.values()) / n
        out["lc_tp_by_method"] = dict(sorted(tpc.items()))
    finally:
        p.stop()
        env.close()
    # 4. RSS idle (2 s after ready) and with 10,000 pending requests that existed before start.
    env = ctx.env()
    p = make(env, 4)
    try:
        time.sleep(2)
        out["rss_idle_kib"] = p.mem()["VmRSS"]
    finally:
        p.stop()
        env.close()
    for pending, key in ((ctx.args.upstream_pending, "rss_pending"), (ctx.args.upstream_startup_n, "startup")):
        env = ctx.env()
        try:
            rids = [env.notify_request() for _ in range(pending)]
            p = make(env, 4)
            try:
                keys = ["teleport-access-request/" + x for x in rids]
                if key == "rss_pending":
                    time.sleep(10)   # time to list and track them (ours); upstream does not list
                    out["rss_pending_kib"] = p.mem()["VmRSS"]
                    continue
                # startup: every pending request gets its incident (ours) or none does (upstream).
                try:
                    B.eventually(lambda: all(k in env.pd.t_incident for k in keys), startup_wait, 0.1, "incidents for the pending requests")
                    out["startup_s"] = max(env.pd.t_incident[k] for k in keys) - p.t_start
                except AssertionError:
                    out["startup_s"] = None
                out["startup_handled"] = sum(1 for k in keys if k in env.pd.t_incident)
            finally:
                p.stop()
        finally:
            env.close()
    return out


def ratio(a, b):
    return None if a is None or b in (None, 0) else a / b


def phase_upstream(ctx):
    ubin, why = upstream_binary(ctx)
    log("upstream beside us: ours %s, upstream %s" % (ctx.args.binary, ubin or "SKIPPED: " + why))
    n_up = [0]

    def ours(env, workers):
        return ctx.plugin(env, workers=workers, pd_extra=DEFAULT).start()

    def upstream(env, workers):   # upstream has no worker setting: one goroutine per request event
        n_up[0] += 1
        return B.Upstream(env, name="upstream%d" % n_up[0], binary_path=ubin, keep_lines=False).start()
    log("upstream phase: ours")
    a = side_measure(ctx, ours, ctx.args.upstream_wait)
    b = None
    if ubin:
        log("upstream phase: upstream")
        # Upstream watches for new events only; 20 s shows it leaves the pending requests alone.
        b = side_measure(ctx, upstream, 20)
    n, pend, st_n = ctx.args.upstream_n, ctx.args.upstream_pending, ctx.args.upstream_startup_n
    rows = [
        ("event -> incident p50 (ms)", "inc_p50", "%d requests one after another" % n),
        ("event -> incident p99 (ms)", "inc_p99", ""),
        ("event -> auto-approval p50 (ms)", "apr_p50", "%d approvals + %d incidents at %.0f req/s" % (n, n, ctx.args.low_rate)),
        ("event -> auto-approval p99 (ms)", "apr_p99", ""),
        ("CPU per lifecycle (us)", "lc_cpu_us", "%d lifecycles, 1 worker (ours), 8 in flight" % n),
        ("PagerDuty calls per lifecycle", "lc_pd_calls", ""),
        ("Teleport calls per lifecycle", "lc_tp_calls", ""),
        ("PagerDuty calls per auto-approval", "apr_pd_calls", "%d approval requests, 20 requesters" % n),
        ("Teleport calls per auto-approval", "apr_tp_calls", "incl. the APPROVED event that follows"),
        ("RSS idle (KiB)", "rss_idle_kib", "VmRSS 2 s after ready"),
        ("RSS with %d pending (KiB)" % pend, "rss_pending_kib", "pending before start, 10 s after"),
        ("startup with %d pending (s)" % st_n, "startup_s", "last incident - process start"),
    ]
    cfg = "default: ours rate_limit_per_minute = 900 (unset); upstream has no client-side limiter"
    for label, k, note in rows:
        va = a.get(k)
        vb = None if b is None else b.get(k)
        extra = {}
        if k == "lc_cpu_us":   # the wall time, to tell CPU spent waiting from CPU spent working
            extra = {"ours_seconds": a.get("lc_seconds"), "upstream_seconds": None if b is None else b.get("lc_seconds")}
        if k == "startup_s":
            extra = {"ours_handled": a.get("startup_handled"),
                     "upstream_handled": None if b is None else b.get("startup_handled")}
            if b is not None and not b.get("startup_handled"):
                vb = "0 handled"
        emit("upstream_side_by_side_" + k, "upstream", config=cfg, label=label, ours=va,
             upstream=vb if b is not None else "skipped: " + why,
             ratio_ours_over_upstream=ratio(va, vb) if isinstance(vb, (int, float)) else None,
             note=note, **extra)
    emit("upstream_teleport_calls_by_method", "upstream", ours=a["lc_tp_by_method"],
         upstream=None if b is None else b["lc_tp_by_method"], note="per %d lifecycles" % n)
    print("\nUpstream beside us (%s)" % cfg)
    print("%-36s %14s %14s %9s" % ("figure", "ours", "upstream", "ratio"))
    for label, k, note in rows:
        va = a.get(k)
        vb = None if b is None else b.get(k)
        if k == "startup_s" and b is not None and not b.get("startup_handled"):
            vb = "0 handled"
        r = ratio(va, vb) if isinstance(vb, (int, float)) else None
        fmt = lambda v: "-" if v is None else (("%.2f" % v) if isinstance(v, float) else str(v))  # noqa: E731
        print("%-36s %14s %14s %9s" % (label, fmt(va), fmt(vb) if b is not None else "skipped",
                                       "-" if r is None else "%.2f" % r))
    if b is None:
        print("upstream skipped: " + why)


# --- main ------------------------------------------------------------------------------------------------------

def table():
    print("\n%-34s %s" % ("figure", "values"))
    print("-" * 100)
    skip = {"figure", "cmd", "pd_calls_by_route", "tp_calls_by_method", "samples", "note", "floor_formula"}
    for name, d in FIGS:
        vals = ", ".join("%s=%s" % (k, v) for k, v in d.items() if k not in skip)
        print("%-34s %s" % (name, vals))
    print("\nmachine: %s" % json.dumps(B.machine_notes()))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", required=True)
    ap.add_argument("--build-dir", required=True)
    ap.add_argument("--only", default="fakes,latency,throughput,memory,scale,startup,upstream")
    ap.add_argument("--upstream-binary", default="",
                    help="upstream's plugin (default: the path scripts/teleport.sh --print-env gives; none: ours only)")
    ap.add_argument("--upstream-n", type=int, default=150,
                    help="requests / lifecycles per figure in the upstream phase")
    ap.add_argument("--upstream-pending", type=int, default=10000, help="pending requests for the RSS figure")
    ap.add_argument("--upstream-startup-n", type=int, default=1000, help="pending requests for the startup figure")
    ap.add_argument("--upstream-wait", type=float, default=90,
                    help="seconds to wait for the pending requests' incidents (ours; upstream: 20 s, it makes none)")
    ap.add_argument("--cap-seconds", type=float, default=3.0)
    ap.add_argument("--latency-n", type=int, default=2000)
    ap.add_argument("--default-n", type=int, default=150,
                    help="requests in the default-config latency runs (sequential and burst)")
    ap.add_argument("--low-rate", type=float, default=40.0, help="requests/s in total (half of each kind)")
    ap.add_argument("--high-rate", type=float, default=200.0)
    ap.add_argument("--tp-seconds", type=float, default=15.0, help="seconds per throughput run")
    ap.add_argument("--long-seconds", type=float, default=120.0, help="lifecycle run for the memory figure")
    ap.add_argument("--long-lifecycles", type=int, default=0,
                    help="instead of --long-seconds: run until this many lifecycles (e.g. 100000)")
    ap.add_argument("--scale-max", type=int, default=10000)
    ap.add_argument("--startup-n", type=int, default=10000)
    ap.add_argument("--startup-rate", type=int, default=6000)
    ap.add_argument("--converge-timeout", type=float, default=900)
    a = ap.parse_args()
    ctx = Ctx(a)
    phases = [x.strip() for x in a.only.split(",") if x.strip()]
    t0 = time.monotonic()
    print("machine: %s" % json.dumps(B.machine_notes()), flush=True)
    try:
        if "fakes" in phases or any(p in phases for p in ("latency", "throughput")):
            log("phase fakes")
            phase_fakes(ctx)
        for name in ("latency", "throughput", "memory", "scale", "startup", "upstream"):
            if name in phases:
                log("phase " + name)
                globals()["phase_" + name](ctx)
    finally:
        table()
        print("total %.0fs" % (time.monotonic() - t0))
        shutil.rmtree(ctx.work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
