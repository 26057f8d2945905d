#!/usr/bin/env bash
# Make the photo fixtures in this directory (tests/data/photos) and their
# reference pixels (ref/), with Debian 12's tools only:
#   /usr/bin/python3 with python3-pil 9.4 (Pillow), libjpeg-turbo-progs
#   (jpegtran, djpeg, tjbench), webp (cwebp, img2webp), libheif-examples
#   (heif-enc, heif-convert), libtiff-tools (tiffcp), imagemagick (convert).
# Run from anywhere: bash tests/data/photos/make-photo-fixtures.sh
# The output is committed; README.md here says what each file is for.
# Encoders are deterministic for a given Debian version: rerunning on
# Debian 12 gives the same bytes (heif-enc/x265 and aom included, single
# threaded settings aside, which is why ref/ is made from the files
# themselves, never from the sources).
set -euo pipefail
cd "$(dirname "$0")"
here=$PWD
src_png="$here/../images/chelsea.png"
py=/usr/bin/python3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
rm -rf ref && mkdir -p ref

# ---- the source pictures: a 96 x 64 crop of chelsea.png (Pillow LANCZOS),
# its RGBA version with a transparent disc, and a second frame ----------------
$py - "$src_png" "$tmp" <<'EOF'
import sys
from PIL import Image, ImageDraw
src, tmp = sys.argv[1], sys.argv[2]
im = Image.open(src).convert("RGB")
im.info = {}  # no ICC profile, no metadata in anything made from it
base = im.crop((60, 20, 60 + 360, 20 + 240)).resize((96, 64), Image.LANCZOS)
base.save(f"{tmp}/base.png")
base.save(f"{tmp}/base.ppm")
rgba = base.convert("RGBA")
mask = Image.new("L", base.size, 255)
d = ImageDraw.Draw(mask)
d.ellipse((30, 10, 70, 50), fill=0)          # fully transparent disc
d.rectangle((0, 0, 20, 63), fill=128)        # half transparent band
rgba.putalpha(mask)
rgba.save(f"{tmp}/rgba.png")
other = im.crop((0, 0, 360, 240)).resize((96, 64), Image.LANCZOS)
other.save(f"{tmp}/frame2.png")
upright = base.transpose(Image.Transpose.ROTATE_270)   # 64 x 96, as orientation 6 shows base
upright.save(f"{tmp}/upright.png")
upright.save(f"{tmp}/upright.ppm")
EOF

# ---- EXIF blocks, spliced into JPEGs as APP1 right after SOI ------------------
# exif.py NAME OUT.jpg IN.jpg [orientation] : NAME picks the block
cat > "$tmp/exif.py" <<'EOF'
import struct, sys

def ifd(entries, next_off=0):
    """entries: (tag, type, count, 4-byte value field) little-endian"""
    out = struct.pack("<H", len(entries))
    for tag, typ, count, value in sorted(entries):
        out += struct.pack("<HHI", tag, typ, count) + value
    return out + struct.pack("<I", next_off)

def orientation_block(o):
    return b"II*\0" + struct.pack("<I", 8) + ifd([(0x0112, 3, 1, struct.pack("<HH", o, 0))])

def datetime_block(dt, offset):
    # IFD0 at 8: Orientation 1 and the Exif IFD pointer; Exif IFD after it
    ifd0_len = 2 + 2 * 12 + 4
    exif_at = 8 + ifd0_len
    n = 2 if offset else 1
    exif_len = 2 + n * 12 + 4
    data_at = exif_at + exif_len
    dt_bytes = dt.encode() + b"\0"
    ents = [(0x9003, 2, len(dt_bytes), struct.pack("<I", data_at))]
    if offset:
        ents.append((0x9011, 2, len(offset) + 1, struct.pack("<I", data_at + len(dt_bytes))))
    blob = b"II*\0" + struct.pack("<I", 8)
    blob += ifd([(0x0112, 3, 1, struct.pack("<HH", 1, 0)), (0x8769, 4, 1, struct.pack("<I", exif_at))])
    blob += ifd(ents)
    blob += dt_bytes + (offset.encode() + b"\0" if offset else b"")
    return blob

def corrupt_block():
    # a byte-order mark, then an IFD0 whose offset points past the block,
    # an entry count of 60000 and an Exif IFD pointing at itself
    blob = b"II*\0" + struct.pack("<I", 8)
    blob += struct.pack("<H", 60000)
    blob += struct.pack("<HHI", 0x8769, 4, 1) + struct.pack("<I", 8)
    blob += struct.pack("<HHI", 0x0112, 3, 1) + struct.pack("<HH", 6, 0)
    blob += struct.pack("<HHI", 0x9003, 2, 20) + struct.pack("<I", 0xfffffff0)
    return blob

