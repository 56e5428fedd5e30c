// submit and expire: the only ways transfers enter the log. Every rule is
// checked before anything changes; a linked chain that fails is undone.
import { LEDGER_ERRORS } from './errors.js';
import type { LedgerErrorCode } from './errors.js';
import { MAX_AMOUNT, isAmount } from './amounts.js';
import { heapPeek, heapPop } from './heap.js';
import {
  RESERVED_ID_PREFIX, advanceClock, applyTransfer, isValidId, normalizeMeta, sameMeta, unapplyLastTransfer,
} from './state.js';
import { TRANSFER_CODES } from './types.js';
import type { EventResult, LedgerEvent, LedgerState, SubmitOutcome, Transfer, TransferCode } from './types.js';

const CODES: ReadonlySet<string> = new Set(TRANSFER_CODES);
const OK_STATUS = 'ok' as const;

function err(id: unknown, code: LedgerErrorCode, message?: string): EventResult {
  return { id: typeof id === 'string' ? id : String(id), status: 'error', code, message: message ?? LEDGER_ERRORS[code].message };
}

/**
 * Records the expiry of every pending transfer whose timeout has passed at
 * `now`, in (deadline, seq) order. Returns the `expire` transfers appended.
 */
export function expire(state: LedgerState, now: number): { state: LedgerState; appended: Transfer[] } {
  const clock = advanceClock(state, now);
  const appended: Transfer[] = [];
  expireInto(state, clock, appended);
  return { state, appended };
}

function expireInto(state: LedgerState, clock: number, appended: Transfer[]): void {
  const h = state.timeouts;
  for (let top = heapPeek(h); top !== undefined && top.at <= clock; top = heapPeek(h)) {
    heapPop(h);
    const p = state.open.get(top.id);
    if (p === undefined || p.seq !== top.seq || p.timeout === undefined || p.timestamp + p.timeout !== top.at) continue; // stale
    const t: Transfer = withOptional({
      id: RESERVED_ID_PREFIX + p.id, type: 'expire', debitAccount: p.debitAccount, creditAccount: p.creditAccount,
      amount: p.amount, code: p.code, pendingId: p.id, timestamp: clock, seq: state.seq,
    }, p.ref, undefined);
    applyTransfer(state, t);
    appended.push(t);
  }
}

function withOptional(t: Omit<Transfer, 'ref' | 'meta'>, ref: string | undefined, meta: Readonly<Record<string, string>> | undefined): Transfer {
  if (ref === undefined && meta === undefined) return t;
  const out: { -readonly [K in keyof Transfer]?: Transfer[K] } = { ...t };
  if (ref !== undefined) out.ref = ref;
  if (meta !== undefined) out.meta = meta;
  return out as Transfer;
}

/** The transfer an event would record, minus timestamp/seq; or an error. */
type Draft = Omit<Transfer, 'timestamp' | 'seq'>;

