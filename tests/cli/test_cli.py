"""CLI tests: the teleport-pagerduty binary's commands, exit codes, one-line config errors for a
corpus of broken files, and that the API key never appears in any output of any error path."""

import glob
import json
import os
import re
import subprocess

import pytest

SRC = os.environ.get("TPD_SOURCE_DIR", os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
BIN = os.environ.get("TPD_BIN", os.path.join(SRC, "build", "teleport-pagerduty"))
SECRET = "u+CLIsecretKEY-0123456789abcdef"


def run(*args, timeout=30):
    p = subprocess.run([BIN, *args], capture_output=True, text=True, timeout=timeout)
    return p.returncode, p.stdout, p.stderr


def test_version():
    rc, out, err = run("version")
    assert rc == 0
    assert re.fullmatch(r"teleport-pagerduty v\d+\.\d+\.\d+(\+g[0-9a-f]{12})? git:\S+ \S+.*\n", out), out


def test_help_and_usage_errors():
    rc, out, _ = run("help")
    assert rc == 0 and "configure" in out and "start" in out
    rc, out, _ = run("--help")
    assert rc == 0 and "Commands:" in out
    for args in (["bogus"], ["start", "--nope"], ["version", "extra"], ["start", "-c"], []):
        rc, out, err = run(*args)
        assert rc == 2, args
        assert "usage:" in err and out == ""


def test_configure_then_check_reports_missing_credentials(tmp_path):
    rc, out, _ = run("configure")
    assert rc == 0
    for key in ("[teleport]", "addr", "identity", "client_key", "[pagerduty]", "api_key", "user_email",
                "[log]", "severity"):
        assert key in out
    cfg = tmp_path / "x.toml"
    cfg.write_text(out)
    rc, out, err = run("check", "-c", str(cfg), timeout=60)
    assert rc == 1
    assert "no credentials configured" in out


def broken_files():
    files = sorted(glob.glob(os.path.join(SRC, "tests", "config", "broken", "*")))
    return [f for f in files if f.endswith((".toml", ".yaml", ".yml"))]


@pytest.mark.parametrize("path", broken_files() or [pytest.param(None, marks=pytest.mark.skip("no corpus"))])
def test_broken_config_is_one_clear_line(path):
    rc, out, err = run("start", "-c", path)
    assert rc == 1, (path, out, err)
    lines = err.strip("\n").split("\n")
    assert len(lines) == 1, err
    assert lines[0].startswith("config error: "), err
    # Every file in the corpus has a position to point at: the message names it.
    assert re.search(re.escape(path) + r":\d+:\d+: ", lines[0]), lines[0]


BASE = """[teleport]
addr = "127.0.0.1:1"
identity = "/nonexistent/identity"
[pagerduty]
api_key = "%s"
user_email = "bot@example.com"
api_endpoint = "https://127.0.0.1:1"
""" % SECRET

BAD_VARIANTS = [
    BASE + "[log]\nseverity = \"loud\"\n",
    BASE + "[log]\nseverity = 5\n",
    BASE.replace('user_email = "bot@example.com"\n', ""),
    BASE.replace("https://127.0.0.1:1", "http://pagerduty.example.com"),
    BASE + "[reconcile]\nworkers = 0\n",
    BASE + "[pagerduty.extra]\nx = [1, 2\n",
    BASE + 'garbage = "' + SECRET + '\n',
    BASE + "[teleport]\naddr = \"dup\"\n",
    BASE.replace('identity = "/nonexistent/identity"', 'identity = "/x"\nclient_crt = "/y"'),
    BASE,  # valid config, but nothing to connect to: start fails on the identity, check on everything
]


@pytest.mark.parametrize("i", range(len(BAD_VARIANTS)))
def test_api_key_never_printed(tmp_path, i):
    cfg = tmp_path / "c.toml"
    cfg.write_text(BAD_VARIANTS[i])
    for cmd in (["start", "-c", str(cfg)], ["start", "-d", "-c", str(cfg)], ["check", "-c", str(cfg)]):
        rc, out, err = run(*cmd, timeout=60)
        assert rc == 1, (cmd, out, err)
        assert SECRET not in out and SECRET not in err, (cmd, out, err)
        assert SECRET[4:20] not in out + err


def test_api_key_file_never_printed(tmp_path):
    keyfile = tmp_path / "key"
    keyfile.write_text(SECRET + "\n")
    cfg = tmp_path / "c.yaml"
    cfg.write_text("teleport:\n  addr: 127.0.0.1:1\n  identity: /nonexistent\npagerduty:\n  api_key: %s\n"
                   "  user_email: bot@example.com\n  api_endpoint: https://127.0.0.1:1\nlog:\n  severity: trace\n"
                   % keyfile)
    for cmd in (["start", "-c", str(cfg)], ["check", "-c", str(cfg)]):
        rc, out, err = run(*cmd, timeout=60)
        assert rc == 1
        assert SECRET not in out + err


# --- `check` and `start` accept and reject the same configurations --------------------------------

CORPUS = sorted(glob.glob(os.path.join(SRC, "tests", "config", "broken", "*")) +
                glob.glob(os.path.join(SRC, "tests", "config", "good", "*")))


def offline(*args, timeout=60):
    """Runs the binary with no network but a downed loopback, so connecting fails at once."""
    p = subprocess.run(["unshare", "--net", BIN, *args], capture_output=True, text=True, timeout=timeout)
    return p.returncode, p.stdout, p.stderr


def first_check_failure(out):
    for line in out.splitlines():
        if line.startswith("[fail] "):
            return line[len("[fail] "):].split(": ", 1)[1]
    return None


def start_failure(out):
    """The fatal error `start` stopped with: a config error, or the logged fatal error (logfmt or
    JSON, on stdout or stderr)."""
    m = re.search(r"^config error: (.*)$", out, re.M)
    if m:
        return m.group(1)
    for line in out.splitlines():
        if line.startswith("{"):
            rec = json.loads(line)
            if rec.get("msg") == "Terminating with fatal error":
                return rec.get("error")
    m = re.search(r'msg="Terminating with fatal error" error="((?:[^"\\]|\\.)*)"', out)
    return m.group(1).replace('\\"', '"').replace("\\\\", "\\") if m else None


@pytest.mark.parametrize("path", CORPUS, ids=[os.path.relpath(p, os.path.join(SRC, "tests", "config"))
                                              for p in CORPUS])
def test_check_and_start_agree(path, tmp_path):
    """Both commands load the config and the credentials through the same code (wiring.c): for
    every file of the corpus, the first thing `check` reports as failed is exactly what `start`
    stops with (no file of the corpus has credentials that exist, so neither gets further)."""
    if subprocess.run(["unshare", "--net", "true"], capture_output=True).returncode != 0:
        pytest.skip("needs unshare --net (root)")
    # a file that logs to a system path logs to stderr here (same line, same column)
    with open(path, "rb") as f:
        data = f.read().replace(b'"/var/log/teleport-pagerduty.log"', b'"stderr"')
    path = str(tmp_path / os.path.basename(path))
    with open(path, "wb") as f:
        f.write(data)
    crc, cout, _ = offline("check", "-c", path)
    src, sout, serr = offline("start", "-c", path, timeout=60)
    want = first_check_failure(cout)
    assert crc == 1 and want, cout
    assert src == 1, serr
    assert start_failure(sout + serr) == want, "check: %r\nstart: %s" % (want, (sout + serr)[-2000:])
