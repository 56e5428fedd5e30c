/**
 * A job submitted to an idle mesh is leased from the submit itself: its first
 * tasks are leased in the transaction that stores it (core.ts `firstLeases`),
 * and the queue is not read back. What that path cannot
 * lease must stay work the coordinator knows of: the rest of a job larger
 * than the free slots, and a job submitted while no agent has a slot, are
 * leased as soon as slots come.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { generateNodeKey, signResults } from '@idlemesh/protocol';
import type { Capabilities, NodeKeyPair, ServerMessage } from '@idlemesh/protocol';
import { b64, example, fromB64, sleep, startCoordinatorProc, tempDir } from './helpers.js';
import type { CoordinatorProc } from './helpers.js';
import { connectRawAgent } from './raw-agent.js';
import type { RawAgent } from './raw-agent.js';

const CAPS: Capabilities = {
  runtimes: ['wasm'], cores: 1, memoryMb: 256, arch: 'x64', os: 'linux', gpus: [], maxTasks: 2, benchmark: { fuelPerSec: 1 }, agentVersion: 'dispatch-test',
};

type Lease = Extract<ServerMessage, { type: 'lease' }>;

describe('leasing a job from its submit', () => {
  const dir = tempDir('dispatch');
  let coord: CoordinatorProc;
  let key: NodeKeyPair;
  let agent: RawAgent;
  let module: string;

  before(async () => {
    // No sweep within the test: it announces work every round, which would hide work the dispatch forgot.
    coord = await startCoordinatorProc({ dataDir: `${dir.path}/coord`, args: ['--sweep-ms', '60000'] });
    key = await generateNodeKey();
    agent = await connectRawAgent(coord.url, key, CAPS);
    agent.send({ type: 'holding', tasks: [] });
    module = (await coord.client.uploadModule(example('noop/noop.wasm'))).hash;
  });
  after(async () => {
    agent.ws.close();
    await coord.stop();
    dir.remove();
  });

  /** Runs every task of a lease (the no-op echoes its input) and waits for the ack. */
  async function complete(lease: Lease): Promise<void> {
    const results = await signResults(key, lease.tasks.map((t) => ({
      taskId: t.taskId, attempt: t.attempt, ok: true, output: t.input, fuel: 10, startedAt: Date.now(), endedAt: Date.now(),
      inputHash: createHash('sha256').update(fromB64(t.input)).digest('hex'), runtime: 'wasm', runtimeVersion: 'dispatch-test',
    })), Date.now());
    agent.send(results);
    const ack = await agent.take('ack');
    assert.deepEqual(ack.results.map((r) => r.status), lease.tasks.map(() => 'accepted'), JSON.stringify(ack));
  }

  async function submitted(n: number) {
    return coord.client.submitJob({ module, inputs: Array.from({ length: n }, (_, i) => b64(`task ${i}`)) });
  }
  async function submit(n: number): Promise<string> {
    return (await submitted(n)).id;
  }

  async function noLease(ms: number): Promise<void> {
    await sleep(ms);
    assert.deepEqual(agent.inbox.filter((m) => m.type === 'lease'), [], 'no lease expected while the agent has no slot');
  }

  it('leases an idle agent at once, and the rest of a larger job when slots come back', async () => {
    agent.send({ type: 'credit', n: 2 });
    await sleep(100); // the credit is in before the submit: the mesh is idle, with two free slots
    const view = await submitted(3);
    const job = view.id;
    // The submit's own commit took the leases: its answer already counts them.
    assert.deepEqual([view.state, view.counts.queued, view.counts.leased], ['running', 1, 2]);
    const first = await agent.take('lease');
    assert.equal(first.tasks.length, 2, 'as many tasks as free slots');
    assert.ok(first.tasks.every((t) => t.jobId === job));
    await noLease(200);
    await complete(first);
    agent.send({ type: 'credit', n: 2 });
    const rest = await agent.take('lease');
    assert.deepEqual(rest.tasks.map((t) => t.index), [2]);
    await complete(rest);
    const done = await coord.client.waitForJob(job);
    assert.equal(done.counts.succeeded, 3);
  });

  it('keeps a job submitted while no agent has a slot, and leases it when one does', async () => {
    // The agent's last credit (2) bought one task: one slot is still free. Take it with a one-task job first.
    const one = await submit(1);
    const l1 = await agent.take('lease');
    assert.equal(l1.tasks[0]?.jobId, one);
    const job = await submit(2);
    await noLease(300);
    assert.equal((await coord.client.getJob(job)).counts.queued, 2);
    await complete(l1);
    agent.send({ type: 'credit', n: 2 });
    const lease = await agent.take('lease');
    assert.deepEqual(lease.tasks.map((t) => [t.jobId, t.index]), [[job, 0], [job, 1]]);
    await complete(lease);
    assert.equal((await coord.client.waitForJob(job)).counts.succeeded, 2);
  });

  it('leases queued jobs in submission order as slots come', async () => {
    // No slot: two jobs queue. Then one slot: the older job's task goes first.
    const older = await submit(1);
    const newer = await submit(1);
    await noLease(200);
    agent.send({ type: 'credit', n: 1 });
    const a = await agent.take('lease');
    assert.equal(a.tasks[0]?.jobId, older);
    await complete(a);
    agent.send({ type: 'credit', n: 1 });
    const b = await agent.take('lease');
    assert.equal(b.tasks[0]?.jobId, newer);
    await complete(b);
  });
});
