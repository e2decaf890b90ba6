-- Security (README "Security"): nothing runs as its owner, no object a caller puts earlier on the
-- search_path is ever used by the extension's functions or triggers, a role with no grant can do
-- nothing, and the client and worker roles of the README can do their job and nothing else.
-- The extension goes into schema oban (Oban's prefix), as the README's grants assume.
SET client_min_messages = warning;
DROP EXTENSION oban_pro;
DROP ROLE IF EXISTS oban_nobody;
DROP ROLE IF EXISTS oban_client;
DROP ROLE IF EXISTS oban_worker;
CREATE SCHEMA oban;
CREATE EXTENSION oban_pro SCHEMA oban;
RESET client_min_messages;

-- 1. Privileges as installed: no SECURITY DEFINER; every SQL or PL/pgSQL function either pins its
-- search_path or has a body parsed at creation; neither PUBLIC nor anyone but the owner may execute
-- a function or read a table.
CREATE VIEW extension_members AS
SELECT d.classid, d.objid FROM pg_depend d JOIN pg_extension e ON e.oid = d.refobjid
WHERE d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e' AND e.extname = 'oban_pro';

SELECT count(*) > 30 AS many_functions,
       count(*) FILTER (WHERE p.prosecdef) AS security_definer,
       count(*) FILTER (WHERE l.lanname IN ('sql', 'plpgsql') AND p.proconfig IS NULL AND p.prosqlbody IS NULL)
           AS sql_without_pinned_path,
       count(*) FILTER (WHERE EXISTS (SELECT FROM aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a
                                      WHERE a.grantee <> p.proowner)) AS executable_by_others
FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang
WHERE p.oid IN (SELECT objid FROM extension_members WHERE classid = 'pg_proc'::regclass);

SELECT count(*) AS relations,
       count(*) FILTER (WHERE EXISTS (SELECT FROM aclexplode(coalesce(c.relacl, acldefault('r', c.relowner))) a
                                      WHERE a.grantee <> c.relowner)) AS granted_to_others
FROM pg_class c WHERE c.oid IN (SELECT objid FROM extension_members WHERE classid = 'pg_class'::regclass);

-- Installing takes a superuser (README "Security": the background worker runs as one).
SELECT version, superuser, trusted FROM pg_available_extension_versions WHERE name = 'oban_pro' ORDER BY version;

-- 2. search_path hijacking. Schema hostile shadows what the extension's SQL uses: functions and
-- aggregates of pg_catalog with the same or a closer signature, operators (= on text, bigint, integer
-- and the job state; ->, ->>, ?, @>, || on jsonb; < on timestamps), the extension's own helpers,
-- its tables and type; temporary tables shadow the tables too. Each shadow logs its use in
-- hostile.calls and otherwise behaves like the original, so a hijack would be silent.
CREATE SCHEMA hostile;
CREATE TABLE hostile.calls (what text);
CREATE FUNCTION hostile.log(what text) RETURNS void LANGUAGE sql SET search_path = pg_catalog
    AS $$ INSERT INTO hostile.calls VALUES (what) $$;

CREATE FUNCTION hostile.now() RETURNS timestamptz LANGUAGE plpgsql SET search_path = pg_catalog
    AS $$ BEGIN PERFORM hostile.log('now'); RETURN pg_catalog.now(); END $$;
CREATE FUNCTION hostile.clock_timestamp() RETURNS timestamptz LANGUAGE plpgsql SET search_path = pg_catalog
    AS $$ BEGIN PERFORM hostile.log('clock_timestamp'); RETURN pg_catalog.clock_timestamp(); END $$;
CREATE FUNCTION hostile.timezone(text, timestamptz) RETURNS timestamp LANGUAGE plpgsql SET search_path = pg_catalog
    AS $$ BEGIN PERFORM hostile.log('timezone'); RETURN pg_catalog.timezone($1, $2); END $$;
CREATE FUNCTION hostile.jsonb_build_object(text, text) RETURNS jsonb LANGUAGE plpgsql SET search_path = pg_catalog
    AS $$ BEGIN PERFORM hostile.log('jsonb_build_object'); RETURN pg_catalog.jsonb_build_object($1, $2); END $$;
CREATE FUNCTION hostile.jsonb_build_object(text, bigint) RETURNS jsonb LANGUAGE plpgsql SET search_path = pg_catalog
    AS $$ BEGIN PERFORM hostile.log('jsonb_build_object'); RETURN pg_catalog.jsonb_build_object($1, $2); END $$;
CREATE FUNCTION hostile.jsonb_build_object(text, jsonb) RETURNS jsonb LANGUAGE plpgsql SET search_path = pg_catalog
    AS $$ BEGIN PERFORM hostile.log('jsonb_build_object'); RETURN pg_catalog.jsonb_build_object($1, $2); END $$;
CREATE FUNCTION hostile.jsonb_typeof(jsonb) RETURNS text LANGUAGE plpgsql SET search_path = pg_catalog
    AS $$ BEGIN PERFORM hostile.log('jsonb_typeof'); RETURN pg_catalog.jsonb_typeof($1); END $$;
CREATE FUNCTION hostile.jsonb_array_length(jsonb) RETURNS integer LANGUAGE plpgsql SET search_path = pg_catalog
    AS $$ BEGIN PERFORM hostile.log('jsonb_array_length'); RETURN pg_catalog.jsonb_array_length($1); END $$;
CREATE FUNCTION hostile.jsonb_array_elements(jsonb) RETURNS SETOF jsonb LANGUAGE plpgsql SET search_path = pg_catalog
    AS $$ BEGIN PERFORM hostile.log('jsonb_array_elements'); RETURN QUERY SELECT pg_catalog.jsonb_array_elements($1); END $$;
CREATE FUNCTION hostile.jsonb_array_elements_text(jsonb) RETURNS SETOF text LANGUAGE plpgsql SET search_path = pg_catalog
    AS $$ BEGIN PERFORM hostile.log('jsonb_array_elements_text'); RETURN QUERY SELECT pg_catalog.jsonb_array_elements_text($1); END $$;
CREATE FUNCTION hostile.pg_notify(text, text) RETURNS void LANGUAGE plpgsql SET search_path = pg_catalog
    AS $$ BEGIN PERFORM hostile.log('pg_notify'); PERFORM pg_catalog.pg_notify($1, $2); END $$;
CREATE FUNCTION hostile.pg_advisory_xact_lock(bigint) RETURNS void LANGUAGE plpgsql SET search_path = pg_catalog
    AS $$ BEGIN PERFORM hostile.log('pg_advisory_xact_lock'); PERFORM pg_catalog.pg_advisory_xact_lock($1); END $$;
CREATE FUNCTION hostile.octet_length(text) RETURNS integer LANGUAGE plpgsql SET search_path = pg_catalog
    AS $$ BEGIN PERFORM hostile.log('octet_length'); RETURN pg_catalog.octet_length($1); END $$;
CREATE FUNCTION hostile.floor(double precision) RETURNS double precision LANGUAGE plpgsql SET search_path = pg_catalog
    AS $$ BEGIN PERFORM hostile.log('floor'); RETURN pg_catalog.floor($1); END $$;
CREATE FUNCTION hostile.unnest(bigint[]) RETURNS SETOF bigint LANGUAGE plpgsql SET search_path = pg_catalog
    AS $$ BEGIN PERFORM hostile.log('unnest'); RETURN QUERY SELECT pg_catalog.unnest($1); END $$;
CREATE FUNCTION hostile.unnest(text[]) RETURNS SETOF text LANGUAGE plpgsql SET search_path = pg_catalog
    AS $$ BEGIN PERFORM hostile.log('unnest'); RETURN QUERY SELECT pg_catalog.unnest($1); END $$;
CREATE FUNCTION hostile.oban_backoff(integer, integer) RETURNS interval LANGUAGE plpgsql SET search_path = pg_catalog
    AS $$ BEGIN PERFORM hostile.log('oban_backoff'); RETURN oban.oban_backoff($1, $2); END $$;
CREATE FUNCTION hostile.oban_workflow_tree_counts(text) RETURNS SETOF record LANGUAGE plpgsql
    SET search_path = pg_catalog AS $$ BEGIN PERFORM hostile.log('oban_workflow_tree_counts'); END $$;

CREATE FUNCTION hostile.sum_step(bigint, integer) RETURNS bigint LANGUAGE plpgsql SET search_path = pg_catalog
    AS $$ BEGIN PERFORM hostile.log('sum'); RETURN coalesce($1, 0) OPERATOR(pg_catalog.+) $2; END $$;
CREATE AGGREGATE hostile.sum(integer) (sfunc = hostile.sum_step, stype = bigint);
CREATE FUNCTION hostile.bool_or_step(boolean, boolean) RETURNS boolean LANGUAGE plpgsql SET search_path = pg_catalog
    AS $$ BEGIN PERFORM hostile.log('bool_or'); RETURN coalesce($1, false) OR $2; END $$;
CREATE AGGREGATE hostile.bool_or(boolean) (sfunc = hostile.bool_or_step, stype = boolean);
CREATE FUNCTION hostile.count_step(bigint) RETURNS bigint LANGUAGE plpgsql SET search_path = pg_catalog
    AS $$ BEGIN PERFORM hostile.log('count'); RETURN $1 OPERATOR(pg_catalog.+) 1; END $$;
CREATE AGGREGATE hostile.count(*) (sfunc = hostile.count_step, stype = bigint, initcond = '0');

CREATE FUNCTION hostile.text_eq(text, text) RETURNS boolean LANGUAGE plpgsql SET search_path = pg_catalog
    AS $$ BEGIN PERFORM hostile.log('= text'); RETURN $1 OPERATOR(pg_catalog.=) $2; END $$;
CREATE OPERATOR hostile.= (leftarg = text, rightarg = text, function = hostile.text_eq);
CREATE FUNCTION hostile.text_ne(text, text) RETURNS boolean LANGUAGE plpgsql SET search_path = pg_catalog
    AS $$ BEGIN PERFORM hostile.log('<> text'); RETURN $1 OPERATOR(pg_catalog.<>) $2; END $$;
CREATE OPERATOR hostile.<> (leftarg = text, rightarg = text, function = hostile.text_ne);
CREATE FUNCTION hostile.int8_eq(bigint, bigint) RETURNS boolean LANGUAGE plpgsql SET search_path = pg_catalog
    AS $$ BEGIN PERFORM hostile.log('= bigint'); RETURN $1 OPERATOR(pg_catalog.=) $2; END $$;
CREATE OPERATOR hostile.= (leftarg = bigint, rightarg = bigint, function = hostile.int8_eq);
CREATE FUNCTION hostile.int4_eq(integer, integer) RETURNS boolean LANGUAGE plpgsql SET search_path = pg_catalog
    AS $$ BEGIN PERFORM hostile.log('= integer'); RETURN $1 OPERATOR(pg_catalog.=) $2; END $$;
CREATE OPERATOR hostile.= (leftarg = integer, rightarg = integer, function = hostile.int4_eq);
CREATE FUNCTION hostile.state_eq(oban.oban_job_state, oban.oban_job_state) RETURNS boolean LANGUAGE plpgsql
    SET search_path = pg_catalog
    AS $$ BEGIN PERFORM hostile.log('= oban_job_state'); RETURN $1 OPERATOR(pg_catalog.=) $2; END $$;
CREATE OPERATOR hostile.= (leftarg = oban.oban_job_state, rightarg = oban.oban_job_state, function = hostile.state_eq);
CREATE FUNCTION hostile.jsonb_get(jsonb, text) RETURNS jsonb LANGUAGE plpgsql SET search_path = pg_catalog
    AS $$ BEGIN PERFORM hostile.log('->'); RETURN $1 OPERATOR(pg_catalog.->) $2; END $$;
CREATE OPERATOR hostile.-> (leftarg = jsonb, rightarg = text, function = hostile.jsonb_get);
CREATE FUNCTION hostile.jsonb_get_text(jsonb, text) RETURNS text LANGUAGE plpgsql SET search_path = pg_catalog
    AS $$ BEGIN PERFORM hostile.log('->>'); RETURN $1 OPERATOR(pg_catalog.->>) $2; END $$;
CREATE OPERATOR hostile.->> (leftarg = jsonb, rightarg = text, function = hostile.jsonb_get_text);
CREATE FUNCTION hostile.jsonb_has(jsonb, text) RETURNS boolean LANGUAGE plpgsql SET search_path = pg_catalog
    AS $$ BEGIN PERFORM hostile.log('?'); RETURN $1 OPERATOR(pg_catalog.?) $2; END $$;
CREATE OPERATOR hostile.? (leftarg = jsonb, rightarg = text, function = hostile.jsonb_has);
CREATE FUNCTION hostile.jsonb_contains(jsonb, jsonb) RETURNS boolean LANGUAGE plpgsql SET search_path = pg_catalog
    AS $$ BEGIN PERFORM hostile.log('@>'); RETURN $1 OPERATOR(pg_catalog.@>) $2; END $$;
CREATE OPERATOR hostile.@> (leftarg = jsonb, rightarg = jsonb, function = hostile.jsonb_contains);
CREATE FUNCTION hostile.jsonb_concat(jsonb, jsonb) RETURNS jsonb LANGUAGE plpgsql SET search_path = pg_catalog
    AS $$ BEGIN PERFORM hostile.log('||'); RETURN $1 OPERATOR(pg_catalog.||) $2; END $$;
CREATE OPERATOR hostile.|| (leftarg = jsonb, rightarg = jsonb, function = hostile.jsonb_concat);
CREATE FUNCTION hostile.ts_lt(timestamp, timestamp) RETURNS boolean LANGUAGE plpgsql SET search_path = pg_catalog
    AS $$ BEGIN PERFORM hostile.log('< timestamp'); RETURN $1 OPERATOR(pg_catalog.<) $2; END $$;
CREATE OPERATOR hostile.< (leftarg = timestamp, rightarg = timestamp, function = hostile.ts_lt);

-- Decoy tables and type, in hostile and as temporary tables (searched first for relations).
CREATE TYPE hostile.oban_job_state AS ENUM ('available');
CREATE TABLE hostile.oban_jobs (LIKE oban.oban_jobs);
CREATE TABLE hostile.oban_workflow_rows (LIKE oban.oban_workflow_rows);
CREATE TABLE hostile.oban_workflow_journal (LIKE oban.oban_workflow_journal);
CREATE TABLE hostile.oban_workflow_names (LIKE oban.oban_workflow_names);
CREATE TABLE hostile.oban_signals (LIKE oban.oban_signals);
CREATE TEMP TABLE oban_jobs (LIKE oban.oban_jobs);
CREATE TEMP TABLE oban_workflow_edges (LIKE oban.oban_workflow_edges);
CREATE TEMP TABLE oban_workflow_waits (LIKE oban.oban_workflow_waits);
CREATE TEMP TABLE oban_workflow_steps (LIKE oban.oban_workflow_steps);
CREATE FUNCTION hostile.decoy_touched() RETURNS trigger LANGUAGE plpgsql SET search_path = pg_catalog
    AS $$ BEGIN PERFORM hostile.log('decoy ' || TG_TABLE_SCHEMA || '.' || TG_TABLE_NAME); RETURN NULL; END $$;
DO $$
DECLARE t regclass;
BEGIN
    FOR t IN SELECT c.oid FROM pg_class c WHERE c.relkind = 'r' AND c.relname LIKE 'oban%'
             AND c.relnamespace IN ('hostile'::regnamespace, pg_my_temp_schema()) LOOP
        EXECUTE format('CREATE TRIGGER touched BEFORE INSERT OR UPDATE OR DELETE ON %s
                        FOR EACH STATEMENT EXECUTE FUNCTION hostile.decoy_touched()', t);
    END LOOP;
END $$;

-- The shadows work: the caller's own SQL under this path uses them.
SET search_path = hostile, pg_catalog, oban;
SELECT now() IS NOT NULL AS now, 'a'::text = 'a'::text AS eq, jsonb_build_object('k', 'v'::text) ->> 'k' AS k;
SELECT count(*) AS decoy_jobs FROM oban_jobs;
RESET search_path;
SELECT what, count(*) FROM hostile.calls GROUP BY what ORDER BY what;
TRUNCATE hostile.calls;

-- The extension's functions and triggers under that path, from a backend that has prepared nothing
-- yet: the lifecycle, workflows (deps, a sub-workflow, unique names, append, cancel), signals and
-- awaits, status, graph, the view, plain INSERT/UPDATE/DELETE/TRUNCATE, and maintenance.
SET search_path = hostile, pg_catalog, oban;
SELECT state FROM oban.oban_insert_job('A', '{"n": 1}', queue => 'sec');
SELECT pg_catalog.count(*) FROM oban.oban_insert_jobs('[{"worker": "B", "queue": "sec"}, {"worker": "C", "queue": "sec", "scheduled_at": "2000-01-01T00:00:00"}]');
SELECT worker, state, attempt FROM oban.oban_fetch_jobs('sec', 2);
SELECT oban.oban_complete_job(1, '{"ok": true}');
SELECT oban.oban_error_job(3, 'boom');
SELECT oban.oban_retry_job(3);
SELECT worker, state FROM oban.oban_fetch_jobs('sec', 5);
SELECT oban.oban_snooze_job(2, '1 second');
SELECT oban.oban_cancel_job(3, 'enough');
SELECT oban.oban_discard_job(2, 'never mind');
SELECT pg_catalog.count(*) FROM oban.oban_ack_jobs('[{"id": 1, "state": "completed"}, {"id": 424242, "state": "completed"}]');
SELECT pg_catalog.count(*) FROM oban.oban_ack_fetch_jobs('[]', 'sec', 5);
SELECT oban.oban_count_estimate('available', 'sec') >= 0 AS estimate;
SELECT oban.oban_backoff(3, 20) > '0' AS backoff;
SELECT pg_catalog.count(*) FROM oban.oban_insert_workflow('{"workflow_id": "sec-w", "name": "nightly", "unique": true, "jobs": [
    {"name": "a", "worker": "W", "queue": "secw"},
    {"name": "b", "worker": "W", "queue": "secw", "deps": ["a"]},
    {"name": "sub", "deps": ["a"], "workflow": {"workflow_id": "sec-sub", "jobs": [{"name": "s", "worker": "W", "queue": "secw"}]}}]}');
SELECT pg_catalog.count(*) FROM oban.oban_insert_workflow('{"workflow_id": "sec-w2", "name": "nightly", "unique": true, "jobs": [{"name": "a", "worker": "W"}]}');
SELECT pg_catalog.count(*) FROM oban.oban_append_workflow('sec-w', '[{"name": "c", "worker": "W", "queue": "secw", "deps": ["b"]}]');
SELECT worker, meta OPERATOR(pg_catalog.->>) 'name' AS name FROM oban.oban_fetch_jobs('secw', 1);
SELECT oban.oban_signal(id, '{"go": 1}') FROM oban.oban_jobs WHERE queue OPERATOR(pg_catalog.=) 'secw' AND meta OPERATOR(pg_catalog.->>) 'name' OPERATOR(pg_catalog.=) 'a';
SELECT status, payload FROM oban.oban_jobs j, oban.oban_await_signal(j.id, NULL, '0')
WHERE j.queue OPERATOR(pg_catalog.=) 'secw' AND j.meta OPERATOR(pg_catalog.->>) 'name' OPERATOR(pg_catalog.=) 'a';
SELECT oban.oban_workflow_signal('sec-w', 'b', '{"later": 1}');
SELECT oban.oban_signal(ARRAY[1, 2, 3]::bigint[], '{}');
SELECT oban.oban_complete_job(id) FROM oban.oban_jobs WHERE queue OPERATOR(pg_catalog.=) 'secw' AND meta OPERATOR(pg_catalog.->>) 'name' OPERATOR(pg_catalog.=) 'a';
SELECT oban.oban_flush_workflows();
SELECT oban.oban_workflow_status('sec-w') OPERATOR(pg_catalog.->>) 'state' AS status;
SELECT length(oban.oban_workflow_graph('sec-w', 'mermaid')) > 0 AS graph;
SELECT id, state FROM oban.oban_workflows ORDER BY id;
INSERT INTO oban.oban_jobs (worker, queue, meta) VALUES
    ('P', 'secp', '{"workflow_id": "sec-plain", "name": "p1"}'),
    ('P', 'secp', '{"workflow_id": "sec-plain", "name": "p2", "deps": ["p1"]}'),
    ('U', 'secp', '{"workflow_id": "sec-u", "name": "u", "workflow_unique": true, "workflow_name": "weekly"}');
UPDATE oban.oban_jobs SET state = 'completed', completed_at = pg_catalog.timezone('UTC', pg_catalog.now())
WHERE queue OPERATOR(pg_catalog.=) 'secp' AND meta OPERATOR(pg_catalog.->>) 'name' OPERATOR(pg_catalog.=) 'p1';
SELECT oban.oban_flush_workflows();
SELECT oban.oban_cancel_workflow('sec-plain');
UPDATE oban.oban_jobs SET state = 'scheduled', scheduled_at = '2000-01-01' WHERE queue OPERATOR(pg_catalog.=) 'sec' AND worker OPERATOR(pg_catalog.=) 'B';
SELECT oban.oban_stage_jobs();
SELECT oban.oban_rescue_jobs('0 seconds');
UPDATE oban.oban_jobs SET completed_at = '2000-01-01' WHERE completed_at IS NOT NULL;
DELETE FROM oban.oban_jobs WHERE queue OPERATOR(pg_catalog.=) 'secp' AND worker OPERATOR(pg_catalog.=) 'U';
SELECT oban.oban_prune_jobs('1 day') > 0 AS pruned;
SELECT oban.oban_repair_workflows('0 seconds');
TRUNCATE oban.oban_jobs;
RESET search_path;

-- Nothing of hostile ran, and the decoys are untouched.
SELECT what, count(*) FROM hostile.calls GROUP BY what ORDER BY what;
SELECT (SELECT count(*) FROM hostile.oban_jobs) + (SELECT count(*) FROM hostile.oban_workflow_rows)
     + (SELECT count(*) FROM hostile.oban_workflow_journal) + (SELECT count(*) FROM hostile.oban_workflow_names)
     + (SELECT count(*) FROM hostile.oban_signals) + (SELECT count(*) FROM pg_temp.oban_jobs)
     + (SELECT count(*) FROM pg_temp.oban_workflow_edges) + (SELECT count(*) FROM pg_temp.oban_workflow_waits)
     + (SELECT count(*) FROM pg_temp.oban_workflow_steps)
     AS decoy_rows;
DROP SCHEMA hostile CASCADE;
DROP TABLE pg_temp.oban_jobs, pg_temp.oban_workflow_edges, pg_temp.oban_workflow_waits, pg_temp.oban_workflow_steps;

-- 3. A role with no grant can do nothing: with USAGE on the schema (so names resolve), every
-- function and every table and the view refuse it with 42501.
CREATE ROLE oban_nobody;
GRANT USAGE ON SCHEMA oban TO oban_nobody;
SELECT (oban.oban_insert_job('Setup')).state AS setup;
CREATE FUNCTION pg_temp.refusals(kind text) RETURNS TABLE (tried integer, refused integer, allowed text[])
LANGUAGE plpgsql AS $$
DECLARE
    call text;
BEGIN
    tried := 0; refused := 0; allowed := '{}';
    FOR call IN
        -- (SELECT NULL::type) rather than a NULL constant, which the planner would fold away for
        -- a strict function before any privilege check
        SELECT format('SELECT %I.%I(%s)', n.nspname, p.proname,
                      (SELECT string_agg('(SELECT NULL::' || format_type(t, NULL) || ')', ', ' ORDER BY i)
                       FROM unnest(p.proargtypes) WITH ORDINALITY AS a(t, i)))
        FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
        WHERE kind = 'functions' AND n.nspname = 'oban'
        UNION ALL
        SELECT format(q, 'oban.' || quote_ident(c.relname),
                      (SELECT quote_ident(attname) FROM pg_attribute WHERE attrelid = c.oid AND attnum > 0
                       AND attidentity = '' AND attgenerated = '' AND NOT attisdropped ORDER BY attnum LIMIT 1))
        FROM pg_class c, unnest(ARRAY['SELECT * FROM %s', 'INSERT INTO %s DEFAULT VALUES',
                                      'UPDATE %s SET %2$s = %2$s', 'DELETE FROM %s', 'TRUNCATE %s']) AS q
        WHERE kind = 'relations' AND c.relnamespace = 'oban'::regnamespace AND c.relkind IN ('r', 'v')
          AND (c.relkind = 'r' OR q LIKE 'SELECT%')
        UNION ALL
        SELECT format('SELECT nextval(%L)', c.oid::regclass::text)
        FROM pg_class c WHERE kind = 'relations' AND c.relnamespace = 'oban'::regnamespace AND c.relkind = 'S'
    LOOP
        tried := tried + 1;
        BEGIN
            EXECUTE call;
            allowed := allowed || call;
        EXCEPTION
            WHEN insufficient_privilege THEN refused := refused + 1;
            WHEN OTHERS THEN allowed := allowed || (call || ' -> ' || SQLSTATE);
        END;
    END LOOP;
    RETURN NEXT;
END $$;
GRANT EXECUTE ON FUNCTION pg_temp.refusals(text) TO oban_nobody;
SET ROLE oban_nobody;
SELECT * FROM pg_temp.refusals('functions');
SELECT * FROM pg_temp.refusals('relations');
RESET ROLE;
SELECT count(*) AS jobs_still_there FROM oban.oban_jobs;

-- The one function refusals() found allowed: the WHEN clause of oban_jobs_state_changed, which
-- Postgres runs with the privileges of whoever changes a job's state. So a role with the table's
-- grants and no function grant (an oban-py client writing plain SQL) still moves jobs, the trigger
-- acting on each change (the job made available again is published and its queue notified).
GRANT SELECT, UPDATE ON oban.oban_jobs TO oban_nobody;
SET ROLE oban_nobody;
UPDATE oban.oban_jobs SET state = 'scheduled' WHERE worker = 'Setup' RETURNING state;
UPDATE oban.oban_jobs SET state = 'available' WHERE worker = 'Setup' RETURNING state;
RESET ROLE;
REVOKE SELECT, UPDATE ON oban.oban_jobs FROM oban_nobody;

-- 4. The README's client and worker roles, with exactly its grants (README "Security").
-- BEGIN README GRANTS
CREATE ROLE oban_client;
GRANT USAGE ON SCHEMA oban TO oban_client;
GRANT SELECT, INSERT, UPDATE ON oban.oban_jobs TO oban_client;
GRANT SELECT, INSERT ON oban.oban_workflow_rows, oban.oban_workflow_edges, oban.oban_workflow_steps
  TO oban_client;
GRANT SELECT, INSERT ON oban.oban_workflow_journal TO oban_client;  -- SELECT: oban_workflow_status
GRANT SELECT, INSERT, UPDATE ON oban.oban_workflow_waits, oban.oban_workflow_names TO oban_client;
GRANT SELECT, INSERT, UPDATE, DELETE ON oban.oban_signals, oban.oban_producers TO oban_client;
GRANT SELECT ON oban.oban_workflows TO oban_client;
GRANT USAGE ON ALL SEQUENCES IN SCHEMA oban TO oban_client;
GRANT EXECUTE ON FUNCTION
    oban.oban_insert_job, oban.oban_insert_jobs, oban.oban_fetch_jobs, oban.oban_ack_fetch_jobs,
    oban.oban_complete_job, oban.oban_error_job, oban.oban_cancel_job, oban.oban_discard_job,
    oban.oban_snooze_job, oban.oban_retry_job, oban.oban_ack_jobs, oban.oban_backoff,
    oban.oban_count_estimate, oban.oban_insert_workflow, oban.oban_append_workflow,
    oban.oban_cancel_workflow, oban.oban_workflow_status, oban.oban_workflow_graph,
    oban.oban_signal(bigint, jsonb), oban.oban_signal(bigint[], jsonb), oban.oban_workflow_signal,
    oban.oban_await_signal,
    -- helpers the functions, the triggers and the view call with the caller's privileges:
    oban.oban_workflow_state, oban.oban_workflow_tree_counts, oban.oban_workflow_finished,
    oban.oban_dep_outcomes, oban.oban_dep_verdicts,
    oban.oban_errors_append(jsonb, jsonb), oban.oban_errors_append(jsonb[], jsonb)
  TO oban_client;

CREATE ROLE oban_worker;
GRANT USAGE ON SCHEMA oban TO oban_worker;
GRANT SELECT, UPDATE, DELETE ON oban.oban_jobs TO oban_worker;
GRANT SELECT, INSERT, UPDATE, DELETE ON oban.oban_workflow_rows, oban.oban_workflow_journal,
    oban.oban_workflow_waits, oban.oban_workflow_edges, oban.oban_workflow_names, oban.oban_leaders
  TO oban_worker;
GRANT SELECT, DELETE ON oban.oban_workflow_steps TO oban_worker;
GRANT SELECT, UPDATE, DELETE ON oban.oban_signals TO oban_worker;
GRANT SELECT ON oban.oban_producers, oban.oban_workflows TO oban_worker;
GRANT USAGE ON ALL SEQUENCES IN SCHEMA oban TO oban_worker;
GRANT EXECUTE ON FUNCTION
    oban.oban_stage_jobs, oban.oban_prune_jobs, oban.oban_rescue_jobs, oban.oban_flush_workflows,
    oban.oban_repair_workflows,
    oban.oban_workflow_state, oban.oban_workflow_tree_counts, oban.oban_workflow_finished,
    oban.oban_dep_outcomes, oban.oban_dep_verdicts, oban.oban_backoff,
    oban.oban_errors_append(jsonb, jsonb), oban.oban_errors_append(jsonb[], jsonb)
  TO oban_worker;
-- END README GRANTS

-- The journal trigger appends its rows without an INSERT statement, and still checks the caller's
-- INSERT privilege on the journal: without it, adding a job to a workflow whose row is there already
-- is refused and leaves nothing. (A new workflow's first jobs are counted in the row their insert
-- makes, which asks for INSERT on the rows instead.)
SELECT pg_catalog.count(*) FROM oban.oban_insert_job('W', meta => '{"workflow_id": "no-journal-grant"}');
REVOKE INSERT ON oban.oban_workflow_journal FROM oban_client;
SET ROLE oban_client;
SELECT oban.oban_insert_job('W', meta => '{"workflow_id": "no-journal-grant"}');
RESET ROLE;
GRANT INSERT ON oban.oban_workflow_journal TO oban_client;
SELECT count(*) AS left_behind FROM oban.oban_jobs WHERE meta->>'workflow_id' = 'no-journal-grant';
-- A plain INSERT of a job with deps asks what it always asked of the caller, though the trigger
-- mostly reads the deps itself: without EXECUTE on oban_dep_verdicts, or INSERT on the edges, the
-- insert is refused and leaves nothing.
\set VERBOSITY terse
REVOKE EXECUTE ON FUNCTION oban.oban_dep_verdicts FROM oban_client;
SET ROLE oban_client;
INSERT INTO oban.oban_jobs (worker, meta) VALUES ('W', '{"workflow_id": "no-verdicts", "name": "b", "deps": ["a"]}');
RESET ROLE;
GRANT EXECUTE ON FUNCTION oban.oban_dep_verdicts TO oban_client;
REVOKE INSERT ON oban.oban_workflow_edges FROM oban_client;
SET ROLE oban_client;
INSERT INTO oban.oban_jobs (worker, meta) VALUES ('W', '{"workflow_id": "no-edges", "name": "b", "deps": ["a"]}');
RESET ROLE;
GRANT INSERT ON oban.oban_workflow_edges TO oban_client;
\set VERBOSITY default
SELECT count(*) AS left_behind FROM oban.oban_jobs WHERE meta->>'workflow_id' IN ('no-verdicts', 'no-edges');

TRUNCATE oban.oban_jobs;
SET ROLE oban_client;
SET search_path = oban;
-- The client's job: jobs through their lifecycle, workflows (unique, a sub-workflow, append, plain
-- INSERTs, cancel), signals and awaits, status.
SELECT worker, state FROM oban_insert_job('A', queue => 'c');
SELECT count(*) FROM oban_insert_jobs('[{"worker": "B", "queue": "c"}, {"worker": "C", "queue": "c"}]');
SELECT worker FROM oban_fetch_jobs('c', 3) ORDER BY worker;
SELECT oban_complete_job(id) FROM oban_jobs WHERE worker = 'A';
SELECT oban_error_job(id, 'boom') FROM oban_jobs WHERE worker = 'B';
SELECT oban_snooze_job(id, '1 minute') FROM oban_jobs WHERE worker = 'C';
SELECT oban_cancel_job(id) FROM oban_jobs WHERE worker = 'C';
SELECT oban_retry_job(id) FROM oban_jobs WHERE worker = 'C';
SELECT oban_discard_job(id) FROM oban_jobs WHERE worker = 'B';
SELECT count(*) FROM oban_ack_fetch_jobs('[]', 'c', 5);
SELECT oban_count_estimate('available', 'c') >= 0 AS estimate;
SELECT count(*) FROM oban_insert_workflow('{"workflow_id": "cw", "name": "daily", "unique": true, "jobs": [
    {"name": "a", "worker": "W", "queue": "cw"}, {"name": "b", "worker": "W", "queue": "cw", "deps": ["a"]},
    {"name": "sub", "deps": ["a"], "workflow": {"workflow_id": "cw-sub", "jobs": [{"name": "s", "worker": "W", "queue": "cw"}]}}]}');
