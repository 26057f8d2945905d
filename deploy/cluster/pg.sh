#!/bin/bash
# The PostgreSQL 15 half of the local cluster: a primary and a streaming hot
# standby on loopback, as deploy/cluster/up.sh and the cluster tests
# (tests/e2e/test_cluster.py) run them.
#
#   pg.sh primary DIR PORT        a new primary: initdb, the roles clipd and replicator (passwords
#                                 in DIR/pgpass), the database clipd, started on 127.0.0.1:PORT
#   pg.sh standby DIR PORT        a streaming hot standby of DIR's primary (pg_basebackup -R),
#                                 started on 127.0.0.1:PORT
#   pg.sh start DIR NAME          start the server NAME (primary or standby) again
#   pg.sh stop DIR NAME           stop it (fast: its sessions end, a clean shutdown); nothing when
#                                 it is not running
#   pg.sh kill DIR NAME           kill -9 of the server and its processes (a crash)
#   pg.sh promote DIR NAME        make the standby NAME a primary (pg_ctl promote), wait until it is
#   pg.sh pid DIR NAME            the server's postmaster pid, or exit 1 when it is not running
#   pg.sh uri DIR [DB]            the clipd nodes' URI: both servers, target_session_attrs=read-write
#   pg.sh psql DIR NAME ARGS...   psql as the superuser on NAME's socket
#
# The servers live in DIR/pg: a directory of its own owned by the `postgres`
# user when this runs as root (initdb refuses root; every server command then
# runs through runuser), or a symbolic link to one under /var/tmp when that
# user cannot reach DIR (a home directory of mode 0700) or DIR's path is too
# long for a unix socket. Clients reach the servers over TCP on 127.0.0.1
# only: pg_hba.conf lets clipd into its database and replicator into
# replication, each with a password (scram-sha-256) kept in DIR/pgpass
# (mode 0600; libpq reads it through PGPASSFILE), and the superuser in only
# through the socket in DIR/pg/sock, which only the owner can open.
#
# Replication is synchronous once the standby streams (synchronous_commit =
# on; the primary's synchronous_standby_names = 'standby1', the standby's
# application_name): a commit is acknowledged once the standby has the WAL
# on disk, so a promoted standby has every acknowledged write. A primary
# without a standby, and the standby once promoted, write alone.
# CLIPD_CLUSTER_PG_FAST=1 turns fsync off (tests: no power cut to survive).
set -euo pipefail

PGBIN=${CLIPD_PGBIN:-/usr/lib/postgresql/15/bin}

die() { echo "pg.sh: $*" >&2; exit 1; }

as_owner() {
	if [ "$(id -u)" -eq 0 ]; then
		runuser -u postgres -- "$@"
	else
		"$@"
	fi
}

# The resolved directory of the servers.
pgdir() {
	[ -d "$1/pg" ] || die "no cluster in $1 (no $1/pg)"
	readlink -f "$1/pg"
}

check_name() {
	case "$1" in primary|standby) ;; *) die "unknown server '$1' (primary or standby)" ;; esac
}

# pg_ctl ARGS on the server NAME of the servers' directory DIR; on failure
# the end of its log, and die saying WHAT.
ctl() {
	local dir=$1 name=$2 what=$3
	shift 3
	as_owner "$PGBIN/pg_ctl" -D "$dir/$name" -w -t 60 "$@" >/dev/null ||
		{ tail -20 "$dir/$name.log" >&2; die "$name $what"; }
}

# The resolved directory of the servers, once NAME is known to be one.
srvdir() {
	check_name "$2"
	pgdir "$1"
}

check_port() {
	case "$1" in ''|*[!0-9]*) die "bad port '$1'" ;; esac
	[ "$1" -ge 1 ] && [ "$1" -le 65535 ] || die "bad port '$1'"
}

wait_ready() {
	local dir=$1 name=$2
	for _ in $(seq 300); do
		"$PGBIN/pg_isready" -q -h "$dir/sock" -p "$(cat "$dir/$name.port")" && return 0
		sleep 0.1
	done
	tail -20 "$dir/$name.log" >&2 || true
	die "$name did not accept connections ($dir/$name.log)"
}

