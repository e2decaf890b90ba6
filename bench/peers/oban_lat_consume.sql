-- latency consumer: fetch up to 10; started = fetch time; poll again 10 ms after an empty fetch.
SELECT coalesce(array_agg(id), '{}') AS ids, coalesce(array_agg(extract(epoch FROM clock_timestamp() - (args->>'t')::timestamptz) * 1000), '{}') AS lats, count(*) AS n FROM oban_fetch_jobs('default', 10, 'bench') \gset
\if :n > 0
SELECT oban_ack_jobs(coalesce(jsonb_agg(jsonb_build_object('id', id, 'state', 'completed')), '[]')) FROM unnest(:ids::bigint[]) id;
INSERT INTO bench_lat SELECT unnest(:lats::float8[]);
\else
\sleep 10 ms
\endif
