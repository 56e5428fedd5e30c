import { ImError } from '@idlemesh/protocol';

/** Above this a fee rate is taken for a unit mistake (sat/kvB passed as sat/vB), not a fee market. */
export const MAX_FEE_RATE_SAT_VB = 10_000;

/**
 * A fee rate in sat/vB as an exact integer of sat per 1000 vB (Bitcoin Core's own precision), so fee
 * arithmetic is bigint from here on. Must be finite, ≥ 1 and ≤ MAX_FEE_RATE_SAT_VB.
 */
export function feeRateSatPerKvb(feeRateSatVb: number): bigint {
  if (typeof feeRateSatVb !== 'number' || !Number.isFinite(feeRateSatVb) || feeRateSatVb < 1 || feeRateSatVb > MAX_FEE_RATE_SAT_VB) {
    throw new ImError('IM_VALIDATION', `fee rate ${String(feeRateSatVb)} sat/vB is not a number between 1 and ${MAX_FEE_RATE_SAT_VB}`, {
      details: { feeRateSatVb: String(feeRateSatVb) },
    });
  }
  return BigInt(Math.round(feeRateSatVb * 1000));
}

/** The fee for `vbytes` at `satPerKvb`, rounded up so the paid rate never falls below the asked one. */
export function feeForVbytes(vbytes: number, satPerKvb: bigint): bigint {
  return (BigInt(vbytes) * satPerKvb + 999n) / 1000n;
}

function compactSizeLength(n: number): number {
  return n < 0xfd ? 1 : n <= 0xffff ? 3 : 5;
}

/**
 * Virtual size of a transaction spending `inputCount` P2WPKH inputs to outputs with these script lengths,
 * assuming every signature takes its largest encoding (72 bytes): an upper bound, at most ¼ vB per input
 * above what the signed transaction weighs.
 */
export function payoutTxVbytes(inputCount: number, outputScriptLengths: readonly number[]): number {
  let base = 4 + compactSizeLength(inputCount) + 41 * inputCount + compactSizeLength(outputScriptLengths.length) + 4;
  for (const len of outputScriptLengths) base += 8 + compactSizeLength(len) + len;
  // Marker and flag, then per input: item count, signature (≤ 72 with its sighash byte), 33-byte key.
  const witness = 2 + (1 + 1 + 72 + 1 + 33) * inputCount;
  return Math.ceil((4 * base + witness) / 4);
}

/**
 * Splits `feeSats` over payouts (given in the order that breaks ties): each pays its own output's
 * vbytes at the rate (rounded down), then an equal part of what remains (inputs, overhead, change);
 * the indivisible remainder goes one sat each to the first payouts. The shares sum to `feeSats` exactly.
 */
export function splitFee(feeSats: bigint, payoutOutputVbytes: readonly number[], satPerKvb: bigint): bigint[] {
  const own = payoutOutputVbytes.map((vb) => (BigInt(vb) * satPerKvb) / 1000n);
  const n = BigInt(own.length);
  if (n === 0n) return [];
  const rest = feeSats - own.reduce((a, b) => a + b, 0n);
  if (rest < 0n) throw new RangeError('the fee does not cover the payouts\' own outputs');
  const each = rest / n;
  const extra = rest % n;
  return own.map((o, i) => o + each + (BigInt(i) < extra ? 1n : 0n));
}
