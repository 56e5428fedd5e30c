/**
 * The policy document: what an organisation writes (YAML or JSON) to say
 * which of its work may leave its own machines, and on what terms. The
 * schema is strict — an unknown key is an error, because a misspelt rule
 * that is silently ignored would widen what crosses. `resolvePolicy` applies
 * every default in one place; the evaluator only ever sees a resolved
 * `Policy`. docs/policy.md describes each field.
 */
import { z } from 'zod';
import { parse as parseYaml } from 'yaml';
import { ImError } from '@idlemesh/protocol';
import { describeIssues, issueLine } from './issues.js';
import type { PolicyIssue } from './issues.js';

export const JOB_LABELS = ['private', 'overflow', 'public'] as const;
/** `private`: the org's pool only. `overflow`: the org's pool first, public capacity under the policy's rules. `public`: any public node. */
export type JobLabel = (typeof JOB_LABELS)[number];

export const APPROVAL_MODES = ['none', 'per-job', 'per-batch'] as const;
/** Whether an overflow job's crossing to public capacity waits for a human: never, once per job, or once per batch of tasks. */
export type ApprovalMode = (typeof APPROVAL_MODES)[number];

export const TIMEOUT_OUTCOMES = ['deny', 'approve'] as const;
export type TimeoutOutcome = (typeof TIMEOUT_OUTCOMES)[number];

/** The longest wait or approval timeout a policy may set: 30 days. */
export const MAX_DURATION_MS = 30 * 24 * 3600 * 1000;
/** Amounts in the ledger are at most 2^63−1 msat. */
const MAX_MSAT = 2n ** 63n - 1n;

export const POLICY_DEFAULTS = {
  defaultLabel: 'private',
  overflow: { waitMs: 60_000, approval: 'none', batchSize: 100, approvalTimeoutMs: 3_600_000, onTimeout: 'deny' },
  eligibility: { minReliability: 0, minBondMsat: 0n },
  neverCross: [],
} as const;

/** A policy with every default applied: what the evaluator reads. */
export interface Policy {
  readonly version: 1;
  readonly defaultLabel: JobLabel;
  readonly overflow: {
    readonly waitMs: number;
    readonly approval: ApprovalMode;
    /** Tasks per approval with `per-batch`; null with the other modes. */
    readonly batchSize: number | null;
    readonly approvalTimeoutMs: number;
    readonly onTimeout: TimeoutOutcome;
  };
  readonly eligibility: {
    /** Allow-list of operator ids; null = any operator. Sorted, no duplicates. */
    readonly operators: readonly string[] | null;
    /** Allow-list of regions; null = any region. A node reporting no region fails a list. */
    readonly regions: readonly string[] | null;
    readonly minReliability: number;
    readonly minBondMsat: bigint;
    /** Runtimes the org's work may run under on public nodes; null = any. */
    readonly runtimes: readonly string[] | null;
  };
  /** Data classes (normalised: trimmed, lower case) that never leave the org. */
  readonly neverCross: readonly string[];
}

const Duration = (min: number): z.ZodNumber => z.number().int().min(min).max(MAX_DURATION_MS);
const Name = (max: number): z.ZodString => z.string().min(1).max(max);

/**
 * Data class names are compared case-insensitively (`PII` = `pii`): a
 * mismatch in case would otherwise let protected data cross.
 */
const DataClass = z.string().regex(/^\s*[A-Za-z0-9][A-Za-z0-9._:/-]{0,63}\s*$/, 'a data class is a name of letters, digits and . _ : / - (at most 64 characters, starting with a letter or digit)');

const MsatAmount = z
  .union([z.string(), z.number()], { error: 'expected a whole number of msat, written as a decimal string such as "250000000"' })
  .superRefine((v, ctx) => {
    if (parseMsat(v) === undefined) ctx.addIssue({ code: 'custom', message: `expected a whole number of msat from 0 to 2^63−1, written as a decimal string such as "250000000"; got ${JSON.stringify(v)}` });
  });

function parseMsat(v: string | number): bigint | undefined {
  if (typeof v === 'number') return Number.isSafeInteger(v) && v >= 0 ? BigInt(v) : undefined;
  if (!/^\d{1,19}$/.test(v)) return undefined;
  const n = BigInt(v);
  return n <= MAX_MSAT ? n : undefined;
}

const overflowShape = {
  /** How long the oldest waiting task must have queued before the job may cross. */
  waitMs: Duration(0).optional(),
  approval: z.enum(APPROVAL_MODES).optional(),
  /** Tasks per approval with `approval: per-batch`. */
  batchSize: z.number().int().min(1).max(1_000_000).optional(),
  /** How long an approval request stays open before `onTimeout` decides it. */
  approvalTimeoutMs: Duration(1).optional(),
  onTimeout: z.enum(TIMEOUT_OUTCOMES).optional(),
};

