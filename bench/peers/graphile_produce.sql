-- graphile-worker producer: 10 jobs in one call of its SQL API, graphile_worker.add_jobs(job_spec[]).
SELECT count(*) FROM graphile_worker.add_jobs(ARRAY(SELECT ROW('bench', json_build_object('n', g), NULL, NULL, NULL, NULL, NULL, NULL)::graphile_worker.job_spec FROM generate_series(1, 10) g));
