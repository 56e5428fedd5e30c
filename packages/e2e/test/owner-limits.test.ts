/**
 * Owner limits: an agent told to run only on mains power or only at night
 * pauses (takes no lease, hands back what it holds) and resumes when the
 * condition returns. Clock and power supply are injected; the coordinator is
 * a real process.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { resolveAgentOptions, startAgent } from '@idlemesh/agent';
import type { Agent } from '@idlemesh/agent';
import { b64, example, startCoordinatorProc, tempDir, waitUntil, sleep } from './helpers.js';
import type { CoordinatorProc } from './helpers.js';

function localTime(hour: number): number {
  const d = new Date();
  d.setHours(hour, 30, 0, 0);
  return d.getTime();
}

describe('owner limits', () => {
  const dir = tempDir('limits');
  let coord: CoordinatorProc;
  before(async () => {
    coord = await startCoordinatorProc({ dataDir: `${dir.path}/coord`, args: ['--heartbeat-ms', '300'] });
  });
  after(async () => {
    await coord.stop();
    dir.remove();
  });

  async function nodeState(id: string): Promise<string | undefined> {
    return (await coord.client.nodes()).find((n) => n.id === id)?.state;
  }

  it('--only-when-charging: pauses on battery, hands back its leases, resumes on mains', async () => {
    let charging = false;
    const agent: Agent = await startAgent({
      ...resolveAgentOptions({ coordinator: coord.url, dataDir: `${dir.path}/a1`, maxTasks: 1, onlyWhenCharging: true, logLevel: 'warn' }, { env: {} }),
      power: { charging: async () => charging },
    });
    const events: string[] = [];
    agent.on((e) => events.push(e.type));
    try {
      await waitUntil(async () => (await nodeState(agent.nodeId)) === 'paused', 15_000);
      const noop = await coord.client.uploadModule(example('noop/noop.wasm'));
      const job = await coord.client.submitJob({ module: noop.hash, inputs: Array.from({ length: 20 }, (_, i) => b64(`t${i}`)) });
      await sleep(1500);
      let j = await coord.client.getJob(job.id);
      assert.equal(j.counts.leased + j.counts.succeeded, 0, 'a paused agent takes no lease');

      charging = true;
      j = await coord.client.waitForJob(job.id);
      assert.equal(j.counts.succeeded, 20);
      assert.ok(events.includes('resumed'), `events: ${events.join(',')}`);

      // Busy with a long job, then unplugged: everything it holds goes back.
      const nbody = await coord.client.uploadModule(example('nbody/nbody.wasm'));
      const long = await coord.client.submitJob({ module: nbody.hash, inputs: Array.from({ length: 400 }, () => b64('30000')) });
      await waitUntil(async () => (await coord.client.getJob(long.id)).counts.succeeded >= 5);
      charging = false;
      await waitUntil(async () => (await nodeState(agent.nodeId)) === 'paused', 10_000);
      await waitUntil(async () => (await coord.client.getJob(long.id)).counts.leased === 0, 10_000);
      const held = await coord.client.getJob(long.id);
      assert.ok(held.counts.queued > 0, 'handed-back tasks are queued again');
      await sleep(800);
      assert.equal((await coord.client.getJob(long.id)).counts.succeeded, held.counts.succeeded, 'no progress while paused');
      assert.ok(events.includes('paused'));

      charging = true;
      const done = await coord.client.waitForJob(long.id);
      assert.equal(done.counts.succeeded, 400);
      assert.equal(done.counts.failed, 0, 'a hand-back is not a failure');
    } finally {
      await agent.stop({ drain: false });
    }
  });

  it('--hours 22-07: works only inside the window of local time', async () => {
    let now = localTime(12);
    const agent = await startAgent({
      ...resolveAgentOptions({ coordinator: coord.url, dataDir: `${dir.path}/a2`, maxTasks: 1, hours: '22-07', logLevel: 'warn' }, { env: {} }),
      clock: { now: () => now },
    });
    try {
      await waitUntil(async () => (await nodeState(agent.nodeId)) === 'paused', 15_000);
      const noop = await coord.client.uploadModule(example('noop/noop.wasm'));
      const job = await coord.client.submitJob({ module: noop.hash, inputs: [b64('night work')] });
      await sleep(1200);
      assert.equal((await coord.client.getJob(job.id)).counts.succeeded, 0, 'nothing runs at noon');
      now = localTime(23);
      const done = await coord.client.waitForJob(job.id);
      assert.equal(done.counts.succeeded, 1);
      assert.equal(await nodeState(agent.nodeId), 'online');
    } finally {
      await agent.stop({ drain: false });
    }
  });
});
