-- A plain job's life through the API, one job per pgbench transaction: insert, fetch, complete.
-- Each client works its own queue, so its fetch claims the job it inserted.
SELECT (oban_insert_job('Plain', queue => 'plain-' || :client_id)).id AS id \gset
SELECT count(*) FROM oban_fetch_jobs('plain-' || :client_id, 1);
SELECT oban_complete_job(:id);
