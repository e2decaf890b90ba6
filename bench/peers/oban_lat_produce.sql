-- latency producer: stamp the enqueue time, insert one job carrying it.
SELECT clock_timestamp() AS t \gset
SELECT count(*) FROM oban_insert_jobs(jsonb_build_array(jsonb_build_object('worker', 'Bench.Worker', 'args', jsonb_build_object('t', :t::text))));
