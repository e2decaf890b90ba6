-- Staging, pruning and rescue (SPEC §3).
SET client_min_messages = warning;
TRUNCATE oban_jobs RESTART IDENTITY;

-- stage: due scheduled and retryable jobs become available; future ones and others stay.
INSERT INTO oban_jobs (worker, state, scheduled_at, args) VALUES
    ('W', 'scheduled', timezone('UTC', now()) - interval '1 second', '{"n": "due scheduled"}'),
    ('W', 'retryable', timezone('UTC', now()) - interval '1 minute', '{"n": "due retryable"}'),
    ('W', 'scheduled', timezone('UTC', now()) + interval '1 hour', '{"n": "future"}'),
    ('W', 'executing', timezone('UTC', now()) - interval '1 hour', '{"n": "executing"}');
UPDATE oban_jobs SET attempt = 1 WHERE state IN ('retryable', 'executing');
SELECT oban_stage_jobs() AS staged;
SELECT args->>'n' AS n, state FROM oban_jobs ORDER BY id;
SELECT oban_stage_jobs() AS staged_again;
-- The limit bounds one run; the oldest due jobs go first.
INSERT INTO oban_jobs (worker, state, scheduled_at, args)
SELECT 'W', 'scheduled', timestamp '2020-01-01' + make_interval(mins => n), jsonb_build_object('n', n)
FROM generate_series(1, 5) n;
SELECT oban_stage_jobs(2) AS staged;
SELECT args->>'n' AS n FROM oban_jobs WHERE state = 'available' AND args->>'n' ~ '^\d$' ORDER BY id;
SELECT oban_stage_jobs(0) AS zero_limit;

-- prune: finished jobs older than max_age go, by their own finish timestamp; others stay.
TRUNCATE oban_jobs RESTART IDENTITY;
INSERT INTO oban_jobs (worker, state, completed_at, cancelled_at, discarded_at, attempt, args) VALUES
    ('W', 'completed', timezone('UTC', now()) - interval '2 days', NULL, NULL, 1, '{"n": "old completed"}'),
    ('W', 'completed', timezone('UTC', now()) - interval '1 hour', NULL, NULL, 1, '{"n": "new completed"}'),
    ('W', 'cancelled', NULL, timezone('UTC', now()) - interval '2 days', NULL, 0, '{"n": "old cancelled"}'),
    ('W', 'discarded', NULL, NULL, timezone('UTC', now()) - interval '2 days', 1, '{"n": "old discarded"}'),
    ('W', 'available', NULL, NULL, NULL, 0, '{"n": "available"}'),
    ('W', 'retryable', NULL, NULL, NULL, 1, '{"n": "retryable"}');
SELECT oban_prune_jobs() AS pruned;
SELECT args->>'n' AS n FROM oban_jobs ORDER BY id;
SELECT oban_prune_jobs(interval '30 minutes', 1) AS pruned_with_limit;
SELECT args->>'n' AS n FROM oban_jobs ORDER BY id;

-- rescue: executing too long → available (meta.rescued + 1), or discarded when out of attempts;
-- also when the producer named in attempted_by is gone from oban_producers.
TRUNCATE oban_jobs RESTART IDENTITY;
INSERT INTO oban_producers (uuid, node, queue)
VALUES ('11111111-1111-1111-1111-111111111111', 'live-node', 'default');
INSERT INTO oban_jobs (worker, state, attempt, max_attempts, attempted_at, attempted_by, meta, args) VALUES
    ('W', 'executing', 1, 20, timezone('UTC', now()) - interval '2 hours', '{node}', '{}', '{"n": "stuck"}'),
    ('W', 'executing', 3, 3, timezone('UTC', now()) - interval '2 hours', '{node}', '{}', '{"n": "stuck, out of attempts"}'),
    ('W', 'executing', 1, 20, timezone('UTC', now()), '{node}', '{"rescued": 4}', '{"n": "recent"}'),
    ('W', 'executing', 1, 20, timezone('UTC', now()), '{live-node,11111111-1111-1111-1111-111111111111}', '{}', '{"n": "live producer"}'),
    ('W', 'executing', 1, 20, timezone('UTC', now()), '{dead-node,22222222-2222-2222-2222-222222222222}', '{"rescued": 4}', '{"n": "dead producer"}'),
    ('W', 'executing', 1, 20, timezone('UTC', now()), '{odd-node,not-a-uuid}', '{}', '{"n": "no producer uuid"}');
SELECT oban_rescue_jobs() AS rescued;
SELECT args->>'n' AS n, state, meta->'rescued' AS rescued, discarded_at IS NOT NULL AS discarded_at_set
FROM oban_jobs ORDER BY id;
SELECT oban_rescue_jobs(interval '0 seconds') AS rescue_everything_executing;
SELECT count(*) FILTER (WHERE state = 'executing') AS still_executing FROM oban_jobs;

-- prune and repair decide from what they read, and must see jobs committed after their
-- transaction began: not under REPEATABLE READ or SERIALIZABLE (25000), and nothing changes.
TRUNCATE oban_jobs RESTART IDENTITY;
INSERT INTO oban_jobs (worker, state, completed_at, meta) VALUES
    ('W', 'completed', timezone('UTC', now()) - interval '2 days', '{"workflow_id": "iso", "name": "a"}'),
    ('W', 'completed', timezone('UTC', now()) - interval '2 days', '{}');
INSERT INTO oban_jobs (worker, meta) VALUES ('W', '{"workflow_id": "iso-deps", "name": "b", "deps": ["gone"]}');
SELECT oban_flush_workflows() >= 0 AS flushed;
BEGIN ISOLATION LEVEL REPEATABLE READ;
\set VERBOSITY sqlstate
SELECT oban_prune_jobs(interval '1 hour') AS pruned;
\set VERBOSITY default
ROLLBACK;
BEGIN ISOLATION LEVEL SERIALIZABLE;
SELECT oban_prune_jobs(interval '1 hour') AS pruned;
ROLLBACK;
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT oban_repair_workflows(interval '0 seconds') AS repaired;
ROLLBACK;
SELECT meta->>'workflow_id' AS workflow, meta->>'name' AS name, state FROM oban_jobs ORDER BY id;
SELECT id, state FROM oban_workflows ORDER BY id;
-- In READ COMMITTED, the same calls prune the old jobs and the finished workflow's row, and repair
-- cancels the job whose dep was never inserted.
BEGIN;
SELECT oban_prune_jobs(interval '1 hour') AS pruned;
SELECT oban_repair_workflows(interval '0 seconds') AS repaired;
COMMIT;
SELECT meta->>'workflow_id' AS workflow, meta->>'name' AS name, state FROM oban_jobs ORDER BY id;
SELECT id, state FROM oban_workflows ORDER BY id;
TRUNCATE oban_jobs RESTART IDENTITY;