const eligibilityShape = {
  operators: z.array(Name(200)).max(10_000).optional(),
  regions: z.array(Name(64)).max(1000).optional(),
  minReliability: z.number().min(0).max(1).optional(),
  minBondMsat: MsatAmount.optional(),
  runtimes: z.array(Name(64)).max(100).optional(),
};

const rootShape = {
  /** The document format; 1 is the only one so far. */
  version: z.literal(1),
  defaultLabel: z.enum(JOB_LABELS).optional(),
  overflow: z.strictObject(overflowShape).optional(),
  eligibility: z.strictObject(eligibilityShape).optional(),
  neverCross: z.array(DataClass).max(1000).optional(),
};

const KNOWN_KEYS: Readonly<Record<string, readonly string[]>> = {
  '': Object.keys(rootShape),
  overflow: Object.keys(overflowShape),
  eligibility: Object.keys(eligibilityShape),
};

/** The schema of the document as written (every field but `version` optional). */
export const PolicyDocument = z.strictObject(rootShape).superRefine((doc, ctx) => {
  if (doc.overflow?.batchSize !== undefined && doc.overflow.approval !== 'per-batch') {
    ctx.addIssue({ code: 'custom', path: ['overflow', 'batchSize'], message: 'batchSize applies only with approval: per-batch' });
  }
});
export type PolicyDocument = z.input<typeof PolicyDocument>;

export function normalizeDataClass(name: string): string {
  return name.trim().toLowerCase();
}

function sortedSet(xs: readonly string[] | undefined): readonly string[] | null {
  return xs === undefined ? null : [...new Set(xs)].sort();
}

function invalid(issues: readonly PolicyIssue[]): ImError {
  const shown = issues.slice(0, 5).map(issueLine).join('; ');
  const more = issues.length > 5 ? ` (and ${issues.length - 5} more)` : '';
  return new ImError('IM_VALIDATION', `invalid policy: ${shown}${more}`, { details: { issues } });
}

/**
 * Validates a policy document (already parsed from YAML or JSON) and applies
 * the defaults. Throws `IM_VALIDATION` listing every offending path; the
 * input is never modified.
 */
export function policyFromObject(obj: unknown): Policy {
  const r = PolicyDocument.safeParse(obj);
  if (!r.success) throw invalid(describeIssues(r.error.issues, obj, KNOWN_KEYS));
  const d = r.data;
  const o = d.overflow ?? {};
  const e = d.eligibility ?? {};
  const D = POLICY_DEFAULTS;
  const approval = o.approval ?? D.overflow.approval;
  return {
    version: 1,
    defaultLabel: d.defaultLabel ?? D.defaultLabel,
    overflow: {
      waitMs: o.waitMs ?? D.overflow.waitMs,
      approval,
      batchSize: approval === 'per-batch' ? (o.batchSize ?? D.overflow.batchSize) : null,
      approvalTimeoutMs: o.approvalTimeoutMs ?? D.overflow.approvalTimeoutMs,
      onTimeout: o.onTimeout ?? D.overflow.onTimeout,
    },
    eligibility: {
      operators: sortedSet(e.operators),
      regions: sortedSet(e.regions),
      minReliability: e.minReliability ?? D.eligibility.minReliability,
      minBondMsat: e.minBondMsat === undefined ? D.eligibility.minBondMsat : (parseMsat(e.minBondMsat) as bigint),
      runtimes: sortedSet(e.runtimes),
    },
    neverCross: sortedSet((d.neverCross ?? D.neverCross).map(normalizeDataClass)) ?? [],
  };
}

/**
 * Parses a policy from YAML (the default; JSON is valid YAML too) or strict
 * JSON text. YAML duplicate keys and multiple documents are errors.
 */
export function parsePolicy(text: string, format: 'yaml' | 'json' = 'yaml'): Policy {
  let obj: unknown;
  try {
    obj = format === 'json' ? JSON.parse(text) : parseYaml(text, { uniqueKeys: true, maxAliasCount: 100 });
  } catch (err) {
    const message = `not valid ${format === 'json' ? 'JSON' : 'YAML'}: ${err instanceof Error ? (err.message.split('\n')[0] ?? '').replace(/:$/, '') : String(err)}`;
    throw invalid([{ path: '', code: 'syntax', message }]);
  }
  return policyFromObject(obj);
}

/** The label a job gets when it names none. */
export function resolveLabel(label: JobLabel | undefined, policy: Policy): JobLabel {
  return label ?? policy.defaultLabel;
}
