#!/usr/bin/env python3
"""Summary of bench/peers/run.sh: medians per peer, workload and synchronous_commit; ratios
oban_pro/peer; a markdown table ($MD) and a PNG chart ($RUN_DIR/peers.png).
With --results FILE --png PNG: also replaces the section between the peers markers of FILE
(bench/RESULTS.md) with the table and copies the chart to PNG."""
import csv, os, shutil, statistics, sys

env = os.environ
raw = list(csv.DictReader(open(env["RAW"]), delimiter="\t"))
peers, syncs, works = env["PEERS"].split(), env["SYNC_MODES"].split(), env["WORKLOADS"].split()
mode = ", ack+fetch in one call" if env.get("OBAN_CONSUMER") == "ackfetch" else ""
names = {"oban": f"oban_pro ({env['COMMIT']}{mode})", "graphile": f"graphile-worker {env['GW_VER']}",
         "pgboss": f"pg-boss {env['PB_VER']}", "pgq": f"PgQ {env['PGQ_DEB']}"}
wl = {"a": "(a) steady lifecycle, jobs/s", "b": f"(b) drain {int(env['BACKLOG']):,} jobs, jobs/s",
      "c": "(c) 4-step diamond workflows, workflows/s", "d": f"(d) enqueue-to-start latency at {env['LAT_RATE']} jobs/s, ms (p50 / p99)"}


def rows(s, w, p):
    return [r for r in raw if r["sync"] == s and r["workload"] == w and r["peer"] == p]


def med(vals):
    vals = [float(v) for v in vals if v not in ("", None)]
    return statistics.median(vals) if vals else None


def fmt(v, nd=0):
    return "–" if v is None else (f"{v:,.{nd}f}")


summary = {}  # (s, w, p) -> (median, median p99)
out = []
out.append(f"Machine: {env['MACHINE']}. Load average at the start {env['LOAD_START']}, at the end {env['LOAD_END']}; "
           f"other PostgreSQL servers running on the machine: {env['OTHERS_START']} at the start, {env['OTHERS_END']} at the end.")
out.append(f"Peers: {', '.join(names[p] for p in peers)}; graphile-worker and pg-boss from npm (node {env['NODE_VER']}), PgQ from Debian (postgresql-15-pgq3).")
out.append(f"Settings: {env['CLIENTS']} clients (`pgbench -n -M prepared -c {env['CLIENTS']} -j 2`), batches of 10, {env['DURATION']} s runs, "
           f"{env['ROUNDS']} rounds with the peers interleaved, under each synchronous_commit; PgQ: in (a) each producer ticks its queue "
           f"after its 10 events, (b) is preloaded with a tick after every 10 events, (d) runs the ticker at {env['TICK_RATE']} calls/s.")
batches = [(r["sync"], r["note"].split("; ")[1].split()[0]) for r in raw
           if r["peer"] == "pgq" and r["workload"] == "a" and "events per batch" in r["note"]]
if batches:
    out.append("PgQ's batches in (a), events per batch its consumers finished: " + "; ".join(
        f"synchronous_commit {s}: {', '.join(b for t, b in batches if t == s)}" for s in syncs if any(t == s for t, _ in batches)) + ".")
out.append(f"Command: `{env['CMD_LINE']}`")
out.append("")
out.append("| synchronous_commit | workload | " + " | ".join(names[p] for p in peers) + " | " + " | ".join(f"oban_pro / {names[p].split()[0]}" for p in peers if p != "oban") + " |")
out.append("|---|---|" + "---:|" * (2 * len(peers) - 1))
for s in syncs:
    for w in works:
        cells, ratios = [], []
        for p in peers:
            rs = rows(s, w, p)
            m, p99 = med(r["value"] for r in rs), med(r["p99"] for r in rs)
            summary[(s, w, p)] = (m, p99)
            runs = ", ".join(r["value"] + (f"/{r['p99']}" if r["p99"] else "") for r in rs)
            if m is None:
                cells.append("n/a" if w == "c" else "–")
            elif w == "d":
                cells.append(f"{m:.2f} / {p99:.2f} ({runs})")
            else:
                cells.append(f"{fmt(m, 1 if w == 'c' else 0)} ({runs})")
        o = summary[(s, w, "oban")]
        for p in peers:
            if p == "oban":
                continue
            m = summary[(s, w, p)]
            if m[0] is None or o[0] is None or m[0] == 0:
                ratios.append("n/a")
            elif w == "d":
                ratios.append(f"{o[0] / m[0]:.2f} / {o[1] / m[1]:.2f}" if m[1] else f"{o[0] / m[0]:.2f}")
            else:
                ratios.append(f"{o[0] / m[0]:.2f}x")
        out.append(f"| {s} | {wl[w]} | " + " | ".join(cells) + " | " + " | ".join(ratios) + " |")
