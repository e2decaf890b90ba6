-- pgTAP: malformed, hostile and edge-case calls of the SPEC §3 job lifecycle functions.
--
-- SPEC §8: every error a caller can cause has a clear message and a documented SQLSTATE, changes
-- nothing, and no input crashes or hangs a backend. The SQLSTATEs (src/pg/args.hpp, src/pg/jobs.cpp,
-- src/pg/maintenance.cpp):
--   22004 null_value_not_allowed   a required argument is SQL NULL
--   22023 invalid_parameter_value  a bad value: negative demand/limit/interval, empty worker or queue,
--                                  priority/max_attempts out of range, infinite scheduled_at, acks that
--                                  are not a JSON array
-- Bad entries inside an oban_ack_jobs array are not errors: each is reported as a WARNING (22023) and
-- skipped, and every other entry of the same call still applies.
--
-- Every rejected call is checked twice: it raises the documented SQLSTATE, and oban_jobs is exactly
-- as before (row count and a checksum of every row). Calls that must be harmless no-ops (acks of
-- missing jobs, completing a job that is not executing, ...) are checked for their documented result
-- and for leaving oban_jobs unchanged.
BEGIN;
SELECT plan(292);

SET LOCAL search_path = public, pg_catalog;

-------------------------------------------------------------------------------------------------------
-- Helpers
-------------------------------------------------------------------------------------------------------

-- A fingerprint of the whole of oban_jobs: the row count and an md5 of every row, in id order.
CREATE FUNCTION pg_temp.jobs_digest(exclude bigint[] DEFAULT '{}') RETURNS text
LANGUAGE sql VOLATILE AS $$
    SELECT count(*) || ' rows, md5 ' || md5(coalesce(string_agg(j::text, E'\n' ORDER BY j.id), ''))
    FROM oban_jobs AS j
    WHERE j.id <> ALL (exclude)
$$;

-- Named fixture jobs.
CREATE TEMP TABLE fx (name text PRIMARY KEY, id bigint NOT NULL);
CREATE FUNCTION pg_temp.job(job_name text) RETURNS bigint LANGUAGE sql STABLE AS $$
    SELECT id FROM fx WHERE fx.name = job_name
$$;

-- rejects(call, sqlstate, description): two tests — `call` raises `sqlstate`, and oban_jobs is unchanged.
CREATE FUNCTION pg_temp.rejects(call text, errcode text, description text) RETURNS SETOF text
LANGUAGE plpgsql AS $$
DECLARE
    before text := pg_temp.jobs_digest();
BEGIN
    RETURN NEXT throws_ok(call, errcode, NULL, description || ': raises ' || errcode);
    RETURN NEXT is(pg_temp.jobs_digest(), before, description || ': oban_jobs unchanged');
END;
$$;

-- no_op(call, expected, description): two tests — `call` (one value) returns `expected` (text form,
-- NULL for SQL NULL), and oban_jobs is unchanged.
CREATE FUNCTION pg_temp.no_op(call text, expected text, description text) RETURNS SETOF text
LANGUAGE plpgsql AS $$
DECLARE
    before text := pg_temp.jobs_digest();
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
    RETURN NEXT is(pg_temp.jobs_digest(), before, description || ': oban_jobs unchanged');
END;
$$;

-- ack_skips(bad_entry, description): three tests. Calls oban_ack_jobs with
--   [complete good1, <bad_entry>, complete good2]
-- where ':target' in bad_entry is replaced by the id of a third executing job. The bad entry must be
-- skipped (a WARNING), both good entries must apply (returns 2, both completed), and nothing else in
-- oban_jobs may change (the target job in particular stays executing, untouched).
CREATE FUNCTION pg_temp.ack_skips(bad_entry text, description text) RETURNS SETOF text
LANGUAGE plpgsql AS $$
DECLARE
    ids bigint[];
    good1 bigint;
    target bigint;
    good2 bigint;
    before text;
    applied int;
    code text;
    message text;
BEGIN
    PERFORM oban_insert_job('Tap.AckWorker', queue => 'tap_ack') FROM generate_series(1, 3);
    SELECT array_agg(id ORDER BY id) INTO ids FROM oban_fetch_jobs('tap_ack', 3);
    good1 := ids[1];
    target := ids[2];
    good2 := ids[3];
    before := pg_temp.jobs_digest(ARRAY[good1, good2]);
    BEGIN
        applied := oban_ack_jobs(jsonb_build_array(
            jsonb_build_object('id', good1, 'state', 'completed'),
            replace(bad_entry, ':target', target::text)::jsonb,
            jsonb_build_object('id', good2, 'state', 'completed')));
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS code = RETURNED_SQLSTATE, message = MESSAGE_TEXT;
        RETURN NEXT diag('    oban_ack_jobs raised ' || code || ': ' || message);
    END;
    RETURN NEXT is(applied, 2, 'ack skips ' || description || ': returns 2 (the good entries)');
    RETURN NEXT is((SELECT array_agg(state::text ORDER BY id) FROM oban_jobs WHERE id IN (good1, good2)),
                   ARRAY['completed', 'completed'],
                   'ack skips ' || description || ': the good entries before and after it applied');
    RETURN NEXT is(pg_temp.jobs_digest(ARRAY[good1, good2]), before,
                   'ack skips ' || description || ': nothing else changed');
END;
$$;

-------------------------------------------------------------------------------------------------------
-- Fixtures: one job in each interesting state.
-------------------------------------------------------------------------------------------------------
DO $$
DECLARE
    ids bigint[];
