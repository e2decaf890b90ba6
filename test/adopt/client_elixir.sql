-- After adoption, Elixir Oban's own statements (the shapes its Basic engine sends, written for this
-- test) still work on its table, and the extension's triggers give them workflow behaviour.
-- Usage: psql -v prefix=NAME -f client_elixir.sql
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

SELECT pg_temp.t_ok(obj_description('oban_jobs'::regclass, 'pg_class') = '13', 'Oban''s migration version comment is kept');

-- insert (Ecto sends every field, errors as an empty jsonb[])
INSERT INTO oban_jobs (state, queue, worker, args, errors, meta, tags, max_attempts, priority, scheduled_at, inserted_at)
VALUES ('available', 'ex', 'MyApp.Ex', '{"e": 1}', ARRAY[]::jsonb[], '{}', ARRAY['ex'], 20, 0,
        timezone('UTC', now()), timezone('UTC', now()))
RETURNING id AS ex_job \gset

-- fetch
WITH subset AS (
    SELECT id FROM oban_jobs
    WHERE state = 'available' AND queue = 'ex'
    ORDER BY priority, scheduled_at, id
    LIMIT 5
    FOR UPDATE SKIP LOCKED
)
UPDATE oban_jobs AS j
SET state = 'executing', attempted_at = timezone('UTC', now()),
    attempted_by = ARRAY['ex-node', '11111111-1111-4111-8111-111111111111'], attempt = j.attempt + 1
FROM subset
WHERE j.id = subset.id AND j.attempt < j.max_attempts
RETURNING j.id AS fetched \gset
SELECT pg_temp.t_ok(:fetched = :ex_job, 'Elixir fetch claims the job');

-- error: the engine pushes the error map onto the jsonb[] column
UPDATE oban_jobs
SET state = 'retryable', scheduled_at = timezone('UTC', now()) - interval '1 second',
    errors = array_append(errors, jsonb_build_object('attempt', attempt, 'at', timezone('UTC', now()), 'error', 'ex boom'))
WHERE id = :ex_job;
SELECT pg_temp.t_ok(array_length(errors, 1) = 1 AND errors[1]->>'error' = 'ex boom', 'Elixir error appends with array_append')
FROM oban_jobs WHERE id = :ex_job;

-- stage
UPDATE oban_jobs SET state = 'available'
WHERE id IN (SELECT id FROM oban_jobs
             WHERE state IN ('scheduled', 'retryable') AND queue = 'ex' AND scheduled_at <= timezone('UTC', now())
             LIMIT 5000);
SELECT pg_temp.t_ok(state = 'available', 'Elixir staging') FROM oban_jobs WHERE id = :ex_job;

-- the extension errors this one: the element it appends is an error map, as Elixir reads them
SELECT count(*) FROM oban_fetch_jobs('ex', 1) \gset
SELECT pg_temp.t_ok(oban_error_job(:ex_job, 'ext boom') = 'retryable', 'the extension errors it');
SELECT pg_temp.t_ok(array_length(errors, 1) = 2 AND jsonb_typeof(errors[2]) = 'object'
                    AND errors[2]->>'error' = 'ext boom' AND errors[2]->>'attempt' = '2',
                    'the extension appended one error map to the jsonb[]')
FROM oban_jobs WHERE id = :ex_job;
SELECT pg_temp.t_ok(bool_and(jsonb_typeof(e) = 'object'), 'every error the extension wrote in the scenario is a map')
FROM oban_jobs, unnest(errors) AS e;

-- complete, snooze, cancel, prune the Elixir way
UPDATE oban_jobs SET state = 'executing', attempt = attempt + 1 WHERE id = :ex_job;
UPDATE oban_jobs SET state = 'completed', completed_at = timezone('UTC', now()) WHERE id = :ex_job;
SELECT pg_temp.t_ok(state = 'completed', 'Elixir complete') FROM oban_jobs WHERE id = :ex_job;
DELETE FROM oban_jobs
WHERE id IN (SELECT id FROM oban_jobs
             WHERE state IN ('completed', 'cancelled', 'discarded') AND queue = 'ex' LIMIT 10000);
SELECT pg_temp.t_ok(NOT EXISTS (SELECT FROM oban_jobs WHERE id = :ex_job), 'Elixir prune');

-- a workflow written as plain rows (the triggers hold the dependent)
INSERT INTO oban_jobs (state, queue, worker, args, errors, meta, tags)
VALUES ('available', 'exwf', 'MyApp.Step', '{}', ARRAY[]::jsonb[], '{"workflow_id": "ex-wf", "name": "first", "deps": []}', '{}'),
       ('available', 'exwf', 'MyApp.Step', '{}', ARRAY[]::jsonb[], '{"workflow_id": "ex-wf", "name": "second", "deps": ["first"]}', '{}');
SELECT pg_temp.t_ok(array_agg(state::text ORDER BY id) = '{available,suspended}', 'the dependent row waits suspended')
FROM oban_jobs WHERE meta->>'workflow_id' = 'ex-wf';
UPDATE oban_jobs SET state = 'completed', completed_at = timezone('UTC', now())
WHERE meta->>'workflow_id' = 'ex-wf' AND meta->>'name' = 'first';
SELECT oban_flush_workflows() >= 0 AS flushed \gset
SELECT pg_temp.t_ok(state = 'available', 'completing the first row the Elixir way releases the second')
FROM oban_jobs WHERE meta->>'workflow_id' = 'ex-wf' AND meta->>'name' = 'second';

-- Jobs from before adoption, the Elixir way: one brought forward (as a retry does), both fetched
-- and completed with the engine's statements.
UPDATE oban_jobs SET state = 'available', scheduled_at = timezone('UTC', now()) WHERE args->>'k' = 's_future';
WITH subset AS (
    SELECT id FROM oban_jobs
    WHERE state = 'available' AND queue = 'old'
    ORDER BY priority, scheduled_at, id
    LIMIT 5
    FOR UPDATE SKIP LOCKED
), claimed AS (
    UPDATE oban_jobs AS j
    SET state = 'executing', attempted_at = timezone('UTC', now()),
        attempted_by = ARRAY['ex-node', '11111111-1111-4111-8111-111111111111'], attempt = j.attempt + 1
    FROM subset
    WHERE j.id = subset.id AND j.attempt < j.max_attempts
    RETURNING j.args->>'k' AS k
)
SELECT pg_temp.t_ok(array_agg(k ORDER BY k) = '{d_old,s_future}', 'Elixir fetch claims the jobs from before adoption')
FROM claimed;
UPDATE oban_jobs SET state = 'completed', completed_at = timezone('UTC', now())
WHERE queue = 'old' AND state = 'executing' AND attempted_by[1] = 'ex-node';
SELECT pg_temp.t_ok(array_agg(state::text) = '{completed,completed}', 'Elixir completes them')
FROM oban_jobs WHERE args->>'k' IN ('d_old', 's_future');
