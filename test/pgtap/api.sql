-- pgTAP: the SQL surface of oban_pro 0.6.1 (SPEC §2 tables, SPEC §3 functions).
-- Every object must exist with the exact name, signature, return type, columns and types that Oban
-- clients (oban-py 0.6 install.sql layout) and the SPEC rely on.
-- Run with pg_prove against a database with CREATE EXTENSION pgtap; CREATE EXTENSION oban_pro;
BEGIN;
SELECT plan(181);

SET LOCAL search_path = public, pg_catalog;

-------------------------------------------------------------------------------------------------------
-- Extension
-------------------------------------------------------------------------------------------------------
SELECT has_extension('oban_pro', 'extension oban_pro is installed');
SELECT is((SELECT extversion FROM pg_extension WHERE extname = 'oban_pro'), '0.6.1',
          'oban_pro is at version 0.6.1');

-------------------------------------------------------------------------------------------------------
-- SPEC §2: enum oban_job_state (order is not part of the contract: compare as a set)
-------------------------------------------------------------------------------------------------------
SELECT has_type('oban_job_state', 'type oban_job_state exists');
SELECT has_enum('oban_job_state', 'oban_job_state is an enum');
SELECT set_eq(
    $$ SELECT unnest(enum_range(NULL::oban_job_state))::text $$,
    ARRAY['available', 'scheduled', 'suspended', 'executing', 'retryable', 'completed', 'discarded',
          'cancelled'],
    'oban_job_state has exactly the eight Oban states');

-------------------------------------------------------------------------------------------------------
-- SPEC §2: oban_jobs
-------------------------------------------------------------------------------------------------------
SELECT has_table('oban_jobs', 'table oban_jobs exists');
SELECT is((SELECT relpersistence::text FROM pg_class WHERE oid = 'oban_jobs'::regclass), 'p',
          'oban_jobs is a logged (permanent) table');
SELECT columns_are('oban_jobs', ARRAY[
    'id', 'state', 'queue', 'worker', 'attempt', 'max_attempts', 'priority', 'args', 'meta', 'tags',
    'errors', 'attempted_by', 'inserted_at', 'scheduled_at', 'attempted_at', 'cancelled_at',
    'completed_at', 'discarded_at'], 'oban_jobs has exactly the oban-py 0.6 columns');

SELECT col_type_is('oban_jobs', 'id', 'bigint', 'oban_jobs.id is bigint');
SELECT col_type_is('oban_jobs', 'state', 'oban_job_state', 'oban_jobs.state is oban_job_state');
SELECT col_type_is('oban_jobs', 'queue', 'text', 'oban_jobs.queue is text');
SELECT col_type_is('oban_jobs', 'worker', 'text', 'oban_jobs.worker is text');
SELECT col_type_is('oban_jobs', 'attempt', 'smallint', 'oban_jobs.attempt is smallint');
SELECT col_type_is('oban_jobs', 'max_attempts', 'smallint', 'oban_jobs.max_attempts is smallint');
SELECT col_type_is('oban_jobs', 'priority', 'smallint', 'oban_jobs.priority is smallint');
SELECT col_type_is('oban_jobs', 'args', 'jsonb', 'oban_jobs.args is jsonb');
SELECT col_type_is('oban_jobs', 'meta', 'jsonb', 'oban_jobs.meta is jsonb');
SELECT col_type_is('oban_jobs', 'tags', 'text[]', 'oban_jobs.tags is text[]');
SELECT col_type_is('oban_jobs', 'errors', 'jsonb', 'oban_jobs.errors is jsonb (not jsonb[])');
SELECT col_type_is('oban_jobs', 'attempted_by', 'text[]', 'oban_jobs.attempted_by is text[]');
SELECT col_type_is('oban_jobs', 'inserted_at', 'timestamp without time zone',
                   'oban_jobs.inserted_at is timestamp without time zone');
SELECT col_type_is('oban_jobs', 'scheduled_at', 'timestamp without time zone',
                   'oban_jobs.scheduled_at is timestamp without time zone');
SELECT col_type_is('oban_jobs', 'attempted_at', 'timestamp without time zone',
                   'oban_jobs.attempted_at is timestamp without time zone');
