"""Several clipd nodes on a PostgreSQL primary and its streaming hot
standby (deploy/cluster/pg.sh: synchronous replication), through faults:
concurrent uploads through both nodes (the same bytes through both at once
are one image), each upload searchable on the other node within a second,
kill -9 of a node during uploads, kill -9 of the primary during uploads and
the standby promoted while the nodes keep running; at the end every
acknowledged upload is in the catalog once, both nodes answer identically
and `clipd check --catalog` passes. A third node joins empty and converges;
a node with a stale snapshot replays only what came after it. And the local
cluster of deploy/cluster/up.sh behind HAProxy, stopped by down.sh."""

import os
import re
import subprocess
import threading
import time

import pytest

from helpers import CLIPD, REPO, SLOW, Server, make_png, search_ids, wait_for
from pg import PgCluster, PgPair, free_port

pytestmark = pytest.mark.skipif(not PgCluster.available(), reason="needs PostgreSQL 15 (apt-get install postgresql-15)")

ALL = 1000   # k that covers every image of these tests


@pytest.fixture
def pair(tmp_path_factory):
    p = PgPair.start(tmp_path_factory.mktemp("pg"))
    yield p
    p.stop()


@pytest.fixture
def node(tmp_path):
    """node(name, pair[, data_dir]): a daemon on pair's catalog; every one is
    stopped at the test's end, whatever happened."""
    made = []

    def make(name, pair, data_dir=None):
        d = tmp_path / name
        d.mkdir(exist_ok=True)
        s = Server(d, "--catalog", pair.uri, data_dir=data_dir, env={"PGPASSFILE": pair.env["PGPASSFILE"]})
        made.append(s)
        return s

    yield make
    for s in made:
        s.kill()


