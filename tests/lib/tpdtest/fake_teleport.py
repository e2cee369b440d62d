#!/usr/bin/python3
"""fake_teleport.py - a fake Teleport Auth Service for tests and the demo.

It speaks the real protocol: gRPC over mutual TLS (client certificate required, signed by the
test CA from tests/pki/gen.sh), service `proto.AuthService` from the same proto/ files the C
client is built from (its _pb2 modules are generated at start-up with protoc and
grpc_python_plugin into a cache directory). It implements what the PagerDuty plugin uses, with
Teleport's semantics and error texts (docs/teleport-wire.md §5):

  Ping                  cluster name, server version, AdvancedAccessWorkflows, proxy address
  WatchEvents           kind access_request only; INIT first (with WatchStatus), then PUT
                        (full request) and DELETE (ResourceHeader) for every change, in the
                        order of the changes (every change emits under the store lock), so the
                        events of one request arrive as a real server sends them: the PENDING
                        put, then the put with the new state, then the delete
  ListAccessRequests    paged with StartKey/NextKey (limit default 1000, > 16000 rejected);
                        can answer UNIMPLEMENTED to exercise the client's fallback
  GetAccessRequestsV2   server stream of every matching request
  GetPluginData         kind access_request; empty list when nothing is stored
  UpdatePluginData      compare-and-swap: FAILED_PRECONDITION `expectations not met for field
                        "<key>"`; "" in Set deletes a key; NOT_FOUND for an unknown request
  SubmitAccessReview    author checks, thresholds (approve/deny counts) and state transitions,
                        `user "<name>" has already reviewed this request`, already-resolved
  DeleteAccessRequest   deletion (the plugin sees DELETE, i.e. "expired")

Every call is recorded with the caller's certificate (serial, CN). Fault injection: abort or
reset watch streams, refuse connections for N seconds, per-method delays, scripted failures,
INIT delays. A rotated client certificate (any certificate of the test CA) is accepted.
Connections go through a small TCP front (this process) so that connection-level faults are
real: refusing resets new TCP connections, `reset` cuts every open connection.

Two ways to use it
------------------
1. Imported (Python tests):
     from fake_teleport import FakeTeleport
     ft = FakeTeleport(pki_dir); ft.start(); ft.addr  -> "127.0.0.1:PORT"
     rid = ft.create_request("alice@example.com", ["editor"],
                             annotations={"pagerduty_notify_service": ["Teleport Notifications"]},
                             reason="because of")
     ft.review(rid, "reviewer1@example.com", "APPROVED", "okay"); ft.set_state(rid, "DENIED")
     ft.promote(rid, "reviewer1@example.com", "to the list")
     ft.create_then(user, roles, annotations, reason, [("review", author, "DENIED", "no")])
     ft.delete_request(rid); ft.plugin_data(rid); ft.reviews(rid); ft.calls; ft.drop_streams()
     ft.refuse(3.0); ft.stop()
2. A process:  fake_teleport.py --port 0 --pki-dir DIR [--control-port 0] [--cluster NAME]
                 [--server-version V] [--no-advanced-workflows] [--proxy-public-addr A]
   prints one JSON line on stdout when ready:
     {"addr": "127.0.0.1:PORT", "control_url": "http://127.0.0.1:CPORT", "pid": N,
      "cluster": "example.com", "pki_dir": "DIR"}
   If DIR holds no PKI yet, tests/pki/gen.sh is run to create one. SIGTERM/SIGINT stop it.

HTTP control API (JSON, loopback only; errors answer 4xx/5xx with {"code", "message"})
---------------------------------------------------------------------------------------
  GET    /health                          {"ok": true}
  GET    /requests                        [request, ...]  (request = see _req_json below)
  POST   /requests                        {"user", "roles", "annotations", "reason",
                                           "thresholds": [{"name","approve","deny"}], "ttl"}
                                          -> {"id": ...}          (like `tctl request create`)
                                          optional "then": [step, ...] applied at once (create_then)
  GET    /requests/ID                     request
  DELETE /requests/ID                     deletes it (watchers get DELETE; `tctl request rm`)
  POST   /requests/ID/review              {"author", "state": "APPROVED"|"DENIED", "reason"}
                                          -> request (server-side review logic, thresholds)
  POST   /requests/ID/promote             {"author", "reason"} -> request (PROMOTED, with a review)
  POST   /requests/ID/state               {"state": "APPROVED"|"DENIED"|"PENDING", "reason"}
                                          -> request (`tctl request approve/deny`)
  GET    /requests/ID/reviews             [{"author","state","reason","created","created_ns"}]
                                          (created: Unix seconds; created_ns: with nanoseconds)
  GET    /requests/ID/plugin_data[?plugin=pagerduty]   {key: value} ({} when none)
  PUT    /requests/ID/plugin_data[?plugin=pagerduty]   {key: value}: overwrite (a concurrent
                                          writer, for CAS tests)
  GET    /calls[?method=Ping]             [{"method","serial","cn","code","time","request"}]
  DELETE /calls                           forget recorded calls
  GET    /watchers                        {"count": number of open WatchEvents streams}
  POST   /faults                          any of {"refuse_seconds": s, "drop_streams":
                                          "abort"|"eof"|"reset", "delay": {"Method": s},
                                          "fail_next": {"Method": ["CODE", "message", count]},
                                          "init_delay": s, "skip_init": bool}
  POST   /config                          any of {"server_version", "cluster_name",
                                          "advanced_workflows", "proxy_public_addr",
                                          "list_unimplemented", "list_page_cap"}
  POST   /shutdown                        stops the process
"""