function draft(state: LedgerState, ev: LedgerEvent): Draft | EventResult {
  const id = ev.id;
  if (!isValidId(id)) return err(id, 'IM_LEDGER_INVALID_TRANSFER', 'transfer id must be a string of 1..128 characters');
  if (id.startsWith(RESERVED_ID_PREFIX)) return err(id, 'IM_LEDGER_INVALID_TRANSFER', `ids starting with "${RESERVED_ID_PREFIX}" are reserved for the ledger`);
  if (ev.ref !== undefined && !isValidId(ev.ref)) return err(id, 'IM_LEDGER_INVALID_TRANSFER', 'ref must be a string of 1..128 characters');
  const meta = normalizeMeta(ev.meta);
  if (meta === null) return err(id, 'IM_LEDGER_INVALID_TRANSFER', 'meta must be a record of strings');
  const type = ev.type ?? 'single';
  if (type === 'single' || type === 'pending') {
    const e = ev as Exclude<LedgerEvent, { type: 'post' | 'void' }>;
    if (!isAmount(e.amount)) return err(id, 'IM_LEDGER_INVALID_AMOUNT');
    if (!CODES.has(e.code)) return err(id, 'IM_LEDGER_INVALID_TRANSFER', `unknown transfer code ${JSON.stringify(e.code)}; one of ${TRANSFER_CODES.join(', ')}`);
    if (typeof e.debitAccount !== 'string' || typeof e.creditAccount !== 'string') return err(id, 'IM_LEDGER_INVALID_TRANSFER', 'debitAccount and creditAccount must be account ids');
    let timeout: number | undefined;
    if (type === 'pending' && e.type === 'pending' && e.timeout !== undefined) {
      if (!Number.isSafeInteger(e.timeout) || e.timeout <= 0) return err(id, 'IM_LEDGER_INVALID_TRANSFER', 'timeout must be a positive integer of ms');
      timeout = e.timeout;
    }
    const base = { id, type, debitAccount: e.debitAccount, creditAccount: e.creditAccount, amount: e.amount, code: e.code as TransferCode } as const;
    const d: { -readonly [K in keyof Draft]?: Draft[K] } = { ...base };
    if (e.ref !== undefined) d.ref = e.ref;
    if (meta !== undefined) d.meta = meta;
    if (timeout !== undefined) d.timeout = timeout;
    return d as Draft;
  }
  if (type !== 'post' && type !== 'void') return err(id, 'IM_LEDGER_INVALID_TRANSFER', `unknown event type ${JSON.stringify(type)}`);
  const e = ev as Extract<LedgerEvent, { type: 'post' | 'void' }>;
  if (!isValidId(e.pendingId)) return err(id, 'IM_LEDGER_INVALID_TRANSFER', 'pendingId must name a pending transfer');
  const p = state.byId.get(e.pendingId);
  if (p === undefined) return err(id, 'IM_LEDGER_PENDING_NOT_FOUND', `no pending transfer ${e.pendingId}`);
  if (p.type !== 'pending') return err(id, 'IM_LEDGER_NOT_PENDING', `transfer ${p.id} is a ${p.type} transfer, not pending`);
  let amount = p.amount;
  if (e.type === 'post' && e.amount !== undefined) {
    if (!isAmount(e.amount)) return err(id, 'IM_LEDGER_INVALID_AMOUNT');
    amount = e.amount;
  }
  const d: { -readonly [K in keyof Draft]?: Draft[K] } = {
    id, type, debitAccount: p.debitAccount, creditAccount: p.creditAccount, amount, code: p.code, pendingId: p.id,
  };
  const ref = e.ref ?? p.ref;
  if (ref !== undefined) d.ref = ref;
  if (meta !== undefined) d.meta = meta;
  return d as Draft;
}

function sameTransfer(a: Draft, b: Transfer): boolean {
  return a.type === b.type && a.debitAccount === b.debitAccount && a.creditAccount === b.creditAccount
    && a.amount === b.amount && a.code === b.code && a.ref === b.ref && a.pendingId === b.pendingId
    && a.timeout === b.timeout && sameMeta(a.meta, b.meta);
}

/** Checks the balance rules for a new transfer; undefined = allowed. */
function rules(state: LedgerState, d: Draft): EventResult | undefined {
  const id = d.id;
  if (d.debitAccount === d.creditAccount) return err(id, 'IM_LEDGER_SAME_ACCOUNT');
  const dr = state.accounts.get(d.debitAccount);
  if (dr === undefined) return err(id, 'IM_LEDGER_ACCOUNT_NOT_FOUND', `no account ${d.debitAccount}`);
  const cr = state.accounts.get(d.creditAccount);
  if (cr === undefined) return err(id, 'IM_LEDGER_ACCOUNT_NOT_FOUND', `no account ${d.creditAccount}`);
  const a = d.amount;
  if (d.type === 'single' || d.type === 'pending') {
    if (dr.frozen) return err(id, 'IM_LEDGER_ACCOUNT_FROZEN', `account ${dr.account.id} is frozen`);
    const debits = dr.debitsPosted + dr.debitsPending + a;
    const credits = cr.creditsPosted + cr.creditsPending + a;
    if (debits > MAX_AMOUNT || credits > MAX_AMOUNT) return err(id, 'IM_LEDGER_OVERFLOW');
    if (dr.account.flags.debitsMustNotExceedCredits && debits > dr.creditsPosted) {
      return err(id, 'IM_LEDGER_INSUFFICIENT_FUNDS', `account ${dr.account.id} has ${dr.creditsPosted - dr.debitsPosted - dr.debitsPending} msat available, the transfer needs ${a}`);
    }
    if (cr.account.flags.creditsMustNotExceedDebits && credits > cr.debitsPosted) {
      return err(id, 'IM_LEDGER_CREDITS_EXCEED_DEBITS', `account ${cr.account.id} may take at most ${cr.debitsPosted - cr.creditsPosted - cr.creditsPending} msat more credit`);
    }
    return undefined;
  }
  // post / void: the pending must still be open. Posting and voiding only lower
  // debitsPosted + debitsPending and creditsPosted + creditsPending, so the limits hold.
  const pid = d.pendingId!;
  const by = state.resolvedBy.get(pid);
  if (by !== undefined) {
    return by.type === 'expire'
      ? err(id, 'IM_LEDGER_PENDING_EXPIRED', `pending transfer ${pid} expired at ${by.timestamp}`)
      : err(id, 'IM_LEDGER_PENDING_RESOLVED', `pending transfer ${pid} was already ${by.type === 'post' ? 'posted' : 'voided'} by ${by.id}`);
  }
  const p = state.open.get(pid)!;
  if (d.type === 'post') {
    if (a > p.amount) return err(id, 'IM_LEDGER_POST_EXCEEDS_PENDING', `post of ${a} msat exceeds the ${p.amount} msat pending`);
    if (dr.frozen) return err(id, 'IM_LEDGER_ACCOUNT_FROZEN', `account ${dr.account.id} is frozen`);
  }
  return undefined;
}

