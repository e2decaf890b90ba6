#!/usr/bin/env bash
# Workflow benchmarks (issue 3), side by side on one throwaway cluster, as root:
#   bash bench/workflows.sh
# (i)  many small workflows (a mix of 10-step chains and 10-step diamonds) inserted by producers and
#      run by consumers, 8 clients: completed jobs/s, against the plain-job lifecycle (oban-py's SQL
#      on a plain table) in the same rounds; the workflows are inserted two ways, by
#      oban_insert_workflow (`workflows`) and by a plain INSERT of jobs carrying workflow meta, as
#      Oban Pro's Elixir client does (`workflows_insert`);
# (ii) a 10,000 → 1 fan-in: the 10,000 acks, by 8 clients fetching and acking 10 at a time, against
#      10,000 independent jobs acked the same way; and the time from the last dep's ack committing to
#      the join becoming available (the background worker releases it), p50 and max over FANIN_RUNS.
# (i) also runs three chain-only contenders that bound what any implementation can reach:
#      `workflows_chain` (oban_insert_workflow, chains only), and the same chains in plain SQL with no
#      workflow machinery at all (`floor_plain`: the plain table plus Oban Pro's workflow index;
#      `floor_ext`: the extension's table with its workflow triggers disabled). A floor inserts each
#      chain with its ids drawn first, every step after the first `suspended` with its successor's id
#      in meta, and the statement that completes a step releases its successor by primary key: the
#      least work a dependent released by an UPDATE can cost, with nothing tracked, counted or isolated.
#      A fourth, `floor_counted`, runs floor_ext's SQL with the workflow triggers enabled: the
#      workflows' counts kept exact (the journal, its folds, oban_workflows) and nothing else, no deps
#      tracked and the release not isolated from the ack. It bounds every design that keeps the
#      counts SPEC §4's status reads: what is left between it and `workflows_chain` is the cost of
#      tracking deps and releasing them exactly once, apart from the ack.
# Every run also counts deadlocks and serialization failures. Knobs: ROUNDS (3), DURATION (10 s),
# FANIN (10000), FANIN_RUNS (5), SYNC (on off), SEED (10000 completed jobs seeded before each (i) run,
# as in run.sh), KEEP_LOG (a path: the server log is copied there at exit).
set -euo pipefail
BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$BENCH_DIR/../scripts/lib.sh"
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
FANIN=${FANIN:-10000}
FANIN_RUNS=${FANIN_RUNS:-5}
SEED=${SEED:-10000}
SYNC=${SYNC:-on off}

ensure_packages
build_and_install
WORK=$(make_workdir)
trap '[ -n "${KEEP_LOG:-}" ] && cp "$WORK/cluster/server.log" "$KEEP_LOG"; stop_cluster; rm -rf "$WORK"' EXIT
CLUSTER_EXTRA_CONF="oban_pro.database = 'bench_wf'" start_cluster "$WORK/cluster"

q() { local db=$1; shift; psql -X -q -v ON_ERROR_STOP=1 -At -d "$db" -c "$*"; }
q postgres "CREATE DATABASE bench_plain" >/dev/null
q postgres "CREATE DATABASE bench_wf" >/dev/null
PGOPTIONS="-c client_min_messages=warning" psql -X -q -v ON_ERROR_STOP=1 -d bench_plain \
    -f "$BENCH_DIR/plain_schema.sql" >/dev/null
q bench_wf "CREATE EXTENSION oban_pro" >/dev/null
q postgres "CREATE DATABASE bench_floor" >/dev/null
PGOPTIONS="-c client_min_messages=warning" psql -X -q -v ON_ERROR_STOP=1 -d bench_floor \
    -f "$BENCH_DIR/plain_schema.sql" >/dev/null
q bench_floor "CREATE INDEX oban_jobs_workflow_index ON oban_jobs ((meta->>'workflow_id'), (meta->>'name'), state)
               WHERE meta ? 'workflow_id'" >/dev/null
sleep 1  # the worker notices the extension on its next round