BEGIN
    INSERT INTO fx VALUES ('avail', (oban_insert_job('Tap.Worker', '{"n": 1}', 'tap_fx')).id);
    INSERT INTO fx VALUES ('avail2', (oban_insert_job('Tap.Worker', '{"n": 2}', 'tap_fx')).id);
    INSERT INTO fx VALUES ('sched', (oban_insert_job('Tap.Worker', queue => 'tap_fx',
                                     scheduled_at => timezone('UTC', now()) + interval '1 hour')).id);
    -- Scheduled and already due (a staging candidate).
    INSERT INTO fx VALUES ('due', (oban_insert_job('Tap.Worker', queue => 'tap_fx')).id);
    UPDATE oban_jobs SET state = 'scheduled', scheduled_at = timezone('UTC', now()) - interval '1 minute'
    WHERE id = pg_temp.job('due');

    PERFORM oban_insert_job('Tap.Worker', queue => 'tap_fx_exec') FROM generate_series(1, 5);
    SELECT array_agg(id ORDER BY id) INTO ids FROM oban_fetch_jobs('tap_fx_exec', 5);
    INSERT INTO fx VALUES ('exec', ids[1]), ('done', ids[2]), ('stuck', ids[3]), ('cancelled', ids[4]),
                          ('discarded', ids[5]);
    PERFORM oban_complete_job(pg_temp.job('done'));
    PERFORM oban_cancel_job(pg_temp.job('cancelled'), 'fixture');
    PERFORM oban_discard_job(pg_temp.job('discarded'), 'fixture');
    -- Finished two days ago (prune candidates for any max_age under two days).
    UPDATE oban_jobs
    SET completed_at = completed_at - interval '2 days',
        cancelled_at = cancelled_at - interval '2 days',
        discarded_at = discarded_at - interval '2 days'
    WHERE id IN (pg_temp.job('done'), pg_temp.job('cancelled'), pg_temp.job('discarded'));
    -- Executing for two hours (a rescue candidate for any rescue_after under two hours).
    UPDATE oban_jobs SET attempted_at = attempted_at - interval '2 hours' WHERE id = pg_temp.job('stuck');
END;
$$;

SELECT is((SELECT array_agg(state::text ORDER BY name) FROM fx JOIN oban_jobs USING (id)),
          ARRAY['available', 'available', 'cancelled', 'discarded', 'completed', 'scheduled',
                'executing', 'scheduled', 'executing'],
          'fixtures are in place (avail, avail2, cancelled, done, discarded, due, exec, sched, stuck)');

-------------------------------------------------------------------------------------------------------
-- 1. NULL in every required argument → 22004, nothing changed.
-------------------------------------------------------------------------------------------------------
SELECT * FROM pg_temp.rejects($$ SELECT oban_insert_job(NULL) $$, '22004',
                              'oban_insert_job(worker => NULL)');
SELECT * FROM pg_temp.rejects($$ SELECT oban_insert_job('Tap.Worker', args => NULL) $$, '22004',
                              'oban_insert_job(args => NULL)');
SELECT * FROM pg_temp.rejects($$ SELECT oban_insert_job('Tap.Worker', queue => NULL) $$, '22004',
                              'oban_insert_job(queue => NULL)');
SELECT * FROM pg_temp.rejects($$ SELECT oban_insert_job('Tap.Worker', priority => NULL) $$, '22004',
                              'oban_insert_job(priority => NULL)');
SELECT * FROM pg_temp.rejects($$ SELECT oban_insert_job('Tap.Worker', max_attempts => NULL) $$, '22004',
                              'oban_insert_job(max_attempts => NULL)');
SELECT * FROM pg_temp.rejects($$ SELECT oban_insert_job('Tap.Worker', meta => NULL) $$, '22004',
                              'oban_insert_job(meta => NULL)');
SELECT * FROM pg_temp.rejects($$ SELECT oban_insert_job('Tap.Worker', tags => NULL) $$, '22004',
                              'oban_insert_job(tags => NULL)');

SELECT * FROM pg_temp.rejects($$ SELECT count(*) FROM oban_fetch_jobs(NULL, 10) $$, '22004',
                              'oban_fetch_jobs(queue => NULL)');
SELECT * FROM pg_temp.rejects($$ SELECT count(*) FROM oban_fetch_jobs('tap_fx', NULL) $$, '22004',
                              'oban_fetch_jobs(demand => NULL)');
SELECT * FROM pg_temp.rejects($$ SELECT count(*) FROM oban_fetch_jobs('tap_fx', 10, node => NULL) $$,
                              '22004', 'oban_fetch_jobs(node => NULL)');

SELECT * FROM pg_temp.rejects($$ SELECT oban_complete_job(NULL) $$, '22004',
                              'oban_complete_job(id => NULL)');
SELECT * FROM pg_temp.rejects($$ SELECT oban_error_job(NULL, 'boom') $$, '22004',
                              'oban_error_job(id => NULL)');
SELECT * FROM pg_temp.rejects($$ SELECT oban_error_job(pg_temp.job('exec'), NULL) $$, '22004',
                              'oban_error_job(error => NULL) on an executing job');
SELECT * FROM pg_temp.rejects($$ SELECT oban_cancel_job(NULL) $$, '22004',
                              'oban_cancel_job(id => NULL)');
SELECT * FROM pg_temp.rejects($$ SELECT oban_discard_job(NULL) $$, '22004',
                              'oban_discard_job(id => NULL)');
SELECT * FROM pg_temp.rejects($$ SELECT oban_snooze_job(NULL, interval '1 minute') $$, '22004',
                              'oban_snooze_job(id => NULL)');
SELECT * FROM pg_temp.rejects($$ SELECT oban_snooze_job(pg_temp.job('exec'), NULL) $$, '22004',
                              'oban_snooze_job(snooze => NULL) on an executing job');
SELECT * FROM pg_temp.rejects($$ SELECT oban_retry_job(NULL) $$, '22004',
                              'oban_retry_job(id => NULL)');
SELECT * FROM pg_temp.rejects($$ SELECT oban_ack_jobs(NULL) $$, '22004',
                              'oban_ack_jobs(acks => NULL)');
