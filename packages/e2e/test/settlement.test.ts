/**
 * Money end to end, with real processes: a funded buyer, agents with asks,
 * escrow at submit, settlement after the job, a kill -9 of the coordinator in
 * the middle — the ledger audits clean and every msat is where the prices say.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ImError } from '@idlemesh/sdk';
import type { IdlemeshClient } from '@idlemesh/sdk';
import { pricing } from '@idlemesh/coordinator';
import { loadOrCreateKey } from '@idlemesh/agent';
import { b64, example, runCli, sleep, startAgentProc, startCoordinatorProc, tempDir, waitForNodes, waitUntil } from './helpers.js';

const NBODY = example('nbody/nbody.wasm');
const FEES = { coordinatorFeeBps: 500, poolFeeBps: 500 };

/** What the buyer must have paid and each operator earned, recomputed from the results. */
async function expectedCharges(client: IdlemeshClient, jobId: string, asks: ReadonlyMap<string, number>): Promise<{ buyer: bigint; operators: Map<string, bigint> }> {
  const fuelByNode = new Map<string, number>();
  for await (const r of client.allResults(jobId)) {
    if (r.state !== 'succeeded' || r.nodeId === undefined) continue;
    fuelByNode.set(r.nodeId, (fuelByNode.get(r.nodeId) ?? 0) + (r.fuel ?? 0));
  }
  let buyer = 0n;
  const operators = new Map<string, bigint>();
  for (const [node, fuel] of fuelByNode) {
    const ask = asks.get(node);
    assert.ok(ask !== undefined, `results came from an unknown node ${node}`);
    const p = pricing.price(fuel, ask, FEES);
    buyer += p.buyerPays;
    operators.set(node, p.operator);
  }
  return { buyer, operators };
}

async function ledgerOk(client: IdlemeshClient): Promise<void> {
  const check = await client.ledgerCheck();
  assert.deepEqual(check.violations, []);
  assert.equal(check.ok, true);
  assert.equal(check.totals.debitsMsat, check.totals.creditsMsat);
}

async function nodeIdsByName(client: IdlemeshClient): Promise<Map<string, string>> {
  return new Map((await client.nodes()).map((n) => [n.capabilities.name ?? '', n.id]));
}

