#!/usr/bin/env bash
# Maintenance by the background workers (SPEC §7), on a cluster of its own with short intervals:
# one worker per database of oban_pro.database, each finding the extension's schema by itself (and
# saying once that it is not installed), staging, pruning, rescue, workflow repair and the vacuum of
# oban_jobs without any client call, failing runs logged while the worker goes on, SIGHUP, SIGTERM
# and crash restarts; in READ COMMITTED whatever the database's default isolation.
# Usage: maintenance.sh WORKDIR
set -euo pipefail
source "$(dirname "$0")/../../scripts/lib.sh"
WORK=$1
trap 'cp "$WORK/maintenance/server.log" "$WORK/maintenance.log" 2>/dev/null || true; stop_cluster; rm -rf "$WORK/maintenance"' EXIT
failed=0
fail() { echo "FAIL: $*"; failed=1; }

start_cluster "$WORK/maintenance"
LOG=$CLUSTER_DIR/server.log
q() { local db=$1; shift; PGOPTIONS="-c client_min_messages=warning -c search_path=oban,public -c default_transaction_isolation=read\\ committed" \
    as_postgres psql -X -q -At -v ON_ERROR_STOP=1 -d "$db" "$@"; }
# wait_for DB SQL EXPECTED SECONDS: polls every 50 ms; prints the last value; fails when it never matched.
wait_for() {
    local value="" deadline
    deadline=$(awk -v n="$(date +%s.%N)" -v s="$4" 'BEGIN { printf "%.3f", n + s }')
    while :; do
        value=$(q "$1" -c "$2" 2>/dev/null || true)
        [ "$value" = "$3" ] && { echo "$value"; return 0; }
        awk -v n="$(date +%s.%N)" -v d="$deadline" 'BEGIN { exit !(n > d) }' && { echo "$value"; return 1; }
        sleep 0.05
    done
}
# logged_with_context ERROR CONTEXT: some logged ERROR line has CONTEXT within the 40 lines after it.
# (One awk over the log, not grep -A40 | grep -q: under pipefail the early exit of grep -q could
# kill the first grep with SIGPIPE and fail the check.)
logged_with_context() {
    awk -v error="$1" -v context="$2" '
        index($0, error) { window = 40; next }
        window > 0 { window--; if (index($0, context)) { found = 1; exit } }
        END { exit !found }' "$LOG"
}
worker_pid() { q postgres -c "SELECT pid FROM pg_stat_activity WHERE backend_type = 'oban_pro worker' AND datname = '$1'"; }

# Settings are validated (ALTER SYSTEM runs the same checks as the server's start).
for bad in "oban_pro.database = 'maint_a, maint_a'" "oban_pro.database = 'a,,b'" \
           "oban_pro.stage_interval = '5ms'" "oban_pro.stage_interval = '-1'" "oban_pro.prune_interval = '2d'" \
           "oban_pro.rescue_after = 0" "oban_pro.prune_limit = 0" "oban_pro.maintenance = 'maybe'" \
           "oban_pro.repair_max_age = 'soon'" "oban_pro.unknown = 1"; do
    if out=$(q postgres -v VERBOSITY=verbose -c "ALTER SYSTEM SET $bad" 2>&1); then fail "accepted: $bad"; else
        out=$(echo "$out" | head -1)
        echo "refused: $bad (${out#*ERROR:  })"
        want=22023
        [[ $bad == oban_pro.unknown* ]] && want=42704
        [[ $out == *"ERROR:  $want:"* ]] || fail "expected SQLSTATE $want for $bad"
    fi
done
q postgres -c "ALTER SYSTEM SET oban_pro.prune_max_age = '2h'" -c "ALTER SYSTEM RESET oban_pro.prune_max_age"

