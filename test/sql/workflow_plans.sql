-- Releases read the churning workflow tables (edges, waits) by key, whatever their statistics say.
-- Statistics taken while the tables hold only dead rows ("empty") once made the flush's count-down
-- and the ack's release probe run as nested loops over a whole table: a 10,000-dep fan-in's acks
-- and flush took 15-30 s. Each statement here must finish well within the timeout (the whole file
-- runs in about 2 s).
SET client_min_messages = warning;
TRUNCATE oban_jobs;
-- A first fan-in, consumed: the edges and waits tables are left with dead rows only.
SELECT count(*) FROM oban_insert_workflow(jsonb_build_object('workflow_id', 'first',
    'jobs', (SELECT jsonb_agg(jsonb_build_object('name', 'd' || n, 'worker', 'W')) FROM generate_series(1, 10000) n)
            || jsonb_build_array(jsonb_build_object('name', 'join', 'worker', 'W', 'queue', 'joins',
                'deps', (SELECT jsonb_agg('d' || n) FROM generate_series(1, 10000) n)))));
SELECT oban_ack_jobs(jsonb_agg(jsonb_build_object('id', id, 'state', 'completed')))
FROM oban_fetch_jobs('default', 10000);
SELECT oban_flush_workflows(100000) > 0 AS folded;
SELECT state FROM oban_jobs WHERE meta->>'workflow_id' = 'first' AND meta->>'name' = 'join';
ANALYZE oban_workflow_edges, oban_workflow_waits, oban_workflow_journal;
SELECT relname, reltuples FROM pg_class
WHERE relname IN ('oban_workflow_edges', 'oban_workflow_waits') ORDER BY 1;
-- A second fan-in, planned from those statistics.
SET statement_timeout = '10s';
SELECT count(*) FROM oban_insert_workflow(jsonb_build_object('workflow_id', 'second',
    'jobs', (SELECT jsonb_agg(jsonb_build_object('name', 'd' || n, 'worker', 'W')) FROM generate_series(1, 10000) n)
            || jsonb_build_array(jsonb_build_object('name', 'join', 'worker', 'W', 'queue', 'joins',
                'deps', (SELECT jsonb_agg('d' || n) FROM generate_series(1, 10000) n)))));
SELECT oban_ack_jobs(jsonb_agg(jsonb_build_object('id', id, 'state', 'completed')))
FROM oban_fetch_jobs('default', 9999);
SELECT oban_flush_workflows(100000) > 0 AS folded;
SELECT remaining FROM oban_workflow_waits;
SELECT oban_ack_jobs(jsonb_agg(jsonb_build_object('id', id, 'state', 'completed')))
FROM oban_fetch_jobs('default', 1);
SELECT state FROM oban_jobs WHERE meta->>'workflow_id' = 'second' AND meta->>'name' = 'join';
RESET statement_timeout;
TRUNCATE oban_jobs;
-- Many workflows in one flush, planned from statistics taken while oban_workflow_rows held only
-- dead rows: the fold once joined each workflow's deltas to the whole table, a nested loop over
-- every row per workflow (16 s for 5,000 workflows).
ANALYZE oban_workflow_rows;
SELECT relname, reltuples FROM pg_class WHERE relname = 'oban_workflow_rows';
SET statement_timeout = '10s';
INSERT INTO oban_jobs (worker, meta)
SELECT 'W', jsonb_build_object('workflow_id', 'many-' || n, 'name', 'only') FROM generate_series(1, 5000) n;
BEGIN ISOLATION LEVEL REPEATABLE READ;  -- so that each workflow's counts go to the journal
SELECT oban_ack_jobs(jsonb_agg(jsonb_build_object('id', id, 'state', 'completed')))
FROM oban_fetch_jobs('default', 5000);
COMMIT;
SELECT oban_flush_workflows(100000) > 0 AS folded;
SELECT count(*) AS workflows, sum(completed) AS completed, count(completed_at) AS finished
FROM oban_workflow_rows;
SELECT count(*) AS unfolded FROM oban_workflow_journal;
RESET statement_timeout;
TRUNCATE oban_jobs;
-- Many dependents counted down in one flush, planned from statistics taken while the waits held
-- only dead rows: the count-down once joined the waits to their hits, scanning every hit again for
-- each wait (over 10 s for 8,000 joins of 9 deps each).
ANALYZE oban_workflow_edges, oban_workflow_waits;
SELECT relname, reltuples FROM pg_class
WHERE relname IN ('oban_workflow_edges', 'oban_workflow_waits') ORDER BY 1;
SET statement_timeout = '10s';
SELECT count(*) FROM oban_insert_workflow(jsonb_build_object('workflow_id', 'joins',
    'jobs', (SELECT jsonb_agg(jsonb_build_object('name', 'd' || n, 'worker', 'W')) FROM generate_series(1, 9) n)
            || (SELECT jsonb_agg(jsonb_build_object('name', 'join' || j, 'worker', 'W', 'queue', 'joins',
                    'deps', (SELECT jsonb_agg('d' || n) FROM generate_series(1, 9) n)))
                FROM generate_series(1, 8000) j)));
SELECT oban_ack_jobs(jsonb_agg(jsonb_build_object('id', id, 'state', 'completed')))
FROM oban_fetch_jobs('default', 9);
SELECT oban_flush_workflows(100000) > 0 AS folded;
SELECT state, count(*) FROM oban_jobs WHERE queue = 'joins' GROUP BY state;
SELECT count(*) AS waits FROM oban_workflow_waits;
RESET statement_timeout;
TRUNCATE oban_jobs;
