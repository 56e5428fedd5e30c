/**
 * Ledger rows of either store. Amounts and balances are BIGINT/INTEGER
 * columns (the ledger caps them at 2^63−1); pg returns them as strings and
 * better-sqlite3 (with safeIntegers) as bigint, so everything goes through
 * `big`. Accrued charges can exceed 64 bits (fuel × ask) and are decimal text.
 */
import type { Account, AccountBalance, AccountEvent, AccountKind, AccountState, Transfer } from '../ledger/index.js';
import type { Row } from './rows.js';

/** JSON that keeps bigints: they travel as {"$big":"123"}. */
export function encodeDoc(doc: unknown): string {
  return JSON.stringify(doc, (_k, v: unknown) => (typeof v === 'bigint' ? { $big: v.toString() } : v));
}

export function decodeDoc(text: string): unknown {
  return JSON.parse(text, (_k, v: unknown) => {
    if (v !== null && typeof v === 'object' && !Array.isArray(v)) {
      const o = v as Record<string, unknown>;
      const keys = Object.keys(o);
      if (keys.length === 1 && keys[0] === '$big' && typeof o.$big === 'string') return BigInt(o.$big);
    }
    return v;
  });
}

export function big(v: unknown): bigint {
  if (typeof v === 'bigint') return v;
  if (typeof v === 'number') return BigInt(v);
  if (typeof v === 'string') return BigInt(v);
  throw new TypeError(`not an integer column: ${String(v)}`);
}

export function num(v: unknown): number {
  return typeof v === 'bigint' ? Number(v) : Number(v);
}

function meta(v: unknown): Readonly<Record<string, string>> | undefined {
  return v === null || v === undefined ? undefined : JSON.parse(String(v)) as Record<string, string>;
}

export function toAccount(r: Row): Account {
  const a: { -readonly [K in keyof Account]: Account[K] } = {
    id: String(r.id),
    kind: r.kind as AccountKind,
    flags: JSON.parse(String(r.flags)) as Account['flags'],
  };
  const m = meta(r.meta);
  if (m !== undefined) a.meta = m;
  return a;
}

export function toAccountState(r: Row): AccountState {
  return {
    account: toAccount(r),
    frozen: num(r.frozen) === 1 || r.frozen === true,
    debitsPosted: big(r.debits_posted),
    creditsPosted: big(r.credits_posted),
    debitsPending: big(r.debits_pending),
    creditsPending: big(r.credits_pending),
  };
}

export function toBalance(r: Row): AccountBalance {
  const s = toAccountState(r);
  return {
    id: s.account.id, kind: s.account.kind, frozen: s.frozen,
    debitsPosted: s.debitsPosted, creditsPosted: s.creditsPosted, debitsPending: s.debitsPending, creditsPending: s.creditsPending,
    available: s.creditsPosted - s.debitsPosted - s.debitsPending,
    net: s.creditsPosted - s.debitsPosted,
  };
}

export function toTransfer(r: Row): Transfer {
  const t: { -readonly [K in keyof Transfer]: Transfer[K] } = {
    id: String(r.id),
    type: r.type as Transfer['type'],
    debitAccount: String(r.debit_account),
    creditAccount: String(r.credit_account),
    amount: big(r.amount),
    code: r.code as Transfer['code'],
    timestamp: num(r.timestamp),
    seq: num(r.seq),
  };
  if (r.ref !== null && r.ref !== undefined) t.ref = String(r.ref);
  const m = meta(r.meta);
  if (m !== undefined) t.meta = m;
  if (r.pending_id !== null && r.pending_id !== undefined) t.pendingId = String(r.pending_id);
  if (r.timeout !== null && r.timeout !== undefined) t.timeout = num(r.timeout);
  return t;
}

/** Column values of a transfer, in the order of INSERT_TRANSFER_COLUMNS. */
export function transferValues(t: Transfer): unknown[] {
  return [
    t.seq, t.id, t.type, t.debitAccount, t.creditAccount, t.amount, t.code, t.ref ?? null,
    t.meta === undefined ? null : JSON.stringify(t.meta), t.pendingId ?? null, t.timeout ?? null,
    t.type === 'pending' && t.timeout !== undefined ? t.timestamp + t.timeout : null, t.timestamp,
  ];
}

export const TRANSFER_COLUMNS = 'seq, id, type, debit_account, credit_account, amount, code, ref, meta, pending_id, timeout, deadline, timestamp';

export function accountValues(a: AccountState, seq: number): unknown[] {
  return [
    a.account.id, a.account.kind, JSON.stringify(a.account.flags), a.account.meta === undefined ? null : JSON.stringify(a.account.meta),
    a.frozen ? 1 : 0, a.debitsPosted, a.creditsPosted, a.debitsPending, a.creditsPending, seq,
  ];
}

export const ACCOUNT_COLUMNS = 'id, kind, flags, meta, frozen, debits_posted, credits_posted, debits_pending, credits_pending, created_seq';

/** Account events as stored: creates carry only the id; the account's fixed fields live in its row. */
export function toAccountEvent(r: Row, accounts: ReadonlyMap<string, Account>): AccountEvent {
  const type = String(r.type) as AccountEvent['type'];
  const id = String(r.account_id);
  const seq = num(r.seq);
  const timestamp = num(r.timestamp);
  if (type === 'create') {
    const account = accounts.get(id);
    if (account === undefined) throw new Error(`account event ${seq} names account ${id}, which has no row`);
    // The row holds the flags at creation; `frozen` there is the current value.
    return { type, account, seq, timestamp };
  }
  return { type, accountId: id, seq, timestamp };
}

export function accountEventValues(e: AccountEvent): unknown[] {
  return [e.seq, e.type, e.type === 'create' ? e.account.id : e.accountId, e.timestamp];
}
