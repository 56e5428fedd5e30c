import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { DEFAULT_MODE_PARAMS, UNTRUSTED, createRng, isTrusted, recordInvalid, recordValid, replicas, replicationProbability } from '../src/verify/index.js';
import type { TrustState } from '../src/verify/index.js';

describe('verify: adaptive trust', () => {
  it('10 consecutive valid results make a node trusted; one invalid resets the streak to 0', () => {
    let s: TrustState = UNTRUSTED;
    for (let i = 0; i < 9; i++) s = recordValid(s);
    assert.equal(isTrusted(s, DEFAULT_MODE_PARAMS), false);
    assert.equal(replicas(s, DEFAULT_MODE_PARAMS, () => 0.999), true, 'an untrusted node is always replicated');
    s = recordValid(s);
    assert.equal(isTrusted(s, DEFAULT_MODE_PARAMS), true);
    assert.equal(replicationProbability(s, DEFAULT_MODE_PARAMS), 0.1);
    s = recordInvalid(s);
    assert.equal(s.streak, 0);
    assert.equal(isTrusted(s, DEFAULT_MODE_PARAMS), false);
  });

  it('a trusted node is replicated with probability 1/streak (fixed seed, 4σ bounds)', () => {
    for (const streak of [10, 25, 100]) {
      const rng = createRng(1234 + streak);
      const n = 100_000;
      let hits = 0;
      for (let i = 0; i < n; i++) if (replicas({ streak }, DEFAULT_MODE_PARAMS, rng)) hits++;
      const p = 1 / streak;
      const sigma = Math.sqrt(n * p * (1 - p));
      assert.ok(Math.abs(hits - n * p) < 4 * sigma, `streak ${streak}: ${hits} vs ${n * p}`);
    }
  });

  it('property: the streak counts valid results since the last invalid one', () => {
    fc.assert(fc.property(fc.array(fc.boolean(), { maxLength: 200 }), (events) => {
      let s: TrustState = UNTRUSTED;
      for (const ok of events) s = ok ? recordValid(s) : recordInvalid(s);
      const last = events.lastIndexOf(false);
      assert.equal(s.streak, events.length - last - 1);
    }), { seed: 7 });
  });
});
