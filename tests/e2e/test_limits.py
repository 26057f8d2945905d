"""Every limit, at its edge and one past it: labels, texts to embed,
metadata size and depth, thumbnail sizes, k, query length, body size,
pixels, files per upload, the encoder queue (503 overloaded)."""

import json
import threading
import urllib.parse

import pytest

from helpers import Server, fixture, make_png, multipart, png_header_only


def post_json(s, path, obj):
    return s.request("POST", path, body=json.dumps(obj), headers={"Content-Type": "application/json"})


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """A daemon with every limit lowered, so that the edges are cheap."""
    s = Server(tmp_path_factory.mktemp("limits"), "--max-labels", "5", "--max-texts", "4", "--max-query", "20",
               "--max-k", "7", "--max-metadata", "200", "--max-metadata-depth", "3", "--max-files", "2",
               "--max-pixels", "40000", "--max-body", "256K", "--max-list", "3").start()
    s.image_id = s.upload(make_png(50, 50, seed=1)).json()["id"]
    yield s
    assert s.stop() == 0


def test_labels(small):
    ok = post_json(small, "/classify", {"image_id": small.image_id, "labels": ["a", "b", "c", "d", "e"]})
    assert ok.status == 200 and len(ok.json()["labels"]) == 5
    r = post_json(small, "/classify", {"image_id": small.image_id, "labels": ["a", "b", "c", "d", "e", "f"]})
    assert r.status == 400 and r.json()["error"]["message"].startswith("labels")
    r = post_json(small, "/classify", {"image_id": small.image_id, "labels": ["x" * 21]})
    assert r.status == 400 and r.json()["error"]["message"].startswith("labels[0]")


def test_texts(small):
    assert post_json(small, "/embed", {"texts": ["a", "b", "c", "d"]}).status == 200
    r = post_json(small, "/embed", {"texts": ["a", "b", "c", "d", "e"]})
    assert r.status == 400 and r.json()["error"]["message"].startswith("texts")
    assert post_json(small, "/embed", {"texts": ["é" * 20]}).status == 200
    assert post_json(small, "/embed", {"texts": ["é" * 21]}).status == 400


def test_query_length(small):
    assert small.search("q" * 20).status == 200
    assert small.search("日" * 20).status == 200      # characters, not bytes
    r = small.search("q" * 21)
    assert r.status == 400 and r.json()["error"]["message"].startswith("q:")


def test_k(small):
    assert small.search("a", k=7).status == 200
    assert small.search("a", k=8).status == 400
    assert small.get("/images/%d/similar?k=8" % small.image_id).status == 400


def test_list_limit(small):
    assert small.get("/images?limit=3").status == 200
    assert small.get("/images?limit=4").status == 400


def test_metadata_size_and_depth(small):
    def up(meta, seed):
        return small.upload(make_png(10, 10, seed=seed), query="?metadata=" + urllib.parse.quote(json.dumps(meta)))
    fits = {"k": "v" * 180}
    assert len(json.dumps(fits, separators=(",", ":"))) <= 200
    assert up(fits, 10).status == 201
    r = up({"k": "v" * 200}, 11)
    assert r.status == 400 and r.json()["error"]["message"].startswith("metadata")
    assert up({"a": {"b": {"c": 1}}}, 12).status == 201          # depth 3
    r = up({"a": {"b": {"c": {"d": 1}}}}, 13)                    # depth 4
    assert r.status == 400 and r.json()["error"]["message"].startswith("metadata")
    # The same limits hold for a patch's result.
    r = small.request("PATCH", "/images/%d" % small.image_id, body=json.dumps({"a": {"b": {"c": {"d": 1}}}}),
                      headers={"Content-Type": "application/json"})
    assert r.status == 400
    r = small.request("PATCH", "/images/%d" % small.image_id, body=json.dumps({"big": "x" * 300}),
                      headers={"Content-Type": "application/json"})
    assert r.status == 400
    assert small.get("/images/%d" % small.image_id).json()["metadata"] == {}


