-- pgTAP: hostile and malformed calls of every SQL function of the extension (issue 8, point 3).
--
-- Complements bad_input.sql (job lifecycle), workflows_bad_input.sql (workflow specs) and
-- signals_bad_input.sql (signals) with what they leave out: the batch, workflow, inspection,
-- maintenance and trigger functions, NULLs in their every position, wrong JSON shapes, JSON nested
-- 10,000 levels deep, multi-megabyte args, meta, results and payloads, names with quotes,
-- semicolons, backslashes, newlines and unicode, huge and negative numbers and intervals, unknown
-- ids, cycles (inside a spec, through parent ids, across appends) and deps on workflows that do
-- not exist.
--
-- Each hostile call is checked twice: its documented SQLSTATE (README "Errors") or documented
-- result, then that nothing changed — a snapshot of oban_jobs, oban_workflows (the view: counts
-- and states), oban_signals, oban_workflow_names, the waits and edges is the same before and after.
-- At the end the backend still answers and the postmaster was never reset (no crash).
BEGIN;
SELECT plan(302);

SET LOCAL search_path = public, pg_catalog;
SET LOCAL client_min_messages = error;  -- oban_ack_jobs' WARNINGs for skipped entries

SELECT pg_postmaster_start_time() AS postmaster_started \gset

-------------------------------------------------------------------------------------------------------
-- Helpers
-------------------------------------------------------------------------------------------------------
-- Every row version of the tables (id, xmin, ctid: an insert, update or delete changes them) and
-- every workflow's counts and state; cheap even with multi-megabyte rows in the tables.
CREATE FUNCTION pg_temp.snapshot() RETURNS text LANGUAGE sql VOLATILE AS $$
    SELECT concat_ws(' | ',
        (SELECT 'jobs ' || count(*) || ' ' || md5(coalesce(string_agg(concat_ws(',', j.id, j.xmin, j.ctid), ' ' ORDER BY j.id), ''))
         FROM oban_jobs AS j),
        (SELECT 'workflows ' || count(*) || ' ' || md5(coalesce(string_agg(
                    concat_ws(',', w.id, w.state, w.suspended, w.available, w.scheduled, w.executing,
                              w.retryable, w.completed, w.cancelled, w.discarded), E'\n' ORDER BY w.id), ''))
         FROM oban_workflows AS w),
        (SELECT 'signals ' || count(*) || ' ' || md5(coalesce(string_agg(concat_ws(',', s.id, s.xmin, s.ctid), ' ' ORDER BY s.id), ''))
         FROM oban_signals AS s),
        (SELECT 'names ' || count(*) || ' ' || md5(coalesce(string_agg(concat_ws(',', n.name, n.xmin, n.ctid), ' ' ORDER BY n.name), ''))
         FROM oban_workflow_names AS n),
        (SELECT 'waits ' || count(*) || ' ' || md5(coalesce(string_agg(concat_ws(',', w.job_id, w.xmin, w.ctid), ' ' ORDER BY w.job_id), ''))
         FROM oban_workflow_waits AS w),
        (SELECT 'edges ' || count(*) || ' ' || md5(coalesce(string_agg(concat_ws(',', e.job_id, e.dep_workflow_id, e.dep_name, e.xmin), ' '
                                                                     ORDER BY e.job_id, e.dep_workflow_id, e.dep_name), ''))
         FROM oban_workflow_edges AS e))
$$;

-- rejects(call, sqlstate, description): `call` raises `sqlstate`, and nothing changed.
CREATE FUNCTION pg_temp.rejects(call text, errcode text, description text) RETURNS SETOF text
LANGUAGE plpgsql AS $$
DECLARE
    before text := pg_temp.snapshot();
BEGIN
    RETURN NEXT throws_ok(call, errcode, NULL, description || ': raises ' || errcode);
    RETURN NEXT is(pg_temp.snapshot(), before, description || ': nothing changed');
END;
$$;

-- returns(call, expected, description): `call` (one value, as text; NULL for SQL NULL) returns
-- `expected`, and nothing changed.
CREATE FUNCTION pg_temp.returns(call text, expected text, description text) RETURNS SETOF text
LANGUAGE plpgsql AS $$
DECLARE
    before text := pg_temp.snapshot();
    got text;
    code text;
    message text;
BEGIN
    BEGIN
        EXECUTE call INTO got;
        RETURN NEXT is(got, expected, description || ': returns ' || coalesce(expected, 'NULL'));
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS code = RETURNED_SQLSTATE, message = MESSAGE_TEXT;
        RETURN NEXT fail(description || ': returns ' || coalesce(expected, 'NULL'));
        RETURN NEXT diag('    raised ' || code || ': ' || message);
    END;
    RETURN NEXT is(pg_temp.snapshot(), before, description || ': nothing changed');
END;
$$;

-- JSON nested `depth` levels of arrays around `inner`.
CREATE FUNCTION pg_temp.deep(depth int, core text DEFAULT '1') RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT repeat('[', depth) || core || repeat(']', depth)
$$;

-------------------------------------------------------------------------------------------------------
-- Fixtures: a workflow mid-flight (one step completed, its dependent released, one suspended),
-- a unique workflow holding its name, an executing job, a parked job, a signal waiting.
-------------------------------------------------------------------------------------------------------
SELECT count(*) FROM oban_insert_workflow('{"workflow_id": "hx-flow", "name": "hx", "jobs": [
    {"name": "a", "worker": "Hx.A", "queue": "hx"},
    {"name": "b", "worker": "Hx.B", "queue": "hx_b", "deps": ["a"]},
    {"name": "sub", "deps": ["a"], "workflow": {"workflow_id": "hx-sub", "jobs": [
        {"name": "x", "worker": "Hx.X", "queue": "hx_b"}]}},
    {"name": "c", "worker": "Hx.C", "queue": "hx_b", "deps": ["b", "sub"]}]}');
SELECT oban_complete_job(id) FROM oban_fetch_jobs('hx', 1);
SELECT oban_flush_workflows();
SELECT count(*) FROM oban_insert_workflow('{"workflow_id": "hx-unique", "name": "hx-nightly", "unique": true,
    "jobs": [{"name": "only", "worker": "Hx.U", "queue": "hx_u"}]}');
SELECT (oban_insert_job('Hx.Exec', queue => 'hx_exec')).id AS exec_id \gset
SELECT count(*) FROM oban_fetch_jobs('hx_exec', 1);
SELECT (oban_insert_job('Hx.Park', queue => 'hx_park')).id AS park_id \gset
SELECT count(*) FROM oban_fetch_jobs('hx_park', 1);
SELECT status FROM oban_await_signal(:park_id, '1 day', '0');
SELECT (oban_insert_job('Hx.Mail', queue => 'hx_mail')).id AS mail_id \gset
SELECT oban_signal(:mail_id, '{"kept": true}');

SELECT is((SELECT array_agg(meta->>'name' || ':' || state ORDER BY meta->>'name') FROM oban_jobs
           WHERE meta->>'workflow_id' IN ('hx-flow', 'hx-sub')),
          ARRAY['a:completed', 'b:available', 'c:suspended', 'x:available'],
          'fixture: workflow hx-flow mid-flight (a completed, b and sub released, c suspended)');
