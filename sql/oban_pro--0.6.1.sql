-- oban_pro 0.6.1: Oban's job engine and Oban Pro's workflow features inside PostgreSQL.
--
-- Every object is created in the extension's schema (@extschema@), which plays the role of Oban's
-- "prefix". Names are schema-qualified throughout so the script is safe under any search_path.
-- The C functions pin their own search_path (pg_catalog, then @extschema@) while they run SQL, so
-- they carry no SET clause (a SET clause costs a GUC save/restore on every call of a hot path).

\echo Use "CREATE EXTENSION oban_pro" to load this file. \quit

-------------------------------------------------------------------------------------------------------
-- Types and tables: the oban-py 0.6 layout, column for column — or the Oban tables already there.
--
-- Fresh install: the schema has no oban_jobs, and the extension creates the enum, oban_jobs,
-- oban_leaders and oban_producers below; they belong to the extension, and pg_dump keeps their rows
-- (pg_extension_config_dump).
--
-- Adoption (README "Adopting existing Oban tables"): the schema already has an oban_jobs made by
-- oban-py 0.6 or by Elixir Oban's migrations (V12 or later). The extension takes it as it is: it
-- checks the columns it relies on, adds any that are missing with a constant default (no table
-- rewrite), creates the indexes it needs that are missing by name, and below installs its triggers
-- and its own tables. The table, its rows, its enum and anything else the Oban client created stay
-- user objects, not extension members, so DROP EXTENSION never drops job rows. Elixir's jsonb[]
-- errors column is kept (its clients append with array_append); the extension writes errors through
-- oban_errors_append, which has an overload for each layout. A state type without 'suspended' is
-- refused: a value added by ALTER TYPE cannot be used in the transaction that added it, and
-- CREATE EXTENSION is one transaction (the hint gives the statement to run first).
-------------------------------------------------------------------------------------------------------

DO $tables$
DECLARE
    jobs pg_catalog.regclass := pg_catalog.to_regclass('@extschema@.oban_jobs');
    state_type pg_catalog.regtype;
    missing text;
    column_spec record;
