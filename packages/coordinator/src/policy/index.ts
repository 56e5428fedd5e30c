/**
 * Organisation policy: which work may leave an org's own machines, when, and
 * to which public nodes. Pure — no I/O, no clock; see docs/policy.md.
 */
export {
  APPROVAL_MODES,
  JOB_LABELS,
  MAX_DURATION_MS,
  POLICY_DEFAULTS,
  PolicyDocument,
  TIMEOUT_OUTCOMES,
  normalizeDataClass,
  parsePolicy,
  policyFromObject,
  resolveLabel,
} from './schema.js';
export type { ApprovalMode, JobLabel, Policy, TimeoutOutcome } from './schema.js';
export type { PolicyIssue } from './issues.js';
export { canonicalPolicyDocument, formatPolicy, policyHash } from './canonical.js';
export { POLICY_RULES, approvalDeadline, approvalOutcome, crossingNeeded, explain, placement } from './evaluate.js';
export type {
  ApprovalState,
  CrossingCheck,
  Decision,
  NodeDecision,
  OverflowContext,
  PolicyJob,
  PolicyNode,
  PolicyRule,
  RuleCheck,
  Verdict,
} from './evaluate.js';
