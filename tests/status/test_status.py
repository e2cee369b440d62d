"""Tests of the status server (/healthz, /readyz, /metrics) through the tpd_status_testserver binary.

The binary runs the real status server with fake checks that this driver flips over stdin; every
command is acknowledged, so no test sleeps to synchronise. Groups (selected with -k by ctest):
  endpoints   probe codes and bodies in each state, methods, paths, HEAD, keep-alive, metric values,
              listen-address parsing and start-up errors
  promtool    `promtool check metrics` on a live scrape
  prometheus  a real Prometheus server scrapes the endpoint on loopback; its API returns the series
  hostile     1,000 concurrent connections, oversized headers, slow senders, the connection cap
Run: TPD_STATUS_SERVER=<build>/tpd_status_testserver /usr/bin/python3 -m pytest tests/status -k <group>
"""
import json
import os
import re
import resource
import select
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request

import pytest

BIN = os.environ.get("TPD_STATUS_SERVER", "")
TEXT = "text/plain; charset=utf-8"
EXPO = "text/plain; version=0.0.4; charset=utf-8"
NOT_READY = ("[-]teleport failed: starting up\n[-]identity failed: starting up\n"
             "[-]pagerduty failed: starting up\n[-]initial-sync failed: starting up\nreadyz check failed\n")


def setup_module(module):
    assert BIN and os.access(BIN, os.X_OK), "set TPD_STATUS_SERVER to the tpd_status_testserver binary"
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, 8192) if hard != resource.RLIM_INFINITY else 8192
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


# --- the server under test ----------------------------------------------------------------------

class Server:
    """The test server process: start, send commands, stop (and require a clean, leak-free exit)."""

    def __init__(self, *args):
        self.stderr = tempfile.TemporaryFile()
        self.proc = subprocess.Popen([BIN, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.stderr, bufsize=0)
        self.buf = b""
        self.port = None
        line = self.readline(20)
        if line is None or not line.startswith("port="):
            self.proc.kill()
            self.proc.wait()
            raise RuntimeError("server did not start: %r %s" % (line, self.errors()))
        self.port = int(line[5:])

    def readline(self, timeout):
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            r, _, _ = select.select([self.proc.stdout], [], [], left)
            if not r:
                continue
            chunk = os.read(self.proc.stdout.fileno(), 4096)
            if not chunk:
                return None
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line.decode()

    def cmd(self, text, timeout=5):
        self.proc.stdin.write(text.encode() + b"\n")
        ans = self.readline(timeout)
        assert ans == "ack", "command %r answered %r" % (text, ans)

    def errors(self):
        self.stderr.seek(0)
        return self.stderr.read().decode(errors="replace")

    def stop(self):
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write(b"quit\n")
                self.proc.stdin.close()
            except BrokenPipeError:
                pass
        try:
            rc = self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("server did not stop within 30 s\n" + self.errors())
        assert rc == 0, "server exit code %d (sanitizer report?):\n%s" % (rc, self.errors())

    def fd_count(self):
        return len(os.listdir("/proc/%d/fd" % self.proc.pid))


@pytest.fixture
def server():
    s = Server()
    yield s
    s.stop()


# --- a small HTTP/1.1 client that shows exactly what went over the wire ------------------------

class Resp:
    def __init__(self, status, headers, body):
        self.status, self.headers, self.body = status, headers, body

    @property
    def text(self):
        return self.body.decode()


class Conn:
    def __init__(self, port, host="127.0.0.1", timeout=5):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.file = self.sock.makefile("rb")

    def request(self, method, path, headers=None, body=b""):
        lines = ["%s %s HTTP/1.1" % (method, path), "Host: localhost"]
        for k, v in (headers or {}).items():
            lines.append("%s: %s" % (k, v))
        if body:
            lines.append("Content-Length: %d" % len(body))
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        status_line = self.file.readline()
        # lws answers an upgrade it refuses with an HTTP/1.0 status line.
        assert re.match(rb"HTTP/1\.[01] \d\d\d ", status_line), "bad status line %r" % status_line
        status = int(status_line.split()[1])
        hdrs = {}
        while True:
            line = self.file.readline()
            assert line, "connection closed inside the headers"
            if line in (b"\r\n", b"\n"):
                break
            k, _, v = line.decode().partition(":")
            hdrs[k.strip().lower()] = v.strip()
        n = int(hdrs.get("content-length", "0"))
        data = b"" if method == "HEAD" else self.file.read(n)
        assert len(data) == (0 if method == "HEAD" else n)
        return Resp(status, hdrs, data)

    def closed_by_peer(self, timeout=5):
        """True when the server closes the connection (EOF or reset) within timeout."""
        self.sock.settimeout(timeout)
        try:
            return self.file.read(1) == b""
        except (ConnectionResetError, BrokenPipeError):
            return True
        except socket.timeout:
            return False

    def close(self):
        self.file.close()
        self.sock.close()


def get(port, path, method="GET", host="127.0.0.1"):
    c = Conn(port, host)
    try:
        return c.request(method, path)
    finally:
        c.close()


def metric_value(text, series):
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line[len(series) + 1:])
    return None


