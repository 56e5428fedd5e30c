/**
 * BOINC-style quorum over a task's results so far. Pure: the caller sends
 * the replicas it is told to, and calls again as results arrive.
 */
import { sameClaim } from './types.js';
import type { Exclusion, ModeParams, Result, TaskVerdict } from './types.js';

/** The operators and prefixes already used by a task: a replica never shares either. */
export function exclusion(results: readonly Result[]): Exclusion {
  const operators: string[] = [];
  const prefixes: string[] = [];
  for (const r of results) {
    if (!operators.includes(r.operator)) operators.push(r.operator);
    if (!prefixes.includes(r.ipPrefix)) prefixes.push(r.ipPrefix);
  }
  return { operators, prefixes };
}

export function eligible(candidate: { readonly operator: string; readonly ipPrefix: string }, ex: Exclusion): boolean {
  return !ex.operators.includes(candidate.operator) && !ex.prefixes.includes(candidate.ipPrefix);
}

/** Groups results by exact claim; largest group first, ties by arrival. */
export function groupClaims(results: readonly Result[]): Result[][] {
  const groups: Result[][] = [];
  for (const r of results) {
    const g = groups.find((x) => x[0] !== undefined && sameClaim(x[0], r));
    if (g) g.push(r);
    else groups.push([r]);
  }
  return groups.sort((a, b) => b.length - a.length);
}

/**
 * Decides a replicated task. `outstanding` counts replicas sent but not yet
 * back, so the caller is never told to over-send.
 */
export function decide(results: readonly Result[], params: ModeParams, outstanding = 0): TaskVerdict {
  const n = results.length;
  const groups = groupClaims(results);
  const best = groups[0];
  const pending = (want: number): TaskVerdict => ({ kind: 'pending', more: Math.max(0, Math.min(want, params.maxTotalResults - n) - outstanding), exclude: exclusion(results) });
  if (best === undefined) return pending(params.targetResults);
  const canonical = best[0];
  if (canonical === undefined) return pending(params.targetResults);
  if (groups.length === 1) {
    if (best.length >= params.minQuorum) return { kind: 'accepted', canonical, valid: best.map((r) => r.nodeId), invalid: [] };
    if (n < params.maxTotalResults) return pending(Math.max(params.targetResults - n, params.minQuorum - best.length));
    return maxed(params);
  }
  if (params.onDissent === 'referee' && params.referee) return { kind: 'needs-referee', reason: 'dissent' };
  if (best.length >= params.minQuorum && best.length > (groups[1]?.length ?? 0)) {
    const valid = best.map((r) => r.nodeId);
    return { kind: 'accepted', canonical, valid, invalid: results.filter((r) => !valid.includes(r.nodeId)).map((r) => r.nodeId) };
  }
  if (n < params.maxTotalResults) return pending(Math.max(1, params.minQuorum - best.length));
  return maxed(params);
}

function maxed(params: ModeParams): TaskVerdict {
  return params.referee ? { kind: 'needs-referee', reason: 'max-results' } : { kind: 'unverifiable', reason: 'max-results' };
}