import argparse
import collections
import hashlib
import json
import os
import queue
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import uuid
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

# gRPC core's own log lines (e.g. a refused client certificate) only with GRPC_VERBOSITY set.
os.environ.setdefault("GRPC_VERBOSITY", "NONE")
import grpc  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = os.environ.get("TPD_SOURCE_DIR") or os.path.normpath(os.path.join(HERE, "..", "..", ".."))
PROTO_DIR = os.path.join(SOURCE_DIR, "proto")
GO_ZERO_TIME = -62135596800
STATES = {"NONE": 0, "PENDING": 1, "APPROVED": 2, "DENIED": 3, "PROMOTED": 4}
STATE_NAMES = {v: k for k, v in STATES.items()}
MAX_PAGE = 16000


# --- generated protobuf modules ----------------------------------------------------------------

def _pygen_dir():
    if os.environ.get("TPD_FAKE_PYGEN"):
        return os.environ["TPD_FAKE_PYGEN"]
    build = os.environ.get("TPD_BUILD_DIR")
    base = os.path.join(build, "pygen") if build else os.path.join(tempfile.gettempdir(), "tpd-pygen")
    protos = sorted(f for f in os.listdir(PROTO_DIR) if f.endswith(".proto"))
    h = hashlib.sha256()
    for f in protos:
        with open(os.path.join(PROTO_DIR, f), "rb") as fh:
            h.update(f.encode() + b"\0" + fh.read())
    return os.path.join(base, h.hexdigest()[:16])


def load_protos():
    """Generates (once, atomically) and imports the _pb2 modules; returns (pb_auth, pb_types, grpc_auth)."""
    out = _pygen_dir()
    if not os.path.exists(os.path.join(out, "teleport_authservice_pb2_grpc.py")):
        os.makedirs(os.path.dirname(out), exist_ok=True)
        tmp = tempfile.mkdtemp(dir=os.path.dirname(out), prefix=".gen.")
        protos = sorted(f for f in os.listdir(PROTO_DIR) if f.endswith(".proto"))
        subprocess.run(["protoc", "-I" + PROTO_DIR, "-I/usr/include", "--python_out=" + tmp,
                        "--grpc_out=" + tmp, "--plugin=protoc-gen-grpc=/usr/bin/grpc_python_plugin"]
                       + [os.path.join(PROTO_DIR, p) for p in protos], check=True)
        try:
            os.rename(tmp, out)
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)  # someone else won the race
    if out not in sys.path:
        sys.path.insert(0, out)
    import teleport_authservice_pb2 as pa  # noqa: E402
    import teleport_authservice_pb2_grpc as ga  # noqa: E402
    import teleport_types_pb2 as pt  # noqa: E402
    return pa, pt, ga


pa, pt, ga = load_protos()
from google.protobuf import empty_pb2, json_format  # noqa: E402


# --- helpers -----------------------------------------------------------------------------------

_serial_cache = {}


def cert_identity(context):
    """(serial hex upper-case, CN) of the caller's client certificate."""
    ac = context.auth_context()
    pem = (ac.get("x509_pem_cert") or [b""])[0]
    cn = (ac.get("x509_common_name") or [b""])[0].decode(errors="replace")
    if not pem:
        return "", cn
    key = hashlib.sha256(pem).hexdigest()
    if key not in _serial_cache:
        serial = ""
        try:
            from cryptography import x509
            serial = format(x509.load_pem_x509_certificate(pem).serial_number, "X")
        except Exception:
            try:
                r = subprocess.run(["openssl", "x509", "-noout", "-serial"], input=pem, capture_output=True)
                serial = r.stdout.decode().strip().split("=", 1)[-1].lstrip("0") or "0"
            except Exception:
                serial = ""
        _serial_cache[key] = serial.upper()
    return _serial_cache[key], cn


def _norm_serial(s):
    s = (s or "").upper().lstrip("0")
    return s or "0"


class Abort(Exception):
    def __init__(self, code, message):
        super().__init__(message)
        self.code = code
        self.message = message