SELECT * FROM pg_temp.rejects($$ SELECT oban_stage_jobs(NULL) $$, '22004',
                              'oban_stage_jobs(limit => NULL)');
SELECT * FROM pg_temp.rejects($$ SELECT oban_prune_jobs(NULL) $$, '22004',
                              'oban_prune_jobs(max_age => NULL)');
SELECT * FROM pg_temp.rejects($$ SELECT oban_prune_jobs(interval '1 second', NULL) $$, '22004',
                              'oban_prune_jobs(limit => NULL)');
SELECT * FROM pg_temp.rejects($$ SELECT oban_rescue_jobs(NULL) $$, '22004',
                              'oban_rescue_jobs(rescue_after => NULL)');

-------------------------------------------------------------------------------------------------------
-- 2. oban_insert_job: bad values → 22023, nothing inserted.
-------------------------------------------------------------------------------------------------------
SELECT * FROM pg_temp.rejects($$ SELECT oban_insert_job('') $$, '22023',
                              'oban_insert_job with an empty worker');
SELECT * FROM pg_temp.rejects($$ SELECT oban_insert_job('Tap.Worker', queue => '') $$, '22023',
                              'oban_insert_job with an empty queue');
SELECT * FROM pg_temp.rejects($$ SELECT oban_insert_job('Tap.Worker', priority => -1) $$, '22023',
                              'oban_insert_job with priority -1');
SELECT * FROM pg_temp.rejects($$ SELECT oban_insert_job('Tap.Worker', priority => 32768) $$, '22023',
                              'oban_insert_job with priority 32768 (beyond smallint)');
SELECT * FROM pg_temp.rejects($$ SELECT oban_insert_job('Tap.Worker', max_attempts => 0) $$, '22023',
                              'oban_insert_job with max_attempts 0');
SELECT * FROM pg_temp.rejects($$ SELECT oban_insert_job('Tap.Worker', max_attempts => -3) $$, '22023',
                              'oban_insert_job with max_attempts -3');
SELECT * FROM pg_temp.rejects($$ SELECT oban_insert_job('Tap.Worker', max_attempts => 40000) $$, '22023',
                              'oban_insert_job with max_attempts 40000 (beyond smallint)');
SELECT * FROM pg_temp.rejects($$ SELECT oban_insert_job('Tap.Worker', scheduled_at => 'infinity') $$,
                              '22023', 'oban_insert_job with scheduled_at infinity');
SELECT * FROM pg_temp.rejects($$ SELECT oban_insert_job('Tap.Worker', scheduled_at => '-infinity') $$,
                              '22023', 'oban_insert_job with scheduled_at -infinity');

-------------------------------------------------------------------------------------------------------
-- 3. Negative counts and intervals → 22023, nothing changed.
-------------------------------------------------------------------------------------------------------
SELECT * FROM pg_temp.rejects($$ SELECT count(*) FROM oban_fetch_jobs('tap_fx', -1) $$, '22023',
                              'oban_fetch_jobs with demand -1');
SELECT * FROM pg_temp.rejects($$ SELECT count(*) FROM oban_fetch_jobs('tap_fx', -2147483648) $$, '22023',
                              'oban_fetch_jobs with demand -2147483648');
SELECT * FROM pg_temp.rejects($$ SELECT oban_error_job(pg_temp.job('exec'), 'boom', interval '-1 second') $$,
                              '22023', 'oban_error_job with backoff -1 second');
SELECT * FROM pg_temp.rejects($$ SELECT oban_error_job(pg_temp.job('exec'), 'boom', interval '1 day -1 hour') $$,
                              '22023', 'oban_error_job with a backoff that has a negative part');
SELECT * FROM pg_temp.rejects($$ SELECT oban_error_job(pg_temp.job('exec'), 'boom', interval '-1 month') $$,
                              '22023', 'oban_error_job with backoff -1 month');
SELECT * FROM pg_temp.rejects($$ SELECT oban_snooze_job(pg_temp.job('exec'), interval '-1 second') $$,
                              '22023', 'oban_snooze_job with snooze -1 second');
SELECT * FROM pg_temp.rejects($$ SELECT oban_snooze_job(pg_temp.job('exec'), interval '-2 days') $$,
                              '22023', 'oban_snooze_job with snooze -2 days');
SELECT * FROM pg_temp.rejects($$ SELECT oban_stage_jobs(-1) $$, '22023',
                              'oban_stage_jobs with limit -1');
SELECT * FROM pg_temp.rejects($$ SELECT oban_prune_jobs(interval '-1 day') $$, '22023',
                              'oban_prune_jobs with max_age -1 day');
SELECT * FROM pg_temp.rejects($$ SELECT oban_prune_jobs(interval '3 days -1 second') $$, '22023',
                              'oban_prune_jobs with a max_age that has a negative part');
SELECT * FROM pg_temp.rejects($$ SELECT oban_prune_jobs(interval '1 second', -1) $$, '22023',
                              'oban_prune_jobs with limit -1');
SELECT * FROM pg_temp.rejects($$ SELECT oban_rescue_jobs(interval '-1 minute') $$, '22023',
                              'oban_rescue_jobs with rescue_after -1 minute');

-------------------------------------------------------------------------------------------------------
-- 4. Huge intervals: no raw timestamp overflow (22008 is not a documented SQLSTATE of these functions).
-------------------------------------------------------------------------------------------------------
-- A backoff/snooze so large that now + it is past the end of the timestamp range is a bad value
-- (22023), as it is for oban_ack_jobs (backoff/snooze over 100 years are refused there).
SELECT * FROM pg_temp.rejects(
    $$ SELECT oban_error_job(pg_temp.job('exec'), 'boom', interval '300000 years') $$, '22023',
    'oban_error_job with backoff 300000 years');
