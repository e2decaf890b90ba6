BEGIN;
SELECT coalesce(pgq.next_batch('bench_' || :client_id, 'bench'), 0) AS batch \gset
\if :batch > 0
SELECT coalesce(array_agg(extract(epoch FROM clock_timestamp() - (ev_data::json->>'t')::timestamptz) * 1000), '{}') AS lats, count(*) AS n FROM pgq.get_batch_events(:batch) \gset
SELECT pgq.finish_batch(:batch);
COMMIT;
INSERT INTO bench_lat SELECT unnest(:lats::float8[]);
\else
COMMIT;
\sleep 10 ms
\endif
