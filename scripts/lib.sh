# Shared by scripts/*.sh: packages, build, and throwaway PostgreSQL clusters.
# Everything runs as root; PostgreSQL itself runs as the postgres user, on a Unix socket in a
# private directory (no TCP), so parallel runs never collide.

# OBAN_PG_ROOT=DIR runs everything against a private, relocated copy of PostgreSQL under DIR (made by
# scripts/private-postgres.sh), so two checkouts can build, install and test side by side without
# overwriting each other's oban_pro.so. Unset: the system's PostgreSQL 15.
PG_ROOT=${OBAN_PG_ROOT:-}
PG_BIN=$PG_ROOT/usr/lib/postgresql/15/bin
PG_CONFIG=$PG_BIN/pg_config
PGXS_DIR=$PG_ROOT/usr/lib/postgresql/15/lib/pgxs
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

PACKAGES=(make g++ postgresql-15 postgresql-server-dev-15 postgresql-15-pgtap
          libtap-parser-sourcehandler-pgtap-perl libboost-container-dev libgtest-dev clang-format
          python3-psycopg python3-pytest)
# The example clients (examples/python, examples/node) run with Debian's own Python (/usr/bin/python3,
# which sees python3-psycopg whatever python3 comes first in PATH) and any Node.js >= 18 with npm:
# Debian's nodejs + npm are installed when no node/npm is on PATH (a machine may already carry
# another build of Node.js, whose package conflicts with Debian's npm).
CLIENT_PYTHON=/usr/bin/python3

log() { printf '\n== %s\n' "$*"; }

ensure_packages() {
    local missing=()
    for p in "${PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        log "installing ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    fi
    if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
        log "installing nodejs npm"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
    fi
}

build_and_install() {
    log "building oban_pro"
    make -C "$REPO" -s PG_CONFIG="$PG_CONFIG" ${WERROR:+WERROR=$WERROR} >/dev/null
    make -C "$REPO" -s PG_CONFIG="$PG_CONFIG" install >/dev/null
}

as_postgres() { runuser -u postgres -- "$@"; }

# server_ctl ARGS...: pg_ctl as postgres, with OBAN_SERVER_ENV ("VAR=value ...", no spaces inside a
# value) in its environment, hence in the environment of the postmaster it starts. Every script that
# starts or restarts a server goes through it, so scripts/sanitize-test.sh can preload the sanitizer
# runtime into each server the suites start.
server_ctl() { as_postgres env ${OBAN_SERVER_ENV:-} "$PG_BIN/pg_ctl" "$@"; }

# start_cluster DIR: a fresh cluster in DIR (created, owned by postgres), oban_pro preloaded.
# CLUSTER_EXTRA_CONF adds lines to postgresql.conf (e.g. oban_pro.database = 'bench').
# Exports PGHOST/PGPORT/PGUSER/PGDATABASE for the callers' psql, pgbench, pg_regress.
start_cluster() {
    CLUSTER_DIR=$1
    mkdir -p "$CLUSTER_DIR"
    chown postgres: "$CLUSTER_DIR"
    as_postgres "$PG_BIN/initdb" -D "$CLUSTER_DIR/data" -U postgres -A trust --no-instructions \
        -E UTF8 --locale=C.UTF-8 >/dev/null
    cat >> "$CLUSTER_DIR/data/postgresql.conf" <<CONF
listen_addresses = ''
unix_socket_directories = '$CLUSTER_DIR'
port = 5499
shared_preload_libraries = 'oban_pro'
max_connections = 60
max_prepared_transactions = 10
fsync = ${CLUSTER_FSYNC:-on}
log_min_messages = warning
${CLUSTER_EXTRA_CONF:-}
CONF
    server_ctl -D "$CLUSTER_DIR/data" -l "$CLUSTER_DIR/server.log" -w start >/dev/null
    export PGHOST=$CLUSTER_DIR PGPORT=5499 PGUSER=postgres PGDATABASE=postgres
}

HZ=$(getconf CLK_TCK)

# CPU ticks (HZ per second) that process $1 has used; with $2 = 1, plus those of its
# children that have exited and been waited for.
proc_ticks() { sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | awk -v all="$2" '{ print $12 + $13 + (all ? $14 + $15 : 0) }'; }

# CPU ticks used so far by the cluster started by start_cluster: the postmaster, its children still
# running, and those that have exited (backends of clients gone, autovacuum and other workers).
cluster_ticks() {
    local pm total t p
    pm=$(head -1 "$CLUSTER_DIR/data/postmaster.pid")
    total=$(proc_ticks "$pm" 1)
    for p in $(ps -o pid= --ppid "$pm"); do
        t=$(proc_ticks "$p" 0) && [ -n "$t" ] && total=$((total + t))
    done
    echo "$total"
}

stop_cluster() {
    [ -n "${CLUSTER_DIR:-}" ] && [ -d "$CLUSTER_DIR/data" ] || return 0
    as_postgres "$PG_BIN/pg_ctl" -D "$CLUSTER_DIR/data" -m fast -w stop >/dev/null 2>&1 || true
}

# seed_finished_jobs DB COUNT: COUNT completed jobs in DB's oban_jobs, then VACUUM ANALYZE, so the
# benchmarks' prepared statements are planned from real statistics (bench/README.md, "SEED").
# COUNT 0 does nothing: the table stays empty and never analyzed.
# rotated ROUND ITEM...: the items, starting from item number ROUND (1-based, wrapping), so that
# benchmarks interleaving contenders give each one every position in turn: on this machine a run
# can be slowed by what the run before it left behind (dirty pages being written back, autovacuum),
# and a fixed order would charge that to the same contender every round.
rotated() {
    local round=$1; shift
    local items=("$@") n=$# i
    for ((i = 0; i < n; i++)); do printf '%s\n' "${items[(round - 1 + i) % n]}"; done
}

seed_finished_jobs() {
    local db=$1 count=$2
    [ "$count" -gt 0 ] || return 0
    psql -X -q -v ON_ERROR_STOP=1 -d "$db" \
        -c "INSERT INTO oban_jobs (worker, args, state, attempt, attempted_at, attempted_by, completed_at)
            SELECT 'Bench.Worker', jsonb_build_object('n', g), 'completed', 1,
                   timezone('UTC', now()), ARRAY['seed'], timezone('UTC', now())
            FROM generate_series(1, $count) g" \
        -c "VACUUM ANALYZE oban_jobs" >/dev/null
}

# A scratch directory the postgres user can write, removed on exit.
make_workdir() {
    local dir
    dir=$(mktemp -d /tmp/oban_pro.XXXXXX)
    chmod 755 "$dir"
    chown postgres: "$dir"
    echo "$dir"
}
