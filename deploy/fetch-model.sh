#!/usr/bin/env bash
# Download a CLIP model's files from the Hugging Face hub into a directory
# clipd can load.
#
#   deploy/fetch-model.sh REPO DEST        e.g. laion/CLIP-ViT-B-32-laion2B-s34B-b79K data/models/ViT-B-32
#
# Environment: HF_ENDPOINT (default https://huggingface.co), HF_REVISION
# (default main), HF_TOKEN (sent as a bearer token when set).
#
# - Only the files clipd loads: the Hugging Face layout (config.json,
#   model.safetensors or its shards and index, vocab.json, merges.txt,
#   preprocessor_config.json) when the repository has it, else the OpenCLIP
#   one (open_clip_config.json, open_clip_model.safetensors).
# - Resumable: files download into DEST.partial/ with HTTP ranges, so an
#   interrupted run continues where it stopped.
# - Checksum-verified: every file against the hub's listing (SHA-256 for LFS
#   files, the git blob SHA-1 for the others), and its size.
# - Atomic: DEST appears (one rename) only when every file is verified; a
#   half-downloaded model is never used.
#
# Exit status: 0 done (or already there), 2 usage, 3 the hub is unreachable,
# 4 a download or checksum failed, 5 the repository has no loadable model.
set -euo pipefail

usage() { sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; }
[ "${1:-}" = "-h" ] || [ "${1:-}" = "--help" ] && { usage; exit 0; }
[ $# -eq 2 ] || { echo "fetch-model: usage: fetch-model.sh REPO DEST" >&2; exit 2; }
repo=$1
dest=${2%/}
endpoint=${HF_ENDPOINT:-https://huggingface.co}
endpoint=${endpoint%/}
revision=${HF_REVISION:-main}
marker=.clipd-fetch-complete
say() { echo "fetch-model: $*" >&2; }

case "$repo" in
*[!A-Za-z0-9._/-]* | /* | */ | *..*) say "'$repo' is not a repository name (OWNER/NAME)"; exit 2 ;;
esac
for tool in curl sha256sum sha1sum python3; do
	command -v "$tool" >/dev/null || { say "needs $tool"; exit 4; }
done

if [ -f "$dest/$marker" ]; then
	say "$dest already holds $(head -n1 "$dest/$marker")"
	exit 0
fi
if [ -e "$dest" ]; then
	say "$dest exists but is not a complete download; move it away first"
	exit 4
fi

auth=()
[ -n "${HF_TOKEN:-}" ] && auth=(-H "Authorization: Bearer $HF_TOKEN")
curl_common=(--fail --location --silent --show-error --connect-timeout "${FETCH_CONNECT_TIMEOUT:-10}" "${auth[@]}")

partial="$dest.partial"
mkdir -p "$partial"
# A run that fails keeps DEST.partial/ only when it holds downloaded bytes
# to resume from: a failure before any file arrived leaves nothing behind.
drop_empty_partial() {
	[ -d "$partial" ] || return 0
	if [ -z "$(find "$partial" -mindepth 1 -maxdepth 1 ! -name '.listing.json*' -print -quit)" ]; then
		rm -rf "$partial"
	fi
}
trap 'rc=$?; [ $rc -ne 0 ] && drop_empty_partial; exit $rc' EXIT

# The listing: every file with its size and checksum.
listing="$partial/.listing.json"
rc=0
curl "${curl_common[@]}" --max-time 60 -o "$listing.tmp" \
	"$endpoint/api/models/$repo/revision/$revision?blobs=true" || rc=$?
if [ $rc -ne 0 ]; then
	rm -f "$listing.tmp"
	# curl: 6 cannot resolve, 7 cannot connect, 28 timeout, 35 TLS, 56 recv.
	case $rc in
	6|7|28|35|56) say "the hub ($endpoint) is unreachable (curl exit $rc)"; exit 3 ;;
	*) say "cannot list $repo at $endpoint (curl exit $rc)"; exit 4 ;;
	esac
fi
mv "$listing.tmp" "$listing"

