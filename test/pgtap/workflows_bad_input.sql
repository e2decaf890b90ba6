-- Bad workflow specs: each raises its documented SQLSTATE and inserts nothing.
BEGIN;
SELECT plan(76);

CREATE TEMP TABLE before_state AS
SELECT (SELECT count(*) FROM oban_jobs) AS jobs, (SELECT count(*) FROM oban_workflow_rows) AS workflows,
       (SELECT count(*) FROM oban_workflow_waits) AS waits, (SELECT count(*) FROM oban_workflow_edges) AS edges,
       (SELECT count(*) FROM oban_workflow_names) AS names;

CREATE FUNCTION pg_temp.unchanged() RETURNS boolean LANGUAGE sql AS $$
    SELECT (SELECT count(*) FROM oban_jobs) = jobs AND (SELECT count(*) FROM oban_workflow_rows) = workflows
       AND (SELECT count(*) FROM oban_workflow_waits) = waits AND (SELECT count(*) FROM oban_workflow_edges) = edges
       AND (SELECT count(*) FROM oban_workflow_names) = names
    FROM before_state
$$;

-- rejects(spec, sqlstate, description): the error, then that nothing changed.
CREATE FUNCTION pg_temp.rejects(spec jsonb, code text, description text) RETURNS SETOF text LANGUAGE plpgsql AS $$
BEGIN
    RETURN NEXT throws_ok(format('SELECT * FROM oban_insert_workflow(%L::jsonb)', spec), code, NULL, description);
    RETURN NEXT ok(pg_temp.unchanged(), description || ': nothing inserted');
END $$;

SELECT * FROM pg_temp.rejects(NULL, '22004', 'a NULL spec');
SELECT * FROM pg_temp.rejects('[]', '22023', 'a spec that is not an object');
SELECT * FROM pg_temp.rejects('"workflow"', '22023', 'a string spec');
SELECT * FROM pg_temp.rejects('{}', '22023', 'no jobs key');
SELECT * FROM pg_temp.rejects('{"jobs": []}', '22023', 'an empty jobs array');
SELECT * FROM pg_temp.rejects('{"jobs": {"name": "a"}}', '22023', 'jobs not an array');
SELECT * FROM pg_temp.rejects('{"jobs": [42]}', '22023', 'a job that is not an object');
SELECT * FROM pg_temp.rejects('{"jobs": [{"worker": "W"}]}', '22023', 'a job without a name');
SELECT * FROM pg_temp.rejects('{"jobs": [{"name": "", "worker": "W"}]}', '22023', 'an empty step name');
SELECT * FROM pg_temp.rejects('{"jobs": [{"name": "a"}]}', '22023', 'a missing worker');
SELECT * FROM pg_temp.rejects('{"jobs": [{"name": "a", "worker": 7}]}', '22023', 'a worker that is not a string');
SELECT * FROM pg_temp.rejects('{"jobs": [{"name": "a", "worker": "W", "args": "x"}]}', '22023', 'args not an object');
SELECT * FROM pg_temp.rejects('{"jobs": [{"name": "a", "worker": "W", "meta": [1]}]}', '22023', 'meta not an object');
SELECT * FROM pg_temp.rejects('{"jobs": [{"name": "a", "worker": "W", "priority": 1.5}]}', '22023', 'a fractional priority');
SELECT * FROM pg_temp.rejects('{"jobs": [{"name": "a", "worker": "W", "max_attempts": 0}]}', '22023', 'max_attempts 0');
SELECT * FROM pg_temp.rejects('{"jobs": [{"name": "a", "worker": "W", "queue": ""}]}', '22023', 'an empty queue');
SELECT * FROM pg_temp.rejects('{"jobs": [{"name": "a", "worker": "W", "tags": ["x", 1]}]}', '22023', 'a tag that is not a string');
SELECT * FROM pg_temp.rejects('{"jobs": [{"name": "a", "worker": "W", "deps": 5}]}', '22023', 'deps of the wrong type');
SELECT * FROM pg_temp.rejects('{"jobs": [{"name": "a", "worker": "W", "deps": [["w", "x", "y"]]}]}', '22023', 'a dep triple');
SELECT * FROM pg_temp.rejects('{"ignore_deleted": 1, "jobs": [{"name": "a", "worker": "W"}]}', '22023', 'an option that is not a boolean');
SELECT * FROM pg_temp.rejects('{"jobs": [{"name": "a", "worker": "W"}, {"name": "a", "worker": "W"}]}', '42710', 'duplicate step names');
SELECT * FROM pg_temp.rejects('{"jobs": [{"name": "a", "worker": "W", "deps": ["ghost"]}]}', '42704', 'an unknown dep');
SELECT * FROM pg_temp.rejects('{"jobs": [{"name": "a", "worker": "W", "deps": ["a"]}]}', '42P19', 'a self-dep');
SELECT * FROM pg_temp.rejects('{"jobs": [{"name": "a", "worker": "W", "deps": ["b"]}, {"name": "b", "worker": "W", "deps": ["a"]}]}',
                              '42P19', 'a two-step cycle');
