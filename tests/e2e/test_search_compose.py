"""Combined and negative queries (the query vector is the weighted sum of
/embed's vectors, to 1e-6), POST /search, strict parameters, the statuses
of multipart uploads and on_duplicate=merge, repeated classify labels,
Content-Disposition on /file, near-duplicates."""

import json
import math
import struct
import urllib.parse
import zlib

import pytest

from helpers import fixture, check_response, make_png, multipart

CATALOGS = ("sqlite", "postgresql")   # the whole module against both catalogs (conftest.py)

NAMES = ["chelsea.png", "coffee.png", "horse.png", "astronaut.png", "camera.png", "rocket.jpg"]


@pytest.fixture(scope="module")
def stored(server):
    out = {}
    for name in NAMES:
        ctype = "image/jpeg" if name.endswith(".jpg") else "image/png"
        r = server.upload(fixture(name), content_type=ctype, query="?filename=" + name)
        assert r.status in (200, 201), r
        out[name] = r.json()["id"]
    return out


def embed_texts(server, texts):
    r = server.request("POST", "/embed", body=json.dumps({"texts": texts}).encode(),
                       headers={"Content-Type": "application/json"})
    assert r.status == 200, r
    return r.json()["embeddings"]


def embed_image(server, name):
    ctype = "image/jpeg" if name.endswith(".jpg") else "image/png"
    r = server.request("POST", "/embed", body=fixture(name), headers={"Content-Type": ctype})
    assert r.status == 200, r
    return r.json()["embedding"]


def combine(parts):
    dim = len(parts[0][1])
    v = [0.0] * dim
    for w, e in parts:
        for i in range(dim):
            v[i] += w * e[i]
    n = math.sqrt(sum(x * x for x in v))
    return [x / n for x in v]


def dot(a, b):
    return sum(x * y for x, y in zip(a, b))


def check_scores(server, results, qvec):
    vecs = {}
    for name in NAMES:
        vecs[name] = embed_image(server, name)
    by_id = {}
    for h in results:
        by_id[h["id"]] = h["score"]
    assert by_id, "no results"
    for h in results:
        name = h["filename"]
        assert abs(h["score"] - dot(qvec, vecs[name])) < 1e-6, (name, h["score"], dot(qvec, vecs[name]))


