"""Shared helpers for the end-to-end tests: start the real `clipd serve`,
talk HTTP to it with the standard library, make images, build multipart
bodies, check JSON against the OpenAPI document's schemas."""

import hashlib
import http.client
import json
import os
import random
import re
import shlex
import signal
import socket
import struct
import subprocess
import time
import urllib.parse
import zlib
from datetime import datetime

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
CLIPD = os.environ.get("CLIPD_BIN") or os.path.join(REPO, "build", "clipd")
DATA = os.environ.get("TEST_DATA_DIR") or os.path.join(REPO, "tests", "data")
MODEL = os.path.join(DATA, "tiny-clip-hf")
IMAGES = os.path.join(DATA, "images")
GOLDEN = os.path.join(MODEL, "golden.json")

# Under a sanitizer everything is slower: conftest sets this from
# --slow-factor (or CLIPD_E2E_SLOW).
SLOW = float(os.environ.get("CLIPD_E2E_SLOW", "1"))

# Extra `clipd serve` arguments for every daemon the suite starts: the
# whole suite against another configuration, e.g.
#   CLIPD_E2E_SERVE_ARGS="--precision bf16" meson test -C build e2e
SERVE_ARGS = shlex.split(os.environ.get("CLIPD_E2E_SERVE_ARGS", ""))
# The precision those daemons compute in (what tolerances against the
# fp32 reference goldens depend on).
PRECISION = "fp32"
for _i, _a in enumerate(SERVE_ARGS):
    if _a == "--precision" and _i + 1 < len(SERVE_ARGS):
        PRECISION = SERVE_ARGS[_i + 1]
    elif _a.startswith("--precision="):
        PRECISION = _a.split("=", 1)[1]


def cpu_has(flag):
    """Whether /proc/cpuinfo lists flag (e.g. avx512_bf16)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return flag in line.split()
    except OSError:
        pass
    return False


def fixture(name):
    with open(os.path.join(IMAGES, name), "rb") as f:
        return f.read()


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.header_list = headers
        self.headers = {k.lower(): v for k, v in headers}
        self.body = body
        self._json = None

    def json(self):
        if self._json is None:
            self._json = json.loads(self.body)
        return self._json

    def error_code(self):
        return self.json()["error"]["code"]

    def __repr__(self):
        return "<%d %s>" % (self.status, self.body[:300])


class Server:
    """One `clipd serve` on an ephemeral loopback port."""

    def __init__(self, tmp_path, *args, data_dir=None, env=None, model=MODEL, wrap=(), binary=None):
        # wrap: a command the daemon runs under (setpriv ... to drop root);
        # binary: another copy of clipd (one that user can reach)
        self.wrap = list(wrap)
        self.binary = binary or CLIPD
        self.tmp = str(tmp_path)
        self.data = data_dir or os.path.join(self.tmp, "data")
        self.args = list(args)
        self.env = dict(os.environ)
        for k, v in (env or {}).items():
            if v is None:
                self.env.pop(k, None)
            else:
                self.env[k] = v
        self.model = model
        # "postgresql" when the catalog is in PostgreSQL (--catalog), else "sqlite"
        self.catalog = "postgresql" if "--catalog" in self.args else "sqlite"
        self.proc = None
        self.port = None
        self.port_file = os.path.join(self.tmp, "port")
        self.log_path = os.path.join(self.tmp, "clipd-%d.log" % random.randrange(1 << 30))

    def start(self, wait_ready=True, timeout=60):
        if os.path.exists(self.port_file):
            os.unlink(self.port_file)
        cmd = self.wrap + [self.binary, "serve", "--model", self.model, "--data", self.data,
               "--listen", "127.0.0.1:0", "--port-file", self.port_file] + SERVE_ARGS + self.args
        self.logf = open(self.log_path, "ab")
        self.proc = subprocess.Popen(cmd, stdout=self.logf, stderr=self.logf, env=self.env)
        deadline = time.time() + timeout * SLOW
        while not os.path.exists(self.port_file):
            if self.proc.poll() is not None:
                raise RuntimeError("clipd exited with %d:\n%s" % (self.proc.returncode, self.log()))
            if time.time() > deadline:
                raise RuntimeError("clipd did not listen:\n" + self.log())
            time.sleep(0.02)
        with open(self.port_file) as f:
            self.port = int(f.read().strip())
        if wait_ready:
            while True:
                try:
                    if self.request("GET", "/readyz").status == 200:
                        break
                except OSError:
                    pass
                if self.proc.poll() is not None:
                    raise RuntimeError("clipd exited with %d:\n%s" % (self.proc.returncode, self.log()))
                if time.time() > deadline:
                    raise RuntimeError("clipd did not get ready:\n" + self.log())
                time.sleep(0.02)
        return self

    def log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def connection(self, timeout=60):
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout * SLOW)

    def request(self, method, path, body=None, headers=None, timeout=60, conn=None):
        own = conn is None
        c = conn or self.connection(timeout)
        try:
            c.request(method, path, body=body, headers=headers or {})
            r = c.getresponse()
            data = r.read()
            return Response(r.status, r.getheaders(), data)
        finally:
            if own:
                c.close()

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def upload(self, data, content_type="image/png", query="", headers=None):
        h = {"Content-Type": content_type}
        h.update(headers or {})
        return self.request("POST", "/images" + query, body=data, headers=h)

    def search(self, q, **params):
        params["q"] = q
        return self.get("/search?" + urllib.parse.urlencode(params, quote_via=urllib.parse.quote))

    def stop(self, sig=signal.SIGTERM, timeout=60):
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout * SLOW)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        self.logf.close()
        self.proc = None
        if rc is not None and rc < 0 and rc != -sig:
            # killed by something other than the signal sent (an abort, a
            # crash): the end of its log goes into the test's report
            print("clipd ended with signal %d; the end of its log:\n%s" % (-rc, self.log()[-3000:]))
        return rc

    def kill(self):
        return self.stop(signal.SIGKILL)


def search_ids(s, q="a photo", k=50):
    """The ids a node's text search answers, in order."""
    r = s.search(q, k=k)
    assert r.status == 200, r
    return [h["id"] for h in r.json()["results"]]


