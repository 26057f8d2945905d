"""The layers' include rule (check_includes.py) holds on the tree, and the
check itself catches an include against the direction."""
import os
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
CHECK = os.path.join(HERE, "check_includes.py")
FOLDERS = ["server", "encoder", "index", "tools"]


def run_check(repo):
    return subprocess.run([sys.executable, CHECK, repo], capture_output=True, text=True)


def test_tree_follows_the_layers():
    r = run_check(REPO)
    assert r.returncode == 0, r.stdout


def copy_tree(tmp_path):
    for f in FOLDERS:
        shutil.copytree(os.path.join(REPO, f), tmp_path / f,
                        ignore=shutil.ignore_patterns("www", "*.json", "data"))
    return tmp_path


def plant(path, line):
    text = path.read_text()
    path.write_text(line + "\n" + text)


def test_http_including_the_catalog_is_refused(tmp_path):
    repo = copy_tree(tmp_path)
    plant(repo / "server" / "http" / "http_route.c", '#include "catalog.h"')
    r = run_check(str(repo))
    assert r.returncode == 1
    assert 'server/http/http_route.c:1: #include "catalog.h" from server/store' in r.stdout


def test_app_including_the_sqlite_store_is_refused(tmp_path):
    repo = copy_tree(tmp_path)
    plant(repo / "server" / "app" / "srv_images.c", '#include "store.h"')
    plant(repo / "server" / "cmd" / "cmd_reembed.c", '#include "datadir.h"')
    r = run_check(str(repo))
    assert r.returncode == 1
    assert 'server/app/srv_images.c:1: #include "store.h" from server/store: above it, use only' in r.stdout
    assert 'server/cmd/cmd_reembed.c:1: #include "datadir.h" from server/store' in r.stdout


def test_base_including_the_http_layer_is_refused(tmp_path):
    repo = copy_tree(tmp_path)
    plant(repo / "server" / "base" / "log.h", '#include "http.h"')
    r = run_check(str(repo))
    assert r.returncode == 1
    assert "server/base/log.h:1:" in r.stdout


def test_store_and_http_never_see_each_other(tmp_path):
    repo = copy_tree(tmp_path)
    plant(repo / "server" / "store" / "catalog.c", '#include "http_errors.h"')
    r = run_check(str(repo))
    assert r.returncode == 1
    assert "server/store/catalog.c:1:" in r.stdout


def test_encoder_and_index_see_only_themselves(tmp_path):
    repo = copy_tree(tmp_path)
    plant(repo / "encoder" / "forward.c", '#include "idx.h"')
    plant(repo / "index" / "idx.c", '#include "log.h"')
    r = run_check(str(repo))
    assert r.returncode == 1
    assert "encoder/forward.c:1:" in r.stdout and "index/idx.c:1:" in r.stdout


def test_a_path_in_an_include_is_refused(tmp_path):
    repo = copy_tree(tmp_path)
    plant(repo / "server" / "app" / "srv_reply.c", '#include "../store/store_internal.h"')
    r = run_check(str(repo))
    assert r.returncode == 1
    assert "name a header by its file name" in r.stdout


def test_cycle_finder_reports_loops_and_passes_chains():
    sys.path.insert(0, HERE)
    from check_cycles import cycles
    assert cycles({"a": {"b"}, "b": {"c"}, "c": set()}) == []
    assert cycles({"a": {"b"}, "b": {"a"}, "c": {"a"}}) == [["a", "b"]]
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"d"}}) == [["a", "b", "c"]]


def test_no_cycle_between_files_of_the_build():
    build = os.environ.get("CLIPD_BUILD_DIR")
    if not build:
        import pytest
        pytest.skip("CLIPD_BUILD_DIR is set by meson test")
    r = subprocess.run([sys.executable, os.path.join(HERE, "check_cycles.py"), build],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout
    assert " 0 cycles" in r.stdout
