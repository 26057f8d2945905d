#!/usr/bin/env bash
# The photo-library benchmark (issue 13), figures side by side in one run
# (a command, not a test; run it on a quiet machine):
#
#   deploy/bench/library.sh [--model DIR] [--photos N] [--rescan-files N]
#                           [--rss-files N] [--work DIR] [--catalog sqlite|postgresql]
#
# 1. Scan throughput against the HTTP upload rate on the same files: N
#    distinct 12-megapixel JPEGs (default 200; deploy/bench/gen-photos.py,
#    made once under /var/tmp/clipd-bench/photos) indexed by
#    `clipd serve --library` on a fresh data directory (images per second
#    from the scan's start to its end), then uploaded by `clipd import
#    --jobs 8` to another fresh server (images per second of the whole
#    import). Bar: the scan at least 90% of the upload rate. Then search
#    latency: p50/p99 of sequential text searches during a second scan of
#    the same files (a fresh server) and with the server idle.
# 2. The rescan of an unchanged library of 10,000 files (tiny PNGs and the
#    tiny test checkpoint: a rescan reads no file, so the model does not
#    matter). Bar: under 2 s.
# 3. Peak memory of a scan over 100,000 tiny files: the server starts with
#    the library offline (its folder absent), its idle RSS is read, the
#    folder is moved in and scanned, and its peak RSS (VmHWM) read after.
#    Bar: peak - idle under 100 MB.
# A count of 0 (--photos 0, --rescan-files 0, --rss-files 0) skips that part.
# --catalog postgresql runs every server on a PostgreSQL catalog (a
# throw-away PostgreSQL 15 cluster on loopback, tests/pg/pg-cluster.sh, a
# fresh database per server) instead of SQLite; run it both ways to compare.
#
# The model for 1. defaults to the ViT-B/32-shaped random checkpoint of
# ../shared/tools/clipweights.py (as deploy/bench/encoder.sh). Prints one
# JSON line per figure, then the bars.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
shared=${CLIPD_SHARED:-../shared}
model="" photos=200 rescan_files=10000 rss_files=100000 work=/var/tmp/clipd-bench catalog=sqlite
while [ $# -gt 0 ]; do
	case "$1" in
	--model) model=$2; shift 2 ;;
	--photos) photos=$2; shift 2 ;;
	--rescan-files) rescan_files=$2; shift 2 ;;
	--rss-files) rss_files=$2; shift 2 ;;
	--work) work=$2; shift 2 ;;
	--catalog) catalog=$2; shift 2 ;;
	-h|--help) sed -n '2,31p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "library.sh: unknown argument '$1'" >&2; exit 2 ;;
	esac
done
mkdir -p "$work"
[ -x build/clipd ] || bash deploy/bootstrap.sh
if [ -z "$model" ]; then
	model=$work/vit-b-32
	if [ ! -f "$model/model.safetensors" ]; then
		/usr/bin/python3 -c 'import numpy' 2>/dev/null || apt-get install -y -q python3-numpy >/dev/null
		/usr/bin/python3 "$shared/tools/clipweights.py" vit-b-32-bench "$model" encoder/data/bpe_simple_vocab_16e6.txt.gz >/dev/null
	fi
fi
tiny=$root/tests/data/tiny-clip-hf
pg_dir=""
case "$catalog" in
sqlite) ;;
postgresql)
	read -r pg_dir pg_uri < <(bash tests/pg/pg-cluster.sh start)
	trap 'bash tests/pg/pg-cluster.sh stop "$pg_dir"' EXIT
	export CLIPD_BENCH_PG_DIR=$pg_dir CLIPD_BENCH_PG_URI=$pg_uri ;;
*) echo "library.sh: --catalog is sqlite or postgresql" >&2; exit 2 ;;
esac
echo "# machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg); catalog: $catalog"

/usr/bin/python3 - "$root/build/clipd" "$model" "$tiny" "$work" "$photos" "$rescan_files" "$rss_files" <<'PY'
import http.client, json, os, shutil, signal, statistics, subprocess, sys, time, urllib.parse, zlib, struct, random

clipd, model, tiny, work, n_photos, n_rescan, n_rss = sys.argv[1:4] + [sys.argv[4]] + [int(x) for x in sys.argv[5:8]]
root = os.getcwd()


