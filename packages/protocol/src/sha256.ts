/**
 * SHA-256 for the hot paths (receipt trees, audit leaves): Node's native hash
 * when running in Node, the audited pure-JS one (noble) in a browser. Same
 * bytes either way; native is several times faster on small inputs, and every
 * result is hashed on both sides of the wire.
 */
import { sha256 as nobleSha256 } from '@noble/hashes/sha2.js';

interface NodeCrypto {
  createHash(alg: 'sha256'): { update(data: Uint8Array): { digest(): Uint8Array } };
  /** One-shot (Node ≥ 20.12): no Hash object, so nothing for the garbage collector's weak-handle pass. */
  hash?(alg: 'sha256', data: Uint8Array, encoding: 'buffer'): Uint8Array;
}

// process.getBuiltinModule is synchronous and invisible to bundlers (Node ≥ 20.16).
const native = (globalThis as { process?: { getBuiltinModule?: (id: string) => unknown } }).process?.getBuiltinModule?.('node:crypto') as NodeCrypto | undefined;

// A Hash object per call costs more than the hash: each is a native object the
// next scavenge must visit through a weak handle (~1 ms per scavenge in the
// coordinator, measured with --trace-gc-nvp), so the one-shot is used where it exists.
const oneShot = native?.hash?.bind(native);

export const sha256: (data: Uint8Array) => Uint8Array = oneShot
  ? (data) => new Uint8Array(oneShot('sha256', data, 'buffer'))
  : native
    ? (data) => new Uint8Array(native.createHash('sha256').update(data).digest())
    : (data) => nobleSha256(data);
