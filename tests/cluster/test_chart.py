"""test_chart.py - the chart on a real Kubernetes node (label `cluster`): what users do with it.

Runs inside the cluster's network namespace (cluster.py; the fixture cluster/up started it). Each
test installs the chart with the real helm into a namespace of its own, with the project's
runtime image (image.py, imported by cluster/up), the fakes (tests/lib/tpdtest) listening on the
host end of the pods' bridge, a Teleport identity in a Secret and the fake PagerDuty's CA in a
ConfigMap (extraVolumes + extraEnv SSL_CERT_FILE). Nothing here sleeps to synchronise: every
wait polls a condition with a deadline.

  test_install           helm upgrade --install; Ready through its own probes; kubectl logs
                         deploy/...; a request gets its incident
  test_upgrade           a config change rolls a new ReplicaSet whose pod has the new config; an
                         unrelated change (a label on the Service) and a repeated upgrade don't
  test_identity_rotation the identity Secret replaced (as tbot does): the running pod reloads it
                         through the kubelet's symlink swap, no restart, work goes on
  test_two_replicas      one leader through the Lease, a ready standby; deleting the leader hands
                         over; no duplicate incident; the PDB stops a second eviction
  test_rollout_restart   `kubectl rollout restart` during a burst: every request one incident

Env: TPD_CLUSTER_STATE (the cluster's state folder), TPD_BUILD_DIR.
"""
import json
import os
import re
import subprocess
import sys
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "lib"))
import cluster  # noqa: E402

cluster.enter_netns()  # before anything starts a thread

from tpdtest.harness import API_KEY, BOT_EMAIL, Env  # noqa: E402
from tpdtest.procs import eventually  # noqa: E402

CHART = os.path.join(ROOT, "deploy", "helm", "teleport-plugin-pagerduty")
RELEASE = "teleport-plugin-pagerduty"
DEPLOY = "deploy/" + RELEASE
IMAGE_REPO, IMAGE_TAG = cluster.IMAGE_REF.rsplit(":", 1)
C = cluster.Cluster(os.environ["TPD_CLUSTER_STATE"])


def helm_path():
    out = subprocess.run(["bash", os.path.join(ROOT, "scripts", "tools.sh"), "--print-env", "helm"],
                         check=True, capture_output=True, text=True).stdout
    for line in out.splitlines():
        if line.startswith("export PATH="):
            return os.path.join(line.split('"')[1].split(":")[0], "helm")
    raise AssertionError("no helm in scripts/tools.sh --print-env")


HELM = helm_path()


