// Settlement on real stores: how fast paid jobs are held, charged and settled,
// and how fast the persisted ledger takes batches — SQLite file and PostgreSQL.
// Each job: hold at submit (with the job), one claim, results with charges,
// settlement (post + operator/fee/pool, linked). Then `ledger check` over the
// whole log. Prints one JSON line per store.
// Usage: npm run bench -- settlement [--jobs 2000] [--tasks 10] [--pg postgres://postgres@127.0.0.1:5432/test]
import './lib.mjs'; // --help
import os from 'node:os';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SqliteStore, PostgresStore } from '../packages/coordinator/dist/src/store/index.js';
import { ACCOUNTS, depositPlan, holdPlan, settlementPlan } from '../packages/coordinator/dist/src/settlement/index.js';
import { auditLog } from '../packages/coordinator/dist/src/ledger/persist.js';
import { newJobId } from '../packages/protocol/dist/src/index.js';

const arg = (name, dflt) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : dflt;
};
const JOBS = Number(arg('jobs', 2000));
const TASKS = Number(arg('tasks', 10));
const PG = arg('pg', process.env.IDLEMESH_TEST_PG ?? 'postgres://postgres@127.0.0.1:5432/test');
const FEES = { coordinatorFeeBps: 500, poolFeeBps: 500 };
const NODE = 'f'.repeat(64);
const CAPS = { runtimes: ['wasm'], cores: 2, memoryMb: 1024, arch: 'x64', os: 'linux', gpus: [], maxTasks: 2, benchmark: { fuelPerSec: 1e9 }, agentVersion: 'bench', ask: 1000 };

async function run(kind, store) {
  await store.migrate();
  await store.upsertNode(NODE, CAPS, 1);
  await store.ledgerApply({ accounts: [{ id: ACCOUNTS.treasury, kind: 'treasury' }, { id: 'buyer:bench', kind: 'buyer' }], events: [] }, 1);
  await store.ledgerApply(depositPlan('seed', 'buyer:bench', 10n ** 15n, {}), 1);
  const inputs = Array.from({ length: TASKS }, (_, i) => new TextEncoder().encode(`{"i":${i}}`));
  let now = 10;
  const t0 = process.hrtime.bigint();
  let holdNs = 0n;
  let settleNs = 0n;
  for (let j = 0; j < JOBS; j++) {
    now += 1;
    const id = newJobId(1_700_000_000_000 + j);
    const job = { id, caller: 'bench', requestHash: '', module: '1'.repeat(64), instrumentedModule: '2'.repeat(64), runtime: 'wasm',
      limits: { fuel: 1_000_000_000, memoryMb: 16, timeoutMs: 1000, outputBytes: 64 }, bid: 2000, maxAttempts: 3, retryBackoffMs: 10,
      priority: 1, requirements: {}, createdAt: now, buyer: 'buyer:bench', fees: FEES };
    const hold = holdPlan({ jobId: id, buyer: 'buyer:bench', tasks: TASKS, fuelLimit: job.limits.fuel, bid: 2000, maxExecutionsPerTask: 1, fees: FEES });
    const h0 = process.hrtime.bigint();
    await store.createJob({ ...job, holdMsat: hold.amount }, inputs, hold.batch);
    holdNs += process.hrtime.bigint() - h0;
    const claimed = await store.claimTasks([{ jobId: id, nodeId: NODE, count: TASKS, ask: 1000 }], now, 60_000);
    await store.completeTasks(NODE, claimed.map((t) => ({ jobId: id, index: t.index, attempt: t.attempt, ok: true, output: new Uint8Array(4), fuel: 123_456_789 + t.index })), now);
    const s0 = process.hrtime.bigint();
    const r = await store.settleJob(id, settlementPlan, now);
    settleNs += process.hrtime.bigint() - s0;
    if (!r.settled) throw new Error(`job ${id} did not settle`);
  }
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const c0 = process.hrtime.bigint();
  const d = await store.ledgerDump();
  const violations = auditLog(d.accountEvents, d.transfers, d.accounts, d.head);
  const checkMs = Number(process.hrtime.bigint() - c0) / 1e6;
  console.log(JSON.stringify({
    bench: 'settlement', store: kind, durability: store.durability, jobs: JOBS, tasksPerJob: TASKS,
    paidJobsPerSec: Math.round(JOBS / seconds), tasksPerSec: Math.round((JOBS * TASKS) / seconds),
    holdMsMean: +(Number(holdNs) / 1e6 / JOBS).toFixed(3), settleMsMean: +(Number(settleNs) / 1e6 / JOBS).toFixed(3),
    transfers: d.transfers.length, ledgerCheckMs: Math.round(checkMs), violations: violations.length,
    machine: { cpus: os.cpus().length, cpu: os.cpus()[0]?.model, node: process.version },
  }));
  if (violations.length > 0) process.exitCode = 1;
}

const dir = mkdtempSync(join(tmpdir(), 'idlemesh-bench-settle-'));
try {
  const sqlite = new SqliteStore(join(dir, 'bench.db'));
  await run('sqlite', sqlite);
  await sqlite.close();
} finally {
  rmSync(dir, { recursive: true, force: true });
}
const schema = `bench_settle_${process.pid}`;
const pg = new PostgresStore(PG, { schema, poolSize: 4 });
try {
  await run('postgres', pg);
} catch (err) {
  console.error(`postgres skipped: ${err.message}`);
} finally {
  await pg.dropSchema().catch(() => undefined);
  await pg.close();
}
