-- Workflows (SPEC §4): insertion, validation, release exactly as deps finish, cancellation
-- cascades, ignore_* options, sub-workflows, cross-workflow deps, append, cancel, repair.
-- This database has no background worker, so each test flushes explicitly.
SET client_min_messages = warning;
TRUNCATE oban_jobs RESTART IDENTITY;

-- Helpers: states of a workflow's steps; run every available job of a workflow to completion.
CREATE FUNCTION steps(workflow text) RETURNS TABLE (name text, state oban_job_state)
LANGUAGE sql AS $$
    SELECT meta->>'name', state FROM oban_jobs WHERE meta->>'workflow_id' = workflow ORDER BY id
$$;
CREATE FUNCTION run(workflow text, step text, outcome text DEFAULT 'completed') RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    job bigint;
BEGIN
    SELECT id INTO job FROM oban_jobs
    WHERE meta->>'workflow_id' = workflow AND meta->>'name' = step;
    UPDATE oban_jobs SET state = 'executing', attempt = attempt + 1, attempted_at = now() WHERE id = job;
    CASE outcome
        WHEN 'completed' THEN PERFORM oban_complete_job(job);
        WHEN 'cancelled' THEN PERFORM oban_cancel_job(job, 'stop');
        WHEN 'discarded' THEN PERFORM oban_discard_job(job, 'bad');
    END CASE;
    PERFORM oban_flush_workflows();
    RETURN step || ' ' || outcome;
END $$;

-- Whether oban_workflows counts the jobs of `workflow` as they are.
CREATE FUNCTION counts_exact(workflow text) RETURNS boolean
LANGUAGE sql AS $$
    SELECT (w.suspended, w.available, w.scheduled, w.executing, w.retryable, w.completed, w.cancelled, w.discarded)
           = (SELECT (count(*) FILTER (WHERE state = 'suspended'))::int, (count(*) FILTER (WHERE state = 'available'))::int,
                     (count(*) FILTER (WHERE state = 'scheduled'))::int, (count(*) FILTER (WHERE state = 'executing'))::int,
                     (count(*) FILTER (WHERE state = 'retryable'))::int, (count(*) FILTER (WHERE state = 'completed'))::int,
                     (count(*) FILTER (WHERE state = 'cancelled'))::int, (count(*) FILTER (WHERE state = 'discarded'))::int
              FROM oban_jobs WHERE meta->>'workflow_id' = workflow)
    FROM oban_workflows AS w WHERE w.id = workflow
$$;

-- A chain and a diamond: a → (b, c) → d.
SELECT name, state FROM oban_insert_workflow('{"workflow_id": "diamond", "name": "diamond", "jobs": [
    {"name": "a", "worker": "W"},
    {"name": "b", "worker": "W", "deps": ["a"]},
    {"name": "c", "worker": "W", "deps": "a"},
    {"name": "d", "worker": "W", "deps": ["b", "c"]}]}');
SELECT run('diamond', 'a');
SELECT * FROM steps('diamond');
SELECT run('diamond', 'b');
SELECT * FROM steps('diamond');  -- d still waits for c
SELECT run('diamond', 'c');
SELECT * FROM steps('diamond');  -- released once its last dep completed
SELECT run('diamond', 'd');
SELECT state, total, completed FROM (
    SELECT state, suspended + available + scheduled + executing + retryable + completed + cancelled + discarded AS total,
           completed
    FROM oban_workflows WHERE id = 'diamond') AS w;
SELECT count(*) AS leftover_waits FROM oban_workflow_waits;

-- Fan-out and fan-in: one root, five parallel steps, one join.
SELECT count(*) FROM oban_insert_workflow(jsonb_build_object('workflow_id', 'fan', 'jobs',
    jsonb_build_array(jsonb_build_object('name', 'root', 'worker', 'W'))
    || (SELECT jsonb_agg(jsonb_build_object('name', 'p' || n, 'worker', 'W', 'deps', jsonb_build_array('root')))
        FROM generate_series(1, 5) n)
    || jsonb_build_array(jsonb_build_object('name', 'join', 'worker', 'W',
           'deps', (SELECT jsonb_agg('p' || n) FROM generate_series(1, 5) n)))));
SELECT run('fan', 'root');
SELECT state, count(*) FROM steps('fan') GROUP BY state ORDER BY state::text;
SELECT run('fan', 'p' || n) FROM generate_series(1, 4) n;
SELECT * FROM steps('fan') WHERE name = 'join';
SELECT remaining FROM oban_workflow_waits WHERE job_id = (SELECT id FROM oban_jobs WHERE meta->>'name' = 'join');
SELECT run('fan', 'p5');
SELECT * FROM steps('fan') WHERE name = 'join';

-- A cancelled dep cancels its dependents, transitively, with an error naming the dep.
SELECT count(*) FROM oban_insert_workflow('{"workflow_id": "doomed", "jobs": [
    {"name": "a", "worker": "W"},
    {"name": "b", "worker": "W", "deps": ["a"]},
    {"name": "c", "worker": "W", "deps": ["b"]}]}');
SELECT run('doomed', 'a', 'cancelled');
SELECT oban_flush_workflows() >= 0 AS cascaded;
SELECT meta->>'name' AS name, state, errors->-1->>'error' AS error FROM oban_jobs
WHERE meta->>'workflow_id' = 'doomed' ORDER BY id;
SELECT state FROM oban_workflows WHERE id = 'doomed';

-- A discarded dep does the same; ignore_discarded treats it as satisfied, ignore_cancelled too.
SELECT count(*) FROM oban_insert_workflow('{"workflow_id": "strict", "jobs": [
    {"name": "a", "worker": "W"}, {"name": "b", "worker": "W", "deps": ["a"]}]}');
SELECT run('strict', 'a', 'discarded');
SELECT * FROM steps('strict');
SELECT count(*) FROM oban_insert_workflow('{"workflow_id": "lenient", "ignore_discarded": true, "jobs": [
    {"name": "a", "worker": "W"}, {"name": "b", "worker": "W", "deps": ["a"]}]}');
