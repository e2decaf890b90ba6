-- Fixture: the tables oban-py 0.6's install creates in a schema (the prefix), written from the
-- layout summary in the project notes (not copied from oban-py's source).
-- Usage: psql -v prefix=NAME -f oban_py_06.sql
CREATE SCHEMA IF NOT EXISTS :"prefix";
SET search_path = :"prefix";

CREATE TYPE oban_job_state AS ENUM
    ('available', 'scheduled', 'executing', 'retryable', 'completed', 'discarded', 'cancelled');
-- oban-py adds the value after creating the type, after 'scheduled' (Elixir puts it before).
ALTER TYPE oban_job_state ADD VALUE IF NOT EXISTS 'suspended' AFTER 'scheduled';

CREATE TABLE oban_jobs (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    state oban_job_state NOT NULL DEFAULT 'available',
    queue text NOT NULL DEFAULT 'default',
    worker text NOT NULL,
    attempt smallint NOT NULL DEFAULT 0,
    max_attempts smallint NOT NULL DEFAULT 20,
    priority smallint NOT NULL DEFAULT 0,
    args jsonb NOT NULL DEFAULT '{}',
    meta jsonb NOT NULL DEFAULT '{}',
    tags text[] NOT NULL DEFAULT '{}',
    errors jsonb NOT NULL DEFAULT '[]',
    attempted_by text[] NOT NULL DEFAULT '{}',
    inserted_at timestamp WITHOUT TIME ZONE NOT NULL DEFAULT timezone('UTC', now()),
    scheduled_at timestamp WITHOUT TIME ZONE NOT NULL DEFAULT timezone('UTC', now()),
    attempted_at timestamp WITHOUT TIME ZONE,
    cancelled_at timestamp WITHOUT TIME ZONE,
    completed_at timestamp WITHOUT TIME ZONE,
    discarded_at timestamp WITHOUT TIME ZONE,
    CONSTRAINT attempt_range CHECK (attempt >= 0 AND attempt <= max_attempts),
    CONSTRAINT queue_length CHECK (char_length(queue) > 0),
    CONSTRAINT worker_length CHECK (char_length(worker) > 0),
    CONSTRAINT positive_max_attempts CHECK (max_attempts > 0),
    CONSTRAINT non_negative_priority CHECK (priority >= 0)
) WITH (fillfactor = 85, autovacuum_vacuum_scale_factor = 0.02);

CREATE UNLOGGED TABLE oban_leaders (
    name text PRIMARY KEY DEFAULT 'oban',
    node text NOT NULL,
    elected_at timestamp WITHOUT TIME ZONE NOT NULL,
    expires_at timestamp WITHOUT TIME ZONE NOT NULL
);

CREATE UNLOGGED TABLE oban_producers (
    uuid uuid PRIMARY KEY,
    name text NOT NULL DEFAULT 'oban',
    node text NOT NULL,
    queue text NOT NULL,
    meta jsonb NOT NULL DEFAULT '{}',
    started_at timestamp WITHOUT TIME ZONE NOT NULL DEFAULT timezone('UTC', now()),
    updated_at timestamp WITHOUT TIME ZONE NOT NULL DEFAULT timezone('UTC', now())
);

CREATE INDEX oban_jobs_state_queue_priority_scheduled_at_id_index
    ON oban_jobs (state, queue, priority, scheduled_at, id) WITH (fillfactor = 90);
CREATE INDEX oban_jobs_staging_index
    ON oban_jobs (scheduled_at, id) INCLUDE (queue) WHERE state IN ('scheduled', 'retryable');
CREATE INDEX oban_jobs_completed_at_index ON oban_jobs (completed_at) WHERE state = 'completed';
CREATE INDEX oban_jobs_cancelled_at_index ON oban_jobs (cancelled_at) WHERE state = 'cancelled';
CREATE INDEX oban_jobs_discarded_at_index ON oban_jobs (discarded_at) WHERE state = 'discarded';

-- oban-py's row estimate for metrics (its own version of the function).
CREATE FUNCTION oban_count_estimate(state text, queue text) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE plan jsonb;
BEGIN
    EXECUTE 'EXPLAIN (FORMAT JSON) SELECT id FROM oban_jobs WHERE state = $1::oban_job_state AND queue = $2'
        INTO plan USING state, queue;
    RETURN plan->0->'Plan'->'Plan Rows';
END;
$$;
