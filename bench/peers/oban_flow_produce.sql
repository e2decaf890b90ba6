-- oban_pro: one 4-step diamond workflow (a -> b, c -> d) per transaction.
SELECT count(*) FROM oban_insert_workflow('{"jobs": [{"name": "a", "worker": "Bench.Flow"}, {"name": "b", "worker": "Bench.Flow", "deps": ["a"]}, {"name": "c", "worker": "Bench.Flow", "deps": ["a"]}, {"name": "d", "worker": "Bench.Flow", "deps": ["b", "c"]}]}'::jsonb);
