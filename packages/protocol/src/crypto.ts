/**
 * Node identity and message signing. Ed25519 through WebCrypto, so the same
 * code runs in Node and in a browser tab (a browser agent is a node too).
 */

import type * as NodeCrypto from 'node:crypto';
import type { webcrypto } from 'node:crypto';
import { sha256 } from './sha256.js';

// Type-only: the runtime object is globalThis.crypto, present in Node and browsers.
export type CryptoKey = webcrypto.CryptoKey;
const subtle = globalThis.crypto.subtle;

/**
 * In Node, sign and verify synchronously through node:crypto: WebCrypto's
 * ed25519 goes through the thread pool, which costs a hop per signature on
 * the hot path of every results batch. Browsers use WebCrypto.
 */
const nodeCrypto = (globalThis as { process?: { getBuiltinModule?: (id: string) => unknown } }).process?.getBuiltinModule?.('node:crypto') as
  | typeof NodeCrypto
  | undefined;
const ED25519_SPKI_PREFIX = new Uint8Array([0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00]);
const privateKeyObjects = new WeakMap<CryptoKey, NodeCrypto.KeyObject>();
const publicKeyObjects = new Map<string, NodeCrypto.KeyObject>();
const ED25519 = { name: 'Ed25519' } as const;

/** The two calls of sodium-native this module makes. */
interface Sodium {
  crypto_sign_detached(sig: Uint8Array, message: Uint8Array, secretKey: Uint8Array): void;
  crypto_sign_verify_detached(sig: Uint8Array, message: Uint8Array, publicKey: Uint8Array): boolean;
}

/**
 * In Node, Ed25519 goes through libsodium (sodium-native) when it is
 * installed: on the 2-core test machine a verify takes 44 µs there against
 * 100 µs through node:crypto (OpenSSL 3), a signature 17 µs against 34, and
 * every result pays one of each, on its way to the buyer. Ed25519 is
 * deterministic, so the signatures are the same bytes either way.
 * IDLEMESH_ED25519=openssl keeps node:crypto (to compare the two).
 */
const sodium = loadSodium();

function loadSodium(): Sodium | undefined {
  const proc = (globalThis as { process?: { env?: Record<string, string | undefined>; getBuiltinModule?: (id: string) => unknown } }).process;
  if (!nodeCrypto || proc?.env?.IDLEMESH_ED25519 === 'openssl') return undefined;
  try {
    const { createRequire } = proc?.getBuiltinModule?.('node:module') as typeof import('node:module');
    return createRequire(import.meta.url)('sodium-native') as Sodium;
  } catch {
    return undefined;
  }
}

/** Which Ed25519 implementation sign and verify use here. */
export function ed25519Backend(): 'libsodium' | 'openssl' | 'webcrypto' {
  return sodium ? 'libsodium' : nodeCrypto ? 'openssl' : 'webcrypto';
}

/** libsodium's 64-byte secret key (seed, then public key) of a CryptoKey; null where Node will not export it. */
const sodiumSecretKeys = new WeakMap<CryptoKey, Uint8Array | null>();
function sodiumSecretKey(key: CryptoKey): Uint8Array | null {
  let sk = sodiumSecretKeys.get(key);
  if (sk !== undefined) return sk;
  sk = null;
  try {
    const jwk = (nodeCrypto as typeof NodeCrypto).KeyObject.from(key).export({ format: 'jwk' });
    if (jwk.crv === 'Ed25519' && typeof jwk.d === 'string' && typeof jwk.x === 'string') {
      sk = new Uint8Array(64);
      sk.set(fromBase64Url(jwk.d));
      sk.set(fromBase64Url(jwk.x), 32);
    }
  } catch {
    sk = null;
  }
  sodiumSecretKeys.set(key, sk);
  return sk;
}

export interface NodeKeyPair {
  /** Hex of the 32-byte raw public key; this is the node id. */
  readonly publicKeyHex: string;
  readonly privateKey: CryptoKey;
  /** PKCS#8 DER of the private key, for storing in the agent's key file. */
  readonly pkcs8: Uint8Array;
}

