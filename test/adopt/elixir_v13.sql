-- Fixture: the oban tables as Elixir Oban's migrations V01..V13 leave them in a schema (the prefix),
-- written from the layout summary in the project notes (not copied from Oban's source). V14 — the
-- 'suspended' enum value — is left out on purpose: adopt.sh adds it as V14 does, before adoption.
-- Usage: psql -v prefix=NAME -f elixir_v13.sql
CREATE SCHEMA IF NOT EXISTS :"prefix";
SET search_path = :"prefix";

CREATE TYPE oban_job_state AS ENUM
    ('available', 'scheduled', 'executing', 'retryable', 'completed', 'discarded', 'cancelled');

-- Columns in the order the migrations add them: V01, then V03 attempted_by, V08 discarded_at,
-- priority, tags, V09 meta, cancelled_at.
CREATE TABLE oban_jobs (
    id bigserial PRIMARY KEY,
    state oban_job_state NOT NULL DEFAULT 'available',
    queue text NOT NULL DEFAULT 'default',
    worker text NOT NULL,
    args jsonb NOT NULL DEFAULT '{}',
    errors jsonb[] NOT NULL DEFAULT ARRAY[]::jsonb[],
    attempt integer NOT NULL DEFAULT 0,
    max_attempts integer NOT NULL DEFAULT 20,
    inserted_at timestamp WITHOUT TIME ZONE NOT NULL DEFAULT timezone('UTC', now()),
    scheduled_at timestamp WITHOUT TIME ZONE NOT NULL DEFAULT timezone('UTC', now()),
    attempted_at timestamp WITHOUT TIME ZONE,
    completed_at timestamp WITHOUT TIME ZONE,
    attempted_by text[],
    discarded_at timestamp WITHOUT TIME ZONE,
    priority integer NOT NULL DEFAULT 0,
    tags character varying(255)[] DEFAULT ARRAY[]::character varying[],
    meta jsonb DEFAULT '{}',
    cancelled_at timestamp WITHOUT TIME ZONE,
    CONSTRAINT worker_length CHECK (char_length(worker) > 0 AND char_length(worker) < 128),
    CONSTRAINT queue_length CHECK (char_length(queue) > 0 AND char_length(queue) < 128),
    CONSTRAINT positive_max_attempts CHECK (max_attempts > 0),
    CONSTRAINT attempt_range CHECK (attempt >= 0 AND attempt <= max_attempts)
);
-- V12 swapped the 0..3 priority range for this one, added NOT VALID.
ALTER TABLE oban_jobs ADD CONSTRAINT non_negative_priority CHECK (priority >= 0) NOT VALID;

CREATE INDEX oban_jobs_state_queue_priority_scheduled_at_id_index
    ON oban_jobs (state, queue, priority, scheduled_at, id);
CREATE INDEX oban_jobs_args_index ON oban_jobs USING gin (args);
CREATE INDEX oban_jobs_meta_index ON oban_jobs USING gin (meta);
CREATE INDEX oban_jobs_state_cancelled_at_index ON oban_jobs (state, cancelled_at);
CREATE INDEX oban_jobs_state_discarded_at_index ON oban_jobs (state, discarded_at);

CREATE UNLOGGED TABLE oban_peers (
    name text PRIMARY KEY,
    node text NOT NULL,
    started_at timestamp WITHOUT TIME ZONE NOT NULL,
    expires_at timestamp WITHOUT TIME ZONE NOT NULL
);

-- Oban records its migration version in the table comment.
COMMENT ON TABLE oban_jobs IS '13';
