#!/usr/bin/env bash
# Long transactions and bloat (issue 8), on one throwaway cluster, as root:
#   bash bench/bloat.sh
#
# Part "snapshot": the lifecycle workload of bench/run.sh's contender (c) — 8 clients, producers insert
# 10 jobs per transaction (oban_insert_jobs), consumers fetch 10 (oban_fetch_jobs) and ack them
# (oban_ack_jobs) — runs for WARMUP + BEFORE + HOLD + AFTER seconds in one pgbench run (the warm-up,
# long enough for autovacuum's first pass, is shown but not counted in any phase). From then on,
# another session holds an old snapshot for HOLD s (BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT
# count(*) FROM oban_jobs; pg_sleep(HOLD); COMMIT), so neither autovacuum nor index scans can get rid
# of the dead row versions the workload leaves; then AFTER s with the snapshot released. Reported per
# INTERVAL s and per phase (before / during / after): completed jobs/s, fetch and ack latency p50/p99
# (pgbench's per-transaction log: each fetch and each ack is its own transaction, see
# bloat_consume.sql), oban_jobs' n_dead_tup (pg_stat_user_tables), heap and index size, autovacuum
# runs; then the ratios during/before and after/before.
#
# Part "finished": does the cost of fetch and ack grow with the finished rows in the table? Two
# databases with the same schema, the same seed (SEED completed jobs) and the same workload; one of
# them also holds FINISHED finished jobs (96% completed, 2% discarded, 2% cancelled, finished within
# the last 12 hours, so pruning keeps them). Runs of DURATION s alternate between the two over ROUNDS
# rounds (order swapped every round); after each run the run's jobs are deleted and the table
# vacuumed, so each run starts from the same table. Reported: jobs/s, fetch and ack latency (pgbench -r
# averages, log p50/p99), medians and the paired ratio big/small. Then, in both databases, the plans
# and buffers of the statements inside oban_fetch_jobs and oban_ack_jobs (auto_explain) and the time
# and buffers of one call of each maintenance duty (oban_stage_jobs, oban_rescue_jobs,
# oban_prune_jobs, oban_repair_workflows).
#
# Both parts run under each synchronous_commit mode of SYNC_MODES (ALTER DATABASE ... SET).
# Knobs: PARTS ("snapshot finished"), SYNC_MODES ("on off"), WARMUP (60), BEFORE (60), HOLD (180), AFTER (120),
# INTERVAL (30; the phases must be multiples of it), FINISHED (1000000), ROUNDS (3),
# DURATION (20), SEED (10000), CLIENTS (8), THREADS (2), OUT_DIR (bench/out), WORKLOAD (api: the
# extension's functions; sql: oban-py's SQL on the extension's table, plain_produce.sql +
# bloat_consume_sql.sql, to compare).
# Default runtime: snapshot 7 min per mode; finished ~1 min setup + ROUNDS x 2 x (DURATION + ~15 s)
# per mode. On a shared machine run one part and one mode per invocation (see README.md).
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../scripts/lib.sh
source "$BENCH_DIR/../scripts/lib.sh"

PARTS=${PARTS:-snapshot finished}
SYNC_MODES=${SYNC_MODES:-on off}
WARMUP=${WARMUP:-60}
BEFORE=${BEFORE:-60}
HOLD=${HOLD:-180}
AFTER=${AFTER:-120}
INTERVAL=${INTERVAL:-30}
FINISHED=${FINISHED:-1000000}
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-20}
SEED=${SEED:-10000}
CLIENTS=${CLIENTS:-8}
THREADS=${THREADS:-2}
OUT_DIR=${OUT_DIR:-$BENCH_DIR/out}
WORKLOAD=${WORKLOAD:-api}
case $WORKLOAD in api | sql) ;; *) echo "WORKLOAD must be api or sql" >&2; exit 2 ;; esac

for n in WARMUP BEFORE HOLD AFTER INTERVAL FINISHED ROUNDS DURATION SEED CLIENTS THREADS; do
    [[ ${!n} =~ ^[0-9]+$ ]] || { echo "$n must be a non-negative integer" >&2; exit 2; }