S=$WORK/scripts
mkdir -p "$S"
cp "$BENCH_DIR/plain_produce.sql" "$BENCH_DIR/plain_consume.sql" "$S/"
# One 10-step workflow per transaction: a chain a1 → … → a10, or a diamond a → b1…b8 → z.
chain=$(python3 -c 'import json; print(json.dumps({"jobs": [{"name": f"a{i}", "worker": "Bench.Worker", **({"deps": [f"a{i-1}"]} if i > 1 else {})} for i in range(1, 11)]}))')
diamond=$(python3 -c 'import json; print(json.dumps({"jobs": [{"name": "a", "worker": "Bench.Worker"}] + [{"name": f"b{i}", "worker": "Bench.Worker", "deps": ["a"]} for i in range(1, 9)] + [{"name": "z", "worker": "Bench.Worker", "deps": [f"b{i}" for i in range(1, 9)]}]}))')
cat > "$S/wf_produce.sql" <<SQL
\set kind random(0, 1)
SELECT count(*) FROM oban_insert_workflow(CASE WHEN :kind = 0 THEN '$chain' ELSE '$diamond' END::jsonb);
SQL
# The same workflows inserted as Oban Pro's Elixir client does, one plain multi-row INSERT of jobs
# carrying workflow meta (workflow_id, name, deps): the extension's triggers resolve the deps.
cat > "$S/wf_produce_insert.sql" <<SQL
\set kind random(0, 1)
INSERT INTO oban_jobs (worker, meta)
SELECT step->>'worker', (step - 'worker') || jsonb_build_object('workflow_id', w.id)
FROM (SELECT gen_random_uuid()::text AS id) AS w,
     jsonb_array_elements((CASE WHEN :kind = 0 THEN '$chain' ELSE '$diamond' END)::jsonb -> 'jobs') AS step;
SQL
cat > "$S/wf_produce_chain.sql" <<SQL
SELECT count(*) FROM oban_insert_workflow('$chain'::jsonb);
SQL
# The floors' chains: step n's meta names step n+1's id ("next"), and its deps are kept under another
# key ("after"), which the extension's insert trigger does not read.
cat > "$S/floor_produce.sql" <<'SQL'
WITH ids AS (SELECT g, nextval('oban_jobs_id_seq') AS id FROM generate_series(1, 11) AS g)
INSERT INTO oban_jobs (id, worker, queue, state, meta) OVERRIDING SYSTEM VALUE
SELECT step.id, 'Bench.Worker', 'default',
       CASE WHEN step.g = 1 THEN 'available' ELSE 'suspended' END::oban_job_state,
       jsonb_build_object('workflow_id', w.id, 'name', 'a' || step.g,
                          'after', CASE WHEN step.g > 1 THEN jsonb_build_array('a' || (step.g - 1)) ELSE '[]' END,
                          'next', CASE WHEN step.g < 10 THEN successor.id END)
FROM (SELECT gen_random_uuid()::text AS id) AS w, ids AS step JOIN ids AS successor ON successor.g = step.g + 1;
SQL
sed '$d' "$S/plain_consume.sql" > "$S/floor_consume.sql"
cat >> "$S/floor_consume.sql" <<'SQL'
WITH done AS (
  UPDATE oban_jobs SET state = 'completed', completed_at = timezone('UTC', now())
  WHERE id = ANY (:ids::bigint[]) RETURNING meta)
UPDATE oban_jobs SET state = 'available'
WHERE id = ANY (ARRAY(SELECT (meta->>'next')::bigint FROM done)) AND state::text = 'suspended';
SQL
chmod -R a+rX "$WORK"

