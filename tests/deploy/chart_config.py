#!/usr/bin/python3
"""chart_config.py - the config the Helm chart renders is one the binary's loader accepts.

For the default values and every file in tests/deploy/values/, renders the chart with `helm
template` (helm from the tools cache, scripts/tools.sh), takes the config file out of the
ConfigMap and runs `teleport-pagerduty check -c <file>.yaml` on it ($TPD_BIN). The config must
load and validate: the output says "config: <file> loaded", has no "config error", no failing
"config:" line and no "[warn]" (a warning means the chart renders a key the loader does not
know). The rest of the check (credentials, connectivity) fails, which is expected: it runs in a
private network namespace (`unshare --net`, loopback only), so nothing leaves the machine.

The rendered config refers to files the pod gets from its volume mounts (the API key, the
identity). This test builds that part of the pod's file system in a temporary directory from the
rendered Deployment: each path the config names must lie under a mount of a Secret volume (the
chart-rendered Secret must hold the key the path names), the config file itself must be where
the container's `--config` argument says, inside the ConfigMap mount. The file paths in the
config are then moved under the temporary directory; keys, types and every other value stay as
rendered.

The error path: every file in tests/deploy/values-invalid/ carries an invalid setting (its first
line says `# expect: <text>`); each must be refused by `helm template` (values.schema.json or
the templates) or, when the chart renders it, reported by the loader as `config: <file>:<line>:...`
with <text> in the message. An invalid value that passes both would reach a pod and crash it.
Prints one line per case and "N passed, N failed"; exit 1 on any failure.
"""
import concurrent.futures
import os
import re
import shutil
import subprocess
import sys
import tempfile

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import chart_assertions as ca  # noqa: E402  (helm_bin, CHART, RELEASE, NS)

VALUES = os.path.join(HERE, "values")
INVALID = os.path.join(HERE, "values-invalid")
CONFIG_KEY_PATHS = (("teleport", "identity"), ("pagerduty", "api_key"))


def helm(values_file=None, args=()):
    cmd = [ca.HELM, "template", ca.RELEASE, ca.CHART, "--namespace", ca.NS]
    if values_file:
        cmd += ["-f", values_file]
    cmd += list(args)
    return subprocess.run(cmd, capture_output=True, text=True)


def docs_of(text):
    return [d for d in yaml.safe_load_all(text) if d]


