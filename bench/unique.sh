#!/usr/bin/env bash
# Unique workflow inserts (issue 5), side by side on one throwaway cluster, as root:
#   bash bench/unique.sh
# 8 clients insert three-step workflows (extract → transform → load), each with a distinct name, as
# fast as they can; the contenders differ only in "unique": true:
#   fn_plain / fn_unique          one oban_insert_workflow(spec) call per transaction;
#   insert_plain / insert_unique  one plain multi-row INSERT of the three jobs (meta workflow_name,
#                                 and workflow_unique for the unique one).
# Metric: workflows inserted per second (pgbench tps). The contenders run one after another within
# each round, in an order rotated every round, the tables emptied before each run; medians over
# ROUNDS and the paired ratios unique/plain are printed for synchronous_commit on and off.
# Knobs: ROUNDS (5), DURATION (10 s), CLIENTS (8), SYNC ("on off").
set -euo pipefail
BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$BENCH_DIR/../scripts/lib.sh"
ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-10}
CLIENTS=${CLIENTS:-8}
SYNC=${SYNC:-on off}
CONTENDERS=(fn_plain fn_unique insert_plain insert_unique)

ensure_packages
build_and_install
WORK=$(make_workdir)
trap 'stop_cluster; rm -rf "$WORK"' EXIT
CLUSTER_EXTRA_CONF="oban_pro.database = 'bench_unique'" start_cluster "$WORK/cluster"
q() { psql -X -q -v ON_ERROR_STOP=1 -At -d bench_unique -c "$*"; }
psql -X -q -d postgres -c "CREATE DATABASE bench_unique"
q "CREATE EXTENSION oban_pro"

S=$WORK/scripts
mkdir -p "$S"
for unique in false true; do
    kind=$([ "$unique" = true ] && echo unique || echo plain)
    cat >"$S/fn_$kind.sql" <<SQL
SELECT count(*) FROM oban_insert_workflow(jsonb_build_object(
    'name', 'nightly-' || gen_random_uuid()::text, 'unique', $unique, 'jobs', '[
        {"name": "extract", "worker": "Bench.Extract"},
        {"name": "transform", "worker": "Bench.Transform", "deps": ["extract"]},
        {"name": "load", "worker": "Bench.Load", "deps": ["transform"]}]'::jsonb));
SQL
    cat >"$S/insert_$kind.sql" <<SQL
INSERT INTO oban_jobs (worker, meta)
SELECT s.worker, jsonb_build_object('workflow_id', w.id, 'name', s.name, 'deps', s.deps,
                                    'workflow_name', 'nightly-' || w.id) || s.extra
FROM (SELECT gen_random_uuid()::text AS id) AS w,
     (VALUES ('Bench.Extract', 'extract', '[]'::jsonb), ('Bench.Transform', 'transform', '["extract"]'),
             ('Bench.Load', 'load', '["transform"]')) AS s(worker, name, deps),
     (SELECT CASE WHEN $unique THEN '{"workflow_unique": true}' ELSE '{}' END::jsonb AS extra) AS s_extra(extra);
SQL
done
sed -i 's/ || s.extra$/ || s_extra.extra/' "$S"/insert_*.sql
chmod -R a+rX "$WORK"

run() {  # run CONTENDER → tps
    q "TRUNCATE oban_jobs RESTART IDENTITY" >/dev/null
    q "TRUNCATE oban_workflow_rows, oban_workflow_journal, oban_workflow_waits, oban_workflow_edges, oban_workflow_names" >/dev/null
    q "VACUUM ANALYZE" >/dev/null
    as_postgres pgbench -n -M prepared -c "$CLIENTS" -j 2 -T "$DURATION" -f "$S/$1.sql" bench_unique 2>&1 |
        sed -n 's/^tps = \([0-9.]*\).*/\1/p'
    # The unique runs must have claimed one name per workflow (no conflicts, nothing skipped).
    if [[ $1 == *_unique ]] && [ "$(q "SELECT count(*) FROM oban_workflow_names")" != "$(q "SELECT count(*) FROM oban_workflow_rows")" ]; then
        echo "FAIL: $1 did not claim one name per workflow" >&2
        exit 1
    fi
}

RESULTS=$WORK/results.tsv
: >"$RESULTS"
for sync in $SYNC; do
    psql -X -q -d postgres -c "ALTER SYSTEM SET synchronous_commit = $sync" -c "SELECT pg_reload_conf()" >/dev/null
    for round in $(seq "$ROUNDS"); do
        n=${#CONTENDERS[@]}
        line="sync=$sync round $round:"
        for i in $(seq 0 $((n - 1))); do
            c=${CONTENDERS[$(((i + round) % n))]}
            tps=$(run "$c")
            printf '%s\t%s\t%s\t%s\n' "$sync" "$round" "$c" "$tps" >>"$RESULTS"
            line="$line $c=$tps"
        done
        echo "$line"
    done
done

echo
echo "| synchronous_commit | contender | workflows/s (median of $ROUNDS) | ratio unique/plain (median of paired rounds) |"
echo "|---|---|---|---|"
for sync in $SYNC; do
    for c in "${CONTENDERS[@]}"; do
        med=$(awk -F'\t' -v s="$sync" -v c="$c" '$1 == s && $3 == c {print $4}' "$RESULTS" | sort -n |
              awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}')
        ratio=""
        if [[ $c == *_unique ]]; then
            base=${c%_unique}_plain
            ratio=$(awk -F'\t' -v s="$sync" -v c="$c" -v b="$base" '
                $1 == s && $3 == c {u[$2] = $4} $1 == s && $3 == b {p[$2] = $4}
                END {for (r in u) if (p[r] > 0) print u[r] / p[r]}' "$RESULTS" | sort -n |
                awk '{a[NR]=$1} END {printf "%.2f", (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}')
        fi
        echo "| $sync | $c | $med | $ratio |"
    done
done
