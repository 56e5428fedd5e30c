/**
 * RFC 6962 / RFC 9162 §2.1 Merkle tree hashing over SHA-256: tree heads,
 * inclusion proofs and consistency proofs, plus `MerkleLog`, the append-only
 * right frontier the coordinator keeps in memory.
 *
 * Everything takes and returns raw 32-byte hashes. Verifiers return false on
 * any mismatch, including malformed input; generators throw IM_VALIDATION on
 * impossible arguments (an index past the end, a size larger than the log).
 */

import { sha256 } from '../sha256.js';
import { ImError } from '../errors.js';
import { bytesEqual } from './encoding.js';

export const MERKLE_HASH_BYTES = 32;

/**
 * Where leaf hashes come from: an array, or a function from index to leaf
 * hash (the coordinator reads them from its audit table). A function source
 * needs the tree size passed alongside.
 */
export type LeafSource = readonly Uint8Array[] | ((index: number) => Uint8Array);

/** The leaves [start, end) whose subtree hash is one element of a proof. */
export type SubtreeRange = readonly [start: number, end: number];

/** SHA-256(0x00 || data): the hash of one log entry. */
export function merkleLeafHash(data: Uint8Array): Uint8Array {
  const buf = new Uint8Array(1 + data.length);
  buf[0] = 0x00;
  buf.set(data, 1);
  return sha256(buf);
}

/** SHA-256(0x01 || left || right): the hash of an interior node. */
export function merkleNodeHash(left: Uint8Array, right: Uint8Array): Uint8Array {
  if (left.length !== MERKLE_HASH_BYTES || right.length !== MERKLE_HASH_BYTES) {
    throw new ImError('IM_VALIDATION', 'Merkle node children must be 32-byte hashes');
  }
  const buf = new Uint8Array(1 + 2 * MERKLE_HASH_BYTES);
  buf[0] = 0x01;
  buf.set(left, 1);
  buf.set(right, 1 + MERKLE_HASH_BYTES);
  return sha256(buf);
}

const EMPTY_ROOT = sha256(new Uint8Array(0));

/** The root of the empty tree: SHA-256 of the empty string. */
export function merkleEmptyRoot(): Uint8Array {
  return EMPTY_ROOT.slice();
}

/** The largest power of two strictly less than n (n >= 2): RFC 6962's split point. */
function splitPoint(n: number): number {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}

// Arithmetic, not bitwise: sizes may exceed 2^32.
function isPowerOfTwo(n: number): boolean {
  let m = n;
  while (m > 1 && m % 2 === 0) m /= 2;
  return m === 1;
}

function isSize(n: number): boolean {
  return Number.isSafeInteger(n) && n >= 0;
}

function getter(leaves: LeafSource, size: number | undefined): { get: (i: number) => Uint8Array; size: number } {
  if (typeof leaves === 'function') {
    if (size === undefined) throw new ImError('IM_VALIDATION', 'a tree size is required with a leaf function');
    if (!isSize(size)) throw new ImError('IM_VALIDATION', `invalid tree size ${size}`);
    return { get: leaves, size };
  }
  const n = size ?? leaves.length;
  if (!isSize(n) || n > leaves.length) throw new ImError('IM_VALIDATION', `tree size ${n} is not within the ${leaves.length} leaves given`);
  return {
    get: (i) => {
      const h = leaves[i];
      if (h === undefined) throw new ImError('IM_VALIDATION', `no leaf ${i}`);
      return h;
    },
    size: n,
  };
}

function checkLeaf(h: Uint8Array, i: number): Uint8Array {
  if (h.length !== MERKLE_HASH_BYTES) throw new ImError('IM_VALIDATION', `leaf hash ${i} is not 32 bytes`);
  return h;
}

/** MTH(D[start:end]) in one left-to-right pass, with a frontier instead of recursion. */
function subtreeRoot(get: (i: number) => Uint8Array, start: number, end: number): Uint8Array {
  if (end === start) return merkleEmptyRoot();
  const frontier: Uint8Array[] = [];
  for (let i = start; i < end; i++) {
    frontier.push(checkLeaf(get(i), i));
    collapse(frontier, i - start);
  }
  return foldFrontier(frontier);
}

/** After appending leaf number `count` (0-based), merge the perfect subtrees it completes. */
function collapse(frontier: Uint8Array[], count: number): void {
  for (let c = count; c % 2 === 1; c = Math.floor(c / 2)) {
    const right = frontier.pop() as Uint8Array;
    const left = frontier.pop() as Uint8Array;
    frontier.push(merkleNodeHash(left, right));
  }
}