class Uploads:
    """What the clients of a test had acknowledged: sha256 -> id, and the
    answers that were no acknowledgement (status, error code, Retry-After)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.acked = {}
        self.refusals = []
        self.seed = 1000

    def next_image(self):
        with self.lock:
            self.seed += 1
            return make_png(24, 24, seed=self.seed)

    def ack(self, data, r):
        import hashlib
        sha = hashlib.sha256(data).hexdigest()
        with self.lock:
            assert self.acked.get(sha, r.json()["id"]) == r.json()["id"], "one sha256, two ids"
            self.acked[sha] = r.json()["id"]

    def post(self, s, data, until):
        """Upload data through s until it is acknowledged (201, or 200 when
        an earlier try had committed), retrying 503s and lost connections
        until `until` (monotonic): the response, or None."""
        while time.monotonic() < until:
            try:
                r = s.request("POST", "/images", body=data, headers={"Content-Type": "image/png"}, timeout=10)
            except OSError as e:
                with self.lock:
                    self.refusals.append(("connection", type(e).__name__, None))
                if s.proc is None or s.proc.poll() is not None:
                    return None
                time.sleep(0.05)
                continue
            if r.status in (200, 201):
                self.ack(data, r)
                return r
            with self.lock:
                code = r.json().get("error", {}).get("code") if r.body[:1] == b"{" else None
                self.refusals.append((r.status, code, r.headers.get("retry-after")))
            if r.status not in (500, 503):
                return r
            time.sleep(0.05)
        return None


def stream(uploads, s, stop, until, count, errors):
    """Upload distinct images through s until stop is set; count[0] += 1 per
    ack; what went wrong into errors."""
    try:
        while not stop.is_set() and time.monotonic() < until:
            r = uploads.post(s, uploads.next_image(), until)
            if r is None:
                return
            if r.status not in (200, 201):
                errors.append(repr(r))
                return
            count[0] += 1
    except Exception as e:  # noqa: BLE001 - reported by the test's thread
        errors.append(repr(e))


def streams(uploads, nodes, until):
    """A stream of uploads through each node: (stop, counts, errors, threads)."""
    stop = threading.Event()
    counts = [[0] for _ in nodes]
    errors = []
    ts = [threading.Thread(target=stream, args=(uploads, s, stop, until, c, errors)) for s, c in zip(nodes, counts)]
    for t in ts:
        t.start()
    return stop, counts, errors, ts


def converged(a, b, q="a photo"):
    ra, rb = a.search(q, k=ALL), b.search(q, k=ALL)
    if ra.status != 200 or rb.status != 200:
        return False
    ka = [(h["id"], h["score"]) for h in ra.json()["results"]]
    kb = [(h["id"], h["score"]) for h in rb.json()["results"]]
    return ka == kb


def test_two_nodes_on_a_primary_and_a_standby_through_node_and_primary_crashes(pair, node):
    up = Uploads()
    a = node("a", pair).start()
    b = node("b", pair).start()

    # Concurrent uploads through both nodes, each searchable on the other
    # within a second of its 201.
    lags = []

    def through(src, dst, n):
        for _ in range(n):
            data = up.next_image()
            r = src.upload(data)
            assert r.status == 201, r
            up.ack(data, r)
            i = r.json()["id"]
            lag = wait_for(lambda: i in search_ids(dst, k=ALL), 1.0 * SLOW)
            assert lag is not None, "image %d never reached the other node" % i
            lags.append(lag)

    ts = [threading.Thread(target=through, args=(a, b, 5)), threading.Thread(target=through, args=(b, a, 5))]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert len(lags) == 10

    # The same bytes through both nodes at the same moment: one image; the
    # loser answers 200 duplicate with the winner's id.
    for round_ in range(3):
        data = up.next_image()
        gate = threading.Barrier(2)
        got = {}

        def race(s, key):
            gate.wait()
            got[key] = s.upload(data)

        rs = [threading.Thread(target=race, args=(s, k)) for s, k in ((a, "a"), (b, "b"))]
        for t in rs:
            t.start()
        for t in rs:
            t.join()
        statuses = sorted(r.status for r in got.values())
        assert statuses == [200, 201], got
        ids = {r.json()["id"] for r in got.values()}
        assert len(ids) == 1, got
        loser = [r for r in got.values() if r.status == 200][0]
        assert loser.json()["duplicate"] is True
        up.ack(data, loser)

    # kill -9 of node a during uploads through both; a restarts on its data
    # directory and converges.
    stop, counts, errors, ts = streams(up, (a, b), time.monotonic() + 20 * SLOW)
    assert wait_for(lambda: counts[0][0] >= 3, 10 * SLOW) is not None, a.log()
    a.kill()
    time.sleep(0.3)
    stop.set()
    for t in ts:
        t.join()
    assert errors == [] and counts[1][0] >= 1, errors
    a.start()
    assert wait_for(lambda: converged(a, b), 3 * SLOW) is not None, (search_ids(a, k=ALL), search_ids(b, k=ALL))

    # kill -9 of the primary during uploads through both nodes, the standby
    # promoted: the same node processes write through it (503 between).
    pids = (a.proc.pid, b.proc.pid)
    stop, counts, errors, ts = streams(up, (a, b), time.monotonic() + 40 * SLOW)
    assert wait_for(lambda: counts[0][0] >= 2 and counts[1][0] >= 2, 10 * SLOW) is not None
    refused_before = len(up.refusals)
    pair.kill("primary")
    time.sleep(0.5)
    at_promotion = (counts[0][0], counts[1][0])
    pair.promote("standby")
    # each node acknowledges new uploads through the promoted server
    resumed = wait_for(lambda: counts[0][0] >= at_promotion[0] + 3 and counts[1][0] >= at_promotion[1] + 3,
                       20 * SLOW)
    stop.set()
    for t in ts:
        t.join()
    assert resumed is not None, (errors, counts, at_promotion, up.refusals[-5:], a.log()[-3000:])
    assert (a.proc.pid, b.proc.pid) == pids and a.proc.poll() is None and b.proc.poll() is None
    assert pair.pid("primary") is None
    # while no primary answered, a write was refused with 503
    # catalog_unavailable and Retry-After (or its connection was cut)
    outage = up.refusals[refused_before:]
    for status, code, retry_after in outage:
        if status != "connection":
            assert status == 503 and code == "catalog_unavailable" and retry_after, outage
    print("writes resumed %.2f s after the promotion; %d refusals meanwhile" % (resumed, len(outage)))

    # Every acknowledged upload is in the catalog once, under its id, and
    # searchable on both nodes, which answer identically.
    rows = pair.psql("standby", "SELECT sha256, id FROM images ORDER BY id")
    by_sha = {}
    for sha, i in rows:
        assert sha not in by_sha, "sha256 %s twice" % sha
        by_sha[sha] = int(i)
    for sha, i in up.acked.items():
        assert by_sha.get(sha) == i, "acknowledged %s (id %d) is %s in the catalog" % (sha, i, by_sha.get(sha))
    assert wait_for(lambda: converged(a, b) and converged(a, b, "a cat"), 3 * SLOW) is not None
    on_a = set(search_ids(a, k=ALL))
    assert set(up.acked.values()) <= on_a and len(on_a) == len(rows)
    assert a.get("/info").json()["images"] == b.get("/info").json()["images"] == len(rows)
    # clipd check on the catalog, and on a node's snapshot against it
    assert a.stop() == 0
    for extra in ([], ["--data", a.data]):
        p = subprocess.run([CLIPD, "check", "--catalog", pair.uri] + extra, env=pair.env, capture_output=True,
                           text=True, timeout=60 * SLOW)
        assert p.returncode == 0 and p.stdout == "", p.stdout + p.stderr
        assert "the catalog is consistent: %d images" % len(rows) in p.stderr, p.stderr
    print("lag from a 201 to search on the other node: max %.3f s, %d uploads acknowledged"
          % (max(lags), len(up.acked)))


def at_start(s):
    """The index's start-up counters from /info: (how, adds, removes, vectors)."""
    m = s.get("/info").json()["index"]["at_start"]
    replay = re.search(r"replayed (\d+) adds and (\d+) removes: (\d+) vectors", m)
    if replay:
        return ("loaded", int(replay.group(1)), int(replay.group(2)), int(replay.group(3)))
    rebuilt = re.search(r"rebuilt the index from (\d+) stored vectors", m)
    assert rebuilt, m
    return ("rebuilt", None, None, int(rebuilt.group(1)))


