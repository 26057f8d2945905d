"""Every endpoint's success path, with each response checked against the
schema openapi.json gives for it."""

import json
import urllib.parse

import pytest

from helpers import (check_response, fixture, load_openapi, make_png, multipart, sha256)

CATALOGS = ("sqlite", "postgresql")   # the whole module against both catalogs (conftest.py)


@pytest.fixture(scope="module")
def doc(server):
    return load_openapi(server)


@pytest.fixture(scope="module")
def stored(server):
    """A few fixture images uploaded once: name -> image object."""
    out = {}
    for name in ["astronaut.png", "chelsea.png", "coffee.png", "horse.png", "rocket.jpg", "small_50x40.bmp"]:
        r = server.upload(fixture(name), query="?filename=" + name + "&metadata="
                          + urllib.parse.quote(json.dumps({"name": name, "n": len(out), "lossless": not name.endswith(".jpg")})))
        assert r.status == 201, r
        out[name] = r.json()
    return out


def test_health(server, doc):
    r = server.get("/healthz")
    assert r.status == 200 and r.json() == {"status": "ok"}
    check_response(doc, "/healthz", "GET", r)
    r = server.get("/readyz")
    assert r.status == 200 and r.json()["status"] == "ready", r
    assert r.json()["applied_seq"] == r.json()["latest_seq"] and r.json()["lag_s"] == 0, r
    check_response(doc, "/readyz", "GET", r)
    assert server.request("HEAD", "/healthz").status == 200


def test_upload_raw(server, doc, stored):
    data = fixture("astronaut.png")
    img = stored["astronaut.png"]
    assert img["sha256"] == sha256(data)
    assert img["mime"] == "image/png" and img["width"] == 512 and img["height"] == 512
    assert img["bytes"] == len(data) and img["filename"] == "astronaut.png"
    assert img["metadata"] == {"name": "astronaut.png", "n": 0, "lossless": True}
    assert img["duplicate"] is False
    assert img["links"] == {"file": "/images/%d/file" % img["id"], "thumbnail": "/images/%d/thumbnail" % img["id"]}
    assert img["created_at"].endswith("Z")
    # The same bytes again: 200, the existing object, duplicate.
    r = server.upload(data, content_type="application/octet-stream", query="?filename=other.png")
    assert r.status == 200, r
    check_response(doc, "/images", "POST", r)
    again = r.json()
    assert again["duplicate"] is True and again["id"] == img["id"] and again["filename"] == "astronaut.png"
    # The type comes from the bytes, not the header.
    r = server.upload(fixture("rocket.jpg"), content_type="image/png")
    assert r.status == 200 and r.json()["mime"] == "image/jpeg"
    fresh = server.upload(make_png(40, 30, seed=11), content_type="image/gif")
    assert fresh.status == 201 and fresh.json()["mime"] == "image/png"
    assert fresh.headers["location"] == "/images/%d" % fresh.json()["id"]
    check_response(doc, "/images", "POST", fresh)
    assert fresh.json()["filename"] is None and fresh.json()["metadata"] == {}


def test_upload_multipart(server, doc, stored):
    a, b = make_png(20, 20, seed=101), make_png(21, 20, seed=102)
    body, ctype = multipart([
        ("metadata", None, "application/json", b'{"batch": "mp", "tags": ["x"]}'),
        ("file", "a.png", "image/png", a),
        ("file", "b.png", "image/png", b),
        ("file", "dup.png", "image/png", fixture("chelsea.png")),
        ("file", "bad.jpg", "image/jpeg", fixture("bad_truncated.jpg")),
        ("file", "text.txt", "text/plain", b"hello"),
    ])
    r = server.request("POST", "/images", body=body, headers={"Content-Type": ctype})
    # Some stored, some failed: 207 Multi-Status.
    assert r.status == 207, r
    check_response(doc, "/images", "POST", r)
    items = r.json()["items"]
    assert [i["status"] for i in items] == [201, 201, 200, 422, 415]
    assert items[0]["metadata_applied"] is True and items[2]["metadata_applied"] is False
    assert items[0]["filename"] == "a.png" and items[0]["sha256"] == sha256(a)
    assert items[0]["metadata"] == {"batch": "mp", "tags": ["x"]}
    assert items[2]["duplicate"] is True and items[2]["id"] == stored["chelsea.png"]["id"]
    assert items[3]["error"]["code"] == "image_undecodable" and items[3]["filename"] == "bad.jpg"
    assert items[4]["error"]["code"] == "unsupported_media_type"
    # Each success is really there.
    assert server.get("/images/%d" % items[1]["id"]).json()["sha256"] == sha256(b)


