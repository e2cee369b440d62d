"""test_fake_pagerduty.py - the fake PagerDuty itself (import mode): auth, header and body
validation with the real status codes and error bodies, pagination, incident_key
de-duplication, notes answering 200, resolution, ratelimit headers and fault injection."""
import json
import os
import ssl
import sys
import urllib.error
import urllib.request

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))  # tpdtest
from tpdtest.fake_pagerduty import FakePagerDuty  # noqa: E402

KEY = "pytest-key-123456"
HDRS = {"Authorization": "Token token=" + KEY, "Accept": "application/vnd.pagerduty+json;version=2",
        "Content-Type": "application/json"}


@pytest.fixture(scope="module")
def fp(tmp_path_factory):
    f = FakePagerDuty(api_key=KEY, read_only_keys=["ro-key-123456"], cert_dir=str(tmp_path_factory.mktemp("pki")))
    f.add_user("Bot", "bot@example.com")
    f.start()
    yield f
    f.stop()


def call(fp, method, path, body=None, headers=None):
    h = dict(HDRS) if headers is None else headers
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(fp.url + path, data=data, method=method, headers=h)
    ctx = ssl.create_default_context(cafile=fp.ca_file)
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=10) as r:
            return r.status, json.loads(r.read() or b"null"), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null"), dict(e.headers)


def test_auth_and_headers(fp):
    st, body, _ = call(fp, "GET", "/abilities", headers={k: v for k, v in HDRS.items() if k != "Authorization"})
    assert st == 401 and body["error"]["code"] == 2006
    st, _, _ = call(fp, "GET", "/abilities", headers=dict(HDRS, Authorization="Bearer " + KEY))
    assert st == 401
    st, body, _ = call(fp, "GET", "/abilities", headers=dict(HDRS, **{"Content-Type": "application/json; charset=utf-8"}))
    assert st == 400 and body["error"]["code"] == 2001
    st, body, hdrs = call(fp, "GET", "/abilities")
    assert st == 200 and "teams" in body["abilities"]
    assert hdrs["ratelimit-limit"] == "960" and int(hdrs["ratelimit-reset"]) >= 1
    st, body, _ = call(fp, "POST", "/incidents", {"incident": {}}, dict(HDRS, Authorization="Token token=ro-key-123456",
                                                                     From="bot@example.com"))
    assert st == 403 and body["error"]["code"] == 2010


def test_pagination(fp):
    for i in range(30):
        fp.add_service("Paged %02d" % i)
    st, body, _ = call(fp, "GET", "/services?query=paged&limit=25&offset=0&total=true")
    assert (st, len(body["services"]), body["more"], body["total"]) == (200, 25, True, 30)
    st, body, _ = call(fp, "GET", "/services?query=paged&limit=25&offset=25")
    assert (len(body["services"]), body["more"], body["total"]) == (5, False, None)
    st, body, _ = call(fp, "GET", "/services?limit=100&offset=9950")
    assert st == 400
    st, body, _ = call(fp, "GET", "/services?limit=abc")
    assert st == 400


def test_incident_lifecycle_and_dedup(fp):
    sid = fp.add_service("Lifecycle")
    inc = {"incident": {"type": "incident", "title": "t", "service": {"id": sid, "type": "service_reference"},
                        "incident_key": "k-1", "body": {"type": "incident_body", "details": "d"}}}
    st, body, _ = call(fp, "POST", "/incidents", inc)
    assert st == 400 and "From" in body["error"]["errors"][0]
    w = dict(HDRS, From="bot@example.com")
    st, body, _ = call(fp, "POST", "/incidents", inc, w)
    assert st == 201 and body["incident"]["status"] == "triggered"
    iid = body["incident"]["id"]
    assert "body" not in body["incident"]
    st, body, _ = call(fp, "POST", "/incidents", inc, w)
    assert st == 400 and body["error"]["code"] == 2002
    assert body["error"]["errors"] == ["Open incident with matching dedup key already exists on this service"]
    st, body, _ = call(fp, "POST", "/incidents/%s/notes" % iid, {"note": {"content": "hello"}}, w)
    assert st == 200 and body["note"]["content"] == "hello"
    assert [n["content"] for n in fp.notes(iid)] == ["hello"]
    st, body, _ = call(fp, "PUT", "/incidents/%s" % iid, {"incident": {"type": "incident_reference",
                                                                        "status": "resolved"}}, w)
    assert st == 200 and body["incident"]["status"] == "resolved"
    st, body, _ = call(fp, "PUT", "/incidents/%s" % iid, {"incident": {"type": "incident_reference",
                                                                        "status": "resolved"}}, w)
    assert st == 400 and body["error"]["code"] == 1001
    st, body, _ = call(fp, "POST", "/incidents", inc, w)  # the key is free again once resolved
    assert st == 201
    st, body, _ = call(fp, "GET", "/incidents?incident_key=k-1&date_range=all")
    assert sorted(i["status"] for i in body["incidents"]) == ["resolved", "triggered"]
    bad = json.loads(json.dumps(inc))
    bad["incident"]["service"]["id"] = "PNOPE"
    st, body, _ = call(fp, "POST", "/incidents", bad, w)
    assert st == 400 and body["error"]["errors"] == ["Service not found"]
    st, body, _ = call(fp, "POST", "/incidents/PNOPE/notes", {"note": {"content": "x"}}, w)
    assert st == 404 and body == {"error": {"message": "Not Found", "code": 2100}}


