#!/usr/bin/env bash
# Durable signals across sessions, with real timing (SPEC §6): a backend blocked in
# oban_await_signal returns within the same second once another session signals and commits; a
# rolled-back signal wakes nobody and delivers nothing; while it sleeps the waiter holds no row lock
# (an UPDATE of its job does not wait); statement_timeout, a query cancel and backend termination end
# a blocked await at once and leave the job executing. Then the same without preloading, on a
# second throwaway cluster: the await polls and still returns promptly.
# Usage: signal_wake.sh WORKDIR
set -euo pipefail
source "$(dirname "$0")/../../scripts/lib.sh"
WORK=$1
DB=oban_pro_signals
failed=0
fail() { echo "FAIL: $*"; failed=1; }
q() { PGOPTIONS="-c client_min_messages=warning" as_postgres psql -X -q -At -v ON_ERROR_STOP=1 -d "$DB" "$@"; }
now() { date +%s.%N; }
elapsed_ok() { awk -v a="$1" -v b="$2" -v max="$3" 'BEGIN { exit !((b - a) < max) }'; }

as_postgres psql -X -q -d postgres -c "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB"
q -c "CREATE EXTENSION oban_pro"

new_job() {  # an executing job; prints its id
    q -c "INSERT INTO oban_jobs (worker, state, attempt, attempted_at) VALUES ('Wake', 'executing', 1, now()) RETURNING id"
}
waiter_pid() {  # the backend running oban_await_signal for job $1 (waits until it sleeps)
    local pid=""
    for _ in $(seq 200); do
        pid=$(q -c "SELECT pid FROM pg_stat_activity WHERE query LIKE '%oban_await_signal($1,%'
                    AND pid <> pg_backend_pid() AND wait_event_type = 'Extension'")
        [ -n "$pid" ] && break
        sleep 0.01
    done
    echo "$pid"
}

# 1. Blocked, a signal rolled back, then one committed.
job=$(new_job)
out=$WORK/await_$job.out
q -F ' ' -c "SELECT status, payload, extract(epoch FROM clock_timestamp()) FROM oban_await_signal($job, NULL, '30 s')" \
    > "$out" 2>&1 &
bg=$!
pid=$(waiter_pid "$job")
[ -n "$pid" ] || fail "the await is not sleeping on its condition variable (wait_event_type Extension)"
q -c "BEGIN" -c "SELECT oban_signal($job, '{\"n\": \"rolled back\"}')" -c "ROLLBACK" >/dev/null
sleep 0.5
[ -s "$out" ] && fail "a rolled-back signal ended the await: $(cat "$out")"
kill -0 "$bg" 2>/dev/null || fail "the await returned after a rollback"
# Sleeping, it holds no row lock: an update of its job does not wait.
locks=$(q -c "SELECT count(*) FROM pg_locks WHERE pid = $pid AND locktype NOT IN ('relation', 'virtualxid')")
[ "$locks" = 0 ] || fail "the sleeping waiter holds $locks row/transaction locks"
q -c "SET lock_timeout = '200ms'" -c "UPDATE oban_jobs SET tags = tags WHERE id = $job" >/dev/null \
    || fail "updating the awaited job waited for the sleeping waiter"
start=$(now)
# The server's clock just before COMMIT: the bound below is from there, not from when psql started
# (on a loaded machine starting a client alone can take most of a second).
before_commit=$(q -c "BEGIN" -c "SELECT oban_signal($job, '{\"n\": \"committed\"}')" \
                  -c "SELECT extract(epoch FROM clock_timestamp())" -c "COMMIT" | tail -1)
committed=$(now)
wait "$bg" || fail "the await failed: $(cat "$out")"
read -r status payload returned < <(sed 's/{"n": "committed"}/committed/' "$out")
echo "blocked await: $status $payload; returned $(awk -v a="$start" -v b="$returned" 'BEGIN { printf "%.1f ms", (b - a) * 1000 }') after the signalling psql started (BEGIN, signal, COMMIT; its COMMIT returned at $(awk -v a="$start" -v b="$committed" 'BEGIN { printf "%.1f ms", (b - a) * 1000 }'))"
[ "$status" = received ] && [ "$payload" = committed ] || fail "expected the committed signal, got: $(cat "$out")"
elapsed_ok "$before_commit" "$returned" 1 || fail "the await returned more than a second after the signal committed"
[ "$(q -c "SELECT count(*) FROM oban_signals WHERE job_id = $job")" = 0 ] || fail "signals left in the mailbox"

# 2. statement_timeout, cancel and termination end a blocked await at once; the job stays executing.
# The bounds (5 s, against an await of 30 s) leave room for starting psql on a loaded machine.
job=$(new_job)
start=$(now)
err=$(q -c "SET statement_timeout = '300ms'" -c "SELECT * FROM oban_await_signal($job, NULL, '30 s')" 2>&1 || true)
echo "$err" | grep -q "canceling statement due to statement timeout" || fail "statement_timeout: $err"
elapsed_ok "$start" "$(now)" 5 || fail "statement_timeout took more than 5 s"
for how in cancel terminate; do
    out=$WORK/await_${how}.out
    q -c "SELECT * FROM oban_await_signal($job, NULL, '30 s')" > "$out" 2>&1 &
    bg=$!
    pid=$(waiter_pid "$job")
    start=$(now)
    q -c "SELECT pg_${how}_backend($pid)" >/dev/null
    wait "$bg" && fail "$how: the await did not fail"
    elapsed_ok "$start" "$(now)" 5 || fail "$how took more than 5 s"
    grep -q -E "canceling statement due to user request|terminating connection" "$out" || fail "$how: $(cat "$out")"
done
[ "$(q -c "SELECT state FROM oban_jobs WHERE id = $job")" = executing ] || fail "an interrupted await changed the job"
echo "statement_timeout, cancel, terminate: the await ends at once, the job stays executing"

as_postgres psql -X -q -d postgres -c "DROP DATABASE $DB"

# 3. Without shared_preload_libraries: no shared memory, the await polls (every 10 ms).
NOPRELOAD=$WORK/nopreload
mkdir -p "$NOPRELOAD" && chown postgres: "$NOPRELOAD"
as_postgres "$PG_BIN/initdb" -D "$NOPRELOAD/data" -U postgres -A trust --no-instructions -E UTF8 --locale=C.UTF-8 >/dev/null
cat >> "$NOPRELOAD/data/postgresql.conf" <<CONF
listen_addresses = ''
unix_socket_directories = '$NOPRELOAD'
port = 5498
log_min_messages = warning
CONF
server_ctl -D "$NOPRELOAD/data" -l "$NOPRELOAD/server.log" -w start >/dev/null
trap 'as_postgres "$PG_BIN/pg_ctl" -D "$NOPRELOAD/data" -m fast -w stop >/dev/null 2>&1 || true' EXIT
(
    export PGHOST=$NOPRELOAD PGPORT=5498 DB=postgres
    DB=postgres
    q -c "CREATE EXTENSION oban_pro"
    [ "$(q -c "SHOW shared_preload_libraries")" = "" ] || fail "the second cluster preloads"
    job=$(new_job)
    out=$WORK/await_nopreload.out
    q -F ' ' -c "SELECT status, extract(epoch FROM clock_timestamp()) FROM oban_await_signal($job, NULL, '30 s')" > "$out" 2>&1 &
    bg=$!
    pid=$(waiter_pid "$job")
    [ -n "$pid" ] || fail "no polling waiter"
    # Timed from the signalling statement's own clock (just before its commit), not from when
    # psql was started: on a loaded machine starting a client alone can take half a second.
    start=$(q -c "SELECT extract(epoch FROM clock_timestamp()) FROM oban_signal($job, '{}')")
    wait "$bg" || fail "the polling await failed: $(cat "$out")"
    read -r status returned < "$out"
    echo "not preloaded: $status $(awk -v a="$start" -v b="$returned" 'BEGIN { printf "%.1f ms", (b - a) * 1000 }') after the signal was sent"
    [ "$status" = received ] || fail "not preloaded: $(cat "$out")"
    elapsed_ok "$start" "$returned" 0.5 || fail "not preloaded: the polling await took more than 500 ms"
    exit "$failed"
) || failed=1

[ "$failed" = 0 ] && echo "signal_wake: ok"
exit "$failed"
