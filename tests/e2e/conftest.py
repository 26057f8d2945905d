"""pytest fixtures for the end-to-end tests (see helpers.py)."""

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from helpers import CLIPD, Server, load_openapi  # noqa: E402


def pytest_addoption(parser):
    parser.addoption("--slow-factor", type=float, default=None,
                     help="stretch time limits (sanitizer builds are slower)")


def pytest_configure(config):
    import helpers
    factor = config.getoption("--slow-factor")
    if factor:
        helpers.SLOW = factor
    if not os.access(CLIPD, os.X_OK):
        raise pytest.UsageError("no clipd binary at %s (set CLIPD_BIN)" % CLIPD)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A daemon shared by a module's tests, on a fresh data directory."""
    s = Server(tmp_path_factory.mktemp("clipd")).start()
    yield s
    rc = s.stop()
    assert rc == 0, s.log()


@pytest.fixture
def make_server(tmp_path):
    """Start daemons with options; every one is stopped at the test's end."""
    started = []

    def make(*args, **kw):
        sub = tmp_path / ("s%d" % len(started))
        sub.mkdir()
        s = Server(sub, *args, **kw)
        started.append(s)
        return s

    yield make
    for s in started:
        if s.proc is not None:
            s.stop()


@pytest.fixture(scope="module")
def doc(server):
    """The daemon's /openapi.json (modules may define their own)."""
    return load_openapi(server)
