"""Oban Pro 0.6's Python API (signals, workflows, workflow status, unique workflows) as thin calls of the
oban_pro extension's SQL functions. See oban.py for the runner these build on."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Iterable

from psycopg.types.json import Jsonb

from oban import Job, Oban, _Parked, _running, default_instance, new_workflow_id

__all__ = ["SignalTimeout", "await_signal", "signal", "Workflow", "WorkflowStatus"]


# --- durable signals -------------------------------------------------------------------------------


class SignalTimeout(Exception):
    """await_signal's deadline (wait_for, counted from the first park) passed without a signal."""


def _interval(value) -> timedelta | None:
    if value is None or isinstance(value, timedelta):
        return value
    return timedelta(seconds=float(value))


async def await_signal(wait_for: timedelta | float | None = None, wait_timeout: timedelta | float | None = None) -> Any:
    """Inside a worker's process(): returns the next signal payload for the running job.

    One call of oban_await_signal on the job's connection: a stored signal is returned at once;
    else the backend waits up to `wait_timeout` (the Oban instance's, 5 s by default) for one; else
    the database parks the job (suspended, attempt given back) and this raises an internal
    BaseException that ends process() without an ack. A signal makes the job available again; when
    it runs, process() starts over and this call returns the stored payload at once. Past the
    deadline `wait_for` (None: none) it raises SignalTimeout."""
    try:
        running = _running.get()
    except LookupError:
        raise RuntimeError("await_signal() must be called from a worker's process()") from None
    timeout = _interval(wait_timeout) or running.oban.wait_timeout
    cur = await running.conn.execute("SELECT status, payload FROM oban_await_signal(%s, %s, %s)",
                                     [running.job.id, _interval(wait_for), timeout])
    row = await cur.fetchone()
    if row["status"] == "received":
        return row["payload"]
    if row["status"] == "timeout":
        raise SignalTimeout(f"job {running.job.id}: no signal before its deadline")
    raise _Parked()


async def signal(job_id: int | Iterable[int], payload: Any, *, oban: Oban | None = None) -> int:
    """Delivers `payload` to a job (or a list of jobs) from anywhere. Durable: a job that has not
    awaited yet keeps it for its next await_signal; a parked job becomes available. Returns how many
    jobs took it (finished or missing jobs take nothing)."""
    oban = oban or default_instance()
    if isinstance(job_id, int):
        rows = await oban.query("SELECT oban_signal(%s::bigint, %s) AS took", [job_id, Jsonb(payload)])
        return int(rows[0]["took"])
    rows = await oban.query("SELECT oban_signal(%s::bigint[], %s) AS took", [list(job_id), Jsonb(payload)])
    return rows[0]["took"]


# --- workflows ------------------------------------------------------------------------------------


@dataclass
class WorkflowStatus:
    id: str
    name: str | None
    state: str
    total: int
    counts: dict[str, int]
    duration: timedelta | None
    inserted_at: datetime | None
    started_at: datetime | None
    completed_at: datetime | None
    subs: dict[str, "WorkflowStatus"] = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: dict) -> "WorkflowStatus":
        def ts(v):
            return datetime.fromisoformat(v) if v else None

        return cls(id=data["id"], name=data["name"], state=data["state"], total=data["total"],
                   counts=data["counts"],
                   duration=None if data["duration"] is None else timedelta(seconds=data["duration"]),
                   inserted_at=ts(data["inserted_at"]), started_at=ts(data["started_at"]),
                   completed_at=ts(data["completed_at"]),
                   subs={name: cls.from_json(sub) for name, sub in data["subs"].items()})


class Workflow:
    """A set of jobs with dependencies, inserted atomically by oban_insert_workflow.

        workflow = (Workflow(name="nightly-import", unique=True)
                    .add("extract", ExtractWorker.new({}))
                    .add("load", LoadWorker.new({}), deps="extract"))
        await oban.enqueue_many(workflow)

    `unique=True`: while another unique workflow of that name is unfinished, nothing is inserted and
    every job comes back with job.extra["conflicted"] = True. The workflow id is chosen here, so
    status() and signal() work once it is enqueued."""

    def __init__(self, name: str | None = None, *, unique: bool = False, workflow_id: str | None = None,
                 ignore_cancelled: bool = False, ignore_discarded: bool = False, ignore_deleted: bool = False):
        self.id = workflow_id or new_workflow_id()
        self.name = name
        self.unique = unique
        self.options = {"ignore_cancelled": ignore_cancelled, "ignore_discarded": ignore_discarded,
                        "ignore_deleted": ignore_deleted}
        self._steps: list[tuple[str, Job | Workflow, list]] = []
        self._oban: Oban | None = None

    @staticmethod
    def _deps(deps) -> list:
        if deps is None:
            return []
        return [deps] if isinstance(deps, str) else list(deps)

    def add(self, name: str, job: Job, deps: str | Iterable | None = None) -> "Workflow":
        self._steps.append((name, job, self._deps(deps)))
        return self

    def add_workflow(self, name: str, workflow: "Workflow", deps: str | Iterable | None = None) -> "Workflow":
        """Adds a sub-workflow: its first jobs wait for `deps`; a dep on `name` waits for all of it."""
        self._steps.append((name, workflow, self._deps(deps)))
        return self

    def spec(self) -> dict:
        jobs = []
        for name, step, deps in self._steps:
            entry = {"name": name, "deps": deps}
            if isinstance(step, Workflow):
                entry["workflow"] = step.spec()
            else:
                entry.update(step.insert_params())
            jobs.append(entry)
        spec = {"workflow_id": self.id, "unique": self.unique, "jobs": jobs, **self.options}
        if self.name is not None:
            spec["name"] = self.name
        return spec

    def jobs(self) -> list[tuple[str, str, Job]]:
        """(workflow id, step name, job) for every job, sub-workflows included."""
        out = []
        for name, step, _ in self._steps:
            out.extend(step.jobs() if isinstance(step, Workflow) else [(self.id, name, step)])
        return out

    async def _insert(self, oban: Oban) -> list[Job]:
        self._oban = oban
        rows = await oban.query("SELECT * FROM oban_insert_workflow(%s)", [Jsonb(self.spec())])
        by_step = {(r["workflow_id"], r["name"]): r for r in rows}
        out = []
        for wf_id, name, job in self.jobs():
            row = by_step[(wf_id, name)]
            job.id, job.state = row["id"], row["state"]
            job.meta = {**job.meta, "workflow_id": wf_id, "name": name}
            job.extra["conflicted"] = row["conflicted"]
            out.append(job)
        return out

    async def status(self) -> WorkflowStatus | None:
        """The workflow's status from oban_workflow_status: one lookup of the aggregate rows."""
        rows = await (self._oban or default_instance()).query("SELECT oban_workflow_status(%s) AS s", [self.id])
        return None if rows[0]["s"] is None else WorkflowStatus.from_json(rows[0]["s"])

    async def signal(self, name: str, payload: Any) -> int:
        """Signals the unfinished steps called `name` (oban_workflow_signal); returns how many took it."""
        rows = await (self._oban or default_instance()).query("SELECT oban_workflow_signal(%s, %s, %s) AS took",
                                                               [self.id, name, Jsonb(payload)])
        return rows[0]["took"]

    async def graph(self, format: str = "mermaid") -> str | None:
        """The dependency graph as Mermaid (or 'dot'), from oban_workflow_graph."""
        rows = await (self._oban or default_instance()).query("SELECT oban_workflow_graph(%s, %s) AS g",
                                                               [self.id, format])
        return rows[0]["g"]
