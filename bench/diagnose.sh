#!/usr/bin/env bash
# Diagnostics behind the figures of run.sh (not part of the benchmark's metric). As root:
#   bash bench/diagnose.sh
# On its own throwaway cluster it shows:
#   1. producers alone (no consumers), jobs inserted/s under synchronous_commit on and off: the plain
#      INSERT on a plain table, on the extension's table (with its background worker serving the
#      database, when the build has one, and without), on the extension's table with its NOTIFY trigger
#      disabled, oban_insert_job in three shapes, and oban_insert_jobs when the build has it;
#   2. what the backends of contender (b) wait on under synchronous_commit=on (pg_stat_activity samples),
#      with and without the worker;
#   3. the plan the extension's ack statement (oban_complete_job / oban_ack_jobs) gets on an analyzed
#      table, and what it costs once jobs have gone through 'executing'.
# Knobs: DURATION (seconds per producer run, default 5), SAMPLES (default 60), SEED (default 10000).
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../scripts/lib.sh
source "$BENCH_DIR/../scripts/lib.sh"
DURATION=${DURATION:-5}
SAMPLES=${SAMPLES:-60}
SEED=${SEED:-10000}

ensure_packages
build_and_install
WORK=$(make_workdir)
cleanup() {
    local rc=$?
    if [ "$rc" != 0 ] && [ -f "$WORK/cluster/server.log" ]; then
        echo "diagnose.sh failed (exit $rc); the server log ends with:" >&2
        tail -n 20 "$WORK/cluster/server.log" >&2
    fi
    stop_cluster
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
start_cluster "$WORK/cluster"

q() { local db=$1; shift; psql -X -q -v ON_ERROR_STOP=1 -At -d "$db" -c "$*"; }
for db in d_plain d_ext d_ext_noworker d_ext_notrig; do q postgres "CREATE DATABASE $db"; done
PGOPTIONS="-c client_min_messages=warning" psql -X -q -v ON_ERROR_STOP=1 -d d_plain -f "$BENCH_DIR/plain_schema.sql"
for db in d_ext d_ext_noworker d_ext_notrig; do q "$db" "CREATE EXTENSION oban_pro"; done
q d_ext_notrig "ALTER TABLE oban_jobs DISABLE TRIGGER oban_jobs_before_insert"  # plain jobs: only its notification
# The background worker (when the build has one) serves d_ext only, as run.sh's bench_ext.
HAS_WORKER=0
if [ "$(q postgres "SELECT count(*) FROM pg_settings WHERE name = 'oban_pro.database'")" = 1 ]; then
    HAS_WORKER=1
    q postgres "ALTER SYSTEM SET oban_pro.database = 'd_ext'"
    as_postgres "$PG_BIN/pg_ctl" -D "$CLUSTER_DIR/data" -l "$CLUSTER_DIR/server.log" -w restart >/dev/null
    for _ in $(seq 1 50); do
        [ "$(q postgres "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'oban_pro worker' AND datname = 'd_ext'")" -ge 1 ] && break
        sleep 0.2
    done
fi
WITH_WORKER=$([ "$HAS_WORKER" = 1 ] && echo ", worker serving it" || echo "")

P="$WORK/scripts"
mkdir -p "$P"
cp "$BENCH_DIR/plain_produce.sql" "$BENCH_DIR/ext_produce.sql" "$BENCH_DIR/ext_produce_batch.sql" "$P/"
cat >"$P/ext_produce_rows.sql" <<'SQL'
SELECT oban_insert_job('Bench.Worker', jsonb_build_object('n', g)) FROM generate_series(1, 10) g;
SQL
{
    echo 'BEGIN;'
    for n in $(seq 1 10); do echo "SELECT (oban_insert_job('Bench.Worker', jsonb_build_object('n', $n))).id;"; done
    echo 'COMMIT;'
} >"$P/ext_produce_each.sql"

log "1. producers only: ${DURATION}s each, 8 clients, 10 jobs per transaction (jobs inserted/s)"
printf '%-58s %10s %10s\n' "producer" "sync=on" "sync=off"
producer() { # label db script
    local label=$1 db=$2 script=$3 out=()
    for sync in on off; do
        q "$db" "TRUNCATE oban_jobs RESTART IDENTITY"
        q postgres "CHECKPOINT"
        PGOPTIONS="-c synchronous_commit=$sync" pgbench -n -M prepared -c 8 -j 2 -T "$DURATION" -f "$P/$script" "$db" \
            >"$WORK/producer.log" 2>&1 || { cat "$WORK/producer.log" >&2; exit 1; }
        out+=("$(q "$db" "SELECT count(*) / $DURATION FROM oban_jobs")")
    done
    printf '%-58s %10s %10s\n' "$label" "${out[0]}" "${out[1]}"
}
producer "INSERT ... generate_series(1,10), plain table" d_plain plain_produce.sql
producer "same INSERT, extension table$WITH_WORKER" d_ext plain_produce.sql
[ "$HAS_WORKER" = 1 ] && producer "same INSERT, extension table, no worker (NOTIFY at commit)" d_ext_noworker plain_produce.sql
producer "same INSERT, extension table, NOTIFY trigger disabled" d_ext_notrig plain_produce.sql
producer "oban_insert_job x10: count(*) over LATERAL" d_ext ext_produce.sql
producer "oban_insert_job x10: SELECT f(...) FROM generate_series" d_ext ext_produce_rows.sql
producer "oban_insert_job x10: 10 statements in BEGIN/COMMIT" d_ext ext_produce_each.sql
if [ "$(q d_ext "SELECT to_regprocedure('oban_insert_jobs(jsonb)') IS NOT NULL")" = t ]; then
    producer "oban_insert_jobs(10 jobs as jsonb) (bench's (c))" d_ext ext_produce_batch.sql
fi

sample() { # db: what the backends of contender (b) wait on, sampled from pg_stat_activity
    local db=$1 bench_pid
    q "$db" "TRUNCATE oban_jobs RESTART IDENTITY"
    (cd "$BENCH_DIR" && PGOPTIONS="-c synchronous_commit=on" pgbench -n -M prepared -c 8 -j 2 -T $((SAMPLES / 10 + 3)) \
        -f plain_produce.sql@1 -f plain_consume.sql@1 "$db" >"$WORK/sample.log" 2>&1) &
    bench_pid=$!
    sleep 2
    for _ in $(seq 1 "$SAMPLES"); do
        q postgres "SELECT coalesce(wait_event_type || ':' || wait_event, 'on CPU') || '  ' ||
                           CASE WHEN query LIKE 'INSERT%' THEN 'producer INSERT' WHEN query LIKE 'WITH%' THEN 'consumer fetch'
                                WHEN query LIKE 'UPDATE%' THEN 'consumer ack' ELSE left(query, 20) END
                    FROM pg_stat_activity WHERE datname = '$db' AND backend_type = 'client backend' AND state = 'active'"
        sleep 0.1
    done | sort | uniq -c | sort -rn | head -10
    wait "$bench_pid" || true
}
log "2. contender (b) under synchronous_commit=on: $SAMPLES samples of pg_stat_activity (wait event, statement)"
if [ "$HAS_WORKER" = 1 ]; then
    echo "-- in a database the background worker does not serve (notifications sent at commit):"
    sample d_ext_noworker
    echo "-- in the database it serves (notifications handed to the worker after commit):"
fi
sample d_ext
echo "(Lock:object = the heavyweight lock NOTIFY takes at commit, PreCommit_Notify, held until the commit is flushed)"

log "3. the plans the extension's acks get: table seeded with $SEED completed jobs, VACUUM ANALYZE, then 5 s of churn"
q d_ext "TRUNCATE oban_jobs RESTART IDENTITY"
q d_ext "INSERT INTO oban_jobs (worker, args, state, attempt, attempted_at, completed_at)
         SELECT 'Bench.Worker', jsonb_build_object('n', g), 'completed', 1, timezone('UTC', now()), timezone('UTC', now())
         FROM generate_series(1, $SEED) g"
q d_ext "VACUUM ANALYZE oban_jobs"
# Jobs go through 'executing' (acked by the baseline's UPDATE), as during a benchmark run.
(cd "$BENCH_DIR" && PGOPTIONS="-c synchronous_commit=off" pgbench -n -M prepared -c 8 -j 2 -T 5 \
    -f "$(basename "$(ls "$BENCH_DIR"/ext_produce.sql)")@1" -f hybrid_consume.sql@1 d_ext >"$WORK/churn.log" 2>&1) || true
echo "   $(q d_ext "SELECT count(*) FROM oban_jobs") rows; the statistics still say: $(q d_ext "
    SELECT string_agg(v || ' ' || round(f::numeric, 3), ', ') FROM pg_stats,
           unnest(most_common_vals::text::text[], most_common_freqs) AS m(v, f)
    WHERE tablename = 'oban_jobs' AND attname = 'state'")"
# auto_explain at NOTICE level shows the plans of the statements the extension runs inside its functions
# (each backend plans them on first use and keeps the plan).
explain_nested() { # db sql
    PGOPTIONS="-c client_min_messages=notice" psql -X -q -d "$1" \
        -c "LOAD 'auto_explain'" -c "SET auto_explain.log_min_duration = 0" -c "SET auto_explain.log_level = notice" \
        -c "SET auto_explain.log_nested_statements = on" -c "SET auto_explain.log_analyze = on" \
        -c "SET auto_explain.log_buffers = on" -c "SET auto_explain.log_timing = off" -c "$2" 2>&1 |
        grep -E 'Query Text|Index Scan|Bitmap|Seq Scan|Index Cond|Recheck Cond|Buffers|Rows Removed|duration' |
        sed -E 's/^(NOTICE:  )?/   /; s/Query Text: *$/Query Text: (a statement the extension runs inside the function)/' | cut -c1-170
}
ids=$(q d_ext "SELECT array_agg(id) FROM oban_fetch_jobs('default', 10, 'diag')")
echo "-- oban_complete_job on one fetched job, ${ids%%,*}}:"
explain_nested d_ext "SELECT oban_complete_job(('$ids'::bigint[])[1])"
echo "-- oban_ack_jobs completing the other nine:"
explain_nested d_ext "SELECT oban_ack_jobs(jsonb_agg(jsonb_build_object('id', id, 'state', 'completed'))) FROM unnest(('$ids'::bigint[])[2:10]) id"
ids=$(q d_ext "SELECT array_agg(id) FROM oban_fetch_jobs('default', 10, 'diag')")
echo "-- the baseline's ack on ten more fetched jobs (plain UPDATE ... WHERE id = ANY):"
explain_nested d_ext "UPDATE oban_jobs SET state = 'completed', completed_at = timezone('UTC', now()) WHERE id = ANY ('$ids'::bigint[])"
echo "   (blocks per statement during the benchmark itself: STATS=1 bash bench/run.sh, then out/<stamp>/*.statements.txt)"
