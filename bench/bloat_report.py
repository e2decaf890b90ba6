#!/usr/bin/env python3
"""Report of bench/bloat.sh: reads the run directory it wrote, prints markdown.

pgbench's per-transaction logs (-l) have one line per transaction:
  client_id transaction_no time script_no time_epoch time_us
script 0 is the producer, script 1 the consumer (bloat_consume.sql), whose transactions alternate per
client: fetch, ack, fetch, ack, ... (every client starts on a fetch).
"""
import glob
import os
import re
import statistics
import sys


def read_kv(path):
    out = {}
    with open(path) as f:
        for line in f:
            if "=" in line:
                k, v = line.rstrip("\n").split("=", 1)
                out[k] = v
    return out


def pct(values, p):
    if not values:
        return float("nan")
    v = sorted(values)
    k = max(0, min(len(v) - 1, int(round(p / 100.0 * len(v) + 0.5)) - 1))
    return v[k]


def median(values):
    values = [v for v in values if v == v]
    return statistics.median(values) if values else float("nan")


def read_txlog(prefix):
    """(kind, end_epoch, latency_ms) per transaction; kind: produce, fetch, ack; failed ones: kind+'!'."""
    out = []
    for path in sorted(glob.glob(prefix + ".[0-9]*")):
        consumer_seen = {}
        with open(path) as f:
            for line in f:
                parts = line.split()
                if len(parts) < 6:
                    continue
                client, _, time_us, script, epoch, us = parts[:6]
                if script == "0":
                    kind = "produce"
                else:
                    n = consumer_seen.get(client, 0)
                    consumer_seen[client] = n + 1
                    kind = "fetch" if n % 2 == 0 else "ack"
                end = int(epoch) + int(us) / 1e6
                if not time_us.isdigit():
                    out.append((kind + "!", end, float("nan")))
                else:
                    out.append((kind, end, int(time_us) / 1000.0))
    return out


def statement_latencies(path):
    """pgbench -r: average ms of the insert, fetch and ack statements."""
    res = {}
    with open(path) as f:
        for line in f:
            m = re.match(r"^\s+([0-9.]+)\s+(?:\d+\s+)*(.*)$", line)
            if not m:
                continue
            text = m.group(2)
            for key, needle in (("produce", "oban_insert_jobs"), ("fetch", "oban_fetch_jobs"), ("ack", "oban_ack_jobs"),
                                ("produce", "INSERT INTO oban_jobs"), ("fetch", "WITH locked AS"),
                                ("ack", "UPDATE oban_jobs SET state = 'completed'")):
                if needle in text:
                    res[key] = float(m.group(1))
    return res


def failures(path):
    with open(path) as f:
        text = f.read()
    m = re.search(r"number of failed transactions: (\d+)", text)
    return int(m.group(1)) if m else 0


def parse_explain(path):
    """[(label, buffers hit + read, execution ms)] from explain_session's summary lines."""
    out, cur = [], None
    if not os.path.exists(path):
        return out
    for line in open(path):
        line = line.rstrip("\n")
        if line.startswith("@@"):
            cur = {"label": line[2:].strip(), "buffers": None, "ms": None}
            out.append(cur)
        elif cur is not None and "Buffers:" in line and cur["buffers"] is None:
            cur["buffers"] = sum(int(x) for x in re.findall(r"(?:hit|read)=(\d+)", line))
            cur["raw"] = line.strip()
        elif cur is not None and line.startswith("Execution Time"):
            cur["ms"] = float(re.findall(r"([0-9.]+) ms", line)[0])
    return out


def autovacuums(path, table):
    """(passes, elapsed seconds) of autovacuum on TABLE ("db.public.oban_jobs") in a server log."""
    n, elapsed, inside = 0, 0.0, False
    if not os.path.exists(path):
        return float("nan"), float("nan")
    for line in open(path, errors="replace"):
        if "automatic vacuum of table" in line:
            inside = f'"{table}"' in line
            n += inside
        elif inside and "elapsed:" in line:
            elapsed += float(re.findall(r"elapsed: ([0-9.]+) s", line)[0])
            inside = False
    return n, elapsed


def fmt(v, d=2):
    return "n/a" if v != v else f"{v:.{d}f}"


def ratio(a, b):
    return float("nan") if not b or b != b or a != a else a / b