# Two databases, one worker each; maint_b never gets the extension until the end.
q postgres -c "CREATE DATABASE maint_a" -c "CREATE DATABASE maint_b"
# A database whose sessions default to SERIALIZABLE: the worker runs its duties in READ COMMITTED
# all the same (pruning and repair refuse any other level); this script's own sessions ask for it.
q postgres -c "ALTER DATABASE maint_a SET default_transaction_isolation = 'serializable'"
cat >>"$CLUSTER_DIR/data/postgresql.conf" <<'CONF'
oban_pro.database = 'maint_a, maint_b'
oban_pro.maintenance = on
oban_pro.stage_interval = 300ms
oban_pro.prune_interval = 300ms
oban_pro.rescue_interval = 300ms
oban_pro.repair_interval = 300ms
oban_pro.repair_max_age = 1s
CONF
server_ctl -D "$CLUSTER_DIR/data" -l "$LOG" -w restart >/dev/null

workers=$(wait_for postgres "SELECT string_agg(datname || ':' || application_name || ':' || coalesce(wait_event, '-'), ' ' ORDER BY datname)
                             FROM pg_stat_activity WHERE backend_type = 'oban_pro worker'" \
    "maint_a:oban_pro worker:Extension maint_b:oban_pro worker:Extension" 5) || fail "workers not both waiting on their latch"
echo "workers (database:application_name:wait_event): $workers"
sleep 1
grep -q 'extension "oban_pro" is not installed in database "maint_a"' "$LOG" || fail "maint_a: no 'not installed' line"
q maint_a -c "CREATE SCHEMA oban" -c "CREATE EXTENSION oban_pro SCHEMA oban"
for _ in $(seq 40); do grep -q 'found in schema "oban" of database "maint_a"' "$LOG" && break; sleep 0.05; done
grep -q 'found in schema "oban" of database "maint_a"' "$LOG" || fail "maint_a: the worker did not find schema oban"
PID_A=$(worker_pid maint_a)

# 1. A scheduled job becomes available within ~2 stage intervals, with no client call. The moment
# the worker's staging commits its change is taken by a trigger (the test's polling psql, slow to
# start on a loaded machine, would add its own delay).
q maint_a -c "CREATE TABLE public.staged_at (job_id bigint, at timestamp)" \
          -c "CREATE FUNCTION public.note_staged() RETURNS trigger LANGUAGE plpgsql AS \$\$
              BEGIN INSERT INTO public.staged_at VALUES (NEW.id, timezone('UTC', clock_timestamp())); RETURN NULL; END \$\$" \
          -c "CREATE TRIGGER note_staged AFTER UPDATE OF state ON oban_jobs FOR EACH ROW
              WHEN (NEW.state = 'available') EXECUTE FUNCTION public.note_staged()"
q maint_a -c "INSERT INTO oban_jobs (worker, state, scheduled_at, args)
              VALUES ('W', 'scheduled', timezone('UTC', now()) + interval '0.3 seconds', '{\"n\": \"staged\"}')"
wait_for maint_a "SELECT state FROM oban_jobs WHERE args->>'n' = 'staged'" available 3 >/dev/null \
    || fail "scheduled job not staged"
lag=$(q maint_a -c "SELECT round(extract(epoch FROM s.at - j.scheduled_at)::numeric, 2)
                    FROM oban_jobs AS j JOIN public.staged_at AS s ON s.job_id = j.id WHERE j.args->>'n' = 'staged'")
q maint_a -c "DROP TRIGGER note_staged ON oban_jobs" -c "DROP TABLE public.staged_at" -c "DROP FUNCTION public.note_staged()"
echo "staged, seen ${lag}s after it was due (stage_interval 300ms)"
awk -v l="$lag" 'BEGIN { exit !(l <= 1.0) }' || fail "staging took ${lag}s, more than ~2 intervals"

# 1b. A parked signal wait whose deadline passed becomes available by staging, with no client call;
# the next await then reports the timeout.
parked=$(q maint_a -c "INSERT INTO oban_jobs (worker, args) VALUES ('W', '{\"n\": \"parked\"}') RETURNING id" | head -1)
q maint_a -c "SELECT count(*) FROM oban_fetch_jobs('default', 10, 'maint-test')" >/dev/null
status=$(q maint_a -c "SELECT status FROM oban_await_signal($parked, interval '0.3 seconds', interval '0')")
[ "$status" = suspended ] || fail "the await did not park the job (status $status)"
wait_for maint_a "SELECT state FROM oban_jobs WHERE id = $parked" available 3 >/dev/null \
    || fail "the parked job was not made available after its deadline"
q maint_a -c "SELECT count(*) FROM oban_fetch_jobs('default', 10, 'maint-test')" >/dev/null
status=$(q maint_a -c "SELECT status FROM oban_await_signal($parked, interval '0.3 seconds', interval '0')")
[ "$status" = timeout ] || fail "the await after the deadline returned $status, not timeout"
q maint_a -c "SELECT oban_complete_job($parked)" >/dev/null
echo "parked signal wait: made available by the worker after its deadline; the next await timed out"

# 2. No busy loop: between runs the workers sleep on their latches.
c0=$(q postgres -c "SELECT sum(xact_commit + xact_rollback) FROM pg_stat_database WHERE datname IN ('maint_a', 'maint_b')")
sleep 3
c1=$(q postgres -c "SELECT sum(xact_commit + xact_rollback) FROM pg_stat_database WHERE datname IN ('maint_a', 'maint_b')")
echo "transactions in 3 s of idling, both databases: $((c1 - c0))"
[ $((c1 - c0)) -lt 150 ] || fail "the workers ran $((c1 - c0)) transactions in 3 s: a busy loop?"

# 3. Pruning: old finished jobs go, but not those of an unfinished workflow; a finished workflow's
#    row goes with its last job.
q maint_a >/dev/null <<'SQL'
INSERT INTO oban_jobs (worker, state, attempt, completed_at, args)
VALUES ('W', 'completed', 1, timezone('UTC', now()) - interval '2 days', '{"n": "old"}');
SELECT count(*) FROM oban_insert_workflow('{"workflow_id": "keep", "jobs": [
    {"name": "a", "worker": "W", "queue": "keep"}, {"name": "b", "worker": "W", "queue": "keep", "deps": ["a"]}]}');
SELECT count(*) FROM oban_insert_workflow('{"workflow_id": "done", "jobs": [{"name": "x", "worker": "W", "queue": "done"}]}');
SELECT oban_complete_job(id) FROM oban_fetch_jobs('keep', 1);
SELECT oban_complete_job(id) FROM oban_fetch_jobs('done', 1);
SQL
wait_for maint_a "SELECT state FROM oban_jobs WHERE meta->>'workflow_id' = 'keep' AND meta->>'name' = 'b'" available 3 >/dev/null \
    || fail "keep/b not released by the worker"
q maint_a -c "UPDATE oban_jobs SET completed_at = timezone('UTC', now()) - interval '2 days' WHERE state = 'completed'"
wait_for maint_a "SELECT count(*) FROM oban_jobs WHERE args->>'n' = 'old' OR meta->>'workflow_id' = 'done'" 0 3 >/dev/null \
    || fail "old jobs not pruned"
left=$(q maint_a -c "SELECT string_agg(meta->>'workflow_id' || '/' || (meta->>'name') || ':' || state, ' ' ORDER BY id) FROM oban_jobs")
echo "after pruning: $left"
[ "$left" = "keep/a:completed keep/b:available" ] || fail "pruning took jobs of the unfinished workflow keep"
wait_for maint_a "SELECT string_agg(id, ' ' ORDER BY id) FROM oban_workflows" keep 3 >/dev/null \
    || fail "the finished workflow's row was not pruned"

# 4. Rescue: an executing job whose producer row disappeared becomes available again.
q maint_a >/dev/null <<'SQL'
INSERT INTO oban_producers (uuid, node, queue) VALUES ('11111111-1111-1111-1111-111111111111', 'n1', 'rescue');
INSERT INTO oban_jobs (worker, queue, state, attempt, attempted_at, attempted_by, args)
VALUES ('W', 'rescue', 'executing', 1, timezone('UTC', now()), '{n1,11111111-1111-1111-1111-111111111111}', '{"n": "orphan"}');
SQL
sleep 1
[ "$(q maint_a -c "SELECT state FROM oban_jobs WHERE args->>'n' = 'orphan'")" = executing ] \
    || fail "a job of a live producer was rescued"
q maint_a -c "DELETE FROM oban_producers"
rescued=$(wait_for maint_a "SELECT state || ' rescued=' || (meta->>'rescued') FROM oban_jobs WHERE args->>'n' = 'orphan'" \
    "available rescued=1" 3) || fail "orphan not rescued: $rescued"
echo "orphan: $rescued"
grep -q 'rescue: oban_rescue_jobs() changed 1 row' "$LOG" || fail "no log line for the rescue"

# 5. Repair: a release that fails (a user trigger refuses it) leaves the workflow stuck; the ack
#    stands. Once the cause is gone, the worker's repair releases the job.
q maint_a >/dev/null <<'SQL'
CREATE FUNCTION public.refuse_release() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.state = 'available' AND NEW.meta->>'name' = 'guarded' THEN RAISE EXCEPTION 'not today'; END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER refuse_release BEFORE UPDATE ON oban_jobs FOR EACH ROW EXECUTE FUNCTION public.refuse_release();
SELECT count(*) FROM oban_insert_workflow('{"workflow_id": "stuck", "jobs": [
    {"name": "a", "worker": "W", "queue": "stuck"}, {"name": "guarded", "worker": "W", "queue": "stuck", "deps": ["a"]},
    {"name": "free", "worker": "W", "queue": "stuck", "deps": ["a"]}]}');
