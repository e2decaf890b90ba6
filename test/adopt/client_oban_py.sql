-- After adoption, oban-py's own statements (the shapes of its queries, written for this test) still
-- work on its tables, and its own helper function is kept. Usage: psql -v prefix=NAME -f ...
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

-- verify_structure
SELECT pg_temp.t_ok(count(*) = 3, 'oban-py finds its three tables')
FROM information_schema.tables
WHERE table_schema = current_schema() AND table_name = ANY('{oban_jobs,oban_leaders,oban_producers}');
SELECT pg_temp.t_ok(NOT EXISTS (SELECT FROM pg_depend d
                                WHERE d.objid = 'oban_count_estimate(text, text)'::regprocedure
                                  AND d.deptype = 'e'), 'oban-py''s own oban_count_estimate is kept, not replaced')
WHERE oban_count_estimate('available', 'bulk') >= 0;

-- insert_job
WITH inserted AS (
    INSERT INTO oban_jobs (args, inserted_at, max_attempts, meta, priority, queue, scheduled_at, state, tags, worker)
    VALUES ('{"p": 1}', timezone('UTC', now()), 20, '{}', 0, 'py', timezone('UTC', now()), 'available', '{}', 'app.Py')
    RETURNING id, state, queue
)
SELECT id AS py_job FROM inserted \gset

-- fetch_jobs
WITH locked AS (
    SELECT id FROM oban_jobs WHERE state = 'available' AND queue = 'py'
    ORDER BY priority, scheduled_at, id LIMIT 10 FOR UPDATE SKIP LOCKED
)
UPDATE oban_jobs oj
SET attempt = oj.attempt + 1, attempted_at = timezone('UTC', now()), attempted_by = ARRAY['py-node', gen_random_uuid()::text],
    state = 'executing'
FROM locked WHERE oj.id = locked.id
RETURNING oj.id AS fetched \gset
SELECT pg_temp.t_ok(:fetched = :py_job, 'oban-py fetch claims the job');

-- ack_job (error with attempts left)
UPDATE oban_jobs
SET state = 'retryable', scheduled_at = timezone('UTC', now()) - interval '1 second',
    errors = errors || jsonb_build_array(jsonb_build_object('attempt', attempt, 'at', timezone('UTC', now()), 'error', 'py boom'))
WHERE id = :py_job;
-- stage_jobs
UPDATE oban_jobs SET state = 'available'
WHERE id IN (SELECT id FROM oban_jobs WHERE state IN ('scheduled', 'retryable') AND queue = ANY('{py}')
             AND scheduled_at <= timezone('UTC', now()) ORDER BY scheduled_at, id LIMIT 20000 FOR UPDATE SKIP LOCKED);
SELECT count(*) FROM oban_fetch_jobs('py', 1) \gset
SELECT pg_temp.t_ok(oban_complete_job(:py_job), 'the extension completes the job oban-py staged');
SELECT pg_temp.t_ok(jsonb_array_length(errors) = 1 AND errors->0->>'error' = 'py boom', 'oban-py''s error is kept')
FROM oban_jobs WHERE id = :py_job;
-- prune_jobs
DELETE FROM oban_jobs WHERE id IN (SELECT id FROM oban_jobs WHERE state = 'completed' AND queue = 'py' LIMIT 100);
SELECT pg_temp.t_ok(NOT EXISTS (SELECT FROM oban_jobs WHERE id = :py_job), 'oban-py prune');

-- Jobs from before adoption, oban-py's way: one brought forward (as retry_many_jobs does), both
-- fetched with fetch_jobs and completed with ack_job.
UPDATE oban_jobs SET state = 'available', scheduled_at = timezone('UTC', now()) WHERE args->>'k' = 's_future';
WITH locked AS (
    SELECT id FROM oban_jobs WHERE state = 'available' AND queue = 'old'
    ORDER BY priority, scheduled_at, id LIMIT 10 FOR UPDATE SKIP LOCKED
), claimed AS (
    UPDATE oban_jobs oj
    SET attempt = oj.attempt + 1, attempted_at = timezone('UTC', now()),
        attempted_by = ARRAY['py-node', gen_random_uuid()::text], state = 'executing'
    FROM locked WHERE oj.id = locked.id
    RETURNING oj.args->>'k' AS k
)
SELECT pg_temp.t_ok(array_agg(k ORDER BY k) = '{d_old,s_future}', 'oban-py fetch claims the jobs from before adoption')
FROM claimed;
UPDATE oban_jobs SET state = 'completed', completed_at = timezone('UTC', now())
WHERE queue = 'old' AND state = 'executing' AND attempted_by[1] = 'py-node';
SELECT pg_temp.t_ok(array_agg(state::text) = '{completed,completed}', 'oban-py acks them completed')
FROM oban_jobs WHERE args->>'k' IN ('d_old', 's_future');
