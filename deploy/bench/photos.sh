#!/usr/bin/env bash
# The photo benchmark (issue 12): decode and preprocessing of 12-megapixel
# JPEGs, clipd exact (--exact-decode), clipd with the JPEG fast path (DCT
# scaling), and Debian's Pillow doing the reference preprocessing (open,
# convert("RGB"), bicubic resize of the shorter side to 224, centre crop),
# all on one core, CPU time per image (the best of REPEAT runs each), and
# the RMS difference between clipd's fast and exact crops. Prints every
# file's figures as JSON lines into WORK/photos-*.jsonl and the medians.
#
#   deploy/bench/photos.sh [COUNT] [REPEAT]
#
# The corpus (COUNT, default 200, distinct 4032 x 3024 JPEGs of about
# 2.5 MB at quality 90, a quarter stored sideways with EXIF Orientation 6)
# is made once by deploy/bench/gen-photos.py under /var/tmp/clipd-bench.
# The upload run through HTTP (8 connections, against clipd bench --batch 8)
# is deploy/bench/photo-upload.sh.
set -euo pipefail
cd "$(dirname "$0")/../.."
count=${1:-200}
repeat=${2:-3}
work=/var/tmp/clipd-bench
corpus="$work/photos"
mkdir -p "$work"

/usr/bin/python3 -c 'import numpy, PIL' 2>/dev/null ||
	apt-get install -y -q python3-numpy python3-pil >/dev/null
[ -x build/deploy/bench/photo-prep ] || bash deploy/bootstrap.sh
ninja -C build deploy/bench/photo-prep >/dev/null

echo "# machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# corpus: $count photos in $corpus"
/usr/bin/python3 deploy/bench/gen-photos.py "$corpus" "$count"
files=()
for i in $(seq 0 $((count - 1))); do files+=("$(printf '%s/photo-%04d.jpg' "$corpus" "$i")"); done
echo "# mean file size: $(du -cb "${files[@]}" | tail -1 | awk -v n="$count" '{printf "%.2f MB", $1 / n / 1e6}')"

taskset -c 0 build/deploy/bench/photo-prep --repeat "$repeat" "${files[@]}" > "$work/photos-clipd.jsonl"
taskset -c 0 /usr/bin/python3 deploy/bench/pillow-prep.py --repeat "$repeat" "${files[@]}" > "$work/photos-pillow.jsonl"

/usr/bin/python3 - "$work/photos-clipd.jsonl" "$work/photos-pillow.jsonl" <<'PY'
import json, statistics, sys
clipd = [json.loads(l) for l in open(sys.argv[1])]
pillow = [json.loads(l) for l in open(sys.argv[2])]
med = lambda xs: statistics.median(xs)
print("photos: %d" % len(clipd))
print("CPU ms per image, decode + preprocess, one core (median):")
print("  clipd --exact-decode  %7.1f" % med([r["exact_ms"] for r in clipd]))
print("  clipd fast path       %7.1f  (DCT scale 1/%d)" % (med([r["fast_ms"] for r in clipd]),
                                                           med([r["scale"] for r in clipd])))
print("  Pillow reference      %7.1f" % med([r["pillow_ms"] for r in pillow]))
rms = [r["rms"] for r in clipd]
print("fast vs exact crop: RMS median %.3f, max %.3f levels; worst pixel %d levels"
      % (med(rms), max(rms), max(r["max"] for r in clipd)))
PY
