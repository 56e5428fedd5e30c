import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  accrue, createAccrual, fuelToEuRational, inferenceFuel, maxJobCost, price, settle,
} from '../src/pricing/index.js';
import type { Accrual } from '../src/pricing/index.js';

const bps = fc.integer({ min: 0, max: 10_000 });
const fees = fc.record({ coordinatorFeeBps: bps, poolFeeBps: bps });

describe('pricing', () => {
  it('the worked example of docs/ledger.md', () => {
    let acc = createAccrual();
    for (const fuel of [1_234_567_891n, 987_654_321n, 2_000_000_001n]) acc = accrue(acc, fuel, 1500n);
    assert.deepEqual(settle(acc), { buyerPays: 6966n, operator: 6333n, coordinatorFee: 316n, pool: 317n });
    assert.equal(maxJobCost({ tasks: 100, fuelLimit: 5_000_000_000, bid: 2000, maxExecutionsPerTask: 2 }), 2_200_000n);
    assert.equal(maxJobCost({ tasks: 1, fuelLimit: 1, bid: 1, maxExecutionsPerTask: 1 }), 1n); // 1.1e-9 msat rounds up
    assert.equal(maxJobCost({ tasks: 0, fuelLimit: 1, bid: 1, maxExecutionsPerTask: 1 }), 0n);
  });

  it('units: exact EU fractions, inference tokens by size class', () => {
    assert.deepEqual(fuelToEuRational(1_500_000_000n), { numerator: 3n, denominator: 2n });
    assert.deepEqual(fuelToEuRational(0), { numerator: 0n, denominator: 1n });
    assert.equal(inferenceFuel(1000, 7), 7_000_000_000n); // 1000 tokens of a 7B model = 7 EU
    assert.equal(inferenceFuel(1000, 0.5), 1_000_000_000n);
    assert.equal(inferenceFuel(1000, 7.2), 8_000_000_000n);
    assert.throws(() => accrue(createAccrual(), -1, 1), { code: 'IM_LEDGER_INVALID_ARGUMENT' });
    assert.throws(() => accrue(createAccrual(), 1.5, 1), { code: 'IM_LEDGER_INVALID_ARGUMENT' });
    assert.throws(() => createAccrual({ poolFeeBps: 10_001 }), { code: 'IM_LEDGER_INVALID_ARGUMENT' });
  });

  it('the parts always sum to what the buyer pays, and each is the floor of its share', () => {
    fc.assert(fc.property(fc.array(fc.tuple(fc.bigInt({ min: 0n, max: 10n ** 13n }), fc.bigInt({ min: 0n, max: 10n ** 7n }))), fees, (execs, f) => {
      let acc = createAccrual(f);
      for (const [fuel, ask] of execs) acc = accrue(acc, fuel, ask);
      const s = settle(acc);
      assert.equal(s.operator + s.coordinatorFee + s.pool, s.buyerPays);
      const x = acc.fuelAsk; // exact charge × 1e9
      assert.equal(s.operator, x / 10n ** 9n);
      assert.equal(s.coordinatorFee, (x * BigInt(f.coordinatorFeeBps)) / 10n ** 13n);
      const poolFloor = (x * BigInt(f.poolFeeBps)) / 10n ** 13n;
      assert.ok(s.pool >= poolFloor && s.pool <= poolFloor + 2n, 'the pool gets its share plus at most 2 msat of rounding');
    }));
  });

  it('rounds once: accruing in pieces equals accruing the total', () => {
    fc.assert(fc.property(fc.array(fc.bigInt({ min: 0n, max: 5_000_000n }), { minLength: 1, maxLength: 200 }), fc.bigInt({ min: 0n, max: 100_000n }), fees, (pieces, ask, f) => {
      const whole = accrue(createAccrual(f), pieces.reduce((a, b) => a + b, 0n), ask);
      const parts = pieces.reduce((acc: Accrual, p) => accrue(acc, p, ask), createAccrual(f));
      assert.deepEqual(settle(parts), settle(whole));
    }));
    // A million executions of 1 fuel at 1000 msat/EU are 1 msat of work: rounding each would pay 0.
    let acc = createAccrual();
    for (let i = 0; i < 1_000_000; i++) acc = accrue(acc, 1n, 1000n);
    assert.deepEqual(settle(acc), price(1_000_000n, 1000n));
    assert.equal(settle(acc).operator, 1n);
    assert.equal(price(1n, 1000n).operator, 0n);
    // and a billion fuel in a thousand pieces = once
    let big = createAccrual();
    for (let i = 0; i < 1000; i++) big = accrue(big, 1_000_000n, 7n);
    assert.deepEqual(settle(big), price(1_000_000_000n, 7n));
  });

  it('no set of executions a job allows is charged more than its escrow hold', () => {
    const job = fc.record({
      tasks: fc.integer({ min: 1, max: 6 }), fuelLimit: fc.bigInt({ min: 1n, max: 10n ** 12n }),
      bid: fc.bigInt({ min: 0n, max: 10n ** 6n }), maxExecutionsPerTask: fc.integer({ min: 1, max: 4 }), fees,
    });
    fc.assert(fc.property(job, fc.infiniteStream(fc.double({ min: 0, max: 1, noNaN: true })), (j, rnd) => {
      const hold = maxJobCost(j);
      const frac = (x: bigint): bigint => (x * BigInt(Math.floor(rnd.next().value * 1e6))) / 1_000_000n;
      // each execution on a random agent (of 3), using ≤ fuelLimit at an ask ≤ bid
      const accs: Accrual[] = [0, 1, 2].map(() => createAccrual(j.fees));
      for (let t = 0; t < j.tasks; t++) {
        for (let e = 0; e < j.maxExecutionsPerTask; e++) {
          const a = Math.floor(rnd.next().value * 2.999);
          accs[a] = accrue(accs[a]!, j.fuelLimit - frac(j.fuelLimit) / 4n, j.bid - frac(j.bid) / 4n);
        }
      }
      const charged = accs.reduce((s, a) => s + settle(a).buyerPays, 0n);
      assert.ok(charged <= hold, `charged ${charged} > hold ${hold}`);
      // the hold is tight: at the limits a single agent is charged within 1 msat of it
      const max = accrue(createAccrual(j.fees), j.fuelLimit * BigInt(j.tasks * j.maxExecutionsPerTask), j.bid);
      assert.ok(hold - settle(max).buyerPays <= 1n);
    }));
  });
});
