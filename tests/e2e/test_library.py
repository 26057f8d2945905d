"""Photo libraries (clipd serve --library): a generated tree indexed in
place with every failure reported, rescans that keep ids through moves
and edits, an unmounted-like root that changes nothing, and a scan killed
with SIGKILL that resumes without re-encoding what it had committed."""

import io
import json
import os
import random
import shutil
import socket
import sqlite3
import subprocess
import tempfile
import time

import pytest
from PIL import Image

from helpers import CLIPD, MODEL, SLOW, load_openapi, make_png, validate

CATALOGS = ("sqlite", "postgresql")   # the whole module against both catalogs (conftest.py)


def tiny(fmt, seed, size=8):
    """An 8x8 image of random pixels in format fmt (png, jpg, bmp, gif)."""
    if fmt == "png":
        return make_png(size, size, seed=seed)
    rnd = random.Random(seed)
    img = Image.frombytes("RGB", (size, size), bytes(rnd.randrange(256) for _ in range(size * size * 3)))
    out = io.BytesIO()
    img.save(out, {"jpg": "JPEG", "bmp": "BMP", "gif": "GIF"}[fmt], **({"quality": 95} if fmt == "jpg" else {}))
    return out.getvalue()


def write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def library(server, name):
    r = server.get("/libraries")
    assert r.status == 200, r
    for lib in r.json()["libraries"]:
        if lib["name"] == name:
            return lib
    raise AssertionError("no library %s in %r" % (name, r.json()))


def wait_scanned(server, name, scans_before=None, timeout=120):
    """Wait until the library is idle after a scan that began after
    scans_before finished scans (its last_scan.finished_at changed)."""
    deadline = time.time() + timeout * SLOW
    while True:
        lib = library(server, name)
        last = (lib["last_scan"] or {}).get("finished_at")
        if lib["state"] != "scanning" and last and last != scans_before:
            return lib
        if lib["state"] == "offline" and scans_before == "offline":
            return lib
        assert time.time() < deadline, lib
        time.sleep(0.05)


def rescan(server, name):
    before = (library(server, name)["last_scan"] or {}).get("finished_at")
    r = server.request("POST", "/libraries/%s/scan" % name)
    assert r.status == 202, r
    return wait_scanned(server, name, before)


def pages(server, path):
    """Every item of a paged list (path ends with its query string)."""
    items, cursor = [], None
    while True:
        r = server.get(path + ("&cursor=" + cursor if cursor else ""))
        assert r.status == 200, r
        items += r.json()["items"]
        cursor = r.json()["next_cursor"]
        if not cursor:
            return items


def all_images(server, query=""):
    return pages(server, "/images?limit=1000" + query)


def metric(server, name):
    total = 0.0
    for line in server.get("/metrics").body.decode().splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def errors(server, name):
    return {e["path"]: e for e in pages(server, "/libraries/%s/errors?limit=7" % name)}


