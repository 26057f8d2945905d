"""Photos as phones and cameras make them, through the real daemon: every
fixture of tests/data/photos uploaded raw and in multipart with its upright
size, orientation in thumbnails and embeddings, broken files refused with
nothing stored, transparent thumbnails over white, the capture time
(taken_at) and its filters, the JPEG fast path against --exact-decode, and
clipd check --repair / clipd reembed filling taken_at of older rows.
Pillow (Debian's /usr/bin/python3) decodes what the server sends back."""

import io
import json
import math
import os
import re
import sqlite3
import subprocess
import urllib.parse

import pytest
from PIL import Image, ImageOps

from helpers import CLIPD, DATA, PRECISION, REPO, check_response, load_openapi, multipart

PHOTOS = os.path.join(DATA, "photos")
MODEL_B = os.path.join(DATA, "tiny-clip-openclip")
MIME = {".jpg": "image/jpeg", ".png": "image/png", ".webp": "image/webp", ".heic": "image/heic",
        ".avif": "image/avif", ".tif": "image/tiff", ".gif": "image/gif", ".bmp": "image/bmp"}
GOOD = sorted(f for f in os.listdir(PHOTOS)
              if os.path.splitext(f)[1] in MIME and not f.startswith("bad_"))
BAD = sorted(f for f in os.listdir(PHOTOS) if f.startswith("bad_"))
TAKEN = "2023-06-17T14:03:22+02:00"          # datetime.jpg's DateTimeOriginal and offset


def photo(name):
    with open(os.path.join(PHOTOS, name), "rb") as f:
        return f.read()


def upright_size(name):
    """The size a person sees: the reference decode where the fixtures have
    one (HEIC, AVIF, TIFF, WebP: ref/), else Pillow's exif_transpose."""
    stem, ext = os.path.splitext(name)
    ref = os.path.join(PHOTOS, "ref", (stem + "_" + ext[1:] if ext in (".heic", ".avif") else stem) + ".png")
    if os.path.exists(ref):
        return Image.open(ref).size
    return ImageOps.exif_transpose(Image.open(os.path.join(PHOTOS, name))).size


def pixels(jpeg):
    im = Image.open(io.BytesIO(jpeg))
    assert im.format == "JPEG"
    return im.convert("RGB")


def cosine(a, b):
    return sum(x * y for x, y in zip(a, b)) / math.sqrt(sum(x * x for x in a) * sum(y * y for y in b))


def embed(server, data):
    r = server.request("POST", "/embed", body=data, headers={"Content-Type": "application/octet-stream"})
    assert r.status == 200, r
    return r.json()["embedding"]


def ids(r):
    assert r.status == 200, r
    return sorted(x["id"] for x in (r.json()["items"] if "items" in r.json() else r.json()["results"]))


@pytest.fixture(scope="module")
def doc(server):
    return load_openapi(server)


def test_every_photo_uploads_raw_upright(server, doc):
    assert len(GOOD) >= 30
    for name in GOOD:
        r = server.upload(photo(name), content_type="application/octet-stream",
                          query="?filename=" + urllib.parse.quote(name))
        assert r.status in (200, 201), (name, r)
        check_response(doc, "/images", "POST", r)
        img = r.json()
        assert img["mime"] == MIME[os.path.splitext(name)[1]], name
        assert (img["width"], img["height"]) == upright_size(name), name
        got = server.get("/images/%d" % img["id"])
        check_response(doc, "/images/{id}", "GET", got)
        assert (got.json()["width"], got.json()["height"]) == upright_size(name)


def test_every_photo_uploads_in_multipart(make_server):
    s = make_server().start()
    body, ctype = multipart([("file", name, None, photo(name)) for name in GOOD])
    r = s.request("POST", "/images", body=body, headers={"Content-Type": ctype})
    assert r.status == 201, r   # every file stored (issue 15's multipart statuses)
    items = r.json()["items"]
    assert len(items) == len(GOOD)
    # every file's bytes differ (orient_1..8 differ in their tag): each is new
    for name, it in zip(GOOD, items):
        assert it["status"] == 201, (name, it)
        assert it["filename"] == name
        assert (it["width"], it["height"]) == upright_size(name), name
    assert s.get("/info").json()["images"] == len(GOOD)