def wait_for(pred, timeout):
    """Seconds until pred() held, or None when it did not within timeout."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if pred():
            return time.monotonic() - t0
        time.sleep(0.01)
    return None


def make_png(w, h, seed=0, rgb=None):
    """A PNG (8-bit RGB) of random pixels, or one colour."""
    rnd = random.Random(seed)
    rows = []
    for _ in range(h):
        if rgb is None:
            row = bytes(rnd.randrange(256) for _ in range(w * 3))
        else:
            row = bytes(rgb) * w
        rows.append(b"\0" + row)
    raw = zlib.compress(b"".join(rows), 1)

    def chunk(tag, payload):
        return struct.pack(">I", len(payload)) + tag + payload + struct.pack(">I", zlib.crc32(tag + payload) & 0xFFFFFFFF)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", raw) + chunk(b"IEND", b""))


def png_header_only(w, h):
    """A PNG whose header states w x h pixels (no real pixel data)."""
    def chunk(tag, payload):
        return struct.pack(">I", len(payload)) + tag + payload + struct.pack(">I", zlib.crc32(tag + payload) & 0xFFFFFFFF)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b""))


def multipart(parts, boundary="----clipdTestBoundary8d3f"):
    """parts: (name, filename or None, content_type or None, bytes)."""
    out = []
    for name, filename, ctype, data in parts:
        disp = 'form-data; name="%s"' % name
        if filename is not None:
            disp += '; filename="%s"' % filename
        head = "--%s\r\nContent-Disposition: %s\r\n" % (boundary, disp)
        if ctype:
            head += "Content-Type: %s\r\n" % ctype
        out.append(head.encode() + b"\r\n" + data + b"\r\n")
    out.append(("--%s--\r\n" % boundary).encode())
    return b"".join(out), "multipart/form-data; boundary=" + boundary


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def raw_request(port, data, read=True, timeout=30):
    """Send raw bytes on a fresh socket; return what comes back (until close)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout * SLOW)
    try:
        s.sendall(data)
        if not read:
            return s
        chunks = []
        while True:
            try:
                b = s.recv(65536)
            except (ConnectionResetError, socket.timeout):
                break
            if not b:
                break
            chunks.append(b)
        return b"".join(chunks)
    finally:
        if read:
            s.close()


def parse_raw_response(raw):
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = [tuple(x.strip() for x in l.split(":", 1)) for l in lines[1:] if ":" in l]
    return Response(status, headers, body)


# ---- a small JSON Schema checker (the subset openapi.json uses) ----------

class SchemaError(AssertionError):
    pass


