"""A full disk answers 507 insufficient_storage, leaves nothing half-done,
and uploads work again once space is freed (a small tmpfs; needs root, as
the tests have on these machines and in CI; skipped elsewhere)."""

import os
import subprocess

import pytest

from helpers import make_png


@pytest.fixture
def small_disk(tmp_path):
    mnt = tmp_path / "disk"
    mnt.mkdir()
    p = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mnt)], capture_output=True, text=True)
    if p.returncode != 0:
        pytest.skip("cannot mount a tmpfs here: " + p.stderr.strip())
    yield str(mnt)
    subprocess.run(["umount", "-l", str(mnt)])


def test_disk_full_answers_507(make_server, small_disk):
    s = make_server(data_dir=os.path.join(small_disk, "data")).start()
    stored = []
    full = None
    for i in range(40):
        r = s.upload(make_png(256, 256, seed=500 + i))    # ~200 KB of noise each
        if r.status == 201:
            stored.append(r.json()["id"])
            continue
        full = r
        break
    assert full is not None, "the 3 MiB disk never filled"
    assert full.status == 507 and full.json()["error"]["code"] == "insufficient_storage", full
    assert len(stored) >= 3
    # Nothing half-done: exactly the acknowledged images, all searchable.
    info = s.get("/info").json()
    assert info["images"] == len(stored) and info["index"]["vectors"] == len(stored)
    assert {x["id"] for x in s.search("x", k=1000).json()["results"]} == set(stored)
    # Free space, and uploads work again.
    for i in stored[:4]:
        assert s.request("DELETE", "/images/%d" % i).status == 204
    r = s.upload(make_png(64, 64, seed=999))
    assert r.status == 201, r
    assert s.stop() == 0
