#!/usr/bin/env bash
# pg_dump -Fc / pg_restore of a database mid-workflow (issue 8, point 5): workflows with a
# sub-workflow part-way through (steps completed, dependents released, others suspended, journal
# rows not yet folded), a unique workflow holding its name, parked jobs (one already signalled, one
# still waiting) and a signal delivered before its job ever ran. The restored database must hold the
# same state (compared fact by fact with the source), its counts must equal a recount
# (test/check_counts.sql), the unique name must still be held, the signals must be consumed by their
# jobs, and draining the workers must bring every workflow to `completed`.
# Usage: dump_restore_workflows.sh WORKDIR
set -euo pipefail
source "$(dirname "$0")/../../scripts/lib.sh"
WORK=$1
SRC=dumpwf_source
DST=dumpwf_target
psql_q() { PGOPTIONS="-c client_min_messages=warning" as_postgres psql -X -q -v ON_ERROR_STOP=1 "$@"; }
value() { PGOPTIONS="-c search_path=oban" as_postgres psql -X -At -v ON_ERROR_STOP=1 -d "$1" -c "$2"; }
fail() { echo "FAIL: $*"; exit 1; }

psql_q -c "DROP DATABASE IF EXISTS $SRC" -c "DROP DATABASE IF EXISTS $DST" \
       -c "CREATE DATABASE $SRC" -c "CREATE DATABASE $DST"

psql_q -d "$SRC" <<'SQL'
CREATE SCHEMA oban;
CREATE EXTENSION oban_pro SCHEMA oban;
SET search_path = oban;
\o /dev/null
-- Workflow dr-main: a → (b, sub-workflow imp: x → y) → c; plus z waiting for imp's y by pair.
SELECT * FROM oban_insert_workflow('{"workflow_id": "dr-main", "name": "main", "jobs": [
    {"name": "a", "worker": "Dr.A", "queue": "dr"},
    {"name": "b", "worker": "Dr.B", "queue": "dr", "deps": ["a"]},
    {"name": "imp", "deps": ["a"], "workflow": {"workflow_id": "dr-imp", "name": "import", "jobs": [
        {"name": "x", "worker": "Dr.X", "queue": "dr"},
        {"name": "y", "worker": "Dr.Y", "queue": "dr", "deps": ["x"]}]}},
    {"name": "c", "worker": "Dr.C", "queue": "dr", "deps": ["b", "imp"]},
    {"name": "z", "worker": "Dr.Z", "queue": "dr", "deps": [["dr-imp", "y"]]}]}');
-- A second workflow that waits for all of dr-main, and a fan-in.
SELECT * FROM oban_insert_workflow('{"workflow_id": "dr-after", "jobs": [
    {"name": "p", "worker": "Dr.P", "queue": "dr", "deps": [["dr-main", "*"]]},
    {"name": "q1", "worker": "Dr.Q", "queue": "dr"}, {"name": "q2", "worker": "Dr.Q", "queue": "dr"},
    {"name": "r", "worker": "Dr.R", "queue": "dr", "deps": ["q1", "q2", "p"]}]}');
-- a completes and is folded: b and x are released.
SELECT oban_complete_job(id) FROM oban_fetch_jobs('dr', 1);
SELECT oban_flush_workflows();
-- x and q1 complete, their journal rows are left unfolded (nothing flushes this database): y and
-- r's wait for q1 are still pending at dump time.
UPDATE oban_jobs SET state = 'executing', attempt = 1 WHERE meta->>'name' IN ('x', 'q1') AND state = 'available';
SELECT oban_complete_job(id) FROM oban_jobs WHERE meta->>'name' IN ('x', 'q1');
-- b is executing at dump time (its worker will be gone: the drain rescues it).
UPDATE oban_jobs SET state = 'executing', attempt = 1, attempted_at = timezone('UTC', now()) - interval '2 hours'
WHERE meta->>'name' = 'b';

