/**
 * Byte-exact text helpers shared by the note, checkpoint and cosignature
 * formats. Strict on input: a signed artefact has exactly one encoding, so a
 * second spelling of the same bytes is refused rather than normalised.
 */

import { sha256 } from '../sha256.js';
import { bytesToBase64, base64ToBytes, utf8 } from '../crypto.js';
import { ImError } from '../errors.js';

export function malformed(what: string): never {
  throw new ImError('IM_VALIDATION', what);
}

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** Standard padded base64 (RFC 4648 §4). */
export function encodeBase64(bytes: Uint8Array): string {
  return bytesToBase64(bytes);
}

/**
 * Decode standard padded base64, refusing anything but the canonical spelling
 * (missing padding, URL alphabet, whitespace, non-zero trailing bits).
 */
export function decodeBase64Strict(text: string, what: string): Uint8Array {
  if (!BASE64.test(text)) malformed(`${what}: not canonical base64`);
  const bytes = base64ToBytes(text);
  if (bytesToBase64(bytes) !== text) malformed(`${what}: not canonical base64`);
  return bytes;
}

const fatalDecoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** Decode UTF-8, refusing invalid sequences (a BOM is kept as content). */
export function decodeUtf8Strict(bytes: Uint8Array, what: string): string {
  try {
    return fatalDecoder.decode(bytes);
  } catch {
    return malformed(`${what}: not valid UTF-8`);
  }
}

// ASCII control characters other than newline; and UTF-16 halves that do not
// pair up (they have no UTF-8 encoding, so the signed bytes would be ambiguous).
const CONTROL = /[\u0000-\u0009\u000b-\u001f]/;
const LONE_SURROGATE = /\p{Surrogate}/u;

/** Text a signed note may carry: no control characters but newline, encodable as UTF-8. */
export function isValidNoteText(text: string): boolean {
  return !CONTROL.test(text) && !LONE_SURROGATE.test(text);
}

// Go's unicode.IsSpace includes U+0085; JS \s does not.
const SPACE_OR_PLUS = /[\s\u0085+]/u;

/** A note key name: non-empty, no Unicode spaces, no '+', no control characters. */
export function isValidKeyName(name: string): boolean {
  return name.length > 0 && !SPACE_OR_PLUS.test(name) && isValidNoteText(name);
}

/**
 * The key ID of c2sp.org/signed-note: the first four bytes, big-endian, of
 * SHA-256(key name || 0x0A || signature type || public key).
 */
export function keyIdFor(name: string, type: number, publicKey: Uint8Array): number {
  const nameBytes = utf8(name);
  const buf = new Uint8Array(nameBytes.length + 2 + publicKey.length);
  buf.set(nameBytes, 0);
  buf[nameBytes.length] = 0x0a;
  buf[nameBytes.length + 1] = type;
  buf.set(publicKey, nameBytes.length + 2);
  return readUint32(sha256(buf), 0);
}

export function readUint32(bytes: Uint8Array, offset: number): number {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(offset, false);
}

export function writeUint32(out: Uint8Array, offset: number, value: number): void {
  new DataView(out.buffer, out.byteOffset, out.byteLength).setUint32(offset, value, false);
}

export function concatBytes(...parts: Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= (a[i] ?? 0) ^ (b[i] ?? 0);
  return diff === 0;
}
