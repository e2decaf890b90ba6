-- The floor's plain lifecycle: signal_plain.sql's three calls as the least plain SQL that does them,
-- on a plain table (bench/plain_schema.sql). Each client works its own queue.
INSERT INTO oban_jobs (worker, queue) VALUES ('Plain', 'plain-' || :client_id) RETURNING id \gset
WITH next AS (
  SELECT id FROM oban_jobs WHERE state = 'available' AND queue = 'plain-' || :client_id
  ORDER BY priority, scheduled_at, id LIMIT 1 FOR UPDATE SKIP LOCKED)
UPDATE oban_jobs AS j SET state = 'executing', attempt = j.attempt + 1, attempted_at = timezone('UTC', now())
FROM next WHERE j.id = next.id;
UPDATE oban_jobs SET state = 'completed', completed_at = timezone('UTC', now()) WHERE id = :id;
