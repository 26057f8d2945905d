"""Every error path: the right status, the documented code, the shape
{"error": {"code", "message"}}, nosniff, and nothing half-done behind."""

import json

import pytest

from helpers import (check_response, fixture, load_openapi, make_png, multipart, parse_raw_response, raw_request)

CATALOGS = ("sqlite", "postgresql")   # the whole module against both catalogs (conftest.py)


@pytest.fixture(scope="module")
def doc(server):
    return load_openapi(server)


def expect_error(r, status, code, doc=None, template=None, method=None):
    assert r.status == status, r
    assert r.headers["content-type"] == "application/json"
    assert r.headers["x-content-type-options"] == "nosniff"
    body = r.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}
    assert body["error"]["code"] == code, body
    assert body["error"]["message"]
    if doc is not None:
        check_response(doc, template, method, r)
    return body["error"]["message"]


def count(server):
    return server.get("/info").json()["images"]


@pytest.mark.parametrize("name,status,code", [
    ("bad_100mp_10000x10000.png", 413, "image_too_large"),
    ("bad_bomb_60000x60000.png", 413, "image_too_large"),
    ("bad_empty.png", 422, "image_undecodable"),
    ("bad_headerless_tga.bin", 415, "unsupported_media_type"),
    ("bad_not_an_image.jpg", 415, "unsupported_media_type"),
    ("bad_truncated.jpg", 422, "image_undecodable"),
])
def test_bad_images(server, doc, name, status, code):
    before = count(server)
    for path in ["/images", "/search/image", "/embed"]:
        r = server.request("POST", path, body=fixture(name), headers={"Content-Type": "image/jpeg"})
        expect_error(r, status, code, doc, path, "POST")
    body, ctype = multipart([("file", name, None, fixture(name)),
                             ("labels", None, None, b'["a", "b"]')])
    expect_error(server.request("POST", "/classify", body=body, headers={"Content-Type": ctype}), status, code)
    assert count(server) == before


def test_broken_webp_and_heic_are_undecodable(server):
    # WebP and HEIC are accepted types: a header cut short is a 422 with the decoder's reason
    webp = b"RIFF\x24\x00\x00\x00WEBPVP8 \x18\x00\x00\x00" + b"\0" * 24
    msg = expect_error(server.upload(webp, content_type="image/webp"), 422, "image_undecodable")
    assert "WebP" in msg
    heic = b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + b"\0" * 32
    msg = expect_error(server.upload(heic, content_type="image/heic"), 422, "image_undecodable")
    assert "HEIC" in msg
    # a format still refused is named, with the accepted list
    msg = expect_error(server.upload(b"\xff\x0a\xfa\x7f\x01\x90" + b"\0" * 32, content_type="image/jxl"),
                       415, "unsupported_media_type")
    assert "JPEG XL" in msg and "WebP" in msg and "HEIC" in msg


def test_wrong_content_type(server, doc):
    expect_error(server.upload(fixture("horse.png"), content_type="text/plain"), 415, "unsupported_media_type", doc,
                 "/images", "POST")
    expect_error(server.upload(b"a=b", content_type="application/x-www-form-urlencoded"), 415, "unsupported_media_type")
    expect_error(server.request("POST", "/classify", body=b'{"image_id": 1, "labels": ["a"]}',
                                headers={"Content-Type": "text/plain"}), 415, "unsupported_media_type")
    expect_error(server.request("PATCH", "/images/1", body=b'{}', headers={"Content-Type": "text/plain"}),
                 415, "unsupported_media_type")


def test_malformed_multipart(server):
    expect_error(server.request("POST", "/images", body=b"--x\r\n", headers={"Content-Type": "multipart/form-data"}),
                 400, "bad_parameter")
    expect_error(server.request("POST", "/images", body=b"garbage without parts",
                                headers={"Content-Type": "multipart/form-data; boundary=abc"}), 400, "bad_parameter")
    body, ctype = multipart([("metadata", None, None, b'{"a": 1}')])
    msg = expect_error(server.request("POST", "/images", body=body, headers={"Content-Type": ctype}), 400, "bad_parameter")
    assert "file" in msg
    body, ctype = multipart([("file", "x.png", None, make_png(5, 5, seed=1)), ("metadata", None, None, b"[1, 2]")])
    msg = expect_error(server.request("POST", "/images", body=body, headers={"Content-Type": ctype}), 400, "bad_parameter")
    assert "metadata" in msg


