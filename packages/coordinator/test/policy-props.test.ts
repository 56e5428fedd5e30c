/**
 * Properties: over random organisations, policies, nodes, jobs and moments,
 * private work never leaves its org, protected data classes never cross, an
 * overflow task reaches a public node only when every rule, the wait and the
 * approval allow it, and the org's own nodes always qualify. The oracle is
 * written from the rules in docs/policy.md, not from the evaluator's code.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { approvalOutcome, crossingNeeded, explain, placement, policyFromObject, POLICY_RULES } from '../src/policy/index.js';
import type { OverflowContext, Policy, PolicyJob, PolicyNode } from '../src/policy/index.js';

const ORGS = ['org-a', 'org-b', 'org-c'];
const OPERATORS = ['op-1', 'op-2', 'op-3', 'op-4'];
const REGIONS = ['eu', 'us', 'ap'];
const RUNTIMES = ['wasm', 'wasi', 'docker'];
const CLASSES = ['pii', 'PII', 'secrets', 'source', 'logs'];

/** Biased choices, so the rare paths (a task actually crossing) come up often. */
const weighted = <A, B>(a: A, wa: number, b: B, wb: number): fc.Arbitrary<A | B> =>
  fc.oneof({ arbitrary: fc.constant(a), weight: wa }, { arbitrary: fc.constant(b), weight: wb });

/** Mostly a real allow-list; sometimes the empty one, which admits nobody. */
const allowList = (all: readonly string[]): fc.Arbitrary<string[]> =>
  fc.oneof({ arbitrary: fc.subarray([...all], { minLength: 1 }), weight: 5 }, { arbitrary: fc.constant<string[]>([]), weight: 1 });

const policyArb: fc.Arbitrary<Policy> = fc
  .record(
    {
      defaultLabel: fc.constantFrom('private', 'overflow', 'public'),
      overflow: fc.record(
        {
          waitMs: fc.nat(100_000),
          approval: fc.constantFrom('none', 'per-job', 'per-batch'),
          approvalTimeoutMs: fc.integer({ min: 1, max: 100_000 }),
          onTimeout: fc.constantFrom('deny', 'approve'),
        },
        { requiredKeys: [] },
      ),
      eligibility: fc.record(
        {
          operators: allowList(OPERATORS),
          regions: allowList(REGIONS),
          minReliability: fc.double({ min: 0, max: 1, noNaN: true }),
          minBondMsat: fc.bigInt({ min: 0n, max: 2_000_000n }).map(String),
          runtimes: allowList(RUNTIMES),
        },
        { requiredKeys: [] },
      ),
      neverCross: fc.subarray(['pii', 'Secrets', 'source']),
    },
    { requiredKeys: [] },
  )
  .map((doc) => policyFromObject({ version: 1, ...doc }));

const nodeArb: fc.Arbitrary<PolicyNode> = fc
  .record({
    id: fc.uuid(),
    operator: fc.constantFrom(...OPERATORS),
    orgId: fc.option(fc.constantFrom(...ORGS), { nil: undefined }),
    publicPool: fc.boolean(),
    region: fc.option(fc.constantFrom(...REGIONS), { nil: undefined }),
    reliability: fc.double({ min: 0, max: 1, noNaN: true }),
    bondMsat: fc.bigInt({ min: 0n, max: 2_000_000n }),
    runtimes: fc.subarray(RUNTIMES),
  })
  .map(({ orgId, region, ...rest }) => ({ ...rest, ...(orgId === undefined ? {} : { orgId }), ...(region === undefined ? {} : { region }) }));

const jobArb: fc.Arbitrary<PolicyJob> = fc.record({
  id: fc.uuid(),
  orgId: fc.constantFrom(...ORGS),
  label: fc.constantFrom('private', 'overflow', 'overflow', 'public'),
  dataClasses: fc.oneof({ arbitrary: fc.constant([]), weight: 2 }, { arbitrary: fc.subarray(CLASSES), weight: 1 }),
  runtime: fc.constantFrom(...RUNTIMES),
  queuedSince: fc.nat(1_000_000),
});

/**
 * A public node built to meet the policy's node rules for `job`, then
 * perhaps broken in exactly one of them: random nodes alone almost never pass
 * every rule, and the boundary cases are where a leak would hide.
 */
