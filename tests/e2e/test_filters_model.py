"""Filters, keyword and hybrid search against a Python model of their
semantics, over a few hundred generated images: every operator on every
kind of value (scalars, arrays, nested paths, escaped dots, missing keys),
repeated keys, combinations; the listing (paged with the cursor) and the
search must give exactly the model's images. Keyword matches are checked
against SQLite FTS5 run here on the documents the README says are indexed
(filename and every string value), the ranking against BM25 (SQLite) or
the sum of the matched words' IDF (PostgreSQL), hybrid against reciprocal
rank fusion of the two rankings."""

import itertools
import json
import math
import random
import re
import sqlite3
import urllib.parse

import pytest

from helpers import Server, make_png

N = 240
WORDS = ["beach", "sunset", "city", "snow", "food", "harbour", "market", "forest"]
NUMBER = re.compile(r"-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?$")


def make_meta(rnd, i):
    m = {}
    if rnd.random() < 0.9:
        m["album"] = rnd.choice(["Paris", "Rome", "Oslo", "paris"])
    if rnd.random() < 0.8:
        m["tags"] = rnd.sample(WORDS, rnd.randrange(0, 4))
    if rnd.random() < 0.7:
        m["people"] = {"alice": rnd.random() < 0.5, "bob": {"age": rnd.randrange(1, 90)}}
    r = rnd.random()
    if r < 0.5:
        m["year"] = rnd.randrange(2015, 2025)
    elif r < 0.6:
        m["year"] = str(rnd.randrange(2015, 2025))      # a string that spells a number
    elif r < 0.7:
        m["year"] = [rnd.randrange(2015, 2025), rnd.randrange(2015, 2025)]
    if rnd.random() < 0.6:
        m["rating"] = round(rnd.uniform(0, 5), 2)
    if rnd.random() < 0.6:
        m["taken"] = "20%02d-%02d-%02dT%02d:00:00Z" % (rnd.randrange(15, 25), rnd.randrange(1, 13),
                                                     rnd.randrange(1, 29), rnd.randrange(0, 24))
    if rnd.random() < 0.2:
        m["k.dot"] = rnd.choice(["v", "w"])
    if rnd.random() < 0.2:
        m["k\\back"] = rnd.choice(["v", "w"])    # a backslash in a key: filter.k\\back
    if rnd.random() < 0.1:
        m["nothing"] = None
    if rnd.random() < 0.4:
        m["note"] = " ".join(rnd.sample(WORDS, 2))
    return m


# ---- the model ------------------------------------------------------------------------------

def parse_key(key):
    segs, cur, i = [], "", 0
    while i < len(key):
        ch = key[i]
        if ch == "\\":
            cur += key[i + 1]
            i += 2
            continue
        if ch == ".":
            segs.append(cur)
            cur = ""
        else:
            cur += ch
        i += 1
    segs.append(cur)
    op = "eq"
    if len(segs) >= 2 and segs[-1] in ("gte", "lte", "gt", "lt", "exists"):
        op = segs.pop()
    return segs, op


MISSING = object()


def at_path(meta, segs):
    v = meta
    for s in segs:
        if not isinstance(v, dict) or s not in v:
            return MISSING
        v = v[s]
    return v


def elements(v):
    if v is MISSING or isinstance(v, dict):
        return []
    return v if isinstance(v, list) else [v]


def eq(e, value):
    if isinstance(e, bool):
        return value == ("true" if e else "false")
    if isinstance(e, (int, float)):
        return bool(NUMBER.match(value)) and float(value) == e
    if isinstance(e, str):
        return e == value
    return False


CMP = {"gte": lambda a, b: a >= b, "lte": lambda a, b: a <= b, "gt": lambda a, b: a > b, "lt": lambda a, b: a < b}


def compare(e, op, value):
    if NUMBER.match(value):
        return isinstance(e, (int, float)) and not isinstance(e, bool) and CMP[op](e, float(value))
    return isinstance(e, str) and CMP[op](e.encode(), value.encode())


