"""deploy/fetch-model.sh against a hub-shaped HTTP server on loopback
(resumable, checksum-verified, atomic), and deploy/run.sh's fallback to
the test checkpoint when the hub is unreachable."""

import hashlib
import json
import os
import re
import signal
import socket
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from helpers import CLIPD, MODEL, REPO, SLOW

FETCH = os.path.join(REPO, "deploy", "fetch-model.sh")
RUN = os.path.join(REPO, "deploy", "run.sh")
REPO_ID = "test-org/tiny-clip"
FILES = ["config.json", "model.safetensors", "vocab.json", "merges.txt", "preprocessor_config.json"]


def git_blob_sha1(data):
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class Hub:
    """Serves /api/models/REPO/revision/main and /REPO/resolve/main/FILE."""

    def __init__(self, files):
        self.files = files          # name -> bytes
        self.cut = {}               # name -> times left to break off half-way
        self.corrupt = set()
        self.requests = []
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                hub.requests.append((self.path, self.headers.get("Range")))
                m = re.match(r"^/api/models/(.+)/revision/main(\?.*)?$", self.path)
                if m and m.group(1) == REPO_ID:
                    siblings = []
                    for name, data in hub.files.items():
                        s = {"rfilename": name, "size": len(data), "blobId": git_blob_sha1(data)}
                        if name.endswith(".safetensors"):
                            s["lfs"] = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
                        siblings.append(s)
                    siblings.append({"rfilename": "README.md", "size": 3, "blobId": git_blob_sha1(b"hi\n")})
                    body = json.dumps({"id": REPO_ID, "siblings": siblings}).encode()
                    return self.reply(200, body)
                m = re.match(r"^/%s/resolve/main/([^/]+)$" % re.escape(REPO_ID), self.path)
                if not m or m.group(1) not in hub.files:
                    return self.reply(404, b"not found")
                name = m.group(1)
                data = hub.files[name]
                if name in hub.corrupt:
                    data = bytes([data[0] ^ 1]) + data[1:]
                start = 0
                rng = self.headers.get("Range")
                if rng:
                    start = int(re.match(r"bytes=(\d+)-", rng).group(1))
                    if start >= len(data):
                        return self.reply(416, b"")
                self.send_response(206 if start else 200)
                self.send_header("Content-Length", str(len(data) - start))
                if start:
                    self.send_header("Content-Range", "bytes %d-%d/%d" % (start, len(data) - 1, len(data)))
                self.end_headers()
                part = data[start:]
                if hub.cut.get(name, 0) > 0:
                    hub.cut[name] -= 1
                    self.wfile.write(part[: len(part) // 2])
                    self.wfile.flush()
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                self.wfile.write(part)

            def reply(self, status, body):
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = "http://127.0.0.1:%d" % self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def hub():
    files = {}
    for name in FILES:
        with open(os.path.join(MODEL, name), "rb") as f:
            files[name] = f.read()
    h = Hub(files)
    yield h
    h.close()


def fetch(hub_url, dest, timeout=120):
    env = dict(os.environ, HF_ENDPOINT=hub_url, FETCH_CONNECT_TIMEOUT="3")
    return subprocess.run(["bash", FETCH, REPO_ID, str(dest)], env=env, capture_output=True, text=True,
                          timeout=timeout * SLOW)


def test_fetch_whole_model(hub, tmp_path):
    dest = tmp_path / "models" / "tiny"
    p = fetch(hub.url, dest)
    assert p.returncode == 0, p.stderr
    for name in FILES:
        with open(os.path.join(MODEL, name), "rb") as a, open(dest / name, "rb") as b:
            assert a.read() == b.read(), name
    assert not (tmp_path / "models" / "tiny.partial").exists()
    assert sorted(os.listdir(dest)) == sorted(FILES + [".clipd-fetch-complete"])
    # clipd loads it and embeds like the original.
    out = subprocess.run([CLIPD, "encode", "--model", str(dest), "--text", "a red bicycle"], capture_output=True,
                         text=True, timeout=120 * SLOW)
    ref = subprocess.run([CLIPD, "encode", "--model", MODEL, "--text", "a red bicycle"], capture_output=True,
                         text=True, timeout=120 * SLOW)
    assert out.returncode == 0 and out.stdout == ref.stdout
    # Present: nothing is downloaded again.
    before = len(hub.requests)
    p = fetch(hub.url, dest)
    assert p.returncode == 0 and "already" in p.stderr
    assert len(hub.requests) == before


def test_fetch_resumes_after_a_broken_download(hub, tmp_path):
    dest = tmp_path / "tiny"
    hub.cut["model.safetensors"] = 10          # keeps breaking off: the run gives up
    p = fetch(hub.url, dest)
    assert p.returncode == 3, p.stderr
    assert not dest.exists()                   # never a half model
    partial = tmp_path / "tiny.partial" / "model.safetensors"
    assert 0 < partial.stat().st_size < len(hub.files["model.safetensors"])
    hub.cut["model.safetensors"] = 0
    hub.requests.clear()
    p = fetch(hub.url, dest)
    assert p.returncode == 0, p.stderr
    ranges = [r for path, r in hub.requests if path.endswith("model.safetensors")]
    assert ranges and ranges[0] is not None and int(ranges[0].split("=")[1].split("-")[0]) > 0
    # Files verified in the first run are not fetched again.
    assert not any(path.endswith("config.json") for path, _ in hub.requests)
    with open(dest / "model.safetensors", "rb") as f:
        assert f.read() == hub.files["model.safetensors"]


def test_fetch_verifies_checksums(hub, tmp_path):
    dest = tmp_path / "tiny"
    hub.corrupt.add("model.safetensors")
    p = fetch(hub.url, dest)
    assert p.returncode == 4 and "checksum" in p.stderr, p.stderr
    assert not dest.exists()
    hub.corrupt = {"vocab.json"}               # a non-LFS file: git blob SHA-1
    other = tmp_path / "other"
    p = fetch(hub.url, other)
    assert p.returncode == 4 and "vocab.json" in p.stderr
    assert not other.exists()
    hub.corrupt = set()
    assert fetch(hub.url, dest).returncode == 0
    assert fetch(hub.url, other).returncode == 0


def test_fetch_offline_and_bad_repos(tmp_path):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()                                  # nothing listens there
    t0 = time.time()
    p = fetch("http://127.0.0.1:%d" % port, tmp_path / "m")
    assert p.returncode == 3 and "unreachable" in p.stderr
    assert time.time() - t0 < 30
    assert not (tmp_path / "m").exists()
    assert not (tmp_path / "m.partial").exists()   # nothing came: no empty leftover
    p = subprocess.run(["bash", FETCH, "../etc", str(tmp_path / "x")], capture_output=True, text=True)
    assert p.returncode == 2


def run_sh(tmp_path, hub_url, extra_env=None):
    env = dict(os.environ, HF_ENDPOINT=hub_url, FETCH_CONNECT_TIMEOUT="3", CLIPD_SKIP_BOOTSTRAP="1",
               CLIPD_BIN=CLIPD, CLIPD_DATA_ROOT=str(tmp_path / "data"), CLIPD_LISTEN="127.0.0.1:0",
               CLIPD_PORT_FILE=str(tmp_path / "port"))
    env.update(extra_env or {})
    log = open(tmp_path / "run.log", "wb")
    proc = subprocess.Popen(["bash", RUN], env=env, stdout=log, stderr=log)
    deadline = time.time() + 120 * SLOW
    while not (tmp_path / "port").exists():
        assert proc.poll() is None, (tmp_path / "run.log").read_text()
        assert time.time() < deadline
        time.sleep(0.05)
    import http.client
    port = int((tmp_path / "port").read_text())
    while True:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        c.request("GET", "/info")
        info = json.loads(c.getresponse().read())
        c.close()
        if info["ready"]:
            return proc, info
        time.sleep(0.05)


def test_run_sh_falls_back_offline(tmp_path):
    proc, info = run_sh(tmp_path, "http://127.0.0.1:9")
    try:
        assert info["warning"] and "meaningless" in info["warning"]
        assert info["model"]["name"].startswith("tiny-clip-hf")
        assert (tmp_path / "data" / "clipd-tiny-test").is_dir()
        assert not (tmp_path / "data" / "clipd").exists()
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60 * SLOW) == 0, (tmp_path / "run.log").read_text()[-4000:]
    assert "WARNING" in (tmp_path / "run.log").read_text()


def test_run_sh_fetches_then_serves(hub, tmp_path):
    proc, info = run_sh(tmp_path, hub.url, {"CLIPD_MODEL_REPO": REPO_ID})
    try:
        assert info["warning"] is None
        assert info["model"]["name"] == REPO_ID
        assert (tmp_path / "data" / "models" / "tiny-clip" / ".clipd-fetch-complete").exists()
        assert (tmp_path / "data" / "clipd").is_dir()
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60 * SLOW) == 0, (tmp_path / "run.log").read_text()[-4000:]


