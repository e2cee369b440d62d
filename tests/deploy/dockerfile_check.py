#!/usr/bin/python3
"""dockerfile_check.py - checks the repository's Dockerfile without a container engine.

Essentials (issue 7): multi-stage; build stage FROM debian:bookworm; runtime stage FROM
debian:bookworm-slim; a non-root numeric USER; ENTRYPOINT ["/usr/local/bin/teleport-pagerduty"];
CMD ["start", "--config", "/etc/teleport-pagerduty/teleport-pagerduty.yaml"]; the binary copied
from the build stage to that path.

Runtime packages: the runtime stage must install exactly the Debian runtime packages of the
libraries the build links with (the pkg-config modules of CMakeLists.txt, each module's own
libraries mapped to the package owning the real .so file), plus ca-certificates. And every
shared library the built binary needs (DT_NEEDED of $TPD_BIN, resolved with ldconfig and
dpkg -S) must come from a listed package, a dependency of one, or the base image (libc6,
libgcc-s1, zlib1g...); sanitizer runtimes of a test build are ignored.
Prints "N passed, N failed".
"""
import json
import os
import re
import shlex
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DOCKERFILE = os.path.join(ROOT, "Dockerfile")
# In debian:bookworm-slim already (Priority: required) or a compiler runtime of test builds.
BASE_IMAGE = {"libc6", "libgcc-s1", "zlib1g", "libstdc++6", "libzstd1", "liblzma5", "libbz2-1.0",
              "libcrypt1", "libselinux1", "libpcre2-8-0", "libsystemd0", "libgcrypt20",
              "libgpg-error0", "liblz4-1", "libcap2", "libacl1", "libattr1"}
SANITIZER = {"libasan8", "libubsan1", "liblsan0", "libtsan2"}
NOT_LIBRARIES = {"ca-certificates"}


def parse(path):
    """Returns a list of stages: {from, name, instructions: [(op, args)]} (continuations joined)."""
    lines, cur = [], ""
    for raw in open(path):
        line = raw.rstrip("\n")
        if not cur and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.endswith("\\"):
            cur += line[:-1] + " "
            continue
        lines.append(cur + line)
        cur = ""
    stages = []
    for line in lines:
        op, _, args = line.strip().partition(" ")
        op = op.upper()
        if op == "FROM":
            m = re.match(r"(\S+)(?:\s+AS\s+(\S+))?", args.strip(), re.I)
            stages.append({"from": m.group(1), "name": m.group(2), "ins": []})
        elif stages:
            stages[-1]["ins"].append((op, args.strip()))
        elif op != "ARG":
            raise AssertionError(f"{op} before the first FROM")
    return stages


def apt_packages(stage):
    pkgs = []
    for op, args in stage["ins"]:
        if op != "RUN":
            continue
        for cmd in re.split(r"&&|;", args):
            words = shlex.split(cmd)
            if len(words) >= 2 and words[0] == "apt-get" and "install" in words:
                pkgs += [w for w in words[words.index("install") + 1:] if not w.startswith("-")]
    return pkgs


def needed_packages(binary):
    out = subprocess.run(["readelf", "-d", binary], check=True, capture_output=True, text=True).stdout
    libs = re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", out)
    assert libs, f"no DT_NEEDED entries in {binary}"
    cache = subprocess.run(["ldconfig", "-p"], check=True, capture_output=True, text=True).stdout
    owners = {}
    for lib in libs:
        m = re.search(r"^\s+" + re.escape(lib) + r" \(libc6,x86-64[^)]*\) => (\S+)$", cache, re.M) or \
            re.search(r"^\s+" + re.escape(lib) + r" \([^)]*\) => (\S+)$", cache, re.M)
        assert m, f"{lib} is not in the ldconfig cache"
        path = os.path.realpath(m.group(1))
        r = subprocess.run(["dpkg", "-S", path], capture_output=True, text=True)
        if r.returncode:  # usrmerge: the package may own the /lib path
            alt = path.replace("/usr/lib/", "/lib/", 1)
            r = subprocess.run(["dpkg", "-S", alt], capture_output=True, text=True)
        assert r.returncode == 0, f"no Debian package owns {path} ({lib})"
        owners[lib] = r.stdout.split(":")[0].strip()
    return owners


def cmake_modules():
    """The pkg-config modules CMakeLists.txt links the product with (pkg_check_modules(DEPS ...))."""
    text = open(os.path.join(ROOT, "CMakeLists.txt")).read()
    m = re.search(r"pkg_check_modules\(DEPS\s+REQUIRED\s+IMPORTED_TARGET\s+([^)]*)\)", text)
    assert m, "pkg_check_modules(DEPS ...) not found in CMakeLists.txt"
    return m.group(1).split()


def lib_package(name):
    """Runtime package of -l<name>: the package owning the file the lib<name>.so link points to."""
    for d in ("/usr/lib/x86_64-linux-gnu", "/lib/x86_64-linux-gnu", "/usr/lib"):
        so = os.path.join(d, f"lib{name}.so")
        if os.path.exists(so):
            real = os.path.realpath(so)
            for cand in (real, real.replace("/usr/lib/", "/lib/", 1)):
                r = subprocess.run(["dpkg", "-S", cand], capture_output=True, text=True)
                if r.returncode == 0:
                    return r.stdout.split(":")[0].strip()
    raise AssertionError(f"no package owns lib{name}.so")


