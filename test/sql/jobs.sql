-- The job lifecycle of SPEC §3: state transitions, timestamps, attempts, the errors list.
SET client_min_messages = warning;

-- insert: available now, scheduled for later; defaults as Oban's.
SELECT id, state, queue, worker, attempt, max_attempts, priority, args, meta, tags,
       inserted_at = scheduled_at AS scheduled_at_is_insert_time
FROM oban_insert_job('MyApp.Worker', '{"n": 1}');
SELECT state, queue, priority, max_attempts, tags,
       scheduled_at > timezone('UTC', now()) + interval '59 minutes' AS in_an_hour
FROM oban_insert_job('MyApp.Later', '{}', 'mailers', 3, 5,
                     (timezone('UTC', now()) + interval '1 hour')::timestamp, '{"k": "v"}', '{a,b}');
-- A past scheduled_at is due at once: available.
SELECT state FROM oban_insert_job('MyApp.Past', scheduled_at => timestamp '2000-01-01');

-- fetch: claims available jobs of the queue only, marks them executing with attempt + 1,
-- attempted_at and attempted_by {node, producer}.
SELECT id, state, attempt, attempted_by, attempted_at IS NOT NULL AS attempted
FROM oban_fetch_jobs('default', 10, 'node-1', 'aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaaa');
SELECT count(*) AS nothing_left FROM oban_fetch_jobs('default', 10);
SELECT count(*) AS scheduled_not_fetched FROM oban_fetch_jobs('mailers', 10);

-- complete: executing → completed, with the recorded result kept in meta.
SELECT oban_complete_job(1, '{"total": 42}');
SELECT state, completed_at IS NOT NULL AS completed_at_set, meta FROM oban_jobs WHERE id = 1;
-- Only an executing job completes.
SELECT oban_complete_job(1);
SELECT oban_complete_job(999999);

-- error: retryable after Oban's backoff (15 + 2^attempt seconds plus up to 10% jitter).
SELECT oban_error_job(3, 'boom');
SELECT state, attempt,
       scheduled_at - timezone('UTC', now()) BETWEEN interval '16 seconds' AND interval '19 seconds'
           AS backoff_in_range,
       jsonb_array_length(errors) AS errors, errors->0->'attempt' AS attempt_recorded,
       errors->0->>'error' AS error
FROM oban_jobs WHERE id = 3;
-- An explicit backoff wins.
UPDATE oban_jobs SET state = 'executing', attempt = 2 WHERE id = 3;
SELECT oban_error_job(3, 'boom again', interval '10 minutes');
SELECT state, scheduled_at - timezone('UTC', now()) BETWEEN interval '9 minutes 59 seconds'
                                                        AND interval '10 minutes' AS explicit_backoff,
       jsonb_array_length(errors) AS errors
FROM oban_jobs WHERE id = 3;
-- Out of attempts: discarded.
SELECT id AS last_try FROM oban_insert_job('MyApp.Flaky', max_attempts => 1) \gset
SELECT count(*) FROM oban_fetch_jobs('default', 1);
SELECT oban_error_job(:last_try, 'final failure');
SELECT state, discarded_at IS NOT NULL AS discarded_at_set, errors->0->>'error' AS error
FROM oban_jobs WHERE id = :last_try;
SELECT oban_error_job(:last_try, 'not executing') IS NULL AS not_executing;

-- backoff: Oban's jittery clamped exponential.
SELECT attempt, oban_backoff(attempt, 20) BETWEEN make_interval(secs => 15 + 2 ^ attempt)
                                             AND make_interval(secs => (15 + 2 ^ attempt) * 1.1)
           AS in_range
FROM generate_series(1, 5) AS attempt;
-- Attempts are clamped to 20 proportionally when max_attempts exceeds 20.
SELECT oban_backoff(50, 100) BETWEEN make_interval(secs => 15 + 2 ^ 10)
                                AND make_interval(secs => (15 + 2 ^ 10) * 1.1) AS clamped;

-- snooze: executing → scheduled, attempt given back, meta.snoozed counts.
SELECT id AS snoozy FROM oban_insert_job('MyApp.Snoozy', meta => '{"snoozed": 2}') \gset
SELECT attempt FROM oban_fetch_jobs('default', 1);
SELECT oban_snooze_job(:snoozy, interval '30 seconds');
SELECT state, attempt, meta->'snoozed' AS snoozed,
       scheduled_at > timezone('UTC', now()) + interval '29 seconds' AS later
FROM oban_jobs WHERE id = :snoozy;
SELECT oban_snooze_job(:snoozy, interval '30 seconds') AS only_executing;

-- discard: executing → discarded, with the reason in errors.
SELECT id AS doomed FROM oban_insert_job('MyApp.Doomed') \gset
SELECT count(*) FROM oban_fetch_jobs('default', 1);
SELECT oban_discard_job(:doomed, 'bad input');
SELECT state, discarded_at IS NOT NULL AS discarded_at_set, errors->0->>'error' AS reason
FROM oban_jobs WHERE id = :doomed;
SELECT oban_discard_job(:doomed) AS only_executing;

