#!/usr/bin/env bash
# check.sh - the deploy area's shell checks, one per ctest (tests/deploy/tests.cmake).
#
# Usage: tests/deploy/check.sh STEP [OUTDIR]
#   tools       install the pinned tools (scripts/tools.sh); the setup fixture of the others
#   lint        helm lint --strict with the default values and every tests/deploy/values file
#   render      helm template for each values file (must succeed), plus must-fail cases
#   kubeconform kubeconform -strict on every render and on the kustomized plain manifests,
#               after proving that a known-bad document is rejected
#   yamllint    yamllint on the chart, test values, manifests and every render
#   manifests   deploy/manifests is what the chart renders with default values
#   systemd     systemd-analyze verify on deploy/systemd/teleport-pagerduty.service.in
#   hadolint    hadolint on the Dockerfile
# A missing tool is a failure with a message, never a skip.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
chart=$root/deploy/helm/teleport-plugin-pagerduty
values_dir=$here/values
step=${1:?usage: check.sh STEP [OUTDIR]}
out=${2:-$(mktemp -d)}
mkdir -p "$out"

fail() { echo "FAIL: $*" >&2; exit 1; }
tools_env() { # tool names
	local env
	env=$("$root/scripts/tools.sh" --print-env "$@") || fail "could not install: $* (see scripts/tools.sh output above)"
	eval "$env"
}
need() { command -v "$1" >/dev/null 2>&1 || fail "$1 is not installed (${2:-install it})"; }
release=teleport-plugin-pagerduty
ns=teleport