const nearMissArb = (policy: Policy, job: PolicyJob): fc.Arbitrary<PolicyNode> => {
  const e = policy.eligibility;
  const pick = (allowed: readonly string[] | null, all: readonly string[]): fc.Arbitrary<string> =>
    allowed !== null && allowed.length > 0 ? fc.constantFrom(...allowed) : fc.constantFrom(...all);
  return fc
    .record({
      id: fc.uuid(),
      operator: pick(e.operators, OPERATORS),
      orgId: fc.option(fc.constantFrom(...ORGS.filter((o) => o !== job.orgId)), { nil: undefined }),
      region: pick(e.regions, REGIONS),
      reliability: fc.double({ min: e.minReliability, max: 1, noNaN: true }),
      bondMsat: fc.bigInt({ min: e.minBondMsat, max: e.minBondMsat + 1000n }),
      runtimes: fc.subarray(RUNTIMES).map((rs) => [...new Set([...rs, job.runtime])]),
      breakRule: fc.option(fc.constantFrom('operator', 'region', 'reliability', 'bond', 'runtime', 'pool'), { nil: undefined }),
    })
    .map(({ orgId, breakRule, ...n }): PolicyNode => {
      const node: PolicyNode = { ...n, publicPool: breakRule !== 'pool', ...(orgId === undefined ? {} : { orgId }) };
      switch (breakRule) {
        case 'operator': return { ...node, operator: 'op-outsider' };
        case 'region': { const { region: _r, ...rest } = node; return rest; }
        case 'reliability': return { ...node, reliability: e.minReliability > 0 ? e.minReliability - Number.EPSILON : node.reliability };
        case 'bond': return { ...node, bondMsat: e.minBondMsat > 0n ? e.minBondMsat - 1n : node.bondMsat };
        case 'runtime': return { ...node, runtimes: node.runtimes.filter((r) => r !== job.runtime) };
        default: return node;
      }
    });
};

/** The moment, and the approval state computed the way the scheduler will: from a request and maybe an answer. */
const ctxArb = (policy: Policy, job: PolicyJob): fc.Arbitrary<OverflowContext> =>
  fc
    .record({
      after: fc.oneof(fc.noBias(fc.nat(200_000)), fc.constantFrom(policy.overflow.waitMs, Math.max(0, policy.overflow.waitMs - 1))),
      privateCapacity: weighted(false, 3, true, 1),
      asked: fc.boolean(),
      askedAfter: fc.nat(200_000),
      answer: fc.constantFrom(undefined, 'approved' as const, 'approved' as const, 'denied' as const),
      answeredAfter: fc.oneof(fc.nat(1000), fc.nat(200_000)),
    })
    .map(({ after, privateCapacity, asked, askedAfter, answer, answeredAfter }) => {
      const now = job.queuedSince + after;
      if (!asked) return { now, privateCapacity };
      const createdAt = job.queuedSince + askedAfter;
      const request = { createdAt, decidedAt: createdAt + answeredAfter };
      return { now, privateCapacity, approval: approvalOutcome(request, policy, now, answer) };
    });

const scenario = fc
  .tuple(policyArb, jobArb)
  .chain(([policy, job]) => {
    // Mostly a runtime the policy lets cross, or no job would ever reach the node rules.
    const allowed = policy.eligibility.runtimes;
    const runtime = allowed !== null && allowed.length > 0 ? fc.oneof({ arbitrary: fc.constantFrom(...allowed), weight: 3 }, fc.constant(job.runtime)) : fc.constant(job.runtime);
    return fc.tuple(fc.constant(policy), runtime.map((r): PolicyJob => ({ ...job, runtime: r })));
  })
  .chain(([policy, job]) =>
    fc.record({
      policy: fc.constant(policy),
      job: fc.constant(job),
      nodes: fc.array(fc.oneof(nodeArb, nearMissArb(policy, job)), { minLength: 1, maxLength: 8 }),
      ctx: ctxArb(policy, job),
    }),
  );

const crosses = (c: string, policy: Policy): boolean => policy.neverCross.includes(c.toLowerCase());

/** The node rules for a public node, from the plain-words rules. */
function meetsNodeRules(node: PolicyNode, job: PolicyJob, policy: Policy, withOperators: boolean): boolean {
  const e = policy.eligibility;
  return (
    node.publicPool &&
    node.runtimes.includes(job.runtime) &&
    (!withOperators || e.operators === null || e.operators.includes(node.operator)) &&
    (e.regions === null || (node.region !== undefined && e.regions.includes(node.region))) &&
    node.reliability >= e.minReliability &&
    node.bondMsat >= e.minBondMsat &&
    (e.runtimes === null || e.runtimes.includes(job.runtime))
  );
}

const RUNS = { numRuns: 1000 };

