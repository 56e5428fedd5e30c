/**
 * The ledger half of the store contract: every store must keep money exactly
 * as the pure in-memory ledger does, and pass the audit after anything.
 */
import { describe, it, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ImError } from '@idlemesh/protocol';
import type { Capabilities } from '@idlemesh/protocol';
import { balance, createAccounts, createLedger, submit } from '../src/ledger/index.js';
import type { AccountInput, LedgerEvent } from '../src/ledger/index.js';
import { auditLog } from '../src/ledger/persist.js';
import { finalizePlan, holdPlan, settlementPlan, settlementPlanner } from '../src/settlement/index.js';
import { bond, getBond } from '../src/ledger/index.js';
import { hydrate } from '../src/ledger/persist.js';
import { slash, unbond } from '../src/ledger/stakes.js';
import { price } from '../src/pricing/index.js';
import type { Store } from '../src/store/index.js';
import { inputs, job } from './store-conformance.js';

const NODE = 'c'.repeat(64);
const CAPS: Capabilities = {
  runtimes: ['wasm'], cores: 2, memoryMb: 1024, arch: 'x64', os: 'linux', gpus: [], maxTasks: 2,
  benchmark: { fuelPerSec: 1e9 }, agentVersion: 'test', ask: 2000,
};
const FEES = { coordinatorFeeBps: 500, poolFeeBps: 500 };
const ACCS: AccountInput[] = [
  { id: 'treasury', kind: 'treasury' }, { id: 'buyer:x', kind: 'buyer' }, { id: 'buyer:y', kind: 'buyer' },
  { id: 'escrow', kind: 'escrow' }, { id: 'operator:n', kind: 'operator' },
];

async function audit(store: Store): Promise<void> {
  const d = await store.ledgerDump();
  assert.deepEqual(auditLog(d.accountEvents, d.transfers, d.accounts, d.head), []);
}

