#!/usr/bin/env bash
# Adopting existing Oban tables (README "Adopting existing Oban tables"; issue 9 point 4). For each
# layout — Elixir Oban after its V13 migration (in public) and oban-py 0.6 (in a schema "oban_py") —
# a fresh database gets the client's tables (test/adopt/*_v13.sql, *_06.sql) and jobs in every state
# written the client's way, BEFORE the extension exists. Then CREATE EXTENSION adopts the tables and:
#   * every row is kept, unrewritten: count, a checksum of every column, and each row's ctid and xmin
#     are the same, and so is the table's relfilenode;
#   * the old jobs run through the extension's functions, and a workflow with a sub-workflow, a
#     unique workflow conflict and signal round trips work (test/adopt/scenario.sql);
#   * the client's own statements still work (test/adopt/client_*.sql);
#   * DROP EXTENSION needs CASCADE, drops only the extension's triggers and objects, and keeps every
#     row; CREATE EXTENSION then adopts the table again.
# Elixir's V13 enum has no 'suspended': adoption is refused (55000, changing nothing) until it is
# added as Elixir's V14 does. Tables that cannot be adopted are refused with their SQLSTATE, changing
# nothing; a missing column with a constant default is added without a rewrite.
# Usage: adopt.sh WORKDIR
set -euo pipefail
source "$(dirname "$0")/../../scripts/lib.sh"
ADOPT=$REPO/test/adopt
WORK=$1
export PGOPTIONS="-c client_min_messages=warning"
psql_q() { as_postgres psql -X -q -v ON_ERROR_STOP=1 "$@"; }
value() { as_postgres psql -X -q -At -v ON_ERROR_STOP=1 "$@"; }
fail() { echo "FAIL: $*"; exit 1; }
# sqlstate DB SQL...: runs the statements, which must fail; prints the SQLSTATE of the error.
sqlstate() {
    local db=$1; shift
    local out
    if out=$(as_postgres psql -X -q -v ON_ERROR_STOP=1 -v VERBOSITY=sqlstate -d "$db" "$@" 2>&1); then
        fail "expected an error from: $*"
    fi
    sed -n 's/^ERROR:  *\([0-9A-Z]\{5\}\).*/\1/p' <<<"$out" | head -1
}
# checks DB SCHEMA FILE: runs a file of t_ok checks; shows the failing one.
checks() {
    local out
    out=$(as_postgres psql -X -q -v ON_ERROR_STOP=1 -d "$1" -v prefix="$2" -f "$ADOPT/$3" 2>&1) ||
        { grep -v 'WARNING:  ok:' <<<"$out" | tail -5; fail "$3"; }
    echo "$3: $(grep -c 'WARNING:  ok:' <<<"$out") checks passed"
}
# Every row, every column, and where it lies (ctid) and which transaction wrote it (xmin).
fingerprint() {
    value -d "$1" -c "
        SELECT count(*) || ' rows, md5 ' || md5(string_agg(concat_ws('|', ctid, xmin, id, state, queue, worker,
                   attempt, max_attempts, priority, args, meta, tags, errors, attempted_by, inserted_at,
                   scheduled_at, attempted_at, completed_at, discarded_at, cancelled_at), ',' ORDER BY id))
                   || ', filenode ' || pg_relation_filenode('$2.oban_jobs')
        FROM $2.oban_jobs"
}

# What a database holds, as the logical content pg_dump must keep: the jobs, the workflow
# bookkeeping (through the oban_workflows view and the tables behind it), the signal mailbox.
content() {
    value -d "$1" -c "SET search_path = $2" -c "
        SELECT (SELECT count(*) || ' jobs ' || md5(string_agg(concat_ws('|', id, state, queue, worker, attempt,
                    max_attempts, priority, args, meta, tags, errors, attempted_by, inserted_at, scheduled_at,
                    attempted_at, completed_at, discarded_at, cancelled_at), ',' ORDER BY id)) FROM oban_jobs)
            || ', ' || (SELECT count(*) || ' workflows ' || md5(string_agg(concat_ws('|', id, name, parent_id, state,
                    suspended, available, scheduled, executing, retryable, completed, cancelled, discarded),
                    ',' ORDER BY id)) FROM oban_workflows)
            || ', ' || (SELECT count(*) || ' waits/edges/names ' FROM oban_workflow_waits)
            || (SELECT count(*) FROM oban_workflow_edges) || '/' || (SELECT count(*) FROM oban_workflow_names)
            || ', ' || (SELECT count(*) || ' signals' FROM oban_signals)
            || ', errors ' || (SELECT format_type(atttypid, atttypmod) FROM pg_attribute
                               WHERE attrelid = 'oban_jobs'::regclass AND attname = 'errors')"
}