def test_orientation_6_thumbnail_is_the_upright_photos(server):
    def thumb(name, size=128):
        r = server.upload(photo(name), content_type="image/jpeg")
        assert r.status in (200, 201), r
        t = server.get("/images/%d/thumbnail?size=%d" % (r.json()["id"], size))
        assert t.status == 200 and t.headers["content-type"] == "image/jpeg", t
        return pixels(t.body)

    upright = thumb("orient_upright.png")
    sideways = thumb("orient_1.jpg")       # the same stored pixels, shown as stored
    assert upright.size == (64, 96) and sideways.size == (96, 64)
    for n in range(2, 9):
        im = thumb("orient_%d.jpg" % n)
        want = ImageOps.exif_transpose(Image.open(os.path.join(PHOTOS, "orient_%d.jpg" % n))).size
        assert im.size == want, n
    rotated = thumb("orient_6.jpg")
    assert rotated.size == upright.size
    diff = [abs(a - b) for p, q in zip(rotated.getdata(), upright.getdata()) for a, b in zip(p, q)]
    assert sum(diff) / len(diff) < 1.5 and max(diff) <= 24, (sum(diff) / len(diff), max(diff))
    # and not merely the same size: the photo turned the other way is far off
    other = thumb("orient_8.jpg")
    diff8 = [abs(a - b) for p, q in zip(other.getdata(), upright.getdata()) for a, b in zip(p, q)]
    assert sum(diff8) / len(diff8) > 10


def test_embedding_of_the_oriented_jpeg_is_the_upright_photos(server):
    upright = embed(server, photo("orient_upright.png"))
    assert cosine(embed(server, photo("orient_6.jpg")), upright) >= 0.9999
    # a tag that is ignored would embed the sideways pixels instead
    assert cosine(embed(server, photo("orient_1.jpg")), upright) < 0.999


def test_broken_photos_are_refused_and_nothing_is_stored(make_server, doc):
    s = make_server().start()
    for name in BAD:
        want = (413, "image_too_large") if "huge" in name else (422, "image_undecodable")
        r = s.upload(photo(name), content_type="application/octet-stream")
        assert (r.status, r.json()["error"]["code"]) == want, (name, r)
        check_response(doc, "/images", "POST", r)
        assert len(r.json()["error"]["message"]) > 10, (name, r)
        body, ctype = multipart([("file", name, None, photo(name))])
        r = s.request("POST", "/images", body=body, headers={"Content-Type": ctype})
        item = r.json()["items"][0]
        assert (item["status"], item["error"]["code"]) == want, (name, item)
    assert s.get("/info").json()["images"] == 0
    assert s.get("/images").json()["items"] == []
    blobs = os.path.join(s.data, "blobs")
    assert not os.path.exists(blobs) or not any(files for _, _, files in os.walk(blobs))


