"""Regression tests for the defects of issue 17 (hardening): metadata that
the API could not show, what is stored vs. shown vs. compared, %00, ids as
integers, requests over libmicrohttpd's limits, and health probes above the
per-address connection cap (test_security.py)."""

import json
import re
import os
import socket
import time
import urllib.parse

import pytest

from helpers import REPO, SLOW, make_png

CORPUS = os.path.join(REPO, "tests", "fuzz", "corpus")


def patch(server, iid, body):
    return server.request("PATCH", "/images/%d" % iid, body=body,
                          headers={"Content-Type": "application/merge-patch+json"})


@pytest.fixture(scope="module")
def image(server):
    r = server.upload(make_png(12, 12, seed=1701))
    assert r.status == 201, r
    return r.json()["id"]


@pytest.mark.parametrize("body, why", [
    (b'{"x":"\\ud800","keep":1}', "lone UTF-16 surrogate"),
    (b'{"x":"\\udfff"}', "lone UTF-16 surrogate"),
    (b'{"bad":"\xff\xfe"}', "not valid UTF-8"),
    (b'{"bad":"\xed\xa0\x80"}', "not valid UTF-8"),
    (b'{"a":"a\\u0000b"}', "NUL"),
    (b'{"a":"a\x00b"}', "NUL"),
    (b'{"d":1,"d":2}', 'key \\"d\\" more than once'),
    (b'{"o":{"d":1,"d":2}}', "more than once"),
    (b'{"n":1e999999}', "not finite"),
    (b'{"n":12345678901234567890}', "beyond 2^53"),
])
def test_bad_metadata_is_refused_and_changes_nothing(server, image, body, why):
    assert patch(server, image, b'{"keep":"before"}').status == 200
    r = patch(server, image, body)
    assert r.status == 400 and r.error_code() == "bad_parameter", r
    assert why in r.body.decode(), r
    assert server.get("/images/%d" % image).json()["metadata"]["keep"] == "before"
    # the same check on an upload's metadata parameter
    r = server.upload(make_png(5, 5, seed=99), query="?metadata=" + urllib.parse.quote(body))
    assert r.status == 400 and why in r.body.decode(), r


def test_lone_surrogate_reproducer(server, image):
    with open(os.path.join(CORPUS, "json", "metadata_lone_surrogate.json"), "rb") as f:
        body = f.read()
    r = patch(server, image, body)
    assert r.status == 400 and "surrogate" in r.json()["error"]["message"], r
    # every reader still sees the object (it used to become {})
    assert patch(server, image, b'{"visible":true}').status == 200
    assert server.get("/images/%d" % image).json()["metadata"]["visible"] is True


def test_stored_shown_and_compared_alike(server, image):
    r = patch(server, image, b'{"num":1.0,"exp":1e3,"f":0.1,"neg":-0,"big":1e20,'
                             b'"s":"\\u00e9\\ud83d\\ude00","num_s":"1.0"}')
    assert r.status == 200, r
    raw = server.get("/images/%d" % image).body
    # the canonical text is what is shown, byte for byte
    assert b'"num":1,' in raw and b'"exp":1000,' in raw and b'"f":0.1,' in raw
    assert b'"neg":0,' in raw and b'"big":1e+20,' in raw
    assert '"s":"\u00e9\U0001F600"'.encode() in raw
    for value, hits in (("1", True), ("1.0", True), ("1e0", True), ("2", False)):
        found = [x["id"] for x in server.search("x", **{"filter.num": value, "k": 100}).json()["results"]]
        assert (image in found) == hits, (value, found)
    found = [x["id"] for x in server.search("x", **{"filter.exp": "1000", "k": 100}).json()["results"]]
    assert image in found
    # a string compares as its text: "1.0" matches the string, 1 does not
    found = [x["id"] for x in server.search("x", **{"filter.num_s": "1.0", "k": 100}).json()["results"]]
    assert image in found
    found = [x["id"] for x in server.search("x", **{"filter.num_s": "1", "k": 100}).json()["results"]]
    assert image not in found
    # list and search show the same text as the image itself
    listed = server.get("/images?limit=1000").json()["items"]
    assert [x["metadata"] for x in listed if x["id"] == image][0]["num"] == 1