class Req:
    def __init__(self, rid, user, roles, reason, annotations, thresholds, ttl, seq):
        # Teleport's timestamps carry nanoseconds (real-teleport.md); so do the fake's.
        now_ns = time.time_ns()
        now = now_ns // 10**9
        self.id = rid
        self.seq = seq
        self.user = user
        self.roles = list(roles)
        self.state = STATES["PENDING"]
        self.created = now
        self.created_nanos = now_ns % 10**9
        self.expires = now + int(ttl)
        self.request_reason = reason or ""
        self.resolve_reason = ""
        self.annotations = {k: list(v) for k, v in (annotations or {}).items()}
        self.thresholds = thresholds
        self.reviews = []
        self.revision = 1

    def to_pb(self):
        m = pt.AccessRequestV3(Kind="access_request", Version="v3")
        m.Metadata.Name = self.id
        m.Metadata.Namespace = "default"
        m.Metadata.Expires.seconds = self.expires
        m.Metadata.Revision = str(self.revision)
        s = m.Spec
        s.User = self.user
        s.Roles.extend(self.roles)
        s.State = self.state
        s.Created.seconds = self.created
        s.Created.nanos = self.created_nanos
        s.Expires.seconds = self.expires
        s.RequestReason = self.request_reason
        s.ResolveReason = self.resolve_reason
        s.ResolveAnnotations.SetInParent()
        s.SystemAnnotations.SetInParent()
        for k, vals in self.annotations.items():
            s.SystemAnnotations.Values[k].Values.extend(vals)
        for t in self.thresholds:
            s.Thresholds.add(Name=t.get("name", "default"), Approve=int(t.get("approve", 1)),
                             Deny=int(t.get("deny", 1)))
        for r in self.reviews:
            rv = s.Reviews.add(Author=r["author"], ProposedState=r["state"], Reason=r["reason"])
            rv.Created.seconds = r["created_ns"] // 10**9
            rv.Created.nanos = r["created_ns"] % 10**9
            rv.Annotations.SetInParent()
        # Go emits non-nullable zero times as 0001-01-01 (docs/teleport-wire.md §2.5).
        s.MaxDuration.seconds = GO_ZERO_TIME
        s.SessionTTL.seconds = GO_ZERO_TIME
        return m

    def json(self):
        return {
            "id": self.id, "user": self.user, "roles": self.roles, "state": STATE_NAMES[self.state],
            "created": self.created, "expires": self.expires, "request_reason": self.request_reason,
            "resolve_reason": self.resolve_reason, "annotations": self.annotations,
            "thresholds": self.thresholds,
            "reviews": [dict(r, state=STATE_NAMES[r["state"]], created=r["created_ns"] // 10**9)
                        for r in self.reviews],
        }


# --- TCP front for connection-level faults ------------------------------------------------------

class TcpFront:
    def __init__(self, host, port, backend_port):
        self.backend = ("127.0.0.1", backend_port)
        self.ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.ls.bind((host, port))
        self.ls.listen(128)
        self.port = self.ls.getsockname()[1]
        self.refuse_until = 0.0
        self.lock = threading.Lock()
        self.conns = set()
        self.stopping = False
        self.accepted = 0
        self.refused = 0
        self.thread = threading.Thread(target=self._accept_loop, daemon=True)
        self.thread.start()

    @staticmethod
    def _rst(s):
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        try:
            s.close()
        except OSError:
            pass

    def _accept_loop(self):
        while not self.stopping:
            try:
                c, _ = self.ls.accept()
            except OSError:
                return
            if self.stopping:
                self._rst(c)
                return
            if time.monotonic() < self.refuse_until:
                self.refused += 1
                self._rst(c)
                continue
            try:
                b = socket.create_connection(self.backend, timeout=5)
                b.settimeout(None)
                # A relay that holds back small writes (Nagle against delayed ACKs) adds 40 ms
                # stalls that no real Teleport connection has.
                for s in (c, b):
                    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                self._rst(c)
                continue
            self.accepted += 1
            pair = (c, b)
            with self.lock:
                self.conns.add(pair)
            threading.Thread(target=self._pump, args=(pair,), daemon=True).start()

    def _pump(self, pair):
        c, b = pair
        try:
            while True:
                r, _, _ = select.select([c, b], [], [], 0.5)
                with self.lock:
                    if pair not in self.conns:
                        return
                for s in r:
                    data = s.recv(65536)
                    if not data:
                        return
                    (b if s is c else c).sendall(data)
        except (OSError, ValueError):
            return
        finally:
            with self.lock:
                self.conns.discard(pair)
            self._rst(c)
            self._rst(b)

    def reset_all(self):
        with self.lock:
            pairs = list(self.conns)
            self.conns.clear()
        for c, b in pairs:
            self._rst(c)
            self._rst(b)
        return len(pairs)

    def refuse(self, seconds):
        self.refuse_until = time.monotonic() + float(seconds)
        self.reset_all()

    def stop(self):
        self.stopping = True
        try:
            self.ls.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.ls.close()
        self.reset_all()


# --- the fake ----------------------------------------------------------------------------------

class FakeTeleport:
    def __init__(self, pki_dir, host="127.0.0.1", port=0, cluster_name="example.com",
                 server_version="16.4.0", advanced_workflows=True,
                 proxy_public_addr="teleport.example.com:443", extra_client_cas=None):
        self.pki_dir = pki_dir
        self.host = host
        self.port = port
        self.cluster_name = cluster_name
        self.server_version = server_version
        self.advanced_workflows = advanced_workflows
        self.proxy_public_addr = proxy_public_addr
        self.extra_client_cas = extra_client_cas or []
        self.list_unimplemented = False
        self.ping_unimplemented = False
        self.list_page_cap = 0
        self.init_delay = 0.0
        self.skip_init = False
        self.init_with_status = True
        self.delays = {}
        self.fail_next = {}
        self.lock = threading.RLock()
        self.requests = {}
        self.plugin_store = {}  # request id -> {plugin: {key: value}}
        self.calls = []
        self.call_totals = collections.Counter()
        self.subscribers = set()
        self.seq = 0
        self.server = None
        self.front = None
        self.addr = None

    # lifecycle
    def start(self):
        ensure_pki(self.pki_dir, self.cluster_name)
        rd = lambda n: open(os.path.join(self.pki_dir, n), "rb").read()  # noqa: E731
        roots = rd("ca.crt") + b"".join(rd(x) if not os.path.isabs(x) else open(x, "rb").read()
                                        for x in self.extra_client_cas)
        creds = grpc.ssl_server_credentials([(rd("server.key"), rd("server.crt"))], root_certificates=roots,
                                            require_client_auth=True)
        # Teleport's keepalive enforcement (NewGRPCServer): pings allowed without calls, but not
        # more often than every KeepAlivePeriod (1 minute); faster pings earn GOAWAY too_many_pings.
        # C core's server default would be 5 minutes, which turns a correct 60 s client into a
        # "Too many pings" reconnect every few idle minutes.
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=64),
                                  options=[("grpc.keepalive_permit_without_calls", 1),
                                           ("grpc.http2.min_ping_interval_without_data_ms", 60000)])
        ga.add_AuthServiceServicer_to_server(_Servicer(self), self.server)
        backend = self.server.add_secure_port("127.0.0.1:0", creds)
        self.server.start()
        self.front = TcpFront(self.host, self.port, backend)
        self.addr = "%s:%d" % (self.host, self.front.port)
        return self

    def stop(self):
        with self.lock:
            subs = list(self.subscribers)
        for q in subs:
            q.put(("abort", grpc.StatusCode.UNAVAILABLE, "server shutting down"))
        if self.front:
            self.front.stop()
        if self.server:
            self.server.stop(grace=0.5).wait()

    def __enter__(self):
        return self.start()

    def __exit__(self, *a):
        self.stop()

    # store operations (also used by the control API)
    def _emit(self, ev):
        with self.lock:
            subs = list(self.subscribers)
        for q in subs:
            q.put(("event", ev))

    def _put(self, r):
        r.revision += 1
        self._emit(pa.Event(Type=pa.PUT, AccessRequest=r.to_pb()))

    def create_request(self, user, roles, annotations=None, reason="", thresholds=None, ttl=3600, rid=None):
        with self.lock:
            self.seq += 1
            rid = rid or str(uuid.uuid4())
            r = Req(rid, user, roles, reason, annotations,
                    thresholds if thresholds is not None else [{"name": "default", "approve": 1, "deny": 1}],
                    ttl, self.seq)
            self.requests[rid] = r
            self._put(r)
        return rid

    def get_request(self, rid):
        with self.lock:
            r = self.requests.get(rid)
            return r.json() if r else None

    def list_requests(self):
        with self.lock:
            return [r.json() for r in sorted(self.requests.values(), key=lambda x: x.seq)]

    def _apply_review(self, rid, author, state, reason, created_ns=0):
        """created_ns: the review's Created in Unix nanoseconds as the client sent it (0 = unset:
        the server stamps time.Now(), with nanoseconds)."""
        with self.lock:
            r = self.requests.get(rid)
            if r is None:
                raise Abort(grpc.StatusCode.NOT_FOUND,
                            'cannot apply review to access request "%s" (not found)' % rid)
            if state not in (STATES["APPROVED"], STATES["DENIED"]):
                raise Abort(grpc.StatusCode.INVALID_ARGUMENT,
                            "invalid state proposal: %s (expected approval/denial)" % STATE_NAMES.get(state, state))
            if not r.thresholds:
                raise Abort(grpc.StatusCode.INVALID_ARGUMENT, "request is uninitialized or does not support reviews")
            if any(x["author"] == author for x in r.reviews):
                raise Abort(grpc.StatusCode.PERMISSION_DENIED, 'user "%s" has already reviewed this request' % author)
            if r.state != STATES["PENDING"]:
                raise Abort(grpc.StatusCode.PERMISSION_DENIED,
                            "the access request has been already %s" % STATE_NAMES[r.state].lower())
            r.reviews.append({"author": author, "state": state, "reason": reason or "",
                              "created_ns": int(created_ns) if created_ns and created_ns > 0 else time.time_ns()})
            approvals = sum(1 for x in r.reviews if x["state"] == STATES["APPROVED"])
            denials = sum(1 for x in r.reviews if x["state"] == STATES["DENIED"])
            # Every threshold must be met (one threshold in practice; upstream's logic is richer).
            if denials and all(denials >= max(1, t.get("deny", 1)) for t in r.thresholds):
                r.state = STATES["DENIED"]
                r.resolve_reason = reason or ""
            elif approvals and all(approvals >= max(1, t.get("approve", 1)) for t in r.thresholds):
                r.state = STATES["APPROVED"]
                r.resolve_reason = reason or ""
            self._put(r)
            return r

    def review(self, rid, author, state, reason=""):
        st = STATES[state] if isinstance(state, str) else int(state)
        return self._apply_review(rid, author, st, reason).json()

    def promote(self, rid, author, reason="", access_list="example-list"):
        """Promotion to an access list (`tsh request promote` / the web UI's "promote"): the
        server applies a review proposing PROMOTED (refused from clients, see
        SubmitAccessReview) and the request becomes PROMOTED in the same write."""
        with self.lock:
            r = self.requests.get(rid)
            if r is None:
                raise Abort(grpc.StatusCode.NOT_FOUND, 'access request "%s" is not found' % rid)
            if r.state != STATES["PENDING"]:
                raise Abort(grpc.StatusCode.PERMISSION_DENIED,
                            "the access request has been already %s" % STATE_NAMES[r.state].lower())
            r.reviews.append({"author": author, "state": STATES["PROMOTED"], "reason": reason or "",
                              "created_ns": time.time_ns(), "access_list": access_list})
            r.state = STATES["PROMOTED"]
            r.resolve_reason = reason or ""
            self._put(r)
            return r.json()

    def create_then(self, user, roles, annotations=None, reason="", steps=(), thresholds=None, rid=None):
        """Creates a request and applies `steps` to it in one hold of the store lock, so that the
        watch events (the PENDING put, then each step's put or delete) leave back to back, within
        the same millisecond, in that order, as a real server emits them for a request reviewed
        right after its creation. A step is ("review", author, "APPROVED"|"DENIED", reason),
        ("promote", author, reason), ("state", state, reason) or ("delete",). Returns the id."""
        with self.lock:
            rid = self.create_request(user, roles, annotations, reason, thresholds, rid=rid)
            for st in steps:
                if st[0] == "review":
                    self.review(rid, st[1], st[2], st[3] if len(st) > 3 else "")
                elif st[0] == "promote":
                    self.promote(rid, st[1], st[2] if len(st) > 2 else "")
                elif st[0] == "state":
                    self.set_state(rid, st[1], st[2] if len(st) > 2 else "")
                elif st[0] == "delete":
                    self.delete_request(rid)
                else:
                    raise ValueError("unknown step %r" % (st,))
        return rid

    def set_state(self, rid, state, reason=""):
        with self.lock:
            r = self.requests.get(rid)
            if r is None:
                raise Abort(grpc.StatusCode.NOT_FOUND, 'access request "%s" is not found' % rid)
            r.state = STATES[state] if isinstance(state, str) else int(state)
            r.resolve_reason = reason or ""
            self._put(r)
            return r.json()

    def delete_request(self, rid):
        with self.lock:
            r = self.requests.pop(rid, None)
            if r is None:
                raise Abort(grpc.StatusCode.NOT_FOUND, 'access request "%s" is not found' % rid)
            ev = pa.Event(Type=pa.DELETE)
            ev.ResourceHeader.Kind = "access_request"
            ev.ResourceHeader.Version = "v3"
            ev.ResourceHeader.Metadata.Name = rid
            ev.ResourceHeader.Metadata.Namespace = "default"
            self._emit(ev)

    def plugin_data(self, rid, plugin="pagerduty"):
        with self.lock:
            return dict(self.plugin_store.get(rid, {}).get(plugin, {}))

    def set_plugin_data(self, rid, data, plugin="pagerduty"):
        with self.lock:
            ent = {k: v for k, v in data.items() if v != ""}
            if ent:
                self.plugin_store.setdefault(rid, {})[plugin] = ent
            else:
                self.plugin_store.get(rid, {}).pop(plugin, None)

    def reviews(self, rid):
        r = self.get_request(rid)
        return r["reviews"] if r else []

    def calls_for(self, method):
        with self.lock:
            return [c for c in self.calls if c["method"] == method]

    def clear_calls(self):
        with self.lock:
            self.calls.clear()
            self.call_totals.clear()

    def watcher_count(self):
        with self.lock:
            return len(self.subscribers)

    # faults
    def drop_streams(self, mode="abort"):
        """abort: status UNAVAILABLE; eof: clean end of stream; reset: cut every TCP connection."""
        if mode == "reset":
            return self.front.reset_all()
        with self.lock:
            subs = list(self.subscribers)
        for q in subs:
            if mode == "eof":
                q.put(("close",))
            else:
                q.put(("abort", grpc.StatusCode.UNAVAILABLE, "connection problem: watch stream dropped by the fake"))
        return len(subs)

    def refuse(self, seconds):
        self.front.refuse(seconds)

    def set_delay(self, method, seconds):
        self.delays[method] = float(seconds)

    def fail(self, method, code, message, count=1):
        code = getattr(grpc.StatusCode, code) if isinstance(code, str) else code
        self.fail_next[method] = [code, message, int(count)]

    def apply_faults(self, f):
        if "refuse_seconds" in f:
            self.refuse(f["refuse_seconds"])
        if "drop_streams" in f:
            self.drop_streams(f["drop_streams"] or "abort")
        for m, s in (f.get("delay") or {}).items():
            self.set_delay(m, s)
        for m, v in (f.get("fail_next") or {}).items():
            self.fail(m, v[0], v[1], v[2] if len(v) > 2 else 1)
        if "init_delay" in f:
            self.init_delay = float(f["init_delay"])
        if "skip_init" in f:
            self.skip_init = bool(f["skip_init"])

    def apply_config(self, c):
        for k in ("server_version", "cluster_name", "advanced_workflows", "proxy_public_addr",
                  "list_unimplemented", "list_page_cap", "ping_unimplemented", "init_with_status"):
            if k in c:
                setattr(self, k, c[k])

    # per-call bookkeeping
    def _enter(self, method, request, context):
        serial, cn = cert_identity(context)
        try:
            req = json_format.MessageToDict(request, preserving_proto_field_name=True)
        except Exception:
            req = {}
        rec = {"method": method, "serial": serial, "cn": cn, "time": time.time(), "request": req, "code": "OK"}
        with self.lock:
            self.calls.append(rec)
            self.call_totals[method] += 1   # exact counts even after the record list is trimmed
            if len(self.calls) > 100000:
                del self.calls[:50000]
        d = self.delays.get(method)
        if d:
            time.sleep(d)
        with self.lock:
            f = self.fail_next.get(method)
            if f and f[2] > 0:
                f[2] -= 1
                rec["code"] = f[0].name
                raise Abort(f[0], f[1])
        return rec, cn


