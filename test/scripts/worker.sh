#!/usr/bin/env bash
# The background worker (database "postgres" in the test cluster): it releases workflow dependents
# without anyone calling oban_flush_workflows, and it delivers the insert notifications that
# committing backends hand to it. Usage: worker.sh WORKDIR
set -euo pipefail
source "$(dirname "$0")/../../scripts/lib.sh"
psql_q() { PGOPTIONS="-c client_min_messages=warning" as_postgres psql -X -q -At -v ON_ERROR_STOP=1 -d postgres "$@"; }
failed=0

psql_q -c "DROP EXTENSION IF EXISTS oban_pro CASCADE" -c "CREATE EXTENSION oban_pro"
psql_q -c "SELECT application_name FROM pg_stat_activity WHERE backend_type = 'oban_pro worker'" | grep -q . \
    || { echo "FAIL: no oban_pro worker in pg_stat_activity"; failed=1; }

# 1. Release without an explicit flush. b waits on ten deps that one statement completes, more than
# an ack releases itself (kAckReleaseDeps, 8): the worker must.
psql_q -c "SELECT count(*) FROM oban_insert_workflow(jsonb_build_object('workflow_id', 'auto', 'jobs',
    (SELECT jsonb_agg(jsonb_build_object('name', 'a' || n, 'worker', 'W')) FROM generate_series(1, 10) n)
    || jsonb_build_array(jsonb_build_object('name', 'b', 'worker', 'W',
           'deps', (SELECT jsonb_agg('a' || n) FROM generate_series(1, 10) n)))))" >/dev/null
psql_q -c "SELECT count(*) FROM oban_fetch_jobs('default', 10)" >/dev/null
psql_q -c "UPDATE oban_jobs SET state = 'completed', completed_at = timezone('UTC', now()) WHERE meta->>'name' LIKE 'a%'" >/dev/null
state=""
for _ in $(seq 100); do
    state=$(psql_q -c "SELECT state FROM oban_jobs WHERE meta->>'name' = 'b'")
    [ "$state" = available ] && break
    sleep 0.02
done
echo "dependent released by the worker: $state"
[ "$state" = available ] || { echo "FAIL: the worker did not release the dependent within 2 s"; failed=1; }
[ "$(psql_q -c "SELECT count(*) FROM oban_workflow_journal")" = 0 ] || { echo "FAIL: journal not folded"; failed=1; }

# The aggregate agrees with a recount from oban_jobs.
read -r checked mismatches <<<"$(psql_q -F ' ' < "$REPO/test/check_counts.sql")"
echo "workflows checked: $checked, mismatches: $mismatches"
[ "$mismatches" = 0 ] || { echo "FAIL: workflow counts drifted"; failed=1; }

# 2. Notifications handed to the worker reach a listener, once per queue.
out=$(as_postgres psql -X -q -d postgres <<'SQL'
LISTEN "public.oban_insert";
SELECT pg_sleep(0.1);
\! psql -X -q -d postgres -c "INSERT INTO oban_jobs (worker, queue) SELECT 'W', 'handed' FROM generate_series(1, 3)"
SELECT pg_sleep(0.5);
SELECT 1;
SQL
)
received=$(echo "$out" | grep -c 'Asynchronous notification "public.oban_insert" with payload "{"queue":"handed"}"' || true)
echo "notifications received for queue handed: $received"
[ "$received" = 1 ] || { echo "FAIL: expected exactly one notification, got $received"; echo "$out"; failed=1; }

# 3. The worker vacuums the churning workflow tables itself once it has folded 10,000 journal rows
# (autovacuum comes at most once a minute): a second job for each of 12,000 workflows, in one
# statement, makes 12,000 journal rows (the first jobs were counted in the rows their insert made).
vacuums() { psql_q -c "SELECT vacuum_count FROM pg_stat_user_tables WHERE relid = 'oban_workflow_journal'::regclass"; }
psql_q -c "INSERT INTO oban_jobs (worker, meta) SELECT 'W', jsonb_build_object('workflow_id', 'vac-' || n)
           FROM generate_series(1, 12000) n" >/dev/null