def matches(meta, filters):
    groups = {}
    for k, v in filters:
        groups.setdefault(k, []).append(v)
    for key, values in groups.items():
        segs, op = parse_key(key)
        v = at_path(meta, segs)
        if op == "exists":
            if not any((v is not MISSING) == (x == "true") for x in values):
                return False
        elif op == "eq":
            if not any(eq(e, x) for e in elements(v) for x in values):
                return False
        elif not any(compare(e, op, x) for e in elements(v) for x in values):
            return False
    return True


# ---- the daemon and its data ------------------------------------------------------------------

CATALOGS = ("sqlite", "postgresql")   # every filter against both catalogs (conftest.py)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, catalog):
    s = Server(tmp_path_factory.mktemp("filters"), *catalog.args()).start()
    rnd = random.Random(15)
    images = {}
    for i in range(N):
        meta = make_meta(rnd, i)
        name = "IMG_%04d_%s.png" % (i, rnd.choice(WORDS))
        q = "?" + urllib.parse.urlencode({"filename": name, "metadata": json.dumps(meta)})
        r = s.upload(make_png(8, 8, seed=1000 + i), query=q)
        assert r.status == 201, r
        images[r.json()["id"]] = {"meta": meta, "filename": name}
    yield s, images
    assert s.stop() == 0, s.log()


def query(filters, **extra):
    pairs = [("filter." + k, v) for k, v in filters] + list(extra.items())
    return urllib.parse.urlencode(pairs, quote_via=urllib.parse.quote)


def list_all(s, filters, limit=37):
    ids, cursor = [], None
    while True:
        extra = {"limit": limit}
        if cursor:
            extra["cursor"] = cursor
        r = s.get("/images?" + query(filters, **extra))
        assert r.status == 200, (filters, r)
        body = r.json()
        ids += [it["id"] for it in body["items"]]
        cursor = body["next_cursor"]
        if not cursor:
            return ids


KEYS = ["album", "tags", "people.alice", "people.bob.age", "year", "rating", "taken", "note", "k\\.dot",
        "k\\\\back", "nothing", "absent", "people"]
VALUES = {"album": ["Paris", "paris", "Rome", "Q"], "tags": ["beach", "snow", "zzz"],
          "people.alice": ["true", "false"], "people.bob.age": ["30", "30.0", "45"],
          "year": ["2020", "2018", "2019.5"], "rating": ["2.5", "4", "0"],
          "taken": ["2020-06-01T00:00:00Z", "2018-01-15T12:00:00Z"], "note": ["beach city", "m"],
          "k\\.dot": ["v", "w"], "k\\\\back": ["v", "w"], "nothing": ["null", "x"], "absent": ["x"], "people": ["x"]}


def every_filter():
    """Each key with each operator and its values, alone."""
    for key in KEYS:
        for op in ["", ".gte", ".lte", ".gt", ".lt"]:
            for v in VALUES[key]:
                yield [(key + op, v)]
        for v in ["true", "false"]:
            yield [(key + ".exists", v)]


def combinations():
    rnd = random.Random(7)
    singles = list(every_filter())
    # the same key repeated: any of its values
    yield [("album", "Paris"), ("album", "Rome")]
    yield [("tags", "beach"), ("tags", "snow"), ("tags", "zzz")]
    yield [("year.gte", "2023"), ("year.gte", "2016")]
    yield [("people.alice.exists", "true"), ("people.alice.exists", "false")]
    # ranges on one key together: a window
    yield [("year.gte", "2018"), ("year.lt", "2021")]
    yield [("taken.gte", "2019-01-01T00:00:00Z"), ("taken.lt", "2021-01-01T00:00:00Z")]
    for a, b in itertools.islice(itertools.combinations(singles, 2), 0, None, 97):
        yield a + b
    for _ in range(10):
        yield [f for one in rnd.sample(singles, 3) for f in one]


def test_listing_matches_the_model(corpus):
    s, images = corpus
    newest_first = sorted(images, reverse=True)
    checked = 0
    for filters in itertools.chain(every_filter(), combinations()):
        want = [i for i in newest_first if matches(images[i]["meta"], filters)]
        got = list_all(s, filters)
        assert got == want, (filters, len(got), len(want))
        checked += 1
    assert checked > 150
    # the model is not vacuous: some filters match some, none match all
    assert 0 < len([i for i in images if matches(images[i]["meta"], [("tags", "beach")])]) < len(images)


