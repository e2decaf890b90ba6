#!/usr/bin/env bash
# ALTER EXTENSION oban_pro UPDATE from every earlier version with an upgrade path to the default
# version: the updated schema equals a fresh install's (compared as pg_dump --binary-upgrade prints
# the extension's member objects: tables, columns in order, indexes, triggers, functions, grants,
# comments), and a database updated mid-workflow keeps its rows and finishes its work: suspended
# jobs released in order, a pending signal received, a unique name still held, counts exact.
# Usage: upgrade.sh WORKDIR
set -euo pipefail
source "$(dirname "$0")/../../scripts/lib.sh"
WORK=$1
psql_q() { PGOPTIONS="-c client_min_messages=warning" as_postgres psql -X -q -v ON_ERROR_STOP=1 "$@"; }
q() { PGOPTIONS="-c client_min_messages=warning" as_postgres psql -X -q -At -v ON_ERROR_STOP=1 "$@"; }
failed=0
fail() { echo "FAIL: $*"; failed=1; }

current=$(sed -n "s/^default_version = '\(.*\)'/\1/p" "$REPO/oban_pro.control")
# Versions with a script of their own and an update script to the current one.
older=$(cd "$REPO/sql" && ls oban_pro--*--"$current".sql 2>/dev/null | sed "s/^oban_pro--\(.*\)--$current\.sql$/\1/")
[ -n "$older" ] || { echo "no update script to $current"; exit 1; }

# The extension's member objects as pg_upgrade would recreate them, without OIDs.
schema_of() {
    as_postgres pg_dump --binary-upgrade --schema-only --no-owner -d "$1" |
        sed '/^UPDATE pg_catalog.pg_class$/,/^WHERE oid = /d' |  # relfrozenxid/relminmxid
        grep -v -e '^--' -e 'binary_upgrade_set_' -e '^SELECT pg_catalog.set_config' -e '^$' \
            -e '^SELECT pg_catalog.setval' -e '^\\restrict' -e '^\\unrestrict' \
            -e 'pg_catalog.binary_upgrade_create_empty_extension'
}

psql_q -c "DROP DATABASE IF EXISTS upgrade_fresh" -c "CREATE DATABASE upgrade_fresh"
psql_q -d upgrade_fresh -c "CREATE SCHEMA oban" -c "CREATE EXTENSION oban_pro SCHEMA oban"
schema_of upgrade_fresh > "$WORK/upgrade_fresh.sql"

for old in $older; do
    db=upgrade_from_${old//./_}
    psql_q -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db"
    psql_q -d "$db" -c "CREATE SCHEMA oban" -c "CREATE EXTENSION oban_pro SCHEMA oban VERSION '$old'"
    # Work in flight under the old version: a workflow with a sub-workflow half done, a unique
    # workflow holding its name, a parked job with a signal waiting for it, plain jobs.
    psql_q -d "$db" <<'SQL'
\o /dev/null
SET search_path = oban;
SELECT count(*) FROM oban_insert_workflow('{"workflow_id": "wf", "name": "nightly", "unique": true, "jobs": [
  {"name": "extract", "worker": "W"},
  {"name": "import", "deps": ["extract"], "workflow": {"jobs": [{"name": "a", "worker": "W"}, {"name": "b", "worker": "W", "deps": ["a"]}]}},
  {"name": "load", "worker": "W", "deps": ["extract", "import"]}]}');
