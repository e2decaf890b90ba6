"""Crash test driver (issue 8, point 1): 8 clients run mixed work against a cluster that is stopped
with `pg_ctl stop -m immediate` at random moments and restarted; after each restart, and after a
final drain, the committed work is checked against the database.

Run by test/crash/run.sh (which starts the cluster); run it with Debian's /usr/bin/python3 (psycopg 3).

What each client commits is appended, only after its COMMIT returned, to its own log file
(WORKDIR/client-N.log, one JSON object a line, flushed at once):
  {"k": "jobs", "ids": [...]}                 jobs inserted (plain or workflow jobs, not conflicted)
  {"k": "wf", "ids": [...]}                   workflows inserted (top-level and sub-workflows)
  {"k": "done", "id": N}                      a job this client completed
  {"k": "sig", "token": T, "job": N}          a signal stored for job N (oban_signal returned true,
                                              or oban_workflow_signal returned 1)
When a COMMIT itself raised (the server went away while committing), the transaction may or may not
have committed; the client writes the same line with "doubt": true instead. Doubtful jobs may be
missing; a doubtful signal may have been stored, so it may be consumed at most once.

Consumption is recorded in the database: every oban_await_signal that returns 'received' is
followed, in the same transaction, by INSERT INTO crash_receipts (token, job_id). So a receipt exists
if and only if the consumption committed.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import threading
import time
import traceback
import uuid

import psycopg
from psycopg.types.json import Jsonb

QUEUE = "crash"
UNIQUE_NAMES = ["u0", "u1", "u2", "u3"]
FINISHED = ("completed", "cancelled", "discarded")


class Paused(Exception):
    """The orchestrator is about to crash the server (or stop the load): leave the loop."""


def log(msg: str) -> None:
    print(msg, flush=True)


# --- the per-client commit log ----------------------------------------------------------------


class CommitLog:
    def __init__(self, path: str):
        self.f = open(path, "a", buffering=1)

    def write(self, doubt: bool, **record) -> None:
        if doubt:
            record["doubt"] = True
        self.f.write(json.dumps(record) + "\n")
        self.f.flush()


def read_logs(workdir: str) -> dict:
    """Everything the clients (and the drainer) say they committed."""
    jobs, jobs_doubt, wfs, done = set(), set(), set(), set()
    sigs, sigs_doubt = {}, {}
    for name in sorted(os.listdir(workdir)):
        if not (name.startswith("client-") and name.endswith(".log")):
            continue
        with open(os.path.join(workdir, name)) as f:
            for line in f:
                if not line.endswith("\n"):
                    continue  # never happens: lines are written whole
                r = json.loads(line)
                doubt = r.get("doubt", False)
                if r["k"] == "jobs":
                    (jobs_doubt if doubt else jobs).update(r["ids"])
                elif r["k"] == "wf":
                    if not doubt:
                        wfs.update(r["ids"])
                elif r["k"] == "done":
                    if not doubt:
                        done.add(r["id"])
                elif r["k"] == "sig":
                    (sigs_doubt if doubt else sigs)[r["token"]] = r["job"]
    return {"jobs": jobs, "jobs_doubt": jobs_doubt, "wfs": wfs, "done": done, "sigs": sigs,
            "sigs_doubt": sigs_doubt}


# --- one client --------------------------------------------------------------------------------


class Client(threading.Thread):
    """Runs mixed work: inserts (plain jobs, workflows with sub-workflows, unique workflows), fetches
    and runs jobs (mixed outcomes; Await jobs consume signals and park), signals, cancels, retries."""

    def __init__(self, n: int, drv: "Driver", drain: bool = False):
        super().__init__(name=f"client-{n}", daemon=True)
        self.n = n
        self.drv = drv
        self.drain = drain
        self.rng = random.Random(drv.seed * 100 + n)
        self.log = CommitLog(os.path.join(drv.workdir, f"client-{n}.log"))
        self.node = f"crash-{n}"
        self.producer = str(uuid.uuid4())
        self.conn: psycopg.Connection | None = None
        self.seq = 0
        self.my_wfs: list[str] = []
        self.paused = threading.Event()
        self.stopped = False
        self.ops = 0
        self.errors = 0
        self.rollbacks = 0
        self.fatal: str | None = None

    # connection handling: a server gone away makes the client pause until the orchestrator resumes it
    def connect(self) -> psycopg.Connection:
        if self.conn is None or self.conn.closed:
            self.conn = psycopg.connect(self.drv.dsn, autocommit=False, connect_timeout=5,
                                        application_name=self.name)
            with self.conn.cursor() as cur:
                cur.execute("SET statement_timeout = '30s'")
                cur.execute("INSERT INTO oban_producers (uuid, node, queue) VALUES (%s, %s, %s) "
                            "ON CONFLICT DO NOTHING", (self.producer, self.node, QUEUE))
            self.conn.commit()
        return self.conn

    def check_running(self) -> None:
        if not self.drain and not self.drv.resume.is_set():
            raise Paused()

    def commit(self) -> bool:
        """Commits; returns False when the COMMIT raised (the outcome is unknown: in doubt), after
        which the caller logs with doubt and the connection error propagates at the next use."""
        try:
            self.conn.commit()
            return True
        except psycopg.OperationalError:
            return False

    def token(self) -> str:
        self.seq += 1
        return f"{'d' if self.drain else 'c'}{self.n}-{self.seq}"

    def run(self) -> None:
        if self.drain:
            return
        while not self.drv.finished.is_set():
            try:
                self.check_running()
                self.connect()
                self.one_op()
                self.ops += 1
            except psycopg.errors.TransactionRollback:
                self.rollbacks += 1  # a deadlock or serialization failure: counted, the client goes on
                if self.conn is not None:
                    self.conn.rollback()
            except (Paused, psycopg.OperationalError, psycopg.InterfaceError) as e:
                if not isinstance(e, Paused):
                    self.errors += 1
                self.close()
                self.paused.set()
                while not self.drv.resume.wait(0.1):
                    if self.drv.finished.is_set():
                        break
                if self.drv.finished.is_set():
                    break
                self.paused.clear()
            except Exception:
                self.fatal = traceback.format_exc()
                self.close()
                self.paused.set()
                self.drv.failed.set()
                return
        self.close()
        self.paused.set()
        self.stopped = True

    def close(self) -> None:
        if self.conn is not None:
            try:
                self.conn.close()
            except Exception:
                pass
        self.conn = None

    # --- the operations ---
    def one_op(self) -> None:
        r = self.rng.random()
        if r < 0.12:
            self.insert_plain()
        elif r < 0.24:
            self.insert_workflow(unique=False)
        elif r < 0.32:
            self.insert_workflow(unique=True)
        elif r < 0.70:
            self.work()
        elif r < 0.86:
            self.send_signal()
        elif r < 0.90:
            self.cancel_workflow()
        elif r < 0.95:
            self.retry_job()
        else:
            self.cancel_job()

    def execute(self, sql: str, params=None) -> list:
        with self.conn.cursor() as cur:
            cur.execute(sql, params)
            return cur.fetchall() if cur.description else []

    def job_spec(self, await_share: float = 0.3) -> dict:
        if self.rng.random() < await_share:
            wait_for = None if self.rng.random() < 0.7 else "3 seconds"
            return {"worker": "Await", "queue": QUEUE, "max_attempts": 5,
                    "args": {"wait_for": wait_for, "block": self.rng.random() < 0.5}}
        return {"worker": "Plain", "queue": QUEUE, "max_attempts": 3, "args": {}}

    def insert_plain(self) -> None:
        jobs = [self.job_spec() for _ in range(self.rng.randint(1, 5))]
        rows = self.execute("SELECT id FROM oban_insert_jobs(%s)", (Jsonb(jobs),))
        ids = [r[0] for r in rows]
        self.log.write(not self.commit(), k="jobs", ids=ids)

    def workflow_spec(self, depth: int) -> dict:
        steps = []
        for i in range(self.rng.randint(2, 5)):
            step = {"name": f"s{i}", **self.job_spec(0.25)}
            earlier = [s["name"] for s in steps]
            if earlier:
                step["deps"] = self.rng.sample(earlier, self.rng.randint(0, min(2, len(earlier))))
            steps.append(step)
        if depth == 0 and self.rng.random() < 0.5:
            sub = {"name": "sub", "workflow": self.workflow_spec(1)}
            if steps and self.rng.random() < 0.5:
                sub["deps"] = [steps[0]["name"]]
            steps.append(sub)
            steps.append({"name": "after_sub", "deps": ["sub"], **self.job_spec(0.25)})
        return {"jobs": steps, "ignore_cancelled": self.rng.random() < 0.2}

    def insert_workflow(self, unique: bool) -> None:
        spec = self.workflow_spec(0)
        if unique:
            spec.update(name=self.rng.choice(UNIQUE_NAMES), unique=True)
        rows = self.execute("SELECT id, workflow_id, conflicted FROM oban_insert_workflow(%s)", (Jsonb(spec),))
        ids = [r[0] for r in rows if not r[2]]
        wfs = sorted({r[1] for r in rows if not r[2]})
        ok = self.commit()
        if ids:
            self.log.write(not ok, k="jobs", ids=ids)
            self.log.write(not ok, k="wf", ids=wfs)
            if ok:
                self.my_wfs = (self.my_wfs + wfs)[-40:]

    def work(self) -> int:
        """Fetches a few jobs (one transaction) and runs each."""
        demand = 20 if self.drain else self.rng.randint(1, 3)
        rows = self.execute("SELECT id, worker, args FROM oban_fetch_jobs(%s, %s, %s, %s)",
                            (QUEUE, demand, self.node, self.producer))
        if not self.commit():
            raise psycopg.OperationalError("commit of a fetch failed")
        for job_id, worker, args in rows:
            if worker == "Await":
                self.run_await(job_id, args)
            else:
                self.run_plain(job_id)
        return len(rows)

    def outcome(self) -> str:
        if self.drain:
            return "complete"
        r = self.rng.random()
        return ("complete" if r < 0.78 else "error" if r < 0.88 else "cancel" if r < 0.94
                else "snooze" if r < 0.97 else "discard")

    def ack(self, job_id: int, outcome: str) -> None:
        """Acks an executing job (in the open transaction, which the caller commits)."""
        if outcome == "complete":
            return self.execute("SELECT oban_complete_job(%s)", (job_id,))[0][0]
        if outcome == "error":
            return self.execute("SELECT oban_error_job(%s, 'boom', interval '1 second')", (job_id,))[0][0] is not None
        if outcome == "cancel":
            return self.execute("SELECT oban_cancel_job(%s, 'crash test')", (job_id,))[0][0]
        if outcome == "snooze":
            return self.execute("SELECT oban_snooze_job(%s, interval '1 second')", (job_id,))[0][0]
        return self.execute("SELECT oban_discard_job(%s, 'crash test')", (job_id,))[0][0]

    def run_plain(self, job_id: int) -> None:
        outcome = self.outcome()
        changed = self.ack(job_id, outcome)
        ok = self.commit()
        if changed and outcome == "complete":
            self.log.write(not ok, k="done", id=job_id)

    def run_await(self, job_id: int, args: dict) -> None:
        """An Await job: consumes its signals (a receipt per signal, in the consuming transaction);
        finishes once it received one in this run (or its deadline passed), and only when its
        mailbox is empty under a row lock that keeps signallers out, so that it never finishes with
        a signal left unconsumed; parks when no signal comes."""
        received = 0
        wait_for = args.get("wait_for")
        for _ in range(50):
            if received or (wait_for == "passed"):
                row = self.execute("SELECT state FROM oban_jobs WHERE id = %s FOR UPDATE", (job_id,))
                if not row or row[0][0] != "executing":
                    self.conn.rollback()  # cancelled meanwhile
                    return
                left = self.execute("SELECT count(*) FROM oban_signals WHERE job_id = %s", (job_id,))[0][0]
                if left == 0:
                    outcome = self.outcome()
                    if outcome in ("snooze", "discard"):
                        outcome = "complete"
                    changed = self.ack(job_id, outcome)
                    ok = self.commit()
                    if changed and outcome == "complete":
                        self.log.write(not ok, k="done", id=job_id)
                    return
                self.conn.rollback()
            block = args.get("block") and not self.drain
            try:
                rows = self.execute(
                    "SELECT status, payload FROM oban_await_signal(%s, %s::interval, %s::interval)",
                    (job_id, wait_for if wait_for != "passed" else None, "0.3 seconds" if block else "0"))
            except psycopg.errors.ObjectNotInPrerequisiteState:
                self.conn.rollback()  # the job was cancelled while we awaited
                return
            status, payload = rows[0]
            if status == "received":
                self.execute("INSERT INTO crash_receipts (token, job_id) VALUES (%s, %s)",
                             (payload.get("token"), job_id))
                self.commit()
                received += 1
            elif status == "timeout":
                self.commit()
                wait_for = "passed"
            else:  # suspended: parked; the job runs again once signalled (or its deadline passes)
                self.commit()
                return
        self.conn.rollback()

    def send_signal(self) -> None:
        """Signals an Await job that is executing or parked, or a workflow's Await step by name."""
        if self.rng.random() < 0.3:
            rows = self.execute(
                "SELECT id, meta->>'workflow_id', meta->>'name' FROM oban_jobs WHERE worker = 'Await' "
                "AND meta ? 'workflow_id' AND state IN ('suspended', 'executing') ORDER BY random() LIMIT 1")
            self.conn.rollback()
            if not rows:
                return
            job_id, wf, name = rows[0]
            tok = self.token()
            n = self.execute("SELECT oban_workflow_signal(%s, %s, %s)", (wf, name, Jsonb({"token": tok})))[0][0]
            ok = self.commit()
            if n:
                self.log.write(not ok, k="sig", token=tok, job=job_id)
            return
        rows = self.execute(
            "SELECT id FROM oban_jobs WHERE worker = 'Await' AND (state = 'executing' OR "
            "(state = 'suspended' AND meta ? 'wait_until')) ORDER BY random() LIMIT 1")
        self.conn.rollback()
        if not rows:
            return
        job_id = rows[0][0]
        tok = self.token()
        stored = self.execute("SELECT oban_signal(%s::bigint, %s)", (job_id, Jsonb({"token": tok})))[0][0]
        ok = self.commit()
        if stored:
            self.log.write(not ok, k="sig", token=tok, job=job_id)

    def cancel_workflow(self) -> None:
        if not self.my_wfs:
            return
        self.execute("SELECT oban_cancel_workflow(%s)", (self.rng.choice(self.my_wfs),))
        self.commit()

    def retry_job(self) -> None:
        """Retries a cancelled or discarded job that belongs to no workflow."""
        rows = self.execute("SELECT id FROM oban_jobs WHERE state IN ('cancelled', 'discarded') "
                            "AND NOT meta ? 'workflow_id' ORDER BY random() LIMIT 1")
        if rows:
            self.execute("SELECT oban_retry_job(%s)", (rows[0][0],))
        self.commit()

    def cancel_job(self) -> None:
        rows = self.execute("SELECT id FROM oban_jobs WHERE state IN ('available', 'scheduled', 'retryable') "
                            "AND NOT meta ? 'workflow_id' ORDER BY random() LIMIT 1")
        if rows:
            self.execute("SELECT oban_cancel_job(%s, 'cancelled by a client')", (rows[0][0],))
        self.commit()

    # --- the final drain (this client runs it alone, after the load stopped) ---
    def drain_all(self, timeout: float) -> tuple[bool, str]:
        """Runs jobs to completion until every job is finished: fetches and completes, lets Await
        jobs consume their signals, signals parked ones. Staging, workflow release and repair are the
        background worker's."""
        deadline = time.time() + timeout
        rounds = 0
        while time.time() < deadline:
            rounds += 1
            self.connect()
            fetched = self.work()
            parked = self.execute("SELECT id FROM oban_jobs WHERE state = 'suspended' AND meta ? 'wait_until'")
            self.conn.rollback()
            for (job_id,) in parked:
                tok = self.token()
                stored = self.execute("SELECT oban_signal(%s::bigint, %s)", (job_id, Jsonb({"token": tok})))[0][0]
                ok = self.commit()
                if stored:
                    self.log.write(not ok, k="sig", token=tok, job=job_id)
            left = self.execute("SELECT count(*) FROM oban_jobs WHERE state NOT IN ('completed', 'cancelled', 'discarded')")[0][0]
            self.conn.rollback()
            if left == 0:
                return True, f"drained in {rounds} rounds"
            if not fetched and not parked:
                time.sleep(0.05)
        return False, f"{left} jobs still unfinished after {timeout}s"