export async function generateNodeKey(): Promise<NodeKeyPair> {
  const pair = (await subtle.generateKey(ED25519, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const raw = new Uint8Array(await subtle.exportKey('raw', pair.publicKey));
  const pkcs8 = new Uint8Array(await subtle.exportKey('pkcs8', pair.privateKey));
  return { publicKeyHex: toHex(raw), privateKey: pair.privateKey, pkcs8 };
}

/** Restores a key pair from its PKCS#8 bytes (the public key is re-derived). */
export async function importNodeKey(pkcs8: Uint8Array): Promise<NodeKeyPair> {
  const privateKey = await subtle.importKey('pkcs8', pkcs8, ED25519, true, ['sign']);
  // WebCrypto cannot derive a public key directly; the JWK export carries it.
  const jwk = await subtle.exportKey('jwk', privateKey);
  if (typeof jwk.x !== 'string') throw new Error('key file does not hold an Ed25519 key');
  return { publicKeyHex: toHex(fromBase64Url(jwk.x)), privateKey, pkcs8 };
}

export async function sign(key: CryptoKey, data: Uint8Array): Promise<string> {
  const sk = sodium ? sodiumSecretKey(key) : null;
  if (sodium && sk) {
    const sig = new Uint8Array(64);
    sodium.crypto_sign_detached(sig, data, sk);
    return toHex(sig);
  }
  if (nodeCrypto) {
    let ko = privateKeyObjects.get(key);
    if (!ko) privateKeyObjects.set(key, (ko = nodeCrypto.KeyObject.from(key)));
    return toHex(nodeCrypto.sign(null, data, ko));
  }
  return toHex(new Uint8Array(await subtle.sign(ED25519, key, data)));
}

const verifyKeys = new Map<string, Promise<CryptoKey>>();
const sodiumPublicKeys = new Map<string, Uint8Array>();

export async function verify(publicKeyHex: string, signatureHex: string, data: Uint8Array): Promise<boolean> {
  if (!/^[0-9a-f]{64}$/.test(publicKeyHex) || !/^[0-9a-f]{128}$/.test(signatureHex)) return false;
  if (sodium) {
    let pk = sodiumPublicKeys.get(publicKeyHex);
    if (!pk) {
      if (sodiumPublicKeys.size > 10_000) sodiumPublicKeys.clear();
      sodiumPublicKeys.set(publicKeyHex, (pk = fromHex(publicKeyHex)));
    }
    return sodium.crypto_sign_verify_detached(fromHex(signatureHex), data, pk);
  }
  if (nodeCrypto) {
    let ko = publicKeyObjects.get(publicKeyHex);
    if (!ko) {
      const der = new Uint8Array(ED25519_SPKI_PREFIX.length + 32);
      der.set(ED25519_SPKI_PREFIX);
      der.set(fromHex(publicKeyHex), ED25519_SPKI_PREFIX.length);
      try {
        ko = nodeCrypto.createPublicKey({ key: Buffer.from(der), format: 'der', type: 'spki' });
      } catch {
        return false;
      }
      if (publicKeyObjects.size > 10_000) publicKeyObjects.clear();
      publicKeyObjects.set(publicKeyHex, ko);
    }
    try {
      return nodeCrypto.verify(null, data, ko, fromHex(signatureHex));
    } catch {
      return false;
    }
  }
  let key = verifyKeys.get(publicKeyHex);
  if (key === undefined) {
    key = subtle.importKey('raw', fromHex(publicKeyHex), ED25519, false, ['verify']);
    if (verifyKeys.size > 10_000) verifyKeys.clear();
    verifyKeys.set(publicKeyHex, key);
  }
  try {
    return await subtle.verify(ED25519, await key, fromHex(signatureHex), data);
  } catch {
    return false;
  }
}

export async function sha256Hex(data: Uint8Array): Promise<string> {
  // Node's own hash, synchronously: WebCrypto's digest is a thread-pool hop, on the path of every keyed request.
  if (nodeCrypto) return toHex(sha256(data));
  return toHex(new Uint8Array(await subtle.digest('SHA-256', data)));
}

/**
 * Random bytes are drawn 4 KiB at a time: one getRandomValues call costs a
 * few microseconds on a warm loop but 15–20 µs on a job's path (a job id at
 * submit, a nonce per results batch), where its code is cold. Bytes handed
 * out are wiped from the pool.
 */
const RANDOM_POOL_BYTES = 4096;
const randomPool = new Uint8Array(RANDOM_POOL_BYTES);
let randomPoolAt = RANDOM_POOL_BYTES;

export function randomHex(bytes: number): string {
  if (bytes > 256) return toHex(globalThis.crypto.getRandomValues(new Uint8Array(bytes)));
  if (randomPoolAt + bytes > RANDOM_POOL_BYTES) {
    globalThis.crypto.getRandomValues(randomPool);
    randomPoolAt = 0;
  }
  const taken = randomPool.subarray(randomPoolAt, randomPoolAt + bytes);
  randomPoolAt += bytes;
  const out = toHex(taken);
  taken.fill(0);
  return out;
}

/**
 * Canonical JSON: object keys sorted, no whitespace, undefined members dropped.
 * What gets signed is always canonicalJson of a plain-data value, so both sides
 * produce the same bytes regardless of key order on the wire.
 */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value === 'number' || typeof value === 'boolean' || typeof value === 'string') {
    if (typeof value === 'number' && !Number.isFinite(value)) throw new TypeError('cannot sign a non-finite number');
    return JSON.stringify(value);
  }
  if (Array.isArray(value)) return `[${value.map((v) => (v === undefined ? 'null' : canonicalJson(v))).join(',')}]`;
  if (typeof value === 'object') {
    const obj = value as Record<string, unknown>;
    const keys = Object.keys(obj).filter((k) => obj[k] !== undefined).sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(obj[k])}`).join(',')}}`;
  }
  throw new TypeError(`cannot sign a value of type ${typeof value}`);
}

const encoder = new TextEncoder();
export function utf8(text: string): Uint8Array {
  return encoder.encode(text);
}

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));
export function toHex(bytes: Uint8Array): string {
  let out = '';
  for (const b of bytes) out += HEX[b];
  return out;
}

export function fromHex(hex: string): Uint8Array {
  if (hex.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(hex)) throw new TypeError('invalid hex');
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return out;
}

function fromBase64Url(text: string): Uint8Array {
  return base64ToBytes(text.replace(/-/g, '+').replace(/_/g, '/'));
}

export function bytesToBase64(bytes: Uint8Array): string {
  let s = '';
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(s);
}

export function base64ToBytes(text: string): Uint8Array {
  const padded = text + '='.repeat((4 - (text.length % 4)) % 4);
  const bin = atob(padded);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}
