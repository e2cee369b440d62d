#!/usr/bin/python3
"""k8s_harness.py - a real Kubernetes API server on loopback for tests: Debian's etcd-server and
the kube-apiserver v1.35 that scripts/k8s.sh builds from the Go module proxy
(docs/kubernetes-lease.md §2).

Free ports are picked dynamically (bind port 0), so several harnesses can run side by side.
Authentication is a static token file with per-run random tokens:
  admin   system:masters
  plugin  system:serviceaccount:teleport:teleport-plugin-pagerduty (RBAC-checked; the chart's
          ServiceAccount, which the leader-election participants use)
Authorization is RBAC. A kubeconfig with contexts `admin` and `plugin` is written to the state
directory.

Library:  h = Harness(state_dir); h.start(); ...; h.stop()
CLI:      k8s_harness.py start STATE_DIR   (prints KUBECONFIG=..., runs until SIGTERM/Ctrl-C)
Env:      KUBE_APISERVER (default: from scripts/k8s.sh --print-env --no-install), ETCD
"""
import contextlib
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def free_ports(n):
    socks, ports = [], []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
        ports.append(s.getsockname()[1])
    for s in socks:
        s.close()
    return ports


def tool_env():
    """Paths of kube-apiserver, kubectl and etcd from scripts/k8s.sh (which must have run)."""
    env = {}
    if os.environ.get("KUBE_APISERVER"):
        env["KUBE_APISERVER"] = os.environ["KUBE_APISERVER"]
        env["KUBECTL"] = os.environ.get("KUBECTL", "")
        env["ETCD"] = os.environ.get("ETCD", "etcd")
        return env
    out = subprocess.run(["bash", os.path.join(ROOT, "scripts", "k8s.sh"), "--print-env", "--no-install"],
                         check=True, capture_output=True, text=True).stdout
    for line in out.splitlines():
        k, _, v = line.replace("export ", "").partition("=")
        env[k] = v.strip('"')
    return env


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kw)