SELECT oban_complete_job(id) FROM oban_fetch_jobs('stuck', 1);
SQL
wait_for maint_a "SELECT state FROM oban_jobs WHERE meta->>'name' = 'free'" available 3 >/dev/null || fail "stuck/free not released"
sleep 1.5  # the repair runs and fails meanwhile: the trigger still refuses
steps=$(q maint_a -c "SELECT string_agg((meta->>'name') || ':' || state, ' ' ORDER BY id) FROM oban_jobs WHERE meta->>'workflow_id' = 'stuck'")
echo "stuck workflow: $steps"
[ "$steps" = "a:completed guarded:suspended free:available" ] || fail "the workflow was not left stuck"
grep -q 'workflow "stuck" left for repair' "$LOG" || fail "no warning for the failed release"
q maint_a -c "DROP TRIGGER refuse_release ON oban_jobs"
wait_for maint_a "SELECT state FROM oban_jobs WHERE meta->>'name' = 'guarded'" available 5 >/dev/null \
    || fail "stuck workflow not repaired"
echo "stuck workflow repaired by the worker"

# 6. A failing run is logged and retried; the other duties go on and the worker stays up.
q maint_a >/dev/null <<'SQL'
CREATE FUNCTION public.refuse_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'no pruning today'; END $$;
CREATE TRIGGER refuse_delete BEFORE DELETE ON oban_jobs FOR EACH ROW EXECUTE FUNCTION public.refuse_delete();
INSERT INTO oban_jobs (worker, state, attempt, completed_at, args)
VALUES ('W', 'completed', 1, timezone('UTC', now()) - interval '2 days', '{"n": "old again"}');
INSERT INTO oban_jobs (worker, state, scheduled_at, args)
VALUES ('W', 'scheduled', timezone('UTC', now()) + interval '0.5 seconds', '{"n": "while pruning fails"}');
SQL
wait_for maint_a "SELECT state FROM oban_jobs WHERE args->>'n' = 'while pruning fails'" available 3 >/dev/null \
    || fail "staging stopped while pruning fails"