name, out, inp = sys.argv[1], sys.argv[2], sys.argv[3]
if name == "orientation":
    block = orientation_block(int(sys.argv[4]))
elif name == "datetime":
    block = datetime_block("2023:06:17 14:03:22", "+02:00")
elif name == "corrupt":
    block = corrupt_block()
else:
    raise SystemExit("unknown block " + name)
jpg = open(inp, "rb").read()
assert jpg[:2] == b"\xff\xd8"
app1 = b"Exif\0\0" + block
seg = b"\xff\xe1" + struct.pack(">H", len(app1) + 2) + app1
open(out, "wb").write(jpg[:2] + seg + jpg[2:])
EOF

# base.jpg: Pillow, quality 90, 4:2:0, no metadata; every orient_N.jpg has
# exactly these bytes plus an APP1 stating Orientation N
$py -c "
from PIL import Image
Image.open('$tmp/base.png').save('$tmp/base.jpg', quality=90)
Image.open('$tmp/upright.png').save('upright.jpg', quality=90)
"
for o in 1 2 3 4 5 6 7 8; do
	$py "$tmp/exif.py" orientation "orient_$o.jpg" "$tmp/base.jpg" "$o"
done
# the orientation-6 photo as a person sees it, from Pillow's exif_transpose
$py -c "
from PIL import Image, ImageOps
ImageOps.exif_transpose(Image.open('orient_6.jpg')).save('orient_upright.png')
"
# upright.jpg (64 x 96) turned 90 degrees clockwise in the DCT domain, then
# tagged Orientation 8 (turn 90 degrees anticlockwise to show): upright again
jpegtran -rotate 90 -perfect -copy none upright.jpg > "$tmp/rot.jpg"
$py "$tmp/exif.py" orientation rotated_jpegtran.jpg "$tmp/rot.jpg" 8
# the same in greyscale (one channel: the IDCT's +-1 is not amplified by
# the colour conversion)
$py -c "
from PIL import Image
Image.open('$tmp/upright.png').convert('L').save('upright_grey.jpg', quality=90)
"
jpegtran -rotate 90 -perfect -copy none upright_grey.jpg > "$tmp/rot_grey.jpg"
$py "$tmp/exif.py" orientation rotated_jpegtran_grey.jpg "$tmp/rot_grey.jpg" 8

$py "$tmp/exif.py" datetime datetime.jpg "$tmp/base.jpg"
$py "$tmp/exif.py" corrupt exif_corrupt.jpg "$tmp/base.jpg"

# CMYK (Pillow: inverted CMYK with an Adobe marker, transform 0) and YCCK
# (tjbench -cmyk: Adobe transform 2) JPEGs
$py -c "
from PIL import Image
Image.open('$tmp/base.png').convert('CMYK').save('cmyk.jpg', quality=90)
"
(cd "$tmp" && tjbench base.ppm 90 -cmyk -subsamp 420 -benchtime 0.01 -warmup 0 >/dev/null)
cp "$tmp/base_420_Q90.jpg" ycck.jpg
# progressive with restart markers, greyscale, arithmetic-coded
jpegtran -progressive -restart 2 -copy none "$tmp/base.jpg" > progressive_restart.jpg
$py -c "
from PIL import Image
Image.open('$tmp/base.png').convert('L').save('grey.jpg', quality=90)
"
jpegtran -arithmetic -copy none "$tmp/base.jpg" > arithmetic.jpg

# WebP: lossy, lossless with alpha, animated (two frames, lossless)
cwebp -quiet -q 80 -metadata none "$tmp/base.png" -o webp_lossy.webp
cwebp -quiet -lossless -exact -metadata none "$tmp/rgba.png" -o webp_alpha.webp
img2webp -lossless "$tmp/base.png" -d 100 "$tmp/frame2.png" -o webp_animated.webp >/dev/null 2>&1
# a lossy WebP tagged Orientation 6 (webpmux adds the EXIF chunk)
$py -c "
import struct
blob = b'II*\0' + struct.pack('<I', 8) + struct.pack('<H', 1) + struct.pack('<HHI', 0x0112, 3, 1) + struct.pack('<HH', 6, 0) + struct.pack('<I', 0)
open('$tmp/o6.exif', 'wb').write(blob)
"
webpmux -set exif "$tmp/o6.exif" webp_lossy.webp -o webp_orient6.webp