def test_combined_query_is_the_weighted_sum(server, doc, stored):
    red, blue, green = embed_texts(server, ["red", "a blue car", "green"])
    cat = embed_image(server, "chelsea.png")
    horse = embed_image(server, "horse.png")
    params = [("q", "2:red"), ("q", "a blue car"), ("image", "1.5:%d" % stored["chelsea.png"]),
              ("not", "green"), ("not_image", "0.5:%d" % stored["horse.png"]), ("k", "100")]
    r = server.get("/search?" + urllib.parse.urlencode(params))
    assert r.status == 200, r
    check_response(doc, "/search", "GET", r)
    qvec = combine([(2, red), (1, blue), (1.5, cat), (-1, green), (-0.5, horse)])
    check_scores(server, r.json()["results"], qvec)
    assert len(r.json()["results"]) == len(NAMES)
    comp = r.json()["composition"]
    assert comp["text"] == [{"q": "red", "weight": 2}, {"q": "a blue car", "weight": 1}]
    assert comp["images"] == [{"id": stored["chelsea.png"], "weight": 1.5}]
    assert comp["not"] == [{"q": "green", "weight": 1}, {"id": stored["horse.png"], "weight": 0.5}]
    assert comp["mode"] == "semantic"
    # The same composed in JSON, with the cat's vector given as an embedding.
    body = {"text": [{"q": "red", "weight": 2}, "a blue car"],
            "images": [{"embedding": [x * 3 for x in cat], "weight": 1.5}],
            "not": ["green", {"id": stored["horse.png"], "weight": 0.5}], "k": 100}
    r2 = server.request("POST", "/search", body=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    assert r2.status == 200, r2
    check_response(doc, "/search", "POST", r2)
    check_scores(server, r2.json()["results"], qvec)
    assert r2.json()["composition"]["images"] == [{"embedding": True, "weight": 1.5}]


def test_image_only_and_plain_queries(server, stored):
    cat = embed_image(server, "chelsea.png")
    r = server.get("/search?image=%d&k=100" % stored["chelsea.png"])
    assert r.status == 200 and r.json()["results"][0]["id"] == stored["chelsea.png"]
    check_scores(server, r.json()["results"], combine([(1, cat)]))
    # a plain q still answers with the text as "query"
    r = server.search("a cat")
    assert r.json()["query"] == "a cat" and r.json()["composition"]["text"] == [{"q": "a cat", "weight": 1}]


@pytest.mark.parametrize("query,code,start", [
    ("not=green", 400, "q:"),
    ("q=0:red", 400, "q:"),
    ("q=101:red", 400, "q:"),
    ("image=abc", 400, "image:"),
    ("image=999999", 404, "image: no image"),
    ("q=red&not=red", 400, "q: the composed query vector"),
    ("&".join("q=t%d" % i for i in range(17)), 400, "q: at most 16"),
])
def test_bad_compositions(server, stored, query, code, start):
    r = server.get("/search?" + query)
    assert r.status == code, r
    assert r.json()["error"]["message"].startswith(start), r


@pytest.mark.parametrize("body,start", [
    ({"text": ["x"], "offset": 3}, "body.offset"),
    ({"text": [{"q": "x", "id": 1}]}, "text[0]"),
    ({"images": [{"embedding": [1, 2]}]}, "images[0].embedding"),
    ({"images": [{"id": 1, "weight": "2"}]}, "images[0].weight"),
    ({"text": ["x"], "filters": {"a..b": 1}}, "filters.a..b"),
    ({"text": ["x"], "filters": {"a": {"b": 1}}}, "filters.a"),
    ({"text": ["x"], "k": 0}, "k:"),
    ({}, "q:"),
])
def test_bad_json_searches(server, stored, body, start):
    r = server.request("POST", "/search", body=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    assert r.status == 400, r
    assert r.json()["error"]["message"].startswith(start), r


def test_json_filters(server, stored):
    r = server.request("PATCH", "/images/%d" % stored["horse.png"], body=b'{"kind": ["animal", "big"], "legs": 4}',
                       headers={"Content-Type": "application/merge-patch+json"})
    assert r.status == 200
    body = {"text": ["x"], "k": 100, "filters": {"kind": ["animal", "vehicle"], "legs.gte": 3}}
    r = server.request("POST", "/search", body=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    assert [h["id"] for h in r.json()["results"]] == [stored["horse.png"]]
    body["filters"]["legs.gte"] = 5
    r = server.request("POST", "/search", body=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    assert r.json()["results"] == []


@pytest.mark.parametrize("path,param", [
    ("/images?offset=20", "offset"),
    ("/search?q=x&offset=20", "offset"),
    ("/images/1?fields=id", "fields"),
    ("/images/1/file?filter.a=b", "filter.a"),
    ("/healthz?verbose=1", "verbose"),
    ("/images/1/thumbnail?size=128&k=3", "k"),
    ("/duplicates?k=3", "k"),
])
def test_unknown_parameters_are_named(server, stored, path, param):
    r = server.get(path)
    assert r.status == 400 and r.error_code() == "bad_parameter", r
    assert r.json()["error"]["message"].startswith(param + ": unknown parameter"), r


def test_multipart_statuses(server, stored):
    a, b = make_png(12, 12, seed=901), make_png(12, 12, seed=902)

    def post(parts, query=""):
        body, ctype = multipart(parts)
        return server.request("POST", "/images" + query, body=body, headers={"Content-Type": ctype})
    r = post([("file", "a.png", "image/png", a), ("file", "b.png", "image/png", b)])
    assert r.status == 201 and [i["status"] for i in r.json()["items"]] == [201, 201]
    r = post([("file", "a.png", "image/png", a), ("file", "c.png", "image/png", make_png(12, 12, seed=903))])
    assert r.status == 200 and [i["status"] for i in r.json()["items"]] == [200, 201]
    r = post([("file", "a.png", "image/png", a), ("file", "t.txt", "text/plain", b"hi")])
    assert r.status == 207 and [i["status"] for i in r.json()["items"]] == [200, 415]
    # all failed: their shared error, the items still listed
    r = post([("file", "t.txt", "text/plain", b"hi"), ("file", "u.txt", "text/plain", b"ho")])
    assert r.status == 415 and r.json()["error"]["code"] == "unsupported_media_type"
    assert [i["status"] for i in r.json()["items"]] == [415, 415]
    # different errors: bad_parameter
    r = post([("file", "t.txt", "text/plain", b"hi"), ("file", "x.jpg", "image/jpeg", fixture("bad_truncated.jpg"))])
    assert r.status == 400 and r.json()["error"]["code"] == "bad_parameter"
    assert [i["status"] for i in r.json()["items"]] == [415, 422]


def test_duplicate_metadata_merge(server, stored):
    data = make_png(10, 10, seed=777)
    first = server.upload(data, query="?metadata=" + urllib.parse.quote('{"album": "A", "n": 1}'))
    assert first.status == 201 and first.json()["metadata_applied"] is True
    again = server.upload(data, query="?metadata=" + urllib.parse.quote('{"album": "B"}'))
    assert again.status == 200 and again.json()["duplicate"] is True
    assert again.json()["metadata_applied"] is False and again.json()["metadata"] == {"album": "A", "n": 1}
    merged = server.upload(data, query="?on_duplicate=merge&metadata=" + urllib.parse.quote('{"album": "B", "n": null}'))
    assert merged.status == 200 and merged.json()["metadata_applied"] is True
    assert merged.json()["metadata"] == {"album": "B"}
    assert server.get("/images/%d" % first.json()["id"]).json()["metadata"] == {"album": "B"}
    # without metadata there is nothing to apply: no field
    plain = server.upload(data)
    assert plain.status == 200 and "metadata_applied" not in plain.json()
    assert server.upload(data, query="?on_duplicate=replace").status == 400


def test_classify_repeated_labels(server, stored):
    body, ctype = multipart([("image_id", None, None, str(stored["chelsea.png"]).encode()),
                             ("labels", None, None, b"cat"), ("labels", None, None, b"dog"),
                             ("labels", None, None, b"a [bracket] label")])
    r = server.request("POST", "/classify", body=body, headers={"Content-Type": ctype})
    assert r.status == 200, r
    assert sorted(x["label"] for x in r.json()["labels"]) == ["a [bracket] label", "cat", "dog"]
    # one part holding a JSON array still works
    body, ctype = multipart([("image_id", None, None, str(stored["chelsea.png"]).encode()),
                             ("labels", None, None, b'["cat", "dog"]')])
    r = server.request("POST", "/classify", body=body, headers={"Content-Type": ctype})
    assert sorted(x["label"] for x in r.json()["labels"]) == ["cat", "dog"]


def test_content_disposition(server, stored):
    r = server.get("/images/%d/file" % stored["chelsea.png"])
    assert r.headers["content-disposition"] == "inline; filename*=UTF-8''chelsea.png"
    name = "../Sommer in Köln/été 100%.png"
    r = server.upload(make_png(7, 7, seed=55), query="?filename=" + urllib.parse.quote(name))
    r = server.get("/images/%d/file" % r.json()["id"])
    assert r.headers["content-disposition"] == "inline; filename*=UTF-8''%C3%A9t%C3%A9%20100%25.png"
    unnamed = server.upload(make_png(7, 7, seed=56)).json()["id"]
    r = server.get("/images/%d/file" % unnamed)
    assert r.headers["content-disposition"] == "inline; filename*=UTF-8''image-%d.png" % unnamed


def test_near_duplicates(make_server):
    s = make_server().start()
    base = make_png(32, 32, seed=4242)
    ids = {}
    for name, data in [("base", base), ("coffee", fixture("coffee.png")), ("other", make_png(32, 32, seed=99))]:
        ids[name] = s.upload(data, query="?filename=" + name).json()["id"]
    # a nearly identical image: the base's pixels with one value off by one,
    # compressed at another level (other bytes, nearly the same vector)
    sig = b"\x89PNG\r\n\x1a\n"
    pos, chunks = len(sig), []
    while pos < len(base):
        n = struct.unpack(">I", base[pos:pos + 4])[0]
        chunks.append((base[pos + 4:pos + 8], base[pos + 8:pos + 8 + n]))
        pos += 12 + n
    rows = bytearray(zlib.decompress(b"".join(d for t, d in chunks if t == b"IDAT")))
    rows[5] ^= 1   # one channel of one pixel, off by one
    def chunk(tag, payload):
        return struct.pack(">I", len(payload)) + tag + payload + struct.pack(">I", zlib.crc32(tag + payload) & 0xFFFFFFFF)
    twin = sig + chunk(b"IHDR", chunks[0][1]) + chunk(b"IDAT", zlib.compress(bytes(rows), 9)) + chunk(b"IEND", b"")
    ids["twin"] = s.upload(twin, query="?filename=twin").json()["id"]
    r = s.get("/images/%d/duplicates?min_score=0.999" % ids["base"])
    assert r.status == 200, r
    assert [h["id"] for h in r.json()["results"]] == [ids["twin"]]
    assert r.json()["results"][0]["score"] >= 0.999
    r = s.get("/duplicates?min_score=0.999")
    groups = r.json()["groups"]
    assert [[h["id"] for h in g["images"]] for g in groups] == [[ids["base"], ids["twin"]]]
    assert groups[0]["images"][0]["score"] == pytest.approx(1, abs=1e-6)
    assert r.json()["next_cursor"] is None
    # the threshold decides: at -1 everything is one group, paged by one
    r = s.get("/duplicates?min_score=-1&limit=1")
    assert len(r.json()["groups"]) == 1 and len(r.json()["groups"][0]["images"]) == 4
    r2 = s.get("/duplicates?min_score=-1&limit=1&cursor=" + r.json()["next_cursor"])
    assert r2.json()["groups"] == [] and r2.json()["next_cursor"] is None
    assert s.get("/duplicates?min_score=2").status == 400
