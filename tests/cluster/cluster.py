#!/usr/bin/python3
"""cluster.py - a one-node Kubernetes cluster for the `cluster` tests, in a network namespace of
its own, started and stopped by ctest's fixtures (cluster/up, cluster/down).

Everything runs in the network namespace /run/netns/tpd-cluster (made with `ip netns add`;
processes join it with nsenter --net, which leaves the mount namespace alone, so containerd, the
kubelet and runc see each other's mounts): Debian's etcd, kube-apiserver,
kube-controller-manager, kube-scheduler, kube-proxy (iptables mode) and the kubelet from
scripts/k8s.sh, on Debian's containerd + runc with the bridge CNI plugin. The node's address is
10.250.0.1 on the namespace's own loopback (the kubelet refuses a loopback node IP and the kernel
has no dummy links); pods get 10.244.0.0/24 on the bridge tpdbr0, whose host end 10.244.0.1
is where the tests run the fakes. Nothing is changed outside the namespace but mounts under the
state folder, the cgroups under /tpd-cluster and the kubelet's /var/log/containers links, which
`down` removes. docs/kubernetes-node.md says why each setting is what it is.

Usage:
  cluster.py up STATE          start the cluster (STATE: a fresh folder; logs in STATE/logs);
                               exit 77 (skipped, saying why) without root or without Go >= 1.25
  cluster.py down STATE        stop it and remove everything it made
  cluster.py test STATE NAME   run test_chart.py's test NAME against it (exit 77 if `up` skipped)
Library: Cluster(STATE).kubectl(...), enter_netns(), NODE_IP, BRIDGE_IP.
"""
import ctypes
import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import time
import urllib.request

import image

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
NETNS = "tpd-cluster"
NETNS_PATH = "/run/netns/" + NETNS
NODE_IP = "10.250.0.1"
NODE_NAME = "tpd-node"
POD_CIDR = "10.244.0.0/24"
BRIDGE = "tpdbr0"
BRIDGE_IP = "10.244.0.1"
SERVICE_CIDR = "10.96.0.0/24"
API_SERVICE_IP = "10.96.0.1"
CGROUP_ROOT = "/tpd-cluster"
PAUSE_IMAGE = "tpd.test/pause:1"
IMAGE_REF = "tpd.test/teleport-plugin-pagerduty:test"  # image.py builds it, `up` imports it
ORDER = ["etcd", "containerd", "kube-apiserver", "kube-controller-manager", "kube-scheduler",
         "kubelet", "kube-proxy"]


def log(msg):
    print("cluster: %s %s" % (time.strftime("%H:%M:%S"), msg), flush=True)


def tools():
    """Paths from scripts/k8s.sh --print-env (which the cluster/tools fixture has run)."""
    out = subprocess.run(["bash", os.path.join(ROOT, "scripts", "k8s.sh"), "--print-env", "--no-install"],
                         check=True, capture_output=True, text=True).stdout
    env = {}
    for line in out.splitlines():
        k, _, v = line.replace("export ", "").partition("=")
        env[k] = v.strip('"')
    return env


def run(cmd, check=True, **kw):
    r = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if check and r.returncode:
        raise RuntimeError("%s exited %d: %s" % (" ".join(cmd), r.returncode, (r.stdout + r.stderr).strip()[-2000:]))
    return r


def enter_netns():
    """Moves this (still single-threaded) process into the cluster's network namespace."""
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(NETNS_PATH, os.O_RDONLY)
    try:
        if libc.setns(fd, 0x40000000) != 0:  # CLONE_NEWNET
            raise OSError(ctypes.get_errno(), "setns(%s)" % NETNS_PATH)
    finally:
        os.close(fd)


def in_ns(cmd):
    return ["nsenter", "--net=" + NETNS_PATH, "--"] + list(cmd)


# --- files the components read ------------------------------------------------------------------