SELECT count(*) FROM oban_append_workflow('cw', '[{"name": "c", "worker": "W", "queue": "cw", "deps": ["a"]}]');
SELECT count(*) FROM oban_fetch_jobs('cw', 1);
-- The client may not update oban_workflow_rows: the fetch's counts went to the journal, not into the
-- workflow's row in place (a role that may, as the superuser above, folds them there).
SELECT count(*) AS fetches_journalled FROM oban_workflow_journal
WHERE workflow_id IN ('cw', 'cw-sub') AND executing = 1 AND available = -1;
SELECT oban_signal(id, '{"go": true}') FROM oban_jobs WHERE state = 'executing';
SELECT status FROM oban_jobs j, oban_await_signal(j.id, NULL, '0') WHERE j.state = 'executing';
SELECT oban_workflow_signal('cw', 'b', '{}');
SELECT count(*) FROM oban_ack_jobs(jsonb_build_array(jsonb_build_object(
    'id', (SELECT id FROM oban_jobs WHERE state = 'executing'), 'state', 'completed')));
SELECT oban_workflow_status('cw')->>'state' AS status;
SELECT length(oban_workflow_graph('cw')) > 0 AS graph;
SELECT id, state FROM oban_workflows ORDER BY id;
INSERT INTO oban_jobs (worker, queue, meta) VALUES
    ('P', 'cp', '{"workflow_id": "cp", "name": "p1"}'), ('P', 'cp', '{"workflow_id": "cp", "name": "p2", "deps": ["p1"]}'),
    ('U', 'cp', '{"workflow_id": "cu", "name": "u", "workflow_unique": true, "workflow_name": "hourly"}');