-- A unique workflow holding its name.
SELECT * FROM oban_insert_workflow('{"workflow_id": "dr-nightly-1", "name": "dr-nightly", "unique": true, "jobs": [
    {"name": "n1", "worker": "Dr.N", "queue": "dr"}, {"name": "n2", "worker": "Dr.N", "queue": "dr", "deps": ["n1"]}]}');

-- Signals: s1 parked and then signalled (available, signal in the mailbox); s2 parked, still
-- waiting; s3 signalled before it ever ran; s4, a workflow step, signalled by name while its dep
-- is not done (kept in the mailbox).
INSERT INTO oban_jobs (worker, queue, args) VALUES ('Dr.Await', 'dr_sig', '{"n": 1}'), ('Dr.Await', 'dr_sig', '{"n": 2}');
SELECT count(*) FROM oban_fetch_jobs('dr_sig', 2);
SELECT (oban_await_signal(id, '1 day', '0')).status FROM oban_jobs WHERE worker = 'Dr.Await';
SELECT oban_signal(id, '{"token": "s1"}') FROM oban_jobs WHERE worker = 'Dr.Await' AND args->>'n' = '1';
INSERT INTO oban_jobs (worker, queue, args) VALUES ('Dr.Await', 'dr_sig', '{"n": 3}');
SELECT oban_signal(id, '{"token": "s3"}') FROM oban_jobs WHERE worker = 'Dr.Await' AND args->>'n' = '3';
SELECT * FROM oban_insert_workflow('{"workflow_id": "dr-approve", "jobs": [
    {"name": "prep", "worker": "Dr.Prep", "queue": "dr"},
    {"name": "approval", "worker": "Dr.Await", "queue": "dr_sig", "deps": ["prep"]}]}');
SELECT oban_workflow_signal('dr-approve', 'approval', '{"token": "s4"}');
SQL

# Facts compared between the source and the restored database.
facts() {
    PGOPTIONS="-c search_path=oban" as_postgres psql -X -At -v ON_ERROR_STOP=1 -d "$1" <<'SQL'
SELECT 'jobs ' || count(*) || ' ' || md5(string_agg(concat_ws('|', id, state, queue, worker, attempt, args, meta, tags,
           errors, attempted_by, inserted_at, scheduled_at, attempted_at, completed_at), ',' ORDER BY id)) FROM oban_jobs;
SELECT 'workflows ' || string_agg(concat_ws(':', id, name, parent_id, sub_name, state, suspended, available, executing,
           completed, inserted_at), ' ' ORDER BY id) FROM oban_workflows;
SELECT 'journal rows ' || count(*) FROM oban_workflow_journal;
SELECT 'names ' || string_agg(name || '=' || workflow_id, ' ' ORDER BY name) FROM oban_workflow_names;
SELECT 'signals ' || string_agg(concat_ws(':', id, job_id, payload), ' ' ORDER BY id) FROM oban_signals;
SELECT 'waits ' || string_agg(concat_ws(':', job_id, workflow_id, remaining), ' ' ORDER BY job_id) FROM oban_workflow_waits;
SELECT 'edges ' || string_agg(concat_ws(':', dep_workflow_id, dep_name, job_id), ' '
                              ORDER BY dep_workflow_id, dep_name, job_id) FROM oban_workflow_edges;
SQL
}
check_counts() {
    PGOPTIONS="-c search_path=oban" as_postgres psql -X -At -v ON_ERROR_STOP=1 -d "$1" -f "$REPO/test/check_counts.sql" \
        | tr '|' ' '
}

before=$(facts "$SRC")
[ "$(value "$SRC" "SELECT count(*) FROM oban_workflow_journal")" -gt 0 ] || fail "the source has no unfolded journal rows"
as_postgres pg_dump -Fc -d "$SRC" -f "$WORK/workflows.dump"
as_postgres pg_restore --exit-on-error -d "$DST" "$WORK/workflows.dump"
after=$(facts "$DST")
if [ "$before" != "$after" ]; then
    diff <(echo "$before") <(echo "$after") || true
    fail "the restored database differs from the source"
fi
echo "restored state equals the source: $(echo "$after" | grep -c .) facts compared"
echo "  $(echo "$after" | grep '^jobs' | cut -d' ' -f1-2), $(echo "$after" | grep '^journal')"

