-- Recomputes every workflow's counts from oban_jobs and compares them with oban_workflows, and
-- its jobs with its rows in oban_workflow_steps (one per job, none else). A workflow is a mismatch
-- when either differs. Prints a summary line; used by the tests and the crash test:
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
), steps_off AS (
    SELECT DISTINCT workflow_id AS id FROM (
        (SELECT meta->>'workflow_id' AS workflow_id, meta->>'name' AS name, id AS job_id
         FROM oban_jobs WHERE meta ? 'workflow_id'
         EXCEPT ALL SELECT workflow_id, name, job_id FROM oban_workflow_steps)
        UNION ALL
        (SELECT workflow_id, name, job_id FROM oban_workflow_steps
         EXCEPT ALL SELECT meta->>'workflow_id', meta->>'name', id FROM oban_jobs WHERE meta ? 'workflow_id')
    ) AS differences
), compared AS (
    SELECT coalesce(w.id, r.id, s.id) AS id,
           ROW(w.suspended, w.available, w.scheduled, w.executing, w.retryable, w.completed, w.cancelled, w.discarded)
               IS DISTINCT FROM
           ROW(coalesce(r.suspended, 0)::int, coalesce(r.available, 0)::int, coalesce(r.scheduled, 0)::int,
               coalesce(r.executing, 0)::int, coalesce(r.retryable, 0)::int, coalesce(r.completed, 0)::int,
               coalesce(r.cancelled, 0)::int, coalesce(r.discarded, 0)::int)
           OR s.id IS NOT NULL AS mismatch
    FROM oban_workflows AS w FULL JOIN recount AS r ON r.id = w.id
    FULL JOIN steps_off AS s ON s.id = coalesce(w.id, r.id)
)
SELECT count(*) AS workflows_checked, count(*) FILTER (WHERE mismatch) AS mismatches FROM compared;
