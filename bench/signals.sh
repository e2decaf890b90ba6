#!/usr/bin/env bash
# Durable signals benchmark (issue 6), on a throwaway cluster with oban_pro preloaded:
#  1. wake latency: ROUNDTRIPS blocked oban_await_signal calls, each woken by another session's
#     signal + COMMIT (bench/signal_latency.c, libpq, one clock), under synchronous_commit on and off;
#  2. throughput, side by side and interleaved over ROUNDS rounds per synchronous_commit mode:
#     (a) plain   insert → fetch → complete                              (signal_plain.sql)
#     (b) signal  insert → fetch → await (parks) → signal → fetch → await (received) → complete
#                                                                        (signal_roundtrip.sql)
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
gcc -O2 -Wall -o "$WORK/signal_latency" "$BENCH_DIR/signal_latency.c" -I"$(pg_config --includedir)" -lpq
cp "$BENCH_DIR"/signal_plain.sql "$BENCH_DIR"/signal_roundtrip.sql "$WORK/" && chown postgres: "$WORK"/*.sql

echo "# oban_pro signals benchmark, $(date -u +%FT%TZ), $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "## Wake latency ($ROUNDTRIPS round trips per mode)"
for mode in $SYNC_MODES; do
    echo "synchronous_commit = $mode"
    as_postgres env PGOPTIONS="-c synchronous_commit=$mode" "$WORK/signal_latency" "$ROUNDTRIPS"
done
as_postgres psql -X -q -c "TRUNCATE oban_jobs RESTART IDENTITY"

run() {  # run SCRIPT MODE -> jobs/s
    as_postgres psql -X -q -c "TRUNCATE oban_jobs RESTART IDENTITY"
    if [ "$SEED" -gt 0 ]; then seed_finished_jobs bench_signals "$SEED"
    else as_postgres psql -X -q -c "VACUUM ANALYZE oban_jobs"; fi
    as_postgres psql -X -q -c "CHECKPOINT"
    as_postgres env PGOPTIONS="-c synchronous_commit=$2" "$PG_BIN/pgbench" -n -M prepared -c "$CLIENTS" -j "$THREADS" \
        -T "$DURATION" -f "$WORK/$1" > "$WORK/pgbench.log" 2>&1 || { cat "$WORK/pgbench.log" >&2; exit 1; }
    local done
    done=$(as_postgres psql -X -At -c "SELECT count(*) - $SEED FROM oban_jobs WHERE state = 'completed'")
    awk -v n="$done" -v d="$DURATION" 'BEGIN { printf "%.0f", n / d }'
}
median() { tr ' ' '\n' | sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

echo
echo "## Throughput (jobs/s; $ROUNDS interleaved rounds of ${DURATION}s per mode, $CLIENTS clients)"
echo
echo "| synchronous_commit | (a) plain: insert, fetch, complete | (b) signal round trip | (b)/(a) | runs (a) | runs (b) |"
echo "|---|---|---|---|---|---|"
for mode in $SYNC_MODES; do
    plain=() signal=()
    for round in $(seq "$ROUNDS"); do
        for script in $(rotated "$round" signal_plain.sql signal_roundtrip.sql); do
            if [ "$script" = signal_plain.sql ]; then plain+=("$(run "$script" "$mode")"); else signal+=("$(run "$script" "$mode")"); fi
        done
    done
    p=$(echo "${plain[*]}" | median)
    s=$(echo "${signal[*]}" | median)
    echo "| $mode | $p | $s | $(awk -v a="$p" -v b="$s" 'BEGIN { printf "%.2f", b / a }') | ${plain[*]} | ${signal[*]} |"
done
