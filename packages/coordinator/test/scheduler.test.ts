import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { eligible, schedule } from '../src/scheduler/index.js';
import type { SchedAgent, SchedJob } from '../src/scheduler/index.js';

const agent = (id: string, free: number, over: Partial<SchedAgent> = {}): SchedAgent => ({ id, free, runtimes: ['wasm'], memoryMb: 1024, cores: 4, ...over });
const job = (id: string, queued: number, over: Partial<SchedJob> = {}): SchedJob => ({
  id, runtime: 'wasm', queued, leased: 0, priority: 1, createdAt: 0, memoryMb: 64, requirements: {}, ...over,
});
const total = (plan: ReturnType<typeof schedule>, key: 'agentId' | 'jobId', id: string): number =>
  plan.filter((p) => p[key] === id).reduce((s, p) => s + p.count, 0);

describe('scheduler', () => {
  it('fills free credit from a single job, never more than queued', () => {
    const plan = schedule([agent('a', 10), agent('b', 10)], [job('j', 15)], { maxPerAgent: 100 });
    assert.equal(total(plan, 'jobId', 'j'), 15);
    assert.equal(total(plan, 'agentId', 'a'), 10);
    assert.equal(total(plan, 'agentId', 'b'), 5);
  });

  it('shares an agent fairly between jobs, weighted by priority', () => {
    const plan = schedule([agent('a', 30)], [job('x', 100), job('y', 100, { priority: 2 })], { maxPerAgent: 100 });
    assert.equal(total(plan, 'jobId', 'x'), 10);
    assert.equal(total(plan, 'jobId', 'y'), 20);
  });

  it('counts tasks already running when sharing', () => {
    const plan = schedule([agent('a', 10)], [job('busy', 100, { leased: 10 }), job('new', 100, { createdAt: 5 })], { maxPerAgent: 100 });
    assert.equal(total(plan, 'jobId', 'new'), 10);
  });

  it('matches capabilities: runtime, memory, cores', () => {
    const small = agent('small', 10, { memoryMb: 32, cores: 1 });
    const big = agent('big', 10, { memoryMb: 4096, cores: 16 });
    const needsMem = job('mem', 5, { memoryMb: 512 });
    const needsCores = job('cores', 5, { requirements: { minCores: 8 } });
    const other = job('other', 5, { runtime: 'python' });
    assert.equal(eligible(small, needsMem), false);
    assert.equal(eligible(big, needsMem), true);
    assert.equal(eligible(small, needsCores), false);
    assert.equal(eligible(big, other), false);
    const plan = schedule([small, big], [needsMem, needsCores, other], { maxPerAgent: 100 });
    assert.equal(total(plan, 'agentId', 'small'), 0);
    assert.equal(total(plan, 'jobId', 'other'), 0);
    assert.equal(total(plan, 'agentId', 'big'), 10);
  });

  it('respects a shared quota across agents (an approved batch of crossing tasks), and only where it applies', () => {
    const left = new Map([['cross:j', 7]]);
    const plan = schedule([agent('pub1', 10), agent('pub2', 10), agent('own', 10)], [job('j', 100)], {
      maxPerAgent: 100,
      quota: { key: (a, j) => (a.startsWith('pub') ? `cross:${j}` : undefined), left },
    });
    assert.equal(total(plan, 'agentId', 'pub1') + total(plan, 'agentId', 'pub2'), 7, 'public nodes get the batch, no more');
    assert.equal(total(plan, 'agentId', 'own'), 10, 'the org\'s own node is not limited');
    assert.equal(left.get('cross:j'), 0);
    fc.assert(fc.property(fc.array(fc.nat(20), { minLength: 1, maxLength: 6 }), fc.nat(30), (frees, q) => {
      const quota = new Map([['k', q]]);
      const p = schedule(frees.map((f, i) => agent(`a${i}`, f)), [job('j', 1000)], { maxPerAgent: 50, quota: { key: () => 'k', left: quota } });
      return total(p, 'jobId', 'j') === Math.min(q, frees.reduce((x, y) => x + Math.min(y, 50), 0));
    }));
  });

  it('caps one agent\'s batch at maxPerAgent', () => {
    const plan = schedule([agent('a', 1000)], [job('j', 1000)], { maxPerAgent: 64 });
    assert.equal(total(plan, 'agentId', 'a'), 64);
  });

  it('is deterministic and never over-assigns (property)', () => {
    const arbAgent = fc.record({ id: fc.string({ minLength: 1, maxLength: 4 }), free: fc.nat(50), memoryMb: fc.integer({ min: 1, max: 2048 }), cores: fc.integer({ min: 1, max: 8 }) });
    const arbJob = fc.record({ id: fc.string({ minLength: 1, maxLength: 4 }), queued: fc.nat(60), leased: fc.nat(20), priority: fc.integer({ min: 1, max: 5 }), memoryMb: fc.integer({ min: 1, max: 2048 }), createdAt: fc.nat(10) });
    fc.assert(fc.property(fc.uniqueArray(arbAgent, { selector: (a) => a.id, maxLength: 6 }), fc.uniqueArray(arbJob, { selector: (j) => j.id, maxLength: 6 }), (as, js) => {
      const agents = as.map((a) => agent(a.id, a.free, a));
      const jobs = js.map((j) => job(j.id, j.queued, j));
      const plan = schedule(agents, jobs, { maxPerAgent: 40 });
      assert.deepEqual(schedule(agents, jobs, { maxPerAgent: 40 }), plan);
      for (const a of agents) assert.ok(total(plan, 'agentId', a.id) <= Math.min(a.free, 40));
      for (const j of jobs) assert.ok(total(plan, 'jobId', j.id) <= j.queued);
      for (const p of plan) {
        assert.ok(p.count > 0);
        assert.ok(eligible(agents.find((a) => a.id === p.agentId) as SchedAgent, jobs.find((j) => j.id === p.jobId) as SchedJob));
      }
      // Work-conserving: an agent left with room means no eligible job has tasks left.
      for (const a of agents) {
        const room = Math.min(a.free, 40) - total(plan, 'agentId', a.id);
        if (room > 0) for (const j of jobs) if (eligible(a, j)) assert.equal(total(plan, 'jobId', j.id), j.queued);
      }
    }));
  });
});
