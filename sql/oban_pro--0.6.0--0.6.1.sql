-- oban_pro 0.6.0 → 0.6.1: ALTER EXTENSION oban_pro UPDATE TO '0.6.1'.
--
-- Brings a 0.6.0 install to exactly what CREATE EXTENSION oban_pro makes at 0.6.1 (test/scripts/
-- upgrade.sh compares the two). Install the 0.6.1 library first, then run the update at once: the
-- 0.6.1 library writes job errors through oban_errors_append, which this script adds.
-- Names are schema-qualified throughout (@extschema@), as in the install script.

-- A job's errors list is oban-py's jsonb array or Elixir Oban's jsonb[] (adopted tables, 0.6.1): every
-- error the extension records goes through this pair, and the column's type picks the overload.
CREATE FUNCTION @extschema@.oban_errors_append(errors jsonb, error jsonb)
RETURNS jsonb
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN COALESCE(errors, '[]'::jsonb) OPERATOR(pg_catalog.||) pg_catalog.jsonb_build_array(error);

CREATE FUNCTION @extschema@.oban_errors_append(errors jsonb[], error jsonb)
RETURNS jsonb[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN pg_catalog.array_append(errors, error);

-- Room on each page for the fold's updates of workflow rows to stay HOT (the fold no longer moves
-- updated_at of a workflow without waiting jobs). Applies to pages written from now on.
ALTER TABLE @extschema@.oban_workflow_rows SET (fillfactor = 70);

-- Rows a prune passed over while a transaction adding jobs held them, to be looked at again by the
-- next prune (src/pg/maintenance.cpp, lock_pruned_workflows). A constant default: no table rewrite.
ALTER TABLE @extschema@.oban_workflow_rows ADD COLUMN prune_retry boolean NOT NULL DEFAULT false;
CREATE INDEX oban_workflow_rows_prune_retry_index ON @extschema@.oban_workflow_rows (id)
    WHERE prune_retry;

-- A workflow's jobs by workflow id and step name move from oban_jobs_workflow_index to
-- oban_workflow_steps (why: the install script), filled from the jobs there are. The index goes when
-- it is the one 0.6.0 made (the two keys and the predicate, exactly); any other index of that name,
-- one an adopted table came with, is kept as it is.
CREATE TABLE @extschema@.oban_workflow_steps (
    workflow_id text NOT NULL,
    name text,
    job_id bigint NOT NULL
);
CREATE INDEX oban_workflow_steps_name_index
    ON @extschema@.oban_workflow_steps (workflow_id, name, job_id);
INSERT INTO @extschema@.oban_workflow_steps (workflow_id, name, job_id)
SELECT meta->>'workflow_id', meta->>'name', id FROM @extschema@.oban_jobs WHERE meta ? 'workflow_id';
SELECT pg_catalog.pg_extension_config_dump('@extschema@.oban_workflow_steps', '');

DO $workflow_index$
DECLARE
    made_by_0_6_0 boolean;
BEGIN
    SELECT i.indnkeyatts = 2
           AND pg_catalog.pg_get_indexdef(i.indexrelid, 1, false) = '((meta ->> ''workflow_id''::text))'
           AND pg_catalog.pg_get_indexdef(i.indexrelid, 2, false) = '((meta ->> ''name''::text))'
           AND pg_catalog.pg_get_expr(i.indpred, i.indrelid) = '(meta ? ''workflow_id''::text)'
    INTO made_by_0_6_0
    FROM pg_catalog.pg_index AS i
    WHERE i.indexrelid = pg_catalog.to_regclass('@extschema@.oban_jobs_workflow_index')
      AND i.indrelid = '@extschema@.oban_jobs'::pg_catalog.regclass;
    IF made_by_0_6_0 THEN
        DROP INDEX @extschema@.oban_jobs_workflow_index;
    END IF;
END
$workflow_index$;

-- oban_cancel_workflow finds the workflows' jobs through oban_workflow_steps.
CREATE OR REPLACE FUNCTION @extschema@.oban_cancel_workflow(workflow_id text)
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

