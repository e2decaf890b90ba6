#!/usr/bin/env python3
"""Turns the SQL that graphile-worker's and pg-boss's own clients issued (captured by
graphile_capture.mjs / pgboss_capture.mjs from the packages installed at bench time) into pgbench
scripts. Statement texts are kept as captured; the only changes are mechanical and asserted here:
  - a fetch `WITH ... UPDATE ... RETURNING ...` becomes `WITH ..., fetched AS (UPDATE ... RETURNING
    ...) SELECT coalesce(array_agg(id), '{}') AS ids ... FROM fetched \\gset`, so pgbench can hand the
    ids to the completion statement (pgbench's \\gset needs exactly one row);
  - graphile-worker's `returning *` (of an UPDATE ... FROM j) becomes `returning jobs.*`;
  - positional parameters become pgbench variables (-M prepared sends them as parameters again);
  - pg-boss's flow() inlines client-made UUIDs into two JSON literals: they become two parameters
    built per flow by one preceding SELECT (fresh gen_random_uuid()s in the same JSON shape).
Usage: make_scripts.py GRAPHILE_JSON PGBOSS_JSON OUT_DIR"""
import json, re, sys

gw, pb, out = json.load(open(sys.argv[1])), json.load(open(sys.argv[2])), sys.argv[3]


def write(name, text):
    with open(f"{out}/{name}", "w") as f:
        f.write(text.rstrip() + "\n")


def flatten_fetch(text, update_kw, extra_cols=""):
    """WITH a AS (...) [, b AS (...)] UPDATE ... RETURNING ... -> one SELECT over a `fetched` CTE."""
    text = text.strip()
    assert re.match(r"(?is)^with\b", text), "fetch no longer starts with WITH"
    idx = [m.start() for m in re.finditer(rf"(?m)^\s*{update_kw}\s", text)]
    assert idx, "fetch has no top-level UPDATE"
    cut = idx[-1]
    head, upd = text[:cut].rstrip(), text[cut:].strip()
    assert re.search(r"(?is)\breturning\b", upd), "fetch UPDATE has no RETURNING"
    return (f"{head},\nfetched AS (\n{upd}\n)\n"
            f"SELECT coalesce(array_agg(id), '{{}}') AS ids{extra_cols} FROM fetched \\gset\n")


def one_line(text):  # pgbench meta-commands need the SQL on lines of its own; keep it readable
    return text.strip().rstrip(";")


# ---- graphile-worker --------------------------------------------------------------------------------
assert gw["fetch"] and gw["complete"], "graphile-worker capture saw no batched fetch / completion"
f = gw["fetch"][0]
assert f["name"].startswith("get_job10/"), f["name"]
fetch = f["text"].replace("$1::text", ":pool::text").replace("$2::int[]", ":tasks::int[]")
assert "$" not in fetch.replace("$$", ""), "unexpected parameter in graphile-worker's fetch"
# `returning *` of UPDATE ... FROM j returns j's columns too (two `id`s); the client only reads the
# job's: name it, so the wrapping SELECT can aggregate `id`.
assert fetch.rstrip().endswith("returning *"), "graphile-worker's fetch no longer ends with returning *"
fetch = fetch.rstrip()[: -len("returning *")] + "returning jobs.*"
c = gw["complete"][0]
assert c["name"].startswith("complete_jobs/"), c["name"]
complete = c["text"].replace("$1::bigint[]", ":ids::bigint[]")
assert "$" not in complete
lat_cols = ", coalesce(array_agg(extract(epoch FROM clock_timestamp() - (payload->>'t')::timestamptz) * 1000), '{}') AS lats, count(*) AS n"
header = f"-- generated from graphile-worker {gw['version']}'s own queries (src/sql/getJobs.ts, completeJobs.ts)\n"
write("graphile_consume.sql", header + flatten_fetch(fetch, "update") + one_line(complete) + ";\n")
write("graphile_lat_consume.sql", header + flatten_fetch(fetch, "update", lat_cols)
      + "\\if :n > 0\n" + one_line(complete) + ";\nINSERT INTO bench_lat SELECT unnest(:lats::float8[]);\n\\else\n\\sleep 10 ms\n\\endif\n")