before=$(vacuums)
psql_q -c "INSERT INTO oban_jobs (worker, meta) SELECT 'W', jsonb_build_object('workflow_id', 'vac-' || n)
           FROM generate_series(1, 12000) n" >/dev/null
# Within 60 s: the sanitizer build (.ci/run) takes seconds to fold the 12,000 rows before it
# vacuums, and once took more than 15 s on a loaded machine. (vacuum_count counts the worker's
# VACUUM, not autovacuum's, so waiting longer cannot let autovacuum pass the check.)
after=$before
started=$SECONDS
for _ in $(seq 1200); do
    after=$(vacuums)
    [ "$after" -gt "$before" ] && break
    sleep 0.05
done
echo "journal vacuumed by the worker: $((after - before)) time(s), within $((SECONDS - started)) s"
[ "$after" -gt "$before" ] || { echo "FAIL: the worker did not vacuum the journal within 60 s"; failed=1; }
read -r checked mismatches <<<"$(psql_q -F ' ' < "$REPO/test/check_counts.sql")"
echo "workflows checked: $checked, mismatches: $mismatches"
[ "$mismatches" = 0 ] || { echo "FAIL: workflow counts drifted"; failed=1; }

# 4. A commit that a waiting job depends on gets its flush within oban_pro.flush_delay; any other
# (counts only) within oban_pro.fold_delay. With fold_delay a minute and flush_interval an hour, a
# release that comes within seconds was asked for as soon: each case below would wait a minute if
# the commit that finished its dep were taken for counts only.
psql_q -c "ALTER SYSTEM SET oban_pro.fold_delay = '60s'" -c "ALTER SYSTEM SET oban_pro.flush_interval = '1h'" \
       -c "SELECT pg_reload_conf()" >/dev/null
