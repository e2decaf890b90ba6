-- The extension's features on an adopted table (either layout), starting from the jobs that
-- jobs_*.sql left before adoption. Every check is t_ok(condition, what): it raises when the
-- condition is not true, so psql (ON_ERROR_STOP) stops at the first failure and names it.
-- Errors are read through to_jsonb(errors), which is the same JSON array for jsonb and jsonb[].
-- Usage: psql -v prefix=NAME -f scenario.sql (on a database where oban_pro adopted NAME.oban_jobs)
\set ON_ERROR_STOP 1
SET search_path = :"prefix";
SET client_min_messages = warning;

CREATE FUNCTION pg_temp.t_ok(ok boolean, what text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF ok IS NOT TRUE THEN
        RAISE EXCEPTION 'check failed: %', what;
    END IF;
    RAISE WARNING 'ok: %', what;
END;
$$;
CREATE FUNCTION pg_temp.job(k text) RETURNS bigint LANGUAGE sql AS $$
    SELECT id FROM oban_jobs WHERE args->>'k' = k
$$;
CREATE FUNCTION pg_temp.last_error(job_id bigint) RETURNS text LANGUAGE sql AS $$
    SELECT to_jsonb(errors)->-1->>'error' FROM oban_jobs WHERE id = job_id
$$;
CREATE FUNCTION pg_temp.error_count(job_id bigint) RETURNS integer LANGUAGE sql AS $$
    SELECT jsonb_array_length(to_jsonb(errors)) FROM oban_jobs WHERE id = job_id
$$;
CREATE FUNCTION pg_temp.state(job_id bigint) RETURNS text LANGUAGE sql AS $$
    SELECT state::text FROM oban_jobs WHERE id = job_id
$$;

-------------------------------------------------------------------------------------------------------
-- Jobs inserted before adoption, through the job lifecycle functions.
-------------------------------------------------------------------------------------------------------
SELECT pg_temp.t_ok(array_agg(args->>'k' ORDER BY args->>'k') = '{a2,a4}', 'fetch claims the old jobs by priority, scheduled_at, id')
FROM oban_fetch_jobs('old', 2);
SELECT pg_temp.t_ok(array_agg(args->>'k' ORDER BY args->>'k') = '{a1,a3,a5}'
                    AND bool_and(state = 'executing' AND attempt = 1 AND attempted_by = '{sql}'),
                    'fetch claims the rest: executing, attempt 1, attempted_by {sql}')
FROM oban_fetch_jobs('old', 10);
SELECT pg_temp.t_ok(oban_complete_job(pg_temp.job('a2'), '{"ok": 1}'), 'complete an old job');
SELECT pg_temp.t_ok(meta @> '{"recorded": true, "return": {"ok": 1}}' AND completed_at IS NOT NULL,
                    'the recorded result is kept in meta')
FROM oban_jobs WHERE id = pg_temp.job('a2');
SELECT pg_temp.t_ok(oban_error_job(pg_temp.job('a4'), 'boom') = 'retryable', 'error an old job: retryable');
SELECT pg_temp.t_ok(pg_temp.error_count(pg_temp.job('a4')) = 1 AND pg_temp.last_error(pg_temp.job('a4')) = 'boom',
                    'the error is appended to errors');
SELECT pg_temp.t_ok(oban_cancel_job(pg_temp.job('a3'), 'nope') AND pg_temp.last_error(pg_temp.job('a3')) = 'nope',
                    'cancel with a reason');
SELECT pg_temp.t_ok(oban_discard_job(pg_temp.job('a1'), 'bad') AND pg_temp.state(pg_temp.job('a1')) = 'discarded',
                    'discard with a reason');
SELECT pg_temp.t_ok(oban_snooze_job(pg_temp.job('a5'), '1 hour'), 'snooze an old job');
SELECT pg_temp.t_ok(state = 'scheduled' AND attempt = 0 AND meta->>'snoozed' = '1', 'snoozed: scheduled, attempt given back')
FROM oban_jobs WHERE id = pg_temp.job('a5');

SELECT pg_temp.t_ok(oban_stage_jobs() = 2, 'staging makes the due old scheduled and retryable jobs available');
SELECT pg_temp.t_ok(pg_temp.state(pg_temp.job('s_future')) = 'scheduled', 'a future job stays scheduled');
SELECT pg_temp.t_ok(array_agg(args->>'k' ORDER BY args->>'k') = '{r_due,s_due}', 'fetch the staged jobs')
FROM oban_fetch_jobs('old', 10);
SELECT pg_temp.t_ok(oban_ack_jobs(jsonb_build_array(
           jsonb_build_object('id', pg_temp.job('s_due'), 'state', 'completed'),
           jsonb_build_object('id', pg_temp.job('r_due'), 'state', 'retryable', 'error', 'again'))) = 2,
       'ack both in one call');
SELECT pg_temp.t_ok(pg_temp.error_count(pg_temp.job('r_due')) = 2
                    AND to_jsonb(errors)->0->>'error' = 'old failure' AND to_jsonb(errors)->1->>'error' = 'again',
                    'the old error stays first, the new one is appended')
FROM oban_jobs WHERE id = pg_temp.job('r_due');

SELECT pg_temp.t_ok(oban_rescue_jobs('1 hour') = 1, 'rescue the job an old node left executing');
SELECT pg_temp.t_ok(state = 'available' AND meta->>'rescued' = '1', 'rescued: available, meta rescued 1')
FROM oban_jobs WHERE id = pg_temp.job('x_stuck');
SELECT pg_temp.t_ok(oban_retry_job(pg_temp.job('d_old')) AND pg_temp.state(pg_temp.job('d_old')) = 'available',
                    'retry an old discarded job');
SELECT pg_temp.t_ok(oban_prune_jobs('1 day') = 2, 'prune the old completed and cancelled jobs');
SELECT pg_temp.t_ok(pg_temp.job('c_old') IS NULL AND pg_temp.job('x_cancel') IS NULL AND pg_temp.job('a3') IS NOT NULL,
                    'only the old ones are gone');
SELECT pg_temp.t_ok(count(*) = 2000, 'fetch claims all the old bulk jobs') FROM oban_fetch_jobs('bulk', 5000);

-- A new job through the function: the row has the table's own layout.
SELECT pg_temp.t_ok(j.state = 'available' AND j.queue = 'new' AND j.tags::text[] = '{x}', 'insert a new job')
FROM oban_insert_job('New.Worker', '{"k": "new"}', 'new', tags => '{x}') AS j;

-------------------------------------------------------------------------------------------------------
-- A workflow with a sub-workflow, run to completion; status aggregated from oban_workflows.
-------------------------------------------------------------------------------------------------------
SELECT pg_temp.t_ok(count(*) = 4 AND count(*) FILTER (WHERE state = 'available') = 1, 'insert a workflow with a sub-workflow')
FROM oban_insert_workflow('{"workflow_id": "wf-adopt", "name": "adopt-flow", "jobs": [
    {"name": "a", "worker": "W", "queue": "wf"},
    {"name": "sub", "deps": ["a"], "workflow": {"name": "sub", "jobs": [
        {"name": "s1", "worker": "W", "queue": "wf"},
        {"name": "s2", "worker": "W", "queue": "wf", "deps": ["s1"]}]}},
    {"name": "c", "worker": "W", "queue": "wf", "deps": ["a", "sub"]}]}');
