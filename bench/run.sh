#!/usr/bin/env bash
# The job-lifecycle benchmark: three contenders side by side on one throwaway cluster, interleaved.
#
#   (a) plain    oban-py's SQL on a plain table, no extension              (database bench_plain)
#       plain_oban_py: the same on the table as oban-py's install leaves it (also its cancelled_at
#                    and discarded_at indexes and its autovacuum settings, as the extension's table
#                    has them; plain_schema_oban_py.sql)                 (database bench_plain_py)
#   (b) ext_sql  the same SQL on the extension's table, triggers active    (database bench_ext)
#   (c) ext_api  the extension's functions: oban_insert_job x10 per transaction; oban_fetch_jobs(10)
#                then the acks in a second transaction                     (database bench_ext too)
#
# Each run: TRUNCATE, seed SEED completed jobs + VACUUM ANALYZE, CHECKPOINT, then
#   pgbench -n -M prepared -c 8 -j 2 -T $DURATION -f <produce>@1 -f <consume>@1
# and jobs/s = jobs in state 'completed' at the end (seeded rows excluded) / DURATION.
# Rounds interleave the contenders (a,b,c, then b,c,a, then c,a,b, ...: each takes every position in
# turn) under synchronous_commit=on, then =off; the
# medians and the ratios to (a) are printed and written as markdown under bench/out/.
#
# Usage (as root): bash bench/run.sh
# Knobs (environment):
#   ROUNDS=3            rounds per synchronous_commit mode
#   DURATION=10         seconds per pgbench run
#   SYNC_MODES="on off" synchronous_commit values to measure, in this order
#   CONTENDERS="plain ext_sql ext_api"
#                       also available: plain_oban_py (see above), ext_api_ack, ext_api_complete, ext_api_insert_each,
#                       ext_api_insert_batch (variants of (c) by name), ext_api_ackfetch (ack + next
#                       fetch in one oban_ack_fetch_jobs transaction: not the two-transaction shape)
#                       and hybrid (extension fetch + the baseline's plain UPDATE ack, diagnostic);
#                       ext_sql_maint, ext_api_maint: ext_sql / ext_api with the worker's maintenance on
#                       (oban_pro.maintenance = on during their runs, off during the others'; needs WORKER=1)
#                       ext_sql_novacuum, ext_api_novacuum: ext_sql / ext_api with oban_pro.vacuum_jobs off
#                       during their runs (on during the others'; needs WORKER=1): what the worker's vacuum
#                       of oban_jobs is worth, side by side
#   MAINT_INTERVAL=5s   with a *_maint contender: oban_pro.prune_interval, rescue_interval and
#                       repair_interval (default 1min each), so every duty runs within each run;
#                       stage_interval stays at its default (1s)
#   EXT_ACK=ack         how ext_api acks: "ack" (one oban_ack_jobs call with the 10 acks) or
#                       "complete" (oban_complete_job per id)
#   EXT_INSERT=auto     how ext_api inserts: "each" (oban_insert_job x10 in one statement), "batch"
#                       (one oban_insert_jobs call, its JSON built on the server by the script),
#                       "param" (one oban_insert_jobs call, its JSON sent as a parameter, as a client
#                       sends it), "auto" (param when the extension has oban_insert_jobs)
#   SEED=10000          completed jobs inserted (then VACUUM ANALYZE) after each TRUNCATE, so every
#                       plan is made from real statistics (see README.md); 0 = start each run on the
#                       empty, never-analyzed table (plans then depend on timing)
#   CLIENTS=8 THREADS=2 pgbench -c / -j
#   WARMUP=2            seconds of one untimed run per contender before the first round (0: none)
#   WORKER=1            1: point the extension's background worker at bench_ext (oban_pro.database, as a
#                       deployment would; it then sends the insert notifications after commit);
#                       0: leave oban_pro.database at its default ('postgres')
#   MAX_OTHER_CPU=0     each run records how much CPU other processes on the machine used meanwhile;
#                       N > 0: run again (up to MAX_ATTEMPTS=3 tries) when that exceeds N% of the CPUs
#   CLEAN_CPU=5         the summary also gives the paired ratios over the rounds in which no run saw
#                       more than this much CPU used by other processes
#   STATS=0             1: preload pg_stat_statements and save each run's top statements next to its log
#   OUT_DIR=bench/out   where logs, the raw TSV and the markdown table go
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../scripts/lib.sh
source "$BENCH_DIR/../scripts/lib.sh"

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
SYNC_MODES=${SYNC_MODES:-on off}
CONTENDERS=${CONTENDERS:-plain ext_sql ext_api}
EXT_ACK=${EXT_ACK:-ack}
EXT_INSERT=${EXT_INSERT:-auto}
SEED=${SEED:-10000}
CLIENTS=${CLIENTS:-8}
THREADS=${THREADS:-2}
STATS=${STATS:-0}
WARMUP=${WARMUP:-2}
WORKER=${WORKER:-1}
MAX_OTHER_CPU=${MAX_OTHER_CPU:-0}
MAINT_INTERVAL=${MAINT_INTERVAL:-5s}
MAX_ATTEMPTS=${MAX_ATTEMPTS:-3}
CLEAN_CPU=${CLEAN_CPU:-5}
OUT_DIR=${OUT_DIR:-$BENCH_DIR/out}

