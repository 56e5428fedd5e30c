/**
 * Money units. The ledger counts integer msat as `bigint`; on-chain amounts
 * are whole sats. Every bound here keeps a balance inside a signed 64-bit
 * integer, so SQLite INTEGER and PostgreSQL BIGINT columns hold it exactly.
 */
import { ledgerError } from './errors.js';

export type Msat = bigint;

export const MSAT_PER_SAT = 1000n;
/** The largest amount and the largest balance field: 2^63 - 1 msat (21e6 BTC is 2.1e18 msat). */
export const MAX_AMOUNT = (1n << 63n) - 1n;

/** True for a positive whole msat amount the ledger accepts. */
export function isAmount(x: unknown): x is bigint {
  return typeof x === 'bigint' && x > 0n && x <= MAX_AMOUNT;
}

/** Whole sats (bigint, or a safe non-negative integer number) to msat. */
export function satsToMsat(sats: bigint | number): Msat {
  let s: bigint;
  if (typeof sats === 'number') {
    if (!Number.isSafeInteger(sats) || sats < 0) throw ledgerError('IM_LEDGER_INVALID_AMOUNT', `sats must be a non-negative safe integer, got ${sats}`);
    s = BigInt(sats);
  } else {
    s = sats;
  }
  if (s < 0n) throw ledgerError('IM_LEDGER_INVALID_AMOUNT', `sats must be non-negative, got ${s}`);
  const msat = s * MSAT_PER_SAT;
  if (msat > MAX_AMOUNT) throw ledgerError('IM_LEDGER_INVALID_AMOUNT', `${s} sats exceeds the largest amount`);
  return msat;
}

/** msat to whole sats; refuses amounts that are not a multiple of 1000 msat. */
export function msatToSats(msat: Msat): bigint {
  if (msat < 0n) throw ledgerError('IM_LEDGER_INVALID_AMOUNT', `msat must be non-negative, got ${msat}`);
  if (msat % MSAT_PER_SAT !== 0n) throw ledgerError('IM_LEDGER_FRACTIONAL_SAT', `${msat} msat is not a whole number of sats`, { msat: msat.toString() });
  return msat / MSAT_PER_SAT;
}

/** The whole sats in an msat amount and the msat left over (e.g. what an on-chain payout can carry). */
export function splitSats(msat: Msat): { sats: bigint; remainderMsat: Msat } {
  if (msat < 0n) throw ledgerError('IM_LEDGER_INVALID_AMOUNT', `msat must be non-negative, got ${msat}`);
  return { sats: msat / MSAT_PER_SAT, remainderMsat: msat % MSAT_PER_SAT };
}

/** Parses a decimal msat string as sent on the wire ("12345"); no sign, no fraction, no exponent. */
export function parseMsat(text: string): Msat {
  if (!/^(0|[1-9][0-9]{0,18})$/.test(text)) throw ledgerError('IM_LEDGER_INVALID_AMOUNT', `not a whole msat amount: ${JSON.stringify(text)}`);
  const v = BigInt(text);
  if (v > MAX_AMOUNT) throw ledgerError('IM_LEDGER_INVALID_AMOUNT', `${text} msat exceeds the largest amount`);
  return v;
}
