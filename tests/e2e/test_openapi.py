"""/openapi.json describes exactly the router's routes (each one answers,
with the methods the document lists), and the error table."""

import json

import pytest

from helpers import load_openapi, make_png


@pytest.fixture(scope="module")
def doc(server):
    return load_openapi(server)


def concrete(path, image_id):
    return path.replace("{id}", str(image_id)).replace("{name}", "nolibrary")


def test_document(doc):
    assert doc["openapi"].startswith("3.1")
    assert doc["info"]["title"] == "clipd"
    codes = {e["code"]: e["status"] for e in doc["x-clipd-errors"]}
    assert codes["bad_parameter"] == 400 and codes["insufficient_storage"] == 507
    assert sorted(doc["components"]["schemas"]["Error"]["properties"]["error"]["properties"]["code"]["enum"]) == sorted(codes)
    for c in codes:
        assert "| %s | %d |" % (c, codes[c]) in doc["info"]["description"]


def test_every_route_answers_with_the_documented_methods(server, doc):
    image_id = server.upload(make_png(16, 16, seed=3)).json()["id"]
    ops = sum(1 for item in doc["paths"].values() for m in item if m in ("get", "post", "patch", "delete"))
    assert ops == 25 and len(doc["paths"]) == 21
    for path, item in doc["paths"].items():
        documented = {m.upper() for m in item if m in ("get", "post", "patch", "delete", "put")}
        url = concrete(path, image_id)
        # The router's methods for the path (its Allow) equal the document's.
        r = server.request("OPTIONS", url)
        assert r.status == 204, (path, r)
        allow = {m.strip() for m in r.headers["allow"].split(",")} - {"HEAD", "OPTIONS"}
        assert allow == documented, (path, allow, documented)
        for method in sorted(documented, key=lambda m: m == "DELETE"):
            body, headers = None, {}
            if method in ("POST", "PATCH"):
                body, headers = b"{}", {"Content-Type": "application/json"}
            q = "?q=x" if path == "/search" else ""
            r = server.request(method, url + q, body=body, headers=headers)
            assert r.status != 405, (method, path, r)
            assert r.status != 404 or r.json()["error"]["message"] != "no route " + url, (method, path, r)
        # Undocumented methods are refused with 405 and the same Allow.
        r = server.request("PUT", url)
        assert r.status == 405 and r.headers["allow"] == server.request("OPTIONS", url).headers["allow"]
    # And paths the document does not list are not routes.
    for path in ["/image", "/images/1/files", "/v1/search", "/search/text"]:
        assert server.get(path).status == 404