SELECT col_type_is('oban_jobs', 'cancelled_at', 'timestamp without time zone',
                   'oban_jobs.cancelled_at is timestamp without time zone');
SELECT col_type_is('oban_jobs', 'completed_at', 'timestamp without time zone',
                   'oban_jobs.completed_at is timestamp without time zone');
SELECT col_type_is('oban_jobs', 'discarded_at', 'timestamp without time zone',
                   'oban_jobs.discarded_at is timestamp without time zone');

-- NOT NULL: every column but the four lifecycle timestamps.
SELECT col_not_null('oban_jobs', 'id', 'oban_jobs.id is NOT NULL');
SELECT col_not_null('oban_jobs', 'state', 'oban_jobs.state is NOT NULL');
SELECT col_not_null('oban_jobs', 'queue', 'oban_jobs.queue is NOT NULL');
SELECT col_not_null('oban_jobs', 'worker', 'oban_jobs.worker is NOT NULL');
SELECT col_not_null('oban_jobs', 'attempt', 'oban_jobs.attempt is NOT NULL');
SELECT col_not_null('oban_jobs', 'max_attempts', 'oban_jobs.max_attempts is NOT NULL');
SELECT col_not_null('oban_jobs', 'priority', 'oban_jobs.priority is NOT NULL');
SELECT col_not_null('oban_jobs', 'args', 'oban_jobs.args is NOT NULL');
SELECT col_not_null('oban_jobs', 'meta', 'oban_jobs.meta is NOT NULL');
SELECT col_not_null('oban_jobs', 'tags', 'oban_jobs.tags is NOT NULL');
SELECT col_not_null('oban_jobs', 'errors', 'oban_jobs.errors is NOT NULL');
SELECT col_not_null('oban_jobs', 'attempted_by', 'oban_jobs.attempted_by is NOT NULL');
SELECT col_not_null('oban_jobs', 'inserted_at', 'oban_jobs.inserted_at is NOT NULL');
SELECT col_not_null('oban_jobs', 'scheduled_at', 'oban_jobs.scheduled_at is NOT NULL');
SELECT col_is_null('oban_jobs', 'attempted_at', 'oban_jobs.attempted_at is nullable');
SELECT col_is_null('oban_jobs', 'cancelled_at', 'oban_jobs.cancelled_at is nullable');
SELECT col_is_null('oban_jobs', 'completed_at', 'oban_jobs.completed_at is nullable');
SELECT col_is_null('oban_jobs', 'discarded_at', 'oban_jobs.discarded_at is nullable');

-- id: bigint identity primary key (GENERATED ALWAYS, as oban-py).
SELECT col_is_pk('oban_jobs', 'id', 'oban_jobs.id is the primary key');
SELECT is((SELECT attidentity::text FROM pg_attribute
           WHERE attrelid = 'oban_jobs'::regclass AND attname = 'id'), 'a',
          'oban_jobs.id is GENERATED ALWAYS AS IDENTITY');

-- Defaults.
SELECT col_default_is('oban_jobs', 'state', 'available'::oban_job_state,
                      'oban_jobs.state defaults to available');
SELECT col_default_is('oban_jobs', 'queue', 'default'::text, 'oban_jobs.queue defaults to ''default''');
SELECT col_hasnt_default('oban_jobs', 'worker', 'oban_jobs.worker has no default');
SELECT col_default_is('oban_jobs', 'attempt', 0::smallint, 'oban_jobs.attempt defaults to 0');
SELECT col_default_is('oban_jobs', 'max_attempts', 20::smallint, 'oban_jobs.max_attempts defaults to 20');
SELECT col_default_is('oban_jobs', 'priority', 0::smallint, 'oban_jobs.priority defaults to 0');
SELECT col_default_is('oban_jobs', 'args', '{}'::jsonb, 'oban_jobs.args defaults to {}');
SELECT col_default_is('oban_jobs', 'meta', '{}'::jsonb, 'oban_jobs.meta defaults to {}');
SELECT col_default_is('oban_jobs', 'tags', '{}'::text[], 'oban_jobs.tags defaults to an empty array');
SELECT col_default_is('oban_jobs', 'errors', '[]'::jsonb, 'oban_jobs.errors defaults to []');
SELECT col_default_is('oban_jobs', 'attempted_by', '{}'::text[],
                      'oban_jobs.attempted_by defaults to an empty array');
