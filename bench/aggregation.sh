#!/usr/bin/env bash
# Workflow-status aggregation benchmark (issue 4), side by side on one throwaway cluster, as root:
#   bash bench/aggregation.sh
# Jobs carry workflow meta but no deps, so only the aggregation is measured. 8 clients, producers
# insert 10 jobs per transaction, consumers fetch 10 and complete them (oban-py's SQL, the baselines):
#   plain        the plain table, no workflow meta                       (baseline)
#   one          the extension, every job in ONE workflow
#   many         the extension, jobs spread over 100,000 workflows
#   naive-one    the plain table + a PL/pgSQL trigger updating one counter row per workflow
#   naive-many   the same, 100,000 workflows
# Besides jobs/s, each run reports the cluster's CPU time per completed job (all its processes, the
# background worker's folds, vacuums and checkpoints included; not pgbench's): with
# synchronous_commit on, jobs/s is bound by WAL flushes, and this column shows what the work cost.
# It is as noisy as jobs/s from run to run (a checkpoint lands in one run's CPU): compare medians.
# With BREAKDOWN=1, two more contenders split what `many` costs over `plain` (a diagnosis: the
# second changes the extension's objects in agg_ext for the length of its run, and puts them back):
#   ext-plain     the extension's table, jobs without workflow meta
#   many-notrack  many, with the workflow triggers disabled (no deltas, steps, journal or fold)
# then oban_workflow_status server-side time (EXPLAIN ANALYZE, median of STATUS_RUNS) for a workflow
# of 100 jobs and one of BIG_JOBS jobs with 20 sub-workflows.
# Knobs: ROUNDS (3), DURATION (8 s), SYNC ("on off"), BIG_JOBS (1000000), STATUS_RUNS (50),
# STATUS_ONLY (0; 1 measures only the status latency), SEED (10000 completed plain jobs seeded before
# each run, as in run.sh), BREAKDOWN (0).
set -euo pipefail
BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$BENCH_DIR/../scripts/lib.sh"
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-8}
SYNC=${SYNC-on off}
BIG_JOBS=${BIG_JOBS:-1000000}
STATUS_RUNS=${STATUS_RUNS:-50}
SEED=${SEED:-10000}
BREAKDOWN=${BREAKDOWN:-0}
CONTENDERS="plain one many naive-one naive-many"
[ "$BREAKDOWN" = 1 ] && CONTENDERS="$CONTENDERS ext-plain many-notrack"
[ "${STATUS_ONLY:-0}" = 1 ] && SYNC=""

ensure_packages
build_and_install
WORK=$(make_workdir)
trap 'stop_cluster; rm -rf "$WORK"' EXIT
CLUSTER_EXTRA_CONF="oban_pro.database = 'agg_ext'" start_cluster "$WORK/cluster"

q() { local db=$1; shift; psql -X -q -v ON_ERROR_STOP=1 -At -d "$db" -c "$*"; }
for db in agg_plain agg_naive agg_ext; do q postgres "CREATE DATABASE $db" >/dev/null; done
for db in agg_plain agg_naive; do
    PGOPTIONS="-c client_min_messages=warning" psql -X -q -v ON_ERROR_STOP=1 -d "$db" \
        -f "$BENCH_DIR/plain_schema.sql" >/dev/null
done
psql -X -q -v ON_ERROR_STOP=1 -d agg_naive -f "$BENCH_DIR/naive_counter_trigger.sql" >/dev/null
q agg_ext "CREATE EXTENSION oban_pro" >/dev/null

S=$WORK/scripts
mkdir -p "$S"
cp "$BENCH_DIR"/plain_produce.sql "$BENCH_DIR"/plain_consume.sql "$BENCH_DIR"/produce_one_workflow.sql \
   "$BENCH_DIR"/produce_many_workflows.sql "$S/"
chmod -R a+rX "$WORK"

# The workflow triggers that many-notrack disables (src/pg/aggregation.cpp, update_trigger.cpp).
TRACKING_TRIGGERS="oban_jobs_workflow_insert oban_jobs_state_changed oban_jobs_workflow_delete oban_jobs_workflow_journal"
# run_without CONTENDER DISABLE|ENABLE: takes away (or puts back) what the breakdown contender runs without.
run_without() {
    local trigger
    if [ "$1" = many-notrack ]; then
        for trigger in $TRACKING_TRIGGERS; do q agg_ext "ALTER TABLE oban_jobs $2 TRIGGER $trigger" >/dev/null; done
    fi
}