SELECT * FROM pg_temp.rejects((SELECT jsonb_build_object('jobs', jsonb_agg(jsonb_build_object('name', 's' || n, 'worker', 'W',
                                      'deps', jsonb_build_array('s' || (n % 50 + 1))))) FROM generate_series(1, 50) n),
                              '42P19', 'a 50-step cycle');
SELECT * FROM pg_temp.rejects((SELECT ('{"jobs": [{"name": "s", "workflow": ' || repeat('{"jobs": [{"name": "s", "workflow": ', 9)
                                      || '{"jobs": [{"name": "a", "worker": "W"}]}' || repeat('}]}', 9) || '}]}')::jsonb),
                              '54000', 'sub-workflows nested too deep');
SELECT * FROM pg_temp.rejects('{"jobs": [{"name": "a", "worker": "W", "scheduled_at": "soon"}]}', '22007', 'a scheduled_at that is not a timestamp');

SELECT * FROM pg_temp.rejects('{"workflow_id": "me", "jobs": [{"name": "a", "worker": "W", "deps": [["me", "*"]]}]}',
                              '42P19', 'a step waiting for its own whole workflow');
SELECT * FROM pg_temp.rejects('{"jobs": [{"name": "a", "worker": "W", "deps": ["*"]}]}', '22023', 'a bare "*" dep');
SELECT * FROM pg_temp.rejects('{"workflow_id": "same", "jobs": [{"name": "s", "workflow": {"workflow_id": "same", "jobs": [{"name": "a", "worker": "W"}]}}]}',
                              '42710', 'two workflows of one spec with the same workflow_id');

-- Unique workflows (SPEC §5).
SELECT * FROM pg_temp.rejects('{"unique": true, "jobs": [{"name": "a", "worker": "W"}]}', '22023', 'a unique workflow without a name');
SELECT * FROM pg_temp.rejects('{"unique": true, "name": "", "jobs": [{"name": "a", "worker": "W"}]}', '22023', 'a unique workflow with an empty name');
SELECT * FROM pg_temp.rejects('{"unique": true, "name": 7, "jobs": [{"name": "a", "worker": "W"}]}', '22023', 'a unique workflow with a number for a name');
SELECT * FROM pg_temp.rejects('{"unique": "true", "name": "n", "jobs": [{"name": "a", "worker": "W"}]}', '22023', 'unique as a string');
SELECT * FROM pg_temp.rejects('{"name": "n", "jobs": [{"name": "s", "workflow": {"name": "m", "unique": true, "jobs": [{"name": "a", "worker": "W"}]}}]}',
                              '22023', 'a unique sub-workflow');
SELECT throws_ok($$ INSERT INTO oban_jobs (worker, meta) VALUES ('W', '{"workflow_id": "w", "workflow_unique": true}') $$,
                 '22023', NULL, 'a plain INSERT of a unique workflow job without workflow_name');
SELECT throws_ok($$ INSERT INTO oban_jobs (worker, meta) VALUES ('W', '{"workflow_name": "n", "workflow_unique": true}') $$,
                 '22023', NULL, 'a plain INSERT of a unique workflow job without workflow_id');
SELECT throws_ok($$ INSERT INTO oban_jobs (worker, meta) VALUES ('W', '{"workflow_id": "w", "workflow_name": ["n"], "workflow_unique": true}') $$,
                 '22023', NULL, 'a plain INSERT whose workflow_name is not a string');
SELECT ok(pg_temp.unchanged(), 'the rejected plain INSERTs inserted nothing');

SELECT throws_ok($$ SELECT * FROM oban_append_workflow('no-such-workflow', '[{"name": "x", "worker": "W"}]') $$,
                 '42704', NULL, 'appending to a workflow that does not exist');
SELECT ok(pg_temp.unchanged(), 'the failed append inserted nothing');

SELECT * FROM finish();
ROLLBACK;
