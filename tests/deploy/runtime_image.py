#!/usr/bin/python3
"""runtime_image.py - the Dockerfile's runtime stage, tested without a container engine.

Builds what the runtime stage builds, from Debian's archive: a minimal Debian root made with
`debootstrap --variant=minbase` for the suite of the stage's base image (debian:bookworm-slim ->
bookworm), then runs the stage's own RUN instructions in it (chroot, as root, with the stage's
ARGs), so exactly the packages the Dockerfile lists get installed (`--no-install-recommends`, no
-dev package). The result is cached under ${TPD_TOOLS_DIR:-$HOME/.cache/tpd-tools}/rootfs-<suite>-<key>,
keyed by the suite, the mirror and the stage's RUN/ARG text, so a later run takes seconds; a
changed package list builds a new root and drops the old one. A lock file there lets one run at a
time build or use a root (ctest also holds RESOURCE_LOCK tpd_rootfs).

The binary is a release build, stripped like the Dockerfile's `install -s`: $TPD_BIN when that
is not sanitized, otherwise one built in <build>/tests/deploy/runtime-image/release with
-DTPD_SANITIZE=OFF -DTPD_TESTS=OFF. It goes where the stage's COPY puts it.

Every command runs as the container would run it: in a private mount namespace (`unshare
--mount`), an overlay of [test files] over the cached root (which stays read-only) with a fresh
writable layer, /proc and a /tmp tmpfs mounted, chrooted as the stage's USER (65532:65532), with
an empty environment plus Docker's default PATH and HOME=/. The network namespace is the host's,
so the fakes (tests/lib/tpdtest, run here on the host by tests/lib/tpdtest/harness.py) are reached on 127.0.0.1.

Checks: the packages are installed; every shared library of the binary resolves (ldd in the
root); `version`; `configure`; `check` against the fakes passes with the fake PagerDuty's CA in
SSL_CERT_FILE and fails on the certificate without it (the image's own CA bundle is in use); and
ENTRYPOINT + CMD, with a YAML config at the CMD's path, starts the controller, which serves
/readyz, opens an incident for an access request, resolves it on approval and shuts down cleanly
on SIGTERM. Prints one line per check and "N passed, N failed"; exit 1 on any failure.
"""
import fcntl
import hashlib
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "lib"))  # tpdtest
from dockerfile_check import apt_packages, parse  # noqa: E402

