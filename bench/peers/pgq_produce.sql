-- PgQ producer: 10 events in one transaction with pgq.insert_event, into this client's queue
-- (one queue and one consumer per client: PgQ hands a batch to one consumer, so 8 parallel workers
-- need 8 queues; see README), then a tick of that queue in a second transaction (what pgqd does):
-- the queue's next batch is those 10 events, as the other peers fetch 10 jobs at a time.
SELECT count(pgq.insert_event('bench_' || :client_id, 'job', json_build_object('n', g)::text)) FROM generate_series(1, 10) g;
SELECT pgq.ticker('bench_' || :client_id);