def test_tree_of_2000_files(make_server, tmp_path):
    root = str(tmp_path / "Pictures")
    fmts = ["png", "jpg", "bmp", "gif"]
    good = {}
    # 1,990 images over ten levels of folders
    for i in range(1990):
        depth = i % 11
        folder = os.path.join(root, *["d%d_%d" % (lvl, (i // 11) % 3) for lvl in range(depth)])
        fmt = fmts[i % 4]
        path = os.path.join(folder, "img%04d.%s" % (i, fmt))
        write(path, tiny(fmt, i + 1))
        good[os.path.relpath(path, root)] = True
    # two copies of one photo under other names: one image
    write(os.path.join(root, "copies", "same-a.png"), tiny("png", 777777))
    write(os.path.join(root, "copies", "same-b.png"), tiny("png", 777777))
    bad = {}
    for i in range(8):   # corrupt: a PNG or JPEG cut short
        p = "broken/cut%d.%s" % (i, "png" if i % 2 else "jpg")
        write(os.path.join(root, p), tiny("png" if i % 2 else "jpg", 5000 + i)[:40])
        bad[p] = "image_undecodable"
    for i in range(4):   # unsupported
        p = "docs/note%d.txt" % i
        write(os.path.join(root, p), b"not a photo %d\n" % i)
        bad[p] = "unsupported_media_type"
    write(os.path.join(root, "docs", "empty.jpg"), b"")
    bad["docs/empty.jpg"] = "image_undecodable"
    # unreadable: a FIFO (fails for root too), and a file without permissions
    os.mkfifo(os.path.join(root, "docs", "pipe.jpg"))
    bad["docs/pipe.jpg"] = "unsupported_media_type"
    sock = socket.socket(socket.AF_UNIX)   # a socket: no image either (open() says ENXIO)
    sock.bind(os.path.join(root, "docs", "sock.jpg"))
    sock.close()
    bad["docs/sock.jpg"] = "unsupported_media_type"
    if os.geteuid() != 0:
        write(os.path.join(root, "docs", "secret.png"), tiny("png", 7777))
        os.chmod(os.path.join(root, "docs", "secret.png"), 0)
        bad["docs/secret.png"] = "unreadable"
    # a symbolic link loop (a folder linking to its ancestor) and hidden files
    os.symlink("..", os.path.join(root, "d0_0", "loop"))
    os.symlink(os.path.join(root, "copies", "same-a.png"), os.path.join(root, "link-to-file.png"))
    write(os.path.join(root, ".thumbnails", "hidden.png"), tiny("png", 90001))
    write(os.path.join(root, "d0_1", ".hidden.png"), tiny("png", 90002))
    assert len(good) + 2 + len(bad) >= 2000

    s = make_server("--library", root, "--library-settle", "0").start()
    lib = wait_scanned(s, "Pictures")
    validate(lib, {"$ref": "#/components/schemas/Library"}, load_openapi(s))
    distinct = len(good) + 1
    assert lib["state"] == "idle" and lib["offline_reason"] is None
    assert lib["images"] == distinct, lib
    assert lib["files_seen"] == len(good) + 2 + len(bad), lib
    assert lib["failed"] == len(bad) and lib["failed_this_scan"] == len(bad), lib
    assert lib["indexed_this_scan"] == len(good) + 2, lib
    assert lib["files_seen"] == lib["indexed_this_scan"] + lib["failed_this_scan"] + lib["unchanged"] + lib["waiting"]
    assert lib["symlinks_skipped"] == 2, lib
    assert lib["last_scan"]["added"] == distinct and lib["last_scan"]["failed"] == len(bad)
    assert lib["last_scan"]["removed"] == 0
    # every failure listed, with its reason
    errs = errors(s, "Pictures")
    assert {p: e["code"] for p, e in errs.items()} == bad
    assert errs["docs/note0.txt"]["status"] == 415 and errs["broken/cut1.png"]["status"] == 422
    assert "FIFO" in errs["docs/pipe.jpg"]["message"] and "socket" in errs["docs/sock.jpg"]["message"]
    # each image once, in the catalog, with its source; hidden files absent
    imgs = all_images(s, "&library=Pictures")
    assert len(imgs) == distinct
    paths = {i["source"]["path"] for i in imgs}
    assert not any("/." in "/" + p for p in paths) and not any("loop" in p for p in paths)
    assert paths - {"copies/same-a.png", "copies/same-b.png"} == set(good)
    assert s.get("/images?library=nosuch").error_code() == "bad_parameter"
    # the library's figures in /metrics; the encoder saw each distinct image once or so
    assert metric(s, "clipd_library_images") == distinct
    assert metric(s, "clipd_library_files_failed") == len(bad)
    # a rescan of an unchanged tree reads nothing again
    encoded = metric(s, 'clipd_encoder_items_total{path="image"}')
    lib = rescan(s, "Pictures")
    assert lib["unchanged"] == lib["files_seen"] and lib["indexed_this_scan"] == 0, lib
    assert metric(s, 'clipd_encoder_items_total{path="image"}') == encoded
    assert s.stop() == 0


@pytest.fixture
def small_library(tmp_path):
    root = str(tmp_path / "photos")
    for i in range(12):
        write(os.path.join(root, "a" if i < 6 else "b", "p%02d.png" % i), tiny("png", 100 + i, size=12))
    return root


def by_path(server):
    return {i["source"]["path"]: i for i in all_images(server, "&library=photos")}


def test_rescan_follows_moves_edits_deletes_and_additions(make_server, small_library):
    root = small_library
    s = make_server("--library", root, "--library-settle", "0", "--library-rescan", "0").start()
    wait_scanned(s, "photos")
    before = by_path(s)
    assert len(before) == 12
    for p in ("a/p00.png", "a/p01.png", "b/p06.png"):
        r = s.request("PATCH", "/images/%d" % before[p]["id"], body=b'{"album": "%s"}' % p.encode(),
                      headers={"Content-Type": "application/merge-patch+json"})
        assert r.status == 200, r
    # the original comes from the library itself
    r = s.get("/images/%d/file" % before["a/p02.png"]["id"])
    assert r.status == 200 and r.body == open(os.path.join(root, "a/p02.png"), "rb").read()
    assert s.get("/images/%d/thumbnail?size=128" % before["a/p02.png"]["id"]).status == 200
    # nothing was copied into the data directory
    assert not os.path.exists(os.path.join(s.data, "blobs")) or not any(
        files for _, _, files in os.walk(os.path.join(s.data, "blobs")))

    os.rename(os.path.join(root, "a/p00.png"), os.path.join(root, "a/renamed.png"))
    os.makedirs(os.path.join(root, "b/sub"))
    os.rename(os.path.join(root, "a/p01.png"), os.path.join(root, "b/sub/p01.png"))
    write(os.path.join(root, "b/p06.png"), tiny("png", 9999, size=12))        # new pixels
    os.utime(os.path.join(root, "b/p06.png"), (time.time() - 60, time.time() - 60))
    os.unlink(os.path.join(root, "b/p07.png"))
    for i in range(10):
        write(os.path.join(root, "new", "n%d.png" % i), tiny("png", 500 + i, size=12))
    # a changed file is not served until it is indexed again
    r = s.get("/images/%d/file" % before["b/p06.png"]["id"])
    assert r.status == 404 and r.error_code() == "source_missing", r

    lib = rescan(s, "photos")
    assert lib["last_scan"]["added"] == 10 and lib["last_scan"]["changed"] == 1, lib
    assert lib["last_scan"]["moved"] == 2 and lib["last_scan"]["removed"] == 1, lib
    after = by_path(s)
    assert len(after) == 12 - 1 + 10
    assert after["a/renamed.png"]["id"] == before["a/p00.png"]["id"]
    assert after["a/renamed.png"]["metadata"] == {"album": "a/p00.png"}
    assert after["b/sub/p01.png"]["id"] == before["a/p01.png"]["id"]
    assert after["b/sub/p01.png"]["metadata"] == {"album": "a/p01.png"}
    edited = after["b/p06.png"]
    assert edited["id"] == before["b/p06.png"]["id"] and edited["metadata"] == {"album": "b/p06.png"}
    assert edited["sha256"] != before["b/p06.png"]["sha256"]
    assert s.get("/images/%d/file" % edited["id"]).status == 200
    assert s.get("/images/%d" % before["b/p07.png"]["id"]).status == 404
    # the edited image is found by its new pixels
    r = s.request("POST", "/search/image?k=1", body=tiny("png", 9999, size=12), headers={"Content-Type": "image/png"})
    assert r.json()["results"][0]["id"] == edited["id"], r

    # DELETE removes the image and ignores its path; the file stays
    gone = after["a/p03.png"]["id"]
    assert s.request("DELETE", "/images/%d" % gone).status == 204
    lib = rescan(s, "photos")
    assert s.get("/images/%d" % gone).status == 404
    assert "a/p03.png" not in by_path(s) and os.path.exists(os.path.join(root, "a/p03.png"))
    assert lib["images"] == 20
    assert s.stop() == 0


def test_offline_roots_remove_nothing(make_server, small_library, tmp_path):
    root = small_library
    s = make_server("--library", "photos=" + root, "--library-settle", "0", "--library-rescan", "0").start()
    wait_scanned(s, "photos")
    ids = sorted(i["id"] for i in all_images(s))
    assert len(ids) == 12

    def offline_scan(why):
        assert s.request("POST", "/libraries/photos/scan").status == 202
        deadline = time.time() + 30 * SLOW
        while True:
            lib = library(s, "photos")
            if lib["state"] == "offline" and why in lib["offline_reason"]:
                break
            assert time.time() < deadline, lib
            time.sleep(0.05)
        assert sorted(i["id"] for i in all_images(s)) == ids
        assert lib["images"] == 12
        return lib

    # renamed away (an unmounted disk)
    os.rename(root, root + ".away")
    offline_scan("No such file")
    # emptied (the bare mount point)
    os.mkdir(root)
    offline_scan("is empty")
    os.rmdir(root)
    # unusable: not a folder any more (and, when not root, a folder without permissions)
    write(root, b"not a folder")
    offline_scan("not a folder")
    os.unlink(root)
    if os.geteuid() != 0:
        os.rename(root + ".away", root)
        os.chmod(root, 0)
        try:
            offline_scan("Permission denied")
        finally:
            os.chmod(root, 0o755)
    else:
        os.rename(root + ".away", root)
    # back: everything is still there, nothing re-encoded
    encoded = metric(s, 'clipd_encoder_items_total{path="image"}')
    lib = rescan(s, "photos")
    assert lib["state"] == "idle" and lib["unchanged"] == 12 and lib["last_scan"]["removed"] == 0
    assert metric(s, 'clipd_encoder_items_total{path="image"}') == encoded
    assert s.stop() == 0


def catalog_count(catalog, data, sql):
    """A count from the catalog of the daemon on data: its SQLite file, or its PostgreSQL database."""
    if catalog.kind == "postgresql":
        return int(catalog.cluster.psql(catalog.uris[data], sql)[0][0])
    db = sqlite3.connect(os.path.join(data, "clipd.db"))
    try:
        return db.execute(sql).fetchone()[0]
    finally:
        db.close()


def test_kill_during_scan_resumes_without_reencoding(make_server, tmp_path, catalog):
    root = str(tmp_path / "big")
    n = 400
    for i in range(n):
        write(os.path.join(root, "f%02d" % (i % 20), "p%03d.jpg" % i), tiny("jpg", 20000 + i, size=64))
    data = str(tmp_path / "data")
    args = ("--library", root, "--library-settle", "0", "--batch-size", "2")
    s = make_server(*args, data_dir=data).start()
    deadline = time.time() + 60 * SLOW
    while True:
        lib = library(s, "big")
        if lib["state"] == "scanning" and lib["indexed_this_scan"] >= 40:
            break
        assert lib["last_scan"] is None, "the scan finished before it could be killed: %r" % lib
        assert time.time() < deadline, lib
        time.sleep(0.01)
    s.kill()
    committed = catalog_count(catalog, data, "SELECT COUNT(*) FROM library_images")
    pending = catalog_count(catalog, data, "SELECT COUNT(*) FROM library_files WHERE pending")
    assert 40 <= committed < n, committed
    assert pending > 0

    s2 = make_server(*args, data_dir=data).start()
    lib = wait_scanned(s2, "big")
    assert lib["images"] == n and lib["last_scan"]["removed"] == 0, lib
    # only the files not committed before the kill went through the encoder
    assert metric(s2, 'clipd_encoder_items_total{path="image"}') == n - committed
    assert lib["unchanged"] == committed, lib
    assert s2.stop() == 0
    if catalog.kind == "sqlite":   # clipd check reads a data directory's SQLite catalog
        r = subprocess.run([CLIPD, "check", "--data", data], capture_output=True, text=True, timeout=120 * SLOW)
        assert r.returncode == 0, r.stdout + r.stderr


def test_library_options_and_errors(make_server, small_library, tmp_path):
    # a name given, two folders of the same base name refused, bad names refused
    r = subprocess.run([CLIPD, "serve", "--model", "x", "--data", str(tmp_path / "d"), "--library", small_library,
                        "--library", small_library], capture_output=True, text=True)
    assert r.returncode == 2 and "two libraries are named 'photos'" in r.stderr
    # NAME=DIR with a NAME that cannot be one is a usage error, not a folder
    # of that whole name (an offline library named after the folder's end)
    for arg in ("\u0424\u043e\u0442\u043e=" + small_library, "my/pics=" + small_library, "=" + small_library,
                ".hid=" + small_library, "a" * 65 + "=" + small_library):
        r = subprocess.run([CLIPD, "serve", "--model", "x", "--data", str(tmp_path / "d"), "--library", arg],
                           capture_output=True, text=True)
        assert r.returncode == 2 and "a library name is 1 to 64 letters" in r.stderr, (arg, r.stderr)
    os.makedirs(str(tmp_path / "x=y"))   # a folder with '=' in its name, given by its path
    s = make_server(env={"CLIPD_LIBRARY": "pics=%s,%s,%s" % (small_library, str(tmp_path / "missing"),
                                                           str(tmp_path / "x=y"))},
                    *("--library-settle", "0")).start()
    wait_scanned(s, "pics")
    assert library(s, "missing")["state"] in ("offline", "idle")
    assert library(s, "x_y")["root"] == str(tmp_path / "x=y")
    assert s.request("POST", "/libraries/nosuch/scan").error_code() == "not_found"
    assert s.get("/libraries/nosuch/errors").status == 404
    assert s.get("/libraries/pics/errors?limit=0").error_code() == "bad_parameter"
    assert s.get("/libraries/pics/errors?cursor=zz").error_code() == "bad_parameter"
    assert s.get("/images?library=..").error_code() == "bad_parameter"
    assert s.get("/search?q=x&library=" + "a" * 65).error_code() == "bad_parameter"
    assert s.get("/images?sha256=abc").error_code() == "bad_parameter"
    assert len(s.get("/search?q=photo&k=50&library=pics").json()["results"]) == 12
    assert s.get("/search?q=photo&library=missing").json()["results"] == []   # offline: a library all the same
    img = all_images(s)[0]
    assert s.get("/images?sha256=" + img["sha256"].upper()).json()["items"][0]["id"] == img["id"]
    assert s.get("/images?sha256=" + "0" * 64).json()["items"] == []
    assert s.stop() == 0


def test_library_restricts_every_search_entry_point(make_server, small_library, tmp_path):
    """library=NAME keeps one library's images on GET /images, GET and
    POST /search (every mode), /images/{id}/similar and /search/image; a
    name no library has is 400 naming it on each."""
    other = str(tmp_path / "other")
    for i in range(3):
        write(os.path.join(other, "o%d.png" % i), tiny("png", 700 + i, size=12))
    s = make_server("--library", small_library, "--library", other, "--library-settle", "0",
                    "--library-rescan", "0").start()
    wait_scanned(s, "photos")
    wait_scanned(s, "other")
    uploads = []
    for i in range(4):
        r = s.upload(make_png(12, 12, seed=800 + i), query="?filename=up%d.png" % i)
        assert r.status == 201, r
        uploads.append(r.json()["id"])
    photos = {i["id"] for i in all_images(s, "&library=photos")}
    others = {i["id"] for i in all_images(s, "&library=other")}
    assert len(photos) == 12 and len(others) == 3 and not photos & others
    assert {i["id"] for i in all_images(s)} == photos | others | set(uploads)
    # one word every image of both libraries and one upload holds, for the keyword modes
    for i in list(photos)[:2] + list(others)[:1] + uploads[:1]:
        r = s.request("PATCH", "/images/%d" % i, body=b'{"album": "harbour"}',
                      headers={"Content-Type": "application/merge-patch+json"})
        assert r.status == 200, r

    def ids(r):
        assert r.status == 200, r
        return {x["id"] for x in r.json()["results"]}

    def post(body):
        return s.request("POST", "/search", body=json.dumps(body).encode(), headers={"Content-Type": "application/json"})

    def get_search(lib, **extra):
        return ids(s.search("photo", k=50, **dict(extra, **({"library": lib} if lib else {}))))

    assert get_search(None) == photos | others | set(uploads)
    assert get_search("photos") == photos and get_search("other") == others
    # POST /search: the JSON body's "library", every mode, with embeddings and stored images
    assert ids(post({"text": ["photo"], "k": 50})) == photos | others | set(uploads)
    assert ids(post({"text": ["photo"], "k": 50, "library": "photos"})) == photos
    assert ids(post({"images": [{"id": uploads[0]}], "k": 50, "library": "other"})) == others
    emb = s.request("POST", "/embed", body=b'{"texts": ["a photo"]}',
                    headers={"Content-Type": "application/json"}).json()["embeddings"][0]
    assert ids(post({"images": [{"embedding": emb}], "k": 50, "library": "photos"})) == photos
    kw = ids(post({"text": ["harbour"], "k": 50, "mode": "keyword", "library": "photos"}))
    assert kw == set(list(photos)[:2])
    assert ids(s.search("harbour", k=50, mode="keyword", library="other")) == set(list(others)[:1])
    hy = ids(post({"text": ["harbour"], "k": 50, "mode": "hybrid", "library": "other"}))
    assert hy == others
    # the other entry points
    assert ids(s.get("/images/%d/similar?k=50&library=photos" % uploads[0])) == photos
    r = s.request("POST", "/search/image?k=50&library=other", body=make_png(12, 12, seed=900),
                  headers={"Content-Type": "image/png"})
    assert ids(r) == others
    # a library filter together with the others
    assert ids(post({"text": ["photo"], "k": 50, "library": "photos", "filters": {"album": "harbour"}})) \
        == set(list(photos)[:2])
    # a name no library has: 400 naming it, everywhere
    for r in (s.get("/images?library=nosuch"), s.search("photo", library="nosuch"),
              post({"text": ["photo"], "library": "nosuch"}),
              s.get("/images/%d/similar?library=nosuch" % uploads[0]),
              s.request("POST", "/search/image?library=nosuch", body=make_png(12, 12, seed=900),
                        headers={"Content-Type": "image/png"})):
        assert r.status == 400 and r.error_code() == "bad_parameter", r
        assert "no library named 'nosuch'" in r.json()["error"]["message"], r
    for bad in (7, "..", "a" * 65, None):
        r = post({"text": ["photo"], "library": bad})
        assert r.error_code() == "bad_parameter" and "library" in r.json()["error"]["message"], r
    assert s.stop() == 0


def test_library_paths_are_keywords(make_server, tmp_path):
    """A library image's path (its folders' names too) is in the keyword
    index as its filename is, and follows moves, edits and deletes."""
    root = str(tmp_path / "Pictures")
    write(os.path.join(root, "Paris 2019", "beach", "IMG_0042.png"), tiny("png", 501, size=12))
    write(os.path.join(root, "Paris 2019", "museum", "IMG_0043.png"), tiny("png", 502, size=12))
    write(os.path.join(root, "Lisbon", "tram_ride.png"), tiny("png", 503, size=12))
    s = make_server("--library", root, "--library-settle", "0", "--library-rescan", "0").start()
    wait_scanned(s, "Pictures")
    ids = {i["source"]["path"]: i["id"] for i in all_images(s, "&library=Pictures")}
    up = s.upload(make_png(12, 12, seed=504), query="?filename=paris-notes.png")
    assert up.status == 201, up

    def kw(q, **extra):
        r = s.search(q, mode="keyword", k=50, **extra)
        assert r.status == 200, r
        return {x["id"] for x in r.json()["results"]}

    paris = {ids["Paris 2019/beach/IMG_0042.png"], ids["Paris 2019/museum/IMG_0043.png"]}
    assert kw("paris") == paris | {up.json()["id"]}
    assert kw("paris", library="Pictures") == paris
    assert kw("beach") == {ids["Paris 2019/beach/IMG_0042.png"]}
    assert kw("2019 museum") == paris
    assert kw("tram") == {ids["Lisbon/tram_ride.png"]}
    assert kw("lisbon") == {ids["Lisbon/tram_ride.png"]}
    assert kw("paris", **{"not": "museum"}) == {ids["Paris 2019/beach/IMG_0042.png"], up.json()["id"]}
    # hybrid: the keyword ranking lists the path's image first
    r = s.search("beach", mode="hybrid", k=1)
    assert r.json()["results"][0]["id"] == ids["Paris 2019/beach/IMG_0042.png"]
    assert "keyword" in r.json()["results"][0]["sources"]
    # a move: the same image, found by its new folder only
    os.makedirs(os.path.join(root, "Rome 2021"))
    os.rename(os.path.join(root, "Paris 2019", "beach", "IMG_0042.png"), os.path.join(root, "Rome 2021", "IMG_0042.png"))
    rescan(s, "Pictures")
    assert kw("rome") == {ids["Paris 2019/beach/IMG_0042.png"]}
    assert kw("beach") == set()
    assert kw("paris") == {ids["Paris 2019/museum/IMG_0043.png"], up.json()["id"]}
    # a second copy of the same bytes: both paths find the one image
    write(os.path.join(root, "Backup", "copy.png"), tiny("png", 503, size=12))
    rescan(s, "Pictures")
    assert kw("backup") == {ids["Lisbon/tram_ride.png"]} and kw("lisbon") == {ids["Lisbon/tram_ride.png"]}
    # metadata and paths together; a delete takes the image out
    r = s.request("PATCH", "/images/%d" % ids["Lisbon/tram_ride.png"], body=b'{"note": "yellow"}',
                  headers={"Content-Type": "application/merge-patch+json"})
    assert r.status == 200, r
    assert kw("yellow") == {ids["Lisbon/tram_ride.png"]} and kw("tram") == {ids["Lisbon/tram_ride.png"]}
    assert s.request("DELETE", "/images/%d" % ids["Lisbon/tram_ride.png"]).status == 204
    assert kw("tram") == set() and kw("backup") == set() and kw("yellow") == set()
    assert s.stop() == 0


def test_no_link_below_the_root_is_followed(make_server, small_library, tmp_path):
    """A folder of the library replaced by a link to a folder outside it,
    holding a file of the same name, size and modification time: the
    image's original is missing, never the outside file, and the next scan
    forgets the image rather than index what the link points at."""
    root = small_library
    s = make_server("--library", root, "--library-settle", "0", "--library-rescan", "0").start()
    wait_scanned(s, "photos")
    img = by_path(s)["a/p02.png"]
    outside = tmp_path / "outside"
    outside.mkdir()
    secret = tiny("png", 999, size=12)
    inside = os.path.join(root, "a", "p02.png")
    assert len(secret) == os.path.getsize(inside)
    st = os.stat(inside)
    (outside / "p02.png").write_bytes(secret)
    os.utime(outside / "p02.png", ns=(st.st_atime_ns, st.st_mtime_ns))
    os.rename(os.path.join(root, "a"), str(tmp_path / "a-moved"))
    os.symlink(str(outside), os.path.join(root, "a"))
    r = s.get("/images/%d/file" % img["id"])
    assert r.status == 404 and r.error_code() == "source_missing", r
    assert secret not in r.body
    assert s.get("/images/%d/thumbnail?size=128" % img["id"]).status == 404
    rescan(s, "photos")
    paths = by_path(s)
    assert "a/p02.png" not in paths and len(paths) == 6
    assert library(s, "photos")["symlinks_skipped"] == 1
    assert s.stop() == 0


def test_two_nodes_scan_a_library_one_at_a_time(make_server, small_library, catalog):
    """Two nodes of one PostgreSQL catalog with the same library: one scans
    while the other waits ("queued") and then finds everything unchanged;
    both serve every image and its file (read from the same path)."""
    if catalog.kind != "postgresql":
        pytest.skip("one catalog shared by two nodes is PostgreSQL's")
    from pg import PSQL
    # a name with what PostgreSQL's array syntax quotes or escapes
    write(os.path.join(small_library, "b", 'q"u\\o,te {x}.png'), tiny("png", 999, size=12))
    uri = catalog.args()[1]
    # A session of the test's holds the library's scan lock (the first
    # library of a fresh catalog has id 1) before either node starts.
    holder = subprocess.Popen([PSQL, "-X", "-q", "-A", "-t", uri], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True)
    holder.stdin.write("SELECT pg_advisory_lock(1668049264, 1);\n\\echo locked\n")
    holder.stdin.flush()
    while "locked" not in holder.stdout.readline():
        assert holder.poll() is None, "psql ended"
    try:
        args = ("--catalog", uri, "--library", small_library, "--library-settle", "0", "--library-rescan", "0")
        a = make_server(*args).start()
        b = make_server(*args).start()
        assert catalog.cluster.psql(uri, "SELECT id FROM libraries WHERE name = 'photos'") == [["1"]]
        deadline = time.time() + 30 * SLOW
        while not all(library(s, "photos")["state"] == "queued" for s in (a, b)):
            assert time.time() < deadline, [library(s, "photos") for s in (a, b)]
            time.sleep(0.05)
        assert library(a, "photos")["images"] == 0 and library(b, "photos")["images"] == 0
    finally:
        holder.stdin.close()   # the session ends, and its lock with it
        holder.wait(timeout=30)
    # Watch both until each has scanned: never both scanning at once.
    deadline = time.time() + 60 * SLOW
    seen = []
    while True:
        libs = [library(s, "photos") for s in (a, b)]
        seen.append(tuple(lib["state"] for lib in libs))
        assert seen[-1] != ("scanning", "scanning"), seen[-5:]
        if all(metric(s, 'clipd_library_scans_total{library="photos"}') == 1 and lib["state"] == "idle"
               for s, lib in zip((a, b), libs)):
            break
        assert time.time() < deadline, libs
        time.sleep(0.005)
    # the first indexed the thirteen files, the second found them unchanged
    counts = sorted((lib["indexed_this_scan"], lib["unchanged"]) for lib in libs)
    assert counts == [(0, 13), (13, 0)], libs
    assert metric(a, 'clipd_encoder_items_total{path="image"}') + \
        metric(b, 'clipd_encoder_items_total{path="image"}') == 13
    # both serve every image, and its file from the library's folder
    for s in (a, b):
        deadline = time.time() + 10 * SLOW
        while len(by_path(s)) < 13:
            assert time.time() < deadline
            time.sleep(0.05)
        for path, im in by_path(s).items():
            r = s.get("/images/%d/file" % im["id"])
            assert r.status == 200 and r.body == open(os.path.join(small_library, path), "rb").read(), path
    assert {i["id"] for i in by_path(a).values()} == {i["id"] for i in by_path(b).values()}
    assert [h["id"] for h in a.search("a photo", k=13).json()["results"]] == \
        [h["id"] for h in b.search("a photo", k=13).json()["results"]]
    assert a.stop() == 0 and b.stop() == 0


def test_a_file_dated_ahead_is_indexed(make_server, small_library):
    """A photo whose modification time is far ahead of the clock (a
    camera's wrong clock, an archive's time stamps) has settled: it is
    indexed, not left waiting for the next scan at every scan."""
    root = small_library
    for folder, _, files in os.walk(root):   # settled long ago
        for f in files:
            os.utime(os.path.join(folder, f), (time.time() - 60, time.time() - 60))
    ahead = os.path.join(root, "a", "ahead.png")
    write(ahead, tiny("png", 4242, size=12))
    os.utime(ahead, (time.time() + 365 * 86400, time.time() + 365 * 86400))
    s = make_server("--library", root, "--library-rescan", "0").start()   # the default settle (2 s)
    lib = wait_scanned(s, "photos")
    assert lib["waiting"] == 0 and lib["images"] == 13, lib
    assert "a/ahead.png" in by_path(s)
    lib = rescan(s, "photos")
    assert lib["waiting"] == 0 and lib["unchanged"] == 13, lib
    assert s.stop() == 0


@pytest.fixture
def unprivileged(tmp_path):
    """Where a daemon that permissions stop runs, and how: permissions stop
    nothing for root (CI runs as root), so as root the daemon runs as
    nobody (setpriv), from a folder nobody owns holding copies of clipd and
    the model (the test's own folders are root's alone). Yields the folder
    (a library goes in it) and make_server's keywords."""
    if os.geteuid() != 0:
        yield str(tmp_path), {}
        return
    home = tempfile.mkdtemp(prefix="clipd-nobody-")
    try:
        shutil.copy2(CLIPD, os.path.join(home, "clipd"))
        shutil.copytree(MODEL, os.path.join(home, "model"))
        # what the daemon reads besides: the sanitizers' suppression files
        # (a sanitizer build's CI run), and a weights cache of its own
        env = {"CLIPD_WEIGHTS_CACHE": os.path.join(home, "cache")}
        for var in ("ASAN_OPTIONS", "LSAN_OPTIONS", "TSAN_OPTIONS", "UBSAN_OPTIONS"):
            opts = os.environ.get(var, "").split(":")
            for i, opt in enumerate(opts):
                if opt.startswith("suppressions="):
                    copy = os.path.join(home, var.lower() + ".supp")
                    shutil.copy2(opt.split("=", 1)[1], copy)
                    opts[i] = "suppressions=" + copy
            if var in os.environ:
                env[var] = ":".join(opts)
        os.makedirs(os.path.join(home, "run"))   # the port file's
        subprocess.run(["chown", "-R", "nobody:nogroup", home], check=True)
        yield home, {"home": os.path.join(home, "run"), "data_dir": os.path.join(home, "data"),
                     "binary": os.path.join(home, "clipd"), "model": os.path.join(home, "model"), "env": env,
                     "wrap": ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"]}
    finally:
        shutil.rmtree(home, ignore_errors=True)


def test_a_folder_without_search_permission_keeps_its_images(make_server, unprivileged):
    """A folder that can be listed but not searched (mode r--: readdir
    answers its names, stat refuses each) is a folder that could not be
    read: what it holds is kept, with its ids and metadata, not forgotten
    and then indexed again as new images when the permission is back."""
    home, kw = unprivileged
    root = os.path.join(home, "photos")
    for i in range(12):
        write(os.path.join(root, "a" if i < 6 else "b", "p%02d.png" % i), tiny("png", 100 + i, size=12))
    s = make_server("--library", root, "--library-settle", "0", "--library-rescan", "0", **kw).start()
    wait_scanned(s, "photos")
    before = by_path(s)
    os.chmod(os.path.join(root, "b"), 0o444)
    try:
        lib = rescan(s, "photos")
        assert lib["last_scan"]["removed"] == 0 and lib["images"] == 12, lib
        assert lib["dirs_unreadable"] == 1, lib
    finally:
        os.chmod(os.path.join(root, "b"), 0o755)
    lib = rescan(s, "photos")
    assert lib["last_scan"]["added"] == 0 and lib["unchanged"] == 12, lib
    assert {p: i["id"] for p, i in by_path(s).items()} == {p: i["id"] for p, i in before.items()}
    assert s.stop() == 0


def test_the_data_directory_below_the_root_is_not_walked(make_server, small_library):
    """clipd serve --data ~/Pictures/clipd --library ~/Pictures: the data
    directory's thumbnails and uploaded originals are not photos of the
    library (nor its catalog files failures), scan after scan."""
    root = small_library
    data = os.path.join(root, "clipd-data")
    s = make_server("--library", root, "--library-settle", "0", "--library-rescan", "0", data_dir=data).start()
    wait_scanned(s, "photos")
    r = s.request("POST", "/images", body=tiny("jpg", 31337, size=32), headers={"Content-Type": "image/jpeg"})
    assert r.status == 201, r
    for img in by_path(s).values():   # thumbnails land in the data directory
        assert s.get("/images/%d/thumbnail?size=128" % img["id"]).status == 200
    for _ in range(2):
        lib = rescan(s, "photos")
        assert lib["images"] == 12 and lib["files_seen"] == 12 and lib["failed"] == 0, lib
    assert not any(p.startswith("clipd-data/") for p in by_path(s))
    assert errors(s, "photos") == {}
    assert len(all_images(s)) == 13
    assert s.stop() == 0


def test_a_file_that_could_not_be_opened_is_tried_again(make_server, unprivileged):
    """A photo clipd may not open is listed as unreadable, and indexed at
    the next scan once its permission is fixed: chmod changes no mtime,
    so a failed open must not record the file as seen unchanged."""
    home, kw = unprivileged
    root = os.path.join(home, "photos")
    for i in range(3):
        write(os.path.join(root, "p%d.png" % i), tiny("png", 300 + i, size=12))
    locked = os.path.join(root, "p2.png")
    os.chmod(locked, 0)
    s = make_server("--library", root, "--library-settle", "0", "--library-rescan", "0", **kw).start()
    lib = wait_scanned(s, "photos")
    assert lib["images"] == 2, lib
    assert errors(s, "photos").get("p2.png", {}).get("code") == "unreadable", errors(s, "photos")
    lib = rescan(s, "photos")   # still locked: still listed, nothing else changes
    assert lib["images"] == 2 and errors(s, "photos")["p2.png"]["code"] == "unreadable", lib
    os.chmod(locked, 0o644)
    lib = rescan(s, "photos")
    assert lib["images"] == 3 and "p2.png" in by_path(s), lib
    assert "p2.png" not in errors(s, "photos")
    assert s.stop() == 0


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a disk needs root")
def test_a_disk_unmounted_below_the_root_keeps_its_images(make_server, small_library):
    """A disk mounted below the root (root/disk2) and then unmounted leaves
    an empty folder: its images are kept with their ids, as for a root
    that is an empty mount point, and found unchanged when the disk is
    back. A folder emptied on its own disk loses its images as before."""
    root = small_library
    disk = os.path.join(root, "disk2")
    os.makedirs(disk)
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", disk]).returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        for i in range(3):
            write(os.path.join(disk, "d%d.png" % i), tiny("png", 700 + i, size=12))
        s = make_server("--library", root, "--library-settle", "0", "--library-rescan", "0").start()
        lib = wait_scanned(s, "photos")
        assert lib["images"] == 15, lib
        before = {p: i["id"] for p, i in by_path(s).items()}
        subprocess.run(["umount", disk], check=True)
        lib = rescan(s, "photos")
        assert lib["images"] == 15 and lib["last_scan"]["removed"] == 0 and lib["dirs_unreadable"] == 1, lib
        assert {p: i["id"] for p, i in by_path(s).items()} == before
        for name in os.listdir(os.path.join(root, "a")):   # emptied on the root's own disk
            os.unlink(os.path.join(root, "a", name))
        lib = rescan(s, "photos")
        assert lib["images"] == 9 and lib["last_scan"]["removed"] == 6, lib
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", disk], check=True)
        for i in range(3):   # the disk back (a tmpfs is new each time: the same bytes)
            write(os.path.join(disk, "d%d.png" % i), tiny("png", 700 + i, size=12))
        lib = rescan(s, "photos")
        assert lib["images"] == 9 and lib["dirs_unreadable"] == 0, lib
        assert {p: i["id"] for p, i in by_path(s).items()} == {p: i for p, i in before.items()
                                                               if not p.startswith("a/")}
        assert s.stop() == 0
    finally:
        subprocess.run(["umount", disk], stderr=subprocess.DEVNULL)


def test_an_upload_of_a_library_photo_outlives_the_file(make_server, small_library):
    """Uploading the bytes of a photo a library already has answers 200
    duplicate with the library image; the upload's copy then becomes the
    image's original, so removing the file from the folder does not take
    the uploaded photo with it."""
    root = small_library
    s = make_server("--library", root, "--library-settle", "0", "--library-rescan", "0").start()
    wait_scanned(s, "photos")
    img = by_path(s)["a/p01.png"]
    with open(os.path.join(root, "a", "p01.png"), "rb") as f:
        data = f.read()
    r = s.upload(data)
    assert r.status == 200 and r.json()["duplicate"] and r.json()["id"] == img["id"], r
    os.unlink(os.path.join(root, "a", "p01.png"))
    lib = rescan(s, "photos")
    assert lib["images"] == 11, lib
    got = s.get("/images/%d" % img["id"])
    assert got.status == 200 and got.json()["sha256"] == img["sha256"], got
    assert not got.json().get("source"), got.json()
    f = s.get("/images/%d/file" % img["id"])
    assert f.status == 200 and f.body == data
    assert s.upload(data).json()["id"] == img["id"]   # its own copy now: a plain duplicate
    assert s.stop() == 0


def test_a_file_that_is_no_image_is_not_read_whole(make_server, small_library):
    """A phone's video among the photos is refused from its first bytes
    (unsupported_media_type, as an upload of it), not read whole first:
    the daemon's read bytes (/proc/PID/io) grow by far less than the file."""
    root = small_library
    video = os.path.join(root, "a", "clip.mp4")
    with open(video, "wb") as f:   # an MP4's ftyp box, then 24 MB of frames
        f.write(b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2")
        f.write(bytes(24 << 20))
    os.utime(video, (time.time() - 60, time.time() - 60))
    s = make_server("--library", root, "--library-settle", "0", "--library-rescan", "0",
                    "--max-body", str(64 << 20)).start()

    def read_bytes():
        with open("/proc/%d/io" % s.proc.pid) as f:
            return dict(line.split(": ") for line in f.read().splitlines())["rchar"]

    wait_scanned(s, "photos")
    os.utime(video, (time.time() - 30, time.time() - 30))   # changed: read again at the next scan
    before = int(read_bytes())
    lib = rescan(s, "photos")
    assert errors(s, "photos")["a/clip.mp4"]["code"] == "unsupported_media_type", errors(s, "photos")
    assert lib["images"] == 12, lib
    assert int(read_bytes()) - before < (4 << 20)
    assert s.stop() == 0