def assert_plain(r):
    assert r.headers["content-type"] == TEXT
    assert r.headers["cache-control"] == "no-store"


# --- endpoints ----------------------------------------------------------------------------------

def test_endpoints_probe_states(server):
    p = server.port
    # Starting: alive, not ready.
    r = get(p, "/healthz")
    assert (r.status, r.text) == (200, "ok")
    assert_plain(r)
    r = get(p, "/readyz")
    assert (r.status, r.text) == (503, NOT_READY)
    assert_plain(r)

    # Connected to Teleport, identity valid, PagerDuty healthy, but the initial sync is running.
    for name in ("teleport", "identity", "pagerduty"):
        server.cmd("set %s ok" % name)
    r = get(p, "/readyz")
    assert (r.status, r.text) == (503, "[-]initial-sync failed: starting up\nreadyz check failed\n")

    # Ready.
    server.cmd("set initial-sync ok")
    r = get(p, "/readyz")
    assert (r.status, r.text) == (200, "ok")
    for q in ("?verbose", "?verbose=1", "?x=1&verbose"):
        r = get(p, "/readyz" + q)
        assert (r.status, r.text) == (200, "[+]teleport ok\n[+]identity ok\n[+]pagerduty ok\n"
                                           "[+]initial-sync ok\nreadyz check passed\n")
    r = get(p, "/healthz?verbose")
    assert (r.status, r.text) == (200, "[+]ping ok\n[+]loops ok\nhealthz check passed\n")

    # Teleport down: not ready, still alive.
    server.cmd("set teleport fail watch stream broken: UNAVAILABLE")
    r = get(p, "/readyz")
    assert (r.status, r.text) == (503, "[-]teleport failed: watch stream broken: UNAVAILABLE\n"
                                       "readyz check failed\n")
    r = get(p, "/readyz?verbose")
    assert (r.status, r.text) == (503, "[-]teleport failed: watch stream broken: UNAVAILABLE\n"
                                       "[+]identity ok\n[+]pagerduty ok\n[+]initial-sync ok\n"
                                       "readyz check failed\n")
    assert get(p, "/healthz").status == 200

    # Identity expired and PagerDuty failing as well (control characters become spaces).
    server.cmd("set identity fail identity expired at 2026-01-01T00:00:00Z")
    server.cmd("set pagerduty fail HTTP 500\tfrom /abilities")
    r = get(p, "/readyz")
    assert (r.status, r.text) == (503, "[-]teleport failed: watch stream broken: UNAVAILABLE\n"
                                       "[-]identity failed: identity expired at 2026-01-01T00:00:00Z\n"
                                       "[-]pagerduty failed: HTTP 500 from /abilities\n"
                                       "readyz check failed\n")
    # A failure without a reason.
    server.cmd("set pagerduty fail")
    assert "[-]pagerduty failed\n" in get(p, "/readyz").text

    # Single checks, like /readyz/<name> on the Kubernetes API server.
    r = get(p, "/readyz/identity")
    assert (r.status, r.text) == (503, "[-]identity failed: identity expired at 2026-01-01T00:00:00Z\n"
                                       "readyz check failed\n")
    assert (get(p, "/readyz/initial-sync").status, get(p, "/readyz/initial-sync").text) == (200, "ok")
    assert get(p, "/readyz/nope").status == 404
    assert get(p, "/healthz/teleport").status == 404  # a readiness check is not a liveness check

    # All recovered.
    for name in ("teleport", "identity", "pagerduty"):
        server.cmd("set %s ok" % name)
    assert get(p, "/readyz").status == 200

    # A stuck worker: liveness fails with 500, readiness is independent.
    server.cmd("set loops fail worker 2 stuck for 31s")
    r = get(p, "/healthz")
    assert (r.status, r.text) == (500, "[-]loops failed: worker 2 stuck for 31s\nhealthz check failed\n")
    assert (get(p, "/healthz/loops").status, get(p, "/healthz/ping").text) == (500, "ok")
    assert get(p, "/readyz").status == 200
    server.cmd("set loops ok")
    assert get(p, "/healthz").status == 200

    # Graceful shutdown: not ready, still alive.
    server.cmd("shutdown")
    r = get(p, "/readyz")
    assert (r.status, r.text) == (503, "[-]shutdown failed: shutting down\nreadyz check failed\n")
    assert get(p, "/healthz").status == 200


