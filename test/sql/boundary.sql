-- The C++/Postgres boundary: an error on either side surfaces with its SQLSTATE, detail and hint,
-- C++ destructors run, and the session carries on.
CREATE FUNCTION boundary_selftest(kind text) RETURNS text
    AS 'oban_pro', 'oban_boundary_selftest' LANGUAGE c;

-- Shows what a call raised: SQLSTATE, message, detail and hint.
CREATE FUNCTION raised_by(kind text) RETURNS TABLE (code text, message text, detail text, hint text)
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM boundary_selftest(kind);
    RAISE EXCEPTION 'no error raised';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS code = RETURNED_SQLSTATE, message = MESSAGE_TEXT,
                            detail = PG_EXCEPTION_DETAIL, hint = PG_EXCEPTION_HINT;
    RETURN NEXT;
END $$;

\x on
-- A C++ exception carrying a SQLSTATE (oban::Error) becomes an ereport with it.
SELECT * FROM raised_by('cxx_error');
-- Any other C++ exception is an internal error (XX000).
SELECT * FROM raised_by('std_exception');
-- An allocation beyond what a memory context allows becomes std::bad_alloc, then 53200.
SELECT * FROM raised_by('bad_alloc');
-- A Postgres error raised inside PgCall crosses C++ frames as an exception and is re-raised with
-- its SQLSTATE, detail and hint intact.
SELECT * FROM raised_by('pg_error');
-- C++ code can catch a Postgres error and go on.
SELECT boundary_selftest('pg_error_handled');
\x off

-- Every error above unwound its C++ objects: none is still alive.
SELECT boundary_selftest('sentinels') AS live_cxx_objects;

-- The session is healthy: transactions, subtransactions and the extension still work.
BEGIN;
SAVEPOINT s;
SELECT boundary_selftest('pg_error');
ROLLBACK TO SAVEPOINT s;
SELECT boundary_selftest('pg_error_handled');
COMMIT;
SELECT count(*) AS jobs FROM oban_jobs;
SELECT boundary_selftest('unknown');
SELECT boundary_selftest(NULL);
DROP FUNCTION raised_by(text);
DROP FUNCTION boundary_selftest(text);
