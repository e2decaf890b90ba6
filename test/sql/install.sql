-- Installing: the oban-py 0.6 layout column for column, in the chosen schema; DROP removes it all.
SELECT c.relname, c.relpersistence, c.reloptions
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'public' AND c.relkind = 'r' AND c.relname LIKE 'oban%' ORDER BY 1;

SELECT attname, format_type(atttypid, atttypmod) AS type, attnotnull AS not_null,
       pg_get_expr(d.adbin, d.adrelid) AS default_value, attidentity AS identity
FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE attrelid = 'oban_jobs'::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum;

SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint
WHERE conrelid = 'oban_jobs'::regclass ORDER BY conname;

SELECT indexrelid::regclass AS index, pg_get_indexdef(indexrelid) AS definition
FROM pg_index WHERE indrelid = 'oban_jobs'::regclass ORDER BY 1::text;

SELECT enum_range(NULL::oban_job_state);

SELECT proname, pg_get_function_identity_arguments(oid) AS arguments,
       pg_get_function_result(oid) AS result
FROM pg_proc WHERE pronamespace = 'public'::regnamespace AND proname LIKE 'oban%' ORDER BY 1, 2;

SELECT tgname, tgenabled FROM pg_trigger WHERE tgrelid = 'oban_jobs'::regclass AND NOT tgisinternal ORDER BY 1;

-- Jobs are dumped by pg_dump although the table belongs to the extension.
SELECT extconfig::regclass[] FROM pg_extension WHERE extname = 'oban_pro';

SELECT oban_count_estimate('available', 'default') >= 0 AS estimate_works;

-- DROP EXTENSION removes every object; installing again works.
DROP EXTENSION oban_pro;
SELECT count(*) AS leftovers FROM pg_class WHERE relname LIKE 'oban%';
SELECT count(*) AS leftover_functions FROM pg_proc WHERE proname LIKE 'oban%';
SELECT count(*) AS leftover_types FROM pg_type WHERE typname LIKE 'oban%';
CREATE EXTENSION oban_pro;
SELECT state FROM oban_insert_job('Reinstalled');

-- Installed into another schema, which plays the role of Oban's prefix. The functions find their
-- own tables whatever the caller's search_path, and an object a caller puts first on the path
-- cannot capture the extension's names.
DROP EXTENSION oban_pro;
CREATE SCHEMA oban;
CREATE EXTENSION oban_pro SCHEMA oban;
CREATE TABLE public.oban_jobs (id bigint, state text);  -- a decoy the extension must not touch
SET search_path = public;
SELECT state, queue FROM oban.oban_insert_job('Prefixed', queue => 'q1');
SELECT id, state, attempt FROM oban.oban_fetch_jobs('q1', 5);
SELECT oban.oban_complete_job(1);
SELECT count(*) AS decoy_rows FROM public.oban_jobs;
SELECT state FROM oban.oban_jobs;
SET search_path = oban, public;
SELECT count(*) AS plain_oban_sql FROM oban_jobs WHERE state = 'completed';
RESET search_path;
DROP TABLE public.oban_jobs;
DROP EXTENSION oban_pro;
DROP SCHEMA oban;
CREATE EXTENSION oban_pro;
