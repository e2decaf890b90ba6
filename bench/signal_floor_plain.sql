-- The floor's plain lifecycle: signal_plain.sql's three calls as the least plain SQL that does them,
-- on a plain table (bench/plain_schema.sql). The fetch claims the client's own job by id, the
-- cheapest claim there is (a queue's fetch would walk the dead index entries of jobs claimed before),
-- its state compared as text so that no plan takes the state index for it.
INSERT INTO oban_jobs (worker, queue) VALUES ('Plain', 'plain-' || :client_id) RETURNING id \gset
UPDATE oban_jobs SET state = 'executing', attempt = attempt + 1, attempted_at = timezone('UTC', now())
WHERE id = :id AND state::text = 'available';
UPDATE oban_jobs SET state = 'completed', completed_at = timezone('UTC', now()) WHERE id = :id;
