// pg-boss's own background instance (its supervisor: the flow resolver, monitoring, maintenance),
// running for the length of a pg-boss benchmark run, as a deployment runs it beside its workers.
//   node pgboss_supervisor.mjs <connection string>   (stops on SIGTERM)
import { PgBoss } from 'pg-boss';
const boss = new PgBoss({ connectionString: process.argv[2], flowIntervalSeconds: 1, schedule: false, max: 2 });
boss.on('error', (e) => console.error('pg-boss error:', e.message));
await boss.start();
console.log('pg-boss supervisor started');
process.on('SIGTERM', async () => { await boss.stop({ graceful: false, wait: true }); process.exit(0); });
setInterval(() => {}, 1 << 30);
