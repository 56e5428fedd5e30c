/**
 * Federation end to end: a private coordinator with no machines of its own
 * sends what its policy lets cross to an upstream coordinator, as an ordinary
 * (paid) job bought with its own account there; the results come back into
 * the original job, and both ledgers balance.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { b64, example, fromB64, runLocal, startAgentProc, startCoordinatorProc, tempDir, waitForNodes } from './helpers.js';

const NBODY = example('nbody/nbody.wasm');

describe('federation end to end', () => {
  it('overflows upstream as ordinary paid jobs; results come back into the original job', async () => {
    const dir = tempDir('federation');
    const upstream = await startCoordinatorProc({ dataDir: `${dir.path}/up` });
    const worker = startAgentProc({ coordinator: upstream.url, dataDir: `${dir.path}/worker`, maxTasks: 2, name: 'worker', args: ['--ask', '1000'] });
    // The downstream coordinator buys upstream with its own account there (anonymous on an open upstream).
    await upstream.client.devFund({ account: 'buyer:anonymous', sats: 100_000 });
    const local = await startCoordinatorProc({ dataDir: `${dir.path}/local`, args: ['--upstream', upstream.url, '--upstream-bid', '2000'] });
    try {
      await waitForNodes(upstream.client, 1);
      await local.client.devFund({ account: 'buyer:anonymous', sats: 100_000 });
      const mod = await local.client.uploadModule(NBODY);
      const inputs = Array.from({ length: 30 }, (_, i) => String(2000 + i * 13));
      const job = await local.client.submitJob({ module: mod.hash, inputs: inputs.map((x) => b64(x)), bid: 3000, limits: { fuel: 1_000_000_000 } });
      const done = await local.client.waitForJob(job.id);
      assert.equal(done.state, 'completed');
      assert.equal(done.counts.succeeded, inputs.length, JSON.stringify(done.counts));
      for await (const r of local.client.allResults(job.id)) {
        const want = new TextDecoder().decode(await runLocal(NBODY, new TextEncoder().encode(inputs[r.index]!)));
        assert.equal(fromB64(r.output), want, `task ${r.index} came back right`);
      }
      // Upstream it was an ordinary paid job, named after the original.
      const upJobs = await upstream.client.listJobs();
      assert.ok(upJobs.some((j) => j.name === `federated ${job.id}` && j.state === 'completed' && j.buyer === 'buyer:anonymous'));
      for (const c of [local.client, upstream.client]) assert.deepEqual((await c.ledgerCheck()).violations, []);
    } finally {
      await local.stop();
      await worker.stop();
      await upstream.stop();
      dir.remove();
    }
  });
});
