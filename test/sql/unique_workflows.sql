-- Unique workflows (SPEC §5): one unfinished workflow per unique name, enforced by the database.
-- This database has no background worker, so each test flushes explicitly.
SET client_min_messages = warning;
TRUNCATE oban_jobs RESTART IDENTITY;
TRUNCATE oban_workflow_rows, oban_workflow_journal, oban_workflow_waits, oban_workflow_edges,
         oban_workflow_names;

-- Helpers: a two-step unique workflow "name" with the given id; run every job of a workflow.
CREATE FUNCTION nightly(id text, name text DEFAULT 'nightly-import')
RETURNS TABLE (id bigint, workflow_id text, name text, state oban_job_state, conflicted boolean)
LANGUAGE sql AS $$
    SELECT * FROM oban_insert_workflow(jsonb_build_object(
        'workflow_id', id, 'name', name, 'unique', true,
        'jobs', jsonb_build_array(jsonb_build_object('name', 'extract', 'worker', 'ExtractWorker'),
                                  jsonb_build_object('name', 'load', 'worker', 'LoadWorker',
                                                     'deps', jsonb_build_array('extract')))))
$$;
CREATE FUNCTION finish(workflow text, outcome text DEFAULT 'completed') RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    job bigint;
BEGIN
    LOOP
        SELECT j.id INTO job FROM oban_jobs AS j
        WHERE j.meta->>'workflow_id' = workflow AND j.state = 'available' ORDER BY j.id LIMIT 1;
        EXIT WHEN job IS NULL;
        UPDATE oban_jobs SET state = 'executing', attempt = attempt + 1, attempted_at = now() WHERE id = job;
        CASE outcome
            WHEN 'completed' THEN PERFORM oban_complete_job(job);
            WHEN 'discarded' THEN PERFORM oban_discard_job(job, 'bad');
        END CASE;
        PERFORM oban_flush_workflows();
    END LOOP;
    RETURN workflow || ' ' || outcome;
END $$;
CREATE VIEW persisted AS
SELECT (SELECT count(*) FROM oban_jobs) AS jobs, (SELECT count(*) FROM oban_workflows) AS workflows,
       (SELECT string_agg(name || '=' || workflow_id, ', ' ORDER BY name) FROM oban_workflow_names) AS names;

-- A unique workflow goes in; a second one of the same name persists nothing and every job comes
-- back conflicted, without an id.
SELECT * FROM nightly('first');
SELECT * FROM persisted;
SELECT * FROM nightly('second');
SELECT * FROM persisted;
SELECT count(*) AS rows_for_second FROM oban_workflows WHERE id = 'second';

-- Uniqueness is keyed by name only among unique workflows: other names, and non-unique workflows
-- of the same name, go in beside it (and do not hold the name).
SELECT workflow_id, name, conflicted FROM nightly('other-name', 'weekly-report');
SELECT workflow_id, name, conflicted FROM oban_insert_workflow('{"workflow_id": "plain-twin",
    "name": "nightly-import", "jobs": [{"name": "extract", "worker": "ExtractWorker"}]}');
SELECT * FROM persisted;

-- The name is free as soon as the holder finishes: completed ...
SELECT finish('first');
SELECT id, state FROM oban_workflows WHERE id = 'first';
SELECT workflow_id, name, conflicted FROM nightly('third');
SELECT * FROM nightly('fourth');  -- third runs now
-- ... cancelled (oban_cancel_workflow) ...
SELECT oban_cancel_workflow('third') AS cancelled;
SELECT workflow_id, conflicted FROM nightly('fifth');
-- ... discarded ...
SELECT finish('fifth', 'discarded');
SELECT id, state FROM oban_workflows WHERE id = 'fifth';
SELECT workflow_id, conflicted FROM nightly('sixth');