SELECT run('lenient', 'a', 'discarded');
SELECT * FROM steps('lenient');
SELECT count(*) FROM oban_insert_workflow('{"workflow_id": "tolerant", "ignore_cancelled": true, "jobs": [
    {"name": "a", "worker": "W"}, {"name": "b", "worker": "W", "deps": ["a"]}]}');
SELECT run('tolerant', 'a', 'cancelled');
SELECT * FROM steps('tolerant');
SELECT id, state FROM oban_workflows WHERE id IN ('strict', 'lenient', 'tolerant') ORDER BY id;

-- Sub-workflows: their jobs wait for the entry's deps; a dep on the entry waits for all of them.
SELECT name, state FROM oban_insert_workflow('{"workflow_id": "nightly", "name": "nightly-import", "jobs": [
    {"name": "extract", "worker": "Extract"},
    {"name": "import", "deps": ["extract"], "workflow": {"workflow_id": "nightly-import-sub", "jobs": [
        {"name": "fetch", "worker": "Fetch"},
        {"name": "store", "worker": "Store", "deps": ["fetch"]}]}},
    {"name": "load", "worker": "Load", "deps": ["extract", "import"]}]}') ORDER BY id;
SELECT id, parent_id, sub_name, state FROM oban_workflows WHERE id LIKE 'nightly%' ORDER BY id;
SELECT run('nightly', 'extract');
SELECT * FROM steps('nightly-import-sub');
SELECT run('nightly-import-sub', 'fetch');
SELECT * FROM steps('nightly');  -- load still waits for the whole sub-workflow
SELECT run('nightly-import-sub', 'store');
SELECT * FROM steps('nightly');
SELECT oban_workflow_graph('nightly', 'dot');
-- A sub-workflow inserted and finished before any flush: one flush folds its insert and its last
-- ack together, a batch that leaves its count of unfinished jobs where it was (+1 - 1), and still
-- finds that it finished, releasing the job that waits for it as a whole.
SELECT count(*) FROM oban_insert_workflow('{"workflow_id": "quick", "jobs": [
    {"name": "sub", "workflow": {"workflow_id": "quick-sub", "jobs": [{"name": "s", "worker": "W"}]}},
    {"name": "after", "worker": "W", "deps": ["sub"]}]}');
SELECT run('quick-sub', 's');
SELECT * FROM steps('quick');

-- Cross-workflow deps, by [workflow_id, name] and [workflow_id, "*"].
SELECT count(*) FROM oban_insert_workflow('{"workflow_id": "upstream", "jobs": [
    {"name": "one", "worker": "W"}, {"name": "two", "worker": "W"}]}');
SELECT count(*) FROM oban_insert_workflow('{"workflow_id": "downstream", "jobs": [
    {"name": "after-one", "worker": "W", "deps": [["upstream", "one"]]},
    {"name": "after-all", "worker": "W", "deps": [["upstream", "*"]]}]}');
SELECT run('upstream', 'one');
SELECT * FROM steps('downstream');
SELECT run('upstream', 'two');
SELECT * FROM steps('downstream');

-- Append: behind a completed dep it starts at once; behind a running one it waits.
SELECT name, state FROM oban_append_workflow('diamond', '[{"name": "e", "worker": "W", "deps": ["d"]}]');
SELECT count(*) FROM oban_insert_workflow('{"workflow_id": "growing", "jobs": [{"name": "first", "worker": "W"}]}');
SELECT name, state FROM oban_append_workflow('growing', '[{"name": "second", "worker": "W", "deps": ["first"]}]');
SELECT run('growing', 'first');
SELECT * FROM steps('growing');
-- With check_deps false a dep may name a step that does not exist yet.
SELECT name, state FROM oban_append_workflow('growing', '[{"name": "later", "worker": "W", "deps": ["future"]}]', false);
SELECT name, state FROM oban_append_workflow('growing', '[{"name": "future", "worker": "W"}]');
SELECT run('growing', 'future');
SELECT * FROM steps('growing') WHERE name = 'later';

-- A plain INSERT carrying workflow meta gets the same behaviour, in any row order.
INSERT INTO oban_jobs (worker, meta) VALUES
    ('W', '{"workflow_id": "plain", "name": "last", "deps": ["first", "middle"]}'),
    ('W', '{"workflow_id": "plain", "name": "middle", "deps": ["first"]}'),
    ('W', '{"workflow_id": "plain", "name": "first"}');
SELECT * FROM steps('plain');
SELECT run('plain', 'first');
SELECT run('plain', 'middle');
SELECT * FROM steps('plain');

-- A plain INSERT decides each job from its deps as they stand: a completed dep is satisfied, a
-- missing one pending (one dep for a step named twice; elements that name no step are ignored), a
-- cancelled one cancels the job unless its ignore_cancelled says otherwise, and a bare name that
-- only a sub-workflow has, or [workflow_id, "*"], waits for the whole sub-workflow.
SELECT count(*) FROM oban_insert_workflow('{"workflow_id": "settled", "jobs": [
    {"name": "done", "worker": "W"}, {"name": "dropped", "worker": "W"},
    {"name": "sub", "workflow": {"workflow_id": "settled-sub", "jobs": [{"name": "x", "worker": "W"}]}}]}');
SELECT run('settled', 'done');
SELECT run('settled', 'dropped', 'cancelled');
INSERT INTO oban_jobs (worker, meta) VALUES
    ('W', '{"workflow_id": "settled", "name": "after_done", "deps": ["done"]}'),
    ('W', '{"workflow_id": "settled", "name": "twice", "deps": ["later", ["settled", "later"], 7, ["settled"]]}'),
    ('W', '{"workflow_id": "settled", "name": "after_dropped", "deps": ["done", "dropped"]}'),
    ('W', '{"workflow_id": "settled", "name": "forgiven", "deps": ["dropped"], "ignore_cancelled": true}'),
    ('W', '{"workflow_id": "settled", "name": "after_sub", "deps": ["sub"]}'),
    ('W', '{"workflow_id": "settled", "name": "after_all_sub", "deps": [["settled-sub", "*"]]}');