-- The journal kept small (why: the install script): unchanged counts and no finished steps are NULL,
-- and the primary key, by workflow first, is its one index. Rows written by 0.6.0 (zeros, empty
-- arrays) read the same. The journal holds only the deltas not yet folded: rebuilding its key is quick.
ALTER TABLE @extschema@.oban_workflow_journal
    DROP CONSTRAINT oban_workflow_journal_pkey,
    ADD PRIMARY KEY (workflow_id, id),
    ALTER COLUMN suspended DROP NOT NULL, ALTER COLUMN suspended DROP DEFAULT,
    ALTER COLUMN available DROP NOT NULL, ALTER COLUMN available DROP DEFAULT,
    ALTER COLUMN scheduled DROP NOT NULL, ALTER COLUMN scheduled DROP DEFAULT,
    ALTER COLUMN executing DROP NOT NULL, ALTER COLUMN executing DROP DEFAULT,
    ALTER COLUMN retryable DROP NOT NULL, ALTER COLUMN retryable DROP DEFAULT,
    ALTER COLUMN completed DROP NOT NULL, ALTER COLUMN completed DROP DEFAULT,
    ALTER COLUMN cancelled DROP NOT NULL, ALTER COLUMN cancelled DROP DEFAULT,
    ALTER COLUMN discarded DROP NOT NULL, ALTER COLUMN discarded DROP DEFAULT,
    ALTER COLUMN finished_names DROP NOT NULL, ALTER COLUMN finished_names DROP DEFAULT,
    ALTER COLUMN finished_states DROP NOT NULL, ALTER COLUMN finished_states DROP DEFAULT;
DROP INDEX @extschema@.oban_workflow_journal_workflow_index;

-- Repair's clock (updated_at) is NULL while a workflow has no waiting job, and the index of repair
-- candidates is keyed on it alone (why: the install script). Each workflow without a waiting job
-- is updated once here.
ALTER TABLE @extschema@.oban_workflow_rows
    ALTER COLUMN updated_at DROP NOT NULL, ALTER COLUMN updated_at DROP DEFAULT;
UPDATE @extschema@.oban_workflow_rows SET updated_at = NULL WHERE suspended <= 0;
DROP INDEX @extschema@.oban_workflow_rows_suspended_index;
CREATE INDEX oban_workflow_rows_suspended_index ON @extschema@.oban_workflow_rows (updated_at)
    WHERE updated_at IS NOT NULL;

-- As for every function of the extension: no EXECUTE for PUBLIC (README "Security").
REVOKE ALL ON FUNCTION @extschema@.oban_errors_append(jsonb, jsonb) FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.oban_errors_append(jsonb[], jsonb) FROM PUBLIC;

-- oban_workflow_graph (0.6.1): each job once when parent ids loop back (plain INSERTs can make them),
-- and backslashes escaped in DOT ids and labels. CREATE OR REPLACE keeps its grants and description.
CREATE OR REPLACE FUNCTION @extschema@.oban_workflow_graph(workflow_id text, format text DEFAULT 'dot')
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

-- One BEFORE INSERT trigger without a WHEN clause does what three did (claim a unique workflow's
-- name, prepare a workflow job's deps, record an available job's queue for the insert notification):
-- Postgres compiles WHEN clauses anew for every statement.
DROP TRIGGER oban_jobs_workflow_claim ON @extschema@.oban_jobs;
DROP TRIGGER oban_jobs_workflow_prepare ON @extschema@.oban_jobs;
DROP TRIGGER oban_jobs_notify_insert ON @extschema@.oban_jobs;
DROP FUNCTION @extschema@.oban_jobs_workflow_claim();
DROP FUNCTION @extschema@.oban_jobs_workflow_prepare();

CREATE FUNCTION @extschema@.oban_jobs_before_insert() RETURNS trigger
LANGUAGE c AS 'MODULE_PATHNAME', 'oban_jobs_before_insert';
REVOKE ALL ON FUNCTION @extschema@.oban_jobs_before_insert() FROM PUBLIC;

CREATE TRIGGER oban_jobs_before_insert
    BEFORE INSERT ON @extschema@.oban_jobs
    FOR EACH ROW
    EXECUTE FUNCTION @extschema@.oban_jobs_before_insert();

-- oban_fetch_jobs starts at the queue's fetch floor: an available job that moves publishes its new
-- key (and its queue is notified), as a job that becomes available does.
CREATE FUNCTION @extschema@.oban_jobs_available_moved()
RETURNS trigger
LANGUAGE c
AS 'MODULE_PATHNAME', 'oban_jobs_available_moved';
REVOKE ALL ON FUNCTION @extschema@.oban_jobs_available_moved() FROM PUBLIC;

CREATE TRIGGER oban_jobs_available_moved
    AFTER UPDATE OF queue, priority, scheduled_at ON @extschema@.oban_jobs
    FOR EACH ROW WHEN (NEW.state = 'available' AND OLD.state = 'available'
                       AND (NEW.queue, NEW.priority, NEW.scheduled_at)
                           IS DISTINCT FROM (OLD.queue, OLD.priority, OLD.scheduled_at))
    EXECUTE FUNCTION @extschema@.oban_jobs_available_moved();

