#!/usr/bin/python3
"""make_seeds.py - regenerates the generated part of the seed corpora in tests/fuzz/corpus/.

Run with Debian's python3 (it has protobuf):  /usr/bin/python3 tests/fuzz/make_seeds.py
Writes, each file named after what it holds:
  fuzz_teleport/   protobuf messages built with the modules protoc generates from proto/ (the same
                   way the fake Teleport does), each prefixed with the decoder selector byte
                   (0 Event, 1 AccessRequestV3, 2 ListAccessRequestsResponse, 3 PluginDataSeq);
  fuzz_identity/   identity files from tests/pki/gen.sh (a throw-away test PKI made for this, never
                   used anywhere else) and broken variants of them;
  fuzz_pd_json/    PagerDuty response bodies (docs/pagerduty-api.md), prefixed with the status selector byte;
  fuzz_pd_client/  scripted exchanges for the client target (format in fuzz_pd_client.c);
  fuzz_status/     raw HTTP requests.
The hand-written TOML/YAML seeds are not touched. Output is deterministic except the PKI.
"""
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
CORPUS = os.path.join(HERE, "corpus")


def put(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# ---- Teleport protobuf ------------------------------------------------------------------------
def teleport_seeds():
    gen = tempfile.mkdtemp(prefix="tpd-fuzz-pb-")
    protos = sorted(p for p in os.listdir(os.path.join(ROOT, "proto")) if p.endswith(".proto"))
    subprocess.run(["protoc", "-I" + os.path.join(ROOT, "proto"), "-I/usr/include", "--python_out=" + gen]
                   + [os.path.join(ROOT, "proto", p) for p in protos], check=True)
    sys.path.insert(0, gen)
    import teleport_authservice_pb2 as pa  # noqa: E402
    import teleport_types_pb2 as pt  # noqa: E402

    def request(rid, user, state, notify=None, services=None, reviews=0, reason="need access"):
        r = pt.AccessRequestV3(Kind="access_request", Version="v3")
        r.Metadata.Name = rid
        r.Metadata.Revision = "rev-" + rid[:4]
        s = r.Spec
        s.User = user
        s.Roles.extend(["editor", "db-admin"])
        s.State = state
        s.Created.seconds = 1700000000
        s.Expires.seconds = 1700003600
        s.RequestReason = reason
        if notify is not None:
            s.SystemAnnotations.Values["pagerduty_notify_service"].Values.extend(notify)
        if services is not None:
            s.SystemAnnotations.Values["pagerduty_services"].Values.extend(services)
        for i in range(reviews):
            rv = s.Reviews.add(Author="reviewer%d" % i, ProposedState=pt.APPROVED if i % 2 == 0 else pt.DENIED,
                               Reason="looks fine %d" % i)
            rv.Created.seconds = 1700000100 + i
        if state in (pt.APPROVED, pt.DENIED):
            s.ResolveReason = "resolved by policy"
        return r

    rid = "8f6a3c1e-5b1d-4d8e-9c3a-2f1e0d9c8b7a"
    pending = request(rid, "alice@example.com", pt.PENDING, notify=["Teleport Access"],
                      services=["DB on-call", "Teleport Access", "DB on-call"])
    approved = request(rid, "alice@example.com", pt.APPROVED, notify=["Teleport Access"], reviews=2)
    denied = request(rid, "bob", pt.DENIED, notify=["Teleport Access"], reviews=1, reason="")
    zero_time = request("00000000-0000-0000-0000-000000000000", "carol", pt.PROMOTED)
    zero_time.Spec.Created.seconds = -62135596800

    ev = pa.Event(Type=pa.INIT)
    ev.WatchStatus.Kind = "watch_status"
    put("fuzz_teleport", "event-init", b"\x00" + ev.SerializeToString())
    put("fuzz_teleport", "event-init-bare", b"\x00" + pa.Event(Type=pa.INIT).SerializeToString())
    ev = pa.Event(Type=pa.PUT)
    ev.AccessRequest.CopyFrom(pending)
    put("fuzz_teleport", "event-put-pending", b"\x00" + ev.SerializeToString())
    ev = pa.Event(Type=pa.PUT)
    ev.AccessRequest.CopyFrom(approved)
    put("fuzz_teleport", "event-put-approved", b"\x00" + ev.SerializeToString())
    ev = pa.Event(Type=pa.DELETE)
    ev.ResourceHeader.Kind = "access_request"
    ev.ResourceHeader.Metadata.Name = rid
    put("fuzz_teleport", "event-delete", b"\x00" + ev.SerializeToString())
    ev = pa.Event(Type=pa.DELETE)
    ev.ResourceHeader.Metadata.Name = rid
    put("fuzz_teleport", "event-delete-nokind", b"\x00" + ev.SerializeToString())
    # An Event oneof member we do not declare (field 3, a role): must be ignored.
    put("fuzz_teleport", "event-put-unknown-member", b"\x00" + pa.Event(Type=pa.PUT).SerializeToString()
        + b"\x1a\x05\x0a\x03abc")

    put("fuzz_teleport", "request-pending", b"\x01" + pending.SerializeToString())
    put("fuzz_teleport", "request-denied", b"\x01" + denied.SerializeToString())
    put("fuzz_teleport", "request-zero-time", b"\x01" + zero_time.SerializeToString())

    lst = pa.ListAccessRequestsResponse(NextKey="page-2")
    lst.AccessRequests.extend([pending, approved, denied])
    put("fuzz_teleport", "list-page", b"\x02" + lst.SerializeToString())
    put("fuzz_teleport", "list-empty", b"\x02" + pa.ListAccessRequestsResponse().SerializeToString())

    seq = pa.PluginDataSeq()
    pd = seq.PluginData.add(Kind="plugin_data", Version="v3")
    pd.Metadata.Name = rid
    e = pd.Spec.Entries["pagerduty"]
    for k, v in [("incident_id", "PINC001"), ("service_id", "PSVC001"), ("user", "alice@example.com"),
                 ("roles", "editor,db-admin"), ("created", "1700000000"), ("request_reason", "need access"),
                 ("reviews_count", "1"), ("resolution", ""), ("resolve_reason", ""), ("pd_resolved", ""),
                 ("future_key", "ignored")]:
        e.Data[k] = v
    pd.Spec.Entries["slack"].Data["channel"] = "C1"
    put("fuzz_teleport", "plugindata-pagerduty", b"\x03" + seq.SerializeToString())
    seq2 = pa.PluginDataSeq()
    seq2.PluginData.add().Spec.Entries["slack"].Data["x"] = "y"
    put("fuzz_teleport", "plugindata-other-plugin", b"\x03" + seq2.SerializeToString())


# ---- identity files ---------------------------------------------------------------------------
def identity_seeds():
    pki = tempfile.mkdtemp(prefix="tpd-fuzz-pki-")
    out = os.path.join(pki, "pki")
    subprocess.run([os.path.join(ROOT, "tests", "pki", "gen.sh"), out, "fuzz.example.com", "fuzz-bot"], check=True,
                   stdout=subprocess.DEVNULL)
    ident = open(os.path.join(out, "identity-ec"), "rb").read()
    put("fuzz_identity", "identity-ec", ident)
    rsa = open(os.path.join(out, "identity"), "rb").read()
    put("fuzz_identity", "identity-rsa", rsa)
    put("fuzz_identity", "identity-crlf", ident.replace(b"\n", b"\r\n"))
    # Broken variants: the parser must explain each.
    blocks = ident.split(b"-----END ")
    put("fuzz_identity", "identity-truncated", ident[: len(ident) // 2])
    put("fuzz_identity", "identity-no-ca", b"-----END ".join(blocks[:2]) + b"-----END CERTIFICATE-----\n")
    put("fuzz_identity", "identity-dangling-end", b"-----END CERTIFICATE-----\n" + ident)
    lines = ident.split(b"\n")
    put("fuzz_identity", "identity-bad-base64", b"\n".join(l if i != 3 else b"!!!!" + l[4:]
                                                            for i, l in enumerate(lines)))
    key = open(os.path.join(out, "client-ec.key"), "rb").read()
    crt = open(os.path.join(out, "client-ec.crt"), "rb").read()
    ca = open(os.path.join(out, "ca.crt"), "rb").read()
    put("fuzz_identity", "pem-only-key-crt-ca", key + crt + ca)
    put("fuzz_identity", "pem-mismatched-key", open(os.path.join(out, "client.key"), "rb").read() + crt + ca)


# ---- PagerDuty --------------------------------------------------------------------------------
SERVICES = ('{"services":[{"id":"PSVC001","type":"service","summary":"Teleport Access","name":"Teleport Access",'
            '"status":"active","escalation_policy":{"id":"PPOL001","type":"escalation_policy_reference",'
            '"summary":"DB on-call"}}],"limit":25,"offset":0,"more":false,"total":null}')
SERVICES_P1 = ('{"services":[{"id":"PSVC009","type":"service","name":"Other","escalation_policy":{"id":"PPOL009"}}],'
               '"limit":1,"offset":0,"more":true,"total":null}')
USERS = ('{"users":[{"id":"PUSER01","type":"user","name":"Alice","email":"Alice@Example.com","role":"user",'
         '"summary":"Alice","time_zone":"Etc/UTC"}],"limit":100,"offset":0,"more":false,"total":null}')
ONCALLS = ('{"oncalls":[{"user":{"id":"PUSER01","type":"user_reference","summary":"Alice"},'
           '"schedule":{"id":"PSCH001","type":"schedule_reference"},'
           '"escalation_policy":{"id":"PPOL001","type":"escalation_policy_reference"},'
           '"escalation_level":1,"start":"2026-01-01T00:00:00Z","end":"2026-01-08T00:00:00Z"}],'
           '"limit":25,"offset":0,"more":false,"total":null}')
INCIDENT = ('{"incident":{"id":"PINC001","type":"incident","status":"triggered","title":"Access request from alice",'
            '"incident_key":"teleport-access-request/8f6a3c1e","service":{"id":"PSVC001","type":"service_reference"}}}')
INCIDENTS = ('{"incidents":[{"id":"PINC002","type":"incident","status":"resolved",'
             '"incident_key":"teleport-access-request/8f6a3c1e"},{"id":"PINC001","type":"incident",'
             '"status":"triggered","incident_key":"teleport-access-request/8f6a3c1e"},{"id":"PINC003",'
             '"type":"incident","status":"acknowledged","incident_key":"other/1"}],'
             '"limit":25,"offset":0,"more":false,"total":null}')
NOTE = '{"note":{"id":"PNOTE01","content":"alice reviewed","created_at":"2026-01-01T00:00:00Z"}}'
DUP = ('{"error":{"message":"Arguments Caused Error","code":2002,"errors":'
       '["Open incident with matching dedup key already exists on this service"]}}')
ERR_400 = '{"error":{"message":"Invalid Input Provided","code":2001,"errors":["Service not found"]}}'
ERR_404 = '{"error":{"message":"Not Found","code":2100}}'
ERR_429 = '{"error":{"message":"Rate Limit Exceeded","code":2020}}'
ABILITIES = '{"abilities":["teams","read_only_users","service_support_hours","urgencies"]}'


def pd_seeds():
    # Status selector: byte % 14 indexes {400,401,402,403,404,408,409,429,500,502,503,504,200,201}.
    sel = {400: "8", 401: "9", 403: ";", 404: "<", 429: "?", 500: "@", 503: "B", 200: "D", 201: "E"}
    for name, st, body in [("services", 200, SERVICES), ("users", 200, USERS), ("oncalls", 200, ONCALLS),
                           ("incident", 201, INCIDENT), ("incidents", 200, INCIDENTS), ("note", 201, NOTE),
                           ("abilities", 200, ABILITIES), ("dup-key", 400, DUP), ("err-400", 400, ERR_400),
                           ("err-404", 404, ERR_404), ("err-429", 429, ERR_429),
                           ("err-401-html", 401, "<html><body>\x1b[31mUnauthorized</body></html>\r\n"),
                           ("err-invalid-json", 400, '{"error":{"code":"invalid_json","message":"Invalid JSON"}}'),
                           ("err-503-empty", 503, ""), ("deep-array", 400, "[" * 70 + "]" * 70),
                           ("trailing-garbage", 200, '{"a":1} x'), ("unicode", 400,
                           '{"error":{"message":"\\u00e9\\ud83d\\ude00\\u0000nul","code":-1,"errors":[1,"x",null]}}')]:
        put("fuzz_pd_json", name, sel[st] + body)

    def script(op, *answers):
        out = op
        for a in answers:
            head, body = a if isinstance(a, tuple) else (a, "")
            out += "\n@" + head + "\n" + body
        return out

    put("fuzz_pd_client", "health-ok", script("h", ("200", ABILITIES)))
    put("fuzz_pd_client", "health-401", script("h", ("401", '{"error":{"message":"Unauthorized","code":2006}}')))
    put("fuzz_pd_client", "service-found", script("s", ("200", SERVICES)))
    put("fuzz_pd_client", "service-paged", script("s", ("200", SERVICES_P1), ("200", SERVICES)))
    put("fuzz_pd_client", "service-429-then-ok", script("s", ("429 r2", ERR_429), ("503 a1", ""), ("200", SERVICES)))
    put("fuzz_pd_client", "user-found", script("u", ("200", USERS)))
    put("fuzz_pd_client", "user-none", script("U", ("200", '{"users":[],"more":false}')))
    put("fuzz_pd_client", "oncall", script("o", ("200", ONCALLS)))
    put("fuzz_pd_client", "create-201", script("c", ("201", INCIDENT)))
    put("fuzz_pd_client", "create-dup-adopt", script("c", ("400", DUP), ("200", INCIDENTS)))
    put("fuzz_pd_client", "create-reset-then-lookup", script("C", ("0", ""), ("200", INCIDENTS)))
    put("fuzz_pd_client", "find-by-key", script("k", ("200", INCIDENTS)))
    put("fuzz_pd_client", "note", script("n", ("201", NOTE)))
    put("fuzz_pd_client", "resolve", script("r", ("200", INCIDENT.replace("triggered", "resolved"))))
    put("fuzz_pd_client", "resolve-404", script("r", ("404", ERR_404)))
    put("fuzz_pd_client", "list-open", script("l", ("200", INCIDENTS.replace('"more":false', '"more":true')),
                                              ("200", INCIDENTS)))
    put("fuzz_pd_client", "not-json-2xx", script("s", ("200", "<html>ok</html>")))


# ---- HTTP requests to the status server --------------------------------------------------------
def status_seeds():
    reqs = {
        "get-healthz": "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
        "get-readyz-verbose": "GET /readyz?verbose HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        "get-readyz-check": "GET /readyz/pagerduty?verbose=1&x=%00 HTTP/1.1\r\nHost: x\r\n\r\n",
        "get-healthz-check": "GET /healthz/watcher HTTP/1.0\r\n\r\n",
        "get-metrics": "GET /metrics HTTP/1.1\r\nHost: x\r\nAccept: text/plain\r\n\r\n",
        "head-metrics": "HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n",
        "post-405": "POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
        "get-404": "GET /../../etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n",
        "pipelined": "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /readyz HTTP/1.1\r\nHost: x\r\n\r\n",
        "upgrade-ws": ("GET /metrics HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                       "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"),
        "upgrade-h2c": "GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
                       "HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n",
        "chunked": "POST /metrics HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        "h2-preface": "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        "long-header": "GET /healthz HTTP/1.1\r\nX-Long: " + "a" * 9000 + "\r\n\r\n",
        "absolute-uri": "GET http://127.0.0.1/readyz HTTP/1.1\r\nHost: x\r\n\r\n",
    }
    for name, r in reqs.items():
        put("fuzz_status", name, r)


if __name__ == "__main__":
    teleport_seeds()
    pd_seeds()
    status_seeds()
    identity_seeds()