UPDATE oban_jobs SET state = 'completed', completed_at = timezone('UTC', now()) WHERE worker = 'U';
-- the name's holder finished: a new unique workflow of that name takes it over
SELECT count(*) FROM oban_insert_workflow('{"workflow_id": "cu2", "name": "hourly", "unique": true, "jobs": [{"name": "u", "worker": "U"}]}');
SELECT oban_cancel_workflow('cp');
-- ... and nothing else: maintenance, deleting or truncating jobs, editing workflow bookkeeping.
\set VERBOSITY sqlstate
SELECT oban_stage_jobs();
SELECT oban_prune_jobs();
SELECT oban_rescue_jobs();
SELECT oban_flush_workflows();
SELECT oban_repair_workflows();
DELETE FROM oban_jobs;
TRUNCATE oban_jobs;
DELETE FROM oban_workflow_rows;
UPDATE oban_workflow_rows SET completed = 0;
DELETE FROM oban_workflow_journal;
DELETE FROM oban_leaders;
\set VERBOSITY default
RESET ROLE;

-- The worker's job: maintenance.
UPDATE oban.oban_jobs SET state = 'scheduled', scheduled_at = '2000-01-01' WHERE worker = 'A';
UPDATE oban.oban_jobs SET completed_at = '2000-01-01' WHERE completed_at IS NOT NULL;
SET ROLE oban_worker;
SELECT oban_flush_workflows() >= 0 AS flushed;
SELECT oban_stage_jobs() AS staged;
SELECT oban_rescue_jobs('0 seconds') >= 0 AS rescued;
SELECT oban_prune_jobs('1 day') > 0 AS pruned;
SELECT oban_repair_workflows('0 seconds') >= 0 AS repaired;
SELECT state, count(*) FROM oban_jobs GROUP BY state ORDER BY state;
-- ... and nothing else: inserting, fetching, acking or signalling jobs.
\set VERBOSITY sqlstate
SELECT oban_insert_job('X');
SELECT oban_fetch_jobs('c', 1);
SELECT oban_complete_job(1);
SELECT oban_ack_jobs('[]');
SELECT oban_insert_workflow('{"jobs": [{"name": "a", "worker": "W"}]}');
SELECT oban_signal(1::bigint, '{}');
SELECT oban_await_signal(1);
SELECT oban_cancel_workflow('cw');
INSERT INTO oban_jobs (worker) VALUES ('X');
INSERT INTO oban_signals (job_id, payload) VALUES (1, '{}');
\set VERBOSITY default
RESET ROLE;
RESET search_path;

