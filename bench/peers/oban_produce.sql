-- oban_pro producer: 10 jobs in one oban_insert_jobs call.
SELECT count(*) FROM oban_insert_jobs((SELECT jsonb_agg(jsonb_build_object('worker', 'Bench.Worker', 'args', jsonb_build_object('n', g))) FROM generate_series(1, 10) g));
