/**
 * Real processes on loopback: a coordinator and agents started through the
 * CLI exactly as a user would, each with its own data directory.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, test } from 'node:test';
import pg from 'pg';
import { IdlemeshClient } from '@idlemesh/sdk';

export const ROOT = fileURLToPath(new URL('../../../../', import.meta.url));
export const CLI = join(ROOT, 'packages/cli/bin/idlemesh.js');

export function example(path: string): Uint8Array {
  const p = join(ROOT, 'examples', path);
  if (!existsSync(p)) throw new Error(`${p} is missing: run npm run build`);
  return new Uint8Array(readFileSync(p));
}

export function tempDir(prefix: string): { path: string; remove(): void } {
  const path = mkdtempSync(join(tmpdir(), `idlemesh-${prefix}-`));
  return { path, remove: () => rmSync(path, { recursive: true, force: true }) };
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

export class Proc {
  readonly output: string[] = [];
  private exited: Promise<number | null>;
  constructor(readonly name: string, readonly child: ChildProcess) {
    const collect = (d: Buffer): void => {
      this.output.push(d.toString());
      if (process.env.IDLEMESH_TEST_VERBOSE) process.stderr.write(`[${name}] ${d.toString()}`);
    };
    child.stdout?.on('data', collect);
    child.stderr?.on('data', collect);
    this.exited = new Promise((resolve) => child.on('exit', (code) => resolve(code)));
  }
  get text(): string {
    return this.output.join('');
  }
  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }
  async waitFor(re: RegExp, timeoutMs = 20_000): Promise<RegExpMatchArray> {
    const start = Date.now();
    for (;;) {
      const m = re.exec(this.text);
      if (m) return m;
      if (!this.running) throw new Error(`${this.name} exited before printing ${re}:\n${this.text}`);
      if (Date.now() - start > timeoutMs) throw new Error(`${this.name} did not print ${re} within ${timeoutMs} ms:\n${this.text}`);
      await sleep(25);
    }
  }
  kill9(): Promise<number | null> {
    this.child.kill('SIGKILL');
    return this.exited;
  }
  async stop(signal: NodeJS.Signals = 'SIGTERM', timeoutMs = 10_000): Promise<number | null> {
    if (!this.running) return this.child.exitCode;
    this.child.kill(signal);
    const t = setTimeout(() => this.child.kill('SIGKILL'), timeoutMs);
    const code = await this.exited;
    clearTimeout(t);
    return code;
  }
  wait(): Promise<number | null> {
    return this.exited;
  }
}

export function runCli(name: string, args: string[], env: NodeJS.ProcessEnv = {}): Proc {
  const child = spawn(process.execPath, [CLI, ...args], {
    cwd: ROOT,
    env: { ...process.env, IDLEMESH_LOG_LEVEL: process.env.IDLEMESH_TEST_VERBOSE ? 'debug' : 'info', IDLEMESH_EXIT_WITH_PARENT: '1', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  return new Proc(name, child);
}

export interface CoordinatorProc extends Proc {
  url: string;
  client: IdlemeshClient;
}

/** PostgreSQL for tests: IDLEMESH_TEST_PG, or the local server CI starts. */
export const TEST_PG = process.env.IDLEMESH_TEST_PG ?? 'postgres://postgres@127.0.0.1:5432/test';

export async function pgReachable(): Promise<boolean> {
  const c = new pg.Client({ connectionString: TEST_PG, connectionTimeoutMillis: 2000 });
  try {
    await c.connect();
    return true;
  } catch {
    return false;
  } finally {
    await c.end().catch(() => undefined);
  }
}

/** Runs an end-to-end test file again with every coordinator on PostgreSQL (skipped, saying so, when there is none). */
export async function onPostgres(file: string): Promise<void> {
  if (!(await pgReachable())) {
    test(`${file} on PostgreSQL`, (t) => {
      if (process.env.IDLEMESH_REQUIRE_PG) throw new Error(`PostgreSQL not reachable at ${TEST_PG}`);
      t.skip(`PostgreSQL not reachable at ${TEST_PG}`);
    });
    return;
  }
  process.env.IDLEMESH_TEST_STORE = 'postgres';
  after(dropSchemas);
  await import(`./${file}`);
}

/**
 * The store end-to-end tests run on: SQLite by default; with
 * IDLEMESH_TEST_STORE=postgres, a PostgreSQL schema named after the data
 * directory, so a restarted coordinator finds its data again.
 */