SELECT name, state, errors->-1->>'error' AS error
FROM (SELECT *, meta->>'name' AS name FROM oban_jobs) AS j
WHERE meta->>'workflow_id' = 'settled' ORDER BY id;
-- Each suspended job's edges, and its wait when it waits on two deps or more.
SELECT j.meta->>'name' AS name, w.remaining,
       (SELECT count(*) FROM oban_workflow_edges AS e WHERE e.job_id = j.id) AS edges
FROM oban_jobs AS j LEFT JOIN oban_workflow_waits AS w ON w.job_id = j.id
WHERE j.meta->>'workflow_id' = 'settled' AND j.state = 'suspended' ORDER BY 1;
SELECT run('settled-sub', 'x');
SELECT * FROM steps('settled') WHERE name LIKE 'after_%sub';
INSERT INTO oban_jobs (worker, meta) VALUES
    ('W', '{"workflow_id": "settled", "name": "late_sub", "deps": ["sub"]}'),
    ('W', '{"workflow_id": "settled", "name": "late_all_sub", "deps": [["settled-sub", "*"]]}');
SELECT * FROM steps('settled') WHERE name LIKE 'late_%';
INSERT INTO oban_jobs (worker, meta) VALUES ('W', '{"workflow_id": "settled", "name": "later"}');
SELECT run('settled', 'later');
SELECT * FROM steps('settled') WHERE name = 'twice';
SELECT counts_exact('settled');
-- An index named as 0.6.0's workflow index (an adopted table keeps its own): the look-ups go
-- through oban_workflow_steps, and the deps are decided as they always were.
BEGIN;
CREATE INDEX oban_jobs_workflow_index ON oban_jobs ((meta->>'name'), (meta->>'workflow_id'))
    WHERE state <> 'completed';
INSERT INTO oban_jobs (worker, meta) VALUES
    ('W', '{"workflow_id": "settled", "name": "adopted", "deps": ["done", "later"]}');
SELECT * FROM steps('settled') WHERE name = 'adopted';
ROLLBACK;
-- Jobs of one INSERT find each other by name: a dep inserted completed satisfies its dependent
-- (the statement's finished step releases it), a dep inserted waiting keeps its dependent waiting.
INSERT INTO oban_jobs (worker, state, completed_at, meta) VALUES
    ('W', 'completed', now(), '{"workflow_id": "together", "name": "done"}'),
    ('W', 'available', NULL, '{"workflow_id": "together", "name": "next", "deps": ["done"]}'),
    ('W', 'available', NULL, '{"workflow_id": "together", "name": "last", "deps": ["next"]}');
SELECT * FROM steps('together');
SELECT run('together', 'next');
SELECT * FROM steps('together');
-- Two jobs of a workflow under one name (a plain INSERT does not refuse it): a dep on the name
-- stands on the first of them by id.
INSERT INTO oban_jobs (worker, meta) VALUES
    ('W', '{"workflow_id": "twins", "name": "dup"}'), ('W', '{"workflow_id": "twins", "name": "dup"}');
UPDATE oban_jobs SET state = 'cancelled', cancelled_at = now()
WHERE id = (SELECT min(id) FROM oban_jobs WHERE meta->>'workflow_id' = 'twins');
UPDATE oban_jobs SET state = 'completed', completed_at = now()
WHERE id = (SELECT max(id) FROM oban_jobs WHERE meta->>'workflow_id' = 'twins');
INSERT INTO oban_jobs (worker, meta) VALUES ('W', '{"workflow_id": "twins", "name": "after", "deps": ["dup"]}');
SELECT * FROM steps('twins');
-- A job deleted and inserted again under its id by one statement: its old wait is still there
-- when the new row's deps are decided, and the insert goes through.
INSERT INTO oban_jobs (worker, meta) VALUES ('W', '{"workflow_id": "settled", "name": "held", "deps": ["missing"]}');
WITH gone AS (DELETE FROM oban_jobs WHERE meta->>'workflow_id' = 'settled' AND meta->>'name' = 'held' RETURNING id)
INSERT INTO oban_jobs (id, worker, meta) OVERRIDING SYSTEM VALUE
SELECT id, 'W', '{"workflow_id": "settled", "name": "again", "deps": ["missing"]}' FROM gone;
SELECT * FROM steps('settled') WHERE name IN ('held', 'again');

-- oban_cancel_workflow cancels every unfinished job, sub-workflows included.
SELECT count(*) FROM oban_insert_workflow('{"workflow_id": "abandoned", "jobs": [
    {"name": "a", "worker": "W"},
    {"name": "sub", "workflow": {"workflow_id": "abandoned-sub", "jobs": [{"name": "x", "worker": "W"}]}},
    {"name": "b", "worker": "W", "deps": ["a", "sub"]}]}');
SELECT oban_cancel_workflow('abandoned') AS cancelled;
SELECT oban_cancel_workflow('abandoned') AS again;
SELECT oban_flush_workflows() >= 0 AS flushed;
SELECT id, state FROM oban_workflows WHERE id LIKE 'abandoned%' ORDER BY id;

-- Releasing never undoes an ack: a user trigger refuses to release "guarded" jobs. The ack commits,
-- the flush warns and leaves the workflow; once the cause is gone, repair mends it.
CREATE FUNCTION refuse_release() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.state = 'available' AND NEW.meta->>'name' = 'guarded' THEN
        RAISE EXCEPTION 'not today';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER refuse_release BEFORE UPDATE ON oban_jobs FOR EACH ROW EXECUTE FUNCTION refuse_release();
SELECT count(*) FROM oban_insert_workflow('{"workflow_id": "isolated", "jobs": [
    {"name": "a", "worker": "W"}, {"name": "guarded", "worker": "W", "deps": ["a"]},
    {"name": "free", "worker": "W", "deps": ["a"]}]}');
SELECT run('isolated', 'a');
SELECT * FROM steps('isolated');
SELECT counts_exact('isolated');  -- the refused release in the ack counted nothing
DROP TRIGGER refuse_release ON oban_jobs;
UPDATE oban_workflow_rows SET updated_at = updated_at - interval '5 minutes' WHERE id = 'isolated';
SELECT oban_repair_workflows(interval '60 seconds') AS repaired;
SELECT * FROM steps('isolated');

