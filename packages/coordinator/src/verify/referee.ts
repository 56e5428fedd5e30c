/**
 * The referee settles disputes by re-executing the task. Only a signed
 * receipt the referee contradicts is proof of fraud (slashable); a vote
 * never is, and a trap or out-of-fuel the referee reproduces is the buyer's.
 */
import { sameClaim } from './types.js';
import type { RefereeRun, Result } from './types.js';

export type Contradiction = 'output' | 'effort' | 'outcome';

/** Replayable evidence: the receipt, what it claimed, what the referee measured. */
export interface FraudEvidence {
  readonly nodeId: string;
  readonly operator: string;
  readonly receiptId: string;
  readonly claimed: RefereeRun;
  readonly measured: RefereeRun;
  readonly contradiction: Contradiction;
  /** Claimed fuel minus measured (positive: effort inflation). */
  readonly fuelExcess: number;
}

export type Judgement =
  | { readonly nodeId: string; readonly kind: 'valid' }
  /** Matched the referee's trap/out-of-fuel: the buyer's fault, reliability untouched. */
  | { readonly nodeId: string; readonly kind: 'task-fault' }
  /** Contradicted but unsigned: discarded, not slashable. */
  | { readonly nodeId: string; readonly kind: 'invalid' }
  | { readonly nodeId: string; readonly kind: 'fraud'; readonly evidence: FraudEvidence };

export interface RefereeVerdict {
  readonly canonical: RefereeRun;
  /** True when the task itself faulted (trap or out of fuel): the buyer pays. */
  readonly taskFault: boolean;
  readonly judgements: readonly Judgement[];
  readonly slashable: readonly FraudEvidence[];
}

function contradiction(claimed: RefereeRun, measured: RefereeRun): Contradiction {
  if (claimed.outcome !== measured.outcome) return 'outcome';
  if (claimed.outputHash !== measured.outputHash) return 'output';
  return 'effort';
}

/** One judgement per result, in the order of `results`. */
export function adjudicate(referee: RefereeRun, results: readonly Result[]): RefereeVerdict {
  const taskFault = referee.outcome !== 'ok';
  const judgements: Judgement[] = [];
  const slashable: FraudEvidence[] = [];
  for (const r of results) {
    if (sameClaim(r, referee)) {
      judgements.push({ nodeId: r.nodeId, kind: taskFault ? 'task-fault' : 'valid' });
    } else if (r.receiptId === null) {
      judgements.push({ nodeId: r.nodeId, kind: 'invalid' });
    } else {
      const evidence: FraudEvidence = {
        nodeId: r.nodeId, operator: r.operator, receiptId: r.receiptId,
        claimed: { outcome: r.outcome, outputHash: r.outputHash, fuel: r.fuel },
        measured: referee,
        contradiction: contradiction(r, referee),
        fuelExcess: r.fuel - referee.fuel,
      };
      judgements.push({ nodeId: r.nodeId, kind: 'fraud', evidence });
      slashable.push(evidence);
    }
  }
  return { canonical: referee, taskFault, judgements, slashable };
}