# run_pgbench DB SCRIPTS... → prints "jobs_per_s failed deadlocks"
run_pgbench() {
    local db=$1; shift
    q "$db" "TRUNCATE oban_jobs" >/dev/null
    # Seeded as bench/run.sh does: on an empty, just-analyzed table the clients' cached plans are a
    # lottery (seen here: a fetch planned as sequential scans and a nested loop over the whole table).
    seed_finished_jobs "$db" "$SEED"
    local log=$WORK/pgbench.log
    as_postgres pgbench -n -M prepared -c 8 -j 2 -T "$DURATION" "$@" "$db" >"$log" 2>&1 || true
    local completed failed
    completed=$(q "$db" "SELECT count(*) - $SEED FROM oban_jobs WHERE state = 'completed'")
    failed=$(sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' "$log")
    local deadlocks
    deadlocks=$(grep -c 'deadlock detected\|could not serialize' "$log" || true)
    echo "$((completed / DURATION)) ${failed:-0} $deadlocks"
}

SMALL_CONTENDERS="plain workflows workflows_insert workflows_chain floor_plain floor_ext floor_counted"
# floor_ext: the extension's table without its workflow duties (tracking, counts, releases).
workflow_triggers() {
    local trigger
    for trigger in oban_jobs_workflow_insert oban_jobs_state_changed oban_jobs_workflow_journal oban_jobs_workflow_delete; do
        q bench_wf "ALTER TABLE oban_jobs $1 TRIGGER $trigger" >/dev/null
    done
}

median() { sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : int((a[NR/2] + a[NR/2+1]) / 2)}'; }

RESULTS=$WORK/results.tsv
: >"$RESULTS"
for sync in $SYNC; do
    q postgres "ALTER SYSTEM SET synchronous_commit = $sync" >/dev/null
    q postgres "SELECT pg_reload_conf()" >/dev/null
    sleep 0.5
    for round in $(seq "$ROUNDS"); do
        for kind in $(rotated "$round" $SMALL_CONTENDERS); do
            case $kind in
            plain) read -r jps failed dl <<<"$(run_pgbench bench_plain -f "$S/plain_produce.sql@1" -f "$S/plain_consume.sql@1")" ;;
            workflows) read -r jps failed dl <<<"$(run_pgbench bench_wf -f "$S/wf_produce.sql@1" -f "$S/plain_consume.sql@1")" ;;
            workflows_insert) read -r jps failed dl <<<"$(run_pgbench bench_wf -f "$S/wf_produce_insert.sql@1" -f "$S/plain_consume.sql@1")" ;;
            workflows_chain) read -r jps failed dl <<<"$(run_pgbench bench_wf -f "$S/wf_produce_chain.sql@1" -f "$S/plain_consume.sql@1")" ;;
            floor_plain) read -r jps failed dl <<<"$(run_pgbench bench_floor -f "$S/floor_produce.sql@1" -f "$S/floor_consume.sql@1")" ;;
            floor_ext)
                workflow_triggers DISABLE
                read -r jps failed dl <<<"$(run_pgbench bench_wf -f "$S/floor_produce.sql@1" -f "$S/floor_consume.sql@1")"
                workflow_triggers ENABLE
                ;;
            floor_counted) read -r jps failed dl <<<"$(run_pgbench bench_wf -f "$S/floor_produce.sql@1" -f "$S/floor_consume.sql@1")" ;;
            esac
            printf '%s\tsmall\t%s\t%s\t%s\t%s\n' "$sync" "$kind" "$jps" "$failed" "$dl" >>"$RESULTS"
        done
        echo "sync=$sync round $round: $(tail -n 7 "$RESULTS" | awk -F'\t' '{printf "%s=%s jobs/s  ", $3, $4}')"
    done

    # (ii) fan-in: 10,000 acks, then the join's release latency.
    for round in $(seq "$ROUNDS"); do
        for kind in $(rotated "$round" independent fanin); do
            q bench_wf "TRUNCATE oban_jobs" >/dev/null
            if [ "$kind" = fanin ]; then
                q bench_wf "SELECT count(*) FROM oban_insert_workflow(jsonb_build_object('workflow_id', 'fanin',
                    'jobs', (SELECT jsonb_agg(jsonb_build_object('name', 'd' || n, 'worker', 'Bench.Worker'))
                             FROM generate_series(1, $FANIN) n)
                            || jsonb_build_array(jsonb_build_object('name', 'join', 'worker', 'Bench.Join', 'queue', 'joins',
                                'deps', (SELECT jsonb_agg('d' || n) FROM generate_series(1, $FANIN) n)))))" >/dev/null
            else
                q bench_wf "SELECT count(*) FROM oban_insert_jobs((SELECT jsonb_agg(jsonb_build_object('worker', 'Bench.Worker'))
                            FROM generate_series(1, $FANIN) n))" >/dev/null
            fi
            q bench_wf "VACUUM ANALYZE oban_jobs" >/dev/null
            start=$(date +%s.%N)
            as_postgres pgbench -n -M prepared -c 8 -j 2 -t $((FANIN / 80 + 2)) -f "$S/plain_consume.sql" bench_wf \
                >"$WORK/fanin.log" 2>&1 || true
            while [ "$(q bench_wf "SELECT count(*) FROM oban_jobs WHERE state <> 'completed' AND queue = 'default'")" != 0 ]; do
                as_postgres pgbench -n -M prepared -c 2 -j 2 -t 20 -f "$S/plain_consume.sql" bench_wf >/dev/null 2>&1 || true
            done
            end=$(date +%s.%N)
            dl=$(grep -c 'deadlock detected\|could not serialize' "$WORK/fanin.log" || true)
            acks_per_s=$(python3 -c "print(int($FANIN / ($end - $start)))")
            printf '%s\tfanin\t%s\t%s\t0\t%s\n' "$sync" "$kind" "$acks_per_s" "$dl" >>"$RESULTS"
        done
        echo "sync=$sync fan-in round $round: $(tail -n 2 "$RESULTS" | awk -F'\t' '{printf "%s=%s acks/s  ", $3, $4}')"
    done

    # Release latency: all deps but one done; commit the last ack; poll the join.
    for run in $(seq "$FANIN_RUNS"); do
        q bench_wf "TRUNCATE oban_jobs RESTART IDENTITY" >/dev/null
        q bench_wf "SELECT count(*) FROM oban_insert_workflow(jsonb_build_object('workflow_id', 'latency',
            'jobs', (SELECT jsonb_agg(jsonb_build_object('name', 'd' || n, 'worker', 'Bench.Worker'))
                     FROM generate_series(1, $FANIN) n)
                    || jsonb_build_array(jsonb_build_object('name', 'join', 'worker', 'Bench.Join',
                        'deps', (SELECT jsonb_agg('d' || n) FROM generate_series(1, $FANIN) n)))))" >/dev/null
        q bench_wf "WITH f AS (SELECT id FROM oban_fetch_jobs('default', $FANIN))
                    SELECT oban_ack_jobs(jsonb_agg(jsonb_build_object('id', id, 'state', 'completed')))
                    FROM f WHERE id > 1" >/dev/null
        sleep 1  # let the worker fold the 9,999 acks first
        latency=$(psql -X -q -At -d bench_wf -v join_id=$((FANIN + 1)) <<'SQL'
BEGIN;
SELECT oban_complete_job(1);
COMMIT;
SELECT clock_timestamp() AS committed \gset
SELECT set_config('bench.join_id', :'join_id', false) IS NOT NULL AS configured \gset
DO $$
BEGIN
    FOR i IN 1..20000 LOOP
        EXIT WHEN EXISTS (SELECT FROM oban_jobs WHERE id = current_setting('bench.join_id')::bigint
                                                   AND state = 'available');
        PERFORM pg_sleep(0.0002);
    END LOOP;
END $$;
SELECT round(extract(epoch FROM clock_timestamp() - :'committed'::timestamptz) * 1000, 2);
SQL
)
        latency=$(echo "$latency" | tail -n 1)
        printf '%s\tlatency\tjoin\t%s\t0\t0\n' "$sync" "$latency" >>"$RESULTS"
        echo "sync=$sync latency run $run: ${latency} ms"
    done