class Release:
    """One namespace, the fakes, and the chart installed there."""

    def __init__(self, name, tmp):
        self.ns = "tpd-" + name
        self.work = str(tmp)
        self.env = Env(workdir=os.path.join(self.work, "fakes"), host=cluster.BRIDGE_IP, severity="info")
        C.kubectl("create", "namespace", self.ns)
        self.put_identity("identity")
        C.kubectl("-n", self.ns, "create", "configmap", "tpd-test-ca", "--from-file=ca.pem=" + self.env.pd.ca_file)
        self.values = {
            "teleport": {"address": self.env.tp.addr, "identitySecretName": "tpd-identity"},
            "pagerduty": {"apiKey": API_KEY, "userEmail": BOT_EMAIL, "apiEndpoint": self.env.pd.url},
            "image": {"repository": IMAGE_REPO, "tag": IMAGE_TAG, "pullPolicy": "Never"},
            "extraEnv": [{"name": "SSL_CERT_FILE", "value": "/etc/tpd-test-ca/ca.pem"}],
            "extraVolumes": [{"name": "test-ca", "configMap": {"name": "tpd-test-ca"}}],
            "extraVolumeMounts": [{"name": "test-ca", "mountPath": "/etc/tpd-test-ca", "readOnly": True}],
        }

    def put_identity(self, which):
        """Creates or replaces the identity Secret the way tbot's kubernetes_secret output does
        (an update of the whole Secret object)."""
        manifest = C.kubectl("-n", self.ns, "create", "secret", "generic", "tpd-identity",
                             "--from-file=auth_id=" + os.path.join(self.env.pki, which),
                             "--dry-run=client", "-o", "yaml")
        C.kubectl("-n", self.ns, "apply", "-f", "-", input=manifest)

    def helm(self, *args, values=None, check=True):
        vf = os.path.join(self.work, "values.json")
        with open(vf, "w") as f:
            json.dump(values or self.values, f)
        cmd = [HELM, "--kubeconfig", C.kubeconfig_path, "-n", self.ns] + list(args)
        if args and args[0] == "upgrade":
            cmd += [RELEASE, CHART, "--values", vf]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        if check and r.returncode:
            raise AssertionError("helm %s exited %d:\n%s\n--- pods:\n%s" % (
                " ".join(args), r.returncode, (r.stdout + r.stderr)[-3000:], self.describe()))
        return r

    def install(self, values=None, timeout="180s"):
        return self.helm("upgrade", "--install", "--wait", "--timeout", timeout, values=values)

    def k(self, *args, **kw):
        return C.kubectl("-n", self.ns, *args, **kw)

    def kj(self, *args):
        return json.loads(self.k(*args, "-o", "json"))

    def pods(self):
        items = self.kj("get", "pods", "-l", "app.kubernetes.io/instance=" + RELEASE)["items"]
        return [p for p in items if not p["metadata"].get("deletionTimestamp")]

    def replicasets(self):
        return {rs["metadata"]["name"]: rs for rs in
                self.kj("get", "replicasets", "-l", "app.kubernetes.io/instance=" + RELEASE)["items"]}

    def describe(self):
        r = C.kubectl("-n", self.ns, "describe", "pods", check=False)
        lg = C.kubectl("-n", self.ns, "logs", DEPLOY, "--all-containers", "--tail=40", check=False)
        return (r.stdout + r.stderr)[-4000:] + "\n--- logs:\n" + (lg.stdout + lg.stderr)[-3000:]

    def logs(self, pod=None):
        return self.k("logs", pod or DEPLOY)

    def wait_ready_pods(self, n, timeout=120):
        def ready():
            ps = [p for p in self.pods() if p["status"].get("phase") == "Running" and any(
                c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions", []))]
            return ps if len(ps) == n and len(self.pods()) == n else None
        return eventually(ready, timeout, interval=0.5, what="%d Ready pods in %s" % (n, self.ns))

    def close(self):
        self.helm("uninstall", RELEASE, "--wait", "--timeout", "120s", check=False)
        C.kubectl("delete", "namespace", self.ns, "--wait=true", "--timeout=120s", check=False)
        self.env.close()


@pytest.fixture
def rel(request, tmp_path):
    r = Release(request.node.name.replace("test_", "").replace("_", "-"), tmp_path)
    yield r
    rep = getattr(request.node, "rep_call", None)  # conftest.py records it
    if rep is None or rep.failed:
        print(r.describe())
    r.close()


def incidents_by_request(env, rids):
    got = {}
    for i in env.pd.incidents():
        key = i.get("incident_key", "")
        if key.startswith("teleport-access-request/"):
            got.setdefault(key.split("/", 1)[1], []).append(i)
    return {r: got.get(r, []) for r in rids}


def test_install(rel):
    t0 = time.monotonic()
    rel.install()
    pods = rel.wait_ready_pods(1)
    took = time.monotonic() - t0
    pod = pods[0]
    spec = pod["spec"]["containers"][0]
    # Ready through its own probes, on its own endpoints.
    assert spec["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert spec["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert pod["status"]["containerStatuses"][0]["restartCount"] == 0
    # The pod has its own address on the bridge (not the host network) and reached the fakes.
    assert not pod["spec"].get("hostNetwork")
    assert pod["status"]["podIP"].startswith("10.244.0."), pod["status"]["podIP"]
    # What a user reads first.
    out = rel.logs()
    for line in ("Starting Teleport Access PagerDuty Plugin", "Plugin is ready"):
        assert line in out, "kubectl logs %s lacks %r:\n%s" % (DEPLOY, line, out[-3000:])
    # logfmt by default, upstream's field names.
    assert re.search(r'^.*\blevel=info\b.*\bmsg="Plugin is ready"', out, re.M), out[-3000:]
    assert API_KEY not in out
    rid = rel.env.request(services=None)
    inc = rel.env.wait_incident(rid, timeout=60)
    assert inc["service_id"] == rel.env.svc_notify, inc
    print("installed and Ready in %.1f s; incident %s" % (took, inc["id"]))


def test_upgrade(rel):
    rel.install()
    first = rel.wait_ready_pods(1)[0]
    rs1 = rel.replicasets()
    gen1 = rel.kj("get", DEPLOY)["metadata"]["generation"]
    # Same values again: nothing changes.
    rel.install()
    assert rel.replicasets().keys() == rs1.keys()
    assert rel.kj("get", DEPLOY)["metadata"]["generation"] == gen1
    assert rel.pods()[0]["metadata"]["uid"] == first["metadata"]["uid"]
    # An unrelated change (a label on the metrics Service): the Service changes, the pods don't.
    rel.values["metrics"] = {"service": {"labels": {"tpd.test/unrelated": "1"}}}
    rel.install()
    svc = rel.kj("get", "service", "-l", "app.kubernetes.io/instance=" + RELEASE)["items"][0]
    assert svc["metadata"]["labels"].get("tpd.test/unrelated") == "1"
    assert rel.replicasets().keys() == rs1.keys(), "an unrelated change rolled the pods"
    assert rel.pods()[0]["metadata"]["uid"] == first["metadata"]["uid"]
    # A config change: a new ReplicaSet, and its pod runs with the new config.
    rel.values["reconcile"] = {"resyncInterval": "7m"}
    rel.install()
    rs2 = rel.replicasets()
    new = set(rs2) - set(rs1)
    assert len(new) == 1, "a config change made %d new ReplicaSets (%s)" % (len(new), sorted(rs2))
    pod = rel.wait_ready_pods(1)[0]
    assert pod["metadata"]["uid"] != first["metadata"]["uid"]
    assert pod["metadata"]["labels"]["pod-template-hash"] == rs2[new.pop()]["metadata"]["labels"]["pod-template-hash"]
    cfg = rel.k("exec", pod["metadata"]["name"], "--", "cat", "/etc/teleport-pagerduty/teleport-pagerduty.yaml")
    assert re.search(r"resync_interval:\s*\"?7m", cfg), cfg
    rid = rel.env.request(services=None)
    rel.env.wait_incident(rid, timeout=60)


def test_identity_rotation(rel):
    rel.install()
    pod = rel.wait_ready_pods(1)[0]
    name, uid = pod["metadata"]["name"], pod["metadata"]["uid"]
    rid1 = rel.env.request(services=None)
    rel.env.wait_incident(rid1, timeout=60)
    before = {c["serial"] for c in rel.env.tp.calls}
    rel.put_identity("identity2")
    # The kubelet swaps the Secret volume's ..data symlink; the plugin notices and reloads.
    eventually(lambda: "Reloaded identity" in rel.logs(name), 120, interval=0.5,
               what="'Reloaded identity' in kubectl logs " + name)
    rid2 = rel.env.request(services=None)
    rel.env.wait_incident(rid2, timeout=60)
    new = {c["serial"] for c in rel.env.tp.calls} - before
    assert new, "the fake Teleport saw no call made with the rotated certificate"
    pod = rel.kj("get", "pod", name)
    assert pod["metadata"]["uid"] == uid
    assert pod["status"]["containerStatuses"][0]["restartCount"] == 0, "the pod restarted"


def lease_holder(rel):
    leases = rel.kj("get", "leases")["items"]
    assert len(leases) == 1, "expected one Lease, found %s" % [x["metadata"]["name"] for x in leases]
    return leases[0]["spec"].get("holderIdentity") or ""


def test_two_replicas(rel):
    rel.values["replicaCount"] = 2
    rel.install()
    pods = rel.wait_ready_pods(2)
    names = {p["metadata"]["name"] for p in pods}
    leader = eventually(lambda: lease_holder(rel) in names and lease_holder(rel), 60, interval=0.5,
                        what="a pod holding the Lease")
    standby = (names - {leader}).pop()
    # Both Ready (the README: followers keep their watch warm and report ready); only the
    # leader reconciles.
    rids = [rel.env.request(services=None) for _ in range(3)]
    for r in rids:
        rel.env.wait_incident(r, timeout=60)
    created = "Successfully created PagerDuty incident"
    assert rel.logs(leader).count(created) == 3
    slog = rel.logs(standby)
    assert "Following leader " + leader in slog, slog[-2000:]
    assert created not in slog, "the standby reconciles:\n" + slog[-2000:]
    # Deleting the leader hands over: the leader releases the Lease on SIGTERM, and the standby
    # (or the Deployment's replacement pod, whichever asks first) takes it within about one
    # retryPeriod (2 s in the chart's values); a crash would take up to leaseDuration (15 s).
    t0 = time.monotonic()
    rel.k("delete", "pod", leader, "--wait=false")

    def new_leader():
        h = lease_holder(rel)
        return h and h != leader and h in {p["metadata"]["name"] for p in rel.pods()} and h
    successor = eventually(new_leader, 60, interval=0.1, what="a new pod holding the Lease")
    handover = time.monotonic() - t0
    assert handover < 10, "handover took %.1f s" % handover
    rids += [rel.env.request(services=None) for _ in range(3)]
    for r in rids[3:]:
        rel.env.wait_incident(r, timeout=60)
    got = incidents_by_request(rel.env, rids)
    assert all(len(v) == 1 for v in got.values()), {k: len(v) for k, v in got.items()}
    # The PDB (policy/v1, minAvailable 1) is enforced: with two Ready pods one eviction is
    # allowed, a second one right after it is refused.
    pdb = rel.kj("get", "poddisruptionbudgets")["items"]
    assert len(pdb) == 1 and pdb[0]["apiVersion"] == "policy/v1"
    pods = rel.wait_ready_pods(2)
    eventually(lambda: rel.kj("get", "poddisruptionbudget", pdb[0]["metadata"]["name"])["status"].get(
        "disruptionsAllowed") == 1, 60, interval=0.5, what="PDB disruptionsAllowed 1")
    codes = [evict(rel, p["metadata"]["name"]) for p in pods]
    assert codes == [201, 429], "evictions answered %s (want the second refused by the PDB)" % codes
    print("handover in %.1f s (to the %s)" % (handover, "standby" if successor == standby else "replacement pod"))


def evict(rel, pod):
    body = json.dumps({"apiVersion": "policy/v1", "kind": "Eviction",
                       "metadata": {"name": pod, "namespace": rel.ns}})
    r = C.kubectl("create", "--raw", "/api/v1/namespaces/%s/pods/%s/eviction" % (rel.ns, pod), "-f", "-",
                  input=body, check=False)
    if r.returncode == 0:
        return 201
    # The PDB's refusal: "Cannot evict pod as it would violate the pod's disruption budget" (429).
    return 429 if "TooManyRequests" in r.stderr or "disruption budget" in r.stderr else \
        "error: " + r.stderr.strip()[-300:]


def test_rollout_restart(rel):
    rel.install()
    rel.wait_ready_pods(1)
    rids = [rel.env.request(services=None) for _ in range(10)]
    rel.k("rollout", "restart", DEPLOY)
    # The burst goes on while the old pod stops and the new one starts.
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        rids.append(rel.env.request(services=None))
        r = rel.k("rollout", "status", DEPLOY, "--timeout=1s", check=False)
        if r.returncode == 0 and "successfully rolled out" in r.stdout:
            break
    else:
        raise AssertionError("rollout did not finish:\n" + rel.describe())
    rids += [rel.env.request(services=None) for _ in range(10)]
    eventually(lambda: all(incidents_by_request(rel.env, rids).values()), 120, interval=0.5,
               what="an incident for each of %d requests" % len(rids))
    got = incidents_by_request(rel.env, rids)
    dup = {k: len(v) for k, v in got.items() if len(v) != 1}
    assert not dup, "requests without exactly one incident: %s" % dup
    print("%d requests across the restart, each with one incident" % len(rids))