SELECT * FROM pg_temp.rejects(
    $$ SELECT oban_snooze_job(pg_temp.job('exec'), interval '300000 years') $$, '22023',
    'oban_snooze_job with snooze 300000 years');
-- A max_age / rescue_after older than every job simply matches nothing.
SELECT * FROM pg_temp.no_op($$ SELECT oban_prune_jobs(interval '10000 years') $$, '0',
                            'oban_prune_jobs(max_age => 10000 years) prunes nothing');
SELECT * FROM pg_temp.no_op($$ SELECT oban_rescue_jobs(interval '10000 years') $$, '0',
                            'oban_rescue_jobs(rescue_after => 10000 years) rescues nothing');

-------------------------------------------------------------------------------------------------------
-- 5. Zero limits and demands: valid, and do nothing.
-------------------------------------------------------------------------------------------------------
SELECT * FROM pg_temp.no_op($$ SELECT count(*) FROM oban_fetch_jobs('tap_fx', 0) $$, '0',
                            'oban_fetch_jobs with demand 0 claims nothing');
SELECT * FROM pg_temp.no_op($$ SELECT count(*) FROM oban_fetch_jobs('tap_no_such_queue', 2147483647) $$,
                            '0', 'oban_fetch_jobs of an unknown queue claims nothing');
SELECT * FROM pg_temp.no_op($$ SELECT oban_stage_jobs(0) $$, '0',
                            'oban_stage_jobs(limit => 0) stages nothing (a due job is waiting)');
SELECT * FROM pg_temp.no_op($$ SELECT oban_prune_jobs(interval '1 second', 0) $$, '0',
                            'oban_prune_jobs(limit => 0) prunes nothing (old finished jobs exist)');

-------------------------------------------------------------------------------------------------------
-- 6. Acks of missing jobs and of jobs in the wrong state: false / NULL, nothing changed.
-------------------------------------------------------------------------------------------------------
SELECT * FROM pg_temp.no_op($$ SELECT oban_complete_job(9223372036854775807) $$, 'false',
                            'oban_complete_job of a missing id');
SELECT * FROM pg_temp.no_op($$ SELECT oban_complete_job(-1) $$, 'false',
                            'oban_complete_job of a negative id');
SELECT * FROM pg_temp.no_op($$ SELECT oban_complete_job(pg_temp.job('avail'), '{"x": 1}') $$, 'false',
                            'oban_complete_job of an available job');
SELECT * FROM pg_temp.no_op($$ SELECT oban_complete_job(pg_temp.job('sched')) $$, 'false',
                            'oban_complete_job of a scheduled job');
SELECT * FROM pg_temp.no_op($$ SELECT oban_complete_job(pg_temp.job('done'), '"again"') $$, 'false',
                            'oban_complete_job of a completed job');
SELECT * FROM pg_temp.no_op($$ SELECT oban_complete_job(pg_temp.job('cancelled')) $$, 'false',
                            'oban_complete_job of a cancelled job');
SELECT * FROM pg_temp.no_op($$ SELECT oban_error_job(9223372036854775807, 'boom') $$, NULL,
                            'oban_error_job of a missing id');
SELECT * FROM pg_temp.no_op($$ SELECT oban_error_job(pg_temp.job('avail'), 'boom') $$, NULL,
                            'oban_error_job of an available job');
SELECT * FROM pg_temp.no_op($$ SELECT oban_cancel_job(9223372036854775807, 'why') $$, 'false',
                            'oban_cancel_job of a missing id');
SELECT * FROM pg_temp.no_op($$ SELECT oban_cancel_job(pg_temp.job('done'), 'why') $$, 'false',
                            'oban_cancel_job of a completed job');
SELECT * FROM pg_temp.no_op($$ SELECT oban_cancel_job(pg_temp.job('discarded')) $$, 'false',
                            'oban_cancel_job of a discarded job');
SELECT * FROM pg_temp.no_op($$ SELECT oban_discard_job(9223372036854775807, 'why') $$, 'false',
                            'oban_discard_job of a missing id');
SELECT * FROM pg_temp.no_op($$ SELECT oban_discard_job(pg_temp.job('avail'), 'why') $$, 'false',
                            'oban_discard_job of an available job');
SELECT * FROM pg_temp.no_op($$ SELECT oban_snooze_job(9223372036854775807, interval '1 minute') $$, 'false',
                            'oban_snooze_job of a missing id');
SELECT * FROM pg_temp.no_op($$ SELECT oban_snooze_job(pg_temp.job('sched'), interval '1 minute') $$, 'false',
                            'oban_snooze_job of a scheduled job');
SELECT * FROM pg_temp.no_op($$ SELECT oban_retry_job(9223372036854775807) $$, 'false',
                            'oban_retry_job of a missing id');
SELECT * FROM pg_temp.no_op($$ SELECT oban_retry_job(pg_temp.job('avail')) $$, 'false',
                            'oban_retry_job of an available job');
SELECT * FROM pg_temp.no_op($$ SELECT oban_retry_job(pg_temp.job('exec')) $$, 'false',
                            'oban_retry_job of an executing job');

-------------------------------------------------------------------------------------------------------
-- 7. Optional arguments accept NULL (their documented default).
-------------------------------------------------------------------------------------------------------
SELECT is((oban_insert_job('Tap.Worker', queue => 'tap_opt', scheduled_at => NULL)).state::text,
          'available', 'oban_insert_job(scheduled_at => NULL) inserts an available job');
SELECT is((SELECT count(*)::int FROM oban_fetch_jobs('tap_opt', 1, 'tap-node', NULL)), 1,
          'oban_fetch_jobs(producer => NULL) claims the job');
SELECT is((SELECT attempted_by FROM oban_jobs WHERE queue = 'tap_opt'), ARRAY['tap-node'],
          'oban_fetch_jobs(producer => NULL) records only the node in attempted_by');
