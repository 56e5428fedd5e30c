// Where the slow jobs of a warm mesh come from: one-at-a-time single-task jobs
// (submit?wait=, as compare's latency), every process (client, coordinator,
// agents) timing its own GC pauses and event-loop stalls on the wall clock
// (bench/tail/observe.mjs); each job over --slow-ms is matched with what
// overlapped it. Prints one JSON line.
//
//   --warm N      jobs first, not counted (default 6000: the JIT settles)
//   --jobs N      jobs measured (default 8000)
//   --slow-ms N   what counts as slow (default 3)
// BENCH_COORDINATOR_ARGS="--sweep-ms 60000" passes flags to the coordinator.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { arg, example, machine, mesh, percentile } from './lib.mjs';

const OBSERVE = fileURLToPath(new URL('./tail/observe.mjs', import.meta.url));

if (!process.env.BENCH_TAIL_DIR) {
  // Re-run this script with the observer loaded here and in every child.
  const dir = mkdtempSync(join(tmpdir(), 'idlemesh-tail-'));
  const env = { ...process.env, BENCH_TAIL_DIR: dir, BENCH_NODE_ARGS: `${process.env.BENCH_NODE_ARGS ?? ''} --import ${OBSERVE}`.trim() };
  const r = spawnSync(process.execPath, ['--import', OBSERVE, fileURLToPath(import.meta.url), ...process.argv.slice(2)], { stdio: 'inherit', env });
  rmSync(dir, { recursive: true, force: true });
  process.exit(r.status ?? 1);
}

const WARM = arg('warm', 6000);
const JOBS = arg('jobs', 8000);
const SLOW = arg('slow-ms', 3);
const dir = process.env.BENCH_TAIL_DIR;

const m = await mesh({ agents: 2, maxTasks: 1, coordinatorArgs: (process.env.BENCH_COORDINATOR_ARGS ?? '').split(' ').filter(Boolean) });
const samples = [];
const slow = []; // [start (wall ms), duration, coordinator's job commit → result commit]
let from = 0;
try {
  const mod = await m.client.uploadModule(example('noop/noop.wasm'));
  const input = Buffer.from(JSON.stringify({ task: 'noop', payload: '0123456789'.repeat(7) })).toString('base64');
  for (let i = 0; i < WARM + JOBS; i++) {
    if (i === WARM) from = performance.timeOrigin + performance.now();
    const t0 = performance.now();
    const job = await m.client.submitJob({ module: mod.hash, inputs: [input] }, { wait: 10_000 });
    const ms = performance.now() - t0;
    if (job.results?.[0]?.state !== 'succeeded') throw new Error(`task failed: ${JSON.stringify(job.results?.[0] ?? job)}`);
    if (i < WARM) continue;
    samples.push(ms);
    if (ms > SLOW) slow.push([performance.timeOrigin + t0, ms, (job.finishedAt ?? NaN) - job.createdAt]);
  }
} finally {
  await m.stop();
}
const to = performance.timeOrigin + performance.now();
process.emit('exit'); // this process's own record, before reading them all
const procs = readdirSync(dir).map((f) => JSON.parse(readFileSync(join(dir, f), 'utf8')));
const name = (p) => (p.role === 'agent' ? `agent${p.pid}` : p.role);
const inWindow = (t) => t >= from && t <= to;
const perProcess = Object.fromEntries(procs.map((p) => {
  const gc = p.gc.filter((g) => inWindow(g[0]));
  const stalls = p.stalls.filter((s) => inWindow(s[0]));
  return [name(p), {
    gcPauses: gc.length, gcMs: +gc.reduce((a, g) => a + g[1], 0).toFixed(1), gcMaxMs: +Math.max(0, ...gc.map((g) => g[1])).toFixed(2),
    stalls: stalls.length, stallMaxMs: +Math.max(0, ...stalls.map((s) => s[1])).toFixed(2),
  }];
}));
// What each slow job overlapped: a GC pause over 0.3 ms, or a stall, in which process.
const overlaps = {};
for (const [t0, ms] of slow) {
  const hits = new Set();
  for (const p of procs) {
    for (const [s, d] of p.gc) if (d > 0.3 && s < t0 + ms && t0 < s + d) hits.add(`${p.role}:gc`);
    for (const [s, d] of p.stalls) if (s < t0 + ms && t0 < s + d) hits.add(`${p.role}:stall`);
  }
  for (const h of hits.size ? hits : ['nothing seen']) overlaps[h] = (overlaps[h] ?? 0) + 1;
}
samples.sort((a, b) => a - b);
const r2 = (x) => +x.toFixed(2);
console.log(JSON.stringify({
  bench: 'tail',
  warm: WARM,
  jobs: JOBS,
  ms: { p50: r2(percentile(samples, 50)), p90: r2(percentile(samples, 90)), p99: r2(percentile(samples, 99)), p999: r2(percentile(samples, 99.9)) },
  slowMs: SLOW,
  slow: slow.length,
  // Of the slow jobs, how many spent at most 1 ms between the job's commit and its result's commit (coordinator clock):
  // their time went to HTTP and the client rather than to the coordinator and the agent.
  slowOutsideServer: slow.filter((s) => s[2] <= 1).length,
  overlaps,
  perProcess,
  machine: machine(),
}));