duty_named() {  # the context of a logged failure names the duty
    logged_with_context 'ERROR:  no pruning today' 'oban_pro worker: pruning jobs (oban_prune_jobs)'
}
for _ in $(seq 200); do  # each pruning run (every 300 ms) fails and is logged
    errors=$(grep -c 'ERROR:  no pruning today' "$LOG" || true)
    [ "$errors" -ge 2 ] && duty_named && break
    sleep 0.05
done
echo "failed pruning runs logged: $errors"
[ "$errors" -ge 2 ] || fail "pruning failures not logged (or not retried)"
duty_named || { fail "the failure's log line does not say which duty failed"; grep -A40 -m1 'ERROR:  no pruning today' "$LOG"; }
q maint_a -c "DROP TRIGGER refuse_delete ON oban_jobs"
wait_for maint_a "SELECT count(*) FROM oban_jobs WHERE args->>'n' = 'old again'" 0 3 >/dev/null \
    || fail "pruning did not resume"
# A lock held past the runs' lock_timeout (1s): the rescue fails and is logged; staging goes on.
q maint_a -c "BEGIN" -c "LOCK oban_producers IN ACCESS EXCLUSIVE MODE" -c "SELECT pg_sleep(2.5)" -c "COMMIT" >/dev/null &
locker=$!
sleep 0.2
q maint_a -c "INSERT INTO oban_jobs (worker, state, scheduled_at, args)
              VALUES ('W', 'scheduled', timezone('UTC', now()) + interval '0.2 seconds', '{\"n\": \"while locked\"}')"
