'use strict';
// The seed's three scenarios from Node, against a real oban_pro cluster (OBAN_DSN or libpq's PG*
// variables):   OBAN_DSN=postgresql:///clients node --test
const test = require('node:test');
const assert = require('node:assert/strict');
const pg = require('pg');
const { Oban, signal } = require('./oban');
const s = require('./scenarios');

const DSN = process.env.OBAN_DSN || undefined;
const QUEUES = { approvals: 5, workflows: 5, nightly: 2 };
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function eventually(check, what, timeout = 15000) {
  const deadline = Date.now() + timeout;
  for (;;) {
    const result = await check();
    if (result) return result;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

// Runs fn with fresh Oban instances, stopping them all afterwards.
async function withObans(fn) {
  const started = [];
  const start = async (opts = {}) => {
    const oban = await Oban.start({ connectionString: DSN, pollInterval: 200, stageInterval: 200, ...opts });
    started.push(oban);
    return oban;
  };
  s.charged.length = 0;
  s.stepsRun.length = 0;
  s.runs.clear();
  try {
    await fn(start);
  } finally {
    for (const oban of started.reverse()) await oban.stop();
  }
}

const jobIn = (oban, id, ...states) =>
  eventually(async () => { const j = await oban.getJob(id); return states.includes(j.state) && j; }, `job ${id} in ${states}`);
const parked = (oban, id) =>
  eventually(async () => { const j = await oban.getJob(id); return j.state === 'suspended' && 'wait_until' in j.meta && j; },
    `job ${id} parked`);

test('signals: a signal delivered before the job awaits is consumed at once', () => withObans(async (start) => {
  const client = await start();
  const job = await client.enqueue(s.ApprovalWorker.new({ user_id: 1 }));
  assert.equal(await signal(job.id, { decision: 'approved' }), 1);
  const runner = await start({ queues: QUEUES, waitTimeout: 10000 });
  const done = await jobIn(runner, job.id, 'completed');
  assert.deepEqual(s.charged, [1]);
  assert.equal(s.runs.get(job.id), 1);
  assert.equal(done.attempt, 1);
  assert.ok(!('wait_until' in done.meta));
}));

test('signals: a signal delivered after the job parked resumes it', () => withObans(async (start) => {
  const runner = await start({ queues: QUEUES, waitTimeout: 300 });
  const job = await runner.enqueue(s.ApprovalWorker.new({ user_id: 2 }));
  const waiting = await parked(runner, job.id);
  assert.equal(waiting.attempt, 0);
  await sleep(500);
  assert.equal(s.runs.get(job.id), 1);
  assert.deepEqual(s.charged, []);
  await signal(job.id, { decision: 'approved' });
  const done = await jobIn(runner, job.id, 'completed');
  assert.equal(s.runs.get(job.id), 2);  // process() started over; awaitSignal returned at once
  assert.deepEqual(s.charged, [2]);
  assert.equal(done.attempt, 1);
}));

test('signals: a signal during the blocking wait resumes in place', () => withObans(async (start) => {
  const runner = await start({ queues: QUEUES, waitTimeout: 20000 });
  const job = await runner.enqueue(s.ApprovalWorker.new({ user_id: 3 }));
  await eventually(async () => s.runs.get(job.id), 'process() to start');
  await sleep(300);
  assert.equal((await runner.getJob(job.id)).state, 'executing');
  const started = Date.now();
  await signal(job.id, { decision: 'approved' });
  await jobIn(runner, job.id, 'completed');
  assert.ok(Date.now() - started < 5000);
  assert.equal(s.runs.get(job.id), 1);
  assert.deepEqual(s.charged, [3]);
}));

test('signals: a list of ids, a decline, and a timeout', () => withObans(async (start) => {
  const runner = await start({ queues: QUEUES, waitTimeout: 200 });
  const a = await runner.enqueue(s.ApprovalWorker.new({ user_id: 4 }));
  const b = await runner.enqueue(s.ApprovalWorker.new({ user_id: 5 }));
  const hasty = await runner.enqueue(s.HastyApprovalWorker.new({ user_id: 6, wait_for: 1 }));
  await parked(runner, a.id);
  await parked(runner, b.id);
  assert.equal(await signal([a.id, b.id], { decision: 'rejected' }), 2);
  for (const job of [a, b]) {
    const cancelled = await jobIn(runner, job.id, 'cancelled');
    assert.match(cancelled.errors.at(-1).error, /declined: rejected/);
  }
  assert.equal(await signal(a.id, { decision: 'approved' }), 0);
  const timedOut = await jobIn(runner, hasty.id, 'cancelled');
  assert.equal(timedOut.errors.at(-1).error, 'no decision');
  assert.equal(s.runs.get(hasty.id), 2);
  assert.deepEqual(s.charged, []);
}));

test('workflow status: a workflow and its sub-workflow', () => withObans(async (start) => {
  const runner = await start({ queues: QUEUES, waitTimeout: 300 });
  const workflow = s.reportWorkflow();
  const inserted = await runner.enqueueMany(workflow);
  assert.equal(inserted.length, 12);
  assert.ok(inserted.every((job) => !job.extra.conflicted));
  const approval = inserted.find((job) => job.meta.name === 'approval');
  await parked(runner, approval.id);

  const status = await workflow.status();
  assert.equal(status.state, 'executing');
  assert.equal(status.total, 12);
  assert.equal(status.counts.completed, 9);
  assert.equal(status.counts.suspended, 3);
  assert.ok(status.duration > 0);
  assert.equal(status.subs.import.state, 'completed');
  assert.equal(status.subs.import.total, 3);

  assert.equal(await workflow.signal('approval', { decision: 'approved' }), 1);
  const final = await eventually(async () => { const f = await workflow.status(); return f.state === 'completed' && f; },
    'the workflow to complete');
  assert.equal(final.counts.completed, 12);
  assert.ok(final.duration >= status.duration);
  assert.deepEqual(s.charged, [42]);
  assert.deepEqual(s.stepsRun.slice(0, 4), ['fetch', 'import.extract', 'import.transform', 'import.load']);
  assert.deepEqual(s.stepsRun.slice(9), ['publish', 'notify']);
  const graph = await workflow.graph();
  assert.ok(graph.startsWith('flowchart TD'));
  assert.ok(graph.includes('"approval (completed)"'));
}));

test('unique workflows: two concurrent enqueues, exactly one persists', () => withObans(async (start) => {
  const nodeA = await start({ node: 'a' });
  const nodeB = await start({ node: 'b' });
  for (let round = 0; round < 10; round++) {
    const [x, y] = await Promise.all([s.enqueueNightlyImport(nodeA), s.enqueueNightlyImport(nodeB)]);
    assert.deepEqual([x.message, y.message].sort(), ['nightly-import already running', 'nightly-import enqueued']);
    const [winner, loser] = x.message.endsWith('enqueued') ? [x, y] : [y, x];
    assert.ok(winner.inserted.every((job) => job.id !== null && !job.extra.conflicted));
    assert.ok(loser.inserted.every((job) => job.id === null && job.extra.conflicted));
    const [{ n }] = await nodeA.query(`SELECT count(*)::int AS n FROM oban_jobs WHERE meta->>'workflow_name' = 'nightly-import'
      AND state NOT IN ('completed', 'cancelled', 'discarded')`);
    assert.equal(n, 2);
    await nodeA.query('SELECT oban_cancel_workflow($1)', [winner.inserted[0].meta.workflow_id]);
  }
}));

test('unique workflows: an enqueue racing an uncommitted one waits, then conflicts', () => withObans(async (start) => {
  const nodeB = await start({ node: 'b' });
  const nodeA = new pg.Client({ connectionString: DSN });
  await nodeA.connect();
  const first = s.nightlyImport();
  try {
    await nodeA.query('BEGIN');
    await nodeA.query('SELECT * FROM oban_insert_workflow($1::jsonb)', [JSON.stringify(first.spec())]);
    let settled = false;
    const racing = s.enqueueNightlyImport(nodeB).finally(() => { settled = true; });
    await sleep(500);
    assert.equal(settled, false);  // waits for the other transaction's claim
    await nodeA.query('COMMIT');
    const { inserted, message } = await racing;
    assert.equal(message, 'nightly-import already running');
    assert.ok(inserted.every((job) => job.extra.conflicted));
  } finally {
    await nodeA.end();
    await nodeB.query('SELECT oban_cancel_workflow($1)', [first.id]);
  }
}));

test('unique workflows: the name frees up when the workflow completes', () => withObans(async (start) => {
  const runner = await start({ queues: QUEUES });
  const workflow = s.nightlyImport();
  const inserted = await runner.enqueueMany(workflow);
  assert.ok(inserted.every((job) => !job.extra.conflicted));
  await eventually(async () => (await workflow.status()).state === 'completed', 'nightly-import to complete');
  assert.deepEqual(s.stepsRun, ['extract', 'load']);
  const again = s.nightlyImport();
  const { message } = { message: (await runner.enqueueMany(again)).every((j) => j.extra.conflicted) ? 'conflicted' : 'enqueued' };
  assert.equal(message, 'enqueued');
  await runner.query('SELECT oban_cancel_workflow($1)', [again.id]);
}));