describe('policy placement properties', () => {
  it('the generators reach the interesting cases (so the properties are not vacuous)', () => {
    let publicOverflow = 0;
    let awaitingApproval = 0;
    let deniedButOtherwiseEligible = 0;
    const samples = fc.sample(scenario, { numRuns: 2000, seed: 42 });
    for (const { policy, job, nodes, ctx } of samples) {
      const ds = nodes.filter((n) => n.orgId !== job.orgId).map((n) => placement(job, n, policy, ctx));
      if (job.label === 'overflow' && ds.some((d) => d.eligible)) publicOverflow++;
      if (ds.some((d) => d.needsApproval === true)) awaitingApproval++;
      if (ctx.approval === 'denied' && ds.some((d) => d.checks.every((c) => c.verdict !== 'fail' || c.rule === 'approval') && d.checks.some((c) => c.rule === 'approval' && c.verdict === 'fail'))) deniedButOtherwiseEligible++;
    }
    assert.ok(publicOverflow >= 40, `only ${publicOverflow} of 2000 scenarios place an overflow task on a public node`);
    assert.ok(awaitingApproval >= 25, `only ${awaitingApproval} scenarios wait for an approval`);
    assert.ok(deniedButOtherwiseEligible >= 15, `only ${deniedButOtherwiseEligible} scenarios are stopped by a denial alone`);
  });

  it('the exact rule: eligible ⇔ own org node running the runtime, or a public node the label and rules allow', () => {
    fc.assert(
      fc.property(scenario, ({ policy, job, nodes, ctx }) => {
        for (const node of nodes) {
          const d = placement(job, node, policy, ctx);
          const own = node.orgId === job.orgId;
          const protectedData = job.dataClasses.some((c) => crosses(c, policy));
          let expected: boolean;
          if (own) expected = node.runtimes.includes(job.runtime);
          else if (job.label === 'private' || protectedData) expected = false;
          else if (job.label === 'public') expected = meetsNodeRules(node, job, policy, false);
          else {
            const waited = ctx.now - job.queuedSince >= policy.overflow.waitMs && !ctx.privateCapacity;
            const approved = ctx.approval !== 'denied' && (policy.overflow.approval === 'none' || ctx.approval === 'approved');
            expected = meetsNodeRules(node, job, policy, true) && waited && approved;
          }
          assert.equal(d.eligible, expected, d.reasons.join('\n'));
          assert.equal(d.pool, own ? 'private' : 'public');
        }
      }),
      RUNS,
    );
  });

  it('a private job never leaves its org; nor does a job with a neverCross data class', () => {
    fc.assert(
      fc.property(scenario, ({ policy, job, nodes, ctx }) => {
        for (const node of nodes) {
          const d = placement(job, node, policy, ctx);
          if (d.eligible && (job.label === 'private' || job.dataClasses.some((c) => crosses(c, policy)))) {
            assert.equal(node.orgId, job.orgId, `left org: ${d.reasons.join('; ')}`);
            assert.equal(d.pool, 'private');
          }
        }
      }),
      RUNS,
    );
  });

  it('an overflow task reaches a public node only after the wait, with no private capacity, meeting every rule, and approved when required', () => {
    fc.assert(
      fc.property(scenario, ({ policy, job, nodes, ctx }) => {
        const overflowJob: PolicyJob = { ...job, label: 'overflow' };
        for (const node of nodes) {
          const d = placement(overflowJob, node, policy, ctx);
          if (!d.eligible || d.pool === 'private') continue;
          assert.ok(ctx.now - job.queuedSince >= policy.overflow.waitMs, 'crossed before the wait');
          assert.ok(!ctx.privateCapacity, 'crossed while a private node could start it');
          assert.ok(meetsNodeRules(node, overflowJob, policy, true), 'crossed to a node failing a rule');
          if (policy.overflow.approval !== 'none') assert.equal(ctx.approval, 'approved');
          assert.ok(!job.dataClasses.some((c) => crosses(c, policy)));
        }
      }),
      RUNS,
    );
  });

  it('a denied or timed-out (deny) approval never places public', () => {
    fc.assert(
      fc.property(scenario, fc.nat(1_000_000), fc.boolean(), ({ policy, job, nodes, ctx }, lateBy, deniedOutright) => {
        const overflowJob: PolicyJob = { ...job, label: 'overflow' };
        const denyPolicy: Policy = { ...policy, overflow: { ...policy.overflow, approval: 'per-job', onTimeout: 'deny' } };
        const createdAt = job.queuedSince;
        const now = createdAt + denyPolicy.overflow.approvalTimeoutMs + lateBy;
        // Timed out with no answer, or an approval that came too late, or an outright denial.
        const state = deniedOutright
          ? approvalOutcome({ createdAt }, denyPolicy, createdAt, 'denied')
          : approvalOutcome({ createdAt, decidedAt: lateBy % 2 === 0 ? now : createdAt }, denyPolicy, now, lateBy % 2 === 0 ? 'approved' : undefined);
        assert.equal(state, 'denied');
        const c: OverflowContext = { ...ctx, now, privateCapacity: false, approval: state };
        for (const node of nodes) {
          const d = placement(overflowJob, node, denyPolicy, c);
          if (node.orgId !== job.orgId) {
            assert.equal(d.eligible, false);
            assert.notEqual(d.needsApproval, true, 'a denial is final, not a request to ask again');
          }
        }
        assert.equal(crossingNeeded(overflowJob, denyPolicy, c).cross, false);
      }),
      RUNS,
    );
  });

  it('the org’s own nodes always win eligibility, whatever the label, rules, wait or approval', () => {
    fc.assert(
      fc.property(scenario, ({ policy, job, nodes, ctx }) => {
        for (const n of nodes) {
          const node: PolicyNode = { ...n, orgId: job.orgId, reliability: 0, bondMsat: 0n, runtimes: [job.runtime] };
          const { region: _dropped, ...noRegion } = node;
          for (const candidate of [node, noRegion]) {
            const d = placement(job, candidate, policy, { ...ctx, approval: 'denied' });
            assert.equal(d.eligible, true);
            assert.equal(d.pool, 'private');
          }
        }
      }),
      RUNS,
    );
  });

  it('nodes of another org’s private pool that are not public are never eligible', () => {
    fc.assert(
      fc.property(scenario, ({ policy, job, nodes, ctx }) => {
        for (const n of nodes) {
          const other = ORGS.find((o) => o !== job.orgId) ?? 'org-x';
          const d = placement(job, { ...n, orgId: other, publicPool: false }, policy, ctx);
          assert.equal(d.eligible, false);
        }
      }),
      RUNS,
    );
  });

  it('needsApproval means exactly "eligible once approved"', () => {
    fc.assert(
      fc.property(scenario, ({ policy, job, nodes, ctx }) => {
        for (const node of nodes) {
          const d = placement(job, node, policy, ctx);
          const approved = placement(job, node, policy, { ...ctx, approval: 'approved' });
          const wouldAsk = !d.eligible && approved.eligible && ctx.approval !== 'denied';
          assert.equal(d.needsApproval === true, wouldAsk, d.reasons.join('\n'));
        }
      }),
      RUNS,
    );
  });

  it('crossingNeeded agrees with placement: no crossing, no node outside the org', () => {
    fc.assert(
      fc.property(scenario, ({ policy, job, nodes, ctx }) => {
        const c = crossingNeeded(job, policy, ctx);
        const outside = nodes.filter((n) => n.orgId !== job.orgId).map((n) => placement(job, n, policy, ctx));
        // Nothing outside the org unless the job would cross and needs no more approval.
        if (!c.cross || c.needsApproval) assert.ok(outside.every((d) => !d.eligible), c.reasons.join('\n'));
        if (outside.some((d) => d.needsApproval === true)) assert.ok(c.cross && c.needsApproval, 'a node waits for an approval nobody would ask');
        if (c.needsApproval) assert.equal(c.cross, true);
        if (job.label === 'overflow' && c.cross && !c.needsApproval) assert.ok(policy.overflow.approval === 'none' || ctx.approval === 'approved');
        if (job.label === 'overflow') {
          assert.equal(c.approval, policy.overflow.approval);
          assert.equal(c.batchSize, policy.overflow.approval === 'per-batch' ? policy.overflow.batchSize : undefined);
          assert.equal(c.waitUntil, job.queuedSince + policy.overflow.waitMs);
        }
      }),
      RUNS,
    );
  });

  it('explain sorts eligible first and gives one reason per rule for every node', () => {
    fc.assert(
      fc.property(scenario, ({ policy, job, nodes, ctx }) => {
        const out = explain(job, nodes, policy, ctx);
        assert.deepEqual(out.map((o) => o.nodeId).sort(), nodes.map((n) => n.id).sort());
        const firstIneligible = out.findIndex((o) => !o.decision.eligible);
        if (firstIneligible >= 0) assert.ok(out.slice(firstIneligible).every((o) => !o.decision.eligible), 'an eligible node after an ineligible one');
        for (const { decision } of out) {
          assert.deepEqual(decision.checks.map((c) => c.rule), [...POLICY_RULES]);
          assert.equal(decision.reasons.length, POLICY_RULES.length);
          decision.reasons.forEach((r, i) => assert.ok(r.startsWith(`${POLICY_RULES[i]}: `), r));
          assert.equal(decision.eligible, decision.checks.every((c) => c.verdict !== 'fail'));
        }
      }),
      RUNS,
    );
  });
});
