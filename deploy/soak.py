"""kill -9 soak for clipd (deploy/soak.sh runs it with Debian's python3).

Each cycle: clipd serve is running on a loopback port with the tiny test
checkpoint; several client threads drive a mixed load (raw and multipart
uploads with metadata, merge patches, deletes, searches), logging every
acknowledged write; at a random moment the daemon gets SIGKILL. It is then
started again and checked against the log:

  - every acknowledged image is there, with its last acknowledged metadata
    (or the one of a patch in flight at the kill), its original's bytes
    and a vector (GET /images/ID/similar answers);
  - every acknowledged delete stays deleted (404, never in a search);
  - nothing is half-present: no row without a vector, no vector without a
    row, no original without a row (read from the database and blobs/);
  - `clipd check` finds no problem.

Each thread patches and deletes only images it uploaded, so the last
acknowledged write of an image is well defined. Prints one line per 10
cycles and, last, "N cycles, N acknowledged writes, N lost"; exit 1 if any
was lost or any check failed (the first failures are listed).
"""

import argparse
import hashlib
import http.client
import json
import os
import random
import shutil
import signal
import sqlite3
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import zlib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def png(seed):
    rnd = random.Random(seed)
    w, h = rnd.randrange(8, 40), rnd.randrange(8, 40)
    rows = b"".join(b"\0" + bytes(rnd.randrange(256) for _ in range(w * 3)) for _ in range(h))

    def chunk(tag, payload):
        return (struct.pack(">I", len(payload)) + tag + payload
                + struct.pack(">I", zlib.crc32(tag + payload) & 0xFFFFFFFF))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows, 1)) + chunk(b"IEND", b""))


class Daemon:
    def __init__(self, args, data, tmp):
        self.args, self.data, self.tmp = args, data, tmp
        self.proc = None
        self.port = None
        self.log = open(os.path.join(tmp, "clipd.log"), "ab")

    def start(self, timeout=60):
        port_file = os.path.join(self.tmp, "port")
        if os.path.exists(port_file):
            os.unlink(port_file)
        cmd = [self.args.clipd, "serve", "--model", self.args.model, "--data", self.data,
               "--listen", "127.0.0.1:0", "--port-file", port_file, "--log-level", "warn",
               "--save-interval", "1", "--save-changes", str(random.choice([5, 50, 1000]))]
        env = dict(os.environ, CLIPD_WEIGHTS_CACHE=os.path.join(self.tmp, "weights"))
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=self.log, env=env)
        deadline = time.time() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError("clipd exited with %d (see %s/clipd.log)" % (self.proc.returncode, self.tmp))
            if time.time() > deadline:
                raise RuntimeError("clipd did not get ready")
            try:
                if self.port is None or not os.path.exists(port_file):
                    with open(port_file) as f:
                        self.port = int(f.read().strip())
                if request(self.port, "GET", "/readyz")[0] == 200:
                    return
            except (OSError, ValueError):
                pass
            time.sleep(0.02)

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self.port = None

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def request(port, method, path, body=None, headers=None, timeout=30):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


def multipart(files, metadata):
    b = "----soak%x" % random.getrandbits(48)
    out = []
    for name, data in files:
        out.append(("--%s\r\nContent-Disposition: form-data; name=\"file\"; filename=\"%s\"\r\n"
                    "Content-Type: image/png\r\n\r\n" % (b, name)).encode() + data + b"\r\n")
    out.append(("--%s\r\nContent-Disposition: form-data; name=\"metadata\"\r\n\r\n" % b).encode()
               + json.dumps(metadata).encode() + b"\r\n")
    out.append(("--%s--\r\n" % b).encode())
    return b"".join(out), "multipart/form-data; boundary=" + b


