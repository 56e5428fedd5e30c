import { opReturnScript } from './payout.js';
import { hex } from '@scure/base';
import { ImError } from '@idlemesh/protocol';
import { parseAddress, scriptToAddress } from './address.js';
import { checkSats } from './amounts.js';
import type { Branch, Bip32Derivation, DerivedAddress, WatchOnlyAccount } from './account.js';
import type { BatchOutput } from './payout.js';
import { decodePsbt, unsignedTxid } from './psbt.js';
import { assertNetwork } from './network.js';
import type { BitcoinNetwork } from './network.js';

/** A payout the PSBT must contain: exactly this value to exactly this address. */
export interface ApprovedPayout {
  id?: string;
  address: string;
  valueSats: bigint;
}

/** What `verifyPayoutPsbt` takes. */
export interface VerifyPayoutOptions {
  psbt: string;
  account: WatchOnlyAccount;
  network: BitcoinNetwork;
  approved: readonly ApprovedPayout[];
  /** Refuse a fee above this. */
  maxFeeSats?: bigint;
  /** The OP_RETURN anchor the batch may carry (value 0, exactly these bytes); any other OP_RETURN is a mismatch. */
  anchor?: Uint8Array;
  /** How many addresses per branch to search for inputs and change without a usable bip32Derivation (default 1000). */
  scanLimit?: number;
}

/** One reason a PSBT is not the approved batch (amounts as decimal strings: this travels as error details). */
export type PsbtProblem =
  | { kind: 'missing-payout'; id?: string; address: string; valueSats: string }
  | { kind: 'amount-mismatch'; id?: string; address: string; expectedSats: string; valueSats: string }
  | { kind: 'unexpected-output'; output: number; address: string; valueSats: string }
  | { kind: 'input-missing-utxo'; input: number }
  | { kind: 'foreign-input'; input: number; txid: string; vout: number; address: string; valueSats: string }
  | { kind: 'duplicate-input'; input: number; txid: string; vout: number }
  | { kind: 'input-sighash'; input: number; sighash: number }
  | { kind: 'negative-fee'; feeSats: string }
  | { kind: 'fee-too-high'; feeSats: string; maxFeeSats: string };

/** A verified payout PSBT. */
export interface PayoutPsbtReport {
  ok: true;
  txid: string;
  feeSats: bigint;
  inputsSats: bigint;
  outputsSats: bigint;
  /** Every output in order: approved payouts (with their id when given) and change. */
  outputs: BatchOutput[];
  change: Array<{ output: number; address: string; valueSats: bigint; index: number }>;
}

const SIGHASH_ALL = 1;
const DEFAULT_SCAN_LIMIT = 1000;

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

// The account's address that a PSBT field claims via bip32Derivation, if the claim checks out against the script.
function claimed(account: WatchOnlyAccount, script: Uint8Array, derivations: ReadonlyArray<readonly [Uint8Array, Bip32Derivation]> | undefined, branches: readonly Branch[]): DerivedAddress | undefined {
  for (const [publicKey, d] of derivations ?? []) {
    const at = account.fromDerivation(d);
    if (at === undefined || !branches.includes(at.branch)) continue;
    const derived = account.address(at.branch, at.index);
    if (sameBytes(derived.script, script) && sameBytes(derived.publicKey, publicKey)) return derived;
  }
  return undefined;
}

/**
 * The check the coordinator and the treasury signer both run before a payout PSBT is signed or broadcast:
 * every approved payout appears exactly once with exactly its value; every other output is change to this
 * account's change branch; every input spends a coin of this account (witnessUtxo, located by its
 * bip32Derivation or by scanning the first `scanLimit` addresses) with SIGHASH_ALL; the fee is ≥ 0 and
 * ≤ `maxFeeSats`. All violations are collected into one IM_BTC_PSBT_MISMATCH, `details.problems`.
 */