wait_for maint_a "SELECT state FROM oban_jobs WHERE args->>'n' = 'while locked'" available 3 >/dev/null \
    || fail "staging stopped while the rescue waits for a lock"
wait "$locker"
logged_with_context 'ERROR:  canceling statement due to lock timeout' 'oban_pro worker: rescuing jobs (oban_rescue_jobs)' \
    || fail "no lock timeout logged for the rescue"
[ "$(worker_pid maint_a)" = "$PID_A" ] || fail "the maint_a worker restarted during the failures"
echo "failing runs logged, worker $PID_A still serving"

# 7. SIGHUP: a new interval (and turning maintenance off and on) takes effect without a restart.
q postgres -c "ALTER SYSTEM SET oban_pro.stage_interval = '1h'" -c "SELECT pg_reload_conf()" >/dev/null
for _ in $(seq 60); do grep -q 'database "maint_a": stage_interval=3600000ms' "$LOG" && break; sleep 0.05; done
grep -q 'database "maint_a": stage_interval=3600000ms' "$LOG" || fail "the reload was not logged"
q maint_a -c "INSERT INTO oban_jobs (worker, state, scheduled_at, args)
              VALUES ('W', 'scheduled', timezone('UTC', now()) + interval '0.1 seconds', '{\"n\": \"after reload\"}')"
sleep 1.5
[ "$(q maint_a -c "SELECT state FROM oban_jobs WHERE args->>'n' = 'after reload'")" = scheduled ] \
    || fail "staged although stage_interval is 1h"
q postgres -c "ALTER SYSTEM SET oban_pro.maintenance = off" -c "ALTER SYSTEM SET oban_pro.stage_interval = '300ms'" \
    -c "SELECT pg_reload_conf()" >/dev/null
sleep 1.5
[ "$(q maint_a -c "SELECT state FROM oban_jobs WHERE args->>'n' = 'after reload'")" = scheduled ] \
    || fail "staged although maintenance is off"
grep -q 'maintenance is off in database "maint_a"' "$LOG" || fail "turning maintenance off was not logged"
q postgres -c "ALTER SYSTEM RESET oban_pro.maintenance" -c "ALTER SYSTEM RESET oban_pro.stage_interval" \
    -c "SELECT pg_reload_conf()" >/dev/null
wait_for maint_a "SELECT state FROM oban_jobs WHERE args->>'n' = 'after reload'" available 2 >/dev/null \
    || fail "not staged once maintenance is back on"
echo "reloads: a 1h stage_interval and maintenance = off held the job; back on, it was staged"

# 7b. oban_jobs is vacuumed by the worker as soon as autovacuum's rule for it is met (its dead rows
#     above the table's threshold + scale factor x rows: 50 + 2% with Oban's settings), not at
#     autovacuum's next visit (autovacuum_naptime); not while the table's autovacuum is off, nor with
#     oban_pro.vacuum_jobs off. The worker's vacuums count as manual ones (vacuum_count).
vacuums() { q maint_a -c "SELECT vacuum_count FROM pg_stat_user_tables WHERE relid = 'oban.oban_jobs'::regclass"; }
churn() {  # N: N jobs inserted, then completed: N dead row versions
    q maint_a -c "INSERT INTO oban_jobs (worker, args) SELECT 'Churn', jsonb_build_object('n', g) FROM generate_series(1, $1) g" \
              -c "UPDATE oban_jobs SET state = 'completed', completed_at = timezone('UTC', now())
                  WHERE worker = 'Churn' AND state = 'available'"
}
# Each case starts from a vacuum of its own, which leaves no dead row behind.
q maint_a -c "VACUUM ANALYZE oban_jobs"
before=$(vacuums)
churn 10
sleep 2.5
[ "$(vacuums)" = "$before" ] || fail "oban_jobs vacuumed with 10 dead rows, below autovacuum's threshold"
churn 2000
wait_for maint_a "SELECT vacuum_count > $before FROM pg_stat_user_tables WHERE relid = 'oban.oban_jobs'::regclass" \
    t 5 >/dev/null || fail "oban_jobs not vacuumed by the worker with 2,000 dead rows"
