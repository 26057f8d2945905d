#!/usr/bin/env bash
# Build every fuzz target (tests/fuzz/fuzz_*.c) with clang and libFuzzer
# under AddressSanitizer and UndefinedBehaviorSanitizer (build-fuzz/), run
# each for SECONDS, two at a time, and report:
#
#   deploy/fuzz.sh SECONDS [TARGET...]
#
#   image: 812345 runs, cov 4512, ft 12034, corpus 312, 0 crashes
#   ...
#   8 targets, 0 crashes
#
# Each target starts from its corpus in the tree (tests/fuzz/corpus/NAME/,
# never changed here) plus what earlier runs found (build-fuzz/runs/NAME/
# corpus/). A crash, a sanitizer report, a broken invariant (FUZZ_CHECK), a
# leak, a timeout (25 s for one input) or an input over 2 GB of memory
# stops that target and leaves the input in build-fuzz/runs/NAME/crashes/
# (what earlier runs left there moves to crashes/earlier/, not counted);
# replay one with build-fuzz/tests/fuzz/fuzz_NAME FILE. Exit status 1 if
# any target crashed. Full logs: build-fuzz/runs/NAME/log.
set -uo pipefail

cd "$(dirname "$0")/.."
root=$PWD
if [ $# -lt 1 ] || ! [[ $1 =~ ^[0-9]+$ ]]; then
	echo "usage: deploy/fuzz.sh SECONDS [TARGET...]" >&2
	exit 2
fi
secs=$1
shift
if [ $# -gt 0 ]; then
	targets=("$@")
else
	targets=()
	for f in tests/fuzz/fuzz_*.c; do
		t=${f#tests/fuzz/fuzz_}
		targets+=("${t%.c}")
	done
fi

# clang, libFuzzer's runtime (tests/packages.txt) and FAISS's C API
# (.deps/, or CLIPD_DEPS): bootstrap installs and builds what is missing.
deps=${CLIPD_DEPS:-$root/.deps}
if ! command -v clang >/dev/null || ! dpkg-query -W libclang-rt-14-dev >/dev/null 2>&1 \
	|| [ ! -d "$deps/lib/pkgconfig" ]; then
	bash deploy/bootstrap.sh --test >/dev/null || { echo "fuzz: bootstrap failed" >&2; exit 1; }
fi

dir=build-fuzz
if [ ! -f "$dir/build.ninja" ]; then
	CC=clang meson setup "$dir" -Dpkg_config_path="$deps/lib/pkgconfig" -Dfuzzing=true \
		-Db_sanitize=address,undefined -Db_lundef=false -De2e=false >"$root/$dir.setup.log" 2>&1 \
		|| { cat "$root/$dir.setup.log" >&2; echo "fuzz: meson setup failed" >&2; exit 1; }
fi
build=()
for t in "${targets[@]}"; do
	[ -f "tests/fuzz/fuzz_$t.c" ] || { echo "fuzz: no target $t" >&2; exit 2; }
	build+=("tests/fuzz/fuzz_$t")
done
ninja -C "$dir" "${build[@]}" >"$dir/fuzz-build.log" 2>&1 || { cat "$dir/fuzz-build.log" >&2; echo "fuzz: build failed" >&2; exit 1; }

export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:symbolize=1:suppressions=$root/tests/asan.supp"
export LSAN_OPTIONS="suppressions=$root/tests/lsan.supp"
export UBSAN_OPTIONS="halt_on_error=1:abort_on_error=1:print_stacktrace=1"
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 OMP_WAIT_POLICY=passive

run_one() {
	local t=$1 w="$dir/runs/$1"
	mkdir -p "$w/corpus" "$w/crashes/earlier"
	# inputs an earlier run left are kept, not counted again
	find "$w/crashes" -maxdepth 1 -type f -exec mv -t "$w/crashes/earlier/" {} +
	"$dir/tests/fuzz/fuzz_$t" -max_total_time="$secs" -timeout=25 -rss_limit_mb=2048 -max_len=65536 \
		-print_final_stats=1 -artifact_prefix="$w/crashes/" \
		"$w/corpus" "tests/fuzz/corpus/$t" >"$w/log" 2>&1
	echo $? >"$w/status"
}

# two at a time (two cores)
running=0
for t in "${targets[@]}"; do
	rm -f "$dir/runs/$t/status" "$dir/runs/$t/log"
	run_one "$t" &
	running=$((running + 1))
	if [ $running -ge 2 ]; then
		wait -n
		running=$((running - 1))
	fi
done
wait

total=0
for t in "${targets[@]}"; do
	w="$dir/runs/$t"
	runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$w/log" | tail -1)
	last=$(grep -E '^#[0-9]+' "$w/log" | tail -1)
	cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
	ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
	corp=$(sed -n 's/.* corp: \([0-9]*\)\/.*/\1/p' <<<"$last")
	crashes=$(find "$w/crashes" -maxdepth 1 -type f | wc -l)
	status=$(cat "$w/status" 2>/dev/null || echo 1)
	if [ "$crashes" -eq 0 ] && [ "$status" != 0 ]; then
		crashes=1   # it stopped without leaving an input: see the log
	fi
	total=$((total + crashes))
	echo "$t: ${runs:-0} runs, cov ${cov:-0}, ft ${ft:-0}, corpus ${corp:-0}, $crashes crashes"
done
echo "${#targets[@]} targets, $total crashes"
[ "$total" -eq 0 ]
