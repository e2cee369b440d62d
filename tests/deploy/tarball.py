#!/usr/bin/python3
"""tarball.py - the release tarball (scripts/release.sh) and its `install`, on this machine.

Makes the tarball from the build under test ($TPD_BIN, $TPD_BUILD_DIR), unpacks it and checks:
  1. the name (teleport-access-pagerduty-v<version>-linux-<arch>-bin.tar.gz), the .sha256 and the
     contents;
  2. `install --prefix P --config C` as root: the binary runs `version`, the unit's ExecStart
     names a file that exists, the manual page and sample config are there, the config is
     written once; a second run succeeds, gives the same files and keeps an edited config;
  3. as an unprivileged user, a prefix it cannot write is refused with a clear message and
     nothing is installed;
  4. a binary that needs a library the system lacks: the message names the library and the
     apt-get line, exit 1, nothing installed;
  5. one version everywhere: CMake's project version is the binary's (before any +g<commit>),
     the chart's appVersion and the Dockerfile's org.opencontainers.image.version label.
Needs root (2 and 3). Prints "N passed, N failed".
"""
import glob
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile

ROOT = os.environ.get("TPD_SOURCE_DIR") or os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ["TPD_BUILD_DIR"]
BIN = os.environ["TPD_BIN"]
RESULTS = []


def check(name, cond, detail=""):
    RESULTS.append(bool(cond))
    print("%s %s%s" % ("ok  " if cond else "FAIL", name, "" if cond else ": " + detail), flush=True)


def run(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, **kw)


def tree(top):
    out = {}
    for d, _, files in os.walk(top):
        for f in files:
            p = os.path.join(d, f)
            with open(p, "rb") as fh:
                out[os.path.relpath(p, top)] = (hashlib.sha256(fh.read()).hexdigest(), os.stat(p).st_mode & 0o7777)
    return out


