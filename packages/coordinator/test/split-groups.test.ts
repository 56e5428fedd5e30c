/** The split-group planner: layer ranges by memory, limits, replacement, shares of effort. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { largestRemainder, layerCapacity, planSplitGroup, replaceStage, splitEffort, validPlan, type SplitCandidate } from '../src/split-groups.js';

const MB = 1_000_000;
const node = (c: string): string => c.repeat(64);
const cand = (id: string, layers: number, extra = 0): SplitCandidate => ({ nodeId: node(id), memoryBytes: 10 * MB + layers * 100 * MB + extra, layerBytes: 100 * MB, edgeBytes: 10 * MB });

describe('split groups: planning', () => {
  it('capacity is whole layers after room for the ends', () => {
    assert.equal(layerCapacity(cand('a', 3)), 3);
    assert.equal(layerCapacity(cand('a', 3, 99 * MB)), 3);
    assert.equal(layerCapacity({ nodeId: node('a'), memoryBytes: 5 * MB, layerBytes: 100 * MB, edgeBytes: 10 * MB }), 0);
  });

  it('largest remainder: parts sum to the total, the largest fractions get the extra units, ties to the first', () => {
    assert.deepEqual(largestRemainder(8, [5, 5, 5]), [3, 3, 2]);
    assert.deepEqual(largestRemainder(10, [1, 2, 3]), [2, 3, 5]); // quotas 1.67, 3.33, 5
    assert.deepEqual(largestRemainder(7, [3, 3]), [4, 3]);
    assert.deepEqual(largestRemainder(5, [0, 0]), [0, 0]);
    for (let total = 0; total < 40; total++) assert.equal(largestRemainder(total, [7, 3, 11, 1]).reduce((a, b) => a + b, 0), total);
  });

  it('takes the fewest members, largest first, and shares layers by capacity without exceeding any', () => {
    const plan = planSplitGroup(8, [cand('a', 3), cand('b', 5), cand('c', 4)]);
    assert.ok(plan);
    // b (5) and c (4) hold 9 ≥ 8: quotas 8·5/9 = 4.44 and 8·4/9 = 3.56 → 4 + 4 (c has the larger remainder).
    assert.deepEqual(plan.stages, [{ nodeId: node('b'), from: 0, to: 4 }, { nodeId: node('c'), from: 4, to: 8 }]);
    assert.deepEqual(plan.spares, [node('a')]);
    assert.ok(validPlan(plan.stages, 8));
  });

  it('a tight fit fills every member to its capacity exactly', () => {
    const plan = planSplitGroup(8, [cand('a', 3), cand('b', 3), cand('c', 2)]);
    assert.ok(plan);
    assert.deepEqual(plan.stages.map((s) => s.to - s.from), [3, 3, 2]);
    assert.deepEqual(plan.spares, []);
  });

  it('never puts a stage over its memory, over many random pools', () => {
    let seed = 7;
    const rnd = (n: number): number => (seed = (seed * 1103515245 + 12345) % 2 ** 31) % n;
    for (let k = 0; k < 500; k++) {
      const blocks = 1 + rnd(40);
      const pool = Array.from({ length: 1 + rnd(6) }, (_, i) => cand(String.fromCharCode(97 + i), rnd(12), rnd(50) * MB));
      const plan = planSplitGroup(blocks, pool);
      const total = pool.reduce((a, c) => a + layerCapacity(c), 0);
      if (total < blocks) {
        assert.equal(plan, undefined, 'no group when the pool cannot hold the model');
        continue;
      }
      assert.ok(plan && validPlan(plan.stages, blocks));
      for (const s of plan.stages) {
        const c = pool.find((x) => x.nodeId === s.nodeId)!;
        assert.ok(s.to - s.from <= layerCapacity(c), 'a stage within its memory');
      }
      assert.equal(new Set([...plan.stages.map((s) => s.nodeId), ...plan.spares]).size, plan.stages.length + plan.spares.length);
    }
  });

  it('no fit, no group: together too small, or no candidates', () => {
    assert.equal(planSplitGroup(8, [cand('a', 3), cand('b', 4)]), undefined);
    assert.equal(planSplitGroup(8, []), undefined);
    assert.equal(planSplitGroup(8, [{ nodeId: node('a'), memoryBytes: 1e12, layerBytes: 100, edgeBytes: 2e12 }]), undefined);
  });

  it('equal capacity: measured latency breaks the tie, then the node id', () => {
    const a = { ...cand('a', 4), latencyMs: 9 };
    const b = { ...cand('b', 4), latencyMs: 2 };
    const plan = planSplitGroup(4, [a, b, cand('c', 4)]);
    assert.equal(plan?.stages[0]?.nodeId, node('b'));
    assert.deepEqual(plan?.spares, [node('a'), node('c')]);
  });
});

describe('split groups: recovery and rewards', () => {
  it('a lost stage goes to a spare that can hold its layers; the others keep theirs', () => {
    const stages = [{ nodeId: node('a'), from: 0, to: 4 }, { nodeId: node('b'), from: 4, to: 8 }];
    const fix = replaceStage(stages, node('b'), [cand('c', 3), cand('d', 4)]);
    assert.deepEqual(fix, { stage: 1, nodeId: node('d'), stages: [stages[0], { nodeId: node('d'), from: 4, to: 8 }] });
    assert.equal(replaceStage(stages, node('b'), [cand('c', 3)]), undefined, 'no spare holds 4 layers');
    assert.equal(replaceStage(stages, node('z'), [cand('d', 4)]), undefined, 'not a member');
  });

  it('effort is shared by layers × the multiplier and sums exactly', () => {
    const stages = [{ nodeId: node('a'), from: 0, to: 5 }, { nodeId: node('b'), from: 5, to: 8 }];
    const shares = splitEffort(40_000_000, stages, 1.25);
    assert.deepEqual(shares, [{ nodeId: node('a'), fuel: 31_250_000, layers: 5 }, { nodeId: node('b'), fuel: 18_750_000, layers: 3 }]);
    const odd = splitEffort(7, [{ nodeId: node('a'), from: 0, to: 1 }, { nodeId: node('b'), from: 1, to: 2 }, { nodeId: node('c'), from: 2, to: 3 }], 1.25);
    assert.equal(odd.reduce((a, s) => a + s.fuel, 0), 9); // round(8.75)
  });
});
