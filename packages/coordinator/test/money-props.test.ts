/**
 * Property: random sequences of deposits, paid jobs (submit, work, cancel,
 * settle), withdrawals (paid or refunded) and crashes (the SQLite file closed
 * and reopened) never create or lose money: the audit is clean after every
 * run, and everything outside the treasury adds up to deposits minus
 * completed payouts.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { ImError } from '@idlemesh/protocol';
import type { Capabilities } from '@idlemesh/protocol';
import { auditLog } from '../src/ledger/persist.js';
import { ACCOUNTS, depositPlan, finalizePlan, holdPlan, settlementPlanner } from '../src/settlement/index.js';
import { SqliteStore } from '../src/store/index.js';
import type { Store } from '../src/store/index.js';
import { inputs, job } from './store-conformance.js';

const FEES = { coordinatorFeeBps: 500, poolFeeBps: 500 };
const NODES = ['1'.repeat(64), '2'.repeat(64)];
const CAPS: Capabilities = { runtimes: ['wasm'], cores: 1, memoryMb: 512, arch: 'x64', os: 'linux', gpus: [], maxTasks: 1, benchmark: { fuelPerSec: 1 }, agentVersion: 't' };
const BUYERS = ['buyer:a', 'buyer:b'];

type Op =
  | { op: 'deposit'; who: number; sats: number }
  | { op: 'submit'; who: number; tasks: number; bid: number }
  | { op: 'work'; node: number; ask: number; fuel: number; fail: boolean }
  | { op: 'cancel' }
  | { op: 'settle'; window: number }
  | { op: 'withdraw'; who: number; sats: number }
  | { op: 'payout'; paid: boolean }
  | { op: 'crash' };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ op: fc.constant('deposit' as const), who: fc.nat(1), sats: fc.integer({ min: 1, max: 5000 }) }),
  fc.record({ op: fc.constant('submit' as const), who: fc.nat(1), tasks: fc.integer({ min: 1, max: 4 }), bid: fc.integer({ min: 0, max: 3_000_000 }) }),
  fc.record({ op: fc.constant('work' as const), node: fc.nat(1), ask: fc.integer({ min: 0, max: 3_000_000 }), fuel: fc.integer({ min: 0, max: 1_000_000_000 }), fail: fc.boolean() }),
  fc.record({ op: fc.constant('cancel' as const) }),
  fc.record({ op: fc.constant('settle' as const), window: fc.constantFrom(0, 0, 50) }),
  fc.record({ op: fc.constant('withdraw' as const), who: fc.nat(1), sats: fc.integer({ min: 1, max: 3000 }) }),
  fc.record({ op: fc.constant('payout' as const), paid: fc.boolean() }),
  fc.record({ op: fc.constant('crash' as const) }),
);

describe('money properties', () => {
  it('no sequence of deposits, jobs, cancellations, payouts and crashes creates or loses a msat', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'idlemesh-money-'));
    let run = 0;
    const seen = { payments: 0, refusedJobs: 0, refunds: 0, crashes: 0 };
    try {
      await fc.assert(fc.asyncProperty(fc.array(opArb, { minLength: 1, maxLength: 40, size: 'max' }), async (ops) => {
        const file = join(dir, `m${run++}.db`);
        const open = async (): Promise<Store> => {
          const s = new SqliteStore(file);
          await s.migrate();
          return s;
        };
        let store = await open();
        let clock = 1000;
        let n = 0;
        let deposited = 0n;
        let paidOut = 0n;
        const jobs: string[] = [];
        const inFlight: Array<{ id: string; account: string; amount: bigint }> = [];
        try {
          for (const node of NODES) await store.upsertNode(node, CAPS, clock);
          await store.ledgerApply({ accounts: [{ id: ACCOUNTS.treasury, kind: 'treasury' }, { id: ACCOUNTS.payoutsInFlight, kind: 'payouts-in-flight' }, ...BUYERS.map((id) => ({ id, kind: 'buyer' as const }))], events: [] }, clock);
          for (const o of ops) {
            clock += 10;
            switch (o.op) {
              case 'deposit': {
                const amount = BigInt(o.sats) * 1000n;
                await store.commitRecords({ batch: depositPlan(`dep${n++}`, BUYERS[o.who]!, amount, {}) }, clock);
                deposited += amount;
                break;
              }
              case 'submit': {
                const j = job({ bid: o.bid, buyer: BUYERS[o.who]!, fees: FEES, limits: { fuel: 1_000_000_000, memoryMb: 16, timeoutMs: 1000, outputBytes: 64 }, createdAt: clock });
                const hold = holdPlan({ jobId: j.id, buyer: BUYERS[o.who]!, tasks: o.tasks, fuelLimit: j.limits.fuel, bid: o.bid, maxExecutionsPerTask: 1, fees: FEES });
                try {
                  await store.createJob(hold ? { ...j, holdMsat: hold.amount } : { ...j, bid: 0 }, inputs(o.tasks), hold?.batch);
                  jobs.push(j.id);
                } catch (e) {
                  assert.ok(e instanceof ImError && e.code === 'IM_LEDGER_INSUFFICIENT_FUNDS', String(e));
                  assert.equal(await store.getJob(j.id), undefined, 'a refused job leaves nothing behind');
                  seen.refusedJobs++;
                }
                break;
              }
              case 'work': {
                const id = jobs.at(-1);
                if (id === undefined) break;
                const j = await store.getJob(id);
                if (!j || o.ask > j.bid) break; // the scheduler never leases where ask > bid
                const claimed = await store.claimTasks([{ jobId: id, nodeId: NODES[o.node]!, count: 2, ask: o.ask }], clock, 60_000);
                await store.completeTasks(NODES[o.node]!, claimed.map((t) => (o.fail
                  ? { jobId: t.jobId, index: t.index, attempt: t.attempt, ok: false, fuel: o.fuel, error: { code: 'IM_WASM_TRAP', message: 'trap', retryable: false } }
                  : { jobId: t.jobId, index: t.index, attempt: t.attempt, ok: true, output: new Uint8Array(), fuel: o.fuel })), clock);
                break;
              }
              case 'cancel': {
                const id = jobs.at(-1);
                if (id !== undefined) await store.cancelJob(id, clock);
                break;
              }
              case 'settle': {
                for (const id of await store.unsettledJobs(100)) await store.settleJob(id, settlementPlanner({ challengeWindowMs: o.window, now: clock }), clock);
                await store.ledgerApply(finalizePlan(await store.ledgerOpenPendings({ codes: ['payment', 'fee', 'pool'], limit: 1000 }), clock), clock);
                break;
              }
              case 'withdraw': {
                const id = `w${n++}`;
                const amount = BigInt(o.sats) * 1000n;
                const account = BUYERS[o.who]!;
                try {
                  await store.commitRecords({ records: [{ kind: 'withdrawal', id, state: 'queued', doc: {} }], batch: { events: [{ id: `wd:${id}`, debitAccount: account, creditAccount: ACCOUNTS.payoutsInFlight, amount, code: 'payout', ref: id }] } }, clock);
                  inFlight.push({ id, account, amount });
                } catch (e) {
                  assert.ok(e instanceof ImError && e.code === 'IM_LEDGER_INSUFFICIENT_FUNDS', String(e));
                  assert.equal((await store.records('withdrawal', { ids: [id], limit: 1 })).length, 0);
                }
                break;
              }
              case 'payout': {
                const w = inFlight.shift();
                if (!w) break;
                await store.commitRecords({
                  expect: [{ kind: 'withdrawal', id: w.id, states: ['queued'] }],
                  records: [{ kind: 'withdrawal', id: w.id, state: o.paid ? 'completed' : 'failed', doc: {} }],
                  batch: { events: [o.paid
                    ? { id: `wd:${w.id}:sent`, debitAccount: ACCOUNTS.payoutsInFlight, creditAccount: ACCOUNTS.treasury, amount: w.amount, code: 'payout', ref: w.id }
                    : { id: `wd:${w.id}:refund`, debitAccount: ACCOUNTS.payoutsInFlight, creditAccount: w.account, amount: w.amount, code: 'refund', ref: w.id }] },
                }, clock);
                if (o.paid) paidOut += w.amount;
                break;
              }
              case 'crash':
                await store.close();
                store = await open();
                break;
            }
          }
          const d = await store.ledgerDump();
          seen.payments += d.transfers.filter((t) => t.code === 'payment').length;
          seen.refunds += d.transfers.filter((t) => t.code === 'refund').length;
          seen.crashes += ops.filter((o) => o.op === 'crash').length;
          assert.deepEqual(auditLog(d.accountEvents, d.transfers, d.accounts, d.head), []);
          const outside = d.accounts.filter((a) => a.account.id !== ACCOUNTS.treasury).reduce((s, a) => s + a.creditsPosted - a.debitsPosted, 0n);
          assert.equal(outside, deposited - paidOut, 'everything outside the treasury = deposits − completed payouts');
          const treasury = d.accounts.find((a) => a.account.id === ACCOUNTS.treasury)!;
          assert.equal(treasury.debitsPosted - treasury.creditsPosted, deposited - paidOut);
          for (const a of d.accounts) {
            if (a.account.kind !== 'treasury') assert.ok(a.creditsPosted - a.debitsPosted - a.debitsPending >= 0n, `${a.account.id} never overdrawn`);
          }
        } finally {
          await store.close();
        }
        // A fixed default seed, so the coverage check below never depends on luck (FC_SEED explores others).
      }), { numRuns: Number(process.env.IDLEMESH_PROP_RUNS ?? 100), seed: Number(process.env.FC_SEED ?? 20261122) });
      // The runs must have exercised the interesting paths, or the property proves little.
      for (const [k, v] of Object.entries(seen)) assert.ok(v > 0, `no run exercised ${k}`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
