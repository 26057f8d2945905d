"""`clipd serve --precision bf16`: the whole API on bf16 vectors, the
precision as part of the model (a data directory of fp32 vectors is refused
at bf16 until `clipd reembed --precision bf16` converts it), and bf16
refused at start, naming the feature, on a CPU without AVX512_BF16
(simulated with CLIPD_CPU). The whole suite runs against bf16 with
CLIPD_E2E_SERVE_ARGS="--precision bf16" (README, "Tests")."""

import json
import math
import os
import subprocess

import pytest

from helpers import CLIPD, MODEL, SLOW, Server, cpu_has, fixture

bf16_cpu = pytest.mark.skipif(not cpu_has("avx512_bf16"), reason="this CPU has no AVX512_BF16")


def cosine(a, b):
    return sum(x * y for x, y in zip(a, b)) / math.sqrt(sum(x * x for x in a) * sum(y * y for y in b))


def encode_text(text, precision):
    p = subprocess.run([CLIPD, "encode", "--model", MODEL, "--precision", precision, "--text", text],
                       capture_output=True, text=True, timeout=120 * SLOW)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout.splitlines()[0])["embedding"]


def post_json(server, path, body):
    return server.request("POST", path, body=json.dumps(body), headers={"Content-Type": "application/json"})


@bf16_cpu
def test_bf16_serves_the_whole_api(tmp_path):
    s = Server(tmp_path, "--precision", "bf16").start()
    try:
        model = s.get("/info").json()["model"]
        assert model["precision"] == "bf16" and model["kernel"] == "avx512-bf16", model
        ids = {}
        for name in ("horse.png", "chelsea.png", "rocket.jpg"):
            r = s.upload(fixture(name), content_type="image/jpeg" if name.endswith(".jpg") else "image/png")
            assert r.status == 201, r
            ids[name] = r.json()["id"]
        r = s.search("a horse", k=3)
        assert r.status == 200 and len(r.json()["results"]) == 3, r
        r = s.get("/images/%d/similar?k=2" % ids["horse.png"])
        assert r.status == 200 and len(r.json()["results"]) == 2, r
        r = post_json(s, "/classify", {"image_id": ids["horse.png"], "labels": ["a horse", "a cat", "a rocket"]})
        assert r.status == 200 and abs(sum(x["score"] for x in r.json()["labels"]) - 1) < 1e-5, r
        r = post_json(s, "/embed", {"texts": ["a red bicycle"]})
        assert r.status == 200, r
        v = r.json()["embeddings"][0]
        # the daemon's vector is bf16's (clipd encode --precision bf16), near fp32's but not it
        assert cosine(v, encode_text("a red bicycle", "bf16")) >= 0.99999
        c = cosine(v, encode_text("a red bicycle", "fp32"))
        assert 0.998 <= c < 0.9999999, c
        r = s.request("POST", "/search/image", body=fixture("chelsea.png"), headers={"Content-Type": "image/png"})
        assert r.status == 200 and r.json()["results"][0]["id"] == ids["chelsea.png"], r
    finally:
        assert s.stop() == 0, s.log()


@bf16_cpu
def test_precision_is_part_of_the_model(tmp_path):
    data = str(tmp_path / "data")
    s = Server(tmp_path / "a", "--precision", "fp32", data_dir=data)
    os.makedirs(s.tmp, exist_ok=True)
    s.start()
    assert s.upload(fixture("horse.png")).status == 201
    fp32 = s.get("/info").json()["model"]["fingerprint"]
    assert s.stop() == 0
    # the same model at bf16 does not mix its vectors into them
    b = Server(tmp_path / "b", "--precision", "bf16", data_dir=data)
    os.makedirs(b.tmp, exist_ok=True)
    with pytest.raises(RuntimeError) as e:
        b.start(timeout=30)
    assert "at precision bf16" in str(e.value) and "--precision bf16 --data" in str(e.value)
    # reembed converts; then bf16 serves, with another fingerprint
    p = subprocess.run([CLIPD, "reembed", "--model", MODEL, "--data", data, "--precision", "bf16"],
                       capture_output=True, text=True, timeout=120 * SLOW)
    assert p.returncode == 0, p.stderr
    b.start()
    try:
        info = b.get("/info").json()
        assert info["images"] == 1 and info["model"]["fingerprint"] != fp32
        assert b.search("a horse", k=1).json()["results"][0]["id"] >= 1
    finally:
        assert b.stop() == 0


def test_bf16_refused_without_the_feature(tmp_path):
    port_file = str(tmp_path / "port")
    env = dict(os.environ, CLIPD_CPU="avx512")
    p = subprocess.run([CLIPD, "serve", "--model", MODEL, "--data", str(tmp_path / "data"), "--listen",
                        "127.0.0.1:0", "--port-file", port_file, "--precision", "bf16"],
                       capture_output=True, text=True, env=env, timeout=60 * SLOW)
    assert p.returncode == 1
    assert "bf16 precision needs a CPU with AVX512_BF16" in p.stderr, p.stderr
    assert not os.path.exists(port_file)   # refused before listening
    p = subprocess.run([CLIPD, "encode", "--model", MODEL, "--precision", "bf16", "--text", "a"],
                       capture_output=True, text=True, env=env, timeout=60 * SLOW)
    assert p.returncode == 2 and "AVX512_BF16" in p.stderr, p.stderr
