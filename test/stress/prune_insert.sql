-- Adds an old, finished job to one of 10 workflows, holding the workflow's row a moment, then
-- commits or rolls back at random (test/scripts/prune_stress.sh).
\set workflow random(1, 10)
\set keep random(0, 1)
BEGIN;
INSERT INTO oban_jobs (worker, state, completed_at, meta)
VALUES ('W', 'completed', timezone('UTC', now()) - interval '2 days',
        jsonb_build_object('workflow_id', 'stress-' || :workflow));
SELECT pg_sleep(0.005);
\if :keep
COMMIT;
\else
ROLLBACK;
\endif