SELECT ok(oban_complete_job((SELECT id FROM oban_jobs WHERE queue = 'tap_opt'), NULL),
          'oban_complete_job(recorded => NULL) completes the job');
SELECT ok((SELECT NOT meta ? 'recorded' FROM oban_jobs WHERE queue = 'tap_opt'),
          'oban_complete_job(recorded => NULL) records no result');

DO $$ BEGIN PERFORM oban_insert_job('Tap.Worker', queue => 'tap_opt2') FROM generate_series(1, 3); END $$;
CREATE TEMP TABLE opt AS SELECT id, row_number() OVER (ORDER BY id) AS n
                         FROM oban_fetch_jobs('tap_opt2', 3);
SELECT is(oban_error_job((SELECT id FROM opt WHERE n = 1), 'boom', NULL)::text, 'retryable',
          'oban_error_job(backoff => NULL) uses the default backoff');
SELECT ok((SELECT scheduled_at > timezone('UTC', now()) FROM oban_jobs
           WHERE id = (SELECT id FROM opt WHERE n = 1)),
          'oban_error_job(backoff => NULL) schedules the retry in the future');
SELECT ok(oban_cancel_job((SELECT id FROM opt WHERE n = 2), NULL),
          'oban_cancel_job(reason => NULL) cancels the job');
SELECT ok(oban_discard_job((SELECT id FROM opt WHERE n = 3), NULL),
          'oban_discard_job(reason => NULL) discards the job');
SELECT is((SELECT array_agg(jsonb_array_length(errors) ORDER BY id) FROM oban_jobs
           WHERE id IN (SELECT id FROM opt WHERE n > 1)), ARRAY[0, 0],
          'cancel / discard without a reason append no error');

-------------------------------------------------------------------------------------------------------
-- 8. oban_fetch_jobs with a huge demand: just returns what is available.
-------------------------------------------------------------------------------------------------------
DO $$ BEGIN PERFORM oban_insert_job('Tap.Worker', queue => 'tap_fetch') FROM generate_series(1, 3); END $$;
CREATE TEMP TABLE huge_before AS SELECT pg_temp.jobs_digest(
    (SELECT array_agg(id) FROM oban_jobs WHERE queue = 'tap_fetch')) AS digest;
CREATE TEMP TABLE huge_fetch AS SELECT * FROM oban_fetch_jobs('tap_fetch', 2147483647);
SELECT is((SELECT count(*)::int FROM huge_fetch), 3,
          'oban_fetch_jobs(demand => 2147483647) returns the 3 available jobs');
SELECT is((SELECT array_agg(DISTINCT state::text || '/' || attempt) FROM oban_jobs WHERE queue = 'tap_fetch'),
          ARRAY['executing/1'], 'oban_fetch_jobs(demand => 2147483647) claimed each job once');
SELECT is(pg_temp.jobs_digest((SELECT array_agg(id) FROM oban_jobs WHERE queue = 'tap_fetch')),
          (SELECT digest FROM huge_before),
          'oban_fetch_jobs(demand => 2147483647) touched no job of another queue');

-------------------------------------------------------------------------------------------------------
-- 9. oban_ack_jobs: input that is not a JSON array → 22023, nothing changed.
-------------------------------------------------------------------------------------------------------
-- The skipped entries below are reported as WARNINGs; keep them out of the TAP stream.
SET LOCAL client_min_messages = error;

SELECT * FROM pg_temp.rejects($$ SELECT oban_ack_jobs('{}') $$, '22023',
                              'oban_ack_jobs of an empty object');
SELECT * FROM pg_temp.rejects(
    format($$ SELECT oban_ack_jobs('{"id": %s, "state": "completed"}') $$, pg_temp.job('exec')), '22023',
    'oban_ack_jobs of a single ack object (not wrapped in an array)');
SELECT * FROM pg_temp.rejects($$ SELECT oban_ack_jobs('42') $$, '22023',
                              'oban_ack_jobs of a JSON number');
SELECT * FROM pg_temp.rejects($$ SELECT oban_ack_jobs('"completed"') $$, '22023',
                              'oban_ack_jobs of a JSON string');
SELECT * FROM pg_temp.rejects($$ SELECT oban_ack_jobs('true') $$, '22023',
                              'oban_ack_jobs of a JSON boolean');
SELECT * FROM pg_temp.rejects($$ SELECT oban_ack_jobs('null') $$, '22023',
                              'oban_ack_jobs of a JSON null');

-------------------------------------------------------------------------------------------------------
-- 10. oban_ack_jobs: harmless arrays → 0, nothing changed.
-------------------------------------------------------------------------------------------------------
SELECT * FROM pg_temp.no_op($$ SELECT oban_ack_jobs('[]') $$, '0', 'oban_ack_jobs of an empty array');
SELECT * FROM pg_temp.no_op(
    $$ SELECT oban_ack_jobs('[{"id": 9223372036854775807, "state": "completed"},
                              {"id": 9223372036854775806, "state": "retryable", "error": "boom"},
                              {"id": 9223372036854775805, "state": "cancelled", "error": "why"},
                              {"id": 9223372036854775804, "state": "discarded"},
                              {"id": 9223372036854775803, "state": "scheduled", "snooze": 60}]') $$,
    '0', 'oban_ack_jobs of missing ids, in every ack state');
SELECT * FROM pg_temp.no_op(
    format($$ SELECT oban_ack_jobs('[{"id": %s, "state": "completed"},
                                     {"id": %s, "state": "retryable", "error": "boom"},
                                     {"id": %s, "state": "discarded"},
                                     {"id": %s, "state": "scheduled", "snooze": 60},
                                     {"id": %s, "state": "cancelled"}]') $$,
           pg_temp.job('avail'), pg_temp.job('sched'), pg_temp.job('done'), pg_temp.job('avail2'),
           pg_temp.job('discarded')),
    '0', 'oban_ack_jobs of jobs in the wrong state for each ack');