describe('settlement end to end', () => {
  it('holds escrow, runs only where ask ≤ bid, settles exactly, refuses what the balance cannot cover', async () => {
    const dir = tempDir('settle');
    const coord = await startCoordinatorProc({ dataDir: `${dir.path}/coord` });
    const cheap = startAgentProc({ coordinator: coord.url, dataDir: `${dir.path}/cheap`, name: 'cheap', args: ['--ask', '1000000', '--name', 'cheap'] });
    const dear = startAgentProc({ coordinator: coord.url, dataDir: `${dir.path}/dear`, name: 'dear', args: ['--ask', '5000000', '--name', 'dear'] });
    try {
      await waitForNodes(coord.client, 2);
      const ids = await nodeIdsByName(coord.client);
      const asks = new Map([[ids.get('cheap')!, 1_000_000], [ids.get('dear')!, 5_000_000]]);
      const mod = await coord.client.uploadModule(NBODY);
      const inputs = Array.from({ length: 40 }, (_, i) => b64(String(2_000 + i)));
      const limits = { fuel: 2_000_000_000 };

      // Unfunded: a 402 with the shortfall, and no job.
      const refused = await coord.client.submitJob({ module: mod.hash, inputs, bid: 2_000_000, limits }).then(() => undefined, (e: unknown) => e);
      assert.ok(refused instanceof ImError && refused.code === 'IM_INSUFFICIENT_BALANCE', String(refused));
      assert.equal((refused.details as { shortfallMsat: string }).shortfallMsat, String(40n * 2n * 2_000_000n * 11n / 10n));
      assert.equal((await coord.client.listJobs()).length, 0);

      await coord.client.devFund({ account: 'buyer:anonymous', sats: 1_000_000 });
      const before = (await coord.client.account()).account;
      const job = await coord.client.submitJob({ module: mod.hash, inputs, bid: 2_000_000, limits });
      assert.equal(job.holdMsat, String(40n * 2n * 2_000_000n * 11n / 10n));
      const held = (await coord.client.account()).account;
      assert.equal(BigInt(held.heldMsat), BigInt(job.holdMsat!));
      assert.equal(BigInt(held.availableMsat), BigInt(before.availableMsat) - BigInt(job.holdMsat!));

      const done = await coord.client.waitForJob(job.id);
      assert.equal(done.counts.succeeded, inputs.length);
      for await (const r of coord.client.allResults(job.id)) assert.equal(r.nodeId, ids.get('cheap'), 'only the agent asking ≤ bid runs it');
      await waitUntil(async () => (await coord.client.getJob(job.id)).settledAt !== undefined);

      const want = await expectedCharges(coord.client, job.id, asks);
      const after = (await coord.client.account()).account;
      assert.equal(BigInt(before.balanceMsat) - BigInt(after.balanceMsat), want.buyer, 'the buyer paid exactly ask × EU × 1.10, floored once');
      assert.equal(after.heldMsat, '0', 'the rest of the hold went back');
      const op = (await coord.client.account(`operator:${ids.get('cheap')}`)).account;
      assert.equal(BigInt(op.balanceMsat), want.operators.get(ids.get('cheap')!));
      const market = await coord.client.market();
      assert.equal(market.runtimes.find((r) => r.runtime === 'wasm')?.spotMsatPerEu, 1_000_000);

      // Cancelled before it could run anywhere (bid below every ask): the whole hold returns.
      const stuck = await coord.client.submitJob({ module: mod.hash, inputs: inputs.slice(0, 5), bid: 10, limits });
      const cancelled = await coord.client.cancelJob(stuck.id);
      assert.ok(cancelled.settledAt !== undefined);
      assert.equal((await coord.client.account()).account.balanceMsat, after.balanceMsat);
      await ledgerOk(coord.client);
    } finally {
      await cheap.stop();
      await dear.stop();
      await coord.stop();
      dir.remove();
    }
  });

  it('a kill -9 of the coordinator mid-job: after restart the job settles once and the ledger balances', async () => {
    const dir = tempDir('settle-crash');
    const args = ['--lease-ms', '5000', '--heartbeat-ms', '500'];
    let coord = await startCoordinatorProc({ dataDir: `${dir.path}/coord`, args });
    const port = Number(new URL(coord.url).port);
    const a1 = startAgentProc({ coordinator: coord.url, dataDir: `${dir.path}/a1`, maxTasks: 1, name: 'a1', args: ['--ask', '300000', '--name', 'a1'] });
    const a2 = startAgentProc({ coordinator: coord.url, dataDir: `${dir.path}/a2`, maxTasks: 1, name: 'a2', args: ['--ask', '700000', '--name', 'a2'] });
    try {
      await waitForNodes(coord.client, 2);
      const ids = await nodeIdsByName(coord.client);
      const asks = new Map([[ids.get('a1')!, 300_000], [ids.get('a2')!, 700_000]]);
      await coord.client.devFund({ account: 'buyer:anonymous', sats: 2_000_000, idempotencyKey: 'seed' });
      const mod = await coord.client.uploadModule(NBODY);
      const inputs = Array.from({ length: 200 }, (_, i) => b64(String(20_000 + i * 7)));
      const job = await coord.client.submitJob({ module: mod.hash, inputs, bid: 1_000_000, limits: { fuel: 5_000_000_000 }, retryBackoffMs: 10, maxAttempts: 5 });
      await waitUntil(async () => (await coord.client.getJob(job.id)).counts.succeeded >= 30);
      await coord.kill9();
      coord = await startCoordinatorProc({ dataDir: `${dir.path}/coord`, port, args });
      // The faucet key is idempotent across the crash too.
      await coord.client.devFund({ account: 'buyer:anonymous', sats: 2_000_000, idempotencyKey: 'seed' });
      const done = await coord.client.waitForJob(job.id);
      assert.equal(done.counts.succeeded, inputs.length);
      await waitUntil(async () => (await coord.client.getJob(job.id)).settledAt !== undefined);
      const want = await expectedCharges(coord.client, job.id, asks);
      const buyer = (await coord.client.account()).account;
      assert.equal(BigInt(buyer.balanceMsat), 2_000_000_000n - want.buyer, 'paid once, exactly');
      for (const [node, amount] of want.operators) {
        assert.equal(BigInt((await coord.client.account(`operator:${node}`)).account.balanceMsat), amount, `operator ${node.slice(0, 8)}`);
      }
      await ledgerOk(coord.client);
    } finally {
      await a1.stop();
      await a2.stop();
      await coord.stop();
      dir.remove();
    }
  });

  it('stakes: bond from earnings with the CLI, unbond, locked until the period ends, release; nothing moves on bad input', async () => {
    const dir = tempDir('stakes');
    const coord = await startCoordinatorProc({ dataDir: `${dir.path}/coord`, args: ['--unbonding-ms', '2000'] });
    const keyFile = `${dir.path}/node.key`;
    const { key } = await loadOrCreateKey(keyFile);
    const node = key.publicKeyHex;
    const cli = async (...args: string[]): Promise<{ code: number | null; text: string }> => {
      const p = runCli('cli', ['--coordinator', coord.url, ...args]);
      const code = await p.wait();
      return { code, text: p.text };
    };
    try {
      await coord.client.devFund({ account: `operator:${node}`, sats: 1000 });
      const added = await cli('stake', 'add', '600', '--key-file', keyFile, '--json');
      assert.equal(added.code, 0, added.text);
      const view = JSON.parse(added.text) as { bonds: Array<{ id: string; status: string; remainingMsat: string }>; stake: { balanceMsat: string }; operator: { availableMsat: string } };
      assert.equal(view.bonds.length, 1);
      assert.equal(view.bonds[0]?.status, 'active');
      assert.equal(view.stake.balanceMsat, '600000');
      assert.equal(view.operator.availableMsat, '400000');
      const bondId = view.bonds[0]!.id;

      // More than the balance: 402 and nothing moves.
      const tooMuch = await cli('stake', 'add', '600', '--key-file', keyFile, '--json');
      assert.equal(tooMuch.code, 1);
      assert.match(tooMuch.text, /IM_INSUFFICIENT_BALANCE/);
      // Someone else's key cannot move this node's bond.
      const otherKey = `${dir.path}/other.key`;
      await loadOrCreateKey(otherKey);
      const foreign = await cli('stake', 'remove', bondId, '--key-file', otherKey);
      assert.equal(foreign.code, 1);
      assert.match(foreign.text, /IM_LEDGER_BOND_NOT_FOUND/);

      const removed = await cli('stake', 'remove', bondId, '--key-file', keyFile, '--json');
      assert.equal(removed.code, 0, removed.text);
      assert.equal((JSON.parse(removed.text) as typeof view).bonds[0]?.status, 'unbonding');
      const early = await cli('stake', 'release', bondId, '--key-file', keyFile);
      assert.equal(early.code, 1);
      assert.match(early.text, /IM_LEDGER_BOND_LOCKED/);
      assert.equal((await coord.client.account(`operator:${node}`)).account.availableMsat, '400000', 'locked while unbonding');
      await sleep(2100);
      const released = await cli('stake', 'release', bondId, '--key-file', keyFile, '--json');
      assert.equal(released.code, 0, released.text);
      const end = JSON.parse(released.text) as typeof view;
      assert.equal(end.bonds[0]?.status, 'released');
      assert.equal(end.operator.availableMsat, '1000000');
      assert.equal(end.stake.balanceMsat, '0');
      await ledgerOk(coord.client);
    } finally {
      await coord.stop();
      dir.remove();
    }
  });
});
