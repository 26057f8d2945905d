#!/usr/bin/env bash
# Filtered search at scale (issue 15), figures side by side in one run (a
# command, not a test; run it on a quiet machine):
#
#   deploy/bench/filtered-search.sh [--count N] [--model DIR] [--seconds S]
#                                   [--connections C] [--queries Q] [--work DIR]
#                                   [--catalog URI]
#
# 1. A data directory of N images (default 1,000,000), made once and kept
#    in WORK/filtered-N for later runs: `clipd serve` opens it once with the
#    model (so its database records that model), then bench-fill
#    (deploy/bench/bench-fill.c) writes the rows through the store layer,
#    10,000 per transaction: a random unit vector of the model's dimension
#    each, {"g50": true} on every 2nd image and {"g1": true, "g50": true}
#    on every 100th; then `clipd index rebuild` builds the index clipd
#    chooses for N (IVF past 50,000). No originals are written: search
#    does not read them, and `clipd check` is skipped (it would report
#    every blob missing).
# 2. clipd serve on it, and wrk (C connections, default 8, S seconds each,
#    default 30) posting POST /search with one of Q random unit vectors
#    (default 1,000) as an embedding, k 10, in three cases: no filter,
#    filter g1=true (1% of the images match), filter g50=true (50%). No
#    text is encoded, so the figures are the index, the filter and the
#    rows alone (a text query adds the text tower's few milliseconds).
# 3. With --catalog URI, the same on a PostgreSQL catalog instead: URI is
#    a database of its own, empty (filled, then kept for later runs) or
#    filled by an earlier run with the same N. The rows go in with SQL
#    (generate_series; each image's vector is one of 1,000 random unit
#    vectors, the same metadata as above); one clipd node serves it from
#    the cache directory WORK/filtered-pg-N and builds its index from the
#    catalog when it starts. Needs psql.
#
# The model defaults to the ViT-B/32-shaped random checkpoint (512
# dimensions) in /var/tmp/clipd-bench/vit-b-32, written there once with
# ../shared/tools/clipweights.py when missing. Prints one JSON line per
# step and case (requests/s, p50/p90/p99, how many answers were
# exhaustive), then a table.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
model="" count=1000000 seconds=30 conns=8 nqueries=1000 work=/var/tmp/clipd-bench catalog=""
while [ $# -gt 0 ]; do
	case "$1" in
	--count) count=$2; shift 2 ;;
	--model) model=$2; shift 2 ;;
	--seconds) seconds=$2; shift 2 ;;
	--connections) conns=$2; shift 2 ;;
	--queries) nqueries=$2; shift 2 ;;
	--work) work=$2; shift 2 ;;
	--catalog) catalog=$2; shift 2 ;;
	-h|--help) sed -n '2,39p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "filtered-search: unknown argument '$1'" >&2; exit 2 ;;
	esac
done
clipd=${CLIPD_BIN:-$root/build/clipd}
fill=$(dirname "$clipd")/deploy/bench/bench-fill
say() { echo "filtered-search: $*" >&2; }
if ! command -v wrk >/dev/null; then
	sudo=""; [ "$(id -u)" -ne 0 ] && sudo=sudo
	$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q wrk >/dev/null
fi
for tool in wrk curl; do command -v $tool >/dev/null || { say "needs $tool"; exit 1; }; done
[ -x "$clipd" ] && [ -x "$fill" ] || { say "no $clipd or $fill (build first)"; exit 1; }
mkdir -p "$work"
. "$root/deploy/bench/common.sh"
[ -z "$model" ] && [ -f "$work/vit-b-32/model.safetensors" ] && model=$work/vit-b-32
bench_model
echo "# machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg); model $model"

# The PostgreSQL catalog at $catalog filled with $count images, unless it
# holds that many already.
fill_catalog() {
	command -v psql >/dev/null || { say "--catalog needs psql"; exit 1; }
	local have dim model_fp t0 t1
	have=$(psql "$catalog" -Atc "SELECT count(*) FROM images" 2>/dev/null || echo 0)
	[ "$have" = "$count" ] && { say "using $catalog ($count images)"; return 0; }
	say "filling $catalog: $count images"
	bench_serve "$name" --catalog "$catalog"   # the schema, with the model recorded
	dim=$(curl -s "$url/info" | sed -n 's/.*"dim":\([0-9]*\).*/\1/p')
	bench_stop_all
	[ "$(psql "$catalog" -Atc "SELECT count(*) FROM images")" = 0 ] ||
		{ say "$catalog holds images, not $count: give an empty database"; exit 1; }
	model_fp=$(psql "$catalog" -Atc "SELECT value FROM settings WHERE key = 'active_model'")
	/usr/bin/python3 -c '
import math, random, struct, sys
rnd, dim = random.Random(7), int(sys.argv[1])
for i in range(1000):
    v = [rnd.gauss(0, 1) for _ in range(dim)]
    s = math.sqrt(sum(x * x for x in v))
    print("%d\t\\\\x%s" % (i, struct.pack("<%df" % dim, *[x / s for x in v]).hex()))
' "$dim" > "$work/$name.pool"
	t0=$(date +%s.%N)
	psql "$catalog" -q -v ON_ERROR_STOP=1 -c "CREATE TABLE bench_pool (i int PRIMARY KEY, v bytea)" \
		-c "\\copy bench_pool FROM '$work/$name.pool'" >&2
	psql "$catalog" -q -v ON_ERROR_STOP=1 -v n="$count" -v model="$model_fp" >&2 <<'SQL'
INSERT INTO originals (sha256, data) SELECT lpad(to_hex(g), 64, '0'), '\x00'::bytea FROM generate_series(1, :n) g;
INSERT INTO images (id, sha256, mime, width, height, bytes, created_at, metadata)
  SELECT g, lpad(to_hex(g), 64, '0'), 'image/jpeg', 1, 1, 1, 1700000000000000 + g,
    CASE WHEN g % 100 = 0 THEN '{"g1":true,"g50":true}' WHEN g % 2 = 0 THEN '{"g50":true}' ELSE '{}' END
  FROM generate_series(1, :n) g;
SELECT setval('images_id_seq', :n) \g /dev/null
INSERT INTO vectors (image_id, model, vec) SELECT g, :'model', p.v FROM generate_series(1, :n) g JOIN bench_pool p ON p.i = g % 1000;
DROP TABLE bench_pool;
ANALYZE images;
ANALYZE vectors;
SQL
	t1=$(date +%s.%N)
	awk -v a="$t0" -v b="$t1" 'BEGIN { printf "{\"step\":\"fill\",\"catalog\":true,\"fill_s\":%.1f}\n", b - a }'
}