def test_run_sh_says_which_images_stayed_with_the_fallback_model(hub, tmp_path):
    """Images stored while the fallback served stay in its directory; once
    the real model is there, the log and /info count them and give the
    exact reembed command, which works as given."""
    import http.client
    import shlex
    from helpers import make_png
    proc, info = run_sh(tmp_path, "http://127.0.0.1:9")
    try:
        port = int((tmp_path / "port").read_text())
        for seed in range(3):
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            c.request("POST", "/images", body=make_png(24, 24, seed=seed), headers={"Content-Type": "image/png"})
            assert c.getresponse().status == 201
            c.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60 * SLOW) == 0, (tmp_path / "run.log").read_text()[-4000:]
    (tmp_path / "port").unlink()
    proc, info = run_sh(tmp_path, hub.url, {"CLIPD_MODEL_REPO": REPO_ID})
    tiny = str(tmp_path / "data" / "clipd-tiny-test")
    model = str(tmp_path / "data" / "models" / "tiny-clip")
    command = " ".join(shlex.quote(a) for a in [CLIPD, "reembed", "--model", model, "--data", tiny])
    try:
        assert info["model"]["name"] == REPO_ID
        warning = info["warning"]
        assert warning.startswith("3 images stayed behind in %s," % tiny), warning
        assert command in warning
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60 * SLOW) == 0, (tmp_path / "run.log").read_text()[-4000:]
    log = (tmp_path / "run.log").read_text()
    assert log.count(warning) == 2   # run.sh's note and clipd's own warning line, whole
    # The command runs as given, against the real model's directory.
    cmd = warning.split("stop this server and run: ", 1)[1].split(" ; ", 1)[0]
    assert cmd == command
    p = subprocess.run(shlex.split(cmd), capture_output=True, text=True, timeout=300 * SLOW)
    assert p.returncode == 0, p.stderr
    stats = json.loads(subprocess.run([CLIPD, "index", "stats", "--data", tiny], capture_output=True,
                                      text=True, timeout=60, check=True).stdout)
    # (The fake hub serves the test checkpoint's own files, so the fingerprint is the same.)
    assert stats["images"] == 3 and stats["model"]["fingerprint"] == info["model"]["fingerprint"]


