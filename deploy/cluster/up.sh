#!/bin/bash
# A local clipd cluster on loopback: a PostgreSQL 15 primary and a streaming
# hot standby (deploy/cluster/pg.sh, synchronous replication), N clipd
# nodes on that catalog, and HAProxy in front, routing to the nodes whose
# /readyz answers 200.
#
#   bash deploy/cluster/up.sh [--nodes N] [--dir DIR] [--port P] [--model DIR] [-- SERVE_ARGS...]
#
#   --nodes N     clipd nodes (default 2, at most 16)
#   --dir DIR     where everything lives (default data/cluster): pg/ (the servers), pgpass,
#                 nodeI/ (each node's data directory: caches), nodeI.log, haproxy.cfg, *.pid,
#                 cluster.env (the addresses, for scripts)
#   --port P      HAProxy's port on 127.0.0.1 (default 8080)
#   --model DIR   the model every node serves (default the tiny test checkpoint,
#                 tests/data/tiny-clip-hf: search results are meaningless with it)
#   SERVE_ARGS    more `clipd serve` options for every node (e.g. --log-level warn)
#
# The binary is build/clipd, or $CLIPD_BIN.
# Installs what is missing through deploy/bootstrap.sh --cluster (PostgreSQL
# 15, HAProxy, build/clipd). Prints where everything listens. Stop it all
# with deploy/cluster/down.sh --dir DIR (--purge also removes DIR).
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
pg="$root/deploy/cluster/pg.sh"
nodes=2
dir="$root/data/cluster"
port=8080
model="$root/tests/data/tiny-clip-hf"
serve_args=()
PGBIN=${CLIPD_PGBIN:-/usr/lib/postgresql/15/bin}

say() { echo "up.sh: $*" >&2; }
die() { say "$*"; exit 1; }

while [ $# -gt 0 ]; do
	case "$1" in
	--nodes) nodes=${2:?--nodes needs a number}; shift 2 ;;
	--dir) dir=${2:?--dir needs a directory}; shift 2 ;;
	--port) port=${2:?--port needs a port}; shift 2 ;;
	--model) model=${2:?--model needs a directory}; shift 2 ;;
	--) shift; serve_args=("$@"); break ;;
	-h|--help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) say "unknown argument '$1' (--help)"; exit 2 ;;
	esac
done
case "$nodes" in ''|*[!0-9]*) say "--nodes: not a number: '$nodes'"; exit 2 ;; esac
[ "$nodes" -ge 1 ] && [ "$nodes" -le 16 ] || { say "--nodes: 1 to 16, not $nodes"; exit 2; }
case "$port" in ''|*[!0-9]*) say "--port: not a port: '$port'"; exit 2 ;; esac
[ "$port" -ge 1 ] && [ "$port" -le 65535 ] || { say "--port: 1 to 65535, not $port"; exit 2; }
[ -d "$model" ] || die "--model: no directory $model"
model=$(readlink -f "$model")

# What is missing comes through bootstrap (idempotent).
clipd=${CLIPD_BIN:-$root/build/clipd}
if [ ! -x "$clipd" ] || ! command -v haproxy >/dev/null || [ ! -x "$PGBIN/pg_basebackup" ]; then
	say "installing what is missing: bash deploy/bootstrap.sh --cluster"
	bash "$root/deploy/bootstrap.sh" --cluster
fi
haproxy=$(command -v haproxy)

mkdir -p "$dir"
dir=$(readlink -f "$dir")
for f in "$dir"/haproxy.pid "$dir"/node*.pid; do
	[ -f "$f" ] && die "$dir has a cluster already ($f): bash deploy/cluster/down.sh --dir $dir"
done
[ ! -e "$dir/pg" ] || die "$dir/pg exists: bash deploy/cluster/down.sh --dir $dir --purge for a new cluster"

# From here on a failure stops what was started.
trap 'rc=$?; if [ $rc -ne 0 ]; then say "failed: stopping what started"; bash "$root/deploy/cluster/down.sh" --dir "$dir" >&2 || true; fi' EXIT

