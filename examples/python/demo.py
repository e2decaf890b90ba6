"""The seed's three samples, run for show by `bash scripts/demo.sh` (OBAN_DSN or libpq's PG* variables):
a signal before and after the await, a workflow's status with its sub-workflow and its Mermaid graph,
and two concurrent enqueues of the unique nightly-import."""

import asyncio
import os
from datetime import timedelta

import scenarios
from oban import Oban
from oban_pro import signal
from scenarios import ApprovalWorker, enqueue_nightly_import, report_workflow

DSN = os.environ.get("OBAN_DSN", "")
QUEUES = {"approvals": 5, "workflows": 5, "nightly": 2}


async def until(check, timeout=15.0):
    for _ in range(int(timeout / 0.05)):
        if await check():
            return
        await asyncio.sleep(0.05)
    raise SystemExit("demo: timed out")


async def state_of(oban, job_id):
    return (await oban.get_job(job_id)).state


async def is_state(oban, job_id, state):
    return await state_of(oban, job_id) == state


async def parked(oban, job_id):
    job = await oban.get_job(job_id)
    return job.state == "suspended" and "wait_until" in job.meta


async def signals(oban):
    print("--- Signals: ApprovalWorker awaits a decision (the seed's worker, verbatim)")
    client = await Oban.start(DSN)  # a second client, say a web handler: no queues
    early = await client.enqueue(ApprovalWorker.new({"user_id": 1}))
    await signal(early.id, {"decision": "approved"}, oban=client)
    print(f"job {early.id}: signalled before it ran -> the payload waits in the mailbox")
    late = await client.enqueue(ApprovalWorker.new({"user_id": 2}))
    await until(lambda: parked(oban, late.id))
    await until(lambda: is_state(oban, early.id, "completed"))
    print(f"job {early.id}: {await state_of(oban, early.id)} (await_signal returned the stored payload at once)")
    print(f"job {late.id}: no signal within wait_timeout -> {await state_of(oban, late.id)}, its worker freed")
    await signal(late.id, {"decision": "approved"}, oban=client)
    await until(lambda: is_state(oban, late.id, "completed"))
    print(f"job {late.id}: signalled -> available -> process() ran again, await_signal returned at once -> completed")
    print(f"charge_card ran for users {scenarios.charged}")
    await client.stop()


async def status(oban):
    print("\n--- Workflow status: 12 jobs, an 'import' sub-workflow, paused at an approval step")
    workflow = report_workflow()
    inserted = await oban.enqueue_many(workflow)
    approval = next(job for job in inserted if job.meta["name"] == "approval")
    await until(lambda: parked(oban, approval.id))
    status = await workflow.status()
    print(status.state)  # "executing"
    print(status.total)  # 12
    print(status.counts["completed"])  # 9
    print(repr(status.duration))  # timedelta(seconds=...)
    print(status.subs["import"].state)  # "completed"
    print("\nThe workflow graph now (oban_workflow_graph, Mermaid):")
    print(await workflow.graph("mermaid"))
    print('workflow.signal("approval", {"decision": "approved"}) ->', await workflow.signal("approval", {"decision": "approved"}))

    async def done():
        return (await workflow.status()).state == "completed"

    await until(done)
    status = await workflow.status()
    print(f"then: {status.state}, {status.counts['completed']}/{status.total} completed in {status.duration}")


async def unique():
    print("\n--- Unique workflows: two nodes enqueue nightly-import at the same moment")
    node_a, node_b = await Oban.start(DSN, node="a"), await Oban.start(DSN, node="b")
    results = await asyncio.gather(enqueue_nightly_import(node_a), enqueue_nightly_import(node_b))
    for node, (inserted, message) in zip("ab", results):
        ids = [job.id for job in inserted]
        print(f"node {node}: {message} (job ids {ids}, conflicted {[job.extra['conflicted'] for job in inserted]})")
    winner = next(jobs for jobs, message in results if message.endswith("enqueued"))
    await node_a.query("SELECT oban_cancel_workflow(%s)", [winner[0].meta["workflow_id"]])
    await node_b.stop()
    await node_a.stop()


async def main():
    oban = await Oban.start(DSN, queues=QUEUES, wait_timeout=timedelta(milliseconds=300), poll_interval=0.2,
                            stage_interval=0.2)
    try:
        await signals(oban)
        await status(oban)
        await unique()
    finally:
        await oban.stop()


if __name__ == "__main__":
    asyncio.run(main())