done

echo
echo "| synchronous_commit | workload | contender | median | runs | ratio | failed tx | deadlocks/serialization |"
echo "|---|---|---|---:|---|---:|---:|---:|"
for sync in $SYNC; do
    for workload in small fanin; do
        base=""  # the first contender's median: the plain lifecycle, or the independent jobs
        case $workload in small) contenders=$SMALL_CONTENDERS ;; fanin) contenders="independent fanin" ;; esac
        for contender in $contenders; do
            rows=$(awk -F'\t' -v s="$sync" -v w="$workload" -v c="$contender" '$1==s && $2==w && $3==c' "$RESULTS")
            med=$(echo "$rows" | cut -f4 | median)
            runs=$(echo "$rows" | cut -f4 | paste -sd, -)
            failed=$(echo "$rows" | cut -f5 | awk '{s += $1} END {print s}')
            dl=$(echo "$rows" | cut -f6 | awk '{s += $1} END {print s}')
            [ -z "$base" ] && base=$med
            ratio=$(python3 -c "print(f'{$med / $base:.2f}' if $base else '-')")
            unit=$([ "$workload" = small ] && echo "jobs/s" || echo "acks/s")
            echo "| $sync | $workload | $contender | $med $unit | $runs | $ratio | $failed | $dl |"
            declare "median_$contender=$med"
        done
        # What the workflow machinery costs over the floor on the same table, chains all: the whole
        # of it, the counts alone, and the deps' tracking and isolated release beside the counts.
        if [ "$workload" = small ]; then
            for pair in workflows_chain/floor_ext floor_counted/floor_ext workflows_chain/floor_counted; do
                top=median_${pair%/*} bottom=median_${pair#*/}
                echo "| $sync | small | ${pair%/*} ÷ ${pair#*/} | | | $(python3 -c \
                    "print(f'{${!top} / ${!bottom}:.2f}' if ${!bottom} else '-')") | | |"
            done
        fi
    done
    rows=$(awk -F'\t' -v s="$sync" '$1==s && $2=="latency"' "$RESULTS" | cut -f4 | sort -n)
    p50=$(echo "$rows" | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}')
    max=$(echo "$rows" | tail -n 1)
    echo "| $sync | fan-in release latency | last ack commit → join available | p50 $p50 ms | $(echo "$rows" | paste -sd, -) | max $max ms | | |"
done