def _type_ok(value, t):
    if t == "object":
        return isinstance(value, dict)
    if t == "array":
        return isinstance(value, list)
    if t == "string":
        return isinstance(value, str)
    if t == "integer":
        return isinstance(value, int) and not isinstance(value, bool) or (
            isinstance(value, float) and value.is_integer())
    if t == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if t == "boolean":
        return isinstance(value, bool)
    if t == "null":
        return value is None
    raise SchemaError("unknown type " + t)


def validate(value, schema, doc, path="$"):
    """Raise SchemaError unless value fits schema (resolving $ref in doc)."""
    if "$ref" in schema:
        ref = schema["$ref"]
        assert ref.startswith("#/"), ref
        target = doc
        for part in ref[2:].split("/"):
            target = target[part]
        return validate(value, target, doc, path)
    if "oneOf" in schema:
        ok = 0
        errors = []
        for sub in schema["oneOf"]:
            try:
                validate(value, sub, doc, path)
                ok += 1
            except SchemaError as e:
                errors.append(str(e))
        if ok != 1:
            raise SchemaError("%s: matches %d of oneOf (%s)" % (path, ok, "; ".join(errors)[:500]))
    if "type" in schema:
        types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        if not any(_type_ok(value, t) for t in types):
            raise SchemaError("%s: %r is not %s" % (path, value, types))
    if "enum" in schema and value not in schema["enum"]:
        raise SchemaError("%s: %r not in %r" % (path, value, schema["enum"]))
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            raise SchemaError("%s: %r < %r" % (path, value, schema["minimum"]))
        if "maximum" in schema and value > schema["maximum"]:
            raise SchemaError("%s: %r > %r" % (path, value, schema["maximum"]))
    if isinstance(value, str):
        if "pattern" in schema and not re.search(schema["pattern"], value):
            raise SchemaError("%s: %r does not match %s" % (path, value, schema["pattern"]))
        if "minLength" in schema and len(value) < schema["minLength"]:
            raise SchemaError("%s: too short" % path)
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            raise SchemaError("%s: too long" % path)
        if schema.get("format") == "date-time":
            try:
                datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                raise SchemaError("%s: %r is not a date-time" % (path, value))
    if isinstance(value, dict):
        props = schema.get("properties", {})
        for key in schema.get("required", []):
            if key not in value:
                raise SchemaError("%s: missing %s" % (path, key))
        for key, v in value.items():
            if key in props:
                validate(v, props[key], doc, path + "." + key)
            elif schema.get("additionalProperties") is False:
                raise SchemaError("%s: unexpected property %s" % (path, key))
            elif isinstance(schema.get("additionalProperties"), dict):
                validate(v, schema["additionalProperties"], doc, path + "." + key)
    if isinstance(value, list):
        if "minItems" in schema and len(value) < schema["minItems"]:
            raise SchemaError("%s: too few items" % path)
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            raise SchemaError("%s: too many items" % path)
        if "items" in schema:
            for i, v in enumerate(value):
                validate(v, schema["items"], doc, "%s[%d]" % (path, i))


def load_openapi(server):
    r = server.get("/openapi.json")
    assert r.status == 200, r
    return r.json()


def check_response(doc, template, method, resp):
    """Validate resp against openapi.json's schema for this route and status."""
    op = doc["paths"][template][method.lower()]
    spec = op["responses"].get(str(resp.status))
    if spec is None:
        raise SchemaError("%s %s: status %d is not documented" % (method, template, resp.status))
    if "$ref" in spec:
        spec = doc["components"]["responses"][spec["$ref"].split("/")[-1]]
    content = spec.get("content")
    if not content:
        assert resp.body == b"", "%s %s %d: a body was not documented" % (method, template, resp.status)
        return
    ctype = resp.headers.get("content-type", "").split(";")[0].strip()
    if ctype == "application/json":
        assert "application/json" in content, "%s %s: JSON not documented" % (method, template)
        validate(resp.json(), content["application/json"]["schema"], doc)
    else:
        ok = any(ctype == c or (c.endswith("/*") and ctype.startswith(c[:-1])) for c in content)
        assert ok, "%s %s: %s not documented (%s)" % (method, template, ctype, list(content))


def wait_log(server, text, timeout=10):
    """The request log line comes after the response: wait for it."""
    deadline = time.time() + timeout * SLOW
    while text not in server.log():
        if time.time() > deadline:
            raise AssertionError("%r not in the log:\n%s" % (text, server.log()[-3000:]))
        time.sleep(0.02)
