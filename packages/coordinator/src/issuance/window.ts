/**
 * The rolling window held incrementally: each hour's table is added once,
 * its per-node contributions (paid msat, availSec × counted capacity) kept
 * in compact typed arrays, and subtracted again when the hour leaves the
 * window. An epoch then reads one running sum per node instead of 24 rows,
 * which is what lets a million-node epoch run in about a second.
 *
 * Exactness: row values are whole numbers below 2^53 and each hour's
 * availSec × counted capacity is below 2^64 (both checked; the bigint
 * reference `computeEpoch` has no such limits). Each contribution is split into its low 32 bits and a high part, summed separately in
 * float64 — exact, since 24 × 2^32 ≪ 2^53 — and joined as bigint only when
 * an epoch reads it. Totals are bigints. So the window matches
 * `computeEpoch` to the msat; the tests check that.
 *
 * A node's operator is the one known when its row is added (it sets the
 * bond cap for that hour); the epoch's node list decides who is slashed.
 */
import { FORMULA, capUnits, checkContextScalars, checkParams, invalid, issuedMsat, windowStart } from './formula.js';
import type { EpochContext, EpochResult, EpochTotals, Formula, HourTable, IssuanceParams, NodeInfo, NodeReliability } from './formula.js';
import { scoreNode, distributeOddMsat } from './window-epoch.js';

const TWO32 = 4294967296;
const MAX_SAFE = Number.MAX_SAFE_INTEGER;
const MAX_U64 = (1n << 64n) - 1n;

/**
 * An hour's table as columns of numbers (row i is node nodes[i]): what a
 * store hands over cheaply for a million rows. Values must be non-negative
 * safe integers.
 */
export interface HourColumns {
  readonly hour: number;
  readonly bonds: ReadonlyMap<string, bigint>;
  readonly nodes: readonly string[];
  readonly paidMsat: ArrayLike<number>;
  readonly availSec: ArrayLike<number>;
  readonly capMeasured: ArrayLike<number>;
  readonly busySec: ArrayLike<number>;
  readonly slotSec: ArrayLike<number>;
}

/** An epoch with per-node arrays aligned with `EpochContext.nodes` instead of maps. */
export interface EpochColumns {
  readonly formula: Formula;
  readonly epochHour: number;
  readonly hoursCounted: number;
  readonly poolMsat: bigint;
  readonly issuedMsat: bigint;
  readonly totals: EpochTotals;
  readonly nodes: readonly NodeInfo[];
  readonly scores: readonly bigint[];
  readonly allocations: readonly bigint[];
}

/** One hour's contributions. `node` is null when row r is node slot r; `*Hi` only when a value reaches 2^32. */
interface HourSlice {
  readonly hour: number;
  readonly node: Int32Array | null;
  readonly rows: number;
  readonly paidLo: Uint32Array;
  readonly paidHi: Float64Array | null;
  readonly capLo: Uint32Array;
  readonly capHi: Float64Array | null;
  readonly paid: bigint;
  readonly capacity: bigint;
  readonly slotSec: bigint;
  readonly busySec: bigint;
}

/** A sum of safe integers, exact: kept in a float while it is safe, spilled into a bigint when it would not be. */
class ExactSum {
  private f = 0;
  private big = 0n;
  add(n: number): void {
    const t = this.f + n;
    // If the true sum exceeds 2^53−1 the rounded one is at least 2^53, so this test is exact.
    if (t <= MAX_SAFE) this.f = t;
    else { this.big += BigInt(this.f) + BigInt(n); this.f = 0; }
  }
  addBig(n: bigint): void {
    this.big += n;
  }
  value(): bigint {
    return this.big + BigInt(this.f);
  }
}

/** Per-operator state while an hour is added. */
interface OperatorHour {
  readonly measured: ExactSum;
  total: bigint;
  cap: bigint;
  capped: boolean;
  /** total and cap as numbers when both are safe (the fast path of the cap rule). */
  totalN: number;
  capN: number;
}

