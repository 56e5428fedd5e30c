/**
 * The ledger's pure core: double-entry, integer msat, append-only. No I/O —
 * the store persists `appended`, and rebuilds with `replay` on start.
 */
export { LEDGER_ERRORS, ledgerError } from './errors.js';
export type { LedgerErrorCode } from './errors.js';
export { MAX_AMOUNT, MSAT_PER_SAT, isAmount, msatToSats, parseMsat, satsToMsat, splitSats } from './amounts.js';
export type { Msat } from './amounts.js';
export { ACCOUNT_KINDS, TRANSFER_CODES } from './types.js';
export type {
  Account, AccountBalance, AccountEvent, AccountFlags, AccountInput, AccountKind, AccountState, Balance,
  EventResult, EventStatus, LedgerEvent, LedgerState, PendingEvent, PostEvent, SingleEvent, SubmitOutcome,
  Transfer, TransferCode, TransferType, VoidEvent,
} from './types.js';
export {
  MAX_ID_LENGTH, RESERVED_ID_PREFIX, balance, cloneLedger, createAccounts, createLedger, defaultFlags,
  getTransfer, setFrozen, snapshot, transfersByRef,
} from './state.js';
export type { LedgerSnapshot } from './state.js';
export { expire, submit } from './submit.js';
export { check, replay } from './check.js';
export type { Violation, ViolationKind } from './check.js';
export { BPS, DEFAULT_UNBONDING_MS, bond, getBond, release, slash, unbond } from './stakes.js';
export type { Bond, BondInput, BondStatus, SlashInput } from './stakes.js';