-- ... or cancelled by repair: a deleted dep leaves "load" suspended until repair cancels it.
DELETE FROM oban_jobs WHERE meta->>'workflow_id' = 'sixth' AND meta->>'name' = 'extract';
SELECT workflow_id, conflicted FROM nightly('seventh');  -- still held: "load" is unfinished
SELECT oban_flush_workflows() >= 0 AS flushed;
UPDATE oban_workflow_rows SET updated_at = updated_at - interval '5 minutes' WHERE id = 'sixth';
SELECT oban_repair_workflows(interval '60 seconds') AS repaired;
SELECT id, state FROM oban_workflows WHERE id = 'sixth';
SELECT workflow_id, conflicted FROM nightly('seventh');

-- A holder whose jobs were all deleted has nothing unfinished: the name is free.
DELETE FROM oban_jobs WHERE meta->>'workflow_id' = 'seventh';
SELECT workflow_id, conflicted FROM nightly('eighth');

-- Sub-workflows count: the holder is unfinished while any job of its tree is.
SELECT finish('eighth');
SELECT count(*) FROM oban_insert_workflow('{"workflow_id": "parent", "name": "with-sub", "unique": true,
    "jobs": [{"name": "a", "worker": "W"},
             {"name": "sub", "workflow": {"workflow_id": "parent-sub", "jobs": [{"name": "x", "worker": "W"}]},
              "deps": ["a"]}]}');
SELECT finish('parent');
SELECT id, state FROM oban_workflows WHERE id LIKE 'parent%' ORDER BY id;
SELECT conflicted FROM oban_insert_workflow('{"workflow_id": "parent-2", "name": "with-sub", "unique": true,
    "jobs": [{"name": "a", "worker": "W"}]}');
SELECT finish('parent-sub');
SELECT conflicted FROM oban_insert_workflow('{"workflow_id": "parent-2", "name": "with-sub", "unique": true,
    "jobs": [{"name": "a", "worker": "W"}]}');

-- Appending by id always succeeds, whoever holds the name: "first" finished long ago and
-- "eighth" finished too; "ninth" holds the name now.
SELECT workflow_id, conflicted FROM nightly('ninth');
SELECT workflow_id, name, state, conflicted FROM oban_append_workflow('first', '[{"name": "again", "worker": "W"}]');
SELECT id, state FROM oban_workflows WHERE id = 'first';
SELECT names FROM persisted;  -- still ninth's
-- A revived workflow retakes its name when the holder has finished.
SELECT finish('ninth');
SELECT workflow_id, name, conflicted FROM oban_append_workflow('eighth', '[{"name": "more", "worker": "W"}]');
SELECT names FROM persisted;
SELECT finish('first');
SELECT finish('eighth');

-- Plain INSERTs with meta workflow_name and workflow_unique get the same rule from the trigger: a
-- conflicting row is not inserted (RETURNING shows none), a multi-row INSERT of one workflow is
-- all or nothing.
INSERT INTO oban_jobs (worker, meta) VALUES
    ('W', '{"workflow_id": "raw-1", "name": "a", "workflow_name": "raw", "workflow_unique": true}'),
    ('W', '{"workflow_id": "raw-1", "name": "b", "workflow_name": "raw", "workflow_unique": true, "deps": ["a"]}')
RETURNING meta->>'workflow_id' AS workflow, meta->>'name' AS name, state;
INSERT INTO oban_jobs (worker, meta) VALUES
    ('W', '{"workflow_id": "raw-2", "name": "a", "workflow_name": "raw", "workflow_unique": true}'),
    ('W', '{"workflow_id": "raw-2", "name": "b", "workflow_name": "raw", "workflow_unique": true, "deps": ["a"]}')
RETURNING meta->>'workflow_id' AS workflow, meta->>'name' AS name, state;
SELECT count(*) AS raw_2_jobs FROM oban_jobs WHERE meta->>'workflow_id' = 'raw-2';
-- Rows of two unique workflows of one name in one INSERT: the first claims, the second conflicts.
INSERT INTO oban_jobs (worker, meta) VALUES
    ('W', '{"workflow_id": "raw-3", "name": "a", "workflow_name": "fresh", "workflow_unique": true}'),
    ('W', '{"workflow_id": "raw-4", "name": "a", "workflow_name": "fresh", "workflow_unique": true}'),
    ('W', '{"workflow_id": "raw-3", "name": "b", "workflow_name": "fresh", "workflow_unique": true}')