-- The release in the ack changes a job as an UPDATE of its state would, whatever the table has
-- gained since: a check on the state refuses it, and so does a check added NOT VALID that the job's
-- row breaks (the ack commits; the flush releases the other dependent and warns about this one).
ALTER TABLE oban_jobs ADD CONSTRAINT not_in_blocked CHECK (state::text <> 'available' OR queue <> 'blocked');
SELECT count(*) FROM oban_insert_workflow('{"workflow_id": "checked", "jobs": [
    {"name": "a", "worker": "W"}, {"name": "blocked", "worker": "W", "queue": "blocked", "deps": ["a"]},
    {"name": "free", "worker": "W", "deps": ["a"]}]}');
SELECT run('checked', 'a');
SELECT * FROM steps('checked');
ALTER TABLE oban_jobs DROP CONSTRAINT not_in_blocked;
SELECT count(*) FROM oban_insert_workflow('{"workflow_id": "checked-later", "jobs": [
    {"name": "a", "worker": "W"}, {"name": "urgent", "worker": "W", "priority": 5, "deps": ["a"]}]}');
ALTER TABLE oban_jobs ADD CONSTRAINT calm CHECK (priority < 3) NOT VALID;
SELECT run('checked-later', 'a');
SELECT * FROM steps('checked-later');
ALTER TABLE oban_jobs DROP CONSTRAINT calm;
-- With oban_jobs_state_changed disabled (as a bulk load might), a release in the ack goes uncounted,
-- as the UPDATE it stands for would: here the ack is an insert of the dep, completed.
INSERT INTO oban_jobs (worker, meta) VALUES ('W', '{"workflow_id": "uncounted", "name": "b", "deps": ["a"]}');
ALTER TABLE oban_jobs DISABLE TRIGGER oban_jobs_state_changed;
INSERT INTO oban_jobs (worker, state, completed_at, meta)
VALUES ('W', 'completed', now(), '{"workflow_id": "uncounted", "name": "a"}');
ALTER TABLE oban_jobs ENABLE TRIGGER oban_jobs_state_changed;
SELECT * FROM steps('uncounted');
SELECT suspended, available, completed FROM oban_workflows WHERE id = 'uncounted';
-- A job whose scheduled_at is ahead is released scheduled.
SELECT count(*) FROM oban_insert_workflow('{"workflow_id": "later", "jobs": [
    {"name": "a", "worker": "W"}, {"name": "b", "worker": "W", "scheduled_at": "2999-01-01T00:00:00", "deps": ["a"]}]}');
SELECT run('later', 'a');
SELECT * FROM steps('later');
SELECT counts_exact('later');

-- Repair: a dep deleted (or never inserted) cancels the dependent, or with ignore_deleted releases it.
SELECT count(*) FROM oban_insert_workflow('{"workflow_id": "orphaned", "jobs": [
    {"name": "a", "worker": "W"}, {"name": "b", "worker": "W", "deps": ["a"]}]}');
SELECT count(*) FROM oban_insert_workflow('{"workflow_id": "forgiving", "ignore_deleted": true, "jobs": [
    {"name": "a", "worker": "W"}, {"name": "b", "worker": "W", "deps": ["a"]}]}');
DELETE FROM oban_jobs WHERE meta->>'name' = 'a' AND meta->>'workflow_id' IN ('orphaned', 'forgiving');
SELECT oban_repair_workflows(interval '1 hour') AS too_young;
UPDATE oban_workflow_rows SET updated_at = updated_at - interval '5 minutes' WHERE id IN ('orphaned', 'forgiving');
SELECT oban_repair_workflows(interval '60 seconds') AS repaired;
SELECT meta->>'workflow_id' AS workflow, name, state, errors->-1->>'error' AS error
FROM (SELECT *, meta->>'name' AS name FROM oban_jobs) AS j
WHERE meta->>'workflow_id' IN ('orphaned', 'forgiving') ORDER BY id;

-- Repair's clock (oban_workflow_rows.updated_at): NULL while no job of the workflow waits; set by the
-- insert that makes the row, or the fold that first finds one waiting, then moved on at most once a
-- second, so that a busy workflow's folds are HOT updates; NULL again once none waits.
SELECT count(*) FROM oban_insert_workflow('{"workflow_id": "clock-at-once", "jobs": [
    {"name": "a", "worker": "W"}, {"name": "b", "worker": "W", "deps": ["a"]}]}');
SELECT suspended, updated_at IS NOT NULL AS set_by_the_insert FROM oban_workflow_rows WHERE id = 'clock-at-once';
SELECT count(*) FROM oban_insert_workflow('{"workflow_id": "clock", "jobs": [{"name": "a", "worker": "W"}]}');
SELECT count(*) FROM oban_append_workflow('clock', '[{"name": "b", "worker": "W", "deps": ["a"]},
    {"name": "c", "worker": "W", "deps": ["b"]}, {"name": "d", "worker": "W", "deps": ["c"]}]');