def test_pixels(small):
    assert small.upload(make_png(200, 200, seed=20)).status == 201       # 40,000 pixels
    r = small.upload(make_png(201, 200, seed=21))
    assert r.status == 413 and r.json()["error"]["code"] == "image_too_large"
    # Refused from the header alone: a 100,000 x 100,000 PNG of a few bytes.
    r = small.upload(png_header_only(100000, 100000))
    assert r.status == 413 and r.json()["error"]["code"] == "image_too_large"
    r = small.request("POST", "/search/image", body=make_png(201, 200, seed=22), headers={"Content-Type": "image/png"})
    assert r.status == 413


def test_body_size(small):
    png = make_png(100, 100, seed=30)
    exactly = png + b"\0" * (256 * 1024 - len(png))     # bytes after IEND are ignored
    r = small.upload(exactly)
    assert r.status == 201, r
    over = png + b"\0" * (256 * 1024 + 1 - len(png))
    r = small.upload(over)
    assert r.status == 413 and r.json()["error"]["code"] == "body_too_large"
    body, ctype = multipart([("file", "x.png", "image/png", over)])
    r = small.request("POST", "/images", body=body, headers={"Content-Type": ctype})
    assert r.status == 413 and r.json()["error"]["code"] == "body_too_large"


def test_files_per_upload(small):
    body, ctype = multipart([("file", "%d.png" % i, "image/png", make_png(8, 8, seed=40 + i)) for i in range(2)])
    r = small.request("POST", "/images", body=body, headers={"Content-Type": ctype})
    assert r.status == 201 and [i["status"] for i in r.json()["items"]] == [201, 201]
    body, ctype = multipart([("file", "%d.png" % i, "image/png", make_png(8, 8, seed=50 + i)) for i in range(3)])
    r = small.request("POST", "/images", body=body, headers={"Content-Type": ctype})
    assert r.status == 400 and r.json()["error"]["message"].startswith("file")


def test_thumbnail_sizes(small):
    for size in ["128", "256", "512"]:
        assert small.get("/images/%d/thumbnail?size=%s" % (small.image_id, size)).status == 200
    for size in ["0", "64", "127", "1024", "abc", "-256"]:
        r = small.get("/images/%d/thumbnail?size=%s" % (small.image_id, size))
        assert r.status == 400 and r.json()["error"]["message"].startswith("size")


def test_encoder_queue_full_answers_503(make_server):
    # One decode worker, a queue of one, a slow batch: a burst overflows.
    s = make_server("--queue-size", "1", "--decode-threads", "1", "--batch-size", "1",
                    "--batch-wait-ms", "300").start()
    results = []
    lock = threading.Lock()

    def one(i):
        r = s.upload(make_png(64, 64, seed=9000 + i))
        with lock:
            results.append(r)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    statuses = sorted(r.status for r in results)
    assert 201 in statuses and 503 in statuses, statuses
    for r in results:
        if r.status == 503:
            assert r.json()["error"]["code"] == "overloaded" and int(r.headers["retry-after"]) >= 1
    stored = sum(1 for r in results if r.status == 201)
    assert s.get("/info").json()["images"] == stored
    assert s.get("/info").json()["encoder"]["image"]["rejected"] >= 0


def test_encoder_wait_is_bounded(make_server):
    # --timeout also bounds the wait for the encoder: a batch that waits
    # 3 s for company fails its jobs after 1 s of waiting, with 503.
    s = make_server("--timeout", "1", "--batch-size", "8", "--batch-wait-ms", "3000").start()
    r = s.upload(make_png(32, 32, seed=123))
    assert r.status == 503 and r.json()["error"]["code"] == "overloaded", r
    assert "waited too long" in r.json()["error"]["message"]
    assert s.get("/info").json()["images"] == 0