SELECT col_default_is('oban_jobs', 'inserted_at', 'timezone(''UTC''::text, now())',
                      'oban_jobs.inserted_at defaults to now in UTC');
SELECT col_default_is('oban_jobs', 'scheduled_at', 'timezone(''UTC''::text, now())',
                      'oban_jobs.scheduled_at defaults to now in UTC');
SELECT col_hasnt_default('oban_jobs', 'attempted_at', 'oban_jobs.attempted_at has no default');
SELECT col_hasnt_default('oban_jobs', 'cancelled_at', 'oban_jobs.cancelled_at has no default');
SELECT col_hasnt_default('oban_jobs', 'completed_at', 'oban_jobs.completed_at has no default');
SELECT col_hasnt_default('oban_jobs', 'discarded_at', 'oban_jobs.discarded_at has no default');

-- The defaults as a plain INSERT from an Oban client sees them.
INSERT INTO oban_jobs (worker) VALUES ('Api.DefaultsWorker');
SELECT row_eq(
    $$ SELECT state, queue, attempt, max_attempts, priority, args, meta, tags, errors, attempted_by,
              attempted_at, cancelled_at, completed_at, discarded_at,
              inserted_at = timezone('UTC', now()), scheduled_at = timezone('UTC', now())
       FROM oban_jobs WHERE worker = 'Api.DefaultsWorker' $$,
    ROW('available'::oban_job_state, 'default'::text, 0::smallint, 20::smallint, 0::smallint,
        '{}'::jsonb, '{}'::jsonb, '{}'::text[], '[]'::jsonb, '{}'::text[],
        NULL::timestamp, NULL::timestamp, NULL::timestamp, NULL::timestamp, true, true),
    'a plain INSERT of only a worker gets every documented default');

-- Check constraints (names as in oban-py).
SELECT has_check('oban_jobs', 'oban_jobs has check constraints');
SELECT set_eq(
    $$ SELECT conname::text FROM pg_constraint
       WHERE conrelid = 'oban_jobs'::regclass AND contype = 'c' $$,
    ARRAY['attempt_range', 'queue_length', 'worker_length', 'positive_max_attempts',
          'non_negative_priority'],
    'oban_jobs has exactly the oban-py check constraints');
SELECT is((SELECT pg_get_constraintdef(oid) FROM pg_constraint
           WHERE conrelid = 'oban_jobs'::regclass AND conname = 'attempt_range'),
          'CHECK (((attempt >= 0) AND (attempt <= max_attempts)))',
          'attempt_range: 0 <= attempt <= max_attempts');
SELECT is((SELECT pg_get_constraintdef(oid) FROM pg_constraint
           WHERE conrelid = 'oban_jobs'::regclass AND conname = 'queue_length'),
          'CHECK ((char_length(queue) > 0))', 'queue_length: queue is not empty');
SELECT is((SELECT pg_get_constraintdef(oid) FROM pg_constraint
           WHERE conrelid = 'oban_jobs'::regclass AND conname = 'worker_length'),
          'CHECK ((char_length(worker) > 0))', 'worker_length: worker is not empty');
SELECT is((SELECT pg_get_constraintdef(oid) FROM pg_constraint
           WHERE conrelid = 'oban_jobs'::regclass AND conname = 'positive_max_attempts'),
          'CHECK ((max_attempts > 0))', 'positive_max_attempts: max_attempts > 0');
SELECT is((SELECT pg_get_constraintdef(oid) FROM pg_constraint
           WHERE conrelid = 'oban_jobs'::regclass AND conname = 'non_negative_priority'),
          'CHECK ((priority >= 0))', 'non_negative_priority: priority >= 0');

-- The constraints are enforced on plain INSERTs (23514 check_violation).
SELECT throws_ok($$ INSERT INTO oban_jobs (worker, attempt, max_attempts) VALUES ('W', 3, 2) $$,
                 '23514', NULL, 'attempt_range rejects attempt > max_attempts');
