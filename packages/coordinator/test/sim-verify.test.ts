import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { simulate } from '../src/sim/index.js';

describe('sim: verification', () => {
  it('is deterministic: same seed, same numbers; another seed, other numbers', () => {
    const opts = { nodes: 150, cheaters: 0.05, hours: 1, mode: 'adaptive' as const, seed: 11, collude: 3, churn: 0.05 };
    assert.deepEqual(simulate(opts), simulate(opts));
    assert.notDeepEqual(simulate(opts), simulate({ ...opts, seed: 12 }));
  });

  for (const collude of [1, 3]) {
    it(`200 nodes × 3 h, adaptive, 5 % cheaters wrong half the time, groups of ${collude}: meets the targets`, () => {
      const r = simulate({ nodes: 200, cheaters: 0.05, hours: 3, mode: 'adaptive', seed: 2026, collude });
      assert.equal(r.tasks, 36_000);
      assert.ok(r.wrongAcceptedRate <= 1e-3, `wrongAcceptedRate ${r.wrongAcceptedRate}`);
      assert.ok(r.overhead <= 1.2, `overhead ${r.overhead}`);
      assert.equal(r.honestSlashed, 0);
      assert.equal(r.cheatersSlashed, r.cheaters);
      assert.equal(r.placementViolations, 0);
    });
  }

  it('BOINC-style voting without a referee lets colluders win and blames honest nodes; the referee does not', () => {
    const base = { nodes: 120, cheaters: 0.2, hours: 2, mode: 'replicate' as const, seed: 3, collude: 3 };
    const vote = simulate({ ...base, params: { onDissent: 'replicate', referee: false } });
    const ref = simulate(base);
    assert.ok(vote.honestInvalidated > 0);
    assert.equal(vote.cheatersSlashed, 0, 'a vote never slashes');
    assert.ok(ref.wrongAccepted < vote.wrongAccepted);
    assert.equal(ref.honestSlashed, 0);
    assert.equal(ref.honestInvalidated, 0);
  });

  it('adaptive: a caught node’s unreplicated results still in the window are re-run and the wrong ones reversed', () => {
    const base = { nodes: 200, cheaters: 0.1, hours: 3, mode: 'adaptive' as const, seed: 8, wrong: 0.05 };
    const off = simulate({ ...base, retroactive: false });
    const on = simulate({ ...base, retroactive: true });
    assert.equal(off.wrongReversed, 0);
    assert.ok(on.wrongReversed > 0);
    assert.ok(on.wrongAccepted < off.wrongAccepted, `${on.wrongAccepted} vs ${off.wrongAccepted}`);
    assert.equal(on.honestSlashed, 0);
  });

  it('property: across seeds and modes no honest node is slashed and no replicas share an operator or prefix', () => {
    fc.assert(fc.property(
      fc.integer({ min: 0, max: 2 ** 31 }), fc.constantFrom('replicate' as const, 'adaptive' as const, 'spot-check' as const, 'optimistic' as const),
      fc.integer({ min: 1, max: 4 }), fc.double({ min: 0, max: 0.5, noNaN: true }),
      (seed, mode, collude, cheaters) => {
        const r = simulate({ nodes: 40, cheaters, hours: 0.5, mode, seed, collude, churn: 0.1 });
        assert.equal(r.honestSlashed, 0);
        assert.equal(r.placementViolations, 0);
        assert.ok(r.cheatersSlashed <= r.cheaters);
      },
    ), { numRuns: 40, seed: 1 });
  });
});
