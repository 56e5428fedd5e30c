import { ImError } from '@idlemesh/protocol';

/** 21 million BTC in sats: no amount on chain can exceed it. */
export const MAX_MONEY_SATS = 2_100_000_000_000_000n;

/**
 * Checks an on-chain amount is a positive bigint of sats no larger than MAX_MONEY_SATS; anything else
 * (0, negative, a float or numeric string that arrived through JSON) is IM_BTC_INVALID_AMOUNT.
 */
export function checkSats(value: unknown, what: string): bigint {
  if (typeof value !== 'bigint') {
    throw new ImError('IM_BTC_INVALID_AMOUNT', `${what} must be a whole number of sats as a bigint, got ${typeof value} ${String(value)}`, {
      details: { what, value: String(value) },
    });
  }
  if (value <= 0n || value > MAX_MONEY_SATS) {
    throw new ImError('IM_BTC_INVALID_AMOUNT', `${what} is ${value} sats; it must be between 1 and ${MAX_MONEY_SATS}`, {
      details: { what, value: value.toString() },
    });
  }
  return value;
}
