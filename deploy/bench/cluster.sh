#!/usr/bin/env bash
# The PostgreSQL catalog's benchmark (a command, not a test):
#
#   deploy/bench/cluster.sh [--model DIR] [--prefill N] [--uploads N] [--queries N]
#                           [--seconds S] [--upload-connections C] [--lag-uploads N]
#                           [--lag-rate R] [--work DIR]
#
# 1. One node with the SQLite catalog and one with the PostgreSQL catalog
#    (a PostgreSQL 15 primary on loopback, deploy/cluster/pg.sh, fsync on
#    as SQLite's synchronous=FULL is), one after the other in the same run,
#    each on a fresh catalog prefilled with the same PREFILL images
#    (default 10,000): wrk search (8 connections, S seconds, default 30,
#    over QUERIES distinct queries, default 10,000) and wrk uploads (C
#    connections, default 16, UPLOADS distinct 640 x 480 JPEGs, default
#    2,000, each once), as deploy/bench/run.sh measures them.
# 2. Replication lag: a second node on the same PostgreSQL catalog;
#    cluster-lag.py posts LAG_UPLOADS fresh JPEGs (default 300) to the
#    first node at LAG_RATE a second (default 10) and times each 201 to the
#    second node's answer to a read with min_seq (p50, p99).
#
# The model defaults to run.sh's ViT-B/32-shaped checkpoint. Needs wrk,
# curl, cc, PostgreSQL 15 (deploy/bootstrap.sh --cluster). Prints one JSON
# line per measurement, then the bars: the PostgreSQL node's uploads/s and
# searches/s each >= 90% of the SQLite node's, no errors.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
model="" prefill=10000 uploads=2000 nqueries=10000 seconds=30 upconns=16 lag_uploads=300 lag_rate=10
work="$root/build/bench-cluster"
. "$root/deploy/bench/common.sh"
while [ $# -gt 0 ]; do
	bench_option "$@" && { shift 2; continue; }
	case "$1" in
	--lag-uploads) lag_uploads=$2; shift 2 ;;
	--lag-rate) lag_rate=$2; shift 2 ;;
	-h|--help) sed -n '2,25p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "bench: unknown argument '$1'" >&2; exit 2 ;;
	esac
done
clipd=${CLIPD_BIN:-$root/build/clipd}
say() { echo "bench: $*" >&2; }
for tool in wrk curl cc; do command -v $tool >/dev/null || { say "needs $tool (deploy/bench/run.sh installs wrk)"; exit 1; }; done
[ -x "$clipd" ] || { say "no $clipd (build first)"; exit 1; }
[ -x /usr/lib/postgresql/15/bin/initdb ] ||
	{ say "needs PostgreSQL 15: bash deploy/bootstrap.sh --cluster"; exit 1; }
mkdir -p "$work"
work=$(readlink -f "$work")

bench_model
# the uploads of wrk, and fresh ones for the lag (never seen by either node)
bench_corpus
bench_queries
if [ "$(ls "$work/lag" 2>/dev/null | wc -l)" -ne "$lag_uploads" ]; then
	rm -rf "$work/lag"; mkdir -p "$work/lag"
	"$work/gen-corpus" "$work/lag" "$lag_uploads" 640 480 5000000
fi
ls -1 "$work"/lag/*.jpg > "$work/lag.txt"

# search and uploads against the node at $url; prints two JSON lines, sets
# $search_json and $upload_json
measure() {
	local label=$1
	say "$label: search, 8 connections, $seconds s"
	search_json=$(wrk -t2 -c8 -d"${seconds}s" --latency -s "$root/deploy/bench/search.lua" "$url" -- "$work/queries.txt" 2 | grep '^{')
	echo "{\"catalog\":\"$label\",\"step\":\"search\",${search_json#\{}"
	say "$label: upload, $upconns connections, $seconds s"
	upload_json=$(wrk -t2 -c"$upconns" -d"${seconds}s" --latency -s "$root/deploy/bench/upload.lua" "$url" -- "$work/uploads.txt" 2 | grep '^{')
	echo "{\"catalog\":\"$label\",\"step\":\"upload\",${upload_json#\{}"
}

# 1a. SQLite
bench_serve sqlite-node
bench_prefill
measure sqlite
sqlite_search=$search_json sqlite_upload=$upload_json
bench_stop_all

# 1b. PostgreSQL: a primary of its own for this run
pgtop="$work/pg-run"
bench_on_exit='bash "$root/deploy/cluster/down.sh" --dir "$pgtop" --purge >/dev/null 2>&1 || true'
trap bench_stop_all EXIT
eval "$bench_on_exit"
say "PostgreSQL: a primary on loopback"
bash "$root/deploy/cluster/pg.sh" primary "$pgtop" "$(/usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
export PGPASSFILE="$pgtop/pgpass"
uri=$(bash "$root/deploy/cluster/pg.sh" uri "$pgtop")
bench_serve pg-node1 --catalog "$uri"
bench_prefill
measure postgresql
pg_search=$search_json pg_upload=$upload_json

# 2. the lag to a second node of the same catalog
writer=$url
bench_serve pg-node2 --catalog "$uri"
say "lag: $lag_uploads uploads at $lag_rate/s through one node, read with min_seq on the other"
lag_json=$(/usr/bin/python3 "$root/deploy/bench/cluster-lag.py" --writer "$writer" --reader "$url" \
	--manifest "$work/lag.txt" --rate "$lag_rate") || true
echo "$lag_json"

awk -v ss="$sqlite_search" -v su="$sqlite_upload" -v ps="$pg_search" -v pu="$pg_upload" -v l="$lag_json" '
	function get(j, k,   m) {
		if (match(j, "\"" k "\":[0-9.]+")) return substr(j, RSTART + length(k) + 3, RLENGTH - length(k) - 3) + 0; return -1 }
	BEGIN {
		s1 = get(ss, "requests_per_s"); s2 = get(ps, "requests_per_s")
		u1 = get(su, "images_per_s"); u2 = get(pu, "images_per_s")
		e = get(ss, "non_200") + get(ss, "socket_errors") + get(ps, "non_200") + get(ps, "socket_errors")
		e += get(su, "not_201") + get(su, "socket_errors") + get(pu, "not_201") + get(pu, "socket_errors")
		e += (get(l, "errors") < 0 ? 1 : get(l, "errors"))
		printf "bars: search %.0f req/s on PostgreSQL = %.0f%% of SQLite %.0f (>= 90%%: %s), upload %.1f img/s = %.0f%% of SQLite %.1f (>= 90%%: %s), lag p50 %.1f ms p99 %.1f ms (< 1000: %s), errors %d (0: %s)\n",
			s2, (s1 > 0 ? 100 * s2 / s1 : 0), s1, ((s1 > 0 && s2 >= 0.9 * s1) ? "yes" : "NO"),
			u2, (u1 > 0 ? 100 * u2 / u1 : 0), u1, ((u1 > 0 && u2 >= 0.9 * u1) ? "yes" : "NO"),
			get(l, "p50_ms"), get(l, "p99_ms"), ((get(l, "p99_ms") >= 0 && get(l, "p99_ms") < 1000) ? "yes" : "NO"),
			e, (e == 0 ? "yes" : "NO")
	}'
