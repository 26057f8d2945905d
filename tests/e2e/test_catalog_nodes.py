"""Several clipd nodes on one PostgreSQL catalog (serve --catalog): each
node follows the change sequence (LISTEN/NOTIFY, polling as the fallback),
so an upload through one node is searchable on the other within a second,
and a delete through the other is gone from the first; writes answer
X-Clipd-Seq; what PostgreSQL does not do yet is refused at start."""

import subprocess

from helpers import CLIPD, MODEL, SLOW, fixture, make_png, search_ids, wait_for

CATALOGS = ("postgresql",)


def test_two_nodes_follow_one_catalog(catalog, make_server, tmp_path):
    uri = catalog.args()[1]
    a = make_server("--catalog", uri).start()
    b = make_server("--catalog", uri).start()
    seqs = []
    for name in ["astronaut.png", "chelsea.png"]:
        r = a.upload(fixture(name))
        assert r.status == 201, r
        seqs.append(int(r.headers["x-clipd-seq"]))
    assert seqs[1] > seqs[0] > 0
    ids = []
    lags = []
    for i in range(3):
        r = b.upload(make_png(32, 32, seed=70 + i))
        assert r.status == 201, r
        ids.append(r.json()["id"])
        # on the other node: searchable within a second (the bar)
        lag = wait_for(lambda: ids[-1] in search_ids(a), 1.0 * SLOW)
        assert lag is not None, "node a never saw image %d:\n%s" % (ids[-1], a.log())
        lags.append(lag)
    # the same bytes through the other node: one image
    r = a.upload(make_png(32, 32, seed=70))
    assert r.status == 200 and r.json()["duplicate"] and r.json()["id"] == ids[0], r
    # a delete through a: gone from b's searches too
    r = a.request("DELETE", "/images/%d" % ids[1])
    assert r.status == 204 and int(r.headers["x-clipd-seq"]) > seqs[1]
    assert wait_for(lambda: ids[1] not in search_ids(b), 1.0 * SLOW) is not None
    assert b.get("/images/%d" % ids[1]).status == 404
    # both nodes answer a search identically once they applied the same changes
    assert wait_for(lambda: search_ids(a, "a cat") == search_ids(b, "a cat"), 2.0 * SLOW) is not None
    info_a, info_b = a.get("/info").json(), b.get("/info").json()
    assert info_a["images"] == info_b["images"] == 4
    assert info_a["index"]["vectors"] == info_b["index"]["vectors"] == 4
    print("replication lag (201 on b to search on a): %s s" % ", ".join("%.3f" % x for x in lags))


def test_a_restarted_node_catches_up(catalog, make_server, tmp_path):
    uri = catalog.args()[1]
    data = str(tmp_path / "node-a")
    a = make_server("--catalog", uri, data_dir=data).start()
    b = make_server("--catalog", uri).start()
    first = a.upload(make_png(16, 16, seed=1)).json()["id"]
    assert a.stop() == 0
    more = [b.upload(make_png(16, 16, seed=2 + i)).json()["id"] for i in range(3)]
    assert b.request("DELETE", "/images/%d" % first).status == 204
    a2 = make_server("--catalog", uri, data_dir=data).start()
    assert "replayed 3 adds and 1 removes" in a2.log()
    assert sorted(search_ids(a2)) == sorted(more)


def test_a_catalog_nobody_answers_is_refused_at_start(catalog, tmp_path):
    # a catalog nobody answers at: start-up fails, saying which
    p = subprocess.run([CLIPD, "serve", "--model", MODEL, "--data", str(tmp_path / "d"), "--listen", "127.0.0.1:0",
                        "--catalog", "postgresql://clipd@127.0.0.1:1/nothing?connect_timeout=2"],
                       capture_output=True, text=True, timeout=60 * SLOW)
    assert p.returncode == 1 and "cannot open the PostgreSQL catalog" in p.stderr, p.stderr
    p = subprocess.run([CLIPD, "serve", "--model", MODEL, "--data", str(tmp_path / "d"), "--listen", "127.0.0.1:0",
                        "--catalog", "mysql://x"], capture_output=True, text=True, timeout=60 * SLOW)
    assert p.returncode == 1 and "must start with postgresql://" in p.stderr, p.stderr
