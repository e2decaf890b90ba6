-- A workflow with a sub-workflow, released by the database as its steps finish; its status.
\pset footer off
\echo '--- nightly-import: extract, then the import sub-workflow (fetch → store), then load:'
SELECT name, state, workflow_id = 'nightly' AS top_level
FROM oban_insert_workflow('{"workflow_id": "nightly", "name": "nightly-import", "jobs": [
    {"name": "extract", "worker": "ExtractWorker", "queue": "imports"},
    {"name": "import", "deps": ["extract"], "workflow": {"name": "import", "jobs": [
        {"name": "fetch", "worker": "FetchWorker", "queue": "imports"},
        {"name": "store", "worker": "StoreWorker", "queue": "imports", "deps": ["fetch"]}]}},
    {"name": "load", "worker": "LoadWorker", "queue": "imports", "deps": ["extract", "import"]}]}');

\echo '--- A worker runs whatever is available, step by step; each ack releases the next steps:'
SELECT string_agg(worker || ' ' || (CASE WHEN oban_complete_job(id) THEN 'done' ELSE '?' END), ', ') AS ran
FROM oban_fetch_jobs('imports', 10, 'demo-node');
SELECT oban_flush_workflows() >= 0 AS released;
SELECT string_agg(worker || ' ' || (CASE WHEN oban_complete_job(id) THEN 'done' ELSE '?' END), ', ') AS ran
FROM oban_fetch_jobs('imports', 10, 'demo-node');
SELECT oban_flush_workflows() >= 0 AS released;

\echo '--- Status, aggregated over the workflow and its sub-workflow (one lookup, no job scan):'
SELECT s->>'state' AS state, s->'total' AS total, s->'counts'->'completed' AS completed,
       s->'counts'->'available' AS available, s->'counts'->'suspended' AS suspended,
       (s->>'duration')::numeric >= 0 AS has_duration,
       s->'subs'->'import'->>'state' AS "subs.import.state"
FROM oban_workflow_status('nightly') AS s;

\echo '--- The rest of the run:'
SELECT string_agg(worker || ' ' || (CASE WHEN oban_complete_job(id) THEN 'done' ELSE '?' END), ', ') AS ran
FROM oban_fetch_jobs('imports', 10, 'demo-node');
SELECT oban_flush_workflows() >= 0 AS released;
SELECT string_agg(worker || ' ' || (CASE WHEN oban_complete_job(id) THEN 'done' ELSE '?' END), ', ') AS ran
FROM oban_fetch_jobs('imports', 10, 'demo-node');
SELECT oban_flush_workflows() >= 0 AS released;
SELECT s->>'state' AS state, s->'total' AS total, s->'counts' AS counts, s->'subs'->'import'->>'state' AS "subs.import.state"
FROM oban_workflow_status('nightly') AS s;

\echo '--- The workflow graph, in Mermaid:'
\pset format unaligned
\pset tuples_only on
SELECT oban_workflow_graph('nightly', 'mermaid');
