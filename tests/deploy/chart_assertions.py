#!/usr/bin/python3
"""chart_assertions.py - behavioural assertions on the rendered Helm chart.

Renders deploy/helm/teleport-plugin-pagerduty with `helm template` (helm from the tools cache,
see scripts/tools.sh) and checks what helm lint and kubeconform cannot:
  - checksum/config changes when a config value changes, and only then;
  - no secret value (API key, plain or base64) appears in any ConfigMap or outside its Secret;
  - no volume mount uses subPath (the identity must be a directory mount so rotation reaches it);
  - the pod and container securityContext satisfy Pod Security Standards "restricted", also
    when an upstream-style values file sets them to {};
  - leader-election RBAC (Role/RoleBinding on leases only), the PodDisruptionBudget and
    leader_election.enabled exist only with replicaCount > 1 (or leaderElection.force);
  - the rendered config has exactly the documented YAML keys and the upstream values map to it.
Prints one line per check and ends with "N passed, N failed"; exit 1 on any failure.
"""
import base64
import os
import shutil
import subprocess
import sys
import tempfile

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
CHART = os.path.join(ROOT, "deploy", "helm", "teleport-plugin-pagerduty")
VALUES = os.path.join(HERE, "values")
RELEASE = "teleport-plugin-pagerduty"
NS = "teleport"
SECRET = "u+TEST-ONLY-pd-key-7f3a9c"  # the key in values/upstream.yaml

# Keys of the YAML config (docs/config-yaml.md) the chart may render.
CONFIG_KEYS = {
    "teleport": {"addr", "identity", "refresh_identity"},
    "pagerduty": {"api_key", "user_email", "api_endpoint", "notify_service", "services",
                  "rate_limit_per_minute", "cache_ttl", "connect_timeout", "request_timeout",
                  "incident_urgency", "incident_priority_id", "notify_all_services", "auto_approve_escalation_levels",
                  "auto_approve_schedules"},
    "log": {"output", "severity", "format"},
    "status": {"listen_addr"},
    "reconcile": {"workers", "resync_interval", "shutdown_timeout", "dry_run"},
    "leader_election": {"enabled", "lease_name", "lease_namespace", "lease_duration",
                        "renew_deadline", "retry_period"},
}


def helm_bin():
    env = subprocess.run([os.path.join(ROOT, "scripts", "tools.sh"), "--print-env", "helm"],
                         check=True, capture_output=True, text=True).stdout
    for line in env.splitlines():
        if line.startswith("export PATH="):
            first = line.split('"')[1].split(":")[0]
            return os.path.join(first, "helm")
    raise SystemExit("FAIL: scripts/tools.sh did not say where helm is")


HELM = None


def render(*args, values_file=None):
    cmd = [HELM, "template", RELEASE, CHART, "--namespace", NS]
    if values_file:
        cmd += ["-f", os.path.join(VALUES, values_file)]
    cmd += list(args)
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode:
        raise AssertionError(f"helm template {' '.join(args)} failed: {r.stderr.strip()}")
    docs = [d for d in yaml.safe_load_all(r.stdout) if d]
    return docs, r.stdout


def sets(**kv):
    out = []
    for k, v in kv.items():
        out += ["--set-string" if isinstance(v, str) else "--set", f"{k.replace('__', '.')}={v}"]
    return out


def kinds(docs, kind):
    return [d for d in docs if d["kind"] == kind]


def one(docs, kind):
    found = kinds(docs, kind)
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def pod_spec(docs):
    return one(docs, "Deployment")["spec"]["template"]["spec"]


def checksum(docs):
    return one(docs, "Deployment")["spec"]["template"]["metadata"]["annotations"]["checksum/config"]


def config(docs):
    return yaml.safe_load(one(docs, "ConfigMap")["data"]["teleport-pagerduty.yaml"])


# ---------------------------------------------------------------------------------------------

