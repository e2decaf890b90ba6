#!/usr/bin/env bash
# Restores a pg_dump archive (-Fc or -Fd) of a database that has oban_pro, whether its Oban tables
# were created by the extension or adopted from oban-py / Elixir Oban (README "Backup and restore").
#   Usage: scripts/restore.sh ARCHIVE DBNAME [pg_restore connection options...]
# Runs pg_restore once, as a superuser (the extension needs one), with a reordered table of contents:
#   1. everything of the dump except the extension, the triggers the extension puts on oban_jobs and
#      the rows of the extension's own tables — so an adopted oban_jobs, its enum, its rows and its
#      indexes come back as the user objects they are, before the extension exists;
#   2. CREATE EXTENSION, which adopts the restored oban_jobs (or, for a dump of a fresh install,
#      creates it) and puts its triggers back;
#   3. the rows of the extension's tables (and of oban_jobs, for a fresh install).
# With session_replication_role = replica, so no trigger fires on restored rows: the dump already
# holds the workflow bookkeeping those rows had, and counting them again would double it.
# Environment: PG_RESTORE (default pg_restore), OBAN_PRO_SCRIPT (the extension's install script,
# default from pg_config --sharedir; it names the extension's triggers).
set -euo pipefail
[ $# -ge 2 ] || { echo "usage: $0 ARCHIVE DBNAME [pg_restore options...]" >&2; exit 2; }
archive=$1 db=$2
shift 2
restore=${PG_RESTORE:-pg_restore}
# The newest install script (oban_pro--X.sql, not an update script oban_pro--A--B.sql).
script=${OBAN_PRO_SCRIPT:-$(ls "$(pg_config --sharedir)"/extension/oban_pro--*.sql | grep -v -e '--.*--' | sort -V | tail -1)}
list=$(mktemp)
trap 'rm -f "$list"' EXIT

# The extension's trigger names, from its install script.
triggers=$(sed -n 's/^CREATE TRIGGER \([a-z_]*\).*/\1/p' "$script" | paste -sd '|')
[ -n "$triggers" ] || { echo "no CREATE TRIGGER found in $script" >&2; exit 1; }

"$restore" -l "$archive" | awk -v triggers="^($triggers)\$" '
    /^;/ || NF == 0 { next }
    # "ID; TABLEOID OID TYPE SCHEMA NAME OWNER", where TYPE may be two words (TABLE DATA, ...).
    { entry[NR] = $0 }
    / EXTENSION - oban_pro / || / COMMENT - EXTENSION oban_pro / { ext[NR] = 1; next }
    $4 == "TABLE" && $5 != "DATA" { defined["TABLE " $5 "." $6] = 1 }
    $4 == "SEQUENCE" && $5 != "SET" && $5 != "OWNED" { defined["SEQUENCE " $5 "." $6] = 1 }
    $4 == "TABLE" && $5 == "DATA" { data[NR] = "TABLE " $6 "." $7 }
    $4 == "SEQUENCE" && $5 == "SET" { data[NR] = "SEQUENCE " $6 "." $7 }
    $4 == "TRIGGER" && $6 == "oban_jobs" && $7 ~ triggers { skip[NR] = 1 }
    END {
        # Rows of tables (and positions of sequences) the dump does not define are the extension s.
        for (n in data) if (!(data[n] in defined)) member[n] = 1
        for (n = 1; n <= NR; n++) if ((n in entry) && !(n in ext) && !(n in member) && !(n in skip)) print entry[n]
        for (n = 1; n <= NR; n++) if (n in ext) print entry[n]
        for (n = 1; n <= NR; n++) if (n in member) print entry[n]
    }' >"$list"

PGOPTIONS="${PGOPTIONS:-} -c session_replication_role=replica" \
    "$restore" --exit-on-error -L "$list" -d "$db" "$@" "$archive"
