/**
 * An agent's `holding` list says what it held when it was welcomed; a lease
 * the coordinator sends in between is not in it and must not be taken back
 * as stale. (An inference request leased in that moment was lost, and the
 * agent's result refused with IM_LEASE_LOST.)
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { generateNodeKey, signResults } from '@idlemesh/protocol';
import type { Capabilities } from '@idlemesh/protocol';
import { b64, example, fromB64, startCoordinatorProc, tempDir } from './helpers.js';
import type { CoordinatorProc } from './helpers.js';
import { connectRawAgent } from './raw-agent.js';

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
    const { ws, take: next } = await connectRawAgent(coord.url, key, CAPS);
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
