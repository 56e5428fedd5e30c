import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  balance, bond, check, createAccounts, createLedger, getBond, release, slash, submit, unbond,
} from '../src/ledger/index.js';
import type { LedgerEvent, LedgerState } from '../src/ledger/index.js';

const DAY = 24 * 3600 * 1000;

function setup(): LedgerState {
  const s = createLedger();
  createAccounts(s, [
    { id: 'treasury', kind: 'treasury' }, { id: 'op', kind: 'operator' }, { id: 'stake', kind: 'stake' },
    { id: 'pool', kind: 'reward-pool' }, { id: 'challenger', kind: 'operator' },
  ], 0);
  apply(s, [{ id: 'fund', debitAccount: 'treasury', creditAccount: 'op', amount: 1_000_000n, code: 'deposit' }], 0);
  apply(s, bond({ id: 'bond1', operator: 'op', stakeAccount: 'stake', amount: 100_000n, node: 'node-a', capacityUnits: 4 }), 0);
  return s;
}

function apply(s: LedgerState, events: LedgerEvent[], now: number): void {
  const out = submit(s, events, now);
  assert.ok(out.results.every((r) => r.status !== 'error'), JSON.stringify(out.results));
}

describe('stakes', () => {
  it('bonds, unbonds over the period, then releases', () => {
    const s = setup();
    assert.deepEqual(getBond(s, 'bond1'), {
      id: 'bond1', operator: 'op', stakeAccount: 'stake', node: 'node-a', capacityUnits: 4, bondedAt: 0,
      bonded: 100_000n, slashed: 0n, released: 0n, remaining: 100_000n, status: 'active',
    });
    apply(s, unbond(s, 'bond1', 10), 10);
    const b = getBond(s, 'bond1')!;
    assert.equal(b.status, 'unbonding');
    assert.equal(b.unbonding!.unlockAt, 10 + 7 * DAY);
    assert.throws(() => unbond(s, 'bond1', 11), { code: 'IM_LEDGER_BOND_STATE' });
    assert.throws(() => release(s, 'bond1', 10 + 7 * DAY - 1), { code: 'IM_LEDGER_BOND_LOCKED' });
    apply(s, release(s, 'bond1', 10 + 7 * DAY), 10 + 7 * DAY);
    assert.equal(getBond(s, 'bond1')!.status, 'released');
    assert.equal(balance(s, 'op')!.available, 1_000_000n);
    assert.equal(balance(s, 'stake')!.net, 0n);
    assert.throws(() => release(s, 'bond1', 10 + 8 * DAY), { code: 'IM_LEDGER_BOND_STATE' });
    assert.throws(() => getBond(s, 'nope') ?? unbond(s, 'nope', 0), { code: 'IM_LEDGER_BOND_NOT_FOUND' });
    assert.deepEqual(check(s), []);
  });

  it('slashes a fraction to the recipients, once per evidence, also while unbonding', () => {
    const s = setup();
    const events = slash(s, { bondId: 'bond1', bps: 1000, evidenceId: 'ev1', to: [{ account: 'pool', weight: 2 }, { account: 'challenger', weight: 1 }] });
    apply(s, events, 5);
    assert.equal(balance(s, 'pool')!.net, 6667n); // 10 000 split 2:1, the rounding msat to the first
    assert.equal(balance(s, 'challenger')!.net, 3333n);
    assert.deepEqual(slash(s, { bondId: 'bond1', bps: 1000, evidenceId: 'ev1', to: [{ account: 'pool', weight: 1 }] }), []);
    apply(s, unbond(s, 'bond1', 6, { unbondingMs: 1000 }), 6);
    const during = slash(s, { bondId: 'bond1', bps: 5000, evidenceId: 'ev2', to: [{ account: 'pool', weight: 1 }] });
    assert.deepEqual(during.map((e) => e.type ?? 'single'), ['void', 'single', 'pending']);
    assert.deepEqual(during.map((e) => e.linked), [true, true, false]);
    apply(s, during, 7);
    const b = getBond(s, 'bond1')!;
    assert.deepEqual([b.status, b.slashed, b.remaining, b.unbonding?.unlockAt], ['unbonding', 55_000n, 45_000n, 1006]);
    apply(s, release(s, 'bond1', 1006), 1006);
    assert.equal(balance(s, 'op')!.available, 1_000_000n - 55_000n);
    assert.deepEqual(check(s), []);
  });

  it('bonded = remaining + slashed + released under any sequence of slashes', () => {
    fc.assert(fc.property(fc.array(fc.integer({ min: 1, max: 10_000 }), { maxLength: 12 }), fc.nat(12), (bpss, unbondAt) => {
      const s = setup();
      bpss.forEach((bps, i) => {
        if (i === unbondAt && getBond(s, 'bond1')!.status === 'active') apply(s, unbond(s, 'bond1', i, { unbondingMs: 100 }), i);
        const b = getBond(s, 'bond1')!;
        if (b.remaining === 0n) return;
        apply(s, slash(s, { bondId: 'bond1', bps, evidenceId: `e${i}`, to: [{ account: 'pool', weight: 3 }, { account: 'challenger', weight: 1 }] }), i);
      });
      const b = getBond(s, 'bond1')!;
      assert.equal(b.bonded, b.remaining + b.slashed + b.released);
      assert.equal(balance(s, 'pool')!.net + balance(s, 'challenger')!.net, b.slashed);
      assert.equal(balance(s, 'stake')!.net, b.remaining);
      assert.deepEqual(check(s), []);
    }));
  });
});
