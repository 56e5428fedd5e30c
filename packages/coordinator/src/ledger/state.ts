// Ledger state: creation, accounts, balances, copies, and the two primitive
// moves every other function is built on — apply a transfer, undo the last.
import { ledgerError } from './errors.js';
import type { LedgerErrorCode } from './errors.js';
import { heapPush } from './heap.js';
import { ACCOUNT_KINDS } from './types.js';
import type {
  Account, AccountBalance, AccountEvent, AccountFlags, AccountInput, AccountKind, AccountState,
  EventResult, LedgerState, Transfer,
} from './types.js';

export const MAX_ID_LENGTH = 128;
/** Ids the ledger writes itself (expiries); clients may not use the prefix. */
export const RESERVED_ID_PREFIX = 'expire:';

export function createLedger(): LedgerState {
  return {
    accounts: new Map(),
    accountEvents: [],
    transfers: [],
    byId: new Map(),
    byRef: new Map(),
    open: new Map(),
    resolvedBy: new Map(),
    timeouts: [],
    seq: 0,
    clock: 0,
  };
}

const SOURCE_KINDS: ReadonlySet<AccountKind> = new Set(['treasury', 'deposits-in-flight']);

/** Sources (treasury, deposits-in-flight) may not be credited beyond their debits; every other kind may not overdraw. */
export function defaultFlags(kind: AccountKind): AccountFlags {
  const source = SOURCE_KINDS.has(kind);
  return { debitsMustNotExceedCredits: !source, creditsMustNotExceedDebits: source, frozen: false };
}

export function isValidId(id: unknown): id is string {
  return typeof id === 'string' && id.length > 0 && id.length <= MAX_ID_LENGTH;
}

/** Advances the ledger clock (it never goes back) and returns it. */
export function advanceClock(state: LedgerState, now: number): number {
  if (!Number.isSafeInteger(now) || now < 0) throw ledgerError('IM_LEDGER_INVALID_ARGUMENT', `the clock must be a non-negative integer of ms, got ${now}`);
  if (now > state.clock) state.clock = now;
  return state.clock;
}

function normalizeMeta(meta: unknown): Readonly<Record<string, string>> | undefined | null {
  if (meta === undefined) return undefined;
  if (meta === null || typeof meta !== 'object' || Array.isArray(meta)) return null;
  const out: Record<string, string> = {};
  for (const k of Object.keys(meta).sort()) {
    const v = (meta as Record<string, unknown>)[k];
    if (typeof v !== 'string') return null;
    out[k] = v;
  }
  return out;
}

/** Shallow equality of two meta records (both already normalized or undefined). */
export function sameMeta(a: Readonly<Record<string, string>> | undefined, b: Readonly<Record<string, string>> | undefined): boolean {
  if (a === b) return true;
  if (a === undefined || b === undefined) return false;
  const ka = Object.keys(a);
  if (ka.length !== Object.keys(b).length) return false;
  for (const k of ka) if (a[k] !== b[k]) return false;
  return true;
}

export { normalizeMeta };

function fail(id: string, code: LedgerErrorCode, message: string): EventResult {
  return { id: typeof id === 'string' ? id : String(id), status: 'error', code, message };
}

function toAccount(input: AccountInput): Account | string {
  if (!isValidId(input.id)) return `account id must be a string of 1..${MAX_ID_LENGTH} characters`;
  if (!(ACCOUNT_KINDS as readonly string[]).includes(input.kind)) return `unknown account kind ${JSON.stringify(input.kind)}; one of ${ACCOUNT_KINDS.join(', ')}`;
  const d = defaultFlags(input.kind);
  const f = input.flags ?? {};
  for (const k of Object.keys(f)) if (!(k in d)) return `unknown account flag ${JSON.stringify(k)}`;
  const flags: AccountFlags = {
    debitsMustNotExceedCredits: f.debitsMustNotExceedCredits ?? d.debitsMustNotExceedCredits,
    creditsMustNotExceedDebits: f.creditsMustNotExceedDebits ?? d.creditsMustNotExceedDebits,
    frozen: f.frozen ?? d.frozen,
  };
  if (flags.debitsMustNotExceedCredits && flags.creditsMustNotExceedDebits) return 'an account may not have both debitsMustNotExceedCredits and creditsMustNotExceedDebits';
  const meta = normalizeMeta(input.meta);
  if (meta === null) return 'account meta must be a record of strings';
  return meta === undefined ? { id: input.id, kind: input.kind, flags } : { id: input.id, kind: input.kind, flags, meta };
}

