"""The approximate index on several nodes of one PostgreSQL catalog: one
node trains the IVF parameters under an advisory lock and stores them in
the catalog, every node builds its index from them; two nodes that applied
the same change answer every search identically (ids and scores); a node
started later loads the stored parameters instead of training; a holder of
the training lock that dies does not block the others."""

import json
import subprocess
import threading
import urllib.parse

from helpers import SLOW, make_png, wait_for
from pg import PSQL

CATALOGS = ("postgresql",)

THRESHOLD = 200     # --ivf-threshold: past it, an IVF index (IVF4,SQ8 at 250 vectors)
N = 250
LOCK = "7164217038677567864"   # pgstore_index.c's INDEX_LOCK ("clipd-ix")
COLORS = ["red", "green", "blue"]


def upload_through(nodes, n, seed0):
    """n distinct images, each through one of the nodes in turn, two at a
    time; every one answers 201. Returns the highest X-Clipd-Seq."""
    seqs, errors = [], []

    def worker(k):
        for i in range(k, n, 2):
            node = nodes[i % len(nodes)]
            q = "?" + urllib.parse.urlencode({"metadata": json.dumps({"color": COLORS[i % 3]})})
            r = node.upload(make_png(8, 8, seed=seed0 + i), query=q)
            if r.status != 201:
                errors.append(r)
            else:
                seqs.append(int(r.headers["x-clipd-seq"]))

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[:3]
    return max(seqs)


def index_info(node):
    return node.get("/info").json()["index"]


def answers(node, seq, ids):
    """What a node answers to a set of searches, once it applied change seq:
    text queries, similar images, filtered and thresholded searches."""
    out = []
    for q in ["a photo", "a cat", "red", "something green and blue"]:
        r = node.search(q, k=30, min_seq=seq)
        assert r.status == 200, r
        out.append([(h["id"], h["score"]) for h in r.json()["results"]])
        r = node.get("/search?" + urllib.parse.urlencode({"q": q, "k": 20, "filter.color": "red",
                                                           "min_seq": seq}))
        assert r.status == 200, r
        out.append([(h["id"], h["score"]) for h in r.json()["results"]])
    for i in ids:
        r = node.get("/images/%d/similar?k=25&min_seq=%d" % (i, seq))
        assert r.status == 200, r
        out.append([(h["id"], h["score"]) for h in r.json()["results"]])
    return out


def params_rows(catalog, uri):
    return catalog.cluster.psql(uri, "SELECT generation, factory, trained_n, seq FROM index_params ORDER BY generation")


def test_one_node_trains_and_every_node_answers_alike(catalog, make_server):
    uri = catalog.args()[1]
    opts = ("--catalog", uri, "--ivf-threshold", str(THRESHOLD))
    a = make_server(*opts).start()
    b = make_server(*opts).start()
    last = upload_through([a, b], N, 5000)

    # one training, stored once; both nodes build from it
    def both_ivf():
        ia, ib = index_info(a), index_info(b)
        return ia["params_generation"] == ib["params_generation"] == 1 and not ia["exact"] and not ib["exact"]
    assert wait_for(both_ivf, 20 * SLOW) is not None, (index_info(a), index_info(b), a.log()[-2000:])
    rows = params_rows(catalog, uri)
    assert len(rows) == 1 and rows[0][1] == "IVF4,SQ8" and int(rows[0][2]) >= THRESHOLD, rows
    ia, ib = index_info(a), index_info(b)
    assert ia["trained_here"] + ib["trained_here"] == 1, (ia, ib)
    assert ia["type"] == ib["type"] == "IVF4,SQ8"
    index_seq = int(rows[0][3])
    assert index_seq > THRESHOLD   # the 'index' change came after the uploads that crossed it

    # the same change applied: the same answers, ids and scores
    seq = max(last, index_seq)
    probe = [int(h[0]) for h in catalog.cluster.psql(uri, "SELECT id FROM images ORDER BY id LIMIT 5")]
    got_a, got_b = answers(a, seq, probe), answers(b, seq, probe)
    assert all(len(x) > 0 for x in got_a)
    assert got_a == got_b
    assert index_info(a)["seq"] == index_info(b)["seq"]

    # a node started afterwards loads the stored parameters, trains nothing
    c = make_server(*opts).start()
    ic = index_info(c)
    assert ic["params_generation"] == 1 and ic["trained_here"] == 0 and ic["type"] == "IVF4,SQ8", ic
    assert answers(c, seq, probe) == got_a
    assert len(params_rows(catalog, uri)) == 1

    # restarted on its snapshot, a node keeps it (the catalog's parameters)
    data = c.data
    assert c.stop() == 0
    c2 = make_server(*opts, data_dir=data).start()
    assert "loaded IVF4,SQ8 index" in c2.log(), c2.log()[-2000:]
    assert index_info(c2)["params_generation"] == 1
    assert answers(c2, seq, probe) == got_a
    # the lock is free, nothing was retrained
    assert len(params_rows(catalog, uri)) == 1
    for node in (a, b, c2):
        assert node.stop() == 0, node.log()[-2000:]


