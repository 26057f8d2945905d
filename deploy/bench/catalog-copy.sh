#!/bin/bash
# How fast `clipd catalog copy` moves a collection up into PostgreSQL and
# back (README, "Moving up and back").
#
#   deploy/bench/catalog-copy.sh DATA_DIR [URI]
#
# DATA_DIR: a data directory no clipd has open (e.g. the server benchmark's,
# or any served collection). URI: an empty PostgreSQL database to copy into;
# without it a throw-away cluster is started on loopback
# (tests/pg/pg-cluster.sh: fsync off there, so commits cost less than on a
# real server) and stopped at the end. Prints one line per direction: images,
# originals' megabytes, seconds (copy and verification together), images/s,
# MB/s and the peak resident memory, then removes the copy made back.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
clipd=${CLIPD_BIN:-$root/build/clipd}
data=${1:?usage: catalog-copy.sh DATA_DIR [URI]}
uri=${2:-}
cluster=
work=$(mktemp -d)

cleanup() {
	[ -n "$cluster" ] && bash "$root/tests/pg/pg-cluster.sh" stop "$cluster"
	rm -rf "$work"
}
trap cleanup EXIT

if [ -z "$uri" ]; then
	read -r cluster base < <(bash "$root/tests/pg/pg-cluster.sh" start)
	bash "$root/tests/pg/pg-cluster.sh" createdb "$cluster" copybench
	uri=$base/copybench
fi

# one direction: copy, then the figures from its output and /usr/bin/time's
measure() {
	local what=$1 from=$2 to=$3
	local t0 t1
	t0=$(date +%s.%N)
	/usr/bin/time -f '%M' -o "$work/rss" "$clipd" catalog copy --from "$from" --to "$to" >"$work/out" 2>"$work/err" ||
		{ cat "$work/err" >&2; exit 1; }
	t1=$(date +%s.%N)
	local images mb
	images=$(sed -n 's/^verified \([0-9]*\) images.*/\1/p' "$work/out")
	mb=$(sed -n 's/.*images copied now (\([0-9.]*\) MB of originals).*/\1/p' "$work/out")
	/usr/bin/python3 -c 'import sys
what, images, mb, t0, t1, rss = sys.argv[1:]
s = float(t1) - float(t0)
print("%s: %s images, %s MB of originals, %.2f s, %.0f images/s, %.1f MB/s, peak RSS %.0f MB"
      % (what, images, mb, s, int(images) / s, float(mb) / s, int(rss) / 1024))' "$what" "$images" "$mb" "$t0" "$t1" "$(cat "$work/rss")"
}

measure "up (data directory to PostgreSQL)" "$data" "$uri"
measure "back (PostgreSQL to a data directory)" "$uri" "$work/back"