def test_a_third_node_joins_a_stale_snapshot_replays_only_the_changes_after_it_and_check_finds_a_lost_vector(
        tmp_path_factory, tmp_path, node):
    pair = PgPair.start(tmp_path_factory.mktemp("pg1"), standby=False)
    try:
        a = node("a", pair).start()
        bdata = str(tmp_path / "b-data")
        b = node("b", pair, data_dir=bdata).start()
        first = [a.upload(make_png(20, 20, seed=s)).json()["id"] for s in range(1, 6)]
        assert wait_for(lambda: converged(a, b), 2 * SLOW) is not None
        assert b.stop() == 0          # saves its snapshot: 5 images
        later = [a.upload(make_png(20, 20, seed=s)).json()["id"] for s in range(6, 9)]
        assert a.request("DELETE", "/images/%d" % first[0]).status == 204
        # a third node on an empty data directory builds from the catalog
        c = node("c", pair).start()
        assert at_start(c) == ("rebuilt", None, None, 7)
        assert wait_for(lambda: converged(a, c) and converged(a, c, "a cat"), 2 * SLOW) is not None
        # b's snapshot is 4 changes old: it replays those 4, not all 9
        b.start()
        assert at_start(b) == ("loaded", 3, 1, 7), b.get("/info").json()["index"]
        assert sorted(search_ids(b, k=ALL)) == sorted(first[1:] + later)
        assert converged(a, b)
        # clipd check --catalog names what is wrong with a catalog: an
        # image without its vector (broken by the superuser behind clipd)
        assert a.stop() == 0 and b.stop() == 0 and c.stop() == 0
        pair.psql("primary", "DELETE FROM vectors WHERE image_id = %d" % later[0])
        p = subprocess.run([CLIPD, "check", "--catalog", pair.uri], env=pair.env, capture_output=True, text=True,
                           timeout=60 * SLOW)
        assert p.returncode == 1 and "image %d: no vector of the active model" % later[0] in p.stdout, \
            p.stdout + p.stderr
        p = subprocess.run([CLIPD, "check", "--catalog", "postgresql://clipd@127.0.0.1:1/x?connect_timeout=2"],
                           env=pair.env, capture_output=True, text=True, timeout=60 * SLOW)
        assert p.returncode == 1 and "cannot connect" in p.stdout, p.stdout + p.stderr
    finally:
        pair.stop()


