import { ImError } from '@idlemesh/protocol';
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  balance, check, createAccounts, createLedger, expire, ledgerError, msatToSats, parseMsat, replay,
  satsToMsat, setFrozen, snapshot, splitSats, submit, transfersByRef,
} from '../src/ledger/index.js';
import type { AccountEvent, LedgerEvent, LedgerState, Transfer } from '../src/ledger/index.js';
import { accrue, createAccrual, maxJobCost, settle } from '../src/pricing/index.js';

function ledger(): LedgerState {
  const s = createLedger();
  const r = createAccounts(s, [
    { id: 'treasury', kind: 'treasury' },
    { id: 'alice', kind: 'buyer' },
    { id: 'escrow', kind: 'escrow' },
    { id: 'op', kind: 'operator' },
    { id: 'fee', kind: 'coordinator-fee' },
    { id: 'pool', kind: 'reward-pool' },
  ], 1);
  assert.ok(r.results.every((x) => x.status === 'ok'));
  ok(s, [{ id: 'dep1', debitAccount: 'treasury', creditAccount: 'alice', amount: 10_000n, code: 'deposit', ref: 'tx:0' }], 1);
  return s;
}

function ok(s: LedgerState, events: LedgerEvent[], now: number): Transfer[] {
  const out = submit(s, events, now);
  assert.deepEqual(out.results.map((r) => r.status), events.map(() => 'ok'), JSON.stringify(out.results));
  return out.appended;
}

function codes(s: LedgerState, events: LedgerEvent[], now: number): Array<string | undefined> {
  return submit(s, events, now).results.map((r) => r.code ?? r.status);
}

const bal = (s: LedgerState, id: string): [bigint, bigint, bigint, bigint] => {
  const b = balance(s, id)!;
  return [b.debitsPosted, b.creditsPosted, b.debitsPending, b.creditsPending];
};

describe('amounts', () => {
  it('converts whole sats and refuses fractions', () => {
    assert.equal(satsToMsat(21), 21_000n);
    assert.equal(msatToSats(21_000n), 21n);
    assert.throws(() => msatToSats(21_001n), (e: ImError) => e.code === 'IM_LEDGER_FRACTIONAL_SAT' && e.status === 400);
    assert.throws(() => satsToMsat(1.5), (e: ImError) => e.code === 'IM_LEDGER_INVALID_AMOUNT');
    assert.throws(() => satsToMsat(-1n), (e: ImError) => e.code === 'IM_LEDGER_INVALID_AMOUNT');
    assert.deepEqual(splitSats(21_999n), { sats: 21n, remainderMsat: 999n });
    assert.equal(parseMsat('9223372036854775807'), (1n << 63n) - 1n);
    for (const bad of ['', '-1', '1.0', '1e3', '01', '9223372036854775808']) assert.throws(() => parseMsat(bad), { name: 'ImError' });
  });

  it('ledgerError carries the catalogue shape', () => {
    const e = ledgerError('IM_LEDGER_INSUFFICIENT_FUNDS');
    assert.equal(e.status, 402);
    assert.deepEqual(Object.keys(e.toWire()).sort(), ['code', 'message', 'retryable']);
  });
});

