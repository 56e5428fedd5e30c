import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { judgeAnswer } from '../src/inference-check.js';

describe('judging an answer by teacher-forced log-probabilities', () => {
  it('passes a greedy answer, with near-ties and drift under the tolerance', () => {
    const top = [-1, -2, -0.5, -3, -1.2];
    const v = judgeAnswer({ tokenLogprobs: [-1, -2.1, -0.5, -3.4, -1.2], topLogprobs: top });
    assert.deepEqual({ honest: v?.honest, off: v?.off, tokens: v?.tokens }, { honest: true, off: 0, tokens: 5 });
  });

  it('fails an answer whose tokens the model would not pick, and allows a fifth of them off', () => {
    const top = Array.from({ length: 10 }, () => -1);
    const off = (k: number) => top.map((t, i) => (i < k ? t - 3 : t));
    assert.equal(judgeAnswer({ tokenLogprobs: off(2), topLogprobs: top })?.honest, true, '2 of 10 off: near-ties on another machine');
    const v = judgeAnswer({ tokenLogprobs: off(3), topLogprobs: top });
    assert.equal(v?.honest, false);
    assert.equal(v?.off, 3);
    assert.ok(Math.abs((v?.meanRegret ?? 0) - 0.9) < 1e-9);
    assert.equal(judgeAnswer({ tokenLogprobs: off(1), topLogprobs: top }, { maxOffFraction: 0 })?.honest, false, 'stricter on request');
  });

  it('cannot decide without tokens or the most likely token\'s log-probability', () => {
    assert.equal(judgeAnswer({ tokenLogprobs: [] , topLogprobs: [] }), undefined);
    assert.equal(judgeAnswer({ tokenLogprobs: [-1, -2] }), undefined);
    assert.equal(judgeAnswer({ tokenLogprobs: [-1, -2], topLogprobs: [-1] }), undefined);
  });
});
