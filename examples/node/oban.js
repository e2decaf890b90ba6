'use strict';
// A small Oban-style worker library for Node over the `pg` package and the oban_pro extension's SQL
// functions: the same API shape as examples/python (workers, jobs, Cancel, signals, workflows,
// status, unique workflows), with every decision taken by the database. An example, not a product.
//
//   const oban = await Oban.start({ queues: { default: 10 } });   // libpq-style PG* env, or { connectionString }
//   await oban.enqueue(MyWorker.new({ id: 1 }));
//   await oban.stop();

const { AsyncLocalStorage } = require('node:async_hooks');
const { randomUUID } = require('node:crypto');
const pg = require('pg');

// bigint ids as numbers (they stay far below 2^53 here).
const types = { getTypeParser: (oid, format) => (oid === 20 ? Number : pg.types.getTypeParser(oid, format)) };

class Cancel {
  constructor(reason = 'cancelled') { this.reason = reason; }
}
class Snooze {
  constructor(seconds) { this.seconds = seconds; }
}
class SignalTimeout extends Error {}
// Thrown by awaitSignal when the database parked the job: the runner stops it without an ack.
class Parked extends Error {}

const workers = new Map();

// worker({ queue, maxAttempts, priority, name }, class { async process(job) { ... } })
// registers the class and gives it `.new(args, overrides)` returning an unsaved job.
function worker(opts, cls) {
  const name = opts.name || cls.name;
  const defaults = { queue: opts.queue || 'default', max_attempts: opts.maxAttempts || 20, priority: opts.priority || 0 };
  cls.new = (args = {}, overrides = {}) =>
    ({ worker: name, args, meta: {}, tags: [], ...defaults, ...overrides, id: null, state: null, extra: {} });
  cls.workerName = name;
  workers.set(name, cls);
  return cls;
}

const insertParams = (job) => {
  const spec = { worker: job.worker, args: job.args, queue: job.queue, priority: job.priority,
    max_attempts: job.max_attempts, meta: job.meta, tags: job.tags };
  if (job.scheduled_at) spec.scheduled_at = job.scheduled_at;
  return spec;
};

const running = new AsyncLocalStorage();  // { job, client, oban } of the job this async context runs
let defaultOban = null;

const seconds = (ms) => (ms == null ? null : ms / 1000);

class Oban {
  // queues: { name: limit } to run jobs; waitTimeout (ms, default 5000) for awaitSignal;
  // stageInterval (ms) runs oban_stage_jobs; flushWorkflows calls oban_flush_workflows after acks.
  constructor({ connectionString, queues = {}, prefix = 'public', node = 'node', pollInterval = 1000,
    stageInterval = 1000, waitTimeout = 5000, flushWorkflows = true } = {}) {
    Object.assign(this, { queues, prefix, node, pollInterval, stageInterval, waitTimeout, flushWorkflows });
    const limit = Object.values(queues).reduce((a, b) => a + b, 0);
    this.pool = new pg.Pool({ connectionString, types, max: limit + Object.keys(queues).length + 2,
      options: `-c search_path=${prefix},pg_catalog` });
    this.connectionString = connectionString;
    this.stopping = false;
    this.loops = [];
    this.jobs = new Set();
    this.wakers = new Map();
  }

  static async start(opts = {}) {
    const oban = new Oban(opts);
    await oban.query('SELECT 1');
    if (!defaultOban) defaultOban = oban;
    if (Object.keys(oban.queues).length) {
      oban.listener = new pg.Client({ connectionString: oban.connectionString });
      await oban.listener.connect();
      oban.listener.on('notification', (msg) => {
        const queue = JSON.parse(msg.payload).queue;
        if (oban.wakers.has(queue)) oban.wakers.get(queue)();
      });
      await oban.listener.query(`LISTEN ${pg.Client.prototype.escapeIdentifier(`${oban.prefix}.oban_insert`)}`);
      for (const [queue, limit] of Object.entries(oban.queues)) oban.loops.push(oban.produce(queue, limit));
      if (oban.stageInterval) oban.loops.push(oban.stage());
    }
    return oban;
  }

