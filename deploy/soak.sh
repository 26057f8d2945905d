#!/usr/bin/env bash
# kill -9 soak: deploy/soak.sh CYCLES [--threads N] [--seed N] [--full-every N] [--keep]
# Starts build/clipd serve with the tiny test checkpoint, drives a mixed
# load from several client threads, SIGKILLs the daemon at a random moment
# and checks after each restart that every acknowledged write is there
# (deploy/soak.py says exactly what is checked). Last line:
# "N cycles, N acknowledged writes, N lost"; exit status 1 on any loss or
# problem.
set -uo pipefail
cd "$(dirname "$0")/.."
[ -x build/clipd ] || { echo "soak: build/clipd is missing (bash deploy/bootstrap.sh)" >&2; exit 1; }
exec /usr/bin/python3 deploy/soak.py "$@"