done
[ "$INTERVAL" -ge 1 ] && [ "$ROUNDS" -ge 1 ] && [ "$DURATION" -ge 1 ] && [ "$HOLD" -ge 1 ] ||
    { echo "INTERVAL, ROUNDS, DURATION and HOLD must be >= 1" >&2; exit 2; }
for n in WARMUP BEFORE HOLD AFTER; do
    [ $((${!n} % INTERVAL)) = 0 ] || { echo "$n must be a multiple of INTERVAL ($INTERVAL)" >&2; exit 2; }
done
for p in $PARTS; do
    case $p in snapshot | finished) ;; *) echo "PARTS: unknown part $p (snapshot, finished)" >&2; exit 2 ;; esac
done
for s in $SYNC_MODES; do
    case $s in on | off) ;; *) echo "SYNC_MODES: on and/or off" >&2; exit 2 ;; esac
done

STAMP=$(date -u +%Y%m%d-%H%M%S)
RUN_DIR="$OUT_DIR/bloat-$STAMP"
MD="$OUT_DIR/bloat-results-$STAMP.md"
mkdir -p "$RUN_DIR"

ensure_packages
COMMIT=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo '?')
DIRTY=$(git -C "$REPO" status --porcelain -- src sql 2>/dev/null | awk '{ print $2 }' | paste -sd' ' - || true)
build_and_install