# The settings both servers share, and the ones of each (appended last:
# the last value of a setting wins).
common_conf() {
	local sock=$1 fsync=on
	[ "${CLIPD_CLUSTER_PG_FAST:-0}" = 1 ] && fsync=off
	cat <<EOF

# ---- the clipd local cluster (deploy/cluster/pg.sh) ----
listen_addresses = '127.0.0.1'
unix_socket_directories = '$sock'
unix_socket_permissions = 0700
max_connections = 200
wal_level = replica
max_wal_senders = 4
wal_keep_size = '256MB'
hot_standby = on
hot_standby_feedback = on
synchronous_commit = on
fsync = $fsync
password_encryption = 'scram-sha-256'
EOF
}

primary() {
	local top=$1 port=$2
	check_port "$port"
	[ -x "$PGBIN/initdb" ] || die "PostgreSQL 15 is not installed ($PGBIN/initdb): bash deploy/bootstrap.sh --cluster"
	[ "$(id -u)" -ne 0 ] || id postgres >/dev/null 2>&1 || die "running as root needs the postgres user (postgresql-15 makes it)"
	[ ! -e "$top/pg" ] || die "$top/pg exists already: bash deploy/cluster/down.sh --dir $top --purge first"
	mkdir -p "$top"
	top=$(readlink -f "$top")
	# Where the servers live: DIR/pg when its owner can reach it and a
	# socket path fits (107 bytes), else a directory of its own under /var/tmp.
	local dir="$top/pg"
	if [ ${#dir} -gt 70 ] || { [ "$(id -u)" -eq 0 ] && ! runuser -u postgres -- test -x "$top"; }; then
		dir=$(mktemp -d /var/tmp/clipd-cluster-pg.XXXXXX)
		ln -s "$dir" "$top/pg"
	else
		mkdir "$dir"
	fi
	chmod 0700 "$dir"
	[ "$(id -u)" -ne 0 ] || chown postgres: "$dir"
	as_owner mkdir -m 0700 "$dir/sock"

	local pw_clipd pw_repl
	pw_clipd=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
	pw_repl=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
	(umask 077; printf '127.0.0.1:*:clipd:clipd:%s\n127.0.0.1:*:replication:replicator:%s\n' \
		"$pw_clipd" "$pw_repl" > "$top/pgpass")

	local nosync=""
	[ "${CLIPD_CLUSTER_PG_FAST:-0}" = 1 ] && nosync=--no-sync
	as_owner "$PGBIN/initdb" -D "$dir/primary" -U postgres -A reject -E UTF8 --locale=C $nosync \
		>"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; die "initdb failed"; }
	{ common_conf "$dir/sock"; printf "port = %s\n" "$port"; } |
		as_owner tee -a "$dir/primary/postgresql.conf" >/dev/null
	as_owner tee "$dir/primary/pg_hba.conf" >/dev/null <<'EOF'
# the clipd local cluster (deploy/cluster/pg.sh): loopback only
# TYPE  DATABASE     USER        ADDRESS        METHOD
local   all          postgres                   trust
host    clipd        clipd       127.0.0.1/32   scram-sha-256
host    replication  replicator  127.0.0.1/32   scram-sha-256
EOF
	echo "$port" | as_owner tee "$dir/primary.port" >/dev/null
	start "$top" primary
	as_owner "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$dir/sock" -p "$port" -U postgres -d postgres \
		-v pw_clipd="$pw_clipd" -v pw_repl="$pw_repl" >/dev/null <<'EOF'
CREATE ROLE replicator WITH REPLICATION LOGIN PASSWORD :'pw_repl';
CREATE ROLE clipd WITH LOGIN PASSWORD :'pw_clipd';
CREATE DATABASE clipd OWNER clipd;
EOF
}

standby() {
	local top=$1 port=$2
	check_port "$port"
	local dir
	dir=$(pgdir "$top")
	[ ! -e "$dir/standby" ] || die "$dir/standby exists already"
	local pw
	pw=$(awk -F: '$3 == "replication" && $4 == "replicator" { print $5 }' "$top/pgpass")
	# -R writes primary_conninfo (with application_name, which the
	# primary's synchronous_standby_names names) into postgresql.auto.conf.
	as_owner env PGPASSWORD="$pw" "$PGBIN/pg_basebackup" -D "$dir/standby" -R -X stream -c fast \
		-d "host=127.0.0.1 port=$(cat "$dir/primary.port") user=replicator application_name=standby1" \
		>"$dir/basebackup.log" 2>&1 || { cat "$dir/basebackup.log" >&2; die "pg_basebackup failed"; }
	printf "port = %s\n" "$port" | as_owner tee -a "$dir/standby/postgresql.conf" >/dev/null
	echo "$port" | as_owner tee "$dir/standby.port" >/dev/null
	start "$top" standby
	# Synchronous from here on (the primary's postgresql.auto.conf, which
	# the standby's copy was taken before): wait until the primary says so.
	psql_su "$top" primary -c "ALTER SYSTEM SET synchronous_standby_names = 'standby1'" -c "SELECT pg_reload_conf()" >/dev/null
	for _ in $(seq 300); do
		[ "$(psql_su "$top" primary -At -c "SELECT sync_state FROM pg_stat_replication WHERE application_name = 'standby1'")" = sync ] && return 0
		sleep 0.1
	done
	die "the standby did not become the primary's synchronous standby ($dir/standby.log)"
}

start() {
	local top=$1 name=$2 dir
	dir=$(srvdir "$top" "$name")
	[ -d "$dir/$name" ] || die "no $name in $dir"
	if pid "$top" "$name" >/dev/null 2>&1; then
		return 0
	fi
	ctl "$dir" "$name" "did not start" -l "$dir/$name.log" start
	wait_ready "$dir" "$name"
}

stop() {
	local top=$1 name=$2 dir
	dir=$(srvdir "$top" "$name")
	[ -f "$dir/$name/postmaster.pid" ] || return 0
	as_owner "$PGBIN/pg_ctl" -D "$dir/$name" -m fast -w -t 60 stop >/dev/null 2>&1 ||
		as_owner "$PGBIN/pg_ctl" -D "$dir/$name" -m immediate -w -t 60 stop >/dev/null 2>&1 || true
}

# The running postmaster's pid (postmaster.pid's first line, and alive).
pid() {
	local top=$1 name=$2 dir p
	dir=$(srvdir "$top" "$name")
	[ -f "$dir/$name/postmaster.pid" ] || return 1
	p=$(head -1 "$dir/$name/postmaster.pid")
	case "$p" in ''|*[!0-9]*) return 1 ;; esac
	[ -r "/proc/$p/cmdline" ] && tr '\0' ' ' < "/proc/$p/cmdline" | grep -q "$dir/$name" || return 1
	echo "$p"
}

kill9() {
	local top=$1 name=$2 p
	p=$(pid "$top" "$name") || die "$name is not running"
	# the postmaster first (no new sessions), then what it had started
	local children
	children=$(pgrep -P "$p" || true)
	kill -KILL "$p"
	[ -z "$children" ] || kill -KILL $children 2>/dev/null || true
	for _ in $(seq 100); do
		kill -0 "$p" 2>/dev/null || return 0
		sleep 0.05
	done
	die "$name ($p) survived kill -9"
}

promote() {
	local top=$1 name=$2 dir
	dir=$(srvdir "$top" "$name")
	ctl "$dir" "$name" "was not promoted" promote
}

uri() {
	local top=$1 db=${2:-clipd} dir
	dir=$(pgdir "$top")
	local hosts="127.0.0.1:$(cat "$dir/primary.port")"
	[ -f "$dir/standby.port" ] && hosts="$hosts,127.0.0.1:$(cat "$dir/standby.port")"
	echo "postgresql://clipd@$hosts/$db?target_session_attrs=read-write&connect_timeout=3"
}

psql_su() {
	local top=$1 name=$2
	shift 2
	local dir
	dir=$(srvdir "$top" "$name")
	as_owner "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$dir/sock" -p "$(cat "$dir/$name.port")" -U postgres -d clipd "$@"
}

cmd=${1:-}
shift || true
case "$cmd" in
primary) [ $# -eq 2 ] || die "usage: pg.sh primary DIR PORT"; primary "$@" ;;
standby) [ $# -eq 2 ] || die "usage: pg.sh standby DIR PORT"; standby "$@" ;;
start|stop|kill|promote|pid)
	[ $# -eq 2 ] || die "usage: pg.sh $cmd DIR NAME"
	case "$cmd" in kill) kill9 "$@" ;; *) "$cmd" "$@" ;; esac ;;
uri) [ $# -ge 1 ] || die "usage: pg.sh uri DIR [DB]"; uri "$@" ;;
psql) [ $# -ge 2 ] || die "usage: pg.sh psql DIR NAME ARGS..."; psql_su "$@" ;;
*) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
