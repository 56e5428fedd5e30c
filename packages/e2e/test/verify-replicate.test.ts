/**
 * Verification by replication end to end: a real coordinator (with
 * `--trust-proxy`, so each scripted agent's X-Forwarded-For address is its IP
 * and its /24 its prefix), agents with their own node keys running every task
 * in the real sandbox, some of them lying. Asserts, from the outside:
 * honest work is accepted with the right results; every execution of a task
 * ran in a distinct prefix; a wrong output, inflated effort and a colluding
 * majority are all proven by the referee from their own signatures and
 * slashed, the honest node never; the buyer pays for every valid execution
 * and for no lie; the ledger balances.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import type { Verification } from '@idlemesh/protocol';
import { b64, example, fromB64, metric, runCli, startCoordinatorProc, tempDir, waitUntil } from './helpers.js';
import type { CoordinatorProc } from './helpers.js';
import { ASK, ScriptedAgent, honest, inflatedFuel, only, wrongOutput } from './verify-agent.js';
import type { Behaviour } from './verify-agent.js';

const sha256hex = (x: string): string => createHash('sha256').update(x).digest('hex');

interface Evidence { nodeId: string; task: string; contradiction: string; slashedMsat: string }

async function evidence(coord: CoordinatorProc, node: string): Promise<Evidence[]> {
  return ((await (await fetch(`${coord.url}/v1/evidence?node=${node}`)).json()) as { evidence: Evidence[] }).evidence;
}

/** A mesh of scripted agents on one coordinator, each in the prefix of its address. */
async function mesh(name: string, args: string[] = []) {
  const dir = tempDir(name);
  const coord = await startCoordinatorProc({ dataDir: `${dir.path}/coord`, args: ['--trust-proxy', ...args] });
  const agents: ScriptedAgent[] = [];
  const prefixOf = new Map<string, string>();
  let n = 0;
  return {
    coord,
    agents,
    /** An agent at `ip`; `bondSats` staked first (as a public node must). */
    async add(ip: string, behave: Behaviour = honest, bondSats = 0): Promise<ScriptedAgent> {
      const keyFile = `${dir.path}/agent-${n++}.key`;
      if (bondSats > 0) {
        const { loadOrCreateKey } = await import('@idlemesh/agent');
        const { key } = await loadOrCreateKey(keyFile);
        await coord.client.devFund({ account: `operator:${key.publicKeyHex}`, sats: bondSats * 2 });
        const staked = runCli('stake', ['--coordinator', coord.url, 'stake', 'add', String(bondSats), '--key-file', keyFile]);
        assert.equal(await staked.wait(), 0, staked.text);
      }
      const a = await ScriptedAgent.start({ url: coord.url, keyFile, ip, behave, credit: 2 }); // few slots each: work spreads over all
      prefixOf.set(a.nodeId, ip.split('.').slice(0, 3).join('.'));
      agents.push(a);
      return a;
    },
    /** Per task of a job: the nodes that executed it (from the leases the agents got). */
    executions(jobId: string): Map<string, string[]> {
      const by = new Map<string, string[]>();
      for (const a of agents) for (const l of a.leases) if (l.jobId === jobId) by.set(l.taskId, [...(by.get(l.taskId) ?? []), a.nodeId]);
      return by;
    },
    prefixOf,
    async stop(): Promise<void> {
      for (const a of agents) await a.close();
      await coord.stop();
      dir.remove();
    },
  };
}

/** The module every job of these tests runs (its instrumented hash is what agents are leased). */
async function sha256Module(coord: CoordinatorProc): Promise<string> {
  return (await coord.client.uploadModule(example('sha256/sha256.wasm'))).instrumentedHash;
}

async function submit(coord: CoordinatorProc, inputs: string[], verification?: Verification): Promise<string> {
  const mod = await coord.client.uploadModule(example('sha256/sha256.wasm'));
  const job = await coord.client.submitJob({
    module: mod.hash, inputs: inputs.map((x) => b64(x)), bid: 2 * ASK, limits: { fuel: 100_000 }, ...(verification ? { verification } : {}),
  });
  return job.id;
}

async function finished(coord: CoordinatorProc, jobId: string, timeoutMs = 60_000): Promise<void> {
  await waitUntil(async () => (await coord.client.getJob(jobId)).state === 'completed', timeoutMs,
    () => `job ${jobId} never completed: ${coord.text.split('\n').filter((l) => !l.includes('probe')).slice(-25).join('\n')}`);
}

