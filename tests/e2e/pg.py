"""A throw-away PostgreSQL 15 cluster for the end-to-end tests.

One cluster per pytest session (tests/pg/pg-cluster.sh starts it on a free
loopback port in a directory of its own, as the `postgres` user when run as
root), a fresh database per test or module:

    cluster = PgCluster.start()          # or None-safe: PgCluster.available()
    uri = cluster.fresh_database()       # postgresql://clipd@127.0.0.1:PORT/clipd_3
    cluster.psql(uri, "SELECT count(*) FROM images")
    cluster.stop()
"""

import itertools
import os
import shutil
import subprocess

SCRIPT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "pg", "pg-cluster.sh")
PSQL = os.path.join(os.environ.get("CLIPD_PGBIN", "/usr/lib/postgresql/15/bin"), "psql")


class PgCluster:
    def __init__(self, directory, uri):
        self.dir = directory
        self.uri = uri          # without a database name
        self._names = itertools.count(1)

    @staticmethod
    def available():
        return subprocess.run(["bash", SCRIPT, "available"]).returncode == 0

    @classmethod
    def start(cls):
        out = subprocess.run(["bash", SCRIPT, "start"], check=True, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, timeout=180)
        directory, uri = out.stdout.strip().split(" ", 1)
        return cls(directory, uri)

    def fresh_database(self):
        name = "clipd_%d_%d" % (os.getpid(), next(self._names))
        subprocess.run(["bash", SCRIPT, "createdb", self.dir, name], check=True, timeout=60)
        return "%s/%s" % (self.uri, name)

    def psql(self, uri, sql):
        """Run sql; the rows as lists of text (unaligned, tab-separated)."""
        out = subprocess.run([PSQL, "-X", "-q", "-A", "-t", "-F", "\t", "-v", "ON_ERROR_STOP=1", uri, "-c", sql],
                             check=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=60)
        return [line.split("\t") for line in out.stdout.splitlines() if line]

    def standby(self):
        """A streaming hot standby of this cluster (pg_basebackup -R), on a port of its own."""
        out = subprocess.run(["bash", SCRIPT, "standby", self.dir], check=True, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, timeout=180)
        directory, uri = out.stdout.strip().split(" ", 1)
        return PgCluster(directory, uri)

    def promote(self):
        """Promote this standby: it leaves recovery and takes writes."""
        subprocess.run(["bash", SCRIPT, "promote", self.dir], check=True, timeout=120)

    def halt(self):
        """Stop the server at once, as a crash would (pg_ctl stop -m immediate)."""
        subprocess.run(["bash", SCRIPT, "halt", self.dir], check=True, timeout=120)

    def resume(self):
        """Start a halted server again on the same port (it recovers from its WAL)."""
        subprocess.run(["bash", SCRIPT, "resume", self.dir], check=True, timeout=120)

    def stop(self):
        subprocess.run(["bash", SCRIPT, "stop", self.dir], timeout=120)


CLUSTER_PG = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                          "deploy", "cluster", "pg.sh")


def free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PgPair:
    """A primary and its synchronous streaming hot standby, as the local
    cluster runs them (deploy/cluster/pg.sh, fsync off):

        pair = PgPair.start(tmp_path / "pg")   # standby=False: the primary alone
        pair.uri                                # both servers, target_session_attrs=read-write
        pair.env                                # PGPASSFILE for clipd, psql and clipd check
        pair.kill("primary"); pair.promote("standby")
        pair.psql("standby", "SELECT count(*) FROM images")
        pair.stop()
    """

    def __init__(self, directory):
        self.dir = str(directory)
        self.env = dict(os.environ, PGPASSFILE=os.path.join(self.dir, "pgpass"), CLIPD_CLUSTER_PG_FAST="1")
        self.uri = None

    def _run(self, *args, timeout=120):
        return subprocess.run(["bash", CLUSTER_PG] + [str(a) for a in args], check=True, env=self.env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=timeout)

    @classmethod
    def start(cls, directory, standby=True):
        pair = cls(directory)
        try:
            pair._run("primary", pair.dir, free_port())
            if standby:
                pair._run("standby", pair.dir, free_port())
        except subprocess.CalledProcessError as e:
            pair.stop()
            raise RuntimeError("pg.sh %s failed:\n%s" % (e.cmd[2], e.stderr))
        pair.uri = pair._run("uri", pair.dir).stdout.strip()
        return pair

    def pid(self, name):
        p = subprocess.run(["bash", CLUSTER_PG, "pid", self.dir, name], env=self.env,
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, timeout=30)
        return int(p.stdout) if p.returncode == 0 else None

    def kill(self, name):
        self._run("kill", self.dir, name)

    def promote(self, name):
        self._run("promote", self.dir, name)

    def psql(self, name, sql):
        """Run sql on the server name as the superuser; rows as lists of text."""
        out = self._run("psql", self.dir, name, "-A", "-t", "-F", "\t", "-c", sql)
        return [line.split("\t") for line in out.stdout.splitlines() if line]

    def stop(self):
        for name in ("standby", "primary"):
            subprocess.run(["bash", CLUSTER_PG, "stop", self.dir, name], env=self.env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120)
        link = os.path.join(self.dir, "pg")
        if os.path.islink(link):
            shutil.rmtree(os.path.realpath(link), ignore_errors=True)
        shutil.rmtree(self.dir, ignore_errors=True)