def t_checksum_changes_with_config():
    base = checksum(render()[0])
    assert len(base) == 64, f"checksum/config is not a sha256: {base!r}"
    for args in (sets(log__severity="DEBUG"), sets(teleport__address="other.example.com:443"),
                 sets(pagerduty__userEmail="x@example.com"), sets(reconcile__workers=9),
                 sets(pagerduty__apiKeySecretPath="key2")):
        c = checksum(render(*args)[0])
        assert c != base, f"checksum/config did not change with {args}"


def t_checksum_stable_without_config_change():
    base = checksum(render()[0])
    again = checksum(render()[0])
    assert base == again, "checksum/config is not deterministic"
    for args in (sets(resources__limits__memory="64Mi"), sets(image__tag="9.9.9"),
                 sets(annotations__deployment__x="y")):
        # image.tag feeds the version label of the ConfigMap too, so only compare the data
        docs = render(*args)[0]
        if one(docs, "ConfigMap")["metadata"]["labels"] == one(render()[0], "ConfigMap")["metadata"]["labels"]:
            assert checksum(docs) == base, f"checksum/config changed with unrelated {args}"


def t_no_secret_in_configmaps():
    b64 = base64.b64encode(SECRET.encode()).decode()
    docs, text = render(values_file="upstream.yaml")
    secrets = kinds(docs, "Secret")
    assert len(secrets) == 1, "the inline API key must produce exactly one Secret"
    assert secrets[0]["data"]["pagerdutyApiKey"] == b64, "the Secret does not hold the key"
    for d in docs:
        if d["kind"] == "Secret":
            continue
        dump = yaml.safe_dump(d)
        assert SECRET not in dump and b64 not in dump, \
            f"the API key appears in {d['kind']} {d['metadata']['name']}"
    cfg = config(docs)
    assert cfg["pagerduty"]["api_key"].startswith("/"), "api_key must be a file path"
    # and with the key passed on the command line
    docs, _ = render(*sets(pagerduty__apiKey="cli-secret-value-123"))
    for cm in kinds(docs, "ConfigMap"):
        assert "cli-secret-value-123" not in yaml.safe_dump(cm), "API key in a ConfigMap"


def t_no_secret_rendered_for_external_key():
    docs, _ = render(values_file="external-secret.yaml")
    assert not kinds(docs, "Secret"), "a Secret was rendered although apiKeyFromSecret is set"
    vols = {v["name"]: v for v in pod_spec(docs)["volumes"]}
    sec = vols["password-file"]["secret"]
    assert sec["secretName"] == "pagerduty-credentials", sec
    assert sec["items"] == [{"key": "token", "path": "token"}], sec
    cfg = config(docs)
    assert cfg["pagerduty"]["api_key"] == "/var/lib/teleport/plugins/pagerduty/pagerduty-api-key/token"
    assert "checksum/secret" not in one(docs, "Deployment")["spec"]["template"]["metadata"]["annotations"]


def t_no_subpath_and_identity_is_a_directory():
    for vf in (None, "upstream.yaml", "tbot.yaml", "external-secret.yaml", "ha.yaml"):
        docs, _ = render(values_file=vf)
        spec = pod_spec(docs)
        for c in spec["containers"]:
            for m in c.get("volumeMounts", []):
                assert "subPath" not in m and "subPathExpr" not in m, f"{vf}: subPath on {m['name']}"
        mounts = {m["name"]: m for m in spec["containers"][0]["volumeMounts"]}
        ident = mounts["teleport-identity"]
        assert ident["mountPath"] == "/var/lib/teleport/plugins/pagerduty/teleport-identity", ident
        identity_path = config(docs)["teleport"]["identity"]
        assert os.path.dirname(identity_path) == ident["mountPath"], \
            f"{vf}: config identity {identity_path} is not inside the mount"
        vols = {v["name"]: v for v in spec["volumes"]}
        assert "items" not in vols["teleport-identity"]["secret"], "identity volume must project the whole Secret"


