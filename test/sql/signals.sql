-- Durable signals (SPEC §6): the mailbox, delivery before and after an await, FIFO, exactly once,
-- timeouts, parking, arrays, workflow steps, no-op targets.
SET client_min_messages = warning;
TRUNCATE oban_jobs RESTART IDENTITY;
ALTER SEQUENCE oban_signals_id_seq RESTART;
CREATE FUNCTION job(bigint) RETURNS TABLE (state text, attempt smallint, wait_until text) LANGUAGE sql
    AS $$ SELECT state::text, attempt, meta->>'wait_until' FROM oban_jobs WHERE id = $1 $$;

-- 1. A signal delivered before the job awaits is kept, and consumed by the next call.
SELECT id FROM oban_insert_job('Approval');                          -- job 1
SELECT oban_signal(1, '{"decision": "approved"}') AS stored_while_available;
SELECT job_id, payload FROM oban_signals;
SELECT id, state FROM oban_fetch_jobs('default', 1);
SELECT * FROM oban_await_signal(1);
SELECT count(*) AS mailbox_after FROM oban_signals;

-- 2. FIFO, each signal consumed exactly once.
SELECT oban_signal(1, '{"n": 1}'), oban_signal(1, '{"n": 2}'), oban_signal(1, '{"n": 3}');
SELECT * FROM oban_await_signal(1);
SELECT * FROM oban_await_signal(1);
SELECT * FROM oban_await_signal(1);
SELECT count(*) AS mailbox_after FROM oban_signals;

-- 3. A rolled-back signal is not delivered; one in a rolled-back savepoint neither.
BEGIN;
SELECT oban_signal(1, '{"rolled": "back"}');
ROLLBACK;
BEGIN;
SAVEPOINT s;
SELECT oban_signal(1, '{"savepoint": "rolled back"}');
ROLLBACK TO SAVEPOINT s;
SELECT oban_signal(1, '{"savepoint": "kept"}');
COMMIT;
SELECT payload FROM oban_signals ORDER BY id;
SELECT * FROM oban_await_signal(1);

-- 4. No signal: block for wait_timeout, then park: executing → suspended, attempt given back,
-- meta wait_until = the deadline.
SELECT * FROM oban_await_signal(1, wait_for => '1 hour', wait_timeout => '50 milliseconds');
SELECT state, attempt, wait_until::timestamp - timezone('UTC', now()) BETWEEN '59 minutes' AND '61 minutes'
       AS deadline_in_an_hour
FROM job(1);
-- Staging leaves it before its deadline; rescue never touches it.
SELECT oban_stage_jobs() AS staged, oban_rescue_jobs('0 seconds') AS rescued;
SELECT state FROM job(1);
-- A signal makes the parked job available; when it runs again the payload comes at once, and the
-- wait's deadline goes with it.
SELECT oban_signal(1, '{"late": true}') AS took_it;
SELECT state, attempt FROM job(1);
SELECT id, state, attempt FROM oban_fetch_jobs('default', 1);
SELECT * FROM oban_await_signal(1, wait_for => '1 hour', wait_timeout => '0');
SELECT state, attempt, wait_until FROM job(1);

-- 5. The deadline is set by the first park and kept by later ones.
SELECT status FROM oban_await_signal(1, wait_for => '1 hour', wait_timeout => '0');
SELECT wait_until AS first_deadline FROM job(1) \gset
UPDATE oban_jobs SET state = 'available' WHERE id = 1;               -- made available by hand
SELECT id, state FROM oban_fetch_jobs('default', 1);
SELECT status FROM oban_await_signal(1, wait_for => '5 hours', wait_timeout => '0');
SELECT wait_until = :'first_deadline' AS deadline_kept FROM job(1);

