#!/bin/bash
# Stop exactly what deploy/cluster/up.sh started in DIR: HAProxy and the
# clipd nodes by their pid files (each only when its command line still
# names DIR, so a reused pid is never hit), then the PostgreSQL standby and
# primary (pg_ctl stop). Idempotent: what is not running is skipped.
#
#   bash deploy/cluster/down.sh [--dir DIR] [--purge]
#
#   --dir DIR   the cluster's directory (default data/cluster)
#   --purge     then remove DIR and the servers' directory (every image in the catalog)
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
dir="$root/data/cluster"
purge=0
while [ $# -gt 0 ]; do
	case "$1" in
	--dir) dir=${2:?--dir needs a directory}; shift 2 ;;
	--purge) purge=1; shift ;;
	-h|--help) sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "down.sh: unknown argument '$1' (--help)" >&2; exit 2 ;;
	esac
done
[ -d "$dir" ] || { echo "down.sh: no cluster at $dir"; exit 0; }
dir=$(readlink -f "$dir")

# Stop the process of a pid file when its command line contains $2; the
# pid file goes either way.
stop_pid() {
	local file=$1 mark=$2 p
	[ -f "$file" ] || return 0
	p=$(cat "$file")
	case "$p" in ''|*[!0-9]*) rm -f "$file"; return 0 ;; esac
	if [ -r "/proc/$p/cmdline" ] && tr '\0' '\n' < "/proc/$p/cmdline" | grep -qxF -- "$mark"; then
		kill -TERM "$p" 2>/dev/null || true
		for _ in $(seq 300); do
			kill -0 "$p" 2>/dev/null || break
			sleep 0.1
		done
		if kill -0 "$p" 2>/dev/null; then
			echo "down.sh: $file: pid $p did not stop in 30 s: kill -9" >&2
			kill -KILL "$p" 2>/dev/null || true
		fi
		echo "down.sh: stopped pid $p ($(basename "$file" .pid))"
	fi
	rm -f "$file"
}

stop_pid "$dir/haproxy.pid" "$dir/haproxy.cfg"
for f in "$dir"/node*.pid; do
	[ -e "$f" ] || continue
	n=$(basename "$f" .pid)
	stop_pid "$f" "$dir/$n"
done
if [ -e "$dir/pg" ]; then
	for s in standby primary; do
		if bash "$root/deploy/cluster/pg.sh" pid "$dir" "$s" >/dev/null 2>&1; then
			bash "$root/deploy/cluster/pg.sh" stop "$dir" "$s"
			echo "down.sh: stopped PostgreSQL's $s"
		fi
	done
fi
if [ "$purge" = 1 ]; then
	[ -L "$dir/pg" ] && rm -rf "$(readlink -f "$dir/pg")"
	rm -rf "$dir"
	echo "down.sh: removed $dir"
fi