case $EXT_ACK in ack | complete) ;; *) echo "EXT_ACK must be ack or complete" >&2; exit 2 ;; esac
case $EXT_INSERT in auto | each | batch | param) ;; *) echo "EXT_INSERT must be auto, each, batch or param" >&2; exit 2 ;; esac
for n in ROUNDS DURATION SEED CLIENTS THREADS WARMUP WORKER STATS MAX_OTHER_CPU MAX_ATTEMPTS CLEAN_CPU; do
    [[ ${!n} =~ ^[0-9]+$ ]] || { echo "$n must be a non-negative integer" >&2; exit 2; }
done
[ "$ROUNDS" -ge 1 ] && [ "$DURATION" -ge 1 ] || { echo "ROUNDS and DURATION must be >= 1" >&2; exit 2; }

# contender -> "database produce-script consume-script label"
EXT_PRODUCE=ext_produce.sql # replaced once EXT_INSERT is resolved
contender() {
    local i=${EXT_PRODUCE#ext_produce}
    i=${i%.sql}
    i=${i:-_each}
    case $1 in
    plain) echo "bench_plain plain_produce.sql plain_consume.sql (a)_plain_table,_oban-py_SQL" ;;
    plain_oban_py) echo "bench_plain_py plain_produce.sql plain_consume.sql (a')_oban-py's_own_table_(install.sql),_oban-py_SQL" ;;
    ext_sql) echo "bench_ext plain_produce.sql plain_consume.sql (b)_extension_table,_oban-py_SQL" ;;
    ext_api) echo "bench_ext $EXT_PRODUCE ext_consume_$EXT_ACK.sql (c)_extension_API_(insert${i},_$EXT_ACK)" ;;
    ext_sql_maint) echo "bench_ext plain_produce.sql plain_consume.sql (b)_with_maintenance_on" ;;
    ext_api_maint) echo "bench_ext $EXT_PRODUCE ext_consume_$EXT_ACK.sql (c)_with_maintenance_on" ;;
    ext_sql_novacuum) echo "bench_ext plain_produce.sql plain_consume.sql (b)_with_vacuum_jobs_off" ;;
    ext_api_novacuum) echo "bench_ext $EXT_PRODUCE ext_consume_$EXT_ACK.sql (c)_with_vacuum_jobs_off" ;;
    ext_api_ack) echo "bench_ext $EXT_PRODUCE ext_consume_ack.sql (c)_extension_API_(insert${i},_ack)" ;;
    ext_api_complete) echo "bench_ext $EXT_PRODUCE ext_consume_complete.sql (c)_extension_API_(insert${i},_complete)" ;;
    ext_api_insert_each) echo "bench_ext ext_produce.sql ext_consume_$EXT_ACK.sql (c)_extension_API_(insert_each,_$EXT_ACK)" ;;
    ext_api_insert_batch) echo "bench_ext ext_produce_batch.sql ext_consume_$EXT_ACK.sql (c)_extension_API_(insert_batch,_$EXT_ACK)" ;;
    ext_api_insert_param) echo "bench_ext ext_produce_param.sql ext_consume_$EXT_ACK.sql (c)_extension_API_(insert_param,_$EXT_ACK)" ;;
    ext_api_ackfetch) echo "bench_ext $EXT_PRODUCE ext_consume_ackfetch.sql not_(c):_API,_ack+fetch_in_1_transaction" ;;
    hybrid) echo "bench_ext $EXT_PRODUCE hybrid_consume.sql diag:_API_fetch_+_plain_UPDATE_ack" ;;
    *) echo "unknown contender $1" >&2; return 1 ;;
    esac
}
for c in $CONTENDERS; do contender "$c" >/dev/null; done
[[ " $CONTENDERS " == *" plain "* ]] || { echo "CONTENDERS must include plain (the baseline)" >&2; exit 2; }