  async stop() {
    this.stopping = true;
    for (const wake of this.wakers.values()) wake();
    await Promise.allSettled(this.loops);
    await Promise.allSettled([...this.jobs]);
    if (this.listener) await this.listener.end();
    await this.pool.end();
    if (defaultOban === this) defaultOban = null;
  }

  async query(sql, params = []) {
    return (await this.pool.query(sql, params)).rows;
  }

  async enqueue(job) {
    return (await this.enqueueMany([job]))[0];
  }

  // A list of jobs (oban_insert_jobs) or a Workflow (oban_insert_workflow, atomic). Jobs of a unique
  // workflow that lost to a running one come back with extra.conflicted = true and no id.
  async enqueueMany(jobs) {
    if (jobs instanceof Workflow) return jobs.insert(this);
    const rows = await this.query('SELECT * FROM oban_insert_jobs($1::jsonb)', [JSON.stringify(jobs.map(insertParams))]);
    return jobs.map((job, i) => Object.assign(job, { id: rows[i].id, state: rows[i].state }));
  }

  async getJob(id) {
    return (await this.query('SELECT * FROM oban_jobs WHERE id = $1', [id]))[0] || null;
  }

  sleep(queue, ms) {
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, ms);
      this.wakers.set(queue, () => { clearTimeout(timer); resolve(); });
    });
  }

  async stage() {
    while (!this.stopping) {
      await this.query('SELECT oban_stage_jobs()').catch((e) => console.error('staging failed:', e.message));
      await this.sleep('\u0000stager', this.stageInterval);
    }
  }

  async produce(queue, limit) {
    let busy = 0;
    while (!this.stopping) {
      const idle = this.sleep(queue, this.pollInterval);
      if (limit - busy > 0) {
        const rows = await this.query('SELECT * FROM oban_fetch_jobs($1, $2, $3)', [queue, limit - busy, this.node]);
        for (const row of rows) {
          busy += 1;
          const task = this.execute({ ...row, extra: {} }).finally(() => {
            busy -= 1;
            this.jobs.delete(task);
            if (this.wakers.has(queue)) this.wakers.get(queue)();
          });
          this.jobs.add(task);
        }
      }
      await idle;
    }
  }

  async execute(job) {
    const client = await this.pool.connect();
    try {
      const Worker = workers.get(job.worker);
      let ack;
      if (!Worker) {
        ack = { id: job.id, state: 'discarded', error: `unknown worker ${job.worker}` };
      } else {
        try {
          const result = await running.run({ job, client, oban: this }, () => new Worker().process(job));
          if (result instanceof Cancel) ack = { id: job.id, state: 'cancelled', error: result.reason };
          else if (result instanceof Snooze) ack = { id: job.id, state: 'scheduled', snooze: result.seconds };
          else ack = { id: job.id, state: 'completed' };
        } catch (error) {
          if (error instanceof Parked) return;  // parked by the database: no ack
          ack = { id: job.id, state: 'retryable', error: String((error && error.stack) || error) };
        }
      }
      await client.query('SELECT oban_ack_jobs($1::jsonb)', [JSON.stringify([ack])]);
      if (this.flushWorkflows) await client.query('SELECT oban_flush_workflows()');
    } catch (error) {
      console.error(`job ${job.id}: ack failed:`, error.message);
    } finally {
      client.release();
    }
  }
}

function instance(oban) {
  const current = running.getStore();
  const found = oban || (current && current.oban) || defaultOban;
  if (!found) throw new Error('no running Oban instance: call `await Oban.start(...)` first');
  return found;
}

// Inside a worker's process(): the next signal payload for the running job (oban_await_signal on its
// connection). Waits in the backend up to waitTimeout ms; then the database parks the job and this
// throws Parked, ending process() without an ack. When a signal makes the job run again, process()
// starts over and this returns the stored payload at once. Past waitFor (ms, from the first park;
// null: no deadline) it throws SignalTimeout.
async function awaitSignal({ waitFor = null, waitTimeout = null } = {}) {
  const current = running.getStore();
  if (!current) throw new Error('awaitSignal() must be called from a worker\'s process()');
  const { rows } = await current.client.query(
    `SELECT status, payload FROM oban_await_signal($1, $2::float8 * interval '1 second', $3::float8 * interval '1 second')`,
    [current.job.id, seconds(waitFor), seconds(waitTimeout ?? current.oban.waitTimeout)]);
  if (rows[0].status === 'received') return rows[0].payload;
  if (rows[0].status === 'timeout') throw new SignalTimeout(`job ${current.job.id}: no signal before its deadline`);
  throw new Parked(`job ${current.job.id} parked`);
}

