"""The seed's three samples (Oban Pro 0.6 release notes), nearly verbatim, on this example library.
The tests (test_scenarios.py) and the demo (demo.py) both run them against a real cluster."""

from datetime import timedelta

from oban import Cancel, worker
from oban_pro import SignalTimeout, Workflow, await_signal, signal  # noqa: F401  (signal: used by callers)

# --- Signals ---------------------------------------------------------------------------------------

charged: list[int] = []  # what charge_card did, for the tests and the demo
runs: dict[int, int] = {}  # how many times process() started, per job id


async def charge_card(user_id):
    charged.append(user_id)


@worker(queue="approvals")
class ApprovalWorker:
    async def process(self, job):
        runs[job.id] = runs.get(job.id, 0) + 1
        try:
            payload = await await_signal(wait_for=timedelta(days=1))
        except SignalTimeout:
            return Cancel("no decision")
        if payload["decision"] == "approved":
            await charge_card(job.args["user_id"])
        else:
            return Cancel(f"declined: {payload['decision']}")


@worker(queue="approvals")
class HastyApprovalWorker:
    """ApprovalWorker with a deadline from its args (seconds), to see SignalTimeout without a day's wait."""

    async def process(self, job):
        runs[job.id] = runs.get(job.id, 0) + 1
        try:
            payload = await await_signal(wait_for=timedelta(seconds=job.args["wait_for"]))
        except SignalTimeout:
            return Cancel("no decision")
        if payload["decision"] == "approved":
            await charge_card(job.args["user_id"])
        else:
            return Cancel(f"declined: {payload['decision']}")


# --- Workflows -------------------------------------------------------------------------------------

steps_run: list[str] = []


@worker(queue="workflows")
class StepWorker:
    async def process(self, job):
        steps_run.append(job.args["step"])


@worker(queue="nightly")
class ExtractWorker:
    async def process(self, job):
        steps_run.append("extract")


@worker(queue="nightly")
class LoadWorker:
    async def process(self, job):
        steps_run.append("load")


def report_workflow() -> Workflow:
    """A workflow of 12 jobs: fetch, a 3-step "import" sub-workflow, five reports, then an approval
    (a signal) before publish and notify — so that, paused at the approval, 9 of 12 are completed."""
    imports = (
        Workflow(name="import")
        .add("extract", StepWorker.new({"step": "import.extract"}))
        .add("transform", StepWorker.new({"step": "import.transform"}), deps="extract")
        .add("load", StepWorker.new({"step": "import.load"}), deps="transform")
    )
    workflow = (
        Workflow(name="monthly-report")
        .add("fetch", StepWorker.new({"step": "fetch"}))
        .add_workflow("import", imports, deps="fetch")
    )
    for n in range(1, 6):
        workflow.add(f"report-{n}", StepWorker.new({"step": f"report-{n}"}), deps="import")
    return (
        workflow.add("approval", ApprovalWorker.new({"user_id": 42}), deps=[f"report-{n}" for n in range(1, 6)])
        .add("publish", StepWorker.new({"step": "publish"}), deps="approval")
        .add("notify", StepWorker.new({"step": "notify"}), deps="publish")
    )


def nightly_import() -> Workflow:
    # The seed's unique workflow, verbatim.
    workflow = (
        Workflow(name="nightly-import", unique=True)
        .add("extract", ExtractWorker.new({}))
        .add("load", LoadWorker.new({}), deps="extract")
    )
    return workflow


async def enqueue_nightly_import(oban):
    """The seed's enqueue and conflict check; returns (inserted jobs, message)."""
    workflow = nightly_import()
    inserted = await oban.enqueue_many(workflow)
    if all(job.extra.get("conflicted") for job in inserted):
        return inserted, "nightly-import already running"
    return inserted, "nightly-import enqueued"
