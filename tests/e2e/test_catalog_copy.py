"""clipd catalog copy: a data directory of a few hundred images up into an
empty PostgreSQL catalog and back into an empty data directory, each time
verified, and nodes on the copies answer the same searches (ids, order,
scores) as the node on the original; an interrupted copy (a failing batch,
kill -9) run again continues to the end; what must be refused is."""

import concurrent.futures
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import time

import pytest

from helpers import CLIPD, DATA, SLOW, Server, make_png

CATALOGS = ("postgresql",)
N_UPLOADS = 300
QUERIES = ["a photo", "a cat", "red", "a drawing of a rocket"]
TAKEN = "2023-06-17T14:03:22+02:00"          # photos/datetime.jpg's capture time


def copy(src, dst, *extra, timeout=120):
    return subprocess.run([CLIPD, "catalog", "copy", "--from", str(src), "--to", str(dst)] + list(extra),
                          capture_output=True, text=True, timeout=timeout * SLOW)


def results(server):
    out = {}
    for q in QUERIES:
        r = server.search(q, k=25)
        assert r.status == 200, r
        out[q] = [(h["id"], h["score"]) for h in r.json()["results"]]
    return out


def assert_same_results(got, want):
    for q in QUERIES:
        assert [i for i, _ in got[q]] == [i for i, _ in want[q]], q
        for (_, a), (_, b) in zip(got[q], want[q]):
            assert abs(a - b) < 1e-5, (q, a, b)


def start_node(path, *args, **kw):
    """A daemon in a directory of its own (created), started."""
    path.mkdir(parents=True, exist_ok=True)
    return Server(path, *args, **kw).start()


def rows(server, ids):
    out = {}
    for i in ids:
        r = server.get("/images/%d" % i)
        assert r.status == 200, r
        out[i] = r.json()
    return out


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """A data directory: 300 generated images, one photo with a capture
    time, metadata on some, two deletes (the newest among them, so the
    highest id ever given is above every row's)."""
    tmp = tmp_path_factory.mktemp("copy-source")
    s = Server(tmp).start()
    def up(i):
        r = s.upload(make_png(12 + i % 5, 12, seed=9000 + i))
        assert r.status == 201, r
        return r.json()["id"]
    with concurrent.futures.ThreadPoolExecutor(8) as pool:   # batched by the server
        ids = sorted(pool.map(up, range(N_UPLOADS)))
    with open(os.path.join(DATA, "photos", "datetime.jpg"), "rb") as f:
        r = s.upload(f.read(), content_type="image/jpeg")
    assert r.status == 201 and r.json()["taken_at"] == TAKEN, r
    ids.append(r.json()["id"])
    for i in ids[:40]:
        body = json.dumps({"album": "a%d" % (i % 3), "n": i, "tags": ["x", "y"]}).encode()
        assert s.request("PATCH", "/images/%d" % i, body=body,
                         headers={"Content-Type": "application/json"}).status == 200
    for i in (ids[7], ids[-2]):
        assert s.request("DELETE", "/images/%d" % i).status == 204
    kept = [i for i in ids if i not in (ids[7], ids[-2])]
    want = results(s)
    sample = kept[:5] + kept[-5:]
    want_rows = rows(s, sample)
    files = {i: s.get("/images/%d/file" % i).body for i in sample}
    assert s.stop() == 0
    return {"dir": s.data, "tmp": tmp, "ids": kept, "max_id": max(ids), "results": want, "rows": want_rows,
            "files": files}


def check_node(node, source):
    assert_same_results(results(node), source["results"])
    assert rows(node, source["rows"]) == source["rows"]
    for i, data in source["files"].items():
        assert node.get("/images/%d/file" % i).body == data
    info = node.get("/info").json()
    assert info["images"] == len(source["ids"])