# dump_restore DB SCHEMA: with a workflow waiting on a dep, a unique name held, a job parked
# awaiting a signal and a signal in the mailbox, pg_dump then scripts/restore.sh into a new database keep all of it, and it
# carries on there: the dep completes and releases its dependent, the name still conflicts, the
# signal wakes the parked job.
dump_restore() {
    local db=$1 schema=$2 target=${1}_restored before after
    psql_q -d "$db" -o /dev/null <<SQL
SET search_path = $schema;
SELECT count(*) FROM oban_insert_workflow('{"workflow_id": "wf-dump", "name": "dumped", "unique": true, "jobs": [
    {"name": "first", "worker": "W", "queue": "dump"},
    {"name": "then", "worker": "W", "queue": "dump2", "deps": ["first"]}]}');
SELECT id AS parked FROM oban_insert_job('Parked', queue => 'park') \\gset
SELECT count(*) FROM oban_fetch_jobs('park', 1);
SELECT status FROM oban_await_signal(:parked, '1 day', '0');
SELECT oban_signal((oban_insert_job('Mailbox', queue => 'mail')).id, '{"kept": true}');
SQL
    psql_q -d postgres -c "DROP DATABASE IF EXISTS $target" -c "CREATE DATABASE $target"
    as_postgres "$PG_BIN/pg_dump" -Fc -d "$db" -f "$WORK/$db.dump"
    as_postgres env PATH="$PG_BIN:$PATH" OBAN_PRO_SCRIPT="$REPO/sql/oban_pro--$(sed -n "s/^default_version = '\(.*\)'/\1/p" "$REPO/oban_pro.control").sql" \
        bash "$REPO/scripts/restore.sh" "$WORK/$db.dump" "$target"
    before=$(content "$db" "$schema")
    after=$(content "$target" "$schema")
    echo "dumped:   $before"
    echo "restored: $after"
    [ "$before" = "$after" ] || fail "the restored database differs"
    # The same triggers as the dumped table, the extension's BEFORE INSERT trigger among them.
    local triggers="SELECT string_agg(tgname, ',' ORDER BY tgname) FROM pg_trigger WHERE tgrelid = '$schema.oban_jobs'::regclass"
    local dumped_triggers
    dumped_triggers=$(value -d "$db" -c "$triggers")
    [[ $dumped_triggers == *oban_jobs_before_insert* ]] && [ "$(value -d "$target" -c "$triggers")" = "$dumped_triggers" ] ||
        fail "the restored oban_jobs lacks the extension's triggers"
    local carried
    carried=$(value -d "$target" -c "SET search_path = $schema" \
        -c "SELECT count(oban_complete_job(id)) FROM oban_fetch_jobs('dump', 1)" \
        -c "SELECT oban_flush_workflows() >= 0" \
        -c "SELECT state FROM oban_jobs WHERE meta->>'workflow_id' = 'wf-dump' AND meta->>'name' = 'then'" \
        -c "SELECT bool_and(conflicted) FROM oban_insert_workflow('{\"name\": \"dumped\", \"unique\": true, \"jobs\": [{\"name\": \"x\", \"worker\": \"W\"}]}')" \
        -c "SELECT oban_signal(id, '{}') FROM oban_jobs WHERE worker = 'Parked'" \
        -c "SELECT state FROM oban_jobs WHERE worker = 'Parked'" | paste -sd ' ')
    [ "$carried" = "1 t available t t available" ] || fail "after the restore: $carried"
    echo "after the restore: the dep releases its dependent, the unique name holds, the signal wakes the parked job"
    psql_q -d postgres -c "DROP DATABASE $target"
}

