-- Workflow status (SPEC §2 oban_workflows, §4 status): counts exact for committed work after any
-- mix of inserts, state changes, deletes, truncation, appends and rollbacks; the status object with
-- sub-workflows; derived states; pruning of workflow rows.
SET client_min_messages = warning;
TRUNCATE oban_jobs RESTART IDENTITY;

-- Compares oban_workflows with a recount from oban_jobs, for every workflow.
CREATE FUNCTION drift() RETURNS TABLE (workflow text, counted jsonb, recounted jsonb)
LANGUAGE sql AS $$
    WITH recount AS (
        SELECT meta->>'workflow_id' AS id, jsonb_build_object(
            'suspended', count(*) FILTER (WHERE state = 'suspended'),
            'available', count(*) FILTER (WHERE state = 'available'),
            'scheduled', count(*) FILTER (WHERE state = 'scheduled'),
            'executing', count(*) FILTER (WHERE state = 'executing'),
            'retryable', count(*) FILTER (WHERE state = 'retryable'),
            'completed', count(*) FILTER (WHERE state = 'completed'),
            'cancelled', count(*) FILTER (WHERE state = 'cancelled'),
            'discarded', count(*) FILTER (WHERE state = 'discarded')) AS counts
        FROM oban_jobs WHERE meta ? 'workflow_id' GROUP BY 1
    ), counted AS (
        SELECT id, jsonb_build_object('suspended', suspended, 'available', available, 'scheduled', scheduled,
                                      'executing', executing, 'retryable', retryable, 'completed', completed,
                                      'cancelled', cancelled, 'discarded', discarded) AS counts
        FROM oban_workflows
    )
    SELECT coalesce(c.id, r.id), c.counts, r.counts
    FROM counted AS c FULL JOIN recount AS r ON r.id = c.id
    WHERE c.counts IS DISTINCT FROM coalesce(r.counts, jsonb_build_object(
        'suspended', 0, 'available', 0, 'scheduled', 0, 'executing', 0, 'retryable', 0, 'completed', 0,
        'cancelled', 0, 'discarded', 0))
$$;

-- The row exists from the first insert.
SELECT count(*) FROM oban_insert_workflow('{"workflow_id": "s1", "name": "nightly-import", "jobs": [
    {"name": "extract", "worker": "W"},
    {"name": "import", "deps": ["extract"], "workflow": {"workflow_id": "s1-import", "name": "import", "jobs": [
        {"name": "fetch", "worker": "W"}, {"name": "store", "worker": "W", "deps": ["fetch"]}]}},
    {"name": "load", "worker": "W", "deps": ["extract", "import"]}]}');
SELECT id, name, parent_id, state, suspended, available, started_at IS NULL AS not_started
FROM oban_workflows ORDER BY id;
SELECT * FROM drift();

-- A mix of changes, some rolled back, some in savepoints.
BEGIN;
UPDATE oban_jobs SET state = 'executing', attempted_at = timezone('UTC', now()) WHERE meta->>'name' = 'extract';
SAVEPOINT s;
UPDATE oban_jobs SET state = 'discarded' WHERE meta->>'name' = 'extract';
ROLLBACK TO SAVEPOINT s;
SELECT executing FROM oban_workflows WHERE id = 's1';  -- the transaction sees its own changes
COMMIT;
BEGIN;
DELETE FROM oban_jobs WHERE meta->>'name' = 'load';
INSERT INTO oban_jobs (worker, meta) VALUES ('W', '{"workflow_id": "s1", "name": "ghost"}');
ROLLBACK;
SELECT * FROM drift();
SELECT state, executing, started_at IS NOT NULL AS started FROM oban_workflows WHERE id = 's1';

