/**
 * Verification vocabulary. Glossary:
 * - result: one node's signed claim about one task (output hash + fuel).
 * - replica: one of several executions of the same task on distinct nodes.
 * - quorum: minQuorum results that agree exactly on outcome, output AND fuel.
 * - referee: the coordinator re-executing the deterministic task itself; the
 *   only judge whose contradiction of a signed receipt is proof of fraud.
 * - task fault: a trap or out-of-fuel the referee reproduces; the buyer's.
 */
import { ImError } from '@idlemesh/protocol';

export type VerificationMode = 'trusted' | 'replicate' | 'adaptive' | 'spot-check' | 'optimistic';

export const VERIFICATION_MODES: readonly VerificationMode[] = ['trusted', 'replicate', 'adaptive', 'spot-check', 'optimistic'];

/** Default for public work. */
export const DEFAULT_MODE: VerificationMode = 'adaptive';

/** How a task ended on a node. `trap` and `out-of-fuel` are task faults when the referee reproduces them. */
export type Outcome = 'ok' | 'trap' | 'out-of-fuel';

export interface Result {
  readonly nodeId: string;
  readonly operator: string;
  readonly ipPrefix: string;
  readonly outcome: Outcome;
  readonly outputHash: string;
  /** Metered fuel the node claims; deterministic tasks must match the referee exactly. */
  readonly fuel: number;
  /** Id of the node's signed receipt; null when the result came unsigned (never slashable). */
  readonly receiptId: string | null;
}

/** What the referee measured by re-executing the task itself. */
export interface RefereeRun {
  readonly outcome: Outcome;
  readonly outputHash: string;
  readonly fuel: number;
}

export interface ModeParams {
  /** Agreeing results needed to accept (replicate, adaptive). */
  readonly minQuorum: number;
  /** Replicas sent at first. */
  readonly targetResults: number;
  /** Results after which a still-undecided task goes to the referee (or fails). */
  readonly maxTotalResults: number;
  /** Consecutive valid replicated results after which a node is trusted (adaptive). */
  readonly trustStreak: number;
  /** Fraction of accepted results the coordinator re-executes (spot-check). */
  readonly spotCheckRate: number;
  /** Fraction of optimistically accepted results re-executed within the window. */
  readonly optimisticRate: number;
  /** Challenge window of optimistic acceptance, in ms of the injected clock. */
  readonly challengeWindowMs: number;
  /**
   * On any disagreement: `referee` settles it at once (default: a dissenting
   * signed receipt means someone lied, and only the referee can say who);
   * `replicate` sends more replicas BOINC-style and accepts a later quorum,
   * with dissenters invalid by vote (never slashed).
   */
  readonly onDissent: 'referee' | 'replicate';
  /** Whether a referee is available; without one a task that cannot reach quorum is unverifiable. */
  readonly referee: boolean;
}

export const DEFAULT_MODE_PARAMS: ModeParams = Object.freeze({
  minQuorum: 2,
  targetResults: 2,
  maxTotalResults: 5,
  trustStreak: 10,
  spotCheckRate: 0.05,
  optimisticRate: 0.1,
  challengeWindowMs: 3_600_000,
  onDissent: 'referee',
  referee: true,
});

/** Applies the defaults and refuses out-of-range or unknown parameters. */
export function resolveModeParams(partial: Partial<ModeParams> = {}): ModeParams {
  for (const k of Object.keys(partial)) {
    if (!(k in DEFAULT_MODE_PARAMS)) throw new ImError('IM_CONFIG_INVALID', `unknown verification parameter ${k}`);
  }
  const p: ModeParams = { ...DEFAULT_MODE_PARAMS, ...partial };
  const int = (name: keyof ModeParams, v: number, min: number): void => {
    if (!Number.isSafeInteger(v) || v < min) throw new ImError('IM_CONFIG_INVALID', `${name} must be an integer ≥ ${min}, got ${v}`);
  };
  const frac = (name: keyof ModeParams, v: number): void => {
    if (!(v >= 0 && v <= 1)) throw new ImError('IM_CONFIG_INVALID', `${name} must be in [0, 1], got ${v}`);
  };
  int('minQuorum', p.minQuorum, 1);
  int('targetResults', p.targetResults, 1);
  int('maxTotalResults', p.maxTotalResults, 1);
  int('trustStreak', p.trustStreak, 1);
  int('challengeWindowMs', p.challengeWindowMs, 0);
  frac('spotCheckRate', p.spotCheckRate);
  frac('optimisticRate', p.optimisticRate);
  if (p.targetResults < p.minQuorum) throw new ImError('IM_CONFIG_INVALID', `targetResults (${p.targetResults}) must be ≥ minQuorum (${p.minQuorum})`);
  if (p.maxTotalResults < p.targetResults) throw new ImError('IM_CONFIG_INVALID', `maxTotalResults (${p.maxTotalResults}) must be ≥ targetResults (${p.targetResults})`);
  if (p.onDissent !== 'referee' && p.onDissent !== 'replicate') throw new ImError('IM_CONFIG_INVALID', `onDissent must be referee or replicate`);
  return p;
}

/** Results agree only if outcome, output and effort are all identical (deterministic tasks). */
export function sameClaim(a: RefereeRun, b: RefereeRun): boolean {
  return a.outputHash === b.outputHash && a.fuel === b.fuel && a.outcome === b.outcome;
}

/** Operators and IP prefixes a further replica of a task must avoid. */
export interface Exclusion {
  readonly operators: readonly string[];
  readonly prefixes: readonly string[];
}

export type TaskVerdict =
  | { readonly kind: 'pending'; readonly more: number; readonly exclude: Exclusion }
  | { readonly kind: 'accepted'; readonly canonical: Result; readonly valid: readonly string[]; readonly invalid: readonly string[] }
  | { readonly kind: 'needs-referee'; readonly reason: 'dissent' | 'max-results' }
  | { readonly kind: 'unverifiable'; readonly reason: 'max-results' };
