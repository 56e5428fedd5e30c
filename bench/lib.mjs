// Shared by the benches: real coordinator and agent processes on loopback.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createServer } from 'node:net';
import { IdlemeshClient } from '../packages/sdk/dist/src/index.js';

export const ROOT = fileURLToPath(new URL('..', import.meta.url));
const CLI = join(ROOT, 'packages/cli/bin/idlemesh.js');

// `--help` on every bench: the script's own header comment says what it measures and which flags it takes.
if (process.argv.includes('--help') || process.argv.includes('-h')) {
  const header = readFileSync(process.argv[1], 'utf8').split('\n');
  const start = header[0]?.startsWith('#!') ? 1 : 0;
  const lines = [];
  for (const line of header.slice(start)) {
    if (!line.startsWith('//')) break;
    lines.push(line.replace(/^\/\/ ?/, ''));
  }
  console.log(lines.join('\n') || 'no help for this bench');
  process.exit(0);
}

export function machine() {
  return { cpus: cpus().length, model: cpus()[0]?.model ?? 'unknown', memGiB: Math.round(totalmem() / 2 ** 30), node: process.version, platform: process.platform };
}

export function arg(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
}

export function percentile(sorted, p) {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

export async function freePort() {
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => resolve(port)); });
  });
}

function run(args) {
  // BENCH_NODE_ARGS="--cpu-prof --cpu-prof-dir=/tmp/prof" profiles every process;
  // BENCH_STDOUT=1 keeps their stdout (for --trace-* flags), BENCH_VERBOSE=1 their stderr.
  const nodeArgs = (process.env.BENCH_NODE_ARGS ?? '').split(' ').filter(Boolean);
  const child = spawn(process.execPath, [...nodeArgs, CLI, ...args], { stdio: ['ignore', process.env.BENCH_STDOUT ? 'inherit' : 'ignore', process.env.BENCH_VERBOSE ? 'inherit' : 'ignore'], env: { ...process.env, IDLEMESH_LOG_LEVEL: 'warn', IDLEMESH_EXIT_WITH_PARENT: '1' } });
  return child;
}

/** Starts a coordinator and N agents; returns a client and a stop function. */
export async function mesh({ agents = 2, maxTasks = 1, coordinatorArgs = [], agentArgs = [] } = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'idlemesh-bench-'));
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const procs = [run(['coordinator', '--port', String(port), '--data-dir', join(dir, 'coord'), ...coordinatorArgs])];
  const client = new IdlemeshClient({ url });
  for (let i = 0; i < 200; i++) {
    if (await client.health().then(() => true, () => false)) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  for (let i = 0; i < agents; i++) procs.push(run(['agent', '--coordinator', url, '--data-dir', join(dir, `agent${i}`), '--max-tasks', String(maxTasks), ...agentArgs]));
  for (let i = 0; i < 400; i++) {
    const nodes = await client.nodes();
    if (nodes.filter((n) => n.state === 'online').length >= agents) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  const info = await client.info();
  return {
    client,
    url,
    info,
    pids: { coordinator: procs[0].pid, agents: procs.slice(1).map((p) => p.pid) },
    async stop() {
      for (const p of procs.slice(1)) p.kill('SIGTERM');
      await Promise.all(procs.slice(1).map((p) => new Promise((r) => (p.exitCode !== null ? r() : p.on('exit', r)))));
      procs[0].kill('SIGTERM');
      await new Promise((r) => (procs[0].exitCode !== null ? r() : procs[0].on('exit', r)));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export function example(path) {
  return new Uint8Array(readFileSync(join(ROOT, 'examples', path)));
}
