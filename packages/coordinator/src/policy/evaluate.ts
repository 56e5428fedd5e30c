/**
 * Placement decisions: may this task of this job run on this node, now?
 * Pure — the clock, the org's free capacity and the approval state come in
 * as `OverflowContext`, so the scheduler, the simulator and
 * `idlemesh policy check` all ask the same function.
 *
 * Every decision lists every rule with its verdict, so "why not?" always has
 * an answer. Rules that cannot apply (the org's own node, a private job on a
 * public node) say `n/a` rather than disappearing.
 */
import { normalizeDataClass } from './schema.js';
import type { ApprovalMode, JobLabel, Policy } from './schema.js';

export interface PolicyNode {
  readonly id: string;
  readonly operator: string;
  /** Set when the node is in this org's private pool. */
  readonly orgId?: string;
  /** Admitted to the public pool. */
  readonly publicPool: boolean;
  readonly region?: string;
  /** 0..1 */
  readonly reliability: number;
  readonly bondMsat: bigint;
  readonly runtimes: readonly string[];
}

export interface PolicyJob {
  readonly id: string;
  readonly orgId: string;
  /** Already resolved: a job that named none has the policy's `defaultLabel` (`resolveLabel`). */
  readonly label: JobLabel;
  readonly dataClasses: readonly string[];
  readonly runtime: string;
  /** ms; when the job's oldest waiting task was queued. */
  readonly queuedSince: number;
}

export type ApprovalState = 'approved' | 'denied' | 'pending';

export interface OverflowContext {
  /** ms */
  readonly now: number;
  /** Some private node of the org could start a task of this job now. */
  readonly privateCapacity: boolean;
  /** State of the crossing approval for this job (or its current batch), if one was asked; see `approvalOutcome`. */
  readonly approval?: ApprovalState;
}

export const POLICY_RULES = [
  'nodeRuntime', 'pool', 'label', 'neverCross', 'operators', 'regions', 'minReliability', 'minBondMsat', 'runtimes', 'waitMs', 'approval',
] as const;
export type PolicyRule = (typeof POLICY_RULES)[number];
export type Verdict = 'pass' | 'fail' | 'n/a';

export interface RuleCheck {
  readonly rule: PolicyRule;
  readonly verdict: Verdict;
  readonly reason: string;
}

export interface Decision {
  readonly eligible: boolean;
  /** `private`: the node is in the job's org pool. `public`: anything else — outside the org. */
  readonly pool: 'private' | 'public';
  /** One line per rule, in `POLICY_RULES` order: `rule: verdict — why`. */
  readonly reasons: string[];
  readonly checks: readonly RuleCheck[];
  /** Every rule but the approval passes and no answer has come yet (none asked, or pending): ask, or keep waiting. */
  readonly needsApproval?: boolean;
}

const check = (rule: PolicyRule, verdict: Verdict, reason: string): RuleCheck => ({ rule, verdict, reason });
const verdict = (ok: boolean): Verdict => (ok ? 'pass' : 'fail');
const list = (xs: readonly string[]): string => (xs.length === 0 ? '(none)' : xs.join(', '));

function blockedClasses(job: PolicyJob, policy: Policy): string[] {
  const never = new Set(policy.neverCross);
  return [...new Set(job.dataClasses.map(normalizeDataClass))].filter((c) => never.has(c)).sort();
}

function neverCrossCheck(job: PolicyJob, policy: Policy): RuleCheck {
  const blocked = blockedClasses(job, policy);
  if (blocked.length > 0) return check('neverCross', 'fail', `data class ${list(blocked)} may never leave the org`);
  return check('neverCross', 'pass', job.dataClasses.length === 0 ? 'the job declares no data classes' : `none of ${list(job.dataClasses)} is in neverCross`);
}

/** The wait: the org's pool had its chance. Both halves must hold — see docs/policy.md. */
function waitCheck(job: PolicyJob, policy: Policy, ctx: OverflowContext): RuleCheck {
  const waited = ctx.now - job.queuedSince;
  const { waitMs } = policy.overflow;
  if (waited < waitMs) return check('waitMs', 'fail', `queued ${waited} ms of the ${waitMs} ms overflow wait`);
  if (ctx.privateCapacity) return check('waitMs', 'fail', 'a private node of the org can start it now (the org pool comes first)');
  return check('waitMs', 'pass', `queued ${waited} ms ≥ ${waitMs} ms and no private node can start it`);
}

function approvalCheck(policy: Policy, ctx: OverflowContext): RuleCheck {
  const mode = policy.overflow.approval;
  // A recorded denial is a person saying no; it holds even if the policy no longer asks.
  if (ctx.approval === 'denied') return check('approval', 'fail', 'crossing was denied (or its approval timed out)');
  if (mode === 'none') return check('approval', 'pass', 'the policy asks no approval');
  if (ctx.approval === 'approved') return check('approval', 'pass', `crossing approved (${mode})`);
  if (ctx.approval === 'pending') return check('approval', 'fail', `waiting for the ${mode} approval`);
  return check('approval', 'fail', `crossing needs a ${mode} approval; none asked yet`);
}

