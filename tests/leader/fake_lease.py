#!/usr/bin/python3
"""fake_lease.py - a small HTTPS fake of the Kubernetes coordination.k8s.io/v1 Lease endpoints,
for fault-injecting unit tests of src/runtime/leader.c (tests/unit/test_leader.c).

It answers like the real kube-apiserver does (1.20 first, v1.35 now; leader/k8s compares them,
docs/kubernetes-lease.md §1-2):
  GET    /apis/coordination.k8s.io/v1/namespaces/{ns}/leases/{name}  200 | 404 NotFound
  POST   /apis/coordination.k8s.io/v1/namespaces/{ns}/leases         201 | 409 AlreadyExists
  PUT    /apis/coordination.k8s.io/v1/namespaces/{ns}/leases/{name}  200 | 201 (create on update)
         | 409 Conflict (stale metadata.resourceVersion) | 422 Invalid (no resourceVersion)
         | 400 BadRequest (a time not in MicroTime layout 2006-01-02T15:04:05.000000Z07:00)
  a wrong bearer token → 401 Unauthorized; errors are `kind: Status` objects.

Control API (no auth, same port, under /_fake/):
  POST /_fake/faults    {"method": "GET"|"PUT"|"POST"|"*", "status": 503, "count": N,
                         "hang_ms": M, "message": "..."}  queue a fault for the next N matching
                         lease requests (status 0 + hang_ms = answer late, as a timeout)
  POST /_fake/clear     drop queued faults
  POST /_fake/token     {"token": "..."}  accept only this token from now on
  GET  /_fake/lease/{ns}/{name}   the stored object (404 if none)
  PUT  /_fake/lease/{ns}/{name}   store an object as another client would (rv bumped)
  GET  /_fake/requests  [{"method","path","status","t"}...] every lease request answered

Usage: fake_lease.py --dir DIR --token TOKEN   (writes DIR/ca.crt, DIR/server.key; prints
"READY <port>" on stdout once listening on 127.0.0.1)
"""
import argparse
import json
import re
import ssl
import subprocess
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MICROTIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}(Z|[+-]\d\d:\d\d)$")
PREFIX = "/apis/coordination.k8s.io/v1/namespaces/"
MAX_BODY = 1 << 20


class State:
    def __init__(self, token):
        self.lock = threading.Lock()
        self.token = token
        self.rv = 100
        self.leases = {}
        self.faults = []
        self.requests = []

    def bump(self):
        self.rv += 1
        return str(self.rv)


def status(code, reason, message, name=None):
    body = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "code": code}
    if name is not None:
        body["details"] = {"name": name, "group": "coordination.k8s.io", "kind": "leases"}
    return code, body


def check_spec(obj):
    spec = obj.get("spec") or {}
    for k in ("acquireTime", "renewTime"):
        v = spec.get(k)
        if v is not None and (not isinstance(v, str) or not MICROTIME.match(v)):
            return status(400, "BadRequest",
                          'Lease in version "v1" cannot be handled as a Lease: parsing time "%s" as '
                          '"2006-01-02T15:04:05.000000Z07:00": cannot parse' % v)
    for k in ("leaseDurationSeconds", "leaseTransitions"):
        v = spec.get(k)
        if v is not None and (not isinstance(v, int) or isinstance(v, bool)):
            return status(400, "BadRequest", "%s must be an integer" % k)
    h = spec.get("holderIdentity")
    if h is not None and not isinstance(h, str):
        return status(400, "BadRequest", "holderIdentity must be a string")
    return None


