/**
 * Deposit tracking, pure: no clock, no I/O. The watcher feeds it what the
 * chain backend said; the caller stores the records and applies the actions
 * to the ledger in one transaction.
 *
 * The rule, per outpoint (txid:vout):
 * - credit once it has `minConf` confirmations in the best chain;
 * - a transaction that vanishes (status found:false) before that is 'dropped',
 *   never credited; if it comes back it is tracked again from 'seen';
 * - a credited one that leaves the best chain (status found:false, or back to
 *   unconfirmed) is reversed, once; if it confirms again with `minConf` it is
 *   credited again by a new action. So credits − reversals per outpoint is
 *   always 0 or 1, and it is 1 exactly while the state is 'credited';
 * - a credited one still confirmed, even in another block (blockHash changed)
 *   and even with fewer confirmations after the reorg, stays credited: the
 *   coins are still there;
 * - absence from an address listing proves nothing (backends page, lag and
 *   cap mempool listings): only a positive answer changes a record — a tx
 *   status, or an observation of the output.
 */
import { confirmations } from '../chain/types.js';

export type DepositState = 'seen' | 'credited' | 'reversed' | 'dropped';
export type Outpoint = `${string}:${number}`;

export interface DepositRecord {
  outpoint: Outpoint;
  address: string;
  valueSats: bigint;
  state: DepositState;
  /** At the tip of the last reconcile that touched the record. */
  confirmations: number;
  blockHeight?: number;
  blockHash?: string;
  /** Tip height when first seen. */
  firstSeenHeight?: number;
  /** Tip height of the last credit. */
  creditedAt?: number;
}

export interface ObservedOutput {
  txid: string;
  vout: number;
  address: string;
  valueSats: bigint;
  confirmed: boolean;
  blockHeight?: number;
  blockHash?: string;
}

export interface ObservedStatus {
  found: boolean;
  confirmed: boolean;
  blockHeight?: number;
  blockHash?: string;
}

export interface DepositAction {
  type: 'credit' | 'reverse';
  outpoint: Outpoint;
  address: string;
  valueSats: bigint;
}

export interface ReconcileInput {
  known: DepositRecord[];
  observed: ObservedOutput[];
  statuses: Map<string, ObservedStatus>;
  tip: number;
  minConf?: number;
}

export interface ReconcileResult {
  /** The new state of every record that changed (new ones included). */
  records: DepositRecord[];
  actions: DepositAction[];
}

export const DEFAULT_MIN_CONF = 2;

export function outpointOf(txid: string, vout: number): Outpoint {
  return `${txid}:${vout}`;
}

export function txidOf(outpoint: Outpoint): string {
  return outpoint.slice(0, outpoint.lastIndexOf(':'));
}

export function reconcileDeposits(input: ReconcileInput): ReconcileResult {
  const minConf = input.minConf ?? DEFAULT_MIN_CONF;
  if (!Number.isSafeInteger(minConf) || minConf < 1) throw new RangeError('minConf is a whole number ≥ 1');
  const known = new Map(input.known.map((r) => [r.outpoint, r]));
  const seen = new Map<Outpoint, ObservedOutput>();
  for (const o of input.observed) {
    const key = outpointOf(o.txid, o.vout);
    const prev = seen.get(key);
    // The same output listed twice (two watched-address pages, a race): keep the confirmed view.
    if (prev === undefined || (!prev.confirmed && o.confirmed)) seen.set(key, o);
  }
  const records: DepositRecord[] = [];
  const actions: DepositAction[] = [];
  for (const key of new Set([...known.keys(), ...seen.keys()])) {
    const before = known.get(key);
    const obs = seen.get(key);
    const status = input.statuses.get(txidOf(key));
    // A tx status is asked for by txid and wins; an observation is positive evidence too.
    const view: ObservedStatus | undefined = status ?? (obs === undefined ? undefined : { ...obs, found: true });
    if (view === undefined) continue;
    const base: DepositRecord = before ?? {
      outpoint: key, address: obs?.address ?? '', valueSats: obs?.valueSats ?? 0n, state: 'seen', confirmations: 0, firstSeenHeight: input.tip,
    };
    if (before === undefined && !view.found) continue; // nothing to track
    const after = step(base, view, input.tip, minConf);
    if (after.action !== undefined) actions.push({ type: after.action, outpoint: key, address: base.address, valueSats: base.valueSats });
    if (before === undefined || !sameRecord(before, after.record)) records.push(after.record);
  }
  return { records, actions };
}

function step(r: DepositRecord, v: ObservedStatus, tip: number, minConf: number): { record: DepositRecord; action?: 'credit' | 'reverse' } {
  const confs = v.found ? confirmations(v, tip) : 0;
  const located = locate(r, v, confs);
  const inChain = v.found && v.confirmed;
  switch (r.state) {
    case 'credited':
      if (!inChain) return { record: { ...located, state: 'reversed' }, action: 'reverse' };
      return { record: located };
    case 'seen':
    case 'dropped':
    case 'reversed':
      if (inChain && confs >= minConf) return { record: { ...located, state: 'credited', creditedAt: tip }, action: 'credit' };
      if (!v.found) return { record: { ...located, state: r.state === 'reversed' ? 'reversed' : 'dropped' } };
      return { record: { ...located, state: r.state === 'dropped' ? 'seen' : r.state } };
  }
}

/** Copies where the tx is now; an unconfirmed or vanished tx has no block. */
function locate(r: DepositRecord, v: ObservedStatus, confs: number): DepositRecord {
  const out: DepositRecord = { ...r, confirmations: confs };
  delete out.blockHeight;
  delete out.blockHash;
  if (v.found && v.confirmed && v.blockHeight !== undefined) out.blockHeight = v.blockHeight;
  if (v.found && v.confirmed && v.blockHash !== undefined) out.blockHash = v.blockHash;
  return out;
}

function sameRecord(a: DepositRecord, b: DepositRecord): boolean {
  return a.state === b.state && a.confirmations === b.confirmations && a.blockHeight === b.blockHeight
    && a.blockHash === b.blockHash && a.creditedAt === b.creditedAt && a.firstSeenHeight === b.firstSeenHeight;
}

/**
 * Txids whose status must be fetched before the next reconcile: every
 * 'seen' record (it may vanish → 'dropped') and every 'credited' one not yet
 * `finalDepth` deep (it may be reorged out → reversed). 'dropped' and
 * 'reversed' records come back through the address listing if they return.
 */
export function statusesNeeded(known: DepositRecord[], tip: number, finalDepth = 100): string[] {
  const txids = new Set<string>();
  for (const r of known) {
    if (r.state === 'seen') txids.add(txidOf(r.outpoint));
    if (r.state === 'credited') {
      const depth = r.blockHeight === undefined ? 0 : tip - r.blockHeight + 1;
      if (depth < finalDepth) txids.add(txidOf(r.outpoint));
    }
  }
  return [...txids];
}