RETURNING meta->>'workflow_id' AS workflow, meta->>'name' AS name;
-- Within one transaction a conflicted workflow stays out, even if its holder finishes meanwhile.
BEGIN;
INSERT INTO oban_jobs (worker, meta) VALUES
    ('W', '{"workflow_id": "raw-5", "name": "a", "workflow_name": "raw", "workflow_unique": true}') RETURNING id;
SELECT finish('raw-1');
INSERT INTO oban_jobs (worker, meta) VALUES
    ('W', '{"workflow_id": "raw-5", "name": "b", "workflow_name": "raw", "workflow_unique": true}') RETURNING id;
COMMIT;
-- After ROLLBACK TO SAVEPOINT the name is checked afresh.
BEGIN;
SELECT finish('raw-3');
INSERT INTO oban_jobs (worker, meta) VALUES
    ('W', '{"workflow_id": "raw-6", "name": "a", "workflow_name": "fresh", "workflow_unique": true}')
RETURNING meta->>'workflow_id' AS workflow;
SAVEPOINT retry;
INSERT INTO oban_jobs (worker, meta) VALUES
    ('W', '{"workflow_id": "raw-7", "name": "a", "workflow_name": "fresh", "workflow_unique": true}')
RETURNING meta->>'workflow_id' AS workflow;  -- raw-6 holds it
ROLLBACK TO SAVEPOINT retry;
DELETE FROM oban_jobs WHERE meta->>'workflow_id' = 'raw-6';
SELECT finish('raw-6');
INSERT INTO oban_jobs (worker, meta) VALUES
    ('W', '{"workflow_id": "raw-7", "name": "a", "workflow_name": "fresh", "workflow_unique": true}')
RETURNING meta->>'workflow_id' AS workflow;  -- a name this transaction claimed stays taken until commit
COMMIT;
-- Appending to an existing workflow by plain INSERT succeeds although another one holds the name.
SELECT workflow_id, conflicted FROM nightly('holder', 'raw');
INSERT INTO oban_jobs (worker, meta) VALUES
    ('W', '{"workflow_id": "raw-1", "name": "late", "workflow_name": "raw", "workflow_unique": true}')
RETURNING meta->>'workflow_id' AS workflow, meta->>'name' AS name;

-- Caller errors change nothing: a unique spec without a name, a unique sub-workflow, a unique row
-- without workflow_name.
CREATE FUNCTION rejects(spec jsonb) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    before bigint := (SELECT count(*) FROM oban_jobs);
BEGIN
    PERFORM oban_insert_workflow(spec);
    RETURN 'accepted';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || SQLERRM || ' (jobs unchanged: ' || ((SELECT count(*) FROM oban_jobs) = before) || ')';
END $$;
SELECT rejects('{"unique": true, "jobs": [{"name": "a", "worker": "W"}]}');
SELECT rejects('{"unique": true, "name": "", "jobs": [{"name": "a", "worker": "W"}]}');
SELECT rejects('{"unique": "yes", "name": "n", "jobs": [{"name": "a", "worker": "W"}]}');
SELECT rejects('{"name": "outer", "jobs": [{"name": "s", "workflow":
    {"name": "inner", "unique": true, "jobs": [{"name": "a", "worker": "W"}]}}]}');
INSERT INTO oban_jobs (worker, meta) VALUES ('W', '{"workflow_id": "nameless", "workflow_unique": true}');
SELECT count(*) AS nameless FROM oban_jobs WHERE meta->>'workflow_id' = 'nameless';

-- Pruning a finished unique workflow's rows removes its name row too; an unfinished holder's stays.
SELECT finish('holder');
SELECT names FROM persisted;
UPDATE oban_jobs SET completed_at = completed_at - interval '2 days', cancelled_at = cancelled_at - interval '2 days',
                     discarded_at = discarded_at - interval '2 days';
SELECT oban_prune_jobs(interval '1 day', 10000) > 0 AS pruned;
SELECT names FROM persisted;
SELECT id, state FROM oban_workflows ORDER BY id;

DROP VIEW persisted;
DROP FUNCTION nightly(text, text), finish(text, text), rejects(jsonb);