def test_bad_metadata_parameter(server, doc):
    before = count(server)
    for bad in ["not json", "[1]", "\"s\"", "{\"a\": }"]:
        import urllib.parse
        msg = expect_error(server.upload(make_png(6, 6, seed=2), query="?metadata=" + urllib.parse.quote(bad)),
                           400, "bad_parameter", doc, "/images", "POST")
        assert "metadata" in msg
    assert count(server) == before


@pytest.mark.parametrize("k", ["0", "1001", "-1", "abc", "1.5", "", "10x"])
def test_bad_k(server, doc, k):
    msg = expect_error(server.get("/search?q=cat&k=" + k), 400, "bad_parameter", doc, "/search", "GET")
    assert msg.startswith("k:")
    expect_error(server.get("/images/1/similar?k=" + k), 400, "bad_parameter")


def test_bad_search_parameters(server, doc):
    msg = expect_error(server.get("/search"), 400, "bad_parameter", doc, "/search", "GET")
    assert msg.startswith("q:")
    assert expect_error(server.get("/search?q="), 400, "bad_parameter").startswith("q:")
    assert expect_error(server.get("/search?q=a&min_score=2"), 400, "bad_parameter").startswith("min_score")
    assert expect_error(server.get("/search?q=a&min_score=nan"), 400, "bad_parameter").startswith("min_score")
    assert expect_error(server.get("/search?q=a&after=yesterday"), 400, "bad_parameter").startswith("after")
    assert expect_error(server.get("/search?q=a&before=2024-02-30T00:00:00Z"), 400, "bad_parameter").startswith("before")
    assert expect_error(server.get("/search?q=a&filter.=x"), 400, "bad_parameter").startswith("filter")
    many = "&".join("filter.k%d=v" % i for i in range(33))
    assert expect_error(server.get("/search?q=a&" + many), 400, "bad_parameter").startswith("filter")
    assert expect_error(server.get("/images?limit=0"), 400, "bad_parameter").startswith("limit")
    assert expect_error(server.get("/images?cursor=abc"), 400, "bad_parameter").startswith("cursor")
    assert expect_error(server.get("/images/1/thumbnail?size=100"), 400, "bad_parameter").startswith("size")


def test_not_found(server, doc):
    expect_error(server.get("/images/999999"), 404, "not_found", doc, "/images/{id}", "GET")
    expect_error(server.get("/images/999999/file"), 404, "not_found", doc, "/images/{id}/file", "GET")
    expect_error(server.get("/images/999999/thumbnail"), 404, "not_found")
    expect_error(server.get("/images/999999/similar"), 404, "not_found", doc, "/images/{id}/similar", "GET")
    expect_error(server.request("DELETE", "/images/999999"), 404, "not_found", doc, "/images/{id}", "DELETE")
    expect_error(server.request("PATCH", "/images/999999", body=b'{"a": 1}',
                                headers={"Content-Type": "application/json"}), 404, "not_found")
    expect_error(server.request("POST", "/classify", body=b'{"image_id": 999999, "labels": ["a"]}',
                                headers={"Content-Type": "application/json"}), 404, "not_found")


def test_unknown_route(server):
    for path in ["/nope", "/images/abc", "/images/0", "/images/1/nope", "/search/", "/images/", "/api/v1/images"]:
        expect_error(server.get(path), 404, "not_found")


def test_wrong_method(server):
    for method, path, allow in [("PUT", "/images/1", "GET, HEAD, PATCH, DELETE, OPTIONS"),
                                ("DELETE", "/images", "POST, GET, HEAD, OPTIONS"),
                                ("PUT", "/search", "GET, HEAD, POST, OPTIONS"),
                                ("POST", "/duplicates", "GET, HEAD, OPTIONS"),
                                ("GET", "/classify", "POST, OPTIONS"),
                                ("POST", "/healthz", "GET, HEAD, OPTIONS"),
                                ("DELETE", "/", "GET, HEAD, OPTIONS")]:
        r = server.request(method, path)
        expect_error(r, 405, "method_not_allowed")
        assert r.headers["allow"] == allow


