-- oban-py compatibility: every query shape oban-py 0.6 sends (its oban/queries/*.sql, with its
-- prefix "public" applied, so tables, the enum and the insert channel are written public.*) runs
-- unchanged against the extension's tables and does what it does on oban-py's own schema.
--
-- The statements below are written for this test. Each keeps the shape of the oban-py query it is
-- named after; parameters become PREPARE parameters (psycopg binds them server-side the same way)
-- or literals. Where a query returns timestamps or rows in no fixed order, it is wrapped (a CTE or
-- a subquery) or ends with an ORDER BY, and timestamps are shown as comparisons with now().
-- Job ids are printed: oban-py's reset (TRUNCATE ... RESTART IDENTITY) runs first.
SET client_min_messages = warning;

-------------------------------------------------------------------------------------------------------
-- The layout oban-py installs (install.sql): same enum, columns, defaults, constraints, indexes,
-- storage options and metrics helper. The extension adds only the two notify triggers.
-------------------------------------------------------------------------------------------------------
SELECT string_agg(enumlabel, ', ' ORDER BY enumsortorder) AS oban_job_state
FROM pg_enum WHERE enumtypid = 'public.oban_job_state'::regtype;

SELECT c.relname AS "table", a.attname AS "column", format_type(a.atttypid, a.atttypmod) AS type,
       a.attnotnull AS not_null, a.attidentity AS ident, pg_get_expr(d.adbin, d.adrelid) AS "default"
FROM pg_class c
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE c.relnamespace = 'public'::regnamespace
  AND c.relname IN ('oban_jobs', 'oban_leaders', 'oban_producers')
ORDER BY c.relname, a.attnum;

SELECT relname AS "table", relpersistence, reloptions
FROM pg_class
WHERE relnamespace = 'public'::regnamespace
  AND relname IN ('oban_jobs', 'oban_leaders', 'oban_producers')
ORDER BY 1;

SELECT conrelid::regclass AS "table", conname, pg_get_constraintdef(oid) AS definition
FROM pg_constraint
WHERE conrelid IN ('public.oban_jobs'::regclass, 'public.oban_leaders'::regclass,
                   'public.oban_producers'::regclass)
ORDER BY conrelid::regclass::text, conname;

SELECT pg_get_indexdef(indexrelid) AS index
FROM pg_index
WHERE indrelid IN ('public.oban_jobs'::regclass, 'public.oban_leaders'::regclass,
                   'public.oban_producers'::regclass)
ORDER BY indexrelid::regclass::text;

SELECT oid::regprocedure AS function, prorettype::regtype AS returns
FROM pg_proc WHERE proname = 'oban_count_estimate';

SELECT tgname, pg_get_triggerdef(oid) AS definition
FROM pg_trigger WHERE tgrelid = 'public.oban_jobs'::regclass AND NOT tgisinternal ORDER BY 1;

-- verify_structure: oban-py checks that its three tables exist under the prefix.
SELECT table_name
FROM information_schema.tables
WHERE table_schema = 'public'
  AND table_name = ANY('{oban_jobs,oban_leaders,oban_producers}')
ORDER BY table_name;

-------------------------------------------------------------------------------------------------------
-- Setup: oban-py's reset, a listener on the insert channel, and a view of jobs without timestamps.
-------------------------------------------------------------------------------------------------------
-- reset: empties all three tables and restarts the job ids.
TRUNCATE TABLE public.oban_jobs, public.oban_leaders, public.oban_producers RESTART IDENTITY CASCADE;

-- psql shows a notification with the sending backend's pid, which changes from run to run. So a
-- second session (dblink) LISTENs on "public.oban_insert" the way oban-py's notifier does, and
-- insert_notifications() shows what it received since the last call, with whether it came from this
-- session.
CREATE EXTENSION IF NOT EXISTS dblink;
SELECT format('host=%s port=%s dbname=%s user=%s',
              split_part(current_setting('unix_socket_directories'), ',', 1),
              current_setting('port'), current_database(), current_user) AS connstr \gset
SELECT dblink_connect('listener', :'connstr');
SELECT dblink_exec('listener', 'LISTEN "public.oban_insert"');

CREATE FUNCTION pg_temp.insert_notifications()
RETURNS TABLE (channel text, payload text, from_this_session boolean)
LANGUAGE plpgsql AS $$
BEGIN
    -- A round trip makes the listener's backend deliver whatever is pending first.
    PERFORM * FROM dblink('listener', 'SELECT 1') AS t(one integer);
    RETURN QUERY
        SELECT n.notify_name, n.extra, n.be_pid = pg_backend_pid()
        FROM dblink_get_notify('listener') AS n
        ORDER BY 1, 2;
END $$;

CREATE TEMP VIEW job_summary AS
SELECT id, state, queue, attempt, max_attempts AS max, priority AS prio,
       CASE WHEN meta ? 'cancel_attempted_at'
            THEN jsonb_set(meta, '{cancel_attempted_at}', '"(set)"') ELSE meta END AS meta,
       jsonb_array_length(errors) AS errors, errors -> -1 ->> 'error' AS last_error,
       attempted_by,
       concat_ws(',', CASE WHEN attempted_at IS NOT NULL THEN 'attempted' END,
                      CASE WHEN completed_at IS NOT NULL THEN 'completed' END,
                      CASE WHEN cancelled_at IS NOT NULL THEN 'cancelled' END,
                      CASE WHEN discarded_at IS NOT NULL THEN 'discarded' END) AS stamped,
       CASE WHEN scheduled_at > timezone('UTC', now()) THEN 'future' ELSE 'due' END AS scheduled
FROM public.oban_jobs;

-------------------------------------------------------------------------------------------------------
-- insert_job: available unless a scheduled_at is given (then scheduled, even if it is past);
-- inserted_at and scheduled_at default to now in UTC; oban-py notifies the queue itself for
-- available jobs, and the trigger sends the same channel and payload, which Postgres merges.
-------------------------------------------------------------------------------------------------------
-- $1 args, $2 inserted_at, $3 max_attempts, $4 meta, $5 priority, $6 queue, $7 scheduled_at,
-- $8 state, $9 tags, $10 worker
PREPARE insert_job(jsonb, timestamp, integer, jsonb, integer, text, timestamp, text, text[], text) AS
WITH inserted AS (
    INSERT INTO public.oban_jobs (args, inserted_at, max_attempts, meta, priority, queue,
                                  scheduled_at, state, tags, worker)
    VALUES ($1, coalesce($2, timezone('UTC', now())), $3, $4, $5, $6,
            coalesce($7, timezone('UTC', now())),
            CASE WHEN $8 = 'available' AND $7 IS NOT NULL THEN 'scheduled'::public.oban_job_state
                 ELSE $8::public.oban_job_state
            END,
            $9, $10)
    RETURNING id, inserted_at, queue, scheduled_at, state
)
SELECT id, inserted_at = timezone('UTC', now()) AS inserted_now, queue,
       scheduled_at = timezone('UTC', now()) AS scheduled_now, state,
       CASE WHEN state = 'available'
            THEN pg_notify('public.oban_insert', '{"queue":"' || queue || '"}')
       END AS notify
FROM inserted;

-- Two jobs of one queue in one transaction: one notification.
BEGIN;
EXECUTE insert_job('{"email": "alice@example.com"}', NULL, 20, '{}', 0, 'mailers', NULL,
                   'available', '{welcome}', 'MyApp.Mailer');
EXECUTE insert_job('{"email": "bob@example.com"}', NULL, 20, '{}', 1, 'mailers', NULL,
                   'available', '{}', 'MyApp.Mailer');
COMMIT;
-- Scheduled for later, and scheduled at a past time: both scheduled, no notification.
EXECUTE insert_job('{"day": "2025-01-01"}', NULL, 20, '{}', 0, 'default', '2999-01-01 00:00:00',
                   'available', '{}', 'MyApp.Report');
EXECUTE insert_job('{"day": "2000-01-01"}', NULL, 20, '{}', 0, 'default', '2000-01-01 00:00:00',
                   'available', '{}', 'MyApp.Report');
BEGIN;
EXECUTE insert_job('{"n": 5}', NULL, 1, '{}', 0, 'default', NULL, 'available', '{}', 'MyApp.Sync');
EXECUTE insert_job('{"n": 6}', NULL, 3, '{}', 0, 'default', NULL, 'available', '{}', 'MyApp.Sync');
EXECUTE insert_job('{"n": 7}', NULL, 20, '{}', 0, 'default', NULL, 'available', '{}', 'MyApp.Sync');
EXECUTE insert_job('{"n": 8}', NULL, 20, '{}', 0, 'default', NULL, 'available', '{}', 'MyApp.Sync');
COMMIT;
-- Another state given by the client is kept; an explicit inserted_at is kept.
EXECUTE insert_job('{}', NULL, 20, '{}', 0, 'events', NULL, 'suspended', '{}', 'MyApp.Event');
EXECUTE insert_job('{}', '2024-06-01 12:00:00', 20, '{"source": "import"}', 0, 'events', NULL,
                   'available', '{a,b}', 'MyApp.Event');

SELECT * FROM pg_temp.insert_notifications();

SELECT id, state, queue, worker, attempt, max_attempts, priority, args, meta, tags, errors,
       attempted_by, inserted_at = timestamp '2024-06-01 12:00:00' AS inserted_at_given,
       CASE WHEN scheduled_at IN ('2000-01-01', '2999-01-01') THEN scheduled_at::text
            ELSE '(insert time)' END AS scheduled_at,
       attempted_at, cancelled_at, completed_at, discarded_at
FROM public.oban_jobs WHERE id IN (3, 4, 9, 10) ORDER BY id;

-------------------------------------------------------------------------------------------------------
-- fetch_jobs: up to demand available jobs of one queue by priority, scheduled_at, id, skipping
-- locked rows; each becomes executing with attempt + 1, attempted_at and attempted_by.
-------------------------------------------------------------------------------------------------------
-- $1 queue, $2 demand, $3 attempted_by {node, producer uuid}
PREPARE fetch_jobs(text, integer, text[]) AS
WITH fetched AS (
    WITH locked_jobs AS (
        SELECT priority, scheduled_at, id
        FROM public.oban_jobs
        WHERE state = 'available' AND queue = $1
        ORDER BY priority ASC, scheduled_at ASC, id ASC
        LIMIT $2
        FOR UPDATE SKIP LOCKED
    )
    UPDATE public.oban_jobs oj
    SET attempt = oj.attempt + 1,
        attempted_at = timezone('UTC', now()),
        attempted_by = $3,
        state = 'executing'
    FROM locked_jobs
    WHERE oj.id = locked_jobs.id
    RETURNING oj.id, oj.state, oj.queue, oj.worker, oj.attempt, oj.max_attempts, oj.priority,
              oj.args, oj.meta, oj.errors, oj.tags, oj.attempted_by, oj.inserted_at,
              oj.attempted_at, oj.cancelled_at, oj.completed_at, oj.discarded_at, oj.scheduled_at
)
SELECT id, state, queue, worker, attempt, max_attempts, priority, args, attempted_by,
       attempted_at = timezone('UTC', now()) AS attempted_now
FROM fetched
ORDER BY priority, scheduled_at, id;

EXECUTE fetch_jobs('mailers', 1, '{node-a,00000000-0000-4000-8000-00000000000a}');
EXECUTE fetch_jobs('mailers', 10, '{node-a,00000000-0000-4000-8000-00000000000a}');
EXECUTE fetch_jobs('mailers', 10, '{node-a,00000000-0000-4000-8000-00000000000a}');

-- Another session holds job 5's row lock: the fetch skips it; once released, it is fetched.
SELECT dblink_connect('locker', :'connstr');
SELECT dblink_exec('locker', 'BEGIN');
SELECT * FROM dblink('locker', 'SELECT id FROM public.oban_jobs WHERE id = 5 FOR UPDATE')
    AS locked(id bigint);
EXECUTE fetch_jobs('default', 10, '{node-a,00000000-0000-4000-8000-00000000000b}');
SELECT dblink_exec('locker', 'ROLLBACK');
EXECUTE fetch_jobs('default', 10, '{node-b,00000000-0000-4000-8000-00000000000c}');
-- Suspended jobs are not fetched.
EXECUTE fetch_jobs('events', 10, '{node-b,00000000-0000-4000-8000-00000000000d}');

-------------------------------------------------------------------------------------------------------
-- ack_job: oban-py acks a batch in one transaction, one statement per job: completed (optionally
-- with recorded meta), discarded or retryable with an error (retryable with schedule_in),
-- cancelled with a reason, snoozed (scheduled, schedule_in, attempt_change -1, meta).
-------------------------------------------------------------------------------------------------------
-- $1 id, $2 state, $3 schedule_in, $4 attempt_change, $5 error, $6 meta
PREPARE ack_job(bigint, text, integer, integer, jsonb, jsonb) AS
UPDATE public.oban_jobs
SET state = $2::public.oban_job_state,
    cancelled_at = CASE WHEN $2::public.oban_job_state = 'cancelled'
                        THEN timezone('UTC', now()) ELSE cancelled_at END,
    completed_at = CASE WHEN $2::public.oban_job_state = 'completed'
                        THEN timezone('UTC', now()) ELSE completed_at END,
    discarded_at = CASE WHEN $2::public.oban_job_state = 'discarded'
                        THEN timezone('UTC', now()) ELSE discarded_at END,
    scheduled_at = CASE WHEN $3::int IS NULL THEN scheduled_at
                        ELSE timezone('UTC', now()) + make_interval(secs => $3::int) END,
    attempt = COALESCE($4::int + attempt, attempt),
    errors = CASE WHEN $5::jsonb IS NULL THEN errors ELSE errors || $5::jsonb END,
    meta = CASE WHEN $6::jsonb IS NULL THEN meta ELSE meta || $6::jsonb END
WHERE id = $1
RETURNING id;

BEGIN;
EXECUTE ack_job(1, 'completed', NULL, NULL, NULL, NULL);
EXECUTE ack_job(2, 'completed', NULL, NULL, NULL, '{"recorded": true, "return": "g2gCZAACb2tq"}');
EXECUTE ack_job(5, 'discarded', NULL, NULL,
                '{"attempt": 1, "at": "2025-01-01T00:00:00+00:00", "error": "RuntimeError: boom"}', NULL);
EXECUTE ack_job(6, 'retryable', 600, NULL,
                '{"attempt": 1, "at": "2025-01-01T00:00:00+00:00", "error": "TimeoutError"}', NULL);
EXECUTE ack_job(7, 'cancelled', NULL, NULL,
                '{"attempt": 1, "at": "2025-01-01T00:00:00+00:00", "error": "no longer needed"}', NULL);
EXECUTE ack_job(8, 'scheduled', 900, -1, NULL, '{"snoozed": 1, "reason": "busy"}');
EXECUTE ack_job(10, 'retryable', 3600, NULL,
                '{"attempt": 1, "at": "2025-01-01T00:00:00+00:00", "error": "ValueError"}', NULL);
-- An id that does not exist acks nothing.
EXECUTE ack_job(999, 'completed', NULL, NULL, NULL, NULL);
-- Within the transaction now() is fixed: the finish timestamps are exactly now, and schedule_in
-- counts from now (the others keep their past scheduled_at).
SELECT id, state, completed_at = timezone('UTC', now()) AS completed_now,
       cancelled_at = timezone('UTC', now()) AS cancelled_now,
       discarded_at = timezone('UTC', now()) AS discarded_now,
       CASE WHEN scheduled_at > timezone('UTC', now())
            THEN scheduled_at - timezone('UTC', now()) END AS scheduled_in
FROM public.oban_jobs WHERE id IN (1, 2, 5, 6, 7, 8, 10) ORDER BY id;
COMMIT;

SELECT * FROM job_summary WHERE id <= 10 ORDER BY id;
SELECT errors FROM public.oban_jobs WHERE id = 6;

-------------------------------------------------------------------------------------------------------
-- get_job: one job by id, every column (timestamps shown as whether they are set).
-------------------------------------------------------------------------------------------------------
SELECT id, state, queue, worker, attempt, max_attempts, priority, args, meta, errors, tags,
       attempted_by, inserted_at IS NOT NULL AS inserted, attempted_at IS NOT NULL AS attempted,
       cancelled_at IS NOT NULL AS cancelled, completed_at IS NOT NULL AS completed,
       discarded_at IS NOT NULL AS discarded, scheduled_at > timezone('UTC', now()) AS future
FROM (
    SELECT id, state, queue, worker, attempt, max_attempts, priority, args, meta, errors, tags,
           attempted_by, inserted_at, attempted_at, cancelled_at, completed_at, discarded_at,
           scheduled_at
    FROM public.oban_jobs
    WHERE id = 2
) AS get_job;
SELECT count(*) AS missing
FROM (
    SELECT id, state, queue, worker, attempt, max_attempts, priority, args, meta, errors, tags,
           attempted_by, inserted_at, attempted_at, cancelled_at, completed_at, discarded_at,
           scheduled_at
    FROM public.oban_jobs
    WHERE id = 999
) AS get_job;

-------------------------------------------------------------------------------------------------------
-- stage_jobs: due scheduled and retryable jobs of the given queues become available, oldest
-- scheduled_at first, up to the limit; before defaults to now. It returns the given queues that
-- have available jobs -- as seen by the statement's snapshot, which does not include the rows its
-- own CTE just staged (PostgreSQL runs data-modifying CTEs on one snapshot). oban-py wakes those
-- queues; the trigger notifies the queues of staged jobs anyway.
-------------------------------------------------------------------------------------------------------
-- $1 limit, $2 queues, $3 before
PREPARE stage_jobs(integer, text[], timestamp) AS
WITH locked_jobs AS (
    SELECT id
    FROM public.oban_jobs
    WHERE state = ANY('{scheduled,retryable}')
      AND queue = ANY($2::text[])
      AND scheduled_at <= coalesce($3, timezone('UTC', now()))
    ORDER BY scheduled_at ASC, id ASC
    LIMIT $1
    FOR UPDATE SKIP LOCKED
),
updated_jobs AS (
    UPDATE public.oban_jobs
    SET state = 'available'::public.oban_job_state
    FROM locked_jobs
    WHERE public.oban_jobs.id = locked_jobs.id
)
SELECT DISTINCT q.queue
FROM unnest($2::text[]) AS q(queue)
WHERE EXISTS (SELECT 1 FROM public.oban_jobs WHERE state = 'available' AND queue = q.queue)
ORDER BY q.queue;

-- Stages job 4 (scheduled for 2000); no queue had an available job before, so none is returned.
EXECUTE stage_jobs(5000, '{default,mailers,events}', NULL);
SELECT id, state FROM public.oban_jobs WHERE id IN (3, 4, 6, 8, 9, 10) ORDER BY id;
-- Nothing more is due; job 4 is available now, so "default" is returned.
EXECUTE stage_jobs(5000, '{default,mailers,events}', NULL);
-- With before 20 minutes ahead, jobs 6 (in 10 min) and 8 (in 15 min) are due; the limit takes the
-- earlier one. Job 10 (in an hour) and job 3 (year 2999) stay.
EXECUTE stage_jobs(1, '{default,events}', (timezone('UTC', now()) + interval '20 minutes')::timestamp);
SELECT id, state FROM public.oban_jobs WHERE id IN (3, 4, 6, 8, 9, 10) ORDER BY id;
-- Staging only looks at the queues it is given.
EXECUTE stage_jobs(5000, '{mailers}', (timezone('UTC', now()) + interval '2 hours')::timestamp);
SELECT id, state FROM public.oban_jobs WHERE id IN (8, 10) ORDER BY id;

-- One notification per staging transaction that made a "default" job available.
SELECT * FROM pg_temp.insert_notifications();

-------------------------------------------------------------------------------------------------------
-- rescue_jobs: executing jobs attempted longer ago than rescue_after go back to available (meta
-- rescued + 1), or to discarded when out of attempts.
-------------------------------------------------------------------------------------------------------
BEGIN;
EXECUTE insert_job('{"r": 1}', NULL, 20, '{"rescued": 1}', 0, 'reports', NULL, 'available', '{}', 'MyApp.Export');
EXECUTE insert_job('{"r": 2}', NULL, 1, '{}', 0, 'reports', NULL, 'available', '{}', 'MyApp.Export');
EXECUTE insert_job('{"r": 3}', NULL, 20, '{}', 0, 'reports', NULL, 'available', '{}', 'MyApp.Export');
COMMIT;
EXECUTE fetch_jobs('reports', 10, '{node-c,00000000-0000-4000-8000-00000000000e}');
-- Jobs 11 and 12 were started two hours ago by a node that died.
UPDATE public.oban_jobs SET attempted_at = attempted_at - interval '2 hours' WHERE id IN (11, 12);

UPDATE public.oban_jobs
SET state = CASE WHEN attempt >= max_attempts THEN 'discarded'::public.oban_job_state
                 ELSE 'available'::public.oban_job_state END,
    discarded_at = CASE WHEN attempt >= max_attempts THEN timezone('UTC', now())
                        ELSE discarded_at END,
    meta = CASE WHEN attempt >= max_attempts THEN meta
                ELSE meta || jsonb_build_object('rescued', coalesce((meta->>'rescued')::int, 0) + 1) END
WHERE state = 'executing'
  AND attempted_at < timezone('UTC', now()) - make_interval(secs => 3600);
SELECT :ROW_COUNT AS rescued;
SELECT * FROM job_summary WHERE queue = 'reports' ORDER BY id;
-- The insert, then the rescue of job 11.
SELECT * FROM pg_temp.insert_notifications();

-------------------------------------------------------------------------------------------------------
-- update_job: oban-py's update_many_jobs rewrites the editable fields of each job in one
-- transaction; moving scheduled_at past or future flips available and scheduled, and leaves any
-- other state alone.
-------------------------------------------------------------------------------------------------------
-- $1 id, $2 args, $3 max_attempts, $4 meta, $5 priority, $6 queue, $7 scheduled_at, $8 tags, $9 worker
PREPARE update_job(bigint, jsonb, integer, jsonb, integer, text, timestamp, text[], text) AS
UPDATE public.oban_jobs
SET args = $2,
    max_attempts = $3,
    meta = $4,
    priority = $5,
    queue = $6,
    scheduled_at = $7,
    state = CASE WHEN state = 'available' AND $7 > timezone('UTC', now())
                 THEN 'scheduled'::public.oban_job_state
                 WHEN state = 'scheduled' AND $7 <= timezone('UTC', now())
                 THEN 'available'::public.oban_job_state
                 ELSE state
            END,
    tags = $8,
    worker = $9
WHERE id = $1
RETURNING args, max_attempts, meta, priority, queue, scheduled_at, state, tags, worker;

BEGIN;
EXECUTE update_job(3, '{"day": "2025-01-02"}', 5, '{"source": "update"}', 2, 'default',
                   '2000-01-01 00:00:00', '{nightly}', 'MyApp.Report');
EXECUTE update_job(4, '{"day": "2000-01-01"}', 20, '{}', 0, 'default',
                   '2999-01-01 00:00:00', '{}', 'MyApp.Report');
EXECUTE update_job(13, '{"r": 3}', 20, '{}', 0, 'reports', '2000-01-01 00:00:00', '{}', 'MyApp.Export');
COMMIT;
-- Job 3 became available.
SELECT * FROM pg_temp.insert_notifications();

-------------------------------------------------------------------------------------------------------
-- cancel_many_jobs: cancels the given jobs that are not finished; an executing job keeps its state
-- (oban-py then tells its producer to stop it) but is returned with its original state.
-------------------------------------------------------------------------------------------------------
SELECT state, array_agg(id ORDER BY id) AS ids FROM public.oban_jobs GROUP BY state ORDER BY state;

WITH locked_jobs AS (
    SELECT id, state
    FROM public.oban_jobs
    WHERE id = ANY('{1,3,4,8,9,10,13,999}'::bigint[])
      AND state IN ('executing', 'available', 'scheduled', 'retryable', 'suspended')
    FOR UPDATE
),
updated_jobs AS (
    UPDATE public.oban_jobs oj
    SET state = CASE WHEN oj.state = 'executing' THEN oj.state
                     ELSE 'cancelled'::public.oban_job_state END,
        cancelled_at = CASE WHEN oj.state = 'executing' THEN oj.cancelled_at
                            ELSE timezone('UTC', now()) END,
        meta = CASE WHEN oj.state = 'executing' THEN oj.meta
                    ELSE oj.meta || jsonb_build_object('cancel_attempted_at', timezone('UTC', now())) END
    FROM locked_jobs
    WHERE oj.id = locked_jobs.id
    RETURNING oj.id, locked_jobs.state AS original_state
)
SELECT id, original_state
FROM updated_jobs
ORDER BY id;

SELECT * FROM job_summary WHERE id IN (1, 3, 4, 8, 9, 10, 13) ORDER BY id;

-------------------------------------------------------------------------------------------------------
-- retry_many_jobs: any job that is neither available nor executing becomes available now, with
-- room for one more attempt and its finish timestamps cleared.
-------------------------------------------------------------------------------------------------------
UPDATE public.oban_jobs
SET state = 'available'::public.oban_job_state,
    max_attempts = GREATEST(max_attempts, attempt + 1),
    scheduled_at = timezone('UTC', now()),
    completed_at = NULL,
    cancelled_at = NULL,
    discarded_at = NULL,
    meta = jsonb_set(meta, '{uniq_bmp}', '[]'::jsonb)
WHERE id = ANY('{1,2,3,5,6,7,12,13}'::bigint[])
  AND state NOT IN ('available', 'executing');
SELECT :ROW_COUNT AS retried;
SELECT * FROM job_summary WHERE id IN (1, 2, 3, 5, 6, 7, 12, 13) ORDER BY id;
-- One notification per queue that got an available job.
SELECT * FROM pg_temp.insert_notifications();

-------------------------------------------------------------------------------------------------------
-- delete_many_jobs: deletes the given jobs unless executing.
-------------------------------------------------------------------------------------------------------
DELETE FROM public.oban_jobs
WHERE id = ANY('{2,11,13,999}'::bigint[])
  AND state != 'executing';
SELECT :ROW_COUNT AS deleted;
SELECT id, state FROM public.oban_jobs WHERE id IN (2, 11, 13) ORDER BY id;

-------------------------------------------------------------------------------------------------------
-- prune_jobs: deletes completed, cancelled and discarded jobs finished longer than max_age ago
-- (each by its own finish timestamp), lowest ids first, up to the limit.
-------------------------------------------------------------------------------------------------------
-- Finish two more jobs: job 1 completes, job 12 fails on its last attempt.
EXECUTE fetch_jobs('mailers', 10, '{node-a,00000000-0000-4000-8000-00000000000a}');
EXECUTE fetch_jobs('reports', 10, '{node-a,00000000-0000-4000-8000-00000000000a}');
BEGIN;
EXECUTE ack_job(1, 'completed', NULL, NULL, NULL, NULL);
EXECUTE ack_job(12, 'discarded', NULL, NULL,
                '{"attempt": 2, "at": "2025-01-01T00:00:00+00:00", "error": "RuntimeError: again"}', NULL);
COMMIT;
-- Age some of them: 1, 4, 8 and 12 finished two days ago; 9 and 10 were cancelled just now.
UPDATE public.oban_jobs SET completed_at = completed_at - interval '2 days' WHERE id = 1;
UPDATE public.oban_jobs SET cancelled_at = cancelled_at - interval '2 days' WHERE id IN (4, 8);
UPDATE public.oban_jobs SET discarded_at = discarded_at - interval '2 days' WHERE id = 12;
-- An available job with a stale finish timestamp is not pruned.
UPDATE public.oban_jobs SET completed_at = timestamp '2000-01-01' WHERE id = 6;
SELECT * FROM job_summary WHERE state IN ('completed', 'cancelled', 'discarded') OR id = 6 ORDER BY id;

PREPARE prune_jobs(integer, integer) AS  -- $1 max_age in seconds, $2 limit
WITH jobs_to_delete AS (
    SELECT id
    FROM public.oban_jobs
    WHERE (state = 'completed' AND completed_at <= timezone('UTC', now()) - make_interval(secs => $1))
       OR (state = 'cancelled' AND cancelled_at <= timezone('UTC', now()) - make_interval(secs => $1))
       OR (state = 'discarded' AND discarded_at <= timezone('UTC', now()) - make_interval(secs => $1))
    ORDER BY id ASC
    LIMIT $2
)
DELETE FROM public.oban_jobs
WHERE id IN (SELECT id FROM jobs_to_delete);

EXECUTE prune_jobs(86400, 2);
SELECT :ROW_COUNT AS pruned;
SELECT array_agg(id ORDER BY id) AS remaining FROM public.oban_jobs;
EXECUTE prune_jobs(86400, 10);
SELECT :ROW_COUNT AS pruned;
EXECUTE prune_jobs(86400, 10);
SELECT :ROW_COUNT AS pruned;
SELECT array_agg(id ORDER BY id) AS remaining FROM public.oban_jobs;
UPDATE public.oban_jobs SET completed_at = NULL WHERE id = 6;

-------------------------------------------------------------------------------------------------------
-- all_jobs and count_jobs: jobs in the given states, newest first; counts by state and queue.
-------------------------------------------------------------------------------------------------------
SELECT id, state, queue, worker, attempt, max_attempts, priority, args, tags, attempted_by
FROM (
    SELECT id, state, queue, worker, attempt, max_attempts, priority, args, meta, errors, tags,
           attempted_by, inserted_at, attempted_at, cancelled_at, completed_at, discarded_at,
           scheduled_at
    FROM public.oban_jobs
    WHERE state = ANY('{available,executing,suspended}')
    ORDER BY id DESC
) AS all_jobs;

SELECT *
FROM (
    SELECT state::text, queue, COUNT(*)::integer
    FROM public.oban_jobs
    WHERE state = ANY('{available,cancelled,executing,completed}'::public.oban_job_state[])
    GROUP BY state, queue
) AS count_jobs
ORDER BY 1, 2;

-------------------------------------------------------------------------------------------------------
-- Leadership: each attempt first deletes expired leaders, then elects (not leader yet) or
-- re-elects (leader: extends its own term only); a leader resigns by deleting its row.
-------------------------------------------------------------------------------------------------------
-- A leader whose term ran out a minute ago.
INSERT INTO public.oban_leaders (name, node, elected_at, expires_at)
VALUES ('oban', 'node-z', timezone('UTC', now()) - interval '2 minutes',
        timezone('UTC', now()) - interval '1 minute');

PREPARE elect_leader(text, text) AS  -- $1 name, $2 node; ttl 30 seconds
INSERT INTO public.oban_leaders (name, node, elected_at, expires_at)
VALUES ($1, $2, timezone('UTC', now()), timezone('UTC', now()) + interval '30 seconds')
ON CONFLICT (name) DO NOTHING
RETURNING node;

PREPARE reelect_leader(text, text) AS  -- $1 name, $2 node; ttl 30 seconds
INSERT INTO public.oban_leaders (name, node, elected_at, expires_at)
VALUES ($1, $2, timezone('UTC', now()), timezone('UTC', now()) + interval '30 seconds')
ON CONFLICT (name) DO UPDATE SET expires_at = EXCLUDED.expires_at
WHERE public.oban_leaders.node = EXCLUDED.node
RETURNING node;

PREPARE cleanup_expired_leaders AS
DELETE FROM public.oban_leaders WHERE expires_at < timezone('UTC', now());

-- node-a: the expired leader goes, node-a is elected.
BEGIN;
EXECUTE cleanup_expired_leaders;
SELECT :ROW_COUNT AS expired_leaders;
EXECUTE elect_leader('oban', 'node-a');
COMMIT;
-- node-b: nothing expired, node-a leads, so no row: node-b is not the leader.
BEGIN;
EXECUTE cleanup_expired_leaders;
SELECT :ROW_COUNT AS expired_leaders;
EXECUTE elect_leader('oban', 'node-b');
COMMIT;
-- node-a re-elects itself and gets a new term; node-b cannot take over by re-electing.
BEGIN;
EXECUTE cleanup_expired_leaders;
EXECUTE reelect_leader('oban', 'node-a');
SELECT node, expires_at = timezone('UTC', now()) + interval '30 seconds' AS term_extended,
       elected_at < timezone('UTC', now()) AS elected_earlier
FROM public.oban_leaders WHERE name = 'oban';
COMMIT;
BEGIN;
EXECUTE cleanup_expired_leaders;
EXECUTE reelect_leader('oban', 'node-b');
COMMIT;
-- Another Oban instance name has its own leader.
EXECUTE elect_leader('analytics', 'node-b');
SELECT name, node, expires_at > timezone('UTC', now()) AS current FROM public.oban_leaders ORDER BY name;

-- resign_leader: only the leader's own row goes.
DELETE FROM public.oban_leaders WHERE name = 'oban' AND node = 'node-b';
SELECT :ROW_COUNT AS resigned;
DELETE FROM public.oban_leaders WHERE name = 'oban' AND node = 'node-a';
SELECT :ROW_COUNT AS resigned;
EXECUTE elect_leader('oban', 'node-b');
SELECT name, node FROM public.oban_leaders ORDER BY name;

-------------------------------------------------------------------------------------------------------
-- Producers: registered per queue, meta merged on change, refreshed by their node, expired ones
-- deleted by any node, deleted on shutdown.
-------------------------------------------------------------------------------------------------------
PREPARE insert_producer(uuid, text, text, text, jsonb) AS  -- uuid, name, node, queue, meta
INSERT INTO public.oban_producers (uuid, name, node, queue, meta)
VALUES ($1, $2, $3, $4, $5);

BEGIN;
EXECUTE insert_producer('00000000-0000-4000-8000-00000000000a', 'oban', 'node-a', 'default',
                        '{"local_limit": 10, "paused": false}');
EXECUTE insert_producer('00000000-0000-4000-8000-00000000000b', 'oban', 'node-a', 'events',
                        '{"local_limit": 5, "paused": false}');
EXECUTE insert_producer('00000000-0000-4000-8000-00000000000c', 'oban', 'node-b', 'default',
                        '{"local_limit": 10, "paused": false}');
EXECUTE insert_producer('00000000-0000-4000-8000-00000000000d', 'oban', 'node-b', 'mailers',
                        '{"local_limit": 2, "paused": false}');
EXECUTE insert_producer('00000000-0000-4000-8000-00000000000e', 'oban', 'node-a', 'reports',
                        '{"local_limit": 1, "paused": false}');
SELECT uuid, name, node, queue, meta, started_at = timezone('UTC', now()) AS started_now,
       updated_at = started_at AS fresh
FROM public.oban_producers ORDER BY uuid;
COMMIT;

-- delete_producer: node-a stops its "reports" producer.
DELETE FROM public.oban_producers WHERE uuid = '00000000-0000-4000-8000-00000000000e';
SELECT :ROW_COUNT AS deleted_producers;

-- update_producer: meta is merged.
UPDATE public.oban_producers
SET meta = meta || '{"paused": true}'::jsonb
WHERE uuid = '00000000-0000-4000-8000-00000000000a';

-- All last checked in two minutes ago; node-a refreshes its two.
UPDATE public.oban_producers SET updated_at = updated_at - interval '2 minutes';
UPDATE public.oban_producers
SET updated_at = timezone('UTC', now())
WHERE uuid = ANY('{00000000-0000-4000-8000-00000000000a,00000000-0000-4000-8000-00000000000b}'::uuid[]);
SELECT :ROW_COUNT AS refreshed;

-- cleanup_expired_producers: node-b's two are older than 60 seconds.
DELETE FROM public.oban_producers
WHERE updated_at < timezone('UTC', now()) - make_interval(secs => 60.0);
SELECT :ROW_COUNT AS expired_producers;

-- Deleting a producer that is already gone deletes nothing.
DELETE FROM public.oban_producers WHERE uuid = '00000000-0000-4000-8000-00000000000d';
SELECT :ROW_COUNT AS deleted_producers;
SELECT uuid, node, queue, meta, updated_at > started_at AS refreshed FROM public.oban_producers ORDER BY uuid;

-------------------------------------------------------------------------------------------------------
-- estimate_counts: the planner's row estimate for each state and each queue that has a producer,
-- from oban_count_estimate (called unqualified, as oban-py does, through the search_path).
-- After ANALYZE the 7 rows are: 4 available, 2 cancelled, 1 executing; 4 default, 2 events,
-- 1 reports. The estimate is 7 * P(state) * P(queue), rounded, at least 1.
-------------------------------------------------------------------------------------------------------
SELECT state, queue, count(*) FROM public.oban_jobs GROUP BY state, queue ORDER BY state, queue;
ANALYZE public.oban_jobs;
SELECT *
FROM (
    WITH queues AS (
        SELECT DISTINCT queue FROM public.oban_producers
    )
    SELECT x.state, q.queue, oban_count_estimate(x.state, q.queue)::integer
    FROM json_array_elements_text('["available", "cancelled", "executing", "completed"]'::json) AS x(state)
    CROSS JOIN queues q
) AS estimate_counts
ORDER BY 1, 2;

-------------------------------------------------------------------------------------------------------
-- The insert notification from clients other than oban-py: a plain INSERT of an available job
-- notifies through the trigger alone; a scheduled one does not; a rolled-back transaction or
-- savepoint takes its notification with it; one transaction sends one per queue.
-------------------------------------------------------------------------------------------------------
INSERT INTO public.oban_jobs (worker, queue) VALUES ('Other.Client', 'plain');
INSERT INTO public.oban_jobs (worker, queue, state, scheduled_at)
VALUES ('Other.Client', 'later', 'scheduled', timezone('UTC', now()) + interval '1 hour');
BEGIN;
INSERT INTO public.oban_jobs (worker, queue) VALUES ('Other.Client', 'ghost');
ROLLBACK;
BEGIN;
INSERT INTO public.oban_jobs (worker, queue) VALUES ('Other.Client', 'alpha'), ('Other.Client', 'alpha');
SAVEPOINT s;
INSERT INTO public.oban_jobs (worker, queue) VALUES ('Other.Client', 'beta');
ROLLBACK TO SAVEPOINT s;
INSERT INTO public.oban_jobs (worker, queue) VALUES ('Other.Client', 'gamma');
SAVEPOINT t;
INSERT INTO public.oban_jobs (worker, queue) VALUES ('Other.Client', 'gamma');
ROLLBACK TO SAVEPOINT t;
COMMIT;
-- Changing other columns of an available job does not notify.
UPDATE public.oban_jobs SET priority = 3 WHERE queue = 'plain';
SELECT * FROM pg_temp.insert_notifications();
SELECT queue, state, count(*) FROM public.oban_jobs
WHERE worker = 'Other.Client' GROUP BY queue, state ORDER BY queue;

-- Workflow jobs: a job inserted suspended whose deps have all completed is made available by the
-- insert trigger and notifies its queue; one whose dep is still running stays suspended and does
-- not; a row left out as a unique workflow's conflict does not either.
INSERT INTO public.oban_jobs (worker, queue, state, completed_at, meta)
VALUES ('Other.Client', 'wf_done', 'completed', timezone('UTC', now()), '{"workflow_id": "n1", "name": "a"}'),
       ('Other.Client', 'wf_busy', 'executing', NULL, '{"workflow_id": "n1", "name": "b"}');
SELECT * FROM pg_temp.insert_notifications();
INSERT INTO public.oban_jobs (worker, queue, state, meta)
VALUES ('Other.Client', 'wf_ready', 'suspended', '{"workflow_id": "n1", "name": "c", "deps": ["a"]}'),
       ('Other.Client', 'wf_wait', 'available', '{"workflow_id": "n1", "name": "d", "deps": ["b"]}');
INSERT INTO public.oban_jobs (worker, queue, meta)
VALUES ('Other.Client', 'wf_unique', '{"workflow_id": "u1", "workflow_name": "nightly", "workflow_unique": true}');
INSERT INTO public.oban_jobs (worker, queue, meta)
VALUES ('Other.Client', 'wf_conflict', '{"workflow_id": "u2", "workflow_name": "nightly", "workflow_unique": true}');
SELECT * FROM pg_temp.insert_notifications();
SELECT queue, state FROM public.oban_jobs WHERE queue LIKE 'wf\_%' ORDER BY queue;

-------------------------------------------------------------------------------------------------------
-- Clean up: reset again, close the sessions.
-------------------------------------------------------------------------------------------------------
TRUNCATE TABLE public.oban_jobs, public.oban_leaders, public.oban_producers RESTART IDENTITY CASCADE;
SELECT dblink_disconnect('locker');
SELECT dblink_disconnect('listener');
DROP EXTENSION dblink;
DEALLOCATE ALL;