class Ledger:
    """What the clients were told. Each image belongs to the thread that
    uploaded it; pending holds a write in flight (not acknowledged)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.images = {}      # id -> {"sha": hex, "metadata": obj, "owner": n}
        self.deleted = set()
        self.pending = {}     # id -> ("patch", metadata) | ("delete", None)
        self.acked = 0
        self.pending_uploads = {}   # sha -> metadata: in flight at the kill
        self.touched = set()        # ids written since the last check


def client(n, port, ledger, stop, seed_base):
    rnd = random.Random(seed_base)
    mine = []
    serial = 0
    while not stop.is_set():
        op = rnd.random()
        if len(mine) > 60 and op < 0.35:
            op = 0.7   # keep the collection about constant: a delete instead of an upload
        try:
            if op < 0.35 or not mine:
                serial += 1
                data = png((seed_base << 20) + serial)
                sha = hashlib.sha256(data).hexdigest()
                meta = {"t": n, "s": serial, "v": rnd.choice([1, 1.5, "x", True, None, [1, 2]])}
                with ledger.lock:
                    ledger.pending_uploads[sha] = meta
                if rnd.random() < 0.5:
                    q = "?filename=s%d.png&metadata=%s" % (serial, urllib.parse.quote(json.dumps(meta)))
                    st, body = request(port, "POST", "/images" + q, data, {"Content-Type": "image/png"})
                    results = [json.loads(body)] if st == 201 else []
                else:
                    b, ct = multipart([("s%d.png" % serial, data)], meta)
                    st, body = request(port, "POST", "/images", b, {"Content-Type": ct})
                    results = [x for x in json.loads(body)["items"] if x.get("status") == 201] if st == 200 else []
                for img in results:
                    with ledger.lock:
                        ledger.images[img["id"]] = {"sha": img["sha256"], "metadata": img["metadata"], "owner": n}
                        ledger.touched.add(img["id"])
                        ledger.pending_uploads.pop(img["sha256"], None)
                        ledger.acked += 1
                    mine.append(img["id"])
            elif op < 0.65:
                iid = rnd.choice(mine)
                patch = {"p": rnd.randrange(1000), rnd.choice(["a", "b", "c"]): rnd.choice([None, 2, "y", 0.25])}
                with ledger.lock:
                    cur = ledger.images[iid]["metadata"]
                expect = dict(cur)
                for k, v in patch.items():
                    if v is None:
                        expect.pop(k, None)
                    else:
                        expect[k] = v
                with ledger.lock:
                    ledger.pending[iid] = ("patch", expect)
                st, body = request(port, "PATCH", "/images/%d" % iid, json.dumps(patch).encode(),
                                   {"Content-Type": "application/merge-patch+json"})
                if st == 200:
                    with ledger.lock:
                        ledger.images[iid]["metadata"] = json.loads(body)["metadata"]
                        ledger.touched.add(iid)
                        ledger.pending.pop(iid, None)
                        ledger.acked += 1
                else:
                    raise RuntimeError("PATCH %d: %d %s" % (iid, st, body[:200]))
            elif op < 0.8:
                iid = mine.pop(rnd.randrange(len(mine)))
                with ledger.lock:
                    ledger.pending[iid] = ("delete", None)
                st, body = request(port, "DELETE", "/images/%d" % iid)
                if st == 204:
                    with ledger.lock:
                        ledger.images.pop(iid)
                        ledger.deleted.add(iid)
                        ledger.touched.add(iid)
                        ledger.pending.pop(iid, None)
                        ledger.acked += 1
                else:
                    raise RuntimeError("DELETE %d: %d %s" % (iid, st, body[:200]))
            else:
                with ledger.lock:   # deleted before the search began: never in its results
                    gone = set(ledger.deleted)
                st, body = request(port, "GET", "/search?q=%s&k=20" % rnd.choice(["cat", "a+red+bicycle", "x"]))
                if st == 200:
                    found = {x["id"] for x in json.loads(body)["results"]}
                    back = found & gone
                    if back:
                        ledger.failures.append("search returned deleted images %s" % sorted(back))
        except (OSError, http.client.HTTPException, ValueError):
            if stop.is_set():
                return   # the kill: what was in flight stays pending
            time.sleep(0.05)
        except RuntimeError as e:
            if stop.is_set():
                return
            ledger.failures.append(str(e))
            return


def verify(args, daemon, ledger, cycle, full):
    port = daemon.port
    lost = 0
    problems = []
    with ledger.lock:
        images = dict(ledger.images)
        pending = dict(ledger.pending)
        deleted = set(ledger.deleted)
        pending_uploads = dict(ledger.pending_uploads)
        touched = set(ledger.touched)
        ledger.touched.clear()
    if not full:
        # what this cycle wrote or had in flight, and a sample of the rest
        # (every image is checked at the full checks: every --full-every
        # cycles and the last)
        rest = sorted(set(images) - touched - set(pending))
        keep = touched | set(pending) | set(random.sample(rest, min(len(rest), 200)))
        images = {i: v for i, v in images.items() if i in keep}
        old = sorted(deleted - touched)
        deleted = (deleted & touched) | set(random.sample(old, min(len(old), 200)))
    for iid, want in images.items():
        st, body = request(port, "GET", "/images/%d" % iid)
        p = pending.get(iid)
        if st == 404 and p and p[0] == "delete":
            with ledger.lock:   # the delete in flight went through
                ledger.images.pop(iid, None)
                ledger.deleted.add(iid)
                ledger.pending.pop(iid, None)
            continue
        if st != 200:
            lost += 1
            problems.append("cycle %d: image %d: %d" % (cycle, iid, st))
            continue
        got = json.loads(body)["metadata"]
        if got != want["metadata"]:
            if p and p[0] == "patch" and got == p[1]:
                with ledger.lock:
                    ledger.images[iid]["metadata"] = got
            else:
                lost += 1
                problems.append("cycle %d: image %d: metadata %s, acknowledged %s" % (cycle, iid, got, want["metadata"]))
        with ledger.lock:
            ledger.pending.pop(iid, None)
        st, body = request(port, "GET", "/images/%d/file" % iid)
        if st != 200 or hashlib.sha256(body).hexdigest() != want["sha"]:
            lost += 1
            problems.append("cycle %d: image %d: original %d" % (cycle, iid, st))
        st, _ = request(port, "GET", "/images/%d/similar?k=1" % iid)
        if st != 200:
            problems.append("cycle %d: image %d: similar %d (no vector?)" % (cycle, iid, st))
    for iid in deleted:
        st, _ = request(port, "GET", "/images/%d" % iid)
        if st != 404:
            lost += 1
            problems.append("cycle %d: deleted image %d came back (%d)" % (cycle, iid, st))
    st, body = request(port, "GET", "/search?q=cat&k=1000")
    back = {x["id"] for x in json.loads(body)["results"]} & deleted
    if back:
        problems.append("cycle %d: search returns deleted %s" % (cycle, sorted(back)))
    # uploads in flight at the kill: there whole, or not at all
    db = sqlite3.connect("file:%s?mode=ro" % os.path.join(daemon.data, "clipd.db"), uri=True, timeout=30)
    try:
        rows = {sha: iid for iid, sha in db.execute("SELECT id, sha256 FROM images")}
        for sha in pending_uploads:
            if sha in rows:
                with ledger.lock:
                    ledger.pending_uploads.pop(sha, None)
                # present but never acknowledged: the client may retry; it is
                # whole (checked below with every row), so adopt it as deleted-later
                request(port, "DELETE", "/images/%d" % rows[sha])
                with ledger.lock:
                    ledger.deleted.add(rows[sha])
        for (n,) in db.execute("SELECT count(*) FROM images WHERE id NOT IN (SELECT image_id FROM vectors)"):
            if n:
                problems.append("cycle %d: %d rows without a vector" % (cycle, n))
        for (n,) in db.execute("SELECT count(*) FROM vectors WHERE image_id NOT IN (SELECT id FROM images)"):
            if n:
                problems.append("cycle %d: %d vectors without a row" % (cycle, n))
        rows = {sha for (sha,) in db.execute("SELECT sha256 FROM images")}
    finally:
        db.close()
    blobs = set()
    for dirpath, _, names in os.walk(os.path.join(daemon.data, "blobs")):
        blobs.update(n for n in names if len(n) == 64)
    orphans = blobs - rows
    if orphans:
        problems.append("cycle %d: %d originals without a row (%s...)" % (cycle, len(orphans), sorted(orphans)[0][:16]))
    chk = subprocess.run([args.clipd, "check", "--data", daemon.data], capture_output=True, text=True)
    if chk.returncode != 0:
        problems.append("cycle %d: clipd check: %s" % (cycle, chk.stdout.strip()[:500]))
    return lost, problems


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("cycles", type=int)
    ap.add_argument("--clipd", default=os.path.join(ROOT, "build", "clipd"))
    ap.add_argument("--model", default=os.path.join(ROOT, "tests", "data", "tiny-clip-hf"))
    ap.add_argument("--threads", type=int, default=4)
    ap.add_argument("--min-load", type=float, default=0.2, help="seconds of load before the kill, at least")
    ap.add_argument("--max-load", type=float, default=2.0)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--full-every", type=int, default=25,
                    help="check every image every N cycles (in between: this cycle's writes and a sample)")
    ap.add_argument("--keep", action="store_true", help="keep the data directory")
    args = ap.parse_args()
    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    random.seed(seed)
    tmp = tempfile.mkdtemp(prefix="clipd-soak-")
    data = os.path.join(tmp, "data")
    daemon = Daemon(args, data, tmp)
    ledger = Ledger()
    ledger.failures = []
    total_lost = 0
    problems = []
    # a copy of the binary, so that a rebuild during the soak changes nothing
    clipd = os.path.join(tmp, "clipd")
    shutil.copy2(args.clipd, clipd)
    args.clipd = clipd
    print("soak: seed %d, data in %s" % (seed, tmp), flush=True)
    daemon.start()
    try:
        for cycle in range(1, args.cycles + 1):
            stop = threading.Event()
            threads = [threading.Thread(target=client, args=(n, daemon.port, ledger, stop,
                                                             (seed * 7919 + cycle * 131 + n) & 0xFFFFFF))
                       for n in range(args.threads)]
            for t in threads:
                t.start()
            time.sleep(random.uniform(args.min_load, args.max_load))
            stop.set()
            daemon.kill()
            for t in threads:
                t.join(60)
            daemon.start()
            full = cycle % args.full_every == 0 or cycle == args.cycles
            lost, found = verify(args, daemon, ledger, cycle, full)
            total_lost += lost
            problems += found + ["cycle %d: %s" % (cycle, f) for f in ledger.failures]
            ledger.failures = []
            if cycle % 10 == 0 or cycle == args.cycles:
                print("cycle %d: %d images, %d deleted, %d acknowledged writes, %d lost, %d problems"
                      % (cycle, len(ledger.images), len(ledger.deleted), ledger.acked, total_lost, len(problems)),
                      flush=True)
    finally:
        daemon.stop()
    for p in problems[:20]:
        print("problem: " + p)
    print("%d cycles, %d acknowledged writes, %d lost" % (args.cycles, ledger.acked, total_lost))
    if not args.keep and not problems and total_lost == 0:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0 if total_lost == 0 and not problems else 1


if __name__ == "__main__":
    sys.exit(main())