SELECT pg_temp.t_ok(oban_workflow_status('wf-adopt')->>'state' = 'pending', 'status: pending before the start');
SELECT count(oban_complete_job(id)) AS round_a FROM oban_fetch_jobs('wf', 10) \gset
SELECT oban_flush_workflows() >= 0 AS flushed \gset
SELECT count(oban_complete_job(id)) AS round_s1 FROM oban_fetch_jobs('wf', 10) \gset
SELECT pg_temp.t_ok(oban_workflow_status('wf-adopt')->>'state' = 'executing', 'status: executing midway');
SELECT oban_flush_workflows() >= 0 AS flushed \gset
SELECT count(oban_complete_job(id)) AS round_s2 FROM oban_fetch_jobs('wf', 10) \gset
SELECT oban_flush_workflows() >= 0 AS flushed \gset
SELECT count(oban_complete_job(id)) AS round_c FROM oban_fetch_jobs('wf', 10) \gset
SELECT oban_flush_workflows() >= 0 AS flushed \gset
SELECT pg_temp.t_ok(:round_a = 1 AND :round_s1 = 1 AND :round_s2 = 1 AND :round_c = 1,
                    'the steps run one at a time in dependency order: a, s1, s2, c');
SELECT pg_temp.t_ok(s->>'state' = 'completed' AND (s->>'total')::int = 4 AND s->'counts'->>'completed' = '4'
                    AND s->'subs'->'sub'->>'state' = 'completed' AND (s->'subs'->'sub'->>'total')::int = 2
                    AND (s->>'duration')::float8 >= 0,
                    'status: completed, total 4, the sub-workflow completed with 2')
FROM oban_workflow_status('wf-adopt') AS s;
SELECT pg_temp.t_ok(count(*) = 2 AND bool_and(state = 'completed'), 'oban_workflows shows the workflow and its sub')
FROM oban_workflows WHERE id = 'wf-adopt' OR parent_id = 'wf-adopt';

-- A dep that fails cancels its dependents, with an error naming it, in the table's errors layout:
-- on release (SQL) and on insert behind the failed dep (the BEFORE INSERT trigger, in C++).
SELECT count(*) FROM oban_insert_workflow('{"workflow_id": "wf-fail", "jobs": [
    {"name": "x", "worker": "W", "queue": "wf2"},
    {"name": "y", "worker": "W", "queue": "wf2", "deps": ["x"]}]}') \gset