def test_nul_in_path_or_parameter(server, image):
    for path in ("/images/%d%%00" % image, "/images/%d%%00/file" % image,
                 "/search?q=cat&k=10%00", "/search?q=c%00at", "/images?limit=5%00",
                 "/images/%d/thumbnail?size=256%%00" % image):
        r = server.get(path)
        assert r.status == 400 and r.error_code() == "bad_parameter", (path, r)
        assert "%00" in r.json()["error"]["message"]


def test_json_ids_are_integers(server, image):
    def classify(image_id):
        body = json.dumps({"image_id": image_id, "labels": ["a", "b"]}) if not isinstance(image_id, bytes) \
            else b'{"image_id": ' + image_id + b', "labels": ["a", "b"]}'
        return server.request("POST", "/classify", body=body, headers={"Content-Type": "application/json"})

    for bad in (b"9007199254740993", b"9007199254740992", b"1e300", b"1.5", b"0", b"-1",
                "9007199254740993", "12x"):
        r = classify(bad)
        assert r.status == 400 and r.error_code() == "bad_parameter", (bad, r)
        assert "image_id" in r.json()["error"]["message"]
    assert classify(image).status == 200
    assert classify(str(image)).status == 200
    assert classify(b"%d.0" % image).status == 200


def test_query_integers_are_checked(server):
    for q in ("k=10.5", "k=1e2", "k=%2B5", "k=%205", "k=5%20", "k=99999999999999999999", "k=0", "k=0x10"):
        r = server.get("/search?q=x&" + q)
        assert r.status == 400 and r.error_code() == "bad_parameter", (q, r)


def raw_request(server, data, timeout=10):
    c = socket.create_connection(("127.0.0.1", server.port), timeout=timeout * SLOW)
    try:
        c.sendall(data)
        out = b""
        while True:
            try:
                d = c.recv(65536)
            except ConnectionResetError:
                break
            if not d:
                break
            out += d
        return out
    finally:
        c.close()


