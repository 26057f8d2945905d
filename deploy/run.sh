#!/usr/bin/env bash
# Set everything up and run the clipd daemon in the foreground.
#
#   deploy/run.sh [clipd serve OPTIONS...]      e.g. deploy/run.sh --listen 0.0.0.0:8080
#
# 1. deploy/bootstrap.sh: missing Debian packages, the FAISS C API, build/clipd.
# 2. The default model, laion/CLIP-ViT-B-32-laion2B-s34B-b79K, fetched from
#    the Hugging Face hub into data/models/ unless it is already there
#    (deploy/fetch-model.sh: resumable, checksum-verified, atomic).
# 3. clipd serve on 127.0.0.1:8080 with its data in data/clipd/.
#
# Offline, with no default model fetched yet, it falls back to the small test
# checkpoint this repository carries (tests/data/tiny-clip-hf), in a data
# directory of its own (data/clipd-tiny-test/), so that the real model later
# starts on a clean one; the log and GET /info then warn that search results
# are meaningless until a real model is configured. Once the real model is
# there, images left in data/clipd-tiny-test/ are counted, and the log and
# GET /info give the exact `clipd reembed` command that re-encodes them.
#
# Environment: CLIPD_DATA_ROOT (default ./data), CLIPD_MODEL_REPO, HF_ENDPOINT,
# HF_TOKEN; CLIPD_SKIP_BOOTSTRAP=1 and CLIPD_BIN to run an existing build.
# Every clipd option also reads CLIPD_* variables (clipd serve --help).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
say() { echo "run: $*" >&2; }

if [ "${CLIPD_SKIP_BOOTSTRAP:-0}" != 1 ]; then
	bash deploy/bootstrap.sh
fi
clipd=${CLIPD_BIN:-$root/build/clipd}
data_root=${CLIPD_DATA_ROOT:-$root/data}
repo=${CLIPD_MODEL_REPO:-laion/CLIP-ViT-B-32-laion2B-s34B-b79K}
model_dir="$data_root/models/${repo##*/}"
mkdir -p "$data_root/models"

# A model and data directory given explicitly win.
if [ -n "${CLIPD_MODEL:-}" ]; then
	exec "$clipd" serve --data "${CLIPD_DATA:-$data_root/clipd}" "$@"
fi

fetch_rc=0
bash deploy/fetch-model.sh "$repo" "$model_dir" || fetch_rc=$?
tiny_data="$data_root/clipd-tiny-test"
if [ $fetch_rc -eq 0 ]; then
	# Images uploaded while the fallback served stay in its directory: say
	# how many, and the command that re-encodes them with the real model.
	behind=0
	if [ -d "$tiny_data" ]; then
		behind=$("$clipd" index stats --data "$tiny_data" 2>/dev/null |
			sed -n 's/.*"images":\([0-9][0-9]*\).*/\1/p') || behind=0
	fi
	if [ "${behind:-0}" -gt 0 ]; then
		reembed=$(printf '%q ' "$clipd" reembed --model "$model_dir" --data "$tiny_data")
		serve_it=$(printf '%q ' "CLIPD_MODEL=$model_dir" "CLIPD_DATA=$tiny_data" bash deploy/run.sh)
		noun=images
		[ "$behind" -eq 1 ] && noun=image
		hint="$behind $noun stayed behind in $tiny_data, stored while the tiny test checkpoint served (this server, on $data_root/clipd, does not see them). To re-encode them with $repo, stop this server and run: ${reembed% } ; then serve that directory with: ${serve_it% }"
		say "NOTE: $hint"
		exec "$clipd" serve --model "$model_dir" --data "$data_root/clipd" --model-name "$repo" \
			--model-warning "$hint" "$@"
	fi
	exec "$clipd" serve --model "$model_dir" --data "$data_root/clipd" --model-name "$repo" "$@"
fi

warning="no real model: $repo could not be fetched (fetch-model exit $fetch_rc); serving the tiny test checkpoint, whose search results are meaningless. Run deploy/run.sh again with network access (or set CLIPD_MODEL) for a real model."
say "WARNING: $warning"
exec "$clipd" serve --model "$root/tests/data/tiny-clip-hf" --data "$tiny_data" \
	--model-name "tiny-clip-hf (test checkpoint)" --model-warning "$warning" "$@"
