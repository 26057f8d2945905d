"""clipd import against the real daemon: a first run stores every file
with the right summary and exit code, a second sends no image bytes, an
interrupted run resumes, a server answering 503 and 429 for a while is
retried (through a small proxy), a wrong key exits 2."""

import http.server
import os
import signal
import socketserver
import subprocess
import threading
import time
import urllib.request

from helpers import CLIPD, SLOW, make_png


def write_tree(root, n, seed0=0):
    for i in range(n):
        folder = os.path.join(root, "y%d" % (i % 3), "m%d" % (i % 2))
        os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, "p%03d.png" % i), "wb") as f:
            f.write(make_png(10, 10, seed=seed0 + i))


def run_import(url, *args, timeout=120):
    return subprocess.run([CLIPD, "import", "--url", url] + list(args), capture_output=True, text=True,
                          timeout=timeout * SLOW)


def image_bytes_received(server):
    for line in server.get("/metrics").body.decode().splitlines():
        if line.startswith('clipd_http_request_bytes_total{route="images_create"}'):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_first_run_stores_everything_and_a_rerun_sends_nothing(make_server, tmp_path):
    root = str(tmp_path / "photos")
    write_tree(root, 24)
    with open(os.path.join(root, "y0", "copy.png"), "wb") as f:
        f.write(make_png(10, 10, seed=3))   # the bytes of y0/m1/p003.png
    s = make_server().start()
    url = "http://127.0.0.1:%d" % s.port
    r = run_import(url, "--jobs", "3", "--metadata", '{"album": "trip"}', root)
    assert r.returncode == 0, r.stderr
    assert "25 files: 24 stored, 1 duplicate, 0 unsupported, 0 undecodable, 0 too large, 0 failed" in r.stdout, r.stdout
    assert "25 of 25 files" in r.stderr   # the last progress line (not a terminal: plain lines)
    items = s.get("/images?limit=100").json()["items"]
    assert len(items) == 24
    paths = {i["metadata"]["source_path"] for i in items}
    assert "y0/m0/p000.png" in paths and all(i["metadata"]["album"] == "trip" for i in items)
    sent = image_bytes_received(s)
    assert sent > 24 * 200

    r = run_import(url, root)
    assert r.returncode == 0, r.stderr
    assert "25 files: 0 stored, 25 duplicate" in r.stdout, r.stdout
    assert image_bytes_received(s) == sent   # no image bytes the second time

    # a dry run says what it would send, and sends nothing
    write_tree(os.path.join(root, "new"), 2, seed0=900)
    r = run_import(url, "--dry-run", root)
    assert r.returncode == 0 and r.stdout.count("would upload") == 2 and "2 to upload" in r.stdout, r.stdout
    assert image_bytes_received(s) == sent and len(s.get("/images?limit=100").json()["items"]) == 24

    # what is not an image is reported, and the exit status says so
    with open(os.path.join(root, "notes.txt"), "w") as f:
        f.write("not a photo")
    r = run_import(url, root)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "2 stored" in r.stdout and "1 unsupported" in r.stdout, r.stdout
    assert "notes.txt: unsupported" in r.stderr
    assert s.stop() == 0


def test_a_file_name_not_utf8_is_stored(make_server, tmp_path):
    """A file name is bytes (a Latin-1 name from an old camera or a Windows
    share): the file is stored, its source_path with U+FFFD for the bytes
    that are not UTF-8, as the server shows a library path, not refused
    by the server at every run."""
    root = os.fsencode(str(tmp_path / "photos"))
    os.makedirs(root)
    with open(root + b"/caf\xe9.png", "wb") as f:
        f.write(make_png(10, 10, seed=77))
    s = make_server().start()
    r = run_import("http://127.0.0.1:%d" % s.port, os.fsdecode(root))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "1 files: 1 stored" in r.stdout, r.stdout
    items = s.get("/images?limit=10").json()["items"]
    assert [i["metadata"]["source_path"] for i in items] == ["caf\ufffd.png"]
    assert s.stop() == 0