def test_a_long_model_warning_is_never_cut(make_server):
    long_path = "/srv/" + "very-long-directory-name/" * 300
    warning = "12 images stayed behind in %s; run: clipd reembed --model M --data %s" % (long_path, long_path)
    s = make_server("--model-warning", warning).start()
    assert s.get("/info").json()["warning"] == warning
    assert warning in s.log()


def test_systemd_unit_verifies_and_is_sandboxed(tmp_path):
    """deploy/clipd.service passes `systemd-analyze verify` (with ExecStart
    pointed at this build's binary, which verify requires to exist) and
    keeps the service options a packager would expect."""
    import shutil
    import pytest
    analyze = shutil.which("systemd-analyze")
    if not analyze:
        pytest.skip("systemd-analyze is not installed (Debian package systemd)")
    unit = open(os.path.join(REPO, "deploy", "clipd.service")).read()
    settings = {}
    for line in unit.splitlines():
        if "=" in line and not line.startswith("#"):
            k, v = line.split("=", 1)
            settings.setdefault(k.strip(), []).append(v.strip())
    assert settings["ExecStart"] == ["/usr/local/bin/clipd serve"]
    assert settings["DynamicUser"] == ["yes"] and settings["StateDirectory"] == ["clipd"]
    assert settings["ProtectSystem"] == ["strict"] and settings["Restart"] == ["on-failure"]
    assert settings["KillSignal"] == ["SIGTERM"]
    assert "CLIPD_DATA=/var/lib/clipd/data" in settings["Environment"]
    local = tmp_path / "clipd.service"
    local.write_text(unit.replace("/usr/local/bin/clipd", os.path.abspath(CLIPD)))
    # --man=no: whether this machine has man pages installed (a minimal
    # Debian has no man-db) is not a property of the unit
    p = subprocess.run([analyze, "verify", "--man=no", str(local)], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0 and "clipd.service" not in p.stderr, p.stderr
    # verify really reads the options: a bad value is reported against the file
    bad = tmp_path / "bad.service"
    bad.write_text(local.read_text().replace("ProtectSystem=strict", "ProtectSystem=strictest"))
    p = subprocess.run([analyze, "verify", "--man=no", str(bad)], capture_output=True, text=True, timeout=60)
    assert p.returncode != 0 or "bad.service" in p.stderr, p.stderr
