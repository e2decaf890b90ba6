#!/usr/bin/env bash
# Prune against inserts that roll back, under load: 8 pgbench clients add old finished jobs to 10
# workflows, each holding its workflow's row a moment before committing or rolling back at random,
# while 2 clients prune. Afterwards, pruning until nothing is left must leave no job and no workflow
# row: a row passed over while an insert held it is looked at again (prune_retry), also when that
# insert rolled back; before, such rows stayed with no job. And the counts of every workflow match a
# recount from oban_jobs at the end of the load. Uses its own database. Usage: prune_stress.sh
# WORKDIR [seconds, default 8]
set -euo pipefail
source "$(dirname "$0")/../../scripts/lib.sh"
WORK=$1
SECONDS_TO_RUN=${2:-${PRUNE_STRESS_SECONDS:-8}}
DB=oban_pro_prune_stress
psql_q() { PGOPTIONS="-c client_min_messages=warning" as_postgres psql -X -q -At -v ON_ERROR_STOP=1 "$@"; }
failed=0

psql_q -d postgres -c "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB"
psql_q -d "$DB" -c "CREATE EXTENSION oban_pro"
cp "$REPO"/test/stress/prune_*.sql "$WORK/" && chown postgres: "$WORK"/prune_*.sql

bench() {  # bench CLIENTS SCRIPT
    as_postgres pgbench -n -M prepared -c "$1" -j 1 -T "$SECONDS_TO_RUN" -f "$WORK/$2" "$DB" 2>&1 |
        grep -E '^number of (transactions actually processed|failed transactions)' || true
}
log "8 inserting (half rolling back), 2 pruning, for ${SECONDS_TO_RUN}s"
bench 8 prune_insert.sql >"$WORK/prune_inserters.out" &
inserters=$!
bench 2 prune_run.sql >"$WORK/prune_pruners.out" &
pruners=$!
wait "$inserters" "$pruners"
echo "inserters: $(tr '\n' ' ' <"$WORK/prune_inserters.out")"
echo "pruners:   $(tr '\n' ' ' <"$WORK/prune_pruners.out")"

read -r checked mismatches <<<"$(psql_q -d "$DB" -F ' ' < "$REPO/test/check_counts.sql")"
echo "workflows checked: $checked, count mismatches: $mismatches"
[ "$mismatches" = 0 ] || {
    echo "FAIL: workflow counts drifted"
    psql_q -d "$DB" -c "SELECT w.id, w.completed, (SELECT count(*) FROM oban_jobs AS j WHERE j.meta->>'workflow_id' = w.id)
                        AS jobs, r.prune_retry FROM oban_workflows AS w JOIN oban_workflow_rows AS r USING (id) ORDER BY 1" \
           -c "SELECT j.meta->>'workflow_id', count(*) FROM oban_jobs AS j
               WHERE NOT EXISTS (SELECT FROM oban_workflows AS w WHERE w.id = j.meta->>'workflow_id') GROUP BY 1"
    failed=1
}
marked=$(psql_q -d "$DB" -c "SELECT count(*) FROM oban_workflow_rows WHERE prune_retry")

# Nothing is adding jobs now: a few prunes take every job and every row.
for _ in 1 2 3 4 5; do
    psql_q -d "$DB" -c "SELECT oban_flush_workflows()" -c "SELECT oban_prune_jobs(interval '1 hour')" >/dev/null
done
jobs=$(psql_q -d "$DB" -c "SELECT count(*) FROM oban_jobs")
rows=$(psql_q -d "$DB" -c "SELECT count(*) FROM oban_workflow_rows")
echo "rows marked at the end of the load: $marked; left after pruning: $jobs jobs, $rows workflow rows"
[ "$jobs" = 0 ] || { echo "FAIL: old finished jobs were not pruned"; failed=1; }
[ "$rows" = 0 ] || {
    echo "FAIL: workflow rows with no job left behind"
    psql_q -d "$DB" -c "SELECT id, completed, prune_retry FROM oban_workflow_rows ORDER BY id LIMIT 5"
    failed=1
}

[ "$failed" = 0 ] && psql_q -d postgres -c "DROP DATABASE $DB"
[ "$failed" = 0 ] && echo "prune stress: ok"
exit "$failed"
