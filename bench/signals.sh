#!/usr/bin/env bash
# Durable signals benchmark (issue 6), on a throwaway cluster with oban_pro preloaded:
#  1. wake latency: ROUNDTRIPS blocked oban_await_signal calls, each woken by another session's
#     signal + COMMIT (bench/signal_latency.c, libpq, one clock), under synchronous_commit on and off;
#  2. throughput, side by side and interleaved over ROUNDS rounds per synchronous_commit mode:
#     (a) plain   insert → fetch → complete                              (signal_plain.sql)
#     (b) signal  insert → fetch → await (parks) → signal → fetch → await (received) → complete
#                                                                        (signal_roundtrip.sql)
#     (c) floor plain, (d) floor signal: (a) and (b)'s calls as the least plain SQL that does them, on a
#         plain table with a mailbox and nothing else, each fetch by the job's id (signal_floor_plain.sql,
#         signal_floor_roundtrip.sql):
#         (d)/(c) is what seven calls against three allow any implementation, with no wait or wake-up.
#     (e) ceiling: (b) with its awaits and its signal as the least plain SQL on the extension's own
#         tables, its insert, fetches and complete through the API as in (b) (signal_ceiling.sql):
#         (e)/(a) is what any oban_await_signal and oban_signal could reach against (a).
#     pgbench -n -M prepared -c CLIENTS -j THREADS -T DURATION; jobs/s = completed jobs / DURATION.
# Prints medians and the ratio (b)/(a). Run under `flock /work/bench.lock`.
# Each throughput run starts from SEED (10000) completed jobs + VACUUM ANALYZE, as bench/run.sh does: on
# an empty, just-analyzed table the prepared and kept plans are made for a table of no rows.
# Knobs: ROUNDTRIPS=1000 ROUNDS=3 DURATION=10 CLIENTS=4 THREADS=2 SYNC_MODES="on off" SEED=10000
set -euo pipefail
BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$BENCH_DIR/../scripts/lib.sh"
ROUNDTRIPS=${ROUNDTRIPS:-1000}
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
CLIENTS=${CLIENTS:-4}
THREADS=${THREADS:-2}
SYNC_MODES=${SYNC_MODES:-on off}
SEED=${SEED:-10000}

ensure_packages
build_and_install
WORK=$(make_workdir)
trap 'stop_cluster; rm -rf "$WORK"' EXIT
CLUSTER_EXTRA_CONF="oban_pro.database = 'bench_signals'" start_cluster "$WORK/cluster"
export PGDATABASE=bench_signals
as_postgres psql -X -q -d postgres -c "CREATE DATABASE bench_signals"
as_postgres psql -X -q -c "CREATE EXTENSION oban_pro"
as_postgres psql -X -q -d postgres -c "CREATE DATABASE bench_signal_floor"
as_postgres env PGOPTIONS="-c client_min_messages=warning" psql -X -q -v ON_ERROR_STOP=1 -d bench_signal_floor \
    -f "$BENCH_DIR/plain_schema.sql" \
    -c "CREATE TABLE signal_mailbox (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                                     job_id bigint NOT NULL, payload jsonb NOT NULL)" \
    -c "CREATE INDEX ON signal_mailbox (job_id, id)"
gcc -O2 -Wall -o "$WORK/signal_latency" "$BENCH_DIR/signal_latency.c" -I"$(pg_config --includedir)" -lpq
cp "$BENCH_DIR"/signal_plain.sql "$BENCH_DIR"/signal_roundtrip.sql "$BENCH_DIR"/signal_floor_plain.sql \
    "$BENCH_DIR"/signal_floor_roundtrip.sql "$BENCH_DIR"/signal_ceiling.sql "$WORK/" && chown postgres: "$WORK"/*.sql

echo "# oban_pro signals benchmark, $(date -u +%FT%TZ), $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "## Wake latency ($ROUNDTRIPS round trips per mode)"
for mode in $SYNC_MODES; do
    echo "synchronous_commit = $mode"
    as_postgres env PGOPTIONS="-c synchronous_commit=$mode" "$WORK/signal_latency" "$ROUNDTRIPS"
done
as_postgres psql -X -q -c "TRUNCATE oban_jobs RESTART IDENTITY"

run() {  # run SCRIPT MODE -> jobs/s (the floor's scripts on their own database)
    local db=bench_signals
    case $1 in signal_floor_*) db=bench_signal_floor ;; esac
    as_postgres psql -X -q -d "$db" -c "TRUNCATE oban_jobs RESTART IDENTITY"
    if [ "$db" = bench_signal_floor ]; then as_postgres psql -X -q -d "$db" -c "TRUNCATE signal_mailbox"; fi
    if [ "$SEED" -gt 0 ]; then seed_finished_jobs "$db" "$SEED"
    else as_postgres psql -X -q -d "$db" -c "VACUUM ANALYZE oban_jobs"; fi
    as_postgres psql -X -q -c "CHECKPOINT"
    as_postgres env PGOPTIONS="-c synchronous_commit=$2" "$PG_BIN/pgbench" -n -M prepared -c "$CLIENTS" -j "$THREADS" \
        -T "$DURATION" -f "$WORK/$1" "$db" > "$WORK/pgbench.log" 2>&1 || { cat "$WORK/pgbench.log" >&2; exit 1; }
    local done
    done=$(as_postgres psql -X -At -d "$db" -c "SELECT count(*) - $SEED FROM oban_jobs WHERE state = 'completed'")
    awk -v n="$done" -v d="$DURATION" 'BEGIN { printf "%.0f", n / d }'
}
median() { tr ' ' '\n' | sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

echo
echo "## Throughput (jobs/s; $ROUNDS interleaved rounds of ${DURATION}s per mode, $CLIENTS clients)"
echo
echo "| synchronous_commit | (a) plain: insert, fetch, complete | (b) signal round trip | (b)/(a) | (c) floor plain | (d) floor signal | (d)/(c) | (e) ceiling | (e)/(a) | (b)/(e) | runs (a) | runs (b) | runs (c) | runs (d) | runs (e) |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b / a }'; }
for mode in $SYNC_MODES; do
    plain=() signal=() floor_plain=() floor_signal=() ceiling=()
    for round in $(seq "$ROUNDS"); do
        for script in $(rotated "$round" signal_plain.sql signal_roundtrip.sql signal_floor_plain.sql signal_floor_roundtrip.sql signal_ceiling.sql); do
            jobs=$(run "$script" "$mode")
            case $script in
            signal_plain.sql) plain+=("$jobs") ;;
            signal_roundtrip.sql) signal+=("$jobs") ;;
            signal_floor_plain.sql) floor_plain+=("$jobs") ;;
            signal_floor_roundtrip.sql) floor_signal+=("$jobs") ;;
            signal_ceiling.sql) ceiling+=("$jobs") ;;
            esac
        done
    done
    p=$(echo "${plain[*]}" | median)
    s=$(echo "${signal[*]}" | median)
    fp=$(echo "${floor_plain[*]}" | median)
    fs=$(echo "${floor_signal[*]}" | median)
    ce=$(echo "${ceiling[*]}" | median)
    echo "| $mode | $p | $s | $(ratio "$p" "$s") | $fp | $fs | $(ratio "$fp" "$fs") | $ce | $(ratio "$p" "$ce") | $(ratio "$ce" "$s") | ${plain[*]} | ${signal[*]} | ${floor_plain[*]} | ${floor_signal[*]} | ${ceiling[*]} |"
done
