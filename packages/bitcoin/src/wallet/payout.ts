import { Transaction } from '@scure/btc-signer';
import { base64, hex } from '@scure/base';
import { ImError } from '@idlemesh/protocol';
import { dustLimitSats, outputVbytes, parseAddress } from './address.js';
import type { ParsedAddress } from './address.js';
import { checkSats } from './amounts.js';
import type { Branch, WatchOnlyAccount } from './account.js';
import { feeForVbytes, feeRateSatPerKvb, payoutTxVbytes, splitFee } from './fees.js';
import { assertNetwork } from './network.js';
import type { BitcoinNetwork } from './network.js';

/** A confirmed coin of the treasury account (always P2WPKH), at `branch/index` of the account. */
export interface Utxo {
  /** Funding transaction id, hex as block explorers show it. */
  txid: string;
  vout: number;
  valueSats: bigint;
  branch: Branch;
  index: number;
}

/** One approved withdrawal: `amountSats` is what the balance gives up; the miner fee share comes out of it. */
export interface PayoutRequest {
  id: string;
  address: string;
  amountSats: bigint;
}

/** An output of a payout transaction: a payout (with its id) or the treasury's change. */
export interface BatchOutput {
  payoutId?: string;
  address: string;
  valueSats: bigint;
  change?: true;
}

/** What `buildPayoutBatch` takes. */
export interface PayoutBatchOptions {
  account: WatchOnlyAccount;
  network: BitcoinNetwork;
  utxos: readonly Utxo[];
  payouts: readonly PayoutRequest[];
  feeRateSatVb: number;
  /** The change address index to use if the batch has change; the caller advances it. */
  changeIndex: number;
  /**
   * Optional: bytes (at most 80) committed in an OP_RETURN output of value 0 — e.g. an audit log's
   * checkpoint root, anchored in bitcoin. Its vbytes are part of the fee the withdrawers share equally.
   */
  anchor?: Uint8Array;
}

/** An unsigned payout transaction, as a PSBT for the treasury signer, plus its accounting. */
export interface PayoutBatch {
  /** BIP174 PSBT (version 0), base64, with witnessUtxo and bip32Derivation on every input and the change output. */
  psbt: string;
  /** The transaction id once signed: every input is segwit, so signatures do not change it. */
  txid: string;
  /** The coins spent, in input order. */
  inputs: Utxo[];
  /** Payouts in id order, then change if any. */
  outputs: BatchOutput[];
  /** Everything the miners get: the rate-based fee plus `treasuryFeeSats`. */
  feeSats: bigint;
  /** Estimated virtual size (an upper bound: largest signature encodings). */
  vbytes: number;
  /** Each payout's part of the rate-based fee, by payout id; they sum to `feeSats - treasuryFeeSats`. */
  feeShares: Record<string, bigint>;
  /** Change too small to keep (below dust) that goes to the miners on the treasury's account; 0 otherwise. */
  treasuryFeeSats: bigint;
  /** The change index used, when there is a change output. */
  changeIndex?: number;
}

// Script length of our own change output (P2WPKH: OP_0 and a 20-byte key hash).
const P2WPKH_SCRIPT_LENGTH = 22;
// Opt in to replace-by-fee (BIP125) so a stuck batch can be bumped.
const RBF_SEQUENCE = 0xfffffffd;

interface CheckedPayout extends PayoutRequest {
  parsed: ParsedAddress;
}

function sats(n: bigint): string {
  return n.toString();
}

function checkPayouts(payouts: readonly PayoutRequest[], network: BitcoinNetwork): CheckedPayout[] {
  if (!Array.isArray(payouts) || payouts.length === 0) throw new ImError('IM_VALIDATION', 'a payout batch needs at least one payout');
  const seen = new Set<string>();
  const checked = payouts.map((p) => {
    if (typeof p.id !== 'string' || p.id === '') throw new ImError('IM_VALIDATION', 'every payout needs a non-empty string id');
    if (seen.has(p.id)) throw new ImError('IM_VALIDATION', `payout id ${p.id} appears twice in the batch`, { details: { payoutId: p.id } });
    seen.add(p.id);
    const amountSats = checkSats(p.amountSats, `payout ${p.id} amountSats`);
    return { id: p.id, address: p.address, amountSats, parsed: parseAddress(p.address, network) };
  });
  // Id order makes the transaction, and who gets the odd remainder sat, independent of the caller's order.
  return checked.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
}