// Delivers payload to a job id or an array of ids; returns how many took it.
async function signal(jobId, payload, { oban } = {}) {
  const db = instance(oban);
  const many = Array.isArray(jobId);
  const rows = await db.query(`SELECT oban_signal($1::bigint${many ? '[]' : ''}, $2::jsonb) AS took`,
    [jobId, JSON.stringify(payload)]);
  return many ? rows[0].took : (rows[0].took ? 1 : 0);
}

class Workflow {
  constructor({ name = null, unique = false, workflowId = null, ignoreCancelled = false, ignoreDiscarded = false,
    ignoreDeleted = false } = {}) {
    Object.assign(this, { id: workflowId || randomUUID(), name, unique, steps: [], oban: null });
    this.options = { ignore_cancelled: ignoreCancelled, ignore_discarded: ignoreDiscarded, ignore_deleted: ignoreDeleted };
  }

  add(name, job, { deps = [] } = {}) {
    this.steps.push({ name, job, deps: [].concat(deps) });
    return this;
  }

  addWorkflow(name, workflow, { deps = [] } = {}) {
    this.steps.push({ name, workflow, deps: [].concat(deps) });
    return this;
  }

  spec() {
    const jobs = this.steps.map(({ name, job, workflow, deps }) =>
      (workflow ? { name, deps, workflow: workflow.spec() } : { name, deps, ...insertParams(job) }));
    return { workflow_id: this.id, unique: this.unique, jobs, ...this.options, ...(this.name ? { name: this.name } : {}) };
  }

  allJobs() {  // [workflowId, stepName, job] for every job, sub-workflows included
    return this.steps.flatMap((s) => (s.workflow ? s.workflow.allJobs() : [[this.id, s.name, s.job]]));
  }

  async insert(oban) {
    this.oban = oban;
    const rows = await oban.query('SELECT * FROM oban_insert_workflow($1::jsonb)', [JSON.stringify(this.spec())]);
    const byStep = new Map(rows.map((r) => [`${r.workflow_id}\u0000${r.name}`, r]));
    return this.allJobs().map(([workflowId, name, job]) => {
      const row = byStep.get(`${workflowId}\u0000${name}`);
      job.meta = { ...job.meta, workflow_id: workflowId, name };
      return Object.assign(job, { id: row.id, state: row.state, extra: { ...job.extra, conflicted: row.conflicted } });
    });
  }

  // { id, name, state, total, counts, duration (ms), startedAt, completedAt, subs: { name: status } } or null.
  async status() {
    const rows = await instance(this.oban).query('SELECT oban_workflow_status($1) AS s', [this.id]);
    return rows[0].s && toStatus(rows[0].s);
  }

  async signal(name, payload) {
    const rows = await instance(this.oban).query('SELECT oban_workflow_signal($1, $2, $3::jsonb) AS took',
      [this.id, name, JSON.stringify(payload)]);
    return rows[0].took;
  }

  async graph(format = 'mermaid') {
    return (await instance(this.oban).query('SELECT oban_workflow_graph($1, $2) AS g', [this.id, format]))[0].g;
  }
}

function toStatus(s) {
  const subs = Object.fromEntries(Object.entries(s.subs).map(([name, sub]) => [name, toStatus(sub)]));
  return { id: s.id, name: s.name, state: s.state, total: s.total, counts: s.counts,
    duration: s.duration == null ? null : Math.round(s.duration * 1000),
    insertedAt: s.inserted_at, startedAt: s.started_at, completedAt: s.completed_at, subs };
}

module.exports = { Oban, worker, Cancel, Snooze, SignalTimeout, awaitSignal, signal, Workflow };