adopt_layout() {  # adopt_layout NAME SCHEMA FIXTURE JOBS CLIENT
    local name=$1 schema=$2 fixture=$3 jobs=$4 client=$5 db=oban_pro_adopt_$1
    log "adopt: $name layout (schema $schema)"
    psql_q -d postgres -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db"
    psql_q -d "$db" -v prefix="$schema" -f "$ADOPT/$fixture" -f "$ADOPT/$jobs"
    local before after create="CREATE EXTENSION oban_pro SCHEMA $schema"
    before=$(fingerprint "$db" "$schema")
    echo "before adoption: $before"

    if [ "$name" = elixir ]; then
        state=$(sqlstate "$db" -c "$create")
        [ "$state" = 55000 ] || fail "adopting an enum without 'suspended': expected 55000, got $state"
        [ "$(fingerprint "$db" "$schema")" = "$before" ] || fail "the refused adoption changed rows"
        [ "$(value -d "$db" -c "SELECT count(*) FROM pg_extension WHERE extname = 'oban_pro'")" = 0 ] ||
            fail "the refused adoption left the extension"
        echo "refused without 'suspended' (55000), nothing changed"
        # Elixir Oban's V14, on its own.
        psql_q -d "$db" -c "ALTER TYPE $schema.oban_job_state ADD VALUE IF NOT EXISTS 'suspended' BEFORE 'scheduled'"
        create="CREATE EXTENSION oban_pro"  # public is first on the search_path
    fi

    psql_q -d "$db" -c "$create"
    after=$(fingerprint "$db" "$schema")
    echo "after adoption:  $after"
    [ "$before" = "$after" ] || fail "adoption changed or moved job rows"
    [ "$(value -d "$db" -c "SELECT count(*) FROM pg_depend d JOIN pg_extension e ON e.oid = d.refobjid
                             WHERE e.extname = 'oban_pro' AND d.deptype = 'e'
                               AND d.classid = 'pg_class'::regclass AND d.objid = '$schema.oban_jobs'::regclass")" = 0 ] ||
        fail "the adopted table became an extension member"

    checks "$db" "$schema" scenario.sql
    checks "$db" "$schema" "$client"

    dump_restore "$db" "$schema"

    # DROP EXTENSION: refused without CASCADE (the triggers on the user's table depend on it);
    # with CASCADE every row stays, and the table can be adopted again.
    before=$(fingerprint "$db" "$schema")
    state=$(sqlstate "$db" -c "DROP EXTENSION oban_pro")
    [ "$state" = 2BP01 ] || fail "DROP EXTENSION without CASCADE: expected 2BP01, got $state"
    psql_q -d "$db" -c "DROP EXTENSION oban_pro CASCADE"
    [ "$(fingerprint "$db" "$schema")" = "$before" ] || fail "DROP EXTENSION CASCADE changed job rows"
    [ "$(value -d "$db" -c "SELECT count(*) FROM pg_trigger WHERE tgrelid = '$schema.oban_jobs'::regclass")" -gt 0 ] &&
        fail "DROP EXTENSION CASCADE left triggers on oban_jobs"
    psql_q -d "$db" -c "$create"
    [ "$(value -d "$db" -c "SET search_path = $schema" -c "SELECT (oban_insert_job('Again', queue => 'again')).state")" = available ] ||
        fail "re-adoption after DROP EXTENSION"
    echo "DROP EXTENSION CASCADE kept every row; adopted again"
    psql_q -d postgres -c "DROP DATABASE $db"
}

adopt_layout elixir public elixir_v13.sql jobs_elixir.sql client_elixir.sql
adopt_layout oban_py oban_py oban_py_06.sql jobs_oban_py.sql client_oban_py.sql

log "restore.sh on a dump of a fresh install (the extension's own oban_jobs)"
psql_q -d postgres -c "DROP DATABASE IF EXISTS oban_pro_adopt_fresh" -c "CREATE DATABASE oban_pro_adopt_fresh"
psql_q -d oban_pro_adopt_fresh -c "CREATE SCHEMA oban" -c "CREATE EXTENSION oban_pro SCHEMA oban" \
    -c "SELECT count(*) FROM oban.oban_insert_jobs('[{\"worker\": \"Fresh\"}, {\"worker\": \"Fresh\"}]')" -o /dev/null
dump_restore oban_pro_adopt_fresh oban
psql_q -d postgres -c "DROP DATABASE oban_pro_adopt_fresh"