SELECT count(*) FROM oban_insert_jobs('[{"worker": "Plain"}, {"worker": "Plain"}, {"worker": "Approval", "queue": "approvals"}]');
SELECT count(*) FROM oban_fetch_jobs('default', 1);       -- wf/extract (the first job inserted)
SELECT oban_complete_job(id) FROM oban_jobs WHERE meta->>'name' = 'extract';
SELECT count(*) FROM oban_fetch_jobs('approvals', 1);
SELECT status FROM oban_await_signal((SELECT id FROM oban_jobs WHERE worker = 'Approval'), NULL, '0');
SELECT oban_signal((SELECT id FROM oban_jobs WHERE worker = 'Approval'), '{"approved": true}');
SQL
    before=$(q -d "$db" -c "SELECT md5(string_agg(concat_ws('|', id, state, worker, args, meta), ',' ORDER BY id))
                              FROM oban.oban_jobs")

    psql_q -d "$db" -c "ALTER EXTENSION oban_pro UPDATE"
    version=$(q -d "$db" -c "SELECT extversion FROM pg_extension WHERE extname = 'oban_pro'")
    [ "$version" = "$current" ] || fail "$old: updated to $version, not $current"
    schema_of "$db" > "$WORK/upgrade_$old.sql"
    if ! diff -u "$WORK/upgrade_fresh.sql" "$WORK/upgrade_$old.sql" > "$WORK/upgrade_$old.diff"; then
        fail "$old → $current: the updated schema differs from a fresh install's:"
        head -60 "$WORK/upgrade_$old.diff"
    fi
    after=$(q -d "$db" -c "SELECT md5(string_agg(concat_ws('|', id, state, worker, args, meta), ',' ORDER BY id))
                             FROM oban.oban_jobs")
    [ "$before" = "$after" ] || fail "$old: job rows changed by the update"

    # The work goes on under the new version.
    result=$(q -d "$db" <<'SQL'
SET search_path = oban;
-- The update filled oban_workflow_steps from the jobs there were.
SELECT 'steps:' || ((SELECT count(*) FROM oban_workflow_steps AS s JOIN oban_jobs AS j
                     ON j.id = s.job_id AND j.meta->>'workflow_id' = s.workflow_id
                        AND j.meta->>'name' IS NOT DISTINCT FROM s.name)
                    = (SELECT count(*) FROM oban_jobs WHERE meta ? 'workflow_id')
                    AND (SELECT count(*) FROM oban_workflow_steps) = (SELECT count(*) FROM oban_jobs WHERE meta ? 'workflow_id'));
SELECT 'conflict:' || bool_and(conflicted) FROM oban_insert_workflow('{"name": "nightly", "unique": true, "jobs": [{"name": "x", "worker": "W"}]}');
SELECT 'signal:' || status || ':' || (payload->>'approved')
FROM oban_fetch_jobs('approvals', 1) AS j, oban_await_signal(j.id) AS s;
SELECT count(*) * 0 FROM oban_ack_jobs((SELECT jsonb_agg(jsonb_build_object('id', id, 'state', 'completed'))
                                        FROM oban_jobs WHERE state = 'executing'));
CREATE TEMP TABLE done (name text, round int);
DO $$
BEGIN
    FOR round IN 1..10 LOOP
        PERFORM oban_flush_workflows();
        INSERT INTO done SELECT j.meta->>'name', round FROM oban_fetch_jobs('default', 10) AS j
                          WHERE oban_complete_job(j.id);
    END LOOP;
END $$;
SELECT 'status:' || (oban_workflow_status('wf')->>'state') || ':' || (oban_workflow_status('wf')->>'total');
-- Each step ran in a later round than its deps (extract was completed before the update).
SELECT 'order:' || string_agg(name, ',' ORDER BY round, name) FROM done WHERE name IS NOT NULL;
SELECT 'in order:' || ((SELECT max(round) FROM done WHERE name IN ('a', 'b')) < (SELECT round FROM done WHERE name = 'load')
                       AND (SELECT round FROM done WHERE name = 'a') < (SELECT round FROM done WHERE name = 'b'));
SELECT 'unfinished:' || count(*) FROM oban_jobs WHERE state NOT IN ('completed', 'cancelled', 'discarded');
SQL
)
    echo "$old → $current: $(echo "$result" | grep -v '^0$' | paste -sd ' ')"
    echo "$result" | grep -qx 'steps:true' || fail "$old: oban_workflow_steps does not match the workflow jobs"
    echo "$result" | grep -qx 'conflict:true' || fail "$old: the unique name is not held after the update"
    echo "$result" | grep -qx 'signal:received:true' || fail "$old: the pending signal was not received"
    echo "$result" | grep -qx 'status:completed:4' || fail "$old: the workflow did not complete"
    echo "$result" | grep -qx 'in order:true' || fail "$old: steps ran out of dependency order"
    echo "$result" | grep -qx 'unfinished:0' || fail "$old: jobs left unfinished"
    read -r checked mismatches <<<"$(q -d "$db" -F ' ' -c "SET search_path = oban" -f "$REPO/test/check_counts.sql" | tail -1)"
    echo "$old: workflows checked: $checked, mismatches: $mismatches"
    [ "$checked" -gt 0 ] && [ "$mismatches" = 0 ] || fail "$old: counts differ from a recount"
    psql_q -c "DROP DATABASE $db"
done
# An oban_jobs_workflow_index the old version did not make (say, an adopted table's own) is kept as
# it is: only the old version's own index is dropped (the schema comparison above checks that).
for old in $older; do
    db=upgrade_kept_${old//./_}
    psql_q -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db"
    psql_q -d "$db" -c "CREATE SCHEMA oban" -c "CREATE EXTENSION oban_pro SCHEMA oban VERSION '$old'" \
        -c "DROP INDEX oban.oban_jobs_workflow_index" \
        -c "CREATE INDEX oban_jobs_workflow_index ON oban.oban_jobs ((meta->>'workflow_id')) WHERE meta ? 'workflow_id'" \
        -c "ALTER EXTENSION oban_pro UPDATE"
    kept=$(q -d "$db" -c "SELECT pg_get_indexdef('oban.oban_jobs_workflow_index'::regclass)")
    echo "$old, an index of its own: $kept"
    [[ "$kept" == *"btree (((meta ->> 'workflow_id'::text))) WHERE"* ]] || fail "$old: the update replaced an index it did not make"
    psql_q -c "DROP DATABASE $db"
done
psql_q -c "DROP DATABASE upgrade_fresh"
[ "$failed" = 0 ] && echo "upgrade: ok"
exit "$failed"