render_all() { # renders default + each values file into $out/render-<name>.yaml
	helm template "$release" "$chart" --namespace "$ns" >"$out/render-default.yaml" ||
		fail "helm template with default values"
	for f in "$values_dir"/*.yaml; do
		n=$(basename "$f" .yaml)
		helm template "$release" "$chart" --namespace "$ns" -f "$f" >"$out/render-$n.yaml" ||
			fail "helm template -f tests/deploy/values/$n.yaml"
	done
}

case $step in
tools)
	"$root/scripts/tools.sh" || fail "scripts/tools.sh could not install the deploy tools"
	;;
lint)
	tools_env helm
	helm lint --strict "$chart" || fail "helm lint (default values)"
	for f in "$values_dir"/*.yaml; do
		helm lint --strict "$chart" -f "$f" || fail "helm lint -f $f"
	done
	echo "helm lint: ok"
	;;
render)
	tools_env helm
	render_all
	# Invalid values must be refused by values.schema.json or the templates.
	bad=0
	for args in "--set replica=3" "--set log.severity=LOUD" "--set log.format=xml" \
		"--set pagerduty.incidentUrgency=urgent" "--set reconcile.workers=0" \
		"--set leaderElection.leaseDuration=15" "--set crd.create=true" \
		"--set tbot.enabled=true --set crd.create=true --set crd.tokenSpecOverride.join_method=token"; do
		# shellcheck disable=SC2086
		if helm template "$release" "$chart" $args >/dev/null 2>"$out/err.txt"; then
			echo "FAIL: helm template $args was accepted" >&2
			bad=1
		else
			echo "refused as expected: $args: $(grep -m1 'Error' "$out/err.txt")"
		fi
	done
	[ $bad -eq 0 ] || fail "invalid values were accepted"
	echo "helm template: ok"
	;;
kubeconform)
	tools_env helm kubeconform schemas
	need kubectl "kubectl (kustomize) is needed to build deploy/manifests"
	kc=(kubeconform -strict -summary -kubernetes-version "$TPD_K8S_VERSION"
		-schema-location "$TPD_K8S_SCHEMAS/{{.NormalizedKubernetesVersion}}-local{{.StrictSuffix}}/{{.ResourceKind}}{{.KindSuffix}}.json")
	# The schemas must be wired up: an unknown field and a wrong type must be caught, and a
	# kind without a schema must be an error (not silently skipped).
	cat >"$out/known-bad.yaml" <<'YAML'
apiVersion: apps/v1
kind: Deployment
metadata: {name: bad}
spec:
  replica: 1
  selector: {matchLabels: {a: b}}
  template:
    metadata: {labels: {a: b}}
    spec:
      containers: [{name: c, image: i, ports: [{containerPort: "eighty"}]}]
YAML
	if "${kc[@]}" "$out/known-bad.yaml" >"$out/known-bad.txt" 2>&1; then
		cat "$out/known-bad.txt"
		fail "kubeconform accepted a known-bad Deployment: the schemas are not in use"
	fi
	grep -q "additional properties 'replica' not allowed" "$out/known-bad.txt" ||
		fail "kubeconform did not report the unknown field: $(cat "$out/known-bad.txt")"
	render_all
	timeout 120 kubectl kustomize "$root/deploy/manifests" >"$out/render-kustomized.yaml" ||
		fail "kubectl kustomize deploy/manifests"
	# CRDs of other projects (prometheus-operator, Teleport operator) have no schema here.
	"${kc[@]}" -skip ServiceMonitor,TeleportBotV1,TeleportProvisionToken "$out"/render-*.yaml ||
		fail "kubeconform found invalid resources"
	;;
yamllint)
	need yamllint "apt-get install yamllint (scripts/deps.d/deploy.list)"
	tools_env helm
	render_all
	cd "$root"
	yamllint --strict -f parsable -c "$here/yamllint.yaml" \
		deploy/helm/teleport-plugin-pagerduty/Chart.yaml deploy/helm/teleport-plugin-pagerduty/values.yaml \
		tests/deploy/values deploy/manifests "$out"/render-*.yaml || fail "yamllint"
	# The config file inside each ConfigMap is YAML too (helm's toYaml writes a block sequence
	# flush with its key, hence indent-sequences: whatever).
	/usr/bin/python3 - "$out" <<'PY' || fail "yamllint of the rendered config files"
import glob, os, subprocess, sys, yaml
out = sys.argv[1]
for f in sorted(glob.glob(os.path.join(out, "render-*.yaml"))):
    for d in yaml.safe_load_all(open(f)):
        if d and d.get("kind") == "ConfigMap":
            p = f[:-5] + ".config.yaml"
            open(p, "w").write(d["data"]["teleport-pagerduty.yaml"])
            r = subprocess.run(["yamllint", "--strict", "-f", "parsable", "-d",
                                "{extends: default, rules: {document-start: disable, "
                                "indentation: {spaces: 2, indent-sequences: whatever}}}", p])
            if r.returncode:
                sys.exit(1)
PY
	echo "yamllint: ok"
	;;
manifests)
	tools_env helm
	"$root/deploy/manifests/regenerate.sh" --check
	;;
systemd)
	need systemd-analyze "apt-get install systemd (scripts/deps.d/deploy.list)"
	unit=$root/deploy/systemd/teleport-pagerduty.service.in
	# systemd-analyze verify needs the ExecStart binary to exist: point it at a stand-in.
	printf '#!/bin/sh\nexit 0\n' >"$out/teleport-pagerduty" && chmod 0755 "$out/teleport-pagerduty"
	sed "s|@TPD_BINDIR@/teleport-pagerduty|$out/teleport-pagerduty|g" "$unit" >"$out/teleport-pagerduty.service"
	# verify exits 0 on unknown keys and bad values (it only warns), so any output fails.
	systemd-analyze verify --man=no "$out/teleport-pagerduty.service" >"$out/verify.txt" 2>&1 || {
		cat "$out/verify.txt"; fail "systemd-analyze verify exited non-zero"; }
	if grep -v -e '^$' "$out/verify.txt" | grep -q .; then
		cat "$out/verify.txt"
		fail "systemd-analyze verify printed warnings"
	fi
	# The checker itself must catch a bad unit.
	printf '[Service]\nExecStart=%s\nProtectSystem=sometimes\n' "$out/teleport-pagerduty" >"$out/bad.service"
	systemd-analyze verify --man=no "$out/bad.service" 2>&1 | grep -q . ||
		fail "systemd-analyze verify did not flag a bad unit; this check cannot work"
	# What the unit must and must not say.
	exec_start=$(sed -n 's/^ExecStart=//p' "$unit")
	case $exec_start in
	*--pid-file*) fail "ExecStart passes --pid-file, which the CLI does not accept" ;;
	"@TPD_BINDIR@/teleport-pagerduty start --config="*) ;; # the template: filled in at install
	*) fail "unexpected ExecStart: $exec_start" ;;
	esac
	for want in 'ExecReload=/bin/kill -HUP $MAINPID' 'NoNewPrivileges=yes' 'ProtectSystem=strict' \
		'ReadWritePaths=/var/log/teleport-pagerduty' 'User=teleport-pagerduty' 'Restart=on-failure' \
		'CapabilityBoundingSet=' 'WantedBy=multi-user.target'; do
		grep -qxF "$want" "$unit" || fail "the unit lacks '$want'"
	done
	grep -q '^PIDFile=' "$unit" && fail "PIDFile= without a pid file"
	# When the binary is built, the unit's command line must be one it accepts.
	if [ -n "${TPD_BIN:-}" ] && [ -x "$TPD_BIN" ]; then
		"$TPD_BIN" start --config=/nonexistent/teleport-pagerduty.toml >"$out/start.txt" 2>&1 && true
		rc=$?
		if [ $rc -eq 2 ] || grep -qi 'unknown flag\|usage' "$out/start.txt"; then
			cat "$out/start.txt"
			fail "the binary rejects the unit's command line"
		fi
	fi
	echo "systemd unit: ok"
	;;
hadolint)
	tools_env hadolint
	hadolint --no-color --config "$here/hadolint.yaml" "$root/Dockerfile" || fail "hadolint"
	# and it must be able to fail
	printf 'FROM debian\nRUN apt-get install curl\nRUN cd /tmp\n' >"$out/Dockerfile.bad"
	if hadolint --no-color --config "$here/hadolint.yaml" "$out/Dockerfile.bad" >/dev/null 2>&1; then
		fail "hadolint accepted a bad Dockerfile"
	fi
	echo "hadolint: ok"
	;;
*)
	fail "unknown step $step"
	;;
esac