STAMP=$(date -u +%Y%m%d-%H%M%S)
RUN_DIR="$OUT_DIR/$STAMP"
mkdir -p "$RUN_DIR"
RAW="$RUN_DIR/raw.tsv"
MD="$OUT_DIR/results-$STAMP.md"

ensure_packages
COMMIT=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo '?')
DIRTY=$(git -C "$REPO" status --porcelain -- src sql 2>/dev/null | awk '{ print $2 }' | paste -sd' ' - || true)
build_and_install

WORK=$(make_workdir)
cleanup() {
    local rc=$?
    if [ "$rc" != 0 ] && [ -f "$WORK/cluster/server.log" ]; then
        echo "run.sh failed (exit $rc); the server log ends with:" >&2
        tail -n 20 "$WORK/cluster/server.log" >&2
    fi
    stop_cluster
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log "starting a throwaway cluster in $WORK/cluster"
start_cluster "$WORK/cluster"

PSQL=(psql -X -q -v ON_ERROR_STOP=1)
q() { local db=$1; shift; "${PSQL[@]}" -At -d "$db" -c "$*"; }

log "creating databases"
for db in bench_plain bench_plain_py bench_ext; do q postgres "CREATE DATABASE $db"; done
PGOPTIONS="-c client_min_messages=warning" "${PSQL[@]}" -d bench_plain -f "$BENCH_DIR/plain_schema.sql"
PGOPTIONS="-c client_min_messages=warning" "${PSQL[@]}" -d bench_plain_py -f "$BENCH_DIR/plain_schema_oban_py.sql"
q bench_ext "CREATE EXTENSION oban_pro"

# The extension's background worker serves one database (oban_pro.database, fixed at server start):
# point it at bench_ext, as a deployment points it at the application's database.
RESTART=0
WORKER_NOTE="none in this build"
if [ "$(q postgres "SELECT count(*) FROM pg_settings WHERE name = 'oban_pro.database'")" = 1 ]; then
    if [ "$WORKER" = 1 ]; then
        q postgres "ALTER SYSTEM SET oban_pro.database = 'bench_ext'"
        RESTART=1
    fi
    WORKER_NOTE="oban_pro.database = '$(q postgres "SHOW oban_pro.database")'"
fi
if [ "$STATS" = 1 ]; then
    cat >>"$CLUSTER_DIR/data/postgresql.conf" <<CONF
shared_preload_libraries = 'oban_pro,pg_stat_statements'
pg_stat_statements.track = all
CONF
    RESTART=1
fi
if [ "$RESTART" = 1 ]; then
    as_postgres "$PG_BIN/pg_ctl" -D "$CLUSTER_DIR/data" -l "$CLUSTER_DIR/server.log" -w restart >/dev/null
fi
if [ "$STATS" = 1 ]; then
    for db in bench_plain bench_plain_py bench_ext; do q "$db" "CREATE EXTENSION pg_stat_statements"; done
fi
if [[ $WORKER_NOTE == oban_pro.database* ]]; then
    WORKER_NOTE="oban_pro.database = '$(q postgres "SHOW oban_pro.database")'"
    for _ in $(seq 1 50); do
        [ "$(q postgres "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'oban_pro worker' AND datname = 'bench_ext'")" -ge 1 ] && break
        sleep 0.2
    done
    if [ "$(q postgres "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'oban_pro worker' AND datname = 'bench_ext'")" -ge 1 ]; then
        WORKER_NOTE="$WORKER_NOTE, its worker running in bench_ext"
    else
        WORKER_NOTE="$WORKER_NOTE, no worker in bench_ext"
    fi
fi
log "background worker: $WORKER_NOTE"

# Maintenance (oban_pro.maintenance) is on during the runs of the *_maint contenders only: toggled
# with a reload before each run, the worker picks it up at once.
MAINT=0
[[ " $CONTENDERS " == *"_maint "* ]] && MAINT=1
MAINT_NOW=""
if [ "$MAINT" = 1 ]; then
    [ "$(q postgres "SELECT count(*) FROM pg_settings WHERE name = 'oban_pro.maintenance'")" = 1 ] ||
        { echo "*_maint contenders: this build has no oban_pro.maintenance" >&2; exit 2; }
    [[ $WORKER_NOTE == *"worker running in bench_ext"* ]] ||
        { echo "*_maint contenders need the worker in bench_ext (WORKER=1)" >&2; exit 2; }
    for g in prune_interval rescue_interval repair_interval; do
        q postgres "ALTER SYSTEM SET oban_pro.$g = '$MAINT_INTERVAL'"
    done
    q postgres "SELECT pg_reload_conf()" >/dev/null
    WORKER_NOTE="$WORKER_NOTE; maintenance on during the *_maint runs only (stage_interval $(q postgres "SHOW oban_pro.stage_interval"), prune/rescue/repair every $MAINT_INTERVAL, prune_max_age $(q postgres "SHOW oban_pro.prune_max_age"))"
fi
# The worker's vacuum of oban_jobs (oban_pro.vacuum_jobs) is off during the runs of the *_novacuum
# contenders only, toggled the same way.
NOVAC=0
[[ " $CONTENDERS " == *"_novacuum "* ]] && NOVAC=1
VACUUM_NOW=""
if [ "$NOVAC" = 1 ]; then
    [ "$(q postgres "SELECT count(*) FROM pg_settings WHERE name = 'oban_pro.vacuum_jobs'")" = 1 ] ||
        { echo "*_novacuum contenders: this build has no oban_pro.vacuum_jobs" >&2; exit 2; }
    [[ $WORKER_NOTE == *"worker running in bench_ext"* ]] ||
        { echo "*_novacuum contenders need the worker in bench_ext (WORKER=1)" >&2; exit 2; }
    WORKER_NOTE="$WORKER_NOTE; oban_pro.vacuum_jobs off during the *_novacuum runs only"
fi
set_worker_settings() { # set_worker_settings CONTENDER: maintenance on for *_maint, vacuum_jobs off for *_novacuum
    local want=off
    [[ $1 == *_maint ]] && want=on
    if [ "$MAINT" = 1 ] && [ "$want" != "$MAINT_NOW" ]; then
        q postgres "ALTER SYSTEM SET oban_pro.maintenance = $want"
        q postgres "SELECT pg_reload_conf()" >/dev/null
        MAINT_NOW=$want
        sleep 0.2
    fi
    want=on
    [[ $1 == *_novacuum ]] && want=off
    if [ "$NOVAC" = 1 ] && [ "$want" != "$VACUUM_NOW" ]; then
        q postgres "ALTER SYSTEM SET oban_pro.vacuum_jobs = $want"
        q postgres "SELECT pg_reload_conf()" >/dev/null
        VACUUM_NOW=$want
        sleep 0.2
    fi
}

shape() {
    q "$1" "SELECT (SELECT count(*) FROM pg_index WHERE indrelid = 'oban_jobs'::regclass) || ' indexes, '
                || (SELECT count(*) FROM pg_trigger WHERE tgrelid = 'oban_jobs'::regclass AND NOT tgisinternal)
                || ' triggers'
                || coalesce(' (' || (SELECT string_agg(tgname, ', ' ORDER BY tgname) FROM pg_trigger
                                     WHERE tgrelid = 'oban_jobs'::regclass AND NOT tgisinternal) || ')', '')"
}
has_function() { [ "$(q bench_ext "SELECT to_regprocedure('$1') IS NOT NULL")" = t ]; }
if [ "$EXT_INSERT" = auto ]; then
    if has_function 'oban_insert_jobs(jsonb)'; then EXT_INSERT=param; else EXT_INSERT=each; fi
fi
case $EXT_INSERT in
batch) EXT_PRODUCE=ext_produce_batch.sql ;;
param) EXT_PRODUCE=ext_produce_param.sql ;;
*) EXT_PRODUCE=ext_produce.sql ;;
esac
for c in $CONTENDERS; do
    case $c in
    ext_api_insert_batch | ext_api_insert_param) has_function 'oban_insert_jobs(jsonb)' || { echo "$c: this build has no oban_insert_jobs(jsonb)" >&2; exit 2; } ;;
    ext_api_ackfetch) has_function 'oban_ack_fetch_jobs(jsonb,text,integer,text,uuid)' || { echo "$c: this build has no oban_ack_fetch_jobs" >&2; exit 2; } ;;
    esac