class Server:
    def __init__(self, name, model, *args):
        self.dir = os.path.join(work, "run-" + name)
        shutil.rmtree(self.dir, ignore_errors=True)
        os.makedirs(self.dir)
        if os.environ.get("CLIPD_BENCH_PG_DIR"):   # --catalog postgresql: a fresh database per server
            db = "bench_%s_%d" % (name.replace("-", "_"), os.getpid())
            subprocess.run(["bash", "tests/pg/pg-cluster.sh", "createdb", os.environ["CLIPD_BENCH_PG_DIR"], db],
                           check=True)
            args = ("--catalog", "%s/%s" % (os.environ["CLIPD_BENCH_PG_URI"], db)) + args
        port_file = os.path.join(self.dir, "port")
        self.log = open(os.path.join(self.dir, "log"), "wb")
        self.proc = subprocess.Popen([clipd, "serve", "--model", model, "--data", os.path.join(self.dir, "data"),
                                      "--listen", "127.0.0.1:0", "--port-file", port_file] + list(args),
                                     stdout=self.log, stderr=self.log)
        while not os.path.exists(port_file):
            assert self.proc.poll() is None, "clipd exited"
            time.sleep(0.05)
        self.port = int(open(port_file).read())
        while self.get("/readyz")[0] != 200:
            time.sleep(0.05)

    def get(self, path, method="GET"):
        try:
            c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=600)
            c.request(method, path)
            r = c.getresponse()
            body = r.read()
            c.close()
            return r.status, body
        except OSError:
            return 0, b""

    def library(self, name):
        return [l for l in json.loads(self.get("/libraries")[1])["libraries"] if l["name"] == name][0]

    def wait_scanned(self, name, before=None):
        while True:
            l = self.library(name)
            if l["state"] != "scanning" and l["last_scan"] and l["last_scan"]["finished_at"] != before:
                return l
            time.sleep(0.02)

    def rss_kb(self, field):
        for line in open("/proc/%d/status" % self.proc.pid):
            if line.startswith(field + ":"):
                return int(line.split()[1])

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(120)
        self.log.close()


def seconds(a, b):
    from datetime import datetime
    f = lambda s: datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()
    return f(b) - f(a)


def searches(server, stop_when, limit=400, first=0):
    """Sequential text searches until stop_when() or limit; latencies in ms.
    Queries first, first + 1, ...: distinct, so none is a cache hit."""
    c = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    out = []
    i = first
    while not stop_when() and len(out) < limit:
        q = urllib.parse.quote("a photo of thing number %d" % i)   # distinct: no cache hits
        i += 1
        t = time.perf_counter()
        c.request("GET", "/search?k=10&q=" + q)
        c.getresponse().read()
        out.append((time.perf_counter() - t) * 1e3)
    c.close()
    return out


def pct(v, p):
    v = sorted(v)
    return v[min(len(v) - 1, int(round(p / 100 * (len(v) - 1))))] if v else float("nan")


def emit(**kw):
    print(json.dumps(kw), flush=True)


# ---- 1. scan against upload, search latency during the scan --------------------------
scan_rate = upload_rate = rescan_s = None
during, idle = [], []
if n_photos > 0:
    photos = os.path.join(work, "photos")
    subprocess.run(["/usr/bin/python3", os.path.join(root, "deploy/bench/gen-photos.py"), photos, str(n_photos)], check=True)
    # the scan alone (as the import below runs alone), then another scan of
    # the same files on a fresh server with searches running meanwhile
    s = Server("scan", model, "--library", "photos=" + photos, "--library-settle", "0", "--library-rescan", "0")
    lib = s.wait_scanned("photos")
    s.stop()
    scan_s = seconds(lib["last_scan"]["started_at"], lib["last_scan"]["finished_at"])
    s = Server("scan-search", model, "--library", "photos=" + photos, "--library-settle", "0",
               "--library-rescan", "0")
    while s.library("photos")["state"] != "scanning" and not s.library("photos")["last_scan"]:
        time.sleep(0.01)
    during = searches(s, lambda: s.library("photos")["state"] != "scanning")
    s.wait_scanned("photos")
    idle = searches(s, lambda: False, limit=len(during) or 200, first=1000000)
    s.stop()
    scan_rate = lib["images"] / scan_s
    emit(figure="scan", images=lib["images"], seconds=round(scan_s, 2), images_per_s=round(scan_rate, 2))
    emit(figure="search_during_scan", n=len(during), p50_ms=round(pct(during, 50), 2), p99_ms=round(pct(during, 99), 2))
    emit(figure="search_idle", n=len(idle), p50_ms=round(pct(idle, 50), 2), p99_ms=round(pct(idle, 99), 2))

    u = Server("upload", model)
    t0 = time.perf_counter()
    r = subprocess.run([clipd, "import", "--url", "http://127.0.0.1:%d" % u.port, "--jobs", "8", photos],
                       capture_output=True, text=True)
    up_s = time.perf_counter() - t0
    u.stop()
    assert r.returncode == 0, r.stdout + r.stderr
    upload_rate = n_photos / up_s
    emit(figure="upload", images=n_photos, seconds=round(up_s, 2), images_per_s=round(upload_rate, 2))


