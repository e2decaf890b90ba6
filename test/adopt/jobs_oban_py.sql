-- Jobs an oban-py 0.6 node left in its tables before adoption, written the way oban-py writes rows
-- (errors as one jsonb array, NOT NULL meta/tags/attempted_by). Each job is named by args.k;
-- scenario.sql finds them by it. Usage: psql -v prefix=NAME -f jobs_oban_py.sql
SET search_path = :"prefix";
INSERT INTO oban_jobs (state, queue, worker, args, meta, tags, errors, attempt, max_attempts, priority,
                       inserted_at, scheduled_at, attempted_at, attempted_by, completed_at,
                       discarded_at, cancelled_at)
SELECT state::oban_job_state, queue, 'my_app.workers.Old', jsonb_build_object('k', k), '{}', ARRAY['old'],
       CASE WHEN errors IS NULL THEN '[]'::jsonb
            ELSE jsonb_build_array(jsonb_build_object('attempt', attempt, 'at', now() - interval '2 hours',
                                                      'error', errors)) END,
       attempt, max_attempts, priority,
       timezone('UTC', now()) - interval '3 days', timezone('UTC', now()) + scheduled_in,
       CASE WHEN attempt > 0 THEN timezone('UTC', now()) - interval '3 hours' END,
       CASE WHEN attempt > 0 THEN ARRAY['old-node', '00000000-0000-4000-8000-000000000000']
            ELSE ARRAY[]::text[] END,
       CASE WHEN state = 'completed' THEN timezone('UTC', now()) - interval '2 days' END,
       CASE WHEN state = 'discarded' THEN timezone('UTC', now()) - interval '2 days' END,
       CASE WHEN state = 'cancelled' THEN timezone('UTC', now()) - interval '2 days' END
FROM (VALUES
    ('a1', 'available', 'old', 0, 20, 2, NULL, interval '-1 hour'),
    ('a2', 'available', 'old', 0, 20, 0, NULL, interval '-1 hour'),
    ('a3', 'available', 'old', 0, 20, 1, NULL, interval '-1 hour'),
    ('a4', 'available', 'old', 0, 20, 0, NULL, interval '-1 hour'),
    ('a5', 'available', 'old', 0, 20, 3, NULL, interval '-1 hour'),
    ('s_due', 'scheduled', 'old', 0, 20, 0, NULL, interval '-1 minute'),
    ('s_future', 'scheduled', 'old', 0, 20, 0, NULL, interval '1 day'),
    ('r_due', 'retryable', 'old', 1, 20, 0, 'old failure', interval '-1 minute'),
    ('x_stuck', 'executing', 'old', 1, 20, 0, NULL, interval '-3 hours'),
    ('c_old', 'completed', 'old', 1, 20, 0, NULL, interval '-3 days'),
    ('d_old', 'discarded', 'old', 3, 3, 0, 'gave up', interval '-3 days'),
    ('x_cancel', 'cancelled', 'old', 0, 20, 0, NULL, interval '-3 days')
) AS j(k, state, queue, attempt, max_attempts, priority, errors, scheduled_in)
ORDER BY k;

INSERT INTO oban_jobs (state, queue, worker, args, meta, tags, errors, attempt, max_attempts, priority,
                       completed_at, attempted_at, attempted_by)
SELECT CASE WHEN n % 3 = 0 THEN 'completed' ELSE 'available' END::oban_job_state, 'bulk', 'my_app.Bulk',
       jsonb_build_object('n', n), jsonb_build_object('batch', n / 100), ARRAY['bulk', 't' || (n % 7)],
       CASE WHEN n % 5 = 0 THEN jsonb_build_array(jsonb_build_object('attempt', 1, 'error', 'e' || n))
            ELSE '[]' END,
       CASE WHEN n % 3 = 0 THEN 1 ELSE 0 END, 20, n % 4,
       CASE WHEN n % 3 = 0 THEN timezone('UTC', now()) - interval '1 minute' END,
       CASE WHEN n % 3 = 0 THEN timezone('UTC', now()) - interval '2 minutes' END,
       CASE WHEN n % 3 = 0 THEN ARRAY['bulk-node'] ELSE ARRAY[]::text[] END
FROM generate_series(1, 3000) AS n;
