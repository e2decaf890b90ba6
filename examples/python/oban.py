"""A small Oban-style worker library over psycopg 3 and the oban_pro extension's SQL functions.

It mirrors the shape of oban-py's API (``@worker``, ``Worker.new(args)``, ``Job``, ``Cancel``,
``Snooze``, ``oban.enqueue`` / ``enqueue_many``, ``job.extra``) so that the seed's samples run
nearly verbatim, but every decision is the database's: inserting, claiming, acking, staging and
releasing workflow steps are single calls of the extension's functions. It is an example client,
not a product: one process, asyncio, one connection per running job.

    oban = await Oban.start(conninfo, queues={"default": 10})
    await oban.enqueue(MyWorker.new({"id": 1}))
    ...
    await oban.stop()

Signals and workflows (``await_signal``, ``signal``, ``Workflow``) live in ``oban_pro``.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import logging
import traceback
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

log = logging.getLogger("oban")

__all__ = ["Oban", "Job", "Cancel", "Snooze", "worker", "current_job"]

# --- results a worker's process() may return ---------------------------------------------------


@dataclass
class Cancel:
    """Return from process() to cancel the job; the reason is kept in its errors."""

    reason: str = "cancelled"


@dataclass
class Snooze:
    """Return from process() to run the job again after `seconds` (the attempt is given back)."""

    seconds: float


class _Parked(BaseException):
    """Raised by await_signal when the database parked the job: stop, do not ack.

    A BaseException (like asyncio.CancelledError) so that a worker's `except Exception` does not
    swallow it."""


# --- jobs and workers ------------------------------------------------------------------------------

_JOB_FIELDS = ("id", "state", "queue", "worker", "attempt", "max_attempts", "priority", "args", "meta",
               "tags", "errors", "inserted_at", "scheduled_at", "attempted_at")


@dataclass
class Job:
    worker: str
    args: dict = field(default_factory=dict)
    queue: str = "default"
    priority: int = 0
    max_attempts: int = 20
    meta: dict = field(default_factory=dict)
    tags: list = field(default_factory=list)
    scheduled_at: datetime | None = None
    id: int | None = None
    state: str | None = None
    attempt: int = 0
    errors: list = field(default_factory=list)
    inserted_at: datetime | None = None
    attempted_at: datetime | None = None
    # Not persisted: what the client learned about the job, e.g. extra["conflicted"] (oban-py's Job.extra).
    extra: dict = field(default_factory=dict)

    @classmethod
    def from_row(cls, row: dict) -> "Job":
        return cls(**{k: row[k] for k in _JOB_FIELDS if k in row})

    def insert_params(self) -> dict:
        """The job as oban_insert_jobs / oban_insert_workflow take it."""
        spec = {"worker": self.worker, "args": self.args, "queue": self.queue, "priority": self.priority,
                "max_attempts": self.max_attempts, "meta": self.meta, "tags": self.tags}
        if self.scheduled_at is not None:
            spec["scheduled_at"] = self.scheduled_at.isoformat()
        return spec


_WORKERS: dict[str, type] = {}


def worker(queue: str = "default", max_attempts: int = 20, priority: int = 0, name: str | None = None):
    """Class decorator: registers a worker (a class with `async def process(self, job)`) and gives it
    `Worker.new(args, **overrides)` returning an unsaved Job."""

    def wrap(cls):
        worker_name = name or f"{cls.__module__}.{cls.__qualname__}"
        defaults = {"queue": queue, "max_attempts": max_attempts, "priority": priority}

        def new(args: dict | None = None, **overrides) -> Job:
            return Job(worker=worker_name, args=dict(args or {}), **{**defaults, **overrides})

        cls.new = staticmethod(new)
        cls.__oban_worker__ = worker_name
        _WORKERS[worker_name] = cls
        return cls

    return wrap


# The job running in this task (and its connection): await_signal and friends find it here.
_running: contextvars.ContextVar = contextvars.ContextVar("oban_running_job")


@dataclass
class _Running:
    job: Job
    conn: psycopg.AsyncConnection
    oban: "Oban"


def current_job() -> Job:
    return _running.get().job


# --- the client ------------------------------------------------------------------------------------

_default: "Oban | None" = None


class Oban:
    """A connection to an oban_pro database; with `queues`, also a runner executing their jobs.

    Every running job gets its own connection (an await_signal may block in the backend for up to
    `wait_timeout`). Producers wake on the extension's insert notifications (LISTEN
    "<prefix>.oban_insert") and otherwise poll every `poll_interval` seconds. `stage_interval`
    runs oban_stage_jobs (scheduled/retryable jobs, and parked jobs past their signal deadline);
    `flush_workflows` calls oban_flush_workflows after acks, in its own transaction, for databases the
    extension's background worker does not serve (harmless where it does)."""

    def __init__(self, conninfo: str, *, queues: dict[str, int] | None = None, prefix: str = "public",
                 node: str = "python", poll_interval: float = 1.0, stage_interval: float | None = 1.0,
                 wait_timeout: timedelta = timedelta(seconds=5), flush_workflows: bool = True):
        self.conninfo = conninfo
        self.queues = dict(queues or {})
        self.prefix = prefix
        self.node = node
        self.poll_interval = poll_interval
        self.stage_interval = stage_interval
        self.wait_timeout = wait_timeout
        self.flush_workflows = flush_workflows
        self._conn: psycopg.AsyncConnection | None = None
        self._idle: list[psycopg.AsyncConnection] = []
        self._wake: dict[str, asyncio.Event] = {}
        self._running: set[asyncio.Task] = set()
        self._tasks: list[asyncio.Task] = []
        self._stopping = asyncio.Event()

    # Lifecycle.
    @classmethod
    async def start(cls, conninfo: str, **opts) -> "Oban":
        global _default
        oban = cls(conninfo, **opts)
        oban._conn = await oban._connect()
        if _default is None:
            _default = oban
        for queue, limit in oban.queues.items():
            oban._wake[queue] = asyncio.Event()
            oban._tasks.append(asyncio.create_task(oban._produce(queue, limit), name=f"oban:{queue}"))
        if oban.queues:
            oban._tasks.append(asyncio.create_task(oban._listen(), name="oban:listen"))
            if oban.stage_interval:
                oban._tasks.append(asyncio.create_task(oban._stage(), name="oban:stage"))
        return oban

    async def stop(self) -> None:
        """Stops fetching, lets running jobs finish, closes every connection."""
        global _default
        self._stopping.set()
        for event in self._wake.values():
            event.set()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._running:
            await asyncio.gather(*self._running, return_exceptions=True)
        for conn in [self._conn, *self._idle]:
            if conn is not None:
                await conn.close()
        self._idle.clear()
        if _default is self:
            _default = None

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        await self.stop()

    async def _connect(self) -> psycopg.AsyncConnection:
        conn = await psycopg.AsyncConnection.connect(self.conninfo, autocommit=True, row_factory=dict_row)
        await conn.execute(sql.SQL("SET search_path = {}, pg_catalog").format(sql.Identifier(self.prefix)))
        return conn

    async def query(self, statement: str, params: Any = None) -> list[dict]:
        """Runs one statement on the client's own connection and returns its rows."""
        async with self._conn.cursor() as cur:
            await cur.execute(statement, params)
            return await cur.fetchall() if cur.description else []

    # Inserting.
    async def enqueue(self, job: Job) -> Job:
        return (await self.enqueue_many([job]))[0]

    async def enqueue_many(self, jobs) -> list[Job]:
        """Inserts a list of jobs (oban_insert_jobs) or a Workflow (oban_insert_workflow, atomically).
        Returns the jobs with id and state set; jobs of a unique workflow that lost to a running one
        come back with extra["conflicted"] = True and no id."""
        if hasattr(jobs, "_insert"):
            return await jobs._insert(self)
        jobs = list(jobs)
        rows = await self.query("SELECT * FROM oban_insert_jobs(%s)", [Jsonb([j.insert_params() for j in jobs])])
        for job, row in zip(jobs, rows):
            job.id, job.state, job.inserted_at, job.scheduled_at = (row["id"], row["state"], row["inserted_at"],
                                                                    row["scheduled_at"])
        return jobs

    async def get_job(self, job_id: int) -> Job | None:
        rows = await self.query("SELECT * FROM oban_jobs WHERE id = %s", [job_id])
        return Job.from_row(rows[0]) if rows else None

    # Running.
    async def _checkout(self) -> psycopg.AsyncConnection:
        return self._idle.pop() if self._idle else await self._connect()

    def _checkin(self, conn: psycopg.AsyncConnection) -> None:
        if conn.closed or conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            asyncio.create_task(conn.close())
        else:
            self._idle.append(conn)

    async def _listen(self) -> None:
        conn = await psycopg.AsyncConnection.connect(self.conninfo, autocommit=True)
        try:
            channel = sql.Identifier(f"{self.prefix}.oban_insert")
            await conn.execute(sql.SQL("LISTEN {}").format(channel))
            async for note in conn.notifies():
                queue = json.loads(note.payload).get("queue")
                if queue in self._wake:
                    self._wake[queue].set()
        finally:
            await conn.close()

    async def _stage(self) -> None:
        conn = await self._connect()
        try:
            while not self._stopping.is_set():
                await conn.execute("SELECT oban_stage_jobs()")
                await asyncio.sleep(self.stage_interval)
        finally:
            await conn.close()

    async def _produce(self, queue: str, limit: int) -> None:
        conn = await self._connect()
        running: set[asyncio.Task] = set()
        try:
            while not self._stopping.is_set():
                self._wake[queue].clear()
                demand = limit - len(running)
                if demand > 0:
                    cur = await conn.execute("SELECT * FROM oban_fetch_jobs(%s, %s, %s)", [queue, demand, self.node])
                    for row in await cur.fetchall():
                        task = asyncio.create_task(self._execute(Job.from_row(row)))
                        for group in (running, self._running):
                            group.add(task)
                            task.add_done_callback(group.discard)
                        task.add_done_callback(lambda _t: self._wake[queue].set())
                try:
                    await asyncio.wait_for(self._wake[queue].wait(), self.poll_interval)
                except asyncio.TimeoutError:
                    pass
        finally:
            await conn.close()

    async def _execute(self, job: Job) -> None:
        conn = await self._checkout()
        token = _running.set(_Running(job, conn, self))
        try:
            cls = _WORKERS.get(job.worker)
            if cls is None:
                ack = {"id": job.id, "state": "discarded", "error": f"unknown worker {job.worker}"}
            else:
                try:
                    result = await cls().process(job)
                except _Parked:
                    log.debug("job %s parked awaiting a signal", job.id)
                    return  # the database parked it; no ack
                except Exception:
                    ack = {"id": job.id, "state": "retryable", "error": traceback.format_exc()}
                else:
                    if isinstance(result, Cancel):
                        ack = {"id": job.id, "state": "cancelled", "error": result.reason}
                    elif isinstance(result, Snooze):
                        ack = {"id": job.id, "state": "scheduled", "snooze": result.seconds}
                    else:
                        ack = {"id": job.id, "state": "completed"}
            await conn.execute("SELECT oban_ack_jobs(%s)", [Jsonb([ack])])
            if self.flush_workflows:
                await conn.execute("SELECT oban_flush_workflows()")
        except Exception:
            log.exception("job %s: ack failed", job.id)
        finally:
            _running.reset(token)
            self._checkin(conn)


def default_instance() -> Oban:
    try:
        return _running.get().oban
    except LookupError:
        pass
    if _default is None:
        raise RuntimeError("no running Oban instance: call `await Oban.start(...)` first")
    return _default


def new_workflow_id() -> str:
    return str(uuid.uuid4())
