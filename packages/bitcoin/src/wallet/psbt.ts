import { Transaction } from '@scure/btc-signer';
import { base64 } from '@scure/base';
import { ImError } from '@idlemesh/protocol';

/** A signed, finalized payout transaction, ready to broadcast. */
export interface FinalizedTransaction {
  txHex: string;
  txid: string;
  vsize: number;
}

// Verification must be able to describe outputs it does not understand (OP_RETURN, bare scripts) to
// report them, rather than fail to parse.
const PARSE_OPTIONS = { allowUnknownOutputs: true } as const;

/** Parses a base64 PSBT; IM_BTC_PSBT_INVALID if it is not one. */
export function decodePsbt(psbtBase64: string): Transaction {
  if (typeof psbtBase64 !== 'string') throw new ImError('IM_BTC_PSBT_INVALID', 'the PSBT must be a base64 string');
  let bytes: Uint8Array;
  try {
    bytes = base64.decode(psbtBase64.trim());
  } catch {
    throw new ImError('IM_BTC_PSBT_INVALID', 'the PSBT is not base64; export it from the wallet as base64 (or a .psbt file, base64-encoded)');
  }
  try {
    return Transaction.fromPSBT(bytes, PARSE_OPTIONS);
  } catch (err) {
    throw new ImError('IM_BTC_PSBT_INVALID', `the PSBT does not parse: ${err instanceof Error ? err.message : String(err)}`);
  }
}

/**
 * The id of the PSBT's transaction, computed from the unsigned transaction. For segwit inputs (all of
 * ours) it is the id the signed transaction will have, so a signed PSBT can be matched to its batch.
 */
export function psbtTxid(psbtBase64: string): string {
  return unsignedTxid(decodePsbt(psbtBase64));
}

/** The id of a transaction computed without its scriptSigs and witnesses. */
export function unsignedTxid(tx: Transaction): string {
  return Transaction.fromRaw(tx.unsignedTx, PARSE_OPTIONS).id;
}

/**
 * Finalizes a PSBT the treasury signer returned and extracts the transaction. Every input must be signed
 * (or already finalized); otherwise IM_BTC_PSBT_INVALID lists the unsigned inputs. Signatures are not
 * verified here: a bad one makes the broadcast fail, and nothing is lost.
 */
export function finalizeSignedPsbt(psbtBase64: string): FinalizedTransaction {
  const tx = decodePsbt(psbtBase64);
  const unsigned: number[] = [];
  for (let i = 0; i < tx.inputsLength; i++) {
    const input = tx.getInput(i);
    const finalized = input.finalScriptWitness !== undefined || input.finalScriptSig !== undefined;
    if (!finalized && (input.partialSig === undefined || input.partialSig.length === 0)) unsigned.push(i);
  }
  if (tx.inputsLength === 0 || unsigned.length > 0) {
    throw new ImError('IM_BTC_PSBT_INVALID', `${unsigned.length} of ${tx.inputsLength} inputs are not signed; sign every input before finalizing`, {
      details: { unsignedInputs: unsigned },
    });
  }
  try {
    tx.finalize();
    return { txHex: tx.hex, txid: tx.id, vsize: tx.vsize };
  } catch (err) {
    throw new ImError('IM_BTC_PSBT_INVALID', `the PSBT cannot be finalized: ${err instanceof Error ? err.message : String(err)}`);
  }
}