export function ledgerConformance(name: string, open: () => Promise<Store>, runs = 25): void {
  describe(`store ledger conformance: ${name}`, () => {
    let store: Store;
    beforeEach(async () => {
      store = await open();
    });
    afterEach(async () => {
      await store.close();
    });

    it('applies a batch as the in-memory ledger does, idempotently, and audits clean', async () => {
      const events: LedgerEvent[] = [
        { id: 'd1', debitAccount: 'treasury', creditAccount: 'buyer:x', amount: 10_000n, code: 'deposit' },
        { id: 'h1', type: 'pending', debitAccount: 'buyer:x', creditAccount: 'escrow', amount: 6_000n, code: 'escrow', ref: 'job1' },
      ];
      const first = await store.ledgerApply({ accounts: ACCS, events }, 5000);
      assert.deepEqual(first.results.map((r) => r.status), ['ok', 'ok']);
      const again = await store.ledgerApply({ accounts: ACCS, events }, 6000);
      assert.deepEqual(again.results.map((r) => r.status), ['exists', 'exists']);
      assert.deepEqual(again.accountResults.map((r) => r.status), ACCS.map(() => 'exists'));
      const post = await store.ledgerApply({ events: [{ id: 'p1', type: 'post', pendingId: 'h1', amount: 2_500n }] }, 7000);
      assert.equal(post.results[0]?.status, 'ok');
      const conflict = await store.ledgerApply({ events: [{ id: 'd1', debitAccount: 'treasury', creditAccount: 'buyer:x', amount: 1n, code: 'deposit' }] }, 8000);
      assert.equal(conflict.results[0]?.code, 'IM_LEDGER_ID_CONFLICT');
      const [x] = await store.ledgerBalances({ ids: ['buyer:x'], limit: 1 });
      assert.equal(x?.net, 7_500n);
      assert.equal(x?.available, 7_500n);
      assert.equal(x?.debitsPending, 0n);
      const ts = await store.ledgerTransfers({ ref: 'job1', limit: 10 });
      assert.deepEqual(ts.map((t) => t.id), ['h1', 'p1']);
      assert.deepEqual((await store.ledgerTransfers({ account: 'buyer:x', limit: 2, newestFirst: true })).map((t) => t.id), ['p1', 'h1']);
      assert.equal(ts[1]?.amount, 2_500n);
      await audit(store);
    });

    it('an atomic batch that fails changes nothing and throws the ledger code', async () => {
      await store.ledgerApply({ accounts: ACCS, events: [{ id: 'd1', debitAccount: 'treasury', creditAccount: 'buyer:x', amount: 100n, code: 'deposit' }] }, 1);
      const before = await store.ledgerDump();
      await assert.rejects(
        store.ledgerApply({ events: [
          { id: 'ok-part', debitAccount: 'buyer:x', creditAccount: 'escrow', amount: 50n, code: 'escrow', linked: true },
          { id: 'too-much', debitAccount: 'buyer:x', creditAccount: 'escrow', amount: 51n, code: 'escrow' },
        ] }, 2, { atomic: true }),
        (e: unknown) => e instanceof ImError && e.code === 'IM_LEDGER_INSUFFICIENT_FUNDS',
      );
      assert.deepEqual(await store.ledgerDump(), before);
    });

    it('expires pendings whose timeout passed, once', async () => {
      await store.ledgerApply({ accounts: ACCS, events: [
        { id: 'd1', debitAccount: 'treasury', creditAccount: 'buyer:x', amount: 100n, code: 'deposit' },
        { id: 'p1', type: 'pending', debitAccount: 'buyer:x', creditAccount: 'escrow', amount: 60n, code: 'escrow', timeout: 1000 },
      ] }, 10_000);
      assert.equal(await store.ledgerExpire(10_999), 0);
      assert.equal(await store.ledgerExpire(11_000), 1);
      assert.equal(await store.ledgerExpire(12_000), 0);
      const [x] = await store.ledgerBalances({ ids: ['buyer:x'], limit: 1 });
      assert.equal(x?.available, 100n);
      const late = await store.ledgerApply({ events: [{ id: 'post-late', type: 'post', pendingId: 'p1' }] }, 13_000);
      assert.equal(late.results[0]?.code, 'IM_LEDGER_PENDING_EXPIRED');
      await audit(store);
    });

    it('property: random batches give the same results and balances as the in-memory ledger', async () => {
      const ids = ['buyer:x', 'buyer:y', 'escrow', 'operator:n'];
      const acct = fc.constantFrom(...ids);
      const ev = fc.oneof(
        fc.record({ kind: fc.constant('deposit' as const), to: acct, amount: fc.bigInt(1n, 5000n) }),
        fc.record({ kind: fc.constant('move' as const), from: acct, to: acct, amount: fc.bigInt(1n, 5000n), pending: fc.boolean(), linked: fc.boolean() }),
        fc.record({ kind: fc.constant('resolve' as const), which: fc.nat(40), post: fc.boolean(), amount: fc.option(fc.bigInt(1n, 5000n)) }),
      );
      await fc.assert(fc.asyncProperty(fc.array(fc.array(ev, { minLength: 1, maxLength: 5 }), { minLength: 1, maxLength: 8 }), async (batches) => {
        const s = await open();
        try {
          const mem = createLedger();
          createAccounts(mem, ACCS, 1);
          await s.ledgerApply({ accounts: ACCS, events: [] }, 1);
          let n = 0;
          const pendings: string[] = [];
          let clock = 10;
          for (const b of batches) {
            clock += 7;
            const events: LedgerEvent[] = b.map((e): LedgerEvent => {
              const id = `t${n++}`;
              if (e.kind === 'deposit') return { id, debitAccount: 'treasury', creditAccount: e.to, amount: e.amount, code: 'deposit' };
              if (e.kind === 'move') {
                if (e.pending) pendings.push(id);
                return e.pending
                  ? { id, type: 'pending', debitAccount: e.from, creditAccount: e.to, amount: e.amount, code: 'payment', linked: e.linked, timeout: 20 }
                  : { id, debitAccount: e.from, creditAccount: e.to, amount: e.amount, code: 'payment', linked: e.linked };
              }
              const p = pendings[e.which % Math.max(1, pendings.length)] ?? 'none';
              return e.post
                ? { id, type: 'post', pendingId: p, ...(e.amount !== null ? { amount: e.amount } : {}) }
                : { id, type: 'void', pendingId: p };
            });
            if (events.at(-1)) events[events.length - 1] = { ...events[events.length - 1]!, linked: false };
            const want = submit(mem, events, clock);
            const got = await s.ledgerApply({ events }, clock);
            assert.deepEqual(got.results.map((r) => [r.id, r.status, r.code]), want.results.map((r) => [r.id, r.status, r.code]));
            assert.deepEqual(got.transfers.map((t) => t.id), want.appended.map((t) => t.id));
          }
          const stored = await s.ledgerBalances({ prefix: '', limit: 100 });
          for (const b of stored) {
            const m = balance(mem, b.id);
            assert.deepEqual([b.debitsPosted, b.creditsPosted, b.debitsPending, b.creditsPending], [m?.debitsPosted, m?.creditsPosted, m?.debitsPending, m?.creditsPending], b.id);
          }
          await audit(s);
        } finally {
          await s.close();
        }
      }), { numRuns: runs });
    });

    it('a paid job: the hold is placed with the job, charges accrue at the lease ask, settlement pays exactly once', async () => {
      await store.upsertNode(NODE, CAPS, 1000);
      const j = job({ limits: { fuel: 1_000_000_000, memoryMb: 16, timeoutMs: 1000, outputBytes: 1024 }, bid: 3000, buyer: 'buyer:x', fees: FEES });
      const hold = holdPlan({ jobId: j.id, buyer: 'buyer:x', tasks: 3, fuelLimit: j.limits.fuel, bid: 3000, maxExecutionsPerTask: 1, fees: FEES });
      assert.ok(hold);
      assert.equal(hold.amount, 9_900n); // 3 tasks × 1 EU × 3000 msat × 1.10
      // Not funded: nothing is created.
      await assert.rejects(store.createJob({ ...j, holdMsat: hold.amount }, inputs(3), hold.batch), (e: unknown) => e instanceof ImError && e.code === 'IM_LEDGER_ACCOUNT_NOT_FOUND');
      assert.equal(await store.getJob(j.id), undefined);
      await store.ledgerApply({ accounts: ACCS, events: [{ id: 'fund', debitAccount: 'treasury', creditAccount: 'buyer:x', amount: 9_000n, code: 'deposit' }] }, 1000);
      await assert.rejects(store.createJob({ ...j, holdMsat: hold.amount }, inputs(3), hold.batch), (e: unknown) => e instanceof ImError && e.code === 'IM_LEDGER_INSUFFICIENT_FUNDS');
      assert.equal(await store.getJob(j.id), undefined);
      await store.ledgerApply({ events: [{ id: 'fund2', debitAccount: 'treasury', creditAccount: 'buyer:x', amount: 1_000n, code: 'deposit' }] }, 1000);
      const { job: created } = await store.createJob({ ...j, holdMsat: hold.amount }, inputs(3), hold.batch);
      assert.equal(created.holdMsat, 9_900n);
      assert.equal(created.buyer, 'buyer:x');
      const [held] = await store.ledgerBalances({ ids: ['buyer:x'], limit: 1 });
      assert.equal(held?.available, 100n);

      const claimed = await store.claimTasks([{ jobId: j.id, nodeId: NODE, count: 3, ask: 2000 }], 2000, 10_000);
      assert.equal(claimed.length, 3);
      const fuels = [400_000_000, 700_000_001, 1];
      await store.completeTasks(NODE, claimed.slice(0, 2).map((t, i) => ({ jobId: t.jobId, index: t.index, attempt: t.attempt, ok: true, output: new Uint8Array([1]), fuel: fuels[i]! })), 3000);
      // A trap is the task's own fault: paid. A lease expiry would not be.
      const t2 = claimed[2]!;
      await store.completeTasks(NODE, [{ jobId: t2.jobId, index: t2.index, attempt: t2.attempt, ok: false, fuel: fuels[2]!, error: { code: 'IM_WASM_TRAP', message: 'unreachable', retryable: false } }], 3000);
      const charges = await store.jobCharges(j.id);
      assert.deepEqual(charges.map((c) => [c.nodeId, c.ask, c.fuel, c.fuelAsk, c.executions]), [[NODE, 2000, 1_100_000_002n, 2_200_000_004_000n, 3]]);

      const first = await store.settleJob(j.id, settlementPlan, 4000);
      assert.equal(first.settled, true);
      assert.deepEqual(await store.settleJob(j.id, settlementPlan, 5000), { settled: false });
      const expected = price(1_100_000_002, 2000, FEES); // one accrual, floored once
      const got = await store.ledgerBalances({ ids: ['buyer:x', `operator:${NODE}`, 'coordinator-fee', 'reward-pool', 'escrow'], limit: 10 });
      const by = new Map(got.map((b) => [b.id, b]));
      assert.equal(by.get('buyer:x')?.net, 10_000n - expected.buyerPays);
      assert.equal(by.get('buyer:x')?.debitsPending, 0n);
      assert.equal(by.get(`operator:${NODE}`)?.net, expected.operator);
      assert.equal(by.get('coordinator-fee')?.net, expected.coordinatorFee);
      assert.equal(by.get('reward-pool')?.net, expected.pool);
      assert.equal(by.get('escrow')?.net, 0n);
      assert.equal((await store.getJob(j.id))?.settledAt, 4000);
      await audit(store);
    });

    it('a job that ends with nothing charged voids its hold', async () => {
      await store.ledgerApply({ accounts: ACCS, events: [{ id: 'fund', debitAccount: 'treasury', creditAccount: 'buyer:y', amount: 50_000n, code: 'deposit' }] }, 1000);
      const j = job({ bid: 1000, buyer: 'buyer:y', fees: FEES });
      const hold = holdPlan({ jobId: j.id, buyer: 'buyer:y', tasks: 2, fuelLimit: j.limits.fuel, bid: 1000, maxExecutionsPerTask: 1, fees: FEES })!;
      await store.createJob({ ...j, holdMsat: hold.amount }, inputs(2), hold.batch);
      await store.cancelJob(j.id, 2000);
      assert.equal((await store.settleJob(j.id, settlementPlan, 3000)).settled, true);
      const [y] = await store.ledgerBalances({ ids: ['buyer:y'], limit: 1 });
      assert.equal(y?.available, 50_000n);
      assert.deepEqual((await store.ledgerTransfers({ ref: j.id, limit: 10 })).map((t) => t.type), ['pending', 'void']);
      await audit(store);
    });

    it('money records commit with their ledger batch, only from the expected state', async () => {
      await store.commitRecords({ records: [{ kind: 'withdrawal', id: 'w1', state: 'queued', doc: { amount: 12n, to: 'x' } }],
        batch: { accounts: ACCS, events: [{ id: 'd1', debitAccount: 'treasury', creditAccount: 'buyer:x', amount: 100n, code: 'deposit' }] } }, 10);
      const [w] = await store.records('withdrawal', { ids: ['w1'], limit: 5 });
      assert.deepEqual(w?.doc, { amount: 12n, to: 'x' });
      assert.equal(w?.state, 'queued');
      // Wrong prior state: nothing is written, not even the ledger part.
      await assert.rejects(store.commitRecords({ expect: [{ kind: 'withdrawal', id: 'w1', states: ['sent'] }], records: [{ kind: 'withdrawal', id: 'w1', state: 'done', doc: {} }],
        batch: { events: [{ id: 'd2', debitAccount: 'treasury', creditAccount: 'buyer:x', amount: 5n, code: 'deposit' }] } }, 11), (e: unknown) => e instanceof ImError && e.code === 'IM_CONFLICT');
      assert.equal((await store.records('withdrawal', { states: ['queued'], limit: 5 })).length, 1);
      assert.equal((await store.ledgerBalances({ ids: ['buyer:x'], limit: 1 }))[0]?.net, 100n);
      // A ledger failure rolls back the records too.
      await assert.rejects(store.commitRecords({ records: [{ kind: 'withdrawal', id: 'w2', state: 'queued', doc: {} }],
        batch: { events: [{ id: 'w2', debitAccount: 'buyer:x', creditAccount: 'escrow', amount: 1000n, code: 'payout' }] } }, 12));
      assert.equal((await store.records('withdrawal', { ids: ['w2'], limit: 5 })).length, 0);
      await audit(store);
    });

    it('deposit addresses: fresh per request, in index order, up to the gap limit', async () => {
      const derive = (i: number): string => `addr${i}`;
      const a = await store.issueDepositAddress('buyer:x', derive, 3, 1);
      const b = await store.issueDepositAddress('buyer:y', derive, 3, 2);
      const c = await store.issueDepositAddress('buyer:x', derive, 3, 3);
      assert.deepEqual([a.index, b.index, c.index], [0, 1, 2]);
      const again = await store.issueDepositAddress('buyer:x', derive, 3, 4);
      assert.deepEqual([again.reused, again.address], [true, 'addr2']);
      await assert.rejects(store.issueDepositAddress('buyer:z', derive, 3, 5), (e: unknown) => e instanceof ImError && e.code === 'IM_RATE_LIMITED');
      await store.commitRecords({ usedAddresses: ['addr1'] }, 6);
      const d = await store.issueDepositAddress('buyer:z', derive, 3, 7);
      assert.deepEqual([d.index, d.reused], [3, false]);
      assert.deepEqual((await store.depositAddresses()).map((x) => [x.address, x.account]), [['addr0', 'buyer:x'], ['addr1', 'buyer:y'], ['addr2', 'buyer:x'], ['addr3', 'buyer:z']]);
    });

    it('earnings in a challenge window stay pending (not spendable) until it closes, then post once', async () => {
      await store.upsertNode(NODE, CAPS, 1000);
      await store.ledgerApply({ accounts: ACCS, events: [{ id: 'fund', debitAccount: 'treasury', creditAccount: 'buyer:x', amount: 100_000n, code: 'deposit' }] }, 1000);
      const j = job({ limits: { fuel: 1_000_000_000, memoryMb: 16, timeoutMs: 1000, outputBytes: 1024 }, bid: 5000, buyer: 'buyer:x', fees: FEES });
      const hold = holdPlan({ jobId: j.id, buyer: 'buyer:x', tasks: 1, fuelLimit: j.limits.fuel, bid: 5000, maxExecutionsPerTask: 1, fees: FEES })!;
      await store.createJob({ ...j, holdMsat: hold.amount }, inputs(1), hold.batch);
      const [t] = await store.claimTasks([{ jobId: j.id, nodeId: NODE, count: 1, ask: 4000 }], 2000, 10_000);
      await store.completeTasks(NODE, [{ jobId: j.id, index: t!.index, attempt: t!.attempt, ok: true, output: new Uint8Array(), fuel: 500_000_000 }], 3000);
      assert.equal((await store.settleJob(j.id, settlementPlanner({ challengeWindowMs: 60_000, now: 4000 }), 4000)).settled, true);
      const op = `operator:${NODE}`;
      let [o] = await store.ledgerBalances({ ids: [op], limit: 1 });
      assert.equal(o?.creditsPending, 2000n);
      assert.equal(o?.available, 0n, 'not withdrawable yet');
      const open = await store.ledgerOpenPendings({ codes: ['payment', 'fee', 'pool'], limit: 10 });
      assert.deepEqual(open.map((p) => p.code).sort(), ['fee', 'payment', 'pool']);
      assert.equal(finalizePlan(open, 63_999).events.length, 0);
      await store.ledgerApply(finalizePlan(open, 64_000), 64_000);
      await store.ledgerApply(finalizePlan(open, 64_000), 64_001); // again: exists, nothing moves
      [o] = await store.ledgerBalances({ ids: [op], limit: 1 });
      assert.deepEqual([o?.available, o?.creditsPending], [2000n, 0n]);
      assert.equal((await store.ledgerOpenPendings({ codes: ['payment'], limit: 10 })).length, 0);
      const [x] = await store.ledgerBalances({ ids: ['buyer:x'], limit: 1 });
      assert.equal(x?.net, 100_000n - 2200n);
      await audit(store);
    });

    it('bond, unbond, slash during unbonding, release the rest: balances and the audit hold', async () => {
      await store.ledgerApply({ accounts: [...ACCS, { id: 'stake:n', kind: 'stake' }, { id: 'reward-pool', kind: 'reward-pool' }],
        events: [{ id: 'earn', debitAccount: 'treasury', creditAccount: 'operator:n', amount: 10_000n, code: 'deposit' }] }, 1);
      await store.ledgerApply({ events: bond({ id: 'b1', operator: 'operator:n', stakeAccount: 'stake:n', amount: 8000n, node: 'n' }) }, 2);
      const load = async (): Promise<ReturnType<typeof hydrate>> => hydrate({ seq: 0, clock: 0 }, [], await store.ledgerTransfers({ ref: 'b1', limit: 100 }));
      await store.ledgerApply({ events: unbond(await load(), 'b1', 100, { unbondingMs: 1000 }), refs: ['b1'] }, 100);
      assert.equal(getBond(await load(), 'b1')?.status, 'unbonding');
      const sl = slash(await load(), { bondId: 'b1', evidenceId: 'ev1', bps: 2500, to: [{ account: 'reward-pool', weight: 1 }] });
      const r = await store.ledgerApply({ events: sl, refs: ['b1'] }, 200);
      assert.ok(r.results.every((x) => x.status === 'ok'), JSON.stringify(r.results));
      const b = getBond(await load(), 'b1');
      assert.equal(b?.slashed, 2000n);
      assert.equal(b?.remaining, 6000n);
      const [stake] = await store.ledgerBalances({ ids: ['stake:n'], limit: 1 });
      assert.equal(stake?.net, 6000n);
      const [op] = await store.ledgerBalances({ ids: ['operator:n'], limit: 1 });
      assert.equal(op?.available, 2000n, 'the unbonding remainder is still locked');
      await audit(store);
    });

    it('audit log: appends in order, the head root is the Merkle root of the stored leaves, checkpoints are kept', async () => {
      const { auditEntryLeafHash, merkleRoot } = await import('@idlemesh/protocol');
      const a = await store.auditAppend([{ time: 1, type: 'key.created', subject: 'k1' }, { time: 1, type: 'key.revoked', subject: 'k1', data: { why: 'test' } }]);
      const b = await store.auditAppend([{ time: 2, type: 'policy.changed', org: 'o1' }]);
      assert.deepEqual([a.size, b.size], [2, 3]);
      const entries = await store.auditEntries(0, 10);
      assert.deepEqual(entries.map((e) => [e.seq, e.type]), [[0, 'key.created'], [1, 'key.revoked'], [2, 'policy.changed']]);
      const leaves = await store.auditLeafHashes(0, 3);
      assert.deepEqual(leaves, entries.map((e) => auditEntryLeafHash(e)));
      assert.deepEqual((await store.auditHead()).root, merkleRoot(leaves));
      assert.deepEqual(b.root, merkleRoot(leaves));
      await assert.rejects(store.auditAppend([{ time: 3, type: 'bad', data: { n: Number.NaN } }]));
      assert.equal((await store.auditHead()).size, 3, 'a refused entry appends nothing');
      await store.auditPutCheckpoint(2, 'note-2', 10);
      await store.auditPutCheckpoint(3, 'note-3', 11);
      assert.equal((await store.auditCheckpoint())?.note, 'note-3');
      assert.equal((await store.auditCheckpoint(2))?.note, 'note-2');
    });
  });
}