done
[[ $EXT_INSERT == batch || $EXT_INSERT == param ]] && ! has_function 'oban_insert_jobs(jsonb)' && { echo "EXT_INSERT=batch: this build has no oban_insert_jobs(jsonb)" >&2; exit 2; }
EXT_SHAPE=$(shape bench_ext)
PLAIN_SHAPE=$(shape bench_plain)

# Empty the table (and anything autovacuum still has to do on it), optionally seed it, checkpoint.
prepare_table() {
    local db=$1
    q "$db" "TRUNCATE oban_jobs RESTART IDENTITY"
    seed_finished_jobs "$db" "$SEED"
    [ "$STATS" = 1 ] && q "$db" "SELECT pg_stat_statements_reset()" >/dev/null
    q postgres "CHECKPOINT"
}

# pgbench's extra arguments for contender $1, one per line: ext_consume_ackfetch.sql acks the ids of
# the client's previous cycle (none before the first); ext_produce_param.sql sends its batch as the
# parameter :jobs, the 10 jobs plain_produce.sql inserts.
PARAM_JOBS=$(python3 -c 'import json; print(json.dumps([{"worker": "Bench.Worker", "args": {"n": g}} for g in range(1, 11)], separators=(",", ":")))')
extra_args() {
    [ "$1" = ext_api_ackfetch ] && printf '%s\n' "-Dids={}"
    [[ $(contender "$1") == *ext_produce_param.sql* ]] && printf '%s\n' "-Djobs=$PARAM_JOBS"
    true
}