describe('ledger', () => {
  it('posts a single transfer on both sides', () => {
    const s = ledger();
    assert.deepEqual(bal(s, 'alice'), [0n, 10_000n, 0n, 0n]);
    assert.deepEqual(bal(s, 'treasury'), [10_000n, 0n, 0n, 0n]);
    assert.equal(balance(s, 'alice')!.available, 10_000n);
    assert.equal(transfersByRef(s, 'tx:0').length, 1);
  });

  it('is idempotent: same id and fields = exists, other fields = conflict, and neither changes anything', () => {
    const s = ledger();
    const before = snapshot(s);
    assert.deepEqual(codes(s, [{ id: 'dep1', debitAccount: 'treasury', creditAccount: 'alice', amount: 10_000n, code: 'deposit', ref: 'tx:0' }], 2), ['exists']);
    assert.deepEqual(codes(s, [{ id: 'dep1', debitAccount: 'treasury', creditAccount: 'alice', amount: 10_001n, code: 'deposit', ref: 'tx:0' }], 2), ['IM_LEDGER_ID_CONFLICT']);
    assert.deepEqual(codes(s, [{ id: 'dep1', debitAccount: 'treasury', creditAccount: 'alice', amount: 10_000n, code: 'deposit' }], 2), ['IM_LEDGER_ID_CONFLICT']);
    assert.deepEqual(snapshot(s), before);
    assert.equal(createAccounts(s, [{ id: 'alice', kind: 'buyer' }], 2).results[0]!.status, 'exists');
    assert.equal(createAccounts(s, [{ id: 'alice', kind: 'operator' }], 2).results[0]!.code, 'IM_LEDGER_ACCOUNT_CONFLICT');
  });

  it('refuses overdrafts, over-crediting sources, bad amounts, same and unknown accounts, reserved ids', () => {
    const s = ledger();
    createAccounts(s, [{ id: 'house', kind: 'buyer', flags: { debitsMustNotExceedCredits: false } }], 2);
    const t = (id: string, debitAccount: string, creditAccount: string, amount: bigint): LedgerEvent => ({ id, debitAccount, creditAccount, amount, code: 'payment' });
    assert.deepEqual(codes(s, [
      t('a', 'alice', 'op', 10_001n),
      t('b', 'house', 'treasury', 10_001n),
      t('c', 'alice', 'op', 0n),
      t('d', 'alice', 'alice', 1n),
      t('e', 'alice', 'nobody', 1n),
      t('expire:x', 'alice', 'op', 1n),
      t('f', 'alice', 'op', 10_000n),
    ], 2), [
      'IM_LEDGER_INSUFFICIENT_FUNDS', 'IM_LEDGER_CREDITS_EXCEED_DEBITS', 'IM_LEDGER_INVALID_AMOUNT', 'IM_LEDGER_SAME_ACCOUNT',
      'IM_LEDGER_ACCOUNT_NOT_FOUND', 'IM_LEDGER_INVALID_TRANSFER', 'ok',
    ]);
    assert.equal(balance(s, 'alice')!.available, 0n);
  });

  it('two-phase: pending reserves, partial post releases the rest, a pending resolves once', () => {
    const s = ledger();
    ok(s, [{ type: 'pending', id: 'hold', debitAccount: 'alice', creditAccount: 'escrow', amount: 6000n, code: 'escrow', ref: 'job1' }], 2);
    assert.deepEqual(bal(s, 'alice'), [0n, 10_000n, 6000n, 0n]);
    assert.equal(balance(s, 'alice')!.available, 4000n);
    assert.deepEqual(codes(s, [{ id: 'x', debitAccount: 'alice', creditAccount: 'op', amount: 4001n, code: 'payment' }], 2), ['IM_LEDGER_INSUFFICIENT_FUNDS']);
    assert.deepEqual(codes(s, [{ type: 'post', id: 'p0', pendingId: 'hold', amount: 6001n }], 3), ['IM_LEDGER_POST_EXCEEDS_PENDING']);
    const [post] = ok(s, [{ type: 'post', id: 'p1', pendingId: 'hold', amount: 2500n }], 3);
    assert.equal(post!.ref, 'job1');
    assert.deepEqual(bal(s, 'alice'), [2500n, 10_000n, 0n, 0n]);
    assert.deepEqual(bal(s, 'escrow'), [0n, 2500n, 0n, 0n]);
    assert.deepEqual(codes(s, [
      { type: 'post', id: 'p2', pendingId: 'hold' },
      { type: 'void', id: 'v1', pendingId: 'hold' },
      { type: 'void', id: 'v2', pendingId: 'dep1' },
      { type: 'void', id: 'v3', pendingId: 'nothing' },
      { type: 'post', id: 'p1', pendingId: 'hold', amount: 2500n },
    ], 4), ['IM_LEDGER_PENDING_RESOLVED', 'IM_LEDGER_PENDING_RESOLVED', 'IM_LEDGER_NOT_PENDING', 'IM_LEDGER_PENDING_NOT_FOUND', 'exists']);
    assert.equal(transfersByRef(s, 'job1').length, 2);
    assert.deepEqual(check(s), []);
  });

  it('a pending past its timeout voids itself, and can no longer be posted', () => {
    const s = ledger();
    ok(s, [
      { type: 'pending', id: 'h1', debitAccount: 'alice', creditAccount: 'escrow', amount: 1000n, code: 'escrow', timeout: 100 },
      { type: 'pending', id: 'h2', debitAccount: 'alice', creditAccount: 'escrow', amount: 2000n, code: 'escrow', timeout: 50 },
    ], 10);
    assert.deepEqual(expire(s, 59).appended, []);
    const first = expire(s, 60).appended;
    assert.deepEqual(first.map((t) => [t.id, t.type, t.amount, t.timestamp]), [['expire:h2', 'expire', 2000n, 60]]);
    assert.deepEqual(codes(s, [{ type: 'post', id: 'late', pendingId: 'h2' }], 61), ['IM_LEDGER_PENDING_EXPIRED']);
    // submit expires what is due before applying its own events
    const out = submit(s, [{ type: 'post', id: 'later', pendingId: 'h1' }], 500);
    assert.equal(out.results[0]!.code, 'IM_LEDGER_PENDING_EXPIRED');
    assert.deepEqual(out.appended.map((t) => t.id), ['expire:h1']);
    assert.deepEqual(bal(s, 'alice'), [0n, 10_000n, 0n, 0n]);
    assert.deepEqual(check(s), []);
  });

  it('the clock never runs backwards', () => {
    const s = ledger();
    ok(s, [{ id: 'late', debitAccount: 'alice', creditAccount: 'op', amount: 1n, code: 'payment' }], 100);
    const [t] = ok(s, [{ id: 'early', debitAccount: 'alice', creditAccount: 'op', amount: 1n, code: 'payment' }], 50);
    assert.equal(t!.timestamp, 100);
    assert.throws(() => submit(s, [], Number.NaN), { name: 'ImError' });
  });

  it('a linked chain is all or nothing and reports why', () => {
    const s = ledger();
    const before = snapshot(s);
    const chain: LedgerEvent[] = [
      { type: 'pending', id: 'c1', debitAccount: 'alice', creditAccount: 'escrow', amount: 3000n, code: 'escrow', linked: true },
      { type: 'post', id: 'c2', pendingId: 'c1', amount: 1000n, linked: true },
      { id: 'c3', debitAccount: 'alice', creditAccount: 'op', amount: 9500n, code: 'payment' },
      { id: 'solo', debitAccount: 'alice', creditAccount: 'op', amount: 1n, code: 'payment' },
    ];
    assert.deepEqual(codes(s, chain, 2), ['IM_LEDGER_LINKED_EVENT_FAILED', 'IM_LEDGER_LINKED_EVENT_FAILED', 'IM_LEDGER_INSUFFICIENT_FUNDS', 'ok']);
    assert.equal(s.byId.has('c1'), false);
    assert.equal(balance(s, 'alice')!.debitsPosted, 1n);
    assert.deepEqual(snapshot(replay(s.accountEvents, s.transfers)), snapshot(s));
    // The chain sees its own earlier events: fixed, it goes through whole.
    const fixed = chain.slice(0, 3).map((e) => (e.id === 'c3' ? { ...e, amount: 8999n } : e));
    assert.deepEqual(codes(s, fixed, 3), ['ok', 'ok', 'ok']);
    assert.deepEqual(bal(s, 'alice'), [10_000n, 10_000n, 0n, 0n]);
    assert.deepEqual(codes(createLedger(), [{ type: 'void', id: 'o1', pendingId: 'x', linked: true }, { type: 'void', id: 'o2', pendingId: 'x', linked: true }], 1),
      ['IM_LEDGER_LINKED_EVENT_FAILED', 'IM_LEDGER_LINKED_CHAIN_OPEN']);
    assert.notDeepEqual(snapshot(s), before);
    assert.deepEqual(check(s), []);
  });

  it('a frozen account takes credits and voids but no debits, until unfrozen', () => {
    const s = ledger();
    ok(s, [{ type: 'pending', id: 'h', debitAccount: 'alice', creditAccount: 'escrow', amount: 100n, code: 'escrow' },
      { type: 'pending', id: 'h2', debitAccount: 'alice', creditAccount: 'escrow', amount: 100n, code: 'escrow' }], 2);
    assert.equal(setFrozen(s, 'alice', true, 3).result.status, 'ok');
    assert.equal(setFrozen(s, 'alice', true, 3).result.status, 'exists');
    assert.deepEqual(codes(s, [
      { id: 'd', debitAccount: 'alice', creditAccount: 'op', amount: 1n, code: 'payment' },
      { type: 'pending', id: 'd2', debitAccount: 'alice', creditAccount: 'op', amount: 1n, code: 'payment' },
      { type: 'post', id: 'd3', pendingId: 'h' },
      { id: 'c', debitAccount: 'treasury', creditAccount: 'alice', amount: 5n, code: 'deposit' },
      { type: 'void', id: 'v', pendingId: 'h2' },
    ], 4), ['IM_LEDGER_ACCOUNT_FROZEN', 'IM_LEDGER_ACCOUNT_FROZEN', 'IM_LEDGER_ACCOUNT_FROZEN', 'ok', 'ok']);
    setFrozen(s, 'alice', false, 5);
    assert.deepEqual(codes(s, [{ type: 'post', id: 'd3', pendingId: 'h' }], 6), ['ok']);
    assert.deepEqual(check(s), []);
    assert.deepEqual(snapshot(replay(s.accountEvents, s.transfers)), snapshot(s));
  });

  it('check catches a tampered balance and forged logs', () => {
    const s = ledger();
    ok(s, [{ type: 'pending', id: 'h', debitAccount: 'alice', creditAccount: 'escrow', amount: 100n, code: 'escrow' }], 2);
    ok(s, [{ type: 'post', id: 'p', pendingId: 'h', amount: 60n }], 3);
    assert.deepEqual(check(s), []);
    s.accounts.get('op')!.creditsPosted += 1n;
    const kinds = check(s).map((v) => v.kind).sort();
    assert.deepEqual(kinds, ['balance-mismatch', 'unbalanced']);
    s.accounts.get('op')!.creditsPosted -= 1n;

    const forge = (extra: Transfer[], events: AccountEvent[] = s.accountEvents): string[] =>
      check(replay(events, [...s.transfers, ...extra])).map((v) => v.kind);
    const last = s.transfers.at(-1)!;
    const next = { timestamp: 9, seq: s.seq };
    assert.deepEqual(forge([{ ...last, id: 'p-again', ...next }]), ['pending-resolved-twice']);
    assert.deepEqual(forge([{ id: 'rob', type: 'single', debitAccount: 'op', creditAccount: 'alice', amount: 1n, code: 'payment', ...next }]), ['overdraft']);
    assert.deepEqual(forge([{ id: 'mint', type: 'single', debitAccount: 'alice', creditAccount: 'treasury', amount: 20_000n, code: 'payment', ...next }]), ['overdraft', 'credit-limit']);
    assert.deepEqual(forge([{ id: 'dep1', type: 'single', debitAccount: 'treasury', creditAccount: 'alice', amount: 1n, code: 'deposit', ...next }]), ['duplicate-id', 'index-mismatch']);
    assert.deepEqual(forge([{ id: 'x', type: 'single', debitAccount: 'treasury', creditAccount: 'ghost', amount: 1n, code: 'deposit', ...next }]), ['unknown-account']);
    assert.deepEqual(forge([{ id: 'old', type: 'single', debitAccount: 'treasury', creditAccount: 'alice', amount: 1n, code: 'deposit', timestamp: 0, seq: s.seq }]), ['order']);
    const frozen: AccountEvent[] = [...s.accountEvents, { type: 'freeze', accountId: 'alice', seq: s.seq, timestamp: 9 }];
    assert.deepEqual(forge([{ id: 'y', type: 'single', debitAccount: 'alice', creditAccount: 'op', amount: 1n, code: 'payment', timestamp: 9, seq: s.seq + 1 }], frozen), ['debit-while-frozen']);
  });

  it('escrow hold and a charge chain priced by settle (the flow of docs/ledger.md)', () => {
    const s = ledger();
    const hold = maxJobCost({ tasks: 2, fuelLimit: 3_000_000_000n, bid: 1000n, maxExecutionsPerTask: 1 });
    assert.equal(hold, 6600n);
    ok(s, [{ type: 'pending', id: 'hold0', debitAccount: 'alice', creditAccount: 'escrow', amount: hold, code: 'escrow', ref: 'job', timeout: 3_600_000 }], 2);
    const charge = settle(accrue(createAccrual(), 2_500_000_001n, 900n));
    assert.deepEqual(charge, { buyerPays: 2475n, operator: 2250n, coordinatorFee: 112n, pool: 113n });
    ok(s, [
      { type: 'void', id: 'hold0-void', pendingId: 'hold0', linked: true },
      { id: 'c-op', debitAccount: 'alice', creditAccount: 'op', amount: charge.operator, code: 'payment', ref: 'job', linked: true },
      { id: 'c-fee', debitAccount: 'alice', creditAccount: 'fee', amount: charge.coordinatorFee, code: 'fee', ref: 'job', linked: true },
      { id: 'c-pool', debitAccount: 'alice', creditAccount: 'pool', amount: charge.pool, code: 'pool', ref: 'job', linked: true },
      { type: 'pending', id: 'hold1', debitAccount: 'alice', creditAccount: 'escrow', amount: hold - charge.buyerPays, code: 'escrow', ref: 'job', timeout: 3_600_000 },
    ], 3);
    assert.deepEqual(bal(s, 'alice'), [2475n, 10_000n, 4125n, 0n]);
    assert.equal(transfersByRef(s, 'job').length, 6);
    assert.deepEqual(check(s), []);
  });
});
