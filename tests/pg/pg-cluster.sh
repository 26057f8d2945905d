#!/bin/bash
# A throw-away PostgreSQL 15 cluster on loopback for the tests.
#
#   pg-cluster.sh available          exit 0 when PostgreSQL 15's server binaries are installed
#   pg-cluster.sh start              make a cluster in a directory of its own, start it on a free
#                                    loopback port; prints "DIR URI" (URI without a database name:
#                                    postgresql://clipd@127.0.0.1:PORT)
#   pg-cluster.sh createdb DIR NAME  a fresh database NAME (letters, digits, _) in the cluster at DIR
#   pg-cluster.sh stop DIR           stop the cluster and remove DIR
#   pg-cluster.sh standby DIR        a streaming hot standby of the cluster at DIR, started on a free
#                                    port; prints "SDIR URI" (stop it with stop SDIR)
#   pg-cluster.sh promote DIR        promote the standby at DIR (pg_ctl promote): it takes writes
#   pg-cluster.sh halt DIR           stop the server at once (pg_ctl -m immediate: a crash), keep DIR
#   pg-cluster.sh resume DIR         start a halted server again on its port (crash recovery)
#   pg-cluster.sh run CMD ARGS...    start a cluster, run CMD with CLIPD_TEST_PG_URI set to a fresh
#                                    database's URI, stop the cluster whatever happens; exit 77 (a
#                                    skipped test, for meson) when PostgreSQL 15 is not installed
#
# initdb refuses to run as root, so as root every server command runs as the
# `postgres` user (runuser) in a directory owned by it; otherwise as the
# caller. The directory is a mktemp under CLIPD_PG_TMP (default /tmp, which
# every user can traverse), the unix socket is inside it, the port is one the
# kernel had free (retried if taken meanwhile). fsync is off: a test cluster
# never needs to survive a power cut.
set -euo pipefail

PGBIN=${CLIPD_PGBIN:-/usr/lib/postgresql/15/bin}

as_owner() {
	if [ "$(id -u)" -eq 0 ]; then
		runuser -u postgres -- "$@"
	else
		"$@"
	fi
}

free_port() {
	/usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# The server's settings: loopback only, its socket in DIR, no fsync.
server_opts() {
	echo "-c listen_addresses=127.0.0.1 -c port=$2 -c unix_socket_directories=$1/sock -c fsync=off -c full_page_writes=off -c max_connections=200"
}

available() {
	[ -x "$PGBIN/initdb" ] && [ -x "$PGBIN/pg_ctl" ] && [ -x "$PGBIN/psql" ] &&
		{ [ "$(id -u)" -ne 0 ] || id postgres >/dev/null 2>&1; }
}

# A directory of its own for a server, owned by whoever runs it.
new_dir() {
	local dir
	dir=$(mktemp -d "${CLIPD_PG_TMP:-/tmp}/clipd-pg.XXXXXX")
	chmod 0700 "$dir"
	[ "$(id -u)" -ne 0 ] || chown postgres: "$dir"
	echo "$dir"
}

# Start the server of DIR/data on a free loopback port; print "DIR URI".
launch() {
	local dir=$1 port try
	as_owner mkdir "$dir/sock"
	for try in 1 2 3 4 5; do
		port=$(free_port)
		if as_owner "$PGBIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
			-o "$(server_opts "$dir" "$port")" \
			start >/dev/null 2>&1; then
			echo "$port" > "$dir/port"
			echo "$dir postgresql://clipd@127.0.0.1:$port"
			return 0
		fi
	done
	cat "$dir/server.log" >&2 || true
	rm -rf "$dir"
	return 1
}

start() {
	available || { echo "pg-cluster.sh: PostgreSQL 15 is not installed ($PGBIN/initdb)" >&2; return 1; }
	local dir
	dir=$(new_dir)
	if ! as_owner "$PGBIN/initdb" -D "$dir/data" -U clipd -A trust -E UTF8 --locale=C --no-sync \
		>"$dir/initdb.log" 2>&1; then
		cat "$dir/initdb.log" >&2
		rm -rf "$dir"
		return 1
	fi
	launch "$dir"
}

# A streaming hot standby of the cluster at PRIMARY (pg_basebackup -R).
standby() {
	local primary=$1 dir
	[ -d "$primary/data" ] || { echo "pg-cluster.sh: no cluster at $primary" >&2; return 1; }
	dir=$(new_dir)
	if ! as_owner "$PGBIN/pg_basebackup" -D "$dir/data" -R -X stream -c fast \
		-d "postgresql://clipd@127.0.0.1:$(cat "$primary/port")/postgres" >"$dir/basebackup.log" 2>&1; then
		cat "$dir/basebackup.log" >&2
		rm -rf "$dir"
		return 1
	fi
	launch "$dir"
}

createdb() {
	local dir=$1 name=$2
	case "$name" in ''|*[!A-Za-z0-9_]*) echo "pg-cluster.sh: bad database name '$name'" >&2; return 2 ;; esac
	"$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 "postgresql://clipd@127.0.0.1:$(cat "$dir/port")/postgres" \
		-c "CREATE DATABASE $name" >/dev/null
}

stop() {
	local dir=$1
	[ -d "$dir/data" ] || { echo "pg-cluster.sh: no cluster at $dir" >&2; return 1; }
	as_owner "$PGBIN/pg_ctl" -D "$dir/data" -m immediate -w -t 60 stop >/dev/null 2>&1 || true
	rm -rf "$dir"
}

promote() {
	local dir=$1
	[ -d "$dir/data" ] || { echo "pg-cluster.sh: no cluster at $dir" >&2; return 1; }
	as_owner "$PGBIN/pg_ctl" -D "$dir/data" -w -t 60 promote >/dev/null
}

halt() {
	local dir=$1
	[ -d "$dir/data" ] || { echo "pg-cluster.sh: no cluster at $dir" >&2; return 1; }
	as_owner "$PGBIN/pg_ctl" -D "$dir/data" -m immediate -w -t 60 stop >/dev/null
}

resume() {
	local dir=$1 port
	[ -d "$dir/data" ] || { echo "pg-cluster.sh: no cluster at $dir" >&2; return 1; }
	port=$(cat "$dir/port")
	as_owner "$PGBIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
		-o "$(server_opts "$dir" "$port")" \
		start >/dev/null
}

run() {
	if ! available; then
		echo "SKIP: PostgreSQL 15 is not installed ($PGBIN): apt-get install postgresql-15" >&2
		exit 77
	fi
	local out dir uri rc=0
	out=$(start)
	dir=${out%% *}
	uri=${out#* }
	trap 'stop "$dir"' EXIT
	createdb "$dir" clipd_test
	CLIPD_TEST_PG_URI="$uri/clipd_test" "$@" || rc=$?
	exit "$rc"
}

cmd=${1:-}
shift || true
case "$cmd" in
available) available ;;
start) start ;;
createdb) createdb "$@" ;;
stop) stop "$@" ;;
standby) standby "$@" ;;
promote) promote "$@" ;;
halt) halt "$@" ;;
resume) resume "$@" ;;
run) run "$@" ;;
*) echo "usage: pg-cluster.sh available|start|createdb DIR NAME|stop DIR|standby DIR|promote DIR|halt DIR|resume DIR|run CMD..." >&2; exit 2 ;;
esac
