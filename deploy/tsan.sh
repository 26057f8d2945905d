#!/usr/bin/env bash
# ThreadSanitizer run: builds build-tsan/ (-Db_sanitize=thread) and runs the
# server's unit tests and the end-to-end suite (the real daemon, with its
# HTTP threads, decode workers, encoder teams, batchers and the index's
# background build) under it.
#
#   deploy/tsan.sh [MESON TEST ARGS...]
#
# Every report, from a test binary or from a daemon the e2e tests start, is
# written under build-tsan/tsan/ (TSAN_OPTIONS log_path) and fails the run;
# tests/tsan.supp holds the suppressions, each with its reason. Last line:
# "tsan: N reports" (0 is clean); exit status 1 on any report or failure.
set -uo pipefail
cd "$(dirname "$0")/.."
root=$PWD
deps=${CLIPD_DEPS:-$root/.deps}
[ -d "$deps/lib/pkgconfig" ] || bash deploy/bootstrap.sh --test >/dev/null || exit 1
dir=build-tsan
if [ ! -f "$dir/build.ninja" ]; then
	meson setup "$dir" -Dpkg_config_path="$deps/lib/pkgconfig" -Db_sanitize=thread -Db_lundef=false \
		>"$root/$dir.setup.log" 2>&1 || { cat "$root/$dir.setup.log" >&2; exit 1; }
fi
meson compile -C "$dir" >"$dir/compile.log" 2>&1 || { cat "$dir/compile.log" >&2; echo "tsan: build failed" >&2; exit 1; }
rm -rf "$dir/tsan"
mkdir -p "$dir/tsan"
# libgomp and OpenBLAS are not instrumented: their threads' hand-offs look
# like races to TSan unless OpenMP runs one thread (see tests/tsan.supp).
export TSAN_OPTIONS="suppressions=$root/tests/tsan.supp:log_path=$root/$dir/tsan/report:halt_on_error=0:second_deadlock_stack=1:history_size=4"
export OMP_NUM_THREADS=1 OMP_WAIT_POLICY=passive
status=0
meson test -C "$dir" --suite server --suite e2e --num-processes 2 --timeout-multiplier 4 --print-errorlogs "$@" || status=1
reports=$(find "$dir/tsan" -type f | wc -l)
for f in $(find "$dir/tsan" -type f | head -5); do
	echo "== $f"
	grep -m1 -A12 "WARNING: ThreadSanitizer" "$f"
done
echo "tsan: $reports reports"
[ "$reports" -eq 0 ] && [ $status -eq 0 ]
