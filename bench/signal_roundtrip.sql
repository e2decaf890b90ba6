-- A job that waits for a signal, one job per pgbench transaction: insert, fetch, await (no signal:
-- wait_timeout 0, so it parks at once), signal (the job becomes available), fetch again, await
-- (the signal is received), complete. Each client works its own queue.
SELECT (oban_insert_job('Signalled', queue => 'signal-' || :client_id)).id AS id \gset
SELECT count(*) FROM oban_fetch_jobs('signal-' || :client_id, 1);
SELECT status FROM oban_await_signal(:id, NULL, '0');
SELECT oban_signal(:id::bigint, jsonb_build_object('approved', true));
SELECT count(*) FROM oban_fetch_jobs('signal-' || :client_id, 1);
SELECT status FROM oban_await_signal(:id, NULL, '0');
SELECT oban_complete_job(:id);