def test_fault_injection_and_recording(fp):
    fp.inject("status", status=429, count=1, reset=7, path="/abilities")
    st, body, hdrs = call(fp, "GET", "/abilities")
    assert st == 429 and body["error"]["code"] == 2020
    assert hdrs["ratelimit-remaining"] == "0" and hdrs["ratelimit-reset"] == "7"
    fp.inject("status", status=503, count=1, path="/abilities")
    assert call(fp, "GET", "/abilities")[0] == 503
    assert call(fp, "GET", "/abilities")[0] == 200
    fp.inject("drop", count=1, path="/abilities")
    with pytest.raises((urllib.error.URLError, ConnectionError, OSError)):
        call(fp, "GET", "/abilities")
    rec = fp.api_requests()
    assert rec[-1]["path"] == "/abilities" and rec[-1]["status"] == 0
    fp.set_rate_limit(2)
    codes = [call(fp, "GET", "/abilities")[0] for _ in range(4)]
    fp.set_rate_limit(None)
    assert codes == [200, 200, 429, 429]


def test_operation_limit_on_create_incident(fp):
    """POST /incidents limited to 3 per 30 s window: its headers describe the operation's window
    (closer to its limit than the key's), the 4th create gets 429 with them, other calls and the
    incidents' own sub-resources are not limited."""
    svc = fp.add_service("Op limited")
    w = dict(HDRS, From="bot@example.com")

    def create(i):
        return call(fp, "POST", "/incidents", {"incident": {"type": "incident", "title": "t%d" % i,
                                                            "service": {"id": svc, "type": "service_reference"},
                                                            "incident_key": "op-limit-%d" % i}}, w)
    fp.set_op_limit("POST", "/incidents", 3, window_s=30)
    try:
        answers = [create(i) for i in range(4)]
        assert [a[0] for a in answers] == [201, 201, 201, 429]
        assert [a[2]["ratelimit-remaining"] for a in answers] == ["2", "1", "0", "0"]
        assert all(a[2]["ratelimit-limit"] == "3" and 1 <= int(a[2]["ratelimit-reset"]) <= 30 for a in answers)
        assert answers[3][1]["error"]["code"] == 2020
        st, _, hdrs = call(fp, "GET", "/abilities")
        assert st == 200 and hdrs["ratelimit-limit"] == "960"
        iid = answers[0][1]["incident"]["id"]
        assert call(fp, "POST", "/incidents/%s/notes" % iid, {"note": {"content": "x"}}, w)[0] == 200
        assert len([r for r in fp.api_requests() if r["path"] == "/incidents" and r["status"] == 429]) == 1
    finally:
        fp.set_op_limit("POST", "/incidents", None)
    assert create(9)[0] == 201


def test_missing_incident_type_only_when_accepted(fp):
    """Upstream's plugin omits incident.type (the real API takes it); the fake refuses that unless
    the bench switches accept_missing_incident_type on, so our own tests still catch an omission."""
    sid = fp.add_service("No type")
    w = dict(HDRS, From="bot@example.com")
    inc = {"incident": {"title": "t", "service": {"id": sid, "type": "service_reference"}, "incident_key": "nt-1"}}
    st, body, _ = call(fp, "POST", "/incidents", inc, w)
    assert st == 400 and body["error"]["code"] == 2001
    fp.accept_missing_incident_type = True
    try:
        st, body, _ = call(fp, "POST", "/incidents", inc, w)
        assert st == 201
        wrong = {"incident": dict(inc["incident"], type="incident_reference", incident_key="nt-2")}
        st, body, _ = call(fp, "POST", "/incidents", wrong, w)
        assert st == 400   # a wrong type is still refused
    finally:
        fp.accept_missing_incident_type = False