SELECT is((SELECT state::text FROM oban_jobs WHERE id = :park_id), 'suspended', 'fixture: a parked job');

-------------------------------------------------------------------------------------------------------
-- 1. Every function is covered here or by the other bad-input files; a new function fails this
--    test until its hostile calls are written.
-------------------------------------------------------------------------------------------------------
SELECT is(ARRAY(SELECT p.proname::text FROM pg_proc AS p
                JOIN pg_depend AS d ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e'
                JOIN pg_extension AS e ON e.oid = d.refobjid AND e.extname = 'oban_pro'
                EXCEPT
                SELECT unnest(ARRAY[
                    -- this file
                    'oban_count_estimate', 'oban_backoff', 'oban_insert_job', 'oban_fetch_jobs',
                    'oban_insert_jobs', 'oban_ack_fetch_jobs', 'oban_complete_job', 'oban_error_job',
                    'oban_cancel_job', 'oban_discard_job', 'oban_snooze_job', 'oban_retry_job',
                    'oban_ack_jobs', 'oban_stage_jobs', 'oban_prune_jobs', 'oban_rescue_jobs',
                    'oban_jobs_state_changed', 'oban_jobs_state_change_matters', 'oban_jobs_available_moved', 'oban_workflow_state', 'oban_workflow_tree_counts',
                    'oban_jobs_refuse_workflow_change', 'oban_jobs_workflow_identity_changed',
                    'oban_workflow_finished', 'oban_dep_outcomes', 'oban_dep_verdicts',
                    'oban_jobs_before_insert', 'oban_jobs_workflow_track',
                    'oban_jobs_workflow_journal', 'oban_jobs_workflow_truncate', 'oban_flush_workflows',
                    'oban_repair_workflows', 'oban_cancel_workflow', 'oban_insert_workflow',
                    'oban_append_workflow', 'oban_workflow_graph', 'oban_workflow_status',
                    'oban_jobs_drop_signals', 'oban_signal', 'oban_workflow_signal', 'oban_await_signal',
                    'oban_errors_append'])
                ORDER BY 1),
          ARRAY[]::text[], 'every SQL function of the extension has hostile calls');

-------------------------------------------------------------------------------------------------------
-- 2. NULL in every position of the functions the other files leave out.
-------------------------------------------------------------------------------------------------------
SELECT * FROM pg_temp.rejects($$ SELECT count(*) FROM oban_insert_jobs(NULL) $$, '22004',
                              'oban_insert_jobs(jobs => NULL)');
SELECT * FROM pg_temp.rejects($$ SELECT count(*) FROM oban_ack_fetch_jobs(NULL, 'hx', 1) $$, '22004',
                              'oban_ack_fetch_jobs(acks => NULL)');
SELECT * FROM pg_temp.rejects($$ SELECT count(*) FROM oban_ack_fetch_jobs('[]', NULL, 1) $$, '22004',
                              'oban_ack_fetch_jobs(queue => NULL)');
SELECT * FROM pg_temp.rejects($$ SELECT count(*) FROM oban_ack_fetch_jobs('[]', 'hx', NULL) $$, '22004',
                              'oban_ack_fetch_jobs(demand => NULL)');
SELECT * FROM pg_temp.rejects($$ SELECT count(*) FROM oban_ack_fetch_jobs('[]', 'hx', 1, NULL) $$, '22004',
                              'oban_ack_fetch_jobs(node => NULL)');
SELECT * FROM pg_temp.rejects($$ SELECT oban_flush_workflows(NULL) $$, '22004',
                              'oban_flush_workflows(limit => NULL)');
SELECT * FROM pg_temp.rejects($$ SELECT oban_repair_workflows(NULL) $$, '22004',
                              'oban_repair_workflows(max_age => NULL)');
SELECT * FROM pg_temp.rejects($$ SELECT oban_repair_workflows('1 minute', NULL) $$, '22004',
                              'oban_repair_workflows(limit => NULL)');
SELECT * FROM pg_temp.rejects($$ SELECT count(*) FROM oban_append_workflow(NULL, '[{"name": "n", "worker": "W"}]') $$,
                              '22004', 'oban_append_workflow(workflow_id => NULL)');
SELECT * FROM pg_temp.rejects($$ SELECT count(*) FROM oban_append_workflow('hx-flow', NULL) $$, '22004',
                              'oban_append_workflow(jobs => NULL)');
SELECT * FROM pg_temp.rejects($$ SELECT count(*) FROM oban_append_workflow('hx-flow', '[{"name": "n", "worker": "W"}]', NULL) $$,
                              '22004', 'oban_append_workflow(check_deps => NULL)');
SELECT * FROM pg_temp.rejects($$ SELECT oban_workflow_status(NULL) $$, '22004',
                              'oban_workflow_status(workflow_id => NULL)');
SELECT * FROM pg_temp.rejects($$ SELECT oban_workflow_graph('hx-flow', NULL) $$, '22023',
                              'oban_workflow_graph(format => NULL)');
-- The SQL helpers take NULL as "nothing": documented results, no error.
SELECT * FROM pg_temp.returns($$ SELECT oban_workflow_graph(NULL) $$, NULL,
                              'oban_workflow_graph(workflow_id => NULL)');
SELECT * FROM pg_temp.returns($$ SELECT oban_cancel_workflow(NULL) $$, '0',
                              'oban_cancel_workflow(workflow_id => NULL)');
SELECT * FROM pg_temp.returns($$ SELECT count(*) FROM oban_workflow_tree_counts(NULL) $$, '0',
                              'oban_workflow_tree_counts(NULL)');
SELECT * FROM pg_temp.returns($$ SELECT oban_workflow_finished(NULL) $$, 'true',
                              'oban_workflow_finished(NULL): no unfinished job');
SELECT * FROM pg_temp.returns($$ SELECT count(*) FROM oban_dep_outcomes(NULL, NULL) $$, '0',
                              'oban_dep_outcomes(NULL, NULL)');
SELECT * FROM pg_temp.returns($$ SELECT count(*) FROM oban_dep_verdicts(NULL, NULL, NULL) $$, '0',
                              'oban_dep_verdicts(NULL, NULL, NULL)');
SELECT * FROM pg_temp.returns($$ SELECT oban_backoff(NULL, NULL) $$, NULL, 'oban_backoff(NULL, NULL) (strict)');
SELECT * FROM pg_temp.returns($$ SELECT oban_count_estimate(NULL, NULL) $$, '0',
                              'oban_count_estimate(NULL, NULL)');
SELECT * FROM pg_temp.returns($$ SELECT oban_workflow_state(NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
                                                            NULL, NULL, NULL) $$,
                              'completed', 'oban_workflow_state of NULL counts');

-- oban_errors_append (a pure helper, both layouts): NULL lists are empty, anything else is kept and
-- the error appended; untyped NULLs name no overload (42725, Postgres).
SELECT * FROM pg_temp.returns($$ SELECT oban_errors_append(NULL::jsonb, NULL)::text $$, '[null]',
                              'oban_errors_append(NULL jsonb, NULL)');
