/**
 * Properties of rolling-24h/1 over random small networks (fast-check): the
 * money adds up, slashing zeroes, splitting a node does not pay, a leaver's
 * share rolls off over 24 hours, and the rolling window always agrees with
 * the reference that rereads every row.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { createRng, randomInt } from '../src/verify/rng.js';
import { ISSUANCE_DIVISOR, RollingWindow, computeEpoch } from '../src/issuance/index.js';
import type { EpochInput, EpochResult, HourRow, HourTable, NodeInfo, NodeReliability } from '../src/issuance/index.js';
import { H, PARAMS, network, row, shapeArb, sum, viaWindow } from './issuance-networks.js';

const RUNS = { numRuns: 300, seed: 7 };

const sorted = (m: ReadonlyMap<string, bigint>): [string, bigint][] => [...m].sort(([a], [b]) => (a < b ? -1 : 1));

describe('issuance properties', () => {
  it('allocations add up to the issued amount, which never exceeds 3/48 of the pool; nothing is issued when nobody scores', () => {
    fc.assert(fc.property(shapeArb, (shape) => {
      const r = computeEpoch(network(shape));
      assert.equal(sum(r.allocations.values()), r.issuedMsat);
      assert.ok(r.issuedMsat <= r.poolMsat);
      assert.ok(r.issuedMsat * ISSUANCE_DIVISOR <= 3n * r.poolMsat);
      if (r.totals.score === 0n) assert.equal(r.issuedMsat, 0n);
      for (const a of r.allocations.values()) assert.ok(a >= 0n);
    }), RUNS);
  });

  it('a slashed operator\'s nodes score 0 and get nothing', () => {
    fc.assert(fc.property(shapeArb, (shape) => {
      const input = network({ ...shape, slashedChance: 0.5 });
      const r = computeEpoch(input);
      const slashed = new Set(input.operators.filter((o) => o.slashed).map((o) => o.id));
      for (const n of input.nodes) {
        if (!slashed.has(n.operator)) continue;
        assert.equal(r.scores.get(n.id), 0n);
        assert.equal(r.allocations.get(n.id), 0n);
      }
    }), RUNS);
  });

  it('the rolling window (rows or columns) gives exactly the reference result', () => {
    fc.assert(fc.property(shapeArb, fc.boolean(), (shape, columns) => {
      const input = network(shape);
      assert.deepStrictEqual(viaWindow(input, columns), computeEpoch(input));
    }), RUNS);
  });

  it('the order nodes and reliability are listed in changes nothing', () => {
    fc.assert(fc.property(shapeArb, fc.integer(), (shape, seed) => {
      const input = network(shape);
      const rng = createRng(seed);
      const shuffled: EpochInput = { ...input, nodes: shuffle([...input.nodes], rng), reliability: shuffle([...input.reliability], rng) };
      const a = computeEpoch(input), b = computeEpoch(shuffled), c = viaWindow(shuffled);
      assert.deepEqual(sorted(b.allocations), sorted(a.allocations));
      assert.deepEqual(sorted(b.scores), sorted(a.scores));
      assert.deepEqual(sorted(c.allocations), sorted(a.allocations));
    }), RUNS);
  });

  it('incremental: a window sliding over 48 hours with gaps and churn equals a full recompute at every hour', () => {
    fc.assert(fc.property(fc.integer({ min: 0, max: 2 ** 31 - 1 }), fc.integer({ min: 1, max: 6 }), (seed, n) => {
      const rng = createRng(seed);
      const nodes = Array.from({ length: n }, (_, k) => ({ id: `node-${k}`, operator: `op-${k % 2}` }));
      const operators = [{ id: 'op-0', slashed: false }, { id: 'op-1', slashed: false }];
      const operatorOf = new Map(nodes.map((x) => [x.id, x.operator]));
      const reliability = nodes.map((x) => ({ node: x.id, accepted: BigInt(1 + randomInt(rng, 100)), failed: BigInt(randomInt(rng, 10)) }));
      const tables: HourTable[] = [];
      const w = new RollingWindow(PARAMS);
      for (let hour = H - 47; hour <= H; hour++) {
        if (rng() < 0.8) {
          const bonds = new Map(operators.map((o) => [o.id, rng() < 0.3 ? 1000n * BigInt(randomInt(rng, 1500)) : 10n ** 12n]));
          const t = { hour, bonds, rows: nodes.filter(() => rng() < 0.7).map((x) => row(rng, x.id, { noWork: false, noCapacity: false })) };
          tables.push(t);
          w.addHour(t, operatorOf);
        }
        const ctx = { epochHour: hour, params: PARAMS, poolMsat: 10n ** 12n, operators, nodes, reliability };
        const inWindow = tables.filter((t) => t.hour > hour - 24);
        assert.deepStrictEqual(w.epoch(ctx), computeEpoch({ ...ctx, hours: inWindow }));
        assert.equal(w.stats().hours, inWindow.length);
      }
    }), { numRuns: 60, seed: 7 });
  });

  describe('splitting a node in two (every amount and outcome count halved) never raises its operator\'s total by more than 1 msat per node', () => {
    it('when the split node has accepted outcomes (the Sybil case: the +1 in a/(a+f+1) costs the halves more than rounding gains)', () => {
      fc.assert(fc.property(shapeArb, fc.nat(), (shape, pick) => {
        const base = network(shape);
        const x = base.nodes[pick % base.nodes.length] as NodeInfo;
        const scored: EpochInput = { ...base, reliability: [...base.reliability.filter((r) => r.node !== x.id), { node: x.id, accepted: 1n + BigInt(pick % 300), failed: BigInt(pick % 31) }] };
        const s = splitGain(scored, x);
        assert.ok(s.gain <= s.nodes, `operator ${x.operator} gained ${s.gain} msat by splitting ${x.id}`);
      }), { numRuns: 1000, seed: 7 });
    });

    it('for any node, when no bond cap binds', () => {
      fc.assert(fc.property(shapeArb, fc.nat(), (shape, pick) => {
        const base = network(shape);
        const ample: EpochInput = { ...base, hours: base.hours.map((t) => ({ ...t, bonds: new Map([...t.bonds].map(([op]) => [op, 10n ** 15n])) })) };
        const x = base.nodes[pick % base.nodes.length] as NodeInfo;
        const s = splitGain(ample, x);
        assert.ok(s.gain <= s.nodes, `operator ${x.operator} gained ${s.gain} msat by splitting ${x.id}`);
      }), { numRuns: 1000, seed: 7 });
    });

    it('known exception, bounded: a node with no accepted outcomes, split while its operator\'s cap binds, shrinks K by the rounding of its halves and so lifts everyone\'s capacity share, its operator\'s other nodes included', () => {
      // Found by fast-check. The halves lose floor(cap·m/Σ) rounding (≤ availSec per hour); the split node scores 0 anyway,
      // so the loss costs its operator nothing while K shrinks for all. The gain is at most I·ΔK/K, here about 2·10^-6 of I.
      const base = network({ seed: 2114005200, operators: 2, nodes: 8, offsets: [2, 4, 5, 3, 1, 0], slashedChance: 0, noWork: false, noCapacity: false });
      const x = base.nodes[1] as NodeInfo;
      assert.equal(base.reliability.some((r) => r.node === x.id), false, 'the split node has no outcomes');
      const s = splitGain(base, x);
      const lostK = s.before.totals.capacity - s.after.totals.capacity;
      assert.ok(lostK > 0n);
      assert.ok(s.gain > s.nodes, 'the exception still exists (if the cap rule changed, move this case into the property)');
      assert.ok(s.gain * s.after.totals.capacity <= s.before.issuedMsat * lostK, `gain ${s.gain} within I·ΔK/K`);
    });
  });

  it('roll-off: a leaver\'s allocation share falls strictly in each of the 23 hours after its last one, and is 0 from the 24th', () => {
    fc.assert(fc.property(fc.integer({ min: 0, max: 2 ** 31 - 1 }), fc.integer({ min: 1, max: 5 }), (seed, others) => {
      const rng = createRng(seed);
      const steady = (node: string): HourRow => {
        const slotSec = BigInt(3600 + randomInt(rng, 26_400));
        return {
          node, paidMsat: BigInt(1000 + randomInt(rng, 999_000)), availSec: BigInt(600 + randomInt(rng, 3001)),
          capMeasured: BigInt(1 + randomInt(rng, 1000)), busySec: BigInt(randomInt(rng, Number(slotSec) + 1)), slotSec,
        };
      };
      const ids = ['leaver', ...Array.from({ length: others }, (_, k) => `other-${k}`)];
      const nodes = ids.map((id, k) => ({ id, operator: `op-${k % 2}` }));
      const operators = [{ id: 'op-0', slashed: false }, { id: 'op-1', slashed: false }];
      const operatorOf = new Map(nodes.map((n) => [n.id, n.operator]));
      const rows = new Map(ids.map((id) => [id, steady(id)]));
      const outcomes = new Map(ids.map((id) => [id, { a: BigInt(1 + randomInt(rng, 50)), f: BigInt(randomInt(rng, 5)) }]));
      const bonds = new Map(operators.map((o) => [o.id, 10n ** 12n]));
      const T = H;
      const w = new RollingWindow(PARAMS);
      const present = (id: string, hour: number): boolean => id !== 'leaver' || hour <= T;
      let prev: EpochResult | undefined;
      for (let hour = T - 47; hour <= T + 26; hour++) {
        w.addHour({ hour, bonds, rows: ids.filter((id) => present(id, hour)).map((id) => rows.get(id) as HourRow) }, operatorOf);
        const reliability: NodeReliability[] = ids.map((id) => {
          let k = 0n;
          for (let h = hour - 23; h <= hour; h++) if (present(id, h)) k++;
          const o = outcomes.get(id) as { a: bigint; f: bigint };
          return { node: id, accepted: k * o.a, failed: k * o.f };
        });
        const r = w.epoch({ epochHour: hour, params: PARAMS, poolMsat: 10n ** 12n, operators, nodes, reliability });
        const alloc = r.allocations.get('leaver') as bigint;
        if (hour > T && hour < T + 24) {
          const p = prev as EpochResult;
          // alloc/I < prevAlloc/prevI, cross-multiplied to stay exact.
          assert.ok(alloc * p.issuedMsat < (p.allocations.get('leaver') as bigint) * r.issuedMsat, `share did not fall at hour T+${hour - T}`);
        }
        if (hour >= T + 24) assert.equal(alloc, 0n, `allocation at T+${hour - T}`);
        prev = r;
      }
    }), { numRuns: 60, seed: 7 });
  });
});

function shuffle<T>(a: T[], rng: () => number): T[] {
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(rng() * (i + 1));
    [a[i], a[j]] = [a[j] as T, a[i] as T];
  }
  return a;
}

/**
 * Splits node x into x and a twin of the same operator. Before, x has every
 * amount doubled (so the halves are whole); availSec is a duration, not an
 * amount: each half is available as long as the whole was.
 */
