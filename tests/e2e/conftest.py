"""pytest fixtures for the end-to-end tests (see helpers.py)."""

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from helpers import CLIPD, Server, load_openapi  # noqa: E402
from pg import PgCluster  # noqa: E402


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


# ---- the catalog: SQLite in the data directory, or PostgreSQL ----------------------------
#
# A module that sets CATALOGS = ("sqlite", "postgresql") runs each of its
# tests against both catalogs (the daemons of `server`, `make_server` and
# any fixture that asks for `catalog`); other modules run on SQLite only
# (CLIPD_E2E_CATALOGS overrides that for every module).
# One PostgreSQL cluster serves the whole session (tests/e2e/pg.py), each
# daemon gets a fresh database. Without postgresql-15 the PostgreSQL runs
# are skipped, saying why.

@pytest.fixture(scope="session")
def pg_cluster():
    if not PgCluster.available():
        yield None
        return
    cluster = PgCluster.start()
    yield cluster
    cluster.stop()


class Catalog:
    def __init__(self, kind, cluster):
        self.kind = kind
        self.cluster = cluster
        self.uris = {}   # data directory -> its database

    def args(self, data_dir=None):
        """serve's options for a daemon: on PostgreSQL a fresh database, or
        the one a daemon on the same data directory had (a restart)."""
        if self.kind != "postgresql":
            return []
        if data_dir is None:
            return ["--catalog", self.cluster.fresh_database()]
        if data_dir not in self.uris:
            self.uris[data_dir] = self.cluster.fresh_database()
        return ["--catalog", self.uris[data_dir]]


def pytest_generate_tests(metafunc):
    if "catalog" in metafunc.fixturenames:
        kinds = getattr(metafunc.module, "CATALOGS", ("sqlite",))
        # CLIPD_E2E_CATALOGS=postgresql (or sqlite,postgresql): every module so
        forced = os.environ.get("CLIPD_E2E_CATALOGS")
        if forced:
            # the same string objects every time: pytest keeps a module's
            # fixture only while its parameter `is` the same
            kinds = tuple(k for k in ("sqlite", "postgresql") if k in forced.split(","))
        metafunc.parametrize("catalog", kinds, indirect=True, scope="module")


@pytest.fixture(scope="module")
def catalog(request, pg_cluster):
    kind = getattr(request, "param", "sqlite")
    if kind == "postgresql" and pg_cluster is None:
        pytest.skip("the PostgreSQL catalog's run needs PostgreSQL 15 (apt-get install postgresql-15)")
    return Catalog(kind, pg_cluster)


@pytest.fixture(scope="module")
def server(tmp_path_factory, catalog):
    """A daemon shared by a module's tests, on a fresh data directory."""
    s = Server(tmp_path_factory.mktemp("clipd"), *catalog.args()).start()
    yield s
    rc = s.stop()
    assert rc == 0, s.log()


@pytest.fixture
def make_server(tmp_path, catalog):
    """Start daemons with options; every one is stopped at the test's end."""
    started = []

    def make(*args, home=None, **kw):
        # home: the folder of its port file (one the daemon's user can write)
        sub = home or tmp_path / ("s%d" % len(started))
        os.makedirs(sub, exist_ok=True)
        s = Server(sub, *(catalog.args(kw.get("data_dir")) + list(args)), **kw)
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