DOCKERFILE = os.environ.get("TPD_DOCKERFILE") or os.path.join(ROOT, "Dockerfile")  # override: mutation tests
TOOLS_DIR = os.environ.get("TPD_TOOLS_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "tpd-tools")
MIRROR = os.environ.get("TPD_DEBIAN_MIRROR", "http://deb.debian.org/debian")
SECURITY_MIRROR = os.environ.get("TPD_DEBIAN_SECURITY_MIRROR", "http://deb.debian.org/debian-security")
RECIPE = 1  # bump when build_rootfs() changes what it makes
DOCKER_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
BUILD_DIR = os.environ.get("TPD_BUILD_DIR") or os.path.join(ROOT, "build")
OUT = os.path.join(BUILD_DIR, "tests", "deploy", "runtime-image")


def log(msg):
    print(msg, flush=True)


def sh(cmd, logfile=None, **kw):
    """Runs cmd; on failure raises AssertionError with the end of its output."""
    r = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if logfile:
        with open(logfile, "a") as f:
            f.write("$ %s\n%s%s" % (" ".join(cmd), r.stdout, r.stderr))
    if r.returncode:
        tail = (r.stdout + r.stderr).strip().splitlines()[-25:]
        raise AssertionError("%s exited %d:\n%s" % (" ".join(cmd[:6]), r.returncode, "\n".join(tail)))
    return r.stdout


def mounts_under(path):
    path = os.path.realpath(path)
    found = []
    with open("/proc/self/mounts") as f:
        for line in f:
            mp = line.split()[1].replace("\\040", " ")
            if mp == path or mp.startswith(path + "/"):
                found.append(mp)
    return sorted(found, key=len, reverse=True)


def safe_rmtree(path):
    """rm -rf that first unmounts anything left mounted below path (never descends into /proc)."""
    for mp in mounts_under(path):
        subprocess.run(["umount", "-l", mp], check=False)
    assert not mounts_under(path), f"cannot unmount {mounts_under(path)}"
    shutil.rmtree(path, ignore_errors=True)


# --- the Dockerfile's runtime stage ---------------------------------------------------------

class Stage:
    def __init__(self):
        stages = parse(DOCKERFILE)
        assert len(stages) >= 2, "the Dockerfile is not multi-stage"
        rt = stages[-1]
        m = re.match(r"debian:([a-z]+)-slim(@sha256:[0-9a-f]+)?$", rt["from"])
        assert m, f"the runtime stage is not FROM debian:<suite>-slim: {rt['from']}"
        self.suite = m.group(1)
        self.args, self.runs, self.user = {}, [], None
        self.entrypoint = self.cmd = self.binary_path = None
        for op, a in rt["ins"]:
            if op == "ARG":
                k, _, v = a.partition("=")
                self.args[k.strip()] = v.strip().strip('"')
            elif op == "ENV":
                raise AssertionError("ENV in the runtime stage: teach runtime_image.py about it")
            elif op == "RUN":
                assert self.user is None, "RUN after USER: teach runtime_image.py about it"
                self.runs.append(a)
            elif op == "USER":
                self.user = a
            elif op == "ENTRYPOINT":
                self.entrypoint = json.loads(a)
            elif op == "CMD":
                self.cmd = json.loads(a)
            elif op == "COPY":
                words = a.split()
                assert words[0].startswith("--from="), f"COPY from the context in the runtime stage: {a}"
                self.binary_path = words[-1]
        self.packages = apt_packages(rt)
        assert self.packages, "the runtime stage installs no packages"
        dev = [p for p in self.packages if p.endswith("-dev")]
        assert not dev, f"-dev packages in the runtime stage: {dev}"
        assert self.user and re.match(r"^\d+(:\d+)?$", self.user), f"USER {self.user} is not numeric"
        if ":" not in self.user:
            self.user += ":" + self.user
        self.uid, self.gid = (int(x) for x in self.user.split(":"))
        assert self.entrypoint and self.cmd and self.binary_path, "ENTRYPOINT, CMD or COPY missing"
        assert self.entrypoint == [self.binary_path], f"ENTRYPOINT {self.entrypoint} != COPY {self.binary_path}"
        self.config_path = self.cmd[self.cmd.index("--config") + 1] if "--config" in self.cmd else None
        assert self.config_path, f"CMD has no --config: {self.cmd}"

    def key(self):
        text = json.dumps({"recipe": RECIPE, "suite": self.suite, "mirror": MIRROR,
                           "security": SECURITY_MIRROR, "args": self.args, "runs": self.runs},
                          sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def chroot_sh(root, script, env, logfile):
    """Runs a shell script chrooted in root as root, with /proc mounted in a private namespace."""
    wrapper = 'r=$1; shift; mount -t proc proc "$r/proc" && exec chroot "$r" /usr/bin/env -i "$@"'
    envs = [f"{k}={v}" for k, v in env.items()]
    sh(["unshare", "--mount", "sh", "-c", wrapper,
        "sh", root, *envs, "/bin/sh", "-c", script], logfile)


def build_rootfs(stage, dest):
    tmp = dest + ".tmp"
    safe_rmtree(tmp)
    os.makedirs(tmp)
    root = os.path.join(tmp, "root")
    blog = os.path.join(tmp, "build.log")
    t0 = time.monotonic()
    log(f"     building the {stage.suite} root with debootstrap --variant=minbase ({MIRROR}); log: {blog}")
    try:
        # Its own mount namespace: whatever debootstrap mounts in the target goes away with it.
        sh(["unshare", "--mount", "debootstrap", "--variant=minbase", "--arch=amd64", stage.suite, root,
            MIRROR], blog)
        t_boot = time.monotonic() - t0
        # The package sources of Debian's own images (deb822), then the stage's RUN instructions.
        os.makedirs(os.path.join(root, "etc/apt/sources.list.d"), exist_ok=True)
        with open(os.path.join(root, "etc/apt/sources.list.d/debian.sources"), "w") as f:
            f.write(f"Types: deb\nURIs: {MIRROR}\nSuites: {stage.suite} {stage.suite}-updates\n"
                    "Components: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\n"
                    f"Types: deb\nURIs: {SECURITY_MIRROR}\nSuites: {stage.suite}-security\n"
                    "Components: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n")
        if os.path.exists(os.path.join(root, "etc/apt/sources.list")):
            os.unlink(os.path.join(root, "etc/apt/sources.list"))
        shutil.copy("/etc/resolv.conf", os.path.join(root, "etc/resolv.conf"))
        env = {"PATH": DOCKER_PATH, "HOME": "/root", **stage.args}
        for run in stage.runs:
            log(f"     RUN {run[:100]}{'...' if len(run) > 100 else ''}")
            chroot_sh(root, run, env, blog)
        # No resolver inside: the tests talk to 127.0.0.1 only.
        open(os.path.join(root, "etc/resolv.conf"), "w").close()
        listing = sh(["dpkg-query", f"--admindir={root}/var/lib/dpkg", "-W",
                      "-f=${Package} ${Version} ${Status}\n"])
        with open(os.path.join(tmp, "packages.txt"), "w") as f:
            f.write(listing)
        with open(os.path.join(tmp, "stamp.json"), "w") as f:
            json.dump({"suite": stage.suite, "packages": stage.packages, "runs": stage.runs,
                       "debootstrap_seconds": round(t_boot, 1),
                       "total_seconds": round(time.monotonic() - t0, 1)}, f, indent=1)
    except BaseException:
        safe_rmtree(tmp)
        raise
    os.rename(tmp, dest)
    log(f"     root built in {time.monotonic() - t0:.0f} s (debootstrap {t_boot:.0f} s)")


def rootfs(stage):
    """Returns the cached root for the stage, building it when missing. Call with the lock held."""
    dest = os.path.join(TOOLS_DIR, f"rootfs-{stage.suite}-{stage.key()}")
    if not os.path.exists(os.path.join(dest, "stamp.json")):
        if os.path.exists(dest):
            safe_rmtree(dest)
        build_rootfs(stage, dest)
    # Older roots (another package list) are 200+ MB each: keep only this one.
    for d in os.listdir(TOOLS_DIR):
        p = os.path.join(TOOLS_DIR, d)
        if d.startswith("rootfs-") and p != dest:
            log(f"     removing the outdated root {p}")
            safe_rmtree(p)
    return dest


# --- the binary ---------------------------------------------------------------------------------

def sanitized(binary):
    out = sh(["readelf", "-d", binary])
    return bool(re.search(r"Shared library: \[lib(asan|ubsan|tsan|lsan)", out))


def build_stage_cmake_flags():
    """The -D flags of the Dockerfile build stage's `cmake -S ... -B ...` configure command."""
    build = parse(DOCKERFILE)[0]
    runs = " && ".join(a for op, a in build["ins"] if op == "RUN")
    for cmd in re.split(r"&&|;", runs):
        words = shlex.split(cmd)
        if words[:1] == ["cmake"] and "-S" in words:
            return [w for w in words if w.startswith("-D")]
    raise AssertionError("no `cmake -S` configure command in the Dockerfile's build stage")


def release_binary():
    b = os.environ.get("TPD_BIN", "")
    if b and os.access(b, os.X_OK) and not sanitized(b):
        return b, "TPD_BIN (not sanitized)"
    # TPD_RUNTIME_CMAKE_ARGS: extra configure flags, printed in the output when used.
    # Built as the Dockerfile's build stage builds it (same -D flags), in this test's own folder.
    extra = shlex.split(os.environ.get("TPD_RUNTIME_CMAKE_ARGS", ""))
    if extra:
        log(f"     note: building with extra flags {extra} that the Dockerfile does not use")
    flags = build_stage_cmake_flags() + extra
    assert "-DTPD_SANITIZE=OFF" in flags, f"the build stage does not turn the sanitizers off: {flags}"
    bdir = os.path.join(OUT, "release")
    blog = os.path.join(OUT, "release-build.log")
    open(blog, "w").close()
    stamp = os.path.join(bdir, "tpd-flags.txt")
    if not os.path.exists(stamp) or open(stamp).read() != " ".join(flags):
        sh(["cmake", "-S", ROOT, "-B", bdir, *flags], blog)
        with open(stamp, "w") as f:
            f.write(" ".join(flags))
    sh(["cmake", "--build", bdir, "-j2", "--target", "teleport-pagerduty"], blog)
    b = os.path.join(bdir, "teleport-pagerduty")
    assert not sanitized(b), f"{b} is sanitized"
    return b, f"built like the Dockerfile's build stage ({' '.join(flags)}) in {bdir}"


# --- running in the image -------------------------------------------------------------------------

class Image:
    """The cached root plus a layer of test files; every command gets a fresh writable layer."""

    def __init__(self, stage, rootfs_dir, work):
        self.stage = stage
        self.lower = os.path.join(rootfs_dir, "root")
        self.work = work
        self.layer = os.path.join(work, "layer")
        self.n = 0

    def path(self, p):
        """Host path of image path p in the test-file layer (created with its parents)."""
        local = os.path.join(self.layer, p.lstrip("/"))
        os.makedirs(os.path.dirname(local), exist_ok=True)
        return local

    def put(self, image_path, data=None, src=None, mode=0o644, owner=True):
        local = self.path(image_path)
        if src:
            shutil.copyfile(src, local)
        else:
            with open(local, "w") as f:
                f.write(data)
        os.chmod(local, mode)
        if owner:
            os.chown(local, self.stage.uid, self.stage.gid)

    def argv(self, args, env=None):
        self.n += 1
        inv = os.path.join(self.work, f"inv-{self.n}")
        for d in ("upper", "work", "merged"):
            os.makedirs(os.path.join(inv, d))
        opts = "lowerdir=%s:%s,upperdir=%s/upper,workdir=%s/work" % (self.layer, self.lower, inv, inv)
        e = {"PATH": DOCKER_PATH, "HOME": "/", **(env or {})}
        script = ('m=$1; o=$2; u=$3; shift 3; '
                  'mount -t overlay overlay -o "$o" "$m" && mount -t proc proc "$m/proc" && '
                  'mount -t tmpfs -o mode=1777,size=16m tmpfs "$m/tmp" && '
                  'exec chroot --userspec="$u" "$m" /usr/bin/env -i "$@"')
        # exec all the way down: the returned process is the binary itself (signals reach it).
        return ["unshare", "--mount", "sh", "-c", script, "sh", os.path.join(inv, "merged"), opts,
                self.stage.user, *[f"{k}={v}" for k, v in e.items()], *args]

    def run(self, args, env=None, timeout=60):
        return subprocess.run(self.argv(args, env), capture_output=True, text=True, timeout=timeout)


# --- the checks -------------------------------------------------------------------------------------

def main():
    checks = []

    def check(name):
        def deco(fn):
            checks.append((name, fn))
            return fn
        return deco

    for tool in ("debootstrap", "unshare", "chroot", "mount", "readelf", "strip", "dpkg-query"):
        assert shutil.which(tool), f"{tool} is not installed (scripts/deps.d/deploy2.list)"
    assert os.geteuid() == 0, "runtime_image.py needs root (debootstrap, mount, chroot)"
    assert "overlay" in open("/proc/filesystems").read(), "the kernel has no overlay file system"

    stage = Stage()
    os.makedirs(OUT, exist_ok=True)
    t0 = time.monotonic()
    binary, origin = release_binary()
    log(f"     binary: {origin} ({time.monotonic() - t0:.0f} s)")

    os.makedirs(TOOLS_DIR, exist_ok=True)
    lockf = open(os.path.join(TOOLS_DIR, ".rootfs.lock"), "w")
    try:
        fcntl.flock(lockf, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        log("     waiting for another run to release the root file system lock")
        fcntl.flock(lockf, fcntl.LOCK_EX)
    t1 = time.monotonic()
    rdir = rootfs(stage)
    log(f"     root: {rdir} ({time.monotonic() - t1:.0f} s)")

    work = os.path.join(OUT, "run")
    safe_rmtree(work)
    os.makedirs(work)
    img = Image(stage, rdir, work)
    stripped = img.path(stage.binary_path)
    sh(["strip", "-o", stripped, binary])
    os.chmod(stripped, 0o755)
    bin_in = stage.binary_path
    entry = stage.entrypoint
    state = {}

    @check("the runtime stage's packages, and only those, are installed")
    def _():
        listing = open(os.path.join(rdir, "packages.txt")).read()
        installed = {l.split()[0] for l in listing.splitlines() if l.endswith("install ok installed")}
        missing = [p for p in stage.packages if p not in installed]
        assert not missing, f"not installed: {missing}"
        dev = sorted(p for p in installed if p.endswith("-dev"))
        assert not dev, f"-dev packages in the root: {dev}"
        return f"{', '.join(stage.packages)} ({len(installed)} packages in all)"

    @check("every shared library of the binary resolves in the image")
    def _():
        r = img.run(["/usr/bin/ldd", bin_in])
        assert r.returncode == 0, f"ldd exited {r.returncode}: {r.stdout}{r.stderr}"
        missing = [l.strip() for l in r.stdout.splitlines() if "not found" in l]
        assert not missing, f"missing in the image: {missing}"
        libs = re.findall(r"^\s*(\S+) => /", r.stdout, re.M)
        assert libs, r.stdout
        return f"{len(libs)} libraries"

    @check("version")
    def _():
        r = img.run(entry + ["version"])
        assert r.returncode == 0, f"exit {r.returncode}: {r.stdout}{r.stderr}"
        assert re.match(r"^teleport-pagerduty v\d+\.\d+\.\d+(\+g[0-9a-f]{12})? git:\S+ ", r.stdout), r.stdout
        return r.stdout.strip()

    @check("configure")
    def _():
        r = img.run(entry + ["configure"])
        assert r.returncode == 0, f"exit {r.returncode}: {r.stdout}{r.stderr}"
        for table in ("[teleport]", "[pagerduty]", "[log]"):
            assert table in r.stdout, f"{table} missing from configure's output"
        return f"{len(r.stdout.splitlines())} lines"

    # The fakes run on the host, on 127.0.0.1; the chroot shares the network namespace.
    from tpdtest.harness import API_KEY, BOT_EMAIL, Env  # noqa: E402
    env = Env(workdir=tempfile.mkdtemp(prefix="tpd-runtime-image-"))
    base = "/var/lib/teleport/plugins/pagerduty"
    ca_in = "/etc/teleport-pagerduty-test/fake-pagerduty-ca.pem"
    img.put(base + "/identity", src=os.path.join(env.pki, "identity"), mode=0o400)
    img.put(base + "/pagerduty_api_key", data=API_KEY + "\n", mode=0o400)
    img.put(ca_in, src=env.pd.ca_file)
    config = (f"teleport:\n  addr: \"{env.tp.addr}\"\n  identity: {base}/identity\n"
              f"pagerduty:\n  api_key: {base}/pagerduty_api_key\n  user_email: {BOT_EMAIL}\n"
              f"  api_endpoint: \"{env.pd.url}\"\n"
              "log:\n  output: stderr\n  severity: debug\n  format: json\n"
              "status:\n  listen_addr: \"127.0.0.1:0\"\n"
              "reconcile:\n  workers: 2\n  shutdown_timeout: 5s\n")
    img.put(stage.config_path, data=config)
    tls_env = {"SSL_CERT_FILE": ca_in}

    @check("check against the fakes, trusting the fake PagerDuty's CA via SSL_CERT_FILE")
    def _():
        r = img.run(entry + ["check", "-c", stage.config_path], env=tls_env)
        assert r.returncode == 0 and "check passed" in r.stdout, f"exit {r.returncode}:\n{r.stdout}{r.stderr}"
        assert "[fail]" not in r.stdout, r.stdout
        return f"{len(r.stdout.splitlines()) - 1} checks passed"

    @check("without SSL_CERT_FILE the image's own CA bundle refuses the fake PagerDuty")
    def _():
        r = img.run(entry + ["check", "-c", stage.config_path])
        assert r.returncode == 1, f"exit {r.returncode}:\n{r.stdout}{r.stderr}"
        fails = [l for l in r.stdout.splitlines() if l.startswith("[fail]")]
        assert len(fails) == 1 and fails[0].startswith("[fail] pagerduty:"), r.stdout
        assert re.search(r"certificate|SSL|TLS", fails[0], re.I), fails[0]
        assert "[ok] teleport:" in r.stdout, r.stdout  # mTLS to Teleport uses the identity's CA
        return fails[0][:120]

    @check("ENTRYPOINT + CMD as USER: ready, incident opened and resolved, clean SIGTERM")
    def _():
        logpath = os.path.join(work, "start.log")
        with open(logpath, "wb") as lf:
            proc = subprocess.Popen(img.argv(entry + stage.cmd, env=tls_env), stdout=lf,
                                    stderr=subprocess.STDOUT)
        state["proc"] = proc

        def lines():
            out = []
            for line in open(logpath, errors="replace"):
                try:
                    out.append(json.loads(line))
                except ValueError:
                    out.append({"msg": line.strip()})
            return out

        def wait(pred, what, timeout=30):
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                got = pred()
                if got:
                    return got
                if proc.poll() is not None:
                    raise AssertionError(f"the plugin exited {proc.returncode} waiting for {what}:\n"
                                         + open(logpath, errors="replace").read()[-3000:])
                time.sleep(0.05)
            raise AssertionError(f"timed out waiting for {what}:\n" + open(logpath, errors="replace").read()[-3000:])

        wait(lambda: [l for l in lines() if l.get("msg") == "Plugin is ready"], "Plugin is ready")
        started = wait(lambda: [l for l in lines() if l.get("msg") == "Controller started"], "Controller started")
        port = int(started[0]["status_port"])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as resp:
            assert resp.status == 200, resp.status
        rid = env.request(services=None)
        inc = env.wait_incident(rid, timeout=30)
        assert inc["title"] == "Access request from requester-oss@example.com", inc["title"]
        assert inc["status"] == "triggered", inc
        env.tp.set_state(rid, "APPROVED", "fine")
        env.wait_resolved(rid, timeout=30)
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(timeout=30)
        assert rc == 0, f"exit {rc} after SIGTERM"
        assert [l for l in lines() if l.get("msg") == "Successfully shut down"], "no 'Successfully shut down'"
        text = open(logpath, errors="replace").read()
        assert API_KEY not in text, "the API key appeared in the log"
        return f"incident {inc['id']} for request {rid}, /readyz 200 on :{port}"

    passed = failed = 0
    try:
        for name, fn in checks:
            try:
                what = fn()
            except (AssertionError, subprocess.TimeoutExpired) as e:
                failed += 1
                log(f"FAIL {name}: {e}")
            else:
                passed += 1
                log(f"ok   {name}: {what}")
    finally:
        p = state.get("proc")
        if p and p.poll() is None:
            p.kill()
            p.wait()
        env.close()
        shutil.rmtree(env.workdir, ignore_errors=True)
        lockf.close()
    if not failed:
        safe_rmtree(work)
    log(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