function sameAccount(a: Account, b: Account): boolean {
  return a.kind === b.kind && a.flags.debitsMustNotExceedCredits === b.flags.debitsMustNotExceedCredits
    && a.flags.creditsMustNotExceedDebits === b.flags.creditsMustNotExceedDebits
    && a.flags.frozen === b.flags.frozen && sameMeta(a.meta, b.meta);
}

export function newAccountState(account: Account): AccountState {
  return { account, frozen: account.flags.frozen, debitsPosted: 0n, creditsPosted: 0n, debitsPending: 0n, creditsPending: 0n };
}

/**
 * Creates accounts; idempotent like transfers: the same id with the same
 * fields answers `exists`, with other fields `IM_LEDGER_ACCOUNT_CONFLICT`.
 */
export function createAccounts(state: LedgerState, inputs: readonly AccountInput[], now: number): { state: LedgerState; results: EventResult[]; appended: AccountEvent[] } {
  const timestamp = advanceClock(state, now);
  const results: EventResult[] = [];
  const appended: AccountEvent[] = [];
  for (const input of inputs) {
    const account = toAccount(input);
    if (typeof account === 'string') { results.push(fail(input.id, 'IM_LEDGER_INVALID_ACCOUNT', account)); continue; }
    const existing = state.accounts.get(account.id);
    if (existing !== undefined) {
      results.push(sameAccount(existing.account, account)
        ? { id: account.id, status: 'exists' }
        : fail(account.id, 'IM_LEDGER_ACCOUNT_CONFLICT', `account ${account.id} exists with other fields`));
      continue;
    }
    const ev: AccountEvent = { type: 'create', account, seq: state.seq++, timestamp };
    state.accounts.set(account.id, newAccountState(account));
    state.accountEvents.push(ev);
    appended.push(ev);
    results.push({ id: account.id, status: 'ok' });
  }
  return { state, results, appended };
}

/** Freezes (no debits) or unfreezes an account; recorded as an account event. Setting the current value is `exists`. */
export function setFrozen(state: LedgerState, accountId: string, frozen: boolean, now: number): { state: LedgerState; result: EventResult; appended: AccountEvent[] } {
  const timestamp = advanceClock(state, now);
  const a = state.accounts.get(accountId);
  if (a === undefined) return { state, result: fail(accountId, 'IM_LEDGER_ACCOUNT_NOT_FOUND', `no account ${accountId}`), appended: [] };
  if (a.frozen === frozen) return { state, result: { id: accountId, status: 'exists' }, appended: [] };
  const ev: AccountEvent = { type: frozen ? 'freeze' : 'unfreeze', accountId, seq: state.seq++, timestamp };
  a.frozen = frozen;
  state.accountEvents.push(ev);
  return { state, result: { id: accountId, status: 'ok' }, appended: [ev] };
}

export function balance(state: LedgerState, accountId: string): AccountBalance | undefined {
  const a = state.accounts.get(accountId);
  if (a === undefined) return undefined;
  return {
    id: a.account.id, kind: a.account.kind, frozen: a.frozen,
    debitsPosted: a.debitsPosted, creditsPosted: a.creditsPosted, debitsPending: a.debitsPending, creditsPending: a.creditsPending,
    available: a.creditsPosted - a.debitsPosted - a.debitsPending,
    net: a.creditsPosted - a.debitsPosted,
  };
}

export function getTransfer(state: LedgerState, id: string): Transfer | undefined {
  return state.byId.get(id);
}

/** Transfers carrying `ref`, in log order (e.g. everything about one job). */
export function transfersByRef(state: LedgerState, ref: string): readonly Transfer[] {
  return state.byRef.get(ref) ?? [];
}

/** An independent copy: branch from it without disturbing the original. Transfers are immutable and shared. */
export function cloneLedger(state: LedgerState): LedgerState {
  const accounts = new Map<string, AccountState>();
  for (const [id, a] of state.accounts) accounts.set(id, { ...a });
  const byRef = new Map<string, Transfer[]>();
  for (const [ref, list] of state.byRef) byRef.set(ref, list.slice());
  return {
    accounts,
    accountEvents: state.accountEvents.slice(),
    transfers: state.transfers.slice(),
    byId: new Map(state.byId),
    byRef,
    open: new Map(state.open),
    resolvedBy: new Map(state.resolvedBy),
    timeouts: state.timeouts.slice(),
    seq: state.seq,
    clock: state.clock,
  };
}

