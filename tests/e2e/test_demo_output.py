"""test_demo_output.py - the demo (scripts/run.sh -> tests/e2e/demo.py) writes colour escapes only
to a terminal, and never with NO_COLOR set: piped into a file, its lines are plain text.

Runs the whole demo (TPD_DEMO_EXIT=1 ends it after its last step) three times: stdout to a
file, stdout to a pseudo-terminal, and a pseudo-terminal with NO_COLOR=1."""
import os
import pty
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ESC = b"\x1b"


def run_demo(stdout, extra_env=None):
    env = dict(os.environ, TPD_DEMO_EXIT="1")
    env.pop("NO_COLOR", None)
    env.update(extra_env or {})
    p = subprocess.run([sys.executable, os.path.join(HERE, "demo.py")], cwd=HERE, env=env,
                       stdout=stdout, stderr=subprocess.PIPE, timeout=240)
    assert p.returncode == 0, "demo exited %d: %s" % (p.returncode, p.stderr.decode(errors="replace")[-2000:])


def demo_to_pty(extra_env=None):
    """Runs the demo with a pseudo-terminal as stdout; returns what it wrote there."""
    master, slave = pty.openpty()
    chunks = []
    try:
        env = dict(os.environ, TPD_DEMO_EXIT="1")
        env.pop("NO_COLOR", None)
        env.update(extra_env or {})
        p = subprocess.Popen([sys.executable, os.path.join(HERE, "demo.py")], cwd=HERE, env=env,
                             stdout=slave, stderr=subprocess.PIPE)
        os.close(slave)
        slave = None
        while True:  # read until the demo closes its end (EIO on Linux)
            try:
                b = os.read(master, 65536)
            except OSError:
                break
            if not b:
                break
            chunks.append(b)
        err = p.stderr.read()
        assert p.wait(timeout=240) == 0, "demo exited %d: %s" % (p.returncode, err.decode(errors="replace")[-2000:])
    finally:
        if slave is not None:
            os.close(slave)
        os.close(master)
    return b"".join(chunks)


def test_piped_output_is_plain_text():
    with tempfile.TemporaryFile() as f:
        run_demo(f)
        f.seek(0)
        out = f.read()
    lines = out.decode().splitlines()
    steps = [l for l in lines if l.startswith("[demo ")]
    assert len(steps) >= 8, out
    assert ESC not in out, "colour escapes in piped output: %r" % [l for l in lines if "\x1b" in l][:3]


def test_terminal_output_is_coloured():
    out = demo_to_pty()
    assert b"\x1b[1m[demo 1]\x1b[0m" in out, out[:500]


def test_no_color_on_a_terminal_is_plain():
    out = demo_to_pty({"NO_COLOR": "1"})
    assert b"[demo 1]" in out, out[:500]
    assert ESC not in out, out[:500]
