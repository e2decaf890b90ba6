#!/usr/bin/env bash
# Sets everything up on a fresh Debian 12 machine (as root) and runs the demo on a throwaway
# PostgreSQL 15 cluster with oban_pro preloaded; the cluster is removed afterwards.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

ensure_packages
build_and_install

WORK=$(make_workdir)
trap 'stop_cluster; rm -rf "$WORK"' EXIT
start_cluster "$WORK/cluster"
as_postgres psql -X -q -c "CREATE EXTENSION oban_pro"
for scenario in "$REPO"/demo/lifecycle.sql "$REPO"/demo/workflow.sql "$REPO"/demo/unique.sql "$REPO"/demo/signals.sql; do
    log "demo: $(basename "$scenario" .sql)"
    as_postgres psql -X -q -v ON_ERROR_STOP=1 -f - < "$scenario"
done

# The seed's Python samples on the example client (examples/python, psycopg 3), in a database of their own.
log "demo: the seed's scenarios from Python (examples/python/demo.py)"
as_postgres psql -X -q -c "CREATE DATABASE oban_demo_clients"
as_postgres psql -X -q -d oban_demo_clients -c "CREATE EXTENSION oban_pro"
(cd "$REPO/examples/python" && PYTHONDONTWRITEBYTECODE=1 OBAN_DSN="dbname=oban_demo_clients" "$CLIENT_PYTHON" demo.py)