SELECT * FROM pg_temp.returns($$ SELECT oban_errors_append(NULL::jsonb[], '{"e": 1}')::text $$, '{"{\"e\": 1}"}',
                              'oban_errors_append(NULL jsonb[], error)');
SELECT * FROM pg_temp.returns($$ SELECT oban_errors_append('{"a": 1}'::jsonb, '"e"')::text $$, '[{"a": 1}, "e"]',
                              'oban_errors_append to an object (not a list): both kept, in a list');
SELECT * FROM pg_temp.rejects($$ SELECT oban_errors_append(NULL, NULL) $$, '42725',
                              'oban_errors_append(NULL, NULL): no overload chosen');
SELECT * FROM pg_temp.returns($$ SELECT jsonb_array_length(oban_errors_append('[]'::jsonb, pg_temp.deep(10000)::jsonb)) $$,
                              '1', 'oban_errors_append of an error nested 10,000 levels');

-------------------------------------------------------------------------------------------------------
-- 3. Trigger functions called directly: refused by their own check (39P01) or by PL/pgSQL (0A000).
-------------------------------------------------------------------------------------------------------
SELECT * FROM pg_temp.rejects($$ SELECT oban_jobs_state_changed() $$, '39P01',
                              'oban_jobs_state_changed() called directly');
-- Its WHEN clause, which any role may call: a boolean of its arguments, false for NULL states.
SELECT is(oban_jobs_state_change_matters(NULL, NULL, NULL), false,
          'oban_jobs_state_change_matters with NULL states is false');
SELECT * FROM pg_temp.rejects($$ SELECT oban_jobs_available_moved() $$, '39P01',
                              'oban_jobs_available_moved() called directly');
SELECT * FROM pg_temp.rejects($$ SELECT oban_jobs_refuse_workflow_change() $$, '39P01',
                              'oban_jobs_refuse_workflow_change() called directly');
-- Its WHEN clause, which any role may call: a boolean of its arguments (NULL: no meta).
SELECT is(ARRAY[oban_jobs_workflow_identity_changed(NULL, NULL),
                oban_jobs_workflow_identity_changed('"not an object"', '[1, 2]'),
                oban_jobs_workflow_identity_changed('{"workflow_id": 7}', '{"workflow_id": 8}'),
                oban_jobs_workflow_identity_changed(NULL, '{"workflow_id": "w"}'),
                oban_jobs_workflow_identity_changed('{"workflow_id": "w", "name": "a"}', '{"workflow_id": "w", "name": "a\u00e9"}'),
                oban_jobs_workflow_identity_changed('{"name": "a"}', '{"name": "b"}'),
                oban_jobs_workflow_identity_changed(pg_temp.deep(10000)::jsonb, pg_temp.deep(10000)::jsonb)],
          ARRAY[false, false, false, true, true, false, false],
          'oban_jobs_workflow_identity_changed: NULLs, non-objects, non-string ids, a renamed step, plain jobs, deep JSON');
SELECT * FROM pg_temp.rejects($$ SELECT oban_jobs_before_insert() $$, '39P01',
                              'oban_jobs_before_insert() called directly');
SELECT * FROM pg_temp.rejects($$ SELECT oban_jobs_workflow_track() $$, '39P01',
                              'oban_jobs_workflow_track() called directly');
SELECT * FROM pg_temp.rejects($$ SELECT oban_jobs_workflow_journal() $$, '39P01',
                              'oban_jobs_workflow_journal() called directly');
SELECT * FROM pg_temp.rejects($$ SELECT oban_jobs_workflow_truncate() $$, '39P01',
                              'oban_jobs_workflow_truncate() called directly');
SELECT * FROM pg_temp.rejects($$ SELECT oban_jobs_drop_signals() $$, '0A000',
                              'oban_jobs_drop_signals() called directly');

-------------------------------------------------------------------------------------------------------
-- 4. Wrong JSON shapes.
-------------------------------------------------------------------------------------------------------
SELECT * FROM pg_temp.rejects($$ SELECT count(*) FROM oban_insert_jobs('{"worker": "W"}') $$, '22023',
                              'oban_insert_jobs of an object (not an array)');
SELECT * FROM pg_temp.rejects($$ SELECT count(*) FROM oban_insert_jobs('"W"') $$, '22023',
                              'oban_insert_jobs of a string');
SELECT * FROM pg_temp.rejects($$ SELECT count(*) FROM oban_insert_jobs('[{"worker": "W"}, 1]') $$, '22023',
                              'oban_insert_jobs with a number among the jobs');
SELECT * FROM pg_temp.rejects($$ SELECT count(*) FROM oban_insert_jobs('[{"worker": "W", "args": "x"}]') $$,
                              '22023', 'oban_insert_jobs with string args');
SELECT * FROM pg_temp.rejects($$ SELECT count(*) FROM oban_insert_jobs('[{"worker": "W", "args": [1, 2]}]') $$,
                              '22023', 'oban_insert_jobs with array args');
SELECT * FROM pg_temp.rejects($$ SELECT count(*) FROM oban_insert_jobs('[{"worker": "W"}, {"worker": "W", "meta": 5}]') $$,
                              '22023', 'oban_insert_jobs with numeric meta in the second job');
SELECT * FROM pg_temp.rejects($$ SELECT count(*) FROM oban_insert_jobs('[{"worker": "W", "priority": 1.5}]') $$,
                              '22023', 'oban_insert_jobs with a fractional priority');
SELECT * FROM pg_temp.rejects($$ SELECT count(*) FROM oban_insert_jobs('[{"worker": "W", "priority": "high"}]') $$,
                              '22P02', 'oban_insert_jobs with a non-numeric priority string');
SELECT * FROM pg_temp.rejects($$ SELECT count(*) FROM oban_insert_jobs('[{"worker": "W", "tags": "t"}]') $$,
                              '22P02', 'oban_insert_jobs with tags as a string');
SELECT * FROM pg_temp.rejects($$ SELECT count(*) FROM oban_insert_jobs('[{"queue": "q"}]') $$, '23502',
                              'oban_insert_jobs with a job without worker');
SELECT * FROM pg_temp.rejects($$ SELECT count(*) FROM oban_ack_fetch_jobs('{"id": 1}', 'hx', 1) $$, '22023',
                              'oban_ack_fetch_jobs with acks an object');
SELECT * FROM pg_temp.rejects($$ SELECT count(*) FROM oban_append_workflow('hx-flow', '{"name": "n", "worker": "W"}') $$,
                              '22023', 'oban_append_workflow with jobs an object');
SELECT * FROM pg_temp.rejects($$ SELECT count(*) FROM oban_append_workflow('hx-flow', '[]') $$, '22023',
                              'oban_append_workflow with no jobs');
SELECT * FROM pg_temp.rejects($$ SELECT count(*) FROM oban_append_workflow('hx-flow', '[null]') $$, '22023',
                              'oban_append_workflow with a null job');
SELECT * FROM pg_temp.rejects($$ SELECT count(*) FROM oban_insert_workflow('{"jobs": [{"name": "a", "worker": "W", "workflow": {"jobs": [{"name": "x", "worker": "W"}]}}]}') $$,
                              '22023', 'a step that is both a job and a sub-workflow');