def test_copy_up_to_postgresql_and_back(source, catalog, make_server, tmp_path):
    uri = catalog.cluster.fresh_database()
    p = copy(source["dir"], uri)
    assert p.returncode == 0, p.stderr
    n = len(source["ids"])
    assert "%d images copied now" % n in p.stdout and "verified %d images" % n in p.stdout, p.stdout
    assert "ids above %d" % source["max_id"] in p.stdout, p.stdout
    assert catalog.cluster.psql(uri, "SELECT value FROM settings WHERE key = 'copy'")[0][0].startswith(
        "done %d data directory " % n)

    # a node on the copy builds its index from it and answers as the original did
    node = start_node(tmp_path / "pg-node", "--catalog", uri)
    assert "rebuilt the index from %d stored vectors" % n in node.log(), node.log()
    check_node(node, source)
    assert node.stop() == 0

    # back into a new data directory, verified again
    back = tmp_path / "back"
    p = copy(uri, back)
    assert p.returncode == 0, p.stderr
    assert "verified %d images" % n in p.stdout, p.stdout
    node = start_node(tmp_path / "dir-node", data_dir=str(back))
    check_node(node, source)
    # new uploads continue past every id the original ever gave
    r = node.upload(make_png(9, 9, seed=1))
    assert r.status == 201 and r.json()["id"] == source["max_id"] + 1, r
    assert node.stop() == 0
    check = subprocess.run([CLIPD, "check", "--data", str(back)], capture_output=True, text=True,
                           timeout=60 * SLOW)
    assert check.returncode == 0, check.stdout + check.stderr

    # and on PostgreSQL too, through a node that follows the catalog
    node = start_node(tmp_path / "pg-node2", "--catalog", uri)
    r = node.upload(make_png(9, 9, seed=2))
    assert r.status == 201 and r.json()["id"] == source["max_id"] + 1, r
    assert int(r.headers["x-clipd-seq"]) > n
    assert r.json()["id"] in [h["id"] for h in node.search("a photo", k=1000).json()["results"]]
    assert node.stop() == 0


def test_a_failing_batch_then_the_copy_continues(source, catalog, tmp_path):
    uri = catalog.cluster.fresh_database()
    # the schema first (a node's start migrates), then a batch that fails
    start_node(tmp_path / "migrate", "--catalog", uri).stop()
    stop_at = source["ids"][120]
    catalog.cluster.psql(uri, "CREATE FUNCTION no_more() RETURNS trigger LANGUAGE plpgsql AS "
                              "$$BEGIN RAISE EXCEPTION 'deliberate failure at image %%', NEW.id; END$$; "
                              "CREATE TRIGGER no_more BEFORE INSERT ON images FOR EACH ROW "
                              "WHEN (NEW.id >= %d) EXECUTE FUNCTION no_more()" % stop_at)
    p = copy(source["dir"], uri, "--batch", "50")
    assert p.returncode == 1 and "deliberate failure at image %d" % stop_at in p.stderr, p.stderr
    assert "run the same command again" in p.stderr
    # whole batches only: 100 rows committed, the record says how far
    assert catalog.cluster.psql(uri, "SELECT count(*) FROM images")[0][0] == "100"
    state = catalog.cluster.psql(uri, "SELECT value FROM settings WHERE key = 'copy'")[0][0]
    assert state.startswith("copying %d " % source["ids"][99]), state
    # an unfinished copy is not served
    s = subprocess.run([CLIPD, "serve", "--model", os.path.join(DATA, "tiny-clip-hf"), "--data",
                        str(tmp_path / "refused"), "--listen", "127.0.0.1:0", "--catalog", uri],
                       capture_output=True, text=True, timeout=60 * SLOW)
    assert s.returncode != 0 and "unfinished copy" in s.stderr, s.stderr

    catalog.cluster.psql(uri, "DROP TRIGGER no_more ON images")
    p = copy(source["dir"], uri, "--batch", "50")
    assert p.returncode == 0, p.stderr
    assert "continued an unfinished copy after image %d" % source["ids"][99] in p.stdout, p.stdout
    assert "%d images copied now" % (len(source["ids"]) - 100) in p.stdout, p.stdout
    node = start_node(tmp_path / "node", "--catalog", uri)
    check_node(node, source)
    assert node.stop() == 0