def _rpc(method, stream=False):
    def deco(fn):
        if stream:
            def wrapper(self, request, context):
                try:
                    rec, cn = self.ft._enter(method, request, context)
                    yield from fn(self, request, context, cn)
                except Abort as a:
                    context.abort(a.code, a.message)
        else:
            def wrapper(self, request, context):
                rec = None
                try:
                    rec, cn = self.ft._enter(method, request, context)
                    return fn(self, request, context, cn)
                except Abort as a:
                    if rec is not None:
                        rec["code"] = a.code.name
                    context.abort(a.code, a.message)
        wrapper.__name__ = fn.__name__
        return wrapper
    return deco


class _Servicer(ga.AuthServiceServicer):
    def __init__(self, ft):
        self.ft = ft

    @_rpc("Ping")
    def Ping(self, request, context, cn):
        ft = self.ft
        if ft.ping_unimplemented:
            raise Abort(grpc.StatusCode.UNIMPLEMENTED, "unknown method Ping for service proto.AuthService")
        r = pa.PingResponse(ClusterName=ft.cluster_name, ServerVersion=ft.server_version,
                            ProxyPublicAddr=ft.proxy_public_addr, RemoteAddr=context.peer())
        r.ServerFeatures.AdvancedAccessWorkflows = bool(ft.advanced_workflows)
        return r

    @_rpc("WatchEvents", stream=True)
    def WatchEvents(self, request, context, cn):
        ft = self.ft
        accepted = []
        for k in request.Kinds:
            if k.Kind != "access_request":
                if request.AllowPartialSuccess:
                    continue
                raise Abort(grpc.StatusCode.INVALID_ARGUMENT, "watch kind %s is not supported by the fake" % k.Kind)
            for key in k.Filter:
                if key not in ("id", "user", "state"):
                    raise Abort(grpc.StatusCode.INVALID_ARGUMENT, "unknown filter key %s" % key)
            accepted.append(k)
        if not request.Kinds:
            raise Abort(grpc.StatusCode.INVALID_ARGUMENT, "missing parameter Kinds")
        q = queue.Queue()
        with ft.lock:
            ft.subscribers.add(q)
        try:
            if ft.init_delay:
                time.sleep(ft.init_delay)
            if not ft.skip_init:
                init = pa.Event(Type=pa.INIT)
                if ft.init_with_status:
                    init.WatchStatus.Kind = "watch_status"
                    init.WatchStatus.Version = "v1"
                    init.WatchStatus.Metadata.Name = "watch_status"
                    init.WatchStatus.Spec.Kinds.extend(accepted)
                yield init
            while context.is_active():
                try:
                    item = q.get(timeout=0.25)
                except queue.Empty:
                    continue
                if item[0] == "event":
                    yield item[1]
                elif item[0] == "close":
                    return
                elif item[0] == "abort":
                    context.abort(item[1], item[2])
        finally:
            with ft.lock:
                ft.subscribers.discard(q)

    def _filtered(self, f):
        ft = self.ft
        with ft.lock:
            out = sorted(ft.requests.values(), key=lambda x: x.seq)
            if f is not None:
                if f.ID:
                    out = [r for r in out if r.id == f.ID]
                if f.User:
                    out = [r for r in out if r.user == f.User]
                if f.State:
                    out = [r for r in out if r.state == f.State]
            # Encoded by the caller, page by page: encoding everything for every page made listing
            # 100,000 requests quadratic.
            return [(r.id, r.seq, r) for r in out]

    @_rpc("ListAccessRequests")
    def ListAccessRequests(self, request, context, cn):
        ft = self.ft
        if ft.list_unimplemented:
            raise Abort(grpc.StatusCode.UNIMPLEMENTED, "unknown method ListAccessRequests for service proto.AuthService")
        if request.Sort != 0 or request.Descending:
            raise Abort(grpc.StatusCode.INVALID_ARGUMENT, "backend reads only support default ascending sort")
        limit = request.Limit or 1000
        if limit > MAX_PAGE:
            raise Abort(grpc.StatusCode.INVALID_ARGUMENT, "page size of %d is too large" % limit)
        if ft.list_page_cap:
            limit = min(limit, int(ft.list_page_cap))
        items = self._filtered(request.Filter if request.HasField("Filter") else None)
        # Page keys are "<creation sequence>/<id>", so a deleted key item does not lose our place.
        start = 0
        if request.StartKey:
            try:
                kseq = int(request.StartKey.split("/", 1)[0])
            except ValueError:
                raise Abort(grpc.StatusCode.INVALID_ARGUMENT, "malformed start key %r" % request.StartKey)
            start = next((n for n, (_, sq, _) in enumerate(items) if sq >= kseq), len(items))
        page = items[start:start + limit]
        with ft.lock:
            resp = pa.ListAccessRequestsResponse(AccessRequests=[r.to_pb() for _, _, r in page])
        if start + limit < len(items):
            nid, nseq, _ = items[start + limit]
            resp.NextKey = "%d/%s" % (nseq, nid)
        return resp

    @_rpc("GetAccessRequestsV2", stream=True)
    def GetAccessRequestsV2(self, request, context, cn):
        for _, _, r in self._filtered(request):
            with self.ft.lock:
                m = r.to_pb()
            yield m

    @_rpc("GetPluginData")
    def GetPluginData(self, request, context, cn):
        ft = self.ft
        if request.Kind not in ("access_request", "access_list"):
            raise Abort(grpc.StatusCode.INVALID_ARGUMENT, "unsupported resource kind \"%s\"" % request.Kind)
        out = pa.PluginDataSeq()
        with ft.lock:
            ids = [request.Resource] if request.Resource else list(ft.plugin_store.keys())
            for rid in ids:
                entries = ft.plugin_store.get(rid)
                if not entries:
                    continue
                if request.Plugin and request.Plugin not in entries:
                    continue
                pd = out.PluginData.add(Kind="plugin_data", SubKind=request.Kind, Version="v3")
                pd.Metadata.Name = rid
                pd.Metadata.Namespace = "default"
                for plugin, data in entries.items():
                    for k, v in data.items():
                        pd.Spec.Entries[plugin].Data[k] = v
        return out

    @_rpc("UpdatePluginData")
    def UpdatePluginData(self, request, context, cn):
        ft = self.ft
        if request.Kind not in ("access_request", "access_list"):
            raise Abort(grpc.StatusCode.INVALID_ARGUMENT, "unsupported resource kind \"%s\"" % request.Kind)
        if not request.Resource or not request.Plugin:
            raise Abort(grpc.StatusCode.INVALID_ARGUMENT, "missing parameter Resource or Plugin")
        with ft.lock:
            # Like the real server: a write for a request that no longer exists fails, whatever
            # data it had (docs/teleport-wire.md §5; upstream's first write for a request deleted
            # at once fails the same way).
            if request.Kind == "access_request" and request.Resource not in ft.requests:
                raise Abort(grpc.StatusCode.NOT_FOUND, 'access_request "%s" is not found' % request.Resource)
            entries = ft.plugin_store.get(request.Resource)
            if entries is None:
                if request.Resource not in ft.requests:
                    raise Abort(grpc.StatusCode.NOT_FOUND, 'access_request "%s" is not found' % request.Resource)
                entries = {}
            cur = entries.get(request.Plugin)
            if len(request.Expect):
                for key in sorted(request.Expect.keys()):
                    want = request.Expect[key]
                    have = "" if cur is None else cur.get(key, "")
                    if want != have:
                        raise Abort(grpc.StatusCode.FAILED_PRECONDITION,
                                    'expectations not met for field "%s"' % key)
            new = dict(cur or {})
            for k, v in request.Set.items():
                if v == "":
                    new.pop(k, None)
                else:
                    new[k] = v
            if new:
                entries[request.Plugin] = new
            else:
                entries.pop(request.Plugin, None)
            ft.plugin_store[request.Resource] = entries
        return empty_pb2.Empty()

    @_rpc("SubmitAccessReview")
    def SubmitAccessReview(self, request, context, cn):
        ft = self.ft
        rv = request.Review
        if rv.ProposedState == STATES["PROMOTED"]:
            raise Abort(grpc.StatusCode.INVALID_ARGUMENT, "state promoted can be only set when promoting to access list")
        author = rv.Author or cn
        if author != cn:
            raise Abort(grpc.StatusCode.PERMISSION_DENIED, 'user "%s" cannot submit reviews on behalf of "%s"' % (cn, author))
        with ft.lock:
            r = ft.requests.get(request.RequestID)
            if r is None:
                raise Abort(grpc.StatusCode.NOT_FOUND,
                            'cannot apply review to access request "%s" (not found)' % request.RequestID)
            if len(rv.Roles) and sorted(rv.Roles) != sorted(r.roles):
                raise Abort(grpc.StatusCode.UNIMPLEMENTED,
                            "role subselection is not yet supported in reviews, try omitting role list")
            if len(rv.Annotations.Values):
                raise Abort(grpc.StatusCode.UNIMPLEMENTED,
                            "annotations are not yet supported in reviews, try omitting annotations field")
            created_ns = 0
            if rv.HasField("Created") and rv.Created.seconds > 0:
                created_ns = rv.Created.seconds * 10**9 + rv.Created.nanos
            r = ft._apply_review(request.RequestID, author, rv.ProposedState, rv.Reason, created_ns)
            return r.to_pb()

    @_rpc("DeleteAccessRequest")
    def DeleteAccessRequest(self, request, context, cn):
        self.ft.delete_request(request.ID)
        return empty_pb2.Empty()


