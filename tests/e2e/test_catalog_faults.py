"""A node of a shared PostgreSQL catalog when the database fails under it:
writes answer 503 catalog_unavailable with Retry-After and leave nothing
partial, searches keep answering from the node's index replica, and the node
reconnects by itself when the server is back. These tests stop and restart
PostgreSQL, so they run on a cluster of their own (tests/e2e/pg.py)."""

import json

import pytest

from helpers import SLOW, Server, make_png, multipart, search_ids, wait_for
from pg import PgCluster


@pytest.fixture(scope="module")
def own_cluster():
    if not PgCluster.available():
        pytest.skip("needs PostgreSQL 15 (apt-get install postgresql-15)")
    cluster = PgCluster.start()
    yield cluster
    cluster.stop()


@pytest.fixture
def nodes(tmp_path):
    started = []

    def make(*args):
        sub = tmp_path / ("n%d" % len(started))
        sub.mkdir()
        s = Server(sub, *args)
        started.append(s)
        return s.start()

    yield make
    codes = [(s.stop(), s) for s in started if s.proc is not None]
    for rc, s in codes:   # 0: a clean stop, and no sanitizer report
        assert rc == 0, s.log()[-3000:]


def assert_unavailable(r):
    assert r.status == 503 and r.error_code() == "catalog_unavailable", r
    assert int(r.headers["retry-after"]) >= 1, r.headers


def count(cluster, uri, sql):
    return int(cluster.psql(uri, sql)[0][0])


def test_no_primary_writes_answer_503_searches_answer_and_the_node_recovers(own_cluster, nodes):
    uri = own_cluster.fresh_database()
    a = nodes("--catalog", uri)
    b = nodes("--catalog", uri)
    r = a.upload(make_png(24, 24, seed=1))
    assert r.status == 201, r
    first = r.json()["id"]
    assert wait_for(lambda: first in search_ids(b), 2 * SLOW) is not None

    own_cluster.halt()
    try:
        # every write: 503 with Retry-After, whichever step met the outage
        assert_unavailable(a.upload(make_png(24, 24, seed=2)))
        # a multipart upload whose every file met the outage: the same 503, Retry-After too
        body, ctype = multipart([("file", "p%d.png" % i, "image/png", make_png(24, 24, seed=40 + i)) for i in range(2)])
        r = a.request("POST", "/images", body=body, headers={"Content-Type": ctype})
        assert_unavailable(r)
        assert [it["status"] for it in r.json()["items"]] == [503, 503], r.json()
        assert_unavailable(a.request("PATCH", "/images/%d" % first, body=json.dumps({"album": "x"}),
                                     headers={"Content-Type": "application/json"}))
        assert_unavailable(a.request("DELETE", "/images/%d" % first))
        # a search is answered from the node's index replica: ids and scores
        # (a, whose failed patch and delete dropped the row from its cache)
        r = a.search("a photo", k=5)
        assert r.status == 200, r
        body = r.json()
        assert body["catalog_unavailable"] is True
        assert [h["id"] for h in body["results"]] == [first]
        assert set(body["results"][0]) <= {"id", "score", "sources", "ranks"}
        # or with the rows the node has cached (b searched it before)
        r = b.search("a photo", k=5)
        assert r.status == 200, r
        body = r.json()
        assert "catalog_unavailable" not in body and [h["id"] for h in body["results"]] == [first]
        assert body["results"][0]["metadata"] == {}
        # a read that needs a row says why it cannot answer
        assert_unavailable(a.get("/images/%d" % first))
    finally:
        own_cluster.resume()

    # the node reconnects by itself: a write succeeds again without a restart
    got = {}

    def write_ok():
        r = a.upload(make_png(24, 24, seed=2))
        got["r"] = r
        return r.status == 201

    assert wait_for(write_ok, 15 * SLOW) is not None, (got.get("r"), a.log())
    second = got["r"].json()["id"]
    r = a.request("PATCH", "/images/%d" % first, body=json.dumps({"album": "x"}),
                  headers={"Content-Type": "application/json"})
    assert r.status == 200 and r.json()["metadata"] == {"album": "x"}, r
    # the other node's follower caught up, and its searches have rows again
    assert wait_for(lambda: sorted(search_ids(b)) == sorted([first, second]), 5 * SLOW) is not None, b.log()
    body = b.search("a photo", k=5).json()
    assert "catalog_unavailable" not in body and all("sha256" in h for h in body["results"])
    # nothing partial: every image has its original, its vector and its
    # change; nothing the refused writes carried is there
    assert count(own_cluster, uri, "SELECT count(*) FROM images") == 2
    assert count(own_cluster, uri, "SELECT count(*) FROM originals") == 2
    assert count(own_cluster, uri, "SELECT count(*) FROM vectors") == 2
    assert count(own_cluster, uri, "SELECT count(*) FROM images i WHERE NOT EXISTS "
                 "(SELECT 1 FROM changes c WHERE c.image_id = i.id AND c.op = 'add')") == 0
    assert count(own_cluster, uri, "SELECT count(*) FROM changes") == 2


def readyz(node):
    r = node.get("/readyz")
    return r.status, r.json()


