# Sourced by the HTTP benchmarks (run.sh, photo-upload.sh, cluster.sh): what
# they share. Expects $root (the repository), $work, $clipd and a say()
# function.

# The options of the HTTP benchmarks (run.sh, cluster.sh): sets the
# variable of option $1 to $2, or returns 1 when $1 is not one of them.
bench_option() {
	[ $# -ge 2 ] || return 1
	case "$1" in
	--model) model=$2 ;;
	--prefill) prefill=$2 ;;
	--uploads) uploads=$2 ;;
	--queries) nqueries=$2 ;;
	--seconds) seconds=$2 ;;
	--upload-connections) upconns=$2 ;;
	--work) work=$2 ;;
	*) return 1 ;;
	esac
}

# A command without the test environment's OpenBLAS overrides.
run() { env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OMP_WAIT_POLICY=passive "$@"; }

# $model, or when it is empty the ViT-B/32-shaped random checkpoint of
# ../shared/tools/clipweights.py, written into $work/model once.
bench_model() {
	[ -n "$model" ] && return 0
	model="$work/model"
	[ -f "$model/model.safetensors" ] && return 0
	local tool="$root/../shared/tools/clipweights.py"
	[ -f "$tool" ] || { say "no --model and no $tool"; exit 1; }
	say "writing the ViT-B/32-shaped benchmark checkpoint into $model"
	/usr/bin/python3 "$tool" vit-b-32-bench "$model" "$root/encoder/data/bpe_simple_vocab_16e6.txt.gz" >&2
}

# Start clipd serve on a fresh data directory $work/NAME (port file
# $work/NAME.port, log $work/NAME.log) and wait until it is ready: sets $pid
# and $url; the daemon is stopped when the script exits.
bench_serve() {
	rm -rf "${work:?}/$1"
	bench_start "$@"
}

# The same on the data directory $work/NAME as it is (kept, or new); more
# arguments go to clipd serve. Every daemon started is stopped when the
# script exits, then $bench_on_exit runs (when set).
bench_pids=""
bench_stop_all() {
	local p
	for p in $bench_pids; do kill -TERM "$p" 2>/dev/null || true; done
	for p in $bench_pids; do wait "$p" 2>/dev/null || true; done
	bench_pids=""
	[ -z "${bench_on_exit:-}" ] || eval "$bench_on_exit"
}
bench_start() {
	local name=$1
	shift
	rm -f "$work/$name.port"
	# env execs clipd, so $! is the daemon itself (a shell function would
	# put a subshell in between, which a signal would not get through).
	env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OMP_WAIT_POLICY=passive "$clipd" serve --model "$model" \
		--data "$work/$name" --listen 127.0.0.1:0 --port-file "$work/$name.port" --log-level warn \
		--queue-size 256 "$@" 2> "$work/$name.log" &
	pid=$!
	bench_pids="$bench_pids $pid"
	trap bench_stop_all EXIT
	trap 'exit 130' INT TERM
	for _ in $(seq 600); do [ -f "$work/$name.port" ] && break; sleep 0.1; done
	[ -f "$work/$name.port" ] || { say "clipd serve did not listen: $work/$name.log"; exit 1; }
	url="http://127.0.0.1:$(cat "$work/$name.port")"
	until curl -sf "$url/readyz" >/dev/null; do
		kill -0 $pid 2>/dev/null || { say "clipd serve exited: $work/$name.log"; exit 1; }
		sleep 0.2
	done
}

# $prefill small JPEGs in $work/prefill and $uploads distinct 640 x 480
# JPEGs in $work/uploads (listed in $work/uploads.txt), made once
# (gen-corpus.c; needs cc).
bench_corpus() {
	cc -O2 -o "$work/gen-corpus" "$root/deploy/bench/gen-corpus.c" -lm
	if [ "$(ls "$work/prefill" 2>/dev/null | wc -l)" -ne "$prefill" ]; then
		rm -rf "$work/prefill"; mkdir -p "$work/prefill"
		say "generating $prefill prefill images"
		"$work/gen-corpus" "$work/prefill" "$prefill" 64 48 1000000
	fi
	if [ "$(ls "$work/uploads" 2>/dev/null | wc -l)" -ne "$uploads" ]; then
		rm -rf "$work/uploads"; mkdir -p "$work/uploads"
		say "generating $uploads 640x480 upload images"
		"$work/gen-corpus" "$work/uploads" "$uploads" 640 480 0
	fi
	ls -1 "$work"/uploads/*.jpg > "$work/uploads.txt"
}

# $nqueries distinct queries in $work/queries.txt: word combinations plus a number.
bench_queries() {
	awk -v n="$nqueries" 'BEGIN {
		split("a an the one two some", det); split("red blue green old small big shiny wooden", adj);
		split("bicycle dog cat house car tree boat bird horse lamp", noun);
		split("near on under beside behind", prep); split("river wall street garden beach window", place);
		for (i = 0; i < n; i++)
			printf "%s %s %s %s the %s %d\n", det[i%6+1], adj[int(i/6)%8+1], noun[int(i/48)%10+1],
				prep[int(i/480)%5+1], place[int(i/2400)%6+1], i
	}' > "$work/queries.txt"
}

# Store every image of $work/prefill through $url (8 at a time).
bench_prefill() {
	say "prefilling $prefill images"
	local t0
	t0=$(date +%s)
	ls -1 "$work"/prefill/*.jpg | xargs -P 8 -I{} curl -s -o /dev/null -w '%{http_code}\n' \
		-H 'Content-Type: image/jpeg' --data-binary @{} "$url/images" | sort | uniq -c >&2
	say "prefill took $(( $(date +%s) - t0 )) s; $(curl -s "$url/info" | sed -n 's/.*"images":\([0-9]*\).*/\1/p') images stored"
}