def test_search_filters_match_the_model(corpus):
    s, images = corpus
    for filters in list(every_filter())[::5] + list(combinations())[:8]:
        r = s.get("/search?" + query(filters, q="a photo", k=1000))
        assert r.status == 200, (filters, r)
        body = r.json()
        got = [h["id"] for h in body["results"]]
        want = {i for i in images if matches(images[i]["meta"], filters)}
        assert set(got) == want, filters
        assert body["exhaustive"] is True
        scores = [h["score"] for h in body["results"]]
        assert scores == sorted(scores, reverse=True)
        # similar, by image, takes the same filters (the image itself excluded)
        some = min(images)
        r = s.get("/images/%d/similar?%s" % (some, query(filters, k=1000)))
        assert {h["id"] for h in r.json()["results"]} == want - {some}, filters


@pytest.mark.parametrize("key,value,why", [
    ("a..b", "1", "empty path segment"),
    ("a\\x", "1", "backslash"),
    ("a.b.c.d.e.f.g.h.i", "1", "at most 8"),
    ("a.b.c.d.e.f.g.h.i.j.k.l.m.n.o.p.q.r." + "z" * 80, "1", "at most 8"),
    ("x" * 129, "1", "1 to 128 bytes"),
    ("tags.exists", "maybe", "true or false"),
    ("tags", "v" * 1025, "at most 1024"),
    ('a"b', "1", "quotes"),
])
def test_malformed_filters_are_named(corpus, key, value, why):
    s, _ = corpus
    for path in ["/images?", "/search?q=x&", "/images/1/similar?"]:
        r = s.get(path + query([(key, value)]))
        assert r.status == 400 and r.error_code() == "bad_parameter", (path, r)
        msg = r.json()["error"]["message"]
        assert msg.startswith("filter." + key[:100]) and why in msg, msg


def test_too_many_filters(corpus):
    s, _ = corpus
    r = s.get("/images?" + query([("k%d" % i, "v") for i in range(33)]))
    assert r.status == 400 and "at most 32" in r.json()["error"]["message"]
    r = s.get("/images?" + query([("k%d" % i, "v") for i in range(32)]))
    assert r.status == 200 and r.json()["items"] == []


# ---- keywords and hybrid ----------------------------------------------------------------------------

def fts_model(images):
    db = sqlite3.connect(":memory:")
    db.execute("CREATE VIRTUAL TABLE k USING fts5(body, tokenize = 'unicode61 remove_diacritics 2')")

    def strings(v):
        if isinstance(v, str):
            yield v
        elif isinstance(v, list):
            for x in v:
                yield from strings(x)
        elif isinstance(v, dict):
            for x in v.values():
                yield from strings(x)
    for i, im in images.items():
        db.execute("INSERT INTO k (rowid, body) VALUES (?, ?)",
                   (i, " ".join([im["filename"]] + list(strings(im["meta"])))))
    return db


def fts_phrase(w):
    return '"%s"' % w.replace('"', '""')


def keyword_ranking(db, words, not_words="", allowed=None, limit=1000, kind="sqlite"):
    """The images that hold any of words and none of not_words, best first.
    SQLite ranks by FTS5's BM25; PostgreSQL (README) by the sum, over the
    distinct words an image holds, of each word's inverse document
    frequency ln(1 + (N - n + 0.5) / (n + 0.5)), ties by id. Which images
    hold a word is FTS5's answer here for both."""
    q = "(" + " OR ".join(fts_phrase(w) for w in words.split()) + ")"
    if not_words.split():
        q += " NOT (" + " OR ".join(fts_phrase(w) for w in not_words.split()) + ")"
    if kind == "sqlite":
        rows = [r[0] for r in db.execute("SELECT rowid FROM k WHERE k MATCH ? ORDER BY bm25(k), rowid", (q,))]
    else:
        matching = {r[0] for r in db.execute("SELECT rowid FROM k WHERE k MATCH ?", (q,))}
        total = db.execute("SELECT count(*) FROM k").fetchone()[0]
        idf = {}
        for w in {w.lower() for w in words.split()}:
            holders = {r[0] for r in db.execute("SELECT rowid FROM k WHERE k MATCH ?", (fts_phrase(w),))}
            n = len(holders)
            for i in holders & matching:
                idf.setdefault(i, []).append(math.log(1 + (total - n + 0.5) / (n + 0.5)))
        rows = sorted(idf, key=lambda i: (-sum(sorted(idf[i])), i))
    return [i for i in rows if allowed is None or i in allowed][:limit]


