'use strict';
// The seed's three samples (Oban Pro 0.6 release notes) in Node, on ./oban.js. Used by the tests.
const { worker, Cancel, SignalTimeout, awaitSignal, Workflow } = require('./oban');

const charged = [];  // what chargeCard did
const runs = new Map();  // how many times process() started, per job id
const stepsRun = [];

async function chargeCard(userId) { charged.push(userId); }

// --- Signals ---
async function approve(job, waitFor) {
  runs.set(job.id, (runs.get(job.id) || 0) + 1);
  let payload;
  try {
    payload = await awaitSignal({ waitFor });
  } catch (error) {
    if (error instanceof SignalTimeout) return new Cancel('no decision');
    throw error;
  }
  if (payload.decision === 'approved') {
    await chargeCard(job.args.user_id);
  } else {
    return new Cancel(`declined: ${payload.decision}`);
  }
}

const ApprovalWorker = worker({ queue: 'approvals' }, class ApprovalWorker {
  async process(job) { return approve(job, 24 * 3600 * 1000); }  // wait_for=timedelta(days=1)
});

// ApprovalWorker with a deadline from its args (seconds), to see SignalTimeout without a day's wait.
const HastyApprovalWorker = worker({ queue: 'approvals' }, class HastyApprovalWorker {
  async process(job) { return approve(job, job.args.wait_for * 1000); }
});

// --- Workflows ---
const StepWorker = worker({ queue: 'workflows' }, class StepWorker {
  async process(job) { stepsRun.push(job.args.step); }
});
const ExtractWorker = worker({ queue: 'nightly' }, class ExtractWorker {
  async process() { stepsRun.push('extract'); }
});
const LoadWorker = worker({ queue: 'nightly' }, class LoadWorker {
  async process() { stepsRun.push('load'); }
});

// 12 jobs: fetch, a 3-step "import" sub-workflow, five reports, an approval (a signal), publish, notify.
function reportWorkflow() {
  const imports = new Workflow({ name: 'import' })
    .add('extract', StepWorker.new({ step: 'import.extract' }))
    .add('transform', StepWorker.new({ step: 'import.transform' }), { deps: 'extract' })
    .add('load', StepWorker.new({ step: 'import.load' }), { deps: 'transform' });
  const workflow = new Workflow({ name: 'monthly-report' })
    .add('fetch', StepWorker.new({ step: 'fetch' }))
    .addWorkflow('import', imports, { deps: 'fetch' });
  const reports = [1, 2, 3, 4, 5].map((n) => `report-${n}`);
  for (const name of reports) workflow.add(name, StepWorker.new({ step: name }), { deps: 'import' });
  return workflow
    .add('approval', ApprovalWorker.new({ user_id: 42 }), { deps: reports })
    .add('publish', StepWorker.new({ step: 'publish' }), { deps: 'approval' })
    .add('notify', StepWorker.new({ step: 'notify' }), { deps: 'publish' });
}

const nightlyImport = () => new Workflow({ name: 'nightly-import', unique: true })
  .add('extract', ExtractWorker.new({}))
  .add('load', LoadWorker.new({}), { deps: 'extract' });

async function enqueueNightlyImport(oban) {
  const inserted = await oban.enqueueMany(nightlyImport());
  const message = inserted.every((job) => job.extra.conflicted) ? 'nightly-import already running' : 'nightly-import enqueued';
  return { inserted, message };
}

module.exports = { charged, runs, stepsRun, ApprovalWorker, HastyApprovalWorker, reportWorkflow, nightlyImport,
  enqueueNightlyImport };
