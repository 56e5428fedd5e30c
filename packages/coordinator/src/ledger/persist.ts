// The ledger over a database, still without I/O. A store does not hold the
// whole log in memory: for each batch it loads what the batch can touch
// (`needs`), builds a partial state from it (`hydrate`), runs the same
// `createAccounts` / `submit` as everywhere else (`applyBatch`) and writes back
// what changed. The store serialises batches (one ledger head row, locked),
// so seq and clock continue exactly as in one in-memory ledger, and `replay`
// of the stored log gives the stored balances — `auditLog` checks that.
import { heapPush } from './heap.js';
import { check, replay } from './check.js';
import { createAccounts, createLedger, setFrozen } from './state.js';
import { submit } from './submit.js';
import type {
  AccountEvent, AccountInput, AccountState, EventResult, LedgerEvent, LedgerState, Transfer,
} from './types.js';
import type { Violation } from './check.js';

/** The head of the stored log: the next seq and the ledger clock. */
export interface LedgerHead {
  readonly seq: number;
  readonly clock: number;
}

/** One ledger write: accounts to create if missing, then events, then freezes (a correction can take what is left before the account is frozen). */
export interface LedgerBatch {
  readonly accounts?: readonly AccountInput[];
  readonly freeze?: ReadonlyArray<{ readonly accountId: string; readonly frozen: boolean }>;
  readonly events: readonly LedgerEvent[];
  /** Transfers carrying these refs are loaded too (stakes read a bond's history by its ref). */
  readonly refs?: readonly string[];
}

/** What a batch needs loaded, in two steps: transfers first, then the accounts they and the events name. */
export interface LedgerNeeds {
  /** Transfers with these ids, or resolving these pendings (`pending_id IN …`). */
  readonly transferIds: string[];
  readonly refs: string[];
}

export function transferNeeds(batch: LedgerBatch): LedgerNeeds {
  const ids = new Set<string>();
  for (const ev of batch.events) {
    ids.add(ev.id);
    if (ev.type === 'post' || ev.type === 'void') ids.add(ev.pendingId);
  }
  return { transferIds: [...ids], refs: [...new Set(batch.refs ?? [])] };
}

/** Accounts the batch touches: named by events and inputs, and by the loaded pendings it may resolve. */
export function accountNeeds(batch: LedgerBatch, loaded: readonly Transfer[]): string[] {
  const ids = new Set<string>();
  for (const a of batch.accounts ?? []) ids.add(a.id);
  for (const f of batch.freeze ?? []) ids.add(f.accountId);
  for (const ev of batch.events) {
    if (ev.type !== 'post' && ev.type !== 'void') {
      ids.add(ev.debitAccount);
      ids.add(ev.creditAccount);
    }
  }
  for (const t of loaded) {
    ids.add(t.debitAccount);
    ids.add(t.creditAccount);
  }
  return [...ids];
}

/**
 * A partial state: the given accounts with their stored balances, and the
 * given transfers indexed (a pending without a loaded resolution is open).
 * Only what a batch can touch needs to be here; the rest of the log stays put.
 */
export function hydrate(head: LedgerHead, accounts: readonly AccountState[], transfers: readonly Transfer[]): LedgerState {
  const state = createLedger();
  for (const a of accounts) state.accounts.set(a.account.id, { ...a });
  const sorted = [...transfers].sort((x, y) => x.seq - y.seq);
  for (const t of sorted) {
    if (state.byId.has(t.id)) continue;
    state.byId.set(t.id, t);
    state.transfers.push(t);
    if (t.ref !== undefined) {
      const list = state.byRef.get(t.ref);
      if (list === undefined) state.byRef.set(t.ref, [t]); else list.push(t);
    }
  }
  for (const t of sorted) {
    if (t.type === 'pending') continue;
    if (t.type !== 'single' && t.pendingId !== undefined) state.resolvedBy.set(t.pendingId, t);
  }
  for (const t of sorted) {
    if (t.type !== 'pending' || state.resolvedBy.has(t.id)) continue;
    state.open.set(t.id, t);
    if (t.timeout !== undefined) heapPush(state.timeouts, { at: t.timestamp + t.timeout, seq: t.seq, id: t.id });
  }
  state.seq = head.seq;
  state.clock = head.clock;
  return state;
}