function eligibilityChecks(job: PolicyJob, node: PolicyNode, policy: Policy, label: JobLabel): RuleCheck[] {
  const e = policy.eligibility;
  const operators =
    label === 'public'
      ? check('operators', 'n/a', 'public jobs are not bound by the operator allow-list')
      : e.operators === null
        ? check('operators', 'pass', 'any operator')
        : check('operators', verdict(e.operators.includes(node.operator)), `operator ${node.operator} ${e.operators.includes(node.operator) ? 'is' : 'is not'} allow-listed`);
  const regionOk = e.regions === null || (node.region !== undefined && e.regions.includes(node.region));
  const regions =
    e.regions === null
      ? check('regions', 'pass', 'any region')
      : check('regions', verdict(regionOk), node.region === undefined ? 'the node reports no region' : `region ${node.region} ${regionOk ? 'is' : 'is not'} in ${list(e.regions)}`);
  const relOk = node.reliability >= e.minReliability;
  const bondOk = node.bondMsat >= e.minBondMsat;
  const rtOk = e.runtimes === null || e.runtimes.includes(job.runtime);
  return [
    operators,
    regions,
    check('minReliability', verdict(relOk), `reliability ${node.reliability} ${relOk ? '≥' : '<'} ${e.minReliability}`),
    check('minBondMsat', verdict(bondOk), `bond ${node.bondMsat} msat ${bondOk ? '≥' : '<'} ${e.minBondMsat} msat`),
    check('runtimes', verdict(rtOk), e.runtimes === null ? 'any runtime' : `runtime ${job.runtime} ${rtOk ? 'is' : 'is not'} allowed outside the org (${list(e.runtimes)})`),
  ];
}

const NA_OWN = 'the org’s own node: crossing rules do not apply';

