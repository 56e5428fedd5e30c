/**
 * Per-mode sampling: how many executions a task starts with, which accepted
 * results are re-executed, and what an optimistic contradiction reverses.
 */
import type { Rng } from './rng.js';
import { replicas } from './trust.js';
import type { TrustState } from './trust.js';
import type { ModeParams, VerificationMode } from './types.js';

/** Executions to send when a task is first leased to `primary`. */
export function initialExecutions(mode: VerificationMode, primary: TrustState, params: ModeParams, rng: Rng): number {
  switch (mode) {
    case 'replicate': return params.targetResults;
    case 'adaptive': return replicas(primary, params, rng) ? params.targetResults : 1;
    case 'trusted':
    case 'spot-check':
    case 'optimistic': return 1;
  }
}

/** Whether the coordinator re-executes this accepted result (spot-check mode). */
export function spotCheck(params: Pick<ModeParams, 'spotCheckRate'>, rng: Rng): boolean {
  return rng() < params.spotCheckRate;
}

/** Whether this optimistic result is re-executed within its challenge window. */
export function challenge(params: Pick<ModeParams, 'optimisticRate'>, rng: Rng): boolean {
  return rng() < params.optimisticRate;
}

export interface PendingResult {
  readonly taskId: string | number;
  readonly operator: string;
  /** Injected-clock ms when accepted into pending earnings. */
  readonly acceptedAt: number;
}

/** Still reversible: accepted less than a window ago. */
export function inWindow(p: Pick<PendingResult, 'acceptedAt'>, now: number, params: Pick<ModeParams, 'challengeWindowMs'>): boolean {
  return now - p.acceptedAt < params.challengeWindowMs;
}

/**
 * After a contradiction of `operator` at `now`: its other results still in
 * the window. Their pending earnings are reversed and they are re-run.
 */
export function reversalSet<P extends PendingResult>(pending: readonly P[], operator: string, contradictedTaskId: string | number, now: number, params: Pick<ModeParams, 'challengeWindowMs'>): P[] {
  return pending.filter((p) => p.operator === operator && p.taskId !== contradictedTaskId && inWindow(p, now, params));
}
