#!/usr/bin/env bash
# Build FAISS's C API (libfaiss_c) for exactly the libfaiss-dev that is installed.
#
# Debian 12 ships the C API headers (/usr/include/faiss/c_api) but not the
# compiled library. This fetches Debian's own faiss source package through a
# private deb-src list (the system's apt configuration is left untouched),
# compiles only c_api/ against the installed headers and links it with the
# installed libfaiss.a, OpenBLAS and OpenMP.
#
#   deploy/build-faiss-capi.sh PREFIX    -> PREFIX/lib/libfaiss_c.a, PREFIX/lib/pkgconfig/faiss_c.pc
set -euo pipefail

prefix=${1:?usage: build-faiss-capi.sh PREFIX}
mkdir -p "$prefix"
prefix=$(cd "$prefix" && pwd)
version=$(dpkg-query -W -f='${source:Version}' libfaiss-dev)
stamp="$prefix/lib/faiss_c.version"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$version" ] && [ -f "$prefix/lib/libfaiss_c.a" ]; then
  exit 0
fi

work="$prefix/src"
apt_dir="$prefix/apt"
rm -rf "$work"
mkdir -p "$work" "$apt_dir/sources.list.d" "$apt_dir/lists/partial"

# The mirror the system already uses, so a machine behind a local mirror keeps using it.
mirror=${CLIPD_DEBIAN_MIRROR:-}
if [ -z "$mirror" ]; then
  mirror=$(sed -n 's/^URIs:[[:space:]]*\([^[:space:]]*\).*/\1/p' /etc/apt/sources.list.d/*.sources 2>/dev/null | grep -v security | head -n 1 || true)
fi
if [ -z "$mirror" ] && [ -f /etc/apt/sources.list ]; then
  mirror=$(awk '$1 == "deb" && $2 !~ /security/ { print $2; exit }' /etc/apt/sources.list)
fi
mirror=${mirror:-http://deb.debian.org/debian}
codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")

cat > "$apt_dir/sources.list.d/faiss-src.sources" <<SRC
Types: deb-src
URIs: $mirror
Suites: $codename
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC

apt_opts=(-o "Dir::Etc::SourceList=/dev/null"
          -o "Dir::Etc::SourceParts=$apt_dir/sources.list.d"
          -o "Dir::State::Lists=$apt_dir/lists"
          -o "Dir::Cache=$apt_dir/cache"
          -o "APT::Sandbox::User=root")
echo "faiss C API: fetching Debian source faiss=$version from $mirror" >&2
apt-get -q "${apt_opts[@]}" update >/dev/null
(cd "$work" && apt-get -q "${apt_opts[@]}" source --download-only "faiss=$version" >/dev/null)
(cd "$work" && dpkg-source --no-check -x ./*.dsc src >/dev/null)

src="$work/src"
objdir="$work/obj"
mkdir -p "$objdir"
echo "faiss C API: compiling" >&2
files=$(cd "$src" && ls c_api/*.cpp c_api/impl/*.cpp c_api/utils/*.cpp 2>/dev/null | grep -v -e '_gpu' -e 'gpu/')
# No -I for the source tree: <faiss/...> resolves to the installed headers.
printf '%s\n' $files | xargs -P "$(nproc)" -I{} sh -c '
  o="$2/$(echo "$1" | tr / _).o"
  g++ -std=c++17 -O2 -fPIC -fopenmp -c "$3/$1" -o "$o"
' _ {} "$objdir" "$src"

mkdir -p "$prefix/lib/pkgconfig" "$prefix/include"
rm -f "$prefix/lib/libfaiss_c.a"
ar rcs "$prefix/lib/libfaiss_c.a" "$objdir"/*.o

cat > "$prefix/lib/pkgconfig/faiss_c.pc" <<PC
prefix=$prefix
libdir=\${prefix}/lib

Name: faiss_c
Description: FAISS C API built from Debian's faiss $version source
Version: ${version%%-*}
Libs: -L\${libdir} -lfaiss_c -lfaiss -lopenblas -lgomp -lstdc++ -lm -lpthread
Cflags: -I/usr/include
PC
echo "$version" > "$stamp"
rm -rf "$work"
echo "faiss C API: built $prefix/lib/libfaiss_c.a" >&2