SELECT * FROM pg_temp.no_op(
    $$ SELECT oban_ack_jobs((SELECT jsonb_agg(jsonb_build_object('id', 9000000000000000000 + n,
                                                                 'state', 'completed'))
                             FROM generate_series(1, 20000) AS n)) $$,
    '0', 'oban_ack_jobs of 20000 missing ids');
SELECT * FROM pg_temp.no_op(
    $$ SELECT oban_ack_jobs('[1, "x", null, true, [], {}, [[[[[[]]]]]]]') $$, '0',
    'oban_ack_jobs of an array holding only invalid entries');

-------------------------------------------------------------------------------------------------------
-- 11. oban_ack_jobs: each bad entry is skipped (WARNING); the others of the same call still apply.
-------------------------------------------------------------------------------------------------------
SELECT * FROM pg_temp.ack_skips('{"id": :target, "state": "bogus"}', 'an unknown state');
SELECT * FROM pg_temp.ack_skips('{"id": :target, "state": "COMPLETED"}', 'a state in the wrong case');
SELECT * FROM pg_temp.ack_skips('{"id": :target, "state": "available"}', 'a state that is not an ack');
SELECT * FROM pg_temp.ack_skips('{"id": :target, "state": 5}', 'a non-string state');
SELECT * FROM pg_temp.ack_skips('{"id": :target}', 'a missing state');
SELECT * FROM pg_temp.ack_skips('{"state": "completed"}', 'a missing id');
SELECT * FROM pg_temp.ack_skips('{"id": null, "state": "completed"}', 'a null id');
SELECT * FROM pg_temp.ack_skips('{"id": ":target", "state": "completed"}', 'a string id');
SELECT * FROM pg_temp.ack_skips('{"id": :target.5, "state": "completed"}', 'a non-integer id');
SELECT * FROM pg_temp.ack_skips('{"id": -:target, "state": "completed"}', 'a negative id');
SELECT * FROM pg_temp.ack_skips('{"id": 0, "state": "completed"}', 'id 0');
SELECT * FROM pg_temp.ack_skips('{"id": 99999999999999999999, "state": "completed"}',
                                'an id beyond bigint');
SELECT * FROM pg_temp.ack_skips('{"id": true, "state": "completed"}', 'a boolean id');
SELECT * FROM pg_temp.ack_skips('{"id": [:target], "state": "completed"}', 'an array id');
SELECT * FROM pg_temp.ack_skips('{"id": :target, "state": "scheduled", "snooze": -5}', 'a negative snooze');
SELECT * FROM pg_temp.ack_skips('{"id": :target, "state": "scheduled"}', 'a snooze without seconds');
SELECT * FROM pg_temp.ack_skips('{"id": :target, "state": "scheduled", "snooze": "60"}', 'a string snooze');
SELECT * FROM pg_temp.ack_skips('{"id": :target, "state": "scheduled", "snooze": 1e300}',
                                'a snooze far beyond 100 years');
SELECT * FROM pg_temp.ack_skips('{"id": :target, "state": "retryable", "backoff": 1e300}', 'a huge backoff');
SELECT * FROM pg_temp.ack_skips('{"id": :target, "state": "retryable", "backoff": 3155760001}',
                                'a backoff just over 100 years');
SELECT * FROM pg_temp.ack_skips('{"id": :target, "state": "retryable", "backoff": -1}', 'a negative backoff');
SELECT * FROM pg_temp.ack_skips('{"id": :target, "state": "retryable", "backoff": "soon"}', 'a string backoff');
SELECT * FROM pg_temp.ack_skips('{"id": :target, "state": "retryable", "error": {"message": "x"}}',
                                'a non-string error');
SELECT * FROM pg_temp.ack_skips('{"id": :target, "state": "cancelled", "error": 42}',
                                'a numeric cancel reason');
SELECT * FROM pg_temp.ack_skips('42', 'a number entry');
SELECT * FROM pg_temp.ack_skips('"completed"', 'a string entry');
SELECT * FROM pg_temp.ack_skips('null', 'a null entry');
SELECT * FROM pg_temp.ack_skips('[:target, "completed"]', 'an array entry');

-------------------------------------------------------------------------------------------------------
-- 12. oban_ack_jobs: an entry that fails while being applied never undoes the others.
-------------------------------------------------------------------------------------------------------
-- A user trigger refuses to schedule jobs of queue tap_raise: that entry fails while being applied;
-- the others still apply.
CREATE FUNCTION pg_temp.refuse_tap_raise() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.queue = 'tap_raise' AND NEW.state = 'scheduled' THEN
        RAISE EXCEPTION 'tap_raise jobs may not be snoozed';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER refuse_tap_raise BEFORE UPDATE ON oban_jobs
    FOR EACH ROW EXECUTE FUNCTION pg_temp.refuse_tap_raise();
WITH inserted AS (
    INSERT INTO oban_jobs (worker, queue, state, attempt) VALUES ('Tap.Worker', 'tap_raise', 'executing', 1)
    RETURNING id)
INSERT INTO fx SELECT 'raise', id FROM inserted;
DO $$ BEGIN PERFORM oban_insert_job('Tap.Worker', queue => 'tap_raise_ok') FROM generate_series(1, 2); END $$;
INSERT INTO fx SELECT 'raise_ok' || row_number() OVER (ORDER BY id), id
FROM oban_fetch_jobs('tap_raise_ok', 2);
CREATE TEMP TABLE raise_before AS SELECT j FROM oban_jobs AS j WHERE id = pg_temp.job('raise');
SELECT is(oban_ack_jobs(jsonb_build_array(
              jsonb_build_object('id', pg_temp.job('raise_ok1'), 'state', 'completed'),
              jsonb_build_object('id', pg_temp.job('raise'), 'state', 'scheduled', 'snooze', 60),
              jsonb_build_object('id', pg_temp.job('raise_ok2'), 'state', 'retryable', 'error', 'boom',
                                 'backoff', 30))),
          2, 'oban_ack_jobs with one entry failing to apply: returns 2');
