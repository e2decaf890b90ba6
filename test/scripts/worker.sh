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

# 1. Release without an explicit flush. b waits on two deps that one statement completes, so the
# ack cannot release it itself (it does so only for a job's one remaining dep): the worker must.
psql_q -c "SELECT count(*) FROM oban_insert_workflow('{\"workflow_id\": \"auto\", \"jobs\": [
    {\"name\": \"a\", \"worker\": \"W\"}, {\"name\": \"x\", \"worker\": \"W\"},
    {\"name\": \"b\", \"worker\": \"W\", \"deps\": [\"a\", \"x\"]}]}')" >/dev/null
psql_q -c "SELECT count(*) FROM oban_fetch_jobs('default', 2)" >/dev/null
psql_q -c "UPDATE oban_jobs SET state = 'completed', completed_at = timezone('UTC', now()) WHERE meta->>'name' IN ('a', 'x')" >/dev/null
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
# (autovacuum comes at most once a minute): 12,000 jobs of 12,000 workflows, in one statement, make
# 12,000 journal rows.
vacuums() { psql_q -c "SELECT vacuum_count FROM pg_stat_user_tables WHERE relid = 'oban_workflow_journal'::regclass"; }
before=$(vacuums)
psql_q -c "INSERT INTO oban_jobs (worker, meta) SELECT 'W', jsonb_build_object('workflow_id', 'vac-' || n)
           FROM generate_series(1, 12000) n" >/dev/null
after=$before
for _ in $(seq 100); do
    after=$(vacuums)
    [ "$after" -gt "$before" ] && break
    sleep 0.05
done
echo "journal vacuumed by the worker: $((after - before)) time(s)"
[ "$after" -gt "$before" ] || { echo "FAIL: the worker did not vacuum the journal within 5 s"; failed=1; }
read -r checked mismatches <<<"$(psql_q -F ' ' < "$REPO/test/check_counts.sql")"
echo "workflows checked: $checked, mismatches: $mismatches"
[ "$mismatches" = 0 ] || { echo "FAIL: workflow counts drifted"; failed=1; }

psql_q -c "DROP EXTENSION oban_pro CASCADE"
[ "$failed" = 0 ] && echo "worker: ok"
exit "$failed"
