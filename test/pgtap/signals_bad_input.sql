-- pgTAP: the SQL surface of the durable signals (SPEC §6) and their malformed and hostile calls.
--
-- SQLSTATEs (src/pg/signals.cpp, src/pg/args.hpp):
--   22004 null_value_not_allowed          job_id, job_ids, workflow_id, name, payload or wait_timeout is NULL
--   22023 invalid_parameter_value         a negative part in wait_for or wait_timeout, or over 100 years
--   54000 program_limit_exceeded          a payload larger than oban_pro.max_signal_bytes (default 1MB)
--   55000 object_not_in_prerequisite_state oban_await_signal for a job that is missing or not executing
--   25000 invalid_transaction_state       oban_await_signal under REPEATABLE READ / SERIALIZABLE
--                                          (tested in test/sql/signals.sql: pgTAP runs in one transaction)
-- Not errors: signalling a missing or finished job returns false (0 for arrays) and stores nothing;
-- NULL elements of an id array name no job.
-- Every rejected call is checked to leave oban_jobs and oban_signals exactly as they were.
BEGIN;
SELECT plan(66);

SET LOCAL search_path = public, pg_catalog;

-------------------------------------------------------------------------------------------------------
-- Surface
-------------------------------------------------------------------------------------------------------
SELECT has_table('oban_signals', 'table oban_signals exists');
SELECT columns_are('oban_signals', ARRAY['id', 'job_id', 'payload', 'inserted_at'],
                   'oban_signals has id, job_id, payload, inserted_at');
SELECT col_type_is('oban_signals', 'id', 'bigint', 'oban_signals.id is bigint');
SELECT col_type_is('oban_signals', 'job_id', 'bigint', 'oban_signals.job_id is bigint');
SELECT col_type_is('oban_signals', 'payload', 'jsonb', 'oban_signals.payload is jsonb');
SELECT col_type_is('oban_signals', 'inserted_at', 'timestamp without time zone',
                   'oban_signals.inserted_at is timestamp without time zone');
SELECT ok((SELECT 'oban_signals'::regclass = ANY (extconfig) FROM pg_extension WHERE extname = 'oban_pro'),
          'oban_signals is dumped by pg_dump');
SELECT function_returns('oban_signal', ARRAY['bigint', 'jsonb'], 'boolean', 'oban_signal(bigint, jsonb) → boolean');
SELECT function_returns('oban_signal', ARRAY['bigint[]', 'jsonb'], 'integer', 'oban_signal(bigint[], jsonb) → integer');
SELECT function_returns('oban_workflow_signal', ARRAY['text', 'text', 'jsonb'], 'integer',
                        'oban_workflow_signal(text, text, jsonb) → integer');
SELECT function_returns('oban_await_signal', ARRAY['bigint', 'interval', 'interval'], 'setof record',
                        'oban_await_signal(bigint, interval, interval) → TABLE');
SELECT is((SELECT pg_get_function_arguments('oban_await_signal'::regproc)),
          'job_id bigint, wait_for interval DEFAULT NULL::interval, wait_timeout interval DEFAULT ''00:00:05''::interval',
          'oban_await_signal defaults: wait_for NULL, wait_timeout 5 seconds');
SELECT is((SELECT pg_get_function_result('oban_await_signal'::regproc)), 'TABLE(status text, payload jsonb)',
          'oban_await_signal returns (status, payload)');

-------------------------------------------------------------------------------------------------------
-- Helpers and fixtures
-------------------------------------------------------------------------------------------------------
CREATE FUNCTION pg_temp.digest() RETURNS text LANGUAGE sql VOLATILE AS $$
    SELECT (SELECT count(*) || ':' || md5(coalesce(string_agg(j::text, E'\n' ORDER BY j.id), '')) FROM oban_jobs AS j)
        || ' / ' ||
           (SELECT count(*) || ':' || md5(coalesce(string_agg(s.job_id || s.payload::text, E'\n' ORDER BY s.id), ''))
            FROM oban_signals AS s)
$$;

SELECT (oban_insert_job('Running')).id AS running \gset
SELECT (oban_insert_job('Waiting')).id AS waiting \gset
SELECT (oban_insert_job('Done')).id AS done \gset
UPDATE oban_jobs SET state = 'executing', attempt = 1 WHERE id = :running;
UPDATE oban_jobs SET state = 'completed', completed_at = now() WHERE id = :done;
SELECT oban_signal(:waiting, '{"kept": true}');
SELECT pg_temp.digest() AS before \gset

-------------------------------------------------------------------------------------------------------
-- NULLs: 22004
-------------------------------------------------------------------------------------------------------
SELECT throws_ok($$ SELECT oban_signal(NULL::bigint, '{}') $$, '22004', 'job_id must not be null', 'oban_signal: NULL id');
SELECT throws_ok($$ SELECT oban_signal(NULL::bigint[], '{}') $$, '22004', 'job_ids must not be null', 'oban_signal: NULL array');
SELECT throws_ok(format($$ SELECT oban_signal(%s, NULL) $$, :waiting), '22004', 'payload must not be null',
                 'oban_signal: NULL payload');
