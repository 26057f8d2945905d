#!/usr/bin/python3
"""The daemon's memory with many idle keep-alive connections (issue 17):
start `clipd serve` with the tiny test model, open N connections, ask
/healthz once on each and keep them open, then read the daemon's resident
set size. Prints the RSS before and after and the cost per connection.

    deploy/bench/idle-conns.py [--clipd build/clipd] [--connections 1000]

libmicrohttpd zeroes a connection's whole memory pool after each request,
so a keep-alive connection that has served one holds its whole pool
(http_connection_memory) in the RSS; a connection that never sent a byte
holds almost nothing."""

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return -1


def settle(pid, seconds=1.0):
    time.sleep(seconds)
    return rss_kib(pid)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--clipd", default=os.path.join(REPO, "build", "clipd"))
    ap.add_argument("--model", default=os.path.join(REPO, "tests", "data", "tiny-clip-hf"))
    ap.add_argument("--connections", type=int, default=1000)
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="clipd-idle-")
    port_file = os.path.join(tmp, "port")
    log = open(os.path.join(tmp, "log"), "wb")
    proc = subprocess.Popen([a.clipd, "serve", "--model", a.model, "--data", os.path.join(tmp, "data"),
                             "--listen", "127.0.0.1:0", "--port-file", port_file,
                             "--max-connections", str(a.connections + 24), "--max-connections-per-ip", "0",
                             "--timeout", "600"], stdout=log, stderr=log)
    socks = []
    try:
        while not os.path.exists(port_file):
            if proc.poll() is not None:
                sys.exit("clipd exited: see %s/log" % tmp)
            time.sleep(0.05)
        time.sleep(0.2)
        port = int(open(port_file).read())
        before = settle(proc.pid)
        request = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
        for _ in range(a.connections):
            s = socket.create_connection(("127.0.0.1", port))
            s.sendall(request)
            got = b""
            while not got.endswith(b"}"):   # {"status":"ok"}
                d = s.recv(4096)
                if not d:
                    sys.exit("a connection closed early")
                got += d
            socks.append(s)
        after = settle(proc.pid)
        print("connections %d: RSS %.1f MiB before, %.1f MiB after, %.0f KiB per connection"
              % (len(socks), before / 1024, after / 1024, (after - before) / len(socks)))
    finally:
        for s in socks:
            s.close()
        proc.terminate()
        proc.wait(60)
        log.close()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
