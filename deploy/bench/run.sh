#!/usr/bin/env bash
# The HTTP benchmarks, figures side by side in one run (commands, not tests):
#
#   deploy/bench/run.sh [--model DIR] [--prefill N] [--uploads N] [--queries N]
#                       [--seconds S] [--upload-connections C] [--work DIR]
#
# 1. clipd bench --batch 8: the encoder alone (images/s), the reference for uploads.
# 2. clipd serve on a fresh data directory, prefilled with PREFILL distinct
#    images (default 10,000; small JPEGs: the encoder's cost does not depend
#    on the size, every image is cropped to the model's input).
# 3. wrk, search: concurrency 8 for S seconds (default 30) over QUERIES
#    distinct queries (default 10,000; more than the text cache holds, so
#    no search is answered from the cache).
# 4. wrk, upload: C connections (default 16: each upload spends part of its
#    time decoding and committing, so it takes more than 8 clients to keep
#    8 images at the encoder) posting UPLOADS distinct 640 x 480 JPEGs
#    (default 2,000), each once: nothing takes the duplicate path.
#
# The model defaults to the ViT-B/32-shaped random checkpoint of
# ../shared/tools/clipweights.py (written into WORK/model once; numpy
# needed). Needs curl and a C compiler (deploy/bootstrap.sh) and wrk,
# which it installs from Debian when missing.
# Prints one JSON line per measurement, then the bars: search >= 200
# requests/s with p99 < 100 ms, uploads >= 80% of clipd bench's batch-8
# images/s, no errors.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
model="" prefill=10000 uploads=2000 nqueries=10000 seconds=30 upconns=16 work="$root/build/bench"
. "$root/deploy/bench/common.sh"
while [ $# -gt 0 ]; do
	bench_option "$@" && { shift 2; continue; }
	case "$1" in
	-h|--help) sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "bench: unknown argument '$1'" >&2; exit 2 ;;
	esac
done
clipd=${CLIPD_BIN:-$root/build/clipd}
say() { echo "bench: $*" >&2; }
if ! command -v wrk >/dev/null; then
	sudo=""; [ "$(id -u)" -ne 0 ] && sudo=sudo
	$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q wrk >/dev/null
fi
for tool in wrk curl cc; do command -v $tool >/dev/null || { say "needs $tool"; exit 1; }; done
[ -x "$clipd" ] || { say "no $clipd (build first)"; exit 1; }
mkdir -p "$work"

bench_model

bench_corpus
bench_queries

say "clipd bench --batch 8 (the encoder alone)"
bench_json=$(run "$clipd" bench --model "$model" --batch 8 --seconds 20)
echo "$bench_json"
bench_ips=$(echo "$bench_json" | sed -n 's/.*"images_per_s":\([0-9.]*\).*/\1/p')

bench_serve data

bench_prefill

say "search: 8 connections, $seconds s"
search_json=$(wrk -t2 -c8 -d"${seconds}s" --latency -s "$root/deploy/bench/search.lua" "$url" -- "$work/queries.txt" 2 | grep '^{')
echo "$search_json"

# Long enough to measure, short enough that the fresh images do not run out
# even at the encoder's own speed.
up_secs=$(awk -v n="$uploads" -v r="$bench_ips" 'BEGIN { s = int(0.8 * n / (r > 0 ? r : 1)); if (s > 60) s = 60; if (s < 5) s = 5; print s }')
say "upload: $upconns connections, ${up_secs} s"
upload_json=$(wrk -t2 -c"$upconns" -d"${up_secs}s" --latency -s "$root/deploy/bench/upload.lua" "$url" -- "$work/uploads.txt" 2 | grep '^{')
echo "$upload_json"
curl -s "$url/info" | sed -n 's/.*"encoder":{"image":\({[^}]*}\).*/{"encoder_image_counters":\1}/p'

awk -v s="$search_json" -v u="$upload_json" -v b="$bench_ips" 'function get(j, k,   m) {
		if (match(j, "\"" k "\":[0-9.]+")) return substr(j, RSTART + length(k) + 3, RLENGTH - length(k) - 3) + 0; return -1 }
	BEGIN {
		rps = get(s, "requests_per_s"); p99 = get(s, "p99_ms"); se = get(s, "non_200") + get(s, "socket_errors")
		ips = get(u, "images_per_s"); ue = get(u, "not_201") + get(u, "socket_errors")
		printf "bars: search %.0f req/s (>= 200: %s), p99 %.1f ms (< 100: %s), upload %.1f img/s = %.0f%% of bench %.1f (>= 80%%: %s), errors %d (0: %s)\n",
			rps, (rps >= 200 ? "yes" : "NO"), p99, (p99 < 100 ? "yes" : "NO"), ips, (b > 0 ? 100 * ips / b : 0), b,
			((b > 0 && ips >= 0.8 * b) ? "yes" : "NO"), se + ue, ((se + ue == 0) ? "yes" : "NO")
	}'