SELECT throws_ok(format($$ SELECT oban_signal(ARRAY[%s]::bigint[], NULL) $$, :waiting), '22004',
                 'payload must not be null', 'oban_signal(array): NULL payload');
SELECT throws_ok($$ SELECT oban_workflow_signal(NULL, 'a', '{}') $$, '22004', 'workflow_id must not be null',
                 'oban_workflow_signal: NULL workflow_id');
SELECT throws_ok($$ SELECT oban_workflow_signal('w', NULL, '{}') $$, '22004', 'name must not be null',
                 'oban_workflow_signal: NULL name');
SELECT throws_ok($$ SELECT oban_workflow_signal('w', 'a', NULL) $$, '22004', 'payload must not be null',
                 'oban_workflow_signal: NULL payload');
SELECT throws_ok($$ SELECT * FROM oban_await_signal(NULL) $$, '22004', 'job_id must not be null',
                 'oban_await_signal: NULL job_id');
SELECT throws_ok(format($$ SELECT * FROM oban_await_signal(%s, NULL, NULL) $$, :running), '22004',
                 'wait_timeout must not be null', 'oban_await_signal: NULL wait_timeout');
SELECT is(pg_temp.digest(), :'before', 'NULL arguments change nothing');

-- NULL elements of an array name no job; a NULL wait_for is no deadline (tested in pg_regress).
SELECT is(oban_signal(ARRAY[NULL, NULL]::bigint[], '{}'), 0, 'an array of NULL ids signals nobody');
SELECT is(pg_temp.digest(), :'before', 'and stores nothing');

-------------------------------------------------------------------------------------------------------
-- Awaiting a job that is not executing: 55000
-------------------------------------------------------------------------------------------------------
SELECT throws_ok($$ SELECT * FROM oban_await_signal(-1) $$, '55000', 'job -1 does not exist',
                 'oban_await_signal: a missing job');
SELECT throws_ok(format($$ SELECT * FROM oban_await_signal(%s) $$, :waiting), '55000',
                 format('job %s is not executing', :waiting), 'oban_await_signal: an available job');
SELECT throws_ok(format($$ SELECT * FROM oban_await_signal(%s) $$, :done), '55000',
                 format('job %s is not executing', :done), 'oban_await_signal: a completed job');
UPDATE oban_jobs SET state = 'suspended' WHERE id = :waiting;
SELECT throws_ok(format($$ SELECT * FROM oban_await_signal(%s, wait_timeout => '0') $$, :waiting), '55000',
                 format('job %s is not executing', :waiting), 'oban_await_signal: a suspended job');
UPDATE oban_jobs SET state = 'available' WHERE id = :waiting;
SELECT is(pg_temp.digest(), :'before', 'awaiting a job that is not executing consumes nothing and parks nothing');

-------------------------------------------------------------------------------------------------------
-- Intervals: 22023
-------------------------------------------------------------------------------------------------------
SELECT throws_ok(format($$ SELECT * FROM oban_await_signal(%s, '-1 second') $$, :running), '22023',
                 'wait_for must not be negative', 'a negative wait_for');
SELECT throws_ok(format($$ SELECT * FROM oban_await_signal(%s, '1 day -1 second') $$, :running), '22023',
                 'wait_for must not be negative', 'a wait_for with a negative part');
SELECT throws_ok(format($$ SELECT * FROM oban_await_signal(%s, '-1 month') $$, :running), '22023',
                 'wait_for must not be negative', 'a negative month in wait_for');
SELECT throws_ok(format($$ SELECT * FROM oban_await_signal(%s, '200 years') $$, :running), '22023',
                 'wait_for must be at most 100 years', 'a wait_for over 100 years (200)');
SELECT throws_ok(format($$ SELECT * FROM oban_await_signal(%s, NULL, '-1 second') $$, :running), '22023',
                 'wait_timeout must not be negative', 'a negative wait_timeout');
SELECT throws_ok(format($$ SELECT * FROM oban_await_signal(%s, NULL, '-1 day') $$, :running), '22023',
                 'wait_timeout must not be negative', 'a negative day in wait_timeout');
SELECT throws_ok(format($$ SELECT * FROM oban_await_signal(%s, NULL, '1000 years') $$, :running), '22023',
                 'wait_timeout must be at most 100 years', 'a wait_timeout over 100 years');
SELECT throws_ok(format($$ SELECT * FROM oban_await_signal(%s, '-1 second', '-1 second') $$, :done), '22023',
                 NULL, 'arguments are checked before the job');
SELECT is(pg_temp.digest(), :'before', 'bad intervals change nothing');

-------------------------------------------------------------------------------------------------------
-- Huge payloads: 54000 above oban_pro.max_signal_bytes
-------------------------------------------------------------------------------------------------------
CREATE TEMP TABLE big AS
    SELECT jsonb_build_object('blob', repeat('x', 2 * 1024 * 1024)) AS payload,
           jsonb_build_object('blob', repeat('y', 900 * 1024)) AS fits;