def main():
    if os.geteuid() != 0:
        print("SKIP: needs root (install into a scratch prefix and switch to an unprivileged user)")
        return 77
    work = tempfile.mkdtemp(prefix="tpd-tarball-")
    try:
        dist = os.path.join(work, "dist")
        r = run([os.path.join(ROOT, "scripts", "release.sh"), "--binary", BIN, "--build", BUILD, "--out", dist])
        check("release.sh exits 0", r.returncode == 0, r.stderr)
        tgz = r.stdout.strip().splitlines()[-1] if r.stdout.strip() else ""
        ver = run([BIN, "version"]).stdout
        m = re.match(r"teleport-pagerduty v(\S+) ", ver)
        arch = run(["dpkg", "--print-architecture"]).stdout.strip()
        want = "teleport-access-pagerduty-v%s-linux-%s-bin.tar.gz" % (m.group(1) if m else "?", arch)
        check("tarball name like upstream's", os.path.basename(tgz) == want, "%s != %s" % (tgz, want))
        with open(tgz, "rb") as f:
            digest = hashlib.sha256(f.read()).hexdigest()
        with open(tgz + ".sha256") as f:
            check(".sha256 beside it matches", f.read().split()[0] == digest)
        with tarfile.open(tgz) as t:
            names = sorted(t.getnames())
            t.extractall(work)
        need = ["install", "teleport-pagerduty", "teleport-pagerduty.service.in", "teleport-pagerduty.toml.example",
                "teleport-pagerduty.1", "runtime-libraries.txt", "README.md", "VERSION"]
        check("contents", all("teleport-access-pagerduty/" + n in names for n in need), repr(names))
        pkg = os.path.join(work, "teleport-access-pagerduty")

        # 2. install as root, twice.
        prefix, etc = os.path.join(work, "p"), os.path.join(work, "etc")
        os.makedirs(etc)
        conf = os.path.join(etc, "teleport-pagerduty.toml")
        r = run([os.path.join(pkg, "install"), "--prefix", prefix, "--config", conf])
        check("install exits 0", r.returncode == 0, r.stdout + r.stderr)
        r2 = run([os.path.join(prefix, "bin", "teleport-pagerduty"), "version"])
        check("installed binary runs `version`", r2.returncode == 0 and r2.stdout == ver, r2.stdout + r2.stderr)
        unit = open(os.path.join(prefix, "lib", "systemd", "system", "teleport-pagerduty.service")).read()
        exe = re.search(r"^ExecStart=(\S+)", unit, re.M).group(1)
        check("unit's ExecStart names the installed binary", exe == os.path.join(prefix, "bin", "teleport-pagerduty")
              and os.access(exe, os.X_OK), exe)
        check("manual page and sample config installed",
              os.path.exists(os.path.join(prefix, "share", "man", "man1", "teleport-pagerduty.1"))
              and os.path.exists(os.path.join(prefix, "share", "teleport-pagerduty", "teleport-pagerduty.toml.example")))
        check("config written (mode 0600)", os.path.exists(conf) and os.stat(conf).st_mode & 0o777 == 0o600)
        with open(conf, "a") as f:
            f.write("# edited by the operator\n")
        before = tree(prefix)
        r = run([os.path.join(pkg, "install"), "--prefix", prefix, "--config", conf])
        check("second install exits 0", r.returncode == 0, r.stdout + r.stderr)
        check("second install gives the same files", tree(prefix) == before)
        check("an existing config is kept", open(conf).read().endswith("# edited by the operator\n")
              and "Kept the existing" in r.stdout, r.stdout)

        # 3. unprivileged, into a prefix it cannot write.
        locked = os.path.join(work, "locked")
        os.makedirs(locked, mode=0o755)
        os.chmod(work, 0o755)
        r = run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                 os.path.join(pkg, "install"), "--prefix", os.path.join(locked, "usr"), "--config", os.path.join(locked, "c.toml")])
        check("unprivileged install refused", r.returncode == 1 and "run it as root" in r.stderr, r.stdout + r.stderr)
        check("nothing installed when refused", os.listdir(locked) == [], repr(os.listdir(locked)))

        # 4. a library the system lacks.
        fake = os.path.join(work, "fake")
        os.makedirs(fake)
        with open(os.path.join(fake, "lib.c"), "w") as f:
            f.write("int tpd_missing(void) { return 0; }\n")
        with open(os.path.join(fake, "main.c"), "w") as f:
            f.write("int tpd_missing(void);\nint main(void) { return tpd_missing(); }\n")
        cc = run(["cc", "-shared", "-fPIC", "-Wl,-soname,libtpdmissing.so.1", "-o", os.path.join(fake, "libtpdmissing.so.1"),
                  os.path.join(fake, "lib.c")])
        cc2 = run(["cc", "-o", os.path.join(fake, "teleport-pagerduty"), os.path.join(fake, "main.c"),
                   os.path.join(fake, "libtpdmissing.so.1")])
        check("fake binary built", cc.returncode == 0 and cc2.returncode == 0, cc.stderr + cc2.stderr)
        os.unlink(os.path.join(fake, "libtpdmissing.so.1"))
        pkg2 = os.path.join(work, "pkg2")
        shutil.copytree(pkg, pkg2)
        shutil.copy(os.path.join(fake, "teleport-pagerduty"), os.path.join(pkg2, "teleport-pagerduty"))
        with open(os.path.join(pkg2, "runtime-libraries.txt"), "a") as f:
            f.write("libtpdmissing.so.1     libtpdmissing1\n")
        p3 = os.path.join(work, "p3")
        r = run([os.path.join(pkg2, "install"), "--prefix", p3, "--config", os.path.join(work, "c3.toml")])
        check("missing library: exit 1", r.returncode == 1, r.stdout + r.stderr)
        check("missing library: named, with the apt-get line",
              "libtpdmissing.so.1" in r.stderr and "apt-get install -y libtpdmissing1" in r.stderr, r.stderr)
        check("missing library: nothing installed", not os.path.exists(p3) and not os.path.exists(os.path.join(work, "c3.toml")))

        # 5. versions agree.
        cm = re.search(r"project\(teleport-pagerduty VERSION (\S+)", open(os.path.join(ROOT, "CMakeLists.txt")).read())
        chart = re.search(r'^appVersion: "?([^"\s]+)', open(os.path.join(
            ROOT, "deploy", "helm", "teleport-plugin-pagerduty", "Chart.yaml")).read(), re.M)
        label = re.search(r'org\.opencontainers\.image\.version="([^"]+)"', open(os.path.join(ROOT, "Dockerfile")).read())
        base = m.group(1).split("+")[0] if m else None
        got = (cm and cm.group(1), base, chart and chart.group(1), label and label.group(1))
        check("one version: CMake, binary, chart appVersion, Dockerfile label", len(set(got)) == 1 and None not in got,
              repr(got))
        # The commit the binary was built from: +g<it> unless that commit is tagged v<version>.
        gm = re.search(r" git:([0-9a-f]{12}) ", ver)
        tagged = gm and ("v" + base) in run(["git", "-C", ROOT, "tag", "--points-at", gm.group(1)]).stdout.split()
        want_ver = base if tagged else "%s+g%s" % (base, gm.group(1) if gm else "?")
        check("the version says +g<commit> exactly when the commit is not the release tag",
              m and m.group(1) == want_ver, "%s, want %s" % (m.group(1) if m else ver, want_ver))
        # 6. `install` and the runtime image check the same libraries.
        listed = {ln.split()[1] for ln in open(os.path.join(ROOT, "packaging", "runtime-libraries.txt"))
                  if ln.strip() and not ln.startswith("#")}
        runtime = open(os.path.join(ROOT, "Dockerfile")).read().split("FROM debian:bookworm-slim", 1)[1]
        apt = re.search(r"apt-get install -y --no-install-recommends\s*\\?\s*((?:[a-z0-9.+-]+\s*\\?\s*)+)", runtime)
        image = set(apt.group(1).replace("\\", " ").split()) if apt else set()
        check("runtime-libraries.txt names the runtime image's packages",
              listed - {"libc6"} == image - {"ca-certificates"}, "%r vs %r" % (sorted(listed), sorted(image)))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    failed = RESULTS.count(False)
    print("%d passed, %d failed" % (RESULTS.count(True), failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
