/**
 * An agent's `holding` list says what it held when it was welcomed; a lease
 * the coordinator sends in between is not in it and must not be taken back
 * as stale. (An inference request leased in that moment was lost, and the
 * agent's result refused with IM_LEASE_LOST.)
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import WebSocket from 'ws';
import { PROTOCOL_VERSION, generateNodeKey, signMessage, signResults } from '@idlemesh/protocol';
import type { Capabilities, ServerMessage } from '@idlemesh/protocol';
import { b64, example, fromB64, startCoordinatorProc, tempDir } from './helpers.js';
import type { CoordinatorProc } from './helpers.js';

const CAPS: Capabilities = {
  runtimes: ['wasm'], cores: 1, memoryMb: 256, arch: 'x64', os: 'linux', gpus: [], maxTasks: 1, benchmark: { fuelPerSec: 1 }, agentVersion: 'holding-test',
};

describe('leases sent before the agent says what it holds', () => {
  const dir = tempDir('holding');
  let coord: CoordinatorProc;
  before(async () => {
    coord = await startCoordinatorProc({ dataDir: `${dir.path}/coord` });
  });
  after(async () => {
    await coord.stop();
    dir.remove();
  });

  it('keeps a lease granted between the welcome and the holding list, and takes its result', async () => {
    const key = await generateNodeKey();
    const ws = new WebSocket(`${coord.url.replace(/^http/, 'ws')}/v1/agent`);
    const inbox: ServerMessage[] = [];
    ws.on('message', (d) => inbox.push(JSON.parse(d.toString()) as ServerMessage));
    await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject); });
    const next = async <T extends ServerMessage['type']>(type: T): Promise<Extract<ServerMessage, { type: T }>> => {
      for (const start = Date.now(); Date.now() - start < 10_000; await new Promise((r) => setTimeout(r, 10))) {
        const i = inbox.findIndex((m) => m.type === type);
        if (i >= 0) return inbox.splice(i, 1)[0] as Extract<ServerMessage, { type: T }>;
      }
      throw new Error(`no ${type}: ${JSON.stringify(inbox)}`);
    };
    const hello = await next('hello');
    ws.send(JSON.stringify(await signMessage(key, 'auth', { v: PROTOCOL_VERSION, challenge: hello.challenge, capabilities: CAPS }, Date.now())));
    await next('welcome');
    // The agent grants a slot; a job comes in and is leased before the agent's holding list arrives.
    ws.send(JSON.stringify({ type: 'credit', n: 1 }));
    const mod = await coord.client.uploadModule(example('noop/noop.wasm'));
    const job = await coord.client.submitJob({ module: mod.hash, inputs: [b64('ping')] });
    const lease = await next('lease');
    const t = lease.tasks[0]!;
    ws.send(JSON.stringify({ type: 'holding', tasks: [] }));
    const input = fromB64(t.input);
    const results = await signResults(key, [{
      taskId: t.taskId, attempt: t.attempt, ok: true, output: b64('ping'), fuel: 10, startedAt: Date.now(), endedAt: Date.now(),
      inputHash: createHash('sha256').update(input).digest('hex'), runtime: 'wasm', runtimeVersion: 'holding-test',
    }], Date.now());
    ws.send(JSON.stringify(results));
    const ack = await next('ack');
    assert.equal(ack.results[0]?.status, 'accepted', JSON.stringify(ack));
    const done = await coord.client.getJob(job.id);
    assert.equal(done.counts.succeeded, 1);
    ws.close();
  });
});
