import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { approvalDeadline, approvalOutcome, crossingNeeded, explain, parsePolicy, placement, policyFromObject } from '../src/policy/index.js';
import type { PolicyJob, PolicyNode } from '../src/policy/index.js';

const POLICY = parsePolicy(`
version: 1
overflow:
  waitMs: 60000
  approval: per-job
  approvalTimeoutMs: 600000
eligibility:
  operators: [op-good]
  regions: [eu]
  minReliability: 0.9
  minBondMsat: "1000000"
  runtimes: [wasm]
neverCross: [pii]
`);

const JOB: PolicyJob = { id: 'job-1', orgId: 'acme', label: 'overflow', dataClasses: ['build-logs'], runtime: 'wasm', queuedSince: 1_000_000 };
const good = { operator: 'op-good', publicPool: true, region: 'eu', reliability: 0.99, bondMsat: 5_000_000n, runtimes: ['wasm'] };
const NODES: PolicyNode[] = [
  { id: 'weak-public', ...good, reliability: 0.5 },
  { id: 'other-org-private', ...good, orgId: 'globex', publicPool: false },
  { id: 'good-public', ...good },
  { id: 'own', operator: 'acme-it', orgId: 'acme', publicPool: false, reliability: 0, bondMsat: 0n, runtimes: ['wasm'] },
  { id: 'no-region', operator: 'op-good', publicPool: true, reliability: 1, bondMsat: 5_000_000n, runtimes: ['wasm'] },
];
const LATER = { now: JOB.queuedSince + 60_000, privateCapacity: false };