if [ -n "$catalog" ]; then
	name=filtered-pg-$count
	fill_catalog
	bench_start "$name" --catalog "$catalog"
else
name=filtered-$count
data=$work/$name
have=$(run "$clipd" index stats --data "$data" 2>/dev/null | sed -n 's/.*"images": *\([0-9]*\).*/\1/p' || true)
if [ "${have:-0}" != "$count" ]; then
	say "making $data: $count images"
	rm -rf "$data"
	bench_serve "$name"                     # the database, with the model recorded
	kill -TERM $pid; wait $pid || true
	t0=$(date +%s.%N)
	fill_json=$(run "$fill" --data "$data" --count "$count")
	echo "{\"step\":\"fill\",${fill_json#\{}"
	t1=$(date +%s.%N)
	run "$clipd" index rebuild --data "$data" >&2
	t2=$(date +%s.%N)
	awk -v a="$t0" -v b="$t1" -v c="$t2" -v d="$(du -sm "$data" | cut -f1)" \
		'BEGIN { printf "{\"step\":\"build\",\"fill_s\":%.1f,\"index_s\":%.1f,\"data_mb\":%d}\n", b - a, c - b, d }'
else
	say "using $data ($count images)"
fi
bench_start "$name"
fi
info=$(curl -s "$url/info")
echo "$info" | sed -n 's/.*\("index":{[^}]*}\).*/{\1}/p'

# Q random unit vectors of the model's dimension, one JSON array a line.
dim=$(echo "$info" | sed -n 's/.*"dim":\([0-9]*\).*/\1/p')
awk -v n="$nqueries" -v dim="$dim" 'BEGIN {
	srand(7); pi = atan2(0, -1)
	for (q = 0; q < n; q++) {
		s = 0
		for (d = 0; d < dim; d++) { x[d] = sqrt(-2 * log(1 - rand())) * cos(2 * pi * rand()); s += x[d] * x[d] }
		s = sqrt(s); line = "["
		for (d = 0; d < dim; d++) line = line (d ? "," : "") sprintf("%.6f", x[d] / s)
		print line "]"
	}
}' > "$work/$name.queries"

# Requests wrk stopped waiting for (its run ended) still run in the
# daemon: wait until only the one asking is in flight, so that each case
# starts alone (a slow case's last requests would otherwise slow the next).
drain() {
	local n
	for _ in $(seq 600); do
		n=$(curl -s "$url/metrics" | awk '$1 == "clipd_http_requests_in_flight" { print int($2) }')
		[ "${n:-0}" -le 1 ] && return 0
		sleep 0.2
	done
}

results=()
for c in "none|" 'g1|,"filters":{"g1":true}' 'g50|,"filters":{"g50":true}'; do
	case_name=${c%%|*} fields=${c#*|}
	say "case $case_name: $conns connections, $seconds s"
	out=$(wrk -t2 -c"$conns" -d"${seconds}s" --timeout 60s --latency -s "$root/deploy/bench/filtered-search.lua" \
		"$url" -- "$work/$name.queries" 2 "$fields" | grep '^{')
	line="{\"bench\":\"filtered-search\",\"n\":$count,\"filter\":\"$case_name\",${out#\{}"
	echo "$line"
	results+=("$line")
	drain
done

printf '%s\n' "${results[@]}" | awk 'function get(j, k,   m) {
		if (match(j, "\"" k "\":[0-9.]+")) return substr(j, RSTART + length(k) + 3, RLENGTH - length(k) - 3) + 0; return -1 }
	function gets(j, k) { if (match(j, "\"" k "\":\"[^\"]*\"")) return substr(j, RSTART + length(k) + 4, RLENGTH - length(k) - 5); return "" }
	BEGIN { printf "%-8s %10s %9s %9s %12s %8s\n", "filter", "req/s", "p50 ms", "p99 ms", "exhaustive", "errors" }
	{ f = gets($0, "filter"); m = (f == "g1" ? "1%" : f == "g50" ? "50%" : "all")
	  printf "%-8s %10.1f %9.2f %9.2f %5d of %-5d %6d\n", m, get($0, "requests_per_s"), get($0, "p50_ms"),
		get($0, "p99_ms"), get($0, "exhaustive"), get($0, "exhaustive") + get($0, "not_exhaustive"),
		get($0, "non_200") + get($0, "socket_errors") }'
