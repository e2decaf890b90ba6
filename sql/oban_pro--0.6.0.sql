-- oban_pro 0.6.0: Oban's job engine and Oban Pro's workflow features inside PostgreSQL.
--
-- Every object is created in the extension's schema (@extschema@), which plays the role of Oban's
-- "prefix". Names are schema-qualified throughout so the script is safe under any search_path.
-- The C functions pin their own search_path (pg_catalog, then @extschema@) while they run SQL, so
-- they carry no SET clause (a SET clause costs a GUC save/restore on every call of a hot path).

\echo Use "CREATE EXTENSION oban_pro" to load this file. \quit

-------------------------------------------------------------------------------------------------------
-- Types and tables: the oban-py 0.6 layout, column for column.
-------------------------------------------------------------------------------------------------------

-- oban-py creates the first seven values and then adds 'suspended' after 'scheduled'; Elixir Oban puts
-- it before. Nothing in this extension compares states by their position in the enum.
CREATE TYPE @extschema@.oban_job_state AS ENUM (
    'available',
    'scheduled',
    'suspended',
    'executing',
    'retryable',
    'completed',
    'discarded',
    'cancelled'
);

CREATE TABLE @extschema@.oban_jobs (
    id bigint PRIMARY KEY GENERATED ALWAYS AS IDENTITY,
    state @extschema@.oban_job_state NOT NULL DEFAULT 'available',
    queue text NOT NULL DEFAULT 'default',
    worker text NOT NULL,
    attempt smallint NOT NULL DEFAULT 0,
    max_attempts smallint NOT NULL DEFAULT 20,
    priority smallint NOT NULL DEFAULT 0,
    args jsonb NOT NULL DEFAULT '{}',
    meta jsonb NOT NULL DEFAULT '{}',
    tags text[] NOT NULL DEFAULT ARRAY[]::text[],
    errors jsonb NOT NULL DEFAULT '[]',
    attempted_by text[] NOT NULL DEFAULT ARRAY[]::text[],
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
);

CREATE UNLOGGED TABLE @extschema@.oban_leaders (
    name text PRIMARY KEY DEFAULT 'oban',
    node text NOT NULL,
    elected_at timestamp WITHOUT TIME ZONE NOT NULL,
    expires_at timestamp WITHOUT TIME ZONE NOT NULL
);

CREATE UNLOGGED TABLE @extschema@.oban_producers (
    uuid uuid PRIMARY KEY,
    name text NOT NULL DEFAULT 'oban',
    node text NOT NULL,
    queue text NOT NULL,
    meta jsonb NOT NULL DEFAULT '{}',
    started_at timestamp WITHOUT TIME ZONE NOT NULL DEFAULT timezone('UTC', now()),
    updated_at timestamp WITHOUT TIME ZONE NOT NULL DEFAULT timezone('UTC', now())
);

CREATE INDEX oban_jobs_state_queue_priority_scheduled_at_id_index
    ON @extschema@.oban_jobs (state, queue, priority, scheduled_at, id)
    WITH (fillfactor = 90);

CREATE INDEX oban_jobs_staging_index
    ON @extschema@.oban_jobs (scheduled_at, id) INCLUDE (queue)
    WHERE state IN ('scheduled', 'retryable');

CREATE INDEX oban_jobs_completed_at_index
    ON @extschema@.oban_jobs (completed_at)
    WHERE state = 'completed';

CREATE INDEX oban_jobs_cancelled_at_index
    ON @extschema@.oban_jobs (cancelled_at)
    WHERE state = 'cancelled';

CREATE INDEX oban_jobs_discarded_at_index
    ON @extschema@.oban_jobs (discarded_at)
    WHERE state = 'discarded';

ALTER TABLE @extschema@.oban_jobs SET (
    autovacuum_vacuum_scale_factor = 0.02,
    autovacuum_vacuum_threshold = 50,
    autovacuum_analyze_scale_factor = 0.02,
    autovacuum_analyze_threshold = 100,
    autovacuum_vacuum_cost_limit = 2000,
    autovacuum_vacuum_cost_delay = 1,
    autovacuum_vacuum_insert_scale_factor = 0.02,
    autovacuum_vacuum_insert_threshold = 1000,
    fillfactor = 85
);

