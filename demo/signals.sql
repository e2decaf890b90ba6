-- Durable signals: a job pauses for an external event (a human approval) and resumes where it left off.
\pset footer off
\echo '--- A signal delivered BEFORE the job awaits is kept in the mailbox and consumed by the next call:'
SELECT id AS early FROM oban_insert_job('ApprovalWorker', queue => 'approvals') \gset
SELECT oban_signal(:early, '{"decision": "approved", "by": "ada"}') AS stored;
SELECT job_id, payload FROM oban_signals;
SELECT id, state FROM oban_fetch_jobs('approvals', 1, 'demo-node');
SELECT status, payload FROM oban_await_signal(:early, wait_for => '1 day');
SELECT oban_complete_job(:early) AS completed;

\echo '--- A signal delivered AFTER the await: the job waits briefly in place (here 200 ms), then parks'
\echo '--- (suspended, attempt given back, deadline in meta.wait_until) and frees its worker:'
SELECT id AS late FROM oban_insert_job('ApprovalWorker', queue => 'approvals') \gset
SELECT id, state, attempt FROM oban_fetch_jobs('approvals', 1, 'demo-node');
SELECT status, payload FROM oban_await_signal(:late, wait_for => '1 day', wait_timeout => '200 milliseconds');
SELECT state, attempt, meta ? 'wait_until' AS has_deadline FROM oban_jobs WHERE id = :late;
\echo '--- The approval arrives from anywhere (another session, a webhook handler): the job is available again,'
SELECT oban_signal(:late, '{"decision": "approved", "by": "grace"}') AS took;
SELECT state FROM oban_jobs WHERE id = :late;
\echo '--- and when a worker runs it again, the await returns the payload at once:'
SELECT id, state, attempt FROM oban_fetch_jobs('approvals', 1, 'demo-node');
SELECT status, payload FROM oban_await_signal(:late, wait_for => '1 day');
SELECT oban_complete_job(:late) AS completed;

\echo '--- A blocked await wakes when another session signals and commits (well under a millisecond when preloaded):'
SELECT id AS blocked FROM oban_insert_job('ApprovalWorker', queue => 'approvals') \gset
SELECT id, state FROM oban_fetch_jobs('approvals', 1, 'demo-node');
\! (sleep 0.5; psql -X -q -At -c "SELECT oban_signal($(psql -X -At -c "SELECT max(id) FROM oban_jobs"), '{\"decision\": \"rejected\"}')" >/dev/null) &
SELECT status, payload, round(extract(epoch FROM clock_timestamp() - statement_timestamp())::numeric, 1) AS waited_s
FROM oban_await_signal(:blocked, wait_timeout => '10 seconds');
SELECT oban_discard_job(:blocked, 'rejected') AS discarded;

\echo '--- Workflow steps are signalled by name, even while they still wait on their deps:'
SELECT name, state FROM oban_insert_workflow('{"workflow_id": "release-42", "jobs": [
    {"name": "build", "worker": "BuildWorker", "queue": "approvals"},
    {"name": "sign-off", "worker": "SignOffWorker", "queue": "approvals", "deps": ["build"]}]}');
SELECT oban_workflow_signal('release-42', 'sign-off', '{"approved": true}') AS took;
SELECT string_agg(worker || ' ' || (CASE WHEN oban_complete_job(id) THEN 'done' ELSE '?' END), ', ') AS ran
FROM oban_fetch_jobs('approvals', 10, 'demo-node');
SELECT oban_flush_workflows() >= 0 AS released;
SELECT id AS signoff FROM oban_fetch_jobs('approvals', 1, 'demo-node') \gset
SELECT status, payload FROM oban_await_signal(:signoff);
SELECT oban_complete_job(:signoff) AS completed;
SELECT oban_workflow_status('release-42')->>'state' AS workflow_state;