SELECT is((SELECT array_agg(state::text ORDER BY id) FROM oban_jobs
           WHERE id IN (pg_temp.job('raise_ok1'), pg_temp.job('raise_ok2'))),
          ARRAY['completed', 'retryable'],
          'oban_ack_jobs with one entry failing to apply: the other entries applied');
SELECT is((SELECT j::text FROM oban_jobs AS j WHERE id = pg_temp.job('raise')),
          (SELECT j::text FROM raise_before), 'oban_ack_jobs: the failing entry changed nothing');
DROP TRIGGER refuse_tap_raise ON oban_jobs;

-------------------------------------------------------------------------------------------------------
-- 13. oban_ack_jobs: edge values that are valid.
-------------------------------------------------------------------------------------------------------
DO $$ BEGIN PERFORM oban_insert_job('Tap.Worker', queue => 'tap_edge') FROM generate_series(1, 2); END $$;
INSERT INTO fx SELECT 'edge' || row_number() OVER (ORDER BY id), id FROM oban_fetch_jobs('tap_edge', 2);
SELECT is(oban_ack_jobs(jsonb_build_array(
              jsonb_build_object('id', pg_temp.job('edge1'), 'state', 'retryable', 'error', 'late',
                                 'backoff', 3155760000))),
          1, 'oban_ack_jobs: a backoff of exactly 100 years is accepted');
SELECT ok((SELECT scheduled_at BETWEEN timezone('UTC', now()) + interval '99 years'
                                   AND timezone('UTC', now()) + interval '101 years'
           FROM oban_jobs WHERE id = pg_temp.job('edge1')),
          'oban_ack_jobs: the 100-year backoff schedules the retry 100 years ahead');
SELECT is(oban_ack_jobs(jsonb_build_array(
              jsonb_build_object('id', pg_temp.job('edge2'), 'state', 'completed'),
              jsonb_build_object('id', pg_temp.job('edge2'), 'state', 'completed'),
              jsonb_build_object('id', pg_temp.job('edge2'), 'state', 'retryable', 'error', 'late'))),
          1, 'oban_ack_jobs: the same job acked three times in one call applies once');
SELECT is((SELECT state::text || '/' || jsonb_array_length(errors) FROM oban_jobs
           WHERE id = pg_temp.job('edge2')), 'completed/0',
          'oban_ack_jobs: the later duplicate acks of a completed job changed nothing');

-------------------------------------------------------------------------------------------------------
-- 14. Oversized error text: stored truncated to at most oban_pro.max_error_bytes (default 65536)
--     bytes, ending in " [truncated]".
-------------------------------------------------------------------------------------------------------
SELECT is((SELECT boot_val FROM pg_settings WHERE name = 'oban_pro.max_error_bytes'), '65536',
          'oban_pro.max_error_bytes defaults to 65536 bytes');
SET LOCAL oban_pro.max_error_bytes TO DEFAULT;

DO $$ BEGIN PERFORM oban_insert_job('Tap.Worker', queue => 'tap_big') FROM generate_series(1, 8); END $$;
INSERT INTO fx SELECT 'big' || row_number() OVER (ORDER BY id), id FROM oban_fetch_jobs('tap_big', 8);

CREATE FUNCTION pg_temp.last_error(job bigint) RETURNS text LANGUAGE sql AS $$
    SELECT errors->-1->>'error' FROM oban_jobs WHERE id = job
$$;

SELECT is(oban_error_job(pg_temp.job('big1'), repeat('x', 1048576))::text, 'retryable',
          'oban_error_job with a 1 MB error is accepted');
SELECT cmp_ok(octet_length(pg_temp.last_error(pg_temp.job('big1'))), '<=', 65536,
              'oban_error_job: a 1 MB error is stored in at most 65536 bytes');
SELECT ok(pg_temp.last_error(pg_temp.job('big1')) ~ '^x+ \[truncated\]$'
          AND octet_length(pg_temp.last_error(pg_temp.job('big1'))) > 65000,
          'oban_error_job: the stored error is the head of the text plus " [truncated]"');

SELECT is(oban_error_job(pg_temp.job('big2'), repeat('é', 600000))::text, 'retryable',
          'oban_error_job with a 1.2 MB multibyte error is accepted');
SELECT cmp_ok(octet_length(pg_temp.last_error(pg_temp.job('big2'))), '<=', 65536,
              'oban_error_job: a multibyte error is stored in at most 65536 bytes');
SELECT ok(pg_temp.last_error(pg_temp.job('big2')) ~ '^é+ \[truncated\]$'
          AND char_length(pg_temp.last_error(pg_temp.job('big2'))) > 32000,
          'oban_error_job: a multibyte error is cut at a character boundary');

SELECT ok(oban_cancel_job(pg_temp.job('big3'), repeat('c', 1048576)),
          'oban_cancel_job with a 1 MB reason is accepted');
SELECT ok(octet_length(pg_temp.last_error(pg_temp.job('big3'))) <= 65536
          AND pg_temp.last_error(pg_temp.job('big3')) LIKE 'ccc% [truncated]',
          'oban_cancel_job: a 1 MB reason is stored truncated');

SELECT ok(oban_discard_job(pg_temp.job('big4'), repeat('d', 1048576)),
          'oban_discard_job with a 1 MB reason is accepted');
SELECT ok(octet_length(pg_temp.last_error(pg_temp.job('big4'))) <= 65536
          AND pg_temp.last_error(pg_temp.job('big4')) LIKE 'ddd% [truncated]',
          'oban_discard_job: a 1 MB reason is stored truncated');