log "adopt: tables that cannot be adopted are refused, changing nothing"
db=oban_pro_adopt_refused
psql_q -d postgres -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db"
refused() {  # refused WHAT SQLSTATE SETUP...: the schema s set up by SETUP is refused with SQLSTATE
    local what=$1 want=$2; shift 2
    psql_q -d "$db" -c "DROP SCHEMA IF EXISTS s CASCADE" -c "CREATE SCHEMA s" -c "SET search_path = s" "$@"
    local objects state
    objects=$(value -d "$db" -c "SELECT count(*) FROM pg_class WHERE relnamespace = 's'::regnamespace")
    state=$(sqlstate "$db" -c "CREATE EXTENSION oban_pro SCHEMA s")
    [ "$state" = "$want" ] || fail "$what: expected $want, got $state"
    [ "$(value -d "$db" -c "SELECT count(*) FROM pg_class WHERE relnamespace = 's'::regnamespace")" = "$objects" ] ||
        fail "$what: the refused adoption left objects behind"
    echo "refused: $what ($state)"
}
oban_py_layout() { sed 's/^CREATE SCHEMA .*//; s/^SET search_path = .*//' "$ADOPT/oban_py_06.sql"; }
refused "args of type text" 42804 -c "$(oban_py_layout | sed 's/args jsonb NOT NULL/args text NOT NULL/')"
refused "an enum older than V09 (no 'cancelled')" 55000 \
    -c "$(oban_py_layout | sed "s/, 'cancelled');/);/; s/ WHERE state = 'cancelled'/ WHERE state = 'discarded'/")"
refused "no worker column" 42703 -c "$(oban_py_layout | sed '/^    worker text NOT NULL,$/d; /worker_length/d')"
refused "a view named oban_jobs" 42809 \
    -c "CREATE TYPE oban_job_state AS ENUM ('available', 'scheduled', 'suspended', 'executing', 'retryable', 'completed', 'discarded', 'cancelled')" \
    -c "CREATE VIEW oban_jobs AS SELECT 1::bigint AS id, 'available'::oban_job_state AS state"

# A column a client could lack is added with its constant default: no rewrite, rows unchanged.
psql_q -d "$db" -c "DROP SCHEMA IF EXISTS s CASCADE" -v prefix=s -f "$ADOPT/oban_py_06.sql" -f "$ADOPT/jobs_oban_py.sql" \
    -c "ALTER TABLE s.oban_jobs DROP COLUMN attempted_by"
before=$(value -d "$db" -c "SELECT count(*) || ' ' || pg_relation_filenode('s.oban_jobs') || ' ' || md5(string_agg(ctid::text || xmin || args, ',' ORDER BY id)) FROM s.oban_jobs")
psql_q -d "$db" -c "CREATE EXTENSION oban_pro SCHEMA s"
after=$(value -d "$db" -c "SELECT count(*) || ' ' || pg_relation_filenode('s.oban_jobs') || ' ' || md5(string_agg(ctid::text || xmin || args, ',' ORDER BY id)) FROM s.oban_jobs")
[ "$before" = "$after" ] || fail "adding a missing column rewrote the table ($before / $after)"
fetched=$(value -d "$db" -c "SELECT count(*) FROM s.oban_fetch_jobs('old', 10) WHERE attempted_by = '{sql}'")
[ "$fetched" = 5 ] || fail "the added attempted_by column is not written (fetched $fetched)"
# The table now has a dropped column: the functions returning its rows map them by name.
rows=$(value -d "$db" -c "SELECT j.worker || ' ' || j.queue || ' ' || j.state || ' ' || j.attempted_by::text
                             FROM s.oban_insert_job('Late.Worker', queue => 'late') AS j" \
             -c "SELECT j.worker || ' ' || j.queue || ' ' || j.state
                 FROM s.oban_insert_jobs('[{\"worker\": \"Bulk.Worker\", \"queue\": \"late\"}]') AS j" \
             -c "SELECT j.worker || ' ' || j.attempted_by::text FROM s.oban_fetch_jobs('late', 1) AS j" | paste -sd '|')
[ "$rows" = "Late.Worker late available {}|Bulk.Worker late available|Late.Worker {sql}" ] ||
    fail "rows of a table with a dropped column: $rows"
echo "a missing column is added without a rewrite; rows of a table with a dropped column come out right"
psql_q -d postgres -c "DROP DATABASE $db"
echo "adopt: ok"