def restricted(spec, where):
    psc = spec.get("securityContext") or {}
    for c in spec["containers"] + spec.get("initContainers", []):
        sc = c.get("securityContext") or {}
        eff = lambda k: sc.get(k, psc.get(k))
        assert sc.get("allowPrivilegeEscalation") is False, f"{where}: allowPrivilegeEscalation"
        assert eff("runAsNonRoot") is True, f"{where}: runAsNonRoot"
        assert eff("runAsUser") not in (0, None) or psc.get("runAsUser") not in (0, None), f"{where}: runAsUser"
        assert (eff("seccompProfile") or {}).get("type") in ("RuntimeDefault", "Localhost"), f"{where}: seccomp"
        caps = sc.get("capabilities") or {}
        assert "ALL" in (caps.get("drop") or []), f"{where}: capabilities.drop ALL"
        assert set(caps.get("add") or []) <= {"NET_BIND_SERVICE"}, f"{where}: capabilities.add"
        assert sc.get("readOnlyRootFilesystem") is True, f"{where}: readOnlyRootFilesystem"
        assert not sc.get("privileged"), f"{where}: privileged"
        for p in c.get("ports", []):
            assert "hostPort" not in p, f"{where}: hostPort"
    for k in ("hostNetwork", "hostPID", "hostIPC"):
        assert not spec.get(k), f"{where}: {k}"
    allowed = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim",
               "projected", "secret"}
    for v in spec.get("volumes", []):
        kinds_ = set(v) - {"name"}
        assert kinds_ <= allowed, f"{where}: volume {v['name']} uses {kinds_}"


def t_security_context_restricted():
    for vf in (None, "upstream.yaml", "tbot.yaml", "external-secret.yaml", "ha.yaml"):
        restricted(pod_spec(render(values_file=vf)[0]), vf or "defaults")


def t_security_context_checker_can_fail():
    spec = pod_spec(render(*sets(securityContext__allowPrivilegeEscalation=True))[0])
    try:
        restricted(spec, "mutated")
    except AssertionError:
        return
    raise AssertionError("the restricted check accepted allowPrivilegeEscalation: true")


