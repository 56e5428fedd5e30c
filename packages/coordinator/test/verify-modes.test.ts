import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  DEFAULT_MODE_PARAMS, UNTRUSTED, adjudicate, challenge, createRng, initialExecutions, resolveModeParams, reversalSet, spotCheck,
} from '../src/verify/index.js';
import type { PendingResult, RefereeRun, VerificationMode } from '../src/verify/index.js';
import { simulate } from '../src/sim/index.js';

const MODES: VerificationMode[] = ['trusted', 'replicate', 'adaptive', 'spot-check', 'optimistic'];

describe('verify: modes', () => {
  it('initial executions per mode', () => {
    const rng = createRng(1);
    const P = DEFAULT_MODE_PARAMS;
    assert.deepEqual(MODES.map((m) => initialExecutions(m, UNTRUSTED, P, rng)), [1, 2, 2, 1, 1]);
    // A trusted node with a long streak is rarely replicated.
    let replicated = 0;
    for (let i = 0; i < 1000; i++) if (initialExecutions('adaptive', { streak: 1000 }, P, rng) > 1) replicated++;
    assert.ok(replicated < 10, `${replicated}`);
  });

  it('spot-check and optimistic sample at their rates with a seeded rng', () => {
    const rng = createRng(99);
    let s = 0, o = 0;
    for (let i = 0; i < 20_000; i++) { if (spotCheck(DEFAULT_MODE_PARAMS, rng)) s++; if (challenge(DEFAULT_MODE_PARAMS, rng)) o++; }
    assert.ok(Math.abs(s / 20_000 - 0.05) < 0.006, `${s}`);
    assert.ok(Math.abs(o / 20_000 - 0.1) < 0.008, `${o}`);
    assert.equal(spotCheck({ spotCheckRate: 0 }, () => 0), false);
  });

  it('optimistic: a contradiction reverses the operator’s other results still in the window', () => {
    const P = resolveModeParams({ challengeWindowMs: 1000 });
    const pending: PendingResult[] = [
      { taskId: 't1', operator: 'bad', acceptedAt: 100 }, // out of window at now=1500
      { taskId: 't2', operator: 'bad', acceptedAt: 900 },
      { taskId: 't3', operator: 'good', acceptedAt: 1000 },
      { taskId: 't4', operator: 'bad', acceptedAt: 1400 }, // the contradicted one
      { taskId: 't5', operator: 'bad', acceptedAt: 1450 },
    ];
    const truth: RefereeRun = { outcome: 'ok', outputHash: 'h', fuel: 10 };
    const verdict = adjudicate(truth, [{ nodeId: 'n', operator: 'bad', ipPrefix: 'p', outcome: 'ok', outputHash: 'x', fuel: 10, receiptId: 'r4' }]);
    assert.equal(verdict.slashable.length, 1);
    assert.deepEqual(reversalSet(pending, 'bad', 't4', 1500, P).map((p) => p.taskId), ['t2', 't5']);
  });

  for (const mode of MODES) {
    it(`${mode}: accepts honest work${mode === 'trusted' ? ' as is (and so accepts a cheater’s)' : ' and catches a cheater'}`, () => {
      const honest = simulate({ nodes: 60, cheaters: 0, hours: 1, mode, seed: 5 });
      assert.equal(honest.wrongAccepted, 0);
      assert.equal(honest.honestSlashed, 0);
      assert.equal(honest.unverifiable, 0);
      assert.ok(honest.executions >= honest.tasks);
      const bad = simulate({ nodes: 60, cheaters: 0.1, hours: 1, mode, seed: 5 });
      assert.equal(bad.honestSlashed, 0);
      if (mode === 'trusted') {
        assert.equal(bad.cheatersSlashed, 0);
        assert.ok(bad.wrongAccepted > 0);
      } else {
        assert.equal(bad.cheaters, 6);
        assert.ok(bad.cheatersSlashed >= 5, `${mode}: ${bad.cheatersSlashed} of 6 slashed`);
        assert.ok(bad.refereeRuns > 0);
      }
    });
  }
});