def test_interrupted_import_resumes(make_server, tmp_path):
    root = str(tmp_path / "many")
    write_tree(root, 120, seed0=1000)
    s = make_server().start()
    url = "http://127.0.0.1:%d" % s.port
    p = subprocess.Popen([CLIPD, "import", "--url", url, "--jobs", "1", root],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 60 * SLOW
    while len(s.get("/images?limit=1000").json()["items"]) < 15:
        assert p.poll() is None and time.time() < deadline
        time.sleep(0.01)
    p.send_signal(signal.SIGKILL)
    p.wait()
    time.sleep(0.5 * SLOW)   # an upload already sent finishes on the server
    stored = len(s.get("/images?limit=1000").json()["items"])
    assert 15 <= stored < 120
    r = run_import(url, root)
    assert r.returncode == 0, r.stderr
    assert "120 files: %d stored, %d duplicate," % (120 - stored, stored) in r.stdout, r.stdout
    assert len(s.get("/images?limit=1000").json()["items"]) == 120
    assert s.stop() == 0


class FlakyProxy(socketserver.ThreadingMixIn, http.server.HTTPServer):
    """Answers the first requests with 503 (no Retry-After), then one with
    429 (Retry-After: 1), then forwards to the server."""
    daemon_threads = True

    def __init__(self, target, failures):
        self.target = target
        self.plan = ["503"] * failures + ["429"]
        self.lock = threading.Lock()
        self.refused = []
        super().__init__(("127.0.0.1", 0), ProxyHandler)


class ProxyHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def handle_one(self, method):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        with self.server.lock:
            fail = self.server.plan.pop(0) if self.server.plan else None
            if fail:
                self.server.refused.append(fail)
        if fail:
            payload = b'{"error": {"code": "overloaded", "message": "try later"}}'
            self.send_response(int(fail))
            if fail == "429":
                self.send_header("Retry-After", "1")
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
            return
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
        req = urllib.request.Request(self.server.target + self.path, data=body, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=60) as resp:
                status, data, ctype = resp.status, resp.read(), resp.headers.get("Content-Type", "")
        except urllib.error.HTTPError as e:
            status, data, ctype = e.code, e.read(), e.headers.get("Content-Type", "")
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        self.handle_one("GET")

    def do_POST(self):
        self.handle_one("POST")


def test_503_and_429_are_retried(make_server, tmp_path):
    root = str(tmp_path / "photos")
    write_tree(root, 6, seed0=2000)
    s = make_server().start()
    proxy = FlakyProxy("http://127.0.0.1:%d" % s.port, failures=3)
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    try:
        t0 = time.time()
        r = run_import("http://127.0.0.1:%d" % proxy.server_address[1], "--jobs", "2", root)
        assert r.returncode == 0, r.stdout + r.stderr
        assert "6 stored" in r.stdout, r.stdout
        assert proxy.refused == ["503", "503", "503", "429"]
        assert time.time() - t0 >= 1.0   # the 429's Retry-After was honoured
    finally:
        proxy.shutdown()
        proxy.server_close()
    assert len(s.get("/images?limit=100").json()["items"]) == 6
    assert s.stop() == 0


def test_wrong_key_and_no_server_exit_2(make_server, tmp_path):
    keys = tmp_path / "keys"
    keys.write_text("right-key-123456 write\nreader-key-123456 read\n")
    root = str(tmp_path / "photos")
    write_tree(root, 3, seed0=3000)
    s = make_server("--api-key-file", str(keys)).start()
    url = "http://127.0.0.1:%d" % s.port
    wrong = tmp_path / "wrong"
    wrong.write_text("# my key\nnot-the-key-123456\n")
    r = run_import(url, "--api-key-file", str(wrong), root)
    assert r.returncode == 2 and "refused the API key" in r.stderr, r.stderr
    reader = tmp_path / "reader"
    reader.write_text("reader-key-123456\n")
    r = run_import(url, "--api-key-file", str(reader), root)
    assert r.returncode == 2 and "it needs a write key" in r.stderr, r.stderr
    right = tmp_path / "right"
    right.write_text("right-key-123456\n")
    r = run_import(url, "--api-key-file", str(right), root)
    assert r.returncode == 0 and "3 stored" in r.stdout, r.stdout + r.stderr
    assert s.stop() == 0
    # nothing listening: a clear message after the retries, exit 2
    r = run_import(url, root, timeout=120)
    assert r.returncode == 2 and "cannot reach the server" in r.stderr, r.stderr
    # usage errors
    assert run_import(url).returncode == 2
    assert run_import(url, "--metadata", "[1]", root).returncode == 2
    assert run_import("ftp://x", root).returncode == 2
