-- bench/bloat.sh with WORKLOAD=sql: oban-py's consumer (plain_consume.sql, verbatim statements) split as
-- bloat_consume.sql splits contender (c)'s: :phase 0 fetches 10 (FOR UPDATE SKIP LOCKED → executing)
-- and keeps the ids, :phase 1 completes them with the baseline's UPDATE; one statement per pgbench
-- transaction, so the per-transaction log times fetches and acks apart.
\if :phase
UPDATE oban_jobs SET state = 'completed', completed_at = timezone('UTC', now()) WHERE id = ANY (:ids::bigint[]);
\set phase 0
\else
WITH locked AS (
  SELECT id FROM oban_jobs WHERE state = 'available' AND queue = 'default'
  ORDER BY priority, scheduled_at, id LIMIT 10 FOR UPDATE SKIP LOCKED),
fetched AS (
  UPDATE oban_jobs j SET state = 'executing', attempt = j.attempt + 1,
         attempted_at = timezone('UTC', now()), attempted_by = ARRAY['bench']
  FROM locked WHERE j.id = locked.id RETURNING j.id)
SELECT coalesce(array_agg(id), '{}') AS ids FROM fetched \gset
\set phase 1
\endif