field() { # field FILE REGEX AWK-FIELD: first matching line's field, or 0
    local v
    v=$(grep -m1 -E "$2" "$1" | awk -v f="$3" '{print $f}' || true)
    echo "${v:-0}"
}

printf 'sync\tround\tcontender\tjobs_s\tcompleted\tinserted\ttps\tfailed\tdeadlocks\tserialization\taborted\tlat_produce_ms\tlat_consume_ms\texit\tother_cpu_pct\tattempts\n' >"$RAW"

# CPU used by anything else on the machine during a run: busy ticks of all CPUs minus those of this
# script's children (pgbench, psql) and of our cluster's processes.
busy_ticks() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9 }' /proc/stat; }
our_ticks() { echo $(($(proc_ticks $$ 1) + $(cluster_ticks))); }

run_one() {
    local sync=$1 round=$2 c=$3
    local db produce consume label
    read -r db produce consume label <<<"$(contender "$c")"
    local logf="$RUN_DIR/$sync-r$round-$c.log" rc other attempt=0
    while :; do
        attempt=$((attempt + 1))
        rc=0
        set_worker_settings "$c"
        prepare_table "$db"
        {
            echo "# $(date -u +%FT%TZ) db=$db synchronous_commit=$(q "$db" 'SHOW synchronous_commit') oban_pro.maintenance=${MAINT_NOW:-n/a} oban_pro.vacuum_jobs=${VACUUM_NOW:-n/a} attempt=$attempt"
            echo "# pgbench -n -M prepared -c $CLIENTS -j $THREADS -T $DURATION --failures-detailed $(extra_args "$c" | tr '\n' ' ')-f $produce@1 -f $consume@1 $db"
        } >"$logf"
        local b0 o0 t0 b1 o1 t1
        b0=$(busy_ticks); o0=$(our_ticks); t0=$(date +%s.%N)
        local -a extra
        mapfile -t extra < <(extra_args "$c")
        (cd "$BENCH_DIR" && pgbench -n -M prepared -c "$CLIENTS" -j "$THREADS" -T "$DURATION" --failures-detailed \
            "${extra[@]}" -f "$produce@1" -f "$consume@1" "$db") >>"$logf" 2>&1 || rc=$?
        b1=$(busy_ticks); o1=$(our_ticks); t1=$(date +%s.%N)
        other=$(awk -v b="$((b1 - b0))" -v o="$((o1 - o0))" -v s="$(awk -v a="$t0" -v z="$t1" 'BEGIN { print z - a }')" \
            -v n="$(nproc)" -v hz="$HZ" 'BEGIN { v = 100 * (b - o) / (n * s * hz); printf "%.0f", (v < 0) ? 0 : v }')
        echo "# CPU used by other processes during the run: $other% of the machine" >>"$logf"
        if [ "$MAX_OTHER_CPU" -gt 0 ] && [ "$other" -gt "$MAX_OTHER_CPU" ] && [ "$attempt" -lt "$MAX_ATTEMPTS" ]; then
            printf '  sync=%-3s round %d  %-17s other processes used %s%% of the CPUs: run again\n' "$sync" "$round" "$c" "$other"
            q "$db" "TRUNCATE oban_jobs RESTART IDENTITY"
            sleep 5
            continue
        fi
        break
    done

    local completed inserted
    read -r completed inserted <<<"$(q "$db" "SELECT count(*) FILTER (WHERE state = 'completed') - $SEED,
                                                      count(*) - $SEED FROM oban_jobs" | tr '|' ' ')"
    if [ "$STATS" = 1 ]; then
        q "$db" "SELECT calls, round(total_exec_time::numeric, 1) AS total_ms, round(mean_exec_time::numeric, 3) AS mean_ms,
                        rows, shared_blks_hit + shared_blks_read AS blocks,
                        round((shared_blks_hit + shared_blks_read)::numeric / greatest(calls, 1), 1) AS blocks_per_call,
                        regexp_replace(query, '\s+', ' ', 'g') AS query
                 FROM pg_stat_statements
                 WHERE calls > 1 AND dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
                 ORDER BY total_exec_time DESC LIMIT 8" \
            >"$RUN_DIR/$sync-r$round-$c.statements.txt"
    fi
    # Nothing of this run is left for autovacuum to chew on during the next one.
    q "$db" "TRUNCATE oban_jobs RESTART IDENTITY"

    local jobs_s tps failed deadlocks serial aborted lp lc
    jobs_s=$(awk -v n="$completed" -v d="$DURATION" 'BEGIN { printf "%.0f", n / d }')
    tps=$(field "$logf" '^tps = ' 3)
    failed=$(field "$logf" '^number of failed transactions' 5)
    deadlocks=$(field "$logf" '^number of deadlock failures' 5)
    serial=$(field "$logf" '^number of serialization failures' 5)
    aborted=$(grep -c 'aborted' "$logf" || true)
    lp=$(grep -E '^ - latency average' "$logf" | sed -n 1p | awk '{print $5}')
    lc=$(grep -E '^ - latency average' "$logf" | sed -n 2p | awk '{print $5}')
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$sync" "$round" "$c" "$jobs_s" "$completed" \
        "$inserted" "$tps" "$failed" "$deadlocks" "$serial" "$aborted" "${lp:-?}" "${lc:-?}" "$rc" "$other" "$attempt" >>"$RAW"
    printf '  sync=%-3s round %d  %-17s %7s jobs/s  (inserted %s, failed %s, deadlocks %s, aborted %s, latency produce/consume %s/%s ms, other CPU %s%%%s)\n' \
        "$sync" "$round" "$c" "$jobs_s" "$inserted" "$failed" "$deadlocks" "$aborted" "${lp:-?}" "${lc:-?}" "$other" \
        "$([ "$rc" = 0 ] || echo ", pgbench exit $rc: see $logf")"
}

