#!/usr/bin/env bash
# Runs every test of oban_pro on a fresh Debian 12 machine, as root: installs what it needs, builds
# and installs the extension, starts a throwaway cluster with oban_pro preloaded, runs the pure C++
# unit tests, pg_regress, the isolation specs, the pgTAP suite and the scripted tests, then removes
# the cluster. Exits non-zero if anything failed.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

ensure_packages
build_and_install

log "unit tests (pure C++)"
make -C "$REPO" -s unit

WORK=$(make_workdir)
trap 'stop_cluster; rm -rf "$WORK"' EXIT
start_cluster "$WORK/cluster"
"$REPO/test/run.sh" "$WORK"