def running(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().split(") ")[1].split()[0] != "Z"
    except OSError:
        return False


def test_up_sh_runs_a_cluster_behind_haproxy_and_down_sh_stops_it(tmp_path):
    if subprocess.run(["sh", "-c", "command -v haproxy"], capture_output=True).returncode != 0:
        pytest.skip("needs HAProxy (apt-get install haproxy)")
    d = str(tmp_path / "cluster")
    port = free_port()
    env = dict(os.environ, CLIPD_CLUSTER_PG_FAST="1", CLIPD_BIN=CLIPD)
    up = subprocess.run(["bash", os.path.join(REPO, "deploy", "cluster", "up.sh"), "--nodes", "2", "--dir", d,
                         "--port", str(port), "--", "--log-level", "warn"],
                        env=env, capture_output=True, text=True, timeout=180 * SLOW)
    down = ["bash", os.path.join(REPO, "deploy", "cluster", "down.sh"), "--dir", d]
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        assert "HAProxy               http://127.0.0.1:%d" % port in up.stdout, up.stdout
        conf = dict(line.split("=", 1) for line in open(os.path.join(d, "cluster.env")).read().splitlines())
        pids = [int(open(os.path.join(d, f)).read()) for f in ("haproxy.pid", "node1.pid", "node2.pid")]
        pids += [int(open(os.path.join(d, "pg", s, "postmaster.pid")).readline()) for s in ("primary", "standby")]
        assert all(running(p) for p in pids)
        front = Server(tmp_path)
        front.port = port
        nodes = []
        for url in conf["NODE_URLS"].strip('"').split():
            n = Server(tmp_path)
            n.port = int(url.rsplit(":", 1)[1])
            nodes.append(n)
        ids = []
        for s in range(3):
            r = front.upload(make_png(20, 20, seed=500 + s))
            assert r.status == 201 and int(r.headers["x-clipd-seq"]) >= 1, r
            ids.append(r.json()["id"])
            # searchable through HAProxy (whichever node answers) within a second
            assert wait_for(lambda: all(ids[-1] in search_ids(front, k=50) for _ in range(2)), 1.0 * SLOW) is not None
        assert sorted(search_ids(front, k=50)) == sorted(ids)
        for n in nodes:
            assert n.get("/info").json()["images"] == 3
        r = subprocess.run(down, env=env, capture_output=True, text=True, timeout=120 * SLOW)
        assert r.returncode == 0, r.stdout + r.stderr
        assert wait_for(lambda: not any(running(p) for p in pids), 10 * SLOW) is not None, \
            [p for p in pids if running(p)]
        # nothing of the cluster is left: no process names its directory,
        # nothing answers on its ports
        left = subprocess.run(["pgrep", "-af", d], capture_output=True, text=True).stdout.strip()
        assert left == "", left
        for p in (port, int(conf["PRIMARY_PORT"]), int(conf["STANDBY_PORT"])):
            with pytest.raises(OSError):
                front.port = p
                front.get("/healthz", timeout=2)
        # down.sh again: nothing to do, no error
        r = subprocess.run(down, env=env, capture_output=True, text=True, timeout=60 * SLOW)
        assert r.returncode == 0 and "stopped" not in r.stdout, r.stdout + r.stderr
    finally:
        subprocess.run(down + ["--purge"], env=env, capture_output=True, timeout=120 * SLOW)
    assert not os.path.exists(d)
