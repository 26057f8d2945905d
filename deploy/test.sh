#!/usr/bin/env bash
# Set up, build and run every test: the unit tests and the end-to-end tests,
# once in a plain build and once under AddressSanitizer and
# UndefinedBehaviorSanitizer (a sanitizer report fails the run).
#
#   deploy/test.sh [MESON TEST ARGS...]     e.g. deploy/test.sh --suite encoder
#
# Prints each build's results and, last, one line: "N passed, N failed".
set -uo pipefail

cd "$(dirname "$0")/.."
root=$PWD
bash deploy/bootstrap.sh --test || exit 1

werror=false
[ "${CI:-}" = "true" ] && werror=true
export OMP_WAIT_POLICY=passive

status=0
logs=()
for variant in plain asan; do
	case $variant in
	plain) dir=build; opts=() ;;
	asan) dir=build-asan; opts=(-Db_sanitize=address,undefined) ;;
	esac
	if [ ! -f "$dir/build.ninja" ]; then
		meson setup "$dir" -Dpkg_config_path="$root/.deps/lib/pkgconfig" -Dwerror=$werror "${opts[@]}" >/dev/null || { echo "test: meson setup $dir failed" >&2; exit 1; }
	else
		meson configure "$dir" -Dwerror=$werror >/dev/null
	fi
	echo "== $variant build" >&2
	if ! meson compile -C "$dir" >"$dir/compile.log" 2>&1; then
		cat "$dir/compile.log" >&2
		echo "test: the $variant build failed" >&2
		status=1
		continue
	fi
	echo "== $variant tests" >&2
	meson test -C "$dir" --print-errorlogs --num-processes 2 "$@" || status=1
	logs+=("$dir/meson-logs/testlog.json")
done

python3 tests/summarize.py "${logs[@]}" || status=1
exit $status
