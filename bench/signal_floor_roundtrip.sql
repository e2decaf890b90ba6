-- The floor's signal round trip: signal_roundtrip.sql's seven calls as the least plain SQL that does
-- them, on a plain table with a mailbox (made by bench/signals.sh), with no waiting, no wake-up and no
-- race closed. Each fetch claims the client's own job by id, as in signal_floor_plain.sql.
INSERT INTO oban_jobs (worker, queue) VALUES ('Signalled', 'signal-' || :client_id) RETURNING id \gset
UPDATE oban_jobs SET state = 'executing', attempt = attempt + 1, attempted_at = timezone('UTC', now())
WHERE id = :id AND state::text = 'available';
-- await, nothing in the mailbox: park (suspended, the attempt given back).
UPDATE oban_jobs SET state = 'suspended', attempt = attempt - 1, meta = meta || '{"wait_until": "infinity"}'
WHERE id = :id AND NOT EXISTS (SELECT FROM signal_mailbox WHERE job_id = :id);
-- signal: into the mailbox, and the parked job made available.
WITH sent AS (INSERT INTO signal_mailbox (job_id, payload) VALUES (:id, '{"approved": true}'))
UPDATE oban_jobs SET state = 'available', meta = meta - 'wait_until' WHERE id = :id AND state::text = 'suspended';
UPDATE oban_jobs SET state = 'executing', attempt = attempt + 1, attempted_at = timezone('UTC', now())
WHERE id = :id AND state::text = 'available';
-- await: the first signal taken from the mailbox.
DELETE FROM signal_mailbox WHERE id = (SELECT min(id) FROM signal_mailbox WHERE job_id = :id) RETURNING payload;
UPDATE oban_jobs SET state = 'completed', completed_at = timezone('UTC', now()) WHERE id = :id;