counts=$(check_counts "$DST")
echo "counts vs recount after restore (workflows, mismatches): $counts"
[ "${counts#* }" = "0" ] || fail "counts drift after restore"

# The unique name is still held: a conflicting insert conflicts and persists nothing.
conflicted=$(value "$DST" "SELECT bool_and(conflicted) FROM oban_insert_workflow('{\"name\": \"dr-nightly\", \"unique\": true,
    \"jobs\": [{\"name\": \"n1\", \"worker\": \"Dr.N\", \"queue\": \"dr\"}]}')")
[ "$conflicted" = "t" ] || fail "the unique name dr-nightly was not held after restore"
echo "unique name still held: a conflicting insert conflicted"

# New rows get fresh ids (the sequences came along).
fresh=$(value "$DST" "SELECT (SELECT max(id) FROM oban_jobs) < (oban_insert_job('Dr.Fresh', queue => 'dr_fresh')).id")
took_fresh=$(value "$DST" "SELECT oban_signal(id, '{\"token\": \"fresh\"}') FROM oban_jobs WHERE worker = 'Dr.Fresh'")
fresh_signal=$(value "$DST" "SELECT max(id) FILTER (WHERE payload->>'token' = 'fresh')
                                    > max(id) FILTER (WHERE payload->>'token' <> 'fresh') FROM oban_signals")
fresh="$fresh$took_fresh$fresh_signal"
[ "$fresh" = "ttt" ] || fail "identity sequences not restored ($fresh)"

# The still-parked job takes a signal sent after the restore.
took=$(value "$DST" "SELECT oban_signal(id, '{\"token\": \"s2\"}') FROM oban_jobs WHERE worker = 'Dr.Await' AND args->>'n' = '2'")
[ "$took" = "t" ] || fail "the parked job did not take a signal after restore"

# Drain as workers would: rescue the job whose worker is gone, flush, fetch, await signals, complete.
# Every fetch and completion gets the next number of one counter: a step must be fetched after each
# of its deps completed (deps completed before the dump count as 0).
drained=$(PGOPTIONS="-c search_path=oban" as_postgres psql -X -At -q -v ON_ERROR_STOP=1 -d "$DST" <<'SQL'
CREATE TEMP TABLE got (job_id bigint, token text);
CREATE TEMP TABLE steps (job_id bigint PRIMARY KEY, fetched int, completed int);
CREATE TEMP SEQUENCE clock;
DO $$
DECLARE
    job oban_jobs;
    fetched oban_jobs[];
    signal record;
BEGIN
    PERFORM oban_rescue_jobs('1 hour');
    FOR round IN 1..20 LOOP
        PERFORM oban_flush_workflows();
        EXIT WHEN NOT EXISTS (SELECT FROM oban_jobs WHERE state NOT IN ('completed', 'cancelled', 'discarded'));
        -- All of the round's fetches first, then the work.
        fetched := ARRAY(SELECT j FROM oban_fetch_jobs('dr', 100) AS j) || ARRAY(SELECT j FROM oban_fetch_jobs('dr_sig', 100) AS j)
                   || ARRAY(SELECT j FROM oban_fetch_jobs('dr_fresh', 100) AS j);
        FOREACH job IN ARRAY fetched LOOP
            INSERT INTO steps VALUES (job.id, nextval('clock'), NULL);
        END LOOP;
        FOREACH job IN ARRAY fetched LOOP
            IF job.worker IN ('Dr.Await', 'Dr.Fresh') THEN
                SELECT * INTO signal FROM oban_await_signal(job.id, NULL, '0');
                IF signal.status <> 'received' THEN
                    RAISE EXCEPTION 'job % awaited % instead of its signal', job.id, signal.status;
                END IF;
                INSERT INTO got VALUES (job.id, signal.payload->>'token');
            END IF;
            PERFORM oban_complete_job(job.id);
            UPDATE steps SET completed = nextval('clock') WHERE job_id = job.id;
        END LOOP;
    END LOOP;
    PERFORM oban_flush_workflows();
END $$;
SELECT string_agg(token, ',' ORDER BY token) FROM got;
SELECT count(*) FROM steps;
SELECT count(*)
FROM oban_jobs AS j
CROSS JOIN LATERAL jsonb_array_elements(CASE WHEN jsonb_typeof(j.meta->'deps') = 'array' THEN j.meta->'deps' ELSE '[]' END) AS dep
JOIN oban_jobs AS d
  ON d.meta->>'workflow_id' = CASE jsonb_typeof(dep) WHEN 'string' THEN j.meta->>'workflow_id' ELSE dep->>0 END
 AND CASE jsonb_typeof(dep) WHEN 'string' THEN dep#>>'{}' ELSE dep->>1 END IN ('*', d.meta->>'name')
JOIN steps AS sj ON sj.job_id = j.id
LEFT JOIN steps AS sd ON sd.job_id = d.id
WHERE coalesce(sd.completed, 0) >= sj.fetched;
SQL
)
received=$(echo "$drained" | sed -n 1p)
ran=$(echo "$drained" | sed -n 2p)
order=$(echo "$drained" | sed -n 3p)
echo "signals received by their jobs: $received"
[ "$received" = "fresh,s1,s2,s3,s4" ] || fail "expected fresh,s1,s2,s3,s4 to be received, got '$received'"

unfinished=$(value "$DST" "SELECT count(*) FROM oban_jobs WHERE state <> 'completed'")
states=$(value "$DST" "SELECT string_agg(id || '=' || state, ' ' ORDER BY id) FROM oban_workflows")
mailbox=$(value "$DST" "SELECT count(*) FROM oban_signals")
counts=$(check_counts "$DST")
echo "after the drain: workflows $states"
echo "  jobs run by the drain: $ran, unfinished jobs: $unfinished, signals left: $mailbox,"
echo "  steps run before a dep completed: $order, counts vs recount (workflows, mismatches): $counts"
[ "$unfinished" = "0" ] || fail "jobs left unfinished"
[ "$mailbox" = "0" ] || fail "signals left in the mailbox"
[ "$order" = "0" ] || fail "a step ran before its dep completed"
[ "${counts#* }" = "0" ] || fail "counts drift after the drain"
[ -z "$(value "$DST" "SELECT id FROM oban_workflows WHERE state <> 'completed'")" ] || fail "a workflow did not complete"
# Once the unique workflow finished, its name is free again.
free=$(value "$DST" "SELECT bool_and(NOT conflicted) FROM oban_insert_workflow('{\"name\": \"dr-nightly\", \"unique\": true,
    \"jobs\": [{\"name\": \"n1\", \"worker\": \"Dr.N\", \"queue\": \"dr\"}]}')")
[ "$free" = "t" ] || fail "the unique name stayed taken after its workflow completed"

# A COPY of new jobs (no id column) is no restore: the triggers do their usual work (a step whose
# dep is not done is suspended and waits).
copied=$(PGOPTIONS="-c search_path=oban" as_postgres psql -X -At -q -v ON_ERROR_STOP=1 -d "$DST" <<'SQL'
COPY oban_jobs (worker, queue, meta) FROM stdin;
Dr.Copy	dr_copy	{"workflow_id": "dr-copy", "name": "first"}
Dr.Copy	dr_copy	{"workflow_id": "dr-copy", "name": "second", "deps": ["first"]}
\.
SELECT string_agg(j.meta->>'name' || ':' || j.state || ':'
                  || (SELECT count(*) FROM oban_workflow_edges AS e WHERE e.job_id = j.id), ' ' ORDER BY j.id)
FROM oban_jobs AS j WHERE j.queue = 'dr_copy';
SQL
)
echo "a COPY of new workflow jobs: $copied"
[ "$copied" = "first:available:0 second:suspended:1" ] || fail "a COPY without ids skipped the triggers"

psql_q -c "DROP DATABASE $SRC" -c "DROP DATABASE $DST"
echo "dump/restore mid-workflow: ok"