# HEIC and AVIF (heif-enc: x265 and aom)
heif-enc -q 60 "$tmp/base.png" -o photo.heic >/dev/null
heif-enc -A -q 60 "$tmp/base.png" -o photo.avif >/dev/null

# TIFF: 8-bit RGB (Pillow, deflate), 16-bit RGB (written by hand below:
# Pillow does not write it), palette, greyscale, two pages (tiffcp), and
# 8-bit RGB tagged Orientation 6
$py - "$tmp" <<'EOF'
import struct, sys
from PIL import Image
tmp = sys.argv[1]
base = Image.open(f"{tmp}/base.png")
base.save("tiff_rgb8.tif", compression="tiff_deflate")
base.quantize(64).save("tiff_palette.tif")
base.convert("L").save("tiff_grey.tif", compression="tiff_lzw")
# 16-bit greyscale, as a TIFF and a PNG: each sample v * 256 plus a low
# byte that differs, so that keeping the high byte is what is tested
grey = base.convert("L")
grey16 = Image.new("I;16", grey.size)
grey16.putdata([v * 256 + (i * 37) % 256 for i, v in enumerate(grey.getdata())])
grey16.save("tiff_grey16.tif")
grey16.save("grey16.png")
Image.open(f"{tmp}/frame2.png").save(f"{tmp}/page2.tif")
ifd0 = base.getexif()
ifd0[0x0112] = 6
base.save("tiff_orient6.tif", exif=ifd0)

# 16-bit RGB, little-endian, uncompressed, one strip: each sample v*257 + a
# low byte that differs, so that keeping the high byte is what is tested
w, h = base.size
px = base.tobytes()
data = bytearray()
for i, v in enumerate(px):
    data += struct.pack("<H", v * 256 + (i * 37) % 256)
entries = []
def ent(tag, typ, count, value):
    entries.append((tag, typ, count, value))
n = 10
ifd_at = 8
ifd_len = 2 + n * 12 + 4
bps_at = ifd_at + ifd_len
data_at = bps_at + 6
ent(256, 3, 1, struct.pack("<HH", w, 0))
ent(257, 3, 1, struct.pack("<HH", h, 0))
ent(258, 3, 3, struct.pack("<I", bps_at))
ent(259, 3, 1, struct.pack("<HH", 1, 0))
ent(262, 3, 1, struct.pack("<HH", 2, 0))
ent(273, 4, 1, struct.pack("<I", data_at))
ent(277, 3, 1, struct.pack("<HH", 3, 0))
ent(278, 3, 1, struct.pack("<HH", h, 0))
ent(279, 4, 1, struct.pack("<I", len(data)))
ent(284, 3, 1, struct.pack("<HH", 1, 0))
assert len(entries) == n
out = b"II*\0" + struct.pack("<I", ifd_at) + struct.pack("<H", n)
for e in sorted(entries):
    out += struct.pack("<HHI", e[0], e[1], e[2]) + e[3]
out += struct.pack("<I", 0) + struct.pack("<HHH", 16, 16, 16) + bytes(data)
open("tiff_rgb16.tif", "wb").write(out)
EOF
tiffcp tiff_rgb8.tif "$tmp/page2.tif" tiff_multipage.tif

# ---- GIFs whose first frame does not cover the screen, written by hand
# (Pillow writes neither): colours a decoder must take from the frame's
# own table, as Pillow reads them -----------------------------------------------
$py <<'EOF'
import struct
def lzw(indices, min_size):
    # every code min_size + 1 bits wide: a clear code before each pair of
    # indices keeps the table from growing a bit
    clear, end, width = 1 << min_size, (1 << min_size) + 1, min_size + 1
    codes = []
    for i in range(0, len(indices), 2):
        codes += [clear] + indices[i:i + 2]
    codes.append(end)
    acc = nbits = 0
    out = bytearray()
    for c in codes:
        acc |= c << nbits
        nbits += width
        while nbits >= 8:
            out.append(acc & 255)
            acc >>= 8
            nbits -= 8
    if nbits:
        out.append(acc)
    blocks = bytearray()
    for i in range(0, len(out), 255):
        blocks += bytes([len(out[i:i + 255])]) + out[i:i + 255]
    return bytes([min_size]) + bytes(blocks) + b"\0"
