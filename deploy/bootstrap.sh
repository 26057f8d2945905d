#!/usr/bin/env bash
# Set up everything clipd needs on Debian 12 and build build/clipd.
#
#   deploy/bootstrap.sh           packages to build and run, the FAISS C API, build/clipd
#   deploy/bootstrap.sh --test    also what the tests need (pytest, a browser, ...)
#   deploy/bootstrap.sh --cluster also what deploy/cluster/up.sh runs (PostgreSQL 15, HAProxy)
#
# Idempotent: it installs only missing packages (apt-get update runs once, and
# only then), builds the FAISS C API only when it is missing or the installed
# libfaiss-dev changed, and lets meson/ninja rebuild only what changed. Uses
# sudo only when not root. Fails loudly, naming the step that failed.
set -euo pipefail

cd "$(dirname "$0")/.."
root=$PWD
want_test=0
want_cluster=0
for arg in "$@"; do
	case "$arg" in
	--test) want_test=1 ;;
	--cluster) want_cluster=1 ;;
	-h|--help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "bootstrap: unknown argument '$arg'" >&2; exit 2 ;;
	esac
done

step=""
trap 'rc=$?; [ $rc -ne 0 ] && echo "bootstrap: FAILED at step: $step (exit $rc)" >&2' EXIT
say() { echo "bootstrap: $*" >&2; }

sudo=""
if [ "$(id -u)" -ne 0 ]; then
	command -v sudo >/dev/null || { echo "bootstrap: not root and no sudo" >&2; exit 1; }
	sudo=sudo
fi

# Build and run dependencies (Debian 12 package names).
packages=(gcc g++ meson ninja-build pkg-config dpkg-dev
	libmicrohttpd-dev libfaiss-dev libopenblas-dev libsqlite3-dev libcjson-dev libpq-dev
	libstb-dev libutf8proc-dev zlib1g-dev libcurl4-openssl-dev
	libjpeg62-turbo-dev libwebp-dev libheif-dev libtiff-dev
	curl ca-certificates python3)
if [ "$want_cluster" = 1 ]; then
	packages+=(postgresql-15 haproxy)
fi
if [ "$want_test" = 1 ]; then
	packages+=(python3-pytest python3-numpy sqlite3 util-linux)
	# Extra packages named by the test suites (one per line, # comments).
	if [ -f tests/packages.txt ]; then
		while read -r p _; do
			case "$p" in ''|'#'*) ;; *) packages+=("$p") ;; esac
		done < tests/packages.txt
	fi
fi

step="find missing packages"
missing=()
for p in "${packages[@]}"; do
	status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
	case "$status" in *"install ok installed"*) ;; *) missing+=("$p") ;; esac
done
if [ ${#missing[@]} -gt 0 ]; then
	step="apt-get update"
	say "installing ${missing[*]}"
	$sudo env DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null
	step="apt-get install ${missing[*]}"
	$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
fi

step="build the FAISS C API"
bash deploy/build-faiss-capi.sh "$root/.deps"

if [ "$want_test" = 1 ] && [ -f tests/web/package.json ]; then
	if ! command -v npm >/dev/null; then
		step="apt-get install nodejs npm"
		$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends nodejs npm >/dev/null
	fi
	step="npm packages for the browser test"
	if [ ! -d tests/web/node_modules ] || [ tests/web/package.json -nt tests/web/node_modules ]; then
		(cd tests/web && npm install --no-audit --no-fund --ignore-scripts -s >/dev/null)
		touch tests/web/node_modules
	fi
fi

step="configure build/"
if [ ! -f build/build.ninja ]; then
	meson setup build -Dpkg_config_path="$root/.deps/lib/pkgconfig" ${CLIPD_MESON_ARGS:-} >/dev/null
fi
step="compile build/clipd"
meson compile -C build >/dev/null || meson compile -C build
step="done"
say "build/clipd is ready ($(build/clipd --version))"
