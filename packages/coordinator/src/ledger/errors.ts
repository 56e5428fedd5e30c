/**
 * The ledger's error codes live in the one catalogue (`@idlemesh/protocol`
 * errors.ts, the IM_LEDGER_* block); these helpers name the subset.
 */
import { ERRORS, ImError } from '@idlemesh/protocol';
import type { ErrorCode } from '@idlemesh/protocol';

export type LedgerErrorCode = Extract<ErrorCode, `IM_LEDGER_${string}`>;

export const LEDGER_ERRORS = Object.fromEntries(
  Object.entries(ERRORS).filter(([code]) => code.startsWith('IM_LEDGER_')),
) as { [K in LedgerErrorCode]: (typeof ERRORS)[K] };

export function ledgerError(code: LedgerErrorCode, message?: string, details?: unknown): ImError {
  return new ImError(code, message, details === undefined ? {} : { details });
}