function splitGain(base: EpochInput, x: NodeInfo): { gain: bigint; nodes: bigint; before: EpochResult; after: EpochResult } {
  const twin = `${x.id}-twin`;
  const double = (r: HourRow): HourRow => ({ ...r, paidMsat: 2n * r.paidMsat, capMeasured: 2n * r.capMeasured, busySec: 2n * r.busySec, slotSec: 2n * r.slotSec });
  const beforeIn: EpochInput = {
    ...base,
    hours: base.hours.map((t) => ({ ...t, rows: t.rows.map((r) => (r.node === x.id ? double(r) : r)) })),
    reliability: base.reliability.map((r) => (r.node === x.id ? { ...r, accepted: 2n * r.accepted, failed: 2n * r.failed } : r)),
  };
  const afterIn: EpochInput = {
    ...base,
    nodes: [...base.nodes, { id: twin, operator: x.operator }],
    hours: base.hours.map((t) => ({ ...t, rows: t.rows.flatMap((r) => (r.node === x.id ? [r, { ...r, node: twin }] : [r])) })),
    reliability: base.reliability.flatMap((r) => (r.node === x.id ? [r, { ...r, node: twin }] : [r])),
  };
  const before = computeEpoch(beforeIn), after = computeEpoch(afterIn);
  const total = (r: EpochResult, input: EpochInput): bigint =>
    sum(input.nodes.filter((n) => n.operator === x.operator).map((n) => r.allocations.get(n.id) as bigint));
  return {
    gain: total(after, afterIn) - total(before, beforeIn),
    nodes: BigInt(afterIn.nodes.filter((n) => n.operator === x.operator).length),
    before,
    after,
  };
}