/** A plain, order-independent picture of the state, for comparing two states (replay vs live, store vs memory). */
export interface LedgerSnapshot {
  readonly accounts: ReadonlyArray<readonly [string, boolean, string, string, string, string]>;
  readonly transfers: number;
  readonly open: readonly string[];
  readonly resolved: ReadonlyArray<readonly [string, string]>;
  readonly seq: number;
}

export function snapshot(state: LedgerState): LedgerSnapshot {
  const accounts = [...state.accounts.values()]
    .map((a) => [a.account.id, a.frozen, a.debitsPosted.toString(), a.creditsPosted.toString(), a.debitsPending.toString(), a.creditsPending.toString()] as const)
    .sort((x, y) => (x[0] < y[0] ? -1 : x[0] > y[0] ? 1 : 0));
  const open = [...state.open.keys()].sort();
  const resolved = [...state.resolvedBy].map(([p, t]) => [p, t.id] as const).sort((x, y) => (x[0] < y[0] ? -1 : x[0] > y[0] ? 1 : 0));
  return { accounts, transfers: state.transfers.length, open, resolved, seq: state.seq };
}

// --- primitive moves -------------------------------------------------------

/**
 * Appends a transfer and applies its balance effect. No rule checks: `submit`
 * checks before calling, `replay` trusts the log and `check` audits it.
 * Missing accounts or pendings (a corrupt log) are skipped, for `check` to report.
 */
export function applyTransfer(state: LedgerState, t: Transfer): void {
  if (state.byId.has(t.id)) { // a duplicate id (only in a forged log) is kept for `check` to see, and moves nothing
    state.transfers.push(t);
    return;
  }
  const d = state.accounts.get(t.debitAccount);
  const c = state.accounts.get(t.creditAccount);
  // A transfer naming an unknown account, or resolving a missing or already
  // resolved pending (both only in a forged log) moves nothing, as in `check`.
  if (d !== undefined && c !== undefined) {
    switch (t.type) {
      case 'single':
        d.debitsPosted += t.amount;
        c.creditsPosted += t.amount;
        break;
      case 'pending':
        d.debitsPending += t.amount;
        c.creditsPending += t.amount;
        state.open.set(t.id, t);
        if (t.timeout !== undefined) heapPush(state.timeouts, { at: t.timestamp + t.timeout, seq: t.seq, id: t.id });
        break;
      default: {
        const p = t.pendingId === undefined ? undefined : state.open.get(t.pendingId);
        if (p !== undefined) {
          d.debitsPending -= p.amount;
          c.creditsPending -= p.amount;
          state.open.delete(p.id);
          state.resolvedBy.set(p.id, t);
          if (t.type === 'post') {
            d.debitsPosted += t.amount;
            c.creditsPosted += t.amount;
          }
        }
      }
    }
  }
  state.transfers.push(t);
  state.byId.set(t.id, t);
  if (t.ref !== undefined) {
    const list = state.byRef.get(t.ref);
    if (list === undefined) state.byRef.set(t.ref, [t]); else list.push(t);
  }
  if (t.seq >= state.seq) state.seq = t.seq + 1;
  if (t.timestamp > state.clock) state.clock = t.timestamp;
}

/** Undoes the last transfer `submit` applied (rollback of a failed linked chain). Only for transfers applied with checks. */
export function unapplyLastTransfer(state: LedgerState): void {
  const t = state.transfers.pop();
  if (t === undefined) return;
  const d = state.accounts.get(t.debitAccount)!;
  const c = state.accounts.get(t.creditAccount)!;
  switch (t.type) {
    case 'single':
      d.debitsPosted -= t.amount;
      c.creditsPosted -= t.amount;
      break;
    case 'pending':
      d.debitsPending -= t.amount;
      c.creditsPending -= t.amount;
      state.open.delete(t.id); // its heap entry goes stale and is skipped
      break;
    default: {
      const p = state.byId.get(t.pendingId!)!;
      d.debitsPending += p.amount;
      c.creditsPending += p.amount;
      state.open.set(p.id, p);
      state.resolvedBy.delete(p.id);
      if (t.type === 'post') {
        d.debitsPosted -= t.amount;
        c.creditsPosted -= t.amount;
      }
    }
  }
  state.byId.delete(t.id);
  if (t.ref !== undefined) {
    const list = state.byRef.get(t.ref)!;
    list.pop();
    if (list.length === 0) state.byRef.delete(t.ref);
  }
  state.seq = t.seq;
}