-- 6. Timeout: staging makes a parked job available once its deadline passed, and the next await
-- returns 'timeout' (clearing the deadline for the job's next wait).
UPDATE oban_jobs SET meta = jsonb_set(meta, '{wait_until}', to_jsonb(timezone('UTC', now()) - interval '1 second'))
WHERE id = 1;
SELECT oban_stage_jobs() AS staged;
SELECT state FROM job(1);
SELECT id, state FROM oban_fetch_jobs('default', 1);
SELECT * FROM oban_await_signal(1, wait_for => '1 hour');
SELECT state, wait_until FROM job(1);
-- A deadline already passed ends a block early: wait_for 0 parks with a deadline of now, which
-- staging releases at once, and the await then times out.
SELECT status FROM oban_await_signal(1, wait_for => '0', wait_timeout => '0');
SELECT oban_stage_jobs() AS staged;
SELECT id, state FROM oban_fetch_jobs('default', 1);
SELECT * FROM oban_await_signal(1, wait_for => '0', wait_timeout => '10 seconds');
-- With no time to block either (wait_timeout 0, decided under the job's lock) it times out
-- rather than parking again.
SELECT status FROM oban_await_signal(1, wait_for => '0', wait_timeout => '0');
SELECT oban_stage_jobs() AS staged;
SELECT id, state FROM oban_fetch_jobs('default', 1);
SELECT * FROM oban_await_signal(1, wait_for => '0', wait_timeout => '0');
SELECT state, wait_until FROM job(1);

-- 7. No wait_for: the deadline is "infinity"; staging never releases it; a signal does.
SELECT status FROM oban_await_signal(1, wait_timeout => '0');
SELECT state, wait_until FROM job(1);
SELECT oban_stage_jobs() AS staged;
SELECT state FROM job(1);
SELECT oban_signal(1, '{"at": "last"}');
SELECT id, state FROM oban_fetch_jobs('default', 1);
SELECT * FROM oban_await_signal(1);
SELECT oban_complete_job(1);

-- 8. No-op targets: a missing or finished job takes nothing.
SELECT oban_signal(1, '{"too": "late"}') AS completed_job, oban_signal(999, '{}') AS missing_job;
SELECT count(*) AS mailbox FROM oban_signals;

-- 9. Arrays: each unfinished job takes the payload once; missing, finished and NULL ids do not.
SELECT (oban_insert_job('Many')).id FROM generate_series(1, 3);  -- jobs 2, 3, 4
SELECT oban_cancel_job(4);
SELECT oban_signal(ARRAY[2, 3, 3, 4, 999, NULL]::bigint[], '{"broadcast": 1}') AS took;
SELECT job_id, payload FROM oban_signals ORDER BY id;
SELECT oban_signal(ARRAY[]::bigint[], '{}') AS empty_array;
-- A parked job in the array becomes available.
SELECT id FROM oban_fetch_jobs('default', 1);
DELETE FROM oban_signals WHERE job_id = 2;
SELECT status FROM oban_await_signal(2, wait_timeout => '0');
SELECT oban_signal(ARRAY[2, 3], '{"broadcast": 2}') AS took;
SELECT id, state FROM oban_jobs WHERE id IN (2, 3) ORDER BY id;

-- 10. A job's signals go when it is deleted (or truncated).
SELECT count(*) AS signals_of_3 FROM oban_signals WHERE job_id = 3;
DELETE FROM oban_jobs WHERE id = 3;
SELECT count(*) AS signals_of_3 FROM oban_signals WHERE job_id = 3;
TRUNCATE oban_jobs;
SELECT count(*) AS mailbox_after_truncate FROM oban_signals;

-- 11. Workflows: signals target steps by name, including steps still waiting on their deps, which
-- keep the signal and stay suspended until their deps complete.
SELECT name, state FROM oban_insert_workflow('{"workflow_id": "wf", "jobs": [
    {"name": "review", "worker": "Review"},
    {"name": "approve", "worker": "Approve", "deps": ["review"]},
    {"name": "ship", "worker": "Ship", "deps": ["approve"]}]}') ORDER BY id;
SELECT oban_workflow_signal('wf', 'approve', '{"early": true}') AS took;
SELECT oban_workflow_signal('wf', 'nosuchstep', '{}') AS unknown_step,
       oban_workflow_signal('nosuchflow', 'approve', '{}') AS unknown_workflow;
SELECT meta->>'name' AS name, state FROM oban_jobs ORDER BY id;
-- review runs and parks awaiting a signal: it counts as suspended, the workflow is unfinished.
SELECT meta->>'name' AS name FROM oban_fetch_jobs('default', 1);
SELECT status FROM oban_await_signal((SELECT id FROM oban_jobs WHERE meta->>'name' = 'review'),
                                     wait_for => '1 hour', wait_timeout => '0');
SELECT oban_flush_workflows() >= 0 AS flushed;
SELECT oban_workflow_status('wf')->'counts' AS counts, oban_workflow_status('wf')->>'state' AS state;
-- Repair never releases or cancels a parked job, whatever its deps.
UPDATE oban_workflow_rows SET updated_at = updated_at - interval '1 hour';
SELECT oban_repair_workflows('0 seconds') AS repaired;
SELECT meta->>'name' AS name, state FROM oban_jobs ORDER BY id;
-- A signal to the parked step resumes it; approve is released when review completes and gets its
-- early signal at once.
SELECT oban_workflow_signal('wf', 'review', '{"reviewed": true}') AS took;
SELECT meta->>'name' AS name FROM oban_fetch_jobs('default', 1);
SELECT status, payload FROM oban_await_signal((SELECT id FROM oban_jobs WHERE meta->>'name' = 'review'));
SELECT oban_complete_job(id) FROM oban_jobs WHERE meta->>'name' = 'review';
SELECT oban_flush_workflows() >= 0 AS flushed;
SELECT meta->>'name' AS name FROM oban_fetch_jobs('default', 1);
SELECT status, payload FROM oban_await_signal((SELECT id FROM oban_jobs WHERE meta->>'name' = 'approve'));
-- approve parks; cancelling the workflow cancels the parked job (and ship).
SELECT status FROM oban_await_signal((SELECT id FROM oban_jobs WHERE meta->>'name' = 'approve'),
                                     wait_timeout => '0');
SELECT oban_cancel_workflow('wf') AS cancelled;
SELECT oban_flush_workflows() >= 0 AS flushed;
SELECT meta->>'name' AS name, state FROM oban_jobs ORDER BY id;
SELECT oban_workflow_status('wf')->>'state' AS state;
SELECT oban_workflow_signal('wf', 'approve', '{}') AS took_after_cancel;

-- 12. A retried job starts a fresh wait.
SELECT id AS retried FROM oban_insert_job('Retried') \gset
SELECT id FROM oban_fetch_jobs('default', 1);
SELECT status FROM oban_await_signal(:retried, wait_for => '1 hour', wait_timeout => '0');
SELECT oban_cancel_job(:retried), oban_retry_job(:retried);
SELECT state, wait_until FROM job(:retried);

-- 13. An await must see signals committed while it waits: not under REPEATABLE READ (25000).
BEGIN ISOLATION LEVEL REPEATABLE READ;
\set VERBOSITY sqlstate
SELECT * FROM oban_await_signal(:retried);
\set VERBOSITY default
ROLLBACK;
BEGIN ISOLATION LEVEL SERIALIZABLE;
SELECT * FROM oban_await_signal(:retried);
ROLLBACK;
-- Inside a READ COMMITTED transaction block it works; rolling back undoes the park.
SELECT id FROM oban_fetch_jobs('default', 1);
BEGIN;
SELECT status FROM oban_await_signal(:retried, wait_timeout => '0');
SELECT state FROM job(:retried);
ROLLBACK;
SELECT state FROM job(:retried);

-- 14. The calls see what the transaction did so far, as a statement of their own would: here the
-- job made executing, signalled and awaited by one statement (an UPDATE in a CTE, then the calls).
SELECT id AS same_statement FROM oban_insert_job('Same', queue => 'same') \gset
WITH fetched AS (
    UPDATE oban_jobs SET state = 'executing', attempt = 1, attempted_at = timezone('UTC', now())
    WHERE id = :same_statement RETURNING id
)
SELECT oban_signal(f.id, '{"same": 1}') AS took, a.status, a.payload
FROM fetched AS f, oban_await_signal(f.id, NULL, '0') AS a;
SELECT state, (SELECT count(*) FROM oban_signals WHERE job_id = :same_statement) AS left_in_mailbox
FROM job(:same_statement);

DROP FUNCTION job(bigint);
TRUNCATE oban_jobs RESTART IDENTITY;