# ---- 2. rescan of an unchanged library --------------------------------------------------
def png(seed):
    rnd = random.Random(seed)
    raw = zlib.compress(b"".join(b"\0" + bytes(rnd.randrange(256) for _ in range(24)) for _ in range(8)), 1)
    ch = lambda t, p: struct.pack(">I", len(p)) + t + p + struct.pack(">I", zlib.crc32(t + p) & 0xFFFFFFFF)
    return b"\x89PNG\r\n\x1a\n" + ch(b"IHDR", struct.pack(">IIBBBBB", 8, 8, 8, 2, 0, 0, 0)) + ch(b"IDAT", raw) + ch(b"IEND", b"")


def tree(path, n):
    marker = os.path.join(path, ".complete-%d" % n)
    if os.path.exists(marker):
        return
    shutil.rmtree(path, ignore_errors=True)
    for i in range(n):
        d = os.path.join(path, "d%03d" % (i % 500))
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, "p%06d.png" % i), "wb") as f:
            f.write(png(i))
    open(marker, "w").close()


if n_rescan > 0:
    small = os.path.join(work, "tiny-%d" % n_rescan)
    tree(small, n_rescan)
    s = Server("rescan", tiny, "--library", "small=" + small, "--library-settle", "0", "--library-rescan", "0")
    lib = s.wait_scanned("small")
    first = lib["last_scan"]["finished_at"]
    t0 = time.perf_counter()
    s.get("/libraries/small/scan", "POST")
    lib = s.wait_scanned("small", first)
    wall = time.perf_counter() - t0
    s.stop()
    emit(figure="rescan_unchanged", files=lib["files_seen"], unchanged=lib["unchanged"],
         seconds=round(seconds(lib["last_scan"]["started_at"], lib["last_scan"]["finished_at"]), 3), wall_s=round(wall, 3))
    rescan_s = wall

# ---- 3. peak memory of a scan over many files -----------------------------------------------
peak_kb = idle_kb = None
if n_rss > 0:
    big = os.path.join(work, "tiny-%d" % n_rss)
    tree(big, n_rss)
    place = os.path.join(work, "rss-library")
    if os.path.islink(place):
        os.unlink(place)
    s = Server("rss", tiny, "--library", "big=" + place, "--library-settle", "0", "--library-rescan", "0")
    while s.library("big")["state"] != "offline":
        time.sleep(0.05)
    time.sleep(1)
    idle_kb = s.rss_kb("VmRSS")
    os.symlink(big, place)   # the root itself may be a link; nothing under it is followed
    s.get("/libraries/big/scan", "POST")
    lib = s.wait_scanned("big")
    peak_kb = s.rss_kb("VmHWM")
    s.stop()
    os.unlink(place)
    emit(figure="scan_memory", files=lib["files_seen"], images=lib["images"], idle_rss_mb=round(idle_kb / 1024, 1),
         peak_rss_mb=round(peak_kb / 1024, 1), above_idle_mb=round((peak_kb - idle_kb) / 1024, 1))

print("# bars (a figure not measured: its part was skipped with a count of 0)")
print("| figure | measured | bar |")
print("|---|---|---|")
if scan_rate is not None:
    print("| scan / HTTP upload rate | %.2f / %.2f images/s = %.0f%% | >= 90%% |" % (scan_rate, upload_rate, 100 * scan_rate / upload_rate))
    print("| search p99 during a scan / idle | %.1f / %.1f ms | (reported) |" % (pct(during, 99), pct(idle, 99)))
if rescan_s is not None:
    print("| rescan of %d unchanged files | %.2f s | < 2 s |" % (n_rescan, rescan_s))
if peak_kb is not None:
    print("| scan of %d files: peak RSS above idle | %.1f MB | < 100 MB |" % (n_rss, (peak_kb - idle_kb) / 1024))
PY
