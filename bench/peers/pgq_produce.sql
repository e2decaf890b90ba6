-- PgQ producer: 10 events in one transaction with pgq.insert_event, into this client's queue
-- (one queue and one consumer per client: PgQ hands a batch to one consumer, so 8 parallel workers
-- need 8 queues; see README).
SELECT count(pgq.insert_event('bench_' || :client_id, 'job', json_build_object('n', g)::text)) FROM generate_series(1, 10) g;