function checkUtxos(utxos: readonly Utxo[]): Utxo[] {
  if (!Array.isArray(utxos)) throw new ImError('IM_VALIDATION', 'utxos must be an array');
  const seen = new Set<string>();
  return utxos.map((u) => {
    if (typeof u.txid !== 'string' || !/^[0-9a-fA-F]{64}$/.test(u.txid)) {
      throw new ImError('IM_VALIDATION', `utxo txid ${String(u.txid)} is not 64 hex characters`, { details: { txid: String(u.txid) } });
    }
    if (!Number.isSafeInteger(u.vout) || u.vout < 0 || u.vout > 0xffffffff) {
      throw new ImError('IM_VALIDATION', `utxo vout ${String(u.vout)} is not an output index`, { details: { txid: u.txid, vout: String(u.vout) } });
    }
    const txid = u.txid.toLowerCase();
    const outpoint = `${txid}:${u.vout}`;
    if (seen.has(outpoint)) throw new ImError('IM_VALIDATION', `utxo ${outpoint} is listed twice`, { details: { outpoint } });
    seen.add(outpoint);
    return { txid, vout: u.vout, valueSats: checkSats(u.valueSats, `utxo ${outpoint} value`), branch: u.branch, index: u.index };
  });
}

/**
 * Builds the unsigned transaction paying a batch of approved withdrawals from the treasury account.
 *
 * Withdrawers pay the miner fee, the treasury does not: fee = ⌈vsize × rate⌉, and each payout's share is
 * its own output's vbytes at the rate plus an equal part of the rest (inputs, overhead, change), so the
 * payouts' outputs plus the fee always come to Σ amountSats. Coins are taken largest first until they
 * cover Σ amountSats; what is left over goes to `account.change(changeIndex)`, or, below the dust limit,
 * to the miners as `treasuryFeeSats`.
 *
 * Throws IM_BTC_WRONG_NETWORK / IM_BTC_INVALID_ADDRESS for a bad address, IM_BTC_INVALID_AMOUNT for an
 * amount that is not a positive bigint, IM_VALIDATION for duplicate ids or a bad fee rate,
 * IM_BTC_INSUFFICIENT_UTXOS when the coins do not cover the payouts and IM_BTC_BELOW_DUST when a payout
 * would be left with less than the dust limit after its fee share.
 */
