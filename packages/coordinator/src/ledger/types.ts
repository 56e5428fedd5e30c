/**
 * The ledger's data. Modelled on TigerBeetle: accounts with flags and four
 * balance fields, immutable transfers with client-chosen ids (idempotency
 * keys), two-phase (pending → post | void | expire) transfers and linked
 * chains. Nothing is updated in place: balances are a function of the log.
 */
import type { LedgerErrorCode } from './errors.js';

export const ACCOUNT_KINDS = [
  'buyer', 'operator', 'escrow', 'coordinator-fee', 'reward-pool', 'stake',
  'deposits-in-flight', 'payouts-in-flight', 'treasury',
] as const;
export type AccountKind = (typeof ACCOUNT_KINDS)[number];

export interface AccountFlags {
  /** debitsPosted + debitsPending may never exceed creditsPosted (no overdraft). */
  readonly debitsMustNotExceedCredits: boolean;
  /** creditsPosted + creditsPending may never exceed debitsPosted (a source that goes "negative" by design). */
  readonly creditsMustNotExceedDebits: boolean;
  /** No debits (new, pending or post); credits, voids and expiries still apply. */
  readonly frozen: boolean;
}

export interface Account {
  readonly id: string;
  readonly kind: AccountKind;
  /** Flags at creation; `frozen` may change later through freeze/unfreeze events. */
  readonly flags: AccountFlags;
  /** Free-form labels (owner, node, job); part of the account's identity for idempotency. */
  readonly meta?: Readonly<Record<string, string>>;
}

export interface AccountInput {
  readonly id: string;
  readonly kind: AccountKind;
  /** Omitted flags take the kind's defaults (`defaultFlags`). */
  readonly flags?: Partial<AccountFlags>;
  readonly meta?: Readonly<Record<string, string>>;
}

/** The account half of the log. `seq` is shared with transfers, so the two merge into one order. */
export type AccountEvent =
  | { readonly type: 'create'; readonly account: Account; readonly seq: number; readonly timestamp: number }
  | { readonly type: 'freeze' | 'unfreeze'; readonly accountId: string; readonly seq: number; readonly timestamp: number };

export const TRANSFER_CODES = [
  'deposit', 'escrow', 'payment', 'fee', 'pool', 'reward', 'stake', 'unstake',
  'slash', 'payout', 'refund', 'correction',
] as const;
/** What a transfer is for. */
export type TransferCode = (typeof TRANSFER_CODES)[number];

/**
 * single: posted at once. pending: reserves (debitsPending/creditsPending).
 * post: settles a pending (amount ≤ pending, the rest is released).
 * void: releases a pending. expire: a void the ledger records when a pending's timeout passed.
 */
export type TransferType = 'single' | 'pending' | 'post' | 'void' | 'expire';

export interface Transfer {
  readonly id: string;
  readonly type: TransferType;
  readonly debitAccount: string;
  readonly creditAccount: string;
  /** single/pending: the amount; post: the amount posted; void/expire: the amount released. */
  readonly amount: bigint;
  readonly code: TransferCode;
  /** What the transfer is about (job id, bond id, evidence id, txid:vout…). Posts and voids inherit their pending's. */
  readonly ref?: string;
  readonly meta?: Readonly<Record<string, string>>;
  /** post/void/expire: the pending transfer resolved. */
  readonly pendingId?: string;
  /** pending: ms after `timestamp` at which it voids itself; absent = never. */
  readonly timeout?: number;
  /** The ledger clock (ms) when recorded; non-decreasing along the log. */
  readonly timestamp: number;
  /** Position in the log (shared with account events); strictly increasing. */
  readonly seq: number;
}

interface EventCommon {
  /** Client-chosen, unique for all time: the idempotency key. */
  readonly id: string;
  /** Links this event to the next one: the chain succeeds or fails as a whole. */
  readonly linked?: boolean;
  readonly ref?: string;
  readonly meta?: Readonly<Record<string, string>>;
}

export interface SingleEvent extends EventCommon {
  readonly type?: 'single';
  readonly debitAccount: string;
  readonly creditAccount: string;
  readonly amount: bigint;
  readonly code: TransferCode;
}

export interface PendingEvent extends EventCommon {
  readonly type: 'pending';
  readonly debitAccount: string;
  readonly creditAccount: string;
  readonly amount: bigint;
  readonly code: TransferCode;
  /** ms; positive safe integer. */
  readonly timeout?: number;
}

export interface PostEvent extends EventCommon {
  readonly type: 'post';
  readonly pendingId: string;
  /** Defaults to the full pending amount. */
  readonly amount?: bigint;
}

export interface VoidEvent extends EventCommon {
  readonly type: 'void';
  readonly pendingId: string;
}

export type LedgerEvent = SingleEvent | PendingEvent | PostEvent | VoidEvent;

export type EventStatus = 'ok' | 'exists' | 'error';

export interface EventResult {
  readonly id: string;
  readonly status: EventStatus;
  readonly code?: LedgerErrorCode;
  readonly message?: string;
}

export interface Balance {
  readonly debitsPosted: bigint;
  readonly creditsPosted: bigint;
  readonly debitsPending: bigint;
  readonly creditsPending: bigint;
}

export interface AccountBalance extends Balance {
  readonly id: string;
  readonly kind: AccountKind;
  readonly frozen: boolean;
  /** creditsPosted - debitsPosted - debitsPending: what may still be debited (for debit-limited accounts). */
  readonly available: bigint;
  /** creditsPosted - debitsPosted. */
  readonly net: bigint;
}

/** Live per-account state. Mutated only by the ledger's own functions. */
export interface AccountState {
  readonly account: Account;
  frozen: boolean;
  debitsPosted: bigint;
  creditsPosted: bigint;
  debitsPending: bigint;
  creditsPending: bigint;
}

export interface TimeoutEntry {
  readonly at: number;
  readonly seq: number;
  readonly id: string;
}

/**
 * The ledger state: the log and the indexes derived from it. It is owned by
 * whoever holds it: `submit`, `expire`, `createAccounts` and `setFrozen`
 * update it in place and return it (copying the world per event would cost
 * more than the work). `cloneLedger` gives an independent copy to branch from.
 */
export interface LedgerState {
  readonly accounts: Map<string, AccountState>;
  readonly accountEvents: AccountEvent[];
  readonly transfers: Transfer[];
  readonly byId: Map<string, Transfer>;
  /** Transfers carrying each ref, in log order. */
  readonly byRef: Map<string, Transfer[]>;
  /** Unresolved pending transfers. */
  readonly open: Map<string, Transfer>;
  /** pending id → the post/void/expire that resolved it. */
  readonly resolvedBy: Map<string, Transfer>;
  /** Min-heap of pending timeouts; entries of resolved pendings are skipped lazily. */
  readonly timeouts: TimeoutEntry[];
  /** Next sequence number. */
  seq: number;
  /** The ledger clock: the largest clock value seen (ms). */
  clock: number;
}

export interface SubmitOutcome {
  readonly state: LedgerState;
  /** One per submitted event, in order. */
  readonly results: EventResult[];
  /** Transfers appended to the log, in order (expiries first): what the store must persist. */
  readonly appended: Transfer[];
}