def test_kill_9_mid_copy_then_the_copy_continues(source, catalog, tmp_path):
    uri = catalog.cluster.fresh_database()
    proc = subprocess.Popen([CLIPD, "catalog", "copy", "--from", source["dir"], "--to", uri, "--batch", "1"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60 * SLOW
    copied = 0
    while copied < 5:
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
        try:
            copied = int(catalog.cluster.psql(uri, "SELECT count(*) FROM images")[0][0])
        except subprocess.CalledProcessError:   # the schema is not there yet
            pass
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stdout.close()
    proc.stderr.close()
    copied = int(catalog.cluster.psql(uri, "SELECT count(*) FROM images")[0][0])
    assert 5 <= copied < len(source["ids"])
    state = catalog.cluster.psql(uri, "SELECT value FROM settings WHERE key = 'copy'")[0][0]
    assert state.startswith("copying %d " % source["ids"][copied - 1]), state
    p = copy(source["dir"], uri)
    assert p.returncode == 0, p.stderr
    assert "continued an unfinished copy after image %d" % source["ids"][copied - 1] in p.stdout, p.stdout
    assert "verified %d images" % len(source["ids"]) in p.stdout
    node = start_node(tmp_path / "node", "--catalog", uri)
    check_node(node, source)
    assert node.stop() == 0


def broken_copy(source, tmp_path, name):
    d = tmp_path / name
    shutil.copytree(source["dir"], d, ignore=shutil.ignore_patterns("lock"))
    return d


def blob_of(d, sha):
    return os.path.join(d, "blobs", sha[:2], sha[2:4], sha)


def test_refusals(source, catalog, tmp_path):
    src = source["dir"]
    uri = catalog.cluster.fresh_database()
    p = copy(src, src)
    assert p.returncode == 1 and "the same data directory" in p.stderr, p.stderr

    # a source in use by a running clipd
    s = start_node(tmp_path / "busy", data_dir=src)
    p = copy(src, uri)
    assert p.returncode == 1 and "in use by another clipd process" in p.stderr, p.stderr
    assert s.stop() == 0

    # a target that is not empty
    other = start_node(tmp_path / "other", "--catalog", uri)
    assert other.upload(make_png(8, 8, seed=5)).status == 201
    assert other.stop() == 0
    p = copy(src, uri)
    assert p.returncode == 1 and "is not empty (1 images)" in p.stderr, p.stderr
    p = copy(uri, uri)
    assert p.returncode == 1 and "the same catalog" in p.stderr, p.stderr
    # the same database under another spelling of its address
    p = copy(uri, uri.replace("127.0.0.1", "localhost"))
    assert p.returncode == 1 and "the same catalog" in p.stderr, p.stderr
    full = tmp_path / "full"
    full.mkdir()
    (full / "notes.txt").write_text("mine")
    p = copy(src, full)
    assert p.returncode == 1 and "is not empty (it holds notes.txt)" in p.stderr, p.stderr
    assert sorted(os.listdir(full)) == ["notes.txt"]

    # a source of another schema version (newer than this clipd)
    newer = broken_copy(source, tmp_path, "newer")
    with sqlite3.connect(str(newer / "clipd.db")) as db:
        db.execute("PRAGMA user_version = 99")
    p = copy(newer, tmp_path / "t1")
    assert p.returncode == 1 and "schema version 99" in p.stderr, p.stderr
    assert not (tmp_path / "t1").exists()

    # a corrupt database
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / "clipd.db").write_bytes(b"SQLite format 3\0" + os.urandom(4096))
    p = copy(corrupt, tmp_path / "t2")
    assert p.returncode == 1 and p.stderr.strip(), p.stderr
    assert not (tmp_path / "t2").exists()

    sha = source["rows"][source["ids"][-1]]["sha256"]
    last = source["ids"][-1]
    # an original missing
    missing = broken_copy(source, tmp_path, "missing")
    os.unlink(blob_of(missing, sha))
    dst = catalog.cluster.fresh_database()
    p = copy(missing, dst)
    assert p.returncode == 1 and "image %d's original" % last in p.stderr and "is missing" in p.stderr, p.stderr
    state = catalog.cluster.psql(dst, "SELECT value FROM settings WHERE key = 'copy'")[0][0]
    assert state.startswith("copying "), state   # never "done"
    # an original whose bytes do not match its digest (same size)
    bad = broken_copy(source, tmp_path, "bad")
    path = blob_of(bad, sha)
    data = bytearray(open(path, "rb").read())
    data[len(data) // 2] ^= 0xFF
    with open(path, "wb") as f:
        f.write(data)
    p = copy(bad, tmp_path / "t3")
    assert p.returncode == 1 and "does not match its digest" in p.stderr, p.stderr
    with sqlite3.connect(str(tmp_path / "t3" / "clipd.db")) as db:
        assert db.execute("SELECT value FROM settings WHERE key = 'copy'").fetchone()[0].startswith("copying ")

    # a finished copy is not copied into again
    done = tmp_path / "done"
    assert copy(src, done).returncode == 0
    p = copy(src, done)
    assert p.returncode == 1 and "already holds a finished copy" in p.stderr, p.stderr
    # a target in use by a running clipd
    s = start_node(tmp_path / "serving", data_dir=str(done))
    p = copy(uri, done)
    assert p.returncode == 1 and "in use by another clipd process" in p.stderr, p.stderr
    assert s.stop() == 0
