#!/usr/bin/python3
"""fakecap.py - measures the capacity of the two fakes from a separate process (so that the load
generator does not share the fakes' interpreter lock): N threads, each with its own keep-alive
HTTPS connection, POST notes to the fake PagerDuty; then N threads call GetPluginData (unary gRPC
over mTLS, through the fake's TCP front) on the fake Teleport. Prints one JSON line:
{"pd_rps": ..., "tp_rps": ...}. The client costs CPU too, so these are lower bounds.

Usage: fakecap.py --pd-url URL --ca FILE --api-key-file F --incident ID --tp-addr A --pki DIR
                  [--seconds 3] [--threads 8] [--rid RID]
"""

import argparse
import http.client
import json
import os
import ssl
import sys
import threading
import time
from urllib.parse import urlparse

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "lib"))  # tpdtest


def pd_load(a, key):
    u = urlparse(a.pd_url)
    ctx = ssl.create_default_context(cafile=a.ca)
    hdr = {"Authorization": "Token token=" + key, "Accept": "application/vnd.pagerduty+json;version=2",
           "Content-Type": "application/json", "From": "bot@example.com"}
    body = json.dumps({"note": {"content": "capacity probe"}})
    counts = [0] * a.threads
    stop = time.monotonic() + a.seconds

    def run(i):
        c = http.client.HTTPSConnection(u.hostname, u.port, context=ctx, timeout=10)
        while time.monotonic() < stop:
            c.request("POST", "/incidents/%s/notes" % a.incident, body=body, headers=hdr)
            r = c.getresponse()
            r.read()
            if r.status == 200:
                counts[i] += 1
        c.close()
    ts = [threading.Thread(target=run, args=(i,)) for i in range(a.threads)]
    t0 = time.monotonic()
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return sum(counts) / (time.monotonic() - t0)


def tp_load(a):
    os.environ.setdefault("GRPC_VERBOSITY", "NONE")
    import grpc
    from tpdtest import fake_teleport as F
    rd = lambda n: open(os.path.join(a.pki, n), "rb").read()  # noqa: E731
    creds = grpc.ssl_channel_credentials(rd("ca.crt"), rd("client.key"), rd("client.crt"))
    counts = [0] * a.threads
    stop = time.monotonic() + a.seconds

    def run(i):
        ch = grpc.secure_channel(a.tp_addr, creds, options=[("grpc.ssl_target_name_override", "localhost")])
        stub = F.ga.AuthServiceStub(ch)
        req = F.pt.PluginDataFilter(Kind="access_request", Resource=a.rid, Plugin="pagerduty")
        while time.monotonic() < stop:
            stub.GetPluginData(req, timeout=10)
            counts[i] += 1
        ch.close()
    ts = [threading.Thread(target=run, args=(i,)) for i in range(a.threads)]
    t0 = time.monotonic()
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return sum(counts) / (time.monotonic() - t0)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pd-url", required=True)
    ap.add_argument("--ca", required=True)
    ap.add_argument("--api-key-file", required=True)
    ap.add_argument("--incident", required=True)
    ap.add_argument("--tp-addr", required=True)
    ap.add_argument("--pki", required=True)
    ap.add_argument("--rid", default="")
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--threads", type=int, default=8)
    a = ap.parse_args()
    with open(a.api_key_file) as f:
        key = f.read().strip()
    out = {"pd_rps": pd_load(a, key), "tp_rps": tp_load(a), "threads": a.threads, "seconds": a.seconds}
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