def test_too_many_parameters_get_414_and_a_log_line(server):
    t = time.time()
    q = "&".join("p%d=1" % i for i in range(1000))   # the attack run's request
    out = raw_request(server, b"GET /search?q=x&" + q.encode() + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 414 "), out[:200]
    body = json.loads(out.split(b"\r\n\r\n", 1)[1])
    assert body["error"]["code"] == "uri_too_long"
    assert time.time() - t < 10 * SLOW
    deadline = time.time() + 5 * SLOW
    while "1001 parameters" not in server.log() and time.time() < deadline:
        time.sleep(0.05)
    assert "414" in server.log() and "1001 parameters" in server.log()


def test_request_target_too_long(server):
    out = raw_request(server, b"GET /search?q=" + b"a" * 400000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 414 "), out[:200]


@pytest.mark.parametrize("headers", [
    b"X-Big: " + b"a" * 70000 + b"\r\n",
    b"".join(b"X-H%d: 1\r\n" % i for i in range(300)),
    b"X-Huge: " + b"a" * 2000000 + b"\r\n",
], ids=["one-70k-header", "300-headers", "one-2m-header"])
def test_huge_headers_get_431(server, headers):
    out = raw_request(server, b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + headers + b"\r\n")
    assert out.startswith(b"HTTP/1.1 431 "), out[:200]
    assert server.get("/healthz").status == 200


def test_request_at_the_documented_limits_fits(server):
    # 16 query parts of --max-query (1000) characters of 4-byte UTF-8, 32
    # filters at their limits (128-byte keys, 1024-byte values), all
    # percent-encoded
    params = [("q", "\U0001F600" * 1000) for _ in range(16)] + [("k", "5")]
    for i in range(32):
        params.append(("filter." + ("%03d" % i) + "k" * 124, "\u00e9" * 512))
    path = "/search?" + urllib.parse.urlencode(params, quote_via=urllib.parse.quote)
    assert len(path) > 290000
    headers = {"X-Pad-%d" % i: "v" * 300 for i in range(60)}   # 18 KB of headers
    r = server.get(path, headers=headers)
    assert r.status == 200, r
    assert r.json()["results"] == []
    # a metadata parameter of --max-metadata (16K) bytes, every byte encoded
    meta = json.dumps({"k": "\u00e9" * 8000}, ensure_ascii=False).encode()
    assert 16000 < len(meta) <= 16 * 1024
    r = server.upload(make_png(6, 6, seed=4242), headers=headers,
                      query="?filename=x.png&metadata=" + "".join("%%%02X" % b for b in meta))
    assert r.status == 201, r
    assert r.json()["metadata"]["k"] == "\u00e9" * 8000


def half_closed(server, request, timeout=30, delay=0):
    """Send request, shut the write side (shutdown(SHUT_WR)), wait delay
    seconds and read the answer until the server closes: (status, headers,
    body) or None."""
    c = socket.create_connection(("127.0.0.1", server.port), timeout=timeout * SLOW)
    try:
        c.sendall(request)
        c.shutdown(socket.SHUT_WR)
        time.sleep(delay)
        out = b""
        while True:
            try:
                d = c.recv(65536)
            except (ConnectionResetError, socket.timeout):
                break
            if not d:
                break
            out += d
    finally:
        c.close()
    head, sep, body = out.partition(b"\r\n\r\n")
    if not sep:
        return None
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (l.partition(":") for l in lines[1:])}
    return int(lines[0].split()[1]), headers, body


def test_half_closed_clients_get_their_answers(server):
    """Issue 17: a client that half-closes right after a request that waits
    for the encoder (upload, search, embed) still gets its whole answer,
    while other clients keep the server busy."""
    import threading

    def upload(i):
        png = make_png(9, 9, seed=880000 + i)
        return (b"POST /images?filename=half%d.png HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\n"
                b"Content-Length: %d\r\n\r\n" % (i, len(png)) + png), 201

    def search(i):
        # a query the text cache has not seen, so it waits for the encoder
        return b"GET /search?q=half+closed+%d+bicycle&k=5 HTTP/1.1\r\nHost: x\r\n\r\n" % i, 200

    def embed(i):
        body = json.dumps({"texts": ["half closed %d" % i, "text %d" % (i * 7)]}).encode()
        return (b"POST /embed HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\n\r\n" % len(body) + body), 200

    stop = threading.Event()
    load_errors = []

    def load(n):
        # ordinary clients on keep-alive connections, uploads and searches
        i = 0
        while not stop.is_set():
            i += 1
            try:
                r = server.upload(make_png(7, 7, seed=990000 + n * 10000 + i))
                s = server.search("load %d %d" % (n, i))
                if r.status != 201 or s.status != 200:
                    load_errors.append((r, s))
            except OSError as e:
                load_errors.append(e)

    loaders = [threading.Thread(target=load, args=(n,)) for n in range(3)]
    for t in loaders:
        t.start()
    failures = []
    answered = [0]
    uploaded = {}
    lock = threading.Lock()

    def client(make, i):
        req, want = make(i)
        try:
            got = half_closed(server, req)
        except OSError as e:
            got = e
        ok = isinstance(got, tuple) and got[0] == want
        if ok:
            status, headers, body = got
            ok = int(headers.get("content-length", -1)) == len(body)
            try:
                doc = json.loads(body)
                ok = ok and ("id" in doc if make is upload else
                             "results" in doc if make is search else "embeddings" in doc)
            except ValueError:
                ok = False
        with lock:
            if ok:
                answered[0] += 1
                if make is upload:
                    uploaded[i] = doc["id"]
            else:
                failures.append((make.__name__, i, got if not isinstance(got, tuple) else got[:2] + (got[2][:200],)))

    try:
        n = 0
        for _ in range(4):   # waves of 30 concurrent half-closing clients
            threads = []
            for make in (upload, search, embed):
                for _ in range(10):
                    n += 1
                    threads.append(threading.Thread(target=client, args=(make, n)))
            for t in threads:
                t.start()
            for t in threads:
                t.join()
    finally:
        stop.set()
        for t in loaders:
            t.join()
    assert not failures, "%d of %d half-closed clients got no whole answer: %r" % (
        len(failures), n, failures[:5])
    assert answered[0] == n
    assert not load_errors, load_errors[:3]
    # the half-closed uploads are all stored, each under its own name
    assert len(uploaded) == 40
    for i, iid in uploaded.items():
        r = server.get("/images/%d" % iid)
        assert r.status == 200 and r.json()["filename"] == "half%d.png" % i, r


def test_half_closed_clients_get_large_answers(server):
    """Answers far larger than a socket's first send buffer (256 text
    embeddings each, 1,024 texts: what the text queue takes) reach
    half-closed clients that only start reading a while later."""
    import threading

    def client(n, out):
        texts = ["large answer %d %d" % (n, i) for i in range(256)]
        body = json.dumps({"texts": texts}).encode()
        try:
            out[n] = (body, half_closed(server, b"POST /embed HTTP/1.1\r\nHost: x\r\nContent-Type: "
                                        b"application/json\r\nContent-Length: %d\r\n\r\n" % len(body) + body,
                                        delay=0.5))
        except OSError as e:
            out[n] = (body, e)

    out = {}
    threads = [threading.Thread(target=client, args=(n, out)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for n in range(4):
        body, got = out[n]
        assert isinstance(got, tuple), got
        status, headers, data = got
        assert status == 200, (n, status, data[:200])
        assert int(headers["content-length"]) == len(data) > 100000
        doc = json.loads(data)
        again = server.request("POST", "/embed", body=body, headers={"Content-Type": "application/json"})
        assert again.status == 200 and again.json()["embeddings"] == doc["embeddings"]


def test_every_request_limit_at_once_fits(server):
    """A request at all of its limits together (a request target of the
    server's limit with the most query parameters, the most header fields
    with the most header bytes) fits the connection's memory: the handler
    answers it, twice on one keep-alive connection."""
    max_uri = server.get("/info").json()["limits"]["max_request_target"]
    assert max_uri > 290000
    over = raw_request(server, b"GET /search?q=" + b"a" * (max_uri - 9) + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    assert over.startswith(b"HTTP/1.1 414 ") and b"uri_too_long" in over, over[:300]
    # 128 parameters (the limit), padded to exactly max_uri bytes
    head = b"/search?q=x&k=5"
    params = [b"&p%03d=" % i for i in range(126)]
    pad = max_uri - len(head) - sum(len(p) for p in params)
    target = head + b"".join(p + b"v" * (pad // 126 + (1 if i < pad % 126 else 0)) for i, p in enumerate(params))
    assert len(target) == max_uri and target.count(b"&") + 1 == 128
    # 100 header fields (the limit) of 32 KiB of names and values in all
    fields = [(b"Host", b"x")] + [(b"X-P%02d" % i, b"") for i in range(99)]
    room = 32 * 1024 - sum(len(k) + len(v) for k, v in fields)
    fields = fields[:1] + [(k, b"h" * (room // 99 + (1 if i < room % 99 else 0)))
                           for i, (k, _) in enumerate(fields[1:])]
    assert sum(len(k) + len(v) for k, v in fields) == 32 * 1024
    request = b"GET " + target + b" HTTP/1.1\r\n" + b"".join(k + b": " + v + b"\r\n" for k, v in fields) + b"\r\n"
    c = socket.create_connection(("127.0.0.1", server.port), timeout=30 * SLOW)
    try:
        for _ in range(2):
            c.sendall(request)
            got = b""
            while b"\r\n\r\n" not in got:
                d = c.recv(65536)
                assert d, got
                got += d
            head_, _, body = got.partition(b"\r\n\r\n")
            length = int(re.search(rb"(?i)\r\ncontent-length: *(\d+)", head_).group(1))
            while len(body) < length:
                d = c.recv(65536)
                assert d
                body += d
            # the handler saw it: the strict parameters refuse p000
            assert head_.startswith(b"HTTP/1.1 400 "), head_[:300]
            assert json.loads(body)["error"]["code"] == "bad_parameter", body
    finally:
        c.close()