SELECT updated_at IS NULL AS unset_before_the_fold FROM oban_workflow_rows WHERE id = 'clock';
SELECT oban_flush_workflows() >= 0 AS flushed;
SELECT suspended, updated_at IS NOT NULL AS set FROM oban_workflow_rows WHERE id = 'clock';
-- A clock under a second old is left as it is (set ahead here, so that the test never races the
-- clock), and the folds' updates of the row are HOT: the update to executing's, in place, and the
-- flush's of the ack.
UPDATE oban_workflow_rows SET updated_at = timezone('UTC', now()) + interval '1 hour' WHERE id = 'clock';
BEGIN;  -- (the counts are read within one transaction: earlier ones' may not be reported yet)
CREATE TEMP TABLE rows_updated AS SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_xact_user_tables
WHERE relid = 'oban_workflow_rows'::regclass;
SELECT run('clock', 'a');  -- releases b; c and d still wait
SELECT oban_flush_workflows() >= 0 AS flushed;
SELECT s.n_tup_upd - b.n_tup_upd AS updates, s.n_tup_hot_upd - b.n_tup_hot_upd AS hot
FROM pg_stat_xact_user_tables AS s, rows_updated AS b WHERE s.relid = 'oban_workflow_rows'::regclass;
COMMIT;
DROP TABLE rows_updated;
SELECT suspended, updated_at > timezone('UTC', now()) AS left FROM oban_workflow_rows WHERE id = 'clock';
-- An older clock is moved to now.
UPDATE oban_workflow_rows SET updated_at = updated_at - interval '2 hours' WHERE id = 'clock';
SELECT run('clock', 'b');  -- releases c; d still waits
SELECT oban_flush_workflows() >= 0 AS flushed;
SELECT suspended, updated_at BETWEEN timezone('UTC', now()) - interval '1 minute' AND timezone('UTC', now())
       AS moved_to_now
FROM oban_workflow_rows WHERE id = 'clock';
SELECT run('clock', 'c'), run('clock', 'd');
SELECT oban_flush_workflows() >= 0 AS flushed;
SELECT w.state, w.suspended, r.updated_at IS NULL AS unset
FROM oban_workflows AS w JOIN oban_workflow_rows AS r USING (id) WHERE id = 'clock';

-- Validation: each bad spec raises its SQLSTATE and inserts nothing.
CREATE FUNCTION rejects(spec jsonb) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    before bigint := (SELECT count(*) FROM oban_jobs);
BEGIN
    PERFORM oban_insert_workflow(spec);
    RETURN 'accepted';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ' ' || SQLERRM || CASE WHEN (SELECT count(*) FROM oban_jobs) = before THEN '' ELSE ' (CHANGED!)' END;
END $$;
SELECT rejects('[]');
SELECT rejects('{}');
SELECT rejects('{"jobs": []}');
SELECT rejects('{"jobs": {}}');
SELECT rejects('{"jobs": [{"name": "a"}]}');
SELECT rejects('{"jobs": [{"worker": "W"}]}');
SELECT rejects('{"jobs": [{"name": "a", "worker": ""}]}');
SELECT rejects('{"jobs": [{"name": "a", "worker": "W"}, {"name": "a", "worker": "W"}]}');
SELECT rejects('{"jobs": [{"name": "a", "worker": "W", "deps": ["nope"]}]}');
SELECT rejects('{"jobs": [{"name": "a", "worker": "W", "deps": ["a"]}]}');
SELECT rejects('{"jobs": [{"name": "a", "worker": "W", "deps": ["c"]}, {"name": "b", "worker": "W", "deps": ["a"]},
                          {"name": "c", "worker": "W", "deps": ["b"]}]}');
SELECT rejects('{"jobs": [{"name": "a", "worker": "W", "args": [1]}]}');
SELECT rejects('{"jobs": [{"name": "a", "worker": "W", "priority": -1}]}');
SELECT rejects('{"jobs": [{"name": "a", "worker": "W", "max_attempts": "3"}]}');
SELECT rejects('{"jobs": [{"name": "a", "worker": "W", "deps": [["only-one"]]}]}');
SELECT rejects('{"jobs": [{"name": "a", "worker": "W", "tags": [1]}]}');
SELECT rejects('{"unique": "yes", "jobs": [{"name": "a", "worker": "W"}]}');
SELECT rejects('{"jobs": [{"name": "s", "workflow": {"jobs": []}}]}');
SELECT rejects('{"jobs": [{"name": "a", "worker": "W", "scheduled_at": "not a time"}]}');
SELECT rejects((SELECT '{"jobs": [{"name": "s", "workflow": ' || repeat('{"jobs": [{"name": "s", "workflow": ', 9)
                       || '{"jobs": [{"name": "a", "worker": "W"}]}' || repeat('}]}', 9) || '}]}')::jsonb);
SELECT rejects('{"jobs": [{"name": "a", "worker": "W", "deps": ["sub"]},
                          {"name": "sub", "deps": ["a"], "workflow": {"jobs": [{"name": "x", "worker": "W"}]}}]}');
SELECT name, state FROM oban_append_workflow('nope', '[{"name": "x", "worker": "W"}]');
SELECT name, state FROM oban_append_workflow('diamond', '[{"name": "a", "worker": "W"}]');
SELECT name, state FROM oban_append_workflow('diamond', '[{"name": "z", "worker": "W", "deps": ["nope"]}]');

-- The statement that completes a job's deps releases it itself when at most 8 of them were left to
-- count down; a job waiting on more is left to the flush. One ack call completes the 9 deps of
-- "nine" and the 8 of "eight" (one statement), before any flush.
SELECT count(*) FROM oban_insert_workflow(jsonb_build_object('workflow_id', 'near', 'jobs',
    (SELECT jsonb_agg(jsonb_build_object('name', 'd' || n, 'worker', 'W')) FROM generate_series(1, 9) n)
    || jsonb_build_array(
        jsonb_build_object('name', 'eight', 'worker', 'W', 'deps', (SELECT jsonb_agg('d' || n) FROM generate_series(1, 8) n)),
        jsonb_build_object('name', 'nine', 'worker', 'W', 'deps', (SELECT jsonb_agg('d' || n) FROM generate_series(1, 9) n)))));
UPDATE oban_jobs SET state = 'executing', attempt = 1 WHERE meta->>'workflow_id' = 'near' AND meta->>'name' LIKE 'd_';
SELECT oban_ack_jobs((SELECT jsonb_agg(jsonb_build_object('id', id, 'state', 'completed'))
                      FROM oban_jobs WHERE meta->>'workflow_id' = 'near' AND meta->>'name' LIKE 'd_')) AS acked;
SELECT * FROM steps('near') WHERE name IN ('eight', 'nine');  -- eight released by the ack
-- The ack deleted the released job's wait and edges; nine's are left to the flush.
SELECT j.meta->>'name' AS name,
       (SELECT count(*) FROM oban_workflow_waits AS w WHERE w.job_id = j.id) AS waits,
       (SELECT count(*) FROM oban_workflow_edges AS e WHERE e.job_id = j.id) AS edges