# --- PKI ---------------------------------------------------------------------------------------

def ensure_pki(pki_dir, cluster="example.com"):
    if os.path.exists(os.path.join(pki_dir, "serials.txt")):
        return
    gen = os.path.join(SOURCE_DIR, "tests", "pki", "gen.sh")
    subprocess.run([gen, pki_dir, cluster], check=True)


def read_serials(pki_dir):
    """{"client": "3EA", ...} from serials.txt, normalised like the fake reports them."""
    out = {}
    with open(os.path.join(pki_dir, "serials.txt")) as fh:
        for line in fh:
            parts = line.split()
            if len(parts) == 2:
                out[parts[0]] = _norm_serial(parts[1])
    return out


# --- HTTP control API --------------------------------------------------------------------------

def make_control(ft, stop_event):
    class H(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a):
            pass

        def _send(self, code, obj):
            body = json.dumps(obj).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _body(self):
            n = int(self.headers.get("Content-Length") or 0)
            if n > 1 << 20:
                raise ValueError("body too large")
            raw = self.rfile.read(n) if n else b""
            return json.loads(raw) if raw.strip() else {}

        def _route(self, verb):
            u = urlparse(self.path)
            parts = [p for p in u.path.split("/") if p]
            qs = {k: v[-1] for k, v in parse_qs(u.query).items()}
            try:
                code, obj = self._dispatch(verb, parts, qs)
            except Abort as a:
                http = {grpc.StatusCode.NOT_FOUND: 404, grpc.StatusCode.PERMISSION_DENIED: 403,
                        grpc.StatusCode.INVALID_ARGUMENT: 400}.get(a.code, 409)
                code, obj = http, {"code": a.code.name, "message": a.message}
            except (ValueError, KeyError, TypeError) as e:
                code, obj = 400, {"code": "INVALID_ARGUMENT", "message": str(e)}
            except Exception as e:  # pragma: no cover
                traceback.print_exc()
                code, obj = 500, {"code": "INTERNAL", "message": str(e)}
            self._send(code, obj)

        def _dispatch(self, verb, p, qs):
            if p == ["health"] and verb == "GET":
                return 200, {"ok": True}
            if p == ["requests"]:
                if verb == "GET":
                    return 200, ft.list_requests()
                if verb == "POST":
                    b = self._body()
                    if b.get("then"):
                        rid = ft.create_then(b["user"], b.get("roles") or [], b.get("annotations") or {},
                                             b.get("reason", ""), [tuple(x) for x in b["then"]],
                                             b.get("thresholds"), b.get("id"))
                    else:
                        rid = ft.create_request(b["user"], b.get("roles") or [], b.get("annotations") or {},
                                                b.get("reason", ""), b.get("thresholds"), b.get("ttl", 3600),
                                                b.get("id"))
                    return 200, {"id": rid}
            if len(p) >= 2 and p[0] == "requests":
                rid = p[1]
                if len(p) == 2:
                    if verb == "GET":
                        r = ft.get_request(rid)
                        if r is None:
                            raise Abort(grpc.StatusCode.NOT_FOUND, "access request %s not found" % rid)
                        return 200, r
                    if verb == "DELETE":
                        ft.delete_request(rid)
                        return 200, {"deleted": rid}
                if len(p) == 3:
                    if p[2] == "review" and verb == "POST":
                        b = self._body()
                        return 200, ft.review(rid, b["author"], b.get("state", "APPROVED"), b.get("reason", ""))
                    if p[2] == "promote" and verb == "POST":
                        b = self._body()
                        return 200, ft.promote(rid, b["author"], b.get("reason", ""))
                    if p[2] == "state" and verb == "POST":
                        b = self._body()
                        return 200, ft.set_state(rid, b["state"], b.get("reason", ""))
                    if p[2] == "reviews" and verb == "GET":
                        return 200, ft.reviews(rid)
                    if p[2] == "plugin_data":
                        plugin = qs.get("plugin", "pagerduty")
                        if verb == "GET":
                            return 200, ft.plugin_data(rid, plugin)
                        if verb == "PUT":
                            ft.set_plugin_data(rid, self._body(), plugin)
                            return 200, ft.plugin_data(rid, plugin)
            if p == ["calls"]:
                if verb == "GET":
                    with ft.lock:
                        calls = list(ft.calls)
                    if "method" in qs:
                        calls = [c for c in calls if c["method"] == qs["method"]]
                    return 200, calls
                if verb == "DELETE":
                    ft.clear_calls()
                    return 200, {}
            if p == ["watchers"] and verb == "GET":
                return 200, {"count": ft.watcher_count()}
            if p == ["faults"] and verb == "POST":
                ft.apply_faults(self._body())
                return 200, {}
            if p == ["config"] and verb == "POST":
                ft.apply_config(self._body())
                return 200, {}
            if p == ["shutdown"] and verb == "POST":
                stop_event.set()
                return 200, {}
            return 404, {"code": "NOT_FOUND", "message": "no route %s %s" % (verb, self.path)}

        def do_GET(self):
            self._route("GET")

        def do_POST(self):
            self._route("POST")

        def do_PUT(self):
            self._route("PUT")

        def do_DELETE(self):
            self._route("DELETE")

    return H