def test_endpoints_methods_and_paths(server):
    p = server.port
    for method in ("POST", "PUT", "DELETE", "PATCH", "OPTIONS"):
        c = Conn(p)
        r = c.request(method, "/healthz", body=b"x=1" if method in ("POST", "PUT", "PATCH") else b"")
        assert r.status == 405, method
        assert r.headers["allow"] == "GET, HEAD"
        assert r.headers["connection"] == "close"
        assert_plain(r)
        assert c.closed_by_peer(), "connection stays open after 405 to " + method
        c.close()
    # A request body after a 405 is never read as a request.
    c = Conn(p)
    r = c.request("POST", "/metrics", body=b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    assert r.status == 405
    assert c.closed_by_peer()
    c.close()

    # HEAD: same headers as GET, no body, and the connection stays usable.
    c = Conn(p)
    full = c.request("GET", "/metrics")
    r = c.request("HEAD", "/metrics")
    assert r.status == 200 and r.body == b""
    assert r.headers["content-type"] == EXPO
    assert abs(int(r.headers["content-length"]) - len(full.body)) < 200  # the request counter moved
    r = c.request("HEAD", "/healthz")
    assert (r.status, r.headers["content-length"]) == (200, "2")
    r = c.request("HEAD", "/nope")
    assert r.status == 404
    r = c.request("GET", "/healthz")
    assert (r.status, r.text) == (200, "ok")
    c.close()

    # Everything else is 404 with a plain-text body: no files, no directories, no redirects.
    for path in ("/", "/nope", "/healthz/", "/readyz/", "/metricsx", "/metrics/x", "/index.html",
                 "/../../../../etc/passwd", "/%2e%2e/%2e%2e/etc/passwd", "/HEALTHZ", "/healthz%2f"):
        r = get(p, path)
        assert r.status == 404, path
        assert_plain(r)
        assert b"root:" not in r.body
    # Malformed request lines are refused: a 4xx answer or a closed connection, never a 200.
    for line in (b"GET /healthz%00 HTTP/1.1", b"GET healthz HTTP/1.1", b"BREW /healthz HTTP/1.1",
                 b"GET /" + b"a" * 20000 + b" HTTP/1.1", b"\x00\xff garbage"):
        c = Conn(p)
        c.sock.sendall(line + b"\r\nHost: x\r\n\r\n")
        c.sock.settimeout(10)
        try:
            first = c.file.readline()
        except ConnectionResetError:
            first = b""
        assert first == b"" or re.match(rb"HTTP/1\.[01] 4\d\d ", first), (line[:40], first)
        c.close()
    assert get(p, "/healthz").status == 200
    # HTTP/1.0 clients get an answer and the connection closes.
    c = Conn(p)
    c.sock.sendall(b"GET /healthz HTTP/1.0\r\n\r\n")
    c.sock.settimeout(5)
    assert c.file.read().endswith(b"\r\n\r\nok")
    c.close()

    # Protocol upgrades (WebSocket, h2c) are refused: an upgraded connection would escape the
    # HTTP timeouts.
    for hdrs in ({"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
                  "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="},
                 {"Connection": "Upgrade, HTTP2-Settings", "Upgrade": "h2c", "HTTP2-Settings": "AAMAAABkAAQAAP__"}):
        c = Conn(p)
        r = c.request("GET", "/healthz", headers=hdrs)
        assert r.status == 400, hdrs["Upgrade"]
        assert_plain(r)
        assert c.closed_by_peer()
        c.close()

    # Keep-alive: several requests on one connection.
    c = Conn(p)
    assert [c.request("GET", u).status for u in ("/healthz", "/readyz", "/metrics", "/healthz")] == \
        [200, 503, 200, 200]
    c.close()


def test_endpoints_metrics_values(server):
    p = server.port
    r = get(p, "/metrics")
    assert r.status == 200
    assert r.headers["content-type"] == EXPO
    assert r.headers["cache-control"] == "no-store"
    text = r.text
    assert metric_value(text, "teleport_pagerduty_test_events_total") == 0
    assert re.search(r'^teleport_pagerduty_build_info\{version="[^"]+",commit="[^"]+"\} 1$', text, re.M)
    start = metric_value(text, "teleport_pagerduty_start_time_seconds")
    assert abs(start - time.time()) < 600
    for name in ("process_cpu_seconds_total", "process_resident_memory_bytes", "process_open_fds",
                 "process_start_time_seconds"):
        assert metric_value(text, name) is not None, name
    assert metric_value(text, "process_resident_memory_bytes") > 1e6
    # The process has the listener, the lws cancel pipe, stdio and a few more open.
    assert 3 < metric_value(text, "process_open_fds") < 100
    fds_seen = metric_value(text, "process_open_fds")
    assert abs(fds_seen - server.fd_count()) <= 3

    # Values move after a scenario.
    healthz = 'teleport_pagerduty_status_requests_total{handler="healthz",code="200"}'
    before = metric_value(get(p, "/metrics").text, healthz) or 0
    server.cmd("inc 1")
    server.cmd("observe 0.05")
    server.cmd("observe 5")
    get(p, "/healthz")
    text = get(p, "/metrics").text
    assert metric_value(text, "teleport_pagerduty_test_events_total") == 1
    assert metric_value(text, healthz) == before + 1
    h = "teleport_pagerduty_test_request_duration_seconds"
    assert metric_value(text, h + '_bucket{call="get_oncalls",le="0.01"}') == 0
    assert metric_value(text, h + '_bucket{call="get_oncalls",le="0.1"}') == 1
    assert metric_value(text, h + '_bucket{call="get_oncalls",le="1"}') == 1
    assert metric_value(text, h + '_bucket{call="get_oncalls",le="+Inf"}') == 2
    assert metric_value(text, h + '_sum{call="get_oncalls"}') == 5.05
    assert metric_value(text, h + '_count{call="get_oncalls"}') == 2
    assert 'teleport_pagerduty_test_label_escaping{value="back\\\\slash \\"quoted\\"\\nnext line"} 1\n' in text


def start_failure(*args):
    p = subprocess.run([BIN, *args], stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=20)
    return p.returncode, p.stderr


def test_endpoints_listen_addresses():
    for bad in ("nonsense", "127.0.0.1", "127.0.0.1:99999", "127.0.0.1:http", "::1:8081", "[::1]",
                "[::1]8081", "[]:80", ":", "a b:80", ""):
        rc, err = start_failure(bad)
        assert rc == 2, bad
        assert 'bad status listen address "%s"' % bad in err or "listen address is empty" in err, err
        assert 'for example ":8081"' in err, err

    # A port in use is named, with the fix.
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        rc, err = start_failure("127.0.0.1:%d" % port)
        assert rc == 2
        assert "127.0.0.1:%d" % port in err and "already in use" in err and "listen_addr" in err, err

    # Not an address of this machine (TEST-NET-1), and an unresolvable host.
    rc, err = start_failure("192.0.2.1:0")
    assert rc == 2 and "not an address of this machine" in err, err
    rc, err = start_failure("no-such-host.invalid:0")
    assert rc == 2 and "cannot resolve host" in err, err

    # All interfaces, a host name, and IPv6 when the machine has it.
    s = Server(":0")
    try:
        assert get(s.port, "/healthz").status == 200
        if socket.has_ipv6 and os.path.exists("/proc/net/if_inet6"):
            assert get(s.port, "/healthz", host="::1").status == 200
    finally:
        s.stop()
    s = Server("localhost:0")
    try:
        assert get(s.port, "/healthz", host="localhost").status == 200
    finally:
        s.stop()
    if os.path.exists("/proc/net/if_inet6"):
        s = Server("[::1]:0")
        try:
            assert get(s.port, "/healthz", host="::1").status == 200
            with pytest.raises(OSError):
                get(s.port, "/healthz", host="127.0.0.1")
        finally:
            s.stop()


# --- promtool -----------------------------------------------------------------------------------

def test_promtool_check_metrics(server):
    promtool = shutil.which("promtool")
    assert promtool, "promtool not found: install the Debian package prometheus (scripts/deps.d/status.list)"
    server.cmd("inc 3")
    server.cmd("observe 0.2")
    get(server.port, "/readyz")
    scrape = get(server.port, "/metrics").body
    p = subprocess.run([promtool, "check", "metrics"], input=scrape, capture_output=True, timeout=30)
    assert p.returncode == 0, "promtool check metrics failed (%d):\n%s\n%s" % (
        p.returncode, p.stderr.decode(), scrape.decode())
    assert p.stderr.strip() == b"", p.stderr.decode()
    assert metric_value(scrape.decode(), "teleport_pagerduty_test_events_total") == 3
    # And it does catch a broken exposition, so the check above means something.
    bad = scrape + b"teleport_pagerduty_bad{x=\"1} 1\n"
    p = subprocess.run([promtool, "check", "metrics"], input=bad, capture_output=True, timeout=30)
    assert p.returncode != 0


# --- a real Prometheus --------------------------------------------------------------------------

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def prom_query(port, q):
    url = "http://127.0.0.1:%d/api/v1/query?%s" % (port, urllib.parse.urlencode({"query": q}))
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            doc = json.load(r)
    except OSError:
        return None
    if doc.get("status") != "success":
        return None
    return doc["data"]["result"]


def wait_for(fn, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = fn()
        if v:
            return v
        time.sleep(0.2)  # polling interval of a condition with a deadline, not synchronisation
    raise AssertionError("timed out after %ds waiting for %s" % (timeout, what))


def test_prometheus_scrapes_endpoint(server, tmp_path):
    prometheus = shutil.which("prometheus")
    promtool = shutil.which("promtool")
    assert prometheus and promtool, "install the Debian package prometheus (scripts/deps.d/status.list)"
    cfg = tmp_path / "prometheus.yml"
    cfg.write_text(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n"
        "scrape_configs:\n  - job_name: tpd\n    static_configs:\n"
        "      - targets: ['127.0.0.1:%d']\n" % server.port)
    p = subprocess.run([promtool, "check", "config", str(cfg)], capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stdout + p.stderr
    server.cmd("inc 7")
    server.cmd("observe 0.05")
    log = open(tmp_path / "prometheus.log", "wb")
    prom = None
    try:
        for attempt in range(3):  # the free port can be taken between free_port() and the bind
            pport = free_port()
            prom = subprocess.Popen([prometheus, "--config.file=%s" % cfg,
                                     "--storage.tsdb.path=%s" % (tmp_path / ("data%d" % attempt)),
                                     "--web.listen-address=127.0.0.1:%d" % pport, "--log.level=warn"],
                                    stdout=log, stderr=log, cwd=tmp_path)
            try:
                wait_for(lambda: prom.poll() is not None or prom_query(pport, "vector(1)"), 30,
                         "the Prometheus API")
            except AssertionError:
                break
            if prom.poll() is None:
                break
        assert prom.poll() is None, "prometheus exited:\n" + (tmp_path / "prometheus.log").read_text()

        def series(q, want=None):
            res = prom_query(pport, q)
            if not res:
                return None
            if want is not None and res[0]["value"][1] != want:
                return None
            return res

        up = wait_for(lambda: series('up{job="tpd"}', "1"), 40, "up{job=\"tpd\"} == 1")
        assert up[0]["metric"]["instance"] == "127.0.0.1:%d" % server.port
        ev = wait_for(lambda: series("teleport_pagerduty_test_events_total", "7"), 20, "the events counter")
        assert ev[0]["metric"]["job"] == "tpd"
        bi = series("teleport_pagerduty_build_info")
        assert bi and bi[0]["value"][1] == "1" and bi[0]["metric"]["version"]
        esc = series("teleport_pagerduty_test_label_escaping")
        assert esc and esc[0]["metric"]["value"] == 'back\\slash "quoted"\nnext line'
        b = series('teleport_pagerduty_test_request_duration_seconds_bucket{le="0.1"}')
        assert b and b[0]["value"][1] == "1"
        assert series("process_resident_memory_bytes")
        # Later scrapes see later values.
        server.cmd("inc 2")
        wait_for(lambda: series("teleport_pagerduty_test_events_total", "9"), 20, "the counter to reach 9")
        scrapes = series('teleport_pagerduty_status_requests_total{handler="metrics",code="200"}')
        assert scrapes and float(scrapes[0]["value"][1]) >= 1  # counted after each render
    finally:
        if prom and prom.poll() is None:
            prom.terminate()
            try:
                prom.wait(20)
            except subprocess.TimeoutExpired:
                prom.kill()
                prom.wait()
        log.close()


# --- hostile clients ----------------------------------------------------------------------------

def open_many(port, n):
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.setblocking(False)
        try:
            s.connect(("127.0.0.1", port))
        except BlockingIOError:
            pass
        socks.append(s)
    # Wait until every connect has completed (the kernel completes them; lws may not accept yet).
    pending = list(socks)
    deadline = time.monotonic() + 10
    while pending and time.monotonic() < deadline:
        _, w, _ = select.select([], pending[:500], [], 1)
        pending = [s for s in pending if s not in w]
    assert not pending, "%d connects did not complete" % len(pending)
    return socks


def try_send(s, data):
    try:
        s.send(data)
        return True
    except (BlockingIOError, BrokenPipeError, ConnectionResetError):
        return False


def is_closed(s):
    try:
        return s.recv(4096) == b""
    except BlockingIOError:
        return False
    except (ConnectionResetError, BrokenPipeError):
        return True


def timed_get(port, path="/readyz"):
    t = time.monotonic()
    r = get(port, path)
    return r, time.monotonic() - t


def test_hostile_clients(server):
    p = server.port
    server.cmd("set teleport ok")
    r, quiet = timed_get(p)
    assert r.status == 503
    base_fds = server.fd_count()

    socks = open_many(p, 1000)
    idle, slow, big = socks[:700], socks[700:900], socks[900:]
    # Oversized headers: 20 KB of one header (the cap is 8 KB) and, on one connection, 1 MB.
    for s in big[:-1]:
        try_send(s, b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n")
    whale = big[-1]
    whale.setblocking(True)
    whale.settimeout(10)
    try:
        whale.sendall(b"GET /healthz HTTP/1.1\r\n" + (b"X-Big: " + b"b" * 1000 + b"\r\n") * 1000)
    except (BrokenPipeError, ConnectionResetError, socket.timeout):
        pass  # the server hung up on it
    whale.setblocking(False)
    # Slow senders (slowloris): a request that never ends, one header line at a time.
    for s in slow:
        try_send(s, b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
    t_slow = time.monotonic()

    # While all of this is going on: the process lives, other threads are not held up, and a
    # normal client still gets its answer promptly.
    t = time.monotonic()
    server.cmd("inc 1")
    assert time.monotonic() - t < 0.5, "the main thread was held up"
    r, during = timed_get(p)
    assert r.status == 503 and r.text.startswith("[-]identity failed")
    assert during < 2, "a normal request took %.2fs during the flood" % during
    assert server.proc.poll() is None

    # Oversized requests are refused: closed without a 200.
    deadline = time.monotonic() + 5
    open_big = list(big)
    while open_big and time.monotonic() < deadline:
        open_big = [s for s in open_big if not is_closed(s)]
        if open_big:
            select.select(open_big, [], [], 0.2)
    assert not open_big, "%d oversized requests were not refused" % len(open_big)

    # Slow senders keep trickling, and are cut off once the 5 s header timeout is over.
    i = 0
    open_slow = list(slow)
    while open_slow and time.monotonic() - t_slow < 10:
        i += 1
        open_slow = [s for s in open_slow if try_send(s, b"X-%d: y\r\n" % i) and not is_closed(s)]
        select.select(open_slow, [], [], 0.3)
    cut = time.monotonic() - t_slow
    assert not open_slow, "%d slow senders still connected after %.1fs" % (len(open_slow), cut)
    assert 4 <= cut < 9, "slow senders cut after %.1fs, expected about 5s" % cut

    # Idle connections are gone by now too (same 5 s limit).
    deadline = time.monotonic() + 5
    open_idle = list(idle)
    while open_idle and time.monotonic() < deadline:
        open_idle = [s for s in open_idle if not is_closed(s)]
        if open_idle:
            select.select(open_idle, [], [], 0.2)
    assert not open_idle, "%d idle connections still open" % len(open_idle)
    for s in socks:
        s.close()

    # Afterwards: prompt answers, no leaked descriptors, metrics still fine, process alive.
    r, after = timed_get(p)
    assert r.status == 503
    assert after < 0.5, "a normal request took %.2fs after the flood (quiet: %.3fs)" % (after, quiet)
    wait_for(lambda: server.fd_count() <= base_fds + 1, 5, "descriptors to return to %d" % base_fds)
    r = get(p, "/metrics")
    assert r.status == 200 and metric_value(r.text, "teleport_pagerduty_test_events_total") == 1
    assert server.proc.poll() is None
    # Clients cannot flood the log: nothing but the start-up line was written.
    lines = [l for l in server.errors().splitlines() if l.strip()]
    assert len(lines) <= 2, "the flood reached the log:\n" + "\n".join(lines[:20])


def test_hostile_connection_cap():
    s = Server("127.0.0.1:0", "64")
    try:
        base = s.fd_count()
        socks = open_many(s.port, 300)
        # Let lws accept what it will: poll the descriptor count until it stops growing.
        last, stable_since = -1, time.monotonic()
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline and time.monotonic() - stable_since < 0.5:
            n = s.fd_count()
            if n != last:
                last, stable_since = n, time.monotonic()
            time.sleep(0.05)  # sampling interval of an external count
        assert last <= base + 64 + 4, "server holds %d descriptors with a cap of 64" % (last - base)
        assert last >= base + 32, "the server did not accept connections at all"
        t = time.monotonic()
        s.cmd("inc 1")
        assert time.monotonic() - t < 0.5
        for x in socks:
            x.close()
        # Once the flood is gone the server answers at once.
        r = wait_for(lambda: get(s.port, "/healthz"), 10, "an answer after the flood")
        assert r.status == 200
        r, took = timed_get(s.port, "/healthz")
        assert took < 0.5
    finally:
        s.stop()
