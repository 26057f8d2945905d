"""clipd catalog copy: a data directory of a few hundred images up into an
empty PostgreSQL catalog and back into an empty data directory, each time
verified, and nodes on the copies answer the same searches (ids, order,
scores) as the node on the original; an interrupted copy (a failing batch,
kill -9) run again continues to the end; what must be refused is. A data
directory with a photo library goes up and back too: the library, its
files' records and its images (their originals stay the library's files),
served, rescanned with nothing to do, and a new file picked up."""

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


# ---- photo libraries ---------------------------------------------------------------------------------

LIB_FIELDS = ("name", "root", "images", "files_seen", "unchanged", "failed", "bytes")


def write_file(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def libraries(server):
    r = server.get("/libraries")
    assert r.status == 200, r
    return {lib["name"]: lib for lib in r.json()["libraries"]}


def scanned(server, name, before=None):
    """The library once idle after a scan that finished after `before`."""
    deadline = time.monotonic() + 120 * SLOW
    while True:
        lib = libraries(server)[name]
        last = (lib["last_scan"] or {}).get("finished_at")
        if lib["state"] == "idle" and last and last != before:
            return lib
        assert time.monotonic() < deadline, lib
        time.sleep(0.05)


def rescan(server, name):
    before = (libraries(server)[name]["last_scan"] or {}).get("finished_at")
    assert server.request("POST", "/libraries/%s/scan" % name).status == 202
    return scanned(server, name, before)


def keywords(server):
    """Keyword matches of words that are only in library paths (folders,
    names; "copy" in an upload's path in the library)."""
    out = {}
    for q in ("p4", "b", "copy", "datetime"):
        r = server.search(q, mode="keyword", k=50)
        assert r.status == 200, r
        out[q] = sorted(x["id"] for x in r.json()["results"])
    assert out["copy"] and len(out["b"]) == 4, out
    return out


def no_changes(lib):
    return all(lib["last_scan"][k] == 0 for k in ("added", "changed", "moved", "removed"))


def library_images(server):
    r = server.get("/images?limit=1000&library=shots")
    assert r.status == 200, r
    # an uploaded image found in the library too keeps its own original: no source
    return {i["source"]["path"] if i["source"] else "upload %d" % i["id"]: i for i in r.json()["items"]}


@pytest.fixture(scope="module")
def lib_source(tmp_path_factory):
    """A data directory with uploads and a library: a few images in two
    folders, a file that is no image (a failure), an image deleted through
    the API (an ignored path), a copy of an uploaded image's bytes (a
    library file whose image is an upload) and a photo with a capture time."""
    tmp = tmp_path_factory.mktemp("copy-lib-source")
    root = str(tmp / "shots")
    for i in range(6):
        write_file(os.path.join(root, "a" if i < 3 else "b b", "p%d.png" % i), make_png(10 + i, 10, seed=7000 + i))
    write_file(os.path.join(root, "a", "notes.png"), b"not a png at all")
    with open(os.path.join(DATA, "photos", "datetime.jpg"), "rb") as f:
        write_file(os.path.join(root, "datetime.jpg"), f.read())
    args = ("--library", "shots=" + root, "--library-settle", "0", "--library-rescan", "0")
    s = Server(tmp, *args)
    ups = []
    s.start()
    scanned(s, "shots")
    for i in range(4):
        r = s.upload(make_png(9, 13, seed=7100 + i))
        assert r.status == 201, r
        ups.append(r.json()["id"])
    write_file(os.path.join(root, "b b", "upload-copy.png"), make_png(9, 13, seed=7100))
    lib = rescan(s, "shots")
    assert lib["failed"] == 1 and lib["images"] == 8, lib
    imgs = library_images(s)
    assert "upload %d" % ups[0] in imgs and len(imgs) == 8, imgs
    gone = imgs["a/p1.png"]["id"]
    assert s.request("DELETE", "/images/%d" % gone).status == 204
    lib = rescan(s, "shots")
    imgs = library_images(s)
    assert "a/p1.png" not in imgs and imgs["datetime.jpg"]["taken_at"] == TAKEN
    want = {"results": results(s), "keywords": keywords(s), "libraries": {n: {k: v[k] for k in LIB_FIELDS} for n, v in libraries(s).items()},
            "images": library_images(s), "count": s.get("/info").json()["images"],
            "errors": s.get("/libraries/shots/errors").json()["items"], "gone": gone,
            "finished_at": lib["last_scan"]["finished_at"]}
    assert s.stop() == 0
    return dict(want, dir=s.data, root=root, args=args)


def check_library_node(node, src):
    """A node on a copy: the library scanned at start found nothing to do,
    and it answers as the source did."""
    lib = scanned(node, "shots", src["finished_at"])   # the copy holds the source's last scan
    assert no_changes(lib), lib
    assert_same_results(results(node), src["results"])
    assert keywords(node) == src["keywords"]
    assert {n: {k: v[k] for k in LIB_FIELDS} for n, v in libraries(node).items()} == src["libraries"]
    assert library_images(node) == src["images"]
    assert node.get("/libraries/shots/errors").json()["items"] == src["errors"]
    assert node.get("/info").json()["images"] == src["count"]
    assert node.get("/images/%d" % src["gone"]).status == 404
    for path, img in src["images"].items():
        if path.startswith("upload "):
            continue
        r = node.get("/images/%d/file" % img["id"])
        assert r.status == 200 and r.body == open(os.path.join(src["root"], path), "rb").read(), (path, r)
    # the library's rescan finds nothing new, changed or removed either
    lib = rescan(node, "shots")
    assert no_changes(lib) and lib["failed"] == 1, lib
    return lib


def test_a_library_up_to_postgresql_and_back(lib_source, catalog, tmp_path):
    src = lib_source
    uri = catalog.cluster.fresh_database()
    # the schema first, then a library file whose insert fails: the copy
    # stops in the library files (two a batch) and continues from there
    start_node(tmp_path / "migrate", "--catalog", uri).stop()
    catalog.cluster.psql(uri, "CREATE FUNCTION no_more() RETURNS trigger LANGUAGE plpgsql AS "
                              "$$BEGIN RAISE EXCEPTION 'deliberate failure at %', NEW.path; END$$; "
                              "CREATE TRIGGER no_more BEFORE INSERT ON library_files FOR EACH ROW "
                              "WHEN (NEW.path = 'b b/p5.png') EXECUTE FUNCTION no_more()")
    p = copy(src["dir"], uri, "--batch", "2")
    assert p.returncode == 1 and "deliberate failure at b b/p5.png" in p.stderr, p.stderr
    state = catalog.cluster.psql(uri, "SELECT value FROM settings WHERE key = 'copy_files'")[0][0]
    assert state.startswith("after "), state
    # whole batches in path order: a/notes a/p0 | a/p1 a/p2 | b b/p3 b b/p4 | b b/p5 ...
    assert catalog.cluster.psql(uri, "SELECT count(*) FROM library_files")[0][0] == "6"
    catalog.cluster.psql(uri, "DROP TRIGGER no_more ON library_files")
    p = copy(src["dir"], uri, "--batch", "2")
    assert p.returncode == 0, p.stderr
    assert "photo libraries: 1, with 9 files" in p.stdout, p.stdout
    assert catalog.cluster.psql(uri, "SELECT count(*) FROM originals o JOIN library_images l ON "
                                     "o.sha256 = (SELECT sha256 FROM images WHERE id = l.image_id)")[0][0] == "0"

    node = start_node(tmp_path / "pg-node", "--catalog", uri, *src["args"])
    pg_last = check_library_node(node, src)["last_scan"]["finished_at"]
    assert node.stop() == 0

    back = tmp_path / "back"
    p = copy(uri, back)
    assert p.returncode == 0, p.stderr
    assert "photo libraries: 1, with 9 files" in p.stdout, p.stdout
    # and between two PostgreSQL catalogs, verified the same way
    p = copy(uri, catalog.cluster.fresh_database())
    assert p.returncode == 0 and "photo libraries: 1, with 9 files" in p.stdout, p.stdout + p.stderr
    node = start_node(tmp_path / "dir-node", *src["args"], data_dir=str(back))
    dir_last = check_library_node(node, src)["last_scan"]["finished_at"]
    assert node.stop() == 0
    check = subprocess.run([CLIPD, "check", "--data", str(back)], capture_output=True, text=True,
                           timeout=60 * SLOW)
    assert check.returncode == 0, check.stdout + check.stderr
    node = start_node(tmp_path / "dir-node", *src["args"], data_dir=str(back))
    assert no_changes(scanned(node, "shots", dir_last))   # its scan at start
    # a file added to the folder afterwards is picked up by the next scan
    added = make_png(11, 17, seed=7200)
    write_file(os.path.join(src["root"], "new", "n.png"), added)
    lib = rescan(node, "shots")
    assert lib["last_scan"]["added"] == 1, lib
    new = library_images(node)["new/n.png"]
    assert new["id"] > max(i["id"] for i in src["images"].values())
    assert node.get("/images/%d/file" % new["id"]).body == added
    assert node.stop() == 0
    # and on the PostgreSQL copy too
    node = start_node(tmp_path / "pg-node2", "--catalog", uri, *src["args"])
    lib = scanned(node, "shots", pg_last)
    assert lib["last_scan"]["added"] == 1, lib
    assert node.get("/images/%d/file" % library_images(node)["new/n.png"]["id"]).body == added
    assert node.stop() == 0


def test_a_library_path_postgresql_cannot_hold(lib_source, catalog, tmp_path):
    """A library file whose name is not UTF-8 (a data directory records
    it; PostgreSQL's text cannot): the copy up is refused before anything
    is copied, naming the file; the copy into a data directory goes."""
    root = tmp_path / "odd"
    write_file(os.path.join(str(root), "ok.png"), make_png(10, 10, seed=7300))
    with open(os.path.join(bytes(root), b"caf\xe9.png"), "wb") as f:
        f.write(make_png(10, 11, seed=7301))
    s = start_node(tmp_path / "src", "--library", "odd=%s" % root, "--library-settle", "0")
    deadline = time.monotonic() + 60 * SLOW
    while libraries(s)["odd"]["images"] < 2 or libraries(s)["odd"]["state"] != "idle":
        assert time.monotonic() < deadline, libraries(s)
        time.sleep(0.05)
    assert s.stop() == 0
    uri = catalog.cluster.fresh_database()
    p = copy(s.data, uri)
    assert p.returncode == 1 and "the library file 'caf\\xe9.png' (its path) is not UTF-8" in p.stderr, p.stderr
    assert catalog.cluster.psql(uri, "SELECT count(*) FROM pg_tables WHERE tablename = 'images'")[0][0] == "0"
    # a target that holds no image but a library (a node was started with one)
    start_node(tmp_path / "lib-node", "--catalog", uri, "--library", "odd=%s" % root).stop()
    p = copy(lib_source["dir"], uri)
    assert p.returncode == 1 and "it knows the photo library 'odd'" in p.stderr, p.stderr
    p = copy(s.data, tmp_path / "dir")
    assert p.returncode == 0 and "photo libraries: 1, with 2 files" in p.stdout, p.stdout + p.stderr
