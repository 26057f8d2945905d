#!/usr/bin/python3
"""Replication lag of a clipd cluster: from a 201 on one node to the
change being applied on another, under a steady upload stream.

    cluster-lag.py --writer URL --reader URL --manifest FILE [--rate R] [--count N]

Posts the JPEGs the manifest lists (one path a line, each once) to the
writer at R uploads a second (default 10), one at a time; after each 201
it reads `GET /images/ID?min_seq=SEQ` from the reader, SEQ the 201's
X-Clipd-Seq: the reader answers once it has applied that change, so the
time from the 201 to that answer is the lag (plus one loopback round trip,
a fraction of a millisecond). Prints one JSON line: p50, p99 and max in
milliseconds, the uploads, the rate reached, and any errors."""

import argparse
import http.client
import json
import sys
import time
import urllib.parse


def connect(url):
    u = urllib.parse.urlsplit(url)
    return http.client.HTTPConnection(u.hostname, u.port or 80, timeout=60)


def percentile(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100.0 * (len(xs) - 1))))]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--writer", required=True)
    ap.add_argument("--reader", required=True)
    ap.add_argument("--manifest", required=True)
    ap.add_argument("--rate", type=float, default=10.0)
    ap.add_argument("--count", type=int, default=0, help="uploads (default: every file of the manifest)")
    a = ap.parse_args()
    if a.rate <= 0:
        ap.error("--rate must be positive")
    with open(a.manifest) as f:
        files = [line.strip() for line in f if line.strip()]
    if a.count:
        files = files[:a.count]
    if not files:
        ap.error("no files in %s" % a.manifest)
    w, r = connect(a.writer), connect(a.reader)
    lags, errors = [], []
    t_start = time.monotonic()
    for n, path in enumerate(files):
        # a steady stream: the n-th upload leaves at n / rate seconds
        wait = t_start + n / a.rate - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        with open(path, "rb") as f:
            body = f.read()
        w.request("POST", "/images", body=body, headers={"Content-Type": "image/jpeg"})
        resp = w.getresponse()
        data = resp.read()
        t_ack = time.monotonic()
        if resp.status != 201:
            errors.append("upload %s: %d %s" % (path, resp.status, data[:200]))
            continue
        seq = resp.getheader("X-Clipd-Seq")
        image = json.loads(data)["id"]
        r.request("GET", "/images/%d?min_seq=%s" % (image, seq))
        resp = r.getresponse()
        data = resp.read()
        t_seen = time.monotonic()
        if resp.status != 200:
            errors.append("read %d at %s: %d %s" % (image, seq, resp.status, data[:200]))
            continue
        lags.append((t_seen - t_ack) * 1e3)
    elapsed = time.monotonic() - t_start
    out = {"step": "lag", "uploads": len(files), "measured": len(lags),
           "rate_per_s": round(len(files) / elapsed, 2), "errors": len(errors)}
    if lags:
        out.update(p50_ms=round(percentile(lags, 50), 2), p99_ms=round(percentile(lags, 99), 2),
                   max_ms=round(max(lags), 2))
    print(json.dumps(out, separators=(",", ":")))
    for e in errors[:5]:
        print("cluster-lag: %s" % e, file=sys.stderr)
    return 0 if not errors else 1


if __name__ == "__main__":
    sys.exit(main())
