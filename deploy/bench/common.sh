# Sourced by the HTTP benchmarks (run.sh, photo-upload.sh): what they share.
# Expects $root (the repository), $work, $clipd and a say() function.

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
	bench_start "$1"
}

# The same on the data directory $work/NAME as it is (kept, or new).
bench_start() {
	local name=$1
	rm -f "$work/$name.port"
	# env execs clipd, so $! is the daemon itself (a shell function would
	# put a subshell in between, which a signal would not get through).
	env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OMP_WAIT_POLICY=passive "$clipd" serve --model "$model" \
		--data "$work/$name" --listen 127.0.0.1:0 --port-file "$work/$name.port" --log-level warn \
		--queue-size 256 2> "$work/$name.log" &
	pid=$!
	trap 'kill -TERM $pid 2>/dev/null; wait $pid 2>/dev/null || true' EXIT
	trap 'exit 130' INT TERM
	for _ in $(seq 600); do [ -f "$work/$name.port" ] && break; sleep 0.1; done
	[ -f "$work/$name.port" ] || { say "clipd serve did not listen: $work/$name.log"; exit 1; }
	url="http://127.0.0.1:$(cat "$work/$name.port")"
	until curl -sf "$url/readyz" >/dev/null; do
		kill -0 $pid 2>/dev/null || { say "clipd serve exited: $work/$name.log"; exit 1; }
		sleep 0.2
	done
}
