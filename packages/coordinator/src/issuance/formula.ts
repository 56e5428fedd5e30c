/**
 * The rolling-24h/1 issuance formula (issue 7): how much of the reward pool
 * is issued at the end of hour H, and how it splits over nodes, from the
 * hourly tables of the window H−23 … H.
 *
 * Everything is integer (bigint) so that anyone holding the published tables
 * reproduces every allocation to the msat; ../shared/vectors/issuance is the
 * executable definition and docs/issuance.md the prose one.
 *
 * `computeEpoch` is the reference: it reads every row of the window and is
 * written to be checked by eye. `RollingWindow` (window.ts) gets the same
 * result from running sums; the two are tested against each other. The small
 * helpers below are the only code they share, so a slip in either
 * aggregation or allocation shows up as a disagreement.
 *
 * Pure: no I/O, no clock. sha256 (for tie-breaking) is computation.
 */
import { sha256 } from '@noble/hashes/sha2.js';
import { ImError, toHex, utf8 } from '@idlemesh/protocol';

export const FORMULA = 'rolling-24h/1';
export type Formula = typeof FORMULA;

/** The formula's name fixes the window; params.windowHours must say the same. */
export const WINDOW_HOURS = 24;

/**
 * I = pool·(slot + 2·busy) / (48·slot): an idle network issues 1/48 of the
 * pool an hour, a saturated one 3/48 — the pool drains in about a day either
 * way, and faster when the capacity it pays for is in use.
 */
export const ISSUANCE_DIVISOR = 48n;

export interface IssuanceParams {
  /** Weight of paid work against available capacity, [numerator, denominator]. */
  readonly alpha: readonly [bigint, bigint];
  readonly windowHours: number;
  /** Fixed-point unit of the work and capacity shares (10^18). */
  readonly scale: bigint;
  /** Bond an operator must hold, per hour, for each capacity unit counted. */
  readonly bondPerCapUnitMsat: bigint;
}

/** One node's line in an hour's table. */
export interface HourRow {
  readonly node: string;
  /** Paid by other organisations' buyers for public work that became final this hour. */
  readonly paidMsat: bigint;
  /** Seconds connected, accepting leases and asking at or below the spot price. */
  readonly availSec: bigint;
  /** Capacity measured by probes. */
  readonly capMeasured: bigint;
  /** Busy slot-seconds (≤ slotSec). */
  readonly busySec: bigint;
  /** Offered slot-seconds. */
  readonly slotSec: bigint;
}

export interface HourTable {
  readonly hour: number;
  /** Operator → bonded msat during the hour; an operator not listed has no bond. */
  readonly bonds: ReadonlyMap<string, bigint>;
  readonly rows: readonly HourRow[];
}

export interface OperatorInfo {
  readonly id: string;
  /** Slashed in the window: its nodes score 0. */
  readonly slashed: boolean;
}

export interface NodeInfo {
  readonly id: string;
  readonly operator: string;
}

/** Node-fault outcomes in the window. A node without an entry has none (and scores 0). */
export interface NodeReliability {
  readonly node: string;
  readonly accepted: bigint;
  readonly failed: bigint;
}

/** Everything an epoch needs besides the hourly tables. */
export interface EpochContext {
  readonly epochHour: number;
  readonly params: IssuanceParams;
  /** The reward pool's posted balance at the end of epochHour. */
  readonly poolMsat: bigint;
  readonly operators: readonly OperatorInfo[];
  readonly nodes: readonly NodeInfo[];
  readonly reliability: readonly NodeReliability[];
}

export interface EpochInput extends EpochContext {
  /** The tables of the window's hours that exist (fewer than 24 while the network is young). */
  readonly hours: readonly HourTable[];
}

export interface EpochTotals {
  /** P = Σ P_n. */
  readonly paidMsat: bigint;
  /** K = Σ K_n (availSec × counted capacity). */
  readonly capacity: bigint;
  /** S = Σ s_n. */
  readonly score: bigint;
  readonly slotSec: bigint;
  readonly busySec: bigint;
}

export interface EpochResult {
  readonly formula: Formula;
  readonly epochHour: number;
  /** How many hourly tables the window held. */
  readonly hoursCounted: number;
  readonly poolMsat: bigint;
  readonly issuedMsat: bigint;
  readonly totals: EpochTotals;
  /** s_n per node, in the order of EpochContext.nodes. */
  readonly scores: Map<string, bigint>;
  /** msat per node, in the order of EpochContext.nodes; they add up to issuedMsat. */
  readonly allocations: Map<string, bigint>;
}

export function invalid(message: string): ImError {
  return new ImError('IM_VALIDATION', `issuance: ${message}`);
}