def gif(name, screen, bg, gpal, frame, pixel, transparent=None, lpal=None):
    sw, sh = screen
    x0, y0, fw, fh = frame
    out = b"GIF89a" + struct.pack("<HHBBB", sw, sh, 0x81, bg, 0) + bytes(sum(gpal, ()))
    if transparent is not None:
        out += b"\x21\xf9\x04" + struct.pack("<BHB", 1, 0, transparent) + b"\0"
    out += b"\x2c" + struct.pack("<HHHH", x0, y0, fw, fh)
    out += bytes([0x81]) + bytes(sum(lpal, ())) if lpal else b"\0"
    out += lzw([pixel(x, y) for y in range(fh) for x in range(fw)], 2) + b"\x3b"
    open(name, "wb").write(out)
gpal = ((10, 120, 240), (250, 250, 0), (200, 30, 90), (0, 160, 60))
# index 2 transparent (its colour is not black); background index 1
gif("gif_transparent.gif", (40, 30), 1, gpal, (5, 4, 24, 18),
    lambda x, y: (x // 3 + y // 2) % 4, transparent=2)
# no transparency, a local colour table; background index 3 (global)
gif("gif_subframe.gif", (40, 30), 3, gpal, (6, 5, 20, 12),
    lambda x, y: (x * y) % 4, lpal=((255, 0, 0), (0, 0, 255), (0, 255, 0), (128, 128, 128)))
EOF

# ---- RLE-compressed BMPs: RLE8 by ImageMagick; RLE4 written by hand (no
# Debian tool writes it) from runs and literal runs of even length, the
# parts of the format Pillow 9.4 reads right ------------------------------------
/usr/bin/convert "$tmp/base.png" -colors 200 -type Palette -compress RLE bmp3:bmp_rle8.bmp
$py - "$tmp" <<'EOF'
import struct, sys
from PIL import Image
im = Image.open(sys.argv[1] + "/base.png").crop((0, 0, 95, 63)).quantize(16)
w, h = im.size
px = list(im.getdata())
pal = im.getpalette()[:48]
def row_rle4(row):
    out, i, n = bytearray(), 0, len(row)
    while i < n:
        j = i
        while j < n and row[j] == row[i] and j - i < 255:
            j += 1
        if j - i >= 4:                     # a run of one index
            out += bytes([j - i, row[i] << 4 | row[i]])
            i = j
            continue
        k = i                              # literals up to the next run of 4
        while k < n and k - i < 254:
            m = k
            while m < n and row[m] == row[k]:
                m += 1
            if m - k >= 4:
                break
            k = min(m, i + 254)
        cnt = (k - i) // 2 * 2
        if cnt < 4:                        # two indices as a run of 2 (or 1 at the end)
            c = min(2, n - i)
            out += bytes([c, row[i] << 4 | (row[i + 1] if c == 2 else 0)])
            i += c
            continue
        data = bytes(row[i + t] << 4 | row[i + t + 1] for t in range(0, cnt, 2))
        out += bytes([0, cnt]) + data + (b"\0" if len(data) % 2 else b"")
        i += cnt
    return bytes(out) + b"\0\0"            # end of line
bits = b"".join(row_rle4(px[r * w:(r + 1) * w]) for r in reversed(range(h))) + b"\0\1"
palette = b"".join(bytes([pal[3 * c + 2], pal[3 * c + 1], pal[3 * c], 0]) for c in range(16))
off = 14 + 40 + len(palette)
head = b"BM" + struct.pack("<IHHI", off + len(bits), 0, 0, off)
head += struct.pack("<IiiHHIIiiII", 40, w, h, 1, 4, 2, len(bits), 2835, 2835, 16, 16)
open("bmp_rle4.bmp", "wb").write(head + palette + bits)
EOF

# ---- broken versions: cut in half, or a header field made impossible ---------
$py <<'EOF'
import struct
def cut(name, out):
    b = open(name, "rb").read()
    open(out, "wb").write(b[: len(b) // 2])
cut("webp_lossy.webp", "bad_truncated.webp")
cut("photo.heic", "bad_truncated.heic")
cut("photo.avif", "bad_truncated.avif")
cut("tiff_rgb8.tif", "bad_truncated.tif")
cut("arithmetic.jpg", "bad_truncated_arithmetic.jpg")
cut("progressive_restart.jpg", "bad_truncated_progressive.jpg")
cut("bmp_rle8.bmp", "bad_truncated_rle8.bmp")

# WebP whose VP8 frame lacks its start code
b = bytearray(open("webp_lossy.webp", "rb").read())
i = b.find(b"\x9d\x01\x2a")
b[i:i + 3] = b"\x00\x00\x00"
open("bad_corrupt.webp", "wb").write(bytes(b))
# HEIC whose meta box states a size past the end of the file
b = bytearray(open("photo.heic", "rb").read())
i = b.find(b"meta") - 4
b[i:i + 4] = struct.pack(">I", 0x7fffff00)
open("bad_corrupt.heic", "wb").write(bytes(b))
# AVIF with its image data (the mdat box's contents) zeroed
b = bytearray(open("photo.avif", "rb").read())
i = b.find(b"mdat") + 4
for k in range(i, len(b)):
    b[k] = 0
open("bad_corrupt.avif", "wb").write(bytes(b))
# TIFF whose first directory is past the end of the file
b = bytearray(open("tiff_rgb8.tif", "rb").read())
b[4:8] = struct.pack("<I", len(b) + 1000)
open("bad_corrupt.tif", "wb").write(bytes(b))
# HEIC whose ispe states 30000 x 30000 (900 megapixels): refused from the
# header, before any decoding
b = bytearray(open("photo.heic", "rb").read())
i = b.find(b"ispe") + 8
b[i:i + 8] = struct.pack(">II", 30000, 30000)
open("bad_huge_ispe.heic", "wb").write(bytes(b))
b = bytearray(open("photo.avif", "rb").read())
i = b.find(b"ispe") + 8
b[i:i + 8] = struct.pack(">II", 30000, 30000)
open("bad_huge_ispe.avif", "wb").write(bytes(b))
EOF

# ---- reference pixels ---------------------------------------------------------
# Pillow (convert("RGB"), exif_transpose for the EXIF-tagged ones; TIFF's
# orientation is applied by Pillow 9.4 on load) for JPEG, WebP and TIFF;
# RGBA PNGs where the alpha is checked too
$py <<'EOF'
from PIL import Image, ImageOps
def ref(name, out, transpose=False, rgba=False):
    im = Image.open(name)
    im.load()
    if transpose:
        im = ImageOps.exif_transpose(im)
    im.convert("RGBA" if rgba else "RGB").save("ref/" + out)
for n in ["orient_1", "datetime", "exif_corrupt", "cmyk", "ycck", "progressive_restart", "grey"]:
    ref(n + ".jpg", n + ".png")
ref("webp_lossy.webp", "webp_lossy.png")
ref("webp_alpha.webp", "webp_alpha.png", rgba=True)
ref("webp_animated.webp", "webp_animated.png")
ref("webp_orient6.webp", "webp_orient6.png", transpose=True)
for n in ["tiff_rgb8", "tiff_rgb16", "tiff_palette", "tiff_grey", "tiff_multipage", "tiff_orient6"]:
    ref(n + ".tif", n + ".png")
ref("gif_transparent.gif", "gif_transparent.png", rgba=True)
ref("bmp_rle8.bmp", "bmp_rle8.png")
ref("bmp_rle4.bmp", "bmp_rle4.png")
# 16-bit greyscale: the high byte of each sample, what the photo shows
# (Pillow's convert("RGB") clips such samples to 255: a white picture)
for name, out in (("tiff_grey16.tif", "tiff_grey16.png"), ("grey16.png", "grey16.png")):
    im = Image.open(name)
    im.load()
    assert im.mode in ("I;16", "I"), im.mode
    high = bytes(v >> 8 for v in im.getdata())
    Image.frombytes("L", im.size, high).convert("RGB").save("ref/" + out)
ref("gif_subframe.gif", "gif_subframe.png")
EOF
# heif-convert for HEIC and AVIF; djpeg for the arithmetic-coded JPEG,
# which Debian's Pillow cannot read
heif-convert photo.heic "$tmp/heic.png" >/dev/null
heif-convert photo.avif "$tmp/avif.png" >/dev/null
djpeg -ppm arithmetic.jpg > "$tmp/arith.ppm"
$py -c "
from PIL import Image
Image.open('$tmp/heic.png').convert('RGB').save('ref/photo_heic.png')
Image.open('$tmp/avif.png').convert('RGB').save('ref/photo_avif.png')
Image.open('$tmp/arith.ppm').convert('RGB').save('ref/arithmetic.png')
"
du -sh . | sed 's/^/total: /'