class Harness:
    def __init__(self, state):
        self.state = state
        self.pki = os.path.join(state, "pki")
        self.procs = []
        self.tools = tool_env()
        self.admin_token = "admin-" + secrets.token_hex(16)
        self.plugin_token = "plugin-" + secrets.token_hex(16)
        self.url = None
        self.kubeconfig = os.path.join(state, "kubeconfig")

    def _pki(self):
        p = self.pki
        os.makedirs(p, exist_ok=True)
        run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", p + "/ca.key",
             "-out", p + "/ca.crt", "-days", "2", "-subj", "/CN=test-ca"])
        run(["openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", p + "/apiserver.key",
             "-out", p + "/apiserver.csr", "-subj", "/CN=kube-apiserver"])
        with open(p + "/ext.cnf", "w") as f:
            f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n")
        run(["openssl", "x509", "-req", "-in", p + "/apiserver.csr", "-CA", p + "/ca.crt", "-CAkey",
             p + "/ca.key", "-CAcreateserial", "-out", p + "/apiserver.crt", "-days", "2",
             "-extfile", p + "/ext.cnf"])
        run(["openssl", "genrsa", "-out", p + "/sa.key", "2048"])
        run(["openssl", "rsa", "-in", p + "/sa.key", "-pubout", "-out", p + "/sa.pub"])
        with open(p + "/tokens.csv", "w") as f:
            f.write('%s,admin,1,"system:masters"\n' % self.admin_token)
            f.write('%s,system:serviceaccount:teleport:teleport-plugin-pagerduty,2,'
                    '"system:serviceaccounts,system:serviceaccounts:teleport"\n' % self.plugin_token)
        os.chmod(p + "/tokens.csv", 0o600)
        # the participants read their token from a file, as from a projected SA volume
        with open(p + "/plugin-token", "w") as f:
            f.write(self.plugin_token + "\n")
        os.chmod(p + "/plugin-token", 0o600)

    def _spawn(self, name, cmd):
        log = open(os.path.join(self.state, name + ".log"), "w")
        pr = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.procs.append((name, pr, log))
        return pr

    def start(self, timeout=60):
        os.makedirs(self.state, exist_ok=True)
        self._pki()
        etcd_c, etcd_p, api = free_ports(3)
        self._spawn("etcd", [
            self.tools.get("ETCD") or "etcd", "--name", "test", "--data-dir", os.path.join(self.state, "etcd"),
            "--listen-client-urls", "http://127.0.0.1:%d" % etcd_c,
            "--advertise-client-urls", "http://127.0.0.1:%d" % etcd_c,
            "--listen-peer-urls", "http://127.0.0.1:%d" % etcd_p,
            "--initial-advertise-peer-urls", "http://127.0.0.1:%d" % etcd_p,
            "--initial-cluster", "test=http://127.0.0.1:%d" % etcd_p,
            "--log-level", "warn"])
        p = self.pki
        self._spawn("apiserver", [
            self.tools["KUBE_APISERVER"], "--etcd-servers=http://127.0.0.1:%d" % etcd_c,
            "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", "--secure-port=%d" % api,
            "--tls-cert-file=%s/apiserver.crt" % p,
            "--tls-private-key-file=%s/apiserver.key" % p, "--client-ca-file=%s/ca.crt" % p,
            "--token-auth-file=%s/tokens.csv" % p, "--authorization-mode=RBAC",
            "--service-account-key-file=%s/sa.pub" % p, "--service-account-signing-key-file=%s/sa.key" % p,
            "--service-account-issuer=https://kubernetes.default.svc",
            "--service-cluster-ip-range=10.96.0.0/24", "--endpoint-reconciler-type=none",
            "--enable-priority-and-fairness=false", "--cert-dir=%s/certs" % self.state])
        self.url = "https://127.0.0.1:%d" % api
        ctx = ssl.create_default_context(cafile=p + "/ca.crt")
        deadline = time.time() + timeout
        last = None
        while time.time() < deadline:
            for name, pr, _ in self.procs:
                if pr.poll() is not None:
                    raise RuntimeError("%s exited early (%s); see %s/%s.log" % (name, pr.returncode, self.state, name))
            try:
                req = urllib.request.Request(self.url + "/readyz",
                                             headers={"Authorization": "Bearer " + self.admin_token})
                with urllib.request.urlopen(req, context=ctx, timeout=2) as r:
                    if r.read() == b"ok":
                        break
            except Exception as e:  # not up yet
                last = e
            time.sleep(0.2)
        else:
            raise RuntimeError("kube-apiserver not ready after %ds: %s" % (timeout, last))
        with open(self.kubeconfig, "w") as f:
            f.write("""apiVersion: v1
kind: Config
clusters: [{name: test, cluster: {server: "%s", certificate-authority: "%s/ca.crt"}}]
users: [{name: admin, user: {token: %s}}, {name: plugin, user: {token: %s}}]
contexts: [{name: admin, context: {cluster: test, user: admin}}, {name: plugin, context: {cluster: test, user: plugin}}]
current-context: admin
""" % (self.url, p, self.admin_token, self.plugin_token))
        os.chmod(self.kubeconfig, 0o600)
        return self

    def stop(self):
        for name, pr, log in reversed(self.procs):
            if pr.poll() is None:
                pr.terminate()
                try:
                    pr.wait(10)
                except subprocess.TimeoutExpired:
                    pr.kill()
                    pr.wait()
            log.close()
        self.procs = []


@contextlib.contextmanager
def running(prefix):
    """A started Harness in a fresh state directory; stopped and removed afterwards (kept, and
    its path printed, when TPD_KEEP_STATE is set)."""
    state = tempfile.mkdtemp(prefix=prefix)
    h = Harness(state)
    try:
        h.start()
        yield h
    finally:
        h.stop()
        if os.environ.get("TPD_KEEP_STATE"):
            print("state kept in", state)
        else:
            shutil.rmtree(state, ignore_errors=True)


def main():
    if len(sys.argv) != 3 or sys.argv[1] != "start":
        sys.exit(__doc__)
    h = Harness(os.path.abspath(sys.argv[2])).start()
    print("KUBECONFIG=%s" % h.kubeconfig, flush=True)
    print("API=%s" % h.url, flush=True)
    signal.signal(signal.SIGTERM, lambda *a: (_ for _ in ()).throw(KeyboardInterrupt()))
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        h.stop()


if __name__ == "__main__":
    main()