/** Checks the parameters; throws IM_VALIDATION. */
export function checkParams(p: IssuanceParams): void {
  if (p.windowHours !== WINDOW_HOURS) throw invalid(`${FORMULA} has a ${WINDOW_HOURS}-hour window, params.windowHours is ${p.windowHours}`);
  const [num, den] = p.alpha;
  if (!(den > 0n && num >= 0n && num <= den)) throw invalid(`params.alpha must be [num, den] with 0 ≤ num ≤ den and den > 0, got [${num}, ${den}]`);
  if (!(p.scale > 0n)) throw invalid('params.scale must be positive');
  if (!(p.bondPerCapUnitMsat > 0n)) throw invalid('params.bondPerCapUnitMsat must be positive');
}

export function checkContextScalars(ctx: EpochContext): void {
  checkParams(ctx.params);
  if (!Number.isSafeInteger(ctx.epochHour) || ctx.epochHour < 0) throw invalid(`epochHour must be a non-negative integer, got ${ctx.epochHour}`);
  if (ctx.poolMsat < 0n) throw invalid('poolMsat must not be negative');
}

/** The first hour of the window of `epochHour` (may be negative for the first hours since 1970; harmless). */
export function windowStart(epochHour: number, params: IssuanceParams): number {
  return epochHour - params.windowHours + 1;
}

export function checkRow(row: HourRow, hour: number): void {
  if (row.paidMsat < 0n || row.availSec < 0n || row.capMeasured < 0n || row.busySec < 0n || row.slotSec < 0n) {
    throw invalid(`hour ${hour}, node ${row.node}: amounts must not be negative`);
  }
  // Busy slot-seconds are a part of the offered ones; more would also let I exceed the pool.
  if (row.busySec > row.slotSec) throw invalid(`hour ${hour}, node ${row.node}: busySec ${row.busySec} exceeds slotSec ${row.slotSec}`);
}

/** How many capacity units an operator's bond covers this hour. */
export function capUnits(bondMsat: bigint | undefined, params: IssuanceParams): bigint {
  const bond = bondMsat ?? 0n;
  if (bond < 0n) throw invalid('bonds must not be negative');
  return bond / params.bondPerCapUnitMsat;
}

/**
 * A node's counted capacity for one hour. The operator's bond caps the sum
 * over its nodes; when it binds, each node keeps floor(cap·m/Σm) — its share
 * of the cap in proportion to what was measured, rounded down, so the
 * counted sum never exceeds the cap. (Vector 05 fixes this rule: ceiling or
 * a largest-remainder split give different scores.)
 */
export function countedCapacity(capMeasured: bigint, operatorMeasured: bigint, cap: bigint): bigint {
  return operatorMeasured <= cap ? capMeasured : (cap * capMeasured) / operatorMeasured;
}

/**
 * A node's base score: its share of paid work w and of counted capacity c
 * (each floor(SCALE·x_n/x), 0 when nothing was paid or available), blended
 * floor((α·w + (1−α)·c)) — or the one that exists when the other is empty,
 * so a network without paid work still pays for capacity and vice versa.
 */
export function baseScore(paid: bigint, capacity: bigint, totalPaid: bigint, totalCapacity: bigint, params: IssuanceParams): bigint {
  const w = totalPaid === 0n ? 0n : (params.scale * paid) / totalPaid;
  const c = totalCapacity === 0n ? 0n : (params.scale * capacity) / totalCapacity;
  if (totalPaid === 0n) return c;
  if (totalCapacity === 0n) return w;
  const [num, den] = params.alpha;
  return (num * w + (den - num) * c) / den;
}

/**
 * s_n = floor(base·a/(a+f+1)). The +1 makes a node with no history score 0
 * and makes splitting a node into two (each with half the outcomes) lose a
 * little, which is what keeps Sybil splitting unprofitable.
 */
export function reliabilityScore(base: bigint, accepted: bigint, failed: bigint): bigint {
  return (base * accepted) / (accepted + failed + 1n);
}

/** The msat issued this hour when some node scores (S > 0); I ≤ 3/48 of the pool because busy ≤ slot. */
export function issuedMsat(poolMsat: bigint, slotSec: bigint, busySec: bigint): bigint {
  if (slotSec === 0n) return poolMsat / ISSUANCE_DIVISOR;
  return (poolMsat * (slotSec + 2n * busySec)) / (ISSUANCE_DIVISOR * slotSec);
}

/** The tie-break key of a node in an epoch: sha256("<H>|<node>") as lower-case hex, ascending wins. */
export function tieKey(epochHour: number, node: string): string {
  return toHex(sha256(utf8(`${epochHour}|${node}`)));
}

/** Look-ups over the context, validated: duplicate or dangling ids are errors. */
export interface ContextIndex {
  readonly slashed: ReadonlyMap<string, boolean>;
  readonly operatorOf: ReadonlyMap<string, string>;
  readonly reliability: ReadonlyMap<string, NodeReliability>;
}