SELECT count(oban_cancel_job(id, 'stop')) FROM oban_fetch_jobs('wf2', 10) \gset
SELECT oban_flush_workflows() >= 0 AS flushed \gset
SELECT pg_temp.t_ok(state = 'cancelled' AND to_jsonb(errors)->-1->>'error' = 'upstream dep x was cancelled',
                    'a cancelled dep cancels its dependent, with an error naming it')
FROM oban_jobs WHERE meta->>'workflow_id' = 'wf-fail' AND meta->>'name' = 'y';
SELECT pg_temp.t_ok(state = 'cancelled', 'appended behind the cancelled dep: inserted cancelled')
FROM oban_append_workflow('wf-fail', '[{"name": "z", "worker": "W", "queue": "wf2", "deps": ["x"]}]');
SELECT pg_temp.t_ok(pg_temp.error_count(id) = 1 AND pg_temp.last_error(id) = 'upstream dep x was cancelled',
                    'the insert trigger appends its error in the table''s layout')
FROM oban_jobs WHERE meta->>'workflow_id' = 'wf-fail' AND meta->>'name' = 'z';

-------------------------------------------------------------------------------------------------------
-- Unique workflows: a conflict, then the name is free once the holder finished.
-------------------------------------------------------------------------------------------------------
SELECT pg_temp.t_ok(bool_and(NOT conflicted AND id IS NOT NULL), 'a unique workflow takes its name')
FROM oban_insert_workflow('{"name": "nightly", "unique": true, "jobs": [{"name": "only", "worker": "W", "queue": "uq"}]}');
SELECT pg_temp.t_ok(bool_and(conflicted AND id IS NULL), 'the same name again conflicts')
FROM oban_insert_workflow('{"name": "nightly", "unique": true, "jobs": [{"name": "only", "worker": "W", "queue": "uq"}]}');
INSERT INTO oban_jobs (worker, queue, meta)
VALUES ('W', 'uq', '{"workflow_id": "wf-plain", "name": "only", "workflow_name": "nightly", "workflow_unique": true}');
SELECT pg_temp.t_ok(count(*) = 1, 'a conflicting plain INSERT stores no row') FROM oban_jobs WHERE queue = 'uq';
SELECT count(oban_complete_job(id)) FROM oban_fetch_jobs('uq', 10) \gset
SELECT oban_flush_workflows() >= 0 AS flushed \gset
SELECT pg_temp.t_ok(bool_and(NOT conflicted), 'the name is free once the holder finished')
FROM oban_insert_workflow('{"name": "nightly", "unique": true, "jobs": [{"name": "only", "worker": "W", "queue": "uq"}]}');

-------------------------------------------------------------------------------------------------------
-- Durable signals: a round trip on a new job, and one on a job inserted before adoption.
-------------------------------------------------------------------------------------------------------
SELECT (oban_insert_job('Approval', '{"k": "approval"}', 'sig')).id AS approval \gset
SELECT count(*) FROM oban_fetch_jobs('sig', 1) \gset
SELECT pg_temp.t_ok(status = 'suspended', 'await with no signal parks the job') FROM oban_await_signal(:approval, '1 hour', '0');
SELECT pg_temp.t_ok(state = 'suspended' AND attempt = 0 AND meta ? 'wait_until', 'parked: suspended, attempt given back')
FROM oban_jobs WHERE id = :approval;
SELECT pg_temp.t_ok(oban_signal(:approval::bigint, '{"approved": true}'), 'signal the parked job');
SELECT pg_temp.t_ok(pg_temp.state(:approval) = 'available', 'the signal makes it available');
SELECT pg_temp.t_ok(count(*) = 1, 'fetch it again') FROM oban_fetch_jobs('sig', 1);
SELECT pg_temp.t_ok(status = 'received' AND payload = '{"approved": true}', 'the rerun receives the payload at once')
FROM oban_await_signal(:approval, '1 hour', '0');
SELECT pg_temp.t_ok(oban_complete_job(:approval), 'complete the approval');

SELECT pg_temp.t_ok(oban_signal(pg_temp.job('x_stuck'), '{"from": "before"}'), 'signal an old job before it awaits');
UPDATE oban_jobs SET queue = 'sig2' WHERE id = pg_temp.job('x_stuck');
SELECT count(*) FROM oban_fetch_jobs('sig2', 1) \gset
SELECT pg_temp.t_ok(status = 'received' AND payload = '{"from": "before"}', 'the old job receives the stored signal')
FROM oban_await_signal(pg_temp.job('x_stuck'), NULL, '0');
SELECT pg_temp.t_ok(count(*) = 0, 'the mailbox is empty') FROM oban_signals;