out.append("")
out.append("Cells: median (every run's figure in brackets). Ratios: oban_pro's median over the peer's; for (d) lower "
           "latency is better, so a ratio below 1 means oban_pro starts jobs sooner. n/a: the peer has no workflows.")
out.append("")
out.append("Targets: oban_pro >= 1.0x every peer on (a) and (b) (with its workflow aggregation active), ahead of pg-boss flows on (c).")
for s in syncs:
    for w in ("a", "b", "c"):
        if w not in works:
            continue
        o = summary[(s, w, "oban")][0]
        for p in peers:
            if p == "oban" or (w == "c" and p != "pgboss"):
                continue
            m = summary[(s, w, p)][0]
            if o is None or not m:
                continue
            r = o / m
            out.append(f"- synchronous_commit={s}, ({w}) oban_pro/{names[p]} = {r:.2f}: {'meets' if r >= 1.0 else 'MISSES'}")
other = [int(r["other_cpu_pct"]) for r in raw if r["other_cpu_pct"].isdigit()]
if other:
    out.append("")
    out.append(f"CPU used by other processes on the machine during the runs: median {statistics.median(other):.0f}%, max {max(other)}% of both cores (per run in raw.tsv).")
md = "\n".join(out) + "\n"
with open(env["MD"], "w") as f:
    f.write(md)

# ---- chart ---------------------------------------------------------------------------------------
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt

fig, axes = plt.subplots(1, len(works), figsize=(4.2 * len(works), 4.2))
axes = [axes] if len(works) == 1 else axes
colors = {"oban": "#6c3fc5", "graphile": "#2a9d8f", "pgboss": "#e76f51", "pgq": "#577590"}
width = 0.8 / len(peers)
for ax, w in zip(axes, works):
    for i, p in enumerate(peers):
        xs, ys = [], []
        for j, s in enumerate(syncs):
            m = summary[(s, w, p)][0] if w != "d" else summary[(s, w, p)][0]
            if m is not None:
                xs.append(j + (i - (len(peers) - 1) / 2) * width)
                ys.append(m)
        if ys:
            ax.bar(xs, ys, width, label=names[p], color=colors[p])
            if w == "d":
                p99 = [summary[(s, w, p)][1] for s in syncs if summary[(s, w, p)][0] is not None]
                ax.scatter(xs, p99, marker="_", s=120, color="black", zorder=3)
    ax.set_xticks(range(len(syncs)))
    ax.set_xticklabels([f"sync_commit={s}" for s in syncs])
    ax.set_title(wl[w].replace(", ms (p50 / p99)", "\nms: bars p50, ticks p99").replace(", ", "\n", 1), fontsize=9)
    ax.grid(axis="y", alpha=0.3)
handles, labels = axes[0].get_legend_handles_labels()
fig.legend(handles, labels, loc="lower center", ncol=len(peers), fontsize=8)
fig.suptitle(f"oban_pro vs peers, {env['CLIENTS']} clients, batches of 10 (higher is better; latency: lower)", fontsize=10)
fig.tight_layout(rect=(0, 0.07, 1, 1))
png = os.path.join(env["RUN_DIR"], "peers.png")
fig.savefig(png, dpi=110)

if "--results" in sys.argv:
    res = sys.argv[sys.argv.index("--results") + 1]
    dst = sys.argv[sys.argv.index("--png") + 1]
    shutil.copy(png, dst)
    begin, end = "<!-- peers:begin -->", "<!-- peers:end -->"
    text = open(res).read()
    section = f"{begin}\n{md}\n![oban_pro vs peers]({os.path.basename(dst)})\n{end}"
    if begin in text:
        text = text[: text.index(begin)] + section + text[text.index(end) + len(end):]
    else:
        text = text.rstrip() + "\n\n## Peers (issue 10): `bash bench/peers/run.sh`\n\n" + section + "\n"
    open(res, "w").write(text)