def test_a_dead_lock_holder_blocks_no_one(catalog, make_server):
    uri = catalog.args()[1]
    # a session that takes the training lock and hangs, as a node killed
    # mid-training would, until kill -9
    holder = subprocess.Popen([PSQL, "-X", "-q", uri], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    try:
        holder.stdin.write("BEGIN;\nSELECT pg_advisory_xact_lock(%s);\n\\echo held\n" % LOCK)
        holder.stdin.flush()
        for _ in range(20):   # the query's output, then our mark
            line = holder.stdout.readline()
            if not line or line.strip() == "held":
                break
        assert line.strip() == "held", line
        opts = ("--catalog", uri, "--ivf-threshold", str(THRESHOLD))
        a = make_server(*opts).start()
        b = make_server(*opts).start()
        upload_through([a, b], N, 9000)
        # while the lock is held nobody trains: both keep serving exactly
        assert wait_for(lambda: not index_info(a)["exact"] or not index_info(b)["exact"], 2.5 * SLOW) is None
        assert params_rows(catalog, uri) == []
        assert index_info(a)["vectors"] == index_info(b)["vectors"] == N
    finally:
        holder.kill()   # SIGKILL: its connection drops, the server releases the lock
        holder.wait()
    assert wait_for(lambda: index_info(a)["params_generation"] == index_info(b)["params_generation"] == 1,
                    20 * SLOW) is not None, (index_info(a), index_info(b))
    assert index_info(a)["trained_here"] + index_info(b)["trained_here"] == 1
    assert len(params_rows(catalog, uri)) == 1


def test_damaged_parameters_are_refused_saying_so(catalog, make_server):
    uri = catalog.args()[1]
    a = make_server("--catalog", uri)
    a.start()
    assert a.upload(make_png(8, 8, seed=1)).status == 201
    assert a.stop() == 0
    # a generation whose bytes are not a trained index, as a damaged row would be
    catalog.cluster.psql(uri, "WITH n AS (UPDATE clipd_counter SET seq = seq + 1 WHERE id = 1 RETURNING seq) "
                              "INSERT INTO changes (seq, op, image_id) SELECT seq, 'index', 1 FROM n")
    catalog.cluster.psql(uri, "INSERT INTO index_params SELECT 1, fingerprint, 'IVF4,SQ8', 300, 1, "
                              "(SELECT max(seq) FROM changes), '\\x0102030405'::bytea, 0 FROM models")
    b = make_server("--catalog", uri)
    try:
        b.start()
        started = True
    except RuntimeError:
        started = False
    assert not started and b.proc.returncode == 1, b.log()[-2000:]
    assert "the catalog's trained parameters" in b.log() and "IVF4,SQ8" in b.log(), b.log()[-2000:]
