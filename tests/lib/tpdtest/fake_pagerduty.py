#!/usr/bin/python3
"""fake_pagerduty.py - a faithful fake of PagerDuty's REST API v2 for tests and the demo.

It serves HTTPS on 127.0.0.1 with a test CA it generates (or finds in --cert-dir) and implements
the calls the plugin makes with the behaviour of the real API (docs/pagerduty-api.md, OpenAPI
spec): header, auth and body validation with the real status codes and error bodies, classic
offset pagination (limit/offset/more/total), incident_key de-duplication (400 "Open incident with
matching dedup key already exists on this service"), notes answering 200, resolution, ratelimit-*
headers on every answer, an optional enforced rate limit for the key and optional per-operation
limits (PagerDuty limits POST/PUT /incidents and GET /oncalls more tightly than the key; the
headers then describe whichever limit is closest to being reached), and fault injection. Every API request
is recorded. Representations follow the spec closely enough to pass Prism's response validation
(`self` links point at https://api.pagerduty.com, incident bodies are not echoed).

Two ways to use it:

  * importable:
        from fake_pagerduty import FakePagerDuty
        fp = FakePagerDuty(api_key="k"); fp.start()
        ep = fp.add_escalation_policy("DB on-call")
        svc = fp.add_service("My DB", escalation_policy_id=ep)
        uid = fp.add_user("Alice", "alice@example.com")
        fp.add_oncall(uid, ep)
        ... fp.url, fp.ca_file, fp.incidents(), fp.notes(incident_id), fp.requests ...
        fp.inject("status", status=429, count=5, reset=1); fp.stop()

  * a process:
        fake_pagerduty.py --port 0 --cert-dir DIR --api-key KEY [--seed FILE.json]
                          [--read-only-key KEY2] [--rate-limit-per-minute N] [--host 127.0.0.1]
    prints one line {"url": ..., "ca_file": ..., "control_url": ...} to stdout once it listens,
    then serves until SIGTERM/SIGINT.

Control API (JSON over the same HTTPS port, under /_fake/, no API key, never used by the plugin):
  GET    /_fake/state                      everything: services, users, escalation_policies,
                                           oncalls, incidents, notes
  POST   /_fake/escalation_policies        {"name", "id"?}                      -> {"id"}
  POST   /_fake/services                   {"name", "escalation_policy_id"?, "id"?} -> {"id"}
  POST   /_fake/users                      {"name", "email", "id"?, "role"?}     -> {"id"}
  POST   /_fake/oncalls                    {"user_id", "escalation_policy_id", "level"?,
                                            "schedule_id"?}                     -> {}
  DELETE /_fake/oncalls                    remove every on-call entry
  POST   /_fake/incidents                  {"service_id", "title", "incident_key"?, "status"?}
                                           seed an incident                      -> {"id"}
  GET    /_fake/incidents                  [incident, ...] (with "notes" counts)
  GET    /_fake/incidents/<id>/notes       [note, ...]
  GET    /_fake/requests[?since=N]         recorded API requests from index N:
                                           [{"method","path","query","headers","body","status"}]
  POST   /_fake/inject                     a fault (see FakePagerDuty.inject for the keys)
  DELETE /_fake/inject                     clear pending faults
  POST   /_fake/rate_limit                 {"per_minute": N or null} enforce a per-minute limit
  POST   /_fake/op_limit                   {"method", "path", "limit": N or null, "window_s"?: 60}
                                           enforce a limit on one operation (exact path, no query):
                                           past it, 429 with that window's ratelimit-* headers
  POST   /_fake/reset                      drop incidents, notes, recorded requests and faults
Seed file (--seed): {"escalation_policies": [...], "services": [...], "users": [...],
"oncalls": [...], "incidents": [...]} with the same keys as the POST bodies above.
"""

import argparse
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.parse
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PUBLIC_BASE = "https://api.pagerduty.com"
WEB_BASE = "https://example.pagerduty.com"
ACCEPT_OK = ("application/vnd.pagerduty+json;version=2", "application/vnd.pagerduty+json",
             "application/json", "*/*")
DEDUP_TEXT = "Open incident with matching dedup key already exists on this service"
MAX_BODY = 1 << 20


