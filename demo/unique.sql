-- Unique workflows (SPEC §5): only one "nightly-import" runs at a time, enforced by the database.
\pset footer off
SET client_min_messages = warning;

\echo '--- Enqueue the unique workflow nightly-import:'
SELECT workflow_id IS NOT NULL AS enqueued, name, state, conflicted
FROM oban_insert_workflow('{"name": "nightly-import", "unique": true, "jobs": [
    {"name": "extract", "worker": "ExtractWorker", "queue": "nightly"},
    {"name": "load", "worker": "LoadWorker", "queue": "nightly", "deps": ["extract"]}]}');

\echo '--- Enqueue it again while it runs: nothing is persisted, every job comes back conflicted:'
SELECT CASE WHEN bool_and(conflicted) THEN 'nightly-import already running' ELSE 'inserted' END AS result,
       count(*) AS jobs, count(id) AS persisted
FROM oban_insert_workflow('{"name": "nightly-import", "unique": true, "jobs": [
    {"name": "extract", "worker": "ExtractWorker", "queue": "nightly"},
    {"name": "load", "worker": "LoadWorker", "queue": "nightly", "deps": ["extract"]}]}');

\echo '--- Run it to the end; the name is free again as soon as it completes:'
SELECT count(oban_complete_job(id)) AS ran FROM oban_fetch_jobs('nightly', 10, 'demo-node');
SELECT oban_flush_workflows() >= 0 AS released;
SELECT count(oban_complete_job(id)) AS ran FROM oban_fetch_jobs('nightly', 10, 'demo-node');
SELECT state FROM oban_workflows WHERE name = 'nightly-import';
SELECT CASE WHEN bool_and(conflicted) THEN 'nightly-import already running' ELSE 'inserted' END AS result
FROM oban_insert_workflow('{"name": "nightly-import", "unique": true, "jobs": [
    {"name": "extract", "worker": "ExtractWorker", "queue": "nightly"}]}');
