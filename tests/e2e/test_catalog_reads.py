"""Reads on a node of a shared catalog: min_seq=N waits until the node has
applied change N (what a write through any node answered in X-Clipd-Seq),
so a client reads its own writes behind a load balancer."""

import subprocess
import time

from helpers import CLIPD, MODEL, SLOW, make_png

CATALOGS = ("postgresql",)


def test_min_seq_reads_a_write_made_through_another_node(catalog, make_server):
    uri = catalog.args()[1]
    a = make_server("--catalog", uri).start()
    b = make_server("--catalog", uri, "--timeout", "2").start()
    for i in range(6):
        r = a.upload(make_png(20, 20, seed=300 + i))
        assert r.status == 201, r
        new, seq = r.json()["id"], int(r.headers["x-clipd-seq"])
        # at once, on the other node: the search sees it, whatever its follower did
        r = b.search("a photo", k=50, min_seq=seq)
        assert r.status == 200, r
        assert new in [h["id"] for h in r.json()["results"]], (i, r.json())
        for path in ("/images/%d" % new, "/images?limit=1", "/images/%d/similar" % new, "/info"):
            sep = "&" if "?" in path else "?"
            r = b.get(path + sep + "min_seq=%d" % seq)
            assert r.status == 200, (path, r)
        assert b.get("/images?limit=1&min_seq=%d" % seq).json()["items"][0]["id"] == new
    # a change that never comes: 503 replica_behind after the request timeout, saying so
    t0 = time.monotonic()
    r = b.search("a photo", min_seq=seq + 1000)
    took = time.monotonic() - t0
    assert r.status == 503 and r.error_code() == "replica_behind", r
    assert int(r.headers["retry-after"]) >= 1 and "applied changes up to %d" % seq in r.json()["error"]["message"]
    assert 1.9 <= took <= 10 * SLOW, took
    # min_seq is digits, bounded; and only reads take it
    for bad in ("x", "-1", "1e3", "", "1" * 19, "%2B5"):
        r = b.get("/images?min_seq=" + bad)
        assert r.status == 400 and r.error_code() == "bad_parameter" and "min_seq" in r.json()["error"]["message"], \
            (bad, r)
    assert b.get("/healthz?min_seq=1").status == 400
    r = b.request("DELETE", "/images/%d?min_seq=1" % new)
    assert r.status == 400 and "unknown parameter" in r.json()["error"]["message"], r


def test_the_web_page_may_read_x_clipd_seq(make_server, catalog):
    s = make_server("--cors-origin", "http://app.example").start()
    r = s.upload(make_png(16, 16, seed=5), headers={"Origin": "http://app.example"})
    assert r.status == 201, r
    exposed = [h.strip().lower() for h in r.headers["access-control-expose-headers"].split(",")]
    assert "x-clipd-seq" in exposed, r.headers
    # a single node answers min_seq from what it applied itself
    seq = int(r.headers["x-clipd-seq"])
    assert s.get("/images/%d?min_seq=%d" % (r.json()["id"], seq)).status == 200


def test_catalog_read_needs_catalog_and_a_postgresql_uri(catalog, tmp_path):
    uri = catalog.args()[1]
    base = [CLIPD, "serve", "--model", MODEL, "--data", str(tmp_path / "d"), "--listen", "127.0.0.1:0"]
    p = subprocess.run(base + ["--catalog-read", uri], capture_output=True, text=True, timeout=60 * SLOW)
    assert p.returncode == 2 and "--catalog-read: needs --catalog" in p.stderr, p.stderr
    p = subprocess.run(base + ["--catalog", uri, "--catalog-read", "mysql://x"], capture_output=True, text=True,
                       timeout=60 * SLOW)
    assert p.returncode == 1 and "read URI must start with postgresql://" in p.stderr, p.stderr
    p = subprocess.run(base + ["--catalog", uri, "--max-lag", "-1"], capture_output=True, text=True,
                       timeout=60 * SLOW)
    assert p.returncode == 2 and "max-lag" in p.stderr, p.stderr
