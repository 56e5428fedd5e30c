// `npm run bench -- agents`: one coordinator holding many simulated agents.
// Light WebSocket clients in ~10 child processes speak the real protocol
// (hello → signed auth → welcome → a heartbeat every heartbeatMs); they connect
// in waves. Measures the coordinator's RSS and CPU with all of them connected
// and heart-beating, and checks /v1/nodes.
//
//   --agents N (default 10000)  --per-child N (default 1000)  --wave N (total in flight, default 200)
//   --heartbeat-ms N (default 5000)  --window-sec N (default 20)
import { fork, spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import { arg, machine, ROOT } from './lib.mjs';
import { IdlemeshClient } from '../packages/sdk/dist/src/index.js';

const here = fileURLToPath(new URL('.', import.meta.url));
const AGENTS = arg('agents', 10_000);
const PER_CHILD = arg('per-child', 1_000);
const WAVE = arg('wave', 200);
const HEARTBEAT_MS = arg('heartbeat-ms', 5_000);
const WINDOW_SEC = arg('window-sec', 20);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const log = (...a) => console.error(`[agents ${new Date().toISOString().slice(11, 19)}]`, ...a);

const port = await new Promise((resolve) => {
  const s = createServer();
  s.listen(0, '127.0.0.1', () => { const { port: p } = s.address(); s.close(() => resolve(p)); });
});
const dir = mkdtempSync(join(tmpdir(), 'idlemesh-agents-'));
const url = `http://127.0.0.1:${port}`;
const coord = spawn(process.execPath, [join(ROOT, 'packages/cli/bin/idlemesh.js'), 'coordinator', '--port', String(port), '--data-dir', join(dir, 'coord'), '--heartbeat-ms', String(HEARTBEAT_MS), '--log-level', 'warn', '--enrol-per-prefix-per-hour', '0'], {
  stdio: ['ignore', 'ignore', process.env.BENCH_VERBOSE ? 'inherit' : 'ignore'],
});
const client = new IdlemeshClient({ url, timeoutMs: 60_000 });
const children = [];
const stats = new Map();

const CLK_TCK = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;
function cpuTicks(pid) {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const rest = f.slice(f.lastIndexOf(')') + 2).split(' ');
  return Number(rest[11]) + Number(rest[12]); // utime + stime (fields 14, 15)
}
function status(pid, field) {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : NaN;
}
const mib = (b) => Math.round(b / 2 ** 20);
const sum = (k) => [...stats.values()].reduce((a, s) => a + (s[k] ?? 0), 0);

try {
  for (let i = 0; i < 200; i++) {
    if (await client.health().then(() => true, () => false)) break;
    await sleep(50);
  }
  const info = await client.info();
  const rssIdle = status(coord.pid, 'VmRSS');
  const nChildren = Math.ceil(AGENTS / PER_CHILD);
  const perWave = Math.max(1, Math.floor(WAVE / nChildren));
  log(`${AGENTS} agents in ${nChildren} processes, ${perWave * nChildren} connecting at a time`);
  const t0 = performance.now();
  const connected = [];
  for (let c = 0; c < nChildren; c++) {
    const count = Math.min(PER_CHILD, AGENTS - c * PER_CHILD);
    const ch = fork(join(here, 'agents-scale-child.mjs'), [`ws://127.0.0.1:${port}/v1/agent`, String(count), String(perWave), `sim${c}`], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
    children.push(ch);
    connected.push(new Promise((resolve, reject) => {
      ch.on('message', (m) => { stats.set(c, m); if (m.type === 'connected') resolve(m); });
      ch.once('exit', (code) => reject(new Error(`child ${c} exited ${code}`)));
    }));
  }
  const progress = setInterval(() => log(`welcomed ${sum('welcomed')}/${AGENTS}, errors ${sum('errors')}, coordinator RSS ${mib(status(coord.pid, 'VmRSS'))} MiB`), 5000);
  await Promise.all(connected);
  clearInterval(progress);
  const connectSec = (performance.now() - t0) / 1000;
  const welcomed = sum('welcomed');
  log(`all connected in ${connectSec.toFixed(1)} s (${welcomed} welcomed); settling ${HEARTBEAT_MS * 2} ms`);
  await sleep(HEARTBEAT_MS * 2);
  const nodesBefore = await client.nodes();
  const hb0 = sum('heartbeats');
  const c0 = cpuTicks(coord.pid);
  const w0 = performance.now();
  await sleep(WINDOW_SEC * 1000);
  const c1 = cpuTicks(coord.pid);
  const w1 = performance.now();
  const hb1 = sum('heartbeats');
  const rss = status(coord.pid, 'VmRSS');
  const hwm = status(coord.pid, 'VmHWM');
  const t2 = performance.now();
  const nodes = await client.nodes();
  const nodesMs = performance.now() - t2;
  const online = nodes.filter((n) => n.state === 'online').length;
  const windowSec = (w1 - w0) / 1000;
  console.log(JSON.stringify({
    bench: 'agents',
    agents: AGENTS,
    processes: nChildren,
    welcomed,
    errors: sum('errors'),
    lastError: [...stats.values()].map((m) => m.lastError).find(Boolean) ?? null,
    closed: sum('closed'),
    connectSec: +connectSec.toFixed(1),
    nodes: { listed: nodes.length, online, onlineBeforeWindow: nodesBefore.filter((n) => n.state === 'online').length, listMs: Math.round(nodesMs) },
    heartbeatMs: info.heartbeatMs,
    heartbeatsPerSec: Math.round((hb1 - hb0) / windowSec),
    coordinator: {
      rssMiB: mib(rss),
      peakRssMiB: mib(hwm),
      idleRssMiB: mib(rssIdle),
      cpuPercent: +((100 * (c1 - c0)) / CLK_TCK / windowSec).toFixed(1),
      windowSec: +windowSec.toFixed(1),
      store: info.store,
    },
    target: { rssMiB: 1536 },
    // Every agent welcomed and online, under the memory target: a run where agents failed to connect measures nothing.
    targetsMet: welcomed === AGENTS && online === AGENTS && mib(hwm) <= 1536,
    machine: { ...machine(), loadavg1: +loadavg()[0].toFixed(2) },
  }));
  if (welcomed !== AGENTS) process.exitCode = 1;
} finally {
  for (const ch of children) if (ch.connected) ch.send('close');
  await Promise.race([Promise.all(children.map((ch) => new Promise((r) => (ch.exitCode !== null ? r() : ch.once('exit', r))))), sleep(5000)]);
  for (const ch of children) if (ch.exitCode === null) ch.kill('SIGKILL');
  coord.kill('SIGTERM');
  await Promise.race([new Promise((r) => (coord.exitCode !== null ? r() : coord.once('exit', r))), sleep(15_000)]);
  if (coord.exitCode === null) coord.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
}
