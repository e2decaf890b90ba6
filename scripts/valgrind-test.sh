#!/usr/bin/env bash
# make valgrind-test: the pg_regress suite (test/schedule without workflow_plans, or
# VALGRIND_SCHEDULE=FILE) against a server running under valgrind memcheck with JIT off, and a report
# of every error whose stack has a frame in oban_pro (oban_pro.so, or a source file of src/). Fails
# if there is one. JIT is off because loading the JIT provider (dlopen) makes the loader's own string
# functions read past their blocks, which memcheck reports under whichever statement crossed
# jit_above_cost, and JIT-compiled code is opaque to memcheck anyway.
#
# Like sanitize-test.sh it builds a copy of the sources (with -O1 -g -fno-omit-frame-pointer, for
# exact stacks) into a private copy of PostgreSQL. The postmaster runs under
# `valgrind --trace-children=yes`, so every backend and background worker (forked) is checked; Debian
# does not ship PostgreSQL's src/tools/valgrind.supp, so test/valgrind/postgres.supp suppresses the
# server's own known padding writes. The server is not built with USE_VALGRIND, so memcheck sees
# palloc chunks as one malloc'd block: overruns inside a memory context block go unseen (ASan has
# the same limit; see README "Tests"). Slow (~30x): not part of scripts/test.sh or CI.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
ensure_packages
command -v valgrind >/dev/null || { export DEBIAN_FRONTEND=noninteractive; apt-get install -y -qq valgrind >/dev/null; }
started=$(date +%s)

WORK=$(make_workdir)
PRIV=$(mktemp -d /tmp/obvg.XXXXXX)  # no "oban_pro" in this path: the report greps for it
chmod 755 "$PRIV"
trap 'stop_cluster; [ -n "${KEEP_WORK:-}" ] || rm -rf "$WORK" "$PRIV"' EXIT
bash "$REPO/scripts/private-postgres.sh" "$PRIV/pg" >/dev/null
export OBAN_PG_ROOT=$PRIV/pg
source "$REPO/scripts/lib.sh"
mkdir -p "$PRIV/build"
cp -r "$REPO/Makefile" "$REPO/oban_pro.control" "$REPO/src" "$REPO/sql" "$PRIV/build/"
VG_MAKE=(make -C "$PRIV/build" -s PG_CONFIG="$PG_CONFIG" CXXFLAGS="-O1 -g -fno-omit-frame-pointer")
"${VG_MAKE[@]}" clean >/dev/null
log "building oban_pro (-O1 -g)"
"${VG_MAKE[@]}" >/dev/null
"${VG_MAKE[@]}" install >/dev/null

# A cluster set up as usual, then restarted with the postmaster under valgrind.
start_cluster "$WORK/cluster"
stop_cluster
VG=$WORK/valgrind
mkdir -p "$VG" && chown postgres: "$VG"
cp "$REPO/test/valgrind/postgres.supp" "$VG/" && chown postgres: "$VG/postgres.supp"
log "starting the server under valgrind"
as_postgres valgrind --quiet --tool=memcheck --trace-children=yes --error-limit=no --num-callers=40 \
    --track-origins=yes --leak-check=no --fullpath-after= --suppressions="$VG/postgres.supp" \
    --log-file="$VG/vg.%p.log" "$PG_BIN/postgres" -D "$CLUSTER_DIR/data" -c jit=off >"$CLUSTER_DIR/server.log" 2>&1 &
for _ in $(seq 600); do as_postgres "$PG_BIN/pg_isready" -q -h "$PGHOST" -p "$PGPORT" && break; sleep 1; done
as_postgres "$PG_BIN/pg_isready" -q -h "$PGHOST" -p "$PGPORT" || { echo "FAIL: server did not start"; exit 1; }

INPUT=$WORK/input
mkdir -p "$INPUT" "$WORK/regress"
cp -r "$REPO/test/sql" "$REPO/expected" "$INPUT/"
chown -R postgres: "$WORK"
# workflow_plans times each statement against a statement_timeout set for native speed: under
# valgrind (~50x slower) its 10,000-job fan-ins time out, so the default schedule leaves it out.
grep -vx 'test: workflow_plans' "$REPO/test/schedule" >"$WORK/schedule"
SCHEDULE=${VALGRIND_SCHEDULE:-$WORK/schedule}
log "pg_regress under valgrind ($SCHEDULE)"
regress=passed
as_postgres "$PGXS_DIR/src/test/regress/pg_regress" --inputdir="$INPUT" --outputdir="$WORK/regress" \
    --bindir="$PG_BIN" --host="$PGHOST" --port="$PGPORT" --user=postgres --load-extension=oban_pro \
    --dbname=oban_pro_regress --schedule="$SCHEDULE" || regress=FAILED
[ "$regress" = passed ] || cat "$WORK/regress/regression.diffs" || true
stop_cluster
wait || true

# Error blocks (from "==pid== <kind>" to the blank "==pid== " line) that name oban_pro code.
report=$(awk '
    /^==[0-9]+== *$/ { if (block ~ /oban_pro\.so|\/build\/src\//) { print block; n++ } block = ""; next }
    /^==[0-9]+== / { block = block $0 "\n" }
    END { if (block ~ /oban_pro\.so|\/build\/src\//) { print block; n++ } }' "$VG"/vg.*.log 2>/dev/null || true)
ours=$(printf '%s' "$report" | grep -cE '^==[0-9]+== [A-Z]' || true)
total=$(cat "$VG"/vg.*.log 2>/dev/null | grep -cE '^==[0-9]+== (Invalid|Conditional|Use of uninit|Syscall param|Mismatched|Source and dest)' || true)
[ "$ours" -eq 0 ] || { log "valgrind errors in oban_pro code"; printf '%s\n' "$report"; }
log "valgrind-test: regression $regress, $(ls "$VG"/vg.*.log | wc -l) processes checked, errors in oban_pro code: $ours (all errors, server's own included: $total), $(($(date +%s) - started)) s"
[ "$ours" -eq 0 ] && [ "$regress" = passed ]