export interface RollingWindowStats {
  readonly hours: number;
  readonly firstHour: number | null;
  readonly lastHour: number | null;
  /** Nodes with a row in at least one hour of the window. */
  readonly activeNodes: number;
  /** Node slots held (equal to activeNodes between calls: a slot is freed with its node's last row). */
  readonly slots: number;
  readonly rows: number;
}

export class RollingWindow {
  private readonly params: IssuanceParams;
  private readonly index = new Map<string, number>();
  private ids: string[] = [];
  private readonly free: number[] = [];
  private paidLo = new Float64Array(0);
  private paidHi = new Float64Array(0);
  private capLo = new Float64Array(0);
  private capHi = new Float64Array(0);
  /** Hours of the window in which the node has a row. */
  private present = new Uint8Array(0);
  /** hour + 1 of the last row added for the node: catches a node twice in one table. */
  private stamp = new Float64Array(0);
  private activeNodes = 0;
  private rows = 0;
  private readonly ring: HourSlice[] = [];
  private latest: number | null = null;
  /** hour + 1 while that hour's table is being added, else 0 (stamps are ≥ 1). */
  private adding = 0;
  private totalPaid = 0n;
  private totalCapacity = 0n;
  private totalSlot = 0n;
  private totalBusy = 0n;

  constructor(params: IssuanceParams) {
    checkParams(params);
    this.params = params;
  }

  stats(): RollingWindowStats {
    return { hours: this.ring.length, firstHour: this.ring[0]?.hour ?? null, lastHour: this.latest, activeNodes: this.activeNodes, slots: this.index.size, rows: this.rows };
  }

  /** `addHourColumns` for a table of bigint rows; values of 2^53 or more are refused (IM_VALIDATION). */
  addHour(table: HourTable, operatorOf: ReadonlyMap<string, string>): void {
    const n = table.rows.length;
    const cols = {
      hour: table.hour, bonds: table.bonds, nodes: new Array<string>(n),
      paidMsat: new Float64Array(n), availSec: new Float64Array(n), capMeasured: new Float64Array(n), busySec: new Float64Array(n), slotSec: new Float64Array(n),
    };
    for (let r = 0; r < n; r++) {
      const row = table.rows[r] as HourTable['rows'][number];
      cols.nodes[r] = row.node;
      cols.paidMsat[r] = safe(row.paidMsat, table.hour, row.node);
      cols.availSec[r] = safe(row.availSec, table.hour, row.node);
      cols.capMeasured[r] = safe(row.capMeasured, table.hour, row.node);
      cols.busySec[r] = safe(row.busySec, table.hour, row.node);
      cols.slotSec[r] = safe(row.slotSec, table.hour, row.node);
    }
    this.addHourColumns(cols, operatorOf);
  }

