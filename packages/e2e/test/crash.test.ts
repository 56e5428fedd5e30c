/**
 * Crashes: kill -9 an agent, then the coordinator, in the middle of a job.
 * Nothing may be lost and nothing accepted twice.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { b64, example, fromB64, metric, runLocal, startAgentProc, startCoordinatorProc, tempDir, waitForNodes, waitUntil } from './helpers.js';
import type { IdlemeshClient } from '@idlemesh/sdk';
import { loadOrCreateKey } from '@idlemesh/agent';

const NBODY = example('nbody/nbody.wasm');
// Each task runs a few ms: long enough to be caught mid-flight.
const inputs = Array.from({ length: 300 }, (_, i) => String(20_000 + i * 7));

async function checkAllCorrect(client: IdlemeshClient, jobId: string): Promise<void> {
  const done = await client.waitForJob(jobId);
  assert.equal(done.state, 'completed');
  assert.equal(done.counts.succeeded, inputs.length, JSON.stringify(done.counts));
  const reference = new Map<string, string>();
  let fuel = 0;
  let n = 0;
  for await (const r of client.allResults(jobId)) {
    const input = inputs[r.index] ?? '';
    let want = reference.get(input);
    if (want === undefined) reference.set(input, (want = new TextDecoder().decode(await runLocal(NBODY, new TextEncoder().encode(input)))));
    assert.equal(r.state, 'succeeded');
    assert.equal(fromB64(r.output), want, `task ${r.index}`);
    fuel += r.fuel ?? 0;
    n++;
  }
  assert.equal(n, inputs.length, 'no task lost');
  // Fuel is added to the job once per accepted result: a task accepted twice would show here.
  assert.equal(done.fuelUsed, fuel, 'no task accepted twice');
}

describe('crash recovery', () => {
  it('re-leases the tasks of a kill -9ed agent and completes with exactly one accepted result per task', async () => {
    const dir = tempDir('crash-agent');
    const coord = await startCoordinatorProc({ dataDir: `${dir.path}/coord`, args: ['--lease-ms', '3000', '--heartbeat-ms', '500'] });
    const a1 = startAgentProc({ coordinator: coord.url, dataDir: `${dir.path}/a1`, maxTasks: 1, name: 'a1' });
    const a2 = startAgentProc({ coordinator: coord.url, dataDir: `${dir.path}/a2`, maxTasks: 1, name: 'a2' });
    try {
      await waitForNodes(coord.client, 2);
      const mod = await coord.client.uploadModule(NBODY);
      const job = await coord.client.submitJob({ module: mod.hash, inputs: inputs.map((x) => b64(x)), retryBackoffMs: 10, maxAttempts: 5 });
      await waitUntil(async () => {
        const j = await coord.client.getJob(job.id);
        return j.counts.succeeded >= 30;
      });
      // Killed while it holds leases: the job's 300 tasks can all be done within half a second, so on a loaded machine
      // a kill that comes late found the agent holding nothing, and gave the test nothing to check.
      const a1Id = (await loadOrCreateKey(`${dir.path}/a1/node.key`)).key.publicKeyHex;
      await waitUntil(async () => ((await coord.client.nodes()).find((n) => n.id === a1Id)?.running ?? 0) > 0);
      await a1.kill9();
      const before = await coord.client.getJob(job.id);
      assert.ok(before.counts.succeeded < inputs.length, 'the job is still running when the agent dies');
      await checkAllCorrect(coord.client, job.id);
      const text = await (await fetch(`${coord.url}/metrics`)).text();
      assert.equal(metric(text, 'idlemesh_task_outcomes_total', { status: 'accepted' }), inputs.length, 'one accepted result per task');
      assert.ok(metric(text, 'idlemesh_leases_expired_total') > 0, 'the dead agent held leases that came back');
    } finally {
      await a2.stop();
      await a1.stop();
      await coord.stop();
      dir.remove();
    }
  });

  it('survives a kill -9 of the coordinator mid-job and finishes on the same data directory', async () => {
    const dir = tempDir('crash-coord');
    const args = ['--lease-ms', '5000', '--heartbeat-ms', '500'];
    let coord = await startCoordinatorProc({ dataDir: `${dir.path}/coord`, args });
    const port = Number(new URL(coord.url).port);
    const a1 = startAgentProc({ coordinator: coord.url, dataDir: `${dir.path}/a1`, maxTasks: 1, name: 'a1' });
    const a2 = startAgentProc({ coordinator: coord.url, dataDir: `${dir.path}/a2`, maxTasks: 1, name: 'a2' });
    try {
      await waitForNodes(coord.client, 2);
      const mod = await coord.client.uploadModule(NBODY);
      const job = await coord.client.submitJob({ module: mod.hash, inputs: inputs.map((x) => b64(x)), retryBackoffMs: 10, maxAttempts: 5 });
      await waitUntil(async () => (await coord.client.getJob(job.id)).counts.succeeded >= 40);
      await coord.kill9();
      coord = await startCoordinatorProc({ dataDir: `${dir.path}/coord`, port, args });
      const after = await coord.client.getJob(job.id);
      assert.ok(after.counts.succeeded >= 40, 'results committed before the crash survive it');
      await checkAllCorrect(coord.client, job.id);
      assert.ok(a1.running && a2.running, 'agents reconnected rather than exiting');
    } finally {
      await a1.stop();
      await a2.stop();
      await coord.stop();
      dir.remove();
    }
  });
});
