/**
 * The store conformance suite: every Store implementation (SQLite now,
 * PostgreSQL next) must pass exactly these tests.
 */
import { describe, it, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ImError, errorFrom, newJobId, receiptDocument, receiptOf, sha256HexSync } from '@idlemesh/protocol';
import type { Capabilities, ReceiptBatch } from '@idlemesh/protocol';
import type { NewJob, ReceiptBatchRow, Store } from '../src/store/index.js';

/** A batch of n receipts as the coordinator keeps it (the signatures are placeholders: the store does not check them). */
function receiptBatch(n: number): ReceiptBatch {
  const node = 'a'.repeat(64);
  return {
    format: 'idlemesh-receipt-batch/1',
    receipts: Array.from({ length: n }, (_, i) => receiptOf(node, {
      taskId: `job_00000000000000000000x/${i}`, attempt: 1, ok: true, output: 'AQ==', fuel: i, startedAt: 1, endedAt: 2,
      inputHash: sha256HexSync(new Uint8Array([i])), runtime: 'wasm', runtimeVersion: 'v-test',
    })),
    agent: { nodeId: node, root: 'b'.repeat(64), nonce: 'c'.repeat(32), ts: 1, sig: 'd'.repeat(128) },
    coordinator: { publicKey: 'e'.repeat(64), acceptedAt: 3, sig: 'f'.repeat(128) },
  };
}

const CAPS: Capabilities = {
  runtimes: ['wasm'], cores: 2, memoryMb: 1024, arch: 'x64', os: 'linux', gpus: [], maxTasks: 2,
  benchmark: { fuelPerSec: 1e9 }, agentVersion: 'test',
};
const NODE_A = 'a'.repeat(64);
const NODE_B = 'b'.repeat(64);

let seq = 0;
/** A job record for store tests; `over` replaces any field. */
export function job(over: Partial<NewJob> = {}): NewJob {
  return {
    id: newJobId(1_700_000_000_000 + seq++),
    caller: 'anonymous',
    requestHash: 'h'.repeat(64),
    module: '1'.repeat(64),
    instrumentedModule: '2'.repeat(64),
    runtime: 'wasm',
    limits: { fuel: 1000, memoryMb: 16, timeoutMs: 1000, outputBytes: 1024 },
    bid: 0,
    maxAttempts: 3,
    retryBackoffMs: 100,
    priority: 1,
    requirements: {},
    createdAt: 1000,
    ...over,
  };
}
export const inputs = (n: number): Uint8Array[] => Array.from({ length: n }, (_, i) => new TextEncoder().encode(`in-${i}`));

/** Recounts a job's tasks from their rows and compares with its counters. */
async function assertCountsMatch(store: Store, jobId: string): Promise<void> {
  const j = await store.getJob(jobId);
  assert.ok(j);
  const rows = await store.getResults(jobId, { after: -1, limit: 100_000 });
  const actual = { total: rows.length, queued: 0, leased: 0, succeeded: 0, failed: 0, cancelled: 0 };
  for (const r of rows) actual[r.state]++;
  assert.deepEqual(j.counts, actual, `counts of ${jobId}`);
  const done = actual.queued + actual.leased === 0;
  if (j.state !== 'cancelled') assert.equal(j.state === 'completed', done, `state of ${jobId} is ${j.state}`);
}