export function storeArgs(dataDir: string, schema?: string): string[] {
  if (schema === undefined && process.env.IDLEMESH_TEST_STORE !== 'postgres') return [];
  const name = schema ?? `e2e_${createHash('sha256').update(dataDir).digest('hex').slice(0, 16)}`;
  schemas.add(name);
  return ['--store', `${TEST_PG}?schema=${name}`];
}

const schemas = new Set<string>();

async function dropSchemas(): Promise<void> {
  const c = new pg.Client({ connectionString: TEST_PG });
  try {
    await c.connect();
    for (const s of schemas) await c.query(`DROP SCHEMA IF EXISTS "${s}" CASCADE`);
  } finally {
    schemas.clear();
    await c.end().catch(() => undefined);
  }
}

export async function startCoordinatorProc(opts: { dataDir: string; port?: number; args?: string[]; schema?: string; env?: NodeJS.ProcessEnv }): Promise<CoordinatorProc> {
  const port = opts.port ?? (await freePort());
  const p = runCli('coordinator', ['coordinator', '--port', String(port), '--data-dir', opts.dataDir, ...storeArgs(opts.dataDir, opts.schema), ...(opts.args ?? [])], opts.env);
  const url = `http://127.0.0.1:${port}`;
  const client = new IdlemeshClient({ url });
  await waitUntil(async () => (await client.health().catch(() => undefined)) !== undefined, 20_000, () => p.text);
  return Object.assign(p, { url, client });
}

export function startAgentProc(opts: { coordinator: string; dataDir: string; maxTasks?: number; args?: string[]; name?: string; env?: NodeJS.ProcessEnv }): Proc {
  return runCli(opts.name ?? 'agent', [
    'agent', '--coordinator', opts.coordinator, '--data-dir', opts.dataDir,
    '--max-tasks', String(opts.maxTasks ?? 2), ...(opts.args ?? []),
  ], opts.env);
}

export async function waitUntil(cond: () => Promise<boolean> | boolean, timeoutMs = 20_000, context?: () => string): Promise<void> {
  const start = Date.now();
  for (;;) {
    if (await cond()) return;
    if (Date.now() - start > timeoutMs) throw new Error(`condition not met within ${timeoutMs} ms${context ? `\n${context()}` : ''}`);
    await sleep(50);
  }
}

export async function waitForNodes(client: IdlemeshClient, n: number, timeoutMs = 30_000): Promise<void> {
  await waitUntil(async () => (await client.nodes()).filter((x) => x.state === 'online').length >= n, timeoutMs);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

export function b64(text: string | Uint8Array): string {
  return Buffer.from(typeof text === 'string' ? Buffer.from(text) : text).toString('base64');
}

export function fromB64(text: string | undefined): string {
  return Buffer.from(text ?? '', 'base64').toString('utf8');
}

/** Reads one counter from Prometheus text, summing over label sets that match. */
export function metric(text: string, name: string, labels: Record<string, string> = {}): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const m = /^([a-z_]+)(\{[^}]*\})?\s+([0-9.e+-]+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const ls = m[2] ?? '';
    if (Object.entries(labels).every(([k, v]) => ls.includes(`${k}="${v}"`))) sum += Number(m[3]);
  }
  return sum;
}

/** Runs an (uninstrumented) idlemesh/1 module directly: an independent reference for outputs. */
export async function runLocal(bytes: Uint8Array, input: Uint8Array): Promise<Uint8Array> {
  const WA = (globalThis as unknown as { WebAssembly: { instantiate(b: Uint8Array, i: object): Promise<{ instance: { exports: Record<string, unknown> } }> } }).WebAssembly;
  let mem: { buffer: ArrayBuffer } | undefined;
  const out: number[] = [];
  const { instance } = await WA.instantiate(bytes, {
    idlemesh: {
      input_len: () => input.length,
      input_read: (dst: number) => new Uint8Array(mem?.buffer ?? new ArrayBuffer(0)).set(input, dst),
      output_write: (src: number, len: number) => out.push(...new Uint8Array(mem?.buffer ?? new ArrayBuffer(0), src, len)),
    },
  });
  mem = instance.exports.memory as { buffer: ArrayBuffer };
  const rc = (instance.exports.run as () => number)();
  if (rc !== 0) throw new Error(`run returned ${rc}`);
  return new Uint8Array(out);
}
