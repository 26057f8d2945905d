"""Export: `clipd export` and GET /export write the stored vectors as a
NumPy .npy, the image objects as JSON lines in the same order and the
model; the vectors are the images' own (checked against /embed of each
original), and GET /export is a tar that any tool unpacks."""

import io
import json
import os
import subprocess
import tarfile

import numpy as np
import pytest

from helpers import CLIPD, Server, fixture, make_png

KEYS = "reader-key-0001 read\nwriter-key-0002 write\n"
WRITE = {"Authorization": "Bearer writer-key-0002"}
READ = {"Authorization": "Bearer reader-key-0001"}


@pytest.fixture(scope="module")
def stocked(tmp_path_factory):
    """A keyed daemon with five images stored and one deleted (a gap in the ids)."""
    tmp = tmp_path_factory.mktemp("export")
    (tmp / "keys").write_text(KEYS)
    s = Server(tmp, "--api-key-file", str(tmp / "keys")).start()
    images = [fixture("coffee.png")] + [make_png(40 + 7 * i, 32 + 5 * i, seed=i) for i in range(5)]
    ids = []
    for i, data in enumerate(images):
        r = s.upload(data, query="?filename=img%d.png" % i, headers=WRITE)
        assert r.status == 201, r
        ids.append(r.json()["id"])
    r = s.request("PATCH", "/images/%d" % ids[1], body=json.dumps({"album": "Paris \u00e9t\u00e9"}),
                  headers=dict(WRITE, **{"Content-Type": "application/json"}))
    assert r.status == 200, r
    assert s.request("DELETE", "/images/%d" % ids[2], headers=WRITE).status == 204
    yield s, [i for i in ids if i != ids[2]]
    assert s.stop() == 0


def read_npy(raw):
    assert raw[:8] == b"\x93NUMPY\x01\x00"
    header_len = int.from_bytes(raw[8:10], "little")
    assert (10 + header_len) % 64 == 0
    header = raw[10:10 + header_len].decode("latin1")
    assert "'descr': '<f4'" in header and "'fortran_order': False" in header
    return np.load(io.BytesIO(raw), allow_pickle=False)


def check_export(server, ids, files):
    vecs = read_npy(files["vectors.npy"])
    lines = files["images.jsonl"].decode("utf-8").splitlines()
    model = json.loads(files["model.json"])
    info = server.get("/info", headers=READ).json()
    assert vecs.dtype == np.dtype("<f4") and vecs.flags["C_CONTIGUOUS"]
    assert vecs.shape == (len(ids), info["model"]["dim"])
    assert model["dim"] == info["model"]["dim"]
    assert model["fingerprint"] == info["model"]["fingerprint"]
    assert model["name"] == info["model"]["name"]
    assert model["count"] == len(ids)
    objs = [json.loads(line) for line in lines]
    assert [o["id"] for o in objs] == ids   # ascending id order, the deleted one absent
    for o, v in zip(objs, vecs):
        assert o == server.get("/images/%d" % o["id"], headers=READ).json()
        original = server.get("/images/%d/file" % o["id"], headers=READ).body
        r = server.request("POST", "/embed", body=original,
                           headers=dict(READ, **{"Content-Type": o["mime"]}))
        assert r.status == 200, r
        e = np.array(r.json()["embedding"], dtype=np.float64)
        cos = float(np.dot(v, e) / (np.linalg.norm(v) * np.linalg.norm(e)))
        assert cos >= 0.99999, (o["id"], cos)
        assert abs(float(np.linalg.norm(v)) - 1) < 1e-5


def test_export_command_beside_the_server(stocked, tmp_path):
    server, ids = stocked
    out = tmp_path / "out"
    p = subprocess.run([CLIPD, "export", "--data", server.data, "--out", str(out)],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert "exported %d images" % len(ids) in p.stdout
    assert sorted(os.listdir(out)) == ["images.jsonl", "model.json", "vectors.npy"]
    check_export(server, ids, {n: (out / n).read_bytes() for n in os.listdir(out)})


def test_export_command_refuses_a_directory_that_is_not_empty(stocked, tmp_path):
    server, _ = stocked
    out = tmp_path / "full"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    p = subprocess.run([CLIPD, "export", "--data", server.data, "--out", str(out)],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 1
    assert "not empty" in p.stderr
    assert os.listdir(out) == ["keep.txt"]
    p = subprocess.run([CLIPD, "export", "--data", server.data], capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and "--out" in p.stderr


def test_get_export_streams_a_tar_of_the_same_files(stocked, tmp_path):
    server, ids = stocked
    r = server.get("/export", headers=WRITE)
    assert r.status == 200, r
    assert r.headers["content-type"] == "application/x-tar"
    assert int(r.headers["content-length"]) == len(r.body)
    assert "clipd-export.tar" in r.headers["content-disposition"]
    with tarfile.open(fileobj=io.BytesIO(r.body), mode="r:") as tar:
        members = tar.getmembers()
        assert [m.name for m in members] == ["vectors.npy", "images.jsonl", "model.json"]
        assert all(m.isfile() for m in members)
        files = {m.name: tar.extractfile(m).read() for m in members}
    check_export(server, ids, files)
    # The system's tar unpacks it too.
    (tmp_path / "export.tar").write_bytes(r.body)
    subprocess.run(["tar", "-xf", "export.tar"], cwd=tmp_path, check=True)
    assert (tmp_path / "vectors.npy").read_bytes() == files["vectors.npy"]
    # Nothing is left in the data directory's tmp/.
    assert os.listdir(os.path.join(server.data, "tmp")) == []


def test_get_export_needs_a_write_key(stocked):
    server, _ = stocked
    assert server.get("/export").status == 401
    r = server.get("/export", headers=READ)
    assert r.status == 403 and r.error_code() == "forbidden"
    r = server.request("POST", "/export", headers=WRITE)
    assert r.status == 405


def test_export_of_an_empty_collection(make_server, tmp_path):
    s = make_server().start()
    r = s.get("/export")
    assert r.status == 200, r
    with tarfile.open(fileobj=io.BytesIO(r.body), mode="r:") as tar:
        raw = tar.extractfile("vectors.npy").read()
        assert tar.extractfile("images.jsonl").read() == b""
    assert read_npy(raw).shape == (0, s.get("/info").json()["model"]["dim"])