def test_transparent_png_thumbnail_is_white_where_transparent(server):
    im = Image.new("RGBA", (120, 80), (0, 0, 0, 0))          # transparent black
    for x in range(60, 120):
        for y in range(80):
            im.putpixel((x, y), (200, 0, 0, 255))            # opaque red
    buf = io.BytesIO()
    im.save(buf, "PNG")
    r = server.upload(buf.getvalue(), content_type="image/png")
    assert r.status == 201, r
    t = pixels(server.get("/images/%d/thumbnail?size=128" % r.json()["id"]).body)
    assert t.size == (120, 80)
    assert min(t.getpixel((10, 40))) >= 245, t.getpixel((10, 40))
    red = t.getpixel((110, 40))
    assert red[0] > 180 and red[1] < 40 and red[2] < 40, red
    # the thumbnail of the WebP with alpha: the same rule
    r = server.upload(photo("webp_alpha.webp"), content_type="image/webp")
    ref = Image.open(os.path.join(PHOTOS, "ref", "webp_alpha.png")).convert("RGBA")
    t = pixels(server.get("/images/%d/thumbnail?size=128" % r.json()["id"]).body)
    clear = [(x, y) for x in range(ref.width) for y in range(ref.height) if ref.getpixel((x, y))[3] == 0]
    assert clear, "webp_alpha.webp has no transparent pixel"
    x, y = clear[len(clear) // 2]
    assert min(t.getpixel((x, y))) >= 230


def test_tiff_extra_sample_of_unspecified_data_is_not_alpha(server):
    # Pillow's RGBX TIFF (ExtraSamples 0, "unspecified data"), the fourth
    # sample all zero: Pillow reads RGBX, no transparency, so the thumbnail
    # is the picture, not white (TIFFRGBAImage would take it as alpha)
    im = Image.new("RGBX", (90, 60), (200, 0, 0, 0))
    for x in range(45, 90):
        for y in range(60):
            im.putpixel((x, y), (0, 0, 200, 0))
    buf = io.BytesIO()
    im.save(buf, "TIFF")
    assert Image.open(io.BytesIO(buf.getvalue())).tag_v2.get(338) == (0,)
    r = server.upload(buf.getvalue(), content_type="image/tiff")
    assert r.status == 201, r
    t = pixels(server.get("/images/%d/thumbnail?size=128" % r.json()["id"]).body)
    red, blue = t.getpixel((10, 30)), t.getpixel((80, 30))
    assert red[0] > 180 and red[1] < 40 and red[2] < 40, red
    assert blue[2] > 180 and blue[0] < 40 and blue[1] < 40, blue
    # and RGBA with unassociated alpha still is alpha: transparent is white
    im = Image.new("RGBA", (90, 60), (200, 0, 0, 0))
    buf = io.BytesIO()
    im.save(buf, "TIFF")
    r = server.upload(buf.getvalue(), content_type="image/tiff")
    assert r.status == 201, r
    t = pixels(server.get("/images/%d/thumbnail?size=128" % r.json()["id"]).body)
    assert min(t.getpixel((10, 30))) >= 245, t.getpixel((10, 30))


def rgba_tiff(w, h, rgba, rows_per_strip, separate=True, extra=2):
    """An uncompressed little-endian TIFF of RGBA, alpha of ExtraSamples
    `extra` (2 unassociated, 1 associated), in separate planes
    (PlanarConfiguration 2, as Photoshop's "per channel" order writes) or
    interleaved, in strips of rows_per_strip rows."""
    import struct
    per_plane = -(-h // rows_per_strip)
    strips = []
    if separate:
        for k in range(4):
            plane = bytes(px[k] for px in rgba)
            for i in range(per_plane):
                strips.append(plane[i * rows_per_strip * w:(i + 1) * rows_per_strip * w])
    else:
        rows = bytes(v for px in rgba for v in px)
        for i in range(per_plane):
            strips.append(rows[i * rows_per_strip * w * 4:(i + 1) * rows_per_strip * w * 4])
    n = len(strips)
    entries = [(256, 3, 1, w), (257, 3, 1, h), (258, 3, 4, "bps"), (259, 3, 1, 1), (262, 3, 1, 2),
               (273, 4, n, "offsets"), (277, 3, 1, 4), (278, 3, 1, rows_per_strip), (279, 4, n, "counts"),
               (284, 3, 1, 2 if separate else 1), (338, 3, 1, extra)]
    ifd_size = 2 + 12 * len(entries) + 4
    bps_at = 8 + ifd_size
    offs_at = bps_at + 8
    counts_at = offs_at + 4 * n
    data_at = counts_at + 4 * n
    offsets, at = [], data_at
    for st in strips:
        offsets.append(at)
        at += len(st)
    out = b"II*\0" + struct.pack("<IH", 8, len(entries))
    for tag, typ, count, val in entries:
        if val == "bps":
            v = struct.pack("<I", bps_at)
        elif val == "offsets":
            v = struct.pack("<I", offs_at)
        elif val == "counts":
            v = struct.pack("<I", counts_at)
        else:
            v = struct.pack("<HH", val, 0) if typ == 3 else struct.pack("<I", val)
        out += struct.pack("<HHI", tag, typ, count) + v
    out += struct.pack("<I", 0) + struct.pack("<4H", 8, 8, 8, 8)
    out += struct.pack("<%dI" % n, *offsets) + struct.pack("<%dI" % n, *[len(st) for st in strips])
    return out + b"".join(strips)


def test_tiff_separate_planes_keep_the_colour_under_alpha(server):
    # RGBA in separate planes with unassociated alpha: the model sees the
    # colour with alpha dropped (as for contiguous samples, and as Pillow's
    # convert("RGB")), not the colour premultiplied by alpha (TIFFRGBAImage's)
    w, h = 64, 48
    px = [(200, 100, 0, 0 if x < 32 else 128) for y in range(h) for x in range(w)]
    data = rgba_tiff(w, h, px, 10)
    im = Image.open(io.BytesIO(data))
    assert im.mode == "RGBA" and im.convert("RGB").getpixel((5, 5)) == (200, 100, 0)
    r = server.request("POST", "/embed", body=data, headers={"Content-Type": "image/tiff"})
    assert r.status == 200, r
    opaque = Image.new("RGB", (w, h), (200, 100, 0))
    buf = io.BytesIO()
    opaque.save(buf, "PNG")
    assert cosine(r.json()["embedding"], embed(server, buf.getvalue())) > 0.9999
    # the thumbnail: white where transparent, the colour half over white at 128
    r = server.upload(data, content_type="image/tiff")
    assert r.status == 201, r
    t = pixels(server.get("/images/%d/thumbnail?size=128" % r.json()["id"]).body)
    assert min(t.getpixel((5, 24))) >= 245, t.getpixel((5, 24))
    half = t.getpixel((58, 24))
    assert abs(half[0] - 228) <= 6 and abs(half[1] - 177) <= 6 and abs(half[2] - 127) <= 6, half


def test_tiff_associated_alpha_is_divided_out_of_the_colour(server):
    # premultiplied (associated) alpha, as GIMP and ImageMagick can write
    # it: the colour is stored times alpha; Pillow reads it back divided
    # ("RGBa"), so the model sees (200, 100, 0) where alpha is 128, and the
    # thumbnail composites that over white, once
    w, h = 64, 48
    px = [(200, 100, 0, 255) if x < 32 else (100, 50, 0, 128) for y in range(h) for x in range(w)]
    # (Pillow 9.4 reads the interleaved file only: "unknown raw mode" for
    # separate planes of RGBa; clipd reads both the same)
    ref = Image.open(io.BytesIO(rgba_tiff(w, h, px, 16, separate=False, extra=1))).convert("RGB")
    assert ref.getpixel((60, 5)) == (199, 99, 0)
    buf = io.BytesIO()
    ref.save(buf, "PNG")
    for separate in (False, True):
        data = rgba_tiff(w, h, px, 16, separate=separate, extra=1)
        r = server.request("POST", "/embed", body=data, headers={"Content-Type": "image/tiff"})
        assert r.status == 200, r
        assert cosine(r.json()["embedding"], embed(server, buf.getvalue())) > 0.9999
        r = server.upload(data, content_type="image/tiff")
        assert r.status in (200, 201), r
        t = pixels(server.get("/images/%d/thumbnail?size=128" % r.json()["id"]).body)
        half = t.getpixel((58, 24))
        assert abs(half[0] - 227) <= 6 and abs(half[1] - 177) <= 6 and abs(half[2] - 127) <= 6, half


def test_taken_at_and_its_filters(make_server, doc):
    s = make_server().start()
    dated = s.upload(photo("datetime.jpg"), content_type="image/jpeg").json()
    plain = s.upload(photo("orient_1.jpg"), content_type="image/jpeg").json()
    assert dated["taken_at"] == TAKEN and plain["taken_at"] is None
    got = s.get("/images/%d" % dated["id"])
    check_response(doc, "/images/{id}", "GET", got)
    assert got.json()["taken_at"] == TAKEN
    both = sorted([dated["id"], plain["id"]])
    instant = "2023-06-17T12:03:22Z"                 # TAKEN in UTC; the bounds are exclusive
    assert ids(s.get("/images")) == both
    assert ids(s.get("/images?taken_after=2023-06-17T12:03:21Z")) == [dated["id"]]
    assert ids(s.get("/images?taken_after=" + instant)) == []
    assert ids(s.get("/images?taken_before=2023-06-17T12:03:23Z")) == [dated["id"]]
    assert ids(s.get("/images?taken_before=" + instant)) == []
    assert ids(s.get("/images?taken_after=2023-06-17T14:03:21%2B02:00&limit=1")) == [dated["id"]]
    check_response(doc, "/images", "GET", s.get("/images?taken_after=2000-01-01T00:00:00Z"))
    # the searches: text, similar, an uploaded image
    assert ids(s.search("a photo", k=10)) == both
    assert ids(s.search("a photo", k=10, taken_after="2023-01-01T00:00:00Z")) == [dated["id"]]
    assert ids(s.search("a photo", k=10, taken_before="2023-01-01T00:00:00Z")) == []
    assert ids(s.get("/images/%d/similar?taken_before=2030-01-01T00:00:00Z" % plain["id"])) == [dated["id"]]
    assert ids(s.get("/images/%d/similar?taken_after=2030-01-01T00:00:00Z" % plain["id"])) == []
    r = s.request("POST", "/search/image?taken_after=2023-06-17T12:00:00Z", body=photo("orient_1.jpg"),
                  headers={"Content-Type": "image/jpeg"})
    check_response(doc, "/search/image", "POST", r)
    assert ids(r) == [dated["id"]]
    # POST /search takes them as fields
    def post(body):
        return s.request("POST", "/search", body=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    assert ids(post({"text": ["a photo"], "taken_after": "2023-06-17T12:03:21Z"})) == [dated["id"]]
    assert ids(post({"text": ["a photo"], "taken_before": "2023-06-17T12:03:23Z"})) == [dated["id"]]
    assert ids(post({"text": ["a photo"], "taken_before": instant})) == []
    r = post({"text": ["a photo"], "taken_after": "June"})
    assert r.status == 400 and r.json()["error"]["message"].startswith("taken_after: "), r
    # combined with the upload time
    assert ids(s.get("/images?taken_after=2000-01-01T00:00:00Z")) == [dated["id"]]
    assert ids(s.search("a photo", taken_after="2000-01-01T00:00:00Z", after="2000-01-01T00:00:00Z")) == [dated["id"]]
    for path in ["/images?taken_after=yesterday", "/search?q=x&taken_before=2023-13-01T00:00:00Z",
                 "/images/%d/similar?taken_after=2023-06-17" % plain["id"]]:
        r = s.get(path)
        assert r.status == 400 and r.json()["error"]["code"] == "bad_parameter", (path, r)
        assert re.match(r"taken_(after|before): ", r.json()["error"]["message"]), r


def test_accepted_types_agree_everywhere(server, doc):
    """README's list, the 415 message, /info and /openapi.json name the same types."""
    readme = open(os.path.join(REPO, "README.md"), encoding="utf-8").read()
    row = re.search(r"^\| 415 \| `unsupported_media_type` \| not (.+?) \|$", readme, re.M)
    assert row, "README's error table has no 415 row"
    text = row.group(1)
    names = re.split(r", | or ", text)
    mimes = ["image/" + {"JPEG": "jpeg"}.get(n, n.lower()) for n in names]
    info = server.get("/info").json()
    assert info["image_types"] == mimes
    assert doc["components"]["schemas"]["Image"]["properties"]["mime"]["enum"] == mimes
    assert doc["components"]["schemas"]["Info"]["properties"]["image_types"]["items"]["enum"] == mimes
    assert text in doc["components"]["responses"]["E415"]["description"]
    for body, ctype in [(b"just some text, not an image", "image/png"), (photo("orient_1.jpg"), "text/plain")]:
        r = server.upload(body, content_type=ctype)
        assert r.status == 415 and r.json()["error"]["code"] == "unsupported_media_type", r
        assert text in r.json()["error"]["message"], r
    check_response(doc, "/info", "GET", server.get("/info"))


def large_jpeg(path):
    """A 1800 x 1200 JPEG, smooth shapes and some texture as in a photo:
    over four times the model's input on its shorter side, so the fast path
    decodes it at 1/2."""
    im = Image.new("RGB", (1800, 1200))
    sx = [math.sin(x / 37.0) for x in range(1800)]
    cy = [math.cos(y / 53.0) for y in range(1200)]
    im.putdata([(int(128 + 90 * sx[x] * cy[y]), (x // 3 + y // 5) % 200 + 20, int(128 + 60 * sx[(x + y) % 1800]))
                for y in range(1200) for x in range(1800)])
    im.save(path, "JPEG", quality=90)
    with open(path, "rb") as f:
        return f.read()


def encode_cli(path, *flags):
    # at the precision the suite's daemons compute in (CLIPD_E2E_SERVE_ARGS)
    out = subprocess.run([CLIPD, "encode", "--model", os.path.join(DATA, "tiny-clip-hf"), "--precision", PRECISION,
                          "--image", path] + list(flags),
                         capture_output=True, check=True, timeout=120).stdout
    return json.loads(out)["embedding"]


def test_fast_path_and_exact_decode(make_server, tmp_path):
    path = str(tmp_path / "large.jpg")
    data = large_jpeg(path)
    fast = make_server().start()
    exact = make_server(env={"CLIPD_EXACT_DECODE": "1"}).start()
    assert fast.get("/info").json()["exact_decode"] is False
    assert exact.get("/info").json()["exact_decode"] is True
    v_fast, v_exact = embed(fast, data), embed(exact, data)
    assert v_fast != v_exact                       # decoded from other pixels ...
    assert cosine(v_fast, v_exact) >= 0.999        # ... half a level apart
    assert cosine(v_exact, encode_cli(path, "--exact-decode")) >= 0.999999
    assert cosine(v_fast, encode_cli(path)) >= 0.999999
    # the image object is the full-size photo either way
    for s in (fast, exact):
        img = s.upload(data, content_type="image/jpeg").json()
        assert (img["width"], img["height"]) == (1800, 1200)
        t = s.get("/images/%d/thumbnail?size=512" % img["id"])
        assert pixels(t.body).size == (512, 341)
    # preprocess: the crops differ only for a photo this large
    crops = {}
    for flags in ([], ["--exact-decode"]):
        for name, src in (("large", path), ("small", os.path.join(PHOTOS, "upright.jpg"))):
            out = str(tmp_path / ("%s%d.png" % (name, len(flags))))
            subprocess.run([CLIPD, "preprocess", "--model", os.path.join(DATA, "tiny-clip-hf"), "--image", src,
                            "--out", out] + flags, check=True, timeout=120)
            crops[name, len(flags)] = list(Image.open(out).getdata())
    assert crops["small", 0] == crops["small", 1]
    assert crops["large", 0] != crops["large", 1]
    d = [a - b for p, q in zip(crops["large", 0], crops["large", 1]) for a, b in zip(p, q)]
    assert math.sqrt(sum(x * x for x in d) / len(d)) < 1


def stored_taken(data_dir):
    db = sqlite3.connect(os.path.join(data_dir, "clipd.db"))
    try:
        return dict(db.execute("SELECT filename, taken_at FROM images").fetchall())
    finally:
        db.close()


def forget_taken(data_dir):
    """Rows as a clipd from before migration 0002 left them."""
    db = sqlite3.connect(os.path.join(data_dir, "clipd.db"))
    db.execute("UPDATE images SET taken_at = NULL, taken_at_us = NULL")
    db.commit()
    db.close()


def test_check_repair_and_reembed_fill_taken_at(make_server):
    s = make_server().start()
    for name in ("datetime.jpg", "orient_1.jpg", "photo.heic"):
        assert s.upload(photo(name), query="?filename=" + name).status == 201
    want = {"datetime.jpg": TAKEN, "orient_1.jpg": None, "photo.heic": None}
    assert stored_taken(s.data) == want
    # a write needs the directory to itself
    r = subprocess.run([CLIPD, "check", "--data", s.data, "--repair"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 1 and "in use" in r.stdout, r
    assert s.stop() == 0
    forget_taken(s.data)
    r = subprocess.run([CLIPD, "check", "--data", s.data], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r
    assert stored_taken(s.data)["datetime.jpg"] is None        # a plain check writes nothing
    r = subprocess.run([CLIPD, "check", "--data", s.data, "--repair"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r
    assert "3 originals, 1 changed" in r.stderr, r.stderr
    assert stored_taken(s.data) == want
    s.start()
    assert s.get("/images?taken_after=2023-06-17T12:03:21Z").json()["items"][0]["taken_at"] == TAKEN
    assert s.stop() == 0
    # reembed reads it again from the originals too
    forget_taken(s.data)
    r = subprocess.run([CLIPD, "reembed", "--model", MODEL_B, "--data", s.data], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    assert stored_taken(s.data) == want
