/**
 * Hostile input at every boundary gets a clear error with a stable code, and
 * the coordinator and agent keep serving.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import WebSocket from 'ws';
import { PROTOCOL_VERSION, generateNodeKey, signMessage, signResults } from '@idlemesh/protocol';
import type { Capabilities, NodeKeyPair, ServerMessage } from '@idlemesh/protocol';
import { b64, example, fromB64, startAgentProc, startCoordinatorProc, tempDir, waitForNodes } from './helpers.js';
import type { CoordinatorProc, Proc } from './helpers.js';

async function wat(text: string): Promise<Uint8Array> {
  const wabt = await (await import('wabt')).default();
  const m = wabt.parseWat('t.wat', text, {});
  return new Uint8Array(m.toBinary({}).buffer);
}

const ABI = `(import "idlemesh" "input_len" (func $len (result i32)))`;

async function post(url: string, body: string | Uint8Array, type = 'application/json'): Promise<{ status: number; code: string }> {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': type }, body });
  const json = (await res.json()) as { error?: { code: string } };
  return { status: res.status, code: json.error?.code ?? '' };
}

const CAPS: Capabilities = {
  runtimes: ['wasm'], cores: 1, memoryMb: 256, arch: 'x64', os: 'linux', gpus: [], maxTasks: 1,
  benchmark: { fuelPerSec: 1 }, agentVersion: 'hostile-test',
};

/** A raw WebSocket speaking the agent protocol, to send what a real agent never would. */
class RawAgent {
  readonly messages: ServerMessage[] = [];
  closed = false;
  constructor(readonly ws: WebSocket) {
    ws.on('message', (d) => this.messages.push(JSON.parse(d.toString()) as ServerMessage));
    ws.on('close', () => { this.closed = true; });
  }
  async next<T extends ServerMessage['type']>(type: T, timeoutMs = 5000): Promise<Extract<ServerMessage, { type: T }>> {
    const start = Date.now();
    for (;;) {
      const i = this.messages.findIndex((m) => m.type === type);
      if (i >= 0) return this.messages.splice(i, 1)[0] as Extract<ServerMessage, { type: T }>;
      if (Date.now() - start > timeoutMs) throw new Error(`no ${type} message; got ${JSON.stringify(this.messages)}`);
      await new Promise((r) => setTimeout(r, 10));
    }
  }
  send(msg: unknown): void {
    this.ws.send(typeof msg === 'string' ? msg : JSON.stringify(msg));
  }
  close(): void {
    this.ws.close();
  }
}

async function connectAndHello(url: string): Promise<{ agent: RawAgent; challenge: string }> {
  const ws = new WebSocket(`${url.replace(/^http/, 'ws')}/v1/agent`);
  const agent = new RawAgent(ws);
  await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject); });
  const hello = await agent.next('hello');
  return { agent, challenge: hello.challenge };
}