SELECT * FROM pg_temp.rejects($$ SELECT count(*) FROM oban_insert_workflow('{"jobs": [{"name": "s", "workflow": []}]}') $$,
                              '22023', 'a sub-workflow that is an array');
SELECT * FROM pg_temp.rejects($$ SELECT count(*) FROM oban_insert_workflow('{"jobs": [{"name": "s", "workflow": {"jobs": []}}]}') $$,
                              '22023', 'an empty sub-workflow');
SELECT * FROM pg_temp.rejects($$ SELECT count(*) FROM oban_insert_workflow('{"workflow_id": "", "jobs": [{"name": "a", "worker": "W"}]}') $$,
                              '22023', 'an empty workflow_id');
SELECT * FROM pg_temp.rejects($$ SELECT count(*) FROM oban_insert_workflow('{"jobs": [{"name": "a", "worker": "W", "deps": [["", "a"]]}]}') $$,
                              '22023', 'a dep pair with an empty workflow id');
SELECT * FROM pg_temp.rejects($$ SELECT count(*) FROM oban_insert_workflow('{"jobs": [{"name": "*", "worker": "W"}]}') $$,
                              '22023', 'a step named "*"');
SELECT * FROM pg_temp.returns($$ SELECT count(*) FROM oban_dep_outcomes('hx-flow', '[5, null, {"a": 1}, ["a"], [1, 2], ["a", 2], []]') $$,
                              '0', 'oban_dep_outcomes of deps of no valid shape');
SELECT * FROM pg_temp.returns($$ SELECT count(*) FROM oban_dep_outcomes('hx-flow', '"a"') $$, '0',
                              'oban_dep_outcomes of deps that are not an array');

-------------------------------------------------------------------------------------------------------
-- 5. Deeply nested JSON: 10,000 levels are stored and given back whole (nothing in the extension
--    recurses over user JSON); Postgres' own parser refuses what is deeper than max_stack_depth
--    allows (54001) before any function runs; nested specs stop at 8 sub-workflow levels (54000).
-------------------------------------------------------------------------------------------------------
SELECT * FROM pg_temp.rejects($$ SELECT oban_insert_job('Hx.Deep', jsonb_build_object('d', pg_temp.deep(100000)::jsonb)) $$,
                              '54001', 'args nested 100,000 levels (the jsonb parser refuses it)');
SELECT * FROM pg_temp.rejects(
    $$ SELECT count(*) FROM oban_insert_workflow((repeat('{"jobs": [{"name": "s", "workflow": ', 1000)
                                                 || '{"jobs": [{"name": "a", "worker": "W"}]}'
                                                 || repeat('}]}', 1000))::jsonb) $$,
    '54000', 'sub-workflows nested 1,000 levels deep');
SELECT * FROM pg_temp.rejects(
    $$ SELECT count(*) FROM oban_insert_workflow(jsonb_build_object('jobs', jsonb_build_array(
           jsonb_build_object('name', 'a', 'worker', 'W', 'deps', pg_temp.deep(10000, '"x"')::jsonb)))) $$,
    '22023', 'deps nested 10,000 levels deep');
SELECT * FROM pg_temp.returns($$ SELECT oban_ack_jobs(pg_temp.deep(10000)::jsonb) $$, '0',
                              'oban_ack_jobs of one entry nested 10,000 levels (skipped)');
SELECT * FROM pg_temp.returns($$ SELECT oban_signal(-1, pg_temp.deep(10000)::jsonb) $$, 'false',
                              'a 10,000-level payload to a missing job');

CREATE TEMP TABLE deep AS SELECT jsonb_build_object('d', pg_temp.deep(10000)::jsonb) AS doc;
CREATE FUNCTION pg_temp.same_as_deep(value jsonb) RETURNS boolean LANGUAGE sql AS $$
    SELECT md5(value::text) = md5(doc::text) FROM deep
$$;
SELECT ok(pg_temp.same_as_deep((oban_insert_job('Hx.Deep', (SELECT doc FROM deep), 'hx_deep',
                                                meta => (SELECT doc FROM deep))).args),
          'oban_insert_job: args nested 10,000 levels are stored whole');
SELECT ok((SELECT pg_temp.same_as_deep(args) FROM oban_insert_jobs(jsonb_build_array(jsonb_build_object(
               'worker', 'Hx.Deep', 'queue', 'hx_deep', 'args', (SELECT doc FROM deep))))),
          'oban_insert_jobs: args nested 10,000 levels are stored whole');
SELECT is((SELECT count(*)::int FROM oban_insert_workflow(jsonb_build_object('workflow_id', 'hx-deep', 'jobs', jsonb_build_array(
               jsonb_build_object('name', 'a', 'worker', 'Hx.Deep', 'queue', 'hx_deep',
                                  'args', (SELECT doc FROM deep), 'meta', (SELECT doc FROM deep)))))),
          1, 'oban_insert_workflow: a step with args and meta nested 10,000 levels is inserted');
SELECT ok((SELECT pg_temp.same_as_deep(args) AND pg_temp.same_as_deep(meta - 'workflow_id' - 'name' - 'deps')
           FROM oban_jobs WHERE meta->>'workflow_id' = 'hx-deep'),
          'oban_insert_workflow: the deep args and meta (merged with the workflow keys) are stored whole');
SELECT ok(pg_temp.same_as_deep((SELECT meta FROM oban_jobs WHERE queue = 'hx_deep' ORDER BY id LIMIT 1)),
          'oban_insert_job: meta nested 10,000 levels is stored whole');
SELECT ok(oban_complete_job((SELECT id FROM oban_fetch_jobs('hx_deep', 1) LIMIT 1), (SELECT doc FROM deep)),
          'oban_complete_job: a result nested 10,000 levels is recorded');
SELECT ok(pg_temp.same_as_deep((SELECT meta->'return' FROM oban_jobs WHERE queue = 'hx_deep' AND state = 'completed')),
          'and is stored whole');
SELECT ok(oban_signal(:exec_id, (SELECT doc FROM deep)), 'oban_signal: a payload nested 10,000 levels is stored');
SELECT ok((SELECT status = 'received' AND pg_temp.same_as_deep(payload) FROM oban_await_signal(:exec_id)),
          'and comes back whole');
SELECT is((SELECT count(*)::int FROM oban_jobs WHERE queue = 'hx_deep'), 3, 'the deep jobs are in place');

