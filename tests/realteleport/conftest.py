"""Fixtures of the real-teleport tests: one real cluster per test module (it takes ~20 s to
start and populate), a fresh set of plugins per test."""

import datetime
import os
import shutil
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from realtp import RealEnv  # noqa: E402


@pytest.fixture(scope="module")
def env(request):
    failed = request.session.testsfailed
    e = RealEnv()
    yield e
    e.close()
    if request.session.testsfailed == failed:
        shutil.rmtree(e.workdir, ignore_errors=True)
    else:
        print("\nkept the cluster's folder for inspection: " + e.workdir)


@pytest.fixture
def plugins(env):
    """Plugins started by one test are stopped at its end (the cluster stays)."""
    before = len(env.plugins)
    yield env
    for p in env.plugins[before:]:
        p.stop()
    del env.plugins[before:]


def go_time(s):
    """A Go JSON time (RFC 3339 with up to 9 fractional digits) as an aware datetime."""
    s = s.replace("Z", "+00:00")
    if "." in s:
        head, rest = s.split(".", 1)
        frac = "".join(c for c in rest if c.isdigit())
        tz = rest[len(frac):]
        s = head + "." + (frac + "000000")[:6] + tz
    return datetime.datetime.fromisoformat(s)


def rfc822(s):
    """Go's time.RFC822 in UTC, as upstream's texts print times."""
    return go_time(s).astimezone(datetime.timezone.utc).strftime("%d %b %y %H:%M UTC")
