#!/usr/bin/env bash
# oban_pro beside its peers, on one throwaway cluster, in one run (issue 10):
#   oban_pro (this checkout, its workflow aggregation active: triggers installed, the background
#   worker serving its database), graphile-worker and pg-boss (installed from npm at bench time into
#   a scratch directory), Skytools PgQ (postgresql-15-pgq3 from Debian).
# Workloads, peers interleaved in every round, under synchronous_commit on and off:
#   (a) steady lifecycle: CLIENTS clients, producers insert 10 jobs per transaction, consumers fetch
#       10 and complete them: completed jobs/s over DURATION;
#   (b) drain: BACKLOG jobs preloaded, CLIENTS consumers fetch 10 and complete until none is left:
#       jobs/s = BACKLOG / time to drain;
#   (c) 4-step diamond workflows (a -> b, c -> d), one per producer transaction, consumers as in (a):
#       workflows/s = workflows whose last step completed / DURATION (oban_pro and pg-boss flows);
#   (d) enqueue-to-start latency at LAT_RATE jobs/s (one job per insert): p50 / p99 of (fetch time -
#       enqueue time), consumers polling every 10 ms when idle, the same way for every peer.
# Usage (as root): bash bench/peers/run.sh     (README.md "Peers" in bench/ has the method)
# Knobs: ROUNDS=2 DURATION=10 SYNC_MODES="on off" CLIENTS=8 THREADS=2 BACKLOG=100000 LAT_RATE=200
#        TICK_RATE=100 (PgQ ticker calls/s in (d); in (a) each producer ticks its queue after its
#        10 events, and (b) is preloaded with a tick after every 10 events: batches of 10, as the
#        other peers' fetches) PEERS="oban graphile pgboss pgq" WORKLOADS="a b c d"
#        GRAPHILE_VERSION=0.18 PGBOSS_VERSION=12 OUT_DIR=bench/peers/out WRITE_RESULTS=0 (1: also
#        replace the peers section of bench/RESULTS.md and bench/peers.png)
#        OBAN_SEED=10000 (completed jobs left in oban_jobs after each reset, as bench/run.sh's SEED:
#        Oban keeps finished jobs until the pruner removes them, so a live table is never empty, and
#        on an empty analyzed table every kept plan of oban_pro's statements is a sequential scan)
#        OBAN_CONSUMER=two (oban_pro's consumer: fetch, then ack, two transactions per batch, as
#        bench/run.sh's contender (c)) or ackfetch (one oban_ack_fetch_jobs call per batch, acking the
#        previous one: oban_consume_ackfetch.sql) — for (a) and (b); the results name the mode
set -euo pipefail
PEERS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BENCH_DIR=$(dirname "$PEERS_DIR")
# shellcheck source=../../scripts/lib.sh
source "$BENCH_DIR/../scripts/lib.sh"

ROUNDS=${ROUNDS:-2}
DURATION=${DURATION:-10}
SYNC_MODES=${SYNC_MODES:-on off}
CLIENTS=${CLIENTS:-8}
THREADS=${THREADS:-2}
BACKLOG=${BACKLOG:-100000}
LAT_RATE=${LAT_RATE:-200}
TICK_RATE=${TICK_RATE:-100}
PEERS=${PEERS:-oban graphile pgboss pgq}
WORKLOADS=${WORKLOADS:-a b c d}
GRAPHILE_VERSION=${GRAPHILE_VERSION:-0.18}
PGBOSS_VERSION=${PGBOSS_VERSION:-12}
OUT_DIR=${OUT_DIR:-$PEERS_DIR/out}
WRITE_RESULTS=${WRITE_RESULTS:-0}
OBAN_SEED=${OBAN_SEED:-10000}
OBAN_CONSUMER=${OBAN_CONSUMER:-two}
case $OBAN_CONSUMER in two | ackfetch) ;; *) echo "OBAN_CONSUMER must be two or ackfetch" >&2; exit 2 ;; esac
for n in ROUNDS DURATION CLIENTS THREADS BACKLOG LAT_RATE TICK_RATE WRITE_RESULTS OBAN_SEED; do
    [[ ${!n} =~ ^[0-9]+$ ]] && [ "${!n}" -ge 0 ] || { echo "$n must be a non-negative integer" >&2; exit 2; }