free_port() {
	/usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

say "PostgreSQL: the primary"
bash "$pg" primary "$dir" "$(free_port)"
say "PostgreSQL: the standby (pg_basebackup -R)"
bash "$pg" standby "$dir" "$(free_port)"
uri=$(bash "$pg" uri "$dir")

# The nodes start together: the catalog's migrations run once, under an
# advisory lock. Each in a session of its own, so it outlives this script.
say "starting $nodes clipd nodes"
for i in $(seq "$nodes"); do
	rm -f "$dir/node$i.port"
	PGPASSFILE="$dir/pgpass" setsid "$clipd" serve --model "$model" --data "$dir/node$i" --catalog "$uri" \
		--listen 127.0.0.1:0 --port-file "$dir/node$i.port" "${serve_args[@]}" \
		</dev/null >>"$dir/node$i.log" 2>&1 &
	echo $! > "$dir/node$i.pid"
done
node_ports=()
for i in $(seq "$nodes"); do
	for _ in $(seq 1200); do
		[ -s "$dir/node$i.port" ] && curl -sf -o /dev/null "http://127.0.0.1:$(cat "$dir/node$i.port")/readyz" && break
		kill -0 "$(cat "$dir/node$i.pid")" 2>/dev/null || { tail -20 "$dir/node$i.log" >&2; die "node $i exited ($dir/node$i.log)"; }
		sleep 0.1
	done
	[ -s "$dir/node$i.port" ] || die "node $i did not listen ($dir/node$i.log)"
	curl -sf -o /dev/null "http://127.0.0.1:$(cat "$dir/node$i.port")/readyz" || die "node $i did not get ready ($dir/node$i.log)"
	node_ports+=("$(cat "$dir/node$i.port")")
done

# HAProxy: round robin over the nodes that answer /readyz 200 (checked
# every second; two failures take a node out, one success puts it back). A
# request refused on connect is tried on another node.
{
	cat <<EOF
# the clipd local cluster (deploy/cluster/up.sh)
global
	maxconn 2000
	log stderr format short local0 notice

defaults
	mode http
	log global
	option dontlognull
	timeout connect 2s
	timeout client 120s
	timeout server 120s
	retries 2
	option redispatch

frontend clipd
	bind 127.0.0.1:$port
	default_backend nodes

backend nodes
	balance roundrobin
	option httpchk GET /readyz
	http-check expect status 200
	default-server check inter 1s fall 2 rise 1
EOF
	for i in $(seq "$nodes"); do
		printf '\tserver node%d 127.0.0.1:%s\n' "$i" "${node_ports[$((i - 1))]}"
	done
} > "$dir/haproxy.cfg"
"$haproxy" -c -q -f "$dir/haproxy.cfg" || die "haproxy refused $dir/haproxy.cfg"
"$haproxy" -D -f "$dir/haproxy.cfg" -p "$dir/haproxy.pid" 2>>"$dir/haproxy.log" ||
	die "haproxy did not start ($dir/haproxy.log; is 127.0.0.1:$port taken?)"
for _ in $(seq 100); do
	curl -sf -o /dev/null "http://127.0.0.1:$port/readyz" && break
	sleep 0.1
done
curl -sf -o /dev/null "http://127.0.0.1:$port/readyz" || die "HAProxy on 127.0.0.1:$port does not reach a ready node"

primary_port=$(cat "$dir/pg/primary.port")
standby_port=$(cat "$dir/pg/standby.port")
node_urls=""
for p in "${node_ports[@]}"; do node_urls="$node_urls http://127.0.0.1:$p"; done
cat > "$dir/cluster.env" <<EOF
CLUSTER_URL=http://127.0.0.1:$port
NODE_URLS="${node_urls# }"
CATALOG_URI='$uri'
PGPASSFILE=$dir/pgpass
PRIMARY_PORT=$primary_port
STANDBY_PORT=$standby_port
EOF
trap - EXIT

cat <<EOF
clipd cluster in $dir
  HAProxy               http://127.0.0.1:$port  (the API and the web page, round robin over ready nodes)
EOF
for i in $(seq "$nodes"); do
	printf '  node %-2d               http://127.0.0.1:%s  (pid %s, log %s)\n' "$i" "${node_ports[$((i - 1))]}" \
		"$(cat "$dir/node$i.pid")" "$dir/node$i.log"
done
cat <<EOF
  PostgreSQL primary    127.0.0.1:$primary_port  (log $dir/pg/primary.log)
  PostgreSQL standby    127.0.0.1:$standby_port  (streaming, synchronous; log $dir/pg/standby.log)
  catalog URI           $uri
                        (passwords in $dir/pgpass: PGPASSFILE=$dir/pgpass psql '$uri')
  model                 $model
Stop: bash deploy/cluster/down.sh --dir $dir
EOF