# Other PostgreSQL servers or builds running on this machine skew everything: record the load.
others() { ps -eo args= | grep -E '^(\S*/lib/postgresql/[0-9]+/bin/)?postgres -D' | grep -vc -- "-D $CLUSTER_DIR/data" || true; }
idle_pct() { # share of CPU time idle over 2 s, from /proc/stat
    local a b
    a=($(head -1 /proc/stat)); sleep 2; b=($(head -1 /proc/stat))
    awk -v i1="${a[4]}" -v i2="${b[4]}" -v t1="$(IFS=+; echo "$((${a[*]:1}))")" -v t2="$(IFS=+; echo "$((${b[*]:1}))")" \
        'BEGIN { printf "%.0f", (t2 > t1) ? 100 * (i2 - i1) / (t2 - t1) : 100 }'
}
IDLE_START=$(idle_pct)
[ "$IDLE_START" -ge 80 ] || echo "WARNING: the CPUs were only ${IDLE_START}% idle before the runs: something else is running, figures will be skewed" >&2
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
OTHERS_START=$(others)

if [ "$WARMUP" -gt 0 ]; then
    log "warm-up: ${WARMUP}s per contender, not counted"
    for c in $CONTENDERS; do
        read -r db produce consume _ <<<"$(contender "$c")"
        set_worker_settings "$c"
        prepare_table "$db"
        mapfile -t extra < <(extra_args "$c")
        (cd "$BENCH_DIR" && pgbench -n -M prepared -c "$CLIENTS" -j "$THREADS" -T "$WARMUP" \
            "${extra[@]}" -f "$produce@1" -f "$consume@1" "$db") >"$RUN_DIR/warmup-$c.log" 2>&1 ||
            { echo "warm-up of $c failed:" >&2; cat "$RUN_DIR/warmup-$c.log" >&2; exit 1; }
        q "$db" "TRUNCATE oban_jobs RESTART IDENTITY"
    done
fi

runs=$(( ROUNDS * $(wc -w <<<"$SYNC_MODES") * $(wc -w <<<"$CONTENDERS") ))
log "$runs runs of ${DURATION}s: $ROUNDS rounds x synchronous_commit {$SYNC_MODES} x {$CONTENDERS}, $CLIENTS clients, seed $SEED"
for sync in $SYNC_MODES; do
    for db in bench_plain bench_plain_py bench_ext; do
        q postgres "ALTER DATABASE $db SET synchronous_commit = $sync"
    done
    for round in $(seq 1 "$ROUNDS"); do
        for c in $(rotated "$round" $CONTENDERS); do run_one "$sync" "$round" "$c"; done
    done
