#!/usr/bin/python3
"""CPU time of the reference preprocessing with Debian's Pillow, per file:
open, convert("RGB"), resize the shorter side to SIDE with BICUBIC (the
longer int(SIDE * long / short)), centre crop SIDE x SIDE; on one core.
The best of REPEAT runs of time.process_time(), the file in memory.

    /usr/bin/python3 deploy/bench/pillow-prep.py [--side 224] [--repeat 3] FILE...
"""
import io
import json
import sys
import time

from PIL import Image


def prep(data, side):
    im = Image.open(io.BytesIO(data)).convert("RGB")
    w, h = im.size
    if w <= h:
        nw, nh = side, int(side * h / w)
    else:
        nw, nh = int(side * w / h), side
    im = im.resize((nw, nh), Image.BICUBIC)
    left, top = int(round((nw - side) / 2.0)), int(round((nh - side) / 2.0))
    return im.crop((left, top, left + side, top + side))


def main():
    args = sys.argv[1:]
    side, repeat = 224, 3
    while args and args[0].startswith("--"):
        if args[0] == "--side":
            side = int(args[1])
        elif args[0] == "--repeat":
            repeat = int(args[1])
        else:
            raise SystemExit("usage: pillow-prep.py [--side N] [--repeat N] FILE...")
        args = args[2:]
    for path in args:
        data = open(path, "rb").read()
        best = None
        for _ in range(repeat):
            t0 = time.process_time()
            prep(data, side)
            t = (time.process_time() - t0) * 1e3
            best = t if best is None or t < best else best
        print(json.dumps({"file": path, "pillow_ms": round(best, 2)}), flush=True)


if __name__ == "__main__":
    main()
