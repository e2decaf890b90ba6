// Records the SQL graphile-worker's own runner issues to fetch and complete a batch, so the benchmark
// can replay exactly those statements with pgbench. Run from the scratch dir where it is installed:
//   node graphile_capture.mjs <connection string> <out.json>
// Installs graphile-worker's schema (runMigrations), adds 10 jobs with add_jobs, then runs its
// runner with a local queue of 10 (batched fetch) and completeJobBatchDelay 0 (batched completion)
// until the jobs are done, logging every query the pg module sends.
import pg from 'pg';
import fs from 'node:fs';
import { run, runMigrations } from 'graphile-worker';

const [conn, out] = process.argv.slice(2);
const seen = [];
let capturing = false;
const orig = pg.Client.prototype.query;
pg.Client.prototype.query = function (config, values, cb) {
  if (capturing) {
    const text = typeof config === 'string' ? config : config.text;
    const name = typeof config === 'object' ? config.name : undefined;
    const vals = typeof config === 'object' && config.values ? config.values : values;
    seen.push({ name: name ?? null, text, values: vals ?? [] });
  }
  return orig.call(this, config, values, cb);
};

const pgPool = new pg.Pool({ connectionString: conn, max: 4 });
await runMigrations({ pgPool });
await pgPool.query(`select graphile_worker.add_jobs(array(select row('bench', json_build_object('n', g), null, null, null, null, null, null)::graphile_worker.job_spec from generate_series(1, 10) g))`);
let done = 0;
capturing = true;
const runner = await run({
  pgPool,
  concurrency: 10,
  noHandleSignals: true,
  pollInterval: 100,
  preset: { worker: { localQueue: { size: 10 }, completeJobBatchDelay: 0 } },
  taskList: { bench: async () => { done++; } }
});
const t0 = Date.now();
while (Date.now() - t0 < 20000) {
  const { rows } = await pgPool.query('select count(*)::int n from graphile_worker._private_jobs');
  if (rows[0].n === 0 && done >= 10) break;
  await new Promise((r) => setTimeout(r, 100));
}
await runner.stop();
capturing = false;
const version = JSON.parse(fs.readFileSync('node_modules/graphile-worker/package.json')).version;
const pick = (re) => seen.filter((s) => s.name && re.test(s.name));
fs.writeFileSync(out, JSON.stringify({ version, done, fetch: pick(/^get_job\d+\//), complete: pick(/^complete_jobs?\//), all: seen.map((s) => s.name ?? s.text.slice(0, 60)) }, null, 2));
await pgPool.end();