/** May a task of `job` run on `node` now? */
export function placement(job: PolicyJob, node: PolicyNode, policy: Policy, ctx: OverflowContext): Decision {
  const runsIt = node.runtimes.includes(job.runtime);
  const nodeRuntime = check('nodeRuntime', verdict(runsIt), runsIt ? `the node runs ${job.runtime}` : `the node does not run ${job.runtime} (it runs ${list(node.runtimes)})`);

  if (node.orgId !== undefined && node.orgId === job.orgId) {
    const checks = [
      nodeRuntime,
      check('pool', 'pass', `the node is in org ${job.orgId}'s private pool`),
      ...POLICY_RULES.slice(2).map((rule) => check(rule, 'n/a', NA_OWN)),
    ];
    return decide(runsIt, 'private', checks);
  }

  const pool = node.publicPool
    ? check('pool', 'pass', `the node is in the public pool${node.orgId === undefined ? '' : ` (and org ${node.orgId}'s private pool)`}`)
    : check('pool', 'fail', node.orgId === undefined ? 'the node is in no pool this job may use' : `the node is in org ${node.orgId}'s private pool only`);

  if (job.label === 'private') {
    const checks = [
      nodeRuntime,
      pool,
      check('label', 'fail', 'private jobs never leave the org'),
      ...POLICY_RULES.slice(3).map((rule) => check(rule, 'n/a', 'a private job does not cross')),
    ];
    return decide(false, 'public', checks);
  }

  const checks: RuleCheck[] = [
    nodeRuntime,
    pool,
    check('label', 'pass', job.label === 'public' ? 'public: may run on public nodes' : 'overflow: may cross when the rules below allow'),
    neverCrossCheck(job, policy),
    ...eligibilityChecks(job, node, policy, job.label),
  ];
  if (job.label === 'public') {
    checks.push(check('waitMs', 'n/a', 'public jobs do not wait for the org pool'), check('approval', 'n/a', 'the public label is the submitter’s consent'));
  } else {
    checks.push(waitCheck(job, policy, ctx), approvalCheck(policy, ctx));
  }
  const failing = checks.filter((c) => c.verdict === 'fail');
  const eligible = failing.length === 0;
  const needsApproval = !eligible && failing.length === 1 && failing[0]?.rule === 'approval' && ctx.approval !== 'denied';
  return decide(eligible, 'public', checks, needsApproval);
}

function decide(eligible: boolean, pool: 'private' | 'public', checks: readonly RuleCheck[], needsApproval = false): Decision {
  const reasons = checks.map((c) => `${c.rule}: ${c.verdict} — ${c.reason}`);
  return needsApproval ? { eligible, pool, reasons, checks, needsApproval } : { eligible, pool, reasons, checks };
}

export interface NodeDecision {
  readonly nodeId: string;
  readonly decision: Decision;
}

function rank(d: Decision): number {
  if (d.eligible) return d.pool === 'private' ? 0 : 1;
  return d.needsApproval === true ? 2 : 3;
}

/**
 * Every node's decision for `job`: eligible nodes first (the org's own, then
 * public), then those waiting only for an approval, then the rest; ties keep
 * the order of `nodes`.
 */
export function explain(job: PolicyJob, nodes: readonly PolicyNode[], policy: Policy, ctx: OverflowContext): NodeDecision[] {
  return nodes
    .map((node, i) => ({ i, nodeId: node.id, decision: placement(job, node, policy, ctx) }))
    .sort((a, b) => rank(a.decision) - rank(b.decision) || a.i - b.i)
    .map(({ nodeId, decision }) => ({ nodeId, decision }));
}

export interface CrossingCheck {
  /**
   * The job would now cross to public capacity, the approval aside: the
   * label, data classes, runtime and wait allow it and no denial is on
   * record. Its tasks may actually go public when `cross && !needsApproval`.
   */
  readonly cross: boolean;
  /** `cross`, but an approval is required and not given yet: ask one (`ctx.approval` unset) or keep waiting (pending). */
  readonly needsApproval: boolean;
  /** The approval the crossing needs: the policy's mode for overflow jobs, `none` for public jobs. */
  readonly approval: ApprovalMode;
  /** Tasks one approval covers, with `per-batch`. */
  readonly batchSize?: number;
  /** Overflow jobs: when the overflow wait ends (ms). */
  readonly waitUntil?: number;
  readonly reasons: string[];
}

/**
 * Whether, and why, `job` would now cross to public capacity — the
 * job-level half of `placement`, for opening approval requests and setting
 * timers. When `cross` is false no node outside the org is eligible; when
 * `needsApproval` is true none is until the approval comes.
 */
export function crossingNeeded(job: PolicyJob, policy: Policy, ctx: OverflowContext): CrossingCheck {
  if (job.label === 'private') return { cross: false, needsApproval: false, approval: 'none', reasons: ['label: private jobs never leave the org'] };
  const never = neverCrossCheck(job, policy);
  const reasons = [`label: ${job.label}`, `neverCross: ${never.verdict} — ${never.reason}`];
  if (job.label === 'public') {
    const blocked = never.verdict === 'fail';
    return { cross: !blocked, needsApproval: false, approval: 'none', reasons: [...reasons, 'approval: n/a — the public label is the submitter’s consent'] };
  }

  const { overflow: o, eligibility: e } = policy;
  const gates: RuleCheck[] = [];
  const rtOk = e.runtimes === null || e.runtimes.includes(job.runtime);
  gates.push(check('runtimes', verdict(rtOk), e.runtimes === null ? 'any runtime' : `runtime ${job.runtime} ${rtOk ? 'is' : 'is not'} allowed outside the org`));
  if (e.operators !== null && e.operators.length === 0) gates.push(check('operators', 'fail', 'the operator allow-list is empty: no public node qualifies'));
  if (e.regions !== null && e.regions.length === 0) gates.push(check('regions', 'fail', 'the region list is empty: no public node qualifies'));
  gates.push(waitCheck(job, policy, ctx));
  const approval = approvalCheck(policy, ctx);
  for (const c of [...gates, approval]) reasons.push(`${c.rule}: ${c.verdict} — ${c.reason}`);

  const cross = never.verdict !== 'fail' && gates.every((c) => c.verdict !== 'fail') && ctx.approval !== 'denied';
  return {
    cross,
    needsApproval: cross && approval.verdict === 'fail',
    approval: o.approval,
    ...(o.batchSize === null ? {} : { batchSize: o.batchSize }),
    waitUntil: job.queuedSince + o.waitMs,
    reasons,
  };
}

/** When an approval request asked at `createdAt` times out. */
export function approvalDeadline(request: { readonly createdAt: number }, policy: Policy): number {
  return request.createdAt + policy.overflow.approvalTimeoutMs;
}

/**
 * The state of a crossing approval at `now`. A denial always counts. An
 * approval counts if it was given before the deadline: pass `decidedAt` to
 * have that checked here; without it the answer is taken as recorded in time
 * (the endpoint recording answers should refuse late ones — see
 * `approvalDeadline`). Past the deadline with no valid answer the policy's
 * `onTimeout` decides — `deny` unless the org chose otherwise. With
 * `approval: none` nothing is asked and the answer is `approved`.
 */
export function approvalOutcome(
  request: { readonly createdAt: number; readonly decidedAt?: number },
  policy: Policy,
  now: number,
  decision?: 'approved' | 'denied',
): ApprovalState {
  if (decision === 'denied') return 'denied';
  if (policy.overflow.approval === 'none') return 'approved';
  const deadline = approvalDeadline(request, policy);
  if (decision === 'approved' && (request.decidedAt === undefined || request.decidedAt < deadline)) return 'approved';
  if (now >= deadline) return policy.overflow.onTimeout === 'approve' ? 'approved' : 'denied';
  return 'pending';
}