FROM oban_jobs AS j WHERE j.meta->>'workflow_id' = 'near' AND j.meta->>'name' IN ('eight', 'nine') ORDER BY 1;
-- The release's counts went into the ack's journal row, the only one: the insert counted its jobs in
-- the row it made, and the update to executing moved jobs between unfinished states only, and
-- folded its counts into the workflow's row in place.
SELECT count(*) AS journal_rows, counts_exact('near') FROM oban_workflow_journal WHERE workflow_id = 'near';
SELECT oban_flush_workflows() >= 0 AS flushed;
SELECT * FROM steps('near') WHERE name IN ('eight', 'nine');  -- nine by the flush
SELECT (SELECT count(*) FROM oban_workflow_waits WHERE workflow_id = 'near') AS waits_left,
       (SELECT count(*) FROM oban_workflow_edges WHERE dep_workflow_id = 'near') AS edges_left;

-- A dep named three times (by name, twice, and as [workflow_id, name]) is one edge, and the wait
-- counts it once beside the sub-workflow's.
SELECT name, state FROM oban_insert_workflow('{"workflow_id": "thrice", "jobs": [{"name": "a", "worker": "W"},
    {"name": "s", "workflow": {"jobs": [{"name": "x", "worker": "W"}]}},
    {"name": "b", "worker": "W", "deps": ["a", "a", ["thrice", "a"], "s"]}]}');
SELECT w.remaining, array_agg(e.dep_name ORDER BY e.dep_name) AS edges
FROM oban_workflow_waits AS w JOIN oban_workflow_edges AS e USING (job_id)
WHERE w.workflow_id = 'thrice' GROUP BY w.remaining;

-- An install whose edges lost their primary key (altered by hand): the ack still commits and
-- leaves its dependent to the flush, which says what is missing (42704) rather than scan the table.
SELECT count(*) FROM oban_insert_workflow('{"workflow_id": "keyless", "jobs": [{"name": "a", "worker": "W"},
    {"name": "b", "worker": "W", "deps": ["a"]}]}');
BEGIN;
ALTER TABLE oban_workflow_edges DROP CONSTRAINT oban_workflow_edges_pkey;
UPDATE oban_jobs SET state = 'executing', attempt = 1 WHERE meta->>'workflow_id' = 'keyless' AND meta->>'name' = 'a';
UPDATE oban_jobs SET state = 'completed', completed_at = now() WHERE meta->>'workflow_id' = 'keyless' AND meta->>'name' = 'a';
SELECT * FROM steps('keyless');
SAVEPOINT flush;
\set VERBOSITY sqlstate
SELECT oban_flush_workflows();
\set VERBOSITY default
ROLLBACK TO flush;
SELECT * FROM steps('keyless');
ROLLBACK;

-- One statement completing many steps: 200 two-step chains, and "pair"'s b waiting on two of the
-- steps (found once per step, released once). Every b is released by the ack, before any flush.
SELECT count(*) FROM oban_insert_workflow('{"workflow_id": "pair", "jobs": [{"name": "a1", "worker": "W"},
    {"name": "a2", "worker": "W"}, {"name": "b", "worker": "W", "deps": ["a1", "a2"]}]}');
SELECT count(*) FROM generate_series(1, 200) AS n, LATERAL oban_insert_workflow(jsonb_build_object(
    'workflow_id', 'chain-' || n, 'jobs', '[{"name": "a", "worker": "W"}, {"name": "b", "worker": "W", "deps": ["a"]}]'::jsonb));
UPDATE oban_jobs SET state = 'executing', attempt = 1
WHERE meta->>'workflow_id' = 'pair' AND meta->>'name' LIKE 'a_'
   OR meta->>'workflow_id' LIKE 'chain-%' AND meta->>'name' = 'a';
SELECT oban_ack_jobs((SELECT jsonb_agg(jsonb_build_object('id', id, 'state', 'completed')) FROM oban_jobs
                      WHERE state = 'executing' AND (meta->>'workflow_id' = 'pair' OR meta->>'workflow_id' LIKE 'chain-%')))
       IS NOT NULL AS acked;
SELECT meta->>'workflow_id' = 'pair' AS pair, state, count(*) FROM oban_jobs
WHERE (meta->>'workflow_id' = 'pair' OR meta->>'workflow_id' LIKE 'chain-%') AND meta->>'name' = 'b'
GROUP BY 1, 2 ORDER BY 1, 2;
SELECT counts_exact('pair') AND counts_exact('chain-1') AND counts_exact('chain-200') AS exact;
-- Every b's wait and edges went with its release.
SELECT (SELECT count(*) FROM oban_workflow_waits WHERE workflow_id = 'pair' OR workflow_id LIKE 'chain-%') AS waits_left,
       (SELECT count(*) FROM oban_workflow_edges WHERE dep_workflow_id = 'pair' OR dep_workflow_id LIKE 'chain-%') AS edges_left;

-- A job's workflow_id, and in a workflow its step name, are fixed at insert (0A000), so an update
-- never leaves a job counted in the wrong workflow; other meta keys change freely.
TRUNCATE oban_jobs RESTART IDENTITY;
SELECT id AS moved_id FROM oban_insert_jobs('[{"worker": "W", "meta": {"workflow_id": "fixed", "name": "a"}},
                                             {"worker": "W", "meta": {"name": "plain"}}]') WHERE meta ? 'workflow_id' \gset
\set VERBOSITY sqlstate
UPDATE oban_jobs SET meta = meta || '{"workflow_id": "elsewhere"}' WHERE id = :moved_id;
UPDATE oban_jobs SET meta = meta - 'workflow_id' WHERE id = :moved_id;
UPDATE oban_jobs SET meta = meta || '{"name": "renamed"}' WHERE id = :moved_id;
UPDATE oban_jobs SET meta = meta || '{"workflow_id": "joined"}' WHERE meta->>'name' = 'plain';
\set VERBOSITY default
UPDATE oban_jobs SET meta = meta || '{"name": "plain, renamed"}' WHERE meta->>'name' = 'plain';
UPDATE oban_jobs SET meta = meta || '{"workflow_id": "elsewhere", "name": "b"}' WHERE id = :moved_id;
UPDATE oban_jobs SET meta = meta || '{"note": "kept"}' WHERE id = :moved_id;
SELECT meta FROM oban_jobs WHERE id = :moved_id OR meta->>'name' LIKE 'plain%' ORDER BY id;
SELECT counts_exact('fixed') AS exact, (SELECT count(*) FROM oban_workflows WHERE id IN ('elsewhere', 'joined')) AS others;

