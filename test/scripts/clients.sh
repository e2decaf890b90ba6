#!/usr/bin/env bash
# Real clients (issue 9): the seed's three scenarios — the approval worker awaiting a signal
# delivered before, during and after its await (and timing out), workflow status with a
# sub-workflow, and the unique nightly-import with concurrent enqueues — run end to end from Python
# (examples/python, psycopg 3, pytest) and from Node (examples/node, the pg package, node --test),
# each in a database of its own on the running cluster. Installs what it needs (Debian packages via
# scripts/lib.sh, the pg package with `npm ci` from the committed lockfile); skips nothing: a missing
# tool is a failure. Usage: clients.sh WORKDIR
set -euo pipefail
source "$(dirname "$0")/../../scripts/lib.sh"
WORK=$1
failed=0

ensure_packages
export PGOPTIONS="-c client_min_messages=warning"
for db in oban_pro_clients_py oban_pro_clients_node; do
    as_postgres psql -X -q -d postgres -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db"
    as_postgres psql -X -q -d "$db" -c "CREATE EXTENSION oban_pro"
done

log "Python client (examples/python, $("$CLIENT_PYTHON" -c 'import psycopg; print("psycopg", psycopg.__version__)'))"
(cd "$REPO/examples/python" &&
    PYTHONDONTWRITEBYTECODE=1 OBAN_DSN="dbname=oban_pro_clients_py" timeout 300 "$CLIENT_PYTHON" -m pytest -q -p no:cacheprovider \
        test_scenarios.py) || failed=1

log "Node client (examples/node, node $(node --version), npm $(npm --version))"
(cd "$REPO/examples/node" && npm ci --no-audit --no-fund --loglevel=error >"$WORK/npm.log" 2>&1) ||
    { cat "$WORK/npm.log"; failed=1; }
(cd "$REPO/examples/node" && PGDATABASE=oban_pro_clients_node timeout 300 node --test scenarios.test.js) ||
    failed=1

exit $failed