def main(argv=None):
    ap = argparse.ArgumentParser(description="Fake Teleport Auth Service (gRPC, mTLS) for tests")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--control-port", type=int, default=0)
    ap.add_argument("--pki-dir", required=True)
    ap.add_argument("--cluster", default="example.com")
    ap.add_argument("--server-version", default="16.4.0")
    ap.add_argument("--no-advanced-workflows", action="store_true")
    ap.add_argument("--proxy-public-addr", default="teleport.example.com:443")
    a = ap.parse_args(argv)

    ft = FakeTeleport(a.pki_dir, host=a.host, port=a.port, cluster_name=a.cluster,
                      server_version=a.server_version, advanced_workflows=not a.no_advanced_workflows,
                      proxy_public_addr=a.proxy_public_addr)
    ft.start()
    stop = threading.Event()
    httpd = ThreadingHTTPServer(("127.0.0.1", a.control_port), make_control(ft, stop))
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    for s in (signal.SIGTERM, signal.SIGINT):
        signal.signal(s, lambda *_: stop.set())
    print(json.dumps({"addr": ft.addr, "control_url": "http://127.0.0.1:%d" % httpd.server_address[1],
                      "pid": os.getpid(), "cluster": a.cluster, "pki_dir": os.path.abspath(a.pki_dir)}),
          flush=True)
    while not stop.wait(0.5):
        pass
    httpd.shutdown()
    ft.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