def t_leader_election_only_with_replicas():
    docs, _ = render()
    for k in ("Role", "RoleBinding", "PodDisruptionBudget", "ClusterRole", "ClusterRoleBinding"):
        assert not kinds(docs, k), f"{k} rendered with a single replica"
    assert config(docs)["leader_election"]["enabled"] is False
    assert pod_spec(docs)["automountServiceAccountToken"] is False, "token mounted without a use"
    assert one(docs, "Deployment")["spec"]["strategy"]["type"] == "Recreate"

    docs, _ = render(values_file="ha.yaml")
    assert one(docs, "Deployment")["spec"]["replicas"] == 3
    assert config(docs)["leader_election"]["enabled"] is True
    assert config(docs)["leader_election"]["lease_name"] == RELEASE
    role = one(docs, "Role")
    for rule in role["rules"]:
        assert rule["apiGroups"] == ["coordination.k8s.io"] and rule["resources"] == ["leases"], rule
        assert set(rule["verbs"]) <= {"get", "create", "update", "patch", "watch"}, rule
    named = [r for r in role["rules"] if r.get("resourceNames")]
    assert named and named[0]["resourceNames"] == [RELEASE], role["rules"]
    rb = one(docs, "RoleBinding")
    assert rb["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                             "name": role["metadata"]["name"]}, rb["roleRef"]
    sa = one(docs, "ServiceAccount")["metadata"]["name"]
    assert rb["subjects"] == [{"kind": "ServiceAccount", "name": sa, "namespace": NS}], rb["subjects"]
    assert pod_spec(docs)["serviceAccountName"] == sa
    assert pod_spec(docs)["automountServiceAccountToken"] is True
    pdb = one(docs, "PodDisruptionBudget")
    assert pdb["spec"]["selector"]["matchLabels"] == \
        one(docs, "Deployment")["spec"]["selector"]["matchLabels"], "PDB selects other pods"
    assert not kinds(docs, "ClusterRole") and not kinds(docs, "ClusterRoleBinding")
    env = {e["name"]: e for e in pod_spec(docs)["containers"][0]["env"]}
    assert env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert env["POD_NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"

    docs, _ = render(*sets(leaderElection__force=True))
    assert one(docs, "Role") and not kinds(docs, "PodDisruptionBudget")
    assert config(docs)["leader_election"]["enabled"] is True


def t_config_keys_and_upstream_mapping():
    for vf in (None, "upstream.yaml", "tbot.yaml", "external-secret.yaml", "ha.yaml"):
        cfg = config(render(values_file=vf)[0])
        assert set(cfg) == set(CONFIG_KEYS), f"{vf}: tables {sorted(cfg)}"
        for table, keys in CONFIG_KEYS.items():
            extra = set(cfg[table]) - keys
            assert not extra, f"{vf}: unknown keys {extra} in {table}"
    cfg = config(render(values_file="upstream.yaml")[0])
    assert cfg["teleport"] == {
        "addr": "teleport.example.com:443",
        "identity": "/var/lib/teleport/plugins/pagerduty/teleport-identity/auth_id",
        "refresh_identity": True}, cfg["teleport"]
    assert cfg["pagerduty"]["user_email"] == "pagerduty-bot@example.com"
    assert cfg["pagerduty"]["api_endpoint"] == "https://api.pagerduty.com"
    assert cfg["pagerduty"]["notify_service"] == "pagerduty_notify_service"
    assert cfg["pagerduty"]["services"] == "pagerduty_services"
    assert cfg["log"] == {"output": "stdout", "severity": "DEBUG", "format": "text"}, cfg["log"]
    assert cfg["status"]["listen_addr"] == ":8081"
    docs, _ = render(values_file="upstream.yaml")
    ann = one(docs, "Deployment")["spec"]["template"]["metadata"]["annotations"]
    assert ann.get("example.com/owner") == "access-team", "annotations.pod not applied"
    assert "checksum/secret" in ann, "the chart-made Secret is not hashed"
    c = pod_spec(docs)["containers"][0]
    assert c["image"] == "registry.example.com/teleport-plugin-pagerduty:0.1.0", c["image"]
    assert c["args"] == ["start", "--config", "/etc/teleport-pagerduty/teleport-pagerduty.yaml"]
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    assert {"name": "metrics", "containerPort": 8081, "protocol": "TCP"} in c["ports"]

    cfg = config(render(values_file="external-secret.yaml")[0])
    assert cfg["pagerduty"]["api_endpoint"] == "https://api.eu.pagerduty.com"
    assert cfg["pagerduty"]["notify_service"] == "acme_pd_notify"
    assert cfg["pagerduty"]["services"] == "acme_pd_services"
    assert cfg["pagerduty"]["rate_limit_per_minute"] == 600
    assert cfg["pagerduty"]["incident_urgency"] == "low"
    assert cfg["log"]["format"] == "json" and cfg["reconcile"]["workers"] == 8
    assert cfg["teleport"]["identity"].endswith("/identity")


def t_auto_approve_filters():
    assert "auto_approve_schedules" not in config(render()[0])["pagerduty"]
    pd = config(render("--set", "pagerduty.autoApproveEscalationLevels={1,2}",
                       "--set", "pagerduty.autoApproveSchedules={Primary}")[0])["pagerduty"]
    assert pd["auto_approve_escalation_levels"] == [1, 2] and pd["auto_approve_schedules"] == ["Primary"]
    assert "notify_all_services" not in pd
    pd = config(render("--set", "pagerduty.notifyAllServices=true")[0])["pagerduty"]
    assert pd["notify_all_services"] is True


def t_dry_run():
    assert "dry_run" not in config(render()[0])["reconcile"], "dry_run rendered by default"
    assert config(render("--set", "reconcile.dryRun=true")[0])["reconcile"]["dry_run"] is True


def t_tbot_identity():
    docs, _ = render(values_file="tbot.yaml")
    vols = {v["name"]: v for v in pod_spec(docs)["volumes"]}
    assert vols["teleport-identity"]["secret"]["secretName"] == f"{RELEASE}-tbot-out"
    cfg = config(docs)
    assert cfg["teleport"]["addr"] == "teleport.example.com:443", "tbot proxy address not used"
    assert cfg["teleport"]["identity"].endswith("/teleport-identity/identity")
    assert cfg["teleport"]["refresh_identity"] is True
    bot = one(docs, "TeleportBotV1")
    tok = one(docs, "TeleportProvisionToken")
    assert bot["spec"]["roles"] == ["access-plugin"]
    assert tok["metadata"]["name"] == f"{RELEASE}-tbot"
    assert tok["spec"]["bot_name"] == bot["metadata"]["name"]
    assert tok["spec"]["kubernetes"]["allow"] == [{"service_account": f"{NS}:{RELEASE}-tbot"}]
    # auth address fallback when no proxy address
    cfg = config(render(*sets(tbot__enabled=True, tbot__teleportAuthAddress="auth.example.com:3025"))[0])
    assert cfg["teleport"]["addr"] == "auth.example.com:3025"


def t_metrics_service_and_monitor():
    docs, _ = render(values_file="ha.yaml")
    svc = one(docs, "Service")
    assert svc["spec"]["ports"][0]["targetPort"] == "metrics"
    assert svc["spec"]["selector"] == one(docs, "Deployment")["spec"]["selector"]["matchLabels"]
    sm = one(docs, "ServiceMonitor")
    assert sm["spec"]["endpoints"][0]["port"] == "metrics"
    assert sm["spec"]["endpoints"][0]["path"] == "/metrics"
    assert sm["metadata"]["labels"]["release"] == "prometheus"
    svc_labels = svc["metadata"]["labels"]
    for k, v in sm["spec"]["selector"]["matchLabels"].items():
        assert svc_labels.get(k) == v, f"ServiceMonitor selector {k}={v} does not match the Service"
    assert not kinds(render()[0], "ServiceMonitor"), "ServiceMonitor rendered by default"


def t_notes():
    # helm prints NOTES.txt only on install, which needs a cluster; render it through `tpl`
    # from a copy of the chart instead.
    with tempfile.TemporaryDirectory() as d:
        copy = os.path.join(d, "chart")
        shutil.copytree(CHART, copy)
        shutil.copy(os.path.join(copy, "templates", "NOTES.txt"), os.path.join(copy, "notes-under-test.txt"))
        with open(os.path.join(copy, "templates", "zz-notes.yaml"), "w") as f:
            f.write('notes: {{ tpl (.Files.Get "notes-under-test.txt") . | toJson }}\n')
        r = subprocess.run([HELM, "template", RELEASE, copy, "--namespace", NS, "-f",
                            os.path.join(VALUES, "ha.yaml"), "--show-only", "templates/zz-notes.yaml"],
                           capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    notes = yaml.safe_load(r.stdout)["notes"]
    for want in (f"kubectl -n {NS} logs deploy/{RELEASE}",
                 f"kubectl -n {NS} port-forward deploy/{RELEASE} 8081:metrics",
                 "http://127.0.0.1:8081/readyz", f"get lease {RELEASE}",
                 f"rollout status deploy/{RELEASE}"):
        assert want in notes, f"NOTES.txt lacks {want!r}"
    assert "WARNING" not in notes, "NOTES.txt warns although ha.yaml is complete"


def main():
    global HELM
    HELM = helm_bin()
    tests = [(n, f) for n, f in globals().items() if n.startswith("t_") and callable(f)]
    passed = failed = 0
    for name, fn in tests:
        try:
            fn()
        except AssertionError as e:
            failed += 1
            print(f"FAIL {name}: {e}")
        else:
            passed += 1
            print(f"ok   {name}")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