sleep 0.5
wait_state() {  # wait_state JOB_NAME STATE: within 3 s
    local state=""
    for _ in $(seq 150); do
        state=$(psql_q -c "SELECT state FROM oban_jobs WHERE meta->>'name' = '$1'")
        [ "$state" = "$2" ] && break
        sleep 0.02
    done
    echo "$1: $state"
    [ "$state" = "$2" ] || { echo "FAIL: $1 not $2 within 3 s"; failed=1; }
}
finish() {  # finish STATE JOB_NAME...: one statement
    local names
    names=$(printf "'%s'," "${@:2}")
    psql_q -c "UPDATE oban_jobs SET state = '$1' WHERE meta->>'name' IN (${names%,})" >/dev/null
}
psql_q -c "SELECT count(*) FROM oban_insert_workflow('{\"workflow_id\": \"counts-only\", \"jobs\": [
    {\"name\": \"c1\", \"worker\": \"W\"}, {\"name\": \"c2\", \"worker\": \"W\"}]}')" \
    -c "SELECT count(*) FROM oban_insert_workflow(jsonb_build_object('workflow_id', 'fan', 'jobs',
    (SELECT jsonb_agg(jsonb_build_object('name', 'f' || n, 'worker', 'W')) FROM generate_series(1, 10) n)
    || jsonb_build_array(jsonb_build_object('name', 'f-join', 'worker', 'W',
           'deps', (SELECT jsonb_agg('f' || n) FROM generate_series(1, 10) n)))))" \
    -c "SELECT count(*) FROM oban_insert_workflow('{\"workflow_id\": \"doomed\", \"jobs\": [
    {\"name\": \"k\", \"worker\": \"W\"}, {\"name\": \"k-after\", \"worker\": \"W\", \"deps\": [\"k\"]}]}')" \
    -c "SELECT count(*) FROM oban_insert_workflow('{\"workflow_id\": \"up\", \"jobs\": [{\"name\": \"u1\", \"worker\": \"W\"}]}')" \
    -c "SELECT count(*) FROM oban_insert_workflow('{\"workflow_id\": \"down\", \"jobs\": [
    {\"name\": \"d1\", \"worker\": \"W\", \"deps\": [[\"up\", \"*\"]]}]}')" \
    -c "SELECT count(*) FROM oban_insert_workflow('{\"workflow_id\": \"outer\", \"jobs\": [
    {\"name\": \"o1\", \"worker\": \"W\"},
    {\"name\": \"inner\", \"workflow\": {\"workflow_id\": \"inner-sub\", \"jobs\": [{\"name\": \"i1\", \"worker\": \"W\"}]}}]}')" \
    -c "SELECT count(*) FROM oban_insert_workflow('{\"workflow_id\": \"watcher\", \"jobs\": [
    {\"name\": \"w1\", \"worker\": \"W\", \"deps\": [[\"outer\", \"*\"]]}]}')" \
    -c "SELECT count(*) FROM oban_insert_workflow('{\"workflow_id\": \"top\", \"jobs\": [
    {\"name\": \"t1\", \"worker\": \"W\"},
    {\"name\": \"mid\", \"workflow\": {\"workflow_id\": \"mid-sub\", \"jobs\": [
        {\"name\": \"m1\", \"worker\": \"W\"},
        {\"name\": \"leaf\", \"workflow\": {\"workflow_id\": \"leaf-sub\", \"jobs\": [
            {\"name\": \"l1\", \"worker\": \"W\"}]}}]}}]}')" \
    -c "SELECT count(*) FROM oban_insert_workflow('{\"workflow_id\": \"watcher2\", \"jobs\": [
    {\"name\": \"w2\", \"worker\": \"W\", \"deps\": [[\"top\", \"*\"]]}]}')" >/dev/null
# Counts only: the rows stay in the journal, and oban_workflows is exact meanwhile. (Completed under
# REPEATABLE READ, so that the statement journals its counts rather than fold them in place.)
psql_q -c "BEGIN ISOLATION LEVEL REPEATABLE READ" \
       -c "UPDATE oban_jobs SET state = 'completed' WHERE meta->>'name' IN ('c1', 'c2')" -c "COMMIT" >/dev/null
sleep 0.5
unfolded=$(psql_q -c "SELECT count(*) FROM oban_workflow_journal WHERE workflow_id = 'counts-only'")
state=$(psql_q -c "SELECT state || ' ' || completed FROM oban_workflows WHERE id = 'counts-only'")
echo "counts only: $unfolded journal row(s) left to fold, oban_workflows says $state"
[ "$unfolded" -gt 0 ] || { echo "FAIL: journal rows no job waits on were folded at once"; failed=1; }
[ "$state" = "completed 2" ] || { echo "FAIL: oban_workflows not exact before the fold"; failed=1; }
# The ten deps of a join completed by one statement (left to the flush, as in 1.); a cancelled dep;
# a dep on a whole workflow; a dep on a workflow whose sub-workflow, or sub-sub-workflow, finishes
# last.
finish completed f1 f2 f3 f4 f5 f6 f7 f8 f9 f10
wait_state f-join available
finish cancelled k
wait_state k-after cancelled
finish completed u1
wait_state d1 available
finish completed o1
sleep 0.2
finish completed i1
wait_state w1 available
finish completed t1 m1
sleep 0.2
finish completed l1
wait_state w2 available
psql_q -c "ALTER SYSTEM RESET oban_pro.fold_delay" -c "ALTER SYSTEM RESET oban_pro.flush_interval" \
       -c "SELECT pg_reload_conf()" >/dev/null
read -r checked mismatches <<<"$(psql_q -F ' ' < "$REPO/test/check_counts.sql")"
echo "workflows checked: $checked, mismatches: $mismatches"
[ "$mismatches" = 0 ] || { echo "FAIL: workflow counts drifted"; failed=1; }

psql_q -c "DROP EXTENSION oban_pro CASCADE"
[ "$failed" = 0 ] && echo "worker: ok"
exit "$failed"
