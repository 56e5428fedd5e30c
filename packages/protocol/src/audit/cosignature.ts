/**
 * Witness cosignatures, c2sp.org/tlog-cosignature (Ed25519, cosignature/v1).
 * A witness that has checked a checkpoint is consistent with everything it
 * saw before signs
 *
 *   cosignature/v1\ntime <unix seconds>\n<checkpoint body>
 *
 * and publishes a note signature line whose key ID uses type byte 0x04 and
 * whose signature is the 8-byte big-endian timestamp then the 64-byte
 * Ed25519 signature.
 */

import { ed25519 } from '@noble/curves/ed25519.js';
import { utf8 } from '../crypto.js';
import { parseCheckpoint } from './checkpoint.js';
import { concatBytes, malformed } from './encoding.js';
import { SIG_TYPE_COSIGNATURE_V1, ed25519Verify, formatSignatureLine, noteKeyId, parseSignatureLine } from './note.js';
import type { NoteSigner, NoteVerifier } from './note.js';

const TIMESTAMPED_SIGNATURE_BYTES = 8 + 64;

/** The exact bytes a witness signs. */
export function cosignatureMessage(checkpointBody: string, timeSeconds: number): Uint8Array {
  checkTime(timeSeconds);
  return concatBytes(utf8(`cosignature/v1\ntime ${timeSeconds}\n`), utf8(checkpointBody));
}

function checkTime(t: number): void {
  // The spec allows up to 2^63-1; JS numbers stay exact up to 2^53-1, far enough.
  if (!Number.isSafeInteger(t) || t < 0) malformed(`cosignature time ${t} is not a non-negative integer of seconds`);
}

/** The cosignature's timestamp (Unix seconds), or undefined if the bytes are not a cosignature/v1 signature. */
export function cosignatureTimestamp(signature: Uint8Array): number | undefined {
  if (signature.length !== TIMESTAMPED_SIGNATURE_BYTES) return undefined;
  const t = new DataView(signature.buffer, signature.byteOffset, 8).getBigUint64(0, false);
  return t <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(t) : undefined;
}

/** Cosign a checkpoint body; returns the signature line (newline included) to append to the note. */
export function cosign(checkpointBody: string, signer: NoteSigner, timeSeconds: number): string {
  parseCheckpoint(checkpointBody); // a witness vouches for checkpoints, nothing else
  if (signer.privateKey32.length !== 32) malformed('an Ed25519 private key is 32 bytes');
  const message = cosignatureMessage(checkpointBody, timeSeconds);
  const sig = new Uint8Array(TIMESTAMPED_SIGNATURE_BYTES);
  new DataView(sig.buffer).setBigUint64(0, BigInt(timeSeconds), false);
  sig.set(ed25519.sign(message, signer.privateKey32), 8);
  const publicKey = ed25519.getPublicKey(signer.privateKey32);
  return formatSignatureLine(signer.name, noteKeyId(signer.name, publicKey, SIG_TYPE_COSIGNATURE_V1), sig);
}

function verifyTimestamped(publicKey: Uint8Array, checkpointBody: Uint8Array, signature: Uint8Array): boolean {
  const t = cosignatureTimestamp(signature);
  if (t === undefined) return false;
  const msg = concatBytes(utf8(`cosignature/v1\ntime ${t}\n`), checkpointBody);
  return ed25519Verify(publicKey, msg, signature.subarray(8));
}

/** A note verifier for a witness's cosignatures (pass it to `openNote` / `openCheckpoint`). */
export function cosignatureNoteVerifier(name: string, publicKey: Uint8Array): NoteVerifier & { readonly publicKey: Uint8Array } {
  if (publicKey.length !== 32) malformed('an Ed25519 public key is 32 bytes');
  const key = publicKey.slice();
  return {
    name,
    keyId: noteKeyId(name, key, SIG_TYPE_COSIGNATURE_V1),
    type: SIG_TYPE_COSIGNATURE_V1,
    publicKey: key,
    verify: (text, sig) => verifyTimestamped(key, text, sig),
  };
}

/**
 * Check one cosignature line against a checkpoint body and a witness key.
 * A line from another key, or one that fails, is `verified: false`; a
 * malformed line throws IM_VALIDATION.
 */
export function verifyCosignature(
  checkpointBody: string,
  signatureLine: string,
  witness: { readonly name: string; readonly publicKey: Uint8Array },
): { verified: boolean; timeSeconds: number | undefined } {
  const { name, keyId, signature } = parseSignatureLine(signatureLine);
  const timeSeconds = cosignatureTimestamp(signature);
  const v = cosignatureNoteVerifier(witness.name, witness.publicKey);
  const verified = name === v.name && keyId === v.keyId && v.verify(utf8(checkpointBody), signature);
  return { verified, timeSeconds };
}