describe('policy evaluation', () => {
  it('explain sorts eligible first, then approval-only, and explains every rule', () => {
    const out = explain(JOB, NODES, POLICY, { ...LATER, approval: 'approved' });
    assert.deepEqual(out.map((o) => [o.nodeId, o.decision.eligible]), [
      ['own', true],
      ['good-public', true],
      ['weak-public', false],
      ['other-org-private', false],
      ['no-region', false],
    ]);
    const weak = out.find((o) => o.nodeId === 'weak-public')?.decision;
    assert.ok(weak?.reasons.includes('minReliability: fail — reliability 0.5 < 0.9'), weak?.reasons.join('\n'));
    assert.equal(weak?.reasons.filter((r) => r.includes(': fail')).length, 1, 'only the failing rule fails');
    const other = out.find((o) => o.nodeId === 'other-org-private')?.decision;
    assert.ok(other?.reasons.some((r) => r.startsWith('pool: fail') && r.includes('globex')));
    const noRegion = out.find((o) => o.nodeId === 'no-region')?.decision;
    assert.ok(noRegion?.reasons.includes('regions: fail — the node reports no region'));

    const unasked = explain(JOB, NODES, POLICY, LATER);
    assert.deepEqual(unasked.slice(0, 2).map((o) => [o.nodeId, o.decision.eligible, o.decision.needsApproval]), [
      ['own', true, undefined],
      ['good-public', false, true],
    ]);
  });

  it('an overflow job waits for its org pool, then needs its approval', () => {
    const node = NODES[2] as PolicyNode;
    const early = placement(JOB, node, POLICY, { now: JOB.queuedSince + 59_999, privateCapacity: false, approval: 'approved' });
    assert.equal(early.eligible, false);
    assert.ok(early.reasons.includes('waitMs: fail — queued 59999 ms of the 60000 ms overflow wait'));
    const busyPrivate = placement(JOB, node, POLICY, { ...LATER, privateCapacity: true, approval: 'approved' });
    assert.equal(busyPrivate.eligible, false, 'a private node that can start it now comes first');
    assert.equal(placement(JOB, node, POLICY, { ...LATER, approval: 'pending' }).needsApproval, true);
    assert.equal(placement(JOB, node, POLICY, { ...LATER, approval: 'approved' }).eligible, true);
    const denied = placement(JOB, node, POLICY, { ...LATER, approval: 'denied' });
    assert.equal(denied.eligible, false);
    assert.equal(denied.needsApproval, undefined);
  });

  it('public jobs ignore the operator allow-list, the wait and approvals, but keep the other rules', () => {
    const job: PolicyJob = { ...JOB, label: 'public' };
    const ctx = { now: JOB.queuedSince, privateCapacity: true };
    assert.equal(placement(job, { id: 'x', ...good, operator: 'op-unknown' }, POLICY, ctx).eligible, true);
    assert.equal(placement(job, { id: 'x', ...good, region: 'us' }, POLICY, ctx).eligible, false);
    assert.equal(placement(job, { id: 'x', ...good, bondMsat: 999_999n }, POLICY, ctx).eligible, false);
    assert.equal(placement({ ...job, runtime: 'docker' }, { id: 'x', ...good, runtimes: ['docker'] }, POLICY, ctx).eligible, false);
    assert.equal(placement({ ...job, dataClasses: ['PII'] }, { id: 'x', ...good }, POLICY, ctx).eligible, false, 'neverCross binds every label, in any case');
    assert.deepEqual(crossingNeeded(job, POLICY, ctx).approval, 'none');
  });

  it('a private job stays home; an org node that lacks the runtime is not eligible', () => {
    const job: PolicyJob = { ...JOB, label: 'private' };
    const d = placement(job, NODES[2] as PolicyNode, POLICY, { ...LATER, approval: 'approved' });
    assert.equal(d.eligible, false);
    assert.ok(d.reasons.includes('label: fail — private jobs never leave the org'));
    assert.equal(placement(job, NODES[3] as PolicyNode, POLICY, LATER).eligible, true);
    assert.equal(placement({ ...job, runtime: 'docker' }, NODES[3] as PolicyNode, POLICY, LATER).eligible, false);
  });

  it('crossingNeeded says whether and why the job would cross now', () => {
    const early = crossingNeeded(JOB, POLICY, { now: JOB.queuedSince, privateCapacity: false });
    assert.equal(early.cross, false);
    assert.equal(early.needsApproval, false);
    assert.equal(early.waitUntil, JOB.queuedSince + 60_000);
    const due = crossingNeeded(JOB, POLICY, LATER);
    assert.deepEqual([due.cross, due.needsApproval, due.approval, due.batchSize], [true, true, 'per-job', undefined], 'would cross: ask for the approval');
    assert.equal(crossingNeeded(JOB, POLICY, { ...LATER, approval: 'pending' }).needsApproval, true);
    assert.deepEqual(Object.values(crossingNeeded(JOB, POLICY, { ...LATER, approval: 'denied' })).slice(0, 2), [false, false], 'a denial: no crossing, nothing to ask');
    const approved = crossingNeeded(JOB, POLICY, { ...LATER, approval: 'approved' });
    assert.deepEqual([approved.cross, approved.needsApproval], [true, false]);
    assert.equal(crossingNeeded({ ...JOB, dataClasses: ['pii'] }, POLICY, { ...LATER, approval: 'approved' }).cross, false);
    const docker = crossingNeeded({ ...JOB, runtime: 'docker' }, POLICY, LATER);
    assert.deepEqual([docker.cross, docker.needsApproval], [false, false], 'no approval asked for a runtime that may never cross');
    assert.equal(crossingNeeded(JOB, POLICY, { ...LATER, privateCapacity: true }).cross, false, 'a free private node: no crossing');
    const batch = policyFromObject({ version: 1, overflow: { approval: 'per-batch', batchSize: 25, waitMs: 0 } });
    const b = crossingNeeded(JOB, batch, { now: JOB.queuedSince, privateCapacity: false });
    assert.deepEqual([b.cross, b.needsApproval, b.approval, b.batchSize], [true, true, 'per-batch', 25]);
    const nobody = policyFromObject({ version: 1, overflow: { waitMs: 0 }, eligibility: { operators: [] } });
    assert.equal(crossingNeeded(JOB, nobody, { now: JOB.queuedSince, privateCapacity: false }).cross, false, 'an empty allow-list admits nobody');
  });

  it('approvalOutcome: pending until the deadline, then deny by default; approvals count only before the deadline; denials always do', () => {
    const req = { createdAt: 5_000 };
    const deadline = approvalDeadline(req, POLICY);
    assert.equal(deadline, 605_000);
    assert.equal(approvalOutcome(req, POLICY, deadline - 1), 'pending');
    assert.equal(approvalOutcome(req, POLICY, deadline), 'denied');
    assert.equal(approvalOutcome(req, POLICY, deadline - 1, 'approved'), 'approved');
    assert.equal(approvalOutcome({ ...req, decidedAt: deadline - 1 }, POLICY, deadline + 10, 'approved'), 'approved', 'answered in time');
    assert.equal(approvalOutcome({ ...req, decidedAt: deadline }, POLICY, deadline + 10, 'approved'), 'denied', 'answered too late');
    assert.equal(approvalOutcome(req, POLICY, deadline + 10, 'approved'), 'approved', 'without decidedAt the answer is taken as recorded in time');
    assert.equal(approvalOutcome(req, POLICY, 6_000, 'denied'), 'denied');
    const lenient = policyFromObject({ version: 1, overflow: { approval: 'per-job', onTimeout: 'approve', approvalTimeoutMs: 10 } });
    assert.equal(approvalOutcome(req, lenient, 5_009), 'pending');
    assert.equal(approvalOutcome(req, lenient, 5_010), 'approved');
    assert.equal(approvalOutcome(req, lenient, 5_010, 'denied'), 'denied');
    const none = policyFromObject({ version: 1 });
    assert.equal(approvalOutcome(req, none, 0), 'approved');
    assert.equal(approvalOutcome(req, none, 0, 'denied'), 'denied');
  });
});
