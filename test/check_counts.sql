-- Recomputes every workflow's counts from oban_jobs and compares them with oban_workflows.
-- Prints one row per mismatch, then a summary line; used by the tests and the crash test:
--   psql -X -f test/check_counts.sql
WITH recount AS (
    SELECT meta->>'workflow_id' AS id,
           count(*) FILTER (WHERE state = 'suspended') AS suspended,
           count(*) FILTER (WHERE state = 'available') AS available,
           count(*) FILTER (WHERE state = 'scheduled') AS scheduled,
           count(*) FILTER (WHERE state = 'executing') AS executing,
           count(*) FILTER (WHERE state = 'retryable') AS retryable,
           count(*) FILTER (WHERE state = 'completed') AS completed,
           count(*) FILTER (WHERE state = 'cancelled') AS cancelled,
           count(*) FILTER (WHERE state = 'discarded') AS discarded
    FROM oban_jobs WHERE meta ? 'workflow_id' GROUP BY 1
), compared AS (
    SELECT coalesce(w.id, r.id) AS id,
           ROW(w.suspended, w.available, w.scheduled, w.executing, w.retryable, w.completed, w.cancelled, w.discarded)
               IS DISTINCT FROM
           ROW(coalesce(r.suspended, 0)::int, coalesce(r.available, 0)::int, coalesce(r.scheduled, 0)::int,
               coalesce(r.executing, 0)::int, coalesce(r.retryable, 0)::int, coalesce(r.completed, 0)::int,
               coalesce(r.cancelled, 0)::int, coalesce(r.discarded, 0)::int) AS mismatch
    FROM oban_workflows AS w FULL JOIN recount AS r ON r.id = w.id
)
SELECT count(*) AS workflows_checked, count(*) FILTER (WHERE mismatch) AS mismatches FROM compared;