q maint_a -c "ALTER TABLE oban_jobs SET (autovacuum_enabled = false)" -c "VACUUM oban_jobs"
before=$(vacuums)
churn 2000
sleep 3.5
[ "$(vacuums)" = "$before" ] || fail "oban_jobs vacuumed by the worker although its autovacuum is off"
q maint_a -c "ALTER TABLE oban_jobs RESET (autovacuum_enabled)"
q postgres -c "ALTER SYSTEM SET oban_pro.vacuum_jobs = off" -c "SELECT pg_reload_conf()" >/dev/null
q maint_a -c "VACUUM oban_jobs"
before=$(vacuums)
churn 2000
sleep 3.5
[ "$(vacuums)" = "$before" ] || fail "oban_jobs vacuumed by the worker although oban_pro.vacuum_jobs is off"
q postgres -c "ALTER SYSTEM RESET oban_pro.vacuum_jobs" -c "SELECT pg_reload_conf()" >/dev/null
wait_for maint_a "SELECT vacuum_count > $before FROM pg_stat_user_tables WHERE relid = 'oban.oban_jobs'::regclass" \
    t 5 >/dev/null || fail "oban_jobs not vacuumed once oban_pro.vacuum_jobs is back on"
echo "vacuum of oban_jobs: not below the threshold, done above it; none with the table's autovacuum or vacuum_jobs off"

# 8. maint_b: said once that the extension is missing; finds it in public once created.
missing=$(grep -c 'extension "oban_pro" is not installed in database "maint_b"' "$LOG" || true)
echo "'not installed' lines for maint_b: $missing"
[ "$missing" = 1 ] || fail "expected the missing extension logged once for maint_b, got $missing"
q maint_b -c "CREATE EXTENSION oban_pro" -c "INSERT INTO oban_jobs (worker, state, scheduled_at)
                                             VALUES ('W', 'scheduled', timezone('UTC', now()))"
wait_for maint_b "SELECT state FROM oban_jobs" available 3 >/dev/null || fail "maint_b: not staged"
grep -q 'found in schema "public" of database "maint_b"' "$LOG" || fail "maint_b: schema not found"

# 9. SIGTERM ends a worker cleanly; after a crash of any backend both come back.
PID_B=$(worker_pid maint_b)
q postgres -c "SELECT pg_terminate_backend($PID_A)" >/dev/null
for _ in $(seq 40); do grep -q "\[$PID_A\] FATAL:  terminating background worker \"oban_pro worker\" due to administrator command" "$LOG" && break; sleep 0.05; done
grep -q "\[$PID_A\] FATAL:  terminating background worker \"oban_pro worker\" due to administrator command" "$LOG" \
    || fail "no clean exit on SIGTERM"
kill -9 "$PID_B"
wait_for postgres "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'oban_pro worker'" 2 15 >/dev/null \
    || fail "the workers did not come back after a crash"
[ "$(worker_pid maint_b)" != "$PID_B" ] || fail "maint_b's worker was not restarted"
q maint_a -c "INSERT INTO oban_jobs (worker, state, scheduled_at, args)
              VALUES ('W', 'scheduled', timezone('UTC', now()), '{\"n\": \"after crash\"}')"
wait_for maint_a "SELECT state FROM oban_jobs WHERE args->>'n' = 'after crash'" available 3 >/dev/null \
    || fail "not staged after the restart"
echo "SIGTERM: clean exit; crash: workers back (maint_b $PID_B -> $(worker_pid maint_b))"

if [ "$failed" != 0 ]; then
    echo "--- server log (oban_pro lines) ---"
    grep -E 'oban_pro|ERROR|FATAL' "$LOG" | tail -40
fi
[ "$failed" = 0 ] && echo "maintenance: ok"
exit "$failed"