/** Hash a frontier (perfect subtree roots, largest first) into the tree head. */
function foldFrontier(frontier: readonly Uint8Array[]): Uint8Array {
  let root = frontier[frontier.length - 1];
  if (root === undefined) return merkleEmptyRoot();
  for (let i = frontier.length - 2; i >= 0; i--) root = merkleNodeHash(frontier[i] as Uint8Array, root);
  return root;
}

/** MTH: the RFC 6962 tree head over the first `size` leaf hashes (all of them by default). */
export function merkleRoot(leaves: LeafSource, size?: number): Uint8Array {
  const src = getter(leaves, size);
  return subtreeRoot(src.get, 0, src.size);
}

/**
 * The subtrees whose hashes make up PATH(index, D[size]), deepest first —
 * for a caller that fetches leaves asynchronously or caches subtree hashes:
 * proof[i] = merkleRoot(leaves start..end) for ranges[i].
 */
export function inclusionProofRanges(index: number, size: number): SubtreeRange[] {
  if (!isSize(size) || !Number.isSafeInteger(index) || index < 0 || index >= size) {
    throw new ImError('IM_VALIDATION', `leaf index ${index} is not in a tree of size ${size}`);
  }
  const out: SubtreeRange[] = [];
  let lo = 0;
  let hi = size;
  while (hi - lo > 1) {
    const k = splitPoint(hi - lo);
    if (index < lo + k) {
      out.push([lo + k, hi]);
      hi = lo + k;
    } else {
      out.push([lo, lo + k]);
      lo += k;
    }
  }
  return out.reverse();
}

/**
 * The subtrees whose hashes make up PROOF(oldSize, D[newSize]) (RFC 6962
 * SUBPROOF), deepest first. Empty when oldSize is 0 or equals newSize.
 */
export function consistencyProofRanges(oldSize: number, newSize: number): SubtreeRange[] {
  if (!isSize(oldSize) || !isSize(newSize) || oldSize > newSize) {
    throw new ImError('IM_VALIDATION', `no consistency proof from size ${oldSize} to size ${newSize}`);
  }
  if (oldSize === 0 || oldSize === newSize) return [];
  const out: SubtreeRange[] = [];
  let lo = 0;
  let hi = newSize;
  let m = oldSize;
  let complete = true; // SUBPROOF's b: the old tree is a complete subtree seen so far
  for (;;) {
    if (m === hi - lo) {
      if (!complete) out.push([lo, hi]);
      break;
    }
    const k = splitPoint(hi - lo);
    if (m <= k) {
      out.push([lo + k, hi]);
      hi = lo + k;
    } else {
      out.push([lo, lo + k]);
      lo += k;
      m -= k;
      complete = false;
    }
  }
  return out.reverse();
}

function hashRanges(get: (i: number) => Uint8Array, ranges: readonly SubtreeRange[]): Uint8Array[] {
  return ranges.map(([s, e]) => subtreeRoot(get, s, e));
}

/** PATH(index, D[size]): the audit path proving leaf `index` is in the tree of `size` leaves. */
export function inclusionProof(leaves: LeafSource, index: number, size?: number): Uint8Array[] {
  const src = getter(leaves, size);
  return hashRanges(src.get, inclusionProofRanges(index, src.size));
}

/** PROOF(oldSize, D[newSize]): proves the tree of `oldSize` leaves is a prefix of the tree of `newSize`. */
export function consistencyProof(leaves: LeafSource, oldSize: number, newSize?: number): Uint8Array[] {
  const src = getter(leaves, newSize);
  return hashRanges(src.get, consistencyProofRanges(oldSize, src.size));
}

function isHash(h: unknown): h is Uint8Array {
  return h instanceof Uint8Array && h.length === MERKLE_HASH_BYTES;
}