  /**
   * Adds the table of an hour later than every hour added so far, first
   * dropping the hours that leave its window. `operatorOf` gives each row's
   * operator (for the bond cap). Atomic: on an invalid table (a value that is
   * not a non-negative safe integer, busySec > slotSec, a node twice or of
   * unknown operator) the window is unchanged.
   */
  addHourColumns(cols: HourColumns, operatorOf: ReadonlyMap<string, string>): void {
    const hour = cols.hour;
    if (!Number.isSafeInteger(hour) || hour < 0) throw invalid(`hour must be a non-negative integer, got ${hour}`);
    if (this.latest !== null && hour <= this.latest) throw invalid(`hour ${hour} is not after the last hour added, ${this.latest}`);
    const n = cols.nodes.length;
    for (const k of ['paidMsat', 'availSec', 'capMeasured', 'busySec', 'slotSec'] as const) {
      if (cols[k].length !== n) throw invalid(`hour ${hour}: column ${k} has ${cols[k].length} values for ${n} nodes`);
    }
    const rowIdx = new Int32Array(n).fill(-1);
    const fresh: number[] = [];
    let slice: HourSlice;
    try {
      const ops = this.measure(cols, operatorOf, rowIdx, fresh);
      slice = contributions(cols, ops, rowIdx);
    } catch (err) {
      // Undo this hour's stamps and the nodes registered for it.
      for (let r = 0; r < n; r++) {
        const i = rowIdx[r] as number;
        if (i !== -1 && this.stamp[i] === hour + 1) this.stamp[i] = 0;
      }
      for (const i of fresh) this.release(i);
      throw err;
    }

    // A node whose last row leaves now but which has one in this table keeps its slot.
    this.adding = hour + 1;
    try { this.advanceTo(hour); } finally { this.adding = 0; }
    const { node, paidLo, paidHi, capLo, capHi } = slice;
    for (let r = 0; r < n; r++) {
      const i = node === null ? r : (node[r] as number);
      (this.paidLo[i] as number) += paidLo[r] as number;
      (this.capLo[i] as number) += capLo[r] as number;
      if (paidHi !== null) (this.paidHi[i] as number) += paidHi[r] as number;
      if (capHi !== null) (this.capHi[i] as number) += capHi[r] as number;
      if ((this.present[i] as number)++ === 0) this.activeNodes++;
    }
    this.ring.push(slice);
    this.rows += n;
    this.latest = hour;
    this.totalPaid += slice.paid; this.totalCapacity += slice.capacity;
    this.totalSlot += slice.slotSec; this.totalBusy += slice.busySec;
  }

  /** Drops the hours that are not in the window of `hour` (nothing is added). */
  advanceTo(hour: number): void {
    const first = windowStart(hour, this.params);
    while (this.ring.length > 0 && (this.ring[0] as HourSlice).hour < first) this.drop(this.ring.shift() as HourSlice);
  }

  /** The epoch of `ctx.epochHour`, with maps: the same result as `computeEpoch` over the same tables. */
  epoch(ctx: EpochContext): EpochResult {
    const c = this.epochColumns(ctx);
    const scores = new Map<string, bigint>();
    const allocations = new Map<string, bigint>();
    for (let k = 0; k < c.nodes.length; k++) {
      const id = (c.nodes[k] as NodeInfo).id;
      scores.set(id, c.scores[k] as bigint);
      allocations.set(id, c.allocations[k] as bigint);
    }
    const { nodes: _nodes, ...rest } = c;
    return { ...rest, scores, allocations };
  }