def snapshot_report(d):
    meta = read_kv(os.path.join(d, "meta.txt"))
    t0 = float(meta["t0"])
    warmup = int(meta.get("warmup", 0))
    before, hold, after, step = (int(meta[k]) for k in ("before", "hold", "after", "interval"))
    total = warmup + before + hold + after
    nbuckets = total // step
    hs, he = float(meta["hold_start"]), float(meta["hold_end"])

    def phase_of(i):
        s = i * step - warmup
        if s < 0:
            return "warm-up"
        return "before" if s < before else ("during" if s < before + hold else "after")

    def bucket(t):
        i = int((t - t0) // step)
        return i if 0 <= i < nbuckets else None

    tx = read_txlog(os.path.join(d, "log"))
    lat = {k: [[] for _ in range(nbuckets)] for k in ("produce", "fetch", "ack")}
    failed = 0
    for kind, end, ms in tx:
        i = bucket(end)
        if kind.endswith("!"):
            failed += 1
            continue
        if i is not None:
            lat[kind][i].append(ms)

    done = [0] * nbuckets
    with open(os.path.join(d, "completed.tsv")) as f:
        for line in f:
            sec, n = line.split()
            i = bucket(int(sec) + 0.5)
            if i is not None:
                done[i] += int(n)

    mon = []
    with open(os.path.join(d, "monitor.tsv")) as f:
        next(f)
        for line in f:
            p = line.rstrip("\n").split("\t")
            if len(p) >= 8:
                mon.append((float(p[0]), int(p[1]), int(p[2]), int(p[3]), int(p[4]), int(p[5]), p[6], int(p[7])))

    def sample_at(t):
        """The last monitor sample taken at or before t (else the first)."""
        best = mon[0] if mon else None
        for s in mon:
            if s[0] <= t:
                best = s
        return best

    stm = statement_latencies(os.path.join(d, "pgbench.out"))
    completed_total, inserted_total = open(os.path.join(d, "totals.tsv")).read().split()

    print(f"### synchronous_commit = {meta['sync']}")
    print()
    print(f"pgbench ran {total} s; the snapshot was held from {hs - t0:.1f} s to {he - t0:.1f} s "
          f"({he - hs:.0f} s). Jobs inserted {inserted_total}, completed {completed_total}; failed transactions "
          f"{failures(os.path.join(d, 'pgbench.out'))}. Whole-run pgbench -r averages: insert "
          f"{fmt(stm.get('produce', float('nan')))} ms, fetch {fmt(stm.get('fetch', float('nan')))} ms, "
          f"ack {fmt(stm.get('ack', float('nan')))} ms.")
    print()
    print(f"| interval (s) | phase | completed jobs/s | fetch p50 / p99 (ms) | ack p50 / p99 (ms) | insert p50 (ms) "
          f"| n_live_tup / n_dead_tup at end | heap / indexes at end (MB) | autovacuums so far | oldest xmin age |")
    print("|---|---|---:|---|---|---:|---:|---|---:|---:|")
    for i in range(nbuckets):
        s = sample_at(t0 + (i + 1) * step)
        print(f"| {i * step}–{(i + 1) * step} | {phase_of(i)} | {done[i] / step:.0f} "
              f"| {fmt(pct(lat['fetch'][i], 50))} / {fmt(pct(lat['fetch'][i], 99))} "
              f"| {fmt(pct(lat['ack'][i], 50))} / {fmt(pct(lat['ack'][i], 99))} | {fmt(pct(lat['produce'][i], 50))} "
              f"| {s[1] if s else '?'} / {s[2] if s else '?'} | {s[3] / 1048576:.1f} / {s[4] / 1048576:.1f} | {s[5] if s else '?'} "
              f"| {s[7] if s else '?'} |")
    print()

    phases = {}
    for name in ("before", "during", "after"):
        idx = [i for i in range(nbuckets) if phase_of(i) == name]
        if not idx:
            continue
        f_all = [x for i in idx for x in lat["fetch"][i]]
        a_all = [x for i in idx for x in lat["ack"][i]]
        end_t = t0 + (idx[-1] + 1) * step
        s = sample_at(end_t)
        dead_max = max([m[2] for m in mon if t0 + idx[0] * step < m[0] <= end_t] or [0])
        phases[name] = {
            "jobs_s": sum(done[i] for i in idx) / (len(idx) * step),
            "fetch_p50": pct(f_all, 50), "fetch_p99": pct(f_all, 99),
            "ack_p50": pct(a_all, 50), "ack_p99": pct(a_all, 99),
            "dead_end": s[2] if s else float("nan"), "dead_max": dead_max,
            "mb_end": (s[3] + s[4]) / 1048576 if s else float("nan"),
        }
        last = idx[-1]
        phases[name + "_last"] = {
            "jobs_s": done[last] / step,
            "fetch_p50": pct(lat["fetch"][last], 50), "fetch_p99": pct(lat["fetch"][last], 99),
            "ack_p50": pct(lat["ack"][last], 50), "ack_p99": pct(lat["ack"][last], 99),
            "dead_end": s[2] if s else float("nan"), "dead_max": dead_max,
            "mb_end": (s[3] + s[4]) / 1048576 if s else float("nan"),
        }
    cols = [("jobs_s", "completed jobs/s", 0), ("fetch_p50", "fetch p50 ms", 2), ("fetch_p99", "fetch p99 ms", 2),
            ("ack_p50", "ack p50 ms", 2), ("ack_p99", "ack p99 ms", 2), ("dead_end", "n_dead_tup at end", 0),
            ("dead_max", "n_dead_tup max", 0), ("mb_end", "heap + indexes at end (MB)", 1)]
    print("| phase | " + " | ".join(c[1] for c in cols) + " |")
    print("|---|" + "---:|" * len(cols))
    for name, label in (("before", "before"), ("during", "during (whole hold)"),
                        ("during_last", f"during, last {step} s"), ("after", "after")):
        if name in phases:
            print(f"| {label} | " + " | ".join(fmt(phases[name][c[0]], c[2]) for c in cols) + " |")
    b = phases.get("before")
    if b:
        for name, label in (("during", "during / before"), ("during_last", f"during (last {step} s) / before"),
                            ("after", "after / before")):
            if name in phases:
                print(f"| **{label}** | " + " | ".join(fmt(ratio(phases[name][c[0]], b[c[0]])) for c in cols) + " |")
    print()
    probes = []
    for name in ("before", "during", "after"):
        for e in parse_explain(os.path.join(d, f"probe-{name}.txt")):
            probes.append(f"{name}: {e['label']} {e['ms']} ms, {e['buffers']} buffers")
    if probes:
        print("Probe 15 s before the end of each phase (one fetch of 10, one ack of them, under EXPLAIN (ANALYZE, "
              "BUFFERS); buffers include the statements inside the function): " + "; ".join(probes) + ".")
        print()
    av = os.path.join(d, "autovacuum.log")
    if os.path.exists(av):
        lines = [l for l in open(av) if "automatic vacuum" in l]
        print(f"Autovacuum runs on oban_jobs during the run (server log): {len(lines)}.")
        print()
    return phases


def finished_report(d):
    runs = []
    with open(os.path.join(d, "runs.tsv")) as f:
        next(f)
        for line in f:
            sync, rnd, db, completed, inserted, secs = line.split()
            base = os.path.join(d, f"r{rnd}-{db}")
            stm = statement_latencies(base + ".out")
            tx = read_txlog(base)
            fl = [ms for k, _, ms in tx if k == "fetch"]
            al = [ms for k, _, ms in tx if k == "ack"]
            runs.append({"sync": sync, "round": int(rnd), "db": db, "jobs_s": int(completed) / int(secs),
                         "fetch_avg": stm.get("fetch", float("nan")), "ack_avg": stm.get("ack", float("nan")),
                         "fetch_p50": pct(fl, 50), "fetch_p99": pct(fl, 99),
                         "ack_p50": pct(al, 50), "ack_p99": pct(al, 99), "failed": failures(base + ".out"),
                         "av": autovacuums(base + ".server.log", f"{db}.public.oban_jobs")})
    return runs


def main():
    d = sys.argv[1]
    meta = read_kv(os.path.join(d, "meta.txt"))
    print(f"## oban_pro long transactions and bloat (bench/bloat.sh), run {os.path.basename(d)}")
    print()
    print(f"{meta.get('machine', '')}; clients={meta.get('clients', '')}; oban_pro commit {meta.get('commit', '?')}"
          + (f", with uncommitted changes in {meta['dirty']}" if meta.get("dirty") else "")
          + f". Load average at the start {meta.get('load_start', '?')}, at the end {meta.get('load_end', '?')}.")
    print()
    snaps = sorted(glob.glob(os.path.join(d, "snapshot-*")))
    if snaps:
        print("### Part \"snapshot\": the lifecycle workload while another session holds an old snapshot")
        print()
        for s in snaps:
            snapshot_report(s)
    fins = sorted(glob.glob(os.path.join(d, "finished-o*")))
    if fins:
        print("### Part \"finished\": fetch and ack with few vs 1,000,000 finished jobs in the table")
        print()
        states = os.path.join(d, "finished-states.txt")
        if os.path.exists(states):
            print("bloat_big's finished rows: " + ", ".join(l.strip().replace("|", " ") for l in open(states)) + ".")
            print()
        cols = [("jobs_s", "jobs/s", 0), ("fetch_avg", "fetch avg ms", 3), ("fetch_p50", "fetch p50", 3),
                ("fetch_p99", "fetch p99", 3), ("ack_avg", "ack avg ms", 3), ("ack_p50", "ack p50", 3),
                ("ack_p99", "ack p99", 3)]
        print("| synchronous_commit | table | runs (jobs/s) | " + " | ".join("median " + c[1] for c in cols)
              + " | failed tx | autovacuum passes on oban_jobs, per run (elapsed s) |")
        print("|---|---|---|" + "---:|" * len(cols) + "---:|---|")
        for fdir in fins:
            runs = finished_report(fdir)
            for db in ("bloat_small", "bloat_big"):
                rs = [r for r in runs if r["db"] == db]
                if not rs:
                    continue
                print(f"| {rs[0]['sync']} | {db} | " + ", ".join(f"{r['jobs_s']:.0f}" for r in rs) + " | "
                      + " | ".join(fmt(median([r[c[0]] for r in rs]), c[2]) for c in cols)
                      + f" | {sum(r['failed'] for r in rs)} | "
                      + ", ".join(f"{r['av'][0]} ({r['av'][1]:.1f})" for r in rs) + " |")
            small = {r["round"]: r for r in runs if r["db"] == "bloat_small"}
            big = {r["round"]: r for r in runs if r["db"] == "bloat_big"}
            if small and big:
                cells = []
                for c in cols:
                    mm = ratio(median([r[c[0]] for r in big.values()]), median([r[c[0]] for r in small.values()]))
                    paired = median([ratio(big[k][c[0]], small[k][c[0]]) for k in big if k in small])
                    cells.append(f"{fmt(mm)} [{fmt(paired)}]")
                print(f"| {runs[0]['sync']} | **big / small** | | " + " | ".join(cells) + " | | |")
        print()
        print("Ratios: median over median; in brackets the median of the per-round ratios.")
        print()
        diag = os.path.join(d, "finished-diagnosis.txt")
        if os.path.exists(diag):
            blocks, cur = {}, None
            for line in open(diag):
                if line.startswith("=== "):
                    cur = line[4:].split(":")[0]
                    blocks[cur] = {"title": line[4:].strip(), "path": None}
            per_db = {}
            text = open(diag).read()
            for part in text.split("=== ")[1:]:
                db = part.split(":")[0]
                tmp = os.path.join(d, f".{db}.summary")
                with open(tmp, "w") as f:
                    f.write(part)
                per_db[db] = {e["label"]: e for e in parse_explain(tmp)}
                os.unlink(tmp)
            print("One call of each, after a warm-up call in the same session, under EXPLAIN (ANALYZE, BUFFERS) "
                  "(the buffers include the statements the function runs inside); inner plans in "
                  "`diagnosis-<db>.txt`:")
            print()
            for b in blocks.values():
                print(f"- {b['title']}")
            print()
            prunes = {k: per_db.pop(k) for k in list(per_db) if "pruning" in k}
            dbs = list(per_db)
            print("| call | " + " | ".join(f"{db}: ms, buffers" for db in dbs) + " |")
            print("|---|" + "---|" * len(dbs))
            labels = [e for e in per_db[dbs[0]]] if dbs else []
            for label in labels:
                cells = []
                for db in dbs:
                    e = per_db[db].get(label)
                    cells.append(f"{e['ms']} ms, {e['buffers']}" if e else "?")
                print(f"| {label} | " + " | ".join(cells) + " |")
            print()
            for k, entries in prunes.items():
                print(f"{blocks[k]['title']}:")
                print()
                print("| call | ms | buffers |")
                print("|---|---:|---:|")
                for e in entries.values():
                    print(f"| {e['label']} | {e['ms']} | {e['buffers']} |")
                print()


if __name__ == "__main__":
    main()