WORK=$(make_workdir)
cleanup() {
    local rc=$?
    [ -n "${HOLDER_PID:-}" ] && kill "$HOLDER_PID" 2>/dev/null || true
    [ -n "${MONITOR_PID:-}" ] && kill "$MONITOR_PID" 2>/dev/null || true
    if [ "$rc" != 0 ] && [ -f "$WORK/cluster/server.log" ]; then
        echo "bloat.sh failed (exit $rc); the server log ends with:" >&2
        tail -n 20 "$WORK/cluster/server.log" >&2
    fi
    stop_cluster
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log "starting a throwaway cluster in $WORK/cluster"
# The extension's worker serves both databases (notifications after commit, as in bench/run.sh);
# its maintenance stays off (the default), the duties are timed by direct calls instead.
CLUSTER_EXTRA_CONF="oban_pro.database = 'bloat_small,bloat_big'
log_autovacuum_min_duration = 0" start_cluster "$WORK/cluster"

PSQL=(psql -X -q -v ON_ERROR_STOP=1)
q() { local db=$1; shift; "${PSQL[@]}" -At -d "$db" -c "$*"; }
for db in bloat_small bloat_big; do
    q postgres "CREATE DATABASE $db"
    q "$db" "CREATE EXTENSION oban_pro"
done
cp "$BENCH_DIR/ext_produce_batch.sql" "$BENCH_DIR/bloat_consume.sql" "$BENCH_DIR/plain_produce.sql" "$BENCH_DIR/bloat_consume_sql.sql" "$WORK/"
chmod a+r "$WORK"/*.sql
if [ "$WORKLOAD" = api ]; then
    PRODUCE=$WORK/ext_produce_batch.sql CONSUME=$WORK/bloat_consume.sql
else
    PRODUCE=$WORK/plain_produce.sql CONSUME=$WORK/bloat_consume_sql.sql
fi

seed_completed() { # db count first-label: completed jobs finished just now
    q "$1" "INSERT INTO oban_jobs (worker, args, state, attempt, attempted_at, attempted_by, completed_at)
            SELECT 'Bench.Worker', jsonb_build_object('n', g), 'completed', 1,
                   timezone('UTC', now()), ARRAY['seed'], timezone('UTC', now())
            FROM generate_series(1, $2) g"
}

# Finished jobs of the last 12 hours: 96% completed, 2% discarded (with an error), 2% cancelled.
seed_finished() { # db count
    q "$1" "INSERT INTO oban_jobs (worker, args, state, attempt, max_attempts, attempted_at, attempted_by,
                                   completed_at, discarded_at, cancelled_at, errors, inserted_at, scheduled_at)
            SELECT 'Bench.Worker', jsonb_build_object('n', g, 'old', true), s.state::oban_job_state, 1, 1,
                   f.at, ARRAY['seed'],
                   CASE WHEN s.state = 'completed' THEN f.at END,
                   CASE WHEN s.state = 'discarded' THEN f.at END,
                   CASE WHEN s.state = 'cancelled' THEN f.at END,
                   CASE WHEN s.state = 'completed' THEN '[]'::jsonb
                        ELSE jsonb_build_array(jsonb_build_object('attempt', 1, 'at', f.at, 'error', 'boom')) END,
                   f.at, f.at
            FROM generate_series(1, $2) g,
                 LATERAL (SELECT timezone('UTC', now()) - interval '12 hours' * (g::float8 / $2) AS at) f,
                 LATERAL (SELECT CASE WHEN g % 50 = 0 THEN 'discarded' WHEN g % 50 = 25 THEN 'cancelled'
                                      ELSE 'completed' END AS state) s"
}

run_pgbench() { # db seconds log-prefix out-file
    (cd "$WORK" && pgbench -n -M prepared -c "$CLIENTS" -j "$THREADS" -T "$2" -r -l --log-prefix="$3" \
        --failures-detailed -D phase=0 -D ids='{}' -f "$PRODUCE@1" -f "$CONSUME@2" "$1") >"$4" 2>&1
}

{
    echo "commit=$COMMIT"
    echo "dirty=$DIRTY"
    echo "clients=$CLIENTS threads=$THREADS seed=$SEED workload=$WORKLOAD ($(basename "$PRODUCE") + $(basename "$CONSUME"))"
    echo "machine=$(nproc) cores, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo), $(pgbench --version | sed 's/pgbench (PostgreSQL) //')"
    echo "load_start=$(cut -d' ' -f1-3 /proc/loadavg)"
} >"$RUN_DIR/meta.txt"

# ---- part "snapshot" ------------------------------------------------------------------------------
monitor() { # db out-file: one row every 5 s
    local db=$1 out=$2
    printf 'epoch\tn_live_tup\tn_dead_tup\theap_bytes\tindex_bytes\tautovacuum_count\tlast_autovacuum\txmin_age_oldest\n' >"$out"
    while :; do
        q "$db" "SELECT extract(epoch FROM clock_timestamp()), n_live_tup, n_dead_tup,
                        pg_relation_size('oban_jobs'), pg_indexes_size('oban_jobs'), autovacuum_count,
                        coalesce(to_char(last_autovacuum, 'HH24:MI:SS'), '-'),
                        coalesce((SELECT max(age(backend_xmin)) FROM pg_stat_activity
                                  WHERE backend_xmin IS NOT NULL AND pid <> pg_backend_pid()), 0)
                 FROM pg_stat_user_tables WHERE relid = 'oban_jobs'::regclass" | tr '|' '\t' >>"$out" || true
        sleep 5
    done
}

sleep_until() { # t0 offset: sleep until t0 + offset seconds
    local d
    d=$(awk -v t0="$1" -v o="$2" -v now="$(date +%s.%N)" 'BEGIN { d = t0 + o - now; print (d > 0) ? d : 0 }')
    sleep "$d"
}
probe_at() { # t0 offset db phase dir: the probe, when the phase is long enough for it
    [ "$2" -gt 0 ] || return 0
    sleep_until "$1" "$2"
    explain_session "$3" probe "$5/probe-$4-detail.txt" >"$5/probe-$4.txt"
}

snapshot_part() { # sync
    local sync=$1 dir="$RUN_DIR/snapshot-$1" db=bloat_small total t0 th0 th1
    mkdir -p "$dir"
    chown postgres: "$dir"
    total=$((WARMUP + BEFORE + HOLD + AFTER))
    log "snapshot part, synchronous_commit=$sync: ${WARMUP}s warm-up, ${BEFORE}s before, ${HOLD}s holding a snapshot, ${AFTER}s after"
    q "$db" "TRUNCATE oban_jobs RESTART IDENTITY"
    [ "$SEED" -gt 0 ] && seed_completed "$db" "$SEED"
    q "$db" "VACUUM ANALYZE oban_jobs"
    q postgres "CHECKPOINT"
    monitor "$db" "$dir/monitor.tsv" &
    MONITOR_PID=$!
    t0=$(date +%s.%N)
    run_pgbench "$db" "$total" "$dir/log" "$dir/pgbench.out" &
    local bench_pid=$!
    # A probe 15 s before the end of each phase: one fetch and one ack under EXPLAIN (ANALYZE, BUFFERS).
    probe_at "$t0" $((WARMUP + BEFORE - 15)) "$db" before "$dir"
    sleep_until "$t0" $((WARMUP + BEFORE))
    th0=$(date +%s.%N)
    printf 'BEGIN ISOLATION LEVEL REPEATABLE READ;\nSELECT count(*) FROM oban_jobs;\nSELECT pg_sleep(%s);\nCOMMIT;\n' "$HOLD" |
        "${PSQL[@]}" -d "$db" >"$dir/holder.out" 2>&1 &
    HOLDER_PID=$!
    probe_at "$t0" $((WARMUP + BEFORE + HOLD - 15)) "$db" during "$dir"
    wait "$HOLDER_PID" || { echo "the snapshot holder failed:" >&2; cat "$dir/holder.out" >&2; exit 1; }
    HOLDER_PID=
    th1=$(date +%s.%N)
    probe_at "$t0" $((total - 15)) "$db" after "$dir"
    wait "$bench_pid" || { echo "pgbench failed:" >&2; tail -n 30 "$dir/pgbench.out" >&2; exit 1; }
    sleep 5 # a last monitor sample after the run
    kill "$MONITOR_PID" 2>/dev/null || true
    wait "$MONITOR_PID" 2>/dev/null || true
    MONITOR_PID=
    # Completions per second, from the jobs themselves (completed_at is the ack's transaction start).
    q "$db" "SELECT floor(extract(epoch FROM completed_at))::bigint, count(*) FROM oban_jobs
             WHERE state = 'completed' AND id > $SEED GROUP BY 1 ORDER BY 1" | tr '|' '\t' >"$dir/completed.tsv"
    q "$db" "SELECT count(*) FILTER (WHERE state = 'completed'), count(*) FROM oban_jobs WHERE id > $SEED" |
        tr '|' '\t' >"$dir/totals.tsv"
    printf 'sync=%s\nt0=%s\nhold_start=%s\nhold_end=%s\nwarmup=%s\nbefore=%s\nhold=%s\nafter=%s\ninterval=%s\n' \
        "$sync" "$t0" "$th0" "$th1" "$WARMUP" "$BEFORE" "$HOLD" "$AFTER" "$INTERVAL" >"$dir/meta.txt"
    grep -E 'automatic vacuum of table "bloat_small\.public\.oban_jobs"' "$WORK/cluster/server.log" >"$dir/autovacuum.log" || true
    : >"$WORK/cluster/server.log"
    q "$db" "TRUNCATE oban_jobs RESTART IDENTITY"
}

# ---- part "finished" ------------------------------------------------------------------------------
# One session: a warm-up call of each (the first call of a session loads catalogs and plans), then the
# measured call under EXPLAIN (ANALYZE, BUFFERS) (whose buffers include the statements the function runs
# inside) with auto_explain showing those inner statements' plans (stderr, into DETAIL-FILE). Summary
# lines "@@ LABEL" followed by the measured call's Buffers and Execution Time go to stdout.
explain_session() { # db label detail-file
    local db=$1 label=$2 detail=$3 ex="EXPLAIN (ANALYZE, BUFFERS, TIMING OFF, SUMMARY ON)" call
    {
        echo "SET client_min_messages = notice;"
        echo "SELECT count(*) FROM oban_fetch_jobs('default', 10, '$label-warm');"
        echo "SELECT oban_ack_jobs(coalesce(jsonb_agg(jsonb_build_object('id', id, 'state', 'completed')), '[]')) FROM oban_jobs WHERE state = 'executing' AND attempted_by[1] = '$label-warm';"
        for call in "oban_stage_jobs()" "oban_rescue_jobs()" "oban_prune_jobs()" "oban_repair_workflows()"; do
            [ "$label" = probe ] || echo "SELECT $call;"
        done
        echo "LOAD 'auto_explain'; SET auto_explain.log_min_duration = 0; SET auto_explain.log_level = notice;"
        echo "SET auto_explain.log_nested_statements = on; SET auto_explain.log_analyze = on;"
        echo "SET auto_explain.log_buffers = on; SET auto_explain.log_timing = off;"
        echo "\\echo @@ oban_fetch_jobs"
        echo "$ex SELECT count(*) FROM oban_fetch_jobs('default', 10, '$label');"
        echo "SELECT coalesce(array_agg(id), '{}') AS ids FROM oban_jobs WHERE state = 'executing' AND attempted_by[1] = '$label' \\gset"
        echo "\\echo @@ oban_ack_jobs"
        echo "$ex SELECT oban_ack_jobs(coalesce(jsonb_agg(jsonb_build_object('id', id, 'state', 'completed')), '[]')) FROM unnest(:'ids'::bigint[]) id;"
        if [ "$label" != probe ]; then
            for call in "oban_stage_jobs()" "oban_rescue_jobs()" "oban_prune_jobs()" "oban_repair_workflows()"; do
                echo "\\echo @@ $call"
                echo "$ex SELECT $call;"
            done
        fi
    } | "${PSQL[@]}" -At -d "$db" 2>"$detail" | grep -E '^@@|Buffers: shared|Execution Time' | grep -vE '^ {3,}' || true
}

diagnose_finished() { # summary-file detail-dir: plans and maintenance costs in both databases
    local out=$1 detail=$2 db
    for db in bloat_small bloat_big; do
        q "$db" "SELECT count(*) FROM oban_insert_jobs((SELECT jsonb_agg(jsonb_build_object('worker', 'Bench.Worker', 'args', jsonb_build_object('n', g))) FROM generate_series(1, 100) g))" >/dev/null
        {
            echo "=== $db: $(q "$db" "SELECT count(*) FROM oban_jobs") jobs, of which finished: $(q "$db" "SELECT count(*) FROM oban_jobs WHERE state IN ('completed', 'discarded', 'cancelled')"), available: 100 (just inserted)"
            explain_session "$db" diag "$detail/diagnosis-$db.txt"
        } >>"$out"
        q "$db" "DELETE FROM oban_jobs WHERE (args->>'old') IS NULL AND id > $SEED" >/dev/null
        q "$db" "VACUUM ANALYZE oban_jobs"
    done
    # Pruning as the worker does it (one long session): 12 calls with nothing expired (does the plan
    # stay on the partial indexes once Postgres may switch to a generic one?), then 3 calls with a
    # backlog (jobs finished more than 6 hours ago: about half of bloat_big's), each deleting 10,000.
    local ex="EXPLAIN (ANALYZE, BUFFERS, TIMING OFF, SUMMARY ON)" i
    {
        echo "=== bloat_big pruning: oban_prune_jobs in one session; expired before 6 hours: $(q bloat_big "SELECT count(*) FROM oban_jobs WHERE completed_at <= timezone('UTC', now()) - interval '6 hours' OR discarded_at <= timezone('UTC', now()) - interval '6 hours' OR cancelled_at <= timezone('UTC', now()) - interval '6 hours'")"
        for i in $(seq 1 12); do
            echo "\\echo @@ prune nothing expired, call $i"
            echo "$ex SELECT oban_prune_jobs('1 day', 10000);"
        done
        for i in 1 2 3; do
            echo "\\echo @@ prune a backlog, call $i"
            echo "$ex SELECT oban_prune_jobs('6 hours', 10000);"
        done
    } | { read -r title; echo "$title" >>"$out"; "${PSQL[@]}" -At -d bloat_big 2>&1 | grep -E '^@@|Buffers: shared|Execution Time' | grep -vE '^ {3,}' >>"$out" || true; }
}

finished_part() { # sync
    local sync=$1 dir="$RUN_DIR/finished-$1" round db order
    mkdir -p "$dir"
    chown postgres: "$dir"
    log "finished part, synchronous_commit=$sync: $ROUNDS rounds of ${DURATION}s, small (seed $SEED) vs big (seed + $FINISHED finished)"
    printf 'sync\tround\tdb\tcompleted\tinserted\tseconds\n' >"$dir/runs.tsv"
    for round in $(seq 1 "$ROUNDS"); do
        if [ $((round % 2)) = 1 ]; then order="bloat_small bloat_big"; else order="bloat_big bloat_small"; fi
        for db in $order; do
            local base completed inserted
            base=$(q "$db" "SELECT coalesce(max(id), 0) FROM oban_jobs")
            q postgres "CHECKPOINT"
            local logpos
            logpos=$(stat -c %s "$WORK/cluster/server.log")
            run_pgbench "$db" "$DURATION" "$dir/r$round-$db" "$dir/r$round-$db.out" ||
                { echo "pgbench failed:" >&2; tail -n 30 "$dir/r$round-$db.out" >&2; exit 1; }
            # The server log of the run: its autovacuum passes (log_autovacuum_min_duration = 0).
            tail -c +$((logpos + 1)) "$WORK/cluster/server.log" >"$dir/r$round-$db.server.log"
            read -r completed inserted <<<"$(q "$db" "SELECT count(*) FILTER (WHERE state = 'completed'), count(*)
                                                       FROM oban_jobs WHERE id > $base" | tr '|' ' ')"
            printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$sync" "$round" "$db" "$completed" "$inserted" "$DURATION" >>"$dir/runs.tsv"
            printf '  sync=%-3s round %d  %-11s %7s jobs/s\n' "$sync" "$round" "$db" "$((completed / DURATION))"
            q "$db" "DELETE FROM oban_jobs WHERE id > $base"
            q "$db" "VACUUM ANALYZE oban_jobs"
        done
    done
}

setup_finished() {
    log "finished part: seeding bloat_small with $SEED completed jobs, bloat_big with $SEED + $FINISHED finished jobs"
    for db in bloat_small bloat_big; do
        q "$db" "TRUNCATE oban_jobs RESTART IDENTITY"
        [ "$SEED" -gt 0 ] && seed_completed "$db" "$SEED"
    done
    local t=$SECONDS
    seed_finished bloat_big "$FINISHED"
    for db in bloat_small bloat_big; do q "$db" "VACUUM ANALYZE oban_jobs"; done
    echo "   ($((SECONDS - t)) s; bloat_big's oban_jobs: $(q bloat_big "SELECT pg_size_pretty(pg_relation_size('oban_jobs')) || ' heap, ' || pg_size_pretty(pg_indexes_size('oban_jobs')) || ' indexes'"))"
    q bloat_big "SELECT state, count(*) FROM oban_jobs GROUP BY 1 ORDER BY 1" >"$RUN_DIR/finished-states.txt"
}

for part in $PARTS; do
    [ "$part" = finished ] && setup_finished
    for sync in $SYNC_MODES; do
        for db in bloat_small bloat_big; do q postgres "ALTER DATABASE $db SET synchronous_commit = $sync"; done
        case $part in
        snapshot) snapshot_part "$sync" ;;
        finished) finished_part "$sync" ;;
        esac
    done
    if [ "$part" = finished ]; then
        log "finished part: plans and maintenance costs"
        diagnose_finished "$RUN_DIR/finished-diagnosis.txt" "$RUN_DIR"
    fi
done
echo "load_end=$(cut -d' ' -f1-3 /proc/loadavg)" >>"$RUN_DIR/meta.txt"

log "results (also in $MD)"
python3 "$BENCH_DIR/bloat_report.py" "$RUN_DIR" >"$MD"
cat "$MD"