# --- the orchestrator ----------------------------------------------------------------------------


class Driver:
    def __init__(self, a):
        self.workdir = a.workdir
        self.seed = a.seed
        self.dsn = a.dsn
        self.pg_ctl = a.pg_ctl
        self.datadir = a.datadir
        self.check_counts_sql = open(a.check_counts).read()
        self.rounds = a.rounds
        self.seconds = a.seconds
        self.clients_n = a.clients
        self.rescue_wait = a.rescue_wait
        self.drain_timeout = a.drain_timeout
        self.no_drain = a.no_drain
        self.audit = a.audit
        self.resume = threading.Event()
        self.finished = threading.Event()
        self.failed = threading.Event()
        self.mismatches = 0
        self.rng = random.Random(a.seed)

    def fail(self, what: str) -> None:
        log(f"MISMATCH: {what}")
        self.mismatches += 1

    def pg_ctl_run(self, *args: str) -> None:
        # As scripts/lib.sh's server_ctl: the server gets OBAN_SERVER_ENV (the sanitizer runtime
        # under `make sanitize-test`), "VAR=value ..." with no spaces inside a value.
        server_env = os.environ.get("OBAN_SERVER_ENV", "").split()
        subprocess.run(["runuser", "-u", "postgres", "--", "env", *server_env, self.pg_ctl, "-D", self.datadir, *args],
                       check=True, stdout=subprocess.DEVNULL)

    def query(self, sql: str, params=None) -> list:
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            return conn.execute(sql, params).fetchall()

    def setup(self) -> None:
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            conn.execute("CREATE TABLE IF NOT EXISTS crash_receipts "
                         "(token text, job_id bigint, at timestamptz DEFAULT clock_timestamp())")
            if self.audit:
                # The audit trail: every state change of every job, with the time, the transaction
                # and who made it (application_name: the client, or the oban_pro worker).
                conn.execute("""
                    CREATE TABLE IF NOT EXISTS crash_audit (job_id bigint, old_state text, new_state text,
                        at timestamptz DEFAULT clock_timestamp(), xid xid8 DEFAULT pg_current_xact_id(),
                        who text DEFAULT current_setting('application_name'), meta jsonb);
                    CREATE OR REPLACE FUNCTION public.crash_audit() RETURNS trigger LANGUAGE plpgsql SET search_path = public AS $$
                    BEGIN
                        INSERT INTO public.crash_audit (job_id, old_state, new_state, meta)
                        VALUES (NEW.id, CASE WHEN TG_OP = 'UPDATE' THEN OLD.state::text END, NEW.state::text, NEW.meta);
                        RETURN NULL;
                    END $$;
                    CREATE OR REPLACE TRIGGER zz_crash_audit_insert AFTER INSERT ON oban_jobs
                        FOR EACH ROW EXECUTE FUNCTION crash_audit();
                    CREATE OR REPLACE TRIGGER zz_crash_audit_update AFTER UPDATE ON oban_jobs
                        FOR EACH ROW WHEN (OLD.state IS DISTINCT FROM NEW.state) EXECUTE FUNCTION crash_audit();""")

    def unique_violations(self) -> list:
        """Unique names held by two unfinished workflows, seen by the status view and, independently,
        by a recount from oban_jobs (a workflow is unfinished while a job of it or of its
        sub-workflows — one level deep here — is unfinished)."""
        return self.query("""
            SELECT 'view: ' || name, string_agg(id, ' ') FROM oban_workflows WHERE is_unique
               AND state NOT IN ('completed', 'cancelled', 'discarded') GROUP BY name HAVING count(*) > 1
            UNION ALL
            SELECT 'jobs: ' || uniq.name, string_agg(uniq.id, ' ')
            FROM (SELECT DISTINCT meta->>'workflow_id' AS id, meta->>'workflow_name' AS name FROM oban_jobs
                  WHERE meta->>'workflow_unique' = 'true') AS uniq
            JOIN (SELECT coalesce(meta->>'sup_workflow_id', meta->>'workflow_id') AS top FROM oban_jobs
                  WHERE meta ? 'workflow_id' AND state NOT IN ('completed', 'cancelled', 'discarded')
                  GROUP BY 1) AS unfinished ON unfinished.top = uniq.id
            GROUP BY uniq.name HAVING count(*) > 1""")

    def check_dependency_order(self, conn) -> tuple[int, list]:
        """Every workflow job that ran did so only once each of its deps was satisfied: completed, or
        cancelled/discarded with the matching ignore_*. Deps are step names of the same workflow,
        [workflow_id, name] or [workflow_id, "*"] (the workflow and its sub-workflows).

        With the audit trail (the default), the order is checked too: the dep reached its final
        state (a workflow job reaches it once: workflow jobs are never retried here) before the job
        first became executing. The jobs' own timestamps cannot show this: attempted_at and
        completed_at are their transactions' start times (now()), and a fetch's transaction may
        begin before the completion that released its job."""
        rows = conn.execute(
            "SELECT id, meta->>'workflow_id', meta->>'sup_workflow_id', meta->>'name', state::text, "
            "meta->'deps', attempted_at, coalesce((meta->>'ignore_cancelled')::boolean, false), "
            "coalesce((meta->>'ignore_discarded')::boolean, false) FROM oban_jobs WHERE meta ? 'workflow_id'").fetchall()
        first_run, finished_at = {}, {}
        if self.audit:
            for job_id, new_state, at in conn.execute(
                    "SELECT job_id, new_state, min(at) FROM crash_audit "
                    "WHERE new_state IN ('executing', 'completed', 'cancelled', 'discarded') GROUP BY 1, 2").fetchall():
                if new_state == "executing":
                    first_run[job_id] = at
                else:
                    finished_at[(job_id, new_state)] = at
        by_name, tree = {}, {}
        for r in rows:
            by_name[(r[1], r[3])] = r
            tree.setdefault(r[1], []).append(r)
            if r[2]:
                tree.setdefault(r[2], []).append(r)
        checked, bad = 0, []
        for r in rows:
            job_id, wf, _, name, state, deps, attempted_at, ign_c, ign_d = r
            if attempted_at is None:
                continue  # never ran
            checked += 1
            targets = []
            for d in deps or []:
                if isinstance(d, str):
                    targets.append(by_name.get((wf, d)))
                elif d[1] == "*":
                    targets.extend(tree.get(d[0], []))
                else:
                    targets.append(by_name.get((d[0], d[1])))
            for t in targets:
                if t is None:
                    bad.append((job_id, name, "a dep is missing"))
                    continue
                if not (t[4] == "completed" or (t[4] == "cancelled" and ign_c) or (t[4] == "discarded" and ign_d)):
                    bad.append((job_id, name, state, "ran though its dep", t[0], t[3], "is", t[4]))
                    continue
                if self.audit:
                    ran, done = first_run.get(job_id), finished_at.get((t[0], t[4]))
                    if ran is None or done is None or not done < ran:
                        bad.append((job_id, name, "first executing at", str(ran), "dep", t[0], t[3], t[4], "at", str(done)))
        return checked, bad

    def check(self, label: str, final: bool) -> dict:
        """The checks after a restart (final=False) or after the drain (final=True)."""
        logs = read_logs(self.workdir)
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            present = {r[0]: r[1] for r in conn.execute(
                "SELECT id, state::text FROM oban_jobs WHERE id = ANY(%s::bigint[])",
                (list(logs["jobs"] | logs["jobs_doubt"]),)).fetchall()}
            missing = logs["jobs"] - present.keys()
            if missing:
                self.fail(f"{label}: {len(missing)} committed jobs missing, e.g. {sorted(missing)[:10]}")
            not_done = [j for j in logs["done"] if present.get(j) != "completed"]
            if not_done:
                self.fail(f"{label}: {len(not_done)} jobs acked completed are not completed, e.g. "
                          f"{[(j, present.get(j)) for j in not_done[:5]]}")
            executing = conn.execute("SELECT count(*) FROM oban_jobs WHERE state = 'executing'").fetchone()[0]
            if executing:
                self.fail(f"{label}: {executing} jobs executing with no worker alive")
            wf_checked, count_mismatches = conn.execute(self.check_counts_sql).fetchone()
            if count_mismatches:
                self.fail(f"{label}: check_counts.sql found {count_mismatches} workflows whose counts drifted")
            wf_rows = {r[0]: r[1] for r in conn.execute("SELECT id, state FROM oban_workflows").fetchall()}
            missing_wf = logs["wfs"] - wf_rows.keys()
            if missing_wf:
                self.fail(f"{label}: {len(missing_wf)} committed workflows missing, e.g. {sorted(missing_wf)[:5]}")
            unfinished_wf = []
            if final:
                unfinished_wf = [(w, s) for w, s in wf_rows.items() if s not in FINISHED]
                if unfinished_wf:
                    self.fail(f"{label}: {len(unfinished_wf)} workflows not finished, e.g. {unfinished_wf[:5]}")
                unfinished = conn.execute("SELECT count(*) FROM oban_jobs WHERE state NOT IN "
                                          "('completed', 'cancelled', 'discarded')").fetchone()[0]
                if unfinished:
                    self.fail(f"{label}: {unfinished} jobs not finished after the drain")
            order_checked, order_bad = self.check_dependency_order(conn)
            if order_bad:
                self.fail(f"{label}: {len(order_bad)} workflow jobs ran before their deps were satisfied, "
                          f"e.g. {order_bad[:3]}")
            uv = self.unique_violations()
            for name, ids in uv:
                self.fail(f"{label}: unique name {name} has two unfinished workflows: {ids}")
            # Signals: each committed token is consumed exactly once (a receipt) or still in its job's
            # mailbox; never both, never twice; a doubtful token at most once; no unknown token.
            receipts: dict[str, list] = {}
            for tok, job in conn.execute("SELECT token, job_id FROM crash_receipts").fetchall():
                receipts.setdefault(tok, []).append(job)
            mailbox: dict[str, list] = {}
            for tok, job, state in conn.execute(
                    "SELECT s.payload->>'token', s.job_id, j.state::text FROM oban_signals AS s "
                    "LEFT JOIN oban_jobs AS j ON j.id = s.job_id").fetchall():
                mailbox.setdefault(tok, []).append((job, state))
        sig_bad = []
        left_by_design = 0
        for tok, job in logs["sigs"].items():
            got, waiting = receipts.get(tok, []), mailbox.get(tok, [])
            if len(got) + len(waiting) != 1:
                sig_bad.append((tok, job, "receipts", got, "mailbox", waiting))
            elif got and got[0] != job:
                sig_bad.append((tok, job, "consumed by", got))
            elif waiting and final:
                # After the drain every unfinished Await job has run to the end, consuming its mailbox;
                # a signal can only be left to a job cancelled or discarded by someone else
                # (oban_cancel_job, a workflow cancel, an upstream failure, out of attempts) after the
                # signal was stored — Oban semantics: nobody will await it.
                if waiting[0][1] in ("cancelled", "discarded"):
                    left_by_design += 1
                else:
                    sig_bad.append((tok, job, "left in the mailbox of a job that is", waiting[0][1]))
        for tok, job in logs["sigs_doubt"].items():
            if len(receipts.get(tok, [])) + len(mailbox.get(tok, [])) > 1:
                sig_bad.append((tok, job, "doubtful, but consumed/stored more than once", receipts.get(tok)))
        known = logs["sigs"].keys() | logs["sigs_doubt"].keys()
        for tok in (receipts.keys() | mailbox.keys()) - known:
            sig_bad.append((tok, "never sent", receipts.get(tok), mailbox.get(tok)))
        if sig_bad:
            self.fail(f"{label}: {len(sig_bad)} signal mismatches, e.g. {sig_bad[:5]}")
        consumed = sum(1 for t in logs["sigs"] if receipts.get(t))
        figures = {"jobs": len(logs["jobs"]), "jobs_doubt": len(logs["jobs_doubt"]), "acks": len(logs["done"]),
                   "workflows": wf_checked, "signals": len(logs["sigs"]), "signals_doubt": len(logs["sigs_doubt"]),
                   "consumed": consumed, "left": left_by_design, "unique_violations": len(uv),
                   "count_mismatches": count_mismatches}
        log(f"{label}: jobs checked: {figures['jobs']} (+{figures['jobs_doubt']} in doubt), "
            f"completions checked: {figures['acks']}, executing: {executing}, "
            f"workflows checked: {wf_checked}, count mismatches: {count_mismatches}, "
            f"workflow jobs checked for dependency order: {order_checked}, "
            f"signals checked: {figures['signals']} (+{figures['signals_doubt']} in doubt; consumed {consumed}"
            + (f", left to cancelled/discarded jobs {left_by_design}" if final else "")
            + f"), unique violations: {len(uv)}, mismatches: {self.mismatches}")
        return figures

    def wait_paused(self, clients: list, timeout: float) -> None:
        deadline = time.time() + timeout
        for c in clients:
            while not c.paused.wait(0.1):
                if not c.is_alive() or time.time() > deadline:
                    raise RuntimeError(f"{c.name} did not pause: {c.fatal or 'still running'}")

    def wait_rescued(self) -> tuple[int, float]:
        """After a restart: polls until no job is executing (the background worker's rescue, which
        runs when it starts; the clients' producer rows died with the crash: oban_producers is
        unlogged). Returns (executing right after the restart, seconds until none)."""
        t0 = time.time()
        first = None
        while True:
            try:
                n = self.query("SELECT count(*) FROM oban_jobs WHERE state = 'executing'")[0][0]
            except psycopg.OperationalError:
                n = -1
            if first is None and n >= 0:
                first = n
            if n == 0:
                return first, time.time() - t0
            if time.time() - t0 > self.rescue_wait:
                return first, -1.0
            time.sleep(0.1)

    def run(self) -> int:
        self.setup()
        clients = [Client(i, self) for i in range(self.clients_n)]
        self.resume.set()
        for c in clients:
            c.start()
        totals = None
        for rnd in range(1, self.rounds + 1):
            pause = self.seconds * self.rng.uniform(0.6, 1.4)
            end = time.time() + pause
            uv_checks = 0
            while time.time() < end and not self.failed.is_set():
                time.sleep(min(0.5, max(0.0, end - time.time())))
                try:  # unique names checked during the load too
                    for name, ids in self.unique_violations():
                        self.fail(f"during load: unique name {name} has two unfinished workflows: {ids}")
                    uv_checks += 1
                except psycopg.OperationalError:
                    pass
            if self.failed.is_set():
                break
            ops = sum(c.ops for c in clients)
            self.resume.clear()
            t0 = time.time()
            self.pg_ctl_run("stop", "-m", "immediate")
            log(f"round {rnd}: crashed after {pause:.1f}s of load ({ops} client operations so far, "
                f"unique names checked {uv_checks} times meanwhile)")
            t1 = time.time()
            self.pg_ctl_run("start", "-w", "-t", "120", "-l", os.path.join(os.path.dirname(self.datadir), "server.log"))
            t2 = time.time()
            self.wait_paused(clients, 60)
            first, took = self.wait_rescued()
            if took < 0:
                self.fail(f"round {rnd}: jobs still executing {self.rescue_wait}s after the restart")
            log(f"round {rnd}: stopped in {t1 - t0:.1f}s, up again in {t2 - t1:.1f}s; {first} jobs executing "
                f"at restart, none {max(took, 0):.1f}s later (rescue)")
            self.check(f"round {rnd}", final=False)
            if rnd < self.rounds:
                self.resume.set()
        # The load stopped with the last crash (every client is paused); drain.
        self.finished.set()
        for c in clients:
            c.join(10)
            if c.fatal:
                self.fail(f"{c.name} failed:\n{c.fatal}")
        log(f"load stopped: {sum(c.ops for c in clients)} client operations, "
            f"{sum(c.errors for c in clients)} interrupted by the crashes, "
            f"{sum(c.rollbacks for c in clients)} deadlocks or serialization failures")
        if self.no_drain:
            log("--no-drain: stopping here, the cluster keeps the state after the last crash")
            return 1 if self.mismatches else 0
        drainer = Client(self.clients_n, self, drain=True)
        t0 = time.time()
        ok, what = drainer.drain_all(self.drain_timeout)
        what += f" ({time.time() - t0:.1f}s)"
        drainer.close()
        if not ok:
            self.fail(f"drain: {what}")
        log(f"drain: {what}")
        # Let repair run (repair_max_age 1s) and the last flushes land, then the final check.
        time.sleep(2.0)
        totals = self.check("final", final=True)
        log(f"jobs checked: {totals['jobs']}, workflows checked: {totals['workflows']}, "
            f"signals checked: {totals['signals']}, mismatches: {self.mismatches}")
        return 1 if self.mismatches else 0


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--workdir", required=True)
    p.add_argument("--dsn", required=True)
    p.add_argument("--pg-ctl", required=True)
    p.add_argument("--datadir", required=True)
    p.add_argument("--check-counts", required=True)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--seconds", type=float, default=20)
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--seed", type=int, default=int(time.time()))
    p.add_argument("--rescue-wait", type=float, default=20)
    p.add_argument("--drain-timeout", type=float, default=240)
    p.add_argument("--no-audit", dest="audit", action="store_false",
                   help="no audit trail of job state changes (no user trigger on oban_jobs; dependency order unchecked)")
    p.add_argument("--no-drain", action="store_true", help="for investigations: stop after the last crash's checks")
    a = p.parse_args()
    log(f"crash test: {a.clients} clients, {a.rounds} crashes, ~{a.seconds}s of load before each, seed {a.seed}")
    return Driver(a).run()


if __name__ == "__main__":
    sys.exit(main())