# ---- pg-boss ----------------------------------------------------------------------------------------
ops = pb["ops"]
for k in ("insert", "fetch", "complete", "flow"):
    assert len(ops[k]) == 1, f"pg-boss {k} issued {len(ops[k])} statements; expected 1"
header = f"-- generated from pg-boss {pb['version']}'s own statements (src/plans.ts: insertJobs, fetchNextJob, completeJobs, flow)\n"
ins = ops["insert"][0]["text"]
assert "$1::text::json" in ins and "$2" not in ins
write("pgboss_produce.sql", header + one_line(ins.replace("$1::text::json", ":pgb_jobs::text::json")) + ";\n")
write("pgboss_lat_produce.sql", header + "SELECT json_build_array(json_build_object('data', json_build_object('t', clock_timestamp())))::text AS pgb_one \\gset\n"
      + one_line(ins.replace("$1::text::json", ":pgb_one::text::json")) + ";\n")
fet = ops["fetch"][0]["text"]
assert not ops["fetch"][0]["values"] and "$1" not in fet
comp = ops["complete"][0]["text"]
assert "$1" in comp and "$2::uuid[]" in comp and "$3::jsonb" in comp and "$4" not in comp
comp_q = lambda q: one_line(comp.replace("$1", f"'{q}'").replace("$2::uuid[]", ":ids::uuid[]").replace("$3::jsonb", "NULL::jsonb"))
write("pgboss_consume.sql", header + flatten_fetch(fet, "UPDATE") + comp_q("bench") + ";\n")
lat_cols = ", coalesce(array_agg(extract(epoch FROM clock_timestamp() - (data->>'t')::timestamptz) * 1000), '{}') AS lats, count(*) AS n"
write("pgboss_lat_consume.sql", header + flatten_fetch(fet, "UPDATE", lat_cols)
      + "\\if :n > 0\n" + comp_q("bench") + ";\nINSERT INTO bench_lat SELECT unnest(:lats::float8[]);\n\\else\n\\sleep 10 ms\n\\endif\n")
# flows: the same fetch / complete on queue bench_flow
fet_flow = fet.replace("'bench'", "'bench_flow'")
assert fet_flow.count("'bench_flow'") >= 1
write("pgboss_flow_consume.sql", header + flatten_fetch(fet_flow, "UPDATE") + comp_q("bench_flow") + ";\n")
flow = ops["flow"][0]["text"]
lits = re.findall(r"json_to_recordset\('((?:[^']|'')*)'::text::json\)", flow)
assert len(lits) == 2, "pg-boss flow() no longer inlines two JSON recordsets"
uuids = sorted(set(re.findall(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", lits[0])))
assert len(uuids) == 4, uuids
tmpl = []
for lit in lits:
    # the same JSON, re-serialized with a space after each colon: pgbench would read `:0` or `:null`
    # inside the literal as a variable
    t = json.dumps(json.loads(lit.replace("''", "'")), separators=(", ", ": ")).replace("'", "''")
    for i, u in enumerate(uuids):
        t = t.replace(u, f"@U{i}@")
    assert not re.search(r":[A-Za-z0-9_]", t), "a JSON literal would collide with pgbench variables"
    tmpl.append(t)
def build(t):
    expr = "'" + t + "'"
    for i in range(len(uuids)):
        expr = f"replace({expr}, '@U{i}@', u{i}::text)"
    return expr
gen = (f"SELECT {build(tmpl[0])} AS fjobs,\n       {build(tmpl[1])} AS fdeps\n"
       f"FROM (SELECT {', '.join(f'gen_random_uuid() AS u{i}' for i in range(len(uuids)))}) u \\gset\n")
body = flow.replace(f"'{lits[0]}'::text::json", ":fjobs::text::json").replace(f"'{lits[1]}'::text::json", ":fdeps::text::json")
stmts = [s.strip() for s in body.split(";") if s.strip()]
assert stmts[0].upper() == "BEGIN" and stmts[-1].upper() == "COMMIT", stmts[:1] + stmts[-1:]
write("pgboss_flow_produce.sql", header + "BEGIN;\n" + gen + ";\n".join(stmts[1:]) + ";\n")
print("wrote graphile and pg-boss pgbench scripts to", out)