-- A workflow given no id gets a version 7 UUID: the time in milliseconds, then random bits, so ids
-- made later sort later.
SELECT DISTINCT workflow_id AS first_id FROM oban_insert_workflow('{"jobs": [{"name": "a", "worker": "W"}]}') \gset
SELECT pg_sleep(0.002);
SELECT DISTINCT workflow_id AS second_id FROM oban_insert_workflow('{"jobs": [{"name": "a", "worker": "W"}]}') \gset
SELECT :'first_id' ~ '^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$' AS version_7,
       :'first_id' < :'second_id' AS later_sorts_later,
       abs(extract(epoch FROM now()) * 1000
           - ('x' || lpad(replace(left(:'first_id', 13), '-', ''), 16, '0'))::bit(64)::bigint) < 60000 AS stamped_now;
-- Ids made within one millisecond differ (a workflow and its sub-workflows here).
SELECT count(DISTINCT workflow_id) AS distinct_ids FROM oban_insert_workflow('{"jobs": [{"name": "a", "worker": "W"},
    {"name": "s1", "workflow": {"jobs": [{"name": "x", "worker": "W"}]}},
    {"name": "s2", "workflow": {"jobs": [{"name": "x", "worker": "W"}]}}]}');

-- Each step's tags and args as given, or none.
SELECT count(*) FROM oban_insert_workflow('{"workflow_id": "tagged", "jobs": [
    {"name": "a", "worker": "W", "tags": ["x", "y"], "args": {"n": 1}}, {"name": "b", "worker": "W", "tags": []},
    {"name": "c", "worker": "W"}]}');
SELECT meta->>'name' AS name, tags, args FROM oban_jobs WHERE meta->>'workflow_id' = 'tagged' ORDER BY id;

-- A job waiting on a whole workflow ([id, "*"]) whose sub-workflow finishes last is released by the
-- flush that folds the sub-workflow's last ack.
SELECT count(*) FROM oban_insert_workflow('{"workflow_id": "outer", "jobs": [
    {"name": "a", "worker": "W"},
    {"name": "inner", "workflow": {"workflow_id": "outer-inner", "jobs": [{"name": "x", "worker": "W"}]}}]}');
SELECT count(*) FROM oban_insert_workflow('{"workflow_id": "after-outer", "jobs": [
    {"name": "w", "worker": "W", "deps": [["outer", "*"]]}]}');
SELECT run('outer', 'a');
SELECT * FROM steps('after-outer');
SELECT run('outer-inner', 'x');
SELECT * FROM steps('after-outer');

-- A dependent whose args are stored out of line (TOAST: 12,800 bytes of hex digits, which do not
-- compress, cannot stay in an 8 kB page) keeps them when the ack releases it.
SELECT count(*) FROM oban_insert_workflow(jsonb_build_object('workflow_id', 'toasted', 'jobs', jsonb_build_array(
    jsonb_build_object('name', 'a', 'worker', 'W'),
    jsonb_build_object('name', 'b', 'worker', 'W', 'deps', jsonb_build_array('a'),
        'args', jsonb_build_object('blob', (SELECT string_agg(md5(g::text), '') FROM generate_series(1, 400) AS g))))));
SELECT length(args->>'blob') AS blob_bytes, pg_column_size(args) > 8192 AS larger_than_a_page
FROM oban_jobs WHERE meta->>'workflow_id' = 'toasted' AND meta->>'name' = 'b';
SELECT run('toasted', 'a');
SELECT state, md5(args->>'blob') = (SELECT md5(string_agg(md5(g::text), '')) FROM generate_series(1, 400) AS g) AS intact
FROM oban_jobs WHERE meta->>'workflow_id' = 'toasted' AND meta->>'name' = 'b';

-- oban_workflow_steps holds a row for every workflow job and for nothing else: after everything
-- above (inserts of every kind, deletes, rolled-back subtransactions), and after more of each.
CREATE FUNCTION steps_mismatched() RETURNS bigint LANGUAGE sql AS $$
    SELECT count(*) FROM (
        (SELECT meta->>'workflow_id', meta->>'name', id FROM oban_jobs WHERE meta ? 'workflow_id'
         EXCEPT ALL SELECT workflow_id, name, job_id FROM oban_workflow_steps)
        UNION ALL
        (SELECT workflow_id, name, job_id FROM oban_workflow_steps
         EXCEPT ALL SELECT meta->>'workflow_id', meta->>'name', id FROM oban_jobs WHERE meta ? 'workflow_id')
    ) AS differences
$$;
SELECT steps_mismatched();
BEGIN;
INSERT INTO oban_jobs (worker, meta) VALUES ('W', '{"workflow_id": "kept-steps", "name": "k1"}');
SAVEPOINT before_more;
INSERT INTO oban_jobs (worker, meta) VALUES ('W', '{"workflow_id": "kept-steps", "name": "k2"}'),
    ('W', '{"workflow_id": "kept-steps"}');
ROLLBACK TO before_more;
INSERT INTO oban_jobs (worker, meta) VALUES ('W', '{"workflow_id": "kept-steps"}');
COMMIT;
SELECT name FROM oban_workflow_steps WHERE workflow_id = 'kept-steps' ORDER BY name;
DELETE FROM oban_jobs WHERE meta->>'workflow_id' = 'kept-steps' AND meta->>'name' = 'k1';
SELECT name FROM oban_workflow_steps WHERE workflow_id = 'kept-steps' ORDER BY name;
DELETE FROM oban_jobs WHERE meta->>'workflow_id' = 'kept-steps';  -- the one without a name
SELECT count(*) AS left_behind FROM oban_workflow_steps WHERE workflow_id = 'kept-steps';
-- One statement deletes a job and inserts another under its id and name: the job keeps one row.
INSERT INTO oban_jobs (worker, meta) VALUES ('W', '{"workflow_id": "kept-steps", "name": "k3"}');
WITH gone AS (DELETE FROM oban_jobs WHERE meta->>'workflow_id' = 'kept-steps' RETURNING id)
INSERT INTO oban_jobs (id, worker, meta) OVERRIDING SYSTEM VALUE
SELECT id, 'W', '{"workflow_id": "kept-steps", "name": "k3"}' FROM gone;
SELECT name FROM oban_workflow_steps WHERE workflow_id = 'kept-steps';
SELECT steps_mismatched();

