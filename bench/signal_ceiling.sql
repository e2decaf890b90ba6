-- The ceiling of the round trip inside the extension: signal_roundtrip.sql with its insert, fetches
-- and complete through the extension's API as there, and its await (park), signal and await
-- (received) as the least plain SQL on the extension's own tables, with no wait, no wake-up and no
-- race closed. What any oban_await_signal and oban_signal could reach here: (e)/(a) bounds (b)/(a).
SELECT (oban_insert_job('Signalled', queue => 'signal-' || :client_id)).id AS id \gset
SELECT count(*) FROM oban_fetch_jobs('signal-' || :client_id, 1);
-- await, nothing in the mailbox: park (suspended, the attempt given back).
UPDATE oban_jobs SET state = 'suspended', attempt = attempt - 1, meta = meta || '{"wait_until": "infinity"}'
WHERE id = :id AND NOT EXISTS (SELECT FROM oban_signals WHERE job_id = :id);
-- signal: into the mailbox, and the parked job made available.
WITH sent AS (INSERT INTO oban_signals (job_id, payload) VALUES (:id, '{"approved": true}'))
UPDATE oban_jobs SET state = 'available', meta = meta - 'wait_until' WHERE id = :id AND state::text = 'suspended';
SELECT count(*) FROM oban_fetch_jobs('signal-' || :client_id, 1);
-- await: the first signal taken from the mailbox.
DELETE FROM oban_signals WHERE id = (SELECT min(id) FROM oban_signals WHERE job_id = :id) RETURNING payload;
SELECT oban_complete_job(:id);
