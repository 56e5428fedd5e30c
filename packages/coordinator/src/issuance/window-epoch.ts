/**
 * The per-node arithmetic of an epoch over running sums, written for a
 * million nodes: bigint only where the formula needs it, and the odd msat
 * placed without sorting a million bigints or hashing a million ids.
 */
import { baseScore, reliabilityScore, tieKey } from './formula.js';
import type { IssuanceParams, NodeInfo, NodeReliability } from './formula.js';

/** s_n from a node's split running sums (see window.ts) and its reliability. */
export function scoreNode(
  paidLo: number, paidHi: number, capLo: number, capHi: number,
  totalPaid: bigint, totalCapacity: bigint, params: IssuanceParams, r: NodeReliability,
): bigint {
  if (r.accepted === 0n) return 0n;
  const base = baseScore(join(paidLo, paidHi), join(capLo, capHi), totalPaid, totalCapacity, params);
  return base === 0n ? 0n : reliabilityScore(base, r.accepted, r.failed);
}

function join(lo: number, hi: number): bigint {
  if (lo === 0 && hi === 0) return 0n;
  return hi === 0 ? BigInt(lo) : (BigInt(hi) << 32n) + BigInt(lo);
}

/**
 * floor(I·s_n/S) each, then the msat left over one each to the largest
 * remainders (I·s_n mod S), ties by ascending sha256("<H>|<node>").
 *
 * Σ remainders = left·S with every remainder < S, so more than `left`
 * remainders are positive and zero ones never win. Rounding a remainder to
 * float keeps order weakly (a < b ⇒ float(a) ≤ float(b)), so with t the
 * left-th largest float, every node whose float is above t is above every
 * node at t exactly, and only the nodes at t need exact remainders and hashes.
 */
export function distributeOddMsat(epochHour: number, nodes: readonly NodeInfo[], scores: readonly bigint[], S: bigint, issued: bigint): bigint[] {
  const N = scores.length;
  const alloc = new Array<bigint>(N);
  if (S === 0n || issued === 0n) return alloc.fill(0n);
  const remF = new Float64Array(N);
  let given = 0n, positive = 0;
  for (let k = 0; k < N; k++) {
    const s = scores[k] as bigint;
    if (s === 0n) { alloc[k] = 0n; continue; }
    const x = issued * s;
    const a = x / S;
    alloc[k] = a;
    given += a;
    const rem = x - a * S;
    if (rem !== 0n) { remF[k] = Number(rem); positive++; }
  }
  let left = Number(issued - given);
  if (left === 0) return alloc;
  const sorted = new Float64Array(positive);
  let j = 0;
  for (let k = 0; k < N; k++) if ((remF[k] as number) > 0) sorted[j++] = remF[k] as number;
  sorted.sort();
  const t = sorted[positive - left] as number;
  const tied: { k: number; rem: bigint; key: string }[] = [];
  for (let k = 0; k < N; k++) {
    const f = remF[k] as number;
    if (f > t) { alloc[k] = (alloc[k] as bigint) + 1n; left--; }
    else if (f === t) tied.push({ k, rem: (issued * (scores[k] as bigint)) % S, key: tieKey(epochHour, (nodes[k] as NodeInfo).id) });
  }
  tied.sort((x, y) => (x.rem !== y.rem ? (x.rem > y.rem ? -1 : 1) : x.key < y.key ? -1 : x.key > y.key ? 1 : 0));
  for (let q = 0; q < left; q++) {
    const k = (tied[q] as { k: number }).k;
    alloc[k] = (alloc[k] as bigint) + 1n;
  }
  return alloc;
}