def module_packages(modules):
    """Runtime packages of the libraries each module itself provides (not its Requires)."""
    def libs(mods):
        if not mods:
            return set()
        out = subprocess.run(["pkg-config", "--libs-only-l"] + mods, check=True,
                             capture_output=True, text=True).stdout
        return {w[2:] for w in out.split() if w.startswith("-l")}
    def own_libs(mod, depth=0):
        req = subprocess.run(["pkg-config", "--print-requires", mod], check=True,
                             capture_output=True, text=True).stdout.split()
        req = [r for r in req if re.match(r"^[A-Za-z_][A-Za-z0-9_.+-]*$", r)]
        own = libs([mod]) - libs(req) - {"pthread", "m", "rt", "dl", "atomic"}
        if not own and req and depth < 3:  # a meta module (openssl = libssl + libcrypto)
            for r in req:
                own |= own_libs(r, depth + 1)
        return own
    pkgs = {}
    for mod in modules:
        own = own_libs(mod)
        assert own, f"pkg-config module {mod} provides no library"
        pkgs[mod] = {lib_package(n) for n in own}
    return pkgs


def depends_closure(pkgs):
    out = subprocess.run(["apt-cache", "depends", "--recurse", "--no-recommends", "--no-suggests",
                          "--no-conflicts", "--no-breaks", "--no-replaces", "--no-enhances",
                          "--no-pre-depends"] + list(pkgs),
                         capture_output=True, text=True).stdout
    found = set()
    for line in out.splitlines():
        m = re.match(r"^\s+(?:\|)?Depends: <?([^>\s]+)>?", line) or re.match(r"^([a-z0-9][^\s:]*)$", line)
        if m:
            found.add(m.group(1).split(":")[0])
    return found


def main():
    checks = []

    def check(name):
        def deco(fn):
            checks.append((name, fn))
            return fn
        return deco

    stages = parse(DOCKERFILE)
    runtime = stages[-1] if stages else None

    @check("multi-stage build on bookworm, runtime on bookworm-slim")
    def _():
        assert len(stages) >= 2, f"{len(stages)} stage(s)"
        assert stages[0]["from"] in ("debian:bookworm",) or stages[0]["from"].startswith("debian:bookworm@"), stages[0]["from"]
        assert stages[0]["name"], "the build stage has no name"
        assert runtime["from"] == "debian:bookworm-slim" or runtime["from"].startswith("debian:bookworm-slim@"), runtime["from"]

    @check("runtime stage runs as a non-root numeric user")
    def _():
        users = [a for op, a in runtime["ins"] if op == "USER"]
        assert users, "no USER in the runtime stage"
        uid, _, gid = users[-1].partition(":")
        assert uid.isdigit() and int(uid) != 0, f"USER {users[-1]} is not a numeric non-root uid"
        assert not gid or (gid.isdigit() and int(gid) != 0), f"USER {users[-1]}: group"

    @check("ENTRYPOINT, CMD and the copied binary")
    def _():
        ins = dict((op, a) for op, a in runtime["ins"])
        assert json.loads(ins.get("ENTRYPOINT", "null")) == ["/usr/local/bin/teleport-pagerduty"], ins.get("ENTRYPOINT")
        assert json.loads(ins.get("CMD", "null")) == \
            ["start", "--config", "/etc/teleport-pagerduty/teleport-pagerduty.yaml"], ins.get("CMD")
        copies = [a for op, a in runtime["ins"] if op == "COPY" and a.startswith("--from=")]
        assert any(a.split()[-1] == "/usr/local/bin/teleport-pagerduty" for a in copies), copies
        assert not any(op == "ADD" for op, _ in runtime["ins"]), "use COPY, not ADD"

    @check("build stage does not ship sanitizers or tests")
    def _():
        runs = " ".join(a for op, a in stages[0]["ins"] if op == "RUN")
        assert "-DTPD_SANITIZE=OFF" in runs and "-DTPD_TESTS=OFF" in runs, runs

    @check("runtime stage installs exactly the binary's runtime library packages")
    def _():
        listed = apt_packages(runtime)
        assert listed, "the runtime stage installs no packages"
        assert "ca-certificates" in listed, "ca-certificates missing (HTTPS to PagerDuty)"
        assert len(listed) == len(set(listed)), f"duplicates in {listed}"
        bad = [p for p in listed if p.endswith("-dev")]
        assert not bad, f"-dev packages in the runtime stage: {bad}"
        # What the build links with, module by module (stable even while modules are missing).
        per_module = module_packages(cmake_modules())
        expected = set().union(*per_module.values())
        closure = depends_closure(listed)
        extra = sorted(set(listed) - NOT_LIBRARIES - expected)
        assert not extra, f"listed but not linked by the build: {extra} (build links {per_module})"
        absent = sorted(p for p in expected if p not in listed and p not in closure and p not in BASE_IMAGE)
        assert not absent, f"linked by the build but not installed: {absent} (build links {per_module})"
        binary = os.environ.get("TPD_BIN", "")
        assert binary and os.access(binary, os.X_OK), \
            "TPD_BIN (the built teleport-pagerduty) is needed to compare the package list"
        owners = needed_packages(binary)
        missing = {lib: p for lib, p in owners.items()
                   if p not in listed and p not in closure and p not in BASE_IMAGE and p not in SANITIZER}
        assert not missing, f"libraries not provided by the runtime stage: {missing}"
        used = set(owners.values())
        unused = [p for p in listed if p not in used and p not in NOT_LIBRARIES]
        if unused:  # the linker drops libraries nothing calls yet (--as-needed)
            print(f"     note: the binary does not link {unused} (yet); the build declares them")
        direct = sorted(set(owners.values()) - BASE_IMAGE - SANITIZER - set(listed))
        print(f"     binary needs {sorted(used)}; via dependencies: {direct}")

    passed = failed = 0
    for name, fn in checks:
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