/** Applies one event; returns its result. */
function one(state: LedgerState, ev: LedgerEvent, timestamp: number, appended: Transfer[]): EventResult {
  if (ev === null || typeof ev !== 'object') return err('', 'IM_LEDGER_INVALID_TRANSFER', 'an event must be an object');
  const d = draft(state, ev);
  if ('status' in d) return d;
  const existing = state.byId.get(d.id);
  if (existing !== undefined) {
    return sameTransfer(d, existing)
      ? { id: d.id, status: 'exists' }
      : err(d.id, 'IM_LEDGER_ID_CONFLICT', `transfer ${d.id} already exists with different fields`);
  }
  const bad = rules(state, d);
  if (bad !== undefined) return bad;
  const t = d as Transfer & { timestamp: number; seq: number };
  t.timestamp = timestamp;
  t.seq = state.seq;
  applyTransfer(state, t);
  appended.push(t);
  return { id: d.id, status: OK_STATUS };
}

/**
 * Submits a batch of events at clock `now`. Pending transfers whose timeout
 * has passed expire first. Each unlinked event succeeds or fails alone; a
 * linked chain (events with `linked: true` up to and including the next one
 * without) is all-or-nothing: the failing event reports its own code, the
 * others `IM_LEDGER_LINKED_EVENT_FAILED`, and nothing of the chain remains.
 * Resubmitting an applied event answers `exists` and changes nothing.
 */
export function submit(state: LedgerState, events: readonly LedgerEvent[], now: number): SubmitOutcome {
  const clock = advanceClock(state, now);
  const appended: Transfer[] = [];
  expireInto(state, clock, appended);
  const n = events.length;
  const results = new Array<EventResult>(n);
  let i = 0;
  while (i < n) {
    const ev = events[i]!;
    if (ev?.linked !== true) {
      results[i] = one(state, ev, clock, appended);
      i++;
      continue;
    }
    let j = i;
    while (j < n && events[j]?.linked === true) j++;
    if (j === n) { // chain never closed
      for (let k = i; k < n - 1; k++) results[k] = err(events[k]!.id, 'IM_LEDGER_LINKED_EVENT_FAILED');
      results[n - 1] = err(events[n - 1]!.id, 'IM_LEDGER_LINKED_CHAIN_OPEN');
      break;
    }
    const logMark = state.transfers.length;
    const outMark = appended.length;
    let failed = -1;
    for (let k = i; k <= j; k++) {
      const r = one(state, events[k]!, clock, appended);
      results[k] = r;
      if (r.status === 'error') { failed = k; break; }
    }
    if (failed >= 0) {
      while (state.transfers.length > logMark) unapplyLastTransfer(state);
      appended.length = outMark;
      for (let k = i; k <= j; k++) if (k !== failed) results[k] = err(events[k]!.id, 'IM_LEDGER_LINKED_EVENT_FAILED');
    }
    i = j + 1;
  }
  return { state, results, appended };
}