# run CONTENDER DB PRODUCE → "jobs_per_s failed deadlocks cpu_us_per_job"
run() {
    local contender=$1 db=$2 produce=$3
    q "$db" "TRUNCATE oban_jobs" >/dev/null
    [ "$db" = agg_naive ] && q "$db" "TRUNCATE oban_workflows" >/dev/null
    # Seeded as bench/run.sh does: on an empty, just-analyzed table the clients' cached plans are a
    # lottery (seen here: a fetch planned as sequential scans and a nested loop over the whole table).
    seed_finished_jobs "$db" "$SEED"
    run_without "$contender" DISABLE
    # The backends of the psql calls above, and then of pgbench's clients, have exited and been
    # waited for by the postmaster (cluster_ticks counts them there) before each reading.
    sleep 0.5
    local ticks0 ticks1
    ticks0=$(cluster_ticks)
    as_postgres pgbench -n -M prepared -c 8 -j 2 -T "$DURATION" -f "$S/$produce@1" -f "$S/plain_consume.sql@1" \
        "$db" >"$WORK/pgbench.log" 2>&1 || true
    sleep 0.5
    ticks1=$(cluster_ticks)
    run_without "$contender" ENABLE
    local completed failed deadlocks
    completed=$(q "$db" "SELECT count(*) - $SEED FROM oban_jobs WHERE state = 'completed'")
    failed=$(sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' "$WORK/pgbench.log")
    deadlocks=$(grep -c 'deadlock detected' "$WORK/pgbench.log" || true)
    echo "$((completed / DURATION)) ${failed:-0} $deadlocks $(((ticks1 - ticks0) * 1000000 / HZ / (completed > 0 ? completed : 1)))"
}

RESULTS=$WORK/results.tsv
: >"$RESULTS"
for sync in $SYNC; do
    q postgres "ALTER SYSTEM SET synchronous_commit = $sync" >/dev/null
    q postgres "SELECT pg_reload_conf()" >/dev/null
    for round in $(seq "$ROUNDS"); do
        line="sync=$sync round $round:"
        # shellcheck disable=SC2086
        for contender in $(rotated "$round" $CONTENDERS); do
            case $contender in
            plain) args="agg_plain plain_produce.sql" ;;
            one) args="agg_ext produce_one_workflow.sql" ;;
            many | many-notrack) args="agg_ext produce_many_workflows.sql" ;;
            naive-one) args="agg_naive produce_one_workflow.sql" ;;
            naive-many) args="agg_naive produce_many_workflows.sql" ;;
            ext-plain) args="agg_ext plain_produce.sql" ;;
            esac
            # shellcheck disable=SC2086
            read -r jps failed dl cpu <<<"$(run $contender $args)"
            printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$sync" "$contender" "$jps" "$failed" "$dl" "$cpu" >>"$RESULTS"
            line="$line $contender=$jps"
        done
        echo "$line"
    done
done

# Status latency: a small workflow, and a big one with 20 sub-workflows.
q agg_ext "TRUNCATE oban_jobs" >/dev/null
q agg_ext "INSERT INTO oban_jobs (worker, state, meta)
           SELECT 'W', 'completed', jsonb_build_object('workflow_id', 'small', 'name', 'j' || n) FROM generate_series(1, 100) n" >/dev/null
q agg_ext "INSERT INTO oban_jobs (worker, meta)
           SELECT 'W', jsonb_build_object('workflow_id', 'big', 'name', 'j' || n) FROM generate_series(1, $BIG_JOBS / 2) n" >/dev/null
q agg_ext "INSERT INTO oban_jobs (worker, state, meta)
           SELECT 'W', 'completed', jsonb_build_object('workflow_id', 'big-sub-' || (n % 20), 'sup_workflow_id', 'big',
                                                       'sub_name', 'sub' || (n % 20), 'name', 'j' || n)
           FROM generate_series(1, $BIG_JOBS / 2) n" >/dev/null