/** Inclusion proof verification, RFC 9162 §2.1.3.2. */
export function verifyInclusionProof(
  leafHash: Uint8Array,
  index: number,
  size: number,
  proof: readonly Uint8Array[],
  root: Uint8Array,
): boolean {
  if (!isSize(size) || !Number.isSafeInteger(index) || index < 0 || index >= size) return false;
  if (!isHash(leafHash) || !isHash(root) || !proof.every(isHash)) return false;
  let fn = index;
  let sn = size - 1;
  let r = leafHash;
  for (const p of proof) {
    if (sn === 0) return false;
    if (fn % 2 === 1 || fn === sn) {
      r = merkleNodeHash(p, r);
      if (fn % 2 === 0) {
        while (fn % 2 === 0 && fn !== 0) {
          fn = Math.floor(fn / 2);
          sn = Math.floor(sn / 2);
        }
      }
    } else {
      r = merkleNodeHash(r, p);
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  return sn === 0 && bytesEqual(r, root);
}

/**
 * Consistency proof verification, RFC 9162 §2.1.4.2. Growing from the empty
 * tree needs no proof (but the old root must be the empty root); equal sizes
 * need an empty proof and equal roots.
 */
export function verifyConsistencyProof(
  oldSize: number,
  newSize: number,
  oldRoot: Uint8Array,
  newRoot: Uint8Array,
  proof: readonly Uint8Array[],
): boolean {
  if (!isSize(oldSize) || !isSize(newSize) || oldSize > newSize) return false;
  if (!isHash(oldRoot) || !isHash(newRoot) || !proof.every(isHash)) return false;
  if (oldSize === 0) return proof.length === 0 && bytesEqual(oldRoot, EMPTY_ROOT);
  if (oldSize === newSize) return proof.length === 0 && bytesEqual(oldRoot, newRoot);
  if (proof.length === 0) return false;

  // Step 1: when the old tree is a complete subtree its root is the first node.
  const path = isPowerOfTwo(oldSize) ? [oldRoot, ...proof] : [...proof];
  let fn = oldSize - 1;
  let sn = newSize - 1;
  while (fn % 2 === 1) {
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  let fr = path[0] as Uint8Array;
  let sr = fr;
  for (const c of path.slice(1)) {
    if (sn === 0) return false;
    if (fn % 2 === 1 || fn === sn) {
      fr = merkleNodeHash(c, fr);
      sr = merkleNodeHash(c, sr);
      if (fn % 2 === 0) {
        while (fn % 2 === 0 && fn !== 0) {
          fn = Math.floor(fn / 2);
          sn = Math.floor(sn / 2);
        }
      }
    } else {
      sr = merkleNodeHash(sr, c);
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  return sn === 0 && bytesEqual(fr, oldRoot) && bytesEqual(sr, newRoot);
}

/**
 * An append-only Merkle log held as its right frontier: the roots of the
 * perfect subtrees that make up the tree, largest first (one per set bit of
 * the size). `append` and `root` cost O(log n) hashes and memory; proofs and
 * older roots are computed from leaf hashes the caller keeps (a DB table).
 */
export class MerkleLog {
  #size = 0;
  #frontier: Uint8Array[] = [];

  /** Rebuild from stored leaf hashes (O(n)); for a cheap restart persist `frontier()` and use `restore`. */
  static fromLeaves(leaves: readonly Uint8Array[]): MerkleLog {
    const log = new MerkleLog();
    for (const h of leaves) log.append(h);
    return log;
  }

  /** Resume from a size and the frontier saved at that size. */
  static restore(size: number, frontier: readonly Uint8Array[]): MerkleLog {
    if (!isSize(size)) throw new ImError('IM_VALIDATION', `invalid tree size ${size}`);
    let bits = 0;
    for (let s = size; s > 0; s = Math.floor(s / 2)) bits += s % 2;
    if (frontier.length !== bits || !frontier.every(isHash)) {
      throw new ImError('IM_VALIDATION', `a frontier for size ${size} is ${bits} 32-byte hashes`);
    }
    const log = new MerkleLog();
    log.#size = size;
    log.#frontier = frontier.map((h) => h.slice());
    return log;
  }

  get size(): number {
    return this.#size;
  }

  /** Append one leaf hash (see `auditEntryLeafHash`); returns its index. */
  append(leafHash: Uint8Array): number {
    if (!isHash(leafHash)) throw new ImError('IM_VALIDATION', 'a leaf hash is 32 bytes');
    const index = this.#size;
    this.#frontier.push(leafHash.slice());
    collapse(this.#frontier, index);
    this.#size = index + 1;
    return index;
  }

  /** The tree head at the current size. */
  root(): Uint8Array {
    return foldFrontier(this.#frontier);
  }

  /** A copy of the frontier, to persist next to the size for `restore`. */
  frontier(): Uint8Array[] {
    return this.#frontier.map((h) => h.slice());
  }

  /** The tree head at an earlier size, from the caller's leaf hashes. */
  rootAt(size: number, leaves: LeafSource): Uint8Array {
    this.#checkSize(size);
    return size === this.#size ? this.root() : merkleRoot(leaves, size);
  }

  inclusionProof(index: number, leaves: LeafSource, size: number = this.#size): Uint8Array[] {
    this.#checkSize(size);
    return inclusionProof(leaves, index, size);
  }

  consistencyProof(oldSize: number, leaves: LeafSource, newSize: number = this.#size): Uint8Array[] {
    this.#checkSize(newSize);
    return consistencyProof(leaves, oldSize, newSize);
  }

  #checkSize(size: number): void {
    if (!isSize(size) || size > this.#size) throw new ImError('IM_VALIDATION', `the log has ${this.#size} leaves, not ${size}`);
  }
}