# Choose the files: one line each, "name size kind checksum".
plan=$(python3 - "$listing" <<'PY'
import json, re, sys
doc = json.load(open(sys.argv[1]))
files = {}
for s in doc.get("siblings", []):
    name = s.get("rfilename", "")
    if "/" in name or name.startswith("."):
        continue
    lfs = s.get("lfs") or {}
    if lfs.get("sha256"):
        files[name] = (int(lfs.get("size", s.get("size", -1))), "sha256", lfs["sha256"])
    elif s.get("blobId"):
        files[name] = (int(s.get("size", -1)), "gitsha1", s["blobId"])
hf_weights = ["model.safetensors"] if "model.safetensors" in files else []
if not hf_weights and "model.safetensors.index.json" in files:
    shards = sorted(n for n in files if re.fullmatch(r"model-\d+-of-\d+\.safetensors", n))
    hf_weights = ["model.safetensors.index.json"] + shards if shards else []
hf = ["config.json", "vocab.json", "merges.txt", "preprocessor_config.json"]
if hf_weights and all(n in files for n in hf):
    want = hf + hf_weights
elif all(n in files for n in ["open_clip_config.json", "open_clip_model.safetensors"]):
    want = ["open_clip_config.json", "open_clip_model.safetensors"]
    want += [n for n in ["vocab.json", "merges.txt"] if n in files]
else:
    sys.exit(5)
for n in want:
    size, kind, digest = files[n]
    print(n, size, kind, digest)
PY
) || { say "$repo has neither a Hugging Face CLIPModel nor an OpenCLIP safetensors layout"; exit 5; }

verify() {   # file size kind digest
	local f=$1 size=$2 kind=$3 digest=$4 got
	[ "$(stat -c %s "$f")" = "$size" ] || return 1
	case $kind in
	sha256) got=$(sha256sum "$f" | cut -d' ' -f1) ;;
	gitsha1) got=$( { printf 'blob %d\0' "$size"; cat "$f"; } | sha1sum | cut -d' ' -f1) ;;
	*) return 1 ;;
	esac
	[ "$got" = "$digest" ]
}

while read -r name size kind digest; do
	[ -n "$name" ] || continue
	file="$partial/$name"
	if [ -f "$file.ok" ] && [ -f "$file" ] && [ "$(cat "$file.ok")" = "$digest" ]; then
		continue
	fi
	# An over-long leftover cannot be resumed.
	if [ -f "$file" ] && [ "$(stat -c %s "$file")" -gt "$size" ]; then
		rm -f "$file"
	fi
	tries=0
	while :; do
		have=0
		[ -f "$file" ] && have=$(stat -c %s "$file")
		if [ "$have" -lt "$size" ] || [ "$size" -eq 0 ]; then
			say "$name: $size bytes$([ "$have" -gt 0 ] && echo ", resuming at $have" || true)"
			rc=0
			curl "${curl_common[@]}" -C - -o "$file" "$endpoint/$repo/resolve/$revision/$name" || rc=$?
			if [ $rc -ne 0 ]; then
				tries=$((tries + 1))
				case $rc in
				33) rm -f "$file" ;;   # the server cannot resume: start over
				6|7|18|28|35|56) ;;    # the network: resume
				*) say "$name: download failed (curl exit $rc); run again to resume"; exit 4 ;;
				esac
				if [ $tries -ge 3 ]; then
					say "$name: the download keeps breaking off (curl exit $rc); run again to resume"
					exit 3
				fi
				sleep 1
				continue
			fi
		fi
		if verify "$file" "$size" "$kind" "$digest"; then
			echo "$digest" > "$file.ok"
			break
		fi
		rm -f "$file" "$file.ok"
		if [ -n "${redone:-}" ]; then
			say "$name: does not match the hub's checksum ($kind $digest)"
			exit 4
		fi
		say "$name: checksum or size mismatch; downloading it again"
		redone=1
	done
	unset redone
done <<< "$plan"

# Everything verified: move the files into place in one rename.
stage="$dest.staging.$$"
mkdir "$stage"
while read -r name size kind digest; do
	[ -n "$name" ] && ln "$partial/$name" "$stage/$name"
done <<< "$plan"
printf '%s@%s from %s\n' "$repo" "$revision" "$endpoint" > "$stage/$marker"
sync -f "$stage" 2>/dev/null || sync
if ! mv -T "$stage" "$dest"; then
	rm -rf "$stage"
	say "cannot move the model into $dest"
	exit 4
fi
sync -f "$(dirname "$dest")" 2>/dev/null || true
rm -rf "$partial"
say "$repo is in $dest"
