-- Run throughout: records any moment (one snapshot) at which two unique "nightly" workflows are
-- unfinished, or a persisted unique workflow does not have all three of its jobs.
INSERT INTO stress_violations (kind, detail)
SELECT 'two unfinished', string_agg(id, ' ') FROM oban_workflows
WHERE name = 'nightly' AND is_unique AND state IN ('pending', 'executing') HAVING count(*) > 1
UNION ALL
SELECT 'partial', workflow_id || ' has ' || jobs || ' jobs'
FROM (SELECT meta->>'workflow_id' AS workflow_id, count(*) AS jobs FROM oban_jobs
      WHERE meta->>'workflow_name' = 'nightly' GROUP BY 1) AS persisted
WHERE jobs <> 3;
INSERT INTO stress_checks DEFAULT VALUES;