def test_body_too_large_with_content_length(make_server):
    s = make_server("--max-body", "64K").start()
    before = count(s)
    # Announced: refused at the headers, the connection closed.
    raw = raw_request(s.port, b"POST /images HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\n"
                                b"Content-Length: 100000\r\n\r\n" + b"\0" * 1000)
    r = parse_raw_response(raw)
    assert r.status == 413 and json.loads(r.body)["error"]["code"] == "body_too_large"
    assert r.headers["connection"].lower() == "close"
    # Through http.client as well, with a real image over the cap.
    expect_error(s.upload(make_png(200, 200, seed=3)), 413, "body_too_large")
    assert count(s) == before


def test_body_too_large_chunked(make_server):
    s = make_server("--max-body", "64K").start()
    before = count(s)
    chunk = b"\0" * 16384
    body = b"".join(b"%x\r\n" % len(chunk) + chunk + b"\r\n" for _ in range(8)) + b"0\r\n\r\n"
    raw = raw_request(s.port, b"POST /images HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\n"
                                b"Transfer-Encoding: chunked\r\n\r\n" + body)
    r = parse_raw_response(raw)
    assert r.status == 413 and json.loads(r.body)["error"]["code"] == "body_too_large"
    # Under the cap, chunked works.
    small = make_png(20, 20, seed=9)
    ok = b"%x\r\n" % len(small) + small + b"\r\n0\r\n\r\n"
    raw = raw_request(s.port, b"POST /images HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\nConnection: close\r\n"
                                b"Transfer-Encoding: chunked\r\n\r\n" + ok)
    assert parse_raw_response(raw).status == 201
    assert count(s) == before + 1
    # The daemon is fine afterwards.
    assert s.get("/healthz").status == 200


def test_bad_json_bodies(server):
    for body in [b"", b"not json", b"[]", b'{"labels": "x", "image_id": 1}', b'{"labels": [], "image_id": 1}',
                 b'{"labels": [1, 2], "image_id": 1}', b'{"labels": ["a"]}', b'{"labels": ["a"], "image_id": "x"}',
                 b'{"labels": ["a"], "image_id": 1, "template": "no hole"}', b'{"labels": [""], "image_id": 1}']:
        expect_error(server.request("POST", "/classify", body=body, headers={"Content-Type": "application/json"}),
                     400, "bad_parameter")
    for body in [b"{}", b'{"texts": []}', b'{"texts": "a"}', b'{"texts": [1]}', b"[1]"]:
        expect_error(server.request("POST", "/embed", body=body, headers={"Content-Type": "application/json"}),
                     400, "bad_parameter")
    img = server.upload(make_png(7, 7, seed=31)).json()
    for body in [b"", b"[1]", b"nope", b'"s"']:
        expect_error(server.request("PATCH", "/images/%d" % img["id"], body=body,
                                    headers={"Content-Type": "application/json"}), 400, "bad_parameter")
    assert server.get("/images/%d" % img["id"]).json()["metadata"] == {}


def test_garbage_never_crashes(server):
    import random
    rnd = random.Random(7)
    for i in range(40):
        junk = bytes(rnd.randrange(256) for _ in range(rnd.randrange(1, 3000)))
        prefix = [b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF89a", b"BM", b""][i % 5]
        r = server.upload(prefix + junk)
        assert r.status in (413, 415, 422), r
    for junk in [b"\x00\x01 garbage \r\n\r\n", b"GARBAGE\r\n\r\n", b"GET /" + b"a" * 70000 + b" HTTP/1.1\r\n\r\n",
                 b"GET / HTTP/1.1\r\nX: " + b"b" * 70000 + b"\r\n\r\n"]:
        raw = raw_request(server.port, junk, timeout=1)
        assert raw == b"" or raw.startswith(b"HTTP/1.1 4"), raw[:100]
    assert server.get("/healthz").status == 200
