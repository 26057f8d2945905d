#!/usr/bin/env bash
# Prove the README's commands on a machine where nothing is installed:
# debootstrap a minimal Debian 12 into DIR, clone this repository's committed
# HEAD into it, and run the README's test command inside with chroot. Then run
# the bootstrap a second time and check it does no redundant work (no apt,
# no FAISS C API rebuild).
#
#   sudo deploy/fresh-debian.sh DIR [MIRROR]
#
# Needs root (debootstrap, chroot, mounts) and the Debian archive. Not part
# of CI: it takes a while and downloads a few hundred megabytes.
set -euo pipefail

dir=${1:?usage: fresh-debian.sh DIR [MIRROR]}
mirror=${2:-http://deb.debian.org/debian}
repo=$(git -C "$(dirname "$0")/.." rev-parse --show-toplevel)

if ! command -v debootstrap >/dev/null; then
	apt-get update -q >/dev/null
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q debootstrap >/dev/null
fi
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
if [ ! -f "$dir/etc/debian_version" ]; then
	echo "fresh-debian: debootstrap bookworm into $dir" >&2
	debootstrap --variant=minbase bookworm "$dir" "$mirror" >/dev/null
fi
cp /etc/resolv.conf "$dir/etc/resolv.conf"
# Carry over local certificate authorities (a proxy's, a company's): the
# chroot's ca-certificates package picks them up from here when bootstrap
# installs it, and Node.js (npm) reads the bundle through NODE_EXTRA_CA_CERTS.
if ls /usr/local/share/ca-certificates/*.crt >/dev/null 2>&1; then
	mkdir -p "$dir/usr/local/share/ca-certificates"
	cp /usr/local/share/ca-certificates/*.crt "$dir/usr/local/share/ca-certificates/"
	[ -x "$dir/usr/sbin/update-ca-certificates" ] && chroot "$dir" update-ca-certificates >/dev/null 2>&1 || true
fi

mounted=()
cleanup() {
	for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do umount -l "${mounted[$i]}" 2>/dev/null || true; done
}
trap cleanup EXIT
for m in proc sys dev dev/pts; do
	mkdir -p "$dir/$m"
	mount --bind "/$m" "$dir/$m"
	mounted+=("$dir/$m")
done
mkdir -p "$dir/tmp" && chmod 1777 "$dir/tmp"

rm -rf "$dir/root/clipd"
git clone -q "$repo" "$dir/root/clipd"

in_chroot() {
	chroot "$dir" /usr/bin/env -i HOME=/root TERM=dumb LANG=C.UTF-8 \
		NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt \
		PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
		bash -c "cd /root/clipd && $1"
}

echo "fresh-debian: running the README's test command inside the chroot" >&2
in_chroot "bash deploy/test.sh" | tee "$dir/root/test-output.txt"
last=$(tail -n 1 "$dir/root/test-output.txt")
case "$last" in
*" passed, 0 failed") ;;
*) echo "fresh-debian: FAILED: the test command ended with '$last'" >&2; exit 1 ;;
esac

echo "fresh-debian: running the bootstrap again: it must do no redundant work" >&2
second=$(in_chroot "bash deploy/bootstrap.sh --test" 2>&1)
echo "$second" >&2
if echo "$second" | grep -q -e 'installing' -e 'faiss C API: compiling'; then
	echo "fresh-debian: FAILED: the second bootstrap installed or rebuilt something" >&2
	exit 1
fi
echo "fresh-debian: ok: $last" >&2
