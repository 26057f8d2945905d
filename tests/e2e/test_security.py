"""API keys (scopes, constant-time compare, never logged), CORS by
allowlist with preflight, rate limits per key or client, trusted proxies,
connections per address."""

import json
import socket
import time

import pytest

from helpers import SLOW, make_png, wait_log


KEYS = "# test keys\nreader-key-0001 read\nwriter-key-0002 write\nplain-key-00003\n"


@pytest.fixture(scope="module")
def keyed(tmp_path_factory):
    from helpers import Server
    tmp = tmp_path_factory.mktemp("keys")
    path = tmp / "keys"
    path.write_text(KEYS)
    s = Server(tmp, "--api-key-file", str(path)).start()
    yield s
    assert s.stop() == 0


def bearer(key):
    return {"Authorization": "Bearer " + key}


def test_missing_and_wrong_key(keyed):
    for method, path in [("GET", "/search?q=a"), ("GET", "/images"), ("GET", "/info"), ("GET", "/metrics"),
                         ("GET", "/openapi.json"), ("POST", "/images"), ("DELETE", "/images/1"),
                         ("GET", "/images/1/file"), ("POST", "/embed"), ("POST", "/classify")]:
        r = keyed.request(method, path)
        assert r.status == 401 and r.json()["error"]["code"] == "unauthorized", (method, path, r)
        assert r.headers["www-authenticate"].startswith("Bearer")
        for wrong in ["Bearer nope-nope-nope", "Bearer reader-key-000", "Bearer reader-key-00011",
                      "Basic cmVhZGVyOmtleQ==", "reader-key-0001", "Bearer"]:
            r = keyed.request(method, path, headers={"Authorization": wrong})
            assert r.status == 401, (method, path, wrong, r)


def test_open_routes(keyed):
    assert keyed.get("/healthz").status == 200
    assert keyed.get("/readyz").status == 200
    assert keyed.get("/").status == 200
    assert keyed.request("OPTIONS", "/search").status == 204


def test_scopes(keyed):
    img = make_png(12, 12, seed=1)
    r = keyed.upload(img, headers=bearer("reader-key-0001"))
    assert r.status == 403 and r.json()["error"]["code"] == "forbidden"
    r = keyed.upload(img, headers=bearer("writer-key-0002"))
    assert r.status == 201
    i = r.json()["id"]
    for key in ["reader-key-0001", "writer-key-0002", "plain-key-00003"]:
        assert keyed.get("/search?q=a", headers=bearer(key)).status == 200
        assert keyed.get("/images/%d/file" % i, headers=bearer(key)).status == 200
        assert keyed.get("/info", headers=bearer(key)).json()["auth"] is True
    assert keyed.request("DELETE", "/images/%d" % i, headers=bearer("reader-key-0001")).status == 403
    assert keyed.request("PATCH", "/images/%d" % i, body=b"{}", headers=dict(bearer("reader-key-0001"),
                         **{"Content-Type": "application/json"})).status == 403
    assert keyed.request("DELETE", "/images/%d" % i, headers=bearer("plain-key-00003")).status == 204


def test_keys_never_logged(keyed):
    keyed.get("/search?q=a", headers=bearer("reader-key-0001"))
    keyed.get("/search?q=a", headers=bearer("wrong-key-99999"))
    wait_log(keyed, "GET /search 401")
    log = keyed.log()
    for k in ["reader-key-0001", "writer-key-0002", "plain-key-00003", "wrong-key-99999"]:
        assert k not in log
    assert "key=#0" in log


def test_bad_key_file(make_server, tmp_path):
    p = tmp_path / "bad-keys"
    p.write_text("secret-key-123 admin\n")
    s = make_server("--api-key-file", str(p))
    with pytest.raises(RuntimeError, match="exited with 1"):
        s.start()
    s.proc = None
    assert "scope" in s.log() and "secret-key-123" not in s.log()


def test_cors(make_server):
    s = make_server("--cors-origin", "https://app.example", "--cors-origin", "http://localhost:5173").start()
    pre = s.request("OPTIONS", "/search", headers={"Origin": "https://app.example",
                                                   "Access-Control-Request-Method": "GET",
                                                   "Access-Control-Request-Headers": "authorization"})
    assert pre.status == 204
    assert pre.headers["access-control-allow-origin"] == "https://app.example"
    assert "GET" in pre.headers["access-control-allow-methods"]
    assert "authorization" in pre.headers["access-control-allow-headers"].lower()
    assert pre.headers["vary"] == "Origin"
    bad = s.request("OPTIONS", "/search", headers={"Origin": "https://evil.example",
                                                   "Access-Control-Request-Method": "GET"})
    assert bad.status == 403 and bad.json()["error"]["code"] == "forbidden"
    assert "access-control-allow-origin" not in bad.headers
    r = s.get("/search?q=a", headers={"Origin": "http://localhost:5173"})
    assert r.status == 200 and r.headers["access-control-allow-origin"] == "http://localhost:5173"
    assert "X-Request-Id" in r.headers["access-control-expose-headers"]
    r = s.get("/search?q=a", headers={"Origin": "https://evil.example"})
    assert r.status == 200 and "access-control-allow-origin" not in r.headers
    r = s.get("/search?q=a")
    assert "access-control-allow-origin" not in r.headers
    # Errors carry CORS headers too (a browser must be able to read them).
    r = s.get("/search", headers={"Origin": "https://app.example"})
    assert r.status == 400 and r.headers["access-control-allow-origin"] == "https://app.example"


