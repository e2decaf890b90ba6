-- The Oban job lifecycle, driven from plain SQL by the oban_pro extension.
\pset footer off
\echo '--- A client enqueues three jobs (one scheduled for later), exactly as Oban does it:'
SELECT id, state, queue, worker
FROM oban_insert_job('MyApp.Mailer', '{"to": "ada@example.com"}', 'mailers')
UNION ALL
SELECT id, state, queue, worker
FROM oban_insert_job('MyApp.Report', '{"day": "2026-11-29"}', 'reports', priority => 1)
UNION ALL
SELECT id, state, queue, worker
FROM oban_insert_job('MyApp.Reminder', '{}', 'mailers',
                     scheduled_at => (timezone('UTC', now()) + interval '1 hour')::timestamp);

\echo '--- A worker on node-1 claims what is available in "mailers" (FOR UPDATE SKIP LOCKED inside):'
SELECT id, worker, state, attempt, attempted_by FROM oban_fetch_jobs('mailers', 10, 'node-1');

\echo '--- It completes the job and records its result:'
SELECT oban_complete_job(1, '{"message_id": "m-1"}') AS completed;
SELECT id, state, meta FROM oban_jobs WHERE id = 1;

\echo '--- The report fails once: retryable, with Oban''s jittery exponential backoff:'
SELECT count(*) AS claimed FROM oban_fetch_jobs('reports', 1, 'node-2');
SELECT oban_error_job(2, 'timeout talking to the warehouse') AS new_state;
SELECT id, state, attempt, errors->0->>'error' AS last_error,
       round(extract(epoch FROM scheduled_at - timezone('UTC', now()))) AS retry_in_seconds
FROM oban_jobs WHERE id = 2;

\echo '--- Many acks in one call, each standing on its own (a bad entry is reported, not fatal):'
SELECT count(oban_insert_job('MyApp.Batch', jsonb_build_object('n', n))) AS inserted
FROM generate_series(1, 3) n;
SELECT array_agg(id ORDER BY id) AS ids FROM oban_fetch_jobs('default', 3, 'node-3') \gset
SELECT oban_ack_jobs(jsonb_build_array(
    jsonb_build_object('id', (:'ids'::bigint[])[1], 'state', 'completed'),
    jsonb_build_object('id', (:'ids'::bigint[])[2], 'state', 'scheduled', 'snooze', 30),
    jsonb_build_object('id', (:'ids'::bigint[])[3], 'state', 'no-such-state'))) AS acks_applied;

\echo '--- Staging, pruning and rescue keep the table healthy:'
SELECT oban_stage_jobs() AS staged, oban_prune_jobs() AS pruned, oban_rescue_jobs() AS rescued;

\echo '--- Where everything stands:'
SELECT state, count(*) FROM oban_jobs GROUP BY state ORDER BY state::text;
