-- PgQ consumer: next_batch / get_batch_events / finish_batch in one transaction, as PgQ consumers run.
BEGIN;
SELECT coalesce(pgq.next_batch('bench_' || :client_id, 'bench'), 0) AS batch \gset
\if :batch > 0
SELECT count(*) FROM pgq.get_batch_events(:batch);
SELECT pgq.finish_batch(:batch);
\endif
COMMIT;
