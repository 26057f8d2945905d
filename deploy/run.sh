#!/usr/bin/env bash
# Set everything up and run clipd. Until the HTTP daemon lands this shows
# the binary's version and commands.
set -euo pipefail
cd "$(dirname "$0")/.."
bash deploy/bootstrap.sh
build/clipd --version
build/clipd help