-------------------------------------------------------------------------------------------------------
-- 6. Multi-megabyte args, meta, results and payloads: stored whole (up to jsonb's 256MB; see the
--    README's Limits); signal payloads above oban_pro.max_signal_bytes are refused (54000).
-------------------------------------------------------------------------------------------------------
CREATE TEMP TABLE big AS SELECT jsonb_build_object('blob', repeat('x', 8 * 1024 * 1024)) AS mb8,
                                jsonb_build_object('blob', repeat('y', 4 * 1024 * 1024)) AS mb4,
                                jsonb_build_object('blob', repeat('z', 1024 * 1024 - 64)) AS just_fits,
                                jsonb_build_object('blob', repeat('z', 1024 * 1024)) AS just_over;
SELECT is(octet_length((oban_insert_job('Hx.Big', (SELECT mb8 FROM big), 'hx_big')).args->>'blob'),
          8 * 1024 * 1024, 'oban_insert_job: 8MB args are stored whole');
SELECT is((SELECT sum(octet_length(args->>'blob') + coalesce(octet_length(meta->>'blob'), 0))::int
           FROM oban_insert_jobs(jsonb_build_array(
               jsonb_build_object('worker', 'Hx.Big', 'queue', 'hx_big', 'args', (SELECT mb4 FROM big)),
               jsonb_build_object('worker', 'Hx.Big', 'queue', 'hx_big', 'meta', (SELECT mb4 FROM big),
                                  'args', (SELECT mb4 FROM big))))),
          12 * 1024 * 1024, 'oban_insert_jobs: two jobs with 4MB args (and 4MB meta) are stored whole');
SELECT is((SELECT count(*)::int FROM oban_insert_workflow(jsonb_build_object('workflow_id', 'hx-big', 'jobs', jsonb_build_array(
               jsonb_build_object('name', 'a', 'worker', 'Hx.Big', 'queue', 'hx_big',
                                  'args', (SELECT mb8 FROM big), 'meta', (SELECT mb4 FROM big)),
               jsonb_build_object('name', 'b', 'worker', 'Hx.Big', 'queue', 'hx_big', 'deps', jsonb_build_array('a'),
                                  'args', (SELECT mb8 FROM big)))))),
          2, 'oban_insert_workflow: steps with 8MB args and 4MB meta are inserted');
SELECT is((SELECT sum(octet_length(args->>'blob') + coalesce(octet_length(meta->>'blob'), 0))::int
           FROM oban_jobs WHERE meta->>'workflow_id' = 'hx-big'),
          20 * 1024 * 1024, 'oban_insert_workflow: and stored whole');
SELECT ok(oban_complete_job((SELECT id FROM oban_fetch_jobs('hx_big', 1) LIMIT 1), (SELECT mb8 FROM big)),
          'oban_complete_job: an 8MB result is recorded');
SELECT is((SELECT octet_length(meta->'return'->>'blob') FROM oban_jobs WHERE queue = 'hx_big' AND state = 'completed'),
          8 * 1024 * 1024, 'and stored whole');
SELECT * FROM pg_temp.rejects(format($$ SELECT oban_signal(%s, (SELECT just_over FROM big)) $$, :mail_id), '54000',
                              'oban_signal: a payload just over the 1MB default limit');
SELECT * FROM pg_temp.rejects($$ SELECT oban_workflow_signal('hx-flow', 'c', (SELECT just_over FROM big)) $$, '54000',
                              'oban_workflow_signal: a payload just over the 1MB default limit');
SELECT * FROM pg_temp.rejects(format($$ SELECT oban_signal(ARRAY[%s, -1], (SELECT mb8 FROM big)) $$, :mail_id),
                              '54000', 'oban_signal(array): an 8MB payload');
SELECT ok(oban_signal(:mail_id, (SELECT just_fits FROM big)), 'oban_signal: a payload just under 1MB is stored');
SET LOCAL oban_pro.max_signal_bytes = '16MB';
SELECT is(oban_workflow_signal('hx-flow', 'c', (SELECT mb8 FROM big)), 1,
          'oban_workflow_signal: an 8MB payload under a 16MB limit is stored');
RESET oban_pro.max_signal_bytes;
SELECT is((SELECT count(*)::int FROM oban_jobs WHERE queue = 'hx_big'), 5, 'the big jobs are in place');

-------------------------------------------------------------------------------------------------------
-- 7. Names with quotes, semicolons, backslashes, newlines and unicode: stored verbatim, never run
--    as SQL, escaped in graphs; \u0000 is refused by jsonb itself (22P05).
-------------------------------------------------------------------------------------------------------
SELECT is((oban_insert_job($w$Robert'); DROP TABLE oban_jobs; --$w$, '{"q": "\"; DROP TABLE oban_signals; --"}',
                           queue => $q$hx'q;"ü✓$q$)).worker,
          $w$Robert'); DROP TABLE oban_jobs; --$w$, 'a worker name with quotes and a semicolon is stored verbatim');
SELECT is((SELECT count(*)::int FROM oban_fetch_jobs($q$hx'q;"ü✓$q$, 5)), 1,
          'a queue name with quotes, a semicolon and unicode is fetched by that exact name');
SELECT is(oban_count_estimate('executing', $q$hx'q;"ü✓$q$) >= 0, true,
          'oban_count_estimate with a hostile queue name runs its own query only');
SELECT has_table('oban_signals', 'oban_signals is still there');
SELECT * FROM pg_temp.rejects($$ SELECT oban_insert_job('Hx.Nul', '{"s": "a\u0000b"}') $$, '22P05',
                              'a \u0000 escape in args (refused by jsonb)');
SELECT * FROM pg_temp.rejects($$ SELECT count(*) FROM oban_insert_workflow('{"jobs": [{"name": "a\u0000", "worker": "W"}]}') $$,
                              '22P05', 'a \u0000 escape in a step name (refused by jsonb)');

SELECT is((SELECT array_agg(name ORDER BY id) FROM oban_insert_workflow(jsonb_build_object(
               'workflow_id', E'hx "odd\\ id;\n', 'name', $n$it's "odd"; ok$n$, 'jobs', jsonb_build_array(
               jsonb_build_object('name', E'say "hi"\\', 'worker', 'Hx.Odd', 'queue', 'hx_odd'),
               jsonb_build_object('name', 'ünïcödé ✓ 名前', 'worker', 'Hx.Odd', 'queue', 'hx_odd',
                                  'deps', jsonb_build_array(E'say "hi"\\')),
               jsonb_build_object('name', $s$'); DELETE FROM oban_jobs; --$s$, 'worker', 'Hx.Odd', 'queue', 'hx_odd',
                                  'deps', jsonb_build_array('ünïcödé ✓ 名前')))))),
          ARRAY[E'say "hi"\\', 'ünïcödé ✓ 名前', $s$'); DELETE FROM oban_jobs; --$s$],
          'a workflow with quoted, backslashed, unicode and SQL-looking names is inserted');
SELECT is(oban_workflow_graph(E'hx "odd\\ id;\n'),
          (SELECT E'digraph "hx \\"odd\\\\ id;\n" {\n' ||
                  string_agg(format('  j%s [label="%s (%s)"];', id,
                                    replace(replace(meta->>'name', '\', '\\'), '"', '\"'), state), E'\n' ORDER BY id) ||
                  E'\n' || format('  j%s -> j%s;', min(id), min(id) + 1) || E'\n' ||
                  format('  j%s -> j%s;', min(id) + 1, min(id) + 2) || E'\n}'
           FROM oban_jobs WHERE meta->>'workflow_id' = E'hx "odd\\ id;\n'),
          'its DOT graph escapes quotes and backslashes');
SELECT is(oban_workflow_status(E'hx "odd\\ id;\n')->>'name', $n$it's "odd"; ok$n$, 'its status names it verbatim');
SELECT is(oban_workflow_signal(E'hx "odd\\ id;\n', 'ünïcödé ✓ 名前', '{"ok": 1}'), 1,
          'a step with a unicode name takes a signal');
SELECT * FROM pg_temp.returns($$ SELECT oban_workflow_signal('hx-flow', 'c''; DROP TABLE oban_jobs; --', '{}') $$, '0',
                              'oban_workflow_signal with a SQL-looking step name');
SELECT * FROM pg_temp.returns($$ SELECT bool_and(conflicted)::text FROM oban_insert_workflow('{"name": "hx-nightly", "unique": true, "jobs": [{"name": "n", "worker": "W"}]}') $$,
                              'true', 'the unique name still conflicts');
SELECT is((SELECT bool_and(NOT conflicted) FROM oban_insert_workflow($j${"name": "hx-nightly'; --", "unique": true,
                                                                       "jobs": [{"name": "n", "worker": "W", "queue": "hx_odd"}]}$j$)),
          true, 'a unique name differing by a quote and a comment is another name');

-------------------------------------------------------------------------------------------------------
-- 8. Huge and negative numbers and intervals.
-------------------------------------------------------------------------------------------------------
SELECT * FROM pg_temp.rejects($$ SELECT count(*) FROM oban_ack_fetch_jobs('[]', 'hx', -1) $$, '22023',
                              'oban_ack_fetch_jobs with demand -1');
SELECT * FROM pg_temp.rejects($$ SELECT count(*) FROM oban_fetch_jobs('hx', 2147483648::bigint::int) $$, '22003',
                              'oban_fetch_jobs with demand 2^31 (out of integer range before the call)');
SELECT * FROM pg_temp.returns($$ SELECT count(*) FROM oban_ack_fetch_jobs('[]', 'hx_none', 2147483647) $$, '0',
                              'oban_ack_fetch_jobs with demand 2^31-1 of an empty queue');
SELECT * FROM pg_temp.rejects($$ SELECT count(*) FROM oban_fetch_jobs('hx', 1, 'n', 'not-a-uuid') $$, '22P02',
                              'oban_fetch_jobs with a producer that is not a uuid');
SELECT * FROM pg_temp.rejects($$ SELECT oban_flush_workflows(-1) $$, '22023', 'oban_flush_workflows(limit => -1)');
SELECT * FROM pg_temp.rejects($$ SELECT oban_flush_workflows(0) $$, '22023', 'oban_flush_workflows(limit => 0)');
SELECT * FROM pg_temp.rejects($$ SELECT oban_flush_workflows(-2147483648) $$, '22023',
                              'oban_flush_workflows(limit => -2^31)');
SELECT * FROM pg_temp.rejects($$ SELECT oban_repair_workflows(interval '-1 day') $$, '22023',
                              'oban_repair_workflows(max_age => -1 day)');
SELECT * FROM pg_temp.rejects($$ SELECT oban_repair_workflows(interval '1 day -1 second') $$, '22023',
                              'oban_repair_workflows with a negative part in max_age');
SELECT * FROM pg_temp.rejects($$ SELECT oban_repair_workflows('1 minute', -1) $$, '22023',
                              'oban_repair_workflows(limit => -1)');
SELECT * FROM pg_temp.returns($$ SELECT oban_repair_workflows(interval '178000000 years') $$, '0',
                              'oban_repair_workflows(max_age => 178,000,000 years) repairs nothing');
SELECT * FROM pg_temp.returns($$ SELECT oban_repair_workflows('0', 0) $$, '0',
                              'oban_repair_workflows(limit => 0) repairs nothing');
SELECT * FROM pg_temp.returns($$ SELECT oban_prune_jobs(interval '178000000 years', 2147483647) $$, '0',
                              'oban_prune_jobs(max_age => 178,000,000 years) prunes nothing');
SELECT * FROM pg_temp.rejects($$ SELECT oban_prune_jobs(interval '-178000000 years') $$, '22023',
                              'oban_prune_jobs(max_age => -178,000,000 years)');
SELECT * FROM pg_temp.rejects($$ SELECT oban_rescue_jobs(interval '-1 microsecond') $$, '22023',
                              'oban_rescue_jobs(rescue_after => -1 microsecond)');
SELECT * FROM pg_temp.rejects($$ SELECT oban_stage_jobs(-2147483648) $$, '22023', 'oban_stage_jobs(limit => -2^31)');
SELECT * FROM pg_temp.rejects(format($$ SELECT oban_snooze_job(%s, interval '102 years') $$, :exec_id), '22023',
                              'oban_snooze_job of 102 years (over 100 years of 365.25 days)');
SELECT * FROM pg_temp.rejects(format($$ SELECT oban_error_job(%s, 'e', interval '178000000 years') $$, :exec_id),
                              '22023', 'oban_error_job with backoff 178,000,000 years');
SELECT * FROM pg_temp.rejects(format($$ SELECT * FROM oban_await_signal(%s, interval '178000000 years') $$, :exec_id),
                              '22023', 'oban_await_signal(wait_for => 178,000,000 years)');
SELECT * FROM pg_temp.rejects(format($$ SELECT * FROM oban_await_signal(%s, NULL, interval '-1 microsecond') $$, :exec_id),
                              '22023', 'oban_await_signal(wait_timeout => -1 microsecond)');
SELECT * FROM pg_temp.rejects(format($$ SELECT * FROM oban_await_signal(%s, interval '-1 year', '0') $$, :exec_id),
                              '22023', 'oban_await_signal(wait_for => -1 year)');
SELECT * FROM pg_temp.rejects($$ SELECT count(*) FROM oban_insert_jobs('[{"worker": "W", "priority": 99999999999}]') $$,
                              '22023', 'oban_insert_jobs with priority 99,999,999,999');
SELECT * FROM pg_temp.rejects($$ SELECT count(*) FROM oban_insert_jobs('[{"worker": "W", "priority": -1}]') $$,
                              '22023', 'oban_insert_jobs with priority -1');
SELECT * FROM pg_temp.rejects($$ SELECT count(*) FROM oban_insert_jobs('[{"worker": "W", "max_attempts": 0}]') $$,
                              '22023', 'oban_insert_jobs with max_attempts 0');
SELECT * FROM pg_temp.rejects($$ SELECT count(*) FROM oban_insert_jobs('[{"worker": "W", "max_attempts": 1e300}]') $$,
                              '22023', 'oban_insert_jobs with max_attempts 1e300');
SELECT * FROM pg_temp.rejects($$ SELECT count(*) FROM oban_insert_jobs('[{"worker": "W", "scheduled_at": "infinity"}]') $$,
                              '22023', 'oban_insert_jobs with scheduled_at infinity');
SELECT * FROM pg_temp.rejects($$ SELECT count(*) FROM oban_insert_jobs('[{"worker": "W", "scheduled_at": "-infinity"}]') $$,
                              '22023', 'oban_insert_jobs with scheduled_at -infinity');
SELECT * FROM pg_temp.rejects($$ SELECT count(*) FROM oban_insert_jobs('[{"worker": "W", "scheduled_at": "294277-01-01"}]') $$,
                              '22008', 'oban_insert_jobs with scheduled_at beyond the timestamp range');
SELECT * FROM pg_temp.rejects($$ SELECT count(*) FROM oban_insert_workflow('{"jobs": [{"name": "a", "worker": "W", "priority": 1e300}]}') $$,
                              '22023', 'a workflow step with priority 1e300');
SELECT * FROM pg_temp.rejects($$ SELECT count(*) FROM oban_insert_workflow('{"jobs": [{"name": "a", "worker": "W", "max_attempts": -32768}]}') $$,
                              '22023', 'a workflow step with max_attempts -32768');
SELECT * FROM pg_temp.returns($$ SELECT oban_backoff(2147483647, 2147483647) <= interval '100 years' $$, 'true',
                              'oban_backoff(2^31-1, 2^31-1) stays within 100 years');
SELECT * FROM pg_temp.returns($$ SELECT oban_backoff(-2147483648, -1) >= interval '15 seconds' $$, 'true',
                              'oban_backoff(-2^31, -1) is at least 15 seconds');
SELECT * FROM pg_temp.rejects($$ SELECT oban_count_estimate('bogus', 'hx') $$, '22P02',
                              'oban_count_estimate of an unknown state');
SELECT * FROM pg_temp.returns($$ SELECT oban_signal(ARRAY(SELECT -g FROM generate_series(1, 100000) AS g), '{}') $$,
                              '0', 'oban_signal to 100,000 missing ids');
SELECT * FROM pg_temp.returns($$ SELECT oban_signal(ARRAY[-9223372036854775808, 9223372036854775807]::bigint[], '{}') $$,
                              '0', 'oban_signal to the smallest and largest bigint ids');

-------------------------------------------------------------------------------------------------------
-- 9. Unknown ids: documented empty results.
-------------------------------------------------------------------------------------------------------
SELECT * FROM pg_temp.returns($$ SELECT oban_workflow_status('hx-no-such') $$, NULL, 'oban_workflow_status of an unknown id');
SELECT * FROM pg_temp.returns($$ SELECT oban_workflow_graph('hx-no-such', 'mermaid') $$, NULL,
                              'oban_workflow_graph of an unknown id');
SELECT * FROM pg_temp.returns($$ SELECT oban_cancel_workflow('hx-no-such') $$, '0', 'oban_cancel_workflow of an unknown id');
SELECT * FROM pg_temp.returns($$ SELECT count(*) FROM oban_workflow_tree_counts('hx-no-such') $$, '0',
                              'oban_workflow_tree_counts of an unknown id');
SELECT * FROM pg_temp.returns($$ SELECT oban_workflow_finished('hx-no-such') $$, 'true',
                              'oban_workflow_finished of an unknown id');
SELECT * FROM pg_temp.returns($$ SELECT string_agg(coalesce(outcome, 'NULL'), ',') FROM oban_dep_outcomes('hx-flow', '["ghost", ["hx-no-such", "a"], ["hx-no-such", "*"]]') $$,
                              'NULL,NULL,NULL', 'oban_dep_outcomes of unknown deps: no outcome');
SELECT * FROM pg_temp.returns($$ SELECT string_agg(verdict, ',') FROM oban_dep_verdicts('hx-flow', '{"deps": ["ghost"]}', true) $$,
                              'failed', 'oban_dep_verdicts of an unknown dep, missing_fails: failed');
SELECT * FROM pg_temp.returns($$ SELECT string_agg(verdict, ',') FROM oban_dep_verdicts('hx-flow', '{"deps": ["ghost"], "ignore_deleted": true}', true) $$,
                              'satisfied', 'oban_dep_verdicts of an unknown dep with ignore_deleted: satisfied');
SELECT * FROM pg_temp.rejects($$ SELECT count(*) FROM oban_append_workflow('hx-no-such', '[{"name": "n", "worker": "W"}]') $$,
                              '42704', 'oban_append_workflow to an unknown workflow');
SELECT * FROM pg_temp.returns($$ SELECT oban_workflow_signal('hx-no-such', 'a', '{}') $$, '0',
                              'oban_workflow_signal to an unknown workflow');
SELECT * FROM pg_temp.returns($$ SELECT oban_workflow_signal('hx-sub', 'c', '{}') $$, '0',
                              'oban_workflow_signal to a step of another workflow of the tree');
SELECT * FROM pg_temp.returns($$ SELECT count(*) FROM oban_ack_fetch_jobs('[{"id": -1, "state": "completed"}]', 'hx_none', 5) $$,
                              '0', 'oban_ack_fetch_jobs acking an unknown id');
SELECT * FROM pg_temp.rejects($$ SELECT * FROM oban_await_signal(-9223372036854775808) $$, '55000',
                              'oban_await_signal of the smallest bigint id');

-------------------------------------------------------------------------------------------------------
-- 10. Cycles.
-------------------------------------------------------------------------------------------------------
SELECT * FROM pg_temp.rejects($$ SELECT count(*) FROM oban_insert_workflow('{"jobs": [{"name": "s", "workflow": {"jobs": [
                                      {"name": "x", "worker": "W", "deps": ["z"]}, {"name": "y", "worker": "W", "deps": ["x"]},
                                      {"name": "z", "worker": "W", "deps": ["y"]}]}}]}') $$,
                              '42P19', 'a three-step cycle inside a sub-workflow');
SELECT * FROM pg_temp.rejects($$ SELECT count(*) FROM oban_insert_workflow('{"workflow_id": "hx-c", "jobs": [{"name": "s", "workflow": {"jobs": [
                                      {"name": "x", "worker": "W", "deps": [["hx-c", "*"]]}]}}]}') $$,
                              '42P19', 'a sub-workflow step waiting for its enclosing workflow');
SELECT * FROM pg_temp.rejects($$ SELECT count(*) FROM oban_append_workflow('hx-flow', '[{"name": "p", "worker": "W", "deps": ["q"]}, {"name": "q", "worker": "W", "deps": ["p"]}]') $$,
                              '42P19', 'an appended two-step cycle');
SELECT * FROM pg_temp.rejects($$ SELECT count(*) FROM oban_append_workflow('hx-flow', '[{"name": "p", "worker": "W", "deps": [["hx-flow", "*"]]}]') $$,
                              '42P19', 'an appended step waiting for its own workflow');
SELECT * FROM pg_temp.rejects($$ SELECT count(*) FROM oban_append_workflow('hx-flow', '[{"name": "c", "worker": "W"}]') $$,
                              '42710', 'an appended step named like an existing one');
SELECT * FROM pg_temp.rejects($$ SELECT count(*) FROM oban_append_workflow('hx-flow', '[{"name": "sub", "worker": "W"}]') $$,
                              '42710', 'an appended step named like an existing sub-workflow');
-- A long chain below a cycle (the worst order for cycle detection) is refused at once.
SELECT * FROM pg_temp.rejects($$ SELECT count(*) FROM oban_insert_workflow(jsonb_build_object('jobs',
                                      '[{"name": "a", "worker": "W", "deps": ["b"]}, {"name": "b", "worker": "W", "deps": ["a"]}]'::jsonb ||
                                      (SELECT jsonb_agg(jsonb_build_object('name', 'c' || i, 'worker', 'W', 'deps',
                                                        jsonb_build_array(CASE i WHEN 1 THEN 'b' ELSE 'c' || (i - 1) END)) ORDER BY i)
                                       FROM generate_series(1, 20000) AS i))) $$,
                              '42P19', 'a cycle with a 20,000-step chain below it');

-- parent_id cycles: plain INSERTs can write any sup_workflow_id, even a workflow's own id or a
-- loop of two. The status, graph, counts and cancel of such a tree stay finite.
INSERT INTO oban_jobs (worker, queue, meta) VALUES
    ('Hx.Loop', 'hx_loop', '{"workflow_id": "hx-self", "name": "a", "sup_workflow_id": "hx-self", "sub_name": "me"}'),
    ('Hx.Loop', 'hx_loop', '{"workflow_id": "hx-ping", "name": "a", "sup_workflow_id": "hx-pong", "sub_name": "pong"}'),
    ('Hx.Loop', 'hx_loop', '{"workflow_id": "hx-pong", "name": "a", "sup_workflow_id": "hx-ping", "sub_name": "ping"}');
SELECT * FROM pg_temp.returns($$ SELECT (oban_workflow_status('hx-self')->>'total') || '/' || (oban_workflow_status('hx-self')->'subs')::text $$,
                              '1/{}', 'oban_workflow_status of a workflow that is its own parent');
SELECT * FROM pg_temp.returns($$ SELECT oban_workflow_status('hx-ping')->>'total' $$, '2',
                              'oban_workflow_status of a two-workflow parent loop counts each once');
SELECT * FROM pg_temp.returns($$ SELECT array_length(regexp_split_to_array(oban_workflow_graph('hx-ping'), ' \[label='), 1) - 1 $$,
                              '2', 'oban_workflow_graph of a parent loop lists each job once');
SELECT * FROM pg_temp.returns($$ SELECT completed + available FROM oban_workflow_tree_counts('hx-ping') $$, '2',
                              'oban_workflow_tree_counts of a parent loop counts each once');
SELECT is(oban_cancel_workflow('hx-ping'), 2, 'oban_cancel_workflow of a parent loop cancels both jobs once');

-- Cycles the validator cannot see (documented): steps appended with check_deps => false that wait
-- for each other, or workflows that wait for each other, stay suspended — repair leaves them (their
-- deps exist) — until cancelled.
SELECT count(*) FROM oban_append_workflow('hx-flow', '[{"name": "p", "worker": "W", "queue": "hx_cy", "deps": ["q"]}]', false);
SELECT count(*) FROM oban_append_workflow('hx-flow', '[{"name": "q", "worker": "W", "queue": "hx_cy", "deps": ["p"]}]', false);
SELECT count(*) FROM oban_insert_workflow('{"workflow_id": "hx-w1", "jobs": [{"name": "a", "worker": "W", "queue": "hx_cy", "deps": [["hx-w2", "a"]]}]}');
SELECT count(*) FROM oban_insert_workflow('{"workflow_id": "hx-w2", "jobs": [{"name": "a", "worker": "W", "queue": "hx_cy", "deps": [["hx-w1", "a"]]}]}');
SELECT * FROM pg_temp.returns($$ SELECT oban_repair_workflows('0') $$, '0',
                              'repair leaves steps that wait for each other (their deps exist)');
SELECT is((SELECT array_agg(DISTINCT state::text) FROM oban_jobs WHERE queue = 'hx_cy'), ARRAY['suspended'],
          'steps of a cycle through appends or across workflows stay suspended');
SELECT is(oban_cancel_workflow('hx-w1') + oban_cancel_workflow('hx-w2'), 2, 'cancelling the workflows ends the wait');

-------------------------------------------------------------------------------------------------------
-- 11. Deps on other workflows that do not exist: the job waits; repair cancels it (or with
--     ignore_deleted releases it), and its dependents after it.
-------------------------------------------------------------------------------------------------------
SELECT is((SELECT array_agg(state::text ORDER BY id) FROM oban_insert_workflow('{"workflow_id": "hx-ghost", "jobs": [
               {"name": "a", "worker": "W", "queue": "hx_gh", "deps": [["hx-ghost-wf", "x"]]},
               {"name": "b", "worker": "W", "queue": "hx_gh", "deps": [["hx-ghost-wf2", "*"]]},
               {"name": "c", "worker": "W", "queue": "hx_gh", "deps": ["a"]}]}')),
          ARRAY['suspended', 'suspended', 'suspended'], 'deps on workflows that do not exist: the jobs wait');
SELECT is((SELECT array_agg(state::text ORDER BY id) FROM oban_insert_workflow('{"workflow_id": "hx-ghost-ok", "ignore_deleted": true,
               "jobs": [{"name": "a", "worker": "W", "queue": "hx_gh", "deps": [["hx-ghost-wf", "x"]]}]}')),
          ARRAY['suspended'], 'with ignore_deleted too');
SELECT is(oban_repair_workflows('0'), 3, 'repair settles the three jobs waiting for missing deps (and the flush their dependent)');
SELECT is((SELECT array_agg(meta->>'workflow_id' || '/' || (meta->>'name') || ':' || state || coalesce(' ' || (errors->-1->>'error'), '')
                            ORDER BY id) FROM oban_jobs WHERE queue = 'hx_gh'),
          ARRAY['hx-ghost/a:cancelled upstream dep hx-ghost-wf/x was deleted',
                'hx-ghost/b:cancelled upstream dep hx-ghost-wf2/* was deleted',
                'hx-ghost/c:cancelled upstream dep a was cancelled',
                'hx-ghost-ok/a:available'],
          'missing deps cancel (naming the dep) or, ignored, release');

-------------------------------------------------------------------------------------------------------
-- 12. The rest of the hostile calls left state as it was; the backend is alive.
-------------------------------------------------------------------------------------------------------
SELECT is((SELECT array_agg(meta->>'name' || ':' || state ORDER BY meta->>'name') FROM oban_jobs
           WHERE meta->>'workflow_id' IN ('hx-flow', 'hx-sub') AND meta->>'name' NOT IN ('p', 'q')),
          ARRAY['a:completed', 'b:available', 'c:suspended', 'x:available'],
          'workflow hx-flow is exactly where the fixture left it');
SELECT is((SELECT count(*)::int FROM (
               SELECT meta->>'workflow_id' AS id,
                      count(*) FILTER (WHERE state = 'suspended') AS suspended,
                      count(*) FILTER (WHERE state = 'available') AS available,
                      count(*) FILTER (WHERE state = 'executing') AS executing,
                      count(*) FILTER (WHERE state = 'completed') AS completed,
                      count(*) FILTER (WHERE state = 'cancelled') AS cancelled
               FROM oban_jobs WHERE meta ? 'workflow_id' GROUP BY 1) AS r
           FULL JOIN oban_workflows AS w USING (id)
           WHERE ROW(w.suspended, w.available, w.executing, w.completed, w.cancelled)
                 IS DISTINCT FROM ROW(r.suspended::int, r.available::int, r.executing::int, r.completed::int,
                                      r.cancelled::int)),
          0, 'oban_workflows equals a recount from oban_jobs after everything above');
SELECT is((SELECT 1), 1, 'the backend still answers');
SELECT is(pg_postmaster_start_time(), :'postmaster_started'::timestamptz,
          'no backend crashed (the postmaster was never reset)');

SELECT * FROM finish();
ROLLBACK;