def now_iso():
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def make_test_pki(cert_dir, cn="fake-pagerduty test CA", ip=None):
    """Creates (or reuses) ca.pem/ca.key and server.pem/server.key for 127.0.0.1 (and ip, when the
    fake listens on another address) in cert_dir. Returns (ca_file, cert_file, key_file)."""
    os.makedirs(cert_dir, exist_ok=True)
    ca, cak = os.path.join(cert_dir, "ca.pem"), os.path.join(cert_dir, "ca.key")
    crt, key = os.path.join(cert_dir, "server.pem"), os.path.join(cert_dir, "server.key")
    if all(os.path.exists(p) for p in (ca, crt, key)):
        return ca, crt, key

    def run(*args):
        subprocess.run(["openssl", *args], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    run("req", "-x509", *ec, "-keyout", cak, "-out", ca, "-days", "3650", "-subj", "/CN=" + cn,
        "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    csr = os.path.join(cert_dir, "server.csr")
    ext = os.path.join(cert_dir, "server.ext")
    with open(ext, "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost%s\nextendedKeyUsage=serverAuth\n"
                "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n" % (",IP:" + ip if ip else ""))
    run("req", *ec, "-keyout", key, "-out", csr, "-subj", "/CN=127.0.0.1")
    run("x509", "-req", "-in", csr, "-CA", ca, "-CAkey", cak, "-CAcreateserial", "-out", crt,
        "-days", "3650", "-extfile", ext)
    return ca, crt, key


class _Fault:
    def __init__(self, kind, count=1, status=None, body=None, reset=None, delay=0.0, method=None, path=None,
                 process=False, headers=True):
        if kind not in ("status", "slow", "drop", "malformed"):
            raise ValueError("unknown fault kind %r" % kind)
        self.kind, self.count, self.status, self.body = kind, int(count), status, body
        self.reset, self.delay, self.method, self.path = reset, float(delay), method, path
        self.process, self.headers = bool(process), bool(headers)

    def matches(self, method, path):
        return (self.method is None or self.method == method) and (self.path is None or path.startswith(self.path))


class _ApiError(Exception):
    def __init__(self, status, message, code, errors=None):
        super().__init__(message)
        self.status, self.message, self.code, self.errors = status, message, code, errors

    def body(self):
        e = {"message": self.message, "code": self.code}
        if self.errors is not None:
            e["errors"] = self.errors
        return {"error": e}


def _not_found():
    return _ApiError(404, "Not Found", 2100)


def _invalid(*errors):
    return _ApiError(400, "Invalid Input Provided", 2001, list(errors))


class FakePagerDuty:
    """The fake server. Thread-safe; all state behind one lock."""

    def __init__(self, api_key="test-api-key", read_only_keys=(), cert_dir=None, host="127.0.0.1", port=0,
                 rate_limit_per_minute=None, strict_headers=True):
        self.api_keys = {api_key} if isinstance(api_key, str) else set(api_key)
        self.read_only_keys = set(read_only_keys)
        self.host, self.port = host, port
        self.cert_dir = cert_dir
        self.strict_headers = strict_headers
        # Upstream's Go plugin sends POST /incidents without `incident.type` (reference
        # pagerduty.md, "upstream ... omits incident.type"), and it works against the real API,
        # which therefore accepts the omission although the OpenAPI schema lists the field as
        # required. Off by default, so that our own tests keep checking that we send it; the
        # bench turns it on to run upstream beside us against the same fake.
        self.accept_missing_incident_type = False
        self.rate_limit_per_minute = rate_limit_per_minute
        self.lock = threading.RLock()
        self.cond = threading.Condition(self.lock)
        self._seq = {}
        self.services, self.users, self.policies = {}, {}, {}
        self.oncalls, self.incident_list, self._notes = [], [], {}
        self.schedules = {}
        # Indexes over incident_list, so that lookups stay O(1) with 100,000 incidents.
        self.incident_by_id, self.incidents_by_key = {}, {}
        self.requests = []
        self.connections = 0   # TCP connections accepted (the client's connection reuse)
        self.faults = []
        self._window_start, self._window_count = time.monotonic(), 0
        self.op_limits = {}    # (method, path) -> [limit, window_s, window_start, count]
        self._httpd = None
        self._thread = None
        self.url = self.ca_file = self.control_url = None

    # ---- lifecycle ------------------------------------------------------------------------------

    def start(self):
        if self.cert_dir is None:
            import tempfile
            self.cert_dir = tempfile.mkdtemp(prefix="fake-pd-")
        own_ip = self.host if self.host not in ("127.0.0.1", "0.0.0.0", "") else None
        self.ca_file, crt, key = make_test_pki(self.cert_dir, ip=own_ip)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(crt, key)
        fake = self

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            allow_reuse_address = True
            request_queue_size = 128

            def finish_request(self, request, client_address):
                # TLS handshake in the connection's own thread, so a bad client blocks nobody.
                with fake.lock:
                    fake.connections += 1
                try:
                    request.settimeout(30)
                    # Headers and body go out in separate writes: without TCP_NODELAY every answer
                    # waits ~40 ms for the client's delayed ACK (Nagle), which the real API doesn't.
                    request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    tls = ctx.wrap_socket(request, server_side=True)
                except (ssl.SSLError, OSError):
                    return
                try:
                    Handler(tls, client_address, self, fake)
                finally:
                    try:
                        tls.close()
                    except OSError:
                        pass

            def handle_error(self, request, client_address):
                pass  # dropped connections and client aborts are expected in tests

        self._httpd = Server((self.host, self.port), lambda *a: None)
        self.port = self._httpd.server_address[1]
        self.url = "https://%s:%d" % (self.host, self.port)
        self.control_url = self.url + "/_fake"
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="fake-pagerduty", daemon=True)
        self._thread.start()
        return self

    def stop(self):
        if self._httpd:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # ---- state helpers --------------------------------------------------------------------------

    def _id(self, prefix):
        n = self._seq.get(prefix, 0) + 1
        self._seq[prefix] = n
        return "P%s%05d" % (prefix, n)

    @staticmethod
    def _ref(kind, oid, summary):
        path = {"service": "services", "user": "users", "escalation_policy": "escalation_policies",
                "incident": "incidents", "schedule": "schedules"}[kind]
        return {"id": oid, "type": kind + "_reference", "summary": summary,
                "self": "%s/%s/%s" % (PUBLIC_BASE, path, oid), "html_url": "%s/%s/%s" % (WEB_BASE, path, oid)}

    def add_escalation_policy(self, name, id=None):
        with self.lock:
            pid = id or self._id("EP")
            self.policies[pid] = {"id": pid, "name": name}
            return pid

    def add_service(self, name, escalation_policy_id=None, id=None):
        with self.lock:
            if escalation_policy_id is None:
                escalation_policy_id = self.add_escalation_policy(name + " policy")
            elif escalation_policy_id not in self.policies:
                self.policies[escalation_policy_id] = {"id": escalation_policy_id, "name": escalation_policy_id}
            sid = id or self._id("SV")
            self.services[sid] = {"id": sid, "name": name, "escalation_policy_id": escalation_policy_id}
            return sid

    def add_user(self, name, email, id=None, role="user"):
        with self.lock:
            uid = id or self._id("US")
            self.users[uid] = {"id": uid, "name": name, "email": email, "role": role}
            return uid

    def add_schedule(self, name, id=None):
        with self.lock:
            sid = id or self._id("SC")
            self.schedules[sid] = {"id": sid, "name": name}
            return sid

    def delete_schedule(self, sid):
        """Like deleting a schedule in PagerDuty: it and the on-call entries it made are gone."""
        with self.lock:
            self.schedules.pop(sid, None)
            self.oncalls = [o for o in self.oncalls if o.get("schedule_id") != sid]

    def add_oncall(self, user_id, escalation_policy_id, level=1, schedule_id=None):
        with self.lock:
            self.oncalls.append({"user_id": user_id, "escalation_policy_id": escalation_policy_id,
                                 "level": int(level), "schedule_id": schedule_id})

    def clear_oncalls(self):
        with self.lock:
            self.oncalls = []

    def add_incident(self, service_id, title, incident_key=None, status="triggered"):
        with self.lock:
            return self._create_incident(service_id, title, incident_key, "high", status)["id"]

    def incidents(self):
        with self.lock:
            return [dict(i, notes=len(self._notes.get(i["id"], []))) for i in self.incident_list]

    def notes(self, incident_id):
        with self.lock:
            return [dict(n) for n in self._notes.get(incident_id, [])]

    def api_requests(self, since=0):
        with self.lock:
            return [dict(r) for r in self.requests[since:]]

    def inject(self, kind, count=1, status=None, body=None, reset=None, delay=0.0, method=None, path=None,
               process=False, headers=True):
        """Queues a fault for the next `count` matching API requests.
        kind "status":    answer `status` (429 gets ratelimit-* headers with `reset` seconds unless
                          headers=False, and PagerDuty's 2020 body; 5xx a 2000 body) without acting;
        kind "slow":      wait `delay` seconds, then handle normally;
        kind "drop":      close the connection without an answer (process=True: act first);
        kind "malformed": answer 200 with a truncated JSON body, or `body` (process=True: act first).
        method/path (prefix) restrict which requests match."""
        with self.lock:
            self.faults.append(_Fault(kind, count, status, body, reset, delay, method, path, process, headers))

    def clear_faults(self):
        with self.lock:
            self.faults = []

    def set_rate_limit(self, per_minute):
        with self.lock:
            self.rate_limit_per_minute = per_minute
            self._window_start, self._window_count = time.monotonic(), 0

    def set_op_limit(self, method, path, limit, window_s=60):
        """Limits one operation (e.g. "POST", "/incidents") to `limit` requests per fixed window of
        window_s seconds, like PagerDuty's operation limits (None removes it). Requests past it get
        429 with the operation's ratelimit-* headers; every matching request counts."""
        with self.lock:
            if limit is None:
                self.op_limits.pop((method.upper(), path), None)
            else:
                self.op_limits[(method.upper(), path)] = [int(limit), float(window_s), time.monotonic(), 0]

    def reset(self):
        with self.lock:
            self.incident_list, self._notes, self.requests, self.faults = [], {}, [], []
            self.incident_by_id, self.incidents_by_key = {}, {}

    def wait_for(self, predicate, timeout=10.0):
        """Waits until predicate() is true (re-checked on every state change); returns its value."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                v = predicate()
                if v:
                    return v
                left = deadline - time.monotonic()
                if left <= 0:
                    return v
                self.cond.wait(min(left, 0.2))

    def seed(self, data):
        for p in data.get("escalation_policies", []):
            self.add_escalation_policy(p["name"], id=p.get("id"))
        for s in data.get("services", []):
            self.add_service(s["name"], escalation_policy_id=s.get("escalation_policy_id"), id=s.get("id"))
        for u in data.get("users", []):
            self.add_user(u["name"], u["email"], id=u.get("id"), role=u.get("role", "user"))
        for o in data.get("oncalls", []):
            self.add_oncall(o["user_id"], o["escalation_policy_id"], o.get("level", 1), o.get("schedule_id"))
        for i in data.get("incidents", []):
            self.add_incident(i["service_id"], i["title"], i.get("incident_key"), i.get("status", "triggered"))

    def state(self):
        with self.lock:
            return {"services": list(self.services.values()), "users": list(self.users.values()),
                    "escalation_policies": list(self.policies.values()), "oncalls": list(self.oncalls),
                    "incidents": self.incidents(), "notes": {k: list(v) for k, v in self._notes.items()}}

    # ---- representations (shaped by the OpenAPI schemas) ---------------------------------------

    def _service_repr(self, s):
        ep = self.policies.get(s["escalation_policy_id"], {"name": s["escalation_policy_id"]})
        return {"id": s["id"], "type": "service", "summary": s["name"],
                "self": "%s/services/%s" % (PUBLIC_BASE, s["id"]),
                "html_url": "%s/service-directory/%s" % (WEB_BASE, s["id"]),
                "name": s["name"], "description": s["name"], "auto_resolve_timeout": 14400,
                "acknowledgement_timeout": 600, "created_at": "2026-01-01T00:00:00Z", "status": "active",
                "escalation_policy": self._ref("escalation_policy", s["escalation_policy_id"], ep["name"]),
                "teams": [], "integrations": [],
                "incident_urgency_rule": {"type": "constant", "urgency": "high"},
                "alert_creation": "create_alerts_and_incidents"}

    def _user_repr(self, u):
        return {"id": u["id"], "type": "user", "summary": u["name"],
                "self": "%s/users/%s" % (PUBLIC_BASE, u["id"]), "html_url": "%s/users/%s" % (WEB_BASE, u["id"]),
                "name": u["name"], "email": u["email"], "time_zone": "Etc/UTC", "color": "green",
                "role": u["role"], "description": "", "invitation_sent": False, "job_title": "",
                "teams": [], "contact_methods": [], "notification_rules": []}

    def _policy_repr(self, p):
        svcs = [self._ref("service", s["id"], s["name"]) for s in self.services.values()
                if s["escalation_policy_id"] == p["id"]]
        targets = [self._ref("user", o["user_id"], self.users.get(o["user_id"], {}).get("name", o["user_id"]))
                   for o in self.oncalls if o["escalation_policy_id"] == p["id"]]
        return {"id": p["id"], "type": "escalation_policy", "summary": p["name"],
                "self": "%s/escalation_policies/%s" % (PUBLIC_BASE, p["id"]),
                "html_url": "%s/escalation_policies/%s" % (WEB_BASE, p["id"]),
                "name": p["name"], "description": "", "num_loops": 0, "on_call_handoff_notifications": "if_has_services",
                "escalation_rules": [{"id": p["id"] + "R1", "escalation_delay_in_minutes": 30, "targets": targets}],
                "services": svcs, "teams": []}

    def _oncall_repr(self, o):
        u = self.users.get(o["user_id"], {"name": o["user_id"]})
        p = self.policies.get(o["escalation_policy_id"], {"name": o["escalation_policy_id"]})
        r = {"user": self._ref("user", o["user_id"], u["name"]),
             "escalation_policy": self._ref("escalation_policy", o["escalation_policy_id"], p["name"]),
             "escalation_level": o["level"],
             "start": "2026-01-01T00:00:00Z", "end": "2099-01-01T00:00:00Z"}
        if o.get("schedule_id"):
            s = self.schedules.get(o["schedule_id"], {"name": o["schedule_id"]})
            r["schedule"] = self._ref("schedule", o["schedule_id"], s["name"])
        return r

    def _schedule_repr(self, s):
        return {"id": s["id"], "type": "schedule", "summary": s["name"], "name": s["name"],
                "self": "%s/schedules/%s" % (PUBLIC_BASE, s["id"]),
                "html_url": "%s/schedules/%s" % (WEB_BASE, s["id"]),
                "time_zone": "Etc/UTC", "description": "", "escalation_policies": [], "users": [], "teams": []}

    def _incident_repr(self, i):
        s = self.services[i["service_id"]]
        ep = self.policies.get(s["escalation_policy_id"], {"name": s["escalation_policy_id"]})
        r = {"id": i["id"], "type": "incident", "summary": "[#%d] %s" % (i["number"], i["title"]),
             "self": "%s/incidents/%s" % (PUBLIC_BASE, i["id"]),
             "html_url": "%s/incidents/%s" % (WEB_BASE, i["id"]),
             "incident_number": i["number"], "title": i["title"], "created_at": i["created_at"],
             "updated_at": i["updated_at"], "status": i["status"], "incident_key": i["incident_key"],
             "service": self._ref("service", s["id"], s["name"]), "assignments": [],
             "last_status_change_at": i["updated_at"],
             "escalation_policy": self._ref("escalation_policy", s["escalation_policy_id"], ep["name"]),
             "teams": [], "urgency": i["urgency"], "is_mergeable": True}
        if i["status"] == "resolved":
            r["resolved_at"] = i["updated_at"]
        return r

    def _create_incident(self, service_id, title, key, urgency, status="triggered"):
        self._seq["incident_number"] = self._seq.get("incident_number", 0) + 1
        ts = now_iso()
        inc = {"id": self._id("IN"), "number": self._seq["incident_number"], "title": title,
               "service_id": service_id, "incident_key": key, "urgency": urgency or "high", "status": status,
               "created_at": ts, "updated_at": ts}
        self.incident_list.append(inc)
        self.incident_by_id[inc["id"]] = inc
        if key:
            self.incidents_by_key.setdefault(key, []).append(inc)
        self._notes[inc["id"]] = []
        self.cond.notify_all()
        return inc

    # ---- request handling -----------------------------------------------------------------------

    def _take_fault(self, method, path):
        with self.lock:
            for f in self.faults:
                if f.count > 0 and f.matches(method, path):
                    f.count -= 1
                    if f.count == 0:
                        self.faults.remove(f)
                    return f
        return None

    def _rate_headers(self):
        """ratelimit-* headers, and whether the enforced limit is exceeded."""
        with self.lock:
            now = time.monotonic()
            if now - self._window_start >= 60:
                self._window_start, self._window_count = now, 0
            self._window_count += 1
            limit = self.rate_limit_per_minute or 960
            reset = max(1, int(60 - (now - self._window_start) + 0.999))
            exceeded = self.rate_limit_per_minute is not None and self._window_count > limit
            remaining = max(0, limit - self._window_count)
            return {"ratelimit-limit": str(limit), "ratelimit-remaining": str(remaining),
                    "ratelimit-reset": str(reset)}, exceeded

    def _op_rate_headers(self, method, path):
        """The operation limit's ratelimit-* headers, its remaining count and whether it is
        exceeded; None when the operation is not limited."""
        with self.lock:
            lim = self.op_limits.get((method, path))
            if lim is None:
                return None
            now = time.monotonic()
            if now - lim[2] >= lim[1]:
                lim[2], lim[3] = now, 0
            lim[3] += 1
            remaining = max(0, lim[0] - lim[3])
            reset = max(1, int(lim[1] - (now - lim[2]) + 0.999))
            return ({"ratelimit-limit": str(lim[0]), "ratelimit-remaining": str(remaining),
                     "ratelimit-reset": str(reset)}, remaining, lim[3] > lim[0])

    def _check_headers(self, method, headers):
        auth = headers.get("Authorization")
        key = None
        if auth and auth.startswith("Token token="):
            key = auth[len("Token token="):]
        if key not in self.api_keys and key not in self.read_only_keys:
            raise _ApiError(401, "Authentication failed", 2006)
        if self.strict_headers:
            accept = headers.get("Accept")
            if accept is None:
                raise _invalid("Accept header is required (application/vnd.pagerduty+json;version=2)")
            if not any(a.strip() in ACCEPT_OK for a in accept.split(",")):
                raise _ApiError(406, "Not Acceptable", 2001, ["Unsupported Accept header"])
            if headers.get("Content-Type") != "application/json":
                raise _invalid("Content-Type must be application/json")
        if method != "GET" and key in self.read_only_keys:
            raise _ApiError(403, "Access Denied", 2010, ["A read-only API key cannot perform this action"])

    def _requester(self, headers):
        frm = headers.get("From")
        if not frm:
            raise _invalid("You must specify a user's email address in the \"From\" header to perform this action")
        for u in self.users.values():
            if u["email"].lower() == frm.lower():
                return u
        raise _ApiError(400, "Requester User Not Found", 1008, ["Requester User Not Found"])

    @staticmethod
    def _page(query, items, key):
        def num(name, default):
            v = query.get(name, [None])[0]
            if v is None or v == "":
                return default
            try:
                n = int(v)
            except ValueError:
                raise _invalid("%s must be an integer" % name)
            if n < 0:
                raise _invalid("%s must be non-negative" % name)
            return n
        limit = min(num("limit", 25), 100) or 25
        offset = num("offset", 0)
        if offset + limit > 10000:
            raise _invalid("Offset must be less than %d" % (10000 - limit + 1))
        total = query.get("total", ["false"])[0] == "true"
        page = items[offset:offset + limit]
        return {key: page, "limit": limit, "offset": offset, "more": offset + len(page) < len(items),
                "total": len(items) if total else None}

    def handle_api(self, method, path, query, headers, raw):
        """Returns (status, body dict or None). Raises _ApiError."""
        self._check_headers(method, headers)
        parts = [p for p in path.split("/") if p]
        body = None
        if method in ("POST", "PUT"):
            try:
                body = json.loads(raw.decode("utf-8")) if raw else None
            except (ValueError, UnicodeDecodeError):
                raise _invalid("The request body is not valid JSON")
            if not isinstance(body, dict):
                raise _invalid("The request body must be a JSON object")
        with self.lock:
            if method == "GET" and parts == ["abilities"]:
                return 200, {"abilities": ["teams", "read_only_users", "service_support_hours", "urgencies"]}
            if method == "GET" and parts == ["services"]:
                q = query.get("query", [""])[0].lower()
                items = sorted((s for s in self.services.values() if q in s["name"].lower()),
                               key=lambda s: s["name"].lower())
                return 200, self._page(query, [self._service_repr(s) for s in items], "services")
            if method == "GET" and len(parts) == 2 and parts[0] == "services":
                s = self.services.get(parts[1])
                if not s:
                    raise _not_found()
                return 200, {"service": self._service_repr(s)}
            if method == "GET" and parts == ["users"]:
                q = query.get("query", [""])[0].lower()
                items = sorted((u for u in self.users.values() if q in u["name"].lower() or q in u["email"].lower()),
                               key=lambda u: u["name"].lower())
                return 200, self._page(query, [self._user_repr(u) for u in items], "users")
            if method == "GET" and len(parts) == 2 and parts[0] == "users":
                u = self.users.get(parts[1])
                if not u:
                    raise _not_found()
                return 200, {"user": self._user_repr(u)}
            if method == "GET" and parts == ["escalation_policies"]:
                q = query.get("query", [""])[0].lower()
                items = [p for p in self.policies.values() if q in p["name"].lower()]
                return 200, self._page(query, [self._policy_repr(p) for p in items], "escalation_policies")
            if method == "GET" and len(parts) == 2 and parts[0] == "escalation_policies":
                p = self.policies.get(parts[1])
                if not p:
                    raise _not_found()
                return 200, {"escalation_policy": self._policy_repr(p)}
            if method == "GET" and parts == ["schedules"]:
                q = query.get("query", [""])[0].lower()
                items = sorted((s for s in self.schedules.values() if q in s["name"].lower()),
                               key=lambda s: s["name"].lower())
                return 200, self._page(query, [self._schedule_repr(s) for s in items], "schedules")
            if method == "GET" and parts == ["oncalls"]:
                uids = set(query.get("user_ids[]", []))
                eps = set(query.get("escalation_policy_ids[]", []))
                items = [o for o in self.oncalls if (not uids or o["user_id"] in uids)
                         and (not eps or o["escalation_policy_id"] in eps)]
                return 200, self._page(query, [self._oncall_repr(o) for o in items], "oncalls")
            if method == "GET" and parts == ["incidents"]:
                return 200, self._list_incidents(query)
            if method == "POST" and parts == ["incidents"]:
                return self._post_incident(headers, body)
            if len(parts) == 2 and parts[0] == "incidents" and method in ("GET", "PUT"):
                inc = self.incident_by_id.get(parts[1])
                if not inc:
                    raise _not_found()
                if method == "GET":
                    return 200, {"incident": self._incident_repr(inc)}
                return self._put_incident(headers, body, inc)
            if method == "POST" and len(parts) == 3 and parts[0] == "incidents" and parts[2] == "notes":
                return self._post_note(headers, body, parts[1])
            if method == "GET" and len(parts) == 3 and parts[0] == "incidents" and parts[2] == "notes":
                # listIncidentNotes: every note of the incident, not paginated.
                if parts[1] not in self.incident_by_id:
                    raise _not_found()
                return 200, {"notes": [dict(n) for n in self._notes[parts[1]]]}
        raise _not_found()

    def _list_incidents(self, query):
        key = query.get("incident_key", [None])[0]
        if key:
            items = list(self.incidents_by_key.get(key, []))
        else:
            items = list(self.incident_list)
            if key is not None:
                items = [i for i in items if i["incident_key"] == key]
        statuses = set(query.get("statuses[]", []))
        bad = statuses - {"triggered", "acknowledged", "resolved"}
        if bad:
            raise _invalid("Invalid status: %s" % ", ".join(sorted(bad)))
        if statuses:
            items = [i for i in items if i["status"] in statuses]
        svc = set(query.get("service_ids[]", []))
        if svc:
            items = [i for i in items if i["service_id"] in svc]
        dr = query.get("date_range", [None])[0]
        if dr is not None and dr != "all":
            raise _invalid("date_range must be 'all'")
        return self._page(query, [self._incident_repr(i) for i in items], "incidents")

    def _post_incident(self, headers, body):
        self._requester(headers)
        inc = body.get("incident")
        if not isinstance(inc, dict):
            raise _invalid("incident is required")
        if inc.get("type") != "incident" and not (self.accept_missing_incident_type and "type" not in inc):
            raise _invalid("incident.type must be \"incident\"")
        title = inc.get("title")
        if not isinstance(title, str) or not title:
            raise _invalid("Title cannot be empty")
        if len(title) > 1024:
            raise _invalid("Title is too long")
        svc = inc.get("service")
        if not isinstance(svc, dict) or svc.get("type") != "service_reference" or not isinstance(svc.get("id"), str):
            raise _invalid("Service must be a service_reference with an id")
        if svc["id"] not in self.services:
            raise _invalid("Service not found")
        urgency = inc.get("urgency")
        if urgency is not None and urgency not in ("high", "low"):
            raise _invalid("Urgency must be high or low")
        b = inc.get("body")
        if b is not None:
            if not isinstance(b, dict) or b.get("type") != "incident_body":
                raise _invalid("body.type must be \"incident_body\"")
            if not isinstance(b.get("details", ""), str):
                raise _invalid("body.details must be a string")
        if "escalation_policy" in inc and "assignments" in inc:
            raise _invalid("escalation_policy and assignments cannot both be given")
        key = inc.get("incident_key")
        if key is not None and not isinstance(key, str):
            raise _invalid("incident_key must be a string")
        if key:
            for i in self.incidents_by_key.get(key, []):
                if i["service_id"] == svc["id"] and i["status"] != "resolved":
                    raise _ApiError(400, "Arguments Caused Error", 2002, [DEDUP_TEXT])
        created = self._create_incident(svc["id"], title, key, urgency)
        return 201, {"incident": self._incident_repr(created)}

    def _put_incident(self, headers, body, inc):
        self._requester(headers)
        upd = body.get("incident")
        if not isinstance(upd, dict) or upd.get("type") not in ("incident", "incident_reference"):
            raise _invalid("incident.type must be \"incident\" or \"incident_reference\"")
        status = upd.get("status")
        if status is not None:
            if status not in ("triggered", "acknowledged", "resolved"):
                raise _invalid("Invalid Status Provided")
            if status == "resolved" and inc["status"] == "resolved":
                raise _ApiError(400, "Incident Already Resolved", 1001, ["Incident Already Resolved"])
            inc["status"] = status
            inc["updated_at"] = now_iso()
            self.cond.notify_all()
        return 200, {"incident": self._incident_repr(inc)}

    def _post_note(self, headers, body, incident_id):
        user = self._requester(headers)
        inc = self.incident_by_id.get(incident_id)
        if not inc:
            raise _not_found()
        note = body.get("note")
        if not isinstance(note, dict) or not isinstance(note.get("content"), str) or not note["content"]:
            raise _invalid("Note content cannot be empty")
        if len(self._notes[incident_id]) >= 2000:
            raise _invalid("An incident can have at most 2000 notes")
        n = {"id": self._id("NO"), "user": self._ref("user", user["id"], user["name"]),
             "channel": {"summary": "The PagerDuty website or APIs"}, "content": note["content"],
             "created_at": now_iso()}
        self._notes[incident_id].append(n)
        self.cond.notify_all()
        return 200, {"note": n}

    # ---- control API ------------------------------------------------------------------------------

    def handle_control(self, method, parts, query, raw):
        body = json.loads(raw.decode("utf-8")) if raw else {}
        p = parts[1:]
        if method == "GET" and p == ["state"]:
            return 200, self.state()
        if method == "POST" and p == ["escalation_policies"]:
            return 200, {"id": self.add_escalation_policy(body["name"], id=body.get("id"))}
        if method == "POST" and p == ["services"]:
            return 200, {"id": self.add_service(body["name"], body.get("escalation_policy_id"), id=body.get("id"))}
        if method == "POST" and p == ["users"]:
            return 200, {"id": self.add_user(body["name"], body["email"], id=body.get("id"),
                                             role=body.get("role", "user"))}
        if method == "POST" and p == ["oncalls"]:
            self.add_oncall(body["user_id"], body["escalation_policy_id"], body.get("level", 1),
                            body.get("schedule_id"))
            return 200, {}
        if method == "DELETE" and p == ["oncalls"]:
            self.clear_oncalls()
            return 200, {}
        if method == "POST" and p == ["incidents"]:
            return 200, {"id": self.add_incident(body["service_id"], body["title"], body.get("incident_key"),
                                                 body.get("status", "triggered"))}
        if method == "GET" and p == ["incidents"]:
            return 200, self.incidents()
        if method == "GET" and len(p) == 3 and p[0] == "incidents" and p[2] == "notes":
            return 200, self.notes(p[1])
        if method == "GET" and p == ["requests"]:
            return 200, self.api_requests(int(query.get("since", ["0"])[0]))
        if method == "POST" and p == ["inject"]:
            kind = body.pop("kind")
            self.inject(kind, **body)
            return 200, {}
        if method == "DELETE" and p == ["inject"]:
            self.clear_faults()
            return 200, {}
        if method == "POST" and p == ["rate_limit"]:
            self.set_rate_limit(body.get("per_minute"))
            return 200, {}
        if method == "POST" and p == ["op_limit"]:
            self.set_op_limit(body["method"], body["path"], body.get("limit"), body.get("window_s", 60))
            return 200, {}
        if method == "POST" and p == ["reset"]:
            self.reset()
            return 200, {}
        return 404, {"error": "unknown control path"}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fake-pagerduty"
    sys_version = ""

    def __init__(self, request, client_address, server, fake):
        self.fake = fake
        super().__init__(request, client_address, server)

    def log_message(self, fmt, *args):
        pass

    def _send(self, status, obj, extra=None, raw=None):
        data = raw if raw is not None else (json.dumps(obj).encode() if obj is not None else b"")
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def _drop(self):
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _handle(self):
        fake = self.fake
        u = urllib.parse.urlsplit(self.path)
        query = urllib.parse.parse_qs(u.query, keep_blank_values=True)
        n = int(self.headers.get("Content-Length") or 0)
        if n > MAX_BODY:
            self._send(413, {"error": {"message": "Request Entity Too Large", "code": 2001}})
            self.close_connection = True
            return
        raw = self.rfile.read(n) if n else b""
        parts = [p for p in u.path.split("/") if p]
        if parts and parts[0] == "_fake":
            try:
                status, obj = fake.handle_control(self.command, parts, query, raw)
            except (KeyError, TypeError, ValueError) as e:
                status, obj = 400, {"error": "bad control request: %s" % e}
            self._send(status, obj)
            return
        hdrs = {k: v for k, v in self.headers.items()}
        rec = {"method": self.command, "path": u.path, "query": query, "headers": hdrs,
               "body": raw.decode("utf-8", "replace"), "status": None, "t": time.time()}
        with fake.lock:
            fake.requests.append(rec)
            fake.cond.notify_all()
        rate, exceeded = fake._rate_headers()
        op = fake._op_rate_headers(self.command, u.path)
        if op is not None:
            # PagerDuty: the headers describe whichever limit is closest to being reached.
            op_rate, op_remaining, op_exceeded = op
            if op_exceeded or (not exceeded and op_remaining < int(rate["ratelimit-remaining"])):
                rate, exceeded = op_rate, exceeded or op_exceeded
        fault = fake._take_fault(self.command, u.path)
        if fault and fault.kind == "slow":
            time.sleep(fault.delay)
        if fault and fault.kind == "status":
            st = int(fault.status or 500)
            extra = {}
            if st == 429:
                body = fault.body or {"error": {"message": "Rate Limit Exceeded", "code": 2020}}
                if fault.headers:
                    extra = {"ratelimit-limit": rate["ratelimit-limit"], "ratelimit-remaining": "0",
                             "ratelimit-reset": str(fault.reset if fault.reset is not None else 1)}
            else:
                body = fault.body or {"error": {"message": "Internal Server Error", "code": 2000}}
            rec["status"] = st
            self._send(st, body, extra, raw=body.encode() if isinstance(body, str) else None)
            return
        if fault and fault.kind in ("drop", "malformed") and not fault.process:
            rec["status"] = 0
            if fault.kind == "drop":
                self._drop()
            else:
                self._send(200, None, rate, raw=(fault.body or '{"incidents": [{"id": "P').encode())
            return
        if exceeded:
            rec["status"] = 429
            self._send(429, {"error": {"message": "Rate Limit Exceeded", "code": 2020}},
                       dict(rate, **{"ratelimit-remaining": "0"}))
            return
        try:
            status, obj = fake.handle_api(self.command, u.path, query, self.headers, raw)
        except _ApiError as e:
            status, obj = e.status, e.body()
        rec["status"] = status
        rec["t_done"] = time.time()
        if fault and fault.kind == "drop":
            self._drop()
            return
        if fault and fault.kind == "malformed":
            self._send(status, None, rate, raw=(fault.body or json.dumps(obj)[:10]).encode())
            return
        self._send(status, obj, rate)

    def do_GET(self):
        self._handle()

    def do_POST(self):
        self._handle()

    def do_PUT(self):
        self._handle()

    def do_DELETE(self):
        self._handle()


def main(argv=None):
    ap = argparse.ArgumentParser(description="Fake PagerDuty REST API for tests (see the module docstring).")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--cert-dir", required=True, help="where the test CA and server cert are created/reused")
    ap.add_argument("--api-key", required=True)
    ap.add_argument("--read-only-key", action="append", default=[])
    ap.add_argument("--seed", help="JSON file with services, users, escalation_policies, oncalls, incidents")
    ap.add_argument("--rate-limit-per-minute", type=int)
    a = ap.parse_args(argv)
    fp = FakePagerDuty(api_key=a.api_key, read_only_keys=a.read_only_key, cert_dir=a.cert_dir, host=a.host,
                       port=a.port, rate_limit_per_minute=a.rate_limit_per_minute)
    if a.seed:
        with open(a.seed) as f:
            fp.seed(json.load(f))
    fp.start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    print(json.dumps({"url": fp.url, "ca_file": fp.ca_file, "control_url": fp.control_url}), flush=True)
    while not stop.wait(0.5):
        pass
    fp.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
