import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { DEFAULT_MODE_PARAMS, decide, eligible, exclusion, resolveModeParams } from '../src/verify/index.js';
import type { Outcome, Result } from '../src/verify/index.js';

let seq = 0;
function res(nodeId: string, outputHash = 'h', fuel = 100, outcome: Outcome = 'ok'): Result {
  seq++;
  return { nodeId, operator: `op-${nodeId}`, ipPrefix: `10.${seq}.0`, outcome, outputHash, fuel, receiptId: `rcpt-${nodeId}` };
}

describe('verify: quorum', () => {
  const P = DEFAULT_MODE_PARAMS;

  it('asks for targetResults at first, then accepts two agreeing results', () => {
    const more = (v: ReturnType<typeof decide>): number => (v.kind === 'pending' ? v.more : -1);
    assert.equal(more(decide([], P)), 2);
    assert.equal(more(decide([res('a')], P)), 1);
    assert.equal(more(decide([res('a')], P, 1)), 0, 'a replica already in flight is not sent again');
    const v2 = decide([res('a'), res('b')], P);
    assert.equal(v2.kind, 'accepted');
    if (v2.kind === 'accepted') assert.deepEqual([v2.valid, v2.invalid, v2.canonical.nodeId], [['a', 'b'], [], 'a']);
  });

  it('output AND effort must agree: a fuel difference is a dissent that goes to the referee', () => {
    assert.deepEqual(decide([res('a', 'h', 100), res('b', 'h', 150)], P), { kind: 'needs-referee', reason: 'dissent' });
    assert.deepEqual(decide([res('a', 'h'), res('b', 'x')], P), { kind: 'needs-referee', reason: 'dissent' });
  });

  it('BOINC-style replication on dissent: more replicas, then a majority with dissenters invalid by vote', () => {
    const Q = resolveModeParams({ onDissent: 'replicate' });
    const split = decide([res('a'), res('b', 'x')], Q);
    assert.equal(split.kind, 'pending');
    if (split.kind === 'pending') {
      assert.equal(split.more, 1);
      assert.equal(split.exclude.operators.length, 2);
    }
    const maj = decide([res('a'), res('b', 'x'), res('c')], Q);
    assert.equal(maj.kind, 'accepted');
    if (maj.kind === 'accepted') assert.deepEqual(maj.invalid, ['b']);
    // Five results without a quorum: the referee, or unverifiable without one.
    const five = [res('a', '1'), res('b', '2'), res('c', '3'), res('d', '4'), res('e', '5')];
    assert.deepEqual(decide(five, Q), { kind: 'needs-referee', reason: 'max-results' });
    assert.deepEqual(decide(five, resolveModeParams({ onDissent: 'replicate', referee: false })), { kind: 'unverifiable', reason: 'max-results' });
  });

  it('refuses bad parameters', () => {
    assert.throws(() => resolveModeParams({ minQuorum: 3, targetResults: 2 }), { code: 'IM_CONFIG_INVALID' });
    assert.throws(() => resolveModeParams({ spotCheckRate: 1.5 }), { code: 'IM_CONFIG_INVALID' });
    assert.throws(() => resolveModeParams({ bogus: 1 } as never), { code: 'IM_CONFIG_INVALID' });
  });

  it('property: replicas of a task never share an operator or an IP prefix, and never exceed maxTotalResults', () => {
    const pool = fc.array(fc.record({ operator: fc.integer({ min: 0, max: 15 }), prefix: fc.integer({ min: 0, max: 15 }), claim: fc.integer({ min: 0, max: 2 }) }), { minLength: 1, maxLength: 60 });
    const params = fc.record({ minQuorum: fc.integer({ min: 1, max: 3 }), extra: fc.integer({ min: 0, max: 2 }), more: fc.integer({ min: 0, max: 3 }), onDissent: fc.constantFrom('referee' as const, 'replicate' as const) });
    fc.assert(fc.property(pool, params, fc.array(fc.nat(), { minLength: 10, maxLength: 10 }), (nodes, p, picks) => {
      const P2 = resolveModeParams({ minQuorum: p.minQuorum, targetResults: p.minQuorum + p.extra, maxTotalResults: p.minQuorum + p.extra + p.more, onDissent: p.onDissent });
      const results: Result[] = [];
      for (let step = 0; step < 10; step++) {
        const v = decide(results, P2);
        if (v.kind !== 'pending') break;
        assert.ok(results.length + v.more <= P2.maxTotalResults);
        // The caller picks among eligible nodes; start at a random offset.
        const start = picks[step]! % nodes.length;
        let chosen = -1;
        for (let o = 0; o < nodes.length && chosen < 0; o++) {
          const i = (start + o) % nodes.length;
          const n = nodes[i]!;
          if (eligible({ operator: `o${n.operator}`, ipPrefix: `p${n.prefix}` }, v.exclude)) chosen = i;
        }
        if (chosen < 0 || v.more === 0) break;
        const n = nodes[chosen]!;
        results.push({ nodeId: `n${chosen}`, operator: `o${n.operator}`, ipPrefix: `p${n.prefix}`, outcome: 'ok', outputHash: `c${n.claim}`, fuel: 1, receiptId: `r${chosen}` });
      }
      const ex = exclusion(results);
      assert.equal(ex.operators.length, results.length, 'an operator appears twice');
      assert.equal(ex.prefixes.length, results.length, 'a prefix appears twice');
    }), { numRuns: 500, seed: 42 });
  });
});