@pytest.mark.parametrize("words,not_words,filters", [
    ("beach", "", []),
    ("Paris snow", "", []),
    ("IMG_0042", "", []),
    ("sunset market", "beach", []),
    ("forest city", "", [("album", "Rome")]),
    ("Oslo", "", [("year.gte", "2020")]),
    ("nomatchatall", "", []),
])
def test_keyword_and_hybrid_match_the_model(corpus, words, not_words, filters):
    s, images = corpus
    db = fts_model(images)
    allowed = {i for i in images if matches(images[i]["meta"], filters)}
    extra = {"q": words, "k": 1000, "mode": "keyword"}
    if not_words:
        extra["not"] = not_words
    r = s.get("/search?" + query(filters, **extra))
    assert r.status == 200, r
    got = [h["id"] for h in r.json()["results"]]
    want = keyword_ranking(db, words, not_words, allowed, kind=s.catalog)
    assert got == want
    for h in r.json()["results"]:
        assert h["sources"] == ["keyword"] and h["score"] > 0
    # hybrid: the fusion of the semantic ranking (top 100) and the keyword one
    k = 25
    sem = s.get("/search?" + query(filters, q=words, k=100)).json()["results"]
    extra.update(mode="hybrid", k=k)
    if not_words:
        # in hybrid a negative text also moves the vector: the semantic list is that search's
        sem = s.get("/search?" + query(filters, q=words, k=100, **{"not": not_words})).json()["results"]
    hyb = s.get("/search?" + query(filters, **extra))
    assert hyb.status == 200, hyb
    fused = {}
    for rank, h in enumerate(sem, 1):
        fused[h["id"]] = 1.0 / (60 + rank)
    for rank, i in enumerate(keyword_ranking(db, words, not_words, allowed, 100, s.catalog), 1):
        fused[i] = fused.get(i, 0.0) + 1.0 / (60 + rank)
    want = sorted(fused, key=lambda i: (-fused[i], i))[:k]
    got = hyb.json()["results"]
    assert [h["id"] for h in got] == want
    for h in got:
        assert abs(h["score"] - fused[h["id"]]) < 1e-12
        assert set(h["sources"]) == {src for src, ok in [("semantic", "semantic" in h["ranks"]),
                                                           ("keyword", "keyword" in h["ranks"])] if ok}
    assert hyb.json()["composition"]["mode"] == "hybrid" and hyb.json()["composition"]["rrf_k"] == 60


def test_keywords_follow_patches_and_deletes(corpus):
    s, images = corpus
    victim = max(images)
    r = s.request("PATCH", "/images/%d" % victim, body=json.dumps({"note": "zanzibar lagoon"}).encode(),
                  headers={"Content-Type": "application/merge-patch+json"})
    assert r.status == 200
    r = s.get("/search?q=zanzibar&mode=keyword")
    assert [h["id"] for h in r.json()["results"]] == [victim]
    r = s.request("PATCH", "/images/%d" % victim, body=b'{"note": null}',
                  headers={"Content-Type": "application/merge-patch+json"})
    assert s.get("/search?q=zanzibar&mode=keyword").json()["results"] == []
    images[victim]["meta"].pop("note", None)
    # numbers and keys are not keywords
    r = s.get("/search?q=alice&mode=keyword")
    assert r.json()["results"] == []


def test_rrf_k_and_mode_are_checked(corpus):
    s, _ = corpus
    assert s.get("/search?q=beach&mode=fuzzy").status == 400
    assert s.get("/search?q=beach&mode=hybrid&rrf_k=0").status == 400
    r = s.get("/search?q=beach&mode=hybrid&rrf_k=1&k=3")
    assert r.status == 200 and r.json()["composition"]["rrf_k"] == 1
    assert r.json()["results"][0]["score"] <= 1.0 + 1e-12
    assert s.get("/search?q=beach&mode=keyword&min_score=0.5").status == 400
    assert s.get("/search?image=1&mode=keyword").status == 400
