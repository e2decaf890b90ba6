#!/usr/bin/env bash
# Unique workflows under load (issue 5): 16 pgbench clients insert the unique workflow "nightly"
# in a loop (half through oban_insert_workflow, half through plain INSERTs), 4 clients drain its
# jobs, and a checker looks at one snapshot after another the whole time: never two unfinished
# "nightly" workflows, never a partly persisted one. Uses database "postgres", whose workflows the
# test cluster's background worker releases. Usage: unique_stress.sh WORKDIR [seconds, default 10]
set -euo pipefail
source "$(dirname "$0")/../../scripts/lib.sh"
WORK=$1
SECONDS_TO_RUN=${2:-${UNIQUE_STRESS_SECONDS:-10}}
STRESS=$REPO/test/stress
psql_q() { PGOPTIONS="-c client_min_messages=warning" as_postgres psql -X -q -At -v ON_ERROR_STOP=1 -d postgres "$@"; }
failed=0

psql_q -c "DROP EXTENSION IF EXISTS oban_pro CASCADE" -c "CREATE EXTENSION oban_pro" \
       -c "DROP TABLE IF EXISTS stress_violations, stress_checks" \
       -c "CREATE TABLE stress_violations (at timestamptz DEFAULT clock_timestamp(), kind text, detail text)" \
       -c "CREATE TABLE stress_checks (at timestamptz DEFAULT clock_timestamp())"
cp "$STRESS"/unique_*.sql "$WORK/" && chown postgres: "$WORK"/unique_*.sql

bench() {  # bench CLIENTS SCRIPT...
    local clients=$1; shift
    local files=()
    for f in "$@"; do files+=(-f "$WORK/$f"); done
    as_postgres pgbench -n -M prepared -c "$clients" -j 1 -T "$SECONDS_TO_RUN" "${files[@]}" postgres 2>&1 |
        grep -E '^number of (transactions actually processed|failed transactions)' || true
}
log "16 inserting, 4 draining, 1 checking for ${SECONDS_TO_RUN}s"
bench 16 unique_insert_function.sql unique_insert_plain.sql >"$WORK/inserters.out" &
inserters=$!
bench 4 unique_drain.sql >"$WORK/drainers.out" &
drainers=$!
bench 1 unique_check.sql >"$WORK/checker.out" &
checker=$!
wait "$inserters" "$drainers" "$checker"
echo "inserters: $(tr '\n' ' ' <"$WORK/inserters.out")"
echo "drainers:  $(tr '\n' ' ' <"$WORK/drainers.out")"

# Drain what is left (the worker releases each next step), then check once more.
for _ in $(seq 200); do
    left=$(psql_q -c "SELECT count(*) FROM oban_jobs WHERE queue = 'stress' AND state <> 'completed'")
    [ "$left" = 0 ] && break
    psql_q -c "SELECT count(oban_complete_job(id)) FROM oban_fetch_jobs('stress', 50, 'stress')" >/dev/null
    sleep 0.05
done
psql_q -f "$WORK/unique_check.sql"
[ "$left" = 0 ] || { echo "FAIL: $left stress jobs never finished"; failed=1; }

checks=$(psql_q -c "SELECT count(*) FROM stress_checks")
persisted=$(psql_q -c "SELECT count(*) FROM oban_workflows WHERE name = 'nightly'")
violations=$(psql_q -c "SELECT count(*) FROM stress_violations")
read -r checked mismatches <<<"$(psql_q -F ' ' < "$REPO/test/check_counts.sql")"
echo "unique workflows persisted: $persisted, snapshots checked: $checks, violations: $violations"
echo "workflows checked: $checked, count mismatches: $mismatches"
[ "$persisted" -gt 1 ] || { echo "FAIL: the name was never reused"; failed=1; }
[ "$checks" -gt 10 ] || { echo "FAIL: the checker hardly ran"; failed=1; }
[ "$violations" = 0 ] || { psql_q -c "SELECT kind, left(detail, 120) FROM stress_violations LIMIT 3"; failed=1; }
[ "$mismatches" = 0 ] || { echo "FAIL: workflow counts drifted"; failed=1; }

psql_q -c "DROP TABLE stress_violations, stress_checks" -c "DROP EXTENSION oban_pro CASCADE"
[ "$failed" = 0 ] && echo "unique stress: ok"
exit "$failed"