done
[ $((BACKLOG % (CLIENTS * 10))) = 0 ] || { echo "BACKLOG must be a multiple of CLIENTS * 10" >&2; exit 2; }
[[ " $PEERS " == *" oban "* ]] || { echo "PEERS must include oban" >&2; exit 2; }

STAMP=$(date -u +%Y%m%d-%H%M%S)
RUN_DIR="$OUT_DIR/$STAMP"
mkdir -p "$RUN_DIR"
RAW="$RUN_DIR/raw.tsv"
MD="$OUT_DIR/results-$STAMP.md"
CMD_LINE="$(for v in ROUNDS DURATION SYNC_MODES CLIENTS BACKLOG LAT_RATE TICK_RATE PEERS WORKLOADS OBAN_SEED OBAN_CONSUMER; do printf '%s="%s" ' "$v" "${!v}"; done)bash bench/peers/run.sh"

# ---- packages: PostgreSQL, PgQ, Node and npm, matplotlib --------------------------------------------
ensure_packages
need=()
for p in postgresql-15-pgq3 python3-matplotlib; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need+=("$p")
done
command -v node >/dev/null || need+=(nodejs)
command -v npm >/dev/null || need+=(npm)
if [ ${#need[@]} -gt 0 ]; then
    log "installing ${need[*]} (Debian)"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
# A private PostgreSQL copy (OBAN_PG_ROOT) was made before PgQ was installed: give it PgQ's files.
if [ -n "$PG_ROOT" ]; then
    for f in $(dpkg -L postgresql-15-pgq3 | grep -E '^/usr/(lib|share)/postgresql/15/'); do
        [ -f "$f" ] || continue
        cmp -s "$f" "$PG_ROOT$f" || { mkdir -p "$PG_ROOT$(dirname "$f")"; cp -p "$f" "$PG_ROOT$f"; }
    done
fi
PGQ_DEB=$(dpkg-query -W -f='${Version}' postgresql-15-pgq3)
COMMIT=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo '?')
build_and_install

WORK=$(make_workdir)
SCRATCH=$WORK/npm   # node_modules live here only, removed on exit
SUPERVISOR_PID=""
BG_PIDS=()
cleanup() {
    local rc=$?
    [ -n "$SUPERVISOR_PID" ] && kill "$SUPERVISOR_PID" 2>/dev/null && wait "$SUPERVISOR_PID" 2>/dev/null || true
    for p in "${BG_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    if [ "$rc" != 0 ] && [ -f "${CLUSTER_DIR:-/nonexistent}/server.log" ]; then
        echo "peers/run.sh failed (exit $rc); the server log ends with:" >&2
        tail -n 20 "$CLUSTER_DIR/server.log" >&2
    fi
    if [ -n "${CLUSTER_DIR:-}" ] && [ -f "$CLUSTER_DIR/data/postmaster.pid" ]; then
        for db in bench_oban bench_graphile bench_pgboss bench_pgq; do
            psql -X -q -d postgres -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
        done
    fi
    stop_cluster
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log "installing graphile-worker@$GRAPHILE_VERSION and pg-boss@$PGBOSS_VERSION from npm into $SCRATCH"
mkdir -p "$SCRATCH"
cp "$PEERS_DIR"/*.mjs "$SCRATCH/"
(cd "$SCRATCH" && echo '{"private": true, "type": "module"}' >package.json &&
    npm install --no-audit --no-fund --loglevel=error "graphile-worker@$GRAPHILE_VERSION" "pg-boss@$PGBOSS_VERSION" pg >"$WORK/npm.log" 2>&1) ||
    { cat "$WORK/npm.log" >&2; exit 1; }
GW_VER=$(node -p "require('$SCRATCH/node_modules/graphile-worker/package.json').version")
PB_VER=$(node -p "require('$SCRATCH/node_modules/pg-boss/package.json').version")
NODE_VER=$(node --version)
log "graphile-worker $GW_VER, pg-boss $PB_VER (node $NODE_VER), PgQ $PGQ_DEB (Debian)"

log "starting a throwaway cluster in $WORK/cluster"
CLUSTER_EXTRA_CONF="oban_pro.database = 'bench_oban'
max_connections = 100" start_cluster "$WORK/cluster"
PSQL=(psql -X -q -v ON_ERROR_STOP=1)
q() { local db=$1; shift; "${PSQL[@]}" -At -d "$db" -c "$*"; }
CONN() { echo "postgres:///$1?host=$PGHOST&port=$PGPORT&user=postgres"; }

for db in bench_oban bench_graphile bench_pgboss bench_pgq; do
    q postgres "CREATE DATABASE $db"
    q "$db" "CREATE UNLOGGED TABLE bench_lat (ms float8)"
done
q bench_oban "CREATE EXTENSION oban_pro"
q bench_pgq "CREATE EXTENSION pgq"
S=$WORK/scripts
mkdir -p "$S"
cp "$PEERS_DIR"/*.sql "$S/"
log "capturing graphile-worker's and pg-boss's own SQL from their clients"
(cd "$SCRATCH" && node graphile_capture.mjs "$(CONN bench_graphile)" "$WORK/graphile.json" >"$WORK/graphile_capture.log" 2>&1) ||
    { cat "$WORK/graphile_capture.log" >&2; exit 1; }
(cd "$SCRATCH" && node pgboss_capture.mjs "$(CONN bench_pgboss)" "$WORK/pgboss.json" >"$WORK/pgboss_capture.log" 2>&1) ||
    { cat "$WORK/pgboss_capture.log" >&2; exit 1; }
python3 "$PEERS_DIR/make_scripts.py" "$WORK/graphile.json" "$WORK/pgboss.json" "$S" >/dev/null
cp "$S"/graphile_consume.sql "$S"/pgboss_*.sql "$RUN_DIR/" # the generated scripts, kept with the results
chmod -R a+rX "$WORK"
GW_TASKS=$(q bench_graphile "SELECT '{' || string_agg(id::text, ',') || '}' FROM graphile_worker._private_tasks WHERE identifier = 'bench'")
PGB_JOBS=$(python3 -c 'import json; print(json.dumps([{"data": {"n": n}, "__traceContext": None} for n in range(10)]))')
GW_SEQ=$(q bench_graphile "SELECT pg_get_serial_sequence('graphile_worker._private_jobs', 'id')")

for _ in $(seq 1 50); do
    [ "$(q postgres "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'oban_pro worker' AND datname = 'bench_oban'")" -ge 1 ] && break
    sleep 0.2
done
WORKER_NOTE="oban_pro.database = 'bench_oban'; workers there: $(q postgres "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'oban_pro worker' AND datname = 'bench_oban'")"
OBAN_TRIGGERS=$(q bench_oban "SELECT string_agg(tgname, ', ' ORDER BY tgname) FROM pg_trigger WHERE tgrelid = 'oban_jobs'::regclass AND NOT tgisinternal")
log "oban_pro: $WORKER_NOTE; triggers on oban_jobs: $OBAN_TRIGGERS"

db_of() { case $1 in oban) echo bench_oban ;; graphile) echo bench_graphile ;; pgboss) echo bench_pgboss ;; pgq) echo bench_pgq ;; esac; }
label() { case $1 in oban) echo "oban_pro ($COMMIT$([ "$OBAN_CONSUMER" = ackfetch ] && echo ', ack+fetch in one call'))" ;; graphile) echo "graphile-worker $GW_VER" ;; pgboss) echo "pg-boss $PB_VER" ;; pgq) echo "PgQ $PGQ_DEB" ;; esac; }
has_flows() { [ "$1" = oban ] || [ "$1" = pgboss ]; }

pgq_setup_queues() {
    q bench_pgq "SELECT pgq.create_queue('bench_' || i), pgq.register_consumer('bench_' || i, 'bench'),
                        pgq.set_queue_config('bench_' || i, 'ticker_max_lag', '0'),
                        pgq.set_queue_config('bench_' || i, 'ticker_max_count', '1')
                 FROM generate_series(0, $CLIENTS - 1) i" >/dev/null
}
pgq_setup_queues

# Empty a peer's tables (and the latency table), VACUUM ANALYZE, CHECKPOINT.
reset_peer() {
    local db
    db=$(db_of "$1")
    case $1 in
    oban) # its TRUNCATE trigger empties the workflow tables
        q "$db" "TRUNCATE oban_jobs RESTART IDENTITY"
        seed_finished_jobs "$db" "$OBAN_SEED"
        ;;
    graphile) q "$db" "TRUNCATE graphile_worker._private_jobs RESTART IDENTITY" ;;
    pgboss) q "$db" "TRUNCATE pgboss.job, pgboss.job_dependency" ;;
    pgq)
        q "$db" "SELECT pgq.unregister_consumer(queue_name, 'bench'), pgq.drop_queue(queue_name) FROM pgq.queue" >/dev/null
        pgq_setup_queues
        ;;
    esac
    q "$db" "TRUNCATE bench_lat"
    q "$db" "VACUUM ANALYZE"
    q postgres "CHECKPOINT"
}

# Counts: jobs (or workflows) finished, and jobs not finished yet.
pgq_counts() { # "consumed total" over every queue: events visible in the snapshot of the consumer's last tick / all
    local sql="" id
    for id in $(q bench_pgq "SELECT queue_id FROM pgq.queue ORDER BY 1"); do
        sql+="${sql:+ UNION ALL }SELECT count(*) FILTER (WHERE txid_visible_in_snapshot(e.ev_txid, (SELECT t.tick_snapshot FROM pgq.tick t JOIN pgq.subscription s ON s.sub_queue = t.tick_queue AND s.sub_last_tick = t.tick_id WHERE t.tick_queue = $id))), count(*) FROM pgq.event_$id e"
    done
    q bench_pgq "SELECT sum(c), sum(t) FROM ($sql) x(c, t)" | tr '|' ' '
}
pgq_batch_mean() { # pgq_batch_mean CONSUMED: events per batch the consumers finished (a queue's first tick opens it)
    q bench_pgq "SELECT round($1::numeric / nullif(sum((SELECT count(*) FROM pgq.tick t WHERE t.tick_queue = s.sub_queue AND t.tick_id <= s.sub_last_tick) - 1), 0), 1) FROM pgq.subscription s"
}
done_count() { # done_count PEER [flow]
    local flow=${2:-}
    case $1 in
    oban)
        if [ -n "$flow" ]; then q bench_oban "SELECT count(*) FROM oban_jobs WHERE worker = 'Bench.Flow' AND meta->>'name' = 'd' AND state = 'completed'"
        else q bench_oban "SELECT count(*) FROM oban_jobs WHERE state = 'completed' AND NOT attempted_by = ARRAY['seed']"; fi ;;
    graphile) q bench_graphile "SELECT (SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM $GW_SEQ) - count(*) FROM graphile_worker._private_jobs" ;;
    pgboss)
        if [ -n "$flow" ]; then q bench_pgboss "SELECT count(*) FROM pgboss.job WHERE name = 'bench_flow' AND data->>'step' = 'd' AND state = 'completed'"
        else q bench_pgboss "SELECT count(*) FROM pgboss.job WHERE name = 'bench' AND state = 'completed'"; fi ;;
    pgq) pgq_counts | awk '{ print $1 }' ;;
    esac
}
left_count() {
    case $1 in
    oban) q bench_oban "SELECT count(*) FROM oban_jobs WHERE state <> 'completed'" ;;
    graphile) q bench_graphile "SELECT count(*) FROM graphile_worker._private_jobs" ;;
    pgboss) q bench_pgboss "SELECT count(*) FROM pgboss.job WHERE name = 'bench' AND state <> 'completed'" ;;
    pgq) pgq_counts | awk '{ print $2 - $1 }' ;;
    esac
}

# pgbench argument lists per peer and workload.
PGB=(pgbench -n -M prepared -j "$THREADS")
# With ackfetch, a client's last claimed batch is acked by its next call: in (a) up to one batch per
# client stays executing at the end (not counted); in (b) each client runs OBAN_DRAIN_MARGIN cycles
# more than its share, so its last calls find the queue empty and ack what it holds.
if [ "$OBAN_CONSUMER" = ackfetch ]; then OBAN_CONSUME=oban_consume_ackfetch.sql OBAN_CONSUME_ARGS="-D ids={}"
else OBAN_CONSUME=oban_consume.sql OBAN_CONSUME_ARGS=""; fi
scripts() { # scripts PEER WORKLOAD -> pgbench -f/-D arguments
    case "$1.$2" in
    oban.a) echo "$OBAN_CONSUME_ARGS -f $S/oban_produce.sql@1 -f $S/$OBAN_CONSUME@1" ;;
    oban.b) echo "$OBAN_CONSUME_ARGS -f $S/$OBAN_CONSUME" ;;
    oban.c) echo "-f $S/oban_flow_produce.sql@1 -f $S/oban_consume.sql@1" ;;
    graphile.a) echo "-D pool=bench-pool -D tasks=$GW_TASKS -f $S/graphile_produce.sql@1 -f $S/graphile_consume.sql@1" ;;
    graphile.b) echo "-D pool=bench-pool -D tasks=$GW_TASKS -f $S/graphile_consume.sql" ;;
    pgboss.a) echo "-f $S/pgboss_produce.sql@1 -f $S/pgboss_consume.sql@1" ;;
    pgboss.b) echo "-f $S/pgboss_consume.sql" ;;
    pgboss.c) echo "-f $S/pgboss_flow_produce.sql@1 -f $S/pgboss_flow_consume.sql@1" ;;
    pgq.a) echo "-f $S/pgq_produce.sql@1 -f $S/pgq_consume.sql@1" ;;
    pgq.b) echo "-f $S/pgq_consume.sql" ;;
    esac
}
run_pgbench() { # run_pgbench LOG DB ARGS... (pg-boss's job JSON passed separately: it has spaces)
    local logf=$1 db=$2; shift 2
    local extra=()
    [ "$db" = bench_pgboss ] && extra=(-D "pgb_jobs=$PGB_JOBS")
    echo "# ${PGB[*]} $* $db" >>"$logf"
    # shellcheck disable=SC2068
    "${PGB[@]}" "${extra[@]}" $@ "$db" >>"$logf" 2>&1 || echo "# pgbench exit $?" >>"$logf"
}

start_background() { # the peer's own background process during its runs
    case $1 in
    pgboss)
        (cd "$SCRATCH" && exec node pgboss_supervisor.mjs "$(CONN bench_pgboss)") >>"$RUN_DIR/pgboss_supervisor.log" 2>&1 &
        SUPERVISOR_PID=$!
        for _ in $(seq 1 100); do grep -q 'supervisor started' "$RUN_DIR/pgboss_supervisor.log" && break; sleep 0.1; done
        ;;
    esac
}
stop_background() {
    if [ -n "$SUPERVISOR_PID" ]; then kill "$SUPERVISOR_PID" 2>/dev/null || true; wait "$SUPERVISOR_PID" 2>/dev/null || true; SUPERVISOR_PID=""; fi
}
ticker() { # ticker SECONDS: PgQ's ticker at TICK_RATE calls/s, in the background; prints its pid
    pgbench -n -c 1 -R "$TICK_RATE" -T "$1" -f "$S/pgq_ticker.sql" bench_pgq >>"$RUN_DIR/ticker.log" 2>&1 &
    echo $!
}

preload() { # preload PEER: BACKLOG jobs through the peer's own insert path, in chunks of 10,000 (PgQ: 10 per batch)
    local chunk=10000 n=$BACKLOG
    case $1 in
    oban) for _ in $(seq 1 $((n / chunk))); do
            q bench_oban "SELECT count(*) FROM oban_insert_jobs((SELECT jsonb_agg(jsonb_build_object('worker', 'Bench.Worker', 'args', jsonb_build_object('n', g))) FROM generate_series(1, $chunk) g))" >/dev/null
        done ;;
    graphile) for _ in $(seq 1 $((n / chunk))); do
            q bench_graphile "SELECT count(*) FROM graphile_worker.add_jobs(ARRAY(SELECT ROW('bench', json_build_object('n', g), NULL, NULL, NULL, NULL, NULL, NULL)::graphile_worker.job_spec FROM generate_series(1, $chunk) g))" >/dev/null
        done ;;
    pgboss)
        local ins
        ins=$(grep -v '^--' "$S/pgboss_produce.sql" | sed "s/:pgb_jobs::text::json/(SELECT json_agg(json_build_object('data', json_build_object('n', g)))::text FROM generate_series(1, $chunk) g)::text::json/")
        for _ in $(seq 1 $((n / chunk))); do "${PSQL[@]}" -d bench_pgboss <<<"$ins" >/dev/null; done ;;
    pgq) # a tick after every 10 events of a queue: PgQ's batches are what lies between two ticks
        PGOPTIONS="-c synchronous_commit=off" q bench_pgq "DO \$\$ BEGIN
            FOR i IN 1..$((n / CLIENTS / 10)) LOOP
                FOR c IN 0..$((CLIENTS - 1)) LOOP
                    PERFORM pgq.insert_event('bench_' || c, 'job', json_build_object('n', g)::text) FROM generate_series(1, 10) g;
                    COMMIT;
                    PERFORM pgq.ticker('bench_' || c);
                    COMMIT;
                END LOOP;
            END LOOP; END \$\$" ;;
    esac
}

# ---- CPU used by other processes (see bench/run.sh) ------------------------------------------------
busy_ticks() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9 }' /proc/stat; }
our_ticks() {
    local total t p
    total=$(($(proc_ticks $$ 1) + $(cluster_ticks)))
    for p in $(ps -o pid= --ppid $$); do
        t=$(proc_ticks "$p" 0) && [ -n "$t" ] && total=$((total + t))
    done
    echo "$total"
}
B0=0 O0=0 T0=0
cpu_start() { B0=$(busy_ticks); O0=$(our_ticks); T0=$(date +%s.%N); }
cpu_other() { # % of all CPUs used by other processes since cpu_start
    local b1 o1 t1
    b1=$(busy_ticks); o1=$(our_ticks); t1=$(date +%s.%N)
    awk -v b="$((b1 - B0))" -v o="$((o1 - O0))" -v hz="$HZ" -v s="$(awk -v a="$T0" -v b="$t1" 'BEGIN { print b - a }')" -v n="$(nproc)" \
        'BEGIN { v = 100 * (b - o) / (hz * s * n); if (v < 0) v = 0; printf "%.0f", v }'
}

printf 'sync\tround\tworkload\tpeer\tvalue\tp99\tunit\tother_cpu_pct\tnote\n' >"$RAW"
row() { printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$@" >>"$RAW"; }

run_a() { # steady lifecycle
    local sync=$1 round=$2 p=$3 db logf done other note=""
    db=$(db_of "$p"); logf="$RUN_DIR/$sync-r$round-a-$p.log"
    reset_peer "$p"
    start_background "$p"
    cpu_start
    # shellcheck disable=SC2046
    run_pgbench "$logf" "$db" -c "$CLIENTS" -T "$DURATION" --failures-detailed $(scripts "$p" a)
    other=$(cpu_other)
    stop_background
    done=$(done_count "$p")
    [ "$p" = pgq ] && note="; $(pgq_batch_mean "$done") events per batch"
    row "$sync" "$round" a "$p" "$(awk -v n="$done" -v d="$DURATION" 'BEGIN { printf "%.0f", n / d }')" "" "jobs/s" "$other" "$(grep -c 'aborted\|rror' "$logf" || true) errors$note"
}
run_b() { # drain
    local sync=$1 round=$2 p=$3 db logf t0 t1 left tries=0 other per
    db=$(db_of "$p"); logf="$RUN_DIR/$sync-r$round-b-$p.log"
    reset_peer "$p"
    preload "$p"
    q "$db" "VACUUM ANALYZE"
    q postgres "CHECKPOINT"
    start_background "$p"
    per=$((BACKLOG / CLIENTS / 10))
    [ "$p" = oban ] && [ "$OBAN_CONSUMER" = ackfetch ] && per=$((per + per / 5 + 2))
    cpu_start
    t0=$(date +%s.%N)
    # shellcheck disable=SC2046
    run_pgbench "$logf" "$db" -c "$CLIENTS" -t "$per" $(scripts "$p" b)
    while left=$(left_count "$p") && [ "$left" -gt 0 ] && [ "$tries" -lt 200 ]; do
        # shellcheck disable=SC2046
        run_pgbench "$logf" "$db" -c "$CLIENTS" -t 2 $(scripts "$p" b)
        tries=$((tries + 1))
    done
    t1=$(date +%s.%N)
    other=$(cpu_other)
    stop_background
    row "$sync" "$round" b "$p" "$(awk -v n="$BACKLOG" -v a="$t0" -v b="$t1" 'BEGIN { printf "%.0f", n / (b - a) }')" "" "jobs/s" "$other" \
        "$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f s", b - a }'), $left left, $tries extra pgbench runs"
}
run_c() { # diamond workflows
    local sync=$1 round=$2 p=$3 db logf done other
    has_flows "$p" || return 0
    db=$(db_of "$p"); logf="$RUN_DIR/$sync-r$round-c-$p.log"
    reset_peer "$p"
    start_background "$p"
    cpu_start
    # shellcheck disable=SC2046
    run_pgbench "$logf" "$db" -c "$CLIENTS" -T "$DURATION" --failures-detailed $(scripts "$p" c)
    other=$(cpu_other)
    stop_background
    done=$(done_count "$p" flow)
    case $p in # where the workflows' steps stood at the end, for the log
    oban) q bench_oban "SELECT meta->>'name', state, count(*) FROM oban_jobs WHERE worker = 'Bench.Flow' GROUP BY 1, 2 ORDER BY 1, 2" >>"$logf" ;;
    pgboss) q bench_pgboss "SELECT data->>'step', state, count(*) FROM pgboss.job WHERE name = 'bench_flow' GROUP BY 1, 2 ORDER BY 1, 2" >>"$logf" ;;
    esac
    row "$sync" "$round" c "$p" "$(awk -v n="$done" -v d="$DURATION" 'BEGIN { printf "%.1f", n / d }')" "" "workflows/s" "$other" "$(grep -c 'aborted\|rror' "$logf" || true) errors"
}
run_d() { # latency at a fixed arrival rate
    local sync=$1 round=$2 p=$3 db logf cons tick="" other res pfx=$3
    db=$(db_of "$p"); logf="$RUN_DIR/$sync-r$round-d-$p.log"
    reset_peer "$p"
    start_background "$p"
    cpu_start
    [ "$p" = pgq ] && tick=$(ticker $((DURATION + 2)))
    local cargs="-f $S/${pfx}_lat_consume.sql"
    [ "$p" = graphile ] && cargs="-D pool=bench-pool -D tasks=$GW_TASKS $cargs"
    [ "$p" = pgboss ] && cargs="-f $S/pgboss_lat_consume.sql"
    # shellcheck disable=SC2086
    (run_pgbench "$logf.consumers" "$db" -c "$CLIENTS" -T $((DURATION + 2)) $cargs) &
    cons=$!
    sleep 1
    local pargs=""
    [ "$p" = pgq ] && pargs="-D nq=$((CLIENTS - 1))" # into any of the consumers' queues
    # shellcheck disable=SC2086
    run_pgbench "$logf" "$db" -c 2 -R "$LAT_RATE" -T "$DURATION" $pargs -f "$S/${pfx}_lat_produce.sql"
    wait "$cons" || true
    [ -n "$tick" ] && wait "$tick" 2>/dev/null || true
    other=$(cpu_other)
    stop_background
    res=$(q "$db" "SELECT round(percentile_cont(0.5) WITHIN GROUP (ORDER BY ms)::numeric, 2), round(percentile_cont(0.99) WITHIN GROUP (ORDER BY ms)::numeric, 2), count(*) FROM bench_lat")
    IFS='|' read -r p50 p99 n <<<"$res"
    row "$sync" "$round" d "$p" "${p50:-0}" "${p99:-0}" "ms" "$other" "$n jobs started"
}

others() { ps -eo args= | grep -E '^(\S*/lib/postgresql/[0-9]+/bin/)?postgres -D' | grep -vc -- "-D $CLUSTER_DIR/data" || true; }
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
OTHERS_START=$(others)
log "$ROUNDS rounds x synchronous_commit {$SYNC_MODES} x workloads {$WORKLOADS} x peers {$PEERS}, ${DURATION}s runs, $CLIENTS clients, backlog $BACKLOG"
for sync in $SYNC_MODES; do
    for db in bench_oban bench_graphile bench_pgboss bench_pgq; do q postgres "ALTER DATABASE $db SET synchronous_commit = $sync"; done
    for round in $(seq 1 "$ROUNDS"); do
        for w in $WORKLOADS; do
            for p in $(rotated "$round" $PEERS); do
                "run_$w" "$sync" "$round" "$p"
                tail -n 1 "$RAW" | awk -F'\t' -v w="$w" -v p="$p" '$3 == w && $4 == p { printf "  sync=%-3s round %s (%s) %-9s %s %s%s  (other CPU %s%%; %s)\n", $1, $2, $3, $4, $5, $7, ($6 != "" ? " p99 " $6 " ms" : ""), $8, $9 }'
            done
        done
    done
done
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)
OTHERS_END=$(others)

# ---- summary -----------------------------------------------------------------------------------------
export RAW MD RUN_DIR PEERS SYNC_MODES WORKLOADS CMD_LINE COMMIT OBAN_CONSUMER GW_VER PB_VER PGQ_DEB NODE_VER CLIENTS DURATION ROUNDS BACKLOG LAT_RATE TICK_RATE LOAD_START LOAD_END OTHERS_START OTHERS_END
export MACHINE="$(nproc) cores, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo), $(. /etc/os-release && echo "$PRETTY_NAME"), $("$PG_BIN/postgres" --version)"
/usr/bin/python3 "$PEERS_DIR/summary.py"
log "results (also in $MD; chart $RUN_DIR/peers.png)"
cat "$MD"
if [ "$WRITE_RESULTS" = 1 ]; then
    /usr/bin/python3 "$PEERS_DIR/summary.py" --results "$BENCH_DIR/RESULTS.md" --png "$BENCH_DIR/peers.png"
    log "wrote the peers section of bench/RESULTS.md and bench/peers.png"
fi
