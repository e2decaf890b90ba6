#!/usr/bin/env bash
# pg_dump then pg_restore into a fresh database keeps every job row (and the id sequence's
# position), although oban_jobs belongs to the extension. Usage: dump_restore.sh WORKDIR
set -euo pipefail
source "$(dirname "$0")/../../scripts/lib.sh"
WORK=$1
psql_q() { PGOPTIONS="-c client_min_messages=warning" as_postgres psql -X -q -v ON_ERROR_STOP=1 "$@"; }

psql_q -c "DROP DATABASE IF EXISTS dump_source" -c "DROP DATABASE IF EXISTS dump_target" \
       -c "CREATE DATABASE dump_source" -c "CREATE DATABASE dump_target"
psql_q -d dump_source <<'SQL'
CREATE SCHEMA oban;
CREATE EXTENSION oban_pro SCHEMA oban;
SET search_path = oban;
INSERT INTO oban_jobs (worker, queue, args, meta, tags)
SELECT 'Dump.Worker', 'q' || (n % 3), jsonb_build_object('n', n), jsonb_build_object('k', n), ARRAY['t' || n]
FROM generate_series(1, 500) n;
\o /dev/null
SELECT count(*) FROM oban_fetch_jobs('q1', 50);
SELECT oban_complete_job(id) FROM oban_jobs WHERE state = 'executing' AND id % 2 = 0;
SELECT oban_error_job(id, 'boom') FROM oban_jobs WHERE state = 'executing';
-- Signals waiting in the mailbox, and a job parked awaiting one.
SELECT oban_signal(ARRAY(SELECT id FROM oban_jobs WHERE queue = 'q2' ORDER BY id LIMIT 20), jsonb_build_object('go', true));
SELECT count(*) FROM oban_fetch_jobs('q0', 1);
SELECT status FROM oban_await_signal((SELECT id FROM oban_jobs WHERE state = 'executing'), '1 day', '0');
SQL

fingerprint() {
    as_postgres psql -X -At -d "$1" -c "
        SELECT count(*) || ' jobs, md5 ' || md5(string_agg(
                   concat_ws('|', id, state, queue, worker, attempt, args, meta, tags, errors,
                             attempted_by, inserted_at, scheduled_at, completed_at), ',' ORDER BY id))
        FROM oban.oban_jobs" -c "
        SELECT count(*) || ' signals, md5 ' || md5(coalesce(string_agg(
                   concat_ws('|', id, job_id, payload, inserted_at), ',' ORDER BY id), ''))
        FROM oban.oban_signals" | paste -sd ' '
}

before=$(fingerprint dump_source)
as_postgres pg_dump -Fc -d dump_source -f "$WORK/oban.dump"
as_postgres pg_restore --exit-on-error -d dump_target "$WORK/oban.dump"
after=$(fingerprint dump_target)
echo "source:   $before"
echo "restored: $after"
[ "$before" = "$after" ] || { echo "FAIL: restored jobs differ"; exit 1; }

# The identity sequence was restored too: a new job gets a fresh id, and the functions work.
next=$(as_postgres psql -X -At -d dump_target -c "SELECT (oban.oban_insert_job('After.Restore')).id > 500")
[ "$next" = "t" ] || { echo "FAIL: id sequence not restored"; exit 1; }
fetched=$(as_postgres psql -X -At -d dump_target -c "SELECT count(*) FROM oban.oban_fetch_jobs('q0', 1000)")
echo "fetched after restore: $fetched"
[ "$fetched" = "165" ] || { echo "FAIL: expected 165 available q0 jobs (one is parked)"; exit 1; }
# The parked job and the mailbox work after the restore: a signal wakes the job.
took=$(as_postgres psql -X -At -d dump_target -c "SELECT oban.oban_signal(id, '{}') FROM oban.oban_jobs WHERE state = 'suspended'")
[ "$took" = "t" ] || { echo "FAIL: the parked job did not take a signal after restore"; exit 1; }
psql_q -c "DROP DATABASE dump_source" -c "DROP DATABASE dump_target"
echo "dump/restore: ok"
