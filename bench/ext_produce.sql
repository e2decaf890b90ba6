-- Contender (c) producer: 10 jobs in one transaction through the extension's API.
SELECT count(*) FROM generate_series(1, 10) g, LATERAL oban_insert_job('Bench.Worker', jsonb_build_object('n', g)) j;