def make_pki(d):
    """A CA, the API server's serving certificate and the service-account key pair."""
    os.makedirs(d, exist_ok=True)
    o = lambda *a: run(["openssl"] + list(a))  # noqa: E731
    o("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", d + "/ca.key", "-out", d + "/ca.crt",
      "-days", "3", "-subj", "/CN=tpd-cluster-ca")
    o("req", "-newkey", "rsa:2048", "-nodes", "-keyout", d + "/apiserver.key", "-out", d + "/apiserver.csr",
      "-subj", "/CN=kube-apiserver")
    with open(d + "/apiserver.ext", "w") as f:
        f.write("subjectAltName=IP:%s,IP:%s,IP:127.0.0.1,DNS:kubernetes,DNS:kubernetes.default,"
                "DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,DNS:localhost\n"
                "extendedKeyUsage=serverAuth\n" % (NODE_IP, API_SERVICE_IP))
    o("x509", "-req", "-in", d + "/apiserver.csr", "-CA", d + "/ca.crt", "-CAkey", d + "/ca.key",
      "-CAcreateserial", "-out", d + "/apiserver.crt", "-days", "3", "-extfile", d + "/apiserver.ext")
    o("genrsa", "-out", d + "/sa.key", "2048")
    o("rsa", "-in", d + "/sa.key", "-pubout", "-out", d + "/sa.pub")
    token = os.urandom(24).hex()
    with open(d + "/tokens.csv", "w") as f:
        f.write('%s,admin,admin,"system:masters"\n' % token)
    os.chmod(d + "/tokens.csv", 0o600)
    return token


def kubeconfig(path, pki, token):
    with open(path, "w") as f:
        f.write("""apiVersion: v1
kind: Config
clusters: [{name: tpd, cluster: {server: "https://%s:6443", certificate-authority: "%s/ca.crt"}}]
users: [{name: admin, user: {token: "%s"}}]
contexts: [{name: admin, context: {cluster: tpd, user: admin, namespace: default}}]
current-context: admin
""" % (NODE_IP, pki, token))
    os.chmod(path, 0o600)


def containerd_config(s):
    c = s + "/containerd"
    os.makedirs(c, exist_ok=True)
    with open(c + "/config.toml", "w") as f:
        f.write("""version = 2
root = "%(c)s/root"
state = "%(c)s/state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]
[grpc]
  address = "%(c)s/containerd.sock"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "%(pause)s"
  # This machine does not grant CAP_SYS_RESOURCE: without this every sandbox fails to start
  # (the kubelet asks for oom_score_adj -998 and lowering it needs that capability).
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "%(s)s/cni/net.d"
""" % {"c": c, "s": s, "pause": PAUSE_IMAGE})
    os.makedirs(s + "/cni/net.d", exist_ok=True)
    with open(s + "/cni/net.d/10-tpd.conflist", "w") as f:
        json.dump({"cniVersion": "0.4.0", "name": "tpd", "plugins": [
            {"type": "bridge", "bridge": BRIDGE, "isGateway": True, "ipMasq": False, "hairpinMode": True,
             "ipam": {"type": "host-local", "ranges": [[{"subnet": POD_CIDR, "gateway": BRIDGE_IP}]],
                      "routes": [{"dst": "0.0.0.0/0"}], "dataDir": s + "/cni/ipam"}},
            {"type": "portmap", "capabilities": {"portMappings": True}}]}, f, indent=1)