SELECT throws_ok($$ INSERT INTO oban_jobs (worker, attempt) VALUES ('W', -1) $$,
                 '23514', NULL, 'attempt_range rejects a negative attempt');
SELECT throws_ok($$ INSERT INTO oban_jobs (worker, queue) VALUES ('W', '') $$,
                 '23514', NULL, 'queue_length rejects an empty queue');
SELECT throws_ok($$ INSERT INTO oban_jobs (worker) VALUES ('') $$,
                 '23514', NULL, 'worker_length rejects an empty worker');
SELECT throws_ok($$ INSERT INTO oban_jobs (worker, max_attempts) VALUES ('W', 0) $$,
                 '23514', NULL, 'positive_max_attempts rejects max_attempts 0');
SELECT throws_ok($$ INSERT INTO oban_jobs (worker, priority) VALUES ('W', -1) $$,
                 '23514', NULL, 'non_negative_priority rejects a negative priority');

-- Indexes named in the install script.
SELECT indexes_are('oban_jobs', ARRAY[
    'oban_jobs_pkey',
    'oban_jobs_state_queue_priority_scheduled_at_id_index',
    'oban_jobs_staging_index',
    'oban_jobs_completed_at_index',
    'oban_jobs_cancelled_at_index',
    'oban_jobs_discarded_at_index',
    'oban_jobs_parked_index'], 'oban_jobs has the oban-py indexes and the parked-job index');
-- A workflow's jobs by step: a table the jobs' state changes never write (0.6.1), not an index on
-- oban_jobs.
SELECT has_index('oban_workflow_steps', 'oban_workflow_steps_name_index', ARRAY['workflow_id', 'name', 'job_id'],
                 'oban_workflow_steps is indexed on (workflow_id, name, job_id)');
SELECT ok((SELECT indisprimary FROM pg_index WHERE indexrelid = 'oban_jobs_pkey'::regclass),
          'oban_jobs_pkey is the primary key index');
SELECT has_index('oban_jobs', 'oban_jobs_state_queue_priority_scheduled_at_id_index',
                 ARRAY['state', 'queue', 'priority', 'scheduled_at', 'id'],
                 'fetch index on (state, queue, priority, scheduled_at, id)');
SELECT is((SELECT am.amname::text FROM pg_class c JOIN pg_am am ON am.oid = c.relam
           WHERE c.oid = 'oban_jobs_state_queue_priority_scheduled_at_id_index'::regclass),
          'btree', 'fetch index is a btree');
SELECT ok((SELECT indpred IS NULL FROM pg_index
           WHERE indexrelid = 'oban_jobs_state_queue_priority_scheduled_at_id_index'::regclass),
          'fetch index is not partial');
SELECT has_index('oban_jobs', 'oban_jobs_staging_index', ARRAY['scheduled_at', 'id', 'queue'],
                 'staging index on (scheduled_at, id) INCLUDE (queue)');
SELECT is((SELECT indnkeyatts::int FROM pg_index WHERE indexrelid = 'oban_jobs_staging_index'::regclass),
          2, 'staging index has two key columns (queue is only INCLUDEd)');
SELECT matches(pg_get_indexdef('oban_jobs_staging_index'::regclass),
               'INCLUDE \(queue\) WHERE \(state = ANY \(ARRAY\[''scheduled''::[a-z_.]*oban_job_state, ''retryable''::[a-z_.]*oban_job_state\]\)\)$',
               'staging index is partial on state IN (scheduled, retryable)');
SELECT has_index('oban_jobs', 'oban_jobs_completed_at_index', 'completed_at',
                 'completed_at index on completed_at');
SELECT matches(pg_get_indexdef('oban_jobs_completed_at_index'::regclass),
               'WHERE \(state = ''completed''::[a-z_.]*oban_job_state\)$',
               'completed_at index is partial on state = completed');
SELECT has_index('oban_jobs', 'oban_jobs_cancelled_at_index', 'cancelled_at',
                 'cancelled_at index on cancelled_at');
SELECT matches(pg_get_indexdef('oban_jobs_cancelled_at_index'::regclass),
               'WHERE \(state = ''cancelled''::[a-z_.]*oban_job_state\)$',
               'cancelled_at index is partial on state = cancelled');