-- Status: the SPEC §4 object, subs keyed by name, counts over the whole tree.
UPDATE oban_jobs SET state = 'completed', completed_at = timezone('UTC', now()) WHERE meta->>'name' = 'extract';
SELECT oban_flush_workflows() >= 0 AS flushed;
SELECT jsonb_pretty(oban_workflow_status('s1') - 'inserted_at' - 'started_at' - 'duration'
                    #- '{subs,import,inserted_at}' #- '{subs,import,started_at}' #- '{subs,import,duration}');
SELECT (oban_workflow_status('s1')->>'duration')::numeric >= 0 AS has_duration,
       oban_workflow_status('s1-import')->>'duration' IS NULL AS sub_not_started;
SELECT oban_workflow_status('no-such-workflow') IS NULL AS unknown_is_null;

-- Finish everything: completed, with a completed_at and a fixed duration.
UPDATE oban_jobs SET state = 'completed', completed_at = timezone('UTC', now())
WHERE meta->>'workflow_id' = 's1-import';
SELECT oban_flush_workflows() >= 0 AS flushed;
UPDATE oban_jobs SET state = 'completed', completed_at = timezone('UTC', now()) WHERE meta->>'name' = 'load';
SELECT oban_flush_workflows() >= 0 AS flushed;
SELECT s->>'state' AS state, s->'total' AS total, s->'counts'->'completed' AS completed,
       s->>'completed_at' IS NOT NULL AS completed_at_set, s->'subs'->'import'->>'state' AS import_state
FROM oban_workflow_status('s1') AS s;
SELECT * FROM drift();

-- Derived states, and the ignore_* options counting an outcome as completed.
SELECT count(*) FROM oban_insert_workflow('{"workflow_id": "d1", "jobs": [{"name": "a", "worker": "W"}, {"name": "b", "worker": "W"}]}');
SELECT count(*) FROM oban_insert_workflow('{"workflow_id": "d2", "ignore_discarded": true, "jobs": [{"name": "a", "worker": "W"}]}');
SELECT count(*) FROM oban_insert_workflow('{"workflow_id": "d3", "jobs": [{"name": "a", "worker": "W"}, {"name": "b", "worker": "W"}]}');
SELECT id, state FROM oban_workflows WHERE id LIKE 'd_' ORDER BY id;
UPDATE oban_jobs SET state = 'discarded', discarded_at = timezone('UTC', now())
WHERE meta->>'workflow_id' IN ('d1', 'd2') AND meta->>'name' = 'a';
UPDATE oban_jobs SET state = 'cancelled', cancelled_at = timezone('UTC', now())
WHERE meta->>'workflow_id' IN ('d1', 'd3');
UPDATE oban_jobs SET state = 'executing', attempted_at = timezone('UTC', now()) WHERE meta->>'workflow_id' = 'd3' AND meta->>'name' = 'b';
SELECT id, state FROM oban_workflows WHERE id LIKE 'd_' ORDER BY id;
SELECT oban_retry_job(id) FROM oban_jobs WHERE meta->>'workflow_id' = 'd1' AND meta->>'name' = 'a';
SELECT oban_flush_workflows() >= 0 AS flushed;
SELECT id, state, completed_at IS NULL AS completed_at_cleared FROM oban_workflows WHERE id = 'd1';

-- Appends count; deletes count; truncation leaves no workflow behind.
SELECT count(*) FROM oban_append_workflow('d3', '[{"name": "c", "worker": "W"}]');
DELETE FROM oban_jobs WHERE meta->>'workflow_id' = 'd2';
SELECT * FROM drift();

-- Pruning keeps the jobs of unfinished workflows and removes the rows of finished workflows once
-- their jobs are gone; a finished workflow whose jobs remain keeps its row.
SELECT count(*) FROM oban_insert_workflow('{"workflow_id": "p-done", "jobs": [{"name": "a", "worker": "W"}, {"name": "b", "worker": "W"}]}');
SELECT count(*) FROM oban_insert_workflow('{"workflow_id": "p-busy", "jobs": [{"name": "a", "worker": "W"}, {"name": "b", "worker": "W", "deps": ["a"]}]}');
UPDATE oban_jobs SET state = 'completed', completed_at = timezone('UTC', now()) - interval '2 days'
WHERE meta->>'workflow_id' = 'p-done' OR (meta->>'workflow_id' = 'p-busy' AND meta->>'name' = 'a');
SELECT oban_flush_workflows() >= 0 AS flushed;
SELECT oban_prune_jobs(interval '1 day') AS pruned;
SELECT meta->>'workflow_id' AS workflow, meta->>'name' AS name, state FROM oban_jobs
WHERE meta->>'workflow_id' LIKE 'p-%' ORDER BY id;
SELECT id, state FROM oban_workflows WHERE id LIKE 'p-%' ORDER BY id;
-- The finished tree of s1 goes too, sub-workflow first, then its parent.
UPDATE oban_jobs SET completed_at = completed_at - interval '2 days' WHERE meta->>'workflow_id' LIKE 's1%';
SELECT oban_prune_jobs(interval '1 day') AS pruned;
SELECT id FROM oban_workflows WHERE id LIKE 's1%';
SELECT * FROM drift();

-- A wide tree three levels deep (1 + 12 + 36 + 36 workflows, ids whose byte order and collation
-- order differ), with deltas not yet folded at every level: each workflow's status in the tree
-- agrees with oban_workflow_tree_counts, which counts its tree separately.
INSERT INTO oban_jobs (worker, state, meta)
SELECT 'W', (ARRAY['available', 'completed', 'executing'])[1 + (n + j) % 3]::oban_job_state,
       jsonb_build_object('workflow_id', w.id, 'sup_workflow_id', w.parent, 'sub_name', w.sub, 'name', 'j' || j)
FROM (SELECT 'wide' AS id, NULL AS parent, NULL AS sub, 0 AS n
      UNION ALL
      SELECT 'wide-' || chr(CASE WHEN a % 2 = 0 THEN 65 ELSE 97 END + a), 'wide', 'sub' || a, a
      FROM generate_series(0, 11) a
      UNION ALL
      SELECT 'wide-' || chr(CASE WHEN a % 2 = 0 THEN 65 ELSE 97 END + a) || '-' || b,
             'wide-' || chr(CASE WHEN a % 2 = 0 THEN 65 ELSE 97 END + a), 'sub' || b, a + b
      FROM generate_series(0, 11) a, generate_series(0, 2) b
      UNION ALL
      SELECT 'wide-' || chr(CASE WHEN a % 2 = 0 THEN 65 ELSE 97 END + a) || '-' || b || '-x',
             'wide-' || chr(CASE WHEN a % 2 = 0 THEN 65 ELSE 97 END + a) || '-' || b, 'leaf', a * b
      FROM generate_series(0, 11) a, generate_series(0, 2) b) AS w,
     generate_series(1, 2) j;
SELECT oban_flush_workflows() >= 0 AS flushed;
-- Under REPEATABLE READ no statement folds its counts in place: every change stays in the journal.
BEGIN ISOLATION LEVEL REPEATABLE READ;
UPDATE oban_jobs SET state = 'completed', completed_at = timezone('UTC', now())
WHERE meta->>'workflow_id' LIKE 'wide%' AND state = 'executing';
UPDATE oban_jobs SET state = 'executing', attempted_at = timezone('UTC', now()) - interval '1 hour'
WHERE meta->>'workflow_id' LIKE 'wide%' AND meta->>'name' = 'j1' AND state = 'available';
COMMIT;
SELECT count(DISTINCT workflow_id) AS workflows_with_unfolded_deltas FROM oban_workflow_journal
WHERE workflow_id LIKE 'wide%';
CREATE FUNCTION status_disagreements(top text) RETURNS TABLE (workflows bigint, disagreeing bigint)
LANGUAGE sql AS $$
    WITH RECURSIVE node(s) AS (
        SELECT oban_workflow_status(top)
        UNION ALL
        SELECT node.s->'subs'->key FROM node, jsonb_object_keys(node.s->'subs') AS key
    )
    SELECT count(*), count(*) FILTER (WHERE
        (node.s->>'total')::int <> t.suspended + t.available + t.scheduled + t.executing + t.retryable
                                   + t.completed + t.cancelled + t.discarded
        OR node.s->'counts' <> jsonb_build_object('suspended', t.suspended, 'available', t.available,
               'scheduled', t.scheduled, 'executing', t.executing, 'retryable', t.retryable,
               'completed', t.completed, 'cancelled', t.cancelled, 'discarded', t.discarded)
        OR (node.s->>'started_at')::timestamp IS DISTINCT FROM t.started_at)
    FROM node, oban_workflow_tree_counts(node.s->>'id') AS t
$$;
SELECT * FROM status_disagreements('wide');
SELECT * FROM status_disagreements('wide-b');
SELECT jsonb_object_keys(oban_workflow_status('wide-C')->'subs') AS subs_of_wide_c;
SELECT oban_flush_workflows() >= 0 AS flushed;
SELECT * FROM status_disagreements('wide');
DROP FUNCTION status_disagreements(text);

-- Plain INSERTs can name any sup_workflow_id, so a parent_id loop can come back to the workflow
-- asked about: each workflow is counted once, at its first depth, and unknown ids are NULL.
INSERT INTO oban_jobs (worker, state, meta) VALUES
    ('W', 'completed', '{"workflow_id": "loop-a", "sup_workflow_id": "loop-b", "sub_name": "a"}'),
    ('W', 'available', '{"workflow_id": "loop-b", "sup_workflow_id": "loop-a", "sub_name": "b"}'),
    ('W', 'available', '{"workflow_id": "loop-c", "sup_workflow_id": "loop-b", "sub_name": "c"}');
SELECT s->>'state' AS state, s->>'total' AS total, s->'subs'->'b'->>'total' AS b_total,
       s->'subs'->'b'->'subs'->'c'->>'total' AS c_total, s->'subs'->'b'->'subs'->'c'->'subs' AS c_subs,
       s->'subs'->'b'->'subs' ? 'a' AS a_again
FROM oban_workflow_status('loop-a') AS s;
SELECT jsonb_object_keys(oban_workflow_status('loop-b')->'subs') AS subs_of_b;
SELECT oban_workflow_status('loop-b')->'subs'->'a'->'subs' AS subs_of_a_under_b;
SELECT oban_workflow_status('no-such-workflow') IS NULL AS unknown_is_null;

-- Nesting deeper than 16 levels (plain INSERTs can make it): the status stops at the 16th level
-- below the workflow asked about; the levels below it are left out of the object and its totals.
INSERT INTO oban_jobs (worker, state, meta)
SELECT 'W', 'available', jsonb_build_object('workflow_id', 'deep-' || n, 'sub_name', 'next',
                                            'sup_workflow_id', CASE WHEN n > 0 THEN 'deep-' || (n - 1) END)
FROM generate_series(0, 19) n;
WITH RECURSIVE level(depth, s) AS (
    SELECT 0, oban_workflow_status('deep-0')
    UNION ALL
    SELECT depth + 1, s->'subs'->'next' FROM level WHERE s->'subs' ? 'next'
)
SELECT max(depth) AS deepest, (SELECT s->>'total' FROM level WHERE depth = 0) AS total,
       (SELECT s->>'total' FROM level WHERE depth = 10) AS total_at_10
FROM level;

-- Two sub-workflows under one sub name: the status object keeps one key, for the later one (as a
-- jsonb object keeps the last value given for a key); the total counts both.
INSERT INTO oban_jobs (worker, state, meta) VALUES
    ('W', 'available', '{"workflow_id": "dup", "name": "a"}'),
    ('W', 'available', '{"workflow_id": "dup-1", "sup_workflow_id": "dup", "sub_name": "same"}'),
    ('W', 'completed', '{"workflow_id": "dup-2", "sup_workflow_id": "dup", "sub_name": "same"}'),
    ('W', 'completed', '{"workflow_id": "dup-3", "sup_workflow_id": "dup", "sub_name": "other"}');
SELECT s->>'total' AS total, s->'subs'->'same'->>'id' AS same_is, jsonb_object_keys(s->'subs') AS sub
FROM oban_workflow_status('dup') AS s;

-- Journal rows are sparse: a count the statement did not change is NULL, as are the finished steps
-- of a row that finished none; the view, the status and the fold read them as 0 and none.
INSERT INTO oban_jobs (worker, meta) VALUES ('W', '{"workflow_id": "sparse", "name": "a"}');
INSERT INTO oban_jobs (worker, meta) VALUES ('W', '{"workflow_id": "sparse", "name": "b"}');
UPDATE oban_jobs SET state = 'completed', completed_at = timezone('UTC', now())
WHERE meta->>'workflow_id' = 'sparse' AND meta->>'name' = 'a';
SELECT available, completed, suspended, finished_names, finished_states FROM oban_workflow_journal
WHERE workflow_id = 'sparse' ORDER BY id;
SELECT state, available, completed, suspended FROM oban_workflows WHERE id = 'sparse';
SELECT s->>'state' AS state, s->'counts'->>'completed' AS completed, s->'counts'->>'available' AS available
FROM oban_workflow_status('sparse') AS s;

-- The fold reads the journal by workflow: when a batch comes full, the next starts after the
-- workflow it stopped in and goes round, so a workflow with many rows cannot hold another back. A
-- call folds up to 16 batches, here of one row each: "busy" (19 rows: its first job is counted in
-- the row its insert makes) sorts first, yet "calm"'s one row (its second job's) goes in the second
-- batch (taking batches in key order, it would be left for the next call).
INSERT INTO oban_jobs (worker, meta) VALUES ('W', '{"workflow_id": "calm"}');
SELECT oban_flush_workflows(1000) >= 0 AS drained;  -- every other workflow's rows, out of the way
DO $$
BEGIN
    FOR i IN 1..20 LOOP
        INSERT INTO oban_jobs (worker, meta) VALUES ('W', '{"workflow_id": "busy"}');
    END LOOP;
END
$$;
INSERT INTO oban_jobs (worker, meta) VALUES ('W', '{"workflow_id": "calm"}');
SELECT oban_flush_workflows(1) AS folded;
SELECT workflow_id, count(*) AS unfolded FROM oban_workflow_journal GROUP BY 1 ORDER BY 1;
SELECT id, available FROM oban_workflow_rows WHERE id IN ('busy', 'calm') ORDER BY id;

TRUNCATE oban_jobs;
SELECT count(*) AS workflows_after_truncate FROM oban_workflows;
SELECT count(*) AS journal_after_truncate FROM oban_workflow_journal;
DROP FUNCTION drift();