-- Jobs are user data: pg_dump must keep them (and the identity sequence's position) even though the
-- table belongs to the extension. Leaders and producers are unlogged, ephemeral coordination rows.
SELECT pg_catalog.pg_extension_config_dump('@extschema@.oban_jobs', '');
SELECT pg_catalog.pg_extension_config_dump(
    pg_catalog.pg_get_serial_sequence('@extschema@.oban_jobs', 'id')::pg_catalog.regclass, '');

-------------------------------------------------------------------------------------------------------
-- oban-py's helper for metrics.
-------------------------------------------------------------------------------------------------------

CREATE FUNCTION @extschema@.oban_count_estimate(state text, queue text)
RETURNS integer
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $func$
DECLARE
    plan jsonb;
BEGIN
    EXECUTE 'EXPLAIN (FORMAT JSON)
             SELECT id FROM @extschema@.oban_jobs
             WHERE state = $1::@extschema@.oban_job_state AND queue = $2'
        INTO plan
        USING state, queue;
    RETURN plan->0->'Plan'->'Plan Rows';
END;
$func$;

-------------------------------------------------------------------------------------------------------
-- Job lifecycle (SPEC §3). Implemented in C++ (src/pg/jobs.cpp, src/pg/maintenance.cpp).
-------------------------------------------------------------------------------------------------------

CREATE FUNCTION @extschema@.oban_backoff(attempt integer, max_attempts integer)
RETURNS interval
LANGUAGE c VOLATILE PARALLEL SAFE STRICT
AS 'MODULE_PATHNAME', 'oban_backoff';

CREATE FUNCTION @extschema@.oban_insert_job(
    worker text,
    args jsonb DEFAULT '{}',
    queue text DEFAULT 'default',
    priority integer DEFAULT 0,
    max_attempts integer DEFAULT 20,
    scheduled_at timestamp DEFAULT NULL,
    meta jsonb DEFAULT '{}',
    tags text[] DEFAULT '{}')
RETURNS @extschema@.oban_jobs
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'oban_insert_job';

CREATE FUNCTION @extschema@.oban_fetch_jobs(
    queue text,
    demand integer,
    node text DEFAULT 'sql',
    producer uuid DEFAULT NULL)
RETURNS SETOF @extschema@.oban_jobs
LANGUAGE c VOLATILE ROWS 10
AS 'MODULE_PATHNAME', 'oban_fetch_jobs';

CREATE FUNCTION @extschema@.oban_complete_job(id bigint, recorded jsonb DEFAULT NULL)
RETURNS boolean
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'oban_complete_job';

CREATE FUNCTION @extschema@.oban_error_job(id bigint, error text, backoff interval DEFAULT NULL)
RETURNS @extschema@.oban_job_state
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'oban_error_job';

CREATE FUNCTION @extschema@.oban_cancel_job(id bigint, reason text DEFAULT NULL)
RETURNS boolean
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'oban_cancel_job';

CREATE FUNCTION @extschema@.oban_discard_job(id bigint, reason text DEFAULT NULL)
RETURNS boolean
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'oban_discard_job';

CREATE FUNCTION @extschema@.oban_snooze_job(id bigint, snooze interval)
RETURNS boolean
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'oban_snooze_job';

CREATE FUNCTION @extschema@.oban_retry_job(id bigint)
RETURNS boolean
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'oban_retry_job';

CREATE FUNCTION @extschema@.oban_ack_jobs(acks jsonb)
RETURNS integer
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'oban_ack_jobs';

CREATE FUNCTION @extschema@.oban_stage_jobs("limit" integer DEFAULT 5000)
RETURNS integer
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'oban_stage_jobs';

CREATE FUNCTION @extschema@.oban_prune_jobs(max_age interval DEFAULT '1 day', "limit" integer DEFAULT 10000)
RETURNS integer
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'oban_prune_jobs';

CREATE FUNCTION @extschema@.oban_rescue_jobs(rescue_after interval DEFAULT '60 minutes')
RETURNS integer
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'oban_rescue_jobs';

-------------------------------------------------------------------------------------------------------
-- Triggers: plain INSERTs and UPDATEs by Oban clients get the extension's behaviour.
-------------------------------------------------------------------------------------------------------

-- Notify "<schema>.oban_insert" with {"queue": ...} once per queue per transaction whenever jobs
-- become available, so Oban producers listening on that channel fetch at once.
CREATE FUNCTION @extschema@.oban_jobs_notify_available()
RETURNS trigger
LANGUAGE c
AS 'MODULE_PATHNAME', 'oban_jobs_notify_available';

CREATE TRIGGER oban_jobs_notify_insert
    AFTER INSERT ON @extschema@.oban_jobs
    FOR EACH ROW WHEN (NEW.state = 'available')
    EXECUTE FUNCTION @extschema@.oban_jobs_notify_available();

CREATE TRIGGER oban_jobs_notify_update
    AFTER UPDATE OF state ON @extschema@.oban_jobs
    FOR EACH ROW WHEN (NEW.state = 'available' AND OLD.state <> 'available')
    EXECUTE FUNCTION @extschema@.oban_jobs_notify_available();
