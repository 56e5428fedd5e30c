/**
 * c2sp.org/signed-note, the envelope of checkpoints: the text (ending in a
 * newline), a blank line, then signature lines
 *
 *   — <key name> <base64(4-byte key ID || signature)>\n
 *
 * Byte-compatible with Go's golang.org/x/mod/sumdb/note: the same keys give
 * the same key IDs, verifier keys and signature lines (see the tests).
 */

import { ed25519 } from '@noble/curves/ed25519.js';
import { utf8 } from '../crypto.js';
import { ImError } from '../errors.js';
import {
  decodeBase64Strict,
  decodeUtf8Strict,
  encodeBase64,
  isValidKeyName,
  isValidNoteText,
  keyIdFor,
  malformed,
  readUint32,
  writeUint32,
} from './encoding.js';

/** Signature type byte of plain Ed25519 note signatures. */
export const SIG_TYPE_ED25519 = 0x01;
/** Signature type byte of timestamped Ed25519 witness cosignatures (c2sp.org/tlog-cosignature). */
export const SIG_TYPE_COSIGNATURE_V1 = 0x04;

const SIG_PREFIX = '\u2014 ';
/** Go's limit; the spec asks verifiers to accept at least 16. */
const MAX_SIGNATURES = 100;

/** An Ed25519 signing key: the key name and the 32-byte RFC 8032 secret (seed). */
export interface NoteSigner {
  readonly name: string;
  readonly privateKey32: Uint8Array;
}

/** A known key. `verify` gets the signature bytes after the key ID. */
export interface NoteVerifier {
  readonly name: string;
  /** uint32 key ID, as in the signature's first four bytes. */
  readonly keyId: number;
  /** Signature type byte (0x01 Ed25519, 0x04 cosignature/v1, …). */
  readonly type: number;
  verify(text: Uint8Array, signature: Uint8Array): boolean;
}

export interface NoteSignature {
  readonly name: string;
  readonly keyId: number;
  /** A known key's signature that checked out. */
  readonly verified: boolean;
  /** Whether a verifier matched name and key ID; known but not verified means forged or corrupt. */
  readonly keyKnown: boolean;
  /** The signature bytes after the key ID. */
  readonly signature: Uint8Array;
}

export interface OpenedNote {
  /** The note text, including its final newline. */
  readonly body: string;
  readonly signatures: readonly NoteSignature[];
}

/** The key ID of an Ed25519 note key (or of another type given its type byte). */
export function noteKeyId(name: string, publicKey: Uint8Array, type: number = SIG_TYPE_ED25519): number {
  if (!isValidKeyName(name)) malformed(`invalid key name ${JSON.stringify(name)}`);
  return keyIdFor(name, type, publicKey);
}