  /**
   * The epoch of `ctx.epochHour` over the hours held, after dropping those
   * that left its window; scores and allocations as arrays aligned with
   * ctx.nodes (no per-node map: a million entries cost more than the maths).
   * Fastest when ctx.nodes and ctx.reliability list the nodes in the order
   * their rows were first added, but any order gives the same result.
   */
  epochColumns(ctx: EpochContext): EpochColumns {
    checkContextScalars(ctx);
    const p = ctx.params;
    if (p.windowHours !== this.params.windowHours || p.bondPerCapUnitMsat !== this.params.bondPerCapUnitMsat) {
      throw invalid('the epoch params differ from the window\'s (windowHours, bondPerCapUnitMsat)');
    }
    const H = ctx.epochHour;
    if (this.latest !== null && H < this.latest) throw invalid(`epoch hour ${H} is before the last hour added, ${this.latest}`);
    this.advanceTo(H);

    const slashed = new Map<string, boolean>();
    for (const o of ctx.operators) {
      if (slashed.has(o.id)) throw invalid(`operator ${o.id} is listed twice`);
      slashed.set(o.id, o.slashed);
    }
    const N = ctx.nodes.length;
    const slotOf = (id: string, guess: number): number | undefined => (this.ids[guess] === id ? guess : this.index.get(id));
    const rel = reliabilityLookup(ctx, slotOf, this.ids.length);
    const P = this.totalPaid, K = this.totalCapacity;
    const scores = new Array<bigint>(N);
    const listed = new Uint8Array(this.ids.length);
    const unknown = new Set<string>();
    let covered = 0, matched = 0, S = 0n, guess = 0, lastOp = '', lastSlashed = false;
    for (let k = 0; k < N; k++) {
      const node = ctx.nodes[k] as NodeInfo;
      if (node.id === '') throw invalid('node ids must not be empty');
      // Most nodes follow their predecessor's operator and slot: compare before hashing.
      if (node.operator !== lastOp || k === 0) {
        const sl = slashed.get(node.operator);
        if (sl === undefined) throw invalid(`node ${node.id} names operator ${node.operator}, which is not listed`);
        lastOp = node.operator; lastSlashed = sl;
      }
      const i = slotOf(node.id, guess);
      if (i === undefined) {
        if (unknown.has(node.id)) throw invalid(`node ${node.id} is listed twice`);
        unknown.add(node.id);
      } else {
        guess = i + 1;
        if (listed[i] === 1) throw invalid(`node ${node.id} is listed twice`);
        listed[i] = 1;
        covered++;
      }
      const r = rel.get(k, node.id, i);
      let s = 0n;
      if (r !== undefined) {
        matched++;
        // A node without rows in the window has paid and capacity 0: base 0.
        if (!lastSlashed && i !== undefined) {
          s = scoreNode(this.paidLo[i] as number, this.paidHi[i] as number, this.capLo[i] as number, this.capHi[i] as number, P, K, p, r);
        }
      }
      scores[k] = s;
      S += s;
    }
    if (covered !== this.activeNodes) throw invalid(`${this.activeNodes - covered} node(s) with rows in the window are not listed`);
    if (matched !== rel.size) throw invalid('reliability names a node that is not listed');

    const issued = S === 0n ? 0n : issuedMsat(ctx.poolMsat, this.totalSlot, this.totalBusy);
    const allocations = distributeOddMsat(H, ctx.nodes, scores, S, issued);
    return {
      formula: FORMULA,
      epochHour: H,
      hoursCounted: this.ring.length,
      poolMsat: ctx.poolMsat,
      issuedMsat: issued,
      totals: { paidMsat: P, capacity: K, score: S, slotSec: this.totalSlot, busySec: this.totalBusy },
      nodes: ctx.nodes,
      scores,
      allocations,
    };
  }

  /** Pass 1: validates rows, maps them to node slots and sums what each operator's nodes measured. */
  private measure(cols: HourColumns, operatorOf: ReadonlyMap<string, string>, rowIdx: Int32Array, fresh: number[]): OperatorHour[] {
    const hour = cols.hour;
    const n = cols.nodes.length;
    const ops = new Array<OperatorHour>(n);
    const perOp = new Map<string, OperatorHour>();
    let lastId = '', last: OperatorHour | undefined;
    for (let r = 0; r < n; r++) {
      const node = cols.nodes[r] as string;
      // '' marks a free slot in `ids`, so it cannot be a node id.
      if (node === '') throw invalid(`hour ${hour}: row ${r} has an empty node id`);
      const paid = cols.paidMsat[r] as number, avail = cols.availSec[r] as number, m = cols.capMeasured[r] as number;
      const busy = cols.busySec[r] as number, slot = cols.slotSec[r] as number;
      if (!(isCount(paid) && isCount(avail) && isCount(m) && isCount(busy) && isCount(slot))) {
        throw invalid(`hour ${hour}, node ${node}: values must be non-negative integers below 2^53`);
      }
      // Busy slot-seconds are a part of the offered ones; more would also let I exceed the pool.
      if (busy > slot) throw invalid(`hour ${hour}, node ${node}: busySec ${busy} exceeds slotSec ${slot}`);
      const opId = operatorOf.get(node);
      if (opId === undefined) throw invalid(`hour ${hour} has a row for node ${node}, whose operator is not known`);
      let i = this.ids[r] === node ? r : this.index.get(node);
      if (i === undefined) { i = this.register(node); fresh.push(i); }
      if (this.stamp[i] === hour + 1) throw invalid(`hour ${hour} has two rows for node ${node}`);
      this.stamp[i] = hour + 1;
      rowIdx[r] = i;
      let op = opId === lastId ? last : perOp.get(opId);
      if (op === undefined) {
        op = { measured: new ExactSum(), total: 0n, cap: 0n, capped: false, totalN: 0, capN: 0 };
        perOp.set(opId, op);
      }
      lastId = opId; last = op;
      ops[r] = op;
      op.measured.add(m);
    }
    for (const [opId, op] of perOp) {
      op.total = op.measured.value();
      op.cap = capUnits(cols.bonds.get(opId), this.params);
      op.capped = op.total > op.cap;
      op.totalN = op.total <= BigInt(MAX_SAFE) ? Number(op.total) : -1;
      op.capN = op.cap <= BigInt(MAX_SAFE) ? Number(op.cap) : -1;
    }
    return ops;
  }