def kubelet_config(s):
    k = s + "/kubelet"
    os.makedirs(k, exist_ok=True)
    with open(k + "/config.yaml", "w") as f:
        f.write("""apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
# v1.35 refuses cgroup v1 unless told; this machine has no cgroup2 mount.
failCgroupV1: false
# No systemd to delegate cgroups to; our pods under a root of our own, so cleanup is scoped.
cgroupDriver: cgroupfs
cgroupRoot: %(cg)s
failSwapOn: false
containerRuntimeEndpoint: unix://%(s)s/containerd/containerd.sock
address: %(ip)s
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
authentication:
  anonymous: {enabled: true}
  webhook: {enabled: false}
authorization: {mode: AlwaysAllow}
# A shared build machine's disk use must not evict or garbage-collect the test's pods and images.
evictionHard: {"memory.available": "1Mi"}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
localStorageCapacityIsolation: false
podLogsDir: %(s)s/pod-logs
# How soon a changed Secret reaches a running pod's volume: the pod's sync period (default 1m).
syncFrequency: 5s
serializeImagePulls: false
""" % {"cg": CGROUP_ROOT, "s": s, "ip": NODE_IP})


# --- the cluster --------------------------------------------------------------------------------

class Cluster:
    def __init__(self, state):
        self.state = os.path.abspath(state)
        self.logs = os.path.join(self.state, "logs")
        self.pki = os.path.join(self.state, "pki")
        self.kubeconfig_path = os.path.join(self.state, "kubeconfig")
        self.t = None

    # helpers for tests
    def env(self):
        with open(os.path.join(self.state, "env.json")) as f:
            return json.load(f)

    def kubectl(self, *args, check=True, input=None, timeout=120):
        e = self.env()
        r = subprocess.run([e["KUBECTL"], "--kubeconfig", self.kubeconfig_path] + list(args),
                           capture_output=True, text=True, input=input, timeout=timeout)
        if check and r.returncode:
            raise AssertionError("kubectl %s exited %d: %s" % (" ".join(args), r.returncode,
                                                               (r.stdout + r.stderr).strip()[-3000:]))
        return r.stdout if check else r

    def kubectl_json(self, *args):
        return json.loads(self.kubectl(*args, "-o", "json"))

    # start
    def _spawn(self, name, cmd):
        lf = open(os.path.join(self.logs, name + ".log"), "ab")
        p = subprocess.Popen(in_ns(cmd), stdin=subprocess.DEVNULL, stdout=lf, stderr=subprocess.STDOUT,
                             start_new_session=True, close_fds=True)
        lf.close()
        with open(os.path.join(self.state, "pids"), "a") as f:
            f.write("%s %d\n" % (name, p.pid))
        return p

    def _wait(self, what, pred, timeout, procs):
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            for name, p in procs.items():
                if p.poll() is not None:
                    raise RuntimeError("%s exited (%s) while waiting for %s; log: %s/%s.log"
                                       % (name, p.returncode, what, self.logs, name))
            try:
                last = pred()
                if last:
                    return last
            except Exception as e:  # not up yet
                last = e
            time.sleep(0.25)
        raise RuntimeError("timed out after %ds waiting for %s (last: %r); logs in %s" % (timeout, what, last, self.logs))

    def _api_ready(self, token):
        ctx = ssl.create_default_context(cafile=self.pki + "/ca.crt")
        req = urllib.request.Request("https://%s:6443/readyz" % NODE_IP, headers={"Authorization": "Bearer " + token})
        with urllib.request.urlopen(req, context=ctx, timeout=2) as r:
            return r.read() == b"ok"

    def up(self):
        t0 = time.monotonic()
        if os.path.exists(NETNS_PATH):
            raise RuntimeError("%s exists: another cluster runs, or one was left behind; "
                               "`cluster.py down <its state folder>` or `ip netns del %s`" % (NETNS_PATH, NETNS))
        os.makedirs(self.logs, exist_ok=True)
        t = self.t = tools()
        s = self.state
        token = make_pki(self.pki)
        kubeconfig(self.kubeconfig_path, self.pki, token)
        containerd_config(s)
        kubelet_config(s)
        with open(os.path.join(s, "env.json"), "w") as f:
            json.dump(dict(t, STATE=s, KUBECONFIG=self.kubeconfig_path), f, indent=1)
        # The image first: a cold cache builds its root with debootstrap, which needs the network.
        archive, what = image.build(IMAGE_REF, PAUSE_IMAGE, s)
        log(what)
        run(["ip", "netns", "add", NETNS])
        enter_netns()  # this process too: its readiness checks and kubectl talk to the node address
        run(in_ns(["ip", "link", "set", "lo", "up"]))
        run(in_ns(["ip", "addr", "add", NODE_IP + "/32", "dev", "lo"]))
        # The bridge CNI plugin enables forwarding itself; kube-proxy's DNAT to the node address
        # from a pod needs route_localnet off (the address is not in 127/8) and nothing else.
        run(in_ns(["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"]))
        # The pods' bridge now, not at the first pod (the CNI plugin adopts it): the tests' fakes
        # listen on its address before any pod runs.
        run(in_ns(["ip", "link", "add", BRIDGE, "type", "bridge"]))
        run(in_ns(["ip", "addr", "add", BRIDGE_IP + "/24", "dev", BRIDGE]))
        run(in_ns(["ip", "link", "set", BRIDGE, "up"]))
        procs = {}
        p = self.pki
        procs["etcd"] = self._spawn("etcd", [
            t["ETCD"], "--name", "tpd", "--data-dir", s + "/etcd",
            "--listen-client-urls", "http://127.0.0.1:2379", "--advertise-client-urls", "http://127.0.0.1:2379",
            "--listen-peer-urls", "http://127.0.0.1:2380", "--initial-advertise-peer-urls", "http://127.0.0.1:2380",
            "--initial-cluster", "tpd=http://127.0.0.1:2380", "--log-level", "warn"])
        procs["containerd"] = self._spawn("containerd", ["containerd", "--config", s + "/containerd/config.toml"])
        procs["kube-apiserver"] = self._spawn("kube-apiserver", [
            t["KUBE_APISERVER"], "--etcd-servers=http://127.0.0.1:2379",
            "--bind-address=" + NODE_IP, "--advertise-address=" + NODE_IP, "--secure-port=6443",
            "--tls-cert-file=%s/apiserver.crt" % p, "--tls-private-key-file=%s/apiserver.key" % p,
            "--client-ca-file=%s/ca.crt" % p, "--token-auth-file=%s/tokens.csv" % p,
            "--authorization-mode=RBAC",
            "--service-account-key-file=%s/sa.pub" % p, "--service-account-signing-key-file=%s/sa.key" % p,
            "--service-account-issuer=https://kubernetes.default.svc",
            "--service-cluster-ip-range=" + SERVICE_CIDR,
            "--kubelet-preferred-address-types=InternalIP", "--cert-dir=%s/apiserver-certs" % s])
        self._wait("kube-apiserver /readyz", lambda: self._api_ready(token), 120, procs)
        log("kube-apiserver ready (%.0f s)" % (time.monotonic() - t0))
        kc = self.kubeconfig_path
        procs["kube-controller-manager"] = self._spawn("kube-controller-manager", [
            t["KUBE_CONTROLLER_MANAGER"], "--kubeconfig=" + kc, "--leader-elect=false",
            "--service-account-private-key-file=%s/sa.key" % p, "--root-ca-file=%s/ca.crt" % p,
            "--controllers=*,-csrsigning", "--bind-address=127.0.0.1"])
        procs["kube-scheduler"] = self._spawn("kube-scheduler", [
            t["KUBE_SCHEDULER"], "--kubeconfig=" + kc, "--leader-elect=false", "--bind-address=127.0.0.1"])
        self._make_cgroups()
        procs["kubelet"] = self._spawn("kubelet", [
            t["KUBELET"], "--config=%s/kubelet/config.yaml" % s, "--kubeconfig=" + kc,
            "--root-dir=%s/kubelet/root" % s, "--node-ip=" + NODE_IP, "--hostname-override=" + NODE_NAME])
        procs["kube-proxy"] = self._spawn("kube-proxy", [
            t["KUBE_PROXY"], "--kubeconfig=" + kc, "--proxy-mode=iptables", "--cluster-cidr=" + POD_CIDR,
            "--hostname-override=" + NODE_NAME, "--conntrack-max-per-core=0",
            "--metrics-bind-address=127.0.0.1:10249", "--healthz-bind-address=127.0.0.1:10256"])

        def node_ready():
            n = self.kubectl_json("get", "node", NODE_NAME)
            return any(c["type"] == "Ready" and c["status"] == "True" for c in n["status"]["conditions"])
        self._wait("node %s Ready" % NODE_NAME, node_ready, 180, procs)
        self._wait("the default service account",
                   lambda: self.kubectl("get", "serviceaccount", "default", check=False).returncode == 0, 60, procs)
        log("node Ready (%.0f s)" % (time.monotonic() - t0))
        t1 = time.monotonic()
        image.load(["ctr", "--address", s + "/containerd/containerd.sock", "-n", "k8s.io"], archive)
        log("images imported (%.0f s)" % (time.monotonic() - t1))
        with open(os.path.join(s, "up.json"), "w") as f:
            json.dump({"seconds": round(time.monotonic() - t0, 1)}, f)

    # stop
    def down(self):
        pids = []
        try:
            with open(os.path.join(self.state, "pids")) as f:
                pids = [(l.split()[0], int(l.split()[1])) for l in f if l.strip()]
        except FileNotFoundError:
            pass
        # kubelet first (so it stops restarting containers), then the rest in reverse order.
        byname = dict(pids)
        for name in ["kubelet", "kube-proxy", "kube-scheduler", "kube-controller-manager"]:
            self._kill(byname.get(name))
        self._remove_containers()
        for name in ["containerd", "kube-apiserver", "etcd"]:
            self._kill(byname.get(name))
        self._kill_leftovers()
        self._unmount()
        self._remove_cgroups()
        if os.path.exists(NETNS_PATH):
            run(["ip", "netns", "del", NETNS], check=False)
        for d in ("/var/log/containers",):
            if os.path.isdir(d):
                for n in os.listdir(d):
                    link = os.path.join(d, n)
                    if os.path.islink(link) and os.readlink(link).startswith(self.state):
                        os.unlink(link)

    def _kill(self, pid, timeout=15):
        if not pid:
            return
        try:
            os.killpg(pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                os.killpg(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.1)
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def _remove_containers(self):
        sock = os.path.join(self.state, "containerd", "containerd.sock")
        if not os.path.exists(sock):
            return
        ctr = ["ctr", "--address", sock, "-n", "k8s.io"]
        r = run(ctr + ["tasks", "ls", "-q"], check=False)
        for cid in r.stdout.split():
            run(ctr + ["tasks", "kill", "-s", "SIGKILL", cid], check=False)
        for cid in r.stdout.split():
            run(ctr + ["tasks", "delete", "-f", cid], check=False)
        for cid in run(ctr + ["containers", "ls", "-q"], check=False).stdout.split():
            run(ctr + ["containers", "delete", cid], check=False)

    def _kill_leftovers(self):
        """containerd's shims (and the containers under them) outlive containerd: any process whose
        command line names the state folder, or that sits in our cgroup root, goes."""
        victims = set()
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                with open("/proc/%s/cmdline" % pid, "rb") as f:
                    cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
                with open("/proc/%s/cgroup" % pid) as f:
                    cg = f.read()
            except OSError:
                continue
            if int(pid) != os.getpid() and (self.state in cmd or (":" + CGROUP_ROOT + "/") in cg):
                victims.add(int(pid))
        for pid in victims:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 10
        while victims and time.monotonic() < deadline:
            victims = {p for p in victims if os.path.exists("/proc/%d" % p)}
            time.sleep(0.1)

    def _unmount(self):
        for _ in range(3):
            mps = image.runtime_image.mounts_under(self.state) + image.runtime_image.mounts_under(NETNS_PATH)
            if not mps:
                return
            for mp in mps:
                subprocess.run(["umount", "-l", mp], capture_output=True)

    def _make_cgroups(self):
        """The kubelet's cgroupRoot must exist in every v1 hierarchy; a new cpuset group starts
        with no CPUs and no memory nodes, so it gets its parent's."""
        base = "/sys/fs/cgroup"
        for h in sorted(os.listdir(base)):
            hp = os.path.join(base, h)
            if os.path.islink(hp) or not os.path.isdir(hp) or not os.path.exists(os.path.join(hp, "cgroup.procs")):
                continue
            d = os.path.join(hp, CGROUP_ROOT.lstrip("/"))
            os.makedirs(d, exist_ok=True)
            for knob in ("cpuset.cpus", "cpuset.mems"):
                if os.path.exists(os.path.join(d, knob)):
                    with open(os.path.join(hp, knob)) as f:
                        v = f.read().strip()
                    with open(os.path.join(d, knob), "w") as f:
                        f.write(v)

    def _remove_cgroups(self):
        base = "/sys/fs/cgroup"
        if not os.path.isdir(base):
            return
        for h in os.listdir(base):
            top = os.path.join(base, h, CGROUP_ROOT.lstrip("/"))
            if not os.path.isdir(top) or os.path.islink(os.path.join(base, h)):
                continue
            for dirpath, _, _ in sorted(os.walk(top), key=lambda w: -len(w[0])):
                try:
                    os.rmdir(dirpath)
                except OSError:
                    pass


def skip_reason():
    if os.geteuid() != 0:
        return "the cluster tests need root (network namespace, containerd, kubelet, mounts)"
    r = subprocess.run(["bash", os.path.join(ROOT, "scripts", "k8s.sh"), "--print-env", "--no-install"],
                       capture_output=True, text=True)
    if r.returncode == 77:
        return r.stderr.strip().replace("\n", " ")
    return None


def main():
    if len(sys.argv) < 3 or sys.argv[1] not in ("up", "down", "test") or (sys.argv[1] == "test") != (len(sys.argv) == 4):
        sys.exit(__doc__)
    c = Cluster(sys.argv[2])
    skipped = os.path.join(c.state, "skipped")
    if sys.argv[1] == "down":
        c.down()
        log("down")
        return
    if sys.argv[1] == "test":
        if os.path.exists(skipped):
            print("SKIP: " + open(skipped).read().strip())
            sys.exit(77)
        if not os.path.exists(os.path.join(c.state, "up.json")):
            sys.exit("cluster: no cluster in %s (the fixture cluster/up failed or did not run)" % c.state)
        env = dict(os.environ, TPD_CLUSTER_STATE=c.state, PYTHONDONTWRITEBYTECODE="1")
        os.execve("/usr/bin/python3", ["/usr/bin/python3", "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider",
                                       os.path.join(HERE, "test_chart.py") + "::" + sys.argv[3]], env)
    if os.path.exists(c.state):
        Cluster(c.state).down()
        shutil.rmtree(c.state, ignore_errors=True)
    os.makedirs(c.state)
    why = skip_reason()
    if why:
        with open(skipped, "w") as f:
            f.write(why + "\n")
        print("SKIP: " + why)
        sys.exit(77)
    sock = os.path.join(c.state, "containerd", "containerd.sock.ttrpc")
    if len(sock) > 100:
        sys.exit("cluster: the state folder's path is too long for containerd's sockets (%d > 100 "
                 "characters): %s; use a shorter build folder" % (len(sock), sock))
    try:
        c.up()
    except Exception:
        c.down()
        for n in ORDER:
            lp = os.path.join(c.logs, n + ".log")
            if os.path.exists(lp):
                with open(lp, errors="replace") as f:
                    tail = f.read()[-1500:]
                print("--- %s (end)\n%s" % (lp, tail))
        raise


if __name__ == "__main__":
    main()