# The same shape at 100 jobs: 80 in the top workflow, 1 in each of 20 sub-workflows, so the two
# big-vs-small ratios separate what grows with the jobs (nothing should) from what grows with
# the sub-workflows (the status object itself: 21 nested objects instead of 1).
q agg_ext "INSERT INTO oban_jobs (worker, state, meta)
           SELECT 'W', 'completed', jsonb_build_object('workflow_id', 'small-subs', 'name', 'j' || n)
           FROM generate_series(1, 80) n" >/dev/null
q agg_ext "INSERT INTO oban_jobs (worker, state, meta)
           SELECT 'W', 'completed', jsonb_build_object('workflow_id', 'small-subs-sub-' || n, 'sup_workflow_id', 'small-subs',
                                                       'sub_name', 'sub' || n, 'name', 'j' || n)
           FROM generate_series(1, 20) n" >/dev/null
q agg_ext "SELECT oban_flush_workflows()" >/dev/null
q agg_ext "VACUUM ANALYZE" >/dev/null
# The inserts left a million rows' pages dirty: written now, not by a checkpoint during the timings.
q agg_ext "CHECKPOINT" >/dev/null
# Median server-side time of oban_workflow_status over STATUS_RUNS calls in one session (after one
# warm-up call, so plans are made once, as in a long-lived client connection).
status_ms() {
    psql -X -q -At -d agg_ext -c "DO \$\$
        DECLARE started timestamptz; times float8[] := '{}';
        BEGIN
            PERFORM oban_workflow_status('$1');
            FOR i IN 1..$STATUS_RUNS LOOP
                started := clock_timestamp();
                PERFORM oban_workflow_status('$1');
                times := times || extract(epoch FROM clock_timestamp() - started) * 1000;
            END LOOP;
            RAISE NOTICE '%', (SELECT round(percentile_cont(0.5) WITHIN GROUP (ORDER BY t)::numeric, 3) FROM unnest(times) t);
        END \$\$" 2>&1 | sed -n 's/^NOTICE:  //p'
}
small_ms=$(status_ms small)
small_subs_ms=$(status_ms small-subs)
big_ms=$(status_ms big)
big_total=$(q agg_ext "SELECT oban_workflow_status('big')->'total'")

echo
[ -n "$SYNC" ] && echo "| synchronous_commit | contender | median jobs/s | runs | ratio to plain | CPU µs/job (median) | runs | plain's CPU/job ÷ this | failed tx | deadlocks |"
[ -n "$SYNC" ] &&
echo "|---|---|---:|---|---:|---:|---|---:|---:|---:|"
median_of() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
for sync in $SYNC; do
    base=$(awk -F'\t' -v s="$sync" '$1==s && $2=="plain" {print $3}' "$RESULTS" | median_of)
    base_cpu=$(awk -F'\t' -v s="$sync" '$1==s && $2=="plain" {print $6}' "$RESULTS" | median_of)
    for contender in $CONTENDERS; do
        rows=$(awk -F'\t' -v s="$sync" -v c="$contender" '$1==s && $2==c' "$RESULTS")
        med=$(echo "$rows" | cut -f3 | median_of)
        cpu=$(echo "$rows" | cut -f6 | median_of)
        echo "| $sync | $contender | $med | $(echo "$rows" | cut -f3 | paste -sd, -) | $(python3 -c "print(f'{$med / $base:.2f}')") | $cpu | $(echo "$rows" | cut -f6 | paste -sd, -) | $(python3 -c "print(f'{$base_cpu / $cpu:.2f}')") | $(echo "$rows" | cut -f4 | awk '{s+=$1} END {print s}') | $(echo "$rows" | cut -f5 | awk '{s+=$1} END {print s}') |"
    done
done
echo
echo "oban_workflow_status server-side execution time (median of $STATUS_RUNS): 100-job workflow ${small_ms} ms;" \
     "${big_total}-job workflow with 20 sub-workflows ${big_ms} ms; ratio $(python3 -c "print(f'{$big_ms / $small_ms:.2f}')");" \
     "100-job workflow with 20 sub-workflows ${small_subs_ms} ms; big/that $(python3 -c "print(f'{$big_ms / $small_subs_ms:.2f}')")"