  private drop(slice: HourSlice): void {
    const { node, paidLo, paidHi, capLo, capHi } = slice;
    for (let r = 0; r < slice.rows; r++) {
      const i = node === null ? r : (node[r] as number);
      (this.paidLo[i] as number) -= paidLo[r] as number;
      (this.capLo[i] as number) -= capLo[r] as number;
      if (paidHi !== null) (this.paidHi[i] as number) -= paidHi[r] as number;
      if (capHi !== null) (this.capHi[i] as number) -= capHi[r] as number;
      if (--(this.present[i] as number) === 0) {
        this.activeNodes--;
        if (this.stamp[i] !== this.adding) this.release(i);
      }
    }
    this.rows -= slice.rows;
    this.totalPaid -= slice.paid; this.totalCapacity -= slice.capacity;
    this.totalSlot -= slice.slotSec; this.totalBusy -= slice.busySec;
  }

  private register(id: string): number {
    let i = this.free.pop();
    if (i === undefined) {
      i = this.ids.length;
      this.ids.push(id);
      if (i >= this.paidLo.length) this.grow(Math.max(1024, this.paidLo.length * 2));
    } else {
      this.ids[i] = id;
    }
    this.index.set(id, i);
    return i;
  }

  /** A node with no row left in the window gives its slot back, so churned nodes do not accumulate. */
  private release(i: number): void {
    this.index.delete(this.ids[i] as string);
    this.ids[i] = '';
    this.paidLo[i] = 0; this.paidHi[i] = 0; this.capLo[i] = 0; this.capHi[i] = 0; this.stamp[i] = 0;
    this.free.push(i);
  }

  private grow(size: number): void {
    const f64 = (a: Float64Array): Float64Array<ArrayBuffer> => { const b = new Float64Array(size); b.set(a); return b; };
    this.paidLo = f64(this.paidLo); this.paidHi = f64(this.paidHi);
    this.capLo = f64(this.capLo); this.capHi = f64(this.capHi);
    this.stamp = f64(this.stamp);
    const present = new Uint8Array(size); present.set(this.present); this.present = present;
  }
}

/** Pass 2: each row's paid msat and availSec × counted capacity, split for exact float sums. Touches no window state. */
function contributions(cols: HourColumns, ops: readonly OperatorHour[], rowIdx: Int32Array): HourSlice {
  const n = cols.nodes.length;
  const paidLo = new Uint32Array(n), capLo = new Uint32Array(n);
  let paidHi: Float64Array | null = null, capHi: Float64Array | null = null;
  const paidSum = new ExactSum(), capSum = new ExactSum(), slotSum = new ExactSum(), busySum = new ExactSum();
  let identity = true;
  for (let r = 0; r < n; r++) {
    if (rowIdx[r] !== r) identity = false;
    const op = ops[r] as OperatorHour;
    const m = cols.capMeasured[r] as number, avail = cols.availSec[r] as number, paid = cols.paidMsat[r] as number;
    const counted = op.capped ? cappedShare(m, op) : m;
    let kLo: number, kHi: number;
    if (typeof counted === 'number' && avail * counted <= MAX_SAFE) {
      // A true product above 2^53−1 rounds to at least 2^53, so the test is exact.
      const k = avail * counted;
      kHi = Math.floor(k / TWO32); kLo = k - kHi * TWO32; capSum.add(k);
    } else {
      const k = BigInt(avail) * BigInt(counted);
      // Below 2^64 the high part stays below 2^32, so 24 of them still sum exactly.
      if (k > MAX_U64) throw invalid(`hour ${cols.hour}, node ${cols.nodes[r] as string}: availSec × counted capacity exceeds 2^64−1`);
      kLo = Number(k & 0xffffffffn); kHi = Number(k >> 32n); capSum.addBig(k);
    }
    const pHi = Math.floor(paid / TWO32);
    paidLo[r] = paid - pHi * TWO32; capLo[r] = kLo;
    if (pHi !== 0) { paidHi ??= new Float64Array(n); paidHi[r] = pHi; }
    if (kHi !== 0) { capHi ??= new Float64Array(n); capHi[r] = kHi; }
    paidSum.add(paid);
    slotSum.add(cols.slotSec[r] as number);
    busySum.add(cols.busySec[r] as number);
  }
  return {
    hour: cols.hour, node: identity ? null : rowIdx, rows: n, paidLo, paidHi, capLo, capHi,
    paid: paidSum.value(), capacity: capSum.value(), slotSec: slotSum.value(), busySec: busySum.value(),
  };
}

