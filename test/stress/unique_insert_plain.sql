-- The same workflow as one plain multi-row INSERT carrying workflow_name / workflow_unique meta.
INSERT INTO oban_jobs (worker, queue, meta)
SELECT 'W', 'stress', jsonb_build_object('workflow_id', w.id, 'name', s.name, 'deps', s.deps,
                                         'workflow_name', 'nightly', 'workflow_unique', true)
FROM (SELECT gen_random_uuid()::text AS id) AS w,
     (VALUES ('a', '[]'::jsonb), ('b', '["a"]'), ('c', '["b"]')) AS s(name, deps);