export interface BatchOutcome {
  readonly accountResults: EventResult[];
  readonly freezeResults: EventResult[];
  readonly results: EventResult[];
  /** To insert, in seq order. */
  readonly accountEvents: AccountEvent[];
  readonly transfers: Transfer[];
  /** The new state of every account that changed (created, frozen, or moved by a transfer). */
  readonly changed: AccountState[];
  /** Which of `changed` did not exist before (to insert rather than update). */
  readonly created: ReadonlySet<string>;
  readonly head: LedgerHead;
}

/** Applies a batch to a hydrated state (changing it) and says what the store must write. */
export function applyBatch(state: LedgerState, batch: LedgerBatch, now: number): BatchOutcome {
  const accountEvents: AccountEvent[] = [];
  const created = new Set<string>();
  const touched = new Set<string>();
  const acc = createAccounts(state, batch.accounts ?? [], now);
  for (const ev of acc.appended) {
    accountEvents.push(ev);
    if (ev.type === 'create') {
      created.add(ev.account.id);
      touched.add(ev.account.id);
    }
  }
  const out = batch.events.length > 0 || state.timeouts.length > 0
    ? submit(state, batch.events, now)
    : { state, results: [], appended: [] };
  const freezeResults: EventResult[] = [];
  for (const f of batch.freeze ?? []) {
    const r = setFrozen(state, f.accountId, f.frozen, now);
    freezeResults.push(r.result);
    for (const ev of r.appended) {
      accountEvents.push(ev);
      touched.add(f.accountId);
    }
  }
  for (const t of out.appended) {
    touched.add(t.debitAccount);
    touched.add(t.creditAccount);
  }
  const changed: AccountState[] = [];
  for (const id of touched) {
    const a = state.accounts.get(id);
    if (a !== undefined) changed.push({ ...a });
  }
  return {
    accountResults: acc.results, freezeResults, results: out.results, accountEvents, transfers: out.appended,
    changed, created, head: { seq: state.seq, clock: state.clock },
  };
}

/** Whether every event and account of a batch went through (ok or already there). */
export function batchSucceeded(o: BatchOutcome): boolean {
  return [...o.accountResults, ...o.freezeResults, ...o.results].every((r) => r.status !== 'error');
}

export function firstError(o: BatchOutcome): EventResult | undefined {
  return [...o.accountResults, ...o.freezeResults, ...o.results].find((r) => r.status === 'error' && r.code !== 'IM_LEDGER_LINKED_EVENT_FAILED')
    ?? [...o.results].find((r) => r.status === 'error');
}

/** A stored account with its stored balances, as the audit sees it. */
export interface StoredAccount extends AccountState {}

/**
 * `idlemesh ledger check`: replays the whole stored log, audits it (`check`),
 * and compares every stored balance with the replayed one.
 */
export function auditLog(accountEvents: readonly AccountEvent[], transfers: readonly Transfer[], stored: readonly StoredAccount[], head?: LedgerHead): Violation[] {
  const state = replay(accountEvents, transfers);
  const out = check(state);
  const seen = new Set<string>();
  for (const s of stored) {
    seen.add(s.account.id);
    const r = state.accounts.get(s.account.id);
    if (r === undefined) {
      out.push({ kind: 'balance-mismatch', message: `stored account ${s.account.id} has no create event in the log`, account: s.account.id });
      continue;
    }
    const fields = ['debitsPosted', 'creditsPosted', 'debitsPending', 'creditsPending'] as const;
    for (const f of fields) {
      if (r[f] !== s[f]) out.push({ kind: 'balance-mismatch', message: `${s.account.id}.${f}: stored ${s[f]}, log says ${r[f]}`, account: s.account.id });
    }
    if (r.frozen !== s.frozen) out.push({ kind: 'balance-mismatch', message: `${s.account.id}: stored frozen=${s.frozen}, log says ${r.frozen}`, account: s.account.id });
  }
  for (const id of state.accounts.keys()) {
    if (!seen.has(id)) out.push({ kind: 'balance-mismatch', message: `account ${id} is in the log but has no stored balance row`, account: id });
  }
  if (head !== undefined && head.seq < state.seq) {
    out.push({ kind: 'order', message: `the stored head seq ${head.seq} is behind the log (${state.seq})` });
  }
  return out;
}
