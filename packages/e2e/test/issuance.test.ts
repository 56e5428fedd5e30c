/**
 * Issuance end to end with short hours (--issuance-hour-ms): a coordinator and
 * two paid agents; hours close into frozen tables, epochs issue from the
 * reward pool to the nodes that did paid work, `idlemesh audit issuance`
 * recomputes an epoch and agrees on every node, and catches a frozen hour
 * rewritten in the database.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import Database from 'better-sqlite3';
import { b64, example, runCli, startAgentProc, startCoordinatorProc, tempDir, waitForNodes, waitUntil } from './helpers.js';

interface Epoch {
  document: { epochHour: number; poolMsat: string; hours: Array<{ hour: number; rows: Array<{ node: string; paidMsat: string; availSec: string; capMeasured: string }> }>; expected: { issuedMsat: string; allocationsMsat: Record<string, string> } };
  hourRoots: Array<{ hour: number; root: string }>;
  publicKey: string;
}

describe('issuance', () => {
  it('closes hours and epochs, pays the allocations from the pool, and is recomputed by audit issuance', async (t) => {
    if (process.env.IDLEMESH_TEST_STORE === 'postgres') {
      t.skip('tampering is shown on the SQLite file');
      return;
    }
    const dir = tempDir('issuance');
    const HOUR = 2000;
    // Spot-checked work (trusted work earns no issuance); probes twice an hour.
    const coord = await startCoordinatorProc({ dataDir: `${dir.path}/coord`, args: ['--issuance-hour-ms', String(HOUR), '--probe-interval-ms', String(HOUR / 2), '--verify', 'spot-check:0.05'] });
    const agents = [1, 2].map((i) => startAgentProc({ coordinator: coord.url, dataDir: `${dir.path}/a${i}`, name: `a${i}`, args: ['--ask', '1000000'] }));
    const cli = async (...args: string[]): Promise<{ code: number | null; text: string }> => {
      const p = runCli('cli', ['--coordinator', coord.url, ...args]);
      return { code: await p.wait(), text: p.text };
    };
    try {
      await waitForNodes(coord.client, 2);
      await coord.client.devFund({ account: 'buyer:anonymous', sats: 1_000_000 });
      const mod = await coord.client.uploadModule(example('sha256/sha256.wasm'));
      // Paid work over a few hours: settlement pays the operators and feeds the reward pool.
      for (let i = 0; i < 4; i++) {
        const job = await coord.client.submitJob({ module: mod.hash, inputs: Array.from({ length: 40 }, (_, k) => b64(`in-${i}-${k}`)), bid: 2_000_000 }, { wait: 20_000 });
        assert.equal(job.counts.succeeded, 40);
        await new Promise((r) => setTimeout(r, HOUR / 2));
      }
      const epoch = async (h: string): Promise<Epoch | undefined> => {
        const res = await fetch(`${coord.url}/v1/issuance/epochs/${h}`);
        return res.status === 200 ? (await res.json()) as Epoch : undefined;
      };
      // Wait for an epoch that saw payments and issued something.
      let e: Epoch | undefined;
      await waitUntil(async () => {
        e = await epoch('latest');
        return e !== undefined && BigInt(e.document.expected.issuedMsat) > 0n;
      }, 30_000, () => `no epoch issued: ${JSON.stringify(e?.document.expected)}`);
      const doc = e!.document;
      const allocations = Object.values(doc.expected.allocationsMsat).map(BigInt);
      assert.equal(allocations.reduce((a, b) => a + b, 0n), BigInt(doc.expected.issuedMsat), 'allocations add up to what was issued');
      assert.ok(BigInt(doc.expected.issuedMsat) <= BigInt(doc.poolMsat));
      const nodes = (await coord.client.nodes()).map((n) => n.id).sort();
      assert.deepEqual(Object.keys(doc.expected.allocationsMsat).sort(), nodes);
      assert.ok(doc.hours.some((h) => h.rows.some((r) => BigInt(r.paidMsat) > 0n)), 'payments are metered');
      assert.ok(doc.hours.some((h) => h.rows.some((r) => BigInt(r.capMeasured) > 0n)), 'capacity is measured by probes');
      assert.ok(doc.hours.every((h) => h.rows.every((r) => BigInt(r.availSec) <= BigInt(Math.ceil(HOUR / 1000)))), 'no node is available longer than an hour');

      // The allocation reached each operator as a reward transfer, and the node's rewards say so.
      const node = nodes[0]!;
      const rewards = (await (await fetch(`${coord.url}/v1/nodes/${node}/rewards`)).json()) as { rewards: Array<{ hour: number; allocationMsat: string }> };
      assert.ok(rewards.rewards.some((r) => r.hour === doc.epochHour && r.allocationMsat === doc.expected.allocationsMsat[node]));
      const check = (await (await fetch(`${coord.url}/v1/ledger/check`)).json()) as { ok: boolean };
      assert.equal(check.ok, true);

      // Availability and reliability per node, in the nodes API, as the latest epoch counted them.
      await waitUntil(async () => {
        const view = await coord.client.nodes();
        const latest = (await (await fetch(`${coord.url}/v1/issuance/epochs/latest`)).json()) as {
          hourMs: number; document: { hours: Array<{ rows: Array<{ node: string; availSec: string }> }>; reliability: Array<{ node: string; accepted: string; failed: string }> };
        };
        const windowSec = latest.document.hours.length * Math.ceil(latest.hourMs / 1000);
        return view.every((n) => {
          const r = latest.document.reliability.find((x) => x.node === n.id);
          if (!r) return false;
          const a = Number(r.accepted);
          const avail = latest.document.hours.reduce((sum, h) => sum + Number(h.rows.find((x) => x.node === n.id)?.availSec ?? 0), 0);
          return a > 0 && n.reliability === Math.round((a / (a + Number(r.failed) + 1)) * 10_000) / 10_000
            && n.availability === Math.round(Math.min(1, avail / windowSec) * 10_000) / 10_000 && (n.availability ?? 0) > 0;
        });
      }, 10_000, () => 'the nodes API does not show the epoch\'s availability and reliability');

      const audited = await cli('audit', 'issuance', '--epoch', String(doc.epochHour), '--key', e!.publicKey, '--json');
      assert.equal(audited.code, 0, audited.text);
      const report = JSON.parse(audited.text) as { ok: boolean; nodes: Array<{ agree: boolean }> };
      assert.equal(report.ok, true);
      assert.ok(report.nodes.length === 2 && report.nodes.every((n) => n.agree));

      // A frozen hour rewritten in the database: audit issuance says so and exits 1.
      const h = doc.hours.find((x) => x.rows.length > 0)!.hour;
      const db = new Database(`${dir.path}/coord/idlemesh.db`);
      const row = db.prepare("SELECT doc FROM records WHERE kind = 'issuance-hour' AND id = ?").get(String(h)) as { doc: string };
      const frozen = JSON.parse(row.doc) as { rows: Array<{ availSec: string }> };
      frozen.rows[0]!.availSec = String(BigInt(frozen.rows[0]!.availSec) + 1n);
      db.prepare("UPDATE records SET doc = ? WHERE kind = 'issuance-hour' AND id = ?").run(JSON.stringify(frozen), String(h));
      db.close();
      const caught = await cli('audit', 'issuance', '--epoch', String(doc.epochHour));
      assert.equal(caught.code, 1, caught.text);
      assert.match(caught.text, /IM_ISSUANCE_MISMATCH/);
      assert.match(caught.text, new RegExp(`hour ${h}: the frozen table's rows do not hash to its root`));
    } finally {
      await Promise.all(agents.map((a) => a.stop()));
      await coord.stop();
      dir.remove();
    }
  });
});
