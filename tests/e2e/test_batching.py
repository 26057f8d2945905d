"""Batching across requests, from the encoder's own counters: concurrent
uploads share encoder passes, concurrent text queries too, and a search
never waits behind a slow upload batch."""

import threading
import time

from helpers import SLOW, make_png


def run_parallel(n, fn):
    out = [None] * n
    threads = [threading.Thread(target=lambda i=i: out.__setitem__(i, fn(i))) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


def test_concurrent_uploads_are_batched(make_server):
    s = make_server("--batch-size", "8", "--batch-wait-ms", "250", "--decode-threads", "2", "--http-threads", "8").start()
    before = s.get("/info").json()["encoder"]["image"]
    assert before["items"] == 0
    images = [make_png(48, 48, seed=700 + i) for i in range(16)]
    results = run_parallel(16, lambda i: s.upload(images[i]))
    assert [r.status for r in results] == [201] * 16
    enc = s.get("/info").json()["encoder"]["image"]
    # The encoder's counters (clip_ctx_get_stats), not the queue's.
    assert enc["items"] == 16
    assert enc["max_batch"] > 1, enc
    assert enc["batches"] < 16, enc
    metrics = s.get("/metrics").body.decode()
    assert "clipd_encoder_max_image_batch %d" % enc["max_batch"] in metrics
    line = [l for l in metrics.splitlines() if l.startswith('clipd_encoder_batch_size_bucket{path="image",le="1"}')][0]
    assert int(line.split()[-1]) < 16


def test_concurrent_queries_are_batched(make_server):
    s = make_server("--text-batch-size", "16", "--text-batch-wait-ms", "250", "--http-threads", "8").start()
    results = run_parallel(8, lambda i: s.search("query number %d" % i, k=1))
    assert all(r.status == 200 for r in results)
    text = s.get("/info").json()["encoder"]["text"]
    assert text["items"] == 8 and text["batches"] < 8, text
    # Cached texts skip the encoder altogether.
    assert s.search("query number 3", k=1).status == 200
    again = s.get("/info").json()["encoder"]
    assert again["text"]["items"] == 8 and again["text_cache"]["hits"] >= 1


def metric(s, name):
    for line in s.get("/metrics").body.decode().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    raise AssertionError("no metric " + name)


def test_batched_queries_share_one_index_search(make_server):
    """The text searches of one encoder pass are searched in the index
    together (one pass over the vectors); each gets what it would alone."""
    s = make_server("--text-batch-size", "16", "--text-batch-wait-ms", "250", "--http-threads", "8").start()
    for i in range(12):
        assert s.upload(make_png(40, 40, seed=900 + i)).status == 201
    queries = ["picture %d of something" % i for i in range(8)]
    assert metric(s, "clipd_search_index_batched_total") == 0
    together = run_parallel(8, lambda i: s.search(queries[i], k=5))
    assert all(r.status == 200 for r in together)
    batched = metric(s, "clipd_search_index_batched_total")
    text = s.get("/info").json()["encoder"]["text"]
    assert text["batches"] < 8, text
    assert batched >= 2, batched
    # Again one at a time: the cached vectors go to the index alone.
    for q, r in zip(queries, together):
        alone = s.search(q, k=5)
        assert alone.status == 200
        a, t = alone.json(), r.json()
        assert [h["id"] for h in a["results"]] == [h["id"] for h in t["results"]], q
        for ha, ht in zip(a["results"], t["results"]):
            assert abs(ha["score"] - ht["score"]) < 1e-6
        assert a["exhaustive"] == t["exhaustive"] is True
        assert len(t["results"]) == 5
    assert metric(s, "clipd_search_index_batched_total") == batched


def test_searches_do_not_wait_for_upload_batches(make_server):
    s = make_server("--batch-size", "64", "--batch-wait-ms", "1500", "--http-threads", "8").start()
    s.upload(make_png(20, 20, seed=1))   # something to find
    uploads = []
    t = threading.Thread(target=lambda: uploads.extend(run_parallel(3, lambda i: s.upload(make_png(30, 30, seed=60 + i)))))
    t0 = time.time()
    t.start()
    time.sleep(0.2 * SLOW)
    r = s.search("a photo", k=1)
    took = time.time() - t0
    assert r.status == 200
    assert took < 1.2 * SLOW, "a search waited %.2f s behind an upload batch" % took
    t.join()
    assert all(u.status == 201 for u in uploads)
    assert time.time() - t0 >= 1.4   # the uploads did wait for their batch