def test_get_list_and_pages(server, doc, stored):
    for name, img in stored.items():
        r = server.get("/images/%d" % img["id"])
        assert r.status == 200
        check_response(doc, "/images/{id}", "GET", r)
        got = r.json()
        expect = dict(img)
        del expect["duplicate"]
        expect.pop("metadata_applied", None)
        assert got == expect
    r = server.get("/images?limit=2")
    check_response(doc, "/images", "GET", r)
    seen = []
    page = r.json()
    while True:
        ids = [i["id"] for i in page["items"]]
        assert ids == sorted(ids, reverse=True)
        seen += ids
        if page["next_cursor"] is None:
            break
        # An insert between pages must not disturb the walk.
        server.upload(make_png(8, 8, seed=len(seen) + 5000))
        page = server.get("/images?limit=2&cursor=" + page["next_cursor"]).json()
    assert len(seen) == len(set(seen))
    assert seen == sorted(seen, reverse=True)
    for img in stored.values():
        assert img["id"] in seen


def test_file_and_etag(server, doc, stored):
    img = stored["rocket.jpg"]
    r = server.get("/images/%d/file" % img["id"])
    assert r.status == 200 and r.body == fixture("rocket.jpg")
    assert r.headers["content-type"] == "image/jpeg"
    assert r.headers["etag"] == '"%s"' % img["sha256"]
    assert r.headers["x-content-type-options"] == "nosniff"
    check_response(doc, "/images/{id}/file", "GET", r)
    r = server.get("/images/%d/file" % img["id"], headers={"If-None-Match": '"%s"' % img["sha256"]})
    assert r.status == 304 and r.body == b""


def jpeg_size(data):
    """(width, height) from a baseline JPEG's SOF0."""
    i = 2
    while i < len(data):
        assert data[i] == 0xFF
        marker = data[i + 1]
        seglen = int.from_bytes(data[i + 2:i + 4], "big")
        if marker in (0xC0, 0xC1, 0xC2):
            return int.from_bytes(data[i + 7:i + 9], "big"), int.from_bytes(data[i + 5:i + 7], "big")
        i += 2 + seglen
    raise AssertionError("no SOF")


def test_thumbnails(server, doc, stored):
    img = stored["chelsea.png"]   # 451 x 300
    for size, want in [(128, (128, 85)), (256, (256, 170)), (512, (451, 300))]:
        r = server.get("/images/%d/thumbnail?size=%d" % (img["id"], size))
        assert r.status == 200, r
        assert r.headers["content-type"] == "image/jpeg"
        assert r.body[:2] == b"\xff\xd8"
        assert jpeg_size(r.body) == want
        check_response(doc, "/images/{id}/thumbnail", "GET", r)
        # Cached: the same bytes, and 304 with the ETag.
        again = server.get("/images/%d/thumbnail?size=%d" % (img["id"], size))
        assert again.body == r.body and again.headers["etag"] == r.headers["etag"]
        assert server.get("/images/%d/thumbnail?size=%d" % (img["id"], size),
                          headers={"If-None-Match": r.headers["etag"]}).status == 304
    default = server.get("/images/%d/thumbnail" % img["id"])
    assert jpeg_size(default.body) == (256, 170)
    tall = stored["small_50x40.bmp"]
    assert jpeg_size(server.get("/images/%d/thumbnail?size=128" % tall["id"]).body) == (50, 40)


def test_patch_metadata(server, doc, stored):
    img = stored["coffee.png"]
    r = server.request("PATCH", "/images/%d" % img["id"],
                       body=json.dumps({"n": None, "rating": 5, "name": "cup", "deep": {"a": {"b": 1}}}),
                       headers={"Content-Type": "application/merge-patch+json"})
    assert r.status == 200, r
    check_response(doc, "/images/{id}", "PATCH", r)
    assert r.json()["metadata"] == {"name": "cup", "lossless": True, "rating": 5, "deep": {"a": {"b": 1}}}
    r = server.request("PATCH", "/images/%d" % img["id"], body=b'{"deep": {"a": null}}',
                       headers={"Content-Type": "application/json"})
    assert r.json()["metadata"]["deep"] == {}
    assert server.get("/images/%d" % img["id"]).json()["metadata"]["rating"] == 5