/** Ed25519 verification as Go's crypto/ed25519 does it (RFC 8032, not ZIP-215). */
export function ed25519Verify(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean {
  if (signature.length !== 64) return false;
  try {
    return ed25519.verify(signature, message, publicKey, { zip215: false });
  } catch {
    return false;
  }
}

/** A verifier for plain Ed25519 note signatures by `name`. */
export function ed25519NoteVerifier(name: string, publicKey: Uint8Array): NoteVerifier & { readonly publicKey: Uint8Array } {
  if (publicKey.length !== 32) malformed('an Ed25519 public key is 32 bytes');
  const key = publicKey.slice();
  return {
    name,
    keyId: noteKeyId(name, key, SIG_TYPE_ED25519),
    type: SIG_TYPE_ED25519,
    publicKey: key,
    verify: (text, sig) => ed25519Verify(key, text, sig),
  };
}

/** One signature line, newline included. */
export function formatSignatureLine(name: string, keyId: number, signature: Uint8Array): string {
  if (!isValidKeyName(name)) malformed(`invalid key name ${JSON.stringify(name)}`);
  const blob = new Uint8Array(4 + signature.length);
  writeUint32(blob, 0, keyId);
  blob.set(signature, 4);
  return `${SIG_PREFIX}${name} ${encodeBase64(blob)}\n`;
}

/** Parse one signature line (with or without its newline). Throws IM_VALIDATION if malformed. */
export function parseSignatureLine(line: string): { name: string; keyId: number; signature: Uint8Array } {
  const l = line.endsWith('\n') ? line.slice(0, -1) : line;
  if (!l.startsWith(SIG_PREFIX) || l.includes('\n')) malformed('a signature line starts with an em dash and a space');
  const rest = l.slice(SIG_PREFIX.length);
  const space = rest.indexOf(' ');
  if (space < 0) malformed('a signature line has a key name, a space, and a base64 signature');
  const name = rest.slice(0, space);
  if (!isValidKeyName(name)) malformed(`invalid key name ${JSON.stringify(name)} in a signature line`);
  const blob = decodeBase64Strict(rest.slice(space + 1), 'note signature');
  if (blob.length < 5) malformed('a note signature is a 4-byte key ID and at least one byte');
  return { name, keyId: readUint32(blob, 0), signature: blob.slice(4) };
}

function checkBody(body: string): void {
  if (!body.endsWith('\n')) malformed('note text must end with a newline');
  if (!isValidNoteText(body)) malformed('note text has a control character or invalid Unicode');
}

/** Sign `body` (ending in a newline) with one or more Ed25519 keys; returns the signed note. */
export function signNote(body: string, signers: NoteSigner | readonly NoteSigner[]): string {
  checkBody(body);
  const list = Array.isArray(signers) ? (signers as readonly NoteSigner[]) : [signers as NoteSigner];
  if (list.length === 0) malformed('a signed note needs at least one signature');
  const text = utf8(body);
  let out = `${body}\n`;
  for (const s of list) {
    if (s.privateKey32.length !== 32) malformed('an Ed25519 private key is 32 bytes');
    const publicKey = ed25519.getPublicKey(s.privateKey32);
    out += formatSignatureLine(s.name, noteKeyId(s.name, publicKey), ed25519.sign(text, s.privateKey32));
  }
  return out;
}

/** Split a signed note into its text and signature lines, checking the syntax only. */
export function splitNote(note: string | Uint8Array): { body: string; lines: string[] } {
  const text = typeof note === 'string' ? note : decodeUtf8Strict(note, 'note');
  if (!isValidNoteText(text)) malformed('note has a control character or invalid Unicode');
  // The text may itself hold blank lines; the signatures follow the last one.
  const split = text.lastIndexOf('\n\n');
  if (split < 0) malformed('note has no blank line before its signatures');
  const body = text.slice(0, split + 1);
  const sigs = text.slice(split + 2);
  if (sigs.length === 0 || !sigs.endsWith('\n')) malformed('note signatures must be newline-terminated lines');
  const lines = sigs.slice(0, -1).split('\n');
  if (lines.length > MAX_SIGNATURES) malformed(`note has more than ${MAX_SIGNATURES} signatures`);
  return { body, lines };
}

/**
 * Parse a signed note and check every signature whose name and key ID match
 * a verifier. Unknown keys are listed unverified; a malformed note throws
 * IM_VALIDATION. Deciding what is enough (the log key, a witness quorum) is
 * the caller's: see `openCheckpoint`.
 */
export function openNote(note: string | Uint8Array, verifiers: readonly NoteVerifier[]): OpenedNote {
  const { body, lines } = splitNote(note);
  const text = utf8(body);
  const signatures = lines.map((line): NoteSignature => {
    const { name, keyId, signature } = parseSignatureLine(line);
    const matches = verifiers.filter((v) => v.name === name && v.keyId === keyId);
    if (matches.length > 1) throw new ImError('IM_VALIDATION', `ambiguous key ${name}+${hex8(keyId)}: two verifiers share it`);
    const v = matches[0];
    if (v === undefined) return { name, keyId, verified: false, keyKnown: false, signature };
    let verified = false;
    try {
      verified = v.verify(text, signature);
    } catch {
      verified = false;
    }
    return { name, keyId, verified, keyKnown: true, signature };
  });
  return { body, signatures };
}

/** Append signature lines (e.g. witness cosignatures) to a signed note, dropping exact duplicates. */
export function addNoteSignatures(note: string, signatureLines: readonly string[]): string {
  const { body, lines } = splitNote(note);
  const all = [...lines];
  for (const raw of signatureLines) {
    const line = raw.endsWith('\n') ? raw.slice(0, -1) : raw;
    parseSignatureLine(line);
    if (!all.includes(line)) all.push(line);
  }
  if (all.length > MAX_SIGNATURES) malformed(`note would have more than ${MAX_SIGNATURES} signatures`);
  return `${body}\n${all.join('\n')}\n`;
}

export function hex8(keyId: number): string {
  return keyId.toString(16).padStart(8, '0');
}