def test_reads_from_a_standby_lag_and_reading_its_own_writes(own_cluster, nodes):
    uri = own_cluster.fresh_database()
    db = uri.rsplit("/", 1)[1]
    standby = own_cluster.standby()
    try:
        suri = "%s/%s?target_session_attrs=prefer-standby" % (standby.uri, db)
        a = nodes("--catalog", uri)
        b = nodes("--catalog", uri, "--catalog-read", suri, "--max-lag", "1", "--timeout", "2")
        status, body = readyz(b)
        assert status == 200 and body["applied_seq"] == body["latest_seq"] == 0 and body["lag_s"] == 0, body

        # the standby stops replaying: b learns of a's write from the primary
        # but reads the changes (and rows) from the standby, so it falls behind
        standby.psql(suri, "SELECT pg_wal_replay_pause()")
        r = a.upload(make_png(24, 24, seed=11))
        assert r.status == 201, r
        x, seq = r.json()["id"], int(r.headers["x-clipd-seq"])
        assert wait_for(lambda: readyz(b)[0] == 503, 4 * SLOW) is not None, b.log()
        status, body = readyz(b)
        assert body["error"]["code"] == "not_ready" and "behind the catalog" in body["error"]["message"], body
        assert "applied change 0, the latest is %d" % seq in body["error"]["message"], body
        assert x not in search_ids(b)
        assert b.get("/images/%d" % x).status == 404          # the standby's rows
        r = b.search("a photo", min_seq=seq)                  # cannot arrive: the request timeout
        assert r.status == 503 and r.error_code() == "replica_behind", r
        assert readyz(a)[0] == 200                            # a reads the primary

        # replaying again: b catches up and is ready, saying where it is
        standby.psql(suri, "SELECT pg_wal_replay_resume()")
        assert wait_for(lambda: readyz(b)[0] == 200, 5 * SLOW) is not None, b.log()
        status, body = readyz(b)
        assert body["applied_seq"] == body["latest_seq"] == seq and body["lag_s"] == 0, body
        assert search_ids(b) == [x] and b.get("/images/%d" % x).status == 200

        # b reads its own writes although the standby has not replayed them
        standby.psql(suri, "SELECT pg_wal_replay_pause()")
        r = b.upload(make_png(24, 24, seed=12))
        assert r.status == 201, r
        y = r.json()["id"]
        assert b.get("/images/%d" % y).status == 200
        r = b.request("PATCH", "/images/%d" % y, body=json.dumps({"k": "v"}),
                      headers={"Content-Type": "application/json"})
        assert r.status == 200 and r.json()["metadata"] == {"k": "v"}, r
        assert b.get("/images/%d" % y).json()["metadata"] == {"k": "v"}
        assert b.get("/images?limit=1").json()["items"][0]["id"] == y
        assert sorted(search_ids(b)) == sorted([x, y])
        # (the standby itself has not seen it)
        assert standby.psql(suri, "SELECT count(*) FROM images WHERE id = %d" % y) == [["0"]]
        standby.psql(suri, "SELECT pg_wal_replay_resume()")

        # the standby gone: reads fall back to the primary (the read that
        # meets the broken connection may answer 503 catalog_unavailable)
        standby.stop()
        standby = None
        assert wait_for(lambda: b.get("/images/%d" % x).status == 200, 5 * SLOW) is not None, b.log()
        r = b.upload(make_png(24, 24, seed=13))
        assert r.status == 201, r
        assert wait_for(lambda: r.json()["id"] in search_ids(a), 2 * SLOW) is not None
        assert sorted(search_ids(b)) == sorted(search_ids(a))
    finally:
        if standby:
            standby.stop()


def test_writes_resume_through_a_promoted_standby_without_a_restart(own_cluster, nodes):
    # last in this module: the module's primary does not come back
    uri = own_cluster.fresh_database()
    db = uri.rsplit("/", 1)[1]
    standby = own_cluster.standby()
    try:
        hosts = ",".join(u.split("@", 1)[1] for u in (own_cluster.uri, standby.uri))
        multi = "postgresql://clipd@%s/%s?target_session_attrs=read-write" % (hosts, db)
        a = nodes("--catalog", multi)
        b = nodes("--catalog", multi)
        r = a.upload(make_png(24, 24, seed=21))
        assert r.status == 201, r
        first, seq = r.json()["id"], int(r.headers["x-clipd-seq"])
        # the standby has it before the primary goes
        assert wait_for(lambda: standby.psql("%s/%s" % (standby.uri, db), "SELECT count(*) FROM images") == [["1"]],
                        5 * SLOW) is not None
        own_cluster.halt()
        assert_unavailable(b.upload(make_png(24, 24, seed=22)))   # only a standby answers
        standby.promote()
        got = {}

        def write_ok():
            got["r"] = b.upload(make_png(24, 24, seed=22))
            return got["r"].status == 201

        assert wait_for(write_ok, 20 * SLOW) is not None, (got.get("r"), b.log())
        second = got["r"].json()["id"]
        assert int(got["r"].headers["x-clipd-seq"]) > seq
        # both nodes follow the promoted server; the first upload is there once
        for node in (a, b):
            assert wait_for(lambda: sorted(search_ids(node)) == sorted([first, second]), 5 * SLOW) is not None, \
                node.log()
        assert search_ids(a, "a cat") == search_ids(b, "a cat")
    finally:
        standby.stop()