export function storeConformance(name: string, open: () => Promise<Store>): void {
  describe(`store conformance: ${name}`, () => {
    let store: Store;
    beforeEach(async () => {
      store = await open();
      await store.upsertNode(NODE_A, CAPS, 1000);
      await store.upsertNode(NODE_B, CAPS, 1000);
    });
    afterEach(async () => store.close());

    it('migrates idempotently and answers ping', async () => {
      await store.migrate();
      assert.equal(await store.ping(), true);
    });

    it('stores modules by uploaded and instrumented hash', async () => {
      const m = {
        hash: 'c'.repeat(64), instrumentedHash: 'd'.repeat(64), abi: 'idlemesh/1' as const, size: 3, instrumentedSize: 4,
        initialPages: 1, maxPages: 2, bytes: new Uint8Array([1, 2, 3]), instrumented: new Uint8Array([1, 2, 3, 4]), createdAt: 5,
      };
      await store.putModule(m);
      await store.putModule(m); // idempotent
      assert.deepEqual((await store.getModule(m.hash))?.instrumented, m.instrumented);
      assert.equal((await store.getModule(m.instrumentedHash))?.hash, m.hash);
      assert.equal(await store.getModule('e'.repeat(64)), undefined);
    });

    it('creates jobs with tasks and honours idempotency keys per caller', async () => {
      const j = job({ idempotencyKey: 'k1' });
      const a = await store.createJob(j, inputs(3));
      assert.equal(a.created, true);
      assert.equal(a.job.counts.total, 3);
      assert.equal(a.job.counts.queued, 3);
      assert.equal(a.job.state, 'queued');
      const again = await store.createJob({ ...j, id: newJobId(2e12) }, inputs(3));
      assert.equal(again.created, false);
      assert.equal(again.job.id, j.id);
      await assert.rejects(store.createJob({ ...j, id: newJobId(2e12), requestHash: 'x'.repeat(64) }, inputs(3)),
        (e: unknown) => e instanceof ImError && e.code === 'IM_IDEMPOTENCY_CONFLICT');
      const other = await store.createJob({ ...j, id: newJobId(2e12), caller: 'someone-else' }, inputs(1));
      assert.equal(other.created, true);
      assert.equal((await store.listJobs({ limit: 10 })).length, 2);
    });

    it('leases the first tasks of a new job in the transaction that stores it, as a claim would', async () => {
      const j = job({ idempotencyKey: 'first' });
      const first = { leases: [{ nodeId: NODE_A, count: 2, ask: 7 }, { nodeId: NODE_B, count: 1, ask: 0 }], expiresAt: 12_000 };
      const r = await store.createJob(j, inputs(5), undefined, first);
      assert.equal(r.created, true);
      assert.deepEqual(r.leased.map((t) => [t.index, t.attempt, t.nodeId, t.leaseExpiresAt]),
        [[0, 1, NODE_A, 12_000], [1, 1, NODE_A, 12_000], [2, 1, NODE_B, 12_000]]);
      assert.equal(new TextDecoder().decode(r.leased[1]?.input), 'in-1');
      assert.deepEqual([r.leased[0]?.instrumentedModule, r.leased[0]?.runtime, r.leased[0]?.limits], [j.instrumentedModule, j.runtime, j.limits]);
      assert.equal(r.job.state, 'running');
      assert.deepEqual([r.job.counts.queued, r.job.counts.leased], [2, 3]);
      await assertCountsMatch(store, j.id);
      assert.equal((await store.runnableJobs(2000)).find((x) => x.id === j.id)?.queued, 2);
      const nodes = await store.listNodes();
      assert.deepEqual([nodes.find((n) => n.id === NODE_A)?.running, nodes.find((n) => n.id === NODE_B)?.running], [2, 1]);
      // The rest is claimed as usual, from where the first leases stopped.
      assert.deepEqual((await store.claimTasks([{ jobId: j.id, nodeId: NODE_B, count: 5 }], 2000, 10_000)).map((t) => t.index), [3, 4]);
      const out = { jobId: j.id, index: 0, attempt: 1, ok: true, output: new Uint8Array([1]), fuel: 5 };
      assert.deepEqual((await store.completeTasks(NODE_B, [out], 2100)).statuses, ['rejected'], 'not its lease');
      assert.deepEqual((await store.completeTasks(NODE_A, [out], 2100)).statuses, ['accepted']);
      await assertCountsMatch(store, j.id);
      // A repeat under the key leases nothing and changes nothing.
      const again = await store.createJob({ ...j, id: newJobId(2e12) }, inputs(5), undefined, first);
      assert.deepEqual([again.created, again.leased.length, again.job.id], [false, 0, j.id]);
      await assertCountsMatch(store, j.id);
      // Never more leases than tasks; the leases expire like any other.
      const small = job();
      const s = await store.createJob(small, inputs(2), undefined, { leases: [{ nodeId: NODE_A, count: 10, ask: 0 }], expiresAt: 3000 });
      assert.deepEqual(s.leased.map((t) => t.index), [0, 1]);
      assert.deepEqual([s.job.counts.queued, s.job.counts.leased, s.job.state], [0, 2, 'running']);
      const expired = await store.expireLeases(3001, errorFrom('IM_LEASE_EXPIRED'));
      assert.ok(expired.jobs.has(small.id));
      await assertCountsMatch(store, small.id);
      assert.equal((await store.getJob(small.id))?.counts.queued, 2);
    });

    it('claims in index order, counts attempts, and accepts a result at most once', async () => {
      const j = job();
      await store.createJob(j, inputs(5));
      const claimed = await store.claimTasks([{ jobId: j.id, nodeId: NODE_A, count: 3 }], 2000, 10_000);
      assert.deepEqual(claimed.map((t) => [t.index, t.attempt]), [[0, 1], [1, 1], [2, 1]]);
      assert.equal(new TextDecoder().decode(claimed[1]?.input), 'in-1');
      assert.equal(claimed[0]?.leaseExpiresAt, 12_000);
      await assertCountsMatch(store, j.id);
      assert.equal((await store.getJob(j.id))?.state, 'running');

      const out = { jobId: j.id, index: 0, attempt: 1, ok: true, output: new Uint8Array([9]), fuel: 42 };
      assert.deepEqual((await store.completeTasks(NODE_A, [out], 2100)).statuses, ['accepted']);
      assert.deepEqual((await store.completeTasks(NODE_A, [out], 2200)).statuses, ['duplicate']);
      assert.deepEqual((await store.completeTasks(NODE_B, [{ ...out, index: 1 }], 2200)).statuses, ['rejected'], 'wrong node');
      assert.deepEqual((await store.completeTasks(NODE_A, [{ ...out, index: 1, attempt: 2 }], 2200)).statuses, ['rejected'], 'wrong attempt');
      assert.deepEqual((await store.completeTasks(NODE_A, [{ ...out, index: 4 }], 2200)).statuses, ['rejected'], 'never leased');
      const j2 = await store.getJob(j.id);
      assert.equal(j2?.counts.succeeded, 1);
      assert.equal(j2?.fuelUsed, 42);
      await assertCountsMatch(store, j.id);
      const [r0] = await store.getResults(j.id, { after: -1, limit: 1 });
      assert.deepEqual(r0?.output, new Uint8Array([9]));
      assert.equal(r0?.nodeId, NODE_A);
    });

    it('keeps the receipt of an accepted result, and refuses a batch naming another input', async () => {
      const j = job();
      await store.createJob(j, inputs(2));
      const [t0, t1] = await store.claimTasks([{ jobId: j.id, nodeId: NODE_A, count: 2 }], 2000, 10_000);
      assert.ok(t0 && t1);
      const batch = (id: string, n: number): ReceiptBatchRow => ({ id, doc: JSON.stringify(receiptBatch(n)) });
      const good = { jobId: j.id, index: 0, attempt: 1, ok: true, output: new Uint8Array([1]), fuel: 5, inputHash: sha256HexSync(t0.input), receiptIndex: 0 };
      const bad = { jobId: j.id, index: 1, attempt: 1, ok: true, output: new Uint8Array([2]), fuel: 5, inputHash: sha256HexSync(t0.input), receiptIndex: 1 };
      // One wrong input hash refuses the whole batch: the good result in it is not taken either, nor the batch kept.
      await assert.rejects(store.completeTasks(NODE_A, [good, bad], 2100, batch('refused', 2)), (e: unknown) => e instanceof ImError && e.code === 'IM_RECEIPT_MISMATCH');
      assert.equal((await store.getJob(j.id))?.counts.succeeded, 0);
      assert.equal(await store.getReceipt(j.id, 0), undefined);
      await assertCountsMatch(store, j.id);
      // Failures keep their receipt too; each result's document is assembled from the batch kept once.
      const failed = { jobId: j.id, index: 1, attempt: 1, ok: false, fuel: 5, inputHash: sha256HexSync(t1.input), receiptIndex: 1, error: { code: 'IM_WASM_TRAP', message: 'trap', retryable: false } };
      const kept = batch('kept', 3);
      assert.deepEqual((await store.completeTasks(NODE_A, [{ ...good, receiptIndex: 2 }, failed], 2200, kept)).statuses, ['accepted', 'accepted']);
      const parsed = JSON.parse(kept.doc) as ReceiptBatch;
      assert.deepEqual(JSON.parse((await store.getReceipt(j.id, 0)) ?? 'null'), receiptDocument(parsed, 2));
      assert.deepEqual(JSON.parse((await store.getReceipt(j.id, 1)) ?? 'null'), receiptDocument(parsed, 1));
      assert.equal(await store.getReceipt(j.id, 7), undefined);
    });

    it('holds a result for verification and sends its replicas only to other nodes, operators and prefixes', async () => {
      const NODE_C = 'c'.repeat(64);
      await store.upsertNode(NODE_C, CAPS, 1000);
      const j = job({ maxAttempts: 2 });
      await store.createJob(j, inputs(2));
      const leased = await store.claimTasks([{ jobId: j.id, nodeId: NODE_A, count: 2, ask: 3 }], 2000, 1000);
      assert.equal(leased.length, 2);
      const t0 = leased.find((t) => t.index === 0)!;
      const atA = { operator: 'org:acme', prefix: '10.0.0.0/24' };
      const held = await store.completeTasks(NODE_A, [{ jobId: j.id, index: 0, attempt: t0.attempt, ok: true, output: new Uint8Array([7]), fuel: 5, replicas: 2 }], 2100, undefined, atA);
      assert.deepEqual(held.statuses, ['accepted'], 'the agent is acked like any result');
      assert.deepEqual(held.verify, [{ jobId: j.id, index: 0 }]);
      const [r0] = await store.getResults(j.id, { after: -1, limit: 1 });
      assert.equal(r0?.state, 'leased', 'a held task reads as leased');
      assert.equal(r0?.output, undefined, 'nothing of the held result shows');
      assert.equal(r0?.fuel, undefined);
      await assertCountsMatch(store, j.id);
      assert.equal((await store.getJob(j.id))?.counts.leased, 2);
      assert.equal((await store.runnableJobs(2100)).find((r) => r.id === j.id)?.queued, 2, 'queued replicas are runnable work');
      assert.deepEqual(await store.jobCharges(j.id), [], 'nothing is charged before the decision');

      const claimReplica = (nodeId: string, where: { operator: string; prefix: string }, now = 2200) =>
        store.claimTasks([{ jobId: j.id, nodeId, count: 5, ask: 4, replicas: where }], now, 1000);
      assert.deepEqual(await claimReplica(NODE_A, { operator: 'node:other', prefix: '10.9.9.0/24' }), [], 'never the same node');
      assert.deepEqual(await claimReplica(NODE_B, { operator: 'org:acme', prefix: '10.1.0.0/24' }), [], 'never the same operator');
      assert.deepEqual(await claimReplica(NODE_B, { operator: 'node:b', prefix: '10.0.0.0/24' }), [], 'never the same prefix');
      const atB = { operator: 'node:b', prefix: '10.1.0.0/24' };
      const b = await claimReplica(NODE_B, atB);
      assert.equal(b.length, 1, 'one replica of a task per node, however many are queued');
      assert.equal(b[0]?.index, 0);
      assert.ok((b[0]?.attempt ?? 0) > t0.attempt, 'a replica attempt never repeats an attempt of the task');
      assert.deepEqual(b[0]?.input, inputs(2)[0]);
      assert.deepEqual(await claimReplica(NODE_C, { operator: 'node:c', prefix: '10.1.0.0/24' }), [], 'nor the prefix of another replica');
      const c = await claimReplica(NODE_C, { operator: 'node:c', prefix: '10.2.0.0/24' });
      assert.equal(c.length, 1);
      assert.deepEqual((await store.nodeLeases(NODE_B)).map((t) => t.index), [0]);
      assert.deepEqual(await store.undecidedTasks(10), [], 'replicas are out: no decision is due');

      const rb = { jobId: j.id, index: 0, attempt: b[0]!.attempt, ok: true, output: new Uint8Array([7]), fuel: 5 };
      const done = await store.completeTasks(NODE_B, [rb], 2300);
      assert.deepEqual(done.statuses, ['accepted']);
      assert.deepEqual(done.verify, [{ jobId: j.id, index: 0 }]);
      assert.deepEqual((await store.completeTasks(NODE_B, [rb], 2310)).statuses, ['duplicate']);
      assert.deepEqual((await store.completeTasks(NODE_A, [{ ...rb, attempt: t0.attempt }], 2310)).statuses, ['duplicate'], 'the held first result is a duplicate too');
      // C vanishes: its replica goes back to the queue.
      const gone = await store.failNodeLeases(NODE_C, 2400, errorFrom('IM_LEASE_EXPIRED'));
      assert.equal(gone.requeued, 1);
      const execs = await store.taskExecutions(j.id, 0);
      assert.deepEqual(execs.map((e) => [e.replica, e.state, e.nodeId]), [[0, 'done', NODE_A], [1, 'done', NODE_B], [2, 'queued', NODE_C]]);
      assert.deepEqual(execs.map((e) => e.operator), ['org:acme', 'node:b', 'node:c']);
      assert.deepEqual(execs[1]?.output, new Uint8Array([7]));
      assert.equal(await store.addReplicas(j.id, 0, 3), 0, 'adding up to a total is idempotent');
      assert.equal(await store.addReplicas(j.id, 0, 4), 1);

      const decision = { jobId: j.id, index: 0, ok: true, output: new Uint8Array([7]), fuel: 5, canonical: 0, paid: [0, 1], trust: [{ nodeId: NODE_A, valid: true }, { nodeId: NODE_B, valid: true }] };
      const d = await store.decideTask(decision, 2500);
      assert.equal(d.decided, true);
      assert.deepEqual(d.revoked, [], 'the queued replicas are cancelled, none was leased');
      assert.equal((await store.decideTask(decision, 2600)).decided, false, 'a task is decided once');
      const [after] = await store.getResults(j.id, { after: -1, limit: 1 });
      assert.equal(after?.state, 'succeeded');
      assert.deepEqual(after?.output, new Uint8Array([7]));
      assert.equal(after?.nodeId, NODE_A);
      assert.equal(after?.fuel, 5);
      await assertCountsMatch(store, j.id);
      assert.equal((await store.getJob(j.id))?.fuelUsed, 5, 'the job counts the decided fuel once');
      assert.deepEqual((await store.taskExecutions(j.id, 0)).map((e) => e.state), ['done', 'done', 'cancelled', 'cancelled']);
      const charges = await store.jobCharges(j.id);
      assert.deepEqual(charges.map((x) => [x.nodeId, x.ask, Number(x.fuel), x.executions]).sort(), [[NODE_A, 3, 5, 1], [NODE_B, 4, 5, 1]], 'each valid execution is charged at its own ask');
      const trust = await store.nodeTrust([NODE_A, NODE_B, NODE_C]);
      assert.deepEqual([...trust.values()], [1, 1, 0]);
      assert.deepEqual(await store.nodeResults(NODE_A, 2500, 10), [{ jobId: j.id, index: 0, attempt: t0.attempt, finishedAt: 2500 }], 'a decided task counts as its canonical node\'s result');
      assert.deepEqual(await store.nodeResults(NODE_A, 2501, 10), [], 'only results since then');
      assert.deepEqual(await store.nodeResults(NODE_B, 0, 10), []);
      await store.decideTask({ ...decision, index: 1 }, 2700); // task 1 is leased, not verifying: nothing happens
      assert.equal((await store.getResults(j.id, { after: 0, limit: 1 }))[0]?.state, 'leased');
    });

    it('keeps trust streaks: valid adds one, invalid resets to zero', async () => {
      const j = job();
      await store.createJob(j, inputs(3));
      const [t0, t1, t2] = await store.claimTasks([{ jobId: j.id, nodeId: NODE_A, count: 3 }], 2000, 1000);
      await store.completeTasks(NODE_A, [t0!, t1!, t2!].map((t) => ({ jobId: j.id, index: t.index, attempt: t.attempt, ok: true, output: new Uint8Array([1]), fuel: 1, replicas: 1 })), 2100);
      const decide = (index: number, valid: boolean) => store.decideTask({ jobId: j.id, index, ok: true, output: new Uint8Array([1]), fuel: 1, paid: [], trust: [{ nodeId: NODE_A, valid }] }, 2200);
      await decide(0, true);
      await decide(1, true);
      assert.equal((await store.nodeTrust([NODE_A])).get(NODE_A), 2);
      await decide(2, false);
      assert.equal((await store.nodeTrust([NODE_A])).get(NODE_A), 0);
      const [r] = await store.getResults(j.id, { after: -1, limit: 1 });
      assert.equal(r?.nodeId, undefined, 'decided by the referee alone: no node shown');
      assert.equal((await store.getJob(j.id))?.state, 'completed');
    });

    it('loses a replica that runs out of attempts, so the sweep can decide; cancels replicas with their job', async () => {
      const j = job({ maxAttempts: 1 });
      await store.createJob(j, inputs(2));
      const ts = await store.claimTasks([{ jobId: j.id, nodeId: NODE_A, count: 2 }], 2000, 1000);
      await store.completeTasks(NODE_A, ts.map((t) => ({ jobId: j.id, index: t.index, attempt: t.attempt, ok: false, fuel: 2, error: errorFrom('IM_TRAP'), replicas: 1 })), 2100,
        undefined, { operator: 'node:a', prefix: 'p-a' });
      assert.equal((await store.getJob(j.id))?.counts.failed, 0, 'a held task fault is not failed yet');
      const rs = await store.claimTasks([{ jobId: j.id, nodeId: NODE_B, count: 2, replicas: { operator: 'node:b', prefix: 'p-b' } }], 2200, 100);
      assert.equal(rs.length, 2);
      const exp = await store.expireLeases(2400, errorFrom('IM_LEASE_EXPIRED'));
      assert.equal(exp.requeued, 0, 'maxAttempts 1: the replicas are lost, not queued again');
      assert.deepEqual((await store.undecidedTasks(10)).filter((t) => t.jobId === j.id).map((t) => t.index).sort(), [0, 1]);
      assert.deepEqual((await store.taskExecutions(j.id, 1)).map((e) => e.state), ['done', 'lost']);
      assert.equal(await store.addReplicas(j.id, 1, 3), 1);
      const again = await store.claimTasks([{ jobId: j.id, nodeId: NODE_B, count: 2, replicas: { operator: 'node:b', prefix: 'p-b' } }], 2500, 1000);
      assert.equal(again.length, 1, 'a lost replica does not exclude its node');
      const c = await store.cancelJob(j.id, 2600);
      assert.deepEqual(c?.revoked.map((r) => [r.index, r.nodeId]), [[1, NODE_B]], 'a live replica lease is revoked');
      assert.equal(c?.job.counts.cancelled, 2);
      await assertCountsMatch(store, j.id);
      assert.deepEqual((await store.taskExecutions(j.id, 1)).map((e) => e.state), ['done', 'lost', 'cancelled']);
      assert.deepEqual(await store.nodeLeases(NODE_B), []);
    });

    it('gives the referee a task input, and takes its correction of a result exactly once', async () => {
      const j = job({ verification: { mode: 'spot-check', rate: 0.5 } });
      await store.createJob(j, inputs(1));
      assert.deepEqual((await store.getJob(j.id))?.verification, { mode: 'spot-check', rate: 0.5 });
      assert.equal(new TextDecoder().decode(await store.taskInput(j.id, 0)), 'in-0');
      assert.equal(await store.taskInput(j.id, 3), undefined);
      await store.claimTasks([{ jobId: j.id, nodeId: NODE_A, count: 1 }], 2000, 10_000);
      await store.completeTasks(NODE_A, [{ jobId: j.id, index: 0, attempt: 1, ok: true, output: new Uint8Array([6, 6]), fuel: 900 }], 2100);
      assert.equal(await store.correctResult(j.id, 0, NODE_B, 1, new Uint8Array([1]), 100, 2200), false, 'not the node that gave it');
      assert.equal(await store.correctResult(j.id, 0, NODE_A, 2, new Uint8Array([1]), 100, 2200), false, 'not that attempt');
      assert.equal(await store.correctResult(j.id, 0, NODE_A, 1, new Uint8Array([1]), 100, 2200), true);
      const [r] = await store.getResults(j.id, { after: -1, limit: 1 });
      assert.deepEqual(r?.output, new Uint8Array([1]));
      assert.equal(r?.fuel, 100);
      assert.equal((await store.getJob(j.id))?.fuelUsed, 100, 'the job\'s fuel moves by the difference');
      assert.equal(await store.correctResult(j.id, 0, NODE_A, 1, new Uint8Array([1]), 100, 2300), true);
      assert.equal((await store.getJob(j.id))?.fuelUsed, 100, 'a repeat changes nothing');
    });

    it('completes a job when every task is terminal', async () => {
      const j = job();
      await store.createJob(j, inputs(2));
      const c = await store.claimTasks([{ jobId: j.id, nodeId: NODE_A, count: 10 }], 2000, 10_000);
      assert.equal(c.length, 2);
      await store.completeTasks(NODE_A, c.map((t) => ({ jobId: t.jobId, index: t.index, attempt: t.attempt, ok: true, output: new Uint8Array(), fuel: 1 })), 3000);
      const done = await store.getJob(j.id);
      assert.equal(done?.state, 'completed');
      assert.equal(done?.finishedAt, 3000);
      assert.equal((await store.runnableJobs(3000)).length, 0);
    });

    it('fails task faults at once and retries infrastructure errors with backoff up to maxAttempts', async () => {
      const j = job({ maxAttempts: 2, retryBackoffMs: 100 });
      await store.createJob(j, inputs(2));
      await store.claimTasks([{ jobId: j.id, nodeId: NODE_A, count: 2 }], 1000, 10_000);
      const fault = { jobId: j.id, index: 0, attempt: 1, ok: false, fuel: 1000, error: errorFrom('IM_FUEL_EXHAUSTED') };
      const flaky = { jobId: j.id, index: 1, attempt: 1, ok: false, fuel: 0, error: errorFrom('IM_TIMEOUT') };
      assert.deepEqual((await store.completeTasks(NODE_A, [fault, flaky], 1000)).statuses, ['accepted', 'accepted']);
      let rows = await store.getResults(j.id, { after: -1, limit: 10 });
      assert.equal(rows[0]?.state, 'failed');
      assert.equal(rows[0]?.error?.code, 'IM_FUEL_EXHAUSTED');
      assert.equal(rows[1]?.state, 'queued');
      // In backoff: not claimable before 1000 + 100.
      assert.equal((await store.claimTasks([{ jobId: j.id, nodeId: NODE_B, count: 5 }], 1050, 10_000)).length, 0);
      const again = await store.claimTasks([{ jobId: j.id, nodeId: NODE_B, count: 5 }], 1100, 10_000);
      assert.deepEqual(again.map((t) => [t.index, t.attempt]), [[1, 2]]);
      await store.completeTasks(NODE_B, [{ ...flaky, attempt: 2 }], 1200);
      rows = await store.getResults(j.id, { after: -1, limit: 10 });
      assert.equal(rows[1]?.state, 'failed', 'second failure exhausts maxAttempts=2');
      assert.equal(rows[1]?.error?.code, 'IM_TIMEOUT');
      assert.equal((await store.getJob(j.id))?.state, 'completed');
      await assertCountsMatch(store, j.id);
    });

    it('hands leases back without counting a failure; the old attempt can no longer report', async () => {
      const j = job({ maxAttempts: 1 });
      await store.createJob(j, inputs(2));
      const c = await store.claimTasks([{ jobId: j.id, nodeId: NODE_A, count: 2 }], 1000, 10_000);
      assert.deepEqual((await store.nodeLeases(NODE_A)).map((t) => [t.index, t.attempt]).sort(), [[0, 1], [1, 1]]);
      assert.deepEqual(await store.nodeLeases(NODE_B), []);
      const r = await store.releaseTasks(NODE_A, c.map((t) => ({ jobId: t.jobId, index: t.index, attempt: t.attempt })), 1100);
      assert.equal(r.released, 2);
      assert.ok(r.jobs.has(j.id));
      assert.equal((await store.releaseTasks(NODE_A, [{ jobId: j.id, index: 0, attempt: 1 }], 1100)).released, 0, 'second release is a no-op');
      const c2 = await store.claimTasks([{ jobId: j.id, nodeId: NODE_B, count: 2 }], 1200, 10_000);
      assert.deepEqual(c2.map((t) => t.attempt), [2, 2]);
      assert.deepEqual((await store.completeTasks(NODE_A, [{ jobId: j.id, index: 0, attempt: 1, ok: true, fuel: 1 }], 1300)).statuses, ['rejected']);
      await assertCountsMatch(store, j.id);
    });

    it('expires leases and fails a vanished node\'s leases, requeueing until attempts run out', async () => {
      const j = job({ maxAttempts: 2, retryBackoffMs: 0 });
      await store.createJob(j, inputs(3));
      await store.claimTasks([{ jobId: j.id, nodeId: NODE_A, count: 2 }], 1000, 500);
      await store.claimTasks([{ jobId: j.id, nodeId: NODE_B, count: 1 }], 1000, 5000);
      assert.equal(await store.extendLeases(NODE_B, 1000, 10_000), 1);
      const r = await store.expireLeases(1600, errorFrom('IM_LEASE_EXPIRED'));
      assert.equal(r.requeued, 2);
      assert.equal(r.failed, 0);
      assert.equal((await store.expireLeases(1600, errorFrom('IM_LEASE_EXPIRED'))).requeued, 0, 'expiry is idempotent');
      const f = await store.failNodeLeases(NODE_B, 1700, errorFrom('IM_LEASE_EXPIRED'));
      assert.equal(f.requeued, 1);
      const c = await store.claimTasks([{ jobId: j.id, nodeId: NODE_A, count: 3 }], 1800, 100);
      assert.equal(c.length, 3);
      const r2 = await store.expireLeases(2000, errorFrom('IM_LEASE_EXPIRED'));
      assert.equal(r2.failed, 3, 'second loss exhausts maxAttempts=2');
      const rows = await store.getResults(j.id, { after: -1, limit: 10 });
      assert.ok(rows.every((x) => x.state === 'failed' && x.error?.code === 'IM_LEASE_EXPIRED'));
      await assertCountsMatch(store, j.id);
      const nodes = await store.listNodes();
      assert.ok((nodes.find((n) => n.id === NODE_A)?.failed ?? 0) >= 2);
    });

    it('keeps a reconnected node\'s leases when its old session closes', async () => {
      const j = job({ retryBackoffMs: 0 });
      await store.createJob(j, inputs(2));
      await store.upsertNode(NODE_A, CAPS, 1000, 'session-1');
      await store.claimTasks([{ jobId: j.id, nodeId: NODE_A, count: 2 }], 1000, 10_000);
      await store.upsertNode(NODE_A, CAPS, 1100, 'session-2');
      await store.setNodeState(NODE_A, 'offline', undefined, 1150, 'session-1');
      assert.equal((await store.listNodes()).find((n) => n.id === NODE_A)?.state, 'online', 'a stale session cannot mark the node offline');
      const stale = await store.failNodeLeases(NODE_A, 1200, errorFrom('IM_LEASE_EXPIRED'), 'session-1');
      assert.equal(stale.requeued + stale.failed, 0, 'the old session no longer owns the node');
      assert.equal((await store.getJob(j.id))?.counts.leased, 2);
      const current = await store.failNodeLeases(NODE_A, 1300, errorFrom('IM_LEASE_EXPIRED'), 'session-2');
      assert.equal(current.requeued, 2);
      await assertCountsMatch(store, j.id);
    });

    it('elects itself leader and accepts publish/subscribe', async () => {
      assert.equal(await store.holdsLock('sweep'), true);
      assert.equal(await store.holdsLock('sweep'), true, 'holding is re-entrant');
      const unsubscribe = await store.subscribe(() => undefined);
      await store.publish({ type: 'work' });
      await unsubscribe();
    });

    it('cancels a job: queued and leased tasks stop, live leases are reported for revocation', async () => {
      const j = job();
      await store.createJob(j, inputs(4));
      await store.claimTasks([{ jobId: j.id, nodeId: NODE_A, count: 1 }], 1000, 10_000);
      const r = await store.cancelJob(j.id, 1100);
      assert.equal(r?.job.state, 'cancelled');
      assert.equal(r?.job.counts.cancelled, 4);
      assert.deepEqual(r?.revoked.map((t) => [t.index, t.nodeId]), [[0, NODE_A]]);
      assert.equal((await store.claimTasks([{ jobId: j.id, nodeId: NODE_A, count: 4 }], 1200, 10_000)).length, 0);
      assert.deepEqual((await store.completeTasks(NODE_A, [{ jobId: j.id, index: 0, attempt: 1, ok: true, fuel: 1 }], 1300)).statuses, ['rejected']);
      assert.equal((await store.cancelJob(j.id, 1400))?.revoked.length, 0, 'cancel is idempotent');
      assert.equal(await store.cancelJob(newJobId(1), 1), undefined);
      await assertCountsMatch(store, j.id);
    });

    it('pages results and filters by state', async () => {
      const j = job();
      await store.createJob(j, inputs(7));
      const c = await store.claimTasks([{ jobId: j.id, nodeId: NODE_A, count: 3 }], 1000, 10_000);
      await store.completeTasks(NODE_A, c.map((t) => ({ jobId: t.jobId, index: t.index, attempt: t.attempt, ok: true, fuel: 1 })), 1100);
      const p1 = await store.getResults(j.id, { after: -1, limit: 4 });
      const p2 = await store.getResults(j.id, { after: 3, limit: 4 });
      assert.deepEqual([...p1, ...p2].map((r) => r.index), [0, 1, 2, 3, 4, 5, 6]);
      assert.deepEqual((await store.getResults(j.id, { after: -1, limit: 10, state: 'succeeded' })).map((r) => r.index), [0, 1, 2]);
    });

    it('lists runnable jobs with their queued counts', async () => {
      const a = job({ priority: 2 });
      const b = job();
      await store.createJob(a, inputs(2));
      await store.createJob(b, inputs(1));
      await store.claimTasks([{ jobId: b.id, nodeId: NODE_A, count: 1 }], 1000, 10_000);
      const r = await store.runnableJobs(1000);
      assert.deepEqual(r.map((x) => [x.id, x.queued, x.priority, x.memoryMb]), [[a.id, 2, 2, 16]]);
    });

    it('tracks nodes, their state and running leases', async () => {
      const j = job();
      await store.createJob(j, inputs(2));
      await store.claimTasks([{ jobId: j.id, nodeId: NODE_A, count: 2 }], 1000, 10_000);
      await store.setNodeState(NODE_A, 'paused', 'on battery', 1500);
      const a = (await store.listNodes()).find((n) => n.id === NODE_A);
      assert.equal(a?.state, 'paused');
      assert.equal(a?.pauseReason, 'on battery');
      assert.equal(a?.running, 2);
      assert.equal(a?.capabilities.cores, 2);
      await store.upsertNode(NODE_A, { ...CAPS, cores: 8 }, 2000);
      const a2 = (await store.listNodes()).find((n) => n.id === NODE_A);
      assert.equal(a2?.state, 'online');
      assert.equal(a2?.capabilities.cores, 8);
      assert.equal(a2?.firstSeen, 1000);
    });

    it('marks nodes offline that stopped heart-beating', async () => {
      await store.extendLeases(NODE_A, 5000, 1000);
      assert.equal(await store.markStaleNodes(4000), 1, 'B was last seen at 1000');
      const nodes = await store.listNodes();
      assert.equal(nodes.find((n) => n.id === NODE_A)?.state, 'online');
      assert.equal(nodes.find((n) => n.id === NODE_B)?.state, 'offline');
      assert.equal(await store.markStaleNodes(4000), 0, 'idempotent');
    });

    it('refuses a nonce seen before and forgets expired ones', async () => {
      assert.equal(await store.useNonce(NODE_A, 'n1', 5000), true);
      assert.equal(await store.useNonce(NODE_A, 'n1', 5000), false);
      assert.equal(await store.useNonce(NODE_B, 'n1', 5000), true, 'nonces are per node');
      assert.equal(await store.purgeNonces(6000), 2);
      assert.equal(await store.useNonce(NODE_A, 'n1', 9000), true);
    });

    it('keeps counts equal to task states under any sequence of operations (property)', async () => {
      const j = job({ maxAttempts: 3, retryBackoffMs: 0 });
      await store.createJob(j, inputs(12));
      const op = fc.oneof(
        fc.record({ k: fc.constant('claim' as const), node: fc.constantFrom(NODE_A, NODE_B), n: fc.integer({ min: 1, max: 5 }) }),
        fc.record({ k: fc.constant('complete' as const), node: fc.constantFrom(NODE_A, NODE_B), idx: fc.nat(11), ok: fc.boolean(), retry: fc.boolean() }),
        fc.record({ k: fc.constant('release' as const), node: fc.constantFrom(NODE_A, NODE_B), idx: fc.nat(11) }),
        fc.record({ k: fc.constant('expire' as const) }),
        fc.record({ k: fc.constant('vanish' as const), node: fc.constantFrom(NODE_A, NODE_B) }),
      );
      let clock = 10_000;
      await fc.assert(
        fc.asyncProperty(fc.array(op, { maxLength: 25 }), async (ops) => {
          for (const o of ops) {
            clock += 10;
            const rows = await store.getResults(j.id, { after: -1, limit: 100 });
            if (o.k === 'claim') await store.claimTasks([{ jobId: j.id, nodeId: o.node, count: o.n }], clock, 50);
            else if (o.k === 'complete' || o.k === 'release') {
              const t = rows[o.idx];
              if (!t) continue;
              if (o.k === 'release') await store.releaseTasks(o.node, [{ jobId: j.id, index: o.idx, attempt: t.attempt }], clock);
              else {
                await store.completeTasks(o.node, [{
                  jobId: j.id, index: o.idx, attempt: t.attempt, ok: o.ok, fuel: 1,
                  ...(o.ok ? { output: new Uint8Array([1]) } : { error: errorFrom(o.retry ? 'IM_TIMEOUT' : 'IM_TRAP') }),
                }], clock);
              }
            } else if (o.k === 'expire') await store.expireLeases(clock, errorFrom('IM_LEASE_EXPIRED'));
            else await store.failNodeLeases(o.node, clock, errorFrom('IM_LEASE_EXPIRED'));
            await assertCountsMatch(store, j.id);
          }
        }),
        { numRuns: 40 },
      );
    });
  });
}