done

LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)
OTHERS_END=$(others)

# ---- summary ----------------------------------------------------------------------------------------
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print 0; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
col() { # col SYNC CONTENDER COLUMN-NUMBER: that column of the matching raw rows, one a line
    awk -F'\t' -v s="$1" -v c="$2" -v k="$3" 'NR > 1 && $1 == s && $3 == c { print $k }' "$RAW"
}
sumcol() { col "$@" | awk '{ t += $1 } END { print t + 0 }'; }

{
    echo "## oban_pro job-lifecycle benchmark, $(date -u '+%F %H:%M UTC')"
    echo
    echo "$(nproc) cores, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo), $(pgbench --version | sed 's/pgbench (PostgreSQL) //'); " \
        "\`pgbench -n -M prepared -c $CLIENTS -j $THREADS -T $DURATION -f produce@1 -f consume@1\`, $ROUNDS rounds interleaved," \
        "seed $SEED completed jobs; ext_api inserts with \`$EXT_PRODUCE\` and acks with \`ext_consume_$EXT_ACK.sql\`."
    echo "oban_pro built from commit $COMMIT${DIRTY:+, with uncommitted changes in: $DIRTY}." \
        "Extension's oban_jobs: $EXT_SHAPE; plain oban_jobs: $PLAIN_SHAPE. Background worker: $WORKER_NOTE."
    echo "Before the runs the CPUs were ${IDLE_START}% idle (over 2 s). Load average (1/5/15 min) at the start: $LOAD_START, at the end: $LOAD_END; other PostgreSQL servers running: $OTHERS_START at the start, $OTHERS_END at the end."
    echo "Metric: jobs in state 'completed' at the end / $DURATION s. Ratios: median / median of (a); in brackets the median of the per-round ratios."
    echo
    echo "| synchronous_commit | contender | median jobs/s | runs (jobs/s) | ratio to (a) | failed tx | deadlocks | aborted clients | median latency produce / consume (ms) | other processes' CPU, per run (%) |"
    echo "|---|---|---:|---|---:|---:|---:|---:|---|---|"
    for sync in $SYNC_MODES; do
        base=$(col "$sync" plain 4 | median)
        for c in $CONTENDERS; do
            read -r _ _ _ label <<<"$(contender "$c")"
            med=$(col "$sync" "$c" 4 | median | xargs printf '%.0f')
            runs_list=$(col "$sync" "$c" 4 | paste -sd, - | sed 's/,/, /g')
            if [ "$c" = plain ]; then
                ratio="1.00"
            else
                paired=$(paste <(col "$sync" "$c" 4) <(col "$sync" plain 4) |
                    awk '$2 > 0 { printf "%.4f\n", $1 / $2 }' | median)
                ratio=$(awk -v m="$med" -v b="$base" -v p="$paired" 'BEGIN { if (b > 0) printf "%.2f [%.2f]", m / b, p; else print "n/a" }')
            fi
            echo "| $sync | ${label//_/ } | $med | $runs_list | $ratio | $(sumcol "$sync" "$c" 8) | $(sumcol "$sync" "$c" 9) | $(sumcol "$sync" "$c" 11) | $(col "$sync" "$c" 12 | median | xargs printf '%.2f') / $(col "$sync" "$c" 13 | median | xargs printf '%.2f') | $(col "$sync" "$c" 15 | paste -sd, - | sed 's/,/, /g') |"
        done
    done
    echo
    # Rounds in which no run shared the machine with much else: their paired ratios are the cleanest.
    echo "Clean rounds (every run of the round saw at most ${CLEAN_CPU}% of the CPUs used by other processes):"
    for sync in $SYNC_MODES; do
        awk -F'\t' -v s="$sync" -v lim="$CLEAN_CPU" -v list="$CONTENDERS" '
            NR > 1 && $1 == s { v[$2, $3] = $4; if ($15 > lim) dirty[$2] = 1; rounds[$2] = 1; if ($2 + 0 > maxr) maxr = $2 + 0 }
            END {
                n = split(list, cs, " "); clean = ""; k = 0
                for (r = 1; r <= maxr; r++) if ((r in rounds) && !(r in dirty)) { clean = clean " " r; k++ }
                line = "- synchronous_commit=" s ": " k " clean round(s)" (k ? " (" substr(clean, 2) ")" : "")
                if (k) for (i = 1; i <= n; i++) if (cs[i] != "plain") {
                    m = 0; delete x
                    for (r in rounds) if (!(r in dirty) && v[r, "plain"] > 0) x[++m] = v[r, cs[i]] / v[r, "plain"]
                    for (a = 1; a <= m; a++) for (b = a + 1; b <= m; b++) if (x[b] < x[a]) { t = x[a]; x[a] = x[b]; x[b] = t }
                    med = (m % 2) ? x[(m + 1) / 2] : (x[m / 2] + x[m / 2 + 1]) / 2
                    line = line sprintf("; %s/plain %.2f", cs[i], med)
                }
                print line
            }' "$RAW"
    done
    echo
    retried=$(awk -F'\t' 'NR > 1 && $16 > 1 { n++ } END { print n + 0 }' "$RAW")
    [ "$retried" -gt 0 ] && echo "$retried run(s) were repeated because other processes used more than $MAX_OTHER_CPU% of the CPUs (MAX_OTHER_CPU); the table has the last attempt." && echo
    echo "Targets: (b)/(a) >= 0.95, (c)/(a) >= 1.00; with maintenance on >= 0.95 of the same contender with it off."
    for sync in $SYNC_MODES; do
        for c in $CONTENDERS; do
            [[ $c == *_maint ]] || continue
            off=${c%_maint}
            [[ " $CONTENDERS " == *" $off "* ]] || continue
            paired=$(paste <(col "$sync" "$c" 4) <(col "$sync" "$off" 4) | awk '$2 > 0 { printf "%.4f\n", $1 / $2 }' | median)
            awk -v m="$(col "$sync" "$c" 4 | median)" -v b="$(col "$sync" "$off" 4 | median)" -v p="$paired" -v c="$c" -v o="$off" -v s="$sync" 'BEGIN {
                r = (b > 0) ? m / b : 0
                printf "- synchronous_commit=%s, maintenance on/off: %s/%s = %.2f [paired %.2f]: %s (bar 0.95)\n", s, c, o, r, p, (r >= 0.95) ? "meets" : "MISSES" }'
        done
        for c in $CONTENDERS; do  # no bar: what the worker's vacuum of oban_jobs is worth
            [[ $c == *_novacuum ]] || continue
            on=${c%_novacuum}
            [[ " $CONTENDERS " == *" $on "* ]] || continue
            paired=$(paste <(col "$sync" "$on" 4) <(col "$sync" "$c" 4) | awk '$2 > 0 { printf "%.4f\n", $1 / $2 }' | median)
            awk -v m="$(col "$sync" "$on" 4 | median)" -v b="$(col "$sync" "$c" 4 | median)" -v p="$paired" -v c="$c" -v o="$on" -v s="$sync" 'BEGIN {
                printf "- synchronous_commit=%s, vacuum_jobs on/off: %s/%s = %.2f [paired %.2f]\n", s, o, c, (b > 0) ? m / b : 0, p }'
        done
        base=$(col "$sync" plain 4 | median)
        for c in $CONTENDERS; do
            [ "$c" = plain ] && continue
            case $c in ext_sql) bar=0.95 ;; hybrid | ext_api_ackfetch | *_maint | *_novacuum | plain_oban_py) continue ;; *) bar=1.00 ;; esac
            med=$(col "$sync" "$c" 4 | median)
            awk -v m="$med" -v b="$base" -v bar="$bar" -v c="$c" -v s="$sync" 'BEGIN {
                r = (b > 0) ? m / b : 0
                printf "- synchronous_commit=%s, %s/plain = %.2f: %s (bar %s)\n", s, c, r, (r >= bar) ? "meets" : "MISSES", bar }'
        done
        # Like for like: the extension's table has oban-py's own indexes and autovacuum settings.
        if [[ " $CONTENDERS " == *" plain_oban_py "* && " $CONTENDERS " == *" ext_sql "* ]]; then
            paired=$(paste <(col "$sync" ext_sql 4) <(col "$sync" plain_oban_py 4) | awk '$2 > 0 { printf "%.4f\n", $1 / $2 }' | median)
            awk -v m="$(col "$sync" ext_sql 4 | median)" -v b="$(col "$sync" plain_oban_py 4 | median)" -v p="$paired" -v s="$sync" 'BEGIN {
                r = (b > 0) ? m / b : 0
                printf "- synchronous_commit=%s, ext_sql/plain_oban_py (same table, triggers the difference) = %.2f [paired %.2f]: %s (bar 0.95)\n", s, r, p, (r >= 0.95) ? "meets" : "MISSES" }'
        fi
    done
    echo
    echo "Raw rows: \`${RAW#"$BENCH_DIR"/}\`; pgbench logs next to it."
} >"$MD"

log "results (also in $MD)"
cat "$MD"