-- An ack folds its counts into the workflow's row in place, leaving no journal row, when nothing
-- needs to hear of it from the journal: every dependent of its completed steps released by the ack
-- itself (or none), and no job waiting on the workflow as a whole if it finishes with it.
-- Otherwise it journals: a dependent the ack leaves waiting (another dep of it still running; or
-- more deps left than the ack counts down, kAckReleaseDeps), a step that ended other than
-- completed, or the last jobs of a workflow that a job waits on as a whole, or of a sub-workflow.
-- Each ack's journal rows are listed (by step) before the flush; the counts stay exact throughout.
SELECT count(*) FROM oban_insert_workflow(jsonb_build_object('workflow_id', 'in-place', 'jobs',
    jsonb_build_array(jsonb_build_object('name', 'a', 'worker', 'W'),
                      jsonb_build_object('name', 'x', 'worker', 'W'),
                      jsonb_build_object('name', 'b', 'worker', 'W', 'deps', jsonb_build_array('a')),
                      jsonb_build_object('name', 'c', 'worker', 'W', 'deps', jsonb_build_array('b', 'x')),
                      jsonb_build_object('name', 'e', 'worker', 'W', 'deps', jsonb_build_array('c')))
    || (SELECT jsonb_agg(jsonb_build_object('name', 'f' || n, 'worker', 'W')) FROM generate_series(1, 10) AS n)
    || jsonb_build_array(jsonb_build_object('name', 'join', 'worker', 'W',
           'deps', (SELECT jsonb_agg('f' || n) FROM generate_series(1, 10) AS n)))));
SELECT oban_flush_workflows() >= 0 AS flushed;
CREATE FUNCTION ack_journal(workflow text, step text) RETURNS TABLE (acked text, journal text)
LANGUAGE plpgsql AS $$
DECLARE
    job bigint;
BEGIN
    SELECT id INTO job FROM oban_jobs WHERE meta->>'workflow_id' = workflow AND meta->>'name' = step;
    UPDATE oban_jobs SET state = 'executing', attempt = attempt + 1, attempted_at = now() WHERE id = job;
    PERFORM oban_flush_workflows();
    PERFORM oban_complete_job(job);
    RETURN QUERY SELECT step, coalesce(string_agg(coalesce(array_to_string(j.finished_names, ','), '-'), ' '
                                                  ORDER BY j.id), '(none)')
                 FROM oban_workflow_journal AS j WHERE j.workflow_id = workflow;
    PERFORM oban_flush_workflows();
END
$$;
SELECT * FROM ack_journal('in-place', 'a');  -- b released by the ack: in place
SELECT * FROM ack_journal('in-place', 'b');  -- c also waits on x, still running: journalled
SELECT * FROM ack_journal('in-place', 'x');  -- c released by the ack: in place
SELECT * FROM ack_journal('in-place', 'f1'); -- the join waits on 10: counted down by the flush
SELECT counts_exact('in-place') AS exact;
-- f2 likewise; from f3 the join is near (8 deps left) but waits on the others: journalled; f10's
-- ack releases it: in place.
SELECT string_agg(a.journal, ' ' ORDER BY n) AS journals
FROM generate_series(2, 10) AS n, ack_journal('in-place', 'f' || n) AS a;
SELECT * FROM steps('in-place') WHERE name IN ('c', 'e', 'join');
SELECT * FROM ack_journal('in-place', 'c');  -- e released: in place
SELECT * FROM ack_journal('in-place', 'join');  -- no dependent: in place
SELECT * FROM ack_journal('in-place', 'e');  -- the workflow's last job, none waiting on it: in place
SELECT state, counts_exact('in-place') AS exact FROM oban_workflows WHERE id = 'in-place';
-- A job waits on "waited-on" as a whole: the ack of its last job journals, and the flush releases
-- the job. A sub-workflow's last job journals (its finish may finish its parent's tree).
SELECT count(*) FROM oban_insert_workflow('{"workflow_id": "waited-on", "jobs": [{"name": "a", "worker": "W"}]}');
SELECT count(*) FROM oban_insert_workflow('{"workflow_id": "waiter", "jobs": [
    {"name": "w", "worker": "W", "deps": [["waited-on", "*"]]}]}');
SELECT * FROM ack_journal('waited-on', 'a');
SELECT * FROM steps('waiter');
SELECT count(*) FROM oban_insert_workflow('{"workflow_id": "has-sub", "jobs": [
    {"name": "p", "worker": "W"}, {"name": "s", "workflow": {"workflow_id": "the-sub", "jobs": [{"name": "a", "worker": "W"}]}}]}');
SELECT * FROM ack_journal('the-sub', 'a');
SELECT id, state, counts_exact(id) AS exact FROM oban_workflows WHERE id IN ('has-sub', 'the-sub') ORDER BY id;
-- Under REPEATABLE READ the ack journals (the fold reads the row's latest version, which the
-- transaction's snapshot may not show).
SELECT count(*) FROM oban_insert_workflow('{"workflow_id": "in-place-rr", "jobs": [
    {"name": "a", "worker": "W"}, {"name": "b", "worker": "W", "deps": ["a"]}]}');
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT * FROM ack_journal('in-place-rr', 'a');
COMMIT;
SELECT * FROM steps('in-place-rr');
DROP FUNCTION ack_journal(text, text);

DROP FUNCTION rejects(jsonb);
DROP FUNCTION counts_exact(text);
DROP FUNCTION run(text, text, text);
DROP FUNCTION steps(text);
DROP FUNCTION refuse_release();
