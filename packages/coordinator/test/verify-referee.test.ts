import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { DEFAULT_MODE_PARAMS, adjudicate, decide, resolveModeParams } from '../src/verify/index.js';
import type { RefereeRun, Result } from '../src/verify/index.js';

const truth: RefereeRun = { outcome: 'ok', outputHash: 'good', fuel: 1000 };
const r = (nodeId: string, claim: Partial<RefereeRun> = {}, receiptId: string | null = `rc-${nodeId}`): Result => ({
  nodeId, operator: `op-${nodeId}`, ipPrefix: `pfx-${nodeId}`, ...truth, ...claim, receiptId,
});

describe('verify: referee', () => {
  it('a colluding majority that outvotes an honest replica is caught; the honest node is not slashed', () => {
    const results = [r('honest'), r('c1', { outputHash: 'evil' }), r('c2', { outputHash: 'evil' })];
    // Under BOINC-style voting the colluders would win the vote …
    const vote = decide(results, resolveModeParams({ onDissent: 'replicate', targetResults: 3, maxTotalResults: 3 }));
    assert.equal(vote.kind, 'accepted');
    if (vote.kind === 'accepted') assert.deepEqual(vote.invalid, ['honest']);
    // … so by default any dissent goes to the referee, whose run settles it.
    assert.equal(decide(results, DEFAULT_MODE_PARAMS).kind, 'needs-referee');
    const v = adjudicate(truth, results);
    assert.deepEqual(v.judgements.map((j) => [j.nodeId, j.kind]), [['honest', 'valid'], ['c1', 'fraud'], ['c2', 'fraud']]);
    assert.deepEqual(v.slashable.map((e) => e.nodeId), ['c1', 'c2']);
    assert.ok(v.slashable.every((e) => e.contradiction === 'output' && e.receiptId.startsWith('rc-')));
  });

  it('effort inflation is fraud: same output, more fuel than the referee measured', () => {
    const v = adjudicate(truth, [r('a'), r('b', { fuel: 1500 })]);
    const b = v.judgements[1];
    assert.equal(b?.kind, 'fraud');
    if (b?.kind === 'fraud') {
      assert.equal(b.evidence.contradiction, 'effort');
      assert.equal(b.evidence.fuelExcess, 500);
      assert.deepEqual(b.evidence.measured, truth);
    }
    assert.equal(v.judgements[0]?.kind, 'valid');
  });

  it('a trap the referee reproduces is a task fault (the buyer’s), not fraud; a false trap claim is', () => {
    const trap: RefereeRun = { outcome: 'trap', outputHash: 'trap', fuel: 321 };
    const v = adjudicate(trap, [r('a', trap), r('b', { ...trap, outcome: 'out-of-fuel' })]);
    assert.equal(v.taskFault, true);
    assert.deepEqual(v.judgements.map((j) => j.kind), ['task-fault', 'fraud']);
    const lie = adjudicate(truth, [r('a', { outcome: 'out-of-fuel', outputHash: '', fuel: 5 })]);
    assert.equal(lie.slashable[0]?.contradiction, 'outcome');
  });

  it('never slashes without a signed receipt', () => {
    const v = adjudicate(truth, [r('a', { outputHash: 'bad' }, null)]);
    assert.equal(v.judgements[0]?.kind, 'invalid');
    assert.equal(v.slashable.length, 0);
  });
});
