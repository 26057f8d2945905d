#!/usr/bin/python3
"""A corpus of distinct 12-megapixel photo-like JPEGs for deploy/bench/photos.sh.

    /usr/bin/python3 deploy/bench/gen-photos.py OUT_DIR [COUNT] [WIDTH HEIGHT]

Each picture has the statistics of a photograph rather than flat colour
(which compresses to a tenth of a photo's size): a 1/f ("pink") noise field
over eight octaves per channel, correlated between channels, on a smooth
lighting gradient, a few soft-edged objects with textures of their own, and
sensor grain. Saved by Debian's Pillow at quality 90, 4:2:0, about 2.5 MB at
4032 x 3024. Every fourth file is stored sideways (3024 x 4032 pixels turned)
with EXIF Orientation 6, as a phone stores a portrait photo. Deterministic:
file i is made from seed i. Files already present are kept.
"""
import os
import sys

import numpy as np
from PIL import Image


def octave_noise(rng, w, h, octaves=7, base=5):
    """Sum of upsampled random grids, amplitude falling per octave: 1/f-like."""
    out = np.zeros((h, w), np.float32)
    amp = 1.0
    for o in range(octaves):
        gw, gh = base << o, max(2, (base << o) * h // w)
        if gw > w:
            break
        grid = rng.standard_normal((gh, gw)).astype(np.float32)
        out += amp * np.asarray(Image.fromarray(grid, mode="F").resize((w, h), Image.BICUBIC))
        amp *= 0.7
    return out


def photo(seed, w, h):
    """The scene at a quarter of the size, upsampled, plus full-size detail."""
    rng = np.random.default_rng(seed)
    qw, qh = w // 4, h // 4
    yy, xx = np.mgrid[0:qh, 0:qw].astype(np.float32)
    fy, fx = yy / qh, xx / qw
    luma = octave_noise(rng, qw, qh)
    chroma1 = octave_noise(rng, qw, qh, octaves=5)
    chroma2 = octave_noise(rng, qw, qh, octaves=5)
    light = 0.6 + 0.4 * np.cos((fx - rng.uniform()) * 2.5) * np.cos((fy - rng.uniform()) * 2.0)
    tint = rng.uniform(60, 190, 3).astype(np.float32)
    img = np.empty((qh, qw, 3), np.float32)
    for c in range(3):
        img[..., c] = tint[c] * light + 24 * luma + 10 * (chroma1 if c == 0 else chroma2 if c == 2 else 0)
    # objects: soft-edged ellipses with a striped texture of their own
    for _ in range(rng.integers(4, 9)):
        cx, cy = rng.uniform(0, qw), rng.uniform(0, qh)
        rx, ry = rng.uniform(qw / 20, qw / 4), rng.uniform(qh / 20, qh / 4)
        d = np.sqrt(((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2)
        m = np.clip((1.0 - d) * 8, 0, 1)[..., None]
        col = rng.uniform(20, 235, 3).astype(np.float32)
        period = rng.uniform(1.5, 10)
        angle = rng.uniform(0, np.pi)
        stripes = 16 * np.sin((xx * np.cos(angle) + yy * np.sin(angle)) / period)
        img = img * (1 - m) + m * (col + stripes[..., None] + 12 * luma[..., None])
    small = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), "RGB")
    big = np.asarray(small.resize((w, h), Image.BICUBIC)).astype(np.int16)
    # full-size detail: a fine texture (two octaves at full size, shared
    # by the channels, as luminance detail is) and sensor grain
    fine = np.asarray(Image.fromarray(rng.standard_normal((h // 2, w // 2)).astype(np.float32),
                                      mode="F").resize((w, h), Image.BILINEAR))
    grain = rng.integers(-GRAIN, GRAIN + 1, (h, w), dtype=np.int16)
    detail = (fine * FINE).astype(np.int16) + grain
    big += detail[..., None]
    return Image.fromarray(np.clip(big, 0, 255).astype(np.uint8), "RGB")


GRAIN = 5   # uniform grain, levels
FINE = 6.0  # amplitude of the two-pixel texture


def main():
    out = sys.argv[1]
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 200
    w, h = (int(sys.argv[3]), int(sys.argv[4])) if len(sys.argv) > 4 else (4032, 3024)
    os.makedirs(out, exist_ok=True)
    for i in range(count):
        path = os.path.join(out, "photo-%04d.jpg" % i)
        if os.path.exists(path):
            continue
        kw = {}
        if i % 4 == 3:
            # a portrait photo (h x w upright), stored as the sensor saw it:
            # turned 90 degrees anticlockwise; Orientation 6 turns it back
            im = photo(i, h, w).transpose(Image.Transpose.ROTATE_90)
            exif = Image.Exif()
            exif[0x0112] = 6
            kw["exif"] = exif.tobytes()
        else:
            im = photo(i, w, h)
        tmp = path + ".tmp"
        im.save(tmp, "JPEG", quality=90, **kw)
        os.rename(tmp, path)


if __name__ == "__main__":
    main()