describe('hostile input', () => {
  const dir = tempDir('hostile');
  let coord: CoordinatorProc;
  let agent: Proc;
  let key: NodeKeyPair;

  before(async () => {
    const config = `${dir.path}/coordinator.json`;
    writeFileSync(config, JSON.stringify({ bodyLimitBytes: 200_000 }));
    coord = await startCoordinatorProc({ dataDir: `${dir.path}/coord`, args: ['--config', config] });
    agent = startAgentProc({ coordinator: coord.url, dataDir: `${dir.path}/agent`, maxTasks: 2 });
    await waitForNodes(coord.client, 1);
    key = await generateNodeKey();
  });
  after(async () => {
    await agent.stop();
    await coord.stop();
    dir.remove();
  });

  it('refuses invalid wasm and banned imports at upload', async () => {
    assert.deepEqual(await post(`${coord.url}/v1/modules`, new Uint8Array([0, 97, 115, 109, 9, 9, 9, 9]), 'application/wasm'), { status: 400, code: 'IM_WASM_INVALID' });
    assert.deepEqual(await post(`${coord.url}/v1/modules`, new Uint8Array([1, 2, 3]), 'application/wasm'), { status: 400, code: 'IM_WASM_INVALID' });
    const banned = await wat(`(module (import "env" "exec" (func)) (func (export "run") (result i32) (i32.const 0)))`);
    assert.deepEqual(await post(`${coord.url}/v1/modules`, banned, 'application/wasm'), { status: 400, code: 'IM_WASM_BANNED_IMPORT' });
    const wasiFs = await wat(`(module (import "wasi_snapshot_preview1" "path_open" (func (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32))) (memory (export "memory") 1) (func (export "_start")))`);
    assert.deepEqual(await post(`${coord.url}/v1/modules`, wasiFs, 'application/wasm'), { status: 400, code: 'IM_WASM_BANNED_IMPORT' });
  });

  it('fails runaway tasks with clear codes while the agent keeps serving', async () => {
    const loop = await coord.client.uploadModule(await wat(`(module ${ABI} (memory (export "memory") 1) (func (export "run") (result i32) (loop $l (br $l)) (i32.const 0)))`));
    const startLoop = await coord.client.uploadModule(await wat(`(module (memory (export "memory") 1) (func $s (loop $l (br $l))) (start $s) (func (export "run") (result i32) (i32.const 0)))`));
    const bomb = await coord.client.uploadModule(await wat(`(module (memory (export "memory") 1)
      (func (export "run") (result i32)
        (loop $l (br_if $l (i32.ne (memory.grow (i32.const 16)) (i32.const -1))))
        unreachable))`));
    const trap = await coord.client.uploadModule(await wat(`(module (memory (export "memory") 1) (func (export "run") (result i32) (i32.div_u (i32.const 1) (i32.const 0))))`));
    const cases: Array<[string, string, number]> = [[loop.hash, 'IM_FUEL_EXHAUSTED', 64], [startLoop.hash, 'IM_FUEL_EXHAUSTED', 64], [bomb.hash, 'IM_MEMORY_EXCEEDED|IM_TRAP', 16], [trap.hash, 'IM_TRAP', 64]];
    for (const [hash, code, memoryMb] of cases) {
      const job = await coord.client.submitJob({ module: hash, inputs: [b64('x')], limits: { fuel: 50_000_000, memoryMb }, maxAttempts: 1 });
      const done = await coord.client.waitForJob(job.id);
      assert.equal(done.counts.failed, 1);
      const [r] = (await coord.client.results(job.id)).results;
      assert.ok(code.split('|').includes(r?.error?.code ?? ''), `${code}: ${JSON.stringify(r)}`);
      if (code === 'IM_FUEL_EXHAUSTED') assert.equal(r?.fuel, 50_000_000, 'an exhausted task used exactly its fuel limit');
    }
    // A module that asks more memory than the job allows is refused at submit.
    const big = await coord.client.uploadModule(await wat(`(module (memory (export "memory") 2048) (func (export "run") (result i32) (i32.const 0)))`));
    await assert.rejects(coord.client.submitJob({ module: big.hash, inputs: [b64('x')], limits: { memoryMb: 64 } }), (e: unknown) => (e as { code?: string }).code === 'IM_WASM_MEMORY_LIMIT');

    const sha = await coord.client.uploadModule(example('sha256/sha256.wasm'));
    const ok = await coord.client.submitJob({ module: sha.hash, inputs: [b64('still alive')] });
    await coord.client.waitForJob(ok.id);
    const [r] = (await coord.client.results(ok.id)).results;
    assert.equal(fromB64(r?.output), createHash('sha256').update('still alive').digest('hex'));
    assert.ok(agent.running, 'the agent process is still up');
  });

  it('answers bad HTTP bodies with stable codes', async () => {
    const sha = await coord.client.uploadModule(example('sha256/sha256.wasm'));
    const jobs = `${coord.url}/v1/jobs`;
    assert.deepEqual(await post(jobs, JSON.stringify({ module: sha.hash, inputs: [b64('x'.repeat(300_000))] })), { status: 413, code: 'IM_BODY_TOO_LARGE' });
    assert.deepEqual(await post(jobs, JSON.stringify({ module: sha.hash, inputs: [b64('x')], surprise: 1 })), { status: 400, code: 'IM_UNKNOWN_FIELD' });
    assert.deepEqual(await post(jobs, JSON.stringify({ module: sha.hash, inputs: [b64('x')], limits: { fuel: -5 } })), { status: 400, code: 'IM_VALIDATION' });
    assert.deepEqual(await post(jobs, '{"module": '), { status: 400, code: 'IM_BAD_REQUEST' });
    assert.deepEqual(await post(jobs, JSON.stringify({ module: 'f'.repeat(64), inputs: [b64('x')] })), { status: 404, code: 'IM_MODULE_NOT_FOUND' });
    assert.deepEqual(await post(`${coord.url}/v1/nope`, '{}'), { status: 404, code: 'IM_ROUTE_NOT_FOUND' });
    const missing = await fetch(`${coord.url}/v1/jobs/job_doesnotexist000000000000`);
    assert.equal(missing.status, 404);
    assert.equal(((await missing.json()) as { error: { code: string } }).error.code, 'IM_NOT_FOUND');
  });

  it('refuses bad signatures, stale and replayed messages on the agent socket', async () => {
    // Bad signature: a valid-looking auth signed by someone else's key.
    const other = await generateNodeKey();
    let { agent: raw, challenge } = await connectAndHello(coord.url);
    const forged = await signMessage(other, 'auth', { v: PROTOCOL_VERSION, challenge, capabilities: CAPS }, Date.now());
    raw.send({ ...forged, nodeId: key.publicKeyHex });
    assert.equal((await raw.next('error')).error.code, 'IM_BAD_SIGNATURE');
    await waitClosed(raw);

    // Stale timestamp.
    ({ agent: raw, challenge } = await connectAndHello(coord.url));
    raw.send(await signMessage(key, 'auth', { v: PROTOCOL_VERSION, challenge, capabilities: CAPS }, Date.now() - 3_600_000));
    assert.equal((await raw.next('error')).error.code, 'IM_STALE_TIMESTAMP');
    await waitClosed(raw);

    // A good auth, then the same message replayed on a new connection.
    ({ agent: raw, challenge } = await connectAndHello(coord.url));
    const auth = await signMessage(key, 'auth', { v: PROTOCOL_VERSION, challenge, capabilities: CAPS }, Date.now());
    raw.send(auth);
    await raw.next('welcome');
    const { agent: replay } = await connectAndHello(coord.url);
    replay.send(auth);
    assert.equal((await replay.next('error')).error.code, 'IM_REPLAYED');
    await waitClosed(replay);

    // Garbage and unknown fields after auth: an error, and the connection stays usable.
    raw.send('not json');
    assert.equal((await raw.next('error')).error.code, 'IM_BAD_REQUEST');
    raw.send({ type: 'heartbeat', state: 'active', running: 0, extra: true });
    assert.equal((await raw.next('error')).error.code, 'IM_UNKNOWN_FIELD');

    // A signed results batch replayed on the same connection.
    const outcome = {
      taskId: 'job_000000000000000000000/0', attempt: 1, ok: true, output: '', fuel: 1, startedAt: 1, endedAt: 2,
      inputHash: '0'.repeat(64), runtime: 'wasm', runtimeVersion: 'test',
    };
    const results = await signResults(key, [outcome], Date.now());
    // Results changed after signing: the signed head is not their receipt tree.
    const tampered = await signResults(key, [outcome], Date.now());
    raw.send({ ...tampered, results: [{ ...outcome, fuel: 1_000_000 }] });
    const refused = await raw.next('error');
    assert.equal(refused.error.code, 'IM_RECEIPT_MISMATCH');
    assert.equal(refused.ref, tampered.nonce, 'the refusal names the batch');
    raw.send(results);
    const ack = await raw.next('ack');
    assert.equal(ack.results[0]?.status, 'rejected', 'a result for a task never leased is rejected');
    raw.send(results);
    assert.equal((await raw.next('error')).error.code, 'IM_REPLAYED');
    assert.equal(raw.closed, false);
    raw.close();

    const health = await fetch(`${coord.url}/healthz`);
    assert.equal(health.status, 200);
    assert.ok(agent.running);
  });
});

async function waitClosed(a: RawAgent): Promise<void> {
  const start = Date.now();
  while (!a.closed) {
    if (Date.now() - start > 5000) throw new Error('the coordinator did not close the unauthenticated socket');
    await new Promise((r) => setTimeout(r, 10));
  }
}
