#!/usr/bin/env bash
# Crash test (issue 8, point 1): 8 clients run mixed work (workflows with sub-workflows, unique
# workflows, plain jobs acked with mixed outcomes, signals and parks, retries, cancels) on a cluster of
# its own (fsync and synchronous_commit on, the background worker serving the database with
# maintenance on and short intervals), which is stopped with `pg_ctl stop -m immediate` at random
# moments and restarted. After each restart and after a final drain, test/crash/crash.py checks the
# committed work (see its docstring) and prints the figures.
#
# Usage: test/crash/run.sh [--rounds N] [--seconds S] [--seed N] [--clients N] [--workdir DIR] [--no-build]
#                          [--keep] [--no-drain]  (investigations: leave the cluster running; skip the drain)
#                          [--no-audit]  (no crash_audit table of job state changes: no ordering check)
#   long form:  bash test/crash/run.sh --rounds 5 --seconds 20
#   short form: test/scripts/crash.sh (part of scripts/test.sh)
set -euo pipefail
source "$(dirname "$0")/../../scripts/lib.sh"

ROUNDS=5 SECONDS_PER_ROUND=20 SEED=$(date +%s) CLIENTS=8 WORKDIR="" BUILD=1 KEEP=0
while [ $# -gt 0 ]; do
    case $1 in
        --rounds) ROUNDS=$2; shift 2 ;;
        --seconds) SECONDS_PER_ROUND=$2; shift 2 ;;
        --seed) SEED=$2; shift 2 ;;
        --clients) CLIENTS=$2; shift 2 ;;
        --workdir) WORKDIR=$2; shift 2 ;;
        --no-build) BUILD=0; shift ;;
        --keep) KEEP=1; shift ;;  # investigations: the cluster is left running
        --no-drain) DRAIN_ARGS=--no-drain; shift ;;  # investigations: stop after the last crash's checks
        --no-audit) AUDIT=--no-audit; shift ;;  # no audit trigger on oban_jobs

        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
done

[ "$BUILD" = 1 ] && build_and_install
OWN_WORK=0
if [ -z "$WORKDIR" ]; then WORKDIR=$(make_workdir); OWN_WORK=1; fi
DIR=$WORKDIR/crash
rm -rf "$DIR"
mkdir -p "$DIR"
cleanup() {
    if [ "$KEEP" = 1 ]; then echo "kept: PGHOST=$CLUSTER_DIR PGPORT=$PGPORT PGDATABASE=crash"; return 0; fi
    stop_cluster
    cp "$DIR/cluster/server.log" "$WORKDIR/crash-server.log" 2>/dev/null || true
    rm -rf "$DIR"
    [ "$OWN_WORK" = 1 ] && rm -rf "$WORKDIR"
    return 0
}
trap cleanup EXIT

# fsync and synchronous_commit on: a commit the client saw returned is on disk.
CLUSTER_FSYNC=on start_cluster "$DIR/cluster"
as_postgres psql -X -q -v ON_ERROR_STOP=1 -c "CREATE DATABASE crash"
as_postgres psql -X -q -v ON_ERROR_STOP=1 -d crash -c "CREATE EXTENSION oban_pro"
cat >>"$CLUSTER_DIR/data/postgresql.conf" <<CONF
synchronous_commit = ${CRASH_SYNCHRONOUS_COMMIT:-on}
oban_pro.database = 'crash'
oban_pro.maintenance = on
oban_pro.stage_interval = 200ms
oban_pro.prune_interval = 0
oban_pro.rescue_interval = 500ms
oban_pro.rescue_after = 5s
oban_pro.repair_interval = 500ms
oban_pro.repair_max_age = 1s
oban_pro.flush_interval = 200ms
${CRASH_EXTRA_CONF:-}
CONF
server_ctl -D "$CLUSTER_DIR/data" -l "$CLUSTER_DIR/server.log" -w restart >/dev/null

started=$(date +%s)
status=0
"$CLIENT_PYTHON" "$REPO/test/crash/crash.py" --workdir "$DIR" \
    --dsn "host=$CLUSTER_DIR port=$PGPORT user=postgres dbname=crash" \
    --pg-ctl "$PG_BIN/pg_ctl" --datadir "$CLUSTER_DIR/data" --check-counts "$REPO/test/check_counts.sql" \
    --rounds "$ROUNDS" --seconds "$SECONDS_PER_ROUND" --clients "$CLIENTS" --seed "$SEED" \
    ${DRAIN_ARGS:-} ${AUDIT:-} || status=1

# The server log: the immediate stops are expected; a backend killed by a signal (a crash of the
# extension's code) or a PANIC is not.
LOG=$CLUSTER_DIR/server.log
recoveries=$(grep -c 'database system was not properly shut down; automatic recovery in progress' "$LOG" || true)
echo "server log: $recoveries crash recoveries, $(grep -c 'ERROR:' "$LOG" || true) ERROR lines," \
     "$(grep -c 'WARNING:' "$LOG" || true) WARNING lines"
# Expected: awaits of jobs cancelled meanwhile (55000). Anything else is shown.
grep 'ERROR:' "$LOG" | sed -E 's/.*ERROR:  //; s/[0-9]+/N/g' | sort | uniq -c | sed 's/^/  ERROR /' || true
if grep -E 'terminated by signal|PANIC:|TRAP:' "$LOG"; then
    echo "FAIL: a server process crashed (see above)"; status=1
fi
[ "$recoveries" -ge "$ROUNDS" ] || { echo "FAIL: $recoveries crash recoveries for $ROUNDS stops"; status=1; }
if [ "$status" != 0 ]; then
    echo "--- server log (last ERROR/WARNING/FATAL lines) ---"
    grep -E 'ERROR|WARNING|FATAL' "$LOG" | tail -30
fi
echo "crash test: $([ "$status" = 0 ] && echo ok || echo FAILED) in $(( $(date +%s) - started ))s (seed $SEED)"
exit "$status"
