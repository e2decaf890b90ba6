-- Kept plans (src/pg/sql.cpp): the hot statements keep one generic plan per backend, made on first
-- use and again after an invalidation. Left to the planner, a plan made while oban_jobs is empty and
-- just analyzed (a fresh install, a TRUNCATE) reads the table by sequential scans, and goes on doing
-- so as the table grows; the extension makes these plans preferring index lookups. pg_regress runs
-- this file in a fresh backend, so every plan below is made here, on an empty, analyzed table.
TRUNCATE oban_jobs;
VACUUM ANALYZE oban_jobs;

-- (pg_stat_xact_user_tables also holds counts of earlier statements not yet reported: compared.)
BEGIN;
SELECT seq_scan AS seq_before, idx_scan AS idx_before
FROM pg_stat_xact_user_tables WHERE relid = 'oban_jobs'::regclass \gset
SELECT count(*) AS inserted
FROM oban_insert_jobs('[{"worker": "P", "queue": "plans"}, {"worker": "P", "queue": "plans"},
                        {"worker": "P", "queue": "plans"}, {"worker": "P", "queue": "plans"}]');
SELECT array_agg(id ORDER BY id) AS fetched FROM oban_fetch_jobs('plans', 3, 'test') \gset
SELECT oban_ack_jobs(jsonb_agg(jsonb_build_object('id', id, 'state', 'completed')))
FROM unnest(:'fetched'::bigint[]) AS id WHERE id <> (:'fetched'::bigint[])[1];
SELECT oban_complete_job((:'fetched'::bigint[])[1]) AS completed_one;
SELECT count(*) AS fetched_last FROM oban_fetch_jobs('plans', 3, 'test');
-- Every read of oban_jobs in this transaction went through an index.
SELECT seq_scan - :seq_before AS sequential_scans, idx_scan > :idx_before AS index_scans
FROM pg_stat_xact_user_tables WHERE relid = 'oban_jobs'::regclass;
COMMIT;

-- TRUNCATE invalidates the kept plans; they are made again, on the empty table, the same way.
TRUNCATE oban_jobs;
VACUUM ANALYZE oban_jobs;
BEGIN;
SELECT seq_scan AS seq_before, idx_scan AS idx_before
FROM pg_stat_xact_user_tables WHERE relid = 'oban_jobs'::regclass \gset
SELECT count(*) AS inserted FROM oban_insert_jobs('[{"worker": "P", "queue": "plans"}]');
SELECT array_agg(id) AS fetched FROM oban_fetch_jobs('plans', 3, 'test') \gset
SELECT oban_complete_job((:'fetched'::bigint[])[1]) AS completed_one;
SELECT seq_scan - :seq_before AS sequential_scans, idx_scan > :idx_before AS index_scans
FROM pg_stat_xact_user_tables WHERE relid = 'oban_jobs'::regclass;
COMMIT;
-- The next files count jobs from id 1.
TRUNCATE oban_jobs RESTART IDENTITY;