def test_rate_limit(make_server):
    s = make_server("--rate-limit", "2", "--rate-burst", "3").start()
    statuses = [s.get("/info").status for _ in range(8)]
    assert statuses[:3] == [200, 200, 200] and 429 in statuses
    r = s.get("/info")
    assert r.status == 429 and r.json()["error"]["code"] == "rate_limited"
    assert int(r.headers["retry-after"]) >= 1
    # Health probes and the page are not limited.
    assert all(s.get("/healthz").status == 200 for _ in range(10))
    assert all(s.get("/").status == 200 for _ in range(5))
    time.sleep(1.6)
    assert s.get("/info").status == 200


def test_rate_limit_per_key(make_server, tmp_path):
    p = tmp_path / "keys"
    p.write_text("key-aaaaaaaa\nkey-bbbbbbbb\n")
    s = make_server("--rate-limit", "1", "--rate-burst", "2", "--api-key-file", str(p)).start()
    a = [s.get("/info", headers=bearer("key-aaaaaaaa")).status for _ in range(4)]
    assert a[:2] == [200, 200] and a[-1] == 429
    assert s.get("/info", headers=bearer("key-bbbbbbbb")).status == 200


def test_trusted_proxy(make_server):
    s = make_server("--rate-limit", "1", "--rate-burst", "1", "--trusted-proxy", "127.0.0.1").start()
    # Behind a trusted proxy, each forwarded client has its own bucket.
    assert s.get("/info", headers={"X-Forwarded-For": "203.0.113.1"}).status == 200
    assert s.get("/info", headers={"X-Forwarded-For": "203.0.113.2"}).status == 200
    assert s.get("/info", headers={"X-Forwarded-For": "198.51.100.9, 203.0.113.1"}).status == 429
    r = s.get("/search", headers={"X-Forwarded-For": "203.0.113.3"})
    assert r.status == 400
    wait_log(s, "client=203.0.113.3")
    # Without the option, the header is ignored: one client, one bucket.
    t = make_server("--rate-limit", "1", "--rate-burst", "1").start()
    assert t.get("/info", headers={"X-Forwarded-For": "203.0.113.1"}).status == 200
    assert t.get("/info", headers={"X-Forwarded-For": "203.0.113.2"}).status == 429
    wait_log(t, "GET /info 429")
    assert "client=203.0.113.1" not in t.log()


def test_connections_per_address(make_server):
    s = make_server("--max-connections-per-ip", "3").start()
    conns = [s.connection() for _ in range(3)]
    for c in conns:
        assert s.request("GET", "/healthz", conn=c).status == 200   # kept alive
    # Above the cap, a few connections are kept for that address's health
    # probes (a load balancer on the same host during a slowloris from it):
    # they answer /healthz and /readyz and nothing else.
    extra = s.connection(timeout=5)
    assert s.request("GET", "/healthz", conn=extra).status == 200
    assert s.request("GET", "/readyz", conn=extra).status == 200
    r = s.request("GET", "/info", conn=extra)
    assert r.status == 429 and r.error_code() == "rate_limited", r
    assert "/healthz" in r.json()["error"]["message"]
    assert r.headers.get("connection", "").lower() == "close"
    extra.close()
    time.sleep(0.3 * SLOW)
    # Beyond the probe slots (4), the connection is refused.
    probes = [s.connection(timeout=5) for _ in range(4)]
    for c in probes:
        assert s.request("GET", "/healthz", conn=c).status == 200
    refused = s.connection(timeout=5)
    with pytest.raises((OSError, Exception)):
        r = s.request("GET", "/healthz", conn=refused)
        raise AssertionError("a connection beyond the probe slots was served: %r" % r)
    refused.close()
    for c in probes:
        c.close()
    conns.pop().close()
    time.sleep(0.3 * SLOW)
    assert s.get("/info").status == 200
    for c in conns:
        c.close()


def test_idle_connections_time_out(make_server):
    s = make_server("--timeout", "1").start()
    c = s.connection()
    assert s.request("GET", "/healthz", conn=c).status == 200
    time.sleep(2.5)
    with pytest.raises(Exception):
        s.request("GET", "/healthz", conn=c)
        s.request("GET", "/healthz", conn=c)
    c.close()


def test_filenames_are_only_metadata(make_server):
    s = make_server().start()
    r = s.upload(make_png(9, 9, seed=3), query="?filename=../../etc/passwd")
    assert r.status == 201 and r.json()["filename"] == "../../etc/passwd"
    from helpers import multipart
    body, ctype = multipart([("file", "..\\..\\x\u00e9.png".encode().decode("latin-1"), "image/png", make_png(9, 9, seed=4))])
    r = s.request("POST", "/images", body=body, headers={"Content-Type": ctype})
    assert r.status == 201 and r.json()["items"][0]["status"] == 201
    import os
    for root, dirs, files in os.walk(s.data):
        for f in files:
            assert "passwd" not in f and ".png" not in f


def test_cors_any_origin_echoes_no_long_origin(make_server):
    """With --cors-origin '*' any Origin is echoed, but not one over 512
    bytes (no real origin is that long; the connection's memory leaves
    room for the answer's headers with one of at most that)."""
    s = make_server("--cors-origin", "*").start()
    short = "https://" + "a" * 490 + ".example"   # 506 bytes
    r = s.get("/search?q=a", headers={"Origin": short})
    assert r.status == 200 and r.headers["access-control-allow-origin"] == short
    long = "https://" + "a" * 30000 + ".example"
    r = s.get("/search?q=a", headers={"Origin": long})
    assert r.status == 200 and "access-control-allow-origin" not in r.headers
    assert s.stop() == 0