SELECT has_index('oban_jobs', 'oban_jobs_discarded_at_index', 'discarded_at',
                 'discarded_at index on discarded_at');
SELECT matches(pg_get_indexdef('oban_jobs_discarded_at_index'::regclass),
               'WHERE \(state = ''discarded''::[a-z_.]*oban_job_state\)$',
               'discarded_at index is partial on state = discarded');

-- Jobs are user data: pg_dump keeps them (SPEC §1).
SELECT ok((SELECT 'oban_jobs'::regclass = ANY (extconfig) FROM pg_extension WHERE extname = 'oban_pro'),
          'oban_jobs is registered with pg_extension_config_dump');

-- Notification triggers (SPEC §3: plain INSERTs get the extension's behaviour).
SELECT has_trigger('oban_jobs', 'oban_jobs_before_insert', 'oban_jobs has trigger oban_jobs_before_insert');
SELECT has_trigger('oban_jobs', 'oban_jobs_state_changed', 'oban_jobs has trigger oban_jobs_state_changed');

-------------------------------------------------------------------------------------------------------
-- SPEC §5: unique workflows are held by a primary key, for plain INSERTs too
-------------------------------------------------------------------------------------------------------
SELECT has_table('oban_workflow_names', 'table oban_workflow_names exists');
SELECT col_is_pk('oban_workflow_names', 'name', 'oban_workflow_names.name is the primary key');
SELECT ok((SELECT 'oban_workflow_names'::regclass = ANY (extconfig) FROM pg_extension WHERE extname = 'oban_pro'),
          'oban_workflow_names is registered with pg_extension_config_dump');
SELECT is((SELECT count(*)::int FROM pg_trigger WHERE tgrelid = 'oban_jobs'::regclass AND NOT tgisinternal
           AND tgtype & 2 = 2 AND tgtype & 4 = 4 AND tgqual IS NULL), 1,
          'one BEFORE INSERT row trigger, without a WHEN clause');
SELECT ok((SELECT tgname FROM pg_trigger WHERE tgrelid = 'oban_jobs'::regclass AND NOT tgisinternal
           AND tgtype & 2 = 2 AND tgtype & 4 = 4 ORDER BY tgname LIMIT 1) = 'oban_jobs_before_insert',
          'oban_jobs_before_insert (which claims the name first) is the first BEFORE INSERT trigger');
SELECT is((SELECT pg_get_function_result('oban_insert_workflow(jsonb)'::regprocedure)),
          'TABLE(id bigint, workflow_id text, name text, state oban_job_state, conflicted boolean)',
          'oban_insert_workflow returns conflicted per job');

-------------------------------------------------------------------------------------------------------
-- SPEC §2: oban_leaders, oban_producers (UNLOGGED)
-------------------------------------------------------------------------------------------------------
SELECT has_table('oban_leaders', 'table oban_leaders exists');
SELECT is((SELECT relpersistence::text FROM pg_class WHERE oid = 'oban_leaders'::regclass), 'u',
          'oban_leaders is UNLOGGED');
SELECT columns_are('oban_leaders', ARRAY['name', 'node', 'elected_at', 'expires_at'],
                   'oban_leaders has the oban-py columns');
SELECT col_is_pk('oban_leaders', 'name', 'oban_leaders.name is the primary key');
SELECT col_type_is('oban_leaders', 'name', 'text', 'oban_leaders.name is text');
SELECT col_default_is('oban_leaders', 'name', 'oban'::text, 'oban_leaders.name defaults to ''oban''');
SELECT col_type_is('oban_leaders', 'node', 'text', 'oban_leaders.node is text');
SELECT col_not_null('oban_leaders', 'node', 'oban_leaders.node is NOT NULL');
SELECT col_type_is('oban_leaders', 'elected_at', 'timestamp without time zone',
                   'oban_leaders.elected_at is timestamp without time zone');
SELECT col_not_null('oban_leaders', 'elected_at', 'oban_leaders.elected_at is NOT NULL');
SELECT col_type_is('oban_leaders', 'expires_at', 'timestamp without time zone',
                   'oban_leaders.expires_at is timestamp without time zone');
SELECT col_not_null('oban_leaders', 'expires_at', 'oban_leaders.expires_at is NOT NULL');

SELECT has_table('oban_producers', 'table oban_producers exists');
SELECT is((SELECT relpersistence::text FROM pg_class WHERE oid = 'oban_producers'::regclass), 'u',
          'oban_producers is UNLOGGED');
SELECT columns_are('oban_producers',
                   ARRAY['uuid', 'name', 'node', 'queue', 'meta', 'started_at', 'updated_at'],
                   'oban_producers has the oban-py columns');
SELECT col_is_pk('oban_producers', 'uuid', 'oban_producers.uuid is the primary key');
SELECT col_type_is('oban_producers', 'uuid', 'uuid', 'oban_producers.uuid is uuid');
SELECT col_type_is('oban_producers', 'name', 'text', 'oban_producers.name is text');
SELECT col_default_is('oban_producers', 'name', 'oban'::text, 'oban_producers.name defaults to ''oban''');
SELECT col_type_is('oban_producers', 'node', 'text', 'oban_producers.node is text');
SELECT col_not_null('oban_producers', 'node', 'oban_producers.node is NOT NULL');
SELECT col_type_is('oban_producers', 'queue', 'text', 'oban_producers.queue is text');
SELECT col_not_null('oban_producers', 'queue', 'oban_producers.queue is NOT NULL');
SELECT col_type_is('oban_producers', 'meta', 'jsonb', 'oban_producers.meta is jsonb');
SELECT col_default_is('oban_producers', 'meta', '{}'::jsonb, 'oban_producers.meta defaults to {}');
SELECT col_type_is('oban_producers', 'started_at', 'timestamp without time zone',
                   'oban_producers.started_at is timestamp without time zone');
SELECT col_type_is('oban_producers', 'updated_at', 'timestamp without time zone',
                   'oban_producers.updated_at is timestamp without time zone');

-------------------------------------------------------------------------------------------------------
-- SPEC §2: oban_count_estimate(state, queue)
-------------------------------------------------------------------------------------------------------
SELECT has_function('oban_count_estimate', ARRAY['text', 'text'],
                    'function oban_count_estimate(text, text) exists');
SELECT function_returns('oban_count_estimate', ARRAY['text', 'text'], 'integer',
                        'oban_count_estimate returns integer');
SELECT is(pg_get_function_arguments('oban_count_estimate(text,text)'::regprocedure),
          'state text, queue text', 'oban_count_estimate argument names');
SELECT lives_ok($$ SELECT oban_count_estimate('available', 'default') $$,
                'oban_count_estimate runs');

-------------------------------------------------------------------------------------------------------
-- SPEC §3: job lifecycle functions — existence, return type, exact argument list (names and
-- defaults), and not STRICT (a NULL required argument must raise 22004, not return NULL silently).
-------------------------------------------------------------------------------------------------------

-- oban_insert_job
SELECT has_function('oban_insert_job',
                    ARRAY['text', 'jsonb', 'text', 'integer', 'integer', 'timestamp without time zone',
                          'jsonb', 'text[]'],
                    'function oban_insert_job(text, jsonb, text, int, int, timestamp, jsonb, text[]) exists');
SELECT function_returns('oban_insert_job',
                        ARRAY['text', 'jsonb', 'text', 'integer', 'integer',
                              'timestamp without time zone', 'jsonb', 'text[]'],
                        'oban_jobs', 'oban_insert_job returns oban_jobs');
SELECT is(pg_get_function_arguments(
              'oban_insert_job(text,jsonb,text,integer,integer,timestamp,jsonb,text[])'::regprocedure),
          'worker text, args jsonb DEFAULT ''{}''::jsonb, queue text DEFAULT ''default''::text, '
          'priority integer DEFAULT 0, max_attempts integer DEFAULT 20, '
          'scheduled_at timestamp without time zone DEFAULT NULL::timestamp without time zone, '
          'meta jsonb DEFAULT ''{}''::jsonb, tags text[] DEFAULT ''{}''::text[]',
          'oban_insert_job argument names and defaults');
SELECT isnt_strict('oban_insert_job',
                   ARRAY['text', 'jsonb', 'text', 'integer', 'integer', 'timestamp without time zone',
                         'jsonb', 'text[]'], 'oban_insert_job is not STRICT');

-- oban_fetch_jobs
SELECT has_function('oban_fetch_jobs', ARRAY['text', 'integer', 'text', 'uuid'],
                    'function oban_fetch_jobs(text, int, text, uuid) exists');
SELECT function_returns('oban_fetch_jobs', ARRAY['text', 'integer', 'text', 'uuid'], 'setof oban_jobs',
                        'oban_fetch_jobs returns SETOF oban_jobs');
SELECT is(pg_get_function_arguments('oban_fetch_jobs(text,integer,text,uuid)'::regprocedure),
          'queue text, demand integer, node text DEFAULT ''sql''::text, producer uuid DEFAULT NULL::uuid',
          'oban_fetch_jobs argument names and defaults');
SELECT isnt_strict('oban_fetch_jobs', ARRAY['text', 'integer', 'text', 'uuid'],
                   'oban_fetch_jobs is not STRICT');

-- oban_complete_job
SELECT has_function('oban_complete_job', ARRAY['bigint', 'jsonb'],
                    'function oban_complete_job(bigint, jsonb) exists');
SELECT function_returns('oban_complete_job', ARRAY['bigint', 'jsonb'], 'boolean',
                        'oban_complete_job returns boolean');
SELECT is(pg_get_function_arguments('oban_complete_job(bigint,jsonb)'::regprocedure),
          'id bigint, recorded jsonb DEFAULT NULL::jsonb', 'oban_complete_job argument names and defaults');
SELECT isnt_strict('oban_complete_job', ARRAY['bigint', 'jsonb'], 'oban_complete_job is not STRICT');

-- oban_error_job
SELECT has_function('oban_error_job', ARRAY['bigint', 'text', 'interval'],
                    'function oban_error_job(bigint, text, interval) exists');
SELECT function_returns('oban_error_job', ARRAY['bigint', 'text', 'interval'], 'oban_job_state',
                        'oban_error_job returns oban_job_state');
SELECT is(pg_get_function_arguments('oban_error_job(bigint,text,interval)'::regprocedure),
          'id bigint, error text, backoff interval DEFAULT NULL::interval',
          'oban_error_job argument names and defaults');
SELECT isnt_strict('oban_error_job', ARRAY['bigint', 'text', 'interval'], 'oban_error_job is not STRICT');

-- oban_cancel_job
SELECT has_function('oban_cancel_job', ARRAY['bigint', 'text'],
                    'function oban_cancel_job(bigint, text) exists');
SELECT function_returns('oban_cancel_job', ARRAY['bigint', 'text'], 'boolean',
                        'oban_cancel_job returns boolean');
SELECT is(pg_get_function_arguments('oban_cancel_job(bigint,text)'::regprocedure),
          'id bigint, reason text DEFAULT NULL::text', 'oban_cancel_job argument names and defaults');
SELECT isnt_strict('oban_cancel_job', ARRAY['bigint', 'text'], 'oban_cancel_job is not STRICT');

-- oban_discard_job
SELECT has_function('oban_discard_job', ARRAY['bigint', 'text'],
                    'function oban_discard_job(bigint, text) exists');
SELECT function_returns('oban_discard_job', ARRAY['bigint', 'text'], 'boolean',
                        'oban_discard_job returns boolean');
SELECT is(pg_get_function_arguments('oban_discard_job(bigint,text)'::regprocedure),
          'id bigint, reason text DEFAULT NULL::text', 'oban_discard_job argument names and defaults');
SELECT isnt_strict('oban_discard_job', ARRAY['bigint', 'text'], 'oban_discard_job is not STRICT');

-- oban_snooze_job
SELECT has_function('oban_snooze_job', ARRAY['bigint', 'interval'],
                    'function oban_snooze_job(bigint, interval) exists');
SELECT function_returns('oban_snooze_job', ARRAY['bigint', 'interval'], 'boolean',
                        'oban_snooze_job returns boolean');
SELECT is(pg_get_function_arguments('oban_snooze_job(bigint,interval)'::regprocedure),
          'id bigint, snooze interval', 'oban_snooze_job argument names (no defaults)');
SELECT isnt_strict('oban_snooze_job', ARRAY['bigint', 'interval'], 'oban_snooze_job is not STRICT');

-- oban_retry_job
SELECT has_function('oban_retry_job', ARRAY['bigint'], 'function oban_retry_job(bigint) exists');
SELECT function_returns('oban_retry_job', ARRAY['bigint'], 'boolean', 'oban_retry_job returns boolean');
SELECT is(pg_get_function_arguments('oban_retry_job(bigint)'::regprocedure), 'id bigint',
          'oban_retry_job argument name');
SELECT isnt_strict('oban_retry_job', ARRAY['bigint'], 'oban_retry_job is not STRICT');

-- oban_ack_jobs
SELECT has_function('oban_ack_jobs', ARRAY['jsonb'], 'function oban_ack_jobs(jsonb) exists');
SELECT function_returns('oban_ack_jobs', ARRAY['jsonb'], 'integer', 'oban_ack_jobs returns integer');
SELECT is(pg_get_function_arguments('oban_ack_jobs(jsonb)'::regprocedure), 'acks jsonb',
          'oban_ack_jobs argument name');
SELECT isnt_strict('oban_ack_jobs', ARRAY['jsonb'], 'oban_ack_jobs is not STRICT');

-- oban_stage_jobs
SELECT has_function('oban_stage_jobs', ARRAY['integer'], 'function oban_stage_jobs(int) exists');
SELECT function_returns('oban_stage_jobs', ARRAY['integer'], 'integer', 'oban_stage_jobs returns integer');
SELECT is(pg_get_function_arguments('oban_stage_jobs(integer)'::regprocedure),
          '"limit" integer DEFAULT 5000', 'oban_stage_jobs argument name and default');
SELECT isnt_strict('oban_stage_jobs', ARRAY['integer'], 'oban_stage_jobs is not STRICT');

-- oban_prune_jobs
SELECT has_function('oban_prune_jobs', ARRAY['interval', 'integer'],
                    'function oban_prune_jobs(interval, int) exists');
SELECT function_returns('oban_prune_jobs', ARRAY['interval', 'integer'], 'integer',
                        'oban_prune_jobs returns integer');
SELECT is(pg_get_function_arguments('oban_prune_jobs(interval,integer)'::regprocedure),
          'max_age interval DEFAULT ''1 day''::interval, "limit" integer DEFAULT 10000',
          'oban_prune_jobs argument names and defaults');
SELECT isnt_strict('oban_prune_jobs', ARRAY['interval', 'integer'], 'oban_prune_jobs is not STRICT');

-- oban_rescue_jobs
SELECT has_function('oban_rescue_jobs', ARRAY['interval'], 'function oban_rescue_jobs(interval) exists');
SELECT function_returns('oban_rescue_jobs', ARRAY['interval'], 'integer',
                        'oban_rescue_jobs returns integer');
SELECT is(pg_get_function_arguments('oban_rescue_jobs(interval)'::regprocedure),
          'rescue_after interval DEFAULT ''01:00:00''::interval',
          'oban_rescue_jobs argument name and default (60 minutes)');
SELECT isnt_strict('oban_rescue_jobs', ARRAY['interval'], 'oban_rescue_jobs is not STRICT');

-- Each §3 function has exactly one signature (no stray overloads that would make calls ambiguous).
SELECT set_eq(
    $$ SELECT proname::text FROM pg_proc
       WHERE proname IN ('oban_insert_job', 'oban_fetch_jobs', 'oban_complete_job', 'oban_error_job',
                         'oban_cancel_job', 'oban_discard_job', 'oban_snooze_job', 'oban_retry_job',
                         'oban_ack_jobs', 'oban_stage_jobs', 'oban_prune_jobs', 'oban_rescue_jobs')
       GROUP BY proname HAVING count(*) = 1 $$,
    ARRAY['oban_insert_job', 'oban_fetch_jobs', 'oban_complete_job', 'oban_error_job', 'oban_cancel_job',
          'oban_discard_job', 'oban_snooze_job', 'oban_retry_job', 'oban_ack_jobs', 'oban_stage_jobs',
          'oban_prune_jobs', 'oban_rescue_jobs'],
    'every SPEC §3 function has exactly one signature');

SELECT * FROM finish();
ROLLBACK;
