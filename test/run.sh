#!/usr/bin/env bash
# Runs the database test suites against the running cluster named by PGHOST/PGPORT (see
# scripts/test.sh, which sets one up). Usage: test/run.sh WORKDIR   (WORKDIR writable by postgres)
set -euo pipefail
source "$(dirname "$0")/../scripts/lib.sh"
WORK=$1
failed=0

# pg_regress reads sql/ and expected/ (and specs/) under one input directory: assemble it from
# test/sql, test/specs and expected/ in a directory the postgres user owns.
INPUT=$WORK/input
mkdir -p "$INPUT" "$WORK/regress" "$WORK/isolation"
cp -r "$REPO/test/sql" "$REPO/test/specs" "$REPO/expected" "$INPUT/"
chown -R postgres: "$WORK"

run_suite() {  # run_suite NAME DRIVER OUTDIR SCHEDULE
    local name=$1 driver=$2 outdir=$3 schedule=$4
    log "$name"
    if ! as_postgres "$driver" --inputdir="$INPUT" --outputdir="$outdir" --bindir="$PG_BIN" \
            --host="$PGHOST" --port="$PGPORT" --user=postgres --load-extension=oban_pro \
            --dbname=oban_pro_regress --schedule="$schedule"; then
        [ -f "$outdir/regression.diffs" ] && cat "$outdir/regression.diffs"
        failed=1
    fi
}

run_suite "pg_regress" "$PGXS_DIR/src/test/regress/pg_regress" "$WORK/regress" "$REPO/test/schedule"
run_suite "isolation specs" "$PGXS_DIR/src/test/isolation/pg_isolation_regress" "$WORK/isolation" \
    "$REPO/test/isolation_schedule"

log "pgTAP (pg_prove)"
as_postgres psql -X -q -c "DROP DATABASE IF EXISTS oban_pro_tap" -c "CREATE DATABASE oban_pro_tap"
as_postgres psql -X -q -d oban_pro_tap -c "CREATE EXTENSION pgtap" -c "CREATE EXTENSION oban_pro"
cp -r "$REPO/test/pgtap" "$WORK/pgtap" && chown -R postgres: "$WORK/pgtap"
as_postgres pg_prove --host "$PGHOST" --port "$PGPORT" --username postgres --dbname oban_pro_tap \
    "$WORK"/pgtap/*.sql || failed=1

for script in "$REPO"/test/scripts/*.sh; do
    log "script: $(basename "$script")"
    bash "$script" "$WORK" || failed=1
done

if [ "$failed" -ne 0 ]; then
    log "FAILED"
    exit 1
fi
log "all tests passed"