-- cancel: any unfinished state → cancelled, reason optional.
SELECT oban_cancel_job(2, 'not needed');
SELECT state, cancelled_at IS NOT NULL AS cancelled_at_set, errors->0->>'error' AS reason
FROM oban_jobs WHERE id = 2;
SELECT oban_cancel_job(2) AS already_finished;
SELECT oban_cancel_job(1) AS completed_stays_completed;

-- retry: finished or retryable → available; clears the finish timestamps, makes room for an attempt.
SELECT oban_retry_job(:last_try);
SELECT state, max_attempts, attempt, discarded_at IS NULL AS discarded_at_cleared
FROM oban_jobs WHERE id = :last_try;
SELECT oban_retry_job(:last_try) AS already_available;
SELECT oban_retry_job(3) AS retryable_too;
SELECT oban_retry_job(1) AS completed_too;
SELECT state, completed_at IS NULL AS completed_at_cleared, meta FROM oban_jobs WHERE id = 1;

-- fetch order: priority, then scheduled_at, then id; demand limits the claim.
TRUNCATE oban_jobs RESTART IDENTITY;
INSERT INTO oban_jobs (worker, queue, priority, scheduled_at, args) VALUES
    ('W', 'ordered', 2, timestamp '2020-01-01', '{"n": "p2-old"}'),
    ('W', 'ordered', 0, timestamp '2020-01-03', '{"n": "p0-new"}'),
    ('W', 'ordered', 0, timestamp '2020-01-02', '{"n": "p0-old"}'),
    ('W', 'ordered', 1, timestamp '2020-01-01', '{"n": "p1-a"}'),
    ('W', 'ordered', 1, timestamp '2020-01-01', '{"n": "p1-b"}'),
    ('W', 'other', 0, timestamp '2019-01-01', '{"n": "other queue"}');
SELECT args->>'n' AS claimed FROM oban_fetch_jobs('ordered', 3);
SELECT args->>'n' AS claimed FROM oban_fetch_jobs('ordered', 10);
SELECT count(*) AS zero_demand FROM oban_fetch_jobs('other', 0);
SELECT args->>'n' AS claimed FROM oban_fetch_jobs('other', 10);

-- ack_jobs: many acks in one call; each stands on its own.
TRUNCATE oban_jobs RESTART IDENTITY;
INSERT INTO oban_jobs (worker, args) SELECT 'W', jsonb_build_object('n', n) FROM generate_series(1, 6) n;
SELECT array_agg(id ORDER BY id) AS ids FROM oban_fetch_jobs('default', 6) \gset
SELECT (:'ids'::bigint[])[1] AS a, (:'ids'::bigint[])[2] AS b, (:'ids'::bigint[])[3] AS c,
       (:'ids'::bigint[])[4] AS d, (:'ids'::bigint[])[5] AS e, (:'ids'::bigint[])[6] AS f \gset
SET client_min_messages = warning;
SELECT oban_ack_jobs(jsonb_build_array(
    jsonb_build_object('id', :a, 'state', 'completed', 'recorded', 'ok'),
    jsonb_build_object('id', :b, 'state', 'retryable', 'error', 'boom', 'backoff', 60),
    jsonb_build_object('id', :c, 'state', 'cancelled', 'error', 'stop'),
    jsonb_build_object('id', :d, 'state', 'discarded', 'error', 'bad'),
    jsonb_build_object('id', :e, 'state', 'scheduled', 'snooze', 5),
    jsonb_build_object('id', :f, 'state', 'exploded'),
    jsonb_build_object('id', 999999, 'state', 'completed'),
    '"not an object"'::jsonb)) AS applied;
SELECT args->>'n' AS n, state, attempt, meta, jsonb_array_length(errors) AS errors
FROM oban_jobs ORDER BY id;
SELECT oban_ack_jobs('[]') AS nothing;

-- One failing ack does not undo the others: a user trigger rejects completing job e.
CREATE FUNCTION refuse_completion() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.state = 'completed' AND NEW.args->>'n' = '5' THEN
        RAISE EXCEPTION 'job 5 may not complete' USING ERRCODE = 'P0001';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER refuse_completion BEFORE UPDATE ON oban_jobs
    FOR EACH ROW EXECUTE FUNCTION refuse_completion();
UPDATE oban_jobs SET state = 'executing' WHERE id IN (:e, :f);
SELECT oban_ack_jobs(jsonb_build_array(
    jsonb_build_object('id', :e, 'state', 'completed'),
    jsonb_build_object('id', :f, 'state', 'completed'))) AS applied;
SELECT args->>'n' AS n, state FROM oban_jobs WHERE id IN (:e, :f) ORDER BY id;
DROP TRIGGER refuse_completion ON oban_jobs;
DROP FUNCTION refuse_completion();

-- A two-phase transaction can make jobs available. It sends no notification: Postgres cannot
-- prepare a transaction that notifies, so the extension only notifies at a plain commit.
BEGIN;
SELECT state FROM oban_insert_job('TwoPhase');
PREPARE TRANSACTION 'oban_two_phase';
COMMIT PREPARED 'oban_two_phase';
SELECT state, count(*) FROM oban_jobs WHERE worker = 'TwoPhase' GROUP BY state;