def make_handler(st):
    class H(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a):
            pass

        def send(self, code, body):
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def body(self):
            n = int(self.headers.get("Content-Length") or 0)
            if n > MAX_BODY:
                return None
            raw = self.rfile.read(n) if n else b""
            try:
                return json.loads(raw) if raw else None
            except ValueError:
                return None

        def do_GET(self):
            self.route("GET")

        def do_POST(self):
            self.route("POST")

        def do_PUT(self):
            self.route("PUT")

        def route(self, method):
            if self.path.startswith("/_fake/"):
                return self.control(method)
            body = self.body() if method != "GET" else None
            code, resp = self.lease_api(method, body)
            with st.lock:
                st.requests.append({"method": method, "path": self.path, "status": code, "t": time.time()})
            if code is None:  # hung request: never answer, drop the connection
                self.close_connection = True
                return
            self.send(code, resp)

        def take_fault(self, method):
            with st.lock:
                for f in st.faults:
                    if f["method"] in ("*", method) and f["count"] > 0:
                        f["count"] -= 1
                        return dict(f)
            return None

        def lease_api(self, method, body):
            auth = self.headers.get("Authorization", "")
            with st.lock:
                token = st.token
            if auth != "Bearer " + token:
                return status(401, "Unauthorized", "Unauthorized")
            f = self.take_fault(method)
            if f:
                if f.get("hang_ms"):
                    time.sleep(f["hang_ms"] / 1000.0)
                if f.get("status"):
                    msg = f.get("message") or "injected fault"
                    msg = msg.replace("{auth}", auth)
                    reason = {409: "Conflict", 500: "InternalError", 503: "ServiceUnavailable",
                              429: "TooManyRequests", 403: "Forbidden", 401: "Unauthorized"}.get(f["status"], "Unknown")
                    return status(f["status"], reason, msg)
                if f.get("hang_ms"):
                    return None, None
            rest = self.path[len(PREFIX):] if self.path.startswith(PREFIX) else None
            parts = rest.split("/") if rest else []
            if len(parts) < 2 or parts[1] != "leases" or len(parts) > 3:
                return status(404, "NotFound", "the server could not find the requested resource")
            ns = parts[0]
            name = parts[2] if len(parts) == 3 else None
            with st.lock:
                if method == "GET" and name:
                    obj = st.leases.get((ns, name))
                    if obj is None:
                        return status(404, "NotFound", 'leases.coordination.k8s.io "%s" not found' % name, name)
                    return 200, obj
                if method == "POST" and not name:
                    if not isinstance(body, dict):
                        return status(400, "BadRequest", "bad body")
                    name = (body.get("metadata") or {}).get("name")
                    if not name:
                        return status(422, "Invalid", "metadata.name: Required value")
                    if (ns, name) in st.leases:
                        return status(409, "AlreadyExists",
                                      'leases.coordination.k8s.io "%s" already exists' % name, name)
                    bad = check_spec(body)
                    if bad:
                        return bad
                    return 201, self.store(ns, name, body)
                if method == "PUT" and name:
                    if not isinstance(body, dict):
                        return status(400, "BadRequest", "bad body")
                    bad = check_spec(body)
                    if bad:
                        return bad
                    cur = st.leases.get((ns, name))
                    rv = (body.get("metadata") or {}).get("resourceVersion")
                    if cur is None:
                        return 201, self.store(ns, name, body)
                    if not rv:
                        return status(422, "Invalid", "metadata.resourceVersion: Invalid value: 0x0: "
                                      "must be specified for an update", name)
                    if rv != cur["metadata"]["resourceVersion"]:
                        return status(409, "Conflict", 'Operation cannot be fulfilled on leases.coordination.k8s.io '
                                      '"%s": the object has been modified; please apply your changes to the '
                                      'latest version and try again' % name, name)
                    return 200, self.store(ns, name, body, cur)
            return status(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")

        def store(self, ns, name, body, cur=None):
            obj = json.loads(json.dumps(body))
            meta = obj.setdefault("metadata", {})
            meta["name"] = name
            meta["namespace"] = ns
            meta["uid"] = cur["metadata"]["uid"] if cur else str(uuid.uuid4())
            meta["creationTimestamp"] = (cur["metadata"]["creationTimestamp"] if cur
                                         else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
            meta["resourceVersion"] = st.bump()
            obj["apiVersion"] = "coordination.k8s.io/v1"
            obj["kind"] = "Lease"
            st.leases[(ns, name)] = obj
            return obj

        def control(self, method):
            body = self.body() if method != "GET" else None
            p = self.path[len("/_fake/"):]
            with st.lock:
                if p == "faults" and method == "POST":
                    f = {"method": "*", "status": 0, "count": 1, "hang_ms": 0}
                    f.update(body or {})
                    st.faults.append(f)
                    return self.send(200, {"ok": True})
                if p == "clear" and method == "POST":
                    st.faults = []
                    return self.send(200, {"ok": True})
                if p == "token" and method == "POST":
                    st.token = body["token"]
                    return self.send(200, {"ok": True})
                if p == "requests" and method == "GET":
                    return self.send(200, st.requests)
                if p.startswith("lease/"):
                    _, ns, name = p.split("/", 2)
                    if method == "GET":
                        obj = st.leases.get((ns, name))
                        return self.send(200 if obj else 404, obj or {})
                    if method == "PUT":
                        return self.send(200, self.store(ns, name, body, st.leases.get((ns, name))))
            self.send(404, {"error": "unknown control path"})

    return H


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", required=True)
    ap.add_argument("--token", required=True)
    a = ap.parse_args()
    crt, key = a.dir + "/ca.crt", a.dir + "/server.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", crt,
                    "-days", "2", "-subj", "/CN=fake-kube-apiserver",
                    "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
                    "-addext", "basicConstraints=critical,CA:TRUE"],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    st = State(a.token)
    srv = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(st))
    srv.daemon_threads = True
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(crt, key)
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    print("READY %d" % srv.server_address[1], flush=True)
    # Exit when the parent closes our stdin (the test process died or finished).
    threading.Thread(target=lambda: (sys.stdin.read(), srv.shutdown()), daemon=True).start()
    srv.serve_forever()


if __name__ == "__main__":
    main()
