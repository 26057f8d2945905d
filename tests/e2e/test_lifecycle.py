"""Start-up, restart, signals and crashes: the same answers after a
restart, every acknowledged upload (and no acknowledged delete) after
kill -9, graceful SIGTERM, a second signal exits at once."""

import http.client
import os
import random
import re
import signal
import threading
import time

from helpers import SLOW, Server, fixture, make_png, parse_raw_response, sha256

CATALOGS = ("sqlite", "postgresql")   # the whole module against both catalogs (conftest.py)


def all_images(s):
    out, cursor = [], None
    while True:
        r = s.get("/images?limit=1000" + ("&cursor=" + cursor if cursor else ""))
        assert r.status == 200, r
        out += r.json()["items"]
        cursor = r.json()["next_cursor"]
        if cursor is None:
            return out


def test_listening_port_file_and_environment(make_server):
    s = make_server(env={"OMP_WAIT_POLICY": None}).start()
    assert re.search(r"listening on 127\.0\.0\.1:%d\b" % s.port, s.log())
    # once ready, the log says which address to open in a browser (the
    # line follows readiness by moments: poll for it)
    want = r"ready \(clipd [^)]*\): open http://127\.0\.0\.1:%d/ in a browser" % s.port
    deadline = time.monotonic() + 10
    while not re.search(want, s.log()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert re.search(want, s.log()), s.log()[-2000:]
    # serve re-executed itself with OpenMP's passive wait policy.
    with open("/proc/%d/environ" % s.proc.pid, "rb") as f:
        env = f.read().split(b"\0")
    assert b"OMP_WAIT_POLICY=passive" in env
    assert s.get("/healthz").status == 200


def test_restart_gives_the_same_results(make_server, tmp_path):
    data = str(tmp_path / "data")
    s = make_server(data_dir=data).start()
    for name in ["astronaut.png", "chelsea.png", "coffee.png", "horse.png", "camera.png"]:
        assert s.upload(fixture(name)).status == 201
    doomed = s.upload(make_png(10, 10, seed=5)).json()["id"]
    assert s.request("DELETE", "/images/%d" % doomed).status == 204
    queries = ["a cat", "an astronaut", "a cup of coffee", "a horse"]
    before = [[(x["id"], x["score"]) for x in s.search(q, k=10).json()["results"]] for q in queries]
    similar = s.get("/images/1/similar?k=10").json()["results"]
    assert s.stop() == 0
    assert "index saved" in s.log()
    s2 = make_server(data_dir=data).start()
    after = [[(x["id"], x["score"]) for x in s2.search(q, k=10).json()["results"]] for q in queries]
    assert after == before
    assert s2.get("/images/1/similar?k=10").json()["results"] == similar
    assert s2.get("/images/%d" % doomed).status == 404
    assert "loaded" in s2.get("/info").json()["index"]["at_start"]


def test_kill_9_keeps_every_acknowledged_write(make_server, tmp_path):
    data = str(tmp_path / "data")
    acked, deleted = {}, []
    for round_no in range(2):
        s = make_server(data_dir=data).start()
        stop = threading.Event()
        lock = threading.Lock()

        def uploader(worker):
            n = 0
            conn = s.connection(timeout=10)
            while not stop.is_set():
                img = make_png(16, 16, seed=round_no * 100000 + worker * 10000 + n)
                n += 1
                try:
                    r = s.request("POST", "/images", body=img, headers={"Content-Type": "image/png"}, conn=conn)
                except (OSError, http.client.HTTPException):
                    return
                if r.status == 201:
                    with lock:
                        acked[r.json()["id"]] = sha256(img)
                    if n % 5 == 0:
                        # A delete in flight when the process dies may or may
                        # not have happened: only its 204 makes it certain.
                        i = r.json()["id"]
                        with lock:
                            del acked[i]
                        try:
                            d = s.request("DELETE", "/images/%d" % i, conn=conn)
                        except (OSError, http.client.HTTPException):
                            return
                        with lock:
                            if d.status == 204:
                                deleted.append(i)
                            else:
                                acked[i] = sha256(img)

        threads = [threading.Thread(target=uploader, args=(w,)) for w in range(3)]
        for t in threads:
            t.start()
        time.sleep(random.uniform(0.8, 1.6) * SLOW)
        s.kill()
        stop.set()
        for t in threads:
            t.join()
        assert len(acked) > 5
    s = make_server(data_dir=data).start()
    present = {img["id"]: img["sha256"] for img in all_images(s)}
    for i, sha in acked.items():
        assert present.get(i) == sha, "acknowledged upload %d lost" % i
    for i in deleted:
        assert i not in present, "acknowledged delete %d came back" % i
        assert s.get("/images/%d" % i).status == 404
    info = s.get("/info").json()
    assert info["index"]["vectors"] == info["images"] == len(present)
    # Every stored image is searchable.
    found = {x["id"] for x in s.search("x", k=1000).json()["results"]}
    assert found == set(present)


def test_sigterm_finishes_requests_in_flight(make_server):
    s = make_server().start()
    img = make_png(64, 64, seed=77)
    head = (b"POST /images HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\nConnection: close\r\n"
            b"Content-Length: %d\r\n\r\n" % len(img))
    import socket
    kept = s.connection()
    assert s.request("GET", "/healthz", conn=kept).status == 200
    sock = socket.create_connection(("127.0.0.1", s.port), timeout=30 * SLOW)
    sock.sendall(head + img[:100])
    time.sleep(0.3 * SLOW)
    s.proc.send_signal(signal.SIGTERM)
    time.sleep(0.3 * SLOW)
    # A new request on a kept-alive connection: 503 not_ready, and the
    # connection is closed after it.
    r = s.request("POST", "/images", body=make_png(8, 8, seed=78), headers={"Content-Type": "image/png"}, conn=kept)
    assert r.status == 503 and r.json()["error"]["code"] == "not_ready"
    assert r.headers["connection"].lower() == "close"
    kept.close()
    # Not accepting any more ...
    try:
        refused = s.get("/healthz", timeout=2).status != 200
    except OSError:
        refused = True
    assert refused
    # ... but the request in flight completes.
    sock.sendall(img[100:])
    raw = b""
    while True:
        b = sock.recv(65536)
        if not b:
            break
        raw += b
    sock.close()
    r = parse_raw_response(raw)
    assert r.status == 201, raw
    assert s.proc.wait(30 * SLOW) == 0
    s.proc = None
    log = s.log()
    assert "SIGTERM received" in log and "index saved" in log and "stopped" in log


def test_second_signal_exits_at_once(make_server):
    s = make_server().start()
    import socket
    sock = socket.create_connection(("127.0.0.1", s.port), timeout=30)
    sock.sendall(b"POST /images HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\nContent-Length: 1000\r\n\r\nabc")
    time.sleep(0.2 * SLOW)
    s.proc.send_signal(signal.SIGINT)
    time.sleep(0.2 * SLOW)
    assert s.proc.poll() is None   # waiting for the request in flight
    t0 = time.time()
    s.proc.send_signal(signal.SIGINT)
    rc = s.proc.wait(10)
    assert rc == 128 + signal.SIGINT and time.time() - t0 < 5
    sock.close()
    s.proc = None


def test_data_directory_is_locked(make_server, tmp_path):
    data = str(tmp_path / "data")
    a = make_server(data_dir=data).start()
    b = make_server(data_dir=data)
    b.start(wait_ready=False)
    rc = b.proc.wait(60 * SLOW)   # listens, then fails to take the lock
    b.proc = None
    assert rc == 1
    assert "in use by another clipd" in b.log()
    assert a.get("/readyz").status == 200


def test_bad_start_up(make_server, tmp_path):
    s = make_server(model=str(tmp_path / "no-model"))
    s.start(wait_ready=False)
    # The port is open before the model loads; then start-up fails: exit 1.
    rc = s.proc.wait(60 * SLOW)
    s.proc = None
    assert rc == 1 and "cannot load the model" in s.log()
    import subprocess
    from helpers import CLIPD
    p = subprocess.run([CLIPD, "serve", "--model", "m"], capture_output=True, text=True)
    assert p.returncode == 2 and "--data" in p.stderr
    p = subprocess.run([CLIPD, "serve", "--help"], capture_output=True, text=True)
    assert p.returncode == 0 and "--max-body" in p.stdout and "CLIPD_MAX_BODY" in p.stdout
