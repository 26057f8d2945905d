#!/usr/bin/env bash
# The PostgreSQL catalog's benchmark (a command, not a test):
#
#   deploy/bench/cluster.sh [--model DIR] [--prefill N] [--uploads N] [--queries N]
#                           [--seconds S] [--rounds R] [--upload-connections C]
#                           [--lag-uploads N] [--lag-rate R] [--work DIR]
#
# 1. One node with the SQLite catalog and one with the PostgreSQL catalog
#    (a PostgreSQL 15 primary on loopback, deploy/cluster/pg.sh, fsync on
#    as SQLite's synchronous=FULL is), both running, each prefilled with
#    the same PREFILL images (default 10,000). Then ROUNDS rounds (default
#    3), the two nodes taking turns (the first of a round alternates):
#    wrk search (8 connections, S seconds a round, default 20, over a slice
#    of QUERIES distinct queries, default 24,000, the same slice for both
#    nodes and a new one each round, so no search hits the text cache),
#    then the same for uploads (C connections, default 16, each node its
#    own slice of UPLOADS distinct 640 x 480 JPEGs, default 4,000, each
#    once), as deploy/bench/run.sh measures them. The figures compared are
#    each node's median over the rounds: one round each is at the mercy of
#    whatever else the machine did in its seconds.
# 2. Replication lag: a second node on the same PostgreSQL catalog;
#    cluster-lag.py posts LAG_UPLOADS fresh JPEGs (default 300) to the
#    first node at LAG_RATE a second (default 10) and times each 201 to the
#    second node's answer to a read with min_seq (p50, p99).
#
# The model defaults to run.sh's ViT-B/32-shaped checkpoint. Needs wrk,
# curl, cc, PostgreSQL 15 (deploy/bootstrap.sh --cluster). Prints one JSON
# line per measurement, then the medians and the bars: the PostgreSQL
# node's uploads/s and searches/s each >= 90% of the SQLite node's, no
# errors.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
model="" prefill=10000 uploads=4000 nqueries=24000 seconds=20 rounds=3 upconns=16 lag_uploads=300 lag_rate=10
work="$root/build/bench-cluster"
. "$root/deploy/bench/common.sh"
while [ $# -gt 0 ]; do
	bench_option "$@" && { shift 2; continue; }
	case "$1" in
	--rounds) rounds=$2; shift 2 ;;
	--lag-uploads) lag_uploads=$2; shift 2 ;;
	--lag-rate) lag_rate=$2; shift 2 ;;
	-h|--help) sed -n '2,30p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
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

[[ $rounds =~ ^[1-9][0-9]?$ ]] || { say "--rounds: 1 to 99"; exit 2; }
# round r's queries (the same for both nodes), node n's uploads of round r
for r in $(seq "$rounds"); do
	awk -v r="$r" -v R="$rounds" '(NR - 1) % R == r - 1' "$work/queries.txt" > "$work/queries-$r.txt"
	for n in 0 1; do
		awk -v k=$(( 2 * (r - 1) + n )) -v R=$(( 2 * rounds )) '(NR - 1) % R == k' "$work/uploads.txt" \
			> "$work/uploads-$r-$n.txt"
	done
done

# 1a. SQLite
bench_serve sqlite-node
bench_prefill
sqlite_url=$url

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
pg_url=$url

# the rounds: all searches first (the collection as prefilled), then the
# uploads; prints one JSON line a measurement and keeps them in $results
results=""
for step in search upload; do
	for r in $(seq "$rounds"); do
		order="sqlite postgresql"
		[ $(( r % 2 )) -eq 0 ] && order="postgresql sqlite"
		for label in $order; do
			if [ "$label" = sqlite ]; then u=$sqlite_url n=0; else u=$pg_url n=1; fi
			if [ $step = search ]; then
				say "$label: search round $r, 8 connections, $seconds s"
				j=$(wrk -t2 -c8 -d"${seconds}s" --latency -s "$root/deploy/bench/search.lua" "$u" \
					-- "$work/queries-$r.txt" 2 | grep '^{')
			else
				say "$label: upload round $r, $upconns connections, $seconds s"
				j=$(wrk -t2 -c"$upconns" -d"${seconds}s" --latency -s "$root/deploy/bench/upload.lua" "$u" \
					-- "$work/uploads-$r-$n.txt" 2 | grep '^{')
			fi
			line="{\"catalog\":\"$label\",\"step\":\"$step\",\"round\":$r,${j#\{}"
			echo "$line"
			results+="$line"$'\n'
		done
	done
done

# 2. the lag to a second node of the same catalog
writer=$pg_url
bench_serve pg-node2 --catalog "$uri"
say "lag: $lag_uploads uploads at $lag_rate/s through one node, read with min_seq on the other"
lag_json=$(/usr/bin/python3 "$root/deploy/bench/cluster-lag.py" --writer "$writer" --reader "$url" \
	--manifest "$work/lag.txt" --rate "$lag_rate") || true
echo "$lag_json"

printf '%s' "$results" | awk -v l="$lag_json" '
	function get(j, k) {
		if (match(j, "\"" k "\":[0-9.]+")) return substr(j, RSTART + length(k) + 3, RLENGTH - length(k) - 3) + 0; return -1 }
	function median(key,   n, i, j, t, a) {
		n = split(vals[key], a, " ")
		for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j - 1] + 0 > a[j] + 0; j--) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
		if (n == 0) return -1
		return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2 }
	{
		c = get_str($0, "catalog"); st = get_str($0, "step")
		v = st == "search" ? get($0, "requests_per_s") : get($0, "images_per_s")
		vals[c "/" st] = vals[c "/" st] " " v
		e += get($0, "socket_errors") + (st == "search" ? get($0, "non_200") : get($0, "not_201"))
	}
	function get_str(j, k) {
		if (match(j, "\"" k "\":\"[a-z]+\"")) return substr(j, RSTART + length(k) + 4, RLENGTH - length(k) - 5); return "" }
	END {
		s1 = median("sqlite/search"); s2 = median("postgresql/search")
		u1 = median("sqlite/upload"); u2 = median("postgresql/upload")
		e += (get(l, "errors") < 0 ? 1 : get(l, "errors"))
		printf "{\"medians\":true,\"sqlite_search_per_s\":%.1f,\"postgresql_search_per_s\":%.1f,\"sqlite_upload_per_s\":%.2f,\"postgresql_upload_per_s\":%.2f}\n", s1, s2, u1, u2
		printf "bars (medians of the rounds): search %.0f req/s on PostgreSQL = %.0f%% of SQLite %.0f (>= 90%%: %s), upload %.1f img/s = %.0f%% of SQLite %.1f (>= 90%%: %s), lag p50 %.1f ms p99 %.1f ms (< 1000: %s), errors %d (0: %s)\n",
			s2, (s1 > 0 ? 100 * s2 / s1 : 0), s1, ((s1 > 0 && s2 >= 0.9 * s1) ? "yes" : "NO"),
			u2, (u1 > 0 ? 100 * u2 / u1 : 0), u1, ((u1 > 0 && u2 >= 0.9 * u1) ? "yes" : "NO"),
			get(l, "p50_ms"), get(l, "p99_ms"), ((get(l, "p99_ms") >= 0 && get(l, "p99_ms") < 1000) ? "yes" : "NO"),
			e, (e == 0 ? "yes" : "NO")
	}'