-- A role that may complete jobs but not read the workflow tables completes a workflow job: whether
-- a job waits on it is then not looked up (its commit asks for a prompt flush, as before 0.6.1).
CREATE ROLE oban_acker;
GRANT USAGE ON SCHEMA oban TO oban_acker;
GRANT SELECT, UPDATE ON oban.oban_jobs TO oban_acker;
GRANT INSERT ON oban.oban_workflow_journal TO oban_acker;
GRANT USAGE ON ALL SEQUENCES IN SCHEMA oban TO oban_acker;
SET search_path = oban;
INSERT INTO oban_jobs (worker, meta) VALUES ('Acked', '{"workflow_id": "acked"}');
SET ROLE oban_acker;
UPDATE oban_jobs SET state = 'completed', completed_at = timezone('UTC', now()) WHERE worker = 'Acked';
RESET ROLE;
SELECT id, state, completed FROM oban_workflows WHERE id = 'acked';
RESET search_path;

-- Row security applies to the release in the ack as to an UPDATE statement: with a policy that
-- keeps oban_worker's updates off the jobs of queue "hidden", its ack of a dep releases the other
-- dependent and leaves that one suspended.
SET search_path = oban;
SELECT count(*) FROM oban_insert_workflow('{"workflow_id": "policed", "jobs": [
    {"name": "a", "worker": "W", "queue": "c"}, {"name": "hidden", "worker": "W", "queue": "hidden", "deps": ["a"]},
    {"name": "seen", "worker": "W", "queue": "c", "deps": ["a"]}]}');
