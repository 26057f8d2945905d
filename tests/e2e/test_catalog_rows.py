"""A node's cache of the PostgreSQL catalog's image rows (--row-cache):
searches, lists and gets read a row from the database once, then from the
node; every change drops the rows it touched before the node answers for
it (its own writes) or says it applied it (other nodes' changes, min_seq),
so a cached row is never read stale."""

import json

from helpers import SLOW, make_png, wait_for

CATALOGS = ("postgresql",)


def row_cache(node):
    return node.get("/info").json()["row_cache"]


def hits(node, q="a photo", k=50, **params):
    r = node.search(q, k=k, **params)
    assert r.status == 200, r
    return {h["id"]: h for h in r.json()["results"]}


def test_rows_are_read_once_then_from_the_node(catalog, make_server):
    uri = catalog.args()[1]
    a = make_server("--catalog", uri).start()
    ids = [a.upload(make_png(20, 20, seed=500 + i)).json()["id"] for i in range(4)]
    before = row_cache(a)
    assert before["max_bytes"] == 64 << 20
    hits(a)                        # the rows read from PostgreSQL, then kept
    mid = row_cache(a)
    assert mid["misses"] - before["misses"] == 4 and mid["entries"] >= 4, (before, mid)
    again = hits(a)                # the same search: every row from the node
    for i in ids:
        assert a.get("/images/%d" % i).status == 200
    after = row_cache(a)
    assert after["misses"] == mid["misses"], (mid, after)
    assert after["hits"] - mid["hits"] == 8, (mid, after)
    assert sorted(again) == sorted(ids)
    # the cache can be turned off; a node reading from a standby, or SQLite, has none
    off = make_server("--catalog", uri, "--row-cache", "0").start()
    assert row_cache(off) is None
    assert sorted(hits(off)) == sorted(ids)


def test_a_patch_or_delete_through_one_node_is_read_on_the_other(catalog, make_server):
    uri = catalog.args()[1]
    a = make_server("--catalog", uri).start()
    b = make_server("--catalog", uri).start()
    ids = [a.upload(make_png(20, 20, seed=600 + i)).json()["id"] for i in range(3)]
    r = a.upload(make_png(20, 20, seed=610))
    ids.append(r.json()["id"])
    seq = int(r.headers["x-clipd-seq"])
    # b caches every row (a search, a list, a get), a its own
    for node in (a, b):
        assert sorted(hits(node, min_seq=seq)) == sorted(ids)
        assert node.get("/images?limit=10").status == 200
        assert node.get("/images/%d" % ids[0]).json()["metadata"] == {}
        assert row_cache(node)["entries"] >= 4
    # a patch through a: at once on a, and on b for a read with min_seq
    r = a.request("PATCH", "/images/%d" % ids[0], body=json.dumps({"album": "rows"}),
                  headers={"Content-Type": "application/json"})
    assert r.status == 200, r
    seq = int(r.headers["x-clipd-seq"])
    assert a.get("/images/%d" % ids[0]).json()["metadata"] == {"album": "rows"}
    assert hits(a)[ids[0]]["metadata"] == {"album": "rows"}
    assert b.get("/images/%d?min_seq=%d" % (ids[0], seq)).json()["metadata"] == {"album": "rows"}
    assert hits(b, min_seq=seq)[ids[0]]["metadata"] == {"album": "rows"}
    # a filter agrees with the rows
    assert list(hits(b, **{"filter.album": "rows"})) == [ids[0]]
    # and without min_seq, within a second (b's follower)
    r = a.request("PATCH", "/images/%d" % ids[1], body=json.dumps({"album": "later"}),
                  headers={"Content-Type": "application/json"})
    assert r.status == 200, r
    assert wait_for(lambda: hits(b)[ids[1]]["metadata"] == {"album": "later"}, 1.0 * SLOW) is not None
    assert row_cache(b)["flushes"] >= 2
    # the cached rows are read again (the cache is not left empty)
    hits(b)
    h0 = row_cache(b)["hits"]
    hits(b)
    assert row_cache(b)["hits"] - h0 == 4
    # a patch through b of a row a cached: a reads it with min_seq
    hits(a)
    r = b.request("PATCH", "/images/%d" % ids[2], body=json.dumps({"n": 3}),
                  headers={"Content-Type": "application/json"})
    seq = int(r.headers["x-clipd-seq"])
    assert a.get("/images/%d?min_seq=%d" % (ids[2], seq)).json()["metadata"] == {"n": 3}
    # a delete through a of a row it cached: gone on a at once, and on b with
    # min_seq, from gets and searches
    assert hits(a)[ids[3]]
    dropped = row_cache(a)["invalidations"]
    r = a.request("DELETE", "/images/%d" % ids[3])
    assert r.status == 204
    seq = int(r.headers["x-clipd-seq"])
    assert a.get("/images/%d" % ids[3]).status == 404
    assert ids[3] not in hits(a)
    assert b.get("/images/%d?min_seq=%d" % (ids[3], seq)).status == 404
    assert ids[3] not in hits(b, min_seq=seq)
    assert row_cache(a)["invalidations"] > dropped


def test_a_small_cache_keeps_what_fits(catalog, make_server):
    uri = catalog.args()[1]
    a = make_server("--catalog", uri, "--row-cache", "1").start()
    big = json.dumps({"note": "x" * 15000})   # about 15 KB a row: some 60 rows fit in 1 MiB
    ids = []
    for i in range(80):
        r = a.upload(make_png(20, 20, seed=701 + i))
        assert r.status == 201, r
        ids.append(r.json()["id"])
    for i in ids:
        r = a.request("PATCH", "/images/%d" % i, body=big, headers={"Content-Type": "application/json"})
        assert r.status == 200, r
    for i in ids:
        assert a.get("/images/%d" % i).json()["metadata"]["note"] == "x" * 15000
    rc = row_cache(a)
    assert rc["max_bytes"] == 1 << 20 and rc["bytes"] <= 1 << 20, rc
    assert rc["evictions"] > 0 and 0 < rc["entries"] < len(ids), rc
