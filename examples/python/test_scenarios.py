"""The seed's three samples, run against a real oban_pro cluster (OBAN_DSN, or libpq's PG* variables).

    OBAN_DSN="dbname=clients" python3 -m pytest -q examples/python
"""

import asyncio
import os
import time
import unittest
from datetime import timedelta

import psycopg
from psycopg.types.json import Jsonb

import scenarios
from oban import Oban
from oban_pro import WorkflowStatus, signal
from scenarios import ApprovalWorker, HastyApprovalWorker, enqueue_nightly_import, nightly_import, report_workflow

DSN = os.environ.get("OBAN_DSN", "")
QUEUES = {"approvals": 5, "workflows": 5, "nightly": 2}


async def eventually(check, timeout=15.0, what="condition"):
    """Polls `check` (an async callable) until it returns something truthy; fails after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


class ClusterCase(unittest.IsolatedAsyncioTestCase):
    async def asyncSetUp(self):
        self.instances = []
        scenarios.charged.clear()
        scenarios.runs.clear()
        scenarios.steps_run.clear()

    async def asyncTearDown(self):
        for oban in reversed(self.instances):
            await oban.stop()

    async def start(self, **opts):
        opts.setdefault("poll_interval", 0.2)
        opts.setdefault("stage_interval", 0.2)
        oban = await Oban.start(DSN, **opts)
        self.instances.append(oban)
        return oban

    async def job_in(self, oban, job_id, *states):
        async def check():
            job = await oban.get_job(job_id)
            return job if job.state in states else None

        return await eventually(check, what=f"job {job_id} in {states}")

    async def parked(self, oban, job_id):
        async def check():
            job = await oban.get_job(job_id)
            return job if job.state == "suspended" and "wait_until" in job.meta else None

        return await eventually(check, what=f"job {job_id} parked")


class SignalsTest(ClusterCase):
    """'Pause a job to wait for an external event … then resume it exactly where it left off.'"""

    async def test_signal_delivered_before_the_job_awaits_is_consumed_at_once(self):
        client = await self.start()  # no queues: nothing runs yet
        job = await client.enqueue(ApprovalWorker.new({"user_id": 1}))
        self.assertEqual(await signal(job.id, {"decision": "approved"}), 1)
        runner = await self.start(queues=QUEUES, wait_timeout=timedelta(seconds=10))
        done = await self.job_in(runner, job.id, "completed")
        self.assertEqual(scenarios.charged, [1])
        self.assertEqual(scenarios.runs[job.id], 1)  # never parked, never restarted
        self.assertEqual(done.attempt, 1)
        self.assertNotIn("wait_until", done.meta)

    async def test_signal_delivered_after_the_job_parked_resumes_it(self):
        runner = await self.start(queues=QUEUES, wait_timeout=timedelta(milliseconds=300))
        job = await runner.enqueue(ApprovalWorker.new({"user_id": 2}))
        parked = await self.parked(runner, job.id)
        self.assertEqual(parked.attempt, 0)  # the attempt is given back while it waits
        self.assertEqual(scenarios.runs[job.id], 1)
        self.assertEqual(scenarios.charged, [])
        await asyncio.sleep(0.5)  # parked: no worker runs it
        self.assertEqual(scenarios.runs[job.id], 1)
        self.assertEqual((await runner.get_job(job.id)).state, "suspended")
        # 'To deliver a signal from anywhere with the job id':
        await signal(job.id, {"decision": "approved"})
        done = await self.job_in(runner, job.id, "completed")
        self.assertEqual(scenarios.runs[job.id], 2)  # process() started over, await_signal returned at once
        self.assertEqual(scenarios.charged, [2])
        self.assertEqual(done.attempt, 1)

    async def test_signal_during_the_blocking_wait_resumes_in_place(self):
        runner = await self.start(queues=QUEUES, wait_timeout=timedelta(seconds=20))
        job = await runner.enqueue(ApprovalWorker.new({"user_id": 3}))
        await eventually(lambda: asyncio.sleep(0, scenarios.runs.get(job.id)), what="process() to start")
        await asyncio.sleep(0.3)
        self.assertEqual((await runner.get_job(job.id)).state, "executing")
        started = time.monotonic()
        await signal(job.id, {"decision": "approved"})
        await self.job_in(runner, job.id, "completed")
        self.assertLess(time.monotonic() - started, 5)
        self.assertEqual(scenarios.runs[job.id], 1)
        self.assertEqual(scenarios.charged, [3])

    async def test_a_list_of_ids_and_a_decline(self):
        runner = await self.start(queues=QUEUES, wait_timeout=timedelta(milliseconds=300))
        a = await runner.enqueue(ApprovalWorker.new({"user_id": 4}))
        b = await runner.enqueue(ApprovalWorker.new({"user_id": 5}))
        await self.parked(runner, a.id)
        await self.parked(runner, b.id)
        self.assertEqual(await signal([a.id, b.id], {"decision": "rejected"}), 2)
        for job in (a, b):
            cancelled = await self.job_in(runner, job.id, "cancelled")
            self.assertIn("declined: rejected", cancelled.errors[-1]["error"])
        self.assertEqual(scenarios.charged, [])
        self.assertEqual(await signal(a.id, {"decision": "approved"}), 0)  # finished jobs take nothing

    async def test_no_decision_before_the_deadline_raises_signal_timeout(self):
        runner = await self.start(queues=QUEUES, wait_timeout=timedelta(milliseconds=200))
        job = await runner.enqueue(HastyApprovalWorker.new({"user_id": 6, "wait_for": 1}))
        await self.parked(runner, job.id)
        # The stager makes it available once its deadline passes; the rerun's await times out.
        cancelled = await self.job_in(runner, job.id, "cancelled")
        self.assertEqual(cancelled.errors[-1]["error"], "no decision")
        self.assertEqual(scenarios.runs[job.id], 2)
        self.assertEqual(scenarios.charged, [])


class WorkflowStatusTest(ClusterCase):
    """'Track progress across an entire workflow and all of its sub-workflows.'"""

    async def test_status_of_a_workflow_and_its_sub_workflow(self):
        runner = await self.start(queues=QUEUES, wait_timeout=timedelta(milliseconds=300))
        workflow = report_workflow()
        inserted = await runner.enqueue_many(workflow)
        self.assertEqual(len(inserted), 12)
        self.assertFalse(any(job.extra["conflicted"] for job in inserted))
        approval = next(job for job in inserted if job.meta["name"] == "approval")
        await self.parked(runner, approval.id)  # 9 steps done, the approval waits for a human

        status = await workflow.status()
        self.assertIsInstance(status, WorkflowStatus)
        self.assertEqual(status.state, "executing")
        self.assertEqual(status.total, 12)
        self.assertEqual(status.counts["completed"], 9)
        self.assertEqual(status.counts["suspended"], 3)  # the parked approval, publish, notify
        self.assertIsInstance(status.duration, timedelta)
        self.assertGreater(status.duration, timedelta(0))
        self.assertEqual(status.subs["import"].state, "completed")
        self.assertEqual(status.subs["import"].total, 3)
        self.assertEqual(status.subs["import"].counts["completed"], 3)

        # 'workflow steps by name with workflow.signal("approval", payload)'
        self.assertEqual(await workflow.signal("approval", {"decision": "approved"}), 1)

        async def finished():
            s = await workflow.status()
            return s if s.state == "completed" else None

        final = await eventually(finished, what="the workflow to complete")
        self.assertEqual(final.total, 12)
        self.assertEqual(final.counts["completed"], 12)
        self.assertGreaterEqual(final.duration, status.duration)
        self.assertIsNotNone(final.completed_at)
        self.assertEqual(scenarios.charged, [42])
        order = scenarios.steps_run
        self.assertEqual(order[:4], ["fetch", "import.extract", "import.transform", "import.load"])
        self.assertEqual(sorted(order[4:9]), [f"report-{n}" for n in range(1, 6)])
        self.assertEqual(order[9:], ["publish", "notify"])
        graph = await workflow.graph()
        self.assertTrue(graph.startswith("flowchart TD"))
        self.assertIn('"approval (completed)"', graph)

    async def test_status_of_an_unknown_workflow_is_none(self):
        await self.start()
        self.assertIsNone(await report_workflow().status())


class UniqueWorkflowTest(ClusterCase):
    """'Concurrent enqueues with the same workflow name are rejected before they're inserted.'"""

    async def unfinished_nightly_jobs(self, oban):
        rows = await oban.query("SELECT count(*) AS n FROM oban_jobs WHERE meta->>'workflow_name' = 'nightly-import'"
                                " AND state NOT IN ('completed', 'cancelled', 'discarded')")
        return rows[0]["n"]

    async def test_two_concurrent_enqueues_exactly_one_persists(self):
        node_a, node_b = await self.start(node="a"), await self.start(node="b")
        for _ in range(10):
            (jobs_a, msg_a), (jobs_b, msg_b) = await asyncio.gather(enqueue_nightly_import(node_a),
                                                                    enqueue_nightly_import(node_b))
            self.assertEqual(sorted([msg_a, msg_b]), ["nightly-import already running", "nightly-import enqueued"])
            winner, loser = (jobs_a, jobs_b) if msg_a.endswith("enqueued") else (jobs_b, jobs_a)
            self.assertTrue(all(job.id is not None and not job.extra["conflicted"] for job in winner))
            self.assertTrue(all(job.id is None and job.extra["conflicted"] for job in loser))
            self.assertEqual(await self.unfinished_nightly_jobs(node_a), 2)
            # Cancelling the running one frees the name for the next round.
            await node_a.query("SELECT oban_cancel_workflow(%s)", [winner[0].meta["workflow_id"]])

    async def test_an_enqueue_racing_an_uncommitted_one_waits_then_conflicts(self):
        node_b = await self.start(node="b")
        async with await psycopg.AsyncConnection.connect(DSN) as node_a:
            async with node_a.transaction():
                first = nightly_import()
                await node_a.execute("SELECT * FROM oban_insert_workflow(%s)", [Jsonb(first.spec())])
                racing = asyncio.create_task(enqueue_nightly_import(node_b))
                await asyncio.sleep(0.5)
                self.assertFalse(racing.done())  # waits for the claim of the other transaction
            jobs, message = await racing
        self.assertEqual(message, "nightly-import already running")
        self.assertTrue(all(job.extra["conflicted"] for job in jobs))
        await node_b.query("SELECT oban_cancel_workflow(%s)", [first.id])

    async def test_the_name_frees_up_when_the_workflow_completes(self):
        runner = await self.start(queues=QUEUES)
        workflow = nightly_import()
        inserted = await runner.enqueue_many(workflow)
        self.assertFalse(any(job.extra["conflicted"] for job in inserted))

        async def completed():
            s = await workflow.status()
            return s.state == "completed"

        await eventually(completed, what="nightly-import to complete")
        self.assertEqual(scenarios.steps_run, ["extract", "load"])
        again = nightly_import()
        jobs = await runner.enqueue_many(again)
        self.assertFalse(any(job.extra["conflicted"] for job in jobs))
        await runner.query("SELECT oban_cancel_workflow(%s)", [again.id])


if __name__ == "__main__":
    unittest.main()