ALTER TABLE oban_jobs ENABLE ROW LEVEL SECURITY;
CREATE POLICY worker_reads ON oban_jobs FOR SELECT TO oban_worker USING (true);
CREATE POLICY worker_updates ON oban_jobs FOR UPDATE TO oban_worker USING (queue <> 'hidden');
SET ROLE oban_worker;
UPDATE oban_jobs SET state = 'completed', completed_at = timezone('UTC', now())
WHERE meta->>'workflow_id' = 'policed' AND meta->>'name' = 'a';
RESET ROLE;
SELECT meta->>'name' AS name, state FROM oban_jobs WHERE meta->>'workflow_id' = 'policed' ORDER BY id;
DROP POLICY worker_reads ON oban_jobs;
DROP POLICY worker_updates ON oban_jobs;
ALTER TABLE oban_jobs DISABLE ROW LEVEL SECURITY;
RESET search_path;

-- A role that may lock jobs and call oban_signal but not store signals is refused, whatever it
-- targets (a job that exists, one that does not), and nothing is stored or made available.
CREATE ROLE oban_no_mailbox;
GRANT USAGE ON SCHEMA oban TO oban_no_mailbox;
GRANT SELECT, UPDATE ON oban.oban_jobs TO oban_no_mailbox;
GRANT SELECT ON oban.oban_signals TO oban_no_mailbox;
GRANT EXECUTE ON FUNCTION oban.oban_signal(bigint, jsonb), oban.oban_signal(bigint[], jsonb) TO oban_no_mailbox;
SET search_path = oban;
INSERT INTO oban_jobs (worker, state, meta) VALUES ('Parked', 'suspended', '{"wait_until": "infinity"}');
SET ROLE oban_no_mailbox;
\set VERBOSITY sqlstate
SELECT oban_signal((SELECT id FROM oban_jobs WHERE worker = 'Parked'), '{}');
SELECT oban_signal(-1::bigint, '{}');
SELECT oban_signal(ARRAY[-1, -2]::bigint[], '{}');
\set VERBOSITY default
RESET ROLE;
SELECT state, meta->>'wait_until' AS wait_until, (SELECT count(*) FROM oban_signals s WHERE s.job_id = j.id) AS stored
FROM oban_jobs j WHERE worker = 'Parked';
-- Nor may it take a stored signal, by the look or under the park's lock: the signal stays.
GRANT EXECUTE ON FUNCTION oban.oban_await_signal TO oban_no_mailbox;
INSERT INTO oban_jobs (worker, state, attempt, attempted_at) VALUES ('Awaiting', 'executing', 1, now());
SELECT oban_signal((SELECT id FROM oban_jobs WHERE worker = 'Awaiting'), '{"n": 1}');
SET ROLE oban_no_mailbox;
\set VERBOSITY sqlstate
SELECT * FROM oban_await_signal((SELECT id FROM oban_jobs WHERE worker = 'Awaiting'), NULL, '1 second');
SELECT * FROM oban_await_signal((SELECT id FROM oban_jobs WHERE worker = 'Awaiting'), NULL, '0');
\set VERBOSITY default
RESET ROLE;
SELECT state, (SELECT count(*) FROM oban_signals s WHERE s.job_id = j.id) AS stored
FROM oban_jobs j WHERE worker = 'Awaiting';
RESET search_path;

-- Back to the layout the other tests expect.
SET client_min_messages = warning;
DROP OWNED BY oban_nobody, oban_client, oban_worker, oban_acker, oban_no_mailbox;
DROP ROLE oban_nobody, oban_client, oban_worker, oban_acker, oban_no_mailbox;
DROP VIEW extension_members;
DROP EXTENSION oban_pro;
DROP SCHEMA oban;
CREATE EXTENSION oban_pro;