BEGIN
    IF jobs IS NULL THEN
        -- oban-py creates the first seven values and then adds 'suspended' after 'scheduled'; Elixir
        -- Oban puts it before. Nothing in this extension compares states by their position in the enum.
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

        -- Jobs are user data: pg_dump must keep them (and the identity sequence's position) even
        -- though the table belongs to the extension.
        PERFORM pg_catalog.pg_extension_config_dump('@extschema@.oban_jobs', '');
        PERFORM pg_catalog.pg_extension_config_dump(
            pg_catalog.pg_get_serial_sequence('@extschema@.oban_jobs', 'id')::pg_catalog.regclass, '');
    ELSE
        IF (SELECT c.relkind FROM pg_catalog.pg_class AS c WHERE c.oid = jobs) <> 'r' THEN
            RAISE EXCEPTION 'cannot adopt @extschema@.oban_jobs: it is not a plain table'
                USING ERRCODE = 'wrong_object_type',
                      HINT = 'oban_pro adopts the oban_jobs table that oban-py or Elixir Oban creates; '
                             'partitioned tables, views and foreign tables are not supported.';
        END IF;

        SELECT a.atttypid::pg_catalog.regtype INTO state_type
        FROM pg_catalog.pg_attribute AS a
        WHERE a.attrelid = jobs AND a.attname = 'state' AND NOT a.attisdropped;
        IF state_type IS DISTINCT FROM pg_catalog.to_regtype('@extschema@.oban_job_state') THEN
            RAISE EXCEPTION 'cannot adopt @extschema@.oban_jobs: column "state" is not of type @extschema@.oban_job_state'
                USING ERRCODE = 'datatype_mismatch',
                      DETAIL = pg_catalog.format('Its type is %s.', coalesce(state_type::text, 'missing'));
        END IF;

        SELECT pg_catalog.string_agg(pg_catalog.quote_literal(label), ', ') INTO missing
        FROM pg_catalog.unnest(ARRAY['available', 'scheduled', 'suspended', 'executing', 'retryable',
                                     'completed', 'discarded', 'cancelled']) AS label
        WHERE NOT EXISTS (SELECT FROM pg_catalog.pg_enum AS e
                          WHERE e.enumtypid = state_type AND e.enumlabel = label);
        IF missing = '''suspended''' THEN
            RAISE EXCEPTION 'cannot adopt @extschema@.oban_jobs: type @extschema@.oban_job_state has no value ''suspended'''
                USING ERRCODE = 'object_not_in_prerequisite_state',
                      DETAIL = 'A value added by ALTER TYPE cannot be used in the transaction that added '
                               'it, and CREATE EXTENSION runs in one transaction.',
                      HINT = 'Run ALTER TYPE @extschema@.oban_job_state ADD VALUE IF NOT EXISTS ''suspended'' '
                             'BEFORE ''scheduled'' on its own (as Elixir Oban''s migration V14 does), '
                             'then CREATE EXTENSION again.';
        ELSIF missing IS NOT NULL THEN
            RAISE EXCEPTION 'cannot adopt @extschema@.oban_jobs: type @extschema@.oban_job_state has no value %', missing
                USING ERRCODE = 'object_not_in_prerequisite_state',
                      HINT = 'Migrate the tables to Elixir Oban''s V12 layout or later (or oban-py 0.6) first.';
        END IF;

        -- The columns the extension reads and writes: the types it accepts, and for those a client
        -- could lack, a definition with a constant default (ADD COLUMN then rewrites nothing).
        FOR column_spec IN
            SELECT w.name, w.types::pg_catalog.regtype[] AS types, w.addable, a.atttypid
            FROM (VALUES
                ('id', '{bigint}', NULL),
                ('queue', '{text}', NULL),
                ('worker', '{text}', NULL),
                ('attempt', '{smallint,integer}', NULL),
                ('max_attempts', '{smallint,integer}', NULL),
                ('priority', '{smallint,integer}', 'smallint NOT NULL DEFAULT 0'),
                ('args', '{jsonb}', NULL),
                ('meta', '{jsonb}', 'jsonb NOT NULL DEFAULT ''{}'''),
                ('tags', '{text[],character varying[]}', 'text[] NOT NULL DEFAULT ARRAY[]::text[]'),
                ('errors', '{jsonb,jsonb[]}', 'jsonb NOT NULL DEFAULT ''[]'''),
                ('attempted_by', '{text[]}', 'text[] NOT NULL DEFAULT ARRAY[]::text[]'),
                ('inserted_at', '{timestamp without time zone}', NULL),
                ('scheduled_at', '{timestamp without time zone}', NULL),
                ('attempted_at', '{timestamp without time zone}', 'timestamp WITHOUT TIME ZONE'),
                ('cancelled_at', '{timestamp without time zone}', 'timestamp WITHOUT TIME ZONE'),
                ('completed_at', '{timestamp without time zone}', 'timestamp WITHOUT TIME ZONE'),
                ('discarded_at', '{timestamp without time zone}', 'timestamp WITHOUT TIME ZONE')
            ) AS w(name, types, addable)
            LEFT JOIN pg_catalog.pg_attribute AS a
              ON a.attrelid = jobs AND a.attname = w.name AND a.attnum > 0 AND NOT a.attisdropped
        LOOP
            IF column_spec.atttypid IS NULL AND column_spec.addable IS NULL THEN
                RAISE EXCEPTION 'cannot adopt @extschema@.oban_jobs: it has no column "%"', column_spec.name
                    USING ERRCODE = 'undefined_column',
                          HINT = 'oban_pro adopts the layouts of oban-py 0.6 and Elixir Oban V12 or later.';
            ELSIF column_spec.atttypid IS NULL THEN
                EXECUTE pg_catalog.format('ALTER TABLE %s ADD COLUMN %I %s', jobs, column_spec.name,
                                          column_spec.addable);
            ELSIF column_spec.atttypid <> ALL (column_spec.types::pg_catalog.oid[]) THEN
                RAISE EXCEPTION 'cannot adopt @extschema@.oban_jobs: column "%" is of type %', column_spec.name,
                                column_spec.atttypid::pg_catalog.regtype
                    USING ERRCODE = 'datatype_mismatch',
                          DETAIL = pg_catalog.format('oban_pro accepts %s.',
                                                     pg_catalog.array_to_string(column_spec.types, ' or '));
            END IF;
        END LOOP;
    END IF;

    -- Leaders and producers are unlogged, ephemeral coordination rows (rescue reads producers).
    -- Elixir Oban has oban_peers instead; the extension adds oban-py's two when they are missing.
    IF pg_catalog.to_regclass('@extschema@.oban_leaders') IS NULL THEN
        CREATE UNLOGGED TABLE @extschema@.oban_leaders (
            name text PRIMARY KEY DEFAULT 'oban',
            node text NOT NULL,
            elected_at timestamp WITHOUT TIME ZONE NOT NULL,
            expires_at timestamp WITHOUT TIME ZONE NOT NULL
        );
    END IF;
    IF pg_catalog.to_regclass('@extschema@.oban_producers') IS NULL THEN
        CREATE UNLOGGED TABLE @extschema@.oban_producers (
            uuid uuid PRIMARY KEY,
            name text NOT NULL DEFAULT 'oban',
            node text NOT NULL,
            queue text NOT NULL,
            meta jsonb NOT NULL DEFAULT '{}',
            started_at timestamp WITHOUT TIME ZONE NOT NULL DEFAULT timezone('UTC', now()),
            updated_at timestamp WITHOUT TIME ZONE NOT NULL DEFAULT timezone('UTC', now())
        );
    END IF;

    -- oban-py's indexes. On an adopted table an index of the same name is kept as it is. CREATE
    -- INDEX (not CONCURRENTLY: CREATE EXTENSION is a transaction) blocks writes to the table while
    -- it builds; on a big table create them CONCURRENTLY under these names beforehand.
    IF pg_catalog.to_regclass('@extschema@.oban_jobs_state_queue_priority_scheduled_at_id_index') IS NULL THEN
        CREATE INDEX oban_jobs_state_queue_priority_scheduled_at_id_index
            ON @extschema@.oban_jobs (state, queue, priority, scheduled_at, id)
            WITH (fillfactor = 90);
    END IF;
    IF pg_catalog.to_regclass('@extschema@.oban_jobs_staging_index') IS NULL THEN
        CREATE INDEX oban_jobs_staging_index
            ON @extschema@.oban_jobs (scheduled_at, id) INCLUDE (queue)
            WHERE state IN ('scheduled', 'retryable');
    END IF;
    IF pg_catalog.to_regclass('@extschema@.oban_jobs_completed_at_index') IS NULL THEN
        CREATE INDEX oban_jobs_completed_at_index
            ON @extschema@.oban_jobs (completed_at)
            WHERE state = 'completed';
    END IF;
    IF pg_catalog.to_regclass('@extschema@.oban_jobs_cancelled_at_index') IS NULL THEN
        CREATE INDEX oban_jobs_cancelled_at_index
            ON @extschema@.oban_jobs (cancelled_at)
            WHERE state = 'cancelled';
    END IF;
    IF pg_catalog.to_regclass('@extschema@.oban_jobs_discarded_at_index') IS NULL THEN
        CREATE INDEX oban_jobs_discarded_at_index
            ON @extschema@.oban_jobs (discarded_at)
            WHERE state = 'discarded';
    END IF;
END
$tables$;

-- A job's errors list is oban-py's jsonb array or Elixir Oban's jsonb[]: every error the extension
-- records goes through this pair, and the column's type picks the overload.
CREATE FUNCTION @extschema@.oban_errors_append(errors jsonb, error jsonb)
RETURNS jsonb
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN COALESCE(errors, '[]'::jsonb) OPERATOR(pg_catalog.||) pg_catalog.jsonb_build_array(error);

CREATE FUNCTION @extschema@.oban_errors_append(errors jsonb[], error jsonb)
RETURNS jsonb[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN pg_catalog.array_append(errors, error);

-------------------------------------------------------------------------------------------------------
-- oban-py's helper for metrics (kept as it is when an adopted oban-py schema already has it).
-------------------------------------------------------------------------------------------------------

DO $count_estimate$
BEGIN
    IF pg_catalog.to_regprocedure('@extschema@.oban_count_estimate(text, text)') IS NOT NULL THEN
        RETURN;
    END IF;
    CREATE FUNCTION @extschema@.oban_count_estimate(state text, queue text)
    RETURNS integer
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    -- (the body is not indented: its text stays as 0.6.0 created it)
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
END
$count_estimate$;

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

-- Many jobs in one statement; each element as oban_insert_job's arguments, as a JSON object.
CREATE FUNCTION @extschema@.oban_insert_jobs(jobs jsonb)
RETURNS SETOF @extschema@.oban_jobs
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'oban_insert_jobs';

-- An Oban producer's round in one transaction: apply its acks (as oban_ack_jobs), then claim more
-- (as oban_fetch_jobs).
CREATE FUNCTION @extschema@.oban_ack_fetch_jobs(
    acks jsonb,
    queue text,
    demand integer,
    node text DEFAULT 'sql',
    producer uuid DEFAULT NULL)
RETURNS SETOF @extschema@.oban_jobs
LANGUAGE c VOLATILE ROWS 10
AS 'MODULE_PATHNAME', 'oban_ack_fetch_jobs';

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
-- become available, so Oban producers listening on that channel fetch at once. Inserted jobs are
-- recorded by oban_jobs_before_insert (below), jobs updated to available by oban_jobs_state_changed
-- (below, with the workflow triggers).

-- The same for an available job that moves (another queue, priority or scheduled_at): oban_fetch_jobs
-- starts each walk of a queue at the queue's fetch floor, which every job that becomes available or
-- moves below it lowers (README: "Fetch floors").
CREATE FUNCTION @extschema@.oban_jobs_available_moved()
RETURNS trigger
LANGUAGE c
AS 'MODULE_PATHNAME', 'oban_jobs_available_moved';

CREATE TRIGGER oban_jobs_available_moved
    AFTER UPDATE OF queue, priority, scheduled_at ON @extschema@.oban_jobs
    FOR EACH ROW WHEN (NEW.state = 'available' AND OLD.state = 'available'
                       AND (NEW.queue, NEW.priority, NEW.scheduled_at)
                           IS DISTINCT FROM (OLD.queue, OLD.priority, OLD.scheduled_at))
    EXECUTE FUNCTION @extschema@.oban_jobs_available_moved();

-------------------------------------------------------------------------------------------------------
-- Workflows (SPEC §4). Jobs carry meta workflow_id, name and deps; the extension keeps:
--   oban_workflow_rows     one row per workflow: identity, options, counts folded from the journal;
--   oban_workflow_journal  append-only deltas written by each statement that changes workflow jobs
--                          (counts per state, and which steps finished), so concurrent acks of one
--                          workflow never update a shared row; folded by oban_flush_workflows;
--   oban_workflow_waits    one row per suspended job still waiting on two deps or more: how many
--                          remain (a job waiting on one has only its edge);
--   oban_workflow_edges    dep (workflow, step name or '*') → waiting job, to find who a finished
--                          step releases without scanning the workflow;
--   oban_workflow_steps    (workflow, step name) → job, one row per workflow job, to find a step's
--                          jobs and a workflow's.
-- oban_workflows (a view) adds the unfolded journal to the folded counts, so it is exact for all
-- committed work at any moment.
-------------------------------------------------------------------------------------------------------

-- A workflow's jobs by workflow id and step name (0.6.1): the extension's look-ups of a step's job
-- (deps at insert, the release, repair, signals), the status, cancel, graph and prune. One row per
-- workflow job, written by the statement that inserts the job and deleted with it
-- (src/pg/steps.cpp). A job's workflow id and name never change (oban_jobs_workflow_fixed), so
-- nothing here is written when a job changes state, whereas an index on oban_jobs keyed by them
-- took an entry for every state change, none of which is a HOT update (`state` is in Oban's fetch
-- index): two more B-tree inserts for the fetch and the ack of every workflow job, about 10% of a
-- fan-in's acks (bench/RESULTS.md, session 26). `name` is NULL for a workflow job without one.
-- Clients that query oban_jobs by meta->>'workflow_id' themselves (Oban Web) may add their own
-- index on it; an adopted table keeps the one it came with.
CREATE TABLE @extschema@.oban_workflow_steps (
    workflow_id text NOT NULL,
    name text,
    job_id bigint NOT NULL
);
CREATE INDEX oban_workflow_steps_name_index
    ON @extschema@.oban_workflow_steps (workflow_id, name, job_id);
-- The workflow jobs an adopted table already holds.
INSERT INTO @extschema@.oban_workflow_steps (workflow_id, name, job_id)
SELECT meta->>'workflow_id', meta->>'name', id FROM @extschema@.oban_jobs WHERE meta ? 'workflow_id';

CREATE TABLE @extschema@.oban_workflow_rows (
    id text PRIMARY KEY,
    name text,
    parent_id text,
    sub_name text,
    is_unique boolean NOT NULL DEFAULT false,
    ignore_cancelled boolean NOT NULL DEFAULT false,
    ignore_discarded boolean NOT NULL DEFAULT false,
    ignore_deleted boolean NOT NULL DEFAULT false,
    meta jsonb NOT NULL DEFAULT '{}',
    suspended integer NOT NULL DEFAULT 0,
    available integer NOT NULL DEFAULT 0,
    scheduled integer NOT NULL DEFAULT 0,
    executing integer NOT NULL DEFAULT 0,
    retryable integer NOT NULL DEFAULT 0,
    completed integer NOT NULL DEFAULT 0,
    cancelled integer NOT NULL DEFAULT 0,
    discarded integer NOT NULL DEFAULT 0,
    inserted_at timestamp WITHOUT TIME ZONE NOT NULL DEFAULT timezone('UTC', now()),
    started_at timestamp WITHOUT TIME ZONE,
    completed_at timestamp WITHOUT TIME ZONE,
    -- Repair's clock: while the workflow has waiting (suspended) jobs, when the fold last changed
    -- it, to the second; NULL while none wait. A fold within a second of the clock leaves it, and
    -- no index names `suspended`, so the fold's update of a busy workflow stays HOT (0.6.1).
    updated_at timestamp WITHOUT TIME ZONE,
    -- A prune passed the row over while a transaction adding jobs held it: the next prune looks
    -- at it again, in case that transaction rolled back and left it with no job (0.6.1).
    prune_retry boolean NOT NULL DEFAULT false
)
-- Room on each page for the fold's updates to stay HOT (0.6.1).
WITH (fillfactor = 70);
CREATE INDEX oban_workflow_rows_parent_index ON @extschema@.oban_workflow_rows (parent_id)
    WHERE parent_id IS NOT NULL;
-- Repair candidates: workflows with waiting jobs.
CREATE INDEX oban_workflow_rows_suspended_index ON @extschema@.oban_workflow_rows (updated_at)
    WHERE updated_at IS NOT NULL;
CREATE INDEX oban_workflow_rows_prune_retry_index ON @extschema@.oban_workflow_rows (id)
    WHERE prune_retry;

-- A journal row is written for nearly every statement that changes workflow jobs, and deleted by the
-- next fold, so it is kept small (0.6.1): a count that did not change, and the finished steps of a
-- row that finished none, are NULL (read as 0 and none), and the one index is the primary key, by
-- workflow first, which both the status (a workflow's rows) and the fold (every row) read. A second
-- index cost every append one more B-tree insert (bench/RESULTS.md, session 18).
CREATE TABLE @extschema@.oban_workflow_journal (
    id bigint GENERATED ALWAYS AS IDENTITY,
    workflow_id text NOT NULL,
    suspended integer,
    available integer,
    scheduled integer,
    executing integer,
    retryable integer,
    completed integer,
    cancelled integer,
    discarded integer,
    started_at timestamp WITHOUT TIME ZONE,
    finished_names text[],
    finished_states text[],
    recorded_at timestamp WITHOUT TIME ZONE NOT NULL DEFAULT timezone('UTC', now()),
    PRIMARY KEY (workflow_id, id)
);

CREATE TABLE @extschema@.oban_workflow_waits (
    job_id bigint PRIMARY KEY,
    workflow_id text NOT NULL,
    remaining integer NOT NULL  -- = its edges not yet consumed
);

CREATE TABLE @extschema@.oban_workflow_edges (
    dep_workflow_id text NOT NULL,
    dep_name text NOT NULL,
    job_id bigint NOT NULL,
    PRIMARY KEY (dep_workflow_id, dep_name, job_id)
);
CREATE INDEX oban_workflow_edges_job_index ON @extschema@.oban_workflow_edges (job_id);

-- Unique workflows (SPEC §5, src/pg/uniqueness.cpp): one row per unique workflow name, naming the
-- workflow that last claimed it. Its primary key is what keeps two unfinished unique workflows from
-- sharing a name: a claimer waits on a concurrent claimer's uncommitted entry. The name is free once
-- its holder has no unfinished job (checked when the name is claimed) or is gone.
CREATE TABLE @extschema@.oban_workflow_names (
    name text PRIMARY KEY,
    workflow_id text NOT NULL,
    claimed_at timestamp WITHOUT TIME ZONE NOT NULL DEFAULT timezone('UTC', now())
);
CREATE INDEX oban_workflow_names_workflow_index ON @extschema@.oban_workflow_names (workflow_id);

SELECT pg_catalog.pg_extension_config_dump('@extschema@.oban_workflow_rows', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.oban_workflow_names', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.oban_workflow_journal', '');
SELECT pg_catalog.pg_extension_config_dump(
    pg_catalog.pg_get_serial_sequence('@extschema@.oban_workflow_journal', 'id')::pg_catalog.regclass, '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.oban_workflow_waits', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.oban_workflow_edges', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.oban_workflow_steps', '');

-- The derived state of SPEC §4 from counts and options.
CREATE FUNCTION @extschema@.oban_workflow_state(
    suspended integer, available integer, scheduled integer, executing integer, retryable integer,
    completed integer, cancelled integer, discarded integer,
    ignore_cancelled boolean, ignore_discarded boolean, started boolean)
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN CASE
    WHEN suspended + available + scheduled + executing + retryable > 0
        THEN CASE WHEN started OR completed + cancelled + discarded > 0 THEN 'executing' ELSE 'pending' END
    WHEN discarded > 0 AND NOT ignore_discarded THEN 'discarded'
    WHEN cancelled > 0 AND NOT ignore_cancelled THEN 'cancelled'
    WHEN suspended + available + scheduled + executing + retryable + completed + cancelled + discarded = 0
        THEN 'pending'
    ELSE 'completed'
END;

CREATE VIEW @extschema@.oban_workflows AS
SELECT w.id, w.name, w.parent_id,
       @extschema@.oban_workflow_state(c.suspended, c.available, c.scheduled, c.executing, c.retryable,
                                       c.completed, c.cancelled, c.discarded, w.ignore_cancelled,
                                       w.ignore_discarded, c.started_at IS NOT NULL) AS state,
       w.meta,
       c.suspended, c.available, c.scheduled, c.executing, c.retryable, c.completed, c.cancelled,
       c.discarded, w.inserted_at, c.started_at,
       CASE WHEN c.suspended + c.available + c.scheduled + c.executing + c.retryable = 0
             AND c.completed + c.cancelled + c.discarded > 0
            THEN coalesce(w.completed_at, c.recorded_at) END AS completed_at,
       w.sub_name, w.is_unique, w.ignore_cancelled, w.ignore_discarded, w.ignore_deleted
FROM @extschema@.oban_workflow_rows AS w
CROSS JOIN LATERAL (
    SELECT (w.suspended + coalesce(sum(j.suspended), 0))::integer AS suspended,
           (w.available + coalesce(sum(j.available), 0))::integer AS available,
           (w.scheduled + coalesce(sum(j.scheduled), 0))::integer AS scheduled,
           (w.executing + coalesce(sum(j.executing), 0))::integer AS executing,
           (w.retryable + coalesce(sum(j.retryable), 0))::integer AS retryable,
           (w.completed + coalesce(sum(j.completed), 0))::integer AS completed,
           (w.cancelled + coalesce(sum(j.cancelled), 0))::integer AS cancelled,
           (w.discarded + coalesce(sum(j.discarded), 0))::integer AS discarded,
           least(w.started_at, min(j.started_at)) AS started_at,
           max(j.recorded_at) AS recorded_at
    FROM @extschema@.oban_workflow_journal AS j
    WHERE j.workflow_id = w.id
) AS c;

-- Counts of a workflow and all its sub-workflows, recursively, read from oban_workflows alone. This
-- and the next run kept statements (src/pg/aggregation.cpp, where the SQL is).
CREATE FUNCTION @extschema@.oban_workflow_tree_counts(workflow_id text)
RETURNS TABLE (suspended integer, available integer, scheduled integer, executing integer,
               retryable integer, completed integer, cancelled integer, discarded integer,
               started_at timestamp, completed_at timestamp, workflows integer)
LANGUAGE c STABLE
AS 'MODULE_PATHNAME', 'oban_workflow_tree_counts';

-- Whether the workflow's whole tree, from its top-level workflow down, has no unfinished job.
CREATE FUNCTION @extschema@.oban_workflow_finished(workflow_id text)
RETURNS boolean
LANGUAGE c STABLE
AS 'MODULE_PATHNAME', 'oban_workflow_finished';

-- What each dep of a job stands at: its target (workflow, step name or '*') and the outcome, the
-- dep job's state, the derived state of a whole (sub-)workflow, or NULL when it does not exist.
-- A bare name is a step of the job's own workflow, or the name of one of its sub-workflows. Both
-- functions run kept statements (src/pg/workflows.cpp, where the SQL is).
CREATE FUNCTION @extschema@.oban_dep_outcomes(workflow_id text, deps jsonb)
RETURNS TABLE (dep_workflow_id text, dep_name text, outcome text)
LANGUAGE c STABLE
AS 'MODULE_PATHNAME', 'oban_dep_outcomes';

-- The verdict on each dep of a job: 'satisfied' (completed, or ended in a state the job's ignore_*
-- options accept), 'failed' (cancelled or discarded otherwise) or 'pending'. A missing dep is
-- pending, unless `missing_fails` (repair): then it fails the job as 'deleted' or, with
-- ignore_deleted, is satisfied.
CREATE FUNCTION @extschema@.oban_dep_verdicts(workflow_id text, meta jsonb, missing_fails boolean)
RETURNS TABLE (dep_workflow_id text, dep_name text, outcome text, verdict text)
LANGUAGE c STABLE
AS 'MODULE_PATHNAME', 'oban_dep_verdicts';

-- Every inserted row, before it is stored (src/pg/insert_trigger.cpp): a unique workflow's job
-- claims its name (or is left out), a workflow job with deps is suspended, cancelled or made
-- available, and a row that ends up available records its queue for the insert notification. One
-- trigger and no WHEN clause: Postgres compiles a trigger's WHEN clause anew for every statement,
-- which cost plain jobs more than these checks do.
CREATE FUNCTION @extschema@.oban_jobs_before_insert() RETURNS trigger
LANGUAGE c AS 'MODULE_PATHNAME', 'oban_jobs_before_insert';

CREATE TRIGGER oban_jobs_before_insert
    BEFORE INSERT ON @extschema@.oban_jobs
    FOR EACH ROW
    EXECUTE FUNCTION @extschema@.oban_jobs_before_insert();

-- Workflow triggers on oban_jobs (src/pg/workflows.cpp, src/pg/aggregation.cpp).
CREATE FUNCTION @extschema@.oban_jobs_workflow_track() RETURNS trigger
LANGUAGE c AS 'MODULE_PATHNAME', 'oban_jobs_workflow_track';
CREATE FUNCTION @extschema@.oban_jobs_workflow_journal() RETURNS trigger
LANGUAGE c AS 'MODULE_PATHNAME', 'oban_jobs_workflow_journal';
CREATE FUNCTION @extschema@.oban_jobs_workflow_truncate() RETURNS trigger
LANGUAGE c AS 'MODULE_PATHNAME', 'oban_jobs_workflow_truncate';

CREATE TRIGGER oban_jobs_workflow_insert
    AFTER INSERT ON @extschema@.oban_jobs
    FOR EACH ROW WHEN (NEW.meta ? 'workflow_id')
    EXECUTE FUNCTION @extschema@.oban_jobs_workflow_track();

-- A job's state changed (src/pg/update_trigger.cpp): a job that became available has its queue
-- notified and its key published to the queue's fetch floor; a workflow job's counts move. One
-- trigger whose WHEN clause is one function call: Postgres compiles WHEN clauses anew for every
-- statement, and plain jobs' fetches and acks change the state of rows for which neither applies.
CREATE FUNCTION @extschema@.oban_jobs_state_change_matters(
    old_state @extschema@.oban_job_state, new_state @extschema@.oban_job_state, meta jsonb)
RETURNS boolean
LANGUAGE c STABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'oban_jobs_state_change_matters';
CREATE FUNCTION @extschema@.oban_jobs_state_changed() RETURNS trigger
LANGUAGE c AS 'MODULE_PATHNAME', 'oban_jobs_state_changed';

CREATE TRIGGER oban_jobs_state_changed
    AFTER UPDATE OF state ON @extschema@.oban_jobs
    FOR EACH ROW WHEN (@extschema@.oban_jobs_state_change_matters(OLD.state, NEW.state, NEW.meta))
    EXECUTE FUNCTION @extschema@.oban_jobs_state_changed();

-- A job's workflow_id, and in a workflow its step name, are fixed at insert (src/pg/update_trigger.cpp):
-- an update changing them is refused (0A000) rather than leaving the job counted in the wrong
-- workflow. AFTER UPDATE OF meta behind a one-call WHEN clause, as oban_jobs_state_changed.
CREATE FUNCTION @extschema@.oban_jobs_workflow_identity_changed(old_meta jsonb, new_meta jsonb)
RETURNS boolean
LANGUAGE c IMMUTABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'oban_jobs_workflow_identity_changed';
CREATE FUNCTION @extschema@.oban_jobs_refuse_workflow_change() RETURNS trigger
LANGUAGE c AS 'MODULE_PATHNAME', 'oban_jobs_refuse_workflow_change';

CREATE TRIGGER oban_jobs_workflow_fixed
    AFTER UPDATE OF meta ON @extschema@.oban_jobs
    FOR EACH ROW WHEN (@extschema@.oban_jobs_workflow_identity_changed(OLD.meta, NEW.meta))
    EXECUTE FUNCTION @extschema@.oban_jobs_refuse_workflow_change();

CREATE TRIGGER oban_jobs_workflow_delete
    AFTER DELETE ON @extschema@.oban_jobs
    FOR EACH ROW WHEN (OLD.meta ? 'workflow_id')
    EXECUTE FUNCTION @extschema@.oban_jobs_workflow_track();

CREATE TRIGGER oban_jobs_workflow_journal
    AFTER INSERT OR UPDATE OR DELETE ON @extschema@.oban_jobs
    FOR EACH STATEMENT
    EXECUTE FUNCTION @extschema@.oban_jobs_workflow_journal();

CREATE TRIGGER oban_jobs_workflow_truncate
    AFTER TRUNCATE ON @extschema@.oban_jobs
    FOR EACH STATEMENT
    EXECUTE FUNCTION @extschema@.oban_jobs_workflow_truncate();

-- Folds the journal and releases or cancels dependents; the worker calls it after commits that
-- finished steps. Returns how many journal rows were folded.
CREATE FUNCTION @extschema@.oban_flush_workflows("limit" integer DEFAULT 5000)
RETURNS bigint
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'oban_flush_workflows';

CREATE FUNCTION @extschema@.oban_repair_workflows(max_age interval DEFAULT '60 seconds',
                                                  "limit" integer DEFAULT 1000)
RETURNS integer
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'oban_repair_workflows';

-- Every unfinished job of the workflow and of its sub-workflows → cancelled.
CREATE FUNCTION @extschema@.oban_cancel_workflow(workflow_id text)
RETURNS integer
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
    WITH RECURSIVE tree AS (
        SELECT workflow_id AS id
        UNION
        SELECT w.id FROM @extschema@.oban_workflow_rows AS w JOIN tree ON w.parent_id = tree.id
    ), cancelled AS (
        UPDATE @extschema@.oban_jobs AS j
        SET state = 'cancelled', cancelled_at = timezone('UTC', now())
        FROM tree JOIN @extschema@.oban_workflow_steps AS s ON s.workflow_id = tree.id
        WHERE j.id = s.job_id
          AND j.state IN ('available', 'scheduled', 'suspended', 'executing', 'retryable')
        RETURNING j.id
    )
    SELECT count(*)::integer FROM cancelled
$$;

CREATE FUNCTION @extschema@.oban_insert_workflow(workflow jsonb)
RETURNS TABLE (id bigint, workflow_id text, name text, state @extschema@.oban_job_state, conflicted boolean)
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'oban_insert_workflow';

CREATE FUNCTION @extschema@.oban_append_workflow(workflow_id text, jobs jsonb, check_deps boolean DEFAULT true)
RETURNS TABLE (id bigint, workflow_id text, name text, state @extschema@.oban_job_state, conflicted boolean)
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'oban_append_workflow';

-- The workflow (and its sub-workflows, as clusters/subgraphs) as Graphviz DOT or Mermaid; each
-- node is labelled with its step name and state.
CREATE FUNCTION @extschema@.oban_workflow_graph(workflow_id text, format text DEFAULT 'dot')
RETURNS text
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    graph text;
BEGIN
    IF format IS NULL OR format NOT IN ('dot', 'mermaid') THEN
        RAISE EXCEPTION 'unknown graph format "%"', format
            USING ERRCODE = 'invalid_parameter_value', HINT = 'Use ''dot'' or ''mermaid''.';
    END IF;
    IF NOT EXISTS (SELECT FROM @extschema@.oban_workflow_rows AS w WHERE w.id = workflow_id) THEN
        RETURN NULL;
    END IF;
    WITH RECURSIVE tree AS (
        SELECT w.id, w.sub_name, 0 AS depth FROM @extschema@.oban_workflow_rows AS w WHERE w.id = workflow_id
        UNION ALL
        SELECT w.id, w.sub_name, tree.depth + 1
        FROM @extschema@.oban_workflow_rows AS w JOIN tree ON w.parent_id = tree.id
        WHERE tree.depth < 16
    ), nodes AS (
        SELECT j.id, s.workflow_id AS wf, s.name, j.state::text AS state, j.meta->'deps' AS deps
        FROM (SELECT DISTINCT tree.id FROM tree) AS tree
        JOIN @extschema@.oban_workflow_steps AS s ON s.workflow_id = tree.id
        JOIN @extschema@.oban_jobs AS j ON j.id = s.job_id
    ), edges AS (
        SELECT DISTINCT source.id AS source_id, n.id AS target_id
        FROM nodes AS n
        CROSS JOIN LATERAL jsonb_array_elements(CASE jsonb_typeof(n.deps) WHEN 'array' THEN n.deps ELSE '[]' END) AS dep
        JOIN nodes AS source
          ON (jsonb_typeof(dep) = 'string' AND source.wf = n.wf AND source.name = dep#>>'{}')
          OR (jsonb_typeof(dep) = 'array' AND source.wf = dep->>0 AND (dep->>1 = '*' OR source.name = dep->>1))
    )
    SELECT CASE format
        WHEN 'dot' THEN
            'digraph "' || replace(replace(workflow_id, '\', '\\'), '"', '\"') || '" {' || E'\n' ||
            coalesce((SELECT string_agg(format('  j%s [label="%s (%s)"];', n.id,
                                               replace(replace(coalesce(n.name, '?'), '\', '\\'), '"', '\"'), n.state), E'\n' ORDER BY n.id)
                      FROM nodes AS n), '') || E'\n' ||
            coalesce((SELECT string_agg(format('  j%s -> j%s;', e.source_id, e.target_id), E'\n'
                                        ORDER BY e.source_id, e.target_id) FROM edges AS e), '') || E'\n}'
        ELSE
            'flowchart TD' || E'\n' ||
            coalesce((SELECT string_agg(format('  j%s["%s (%s)"]', n.id,
                                               replace(coalesce(n.name, '?'), '"', '#quot;'), n.state), E'\n' ORDER BY n.id)
                      FROM nodes AS n), '') || E'\n' ||
            coalesce((SELECT string_agg(format('  j%s --> j%s', e.source_id, e.target_id), E'\n'
                                        ORDER BY e.source_id, e.target_id) FROM edges AS e), '')
    END INTO graph;
    RETURN graph;
END;
$$;

-- SPEC §4 status object of a workflow and, under "subs", of each sub-workflow by name, read from
-- oban_workflows alone (src/pg/aggregation.cpp). NULL for an unknown id.
CREATE FUNCTION @extschema@.oban_workflow_status(workflow_id text)
RETURNS jsonb
LANGUAGE c STABLE
AS 'MODULE_PATHNAME', 'oban_workflow_status';

-------------------------------------------------------------------------------------------------------
-- Durable signals (SPEC §6; src/pg/signals.cpp). oban_signals is the mailbox: one row per delivered,
-- not yet consumed signal, consumed oldest first by oban_await_signal. A job parked by
-- oban_await_signal is `suspended` with meta wait_until (its deadline, or "infinity").
-------------------------------------------------------------------------------------------------------

CREATE TABLE @extschema@.oban_signals (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job_id bigint NOT NULL,
    payload jsonb NOT NULL,
    inserted_at timestamp WITHOUT TIME ZONE NOT NULL DEFAULT timezone('UTC', now())
);
CREATE INDEX oban_signals_job_index ON @extschema@.oban_signals (job_id, id);

SELECT pg_catalog.pg_extension_config_dump('@extschema@.oban_signals', '');
SELECT pg_catalog.pg_extension_config_dump(
    pg_catalog.pg_get_serial_sequence('@extschema@.oban_signals', 'id')::pg_catalog.regclass, '');

-- Parked jobs by deadline, for staging. meta.wait_until is the JSON text of a UTC timestamp, which
-- sorts as the timestamp does under COLLATE "C" ("infinity" sorts after every date).
DO $parked_index$
BEGIN
    IF pg_catalog.to_regclass('@extschema@.oban_jobs_parked_index') IS NULL THEN
        CREATE INDEX oban_jobs_parked_index
            ON @extschema@.oban_jobs (((meta->>'wait_until') COLLATE "C"))
            WHERE state = 'suspended' AND meta ? 'wait_until';
    END IF;
END
$parked_index$;

-- A job's signals go with it.
CREATE FUNCTION @extschema@.oban_jobs_drop_signals()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        DELETE FROM @extschema@.oban_signals;
    ELSE
        DELETE FROM @extschema@.oban_signals AS s USING gone WHERE s.job_id = gone.id;
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER oban_jobs_signals_delete
    AFTER DELETE ON @extschema@.oban_jobs
    REFERENCING OLD TABLE AS gone
    FOR EACH STATEMENT
    EXECUTE FUNCTION @extschema@.oban_jobs_drop_signals();

CREATE TRIGGER oban_jobs_signals_truncate
    AFTER TRUNCATE ON @extschema@.oban_jobs
    FOR EACH STATEMENT
    EXECUTE FUNCTION @extschema@.oban_jobs_drop_signals();

CREATE FUNCTION @extschema@.oban_signal(job_id bigint, payload jsonb)
RETURNS boolean
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'oban_signal';

CREATE FUNCTION @extschema@.oban_signal(job_ids bigint[], payload jsonb)
RETURNS integer
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'oban_signal_many';

CREATE FUNCTION @extschema@.oban_workflow_signal(workflow_id text, name text, payload jsonb)
RETURNS integer
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'oban_workflow_signal';

CREATE FUNCTION @extschema@.oban_await_signal(
    job_id bigint,
    wait_for interval DEFAULT NULL,
    wait_timeout interval DEFAULT '5 seconds')
RETURNS TABLE (status text, payload jsonb)
LANGUAGE c VOLATILE ROWS 1
AS 'MODULE_PATHNAME', 'oban_await_signal';

-------------------------------------------------------------------------------------------------------
-- Descriptions (0.6.1): what psql's \df+, \dt+ and \dv+ show, one line each; README has the details.
-------------------------------------------------------------------------------------------------------
COMMENT ON TABLE @extschema@.oban_workflow_rows IS 'One row per workflow: identity, options and counts folded from the journal';
COMMENT ON TABLE @extschema@.oban_workflow_journal IS 'Append-only workflow count deltas and finished steps, folded by oban_flush_workflows';
COMMENT ON TABLE @extschema@.oban_workflow_waits IS 'Suspended workflow jobs waiting on two deps or more, and how many remain (one waiting on one dep has only its edge)';
COMMENT ON TABLE @extschema@.oban_workflow_edges IS 'Dep (workflow, step or "*") to waiting job';
COMMENT ON TABLE @extschema@.oban_workflow_names IS 'Unique workflow names and the workflow that holds each';
COMMENT ON TABLE @extschema@.oban_signals IS 'Signal mailbox: payloads stored for jobs until they are received';
COMMENT ON VIEW @extschema@.oban_workflows IS 'Workflows with exact per-state counts and derived state (Oban Web shape)';
COMMENT ON FUNCTION @extschema@.oban_insert_job(text, jsonb, text, integer, integer, timestamp without time zone, jsonb, text[])
    IS 'Insert one job; returns the row';
COMMENT ON FUNCTION @extschema@.oban_insert_jobs(jsonb) IS 'Insert a JSON array of jobs in one statement; returns the rows';
COMMENT ON FUNCTION @extschema@.oban_fetch_jobs(text, integer, text, uuid)
    IS 'Claim up to demand available jobs of a queue (priority, scheduled_at, id order; SKIP LOCKED)';
COMMENT ON FUNCTION @extschema@.oban_ack_fetch_jobs(jsonb, text, integer, text, uuid)
    IS 'Ack finished jobs and claim the next ones in one call';
COMMENT ON FUNCTION @extschema@.oban_complete_job(bigint, jsonb) IS 'Mark an executing job completed, optionally recording a result';
COMMENT ON FUNCTION @extschema@.oban_error_job(bigint, text, interval)
    IS 'Record an error: retryable with backoff, or discarded once attempts are spent';
COMMENT ON FUNCTION @extschema@.oban_cancel_job(bigint, text) IS 'Cancel an unfinished job';
COMMENT ON FUNCTION @extschema@.oban_discard_job(bigint, text) IS 'Discard an executing job';
COMMENT ON FUNCTION @extschema@.oban_snooze_job(bigint, interval) IS 'Reschedule an executing job, giving its attempt back';
COMMENT ON FUNCTION @extschema@.oban_retry_job(bigint) IS 'Make a finished or retryable job available again';
COMMENT ON FUNCTION @extschema@.oban_ack_jobs(jsonb) IS 'Apply a JSON array of acks, each entry on its own; returns how many jobs changed';
COMMENT ON FUNCTION @extschema@.oban_backoff(integer, integer) IS 'Oban''s jittery exponential retry backoff';
COMMENT ON FUNCTION @extschema@.oban_stage_jobs(integer) IS 'Make due scheduled and retryable jobs (and parked jobs past their deadline) available';
COMMENT ON FUNCTION @extschema@.oban_prune_jobs(interval, integer) IS 'Delete old finished jobs (never those of unfinished workflows)';
COMMENT ON FUNCTION @extschema@.oban_rescue_jobs(interval) IS 'Return jobs left executing by dead producers';
COMMENT ON FUNCTION @extschema@.oban_insert_workflow(jsonb) IS 'Insert a workflow spec atomically (deps, sub-workflows, unique names)';
COMMENT ON FUNCTION @extschema@.oban_append_workflow(text, jsonb, boolean) IS 'Add jobs to an existing workflow';
COMMENT ON FUNCTION @extschema@.oban_cancel_workflow(text) IS 'Cancel every unfinished job of a workflow and its sub-workflows';
COMMENT ON FUNCTION @extschema@.oban_workflow_status(text) IS 'Status object of a workflow and its sub-workflows, from the aggregate rows';
COMMENT ON FUNCTION @extschema@.oban_workflow_graph(text, text) IS 'A workflow as Graphviz DOT or Mermaid';
COMMENT ON FUNCTION @extschema@.oban_flush_workflows(integer) IS 'Fold the workflow journal and release ready dependents';
COMMENT ON FUNCTION @extschema@.oban_repair_workflows(interval, integer) IS 'Release or cancel suspended jobs whose deps are all finished, deleted or missing';
COMMENT ON FUNCTION @extschema@.oban_signal(bigint, jsonb) IS 'Store a signal for a job; true when it took it';
COMMENT ON FUNCTION @extschema@.oban_signal(bigint[], jsonb) IS 'Store a signal for each job of an array; returns how many took it';
COMMENT ON FUNCTION @extschema@.oban_workflow_signal(text, text, jsonb) IS 'Signal the unfinished jobs of a workflow step by name';
COMMENT ON FUNCTION @extschema@.oban_await_signal(bigint, interval, interval)
    IS 'Receive the oldest signal of an executing job, waiting in place, then parking it';

-------------------------------------------------------------------------------------------------------
-- Privileges (README "Security"). Nothing runs as its owner (no SECURITY DEFINER): every function
-- reads and writes the tables with its caller's privileges. Tables and the view grant nothing to
-- PUBLIC; the functions, which PUBLIC may execute by default, are revoked here too, so a role with
-- no grant can do nothing at all, and an administrator grants each role the functions of its job.
-- Kept last, so it covers every function of the extension (and touches no one else's).
-------------------------------------------------------------------------------------------------------

DO $revoke$
DECLARE
    fn pg_catalog.regprocedure;
BEGIN
    FOR fn IN
        SELECT d.objid::pg_catalog.regprocedure
        FROM pg_catalog.pg_depend AS d
        JOIN pg_catalog.pg_extension AS e ON e.oid = d.refobjid
        WHERE d.classid = 'pg_catalog.pg_proc'::pg_catalog.regclass
          AND d.refclassid = 'pg_catalog.pg_extension'::pg_catalog.regclass
          AND d.deptype = 'e' AND e.extname = 'oban_pro'
    LOOP
        EXECUTE pg_catalog.format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', fn);
    END LOOP;
END
$revoke$;

-- The functions PUBLIC may execute: the WHEN clauses of the oban_jobs_state_changed and
-- oban_jobs_workflow_fixed triggers. Postgres checks a WHEN clause's functions against the role
-- whose statement fires the trigger, so every role that changes a job's state or meta (a plain
-- UPDATE with no grant but the table's) calls them. They read and write nothing: a boolean of their
-- arguments.
GRANT EXECUTE ON FUNCTION @extschema@.oban_jobs_state_change_matters(
    @extschema@.oban_job_state, @extschema@.oban_job_state, jsonb) TO PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@.oban_jobs_workflow_identity_changed(jsonb, jsonb) TO PUBLIC;