-- One AFTER UPDATE OF state trigger whose WHEN clause is one function call does what two did (a job
-- that became available is notified and published to its queue's fetch floor; a workflow job's
-- counts move): Postgres compiles WHEN clauses anew for every statement.
DROP TRIGGER oban_jobs_notify_update ON @extschema@.oban_jobs;
DROP TRIGGER oban_jobs_workflow_update ON @extschema@.oban_jobs;
DROP FUNCTION @extschema@.oban_jobs_notify_available();

CREATE FUNCTION @extschema@.oban_jobs_state_change_matters(
    old_state @extschema@.oban_job_state, new_state @extschema@.oban_job_state, meta jsonb)
RETURNS boolean
LANGUAGE c STABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'oban_jobs_state_change_matters';
CREATE FUNCTION @extschema@.oban_jobs_state_changed() RETURNS trigger
LANGUAGE c AS 'MODULE_PATHNAME', 'oban_jobs_state_changed';
REVOKE ALL ON FUNCTION @extschema@.oban_jobs_state_changed() FROM PUBLIC;
-- The WHEN clause runs with the privileges of whoever changes a job's state (see the install script),
-- so PUBLIC may execute it; revoked and granted as the install script does, so both leave one ACL.
REVOKE ALL ON FUNCTION @extschema@.oban_jobs_state_change_matters(
    @extschema@.oban_job_state, @extschema@.oban_job_state, jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@.oban_jobs_state_change_matters(
    @extschema@.oban_job_state, @extschema@.oban_job_state, jsonb) TO PUBLIC;

CREATE TRIGGER oban_jobs_state_changed
    AFTER UPDATE OF state ON @extschema@.oban_jobs
    FOR EACH ROW WHEN (@extschema@.oban_jobs_state_change_matters(OLD.state, NEW.state, NEW.meta))
    EXECUTE FUNCTION @extschema@.oban_jobs_state_changed();

-- oban_dep_outcomes and oban_dep_verdicts run kept statements in C (src/pg/workflows.cpp): as SQL
-- functions called from other statements, their bodies were planned again for every job inserted
-- with deps and every job a flush or repair settled.
CREATE OR REPLACE FUNCTION @extschema@.oban_dep_outcomes(workflow_id text, deps jsonb)
RETURNS TABLE (dep_workflow_id text, dep_name text, outcome text)
LANGUAGE c STABLE
AS 'MODULE_PATHNAME', 'oban_dep_outcomes';

CREATE OR REPLACE FUNCTION @extschema@.oban_dep_verdicts(workflow_id text, meta jsonb, missing_fails boolean)
RETURNS TABLE (dep_workflow_id text, dep_name text, outcome text, verdict text)
LANGUAGE c STABLE
AS 'MODULE_PATHNAME', 'oban_dep_verdicts';

-- The same for oban_workflow_tree_counts and oban_workflow_finished (src/pg/aggregation.cpp).
CREATE OR REPLACE FUNCTION @extschema@.oban_workflow_tree_counts(workflow_id text)
RETURNS TABLE (suspended integer, available integer, scheduled integer, executing integer,
               retryable integer, completed integer, cancelled integer, discarded integer,
               started_at timestamp, completed_at timestamp, workflows integer)
LANGUAGE c STABLE
AS 'MODULE_PATHNAME', 'oban_workflow_tree_counts';

CREATE OR REPLACE FUNCTION @extschema@.oban_workflow_finished(workflow_id text)
RETURNS boolean
LANGUAGE c STABLE
AS 'MODULE_PATHNAME', 'oban_workflow_finished';

-- A job's workflow_id, and in a workflow its step name, are fixed at insert: an update changing
-- them is refused (0A000) rather than leaving the job counted in the wrong workflow.
CREATE FUNCTION @extschema@.oban_jobs_workflow_identity_changed(old_meta jsonb, new_meta jsonb)
RETURNS boolean
LANGUAGE c IMMUTABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'oban_jobs_workflow_identity_changed';
CREATE FUNCTION @extschema@.oban_jobs_refuse_workflow_change() RETURNS trigger
LANGUAGE c AS 'MODULE_PATHNAME', 'oban_jobs_refuse_workflow_change';
REVOKE ALL ON FUNCTION @extschema@.oban_jobs_refuse_workflow_change() FROM PUBLIC;
-- The WHEN clause runs with the privileges of whoever updates a job's meta (see the install script).
REVOKE ALL ON FUNCTION @extschema@.oban_jobs_workflow_identity_changed(jsonb, jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@.oban_jobs_workflow_identity_changed(jsonb, jsonb) TO PUBLIC;

CREATE TRIGGER oban_jobs_workflow_fixed
    AFTER UPDATE OF meta ON @extschema@.oban_jobs
    FOR EACH ROW WHEN (@extschema@.oban_jobs_workflow_identity_changed(OLD.meta, NEW.meta))
    EXECUTE FUNCTION @extschema@.oban_jobs_refuse_workflow_change();