/** floor(cap·m/Σ) — `countedCapacity` when the cap binds — in floats when exact, else bigint. */
function cappedShare(m: number, op: OperatorHour): number | bigint {
  if (op.totalN > 0 && op.capN >= 0) {
    const x = op.capN * m;
    if (x <= MAX_SAFE) {
      // Float division may round up across an integer; one correction step makes the floor exact.
      let q = Math.floor(x / op.totalN);
      if (q * op.totalN > x) q--;
      else if ((q + 1) * op.totalN <= x) q++;
      return q;
    }
  }
  return (op.cap * BigInt(m)) / op.total;
}

function isCount(v: number): boolean {
  return Number.isSafeInteger(v) && v >= 0;
}

function safe(v: bigint, hour: number, node: string): number {
  if (v < 0n || v > BigInt(MAX_SAFE)) throw invalid(`hour ${hour}, node ${node}: the rolling window takes values 0 … 2^53−1, got ${v}`);
  return Number(v);
}

/**
 * Reliability for the epoch loop: by position when ctx.reliability lines up
 * with ctx.nodes (no look-up at all), else by window slot — one id look-up
 * per entry, no map or set of a million strings. `matched` counts the
 * entries the node loop used; any other entry names a node not listed.
 */
interface ReliabilityLookup {
  get(k: number, id: string, slot: number | undefined): NodeReliability | undefined;
  readonly size: number;
}

function reliabilityLookup(ctx: EpochContext, slotOf: (id: string, guess: number) => number | undefined, slots: number): ReliabilityLookup {
  const rel = ctx.reliability;
  const N = ctx.nodes.length;
  for (const r of rel) if (r.accepted < 0n || r.failed < 0n) throw invalid(`reliability of node ${r.node} must not be negative`);
  let aligned = rel.length === N;
  for (let k = 0; aligned && k < N; k++) if ((rel[k] as NodeReliability).node !== (ctx.nodes[k] as NodeInfo).id) aligned = false;
  // Same ids in the same order as the nodes, which are checked for duplicates: nothing else to check.
  if (aligned) return { get: (k) => rel[k], size: rel.length };
  const bySlot = new Array<NodeReliability | undefined>(slots);
  const outside = new Map<string, NodeReliability>();
  let guess = 0;
  for (const r of rel) {
    const i = slotOf(r.node, guess);
    if (i === undefined) {
      if (outside.has(r.node)) throw invalid(`reliability of node ${r.node} is listed twice`);
      outside.set(r.node, r);
      continue;
    }
    guess = i + 1;
    if (bySlot[i] !== undefined) throw invalid(`reliability of node ${r.node} is listed twice`);
    bySlot[i] = r;
  }
  return { get: (_k, id, slot) => (slot === undefined ? outside.get(id) : bySlot[slot]), size: rel.length };
}