export function buildPayoutBatch(opts: PayoutBatchOptions): PayoutBatch {
  const { account, network } = opts;
  assertNetwork(network, account.network, 'the treasury account key');
  const rate = feeRateSatPerKvb(opts.feeRateSatVb);
  const changeAddress = account.change(opts.changeIndex);
  const payouts = checkPayouts(opts.payouts, network);
  const utxos = checkUtxos(opts.utxos);
  for (const u of utxos) account.address(u.branch, u.index);

  const needSats = payouts.reduce((a, p) => a + p.amountSats, 0n);
  const candidates = [...utxos].sort((a, b) =>
    a.valueSats !== b.valueSats ? (a.valueSats > b.valueSats ? -1 : 1) : a.txid !== b.txid ? (a.txid < b.txid ? -1 : 1) : a.vout - b.vout);
  const inputs: Utxo[] = [];
  let inputSats = 0n;
  for (const u of candidates) {
    if (inputSats >= needSats) break;
    inputs.push(u);
    inputSats += u.valueSats;
  }
  if (inputSats < needSats) {
    const haveSats = utxos.reduce((a, u) => a + u.valueSats, 0n);
    throw new ImError('IM_BTC_INSUFFICIENT_UTXOS', `the treasury's coins hold ${haveSats} sats; the batch needs ${needSats}`, {
      details: { needSats: sats(needSats), haveSats: sats(haveSats) },
    });
  }

  const leftover = inputSats - needSats;
  const withChange = leftover >= dustLimitSats('p2wpkh');
  if (opts.anchor !== undefined && (opts.anchor.length === 0 || opts.anchor.length > 80)) throw new ImError('IM_VALIDATION', 'an OP_RETURN anchor is 1 to 80 bytes');
  const anchorScript = opts.anchor === undefined ? undefined : opReturnScript(opts.anchor);
  const scriptLengths = payouts.map((p) => p.parsed.script.length);
  if (anchorScript !== undefined) scriptLengths.push(anchorScript.length);
  if (withChange) scriptLengths.push(P2WPKH_SCRIPT_LENGTH);
  const vbytes = payoutTxVbytes(inputs.length, scriptLengths);
  const rateFee = feeForVbytes(vbytes, rate);
  const shares = splitFee(rateFee, payouts.map((p) => outputVbytes(p.parsed.type)), rate);

  const tooSmall = payouts.flatMap((p, i) => {
    const share = shares[i]!;
    const dust = dustLimitSats(p.parsed.type);
    return p.amountSats - share < dust
      ? [{ payoutId: p.id, amountSats: sats(p.amountSats), feeShareSats: sats(share), dustLimitSats: sats(dust), minimumSats: sats(share + dust) }]
      : [];
  });
  const first = tooSmall[0];
  if (first !== undefined) {
    throw new ImError('IM_BTC_BELOW_DUST',
      `payout ${first.payoutId}: ${first.amountSats} sats minus its ${first.feeShareSats} sat fee share is below the ${first.dustLimitSats} sat dust limit; withdraw at least ${first.minimumSats}`,
      { details: { payouts: tooSmall } });
  }

  const tx = new Transaction({ version: 2, lockTime: 0, allowUnknownOutputs: true });
  for (const u of inputs) {
    const owner = account.address(u.branch, u.index);
    tx.addInput({
      txid: hex.decode(u.txid),
      index: u.vout,
      sequence: RBF_SEQUENCE,
      witnessUtxo: { script: owner.script, amount: u.valueSats },
      bip32Derivation: [[owner.publicKey, account.derivation(u.branch, u.index)]],
    });
  }
  const outputs: BatchOutput[] = payouts.map((p, i) => {
    const valueSats = p.amountSats - shares[i]!;
    tx.addOutput({ script: p.parsed.script, amount: valueSats });
    return { payoutId: p.id, address: p.parsed.address, valueSats };
  });
  if (anchorScript !== undefined) {
    tx.addOutput({ script: anchorScript, amount: 0n });
    outputs.push({ address: `op_return:${hex.encode(opts.anchor!)}`, valueSats: 0n });
  }
  if (withChange) {
    tx.addOutput({
      script: changeAddress.script,
      amount: leftover,
      bip32Derivation: [[changeAddress.publicKey, account.derivation(1, opts.changeIndex)]],
    });
    outputs.push({ address: changeAddress.address, valueSats: leftover, change: true });
  }
  const treasuryFeeSats = withChange ? 0n : leftover;
  const batch: PayoutBatch = {
    psbt: base64.encode(tx.toPSBT(0)),
    txid: tx.id,
    inputs: inputs.map((u) => ({ ...u })),
    outputs,
    feeSats: rateFee + treasuryFeeSats,
    vbytes,
    feeShares: Object.fromEntries(payouts.map((p, i) => [p.id, shares[i]!])),
    treasuryFeeSats,
  };
  if (withChange) batch.changeIndex = opts.changeIndex;
  return batch;
}

/** OP_RETURN <data>: a provably unspendable output committing to `data` (at most 80 bytes, one push). */
export function opReturnScript(data: Uint8Array): Uint8Array {
  if (data.length === 0 || data.length > 80) throw new ImError('IM_VALIDATION', 'an OP_RETURN payload is 1 to 80 bytes');
  const push = data.length <= 75 ? Uint8Array.of(data.length) : Uint8Array.of(0x4c, data.length);
  const out = new Uint8Array(1 + push.length + data.length);
  out[0] = 0x6a;
  out.set(push, 1);
  out.set(data, 1 + push.length);
  return out;
}
