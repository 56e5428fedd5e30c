/**
 * Error codes of the ledger and pricing core. They belong in the one catalogue
 * (`@idlemesh/protocol` errors.ts); until they are moved there they live here
 * with the same shape, and `ledgerError` builds an `ImError` as soon as the
 * catalogue knows the code, so callers never need to change.
 */
import { ImError, isErrorCode } from '@idlemesh/protocol';
import type { ErrorSpec, WireError } from '@idlemesh/protocol';

export const LEDGER_ERRORS = {
  IM_LEDGER_ID_CONFLICT: { status: 409, message: 'A transfer with this id already exists with different fields; transfer ids are idempotency keys, so use a new id for a new transfer.', retryable: false },
  IM_LEDGER_ACCOUNT_CONFLICT: { status: 409, message: 'An account with this id already exists with a different kind, flags or metadata; choose another id.', retryable: false },
  IM_LEDGER_ACCOUNT_NOT_FOUND: { status: 404, message: 'The transfer names an account the ledger does not have; create the account first.', retryable: false },
  IM_LEDGER_SAME_ACCOUNT: { status: 400, message: 'A transfer must debit and credit two different accounts.', retryable: false },
  IM_LEDGER_INVALID_AMOUNT: { status: 400, message: 'Amounts are positive whole msat (a bigint no larger than 2^63-1).', retryable: false },
  IM_LEDGER_INVALID_TRANSFER: { status: 400, message: 'The transfer is malformed (id, type, code, ref or timeout); see details.', retryable: false },
  IM_LEDGER_INVALID_ACCOUNT: { status: 400, message: 'The account is malformed (id, kind or flags); see details.', retryable: false },
  IM_LEDGER_INSUFFICIENT_FUNDS: { status: 402, message: 'The debit account does not have enough available funds (posted credits minus posted and pending debits); fund it or lower the amount.', retryable: false },
  IM_LEDGER_CREDITS_EXCEED_DEBITS: { status: 409, message: 'The credit account may not be credited more than it has been debited (a source account such as treasury or deposits-in-flight).', retryable: false },
  IM_LEDGER_OVERFLOW: { status: 409, message: 'The transfer would push a balance beyond 2^63-1 msat.', retryable: false },
  IM_LEDGER_ACCOUNT_FROZEN: { status: 423, message: 'The debit account is frozen and takes no debits; pending transfers on it may still be voided.', retryable: false },
  IM_LEDGER_PENDING_NOT_FOUND: { status: 404, message: 'No pending transfer with this id; post and void must name an existing pending transfer.', retryable: false },
  IM_LEDGER_NOT_PENDING: { status: 409, message: 'The referenced transfer is not a pending transfer, so it cannot be posted or voided.', retryable: false },
  IM_LEDGER_PENDING_RESOLVED: { status: 409, message: 'The pending transfer was already posted or voided; a pending transfer is resolved at most once.', retryable: false },
  IM_LEDGER_PENDING_EXPIRED: { status: 409, message: 'The pending transfer passed its timeout and was voided; create a new pending transfer.', retryable: false },
  IM_LEDGER_POST_EXCEEDS_PENDING: { status: 400, message: 'A post may not move more than the pending amount; post at most the amount held.', retryable: false },
  IM_LEDGER_LINKED_EVENT_FAILED: { status: 409, message: 'Another event of the same linked chain failed, so none of the chain was applied; fix that event and resubmit the chain.', retryable: false },
  IM_LEDGER_LINKED_CHAIN_OPEN: { status: 400, message: 'The batch ends with a linked event, so its chain is not closed; clear `linked` on the last event of each chain.', retryable: false },
  IM_LEDGER_FRACTIONAL_SAT: { status: 400, message: 'On-chain amounts are whole sats; this msat amount is not a multiple of 1000.', retryable: false },
  IM_LEDGER_INVALID_ARGUMENT: { status: 400, message: 'An argument of the ledger or pricing core is out of range (clock, basis points, fuel, price or count); see details.', retryable: false },
  IM_LEDGER_BOND_NOT_FOUND: { status: 404, message: 'No bond with this id.', retryable: false },
  IM_LEDGER_BOND_STATE: { status: 409, message: 'The bond is not in a state that allows this (already unbonding, not unbonding, released or fully slashed).', retryable: false },
  IM_LEDGER_BOND_LOCKED: { status: 409, message: 'The bond is still in its unbonding period; release it after the unlock time.', retryable: true },
} as const satisfies Record<string, ErrorSpec>;

export type LedgerErrorCode = keyof typeof LEDGER_ERRORS;

/** Same public shape as `ImError`, for codes the catalogue does not hold yet. */
export class LedgerError extends Error {
  readonly code: LedgerErrorCode;
  readonly status: number;
  readonly retryable: boolean;
  readonly retryAfterMs: number | undefined = undefined;
  readonly details: unknown;

  constructor(code: LedgerErrorCode, message?: string, details?: unknown) {
    const spec = LEDGER_ERRORS[code];
    super(message ?? spec.message);
    this.name = 'LedgerError';
    this.code = code;
    this.status = spec.status;
    this.retryable = spec.retryable;
    this.details = details;
  }

  toWire(): WireError {
    const wire: WireError = { code: this.code, message: this.message, retryable: this.retryable };
    if (this.details !== undefined) wire.details = this.details;
    return wire;
  }
}

/** An `ImError` once the catalogue has the code, a `LedgerError` until then. */
export function ledgerError(code: LedgerErrorCode, message?: string, details?: unknown): ImError | LedgerError {
  if (isErrorCode(code)) return new ImError(code, message, details === undefined ? {} : { details });
  return new LedgerError(code, message, details);
}
