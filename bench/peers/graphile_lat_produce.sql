SELECT clock_timestamp() AS t \gset
SELECT count(*) FROM graphile_worker.add_jobs(ARRAY[ROW('bench', json_build_object('t', :t::text), NULL, NULL, NULL, NULL, NULL, NULL)::graphile_worker.job_spec]);
