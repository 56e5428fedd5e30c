/**
 * Several coordinators on one PostgreSQL database: agents spread over them,
 * a job submitted to one runs on agents attached to others, and a kill -9 of
 * a coordinator under load loses nothing and accepts nothing twice.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { b64, example, fromB64, pgReachable, runLocal, startAgentProc, startCoordinatorProc, tempDir, waitUntil, TEST_PG } from './helpers.js';
import type { CoordinatorProc, Proc } from './helpers.js';

const NBODY = example('nbody/nbody.wasm');

describe('three coordinators on one PostgreSQL', () => {
  it('spreads agents, runs a job across coordinators, and survives a kill -9 of one under load', async (t) => {
    if (!(await pgReachable())) {
      if (process.env.IDLEMESH_REQUIRE_PG) throw new Error(`PostgreSQL not reachable at ${TEST_PG}`);
      t.skip(`PostgreSQL not reachable at ${TEST_PG}`);
      return;
    }
    const dir = tempDir('multi');
    const schema = `e2e_multi_${Date.now().toString(36)}`;
    const args = ['--lease-ms', '4000', '--heartbeat-ms', '500'];
    const coords: CoordinatorProc[] = [];
    const agents: Proc[] = [];
    try {
      // Start one first so it runs the migrations alone; the others then start at once.
      coords.push(await startCoordinatorProc({ dataDir: `${dir.path}/c0`, schema, args }));
      coords.push(...(await Promise.all([1, 2].map((i) => startCoordinatorProc({ dataDir: `${dir.path}/c${i}`, schema, args })))));
      const urls = coords.map((c) => c.url);
      for (let i = 0; i < 3; i++) {
        // Agent i prefers coordinator i and fails over to the others in turn.
        const list = [0, 1, 2].map((k) => urls[(i + k) % 3]).join(',');
        agents.push(startAgentProc({ coordinator: list, dataDir: `${dir.path}/a${i}`, maxTasks: 1, name: `a${i}` }));
      }
      const client = coords[0]!.client;
      await waitUntil(async () => (await client.nodes()).filter((n) => n.state === 'online').length === 3, 30_000);

      const inputs = Array.from({ length: 240 }, (_, i) => String(20_000 + i * 11));
      const mod = await client.uploadModule(NBODY);
      const job = await client.submitJob({ module: mod.hash, inputs: inputs.map((x) => b64(x)), retryBackoffMs: 10, maxAttempts: 5 });
      await waitUntil(async () => (await client.getJob(job.id)).counts.succeeded >= 40, 30_000);

      // The job was submitted to coordinator 0; coordinator 1 dies with its agent's leases.
      await coords[1]!.kill9();
      const done = await client.waitForJob(job.id);
      assert.equal(done.state, 'completed');
      assert.equal(done.counts.succeeded, inputs.length, JSON.stringify(done.counts));

      const reference = new Map<string, string>();
      const byNode = new Map<string, number>();
      let fuel = 0;
      let n = 0;
      for await (const r of client.allResults(job.id)) {
        const input = inputs[r.index] ?? '';
        let want = reference.get(input);
        if (want === undefined) reference.set(input, (want = new TextDecoder().decode(await runLocal(NBODY, new TextEncoder().encode(input)))));
        assert.equal(fromB64(r.output), want, `task ${r.index}`);
        byNode.set(r.nodeId ?? '', (byNode.get(r.nodeId ?? '') ?? 0) + 1);
        fuel += r.fuel ?? 0;
        n++;
      }
      assert.equal(n, inputs.length, 'no task lost');
      assert.equal(done.fuelUsed, fuel, 'no task accepted twice');
      assert.equal(byNode.size, 3, `all three agents ran tasks of a job submitted to one coordinator: ${JSON.stringify([...byNode])}`);
      assert.ok(agents.every((a) => a.running), 'the agent of the dead coordinator failed over instead of exiting');
      // The survivors see every node; the one that lost its coordinator is attached elsewhere.
      const nodes = await coords[2]!.client.nodes();
      assert.equal(nodes.filter((x) => x.state === 'online').length, 3);
    } finally {
      await Promise.all(agents.map((a) => a.stop()));
      await Promise.all(coords.map((c) => c.stop()));
      const c = new pg.Client({ connectionString: TEST_PG });
      await c.connect().then(() => c.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`)).catch(() => undefined);
      await c.end().catch(() => undefined);
      dir.remove();
    }
  });
});