def test_search(server, doc, stored):
    r = server.search("a photo of a cat", k=3)
    assert r.status == 200, r
    check_response(doc, "/search", "GET", r)
    body = r.json()
    assert body["query"] == "a photo of a cat" and body["k"] == 3
    assert body["exhaustive"] is True and body["took_ms"] >= 0
    assert body["model"]["name"] == "tiny-clip-hf" and len(body["model"]["fingerprint"]) == 64
    scores = [x["score"] for x in body["results"]]
    assert len(scores) == 3 and scores == sorted(scores, reverse=True)
    # Filters on metadata (string, number, boolean), min_score, time range.
    r = server.search("anything", k=50, **{"filter.lossless": "false"})
    assert [x["id"] for x in r.json()["results"]] == [stored["rocket.jpg"]["id"]]
    r = server.search("anything", k=50, **{"filter.name": "horse.png", "filter.n": "3"})
    assert [x["id"] for x in r.json()["results"]] == [stored["horse.png"]["id"]]
    all_scores = [x["score"] for x in server.search("anything", k=100).json()["results"]]
    cut = sorted(all_scores)[len(all_scores) // 2]
    r = server.search("anything", k=100, min_score=cut)
    assert all(x["score"] >= cut - 1e-6 for x in r.json()["results"])
    assert len(r.json()["results"]) < len(all_scores)
    created = stored["horse.png"]["created_at"]
    after = server.search("x", k=100, after=created).json()["results"]
    assert all(x["created_at"] > created for x in after)
    assert stored["rocket.jpg"]["id"] in [x["id"] for x in after]
    before = server.search("x", k=100, before=created).json()["results"]
    assert all(x["created_at"] < created for x in before)
    assert stored["astronaut.png"]["id"] in [x["id"] for x in before]
    # Unicode and the cache: the same query twice, the same answer.
    a = server.search("café ☕ 日本語", k=5).json()
    b = server.search("café ☕ 日本語", k=5).json()
    assert a["query"] == "café ☕ 日本語"
    assert [(x["id"], x["score"]) for x in a["results"]] == [(x["id"], x["score"]) for x in b["results"]]


def test_similar(server, doc, stored):
    img = stored["horse.png"]
    r = server.get("/images/%d/similar?k=3" % img["id"])
    assert r.status == 200, r
    check_response(doc, "/images/{id}/similar", "GET", r)
    body = r.json()
    assert body["query"] == {"image_id": img["id"]}
    ids = [x["id"] for x in body["results"]]
    assert img["id"] not in ids and len(ids) == 3


def test_search_image(server, doc, stored):
    r = server.request("POST", "/search/image?k=1", body=fixture("horse.png"), headers={"Content-Type": "image/png"})
    assert r.status == 200, r
    check_response(doc, "/search/image", "POST", r)
    best = r.json()["results"][0]
    assert best["id"] == stored["horse.png"]["id"] and best["score"] > 0.999
    assert r.json()["query"]["image"]["width"] == 400
    body, ctype = multipart([("file", "h.png", "image/png", fixture("horse.png"))])
    r = server.request("POST", "/search/image?k=1", body=body, headers={"Content-Type": ctype})
    assert r.json()["results"][0]["id"] == stored["horse.png"]["id"]
    # Nothing was stored.
    total = len(server.search("x", k=1000).json()["results"])
    server.request("POST", "/search/image", body=make_png(9, 9, seed=77), headers={"Content-Type": "image/png"})
    assert len(server.search("x", k=1000).json()["results"]) == total


def test_classify(server, doc, stored):
    labels = ["astronaut", "cat", "cup of coffee", "horse"]
    r = server.request("POST", "/classify", body=json.dumps({"image_id": stored["horse.png"]["id"], "labels": labels}),
                       headers={"Content-Type": "application/json"})
    assert r.status == 200, r
    check_response(doc, "/classify", "POST", r)
    out = r.json()
    assert sorted(x["label"] for x in out["labels"]) == sorted(labels)
    scores = [x["score"] for x in out["labels"]]
    assert scores == sorted(scores, reverse=True) and abs(sum(scores) - 1) < 1e-6
    assert out["template"] == "a photo of a {}."
    # The scores are softmax(logit_scale x cosine).
    import math
    scale = server.get("/info").json()["model"]["logit_scale"]
    e = [math.exp(scale * x["cosine"]) for x in out["labels"]]
    for x, ei in zip(out["labels"], e):
        assert abs(x["score"] - ei / sum(e)) < 1e-5
    # Multipart with a file and a template; the same image gives the same cosines.
    body, ctype = multipart([("file", "h.png", "image/png", fixture("horse.png")),
                             ("labels", None, None, json.dumps(labels).encode()),
                             ("template", None, None, b"a photo of a {}.")])
    r2 = server.request("POST", "/classify", body=body, headers={"Content-Type": ctype})
    assert r2.status == 200, r2
    c1 = {x["label"]: x["cosine"] for x in out["labels"]}
    c2 = {x["label"]: x["cosine"] for x in r2.json()["labels"]}
    for k in labels:
        assert abs(c1[k] - c2[k]) < 1e-4
    r3 = server.request("POST", "/classify", body=json.dumps({"image_id": stored["horse.png"]["id"], "labels": ["x", "y"],
                                                             "template": "{}"}), headers={"Content-Type": "application/json"})
    assert r3.status == 200 and r3.json()["template"] == "{}"


def test_embed(server, doc):
    r = server.request("POST", "/embed", body=json.dumps({"texts": ["a red bicycle", "", "a dog"]}),
                       headers={"Content-Type": "application/json"})
    assert r.status == 200, r
    check_response(doc, "/embed", "POST", r)
    embs = r.json()["embeddings"]
    assert len(embs) == 3 and all(len(v) == r.json()["model"]["dim"] for v in embs)
    for v in embs:
        assert abs(sum(x * x for x in v) - 1) < 1e-4
    r = server.request("POST", "/embed", body=fixture("coffee.png"), headers={"Content-Type": "image/png"})
    assert r.status == 200, r
    check_response(doc, "/embed", "POST", r)
    v = r.json()["embedding"]
    assert abs(sum(x * x for x in v) - 1) < 1e-4


def test_delete(server, doc):
    data = make_png(30, 30, seed=4242)
    img = server.upload(data).json()
    r = server.request("DELETE", "/images/%d" % img["id"])
    assert r.status == 204 and r.body == b""
    check_response(doc, "/images/{id}", "DELETE", r)
    assert server.get("/images/%d" % img["id"]).status == 404
    assert server.get("/images/%d/file" % img["id"]).status == 404
    assert img["id"] not in [x["id"] for x in server.search("x", k=1000).json()["results"]]
    assert server.request("DELETE", "/images/%d" % img["id"]).status == 404
    # The same bytes come back as a new image with a new id (ids are never reused).
    again = server.upload(data)
    assert again.status == 201 and again.json()["id"] > img["id"]


def test_info_and_metrics(server, doc, stored):
    r = server.get("/info")
    assert r.status == 200
    check_response(doc, "/info", "GET", r)
    info = r.json()
    assert info["version"] and info["model"]["dim"] == 48 and info["images"] >= len(stored)
    assert info["index"]["type"] == "Flat" and info["index"]["vectors"] == info["images"]
    assert info["limits"]["max_body"] == 32 << 20 and info["limits"]["max_k"] == 1000
    assert info["warning"] is None
    r = server.get("/metrics")
    assert r.status == 200 and r.headers["content-type"].startswith("text/plain")
    check_response(doc, "/metrics", "GET", r)
    text = r.body.decode()
    assert 'clipd_http_requests_total{route="search",status="200"}' in text
    assert 'clipd_http_request_duration_seconds_bucket{route="images_create",le="+Inf"}' in text
    assert "clipd_images %d" % info["images"] in text
    assert 'clipd_encoder_batch_size_count{path="image"}' in text
    assert 'clipd_queue_depth{queue="image"}' in text
    assert "clipd_index_vectors" in text


def test_web_page(server):
    r = server.get("/")
    assert r.status == 200 and r.headers["content-type"].startswith("text/html")
    csp = r.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src 'self'" in csp and "http" not in csp
    assert r.headers["x-content-type-options"] == "nosniff"
    etag = r.headers["etag"]
    assert server.get("/", headers={"If-None-Match": etag}).status == 304
    assert server.get("/index.html").body == r.body
    # Every asset the page names is served with its type.
    import re
    for name in re.findall(r'(?:href|src)="([\w.-]+\.(?:js|css|svg|png|ico))"', r.body.decode()):
        a = server.get("/" + name)
        assert a.status == 200, name
        ext = name.rsplit(".", 1)[1]
        want = {"js": "text/javascript", "css": "text/css", "svg": "image/svg+xml", "png": "image/png",
                "ico": "image/x-icon"}[ext]
        assert a.headers["content-type"].startswith(want)
        assert "etag" in a.headers and "content-security-policy" in a.headers
    assert server.get("/no-such-file.js").status == 404
    assert server.get("/../etc/passwd").status == 404