SELECT is(oban_ack_jobs(jsonb_build_array(
              jsonb_build_object('id', pg_temp.job('big5'), 'state', 'retryable',
                                 'error', repeat('a', 1048576), 'backoff', 1))),
          1, 'oban_ack_jobs with a 1 MB error is applied');
SELECT ok(octet_length(pg_temp.last_error(pg_temp.job('big5'))) <= 65536
          AND pg_temp.last_error(pg_temp.job('big5')) LIKE 'aaa% [truncated]',
          'oban_ack_jobs: a 1 MB error is stored truncated');

SELECT is(oban_error_job(pg_temp.job('big6'), repeat('k', 65536))::text, 'retryable',
          'oban_error_job with an error of exactly 65536 bytes is accepted');
SELECT is(pg_temp.last_error(pg_temp.job('big6')), repeat('k', 65536),
          'oban_error_job: an error of exactly 65536 bytes is stored whole');

SET LOCAL oban_pro.max_error_bytes = 256;
SELECT is(oban_error_job(pg_temp.job('big7'), repeat('s', 1000))::text, 'retryable',
          'with oban_pro.max_error_bytes = 256 a 1000-byte error is accepted');
SELECT ok(octet_length(pg_temp.last_error(pg_temp.job('big7'))) <= 256
          AND pg_temp.last_error(pg_temp.job('big7')) LIKE 'sss% [truncated]',
          'with oban_pro.max_error_bytes = 256 a 1000-byte error is stored in at most 256 bytes');
SELECT is(oban_error_job(pg_temp.job('big8'), repeat('t', 256))::text, 'retryable',
          'with oban_pro.max_error_bytes = 256 a 256-byte error is accepted');
SELECT is(pg_temp.last_error(pg_temp.job('big8')), repeat('t', 256),
          'with oban_pro.max_error_bytes = 256 a 256-byte error is stored whole');
RESET oban_pro.max_error_bytes;

-------------------------------------------------------------------------------------------------------
-- 15. Oversized queue names: a clear error or a working job, never a poisoned maintenance run.
-------------------------------------------------------------------------------------------------------
-- A queue name too long for the fetch index (incompressible, ~10 kB) is refused with a clear
-- SQLSTATE (22023 bad value, or 54000 program limit) and nothing is inserted.
CREATE FUNCTION pg_temp.rejects_one_of(call text, errcodes text[], description text) RETURNS SETOF text
LANGUAGE plpgsql AS $$
DECLARE
    before text := pg_temp.jobs_digest();
    code text;
    message text;
BEGIN
    BEGIN
        EXECUTE call;
        RETURN NEXT fail(description || ': raises one of ' || array_to_string(errcodes, ', '));
        RETURN NEXT diag('    no error was raised');
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS code = RETURNED_SQLSTATE, message = MESSAGE_TEXT;
        RETURN NEXT ok(code = ANY (errcodes),
                       description || ': raises one of ' || array_to_string(errcodes, ', '));
        IF NOT code = ANY (errcodes) THEN
            RETURN NEXT diag('    raised ' || code || ': ' || message);
        END IF;
    END;
    RETURN NEXT is(pg_temp.jobs_digest(), before, description || ': oban_jobs unchanged');
END;
$$;
SELECT * FROM pg_temp.rejects_one_of(
    $$ SELECT oban_insert_job('Tap.Worker', queue => (SELECT string_agg(md5(n::text), '')
                                                     FROM generate_series(1, 300) AS n)) $$,
    ARRAY['22023', '54000'], 'oban_insert_job with a 9600-byte incompressible queue name');

-- A long but compressible queue name fits the index, but not a NOTIFY payload (8000 bytes). Such a
-- job, once due, must not make every oban_stage_jobs call fail (which would leave every other due
-- job of every queue scheduled forever): staging must still work for the others. (Refusing such a
-- queue name at INSERT time would be fine too: then the poisoned row never exists.)
INSERT INTO oban_jobs (worker, queue, state, scheduled_at)
VALUES ('Tap.Worker', 'tap_stage_ok', 'scheduled', timezone('UTC', now()) - interval '1 minute');
DO $$
BEGIN
    INSERT INTO oban_jobs (worker, queue, state, scheduled_at)
    VALUES ('Tap.Worker', repeat('q', 9000), 'scheduled', timezone('UTC', now()) - interval '1 minute');
EXCEPTION WHEN OTHERS THEN
    NULL;  -- the name was refused up front
END;
$$;
SELECT lives_ok($$ SELECT oban_stage_jobs() $$,
                'oban_stage_jobs runs although a due job has a 9000-byte queue name');
SELECT is((SELECT state::text FROM oban_jobs WHERE queue = 'tap_stage_ok'), 'available',
          'oban_stage_jobs stages the other due jobs despite the 9000-byte queue name');

-------------------------------------------------------------------------------------------------------
-- 16. oban_backoff (the default backoff of oban_error_job): never negative, whatever the attempt.
-------------------------------------------------------------------------------------------------------
SELECT ok(NOT EXISTS (SELECT FROM generate_series(1, 20) AS attempt
                      WHERE oban_backoff(attempt, 20) NOT BETWEEN interval '15 seconds'
                                                              AND (15 + 2 ^ attempt) * 1.1 * interval '1 second'),
          'oban_backoff(attempt, 20) is 15 s + 2^attempt s + up to 10% jitter');
-- Attempts beyond max_attempts (or beyond ~43) must not overflow into negative or wrapped intervals.
SELECT ok(NOT EXISTS (SELECT FROM generate_series(-5, 1000) AS attempt,
                                  unnest(ARRAY[1, 20, 25]) AS max_attempts
                      WHERE oban_backoff(attempt, max_attempts) < interval '15 seconds'),
          'oban_backoff(attempt, max_attempts) is at least 15 s for every attempt in -5..1000');

SELECT * FROM finish();
ROLLBACK;
