/**
 * Verifier keys ("vkeys", c2sp.org/signed-note): how a log or witness public
 * key is written in configuration,
 *
 *   <name>+<8 hex digits of key ID>+<base64(type byte || public key)>
 *
 * e.g. `PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW`.
 */

import { cosignatureNoteVerifier } from './cosignature.js';
import { decodeBase64Strict, encodeBase64, isValidKeyName, malformed } from './encoding.js';
import { SIG_TYPE_COSIGNATURE_V1, SIG_TYPE_ED25519, ed25519NoteVerifier, hex8, noteKeyId } from './note.js';
import type { NoteVerifier } from './note.js';

/** The vkey for an Ed25519 public key; type 0x04 for a witness cosigning key. */
export function verifierKey(name: string, publicKey: Uint8Array, type: number = SIG_TYPE_ED25519): string {
  if (type !== SIG_TYPE_ED25519 && type !== SIG_TYPE_COSIGNATURE_V1) malformed(`unsupported signature type 0x${type.toString(16)}`);
  if (publicKey.length !== 32) malformed('an Ed25519 public key is 32 bytes');
  const typed = new Uint8Array(33);
  typed[0] = type;
  typed.set(publicKey, 1);
  return `${name}+${hex8(noteKeyId(name, publicKey, type))}+${encodeBase64(typed)}`;
}

/**
 * Parse a vkey of type 0x01 (Ed25519 note key) or 0x04 (cosignature/v1
 * witness key) into a verifier. Throws IM_VALIDATION if it is malformed, of
 * another type, or its key ID does not match its name and key.
 */
export function parseVerifierKey(vkey: string): NoteVerifier & { readonly publicKey: Uint8Array } {
  // The base64 part may itself contain '+', so split at the first two only.
  const a = vkey.indexOf('+');
  const b = a < 0 ? -1 : vkey.indexOf('+', a + 1);
  if (b < 0) malformed('a verifier key is <name>+<key id>+<base64 key>');
  const name = vkey.slice(0, a);
  const idHex = vkey.slice(a + 1, b);
  if (!isValidKeyName(name)) malformed(`invalid key name ${JSON.stringify(name)}`);
  if (!/^[0-9a-f]{8}$/.test(idHex)) malformed('a verifier key ID is 8 lowercase hex digits');
  const typed = decodeBase64Strict(vkey.slice(b + 1), 'verifier key');
  const type = typed[0];
  const publicKey = typed.subarray(1);
  if (publicKey.length !== 32) malformed('an Ed25519 verifier key is a type byte and 32 bytes');
  const v =
    type === SIG_TYPE_ED25519
      ? ed25519NoteVerifier(name, publicKey)
      : type === SIG_TYPE_COSIGNATURE_V1
        ? cosignatureNoteVerifier(name, publicKey)
        : malformed(`unsupported verifier key type ${String(type)}`);
  if (hex8(v.keyId) !== idHex) malformed(`verifier key ID ${idHex} does not match its name and key`);
  return v;
}
