// Records the SQL pg-boss's own client issues for the benchmark's operations, so the benchmark can
// replay exactly those statements with pgbench. Run from the scratch dir where pg-boss is installed:
//   node pgboss_capture.mjs <connection string> <out.json>
// It installs pg-boss's schema (boss.start()), creates the queues, then drives insert / fetch /
// complete / flow through a db adapter that logs every statement and its parameters.
import { PgBoss } from 'pg-boss';
import pg from 'pg';
import fs from 'node:fs';

const [conn, out] = process.argv.slice(2);
const pool = new pg.Pool({ connectionString: conn, max: 2 });
let log = null;
const db = {
  async executeSql(text, values) {
    if (log) log.push({ text, values: values ?? [] });
    return pool.query(text, values);
  }
};
const boss = new PgBoss({ db, supervise: false, schedule: false });
boss.on('error', (e) => console.error('pg-boss error:', e));
await boss.start();
await boss.createQueue('bench');
await boss.createQueue('bench_flow');

const ops = {};
const capture = async (name, fn) => { log = []; const r = await fn(); ops[name] = log; log = null; return r; };
await capture('insert', () => boss.insert('bench', Array.from({ length: 10 }, (_, n) => ({ data: { n } }))));
const jobs = await capture('fetch', () => boss.fetch('bench', { batchSize: 10 }));
await capture('complete', () => boss.complete('bench', jobs.map((j) => j.id)));
await capture('flow', () => boss.flow([
  { ref: 'a', name: 'bench_flow', data: { step: 'a' } },
  { ref: 'b', name: 'bench_flow', data: { step: 'b' }, dependsOn: ['a'] },
  { ref: 'c', name: 'bench_flow', data: { step: 'c' }, dependsOn: ['a'] },
  { ref: 'd', name: 'bench_flow', data: { step: 'd' }, dependsOn: ['b', 'c'] }
]));
fs.writeFileSync(out, JSON.stringify({ version: JSON.parse(fs.readFileSync('node_modules/pg-boss/package.json')).version, ops }, null, 2));
await boss.stop({ graceful: false, wait: true });
await pool.end();