/** Σ executions the buyer paid for, per node, once the job is settled (challenge window 0: final at once). */
async function paidExecutions(coord: CoordinatorProc, jobId: string, nodes: readonly string[]): Promise<Map<string, number>> {
  await waitUntil(async () => (await coord.client.getJob(jobId)).settledAt !== undefined, 20_000);
  const out = new Map<string, number>();
  for (const node of nodes) {
    const { transfers } = await coord.client.account(`operator:${node}`, { limit: 1000 });
    const pay = transfers.filter((t) => t.code === 'payment' && t.ref === jobId);
    out.set(node, pay.reduce((s, t) => s + Number(t.meta?.executions ?? 0), 0));
  }
  return out;
}

/** What is left of a bond after `n` slashes of half the remainder (rounded down). */
function halved(msat: bigint, n: number): bigint {
  for (let i = 0; i < n; i++) msat -= msat / 2n;
  return msat;
}

describe('verification by replication', () => {
  it('replicate: honest work agrees on distinct prefixes and is paid per execution; a wrong output and inflated effort are proven and slashed', async () => {
    const m = await mesh('verify-replicate');
    try {
      await m.coord.client.devFund({ account: 'buyer:anonymous', sats: 1_000_000 });
      const h1 = await m.add('10.0.1.5');
      const h2 = await m.add('10.0.2.5');
      const h3 = await m.add('10.0.1.77'); // same /24 as h1: never replicas of one task with it
      const inputs = Array.from({ length: 12 }, (_, i) => `honest-${i}`);
      const job = await submit(m.coord, inputs, { mode: 'replicate', minQuorum: 2, targetResults: 2, maxTotalResults: 5 });
      await finished(m.coord, job);
      const results = (await m.coord.client.results(job)).results;
      assert.equal(results.length, inputs.length, 'one result per task');
      assert.deepEqual(results.map((r) => fromB64(r.output)), inputs.map(sha256hex));
      const execs = m.executions(job);
      assert.equal(execs.size, inputs.length);
      for (const [task, nodes] of execs) {
        assert.equal(nodes.length, 2, `${task} ran on targetResults = 2 nodes`);
        assert.equal(new Set(nodes.map((n) => m.prefixOf.get(n))).size, nodes.length, `${task}: every execution in another prefix`);
      }
      for (const a of m.agents) a.check();
      assert.ok(h1.acks.every((a) => a.status === 'accepted'), 'held results are acked like any other');
      const paid = await paidExecutions(m.coord, job, [h1.nodeId, h2.nodeId, h3.nodeId]);
      assert.equal([...paid.values()].reduce((s, x) => s + x, 0), 2 * inputs.length, 'the buyer pays for every execution');
      for (const a of [h1, h2, h3]) assert.equal(paid.get(a.nodeId), a.leases.filter((l) => l.jobId === job).length, 'each node is paid for each of its executions');

      // A liar and an inflater join, bonded; the honest three stay.
      const mod = await sha256Module(m.coord);
      const liar = await m.add('10.0.3.5', only(mod, wrongOutput), 600);
      const inflater = await m.add('10.0.4.5', only(mod, inflatedFuel), 600);
      const inputs2 = Array.from({ length: 30 }, (_, i) => `mixed-${i}`);
      const job2 = await submit(m.coord, inputs2, { mode: 'replicate', minQuorum: 2, targetResults: 2, maxTotalResults: 5 });
      await finished(m.coord, job2);
      const results2 = (await m.coord.client.results(job2)).results;
      assert.deepEqual(results2.map((r) => fromB64(r.output)), inputs2.map(sha256hex), 'the buyer gets the right answers');
      const liarRan = liar.leases.filter((l) => l.jobId === job2).length;
      const inflaterRan = inflater.leases.filter((l) => l.jobId === job2).length;
      assert.ok(liarRan > 0 && inflaterRan > 0, `both cheaters got work (${liarRan}, ${inflaterRan})`);
      await waitUntil(async () => (await evidence(m.coord, liar.nodeId)).length === liarRan && (await evidence(m.coord, inflater.nodeId)).length === inflaterRan, 20_000);
      assert.ok((await evidence(m.coord, liar.nodeId)).every((e) => e.contradiction === 'output'));
      assert.ok((await evidence(m.coord, inflater.nodeId)).every((e) => e.contradiction === 'effort'), 'effort inflation is caught');
      for (const h of [h1, h2, h3]) assert.deepEqual(await evidence(m.coord, h.nodeId), [], 'no honest node is accused');
      assert.ok(results2.every((r) => r.nodeId !== liar.nodeId && r.nodeId !== inflater.nodeId), 'no task shows a cheater as its node');
      const remaining = BigInt((await m.coord.client.stakes(liar.nodeId)).bonds[0]?.remainingMsat ?? '0');
      assert.equal(remaining, halved(600_000n, liarRan), 'half the bond per proven lie');
      const paid2 = await paidExecutions(m.coord, job2, [liar.nodeId, inflater.nodeId, h1.nodeId, h2.nodeId, h3.nodeId]);
      assert.equal(paid2.get(liar.nodeId), 0, 'a lie is never paid');
      assert.equal(paid2.get(inflater.nodeId), 0);
      const honestRan = [h1, h2, h3].reduce((s, a) => s + a.leases.filter((l) => l.jobId === job2).length, 0);
      assert.equal([h1, h2, h3].reduce((s, a) => s + (paid2.get(a.nodeId) ?? 0), 0), honestRan, 'every honest execution is paid');
      for (const [task, nodes] of m.executions(job2)) assert.equal(new Set(nodes.map((n) => m.prefixOf.get(n))).size, nodes.length, `${task}: distinct prefixes`);
      const text = await (await fetch(`${m.coord.url}/metrics`)).text();
      assert.ok(metric(text, 'idlemesh_verify_decisions_total', { verdict: 'referee', mode: 'replicate' }) >= 1);
      assert.equal((await m.coord.client.ledgerCheck()).ok, true, 'the ledger balances after the slashes');
    } finally {
      await m.stop();
    }
  });

  it('replicate 3: a colluding majority that outvotes the honest replica is caught by the referee; the honest node keeps its bond', async () => {
    const m = await mesh('verify-collude');
    try {
      await m.coord.client.devFund({ account: 'buyer:anonymous', sats: 1_000_000 });
      const mod = await sha256Module(m.coord);
      const c1 = await m.add('10.1.1.5', only(mod, wrongOutput), 600);
      const c2 = await m.add('10.1.2.5', only(mod, wrongOutput), 600);
      const h = await m.add('10.1.3.5', honest, 600);
      const inputs = ['alpha', 'beta', 'gamma', 'delta'];
      const job = await submit(m.coord, inputs, { mode: 'replicate', minQuorum: 2, targetResults: 3, maxTotalResults: 5 });
      await finished(m.coord, job);
      const results = (await m.coord.client.results(job)).results;
      assert.deepEqual(results.map((r) => fromB64(r.output)), inputs.map(sha256hex), 'the honest minority\'s answer stands');
      for (const [task, nodes] of m.executions(job)) assert.equal(new Set(nodes).size, 3, `${task} ran on all three`);
      await waitUntil(async () => (await evidence(m.coord, c1.nodeId)).length === inputs.length && (await evidence(m.coord, c2.nodeId)).length === inputs.length, 20_000);
      assert.deepEqual(await evidence(m.coord, h.nodeId), [], 'a vote never convicts');
      assert.equal((await m.coord.client.stakes(h.nodeId)).bonds[0]?.remainingMsat, '600000', 'the honest node is not slashed');
      assert.equal((await m.coord.client.stakes(c1.nodeId)).bonds[0]?.remainingMsat, String(halved(600_000n, inputs.length)));
      const paid = await paidExecutions(m.coord, job, [c1.nodeId, c2.nodeId, h.nodeId]);
      assert.deepEqual([paid.get(c1.nodeId), paid.get(c2.nodeId), paid.get(h.nodeId)], [0, 0, inputs.length]);
      assert.ok(results.every((r) => r.nodeId === h.nodeId));
      assert.equal((await m.coord.client.ledgerCheck()).ok, true);
    } finally {
      await m.stop();
    }
  });

  it('optimistic: accepted at once, earnings pending; a conviction voids the liar\'s pending earnings and re-runs its results in the window', async () => {
    const m = await mesh('verify-optimistic');
    try {
      await m.coord.client.devFund({ account: 'buyer:anonymous', sats: 1_000_000 });
      const liar = await m.add('10.3.1.5', only(await sha256Module(m.coord), wrongOutput), 600);
      // Unchecked (rate 0): the lies are accepted, and paid into pending earnings.
      const early = ['one', 'two', 'three', 'four'];
      const jobA = await submit(m.coord, early, { mode: 'optimistic', rate: 0, windowMs: 3_600_000 });
      await finished(m.coord, jobA);
      assert.ok((await m.coord.client.results(jobA)).results.every((r) => fromB64(r.output) === 'forty-two'), 'accepted at once, unchecked');
      await waitUntil(async () => (await m.coord.client.getJob(jobA)).settledAt !== undefined, 20_000);
      const before = (await m.coord.client.account(`operator:${liar.nodeId}`)).account;
      assert.ok(BigInt(before.pendingMsat) > 0n, 'earnings wait out the window');
      assert.equal(before.availableMsat, String(2 * 600_000 - 600_000), 'none of them final');

      // Checked (rate 1): caught, and everything it did in the window is undone.
      const jobB = await submit(m.coord, ['five', 'six'], { mode: 'optimistic', rate: 1, windowMs: 3_600_000 });
      await finished(m.coord, jobB);
      await waitUntil(async () => (await evidence(m.coord, liar.nodeId)).length === 6, 30_000, () => `six convictions: ${m.coord.text.slice(-2000)}`);
      await waitUntil(async () => (await m.coord.client.results(jobA)).results.every((r) => fromB64(r.output) === sha256hex(early[r.index] ?? '')), 20_000);
      const { transfers } = await m.coord.client.account(`operator:${liar.nodeId}`, { limit: 1000 });
      const paidA = transfers.find((t) => t.code === 'payment' && t.ref === jobA && t.type === 'pending');
      assert.ok(paidA, 'job A paid the liar into pending earnings');
      assert.ok(transfers.some((t) => t.type === 'void' && t.pendingId === paidA.id), 'and the conviction voided them');
      const buyer = await m.coord.client.account('buyer:anonymous', { limit: 1000 });
      assert.ok(buyer.transfers.some((t) => t.code === 'refund' && t.ref === jobA && t.amountMsat === paidA.amountMsat), 'back to the buyer of job A');
      assert.equal((await m.coord.client.ledgerCheck()).ok, true);

      // An honest node's checked results agree; its pending earnings stay.
      const h = await m.add('10.3.2.5');
      liar.check();
      await liar.close();
      m.agents.splice(m.agents.indexOf(liar), 1);
      const jobC = await submit(m.coord, ['seven', 'eight', 'nine'], { mode: 'optimistic', rate: 1, windowMs: 3_600_000 });
      await finished(m.coord, jobC);
      await waitUntil(async () => (await m.coord.client.getJob(jobC)).settledAt !== undefined, 20_000);
      await waitUntil(async () => metric(await (await fetch(`${m.coord.url}/metrics`)).text(), 'idlemesh_referee_checks_total', { result: 'agree' }) >= 3, 20_000);
      assert.deepEqual(await evidence(m.coord, h.nodeId), []);
      assert.ok(BigInt((await m.coord.client.account(`operator:${h.nodeId}`)).account.pendingMsat) > 0n, 'honest earnings stay pending until the window closes');
    } finally {
      await m.stop();
    }
  });

  it('adaptive (--verify adaptive): replicated until nodes earn trust, then mostly not; a new cheater is always replicated and caught', async (t) => {
    const m = await mesh('verify-adaptive', ['--verify', 'adaptive']);
    try {
      await m.coord.client.devFund({ account: 'buyer:anonymous', sats: 1_000_000 });
      const h1 = await m.add('10.2.1.5');
      const h2 = await m.add('10.2.2.5');
      const inputs = Array.from({ length: 40 }, (_, i) => `adaptive-${i}`);
      const job = await submit(m.coord, inputs);
      assert.equal((await m.coord.client.getJob(job)).verification?.mode, 'adaptive', '--verify sets the default');
      await finished(m.coord, job);
      assert.deepEqual((await m.coord.client.results(job)).results.map((r) => fromB64(r.output)), inputs.map(sha256hex));
      const execs = [...m.executions(job).values()];
      const total = execs.reduce((s, n) => s + n.length, 0);
      t.diagnostic(`adaptive: ${total} executions for ${inputs.length} tasks`);
      // Each node needs 10 valid replicated results; afterwards a task is replicated with probability 1/streak.
      assert.ok(total >= inputs.length + 10, `the first tasks are replicated (${total} executions)`);
      assert.ok(total < 2 * inputs.length - 5, `trusted nodes are mostly not replicated (${total} executions for ${inputs.length} tasks)`);
      for (const nodes of execs) assert.ok(nodes.length <= 2 && new Set(nodes.map((n) => m.prefixOf.get(n))).size === nodes.length);
      const paid = await paidExecutions(m.coord, job, [h1.nodeId, h2.nodeId]);
      assert.equal((paid.get(h1.nodeId) ?? 0) + (paid.get(h2.nodeId) ?? 0), total, 'the buyer pays for the executions the mode needed');

      const liar = await m.add('10.2.3.5', only(await sha256Module(m.coord), wrongOutput), 600);
      const inputs2 = Array.from({ length: 8 }, (_, i) => `adaptive-late-${i}`);
      const job2 = await submit(m.coord, inputs2);
      await finished(m.coord, job2);
      assert.deepEqual((await m.coord.client.results(job2)).results.map((r) => fromB64(r.output)), inputs2.map(sha256hex));
      const liarRan = liar.leases.filter((l) => l.jobId === job2).length;
      assert.ok(liarRan > 0, 'the newcomer got work');
      await waitUntil(async () => (await evidence(m.coord, liar.nodeId)).length === liarRan, 20_000);
      for (const h of [h1, h2]) assert.deepEqual(await evidence(m.coord, h.nodeId), []);
      assert.equal((await m.coord.client.ledgerCheck()).ok, true);
    } finally {
      await m.stop();
    }
  });
});