def one(docs, kind, name=None):
    found = [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def binary():
    b = os.environ.get("TPD_BIN", "")
    assert b and os.access(b, os.X_OK), "TPD_BIN (the built teleport-pagerduty) is needed"
    return b


def pod_files(docs, root):
    """Lays the rendered pod's config file and mounted secret files out under root.

    Returns (config path in the pod, its copy under root, {pod path: copy under root})."""
    dep = one(docs, "Deployment")
    spec = dep["spec"]["template"]["spec"]
    c = [x for x in spec["containers"] if x["name"] != "tbot"]
    assert len(c) == 1, f"expected one plugin container, found {[x['name'] for x in spec['containers']]}"
    c = c[0]
    args = c.get("args") or []
    assert "--config" in args, f"the container's args have no --config: {args}"
    cfg_path = args[args.index("--config") + 1]
    volumes = {v["name"]: v for v in spec.get("volumes", [])}
    mounts = [(m["mountPath"].rstrip("/"), volumes[m["name"]]) for m in c.get("volumeMounts", [])]
    rendered_secrets = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Secret"}

    def mount_of(path):
        best = None
        for mp, vol in mounts:
            if path.startswith(mp + "/") and (best is None or len(mp) > len(best[0])):
                best = (mp, vol)
        return best

    # The config file: a key of the rendered ConfigMap, mounted where --config points.
    m = mount_of(cfg_path)
    assert m and "configMap" in m[1], f"--config {cfg_path} is not inside a ConfigMap mount ({mounts})"
    cm = one(docs, "ConfigMap", m[1]["configMap"]["name"])
    key = cfg_path[len(m[0]) + 1:]
    items = m[1]["configMap"].get("items")
    if items:
        key = {i["path"]: i["key"] for i in items}.get(key)
    assert key in cm.get("data", {}), f"ConfigMap {cm['metadata']['name']} has no key for {cfg_path}"
    text = cm["data"][key]
    cfg = yaml.safe_load(text)
    assert isinstance(cfg, dict), "the rendered config is not a YAML mapping"

    # Each file the config names must come from a Secret mount.
    moved = {}
    for table, k in CONFIG_KEY_PATHS:
        p = (cfg.get(table) or {}).get(k)
        assert isinstance(p, str) and p.startswith("/"), f"{table}.{k} is not an absolute path: {p!r}"
        m = mount_of(p)
        assert m and "secret" in m[1], f"{table}.{k} = {p} is not inside a Secret volume mount ({mounts})"
        sec = m[1]["secret"]
        rel = p[len(m[0]) + 1:]
        items = sec.get("items")
        skey = {i["path"]: i["key"] for i in items}.get(rel) if items else rel
        assert skey, f"{table}.{k} = {p}: the mount of Secret {sec['secretName']} projects no {rel}"
        if sec["secretName"] in rendered_secrets:  # the chart's own Secret must hold that key
            data = rendered_secrets[sec["secretName"]].get("data") or {}
            assert skey in data, f"{table}.{k} = {p}: Secret {sec['secretName']} has no key {skey}"
        local = os.path.join(root, p.lstrip("/"))
        os.makedirs(os.path.dirname(local), exist_ok=True)
        with open(local, "w") as f:  # stand-ins: the check fails on them after the load
            f.write("test-only-api-key-0000\n" if k == "api_key" else "not an identity file\n")
        os.chmod(local, 0o600)
        cfg[table][k] = local
        moved[p] = local
    # Move the paths in the rendered text itself (so the loader reads helm's own YAML), and make
    # sure nothing else changed.
    for p, local in moved.items():
        text = re.sub(r"(?<=[\s:'\"])" + re.escape(p) + r"(?=['\"]?\s*$)", local, text, flags=re.M)
    assert yaml.safe_load(text) == cfg, "moving the file paths changed more than the paths"
    local_cfg = os.path.join(root, cfg_path.lstrip("/"))
    os.makedirs(os.path.dirname(local_cfg), exist_ok=True)
    with open(local_cfg, "w") as f:
        f.write(text)
    return cfg_path, local_cfg, moved


def run_check(cfg_file):
    env = dict(os.environ)
    # Off the network: loopback only (down), so the connectivity part fails at once.
    r = subprocess.run(["unshare", "--net", binary(), "check", "-c", cfg_file], capture_output=True,
                       text=True, timeout=60, env=env)
    return r.returncode, r.stdout + r.stderr


def check_defaults(_, work):
    """Default values: the one value a user must supply is pagerduty.userEmail (as upstream)."""
    r = helm()
    assert r.returncode == 0, f"helm template failed: {r.stderr.strip()}"
    root = tempfile.mkdtemp(dir=work)
    _, cfg_file, _ = pod_files(docs_of(r.stdout), root)
    rc, out = run_check(cfg_file)
    lines = [l for l in out.splitlines() if l.startswith("[fail] config: ")]
    assert rc == 1 and len(lines) == 1 and "missing required value pagerduty.user_email" in lines[0], \
        f"with default values the loader should miss only pagerduty.user_email:\n{out}"
    return check_valid(None, work, ["--set", "pagerduty.userEmail=bot@example.com"]) + \
        " (with pagerduty.userEmail set; without it the loader asks for it)"


def check_valid(values_file, work, args=()):
    r = helm(values_file, args)
    assert r.returncode == 0, f"helm template failed: {r.stderr.strip()}"
    root = tempfile.mkdtemp(dir=work)
    _, cfg_file, _ = pod_files(docs_of(r.stdout), root)
    rc, out = run_check(cfg_file)
    assert f"[ok] config: {cfg_file} loaded" in out, f"the config did not load:\n{out}"
    assert "config error" not in out, out
    assert not re.search(r"^\[fail\] config:", out, re.M), out
    warns = [l for l in out.splitlines() if l.startswith("[warn]")]
    assert not warns, f"the loader warned about the rendered config: {warns}"
    # The check goes on to credentials and connectivity, which must fail here (stand-in identity,
    # no network): that proves the output above came from a real check run.
    assert rc == 1 and "check failed" in out, f"rc={rc}: {out}"
    return "config loaded"


def check_invalid(values_file, work):
    first = open(values_file).readline()
    m = re.match(r"#\s*expect:\s*(.+?)\s*$", first)
    assert m, f"{values_file}: the first line must be '# expect: <text>'"
    expect = m.group(1)
    r = helm(values_file)
    if r.returncode != 0:
        assert expect.lower() in r.stderr.lower(), \
            f"helm template refused it, but not naming {expect!r}: {r.stderr.strip()}"
        return "refused by helm template: " + r.stderr.strip().splitlines()[-1][:160]
    root = tempfile.mkdtemp(dir=work)
    _, cfg_file, _ = pod_files(docs_of(r.stdout), root)
    rc, out = run_check(cfg_file)
    assert rc != 0, f"the chart rendered it and the loader accepted it:\n{out}"
    lines = [l for l in out.splitlines() if l.startswith("[fail] config: ")]
    assert lines, f"the chart rendered it and the loader did not refuse the config:\n{out}"
    assert re.match(r"\[fail\] config: " + re.escape(cfg_file) + r":\d+:\d+: ", lines[0]), \
        f"the loader's error has no file:line:col: {lines[0]}"
    assert expect.lower() in lines[0].lower(), f"the loader's error does not name {expect!r}: {lines[0]}"
    return "rendered, refused by the loader: " + lines[0][len("[fail] config: ") + len(cfg_file) + 1:][:160]


def main():
    ca.HELM = ca.helm_bin()
    binary()
    assert shutil.which("unshare"), "unshare (util-linux) is needed"
    work = tempfile.mkdtemp(prefix="tpd-chart-config-")
    cases = [("default values", check_defaults, None)]
    cases += [(f"values/{f}", check_valid, os.path.join(VALUES, f))
              for f in sorted(os.listdir(VALUES)) if f.endswith(".yaml")]
    invalid = sorted(f for f in os.listdir(INVALID) if f.endswith(".yaml"))
    cases += [(f"values-invalid/{f}", check_invalid, os.path.join(INVALID, f)) for f in invalid]
    passed = failed = 0
    if len(invalid) < 2:
        print(f"FAIL values-invalid: only {len(invalid)} invalid values files")
        failed += 1

    def run(case):
        name, fn, path = case
        try:
            return True, f"ok   {name}: {fn(path, work)}"
        except (AssertionError, subprocess.TimeoutExpired) as e:
            return False, f"FAIL {name}: {e}"

    # Each check spends ~3 s in the PagerDuty client's retries (no network): run them side by side.
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        for ok, line in pool.map(run, cases):
            passed += ok
            failed += not ok
            print(line)
    shutil.rmtree(work, ignore_errors=True)
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
