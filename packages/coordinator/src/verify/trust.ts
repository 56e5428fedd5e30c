/**
 * Adaptive replication (BOINC): a node is trusted after `trustStreak`
 * consecutive valid replicated results; a trusted node's task is replicated
 * with probability 1/streak; an invalid result resets the streak to 0.
 * Task faults (the buyer's) leave it untouched.
 */
import type { Rng } from './rng.js';
import type { ModeParams } from './types.js';

export interface TrustState {
  readonly streak: number;
}

export const UNTRUSTED: TrustState = Object.freeze({ streak: 0 });

export function isTrusted(s: TrustState, params: Pick<ModeParams, 'trustStreak'>): boolean {
  return s.streak >= params.trustStreak;
}

/** A valid result that was checked against another execution (quorum or referee). */
export function recordValid(s: TrustState): TrustState {
  return { streak: s.streak + 1 };
}

/** An invalid result, whether by referee or by vote. */
export function recordInvalid(_s: TrustState): TrustState {
  return UNTRUSTED;
}

/** Probability that this node's next task is replicated. */
export function replicationProbability(s: TrustState, params: Pick<ModeParams, 'trustStreak'>): number {
  return isTrusted(s, params) ? 1 / s.streak : 1;
}

/** Whether to replicate this node's task; draws from rng only for trusted nodes. */
export function replicas(s: TrustState, params: Pick<ModeParams, 'trustStreak'>, rng: Rng): boolean {
  if (!isTrusted(s, params)) return true;
  return rng() < 1 / s.streak;
}