SELECT throws_ok(format($$ SELECT oban_signal(%s, (SELECT payload FROM big)) $$, :waiting), '54000',
                 'signal payload is too large', 'a 2MB payload to one job');
SELECT throws_ok(format($$ SELECT oban_signal(ARRAY[%s, %s], (SELECT payload FROM big)) $$, :waiting, :running),
                 '54000', 'signal payload is too large', 'a 2MB payload to many jobs');
SELECT throws_ok($$ SELECT oban_workflow_signal('w', 'a', (SELECT payload FROM big)) $$, '54000',
                 'signal payload is too large', 'a 2MB payload to workflow steps');
SELECT is(pg_temp.digest(), :'before', 'an oversized payload stores nothing');
-- The limit is a setting; payloads within it are stored whole, and toasted.
SELECT ok(oban_signal(:waiting, (SELECT fits FROM big)), 'a 900kB payload is stored');
SELECT is((SELECT octet_length(payload->>'blob') FROM oban_signals WHERE job_id = :waiting ORDER BY id DESC LIMIT 1),
          900 * 1024, 'whole');
SET LOCAL oban_pro.max_signal_bytes = '4MB';
SELECT ok(oban_signal(:waiting, (SELECT payload FROM big)), 'a 2MB payload is stored under a 4MB limit');
SET LOCAL oban_pro.max_signal_bytes = '1kB';
SELECT throws_ok(format($$ SELECT oban_signal(%s, (SELECT fits FROM big)) $$, :waiting), '54000',
                 'signal payload is too large', 'and refused under a 1kB limit');
SELECT throws_ok($$ SET LOCAL oban_pro.max_signal_bytes = 0 $$, '22023', NULL, 'the limit is at least 16 bytes');
RESET oban_pro.max_signal_bytes;
-- Hostile but valid payloads: deep nesting, every JSON type, NUL-free unicode.
SELECT ok(oban_signal(:running, (repeat('[', 1000) || repeat(']', 1000))::jsonb),
          'a deeply nested payload is stored');
SELECT ok(oban_signal(:running, '"just a string"'), 'a scalar payload is stored');
SELECT ok(oban_signal(:running, 'null'), 'a JSON null payload is stored');
SELECT ok(oban_signal(:running, '{"ünï": "cödé ✓"}'), 'a unicode payload is stored');
SELECT results_eq(format($$ SELECT status, payload FROM oban_await_signal(%s) $$, :running),
                  $$ VALUES ('received', (repeat('[', 1000) || repeat(']', 1000))::jsonb) $$,
                  'the nested payload comes back as sent');
SELECT results_eq(format($$ SELECT status, payload FROM oban_await_signal(%s) $$, :running),
                  $$ VALUES ('received', '"just a string"'::jsonb) $$, 'the scalar comes back');
SELECT results_eq(format($$ SELECT status, payload FROM oban_await_signal(%s) $$, :running),
                  $$ VALUES ('received', 'null'::jsonb) $$, 'JSON null comes back, not SQL NULL');
SELECT results_eq(format($$ SELECT status, payload FROM oban_await_signal(%s) $$, :running),
                  $$ VALUES ('received', '{"ünï": "cödé ✓"}'::jsonb) $$, 'the unicode payload comes back');

-------------------------------------------------------------------------------------------------------
-- No-op targets
-------------------------------------------------------------------------------------------------------
SELECT pg_temp.digest() AS before \gset
SELECT is(oban_signal(-1, '{}'), false, 'a missing job takes nothing');
SELECT is(oban_signal(:done, '{}'), false, 'a completed job takes nothing');
SELECT is(oban_signal(ARRAY[-1, :done]::bigint[], '{}'), 0, 'an array of missing and finished jobs: 0');
SELECT is(oban_signal(ARRAY[]::bigint[], '{}'), 0, 'an empty array: 0');
SELECT is(oban_signal('{{-1, -2}, {-3, -4}}'::bigint[], '{}'), 0, 'a two-dimensional array is read flat');
SELECT is(oban_workflow_signal('', '', '{}'), 0, 'empty workflow id and name: 0');
SELECT is(oban_workflow_signal(repeat('w', 100000), repeat('n', 100000), '{}'), 0, 'huge names: 0');
SELECT is(pg_temp.digest(), :'before', 'no-op signals change nothing');
SELECT is(oban_signal(ARRAY[:waiting, :waiting, :waiting]::bigint[], '{"dup": 1}'), 1,
          'a job named three times in one call takes the payload once');

-------------------------------------------------------------------------------------------------------
-- A zero wait_timeout parks at once. (statement_timeout, cancel and termination of a blocked await:
-- test/scripts/signal_wake.sh, since pgTAP cannot catch a query cancel.)
-------------------------------------------------------------------------------------------------------
SELECT results_eq(format($$ SELECT status FROM oban_await_signal(%s, NULL, '0') $$, :running),
                  $$ VALUES ('suspended') $$, 'wait_timeout 0 parks at once');

SELECT * FROM finish();
ROLLBACK;