export function indexContext(ctx: EpochContext): ContextIndex {
  checkContextScalars(ctx);
  const slashed = new Map<string, boolean>();
  for (const o of ctx.operators) {
    if (slashed.has(o.id)) throw invalid(`operator ${o.id} is listed twice`);
    slashed.set(o.id, o.slashed);
  }
  const operatorOf = new Map<string, string>();
  for (const n of ctx.nodes) {
    if (operatorOf.has(n.id)) throw invalid(`node ${n.id} is listed twice`);
    if (!slashed.has(n.operator)) throw invalid(`node ${n.id} names operator ${n.operator}, which is not listed`);
    operatorOf.set(n.id, n.operator);
  }
  const reliability = new Map<string, NodeReliability>();
  for (const r of ctx.reliability) {
    if (!operatorOf.has(r.node)) throw invalid(`reliability names node ${r.node}, which is not listed`);
    if (reliability.has(r.node)) throw invalid(`reliability of node ${r.node} is listed twice`);
    if (r.accepted < 0n || r.failed < 0n) throw invalid(`reliability of node ${r.node} must not be negative`);
    reliability.set(r.node, r);
  }
  return { slashed, operatorOf, reliability };
}

/**
 * The reference epoch: reads every row of the window. Throws IM_VALIDATION
 * on a table outside the window, a node or operator that is not listed, a
 * node twice in one hour, a negative amount or busySec > slotSec.
 */
export function computeEpoch(input: EpochInput): EpochResult {
  const ix = indexContext(input);
  const { params, epochHour } = input;
  const first = windowStart(epochHour, params);
  const paid = new Map<string, bigint>();
  const capacity = new Map<string, bigint>();
  let slotSec = 0n, busySec = 0n;
  const seenHours = new Set<number>();
  for (const table of input.hours) {
    if (!Number.isSafeInteger(table.hour) || table.hour < first || table.hour > epochHour) {
      throw invalid(`hour ${table.hour} is outside the window ${first}…${epochHour}`);
    }
    if (seenHours.has(table.hour)) throw invalid(`hour ${table.hour} is given twice`);
    seenHours.add(table.hour);
    // The bond cap is per operator and hour, so sum what each operator's nodes measured first.
    const measured = new Map<string, bigint>();
    const seenNodes = new Set<string>();
    for (const row of table.rows) {
      checkRow(row, table.hour);
      const op = ix.operatorOf.get(row.node);
      if (op === undefined) throw invalid(`hour ${table.hour} has a row for node ${row.node}, which is not listed`);
      if (seenNodes.has(row.node)) throw invalid(`hour ${table.hour} has two rows for node ${row.node}`);
      seenNodes.add(row.node);
      measured.set(op, (measured.get(op) ?? 0n) + row.capMeasured);
    }
    for (const row of table.rows) {
      const op = ix.operatorOf.get(row.node) as string;
      const counted = countedCapacity(row.capMeasured, measured.get(op) as bigint, capUnits(table.bonds.get(op), params));
      paid.set(row.node, (paid.get(row.node) ?? 0n) + row.paidMsat);
      capacity.set(row.node, (capacity.get(row.node) ?? 0n) + row.availSec * counted);
      slotSec += row.slotSec;
      busySec += row.busySec;
    }
  }

  let totalPaid = 0n, totalCapacity = 0n;
  for (const v of paid.values()) totalPaid += v;
  for (const v of capacity.values()) totalCapacity += v;

  const scores = new Map<string, bigint>();
  let totalScore = 0n;
  for (const n of input.nodes) {
    const base = baseScore(paid.get(n.id) ?? 0n, capacity.get(n.id) ?? 0n, totalPaid, totalCapacity, params);
    const r = ix.reliability.get(n.id);
    const s = ix.slashed.get(n.operator) === true || r === undefined ? 0n : reliabilityScore(base, r.accepted, r.failed);
    scores.set(n.id, s);
    totalScore += s;
  }

  const issued = totalScore === 0n ? 0n : issuedMsat(input.poolMsat, slotSec, busySec);
  const allocations = new Map<string, bigint>();
  let given = 0n;
  for (const [id, s] of scores) {
    const a = totalScore === 0n ? 0n : (issued * s) / totalScore;
    allocations.set(id, a);
    given += a;
  }
  // Largest remainders first; equal remainders by the hash, so nobody can
  // choose an id that always wins the odd msat.
  const order = [...scores].map(([id, s]) => ({ id, rem: totalScore === 0n ? 0n : (issued * s) % totalScore, key: tieKey(epochHour, id) }));
  order.sort((x, y) => (x.rem !== y.rem ? (x.rem > y.rem ? -1 : 1) : x.key < y.key ? -1 : x.key > y.key ? 1 : 0));
  for (let i = 0; given < issued; i++, given++) {
    const id = (order[i] as { id: string }).id;
    allocations.set(id, (allocations.get(id) as bigint) + 1n);
  }

  return {
    formula: FORMULA,
    epochHour,
    hoursCounted: input.hours.length,
    poolMsat: input.poolMsat,
    issuedMsat: issued,
    totals: { paidMsat: totalPaid, capacity: totalCapacity, score: totalScore, slotSec, busySec },
    scores,
    allocations,
  };
}