export function verifyPayoutPsbt(opts: VerifyPayoutOptions): PayoutPsbtReport {
  const { account, network } = opts;
  assertNetwork(network, account.network, 'the treasury account key');
  const scanLimit = opts.scanLimit ?? DEFAULT_SCAN_LIMIT;
  const maxFeeSats = opts.maxFeeSats === undefined ? undefined : checkSats(opts.maxFeeSats, 'maxFeeSats');
  const approved = opts.approved.map((a, i) => ({
    id: a.id,
    parsed: parseAddress(a.address, network),
    valueSats: checkSats(a.valueSats, `approved payout ${a.id ?? i} valueSats`),
    matched: false,
  }));
  const tx = decodePsbt(opts.psbt);
  const problems: PsbtProblem[] = [];

  let inputsSats = 0n;
  let inputsKnown = true;
  const outpoints = new Set<string>();
  for (let i = 0; i < tx.inputsLength; i++) {
    const input = tx.getInput(i);
    const txid = input.txid === undefined ? '' : hex.encode(input.txid);
    const vout = input.index ?? -1;
    const outpoint = `${txid}:${vout}`;
    if (outpoints.has(outpoint)) problems.push({ kind: 'duplicate-input', input: i, txid, vout });
    outpoints.add(outpoint);
    // Another sighash would let whoever holds the signed PSBT change what it pays.
    const sighashes = [input.sighashType, ...(input.partialSig ?? []).map(([, sig]) => sig[sig.length - 1])];
    const badSighash = sighashes.find((s) => s !== undefined && s !== SIGHASH_ALL);
    if (badSighash !== undefined) problems.push({ kind: 'input-sighash', input: i, sighash: badSighash });
    const utxo = input.witnessUtxo;
    if (utxo === undefined) {
      problems.push({ kind: 'input-missing-utxo', input: i });
      inputsKnown = false;
      continue;
    }
    inputsSats += utxo.amount;
    const owner = claimed(account, utxo.script, input.bip32Derivation, [0, 1]) ?? account.locate(utxo.script, scanLimit);
    if (owner === undefined) {
      problems.push({ kind: 'foreign-input', input: i, txid, vout, address: scriptToAddress(utxo.script, network), valueSats: utxo.amount.toString() });
    }
  }

  let outputsSats = 0n;
  const outputs: BatchOutput[] = [];
  const change: PayoutPsbtReport['change'] = [];
  for (let i = 0; i < tx.outputsLength; i++) {
    const out = tx.getOutput(i);
    const script = out.script ?? new Uint8Array();
    const valueSats = out.amount ?? 0n;
    outputsSats += valueSats;
    const address = scriptToAddress(script, network);
    if (opts.anchor !== undefined && valueSats === 0n && sameBytes(script, opReturnScript(opts.anchor))) {
      outputs.push({ address, valueSats });
      continue;
    }
    const exact = approved.find((a) => !a.matched && a.valueSats === valueSats && sameBytes(a.parsed.script, script));
    if (exact !== undefined) {
      exact.matched = true;
      outputs.push(exact.id === undefined ? { address, valueSats } : { payoutId: exact.id, address, valueSats });
      continue;
    }
    const mine = claimed(account, script, out.bip32Derivation, [1]) ?? account.locate(script, scanLimit, [1]);
    if (mine !== undefined) {
      change.push({ output: i, address, valueSats, index: mine.index });
      outputs.push({ address, valueSats, change: true });
      continue;
    }
    const sameAddress = approved.find((a) => !a.matched && sameBytes(a.parsed.script, script));
    if (sameAddress !== undefined) {
      sameAddress.matched = true;
      problems.push({
        kind: 'amount-mismatch', ...(sameAddress.id === undefined ? {} : { id: sameAddress.id }),
        address, expectedSats: sameAddress.valueSats.toString(), valueSats: valueSats.toString(),
      });
    } else {
      problems.push({ kind: 'unexpected-output', output: i, address, valueSats: valueSats.toString() });
    }
    outputs.push({ address, valueSats });
  }
  for (const a of approved) {
    if (!a.matched) problems.push({ kind: 'missing-payout', ...(a.id === undefined ? {} : { id: a.id }), address: a.parsed.address, valueSats: a.valueSats.toString() });
  }

  const feeSats = inputsSats - outputsSats;
  if (inputsKnown && feeSats < 0n) problems.push({ kind: 'negative-fee', feeSats: feeSats.toString() });
  if (inputsKnown && maxFeeSats !== undefined && feeSats > maxFeeSats) {
    problems.push({ kind: 'fee-too-high', feeSats: feeSats.toString(), maxFeeSats: maxFeeSats.toString() });
  }
  if (problems.length > 0) {
    const kinds = [...new Set(problems.map((p) => p.kind))].join(', ');
    throw new ImError('IM_BTC_PSBT_MISMATCH', `the PSBT is not the approved payout batch (${kinds}); do not sign or broadcast it`, { details: { problems } });
  }
  return { ok: true, txid: unsignedTxid(tx), feeSats, inputsSats, outputsSats, outputs, change };
}
