-- Diagnostic only (not contender (c)): fetch with oban_fetch_jobs, ack with the baseline's plain UPDATE.
-- Isolates the cost of the extension's ack functions from the rest of its API.
SELECT coalesce(array_agg(id), '{}') AS ids FROM oban_fetch_jobs('default', 10, 'bench') \gset
UPDATE oban_jobs SET state = 'completed', completed_at = timezone('UTC', now()) WHERE id = ANY (:ids::bigint[]);
